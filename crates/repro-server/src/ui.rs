//! The web UI: server-rendered HTML pages over the same store the API serves — the runs
//! table, a run's lineage, audit, metric charts and logs, the diff of two runs, and the
//! model registry. No JavaScript and no external assets: one small stylesheet in the head,
//! charts as inline SVG. Every value shown is HTML-escaped (names, params, tags and logs are
//! user input).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::sync::Arc;

use axum::extract::{Path as AxPath, Query, State as AxState};
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Redirect, Response};
use repro_core::audit::{self, AuditReport};
use repro_core::diff::RunDiff;
use repro_core::metrics::MetricPoint;
use repro_core::record::RunRecord;
use repro_core::registry::{verify_chain, ModelVersion, Registry};
use repro_core::search;
use repro_core::snapshot::Manifest;
use repro_core::{Digest, RunId};
use repro_store::fsck::NoProgress;
use repro_store::meta::{ReplayRow, StoredRun};
use repro_store::objects::Verified;
use repro_store::search::{ParamSource, RunQuery};
use repro_store::{Metadata, Objects, Store};

use crate::{ApiError, State};

type S = AxState<Arc<State>>;
type Params = Query<BTreeMap<String, String>>;

/// How many param and metric keys the runs table shows as columns.
const MAX_KEY_COLUMNS: usize = 6;
/// How many runs the runs table shows at most (the first, in the chosen order); the count
/// above it says how many matched.
const MAX_TABLE_ROWS: usize = 1000;
/// How much of each log the run page shows (its end).
const LOG_TAIL: usize = 64 * 1024;

// Set (by the auth check) while a page is made for a browser signed in with the login
// form, so the page offers to sign out: the sign-out form's CSRF token.
tokio::task_local! {
    pub(crate) static SIGNED_IN: String;
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
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
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

pub(crate) fn error_page(status: StatusCode, title: &str, message: &str) -> Response {
    let body = format!("<h1>{}</h1><div class=\"error\">{}</div>", esc(title), esc(message));
    (status, page(title, &body)).into_response()
}

/// A failed store call as a page (a missing run is a 404, anything else a 500).
fn api_error_page(e: ApiError) -> Response {
    let title = if e.status == StatusCode::NOT_FOUND { "Not found" } else { "Error" };
    error_page(e.status, title, &e.message)
}

fn status_class(s: &str) -> &'static str {
    match s {
        "ok" | "finished" | "FINISHED" | "identical" | "equivalent" => "ok",
        "warn" | "running" | "RUNNING" => "warn",
        _ => "bad",
    }
}

fn digest_cell(d: Option<&Digest>) -> String {
    match d {
        Some(d) => format!("<code title=\"{0}\">{0}</code>", esc(d.as_str())),
        None => "<span class=\"muted\">—</span>".into(),
    }
}

fn opt(s: Option<&str>) -> String {
    match s {
        Some(s) => esc(s),
        None => "<span class=\"muted\">—</span>".into(),
    }
}

fn run_link(id: &str) -> String {
    format!("<a class=\"mono\" href=\"/ui/runs/{}\">{}</a>", enc(id), esc(id))
}

