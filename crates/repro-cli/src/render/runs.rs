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
    let views::RunParts { run: r, tags, metrics, replays, models } = views::run_parts(v)?;
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
