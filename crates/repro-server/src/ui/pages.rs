//! The runs table, the diff of two runs and the models page, as HTML.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

use axum::extract::State as AxState;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use repro_core::search;
use repro_store::meta::StoredRun;

use super::data::{load_diff, load_models, load_runs, RunsData};
use super::{
    api_error_page, enc, error_page, esc, fmt_num, opt, page, run_link, status_class, Params, MAX_KEY_COLUMNS, S,
};

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
                .iter()
                .flat_map(|a| &a.files)
                .map(|f| format!("{} <code>{}</code>", esc(&f.path), esc(f.blake3.as_str())))
                .collect();
            let _ = write!(
                b,
                "<tr id=\"{}\"><td>{}</td><td>{stage}</td><td>{}</td><td>{}<br>{}</td><td>{} at {}</td>\
                 <td>{approvals}</td><td>{signatures}</td><td>{}</td></tr>",
                esc(&enc(&v.reference())),
                esc(&v.reference()),
                match &v.run {
                    Some(run) => run_link(run.as_str()),
                    None => format!("external: {}", esc(v.source_uri().unwrap_or(""))),
                },
                esc(v.artifact.as_ref().map_or("(files not held)", |a| a.path.as_str())),
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
