//! The runs table: compact rows (name as the link, the 8-character id, relative time and
//! duration, badges), a column chooser with stable defaults, an experiment selector, the
//! search filter, sorting, paging by SQL `LIMIT/OFFSET` (a page costs the same at 100,000
//! runs as at 100), and tick boxes that open the compare page.

use std::collections::{BTreeMap, BTreeSet};

use axum::extract::State as AxState;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use maud::{html, Markup};
use repro_core::audit::{self, ItemStatus};
use repro_core::record::ReplaySummary;
use repro_core::search;
use repro_store::search::{ParamSource, RunQuery};
use repro_store::tracking::TrackedRun;
use repro_store::Metadata;

use super::layout::{ago, badge, dash, duration, page, status_class};
use super::{api_error_page, enc, fmt_num, Pairs, S};
use crate::ApiError;

const DEFAULT_PER_PAGE: usize = 50;
const MAX_PER_PAGE: usize = 500;
/// Default columns: this many param keys, metric keys and tag keys.
const DEFAULT_PARAMS: usize = 4;
const DEFAULT_METRICS: usize = 4;
const DEFAULT_TAGS: usize = 2;
/// The newest runs of the experiment the default columns and the chooser's keys come from.
const KEY_SAMPLE: usize = 200;
/// A filtered table counts its matches up to here and then says "10000+": counting every
/// match of a filter that a third of 100,000 runs pass costs more than the page itself.
const COUNT_CAP: usize = 10_000;

/// What the query asked for.
struct Ask {
    filter: String,
    order: String,
    experiment: Option<i64>,
    page: usize,
    per: usize,
    /// `params.K`, `metrics.K`, `tags.K`; `None`: the defaults.
    cols: Option<Vec<String>>,
}

impl Ask {
    fn from_pairs(pairs: &[(String, String)]) -> Result<Ask, String> {
        let get = |k: &str| pairs.iter().rev().find(|(key, _)| key == k).map(|(_, v)| v.trim().to_string());
        let number = |k: &str, default: usize, max: usize| -> Result<usize, String> {
            match get(k).filter(|v| !v.is_empty()) {
                None => Ok(default),
                Some(v) => v
                    .parse::<usize>()
                    .ok()
                    .filter(|n| (1..=max).contains(n))
                    .ok_or_else(|| format!("{k}={v} is not a number from 1 to {max}")),
            }
        };
        let experiment = match get("experiment").filter(|v| !v.is_empty() && v != "all") {
            None => None,
            Some(v) => Some(v.parse::<i64>().map_err(|_| format!("experiment={v} is not an experiment id"))?),
        };
        let cols: Vec<String> = pairs
            .iter()
            .filter(|(k, _)| k == "cols")
            .flat_map(|(_, v)| v.split(','))
            .map(str::trim)
            .filter(|c| !c.is_empty())
            .map(str::to_string)
            .collect();
        for c in &cols {
            let ok = ["params.", "metrics.", "tags."].iter().any(|p| c.strip_prefix(p).is_some_and(|k| !k.is_empty()));
            if !ok {
                return Err(format!("column '{c}' is not params.KEY, metrics.KEY or tags.KEY"));
            }
        }
        let asked_cols = pairs.iter().any(|(k, _)| k == "cols");
        Ok(Ask {
            filter: get("filter").unwrap_or_default(),
            order: get("order").unwrap_or_default(),
            experiment,
            page: number("page", 1, 1_000_000)?,
            per: number("per", DEFAULT_PER_PAGE, MAX_PER_PAGE)?,
            cols: asked_cols.then_some(cols),
        })
    }

