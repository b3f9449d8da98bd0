//! `repro runs` and `repro show`: a run's record as a table row or a page.

use std::io::Write;

use anyhow::Result;
use repro_core::audit::{count, human_bytes};
use repro_core::metrics::MetricPoint;
use repro_core::params::display_value;
use repro_exec::views::{self};
use serde_json::Value;

use super::{json, message, out, short_time};

/// `runs`: the JSON of `repro_exec::views::runs`, from a store or a server.
pub fn runs(list: &Value, as_json: bool) -> Result<()> {
    if as_json {
        return json(list);
    }
    let runs = list
        .as_array()
        .map(|a| a.iter().map(|v| views::run_parts(v).map(|p| p.run)).collect::<Result<Vec<_>, _>>())
        .transpose()?
        .unwrap_or_default();
    let mut o = out();
    if runs.is_empty() {
        writeln!(o, "no runs yet; start one with: repro run -- python train.py")?;
        return Ok(());
    }
    writeln!(o, "{:<10} {:<16} {:<12} {:<20} {:>4}  COMMAND", "ID", "NAME", "STATUS", "STARTED (UTC)", "EXIT")?;
    for r in runs {
        let rec = &r.record;
        let exit = rec.exit_code.map(|c| c.to_string()).unwrap_or_else(|| "-".into());
        let name = match (&r.name, &rec.replay_of) {
            (Some(n), _) => n.clone(),
            (None, Some(of)) => format!("replay:{}", of.short()),
            (None, None) => "-".into(),
        };
        let name: String = name.chars().take(16).collect();
        let cmd: String = rec.script.argv.join(" ").chars().take(60).collect();
        writeln!(
            o,
            "{:<10} {:<16} {:<12} {:<20} {:>4}  {}",
            rec.id.short(),
            name,
            rec.status.as_str(),
            short_time(&rec.started_at),
            exit,
            cmd
        )?;
    }
    Ok(())
}