fn fmt_num(v: f64) -> String {
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
fn param_text(v: &serde_json::Value) -> String {
    v.as_str().map(str::to_string).unwrap_or_else(|| v.to_string())
}

// ---- runs table -------------------------------------------------------------------------

pub(crate) async fn runs_page(AxState(s): S, Query(q): Params) -> Response {
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
    let loaded = s
        .with_meta(move |m, _| {
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
                let q = RunQuery { clauses: &clauses, order: &order_by, limit: Some(MAX_TABLE_ROWS), ..all };
                (m.tracking().search_runs(&q)?, m.tracking().count_runs(&q)?)
            } else {
                (Vec::new(), 0)
            };
            Ok((runs, matched, total, experiments))
        })
        .await;
    let (runs, matched, total, experiments) = match loaded {
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
            run_link(r.run_id.as_str()),
            esc(&r.run_name),
            status_class(r.status),
            esc(r.status),
            opt(experiments.get(&r.experiment_id).map(String::as_str)),
            esc(&repro_store::rfc3339(r.start_time)),
        );
        for k in &param_keys {
            let _ = write!(body, "<td>{}</td>", opt(r.params.get(k).map(String::as_str)));
        }
        for k in &metric_keys {
            let _ = write!(body, "<td>{}</td>", opt(metrics.get(k.as_str()).map(|v| fmt_num(*v)).as_deref()));
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
    (status, page("Runs", &body)).into_response()
}

// ---- one run ----------------------------------------------------------------------------

/// Everything the run page shows, read on the blocking pool.
struct RunData {
    run: StoredRun,
    metrics: Vec<MetricPoint>,
    replays: Vec<ReplayRow>,
    audit: AuditReport,
    versions: Vec<ModelVersion>,
    manifests: BTreeMap<Digest, Manifest>,
    stdout: Option<String>,
    stderr: Option<String>,
}

fn parse_run_id(id: &str) -> Result<RunId, ApiError> {
    RunId::parse(id.trim()).map_err(|_| ApiError::not_found(format!("No run with id '{id}'.")))
}

fn log_tail(objects: &Objects, d: Option<&Digest>) -> Option<String> {
    let bytes = objects.read(d?).ok()?;
    let start = bytes.len().saturating_sub(LOG_TAIL);
    let mut text = String::from_utf8_lossy(&bytes[start..]).into_owned();
    if start > 0 {
        text.insert_str(0, &format!("… ({} earlier bytes not shown)\n", start));
    }
    Some(text)
}

/// What the run page shows, gathered as `repro show` and `repro audit` gather it.
fn load_run(st: &mut Store, id: &RunId) -> Result<RunData, ApiError> {
    let run = st.meta.runs().get(id)?;
    let metrics = st.meta.runs().metrics(id)?;
    let replays = st.meta.runs().replays_of(id)?;
    let versions: Vec<ModelVersion> = st.meta.models().registry()?.versions_of_run(id).into_iter().cloned().collect();
    let manifests = repro_exec::diff::manifests(st, &[&run]);
    let audit = repro_exec::audit::audit_run(st, &run, false, &NoProgress)?;
    let stdout = log_tail(&st.objects, run.record.logs.stdout.as_ref());
    let stderr = log_tail(&st.objects, run.record.logs.stderr.as_ref());
    Ok(RunData { run, metrics, replays, audit, versions, manifests, stdout, stderr })
}

pub(crate) async fn run_page(AxState(s): S, AxPath(id): AxPath<String>) -> Response {
    let rid = match parse_run_id(&id) {
        Ok(r) => r,
        Err(e) => return api_error_page(e),
    };
    let data = match s.with_store(move |st| load_run(st, &rid)).await {
        Ok(d) => d,
        Err(e) => return api_error_page(e),
    };
    let r = &data.run.record;
    let mut b = String::new();
    let _ = write!(
        b,
        "<h1>Run <code id=\"run-id\">{}</code> {}</h1>",
        esc(r.id.as_str()),
        data.run.name.as_deref().map(|n| format!("<span id=\"run-name\">{}</span>", esc(n))).unwrap_or_default()
    );
    let _ = write!(
        b,
        "<table><tr><th>Status</th><td class=\"{}\">{}{}</td></tr><tr><th>Started</th><td>{}</td></tr>\
         <tr><th>Ended</th><td>{}</td></tr><tr><th>User / host</th><td>{} @ {}</td></tr>\
         <tr><th>Command</th><td><code>{}</code> <span class=\"muted\">in {}</span></td></tr>\
         <tr><th>Lineage digest</th><td>{}</td></tr>{}</table>",
        status_class(r.status.as_str()),
        esc(r.status.as_str()),
        r.exit_code.map(|c| format!(" (exit {c})")).unwrap_or_default(),
        esc(&r.started_at),
        opt(r.ended_at.as_deref()),
        esc(&r.user),
        esc(&r.host),
        esc(&r.script.argv.join(" ")),
        esc(&r.script.workdir),
        digest_cell(data.run.lineage.as_ref()),
        r.replay_of
            .as_ref()
            .map(|o| format!("<tr><th>Replay of</th><td>{}</td></tr>", run_link(o.as_str())))
            .unwrap_or_default()
    );
    lineage_sections(&mut b, r, &data.manifests);

    b.push_str("<h2 id=\"audit\">Audit</h2>");
    let _ = write!(
        b,
        "<p>{}</p><table id=\"audit-items\"><tr><th>Item</th><th>Status</th><th>Detail</th><th>Fix</th></tr>",
        if data.audit.complete {
            "<span class=\"ok\">complete</span>"
        } else {
            "<span class=\"bad\">incomplete</span>"
        }
    );
    for item in &data.audit.items {
        let st = item.status.as_str();
        let _ = write!(
            b,
            "<tr data-item=\"{0}\"><td><code>{0}</code></td><td class=\"{1}\">{2}</td><td>{3}</td><td>{4}</td></tr>",
            esc(&item.name),
            status_class(st),
            st,
            esc(&item.detail),
            opt(item.fix.as_deref())
        );
    }
    b.push_str("</table>");

    b.push_str("<h2 id=\"metrics\">Metrics</h2>");
    metric_charts(&mut b, &data.metrics);

    b.push_str("<h2 id=\"logs\">Logs</h2>");
    for (name, text, bytes) in
        [("stdout", &data.stdout, r.logs.stdout_bytes), ("stderr", &data.stderr, r.logs.stderr_bytes)]
    {
        let _ = write!(b, "<h3>{name} <span class=\"muted\">({})</span></h3>", audit::human_bytes(bytes));
        match text {
            Some(t) if !t.is_empty() => {
                let _ = write!(b, "<pre id=\"log-{name}\">{}</pre>", esc(t));
            }
            Some(_) => b.push_str("<p class=\"muted\">empty</p>"),
            None => b.push_str("<p class=\"muted\">not stored</p>"),
        }
    }

    b.push_str("<h2 id=\"replays\">Replays</h2>");
    if data.replays.is_empty() {
        b.push_str("<p class=\"muted\">none</p>");
    } else {
        b.push_str("<table><tr><th>Replay</th><th>Verdict</th><th>When</th><th>Report</th></tr>");
        for rp in &data.replays {
            let v = rp.verdict.as_str();
            let _ = write!(
                b,
                "<tr><td>{}</td><td class=\"{}\">{v}</td><td>{}</td><td>{}</td></tr>",
                run_link(rp.replay.as_str()),
                status_class(v),
                esc(&repro_store::rfc3339(rp.created_ms)),
                digest_cell(Some(&rp.report))
            );
        }
        b.push_str("</table>");
    }
    b.push_str("<h2 id=\"models\">Model versions pinning this run</h2>");
    if data.versions.is_empty() {
        b.push_str("<p class=\"muted\">none</p>");
    } else {
        b.push_str("<table><tr><th>Version</th><th>Stage</th><th>Artifact</th><th>Lineage</th></tr>");
        for v in &data.versions {
            let matches = v.lineage_holds(data.run.lineage.as_ref(), &r.lineage());
            let _ = write!(
                b,
                "<tr><td><a href=\"/ui/models#{}\">{}</a></td><td>{}</td><td>{}</td><td class=\"{}\">{}</td></tr>",
                esc(&enc(&v.reference())),
                esc(&v.reference()),
                opt(v.stage.as_deref()),
                esc(&v.artifact.path),
                if matches { "ok" } else { "bad" },
                if matches { "matches the run" } else { "does NOT match the run's record" }
            );
        }
        b.push_str("</table>");
    }
    let title = format!("Run {}", r.id.short());
    page(&title, &b).into_response()
}

fn lineage_sections(b: &mut String, r: &RunRecord, manifests: &BTreeMap<Digest, Manifest>) {
    let c = &r.code;
    b.push_str("<h2 id=\"code\">Code</h2><table>");
    let _ = write!(
        b,
        "<tr><th>Commit</th><td><code>{}</code></td></tr><tr><th>Branch</th><td>{}</td></tr>\
         <tr><th>Remote</th><td>{}</td></tr><tr><th>Dirty</th><td class=\"{}\">{}</td></tr>\
         <tr><th>Diff</th><td>{}{}</td></tr><tr><th>Untracked files stored</th><td>{}</td></tr>",
        opt(c.commit.as_deref()),
        opt(c.branch.as_deref()),
        opt(c.remote.as_deref()),
        if c.dirty { "warn" } else { "ok" },
        if c.dirty { "yes" } else { "no" },
        digest_cell(c.diff.as_ref()),
        if c.diff_files.is_empty() {
            String::new()
        } else {
            format!(" <span class=\"muted\">({})</span>", esc(&c.diff_files.join(", ")))
        },
        c.untracked.len()
    );
    if let Some(e) = &c.error {
        let _ = write!(b, "<tr><th>Not captured</th><td class=\"warn\">{}</td></tr>", esc(e));
    }
    b.push_str("</table>");

    let s = &r.script;
    let _ = write!(
        b,
        "<h2 id=\"script\">Script</h2><table><tr><th>Path</th><td>{}</td></tr><tr><th>Digest</th><td>{}</td></tr>\
         <tr><th>Git state</th><td>{}</td></tr></table>",
        opt(s.path.as_deref()),
        digest_cell(s.digest.as_ref()),
        opt(s.git_state.as_deref())
    );

    let env = &r.environment;
    b.push_str("<h2 id=\"environment\">Environment</h2><table>");
    match &env.python {
        Some(p) => {
            let _ = write!(
                b,
                "<tr><th>Python</th><td>{}</td></tr><tr><th>Interpreter</th><td><code>{}</code> ({})</td></tr>\
                 <tr><th>Installed packages</th><td>{}</td></tr>",
                opt(p.version.as_deref()),
                esc(&p.executable),
                esc(&p.kind),
                p.packages.len()
            );
        }
        None => b.push_str("<tr><th>Python</th><td class=\"muted\">not captured</td></tr>"),
    }
    match &env.declared {
        Some(d) => {
            let count = |st: &str| d.requirements.iter().filter(|q| q.status_str() == st).count();
            let _ = write!(
                b,
                "<tr><th>Declared file</th><td>{} <span class=\"muted\">({})</span></td></tr>\
                 <tr><th>Declared digest</th><td>{}</td></tr>\
                 <tr><th>Pins</th><td>{} pinned, {} loose, {} unpinned</td></tr>",
                esc(&d.path),
                esc(&d.format),
                digest_cell(Some(&d.digest)),
                count("pinned"),
                count("loose"),
                count("unpinned")
            );
        }
        None => b.push_str("<tr><th>Declared file</th><td class=\"muted\">none</td></tr>"),
    }
    if let Some(reg) = &env.registered {
        let _ = write!(b, "<tr><th>Registered environment</th><td>{}</td></tr>", esc(reg));
    }
    let _ = write!(
        b,
        "<tr><th>OS</th><td>{} {} {}</td></tr></table>",
        esc(&env.os.name),
        esc(&env.os.kernel),
        esc(&env.os.arch)
    );

    b.push_str("<h2 id=\"data\">Data inputs</h2>");
    if r.inputs.is_empty() {
        b.push_str("<p class=\"muted\">none</p>");
    } else {
        b.push_str("<table><tr><th>Path</th><th>Snapshot</th><th>Files</th><th>Bytes</th><th>Stored</th></tr>");
        for i in &r.inputs {
            let _ = write!(
                b,
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                esc(&i.path),
                digest_cell(Some(&i.snapshot)),
                i.files,
                i.bytes,
                if i.reference { "reference only" } else { "yes" }
            );
        }
        b.push_str("</table>");
    }

    b.push_str("<h2 id=\"params\">Params</h2>");
    let mut params: BTreeMap<String, String> =
        r.params.values.iter().map(|(k, v)| (k.clone(), param_text(v))).collect();
    for (k, v) in &r.params.logged {
        params.entry(k.clone()).or_insert_with(|| v.clone());
    }
    if params.is_empty() {
        b.push_str("<p class=\"muted\">none</p>");
    } else {
        b.push_str("<table id=\"params-table\"><tr><th>Key</th><th>Value</th></tr>");
        for (k, v) in &params {
            let _ = write!(b, "<tr><td><code>{}</code></td><td>{}</td></tr>", esc(k), esc(v));
        }
        b.push_str("</table>");
    }
    for f in &r.params.files {
        let _ = write!(b, "<p>Params file {} {}</p>", esc(&f.path), digest_cell(Some(&f.digest)));
    }

    let _ = write!(
        b,
        "<h2 id=\"seed\">Seed</h2><p><code>{}</code> <span class=\"{}\">({})</span></p>",
        r.seed.value,
        if r.seed.generated { "warn" } else { "ok" },
        if r.seed.generated { "generated by repro" } else { "given" }
    );

    b.push_str("<h2 id=\"outputs\">Outputs</h2>");
    if r.outputs.is_empty() {
        b.push_str("<p class=\"muted\">none</p>");
    } else {
        b.push_str("<table id=\"outputs-table\"><tr><th>Path</th><th>Snapshot</th><th>Files</th><th>Bytes</th></tr>");
        for o in &r.outputs {
            let _ = write!(
                b,
                "<tr><td>{}{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                esc(&o.path),
                if o.missing { " <span class=\"bad\">(missing)</span>" } else { "" },
                digest_cell(o.snapshot.as_ref()),
                o.files,
                o.bytes
            );
            if let Some(m) = o.snapshot.as_ref().and_then(|d| manifests.get(d)) {
                for e in &m.entries {
                    let _ = write!(
                        b,
                        "<tr class=\"file\"><td>&nbsp;&nbsp;{}</td><td>{}</td><td></td><td>{}</td></tr>",
                        esc(&e.path),
                        digest_cell(Some(&e.digest)),
                        e.size
                    );
                }
            }
        }
        b.push_str("</table>");
    }
}

/// One inline SVG line chart per metric key, step on x.
fn metric_charts(b: &mut String, points: &[MetricPoint]) {
    let mut series: BTreeMap<&str, Vec<(i64, f64)>> = BTreeMap::new();
    for p in points {
        series.entry(p.key.as_str()).or_default().push((p.step, p.value));
    }
    if series.is_empty() {
        b.push_str("<p class=\"muted\">no metrics</p>");
        return;
    }
    b.push_str("<div class=\"charts\">");
    for (key, mut pts) in series {
        pts.sort_by_key(|p| p.0);
        let finite: Vec<(i64, f64)> = pts.iter().copied().filter(|p| p.1.is_finite()).collect();
        let last = pts.last().map(|p| fmt_num(p.1)).unwrap_or_default();
        let _ = write!(
            b,
            "<div class=\"chart\"><div><b>{}</b> <span class=\"muted\">last {} · {} points</span></div>",
            esc(key),
            esc(&last),
            pts.len()
        );
        b.push_str(&svg_chart(key, &finite));
        b.push_str("</div>");
    }
    b.push_str("</div>");
}

fn svg_chart(key: &str, pts: &[(i64, f64)]) -> String {
    const W: f64 = 360.0;
    const H: f64 = 180.0;
    const L: f64 = 56.0;
    const R: f64 = 10.0;
    const T: f64 = 10.0;
    const B: f64 = 26.0;
    let mut svg = format!(
        "<svg class=\"metric-chart\" data-metric=\"{}\" xmlns=\"http://www.w3.org/2000/svg\" width=\"{W}\" height=\"{H}\" \
         viewBox=\"0 0 {W} {H}\" role=\"img\"><title>{}</title>\
         <rect x=\"{L}\" y=\"{T}\" width=\"{}\" height=\"{}\" fill=\"#fff\" stroke=\"#d8dce3\"/>",
        esc(key),
        esc(key),
        W - L - R,
        H - T - B
    );
    if pts.is_empty() {
        svg.push_str("<text x=\"60\" y=\"90\" fill=\"#687083\">no finite values</text></svg>");
        return svg;
    }
    let (x0, x1) = (pts[0].0 as f64, pts[pts.len() - 1].0 as f64);
    let (mut y0, mut y1) =
        pts.iter().fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), p| (lo.min(p.1), hi.max(p.1)));
    if y1 - y0 < 1e-12 {
        y0 -= 0.5;
        y1 += 0.5;
    }
    let xs = |x: f64| if x1 > x0 { L + (x - x0) / (x1 - x0) * (W - L - R) } else { L + (W - L - R) / 2.0 };
    let ys = |y: f64| T + (1.0 - (y - y0) / (y1 - y0)) * (H - T - B);
    let coords: Vec<String> = pts.iter().map(|p| format!("{:.1},{:.1}", xs(p.0 as f64), ys(p.1))).collect();
    let _ =
        write!(svg, "<polyline fill=\"none\" stroke=\"#2f5bea\" stroke-width=\"2\" points=\"{}\"/>", coords.join(" "));
    if pts.len() <= 50 {
        for p in pts {
            let _ =
                write!(svg, "<circle cx=\"{:.1}\" cy=\"{:.1}\" r=\"2.5\" fill=\"#2f5bea\"/>", xs(p.0 as f64), ys(p.1));
        }
    }
    let _ = write!(
        svg,
        "<text x=\"{}\" y=\"{}\" font-size=\"10\" text-anchor=\"end\">{}</text>\
         <text x=\"{}\" y=\"{}\" font-size=\"10\" text-anchor=\"end\">{}</text>\
         <text x=\"{L}\" y=\"{}\" font-size=\"10\">step {}</text>\
         <text x=\"{}\" y=\"{}\" font-size=\"10\" text-anchor=\"end\">{}</text></svg>",
        L - 4.0,
        T + 8.0,
        esc(&fmt_num(y1)),
        L - 4.0,
        H - B,
        esc(&fmt_num(y0)),
        H - 10.0,
        x0,
        W - R,
        H - 10.0,
        x1
    );
    svg
}