    /// The page's URL with some pairs changed (`None` removes one).
    fn href(&self, change: &[(&str, Option<String>)]) -> String {
        let mut q: Vec<(&str, String)> = vec![
            ("filter", self.filter.clone()),
            ("order", self.order.clone()),
            ("experiment", self.experiment.map(|e| e.to_string()).unwrap_or_default()),
            ("per", if self.per == DEFAULT_PER_PAGE { String::new() } else { self.per.to_string() }),
            ("page", if self.page == 1 { String::new() } else { self.page.to_string() }),
            ("cols", self.cols.as_ref().map(|c| c.join(",")).unwrap_or_default()),
        ];
        for (k, v) in change {
            if let Some(slot) = q.iter_mut().find(|(key, _)| key == k) {
                slot.1 = v.clone().unwrap_or_default();
            }
        }
        let parts: Vec<String> =
            q.iter().filter(|(_, v)| !v.is_empty()).map(|(k, v)| format!("{k}={}", enc(v))).collect();
        if parts.is_empty() {
            "/ui".into()
        } else {
            format!("/ui?{}", parts.join("&"))
        }
    }
}

/// One row's facts beyond the tracking row: read from the run's record and the registry.
struct RowFacts {
    audit: Option<(usize, usize, bool)>,
    dirty: Option<bool>,
    /// (verdict, of which run) for a replay; (latest verdict, how many) for a replayed run.
    replay_of: Option<(String, String)>,
    replayed: Option<(String, usize)>,
    versions: Vec<(String, Option<String>)>,
    captured: bool,
}

pub(crate) async fn runs_page(AxState(s): S, Pairs(pairs): Pairs) -> Response {
    let ask = match Ask::from_pairs(&pairs) {
        Ok(a) => a,
        Err(e) => return super::error_page(StatusCode::BAD_REQUEST, "Bad Request", &e),
    };
    let mut problems = Vec::new();
    let clauses = search::parse_filter(&ask.filter).unwrap_or_else(|e| {
        problems.push(format!("Bad filter: {e}"));
        Vec::new()
    });
    let order_items: Vec<String> = if ask.order.is_empty() { Vec::new() } else { vec![ask.order.clone()] };
    let order_by = search::parse_order_by(&order_items).unwrap_or_else(|e| {
        problems.push(format!("Bad order: {e}"));
        Vec::new()
    });
    let searched = problems.is_empty();
    let (experiment, offset, per) = (ask.experiment, (ask.page - 1) * ask.per, ask.per);
    let loaded = s.with_meta(move |m, _| load_runs(m, experiment, &clauses, &order_by, offset, per, searched)).await;
    let data = match loaded {
        Ok(x) => x,
        Err(e) => return api_error_page(e),
    };
    let status = if problems.is_empty() { StatusCode::OK } else { StatusCode::BAD_REQUEST };
    (status, page("Runs", &[], render(&ask, &data, &problems))).into_response()
}

fn quoted(k: &str) -> String {
    if k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
        k.to_string()
    } else {
        format!("`{k}`")
    }
}