/// `show`: the JSON of `repro_exec::views::show`, from a store or a server.
pub fn show(v: &Value, as_json: bool) -> Result<()> {
    if as_json {
        return json(v);
    }
    let views::RunParts { run: r, tags, metrics, replays, models, artifacts } = views::run_parts(v)?;
    let (r, metrics, replays, models) = (&r, &metrics, &replays, &models);
    let rec = &r.record;
    let mut o = out();
    writeln!(o, "run       {}{}", rec.id, r.name.as_ref().map(|n| format!("  ({n})")).unwrap_or_default())?;
    if r.name != rec.name {
        let was = rec.name.as_deref().unwrap_or("no name");
        writeln!(o, "renamed   from {was} (the name recorded with the run)")?;
    }
    if let Some(of) = &rec.replay_of {
        writeln!(o, "replay of {of}")?;
    }
    for m in models {
        let stage = match (&m.stage, m.archived) {
            (_, true) => " (archived)".to_string(),
            (Some(s), false) => format!(" ({s})"),
            (None, false) => String::new(),
        };
        writeln!(o, "model     {}{stage}", m.reference)?;
    }
    writeln!(
        o,
        "status    {}{}",
        rec.status.as_str(),
        rec.exit_code.map(|c| format!(", exit {c}")).unwrap_or_default()
    )?;
    writeln!(o, "started   {}  by {}@{}", rec.started_at, rec.user, rec.host)?;
    if let Some(e) = &rec.ended_at {
        writeln!(o, "ended     {e}")?;
    }
    if let Some(l) = &r.lineage {
        writeln!(o, "lineage   {l}")?;
    }
    writeln!(o, "command   {}   (in {})", rec.script.argv.join(" "), rec.script.workdir)?;
    // The tags people set; MLflow's own (`mlflow.*`: source, user, run name) are in --json.
    let people: Vec<String> =
        tags.iter().filter(|(k, _)| !k.starts_with("mlflow.")).map(|(k, v)| format!("{k}={v}")).collect();
    if !people.is_empty() {
        writeln!(o, "tags      {}", people.join(", "))?;
    }
    writeln!(o)?;
    writeln!(o, "code")?;
    match (&rec.code.repo_root, &rec.code.commit) {
        (Some(root), Some(c)) => {
            writeln!(o, "  commit  {c}{}", rec.code.branch.as_ref().map(|b| format!(" ({b})")).unwrap_or_default())?;
            writeln!(
                o,
                "  repo    {root}{}",
                rec.code.remote.as_ref().map(|r| format!("  remote {r}")).unwrap_or_default()
            )?;
            if rec.code.dirty {
                writeln!(
                    o,
                    "  dirty   {} changed, {} untracked stored{}",
                    rec.code.diff_files.len(),
                    rec.code.untracked.len(),
                    rec.code.diff.as_ref().map(|d| format!(", diff {}", d.short())).unwrap_or_default()
                )?;
            } else {
                writeln!(o, "  clean")?;
            }
        }
        _ => writeln!(o, "  {}", rec.code.error.clone().unwrap_or_else(|| "no commit".into()))?,
    }
    writeln!(o, "script")?;
    writeln!(
        o,
        "  {}  {}  {}",
        rec.script.path.as_deref().unwrap_or("(none)"),
        rec.script.digest.as_ref().map(|d| d.short()).unwrap_or_default(),
        rec.script.git_state.as_deref().unwrap_or("")
    )?;
    if let Some(l) = &rec.script.launcher {
        writeln!(o, "  launched by {l}")?;
    }
    if let Some(f) = &rec.script.file_digest {
        writeln!(o, "  notebook file {} (the digest above is of its code cells)", f.short())?;
    }
    writeln!(o, "environment")?;
    if let Some(c) = &rec.environment.container {
        let image = match (&c.image, &c.digest) {
            (Some(i), _) => i.clone(),
            (None, Some(d)) => d.clone(),
            (None, None) => "image unknown".into(),
        };
        let source = c.source.as_deref().map(|s| format!(", from {s}")).unwrap_or_default();
        let digest = match (&c.image, &c.digest) {
            (Some(i), Some(d)) if !i.contains(d.as_str()) => format!(" ({d})"),
            _ => String::new(),
        };
        writeln!(o, "  container {} {image}{digest}{source}", c.runtime.as_deref().unwrap_or("(runtime not seen)"))?;
    }
    if let Some(d) = &rec.environment.declared {
        writeln!(o, "  declared  {} ({}, {} requirements)", d.path, d.format, d.requirements.len())?;
    }
    if let Some(p) = &rec.environment.python {
        writeln!(
            o,
            "  python    {} {} ({}), {} packages",
            p.executable,
            p.version.as_deref().unwrap_or("?"),
            p.kind,
            p.packages.len()
        )?;
    }
    writeln!(
        o,
        "  os        {} / {} / {}",
        rec.environment.os.name,
        rec.environment.os.kernel,
        rec.environment.os.libc.as_deref().unwrap_or("?")
    )?;
    for (k, v) in &rec.environment.variables {
        let mark = if rec.environment.set_by_repro.contains(k) { "  (set by repro)" } else { "" };
        writeln!(o, "  {k}={v}{mark}")?;
    }
    writeln!(o, "hardware")?;
    writeln!(
        o,
        "  {} ({} usable of {} CPUs), {}, flags {}",
        rec.hardware.cpu_model.as_deref().unwrap_or("?"),
        rec.hardware.usable_cores,
        rec.hardware.logical_cpus,
        rec.hardware.memory_bytes.map(human_bytes).unwrap_or_default(),
        rec.hardware.cpu_flags.join(" ")
    )?;
    for g in &rec.hardware.gpus {
        writeln!(
            o,
            "  GPU {} driver {} CUDA {}",
            g.model,
            g.driver.as_deref().unwrap_or("?"),
            g.cuda.as_deref().unwrap_or("?")
        )?;
    }
    writeln!(o, "seed      {}{}", rec.seed.value, if rec.seed.generated { " (generated)" } else { "" })?;
    writeln!(o, "params")?;
    for (k, v) in &rec.params.values {
        writeln!(o, "  {k} = {}", display_value(v))?;
    }
    for (k, v) in &rec.params.logged {
        writeln!(o, "  {k} = {v}  (logged)")?;
    }
    writeln!(o, "inputs")?;
    for i in &rec.inputs {
        writeln!(
            o,
            "  {}  {}  {}, {}{}",
            i.path,
            i.snapshot.short(),
            count(i.files, "file"),
            human_bytes(i.bytes),
            i.dataset.as_ref().map(|d| format!("  = {d}")).unwrap_or_default()
        )?;
    }
    writeln!(o, "outputs")?;
    for x in &rec.outputs {
        match &x.snapshot {
            Some(s) => {
                writeln!(o, "  {}  {}  {}, {}", x.path, s.short(), count(x.files, "file"), human_bytes(x.bytes))?
            }
            None => writeln!(o, "  {}  (not produced)", x.path)?,
        }
    }
    for a in &artifacts {
        writeln!(o, "  {}  is {}", a.file, a.model.describe())?;
    }
    if let Some(p) = &rec.probe {
        probe_lines(&mut o, p)?;
    }
    if !metrics.is_empty() {
        writeln!(o, "metrics (last value)")?;
        let mut last: std::collections::BTreeMap<&str, &MetricPoint> = Default::default();
        for m in metrics {
            last.insert(&m.key, m);
        }
        for (k, m) in last {
            writeln!(o, "  {k} = {} (step {})", m.value, m.step)?;
        }
    }
    writeln!(
        o,
        "logs      stdout {}, stderr {}",
        human_bytes(rec.logs.stdout_bytes),
        human_bytes(rec.logs.stderr_bytes)
    )?;
    for n in &rec.notes {
        writeln!(o, "note      {n}")?;
    }
    for x in replays {
        writeln!(o, "replayed  {} by run {} at {}", x.verdict.as_str(), x.replay.short(), x.at)?;
    }
    Ok(())
}

