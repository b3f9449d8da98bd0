//! The frame every page shares, and the small pieces pages are made of. All HTML is written
//! with maud: a value spliced into a template is escaped unless it is wrapped in
//! `PreEscaped`, so a run name, a param or a log line cannot become markup by accident.
//! `PreEscaped` is used for the stylesheet and for SVG built from numbers only.

use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use maud::{html, Markup, PreEscaped};
use repro_core::{Digest, RunId};

use super::SIGNED_IN;
use crate::ApiError;

/// The one stylesheet: inline, because the Content-Security-Policy admits no other source,
/// and because the audit report must be one file that works offline.
pub(crate) const CSS: &str = "
:root{--fg:#1d2330;--muted:#687083;--line:#d8dce3;--bg:#f6f7f9;--ok:#116b2e;--warn:#8a5a00;--bad:#b00020;--accent:#2f5bea}
body{font:14px/1.45 system-ui,-apple-system,'Segoe UI',sans-serif;margin:0;color:var(--fg);background:var(--bg)}
header{background:#1d2330;color:#fff;padding:.6em 1.2em;display:flex;gap:1.5em;align-items:center}
header a{color:#cfd8ff;text-decoration:none}header b{color:#fff;font-size:1.1em}.logout{margin-left:auto}
main{padding:.8em 1.5em;max-width:1500px}
nav.crumbs{font-size:.9em;color:var(--muted);margin:.2em 0}nav.crumbs a{color:var(--muted)}
h1{font-size:1.35em;margin:.3em 0 .6em}h2{font-size:1.1em;margin:1.4em 0 .4em;border-bottom:1px solid var(--line)}
h3{font-size:1em;margin:1em 0 .3em}
a{color:#1f45c4}
table{border-collapse:collapse;background:#fff;margin:.3em 0 1em}
th,td{border:1px solid var(--line);padding:.25em .6em;text-align:left;vertical-align:top}
th{background:#eef0f4;font-weight:600}th a{color:inherit}td.num{text-align:right;font-variant-numeric:tabular-nums}
code,.mono{font-family:ui-monospace,Menlo,Consolas,monospace;font-size:.92em}
.id{white-space:nowrap}.nowrap{white-space:nowrap}
.digest{display:inline-block;max-width:13em;overflow:hidden;text-overflow:ellipsis;white-space:nowrap;vertical-align:bottom}
.wrap{overflow-wrap:anywhere}
.scroll{overflow-x:auto;max-width:100%}
pre{background:#fff;border:1px solid var(--line);padding:.6em;overflow:auto;max-height:30em;white-space:pre-wrap;overflow-wrap:anywhere}
.ok{color:var(--ok);font-weight:600}.warn{color:var(--warn);font-weight:600}.missing,.bad{color:var(--bad);font-weight:600}
.badge{display:inline-block;padding:0 .45em;margin:0 .15em .1em 0;border-radius:.7em;font-size:.8em;font-weight:600;border:1px solid;white-space:nowrap}
.badge.ok{background:#e6f4ea}.badge.warn{background:#fff4dc}.badge.bad{background:#fde8ea}.badge.info{color:#1f45c4;background:#e8edff}
.badge.muted{color:var(--muted);background:#f0f1f4}
.error{background:#fde8ea;border:1px solid #e6a1aa;padding:.6em;margin:.6em 0}
.muted{color:var(--muted)}.charts{display:flex;flex-wrap:wrap;gap:1em}
.chart{background:#fff;border:1px solid var(--line);padding:.4em;margin:0;width:540px;max-width:100%}.chart svg{width:100%;height:auto}
.legend{list-style:none;padding:0;margin:.2em 0;display:flex;flex-wrap:wrap;gap:.3em 1em;font-size:.85em}
.swatch{display:inline-block;width:.9em;height:.9em;border-radius:2px;vertical-align:middle}
.card{background:#fff;border:1px solid var(--line);border-left:5px solid var(--line);padding:.6em 1em;margin:.6em 0}
.card.ok{border-left-color:var(--ok);font-weight:normal;color:inherit}.card.bad{border-left-color:var(--bad);font-weight:normal;color:inherit}
.card.warn{border-left-color:#d29a00;font-weight:normal;color:inherit}
.side{display:grid;grid-template-columns:1fr 1fr;gap:1em}
form.inline{display:inline}
form input[type=text]{width:40em;max-width:90%;font-family:ui-monospace,monospace}
.diff .add{background:#e6f4ea;color:#0b5323}.diff .del{background:#fde8ea;color:#8c0018}.diff .hunk{color:#1f45c4}
.diff .file{font-weight:700}
tr.differs td{background:#fff8e1}
table.compact td,table.compact th{padding:.15em .45em;white-space:nowrap;max-width:22em;overflow:hidden;text-overflow:ellipsis}
table.compact td.name{max-width:16em}table.compact td.badges{max-width:none;overflow:visible}
nav.pages{margin:.4em 0}ol.timeline{padding-left:1.2em}ol.timeline li{margin:.2em 0}ol.timeline li.refuse{background:#fde8ea}
.req{white-space:nowrap}table.facts th{width:9em}fieldset{border:1px solid var(--line);margin:.3em 0}form.filters{margin:.3em 0}
@media print{header,nav.crumbs,form,.noprint{display:none}main{max-width:none;padding:0}
body{background:#fff;font-size:11pt}.chart,svg,.card,tr{break-inside:avoid}h2{break-after:avoid}
pre{max-height:none;overflow:visible}.scroll{overflow:visible}a{color:inherit;text-decoration:none}
.digest{max-width:none;overflow:visible;white-space:normal;overflow-wrap:anywhere}
table{max-width:100%}td,th{overflow-wrap:anywhere}.id,.nowrap,.req{white-space:normal}.side{display:block}
table.compact td,table.compact th{white-space:normal;max-width:none;overflow:visible}svg{max-width:100%;height:auto}}
";

/// A link in the breadcrumb trail above a page's title.
pub(crate) struct Crumb {
    pub(crate) label: String,
    pub(crate) href: String,
}

pub(crate) fn crumb(label: impl Into<String>, href: impl Into<String>) -> Crumb {
    Crumb { label: label.into(), href: href.into() }
}

/// A whole HTML document with the stylesheet inline: the frame of both the served pages and
/// the audit report, which must stand alone.
pub(crate) fn document(title: &str, body: Markup) -> Markup {
    html! {
        (PreEscaped("<!doctype html>"))
        html lang="en" {
            head {
                meta charset="utf-8";
                title { (title) " · repro" }
                meta name="viewport" content="width=device-width,initial-scale=1";
                style { (PreEscaped(CSS)) }
            }
            body { (body) }
        }
    }
}

/// A served page: the header (and sign-out when a browser signed in), the breadcrumb trail
/// and the body.
pub(crate) fn page(title: &str, crumbs: &[Crumb], body: Markup) -> Html<String> {
    let csrf = SIGNED_IN.try_with(|csrf| csrf.clone()).ok();
    let frame = html! {
        header {
            b { "repro" }
            a href="/ui" { "Runs" }
            a href="/ui/models" { "Models" }
            @if let Some(csrf) = csrf {
                form method="post" action="/ui/logout" class="logout" {
                    input type="hidden" name="csrf" value=(csrf);
                    button type="submit" id="logout" { "Sign out" }
                }
            }
        }
        main {
            @if !crumbs.is_empty() {
                nav.crumbs aria-label="breadcrumb" {
                    @for c in crumbs { a href=(c.href) { (c.label) } " › " }
                    span { (title) }
                }
            }
            (body)
        }
        // MLflow's UI links are fragments (`/#/experiments/1/runs/ID`) that never reach the
        // server; `/` keeps them across its redirect and this script, allowed by the CSP as
        // 'self', sends them on. Every page reads fine without it.
        script src="/ui/static/links.js" defer {}
    };
    Html(document(title, frame).into_string())
}

/// Every error under `/ui` — an unknown path (the guard's refusals), an unknown run, bad
/// input — is this page: the usual header and stylesheet, the one-line message escaped, and
/// a way back, so a person who mistypes a URL is not handed the API's JSON.
pub(crate) fn error_page(status: StatusCode, title: &str, message: &str) -> Response {
    let body = html! {
        h1 { (title) }
        div.error #error-message { (message) }
        p { a #back href="/ui" { "Back to the runs table" } }
    };
    (status, page(title, &[], body)).into_response()
}

/// A failed call as a page, titled by its status (Not Found, Bad Request …).
pub(crate) fn api_error_page(e: ApiError) -> Response {
    error_page(e.status, e.status.canonical_reason().unwrap_or("Error"), &e.message)
}

/// The script behind the fragment redirect above, served as a file so the CSP needs no
/// `'unsafe-inline'` for scripts.
pub(crate) const LINKS_JS: &str = r#"(function(){
var h=location.hash,m;
if((m=/^#\/experiments\/[^\/]+\/runs\/([0-9A-Za-z_-]+)/.exec(h))){location.replace('/ui/runs/'+m[1]);return;}
if((m=/^#\/models\/([^\/]+)\/versions\/([0-9]+)/.exec(h))){location.replace('/ui/models/'+m[1]+'@'+m[2]);return;}
if((m=/^#\/models\/([^\/]+)\/?$/.exec(h))){location.replace('/ui/models/'+m[1]);return;}
if(/^#\/experiments\/[^\/]+/.test(h)&&location.pathname==='/ui'){location.replace('/ui');}
})();
"#;

// ---- pieces ---------------------------------------------------------------------------

/// The CSS class a status or verdict is shown in.
pub(crate) fn status_class(s: &str) -> &'static str {
    match s {
        "ok" | "finished" | "FINISHED" | "identical" | "equivalent" | "complete" => "ok",
        "warn" | "running" | "RUNNING" | "scheduled" | "SCHEDULED" => "warn",
        _ => "bad",
    }
}

/// A small coloured label (`class` is one of ok, warn, bad, info, muted).
pub(crate) fn badge(class: &str, text: &str, title: &str) -> Markup {
    html! { span class={ "badge " (class) } title=(title) { (text) } }
}

/// A run's 8-character id as a link that never wraps; the full id is its tooltip.
pub(crate) fn run_link(id: &RunId) -> Markup {
    html! { a.mono.id href={ "/ui/runs/" (id.as_str()) } title=(id.as_str()) { (id.short()) } }
}

/// A digest shown short, whole on hover and when printed or copied.
pub(crate) fn digest(d: Option<&Digest>) -> Markup {
    match d {
        Some(d) => html! { code.digest title=(d.as_str()) { (d.as_str()) } },
        None => dash(),
    }
}

pub(crate) fn dash() -> Markup {
    html! { span.muted { "—" } }
}

pub(crate) fn opt(s: Option<&str>) -> Markup {
    match s {
        Some(s) => html! { (s) },
        None => dash(),
    }
}

/// "1 point", "2 points".
pub(crate) fn count(n: usize, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

/// How long ago, in the largest unit that is at least 1: "12 s ago", "3 min ago", "5 h ago",
/// "2 d ago"; past a month, the date.
pub(crate) fn ago(then_ms: i64, now_ms: i64) -> String {
    let s = (now_ms - then_ms).max(0) / 1000;
    match s {
        0..=59 => format!("{s} s ago"),
        60..=3599 => format!("{} min ago", s / 60),
        3600..=86_399 => format!("{} h ago", s / 3600),
        86_400..=2_591_999 => format!("{} d ago", s / 86_400),
        _ => repro_store::rfc3339(then_ms).get(..10).unwrap_or_default().to_string(),
    }
}

/// A duration for people: "850 ms", "42 s", "3 min 5 s", "2 h 10 min".
pub(crate) fn duration(ms: i64) -> String {
    let ms = ms.max(0);
    match ms {
        0..=999 => format!("{ms} ms"),
        1000..=59_999 => format!("{:.1} s", ms as f64 / 1000.0).replace(".0 s", " s"),
        60_000..=3_599_999 => format!("{} min {} s", ms / 60_000, ms % 60_000 / 1000),
        _ => format!("{} h {} min", ms / 3_600_000, ms % 3_600_000 / 60_000),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates_escape_what_they_splice() {
        let evil = "<script>alert(\"x\")</script>&'";
        let out = html! { p title=(evil) { (evil) } }.into_string();
        assert!(!out.contains("<script>"), "{out}");
        assert!(out.contains("&lt;script&gt;"), "{out}");
    }

    #[test]
    fn times_and_durations_read_as_people_say_them() {
        assert_eq!(ago(0, 12_000), "12 s ago");
        assert_eq!(ago(0, 3 * 60_000), "3 min ago");
        assert_eq!(ago(0, 5 * 3_600_000), "5 h ago");
        assert_eq!(ago(0, 2 * 86_400_000), "2 d ago");
        assert_eq!(duration(850), "850 ms");
        assert_eq!(duration(42_000), "42 s");
        assert_eq!(duration(1_500), "1.5 s");
        assert_eq!(duration(185_000), "3 min 5 s");
        assert_eq!(count(1, "point", "points"), "1 point");
        assert_eq!(count(2, "file", "files"), "2 files");
    }
}