fn render(ask: &Ask, d: &RunsData, problems: &[String]) -> Markup {
    let cols: Vec<String> = ask.cols.clone().unwrap_or_else(|| d.default_cols.clone());
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64);
    let pages = d.matched.div_ceil(ask.per).max(1);
    let sort = |label: &str, key: &str| -> Markup {
        let order = ask.order.trim();
        let (arrow, next) = if order.eq_ignore_ascii_case(&format!("{key} ASC")) {
            (" ▲", format!("{key} DESC"))
        } else if order.eq_ignore_ascii_case(&format!("{key} DESC")) {
            (" ▼", format!("{key} ASC"))
        } else {
            ("", format!("{key} DESC"))
        };
        html! { th.nowrap { a href=(ask.href(&[("order", Some(next)), ("page", None)])) title={ "sort by " (key) } { (label) (arrow) } } }
    };
    let shown = |c: &str| cols.iter().any(|x| x == c);
    html! {
        h1 { "Runs" }
        form.filters method="get" action="/ui" {
            label { "Experiment "
                select name="experiment" {
                    option value="all" selected[ask.experiment.is_none()] { "all" }
                    @for (id, name) in &d.experiments {
                        option value=(id) selected[ask.experiment == Some(*id)] { (name) " (" (id) ")" }
                    }
                }
            }
            " "
            label { "Filter " input type="text" name="filter" value=(ask.filter) placeholder="metrics.rmse < 1 and params.lr = '0.1'"; }
            input type="hidden" name="order" value=(ask.order);
            @if let Some(c) = &ask.cols { input type="hidden" name="cols" value=(c.join(",")); }
            " " button type="submit" { "Search" } " " a href="/ui" { "clear" }
        }
        @for p in problems { div.error #filter-error { (p) } }
        details #columns {
            summary { "Columns (" (cols.len()) ")" }
            form method="get" action="/ui" {
                input type="hidden" name="filter" value=(ask.filter);
                input type="hidden" name="order" value=(ask.order);
                @if let Some(e) = ask.experiment { input type="hidden" name="experiment" value=(e); }
                p.muted { "Defaults: the most common params, metrics and tags among the experiment's "
                    (KEY_SAMPLE) " newest runs; they stay put while you filter, sort and page." }
                @for (group, keys) in [("params", &d.keys.params), ("metrics", &d.keys.metrics), ("tags", &d.keys.tags)] {
                    fieldset {
                        legend { (group) }
                        @for k in keys.iter() {
                            @let c = format!("{group}.{k}");
                            label.nowrap { input type="checkbox" name="cols" value=(c) checked[shown(&c)]; " " (k) } " "
                        }
                        @if keys.is_empty() { span.muted { "none" } }
                    }
                }
                button type="submit" { "Apply" } " " a href=(ask.href(&[("cols", None)])) { "defaults" }
            }
        }
        p.muted #runs-count {
            (d.matched) @if !d.matched_exact { "+" } " of " (d.total) " runs"
            @if d.matched > 0 { " · " (offset_text(ask, d.matched)) }
        }
        form #compare method="get" action="/ui/compare" {
            div.scroll {
                table #runs.compact {
                    thead {
                        tr {
                            th { span.muted title="tick runs, then Compare selected" { "✓" } }
                            (sort("Name", "attributes.run_name"))
                            th { "Id" }
                            (sort("Status", "attributes.status"))
                            (sort("Started", "attributes.start_time"))
                            th { "Took" }
                            th { "Badges" }
                            @for c in &cols {
                                @let (group, key) = c.split_once('.').unwrap_or(("params", c));
                                (sort(&format!("{} {key}", &group[..group.len() - 1]), &format!("{group}.{}", quoted(key))))
                            }
                        }
                    }
                    tbody {
                        @for (r, facts) in d.runs.iter().zip(&d.facts) {
                            @let metrics: BTreeMap<&str, f64> = r.metrics.iter().map(|m| (m.key.as_str(), m.value)).collect();
                            tr {
                                td { input type="checkbox" name="runs" value=(r.run_id.as_str()) aria-label={ "select " (r.run_id.short()) }; }
                                td.name { a href={ "/ui/runs/" (r.run_id.as_str()) } { (row_name(r, facts)) } }
                                td { code.id title=(r.run_id.as_str()) { (r.run_id.short()) } }
                                td { span class=(status_class(r.status)) { (r.status.to_ascii_lowercase()) } }
                                td.nowrap title=(repro_store::rfc3339(r.start_time)) { (ago(r.start_time, now)) }
                                td.nowrap.num { @match r.end_time { Some(e) => (duration(e - r.start_time)), None => (dash()) } }
                                td.nowrap.badges { (badges(facts)) }
                                @for c in &cols {
                                    @let (group, key) = c.split_once('.').unwrap_or(("params", c));
                                    @match group {
                                        "metrics" => td.num { @match metrics.get(key) { Some(v) => (fmt_num(*v)), None => (dash()) } },
                                        "tags" => td { @match r.tags.get(key) { Some(v) => (v), None => (dash()) } },
                                        _ => td { @match r.params.get(key) { Some(v) => (v), None => (dash()) } },
                                    }
                                }
                            }
                        }
                    }
                }
            }
            p {
                button type="submit" #compare-selected { "Compare selected" }
                span.muted { " tick two or more runs" }
            }
        }
        nav.pages #pages {
            @if ask.page > 1 { a rel="prev" href=(ask.href(&[("page", Some((ask.page - 1).to_string()))])) { "← newer" } " " }
            span { "page " (ask.page) " of " (pages) @if !d.matched_exact { "+" } }
            @if ask.page < pages { " " a rel="next" href=(ask.href(&[("page", Some((ask.page + 1).to_string()))])) { "older →" } }
            " · per page "
            @for n in [25, 50, 100, 200] {
                @if n == ask.per { b { (n) } } @else { a href=(ask.href(&[("per", Some(n.to_string())), ("page", None)])) { (n) } }
                " "
            }
        }
    }
}

