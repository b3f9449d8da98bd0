//! Runs side by side: `/ui/compare?runs=A,B,C` (any number, from the runs table's tick
//! boxes or a shared link) with every metric overlaid, the params grid with differences
//! first, parallel coordinates of params against a chosen metric and the pair diffs; and
//! `/ui/diff?a=&b=`, the likely-causes diff of two runs.

use std::collections::{BTreeMap, BTreeSet};

use axum::extract::State as AxState;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use maud::{html, Markup};
use repro_core::diff::RunDiff;
use repro_core::metrics::MetricPoint;
use repro_store::meta::StoredRun;
use repro_store::Store;

use super::charts::{chart_controls, colour, metric_section, ChartOpts, Series};
use super::layout::{badge, crumb, dash, opt, page, run_link, status_class};
use super::resolve_run;
use super::{api_error_page, enc, error_page, fmt_num, param_text, Pairs, Params, S};
use crate::ApiError;

/// More runs than this is not a comparison a person can read.
const MAX_COMPARE: usize = 50;

// ---- compare ----------------------------------------------------------------------------

/// One run of a comparison.
struct Compared {
    run: StoredRun,
    label: String,
    params: BTreeMap<String, String>,
    metrics: Vec<MetricPoint>,
}

pub(crate) async fn compare_page(AxState(s): S, Pairs(pairs): Pairs) -> Response {
    let bad = |m: String| error_page(StatusCode::BAD_REQUEST, "Compare", &m);
    let specs: Vec<String> = pairs
        .iter()
        .filter(|(k, _)| k == "runs")
        .flat_map(|(_, v)| v.split(','))
        .map(|v| v.trim().to_string())
        .filter(|v| !v.is_empty())
        .collect();
    if specs.len() < 2 {
        return bad("Give two or more runs: /ui/compare?runs=RUN,RUN,… (ids, 4+ character prefixes, names, latest, \
                    NAME@V), or tick runs in the runs table and press Compare selected."
            .into());
    }
    if specs.len() > MAX_COMPARE {
        return bad(format!("{} runs given; compare at most {MAX_COMPARE} at a time.", specs.len()));
    }
    let q: BTreeMap<String, String> = pairs.iter().cloned().collect();
    let opts = match ChartOpts::from_query(&q) {
        Ok(o) => o,
        Err(e) => return bad(e),
    };
    let loaded = s
        .with_store(move |st| {
            let mut out: Vec<Compared> = Vec::new();
            for spec in &specs {
                let id = resolve_run(&st.meta, spec)?;
                if out.iter().any(|c| c.run.record.id == id) {
                    continue;
                }
                let run = st.meta.runs().get(&id)?;
                let tracked = st.meta.tracking().get_tracked_run(id.as_str())?;
                let mut params: BTreeMap<String, String> =
                    run.record.params.values.iter().map(|(k, v)| (k.clone(), param_text(v))).collect();
                for (k, v) in &tracked.params {
                    params.entry(k.clone()).or_insert_with(|| v.clone());
                }
                let metrics = st.meta.runs().metrics(&id)?;
                let label = run.name.clone().filter(|n| !n.trim().is_empty()).unwrap_or_else(|| id.short().to_string());
                out.push(Compared { run, label, params, metrics });
            }
            Ok(out)
        })
        .await;
    let runs = match loaded {
        Ok(r) => r,
        Err(e) => return api_error_page(e),
    };
    let body =
        render_compare(&runs, &opts, q.get("metric").map(String::as_str), q.get("diff_only").is_some_and(|v| v == "1"));
    page("Compare", &[crumb("Runs", "/ui")], body).into_response()
}