// ---- diff -------------------------------------------------------------------------------

struct DiffData {
    a: StoredRun,
    b: StoredRun,
    diff: RunDiff,
}

fn load_diff(st: &mut Store, a: &RunId, b: &RunId) -> Result<DiffData, ApiError> {
    let a = st.meta.runs().get(a)?;
    let b = st.meta.runs().get(b)?;
    let diff = repro_exec::diff::diff_runs(st, &a, &b)?;
    Ok(DiffData { a, b, diff })
}

pub(crate) async fn diff_page(AxState(s): S, Query(q): Params) -> Response {
    let (Some(a), Some(b)) = (q.get("a").filter(|v| !v.trim().is_empty()), q.get("b").filter(|v| !v.trim().is_empty()))
    else {
        return error_page(StatusCode::BAD_REQUEST, "Diff", "Give two runs: /ui/diff?a=RUN_ID&b=RUN_ID");
    };
    let ids = parse_run_id(a).and_then(|a| Ok((a, parse_run_id(b)?)));
    let (ia, ib) = match ids {
        Ok(x) => x,
        Err(e) => return api_error_page(e),
    };
    let data = match s.with_store(move |st| load_diff(st, &ia, &ib)).await {
        Ok(d) => d,
        Err(e) => return api_error_page(e),
    };
    let name = |r: &StoredRun| r.name.as_deref().map(|n| format!(" ({})", esc(n))).unwrap_or_default();
    let mut body = format!(
        "<h1>Diff</h1><table><tr><th></th><th>Run</th><th>Started</th><th>Status</th></tr>\
         <tr><th>A</th><td>{}{}</td><td>{}</td><td>{}</td></tr><tr><th>B</th><td>{}{}</td><td>{}</td><td>{}</td></tr></table>",
        run_link(data.a.record.id.as_str()),
        name(&data.a),
        esc(&data.a.record.started_at),
        esc(data.a.record.status.as_str()),
        run_link(data.b.record.id.as_str()),
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
                opt(c.a.as_deref()),
                opt(c.b.as_deref()),
                opt(c.note.as_deref())
            );
        }
        body.push_str("</table>");
    }
    page("Diff", &body).into_response()
}

