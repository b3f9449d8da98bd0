//! One run's page: lineage, audit, metric charts (inline SVG), replays, versions and logs.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use axum::extract::State as AxState;
use axum::response::{IntoResponse, Redirect, Response};
use repro_core::audit::{self};
use repro_core::metrics::MetricPoint;
use repro_core::record::RunRecord;
use repro_core::snapshot::Manifest;
use repro_core::Digest;

use super::data::{load_run, resolve_run, RunData};
use super::layout::{digest_s, opt_s, run_link_s};
use super::layout::{page, status_class};
use super::{api_error_page, enc, esc, fmt_num, param_text, Segment, S};
use maud::PreEscaped;

/// What the page says in place of a fact repro never recorded (a run a tracking client
/// created: its record holds placeholders, which must not read as captured values).
const NOT_CAPTURED: &str = audit::NOT_CAPTURED;

fn not_captured() -> String {
    format!("<span class=\"missing not-captured\">{NOT_CAPTURED}</span>")
}

/// `/ui/runs/RUN`: RUN is anything the CLI takes. A spec that is not the run's full id is
/// answered with a redirect to the canonical URL, so what is bookmarked or shared names
/// one run for good (`latest` and a stage move on).
pub(crate) async fn run_page(AxState(s): S, Segment(spec): Segment) -> Response {
    let wanted = spec.clone();
    let rid = match s.with_meta(move |m, _| resolve_run(m, &wanted)).await {
        Ok(r) => r,
        Err(e) => return api_error_page(e),
    };
    if rid.as_str() != spec {
        return Redirect::to(&format!("/ui/runs/{}", enc(rid.as_str()))).into_response();
    }
    let data = match s.with_store(move |st| load_run(st, &rid)).await {
        Ok(d) => d,
        Err(e) => return api_error_page(e),
    };
    render(&data)
}

fn render(data: &RunData) -> Response {
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
         <tr><th>Command</th><td>{}</td></tr>\
         <tr><th>Lineage digest</th><td>{}</td></tr></table>",
        status_class(r.status.as_str()),
        esc(r.status.as_str()),
        r.exit_code.map(|c| format!(" (exit {c})")).unwrap_or_default(),
        esc(&r.started_at),
        opt_s(r.ended_at.as_deref()),
        esc(&r.user),
        esc(&r.host),
        command(data),
        digest_s(data.run.lineage.as_ref()),
    );
    replay_of_section(&mut b, data);
    if data.captured {
        lineage_sections(&mut b, r, &data.manifests);
    } else {
        uncaptured_sections(&mut b, &data.tracked.params);
    }

    b.push_str("<h2 id=\"audit\">Audit</h2>");
    let audit = audit_as_shown(data);
    let _ = write!(
        b,
        "<p>{}</p><table id=\"audit-items\"><tr><th>Item</th><th>Status</th><th>Detail</th><th>Fix</th></tr>",
        if audit.complete { "<span class=\"ok\">complete</span>" } else { "<span class=\"bad\">incomplete</span>" }
    );
    for item in &audit.items {
        let st = item.status.as_str();
        let _ = write!(
            b,
            "<tr data-item=\"{0}\"><td><code>{0}</code></td><td class=\"{1}\">{2}</td><td>{3}</td><td>{4}</td></tr>",
            esc(&item.name),
            status_class(st),
            st,
            esc(&item.detail),
            opt_s(item.fix.as_deref())
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
                run_link_s(rp.replay.as_str()),
                status_class(v),
                esc(&repro_store::rfc3339(rp.created_ms)),
                digest_s(Some(&rp.report))
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
                opt_s(v.stage.as_deref()),
                esc(v.artifact.as_ref().map_or("", |a| a.path.as_str())),
                if matches { "ok" } else { "bad" },
                if matches { "matches the run" } else { "does NOT match the run's record" }
            );
        }
        b.push_str("</table>");
    }
    let title = format!("Run {}", r.id.short());
    page(&title, &[], PreEscaped(b)).into_response()
}