fn render_compare(runs: &[Compared], opts: &ChartOpts, metric: Option<&str>, diff_only: bool) -> Markup {
    let ids: Vec<&str> = runs.iter().map(|c| c.run.record.id.as_str()).collect();
    let joined = ids.join(",");
    let series: Vec<Series> = runs
        .iter()
        .map(|c| Series {
            label: c.label.clone(),
            href: Some(format!("/ui/runs/{}", c.run.record.id.as_str())),
            points: &c.metrics,
        })
        .collect();
    let keys: BTreeSet<&String> = runs.iter().flat_map(|c| c.params.keys()).collect();
    let differs = |k: &String| {
        let first = runs[0].params.get(k);
        runs.iter().any(|c| c.params.get(k) != first)
    };
    let (mut rows, same): (Vec<&String>, Vec<&String>) = keys.iter().copied().partition(|k| differs(k));
    let ndiff = rows.len();
    if !diff_only {
        rows.extend(same);
    }
    // The metric the parallel coordinates end in: asked for, else the first every run has.
    let metric_keys: BTreeSet<&str> = runs.iter().flat_map(|c| c.metrics.iter().map(|m| m.key.as_str())).collect();
    let common = metric_keys.iter().copied().find(|k| runs.iter().all(|c| c.metrics.iter().any(|m| m.key == *k)));
    let chosen = metric.filter(|m| metric_keys.contains(m)).or(common);
    html! {
        h1 { "Compare " (runs.len()) " runs" }
        p.muted { "Share this page: " code.wrap { "/ui/compare?runs=" (joined) } }
        div.scroll {
            table #compare-runs {
                tr { th {} th { "Run" } th { "Id" } th { "Status" } th { "Started" } th { "Diff against the first" } }
                @for (i, c) in runs.iter().enumerate() {
                    tr {
                        td { span.swatch style={ "background:" (colour(i)) } {} }
                        td { a href={ "/ui/runs/" (c.run.record.id.as_str()) } { (c.label) } }
                        td { (run_link(&c.run.record.id)) }
                        td { (badge(status_class(c.run.record.status.as_str()), c.run.record.status.as_str(), "")) }
                        td.nowrap { (c.run.record.started_at) }
                        td { @if i > 0 { a.pair-diff href={ "/ui/diff?a=" (enc(ids[0])) "&b=" (enc(ids[i])) } { "likely causes" } } @else { (dash()) } }
                    }
                }
            }
        }
        @if runs.len() > 2 {
            form.inline method="get" action="/ui/diff" #pair-form {
                "Likely causes between "
                select name="a" { @for (i, c) in runs.iter().enumerate() { option value=(ids[i]) { (c.label) " " (c.run.record.id.short()) } } }
                " and "
                select name="b" { @for (i, c) in runs.iter().enumerate() { option value=(ids[i]) selected[i == 1] { (c.label) " " (c.run.record.id.short()) } } }
                " " button type="submit" { "Diff" }
            }
        }
        h2 #params { "Params " span.muted { (ndiff) " of " (keys.len()) " differ" } }
        p { @if diff_only {
                a href={ "/ui/compare?runs=" (enc(&joined)) } { "show all params" }
            } @else {
                a href={ "/ui/compare?runs=" (enc(&joined)) "&diff_only=1" } { "only the params that differ" }
            } }
        div.scroll {
            table #params-grid {
                tr { th { "Param" } @for c in runs { th { (c.label) } } }
                @for k in &rows {
                    tr class=[differs(k).then_some("differs")] {
                        td { code { (k) } }
                        @for c in runs { td { (opt(c.params.get(*k).map(String::as_str))) } }
                    }
                }
            }
        }
        h2 #parallel { "Params against a metric" }
        @if metric_keys.is_empty() {
            p.muted { "no metrics to compare" }
        } @else {
            form.inline method="get" action="/ui/compare" {
                input type="hidden" name="runs" value=(joined);
                label { "Metric " select name="metric" { @for k in &metric_keys { option value=(k) selected[Some(*k) == chosen] { (k) } } } }
                " " button type="submit" { "Show" }
            }
            @if let Some(m) = chosen { (parallel(runs, &rows_for_axes(runs), m)) }
        }
        h2 #metrics { "Metrics" }
        (chart_controls(opts, "/ui/compare", &[("runs", &joined)]))
        (metric_section(&series, opts))
    }
}