// ---- models -----------------------------------------------------------------------------

/// One version's checks.
struct VersionCheck {
    lineage: Result<(), String>,
    artifact: Result<usize, String>,
}

struct ModelsData {
    registry: Registry,
    chain_problems: Vec<String>,
    checks: BTreeMap<(String, u32), VersionCheck>,
}

fn load_models(m: &mut Metadata, state: &State) -> Result<ModelsData, ApiError> {
    let events = m.models().events()?;
    let anchor = m.models().anchor()?;
    let mut chain_problems: Vec<String> =
        verify_chain(&events, anchor.event()).into_iter().map(|p| format!("#{}: {}", p.seq, p.message)).collect();
    chain_problems.extend(anchor.problem());
    let registry = m.models().registry()?;
    let mut checks = BTreeMap::new();
    for model in registry.models.values() {
        for v in model.versions.values() {
            let lineage = match m.runs().get(&v.run) {
                Ok(run) if v.lineage_holds(run.lineage.as_ref(), &run.record.lineage()) => Ok(()),
                Ok(run) if run.lineage.is_none() => {
                    Err("the run is still running: its lineage is pinned when it finishes".to_string())
                }
                Ok(_) => Err("the run's record no longer hashes to the registered lineage".to_string()),
                Err(e) => Err(format!("the run is not in this store: {e}")),
            };
            let mut bad = Vec::new();
            for f in &v.artifact.files {
                match state.objects.verify(&f.blake3).unwrap_or(Verified::Missing) {
                    Verified::Ok { .. } => {}
                    Verified::Missing => bad.push(format!("{} missing", f.path)),
                    Verified::Corrupt => bad.push(format!("{} corrupt", f.path)),
                }
            }
            let artifact = if bad.is_empty() { Ok(v.artifact.files.len()) } else { Err(bad.join(", ")) };
            checks.insert((v.name.clone(), v.version), VersionCheck { lineage, artifact });
        }
    }
    Ok(ModelsData { registry, chain_problems, checks })
}