/// The command line, or why there is none.
fn command(data: &RunData) -> String {
    let s = &data.run.record.script;
    if !data.captured {
        return not_captured();
    }
    format!("<code>{}</code> <span class=\"muted\">in {}</span>", esc(&s.argv.join(" ")), esc(&s.workdir))
}

/// The audit as the page shows it (exec's audit already says "not captured" for a run a
/// tracking client created): a replay run's replay item says whose replay it is and its
/// verdict, not "never replayed".
fn audit_as_shown(data: &RunData) -> audit::AuditReport {
    let mut report = data.audit.clone();
    for item in &mut report.items {
        if let (Some(of), true) = (&data.replay_of, item.name == "replay_verified" && data.replays.is_empty()) {
            let (status, verdict) = match &of.row {
                Some(row) if row.verdict.reproduced() => (audit::ItemStatus::Ok, row.verdict.as_str()),
                Some(row) => (audit::ItemStatus::Missing, row.verdict.as_str()),
                None => (audit::ItemStatus::Warn, "no verdict recorded"),
            };
            item.status = status;
            item.detail = format!("this run is a replay of {}: {verdict}", of.original.short());
            item.fix = None;
        }
    }
    report.complete = audit::is_complete(&report.items, report.strict);
    report
}

/// A replay run says first whose replay it is and what the comparison found.
fn replay_of_section(b: &mut String, data: &RunData) {
    let Some(of) = &data.replay_of else { return };
    let _ = write!(b, "<h2 id=\"replay-of\">Replay of {}</h2>", run_link_s(of.original.as_str()));
    let Some(row) = &of.row else {
        b.push_str(
            "<p class=\"warn\" id=\"replay-verdict\">no verdict recorded (the replay is running, or stopped \
             before comparing)</p>",
        );
        return;
    };
    let v = row.verdict.as_str();
    let _ = write!(
        b,
        "<p>Verdict: <span class=\"{}\" id=\"replay-verdict\">{v}</span> <span class=\"muted\">at {} · report {}</span> \
         · <a href=\"/ui/diff?a={}&amp;b={}\">diff against the original</a></p>",
        status_class(v),
        esc(&repro_store::rfc3339(row.created_ms)),
        digest_s(Some(&row.report)),
        enc(of.original.as_str()),
        enc(row.replay.as_str())
    );
    if !of.reasons.is_empty() {
        b.push_str("<ul id=\"replay-reasons\">");
        for reason in &of.reasons {
            let _ = write!(b, "<li>{}</li>", esc(reason));
        }
        b.push_str("</ul>");
    }
    if !of.outputs.is_empty() {
        b.push_str("<table id=\"replay-outputs\"><tr><th>Output</th><th>Verdict</th></tr>");
        for (path, verdict) in &of.outputs {
            let _ = write!(
                b,
                "<tr><td>{}</td><td class=\"{}\">{}</td></tr>",
                esc(path),
                status_class(verdict),
                esc(verdict)
            );
        }
        b.push_str("</table>");
    }
}

/// The lineage sections of a run a tracking client created: what it logged (params,
/// outputs it cannot have) is shown elsewhere; what repro captures is said to be absent.
fn uncaptured_sections(b: &mut String, logged: &BTreeMap<String, String>) {
    let nc = not_captured();
    let _ = write!(
        b,
        "<h2 id=\"capture\">Capture</h2><p class=\"muted\">This run was created by an MLflow client, not by \
         <code>repro run</code>: repro stored what the client logged (params, metrics, tags, artifacts) and \
         captured nothing else.</p><table id=\"not-captured\"><tr><th>Code state</th><td>{nc}</td></tr>\
         <tr><th>Script</th><td>{nc}</td></tr><tr><th>Environment</th><td>{nc}</td></tr>\
         <tr><th>Hardware</th><td>{nc}</td></tr><tr><th>Data inputs</th><td>{nc}</td></tr>\
         <tr><th>Seed</th><td>{nc}</td></tr></table>"
    );
    b.push_str("<h2 id=\"params\">Params</h2>");
    key_values(b, logged);
}

