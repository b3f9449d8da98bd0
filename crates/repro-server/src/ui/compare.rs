//! Runs side by side: the likely-causes diff of two runs.

use std::fmt::Write as _;

use axum::extract::State as AxState;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use maud::PreEscaped;
use repro_store::meta::StoredRun;

use super::data::resolve_run;
use super::layout::{opt_s, page, run_link_s};
use super::{api_error_page, error_page, esc, Params, S};
use crate::ApiError;
use repro_core::diff::RunDiff;
use repro_store::Store;

pub(crate) async fn diff_page(AxState(s): S, Params(q): Params) -> Response {
    let (Some(a), Some(b)) = (q.get("a").filter(|v| !v.trim().is_empty()), q.get("b").filter(|v| !v.trim().is_empty()))
    else {
        return error_page(StatusCode::BAD_REQUEST, "Diff", "Give two runs: /ui/diff?a=RUN&b=RUN (an id, a 4+ character id prefix, a run name, latest, or NAME@VERSION)");
    };
    let (a, b) = (a.clone(), b.clone());
    let data = match s.with_store(move |st| load_diff(st, &a, &b)).await {
        Ok(d) => d,
        Err(e) => return api_error_page(e),
    };
    let name = |r: &StoredRun| r.name.as_deref().map(|n| format!(" ({})", esc(n))).unwrap_or_default();
    let mut body = format!(
        "<h1>Diff</h1><table><tr><th></th><th>Run</th><th>Started</th><th>Status</th></tr>\
         <tr><th>A</th><td>{}{}</td><td>{}</td><td>{}</td></tr><tr><th>B</th><td>{}{}</td><td>{}</td><td>{}</td></tr></table>",
        run_link_s(data.a.record.id.as_str()),
        name(&data.a),
        esc(&data.a.record.started_at),
        esc(data.a.record.status.as_str()),
        run_link_s(data.b.record.id.as_str()),
        name(&data.b),
        esc(&data.b.record.started_at),
        esc(data.b.record.status.as_str()),
    );
    let d = &data.diff;
    let _ = write!(
        body,
        "<p>Outputs {}</p><h2 id=\"causes\">Likely causes</h2>",
        if d.outputs_differ { "<span class=\"warn\">differ</span>" } else { "<span class=\"ok\">are the same</span>" }
    );
    if d.causes.is_empty() {
        body.push_str("<p class=\"muted\">nothing that explains a difference</p>");
    } else {
        body.push_str("<ol id=\"causes-list\">");
        for c in &d.causes {
            let kind =
                serde_json::to_value(c.kind).ok().and_then(|v| v.as_str().map(str::to_string)).unwrap_or_default();
            let _ = write!(body, "<li><b>{}</b> <span class=\"muted\">[{}]</span>", esc(&c.summary), esc(&kind));
            if !c.evidence.is_empty() {
                body.push_str("<ul>");
                for e in &c.evidence {
                    let _ = write!(body, "<li>{}</li>", esc(e));
                }
                body.push_str("</ul>");
            }
            body.push_str("</li>");
        }
        body.push_str("</ol>");
    }
    body.push_str("<h2>Sections</h2>");
    for sec in &d.sections {
        let _ = write!(
            body,
            "<h3 id=\"section-{0}\">{0} <span class=\"{1}\">{2}</span></h3>",
            esc(&sec.name),
            if sec.same { "ok" } else { "warn" },
            if sec.same { "same" } else { "differs" }
        );
        if sec.changes.is_empty() {
            continue;
        }
        body.push_str("<table class=\"side-by-side\"><tr><th>Field</th><th>A</th><th>B</th><th>Note</th></tr>");
        for c in &sec.changes {
            let _ = write!(
                body,
                "<tr><td><code>{}</code></td><td>{}</td><td>{}</td><td>{}</td></tr>",
                esc(&c.field),
                opt_s(c.a.as_deref()),
                opt_s(c.b.as_deref()),
                opt_s(c.note.as_deref())
            );
        }
        body.push_str("</table>");
    }
    page("Diff", &[], PreEscaped(body)).into_response()
}

// ---- diff -------------------------------------------------------------------------------

pub(crate) struct DiffData {
    pub(crate) a: StoredRun,
    pub(crate) b: StoredRun,
    pub(crate) diff: RunDiff,
}

/// `a` and `b` are RUN specs, as the CLI's `repro diff A B` takes them.
pub(crate) fn load_diff(st: &mut Store, a: &str, b: &str) -> Result<DiffData, ApiError> {
    let (a, b) = (resolve_run(&st.meta, a)?, resolve_run(&st.meta, b)?);
    let a = st.meta.runs().get(&a)?;
    let b = st.meta.runs().get(&b)?;
    let diff = repro_exec::diff::diff_runs(st, &a, &b)?;
    Ok(DiffData { a, b, diff })
}