/// The params that vary (a constant axis says nothing), at most 8.
fn rows_for_axes(runs: &[Compared]) -> Vec<String> {
    let keys: BTreeSet<&String> = runs.iter().flat_map(|c| c.params.keys()).collect();
    keys.into_iter()
        .filter(|k| {
            let first = runs[0].params.get(*k);
            runs.iter().any(|c| c.params.get(*k) != first)
        })
        .take(8)
        .cloned()
        .collect()
}

/// Parallel coordinates: one vertical axis per varying param and one for `metric` (last
/// value), one polyline per run in its chart colour. Numeric axes are scaled; any other
/// axis places its values in sorted order.
fn parallel(runs: &[Compared], params: &[String], metric: &str) -> Markup {
    const W: f64 = 900.0;
    const H: f64 = 260.0;
    const TOP: f64 = 28.0;
    const BOTTOM: f64 = 24.0;
    let last = |c: &Compared| {
        c.metrics
            .iter()
            .filter(|p| p.key == metric && p.value.is_finite())
            .max_by_key(|p| (p.step, p.timestamp_ms))
            .map(|p| p.value)
    };
    // Each axis: (label, per run a position in [0, 1] or none, tick texts at 0 and 1).
    let mut axes: Vec<(String, Vec<Option<f64>>, String, String)> = Vec::new();
    for k in params {
        let values: Vec<Option<&String>> = runs.iter().map(|c| c.params.get(k)).collect();
        let nums: Vec<Option<f64>> = values.iter().map(|v| v.and_then(|v| v.parse::<f64>().ok())).collect();
        if values.iter().flatten().count() == nums.iter().flatten().count() {
            let (lo, hi) =
                nums.iter().flatten().fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), v| (a.min(*v), b.max(*v)));
            let pos = nums.iter().map(|v| v.map(|v| if hi > lo { (v - lo) / (hi - lo) } else { 0.5 })).collect();
            axes.push((k.clone(), pos, fmt_num(lo), fmt_num(hi)));
        } else {
            let cats: BTreeSet<&String> = values.iter().flatten().copied().collect();
            let cats: Vec<&String> = cats.into_iter().collect();
            let n = cats.len().max(2) - 1;
            let pos = values
                .iter()
                .map(|v| v.and_then(|v| cats.iter().position(|c| *c == v)).map(|i| i as f64 / n as f64))
                .collect();
            axes.push((
                k.clone(),
                pos,
                cats.first().map_or(String::new(), |c| c.to_string()),
                cats.last().map_or(String::new(), |c| c.to_string()),
            ));
        }
    }
    let values: Vec<Option<f64>> = runs.iter().map(last).collect();
    let (lo, hi) = values.iter().flatten().fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), v| (a.min(*v), b.max(*v)));
    let pos = values.iter().map(|v| v.map(|v| if hi > lo { (v - lo) / (hi - lo) } else { 0.5 })).collect();
    axes.push((
        format!("metric {metric}"),
        pos,
        if lo.is_finite() { fmt_num(lo) } else { String::new() },
        if hi.is_finite() { fmt_num(hi) } else { String::new() },
    ));

    let n = axes.len();
    let x = |i: usize| if n == 1 { W / 2.0 } else { 60.0 + i as f64 * (W - 120.0) / (n - 1) as f64 };
    let y = |p: f64| TOP + (1.0 - p) * (H - TOP - BOTTOM);
    html! {
        svg.parallel #parallel-coordinates xmlns="http://www.w3.org/2000/svg" viewBox={ "0 0 " (W) " " (H) } role="img"
            aria-label={ "params against " (metric) } style="max-width:100%;height:auto;background:#fff;border:1px solid #d8dce3" {
            title { "Params against " (metric) }
            @for (i, (label, _, low, high)) in axes.iter().enumerate() {
                line x1=(x(i)) x2=(x(i)) y1=(TOP) y2=(H - BOTTOM) stroke="#8a93a6" {}
                text x=(x(i)) y="14" font-size="11" text-anchor="middle" fill="#1d2330" { (label) }
                text x=(x(i) + 4.0) y=(TOP + 4.0) font-size="9.5" fill="#51596b" { (high) }
                text x=(x(i) + 4.0) y=(H - BOTTOM + 12.0) font-size="9.5" fill="#51596b" { (low) }
            }
            @for (r, c) in runs.iter().enumerate() {
                @let pts: Vec<String> = axes.iter().enumerate().filter_map(|(i, a)| a.1[r].map(|p| format!("{:.1},{:.1}", x(i), y(p)))).collect();
                polyline.run-line points=(pts.join(" ")) fill="none" stroke=(colour(r)) stroke-width="2" stroke-opacity="0.85" {
                    title { (c.label) }
                }
            }
        }
    }
}