fn lineage_sections(b: &mut String, r: &RunRecord, manifests: &BTreeMap<Digest, Manifest>) {
    let c = &r.code;
    b.push_str("<h2 id=\"code\">Code</h2><table>");
    let _ = write!(
        b,
        "<tr><th>Commit</th><td><code>{}</code></td></tr><tr><th>Branch</th><td>{}</td></tr>\
         <tr><th>Remote</th><td>{}</td></tr><tr><th>Dirty</th><td class=\"{}\">{}</td></tr>\
         <tr><th>Diff</th><td>{}{}</td></tr><tr><th>Untracked files stored</th><td>{}</td></tr>",
        opt_s(c.commit.as_deref()),
        opt_s(c.branch.as_deref()),
        opt_s(c.remote.as_deref()),
        if c.dirty { "warn" } else { "ok" },
        if c.dirty { "yes" } else { "no" },
        digest_s(c.diff.as_ref()),
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
        opt_s(s.path.as_deref()),
        digest_s(s.digest.as_ref()),
        opt_s(s.git_state.as_deref())
    );

    let env = &r.environment;
    b.push_str("<h2 id=\"environment\">Environment</h2><table>");
    match &env.python {
        Some(p) => {
            let _ = write!(
                b,
                "<tr><th>Python</th><td>{}</td></tr><tr><th>Interpreter</th><td><code>{}</code> ({})</td></tr>\
                 <tr><th>Installed packages</th><td>{}</td></tr>",
                opt_s(p.version.as_deref()),
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
                digest_s(Some(&d.digest)),
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
                digest_s(Some(&i.snapshot)),
                i.files,
                i.bytes,
                if i.reference { "reference only" } else { "yes" }
            );
        }
        b.push_str("</table>");
    }

    b.push_str("<h2 id=\"params\">Params</h2>");
    params_table(b, r);

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
                digest_s(o.snapshot.as_ref()),
                o.files,
                o.bytes
            );
            if let Some(m) = o.snapshot.as_ref().and_then(|d| manifests.get(d)) {
                for e in &m.entries {
                    let _ = write!(
                        b,
                        "<tr class=\"file\"><td>&nbsp;&nbsp;{}</td><td>{}</td><td></td><td>{}</td></tr>",
                        esc(&e.path),
                        digest_s(Some(&e.digest)),
                        e.size
                    );
                }
            }
        }
        b.push_str("</table>");
    }
}

/// The params the run was given or logged, and its params files.
fn params_table(b: &mut String, r: &RunRecord) {
    let mut params: BTreeMap<String, String> =
        r.params.values.iter().map(|(k, v)| (k.clone(), param_text(v))).collect();
    for (k, v) in &r.params.logged {
        params.entry(k.clone()).or_insert_with(|| v.clone());
    }
    key_values(b, &params);
    for f in &r.params.files {
        let _ = write!(b, "<p>Params file {} {}</p>", esc(&f.path), digest_s(Some(&f.digest)));
    }
}

fn key_values(b: &mut String, params: &BTreeMap<String, String>) {
    if params.is_empty() {
        b.push_str("<p class=\"muted\">none</p>");
        return;
    }
    b.push_str("<table id=\"params-table\"><tr><th>Key</th><th>Value</th></tr>");
    for (k, v) in params {
        let _ = write!(b, "<tr><td><code>{}</code></td><td>{}</td></tr>", esc(k), esc(v));
    }
    b.push_str("</table>");
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

pub(super) fn svg_chart(key: &str, pts: &[(i64, f64)]) -> String {
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
