//! One run's page: a verdict card first (audit n/13 with what fails, commit and dirty
//! state, the replay verdict, the model versions made from it), a failed run's stderr tail,
//! the lineage picture, then the content: metrics, params, code and its diff, environment
//! against the declared file, data, outputs and files, tags, logs, replays.

use axum::extract::State as AxState;
use axum::response::{IntoResponse, Redirect, Response};
use maud::{html, Markup, PreEscaped};
use repro_core::audit::{self, AuditReport, ItemStatus};
use repro_core::record::RunStatus;

use super::charts::{with_opts, ChartOpts};
use super::data::{load_run, RunData};
use super::layout::{badge, crumb, duration, page, run_link, status_class};
use super::lineage::lineage_svg;
use super::resolve_run;
use super::run_sections as sections;
use super::{api_error_page, enc, error_page, Params, Segment, S};

/// How many lines of a failed run's stderr lead its page.
const STDERR_LEAD: usize = 30;

/// `/ui/runs/RUN`: RUN is anything the CLI takes. A spec that is not the run's full id is
/// answered with a redirect to the canonical URL, so what is bookmarked or shared names
/// one run for good (`latest` and a stage move on).
pub(crate) async fn run_page(AxState(s): S, Segment(spec): Segment, Params(q): Params) -> Response {
    let opts = match ChartOpts::from_query(&q) {
        Ok(o) => o,
        Err(e) => return error_page(axum::http::StatusCode::BAD_REQUEST, "Bad Request", &e),
    };
    let wanted = spec.clone();
    let rid = match s.with_meta(move |m, _| resolve_run(m, &wanted)).await {
        Ok(r) => r,
        Err(e) => return api_error_page(e),
    };
    if rid.as_str() != spec {
        return Redirect::to(&with_opts(&format!("/ui/runs/{}", enc(rid.as_str())), &opts, &[])).into_response();
    }
    let data = match s.with_store(move |st| load_run(st, &rid)).await {
        Ok(d) => d,
        Err(e) => return api_error_page(e),
    };
    render(&data, &opts)
}

/// The name a run is shown by: its name, else what it is ("replay of 510ac05b"), else its
/// short id — never nothing.
pub(crate) fn display_name(data: &RunData) -> String {
    match (&data.run.name, &data.replay_of) {
        (Some(n), _) if !n.trim().is_empty() => n.clone(),
        (_, Some(of)) => format!("replay of {}", of.original.short()),
        _ => data.run.record.id.short().to_string(),
    }
}

fn render(data: &RunData, opts: &ChartOpts) -> Response {
    let r = &data.run.record;
    let name = display_name(data);
    let audit = audit_as_shown(data);
    let body = html! {
        h1 {
            span #run-name { (name) } " "
            (badge(status_class(r.status.as_str()), r.status.as_str(), "status"))
            " " code #run-id.id title="the run's full id" { (r.id.as_str()) }
        }
        (verdict_card(data, &audit))
        @if matches!(r.status, RunStatus::Failed | RunStatus::Killed | RunStatus::Interrupted) {
            (stderr_lead(data))
        }
        h2 #lineage-heading { "Lineage" }
        div.scroll { (lineage_svg(&data.run, &data.versions, &data.replays, data.captured, true)) }
        (sections::metrics(data, opts))
        (sections::params(data))
        @if data.captured {
            (sections::code(data))
            (sections::environment(data))
            (sections::data_inputs(data))
        } @else {
            (sections::not_captured())
        }
        (sections::outputs_and_files(data))
        (sections::tags(data))
        (audit_table(&audit))
        (sections::logs(data))
        (sections::replays(data))
        (sections::versions(data))
    };
    let crumbs = [crumb("Runs", "/ui")];
    page(&format!("Run {name}"), &crumbs, body).into_response()
}

