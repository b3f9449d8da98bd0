//! The runs table.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use axum::extract::State as AxState;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use maud::PreEscaped;
use repro_core::search;
use repro_store::Metadata;

use super::layout::{opt_s, page, run_link_s, status_class};
use super::{api_error_page, enc, esc, fmt_num, Params, MAX_KEY_COLUMNS, S};
use crate::ApiError;
use repro_store::search::{ParamSource, RunQuery};
use repro_store::tracking::TrackedRun;

/// How many runs the runs table shows at most (the first, in the chosen order); the count
/// above it says how many matched.
const MAX_TABLE_ROWS: usize = 1000;

// ---- runs table -------------------------------------------------------------------------

pub(crate) async fn runs_page(AxState(s): S, Params(q): Params) -> Response {
    let filter = q.get("filter").cloned().unwrap_or_default();
    let order = q.get("order").cloned().unwrap_or_default();
    let mut problems = Vec::new();
    let clauses = search::parse_filter(&filter).unwrap_or_else(|e| {
        problems.push(format!("Bad filter: {e}"));
        Vec::new()
    });
    let order_items: Vec<String> = if order.trim().is_empty() { Vec::new() } else { vec![order.clone()] };
    let order_by = search::parse_order_by(&order_items).unwrap_or_else(|e| {
        problems.push(format!("Bad order: {e}"));
        Vec::new()
    });
    let searched = problems.is_empty();
    let loaded = s.with_meta(move |m, _| load_runs(m, &clauses, &order_by, searched)).await;
    let RunsData { runs, matched, total, experiments } = match loaded {
        Ok(x) => x,
        Err(e) => return api_error_page(e),
    };
    let metrics: Vec<BTreeMap<&str, f64>> =
        runs.iter().map(|r| r.metrics.iter().map(|m| (m.key.as_str(), m.value)).collect()).collect();
    // The columns: the most common param and metric keys among the shown runs.
    let top_keys = |keys: &mut dyn Iterator<Item = &String>| -> Vec<String> {
        let mut count: BTreeMap<&String, usize> = BTreeMap::new();
        for k in keys {
            *count.entry(k).or_default() += 1;
        }
        let mut keys: Vec<(&String, usize)> = count.into_iter().collect();
        keys.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
        let mut out: Vec<String> = keys.into_iter().take(MAX_KEY_COLUMNS).map(|(k, _)| k.clone()).collect();
        out.sort();
        out
    };
    let param_keys = top_keys(&mut runs.iter().flat_map(|r| r.params.keys()));
    let metric_keys = top_keys(&mut runs.iter().flat_map(|r| r.metrics.iter().map(|m| &m.key)));

    let sort_header = |label: &str, key: &str| -> String {
        let asc = format!("{key} ASC");
        let next = if order.trim() == asc { format!("{key} DESC") } else { asc };
        let arrow = if order.trim().eq_ignore_ascii_case(&format!("{key} ASC")) {
            " ▲"
        } else if order.trim().eq_ignore_ascii_case(&format!("{key} DESC")) {
            " ▼"
        } else {
            ""
        };
        format!("<th><a href=\"/ui?filter={}&amp;order={}\">{}{arrow}</a></th>", enc(&filter), enc(&next), esc(label))
    };
    let quoted = |k: &str| {
        if k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            k.to_string()
        } else {
            format!("`{k}`")
        }
    };

    let mut body = String::from("<h1>Runs</h1>");
    let _ = write!(
        body,
        "<form method=\"get\" action=\"/ui\"><label>Filter <input type=\"text\" name=\"filter\" value=\"{}\" \
         placeholder=\"metrics.rmse &lt; 1 and params.model.max_depth = '6'\"></label> \
         <input type=\"hidden\" name=\"order\" value=\"{}\"><button type=\"submit\">Search</button> \
         <a href=\"/ui\">clear</a></form>",
        esc(&filter),
        esc(&order)
    );
    for p in &problems {
        let _ = write!(body, "<div class=\"error\" id=\"filter-error\">{}</div>", esc(p));
    }
    let shown = if matched > runs.len() { format!(" (the first {} shown)", runs.len()) } else { String::new() };
    let _ = write!(body, "<p class=\"muted\">{matched} of {total} runs{shown}</p>");
    body.push_str("<table id=\"runs\"><thead><tr><th>Run</th>");
    body.push_str(&sort_header("Name", "attributes.run_name"));
    body.push_str(&sort_header("Status", "attributes.status"));
    body.push_str("<th>Experiment</th>");
    body.push_str(&sort_header("Started", "attributes.start_time"));
    for k in &param_keys {
        body.push_str(&sort_header(&format!("param {k}"), &format!("params.{}", quoted(k))));
    }
    for k in &metric_keys {
        body.push_str(&sort_header(&format!("metric {k}"), &format!("metrics.{}", quoted(k))));
    }
    body.push_str("</tr></thead><tbody>");
    for (r, metrics) in runs.iter().zip(&metrics) {
        let _ = write!(
            body,
            "<tr><td>{}</td><td>{}</td><td class=\"{}\">{}</td><td>{}</td><td>{}</td>",
            run_link_s(r.run_id.as_str()),
            esc(&r.run_name),
            status_class(r.status),
            esc(r.status),
            opt_s(experiments.get(&r.experiment_id).map(String::as_str)),
            esc(&repro_store::rfc3339(r.start_time)),
        );
        for k in &param_keys {
            let _ = write!(body, "<td>{}</td>", opt_s(r.params.get(k).map(String::as_str)));
        }
        for k in &metric_keys {
            let _ = write!(body, "<td>{}</td>", opt_s(metrics.get(k.as_str()).map(|v| fmt_num(*v)).as_deref()));
        }
        body.push_str("</tr>");
    }
    body.push_str("</tbody></table>");
    if let [a, b, ..] = runs.as_slice() {
        let _ = write!(
            body,
            "<p><a href=\"/ui/diff?a={}&amp;b={}\">Diff the first two runs shown</a></p>",
            enc(a.run_id.as_str()),
            enc(b.run_id.as_str())
        );
    }
    let status = if problems.is_empty() { StatusCode::OK } else { StatusCode::BAD_REQUEST };
    (status, page("Runs", &[], PreEscaped(body))).into_response()
}