// ---- diff -------------------------------------------------------------------------------

pub(crate) async fn diff_page(AxState(s): S, Params(q): Params) -> Response {
    let (Some(a), Some(b)) = (q.get("a").filter(|v| !v.trim().is_empty()), q.get("b").filter(|v| !v.trim().is_empty()))
    else {
        return error_page(
            StatusCode::BAD_REQUEST,
            "Diff",
            "Give two runs: /ui/diff?a=RUN&b=RUN (an id, a 4+ character id prefix, a run name, latest, or NAME@VERSION)",
        );
    };
    let (a, b) = (a.clone(), b.clone());
    let data = match s.with_store(move |st| load_diff(st, &a, &b)).await {
        Ok(d) => d,
        Err(e) => return api_error_page(e),
    };
    let d = &data.diff;
    let side = |label: &str, r: &StoredRun| {
        html! {
            tr {
                th { (label) }
                td { (run_link(&r.record.id)) @if let Some(n) = &r.name { " " (n) } }
                td.nowrap { (r.record.started_at) }
                td { (badge(status_class(r.record.status.as_str()), r.record.status.as_str(), "")) }
            }
        }
    };
    let both = format!("{},{}", data.a.record.id.as_str(), data.b.record.id.as_str());
    let body = html! {
        h1 { "Diff" }
        table {
            tr { th {} th { "Run" } th { "Started" } th { "Status" } }
            (side("A", &data.a))
            (side("B", &data.b))
        }
        p {
            "Outputs "
            @if d.outputs_differ { span.warn { "differ" } } @else { span.ok { "are the same" } }
            " · " a href={ "/ui/compare?runs=" (enc(&both)) } { "compare metrics and params" }
        }
        h2 #causes { "Likely causes" }
        @if d.causes.is_empty() {
            p.muted { "nothing that explains a difference" }
        } @else {
            ol #causes-list {
                @for c in &d.causes {
                    li {
                        b { (c.summary) } " "
                        span.muted { "[" (serde_json::to_value(c.kind).ok().and_then(|v| v.as_str().map(str::to_string)).unwrap_or_default()) "]" }
                        @if !c.evidence.is_empty() { ul { @for e in &c.evidence { li { (e) } } } }
                    }
                }
            }
        }
        h2 { "Sections" }
        @for sec in &d.sections {
            h3 id={ "section-" (sec.name) } {
                (sec.name) " "
                @if sec.same { span.ok { "same" } } @else { span.warn { "differs" } }
            }
            @if !sec.changes.is_empty() {
                div.scroll {
                    table.side-by-side {
                        tr { th { "Field" } th { "A" } th { "B" } th { "Note" } }
                        @for c in &sec.changes {
                            tr {
                                td { code { (c.field) } }
                                td.wrap { (opt(c.a.as_deref())) }
                                td.wrap { (opt(c.b.as_deref())) }
                                td { (opt(c.note.as_deref())) }
                            }
                        }
                    }
                }
            }
        }
    };
    let crumbs = [crumb("Runs", "/ui"), crumb("Compare", format!("/ui/compare?runs={}", enc(&both)))];
    page("Diff", &crumbs, body).into_response()
}

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