/// How many audit items pass, of how many: "11/13".
pub(crate) fn audit_score(a: &AuditReport) -> (usize, usize) {
    (a.items.iter().filter(|i| i.status == ItemStatus::Ok).count(), a.items.len())
}

/// The items that do not pass, the missing ones first.
pub(crate) fn failing_first(a: &AuditReport) -> Vec<&audit::AuditItem> {
    let mut items: Vec<&audit::AuditItem> = a.items.iter().filter(|i| i.status != ItemStatus::Ok).collect();
    items.sort_by_key(|i| if i.status == ItemStatus::Missing { 0 } else { 1 });
    items
}

fn verdict_card(data: &RunData, audit: &AuditReport) -> Markup {
    let r = &data.run.record;
    let (ok, total) = audit_score(audit);
    let failing = failing_first(audit);
    let failed = matches!(r.status, RunStatus::Failed | RunStatus::Killed);
    let class = if failed || failing.iter().any(|i| i.status == ItemStatus::Missing) {
        "bad"
    } else if failing.is_empty() {
        "ok"
    } else {
        "warn"
    };
    let took = data.tracked.end_time.map(|end| duration(end - data.tracked.start_time));
    html! {
        section.card.(class) #verdict {
            table.facts {
                tr {
                    th { "Audit" }
                    td #verdict-audit {
                        (badge(if audit.complete { "ok" } else { "bad" }, &format!("{ok}/{total}"), "audit items that pass"))
                        @if audit.complete { " complete: the run can be rebuilt from what was recorded" }
                        @else { " incomplete: the run cannot be rebuilt as recorded" }
                        @if !failing.is_empty() {
                            ul #verdict-failing {
                                @for item in &failing {
                                    li data-item=(item.name) {
                                        (badge(status_class(item.status.as_str()), item.status.as_str(), "status")) " "
                                        code { (item.name) } ": " (item.detail)
                                        @if let Some(fix) = &item.fix { br; span.muted { "Fix: " } code.wrap { (fix) } }
                                    }
                                }
                            }
                        }
                    }
                }
                tr {
                    th { "Run" }
                    td {
                        (r.status.as_str())
                        @if let Some(code) = r.exit_code { " (exit " (code) ")" }
                        " · started " span title="UTC" { (r.started_at) }
                        @if let Some(t) = took { " · took " (t) }
                        @if data.captured { " · " (r.user) " @ " (r.host) }
                    }
                }
                tr {
                    th { "Code" }
                    td #verdict-code { (code_fact(data)) }
                }
                tr {
                    th { "Replay" }
                    td #verdict-replay { (replay_fact(data)) }
                }
                tr {
                    th { "Models" }
                    td #verdict-models {
                        @if data.versions.is_empty() { span.muted { "no model version was registered from this run" } }
                        @for v in &data.versions {
                            a href={ "/ui/models/" (enc(&v.reference())) } { (v.reference()) } " "
                            (badge(if v.stage.is_some() { "info" } else { "muted" }, v.stage.as_deref().unwrap_or("no stage"), "stage"))
                            " "
                        }
                    }
                }
            }
        }
    }
}

fn code_fact(data: &RunData) -> Markup {
    let c = &data.run.record.code;
    if !data.captured {
        return html! { span.muted.not-captured { (audit::NOT_CAPTURED) } };
    }
    html! {
        @match &c.commit {
            Some(commit) => {
                code title=(commit) { (commit.get(..12).unwrap_or(commit)) }
                @if let Some(b) = &c.branch { " on " (b) }
                " "
                @if c.dirty {
                    (badge("warn", "dirty", "uncommitted changes were present"))
                    @if c.diff.is_some() { " " a href="#code" { "diff stored" } } @else { " " span.bad { "diff not stored" } }
                } @else {
                    (badge("ok", "clean", "the working tree matched the commit"))
                }
            }
            None => span.bad { (c.error.as_deref().unwrap_or("no git commit recorded")) },
        }
    }
}

