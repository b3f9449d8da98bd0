//! The audit report of a model version: one self-contained HTML file (the stylesheet
//! inline, pictures as inline SVG, no script, no link that needs a server) that an auditor
//! reads without repro and prints to PDF. `repro report NAME@V -o report.html` writes it;
//! `/ui/models/NAME@V/report` serves the same bytes but for the time it was made.

use axum::extract::State as AxState;
use axum::response::{IntoResponse, Response};
use maud::{html, Markup};
use repro_core::audit::ItemStatus;
use repro_store::Store;

use super::charts::{metric_section, ChartOpts, Series};
use super::data::{load_run, RunData};
use super::layout::{badge, document};
use super::lineage::lineage_svg;
use super::models::{load_version, version_body, VersionData};
use super::run_page::{audit_as_shown, audit_table, display_name};
use super::run_sections;
use super::{api_error_page, Segment, S};
use crate::ApiError;

/// The report of `spec` (`NAME@V`, `NAME@STAGE`) as a whole HTML document.
pub(crate) fn render(st: &mut Store, spec: &str) -> Result<String, ApiError> {
    let version = load_version(st, spec)?;
    let run = match version.version.run.clone() {
        Some(id) => Some(load_run(st, &id)?),
        None => None,
    };
    let store = st.root().display().to_string();
    Ok(report(&version, run.as_ref(), &store).into_string())
}

pub(crate) async fn report_page(AxState(s): S, Segment(spec): Segment) -> Response {
    match s.with_store(move |st| render(st, &spec)).await {
        Ok(html) => axum::response::Html(html).into_response(),
        Err(e) => api_error_page(e),
    }
}

fn report(v: &VersionData, run: Option<&RunData>, store: &str) -> Markup {
    let version = &v.version;
    let now = repro_store::rfc3339(
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64),
    );
    let audit = run.map(audit_as_shown);
    let failing = audit.as_ref().map_or(0, |a| a.items.iter().filter(|i| i.status == ItemStatus::Missing).count());
    let verdict_ok = v.verify.ok && failing == 0;
    let title = format!("Audit report: {}", version.reference());
    let body = html! {
        main.report {
            h1 { "Audit report: " (version.reference()) }
            p.muted {
                "Made " (now) " by repro " (env!("CARGO_PKG_VERSION")) " from the store at " code { (store) } ". "
                "Everything below was read from that store and checked when the report was made."
            }
            section.card.(if verdict_ok { "ok" } else { "bad" }) #summary {
                h2 { "Summary" }
                ul {
                    li { "Registry checks (" code { "repro model verify" } "): "
                        @if v.verify.ok { span.ok { "all pass" } } @else { span.bad { "FAIL" } " — see Verification below" } }
                    @if let Some(a) = &audit {
                        @let ok = a.items.iter().filter(|i| i.status == ItemStatus::Ok).count();
                        li { "Training run audit: " (badge(if a.complete { "ok" } else { "bad" }, &format!("{ok}/{}", a.items.len()), ""))
                            @if a.complete { " complete" } @else { " incomplete: " (failing) " item(s) missing" } }
                    }
                    li { "Stage: " (version.stage.as_deref().unwrap_or("none")) }
                    li { "Replays: " @match v.replays.last() {
                        Some(r) => { (v.replays.len()) ", latest " (r.verdict.as_str()) }
                        None => span.warn { "never replayed" },
                    } }
                }
            }
            @if let Some(run) = run {
                h2 #lineage { "Lineage" }
                (lineage_svg(&run.run, &run.versions, &run.replays, run.captured, false))
                p.muted { "Training run " code { (run.run.record.id.as_str()) } " (" (display_name(run)) "), "
                    (run.run.record.status.as_str()) ", started " (run.run.record.started_at) "." }
            }
            @if let Some(a) = &audit { (audit_table(a)) }
            (version_body(v, false))
            @if let Some(run) = run {
                @if run.captured {
                    (run_sections::environment(run))
                    (run_sections::code(run))
                    (run_sections::data_inputs(run))
                } @else {
                    (run_sections::not_captured())
                }
                (run_sections::params(run))
                h2 #metrics { "Metrics" }
                (metric_section(&[Series { label: display_name(run), href: None, points: &run.metrics }], &ChartOpts::default()))
            }
            h2 #limits { "What this report cannot vouch for" }
            ul #cannot-vouch {
                li { "The report itself is not signed. Its facts can be checked again with "
                    code { "repro model verify " (version.reference()) } " and " code { "repro audit" } " on the store, or from an offline "
                    code { "repro bundle export" } "." }
                li { "That the store was complete: a store can only show what was recorded in it. " code { "repro fsck" }
                    " re-hashes every object and replays the event and facts journals." }
                @if version.signatures.is_empty() { li { "Who registered the version: it carries no signature, so the registering identity is the store's word." } }
                @if v.replays.is_empty() { li { "That the training reproduces: no replay of the run was recorded." } }
                @if let Some(run) = run {
                    @if !run.captured { li { "How the model was trained: the run was created through the MLflow API, so no code, environment, data or seed was captured." } }
                    @if run.run.record.code.dirty { li { "The exact code beyond the commit and stored diff: the tree was dirty when it ran." } }
                    @for i in run.run.record.inputs.iter().filter(|i| i.reference) {
                        li { "The bytes of " code { (i.path) } ": recorded by reference (hashed, not stored)." }
                    }
                }
                @if run.is_none() { li { "Anything about training: the version is external, registered from files without a run." } }
                li { "Anything that happened outside the recorded process: hardware faults, network data the script fetched without declaring it." }
            }
        }
    };
    document(&title, body)
}