/// What the in-process probe saw, a line per kind of fact.
fn probe_lines(o: &mut impl std::io::Write, p: &repro_core::probe::ProbeRecord) -> Result<()> {
    use repro_core::probe::ProbeStatus;
    match p.status {
        ProbeStatus::Disabled => return Ok(writeln!(o, "probe     off (--no-probe)")?),
        ProbeStatus::NoReport => return Ok(writeln!(o, "probe     no Python process reported")?),
        ProbeStatus::Ran => {}
    }
    let ranks = if p.ranks.is_empty() { String::new() } else { format!(", {}", count(p.ranks.len() as u64, "rank")) };
    writeln!(
        o,
        "probe     {}{ranks}: {} read, {} written, {} opened in all",
        if p.processes == 1 { "1 Python process".to_string() } else { format!("{} Python processes", p.processes) },
        count(p.reads.len() as u64, "file"),
        count(p.writes.len() as u64, "file"),
        p.files_opened
    )?;
    for u in &p.undeclared_inputs {
        let state = if u.exists { human_bytes(u.size) } else { "absent".to_string() };
        writeln!(o, "  read, not declared   {}  ({state})", u.path)?;
    }
    for a in &p.auto_data {
        writeln!(o, "  snapshotted by --auto-data   {a}")?;
    }
    for w in &p.probable_outputs {
        writeln!(o, "  written, not declared   {w}")?;
    }
    if !p.seeds.is_empty() {
        let seeds: Vec<String> = p.seeds.iter().map(|s| s.describe()).collect();
        writeln!(o, "  seeds set   {}", seeds.join(", "))?;
    }
    if !p.params.unread_overrides.is_empty() {
        writeln!(o, "  --param never read   {}", p.params.unread_overrides.join(", "))?;
    }
    if !p.packages_used.is_empty() {
        let used: Vec<String> = p.packages_used.iter().map(|u| format!("{} {}", u.name, u.version)).collect();
        writeln!(o, "  packages used   {}", used.join(", "))?;
    }
    if let Some(t) = &p.frameworks.torch {
        let b = |v: Option<bool>| v.map(|x| if x { "on" } else { "off" }).unwrap_or("?");
        writeln!(
            o,
            "  torch {}   deterministic algorithms {}, cudnn.benchmark {}, cudnn.deterministic {}, TF32 matmul {}{}",
            t.version,
            b(t.deterministic_algorithms),
            b(t.cudnn_benchmark),
            b(t.cudnn_deterministic),
            b(t.matmul_allow_tf32),
            if t.devices.is_empty() { String::new() } else { format!(", on {}", t.devices.join(", ")) }
        )?;
    }
    if let Some(e) = &p.exception {
        writeln!(o, "  raised   {}", e.describe())?;
    }
    Ok(())
}

/// `repro run`'s last word: the notes capture made, the run's id and status, and how to
/// check it (on stderr: stdout is the command's own under --json, then the JSON).
pub fn ran(
    id: &repro_core::RunId,
    status: repro_core::record::RunStatus,
    exit_code: i32,
    notes: &[String],
    as_json: bool,
) -> Result<()> {
    for n in notes {
        message(&format!("note: {n}"));
    }
    if as_json {
        json(&json!({"id": id, "status": status, "exit_code": exit_code}))?;
    }
    message(&format!("run {id} {} (exit {exit_code}); `repro audit {}` checks it", status.as_str(), id.short()));
    Ok(())
}