pub(crate) async fn models_page(AxState(s): S) -> Response {
    let data = match s.with_meta(load_models).await {
        Ok(d) => d,
        Err(e) => return api_error_page(e),
    };
    let mut b = String::from("<h1>Model registry</h1>");
    if data.chain_problems.is_empty() {
        b.push_str("<p id=\"chain\" class=\"ok\">Event chain intact (hashes link, anchor present).</p>");
    } else {
        b.push_str("<div id=\"chain\" class=\"error\"><b>Event chain broken:</b><ul>");
        for p in &data.chain_problems {
            let _ = write!(b, "<li>{}</li>", esc(p));
        }
        b.push_str("</ul></div>");
    }
    b.push_str(
        "<p class=\"muted\">Signatures are listed by key id; their cryptographic check is \
         <code>repro model verify</code>.</p>",
    );
    if data.registry.models.is_empty() {
        b.push_str("<p class=\"muted\">No models registered.</p>");
    }
    let chain_ok = data.chain_problems.is_empty();
    for model in data.registry.models.values().filter(|m| m.deleted.is_none()) {
        let _ = write!(b, "<h2 class=\"model\" id=\"model-{0}\">{0}</h2>", esc(&model.name));
        if !model.aliases.is_empty() {
            let aliases: Vec<String> =
                model.aliases.iter().map(|(a, v)| format!("<code>@{}</code> → v{v}", esc(a))).collect();
            let _ = write!(b, "<p class=\"muted\">Aliases: {}</p>", aliases.join(", "));
        }
        b.push_str(
            "<table><tr><th>Version</th><th>Stage</th><th>Run</th><th>Artifact</th><th>Registered</th>\
             <th>Approvals</th><th>Signatures</th><th>Verify</th></tr>",
        );
        for v in model.live() {
            let stage = match (&v.stage, &v.archived) {
                (_, Some(a)) => format!("<span class=\"muted\">archived: {}</span>", esc(&a.reason)),
                (Some(st), None) => format!("<span class=\"stage\">{}</span>", esc(st)),
                (None, None) => "<span class=\"muted\">—</span>".into(),
            };
            let approvals = if v.approvals.is_empty() {
                "<span class=\"muted\">none</span>".to_string()
            } else {
                v.approvals
                    .iter()
                    .map(|a| {
                        format!(
                            "{} for {} at {}{}",
                            esc(&a.by),
                            esc(&a.stage),
                            esc(&repro_store::rfc3339(a.at_ms)),
                            a.comment.as_deref().map(|c| format!(" — “{}”", esc(c))).unwrap_or_default()
                        )
                    })
                    .collect::<Vec<_>>()
                    .join("<br>")
            };
            let signatures = if v.signatures.is_empty() {
                "<span class=\"muted\">unsigned</span>".to_string()
            } else {
                v.signatures
                    .iter()
                    .map(|sg| format!("<code>{}</code> by {}", esc(&sg.keyid), esc(&sg.by)))
                    .collect::<Vec<_>>()
                    .join("<br>")
            };
            let mut verify = Vec::new();
            verify.push(if chain_ok {
                "<span class=\"ok\">chain ok</span>".to_string()
            } else {
                "<span class=\"bad\">chain broken</span>".to_string()
            });
            if let Some(c) = data.checks.get(&(v.name.clone(), v.version)) {
                verify.push(match &c.lineage {
                    Ok(()) => "<span class=\"ok\">lineage matches</span>".to_string(),
                    Err(e) => format!("<span class=\"bad\">lineage: {}</span>", esc(e)),
                });
                verify.push(match &c.artifact {
                    Ok(n) => format!("<span class=\"ok\">artifact ok ({n} files)</span>"),
                    Err(e) => format!("<span class=\"bad\">artifact: {}</span>", esc(e)),
                });
            }
            let files: BTreeSet<String> = v
                .artifact
                .files
                .iter()
                .map(|f| format!("{} <code>{}</code>", esc(&f.path), esc(f.blake3.as_str())))
                .collect();
            let _ = write!(
                b,
                "<tr id=\"{}\"><td>{}</td><td>{stage}</td><td>{}</td><td>{}<br>{}</td><td>{} at {}</td>\
                 <td>{approvals}</td><td>{signatures}</td><td>{}</td></tr>",
                esc(&enc(&v.reference())),
                esc(&v.reference()),
                run_link(v.run.as_str()),
                esc(&v.artifact.path),
                files.into_iter().collect::<Vec<_>>().join("<br>"),
                esc(&v.registered_by),
                esc(&repro_store::rfc3339(v.registered_at_ms)),
                verify.join("<br>")
            );
        }
        b.push_str("</table>");
    }
    page("Models", &b).into_response()
}

#[cfg(test)]
mod tests {
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
