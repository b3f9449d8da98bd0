//! The web UI: server-rendered HTML pages over the same store the API serves — the runs
//! table, a run's lineage, audit, metric charts and logs, the diff of two runs, and the
//! model registry. No JavaScript and no external assets: one small stylesheet in the head,
//! charts as inline SVG. Every value shown is HTML-escaped (names, params, tags and logs are
//! user input).

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::extract::{FromRequestParts, Path, Query, State as AxState};
use axum::http::request::Parts;
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Redirect, Response};
use repro_core::Digest;

use crate::routes::{Role, Routes};
use crate::{ApiError, State};

mod data;
mod pages;
mod run_page;

pub(crate) type S = AxState<Arc<State>>;

/// A page's query string. axum's own `Query` answers a malformed one (bad percent-encoding,
/// not UTF-8) in plain text; a page answers with an HTML 400 instead.
pub(crate) struct Params(pub(crate) BTreeMap<String, String>);

impl<St: Send + Sync> FromRequestParts<St> for Params {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &St) -> Result<Self, Response> {
        match Query::<BTreeMap<String, String>>::from_request_parts(parts, state).await {
            Ok(Query(q)) => Ok(Params(q)),
            Err(e) => Err(error_page(StatusCode::BAD_REQUEST, "Bad Request", &e.body_text())),
        }
    }
}

/// One path segment (`{id}`), for the same reason as `Params`.
pub(crate) struct Segment(pub(crate) String);

impl<St: Send + Sync> FromRequestParts<St> for Segment {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &St) -> Result<Self, Response> {
        match Path::<String>::from_request_parts(parts, state).await {
            Ok(Path(p)) => Ok(Segment(p)),
            Err(e) => Err(error_page(StatusCode::BAD_REQUEST, "Bad Request", &e.body_text())),
        }
    }
}

/// How many param and metric keys the runs table shows as columns.
pub(crate) const MAX_KEY_COLUMNS: usize = 6;

// Set (by the auth check) while a page is made for a browser signed in with the login
// form, so the page offers to sign out: the sign-out form's CSRF token.
tokio::task_local! {
    pub(crate) static SIGNED_IN: String;
}

pub(crate) fn routes() -> Routes {
    use axum::http::Method as M;
    use Role::Read;
    Routes::new()
        .limit(Some(crate::request::MAX_FORM))
        .page(M::GET, "/", Read, root)
        .page(M::GET, "/ui", Read, pages::runs_page)
        .page(M::GET, "/ui/", Read, root)
        .page(M::GET, "/ui/runs/{id}", Read, run_page::run_page)
        .page(M::GET, "/ui/diff", Read, pages::diff_page)
        .page(M::GET, "/ui/models", Read, pages::models_page)
}

/// `/` and `/ui/` are the runs table.
pub(crate) async fn root() -> Redirect {
    Redirect::to("/ui")
}

// ---- HTML helpers -----------------------------------------------------------------------

/// Escapes text for HTML element content and quoted attribute values.
pub(crate) fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// Percent-encodes a query-string component.
pub(crate) fn enc(s: &str) -> String {
    crate::request::encode_component(s)
}