fn offset_text(ask: &Ask, matched: usize) -> String {
    let first = (ask.page - 1) * ask.per + 1;
    let last = (ask.page * ask.per).min(matched);
    if first > matched {
        "past the last page".into()
    } else {
        format!("{first}–{last} shown")
    }
}

/// Never a blank cell: the name, else what the run is, else its short id.
fn row_name(r: &TrackedRun, f: &RowFacts) -> String {
    if !r.run_name.trim().is_empty() {
        return r.run_name.clone();
    }
    match &f.replay_of {
        Some((_, of)) => format!("replay of {of}"),
        None => r.run_id.short().to_string(),
    }
}

fn badges(f: &RowFacts) -> Markup {
    html! {
        @if let Some((ok, total, complete)) = f.audit {
            (badge(if complete { "ok" } else if ok * 2 >= total { "warn" } else { "bad" }, &format!("audit {ok}/{total}"),
                "audit items that pass, judged from the record (objects are re-hashed on the run page and by repro audit)"))
        }
        @if !f.captured { (badge("muted", "api", "created through the MLflow API: nothing captured")) }
        @if f.dirty == Some(true) { (badge("warn", "dirty", "the git tree had uncommitted changes")) }
        @if let Some((verdict, of)) = &f.replay_of { (badge(status_class(verdict), &format!("replay: {verdict}"), &format!("a replay of {of}"))) }
        @if let Some((verdict, n)) = &f.replayed { (badge(status_class(verdict), &format!("replayed: {verdict}"), &format!("latest of {n} replays"))) }
        @for (v, stage) in &f.versions {
            (badge("info", &match stage { Some(s) => format!("{v} {s}"), None => v.clone() }, "a model version made from this run"))
        }
    }
}

// ---- loading ----------------------------------------------------------------------------

/// The keys runs have, for the column chooser.
#[derive(Default)]
struct Keys {
    params: BTreeSet<String>,
    metrics: BTreeSet<String>,
    tags: BTreeSet<String>,
}

/// One page of the runs table.
struct RunsData {
    runs: Vec<TrackedRun>,
    facts: Vec<RowFacts>,
    matched: usize,
    /// False when `matched` is a floor: the count stopped at the cap.
    matched_exact: bool,
    total: usize,
    experiments: BTreeMap<i64, String>,
    keys: Keys,
    default_cols: Vec<String>,
}

/// The `n` keys most runs have, alphabetical.
fn most_common<'a>(keys: impl Iterator<Item = &'a String>, n: usize) -> Vec<String> {
    let mut count: BTreeMap<&String, usize> = BTreeMap::new();
    for k in keys {
        *count.entry(k).or_default() += 1;
    }
    let mut keys: Vec<(&String, usize)> = count.into_iter().collect();
    keys.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
    let mut out: Vec<String> = keys.into_iter().take(n).map(|(k, _)| k.clone()).collect();
    out.sort();
    out
}