// ---- runs table -------------------------------------------------------------------------

/// The runs table: the active runs of every experiment that match (at most
/// `MAX_TABLE_ROWS`), how many matched, how many there are, and the experiments' names.
pub(crate) struct RunsData {
    pub(crate) runs: Vec<TrackedRun>,
    pub(crate) matched: usize,
    pub(crate) total: usize,
    pub(crate) experiments: BTreeMap<i64, String>,
}

/// `searched` is false when the filter or order did not parse: then nothing matches.
pub(crate) fn load_runs(
    m: &mut Metadata,
    clauses: &[search::Clause],
    order_by: &[search::OrderBy],
    searched: bool,
) -> Result<RunsData, ApiError> {
    let experiments: BTreeMap<i64, String> =
        m.tracking().list_experiments()?.into_iter().map(|e| (e.experiment_id, e.name)).collect();
    // Experiment 0 holds the runs `repro run` captured, whether or not it has a row.
    let ids: Vec<i64> = std::iter::once(0).chain(experiments.keys().copied().filter(|k| *k != 0)).collect();
    // A running captured run's params are in its record, not yet in the tracking
    // tables: show (and filter and sort on) them too.
    let all = RunQuery {
        experiments: &ids,
        stages: &["active"],
        clauses: &[],
        order: &[],
        offset: 0,
        limit: None,
        params: ParamSource::WithRecord,
    };
    let total = m.tracking().count_runs(&all)?;
    let (runs, matched) = if searched {
        let q = RunQuery { clauses, order: order_by, limit: Some(MAX_TABLE_ROWS), ..all };
        (m.tracking().search_runs(&q)?, m.tracking().count_runs(&q)?)
    } else {
        (Vec::new(), 0)
    };
    Ok(RunsData { runs, matched, total, experiments })
}