const CSS: &str = "
body{font:14px/1.45 system-ui,-apple-system,'Segoe UI',sans-serif;margin:0;color:#1d2330;background:#f6f7f9}
header{background:#1d2330;color:#fff;padding:.6em 1.2em;display:flex;gap:1.5em;align-items:center}
header a{color:#cfd8ff;text-decoration:none}header b{color:#fff;font-size:1.1em}.logout{margin-left:auto}
main{padding:1em 1.5em;max-width:1400px}
h1{font-size:1.35em;margin:.3em 0 .6em}h2{font-size:1.1em;margin:1.4em 0 .4em;border-bottom:1px solid #d8dce3}
table{border-collapse:collapse;background:#fff;margin:.3em 0 1em}
th,td{border:1px solid #d8dce3;padding:.25em .6em;text-align:left;vertical-align:top}
th{background:#eef0f4}th a{color:inherit}
code,.mono{font-family:ui-monospace,Menlo,Consolas,monospace;font-size:.92em;word-break:break-all}
pre{background:#fff;border:1px solid #d8dce3;padding:.6em;overflow:auto;max-height:30em;white-space:pre-wrap}
.ok{color:#116b2e;font-weight:600}.warn{color:#8a5a00;font-weight:600}.missing,.bad{color:#b00020;font-weight:600}
.error{background:#fde8ea;border:1px solid #e6a1aa;padding:.6em;margin:.6em 0}
.muted{color:#687083}.charts{display:flex;flex-wrap:wrap;gap:1em}
.chart{background:#fff;border:1px solid #d8dce3;padding:.4em}
.side{display:grid;grid-template-columns:1fr 1fr;gap:1em}
form input[type=text]{width:40em;max-width:90%;font-family:ui-monospace,monospace}
";

pub(crate) fn page(title: &str, body: &str) -> Html<String> {
    let logout = match SIGNED_IN.try_with(|csrf| csrf.clone()) {
        Ok(csrf) => format!(
            "<form method=\"post\" action=\"/ui/logout\" class=\"logout\"><input type=\"hidden\" name=\"csrf\" value=\"{}\">\
             <button type=\"submit\" id=\"logout\">Sign out</button></form>",
            esc(&csrf)
        ),
        Err(_) => String::new(),
    };
    Html(format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{} · repro</title>\
         <meta name=\"viewport\" content=\"width=device-width,initial-scale=1\"><style>{CSS}</style></head>\
         <body><header><b>repro</b><a href=\"/ui\">Runs</a><a href=\"/ui/models\">Models</a>{logout}</header>\
         <main>{body}</main></body></html>\n",
        esc(title)
    ))
}

/// Every error under `/ui` — an unknown path (the guard's refusals), an unknown run, bad
/// input — is this page: the usual header and stylesheet, the one-line message escaped, and
/// a way back, so a person who mistypes a URL is not handed the API's JSON.
pub(crate) fn error_page(status: StatusCode, title: &str, message: &str) -> Response {
    let body = format!(
        "<h1>{}</h1><div class=\"error\" id=\"error-message\">{}</div>\
         <p><a href=\"/ui\" id=\"back\">Back to the runs table</a></p>",
        esc(title),
        esc(message)
    );
    (status, page(title, &body)).into_response()
}

/// A failed call as a page, titled by its status (Not Found, Bad Request …).
pub(crate) fn api_error_page(e: ApiError) -> Response {
    error_page(e.status, e.status.canonical_reason().unwrap_or("Error"), &e.message)
}

pub(crate) fn status_class(s: &str) -> &'static str {
    match s {
        "ok" | "finished" | "FINISHED" | "identical" | "equivalent" => "ok",
        "warn" | "running" | "RUNNING" => "warn",
        _ => "bad",
    }
}

pub(crate) fn digest_cell(d: Option<&Digest>) -> String {
    match d {
        Some(d) => format!("<code title=\"{0}\">{0}</code>", esc(d.as_str())),
        None => "<span class=\"muted\">—</span>".into(),
    }
}

pub(crate) fn opt(s: Option<&str>) -> String {
    match s {
        Some(s) => esc(s),
        None => "<span class=\"muted\">—</span>".into(),
    }
}

pub(crate) fn run_link(id: &str) -> String {
    format!("<a class=\"mono\" href=\"/ui/runs/{}\">{}</a>", enc(id), esc(id))
}

pub(crate) fn fmt_num(v: f64) -> String {
    if v.is_finite() && v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{v:.0}")
    } else if v.is_finite() {
        let s = format!("{v:.6}");
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        format!("{v}")
    }
}

/// A param value as text: strings bare, anything else as JSON.
pub(crate) fn param_text(v: &serde_json::Value) -> String {
    v.as_str().map(str::to_string).unwrap_or_else(|| v.to_string())
}

#[cfg(test)]
mod tests {
    use super::run_page::svg_chart;
    use super::*;

    #[test]
    fn escapes_everything_html_cares_about() {
        assert_eq!(
            esc("<script>alert(\"x\")</script>&'"),
            "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;&amp;&#39;"
        );
    }

    #[test]
    fn query_components_are_percent_encoded() {
        assert_eq!(enc("metrics.rmse ASC"), "metrics.rmse%20ASC");
        assert_eq!(enc("a&b=<c>"), "a%26b%3D%3Cc%3E");
    }

    #[test]
    fn charts_are_svg_and_survive_one_point_and_none() {
        assert!(svg_chart("rmse", &[(0, 1.0)]).starts_with("<svg"));
        assert!(svg_chart("rmse", &[]).contains("no finite values"));
        let two = svg_chart("<k>", &[(0, 1.0), (10, 0.5)]);
        assert!(two.contains("<polyline") && two.contains("&lt;k&gt;") && !two.contains("<k>"));
    }
}