fn replay_fact(data: &RunData) -> Markup {
    if let Some(of) = &data.replay_of {
        return html! {
            "this run is a replay of " (run_link(&of.original)) ": "
            @match &of.row {
                Some(row) => {
                    span class=(status_class(row.verdict.as_str())) #replay-verdict { (row.verdict.as_str()) }
                    " · " a href={ "/ui/diff?a=" (enc(of.original.as_str())) "&b=" (enc(row.replay.as_str())) } { "diff against the original" }
                    @if !of.reasons.is_empty() {
                        ul #replay-reasons { @for reason in &of.reasons { li { (reason) } } }
                    }
                    @if !of.outputs.is_empty() {
                        table #replay-outputs {
                            tr { th { "Output" } th { "Verdict" } }
                            @for (path, verdict) in &of.outputs {
                                tr { td { (path) } td class=(status_class(verdict)) { (verdict) } }
                            }
                        }
                    }
                }
                None => span.warn #replay-verdict { "no verdict recorded (the replay is running, or stopped before comparing)" },
            }
        };
    }
    match data.replays.last() {
        Some(last) => html! {
            "replayed " (data.replays.len()) "×; latest " (run_link(&last.replay)) ": "
            span class=(status_class(last.verdict.as_str())) { (last.verdict.as_str()) }
        },
        None if data.captured => html! {
            span.muted { "never replayed · " } code { "repro replay " (data.run.record.id.short()) }
        },
        None => html! { span.muted { "cannot be replayed: nothing was captured to rebuild it from" } },
    }
}

fn stderr_lead(data: &RunData) -> Markup {
    let Some(text) = data.stderr.as_deref().filter(|t| !t.trim().is_empty()) else {
        return html! {};
    };
    let lines: Vec<&str> = text.lines().collect();
    let tail = lines[lines.len().saturating_sub(STDERR_LEAD)..].join("\n");
    html! {
        h2 #stderr-lead-heading { "Why it failed: the end of stderr" }
        pre #stderr-lead { (tail) }
    }
}

/// The audit as the page shows it (exec's audit already says "not captured" for a run a
/// tracking client created): a replay run's replay item says whose replay it is and its
/// verdict, not "never replayed".
pub(crate) fn audit_as_shown(data: &RunData) -> AuditReport {
    let mut report = data.audit.clone();
    for item in &mut report.items {
        if let (Some(of), true) = (&data.replay_of, item.name == "replay_verified" && data.replays.is_empty()) {
            let (status, verdict) = match &of.row {
                Some(row) if row.verdict.reproduced() => (ItemStatus::Ok, row.verdict.as_str()),
                Some(row) => (ItemStatus::Missing, row.verdict.as_str()),
                None => (ItemStatus::Warn, "no verdict recorded"),
            };
            item.status = status;
            item.detail = format!("this run is a replay of {}: {verdict}", of.original.short());
            item.fix = None;
        }
    }
    report.complete = audit::is_complete(&report.items, report.strict);
    report
}

/// Every audit item, failing first, with its fix: the run page's and the report's table.
pub(crate) fn audit_table(audit: &AuditReport) -> Markup {
    let mut items: Vec<&audit::AuditItem> = failing_first(audit);
    items.extend(audit.items.iter().filter(|i| i.status == ItemStatus::Ok));
    let (ok, total) = audit_score(audit);
    html! {
        h2 #audit { "Audit " span.muted { (ok) "/" (total) } }
        div.scroll {
            table #audit-items {
                tr { th { "Item" } th { "Status" } th { "Detail" } th { "Fix" } }
                @for item in items {
                    tr data-item=(item.name) {
                        td { code { (item.name) } }
                        td { (badge(status_class(item.status.as_str()), item.status.as_str(), "")) }
                        td { (item.detail) }
                        td { @if let Some(f) = &item.fix { code.wrap { (f) } } @else { (PreEscaped("")) } }
                    }
                }
            }
        }
    }
}