/// `searched` is false when the filter or order did not parse: then nothing matches.
fn load_runs(
    m: &mut Metadata,
    experiment: Option<i64>,
    clauses: &[search::Clause],
    order_by: &[search::OrderBy],
    offset: usize,
    per: usize,
    searched: bool,
) -> Result<RunsData, ApiError> {
    let experiments: BTreeMap<i64, String> =
        m.tracking().list_experiments()?.into_iter().map(|e| (e.experiment_id, e.name)).collect();
    // Experiment 0 holds the runs `repro run` captured, whether or not it has a row.
    let ids: Vec<i64> = match experiment {
        Some(e) => vec![e],
        None => std::iter::once(0).chain(experiments.keys().copied().filter(|k| *k != 0)).collect(),
    };
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
    // The defaults come from the experiment's newest runs, never from the filter or the
    // page, so columns do not jump while someone narrows the table.
    let sample = m.tracking().search_runs(&RunQuery { limit: Some(KEY_SAMPLE), ..all })?;
    let user_tags = |r: &TrackedRun| r.tags.keys().filter(|k| !k.starts_with("mlflow.")).cloned().collect::<Vec<_>>();
    let mut default_cols: Vec<String> = Vec::new();
    default_cols.extend(
        most_common(sample.iter().flat_map(|r| r.params.keys()), DEFAULT_PARAMS)
            .into_iter()
            .map(|k| format!("params.{k}")),
    );
    default_cols.extend(
        most_common(sample.iter().flat_map(|r| r.metrics.iter().map(|m| &m.key)), DEFAULT_METRICS)
            .into_iter()
            .map(|k| format!("metrics.{k}")),
    );
    let tags: Vec<Vec<String>> = sample.iter().map(user_tags).collect();
    default_cols.extend(most_common(tags.iter().flatten(), DEFAULT_TAGS).into_iter().map(|k| format!("tags.{k}")));

    let (runs, matched, matched_exact) = if searched {
        let q = RunQuery { clauses, order: order_by, offset, limit: Some(per), ..all };
        let runs = m.tracking().search_runs(&q)?;
        if clauses.is_empty() {
            (runs, total, true)
        } else {
            // Always far enough to know whether there is a page after this one.
            let cap = COUNT_CAP.max(offset + per + 1);
            let n = m.tracking().count_runs_upto(&q, cap)?;
            (runs, n, n < cap)
        }
    } else {
        (Vec::new(), 0, true)
    };
    let mut keys = Keys::default();
    for r in sample.iter().chain(&runs) {
        keys.params.extend(r.params.keys().cloned());
        keys.metrics.extend(r.metrics.iter().map(|m| m.key.clone()));
        keys.tags.extend(user_tags(r));
    }
    let registry = m.models().registry()?;
    let facts = runs.iter().map(|r| row_facts(m, &registry, r)).collect::<Result<Vec<_>, ApiError>>()?;
    Ok(RunsData { runs, facts, matched, matched_exact, total, experiments, keys, default_cols })
}

fn row_facts(m: &Metadata, registry: &repro_core::registry::Registry, r: &TrackedRun) -> Result<RowFacts, ApiError> {
    let run = match m.runs().get(&r.run_id) {
        Ok(run) => run,
        // A tracking row without a record (an import in progress): no badges, not an error.
        Err(repro_store::StoreError::Missing(_)) => {
            return Ok(RowFacts {
                audit: None,
                dirty: None,
                replay_of: None,
                replayed: None,
                versions: Vec::new(),
                captured: r.captured,
            })
        }
        Err(e) => return Err(e.into()),
    };
    let rows = m.runs().replays_of(&r.run_id)?;
    let replays: Vec<ReplaySummary> = rows
        .iter()
        .map(|x| ReplaySummary { replay: x.replay.clone(), verdict: x.verdict, at: repro_store::rfc3339(x.created_ms) })
        .collect();
    let mentions = repro_exec::audit::mentions_in(registry, &run);
    let mut report = audit::audit_run(&run.record, &audit::ObjectCheck::default(), &mentions, &replays, false);
    if !r.captured {
        audit::mark_not_captured(&mut report);
    }
    let ok = report.items.iter().filter(|i| i.status == ItemStatus::Ok).count();
    let replay_of = match &run.record.replay_of {
        Some(original) => {
            let verdict = m
                .runs()
                .replays_of(original)?
                .into_iter()
                .find(|x| x.replay == r.run_id)
                .map_or_else(|| "no verdict".to_string(), |x| x.verdict.as_str().to_string());
            Some((verdict, original.short().to_string()))
        }
        None => None,
    };
    Ok(RowFacts {
        audit: Some((ok, report.items.len(), report.complete)),
        dirty: r.captured.then_some(run.record.code.dirty),
        replay_of,
        replayed: rows.last().map(|x| (x.verdict.as_str().to_string(), rows.len())),
        versions: mentions.into_iter().map(|v| (v.reference, v.stage)).collect(),
        captured: r.captured,
    })
}
