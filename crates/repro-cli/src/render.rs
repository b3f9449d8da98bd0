//! Output: human text or `--json` on stdout. Write errors (a closed pipe) propagate so
//! `main` can treat `repro runs | head` as success.
//!
//! Human text reaches the terminal only through [`Human`], which escapes terminal controls
//! and masks URL credentials in every line, so no renderer has to remember to: run names,
//! tags, params, paths and metric keys come from people and HTTP clients, and records made
//! before capture stripped credentials may hold one. JSON is written as it is (serde
//! escapes what JSON must; a JSON reader wants the exact values).

use std::io::Write;

use anyhow::Result;
use repro_capture::snapshot::Outcome;
use repro_core::audit::{count, human_bytes, AuditItem, AuditReport, ItemStatus};
use repro_core::diff::{PackageChange, RunDiff};
use repro_core::environment::EnvironmentSpec;
use repro_core::metrics::MetricPoint;
use repro_core::params::display_value;
use repro_exec::env::{CheckReport, EnvDiff, ParityReport};
use repro_exec::replay::ReplayReport;
use repro_exec::views::{self, DatasetRow, DatasetShow, EnvironmentShow};
use repro_store::fsck::FsckReport;
use repro_store::meta::EnvironmentRow;
use serde_json::{json, Value};

/// A writer for people: each line, once complete, has URL credentials masked
/// (`https://***@host`) and terminal controls escaped (`\u{1b}`) before it is written.
/// Newlines and tabs stay: multi-line output is legitimate.
pub struct Human<W: Write> {
    inner: W,
    line: Vec<u8>,
}

impl<W: Write> Human<W> {
    pub fn new(inner: W) -> Self {
        Human { inner, line: Vec::new() }
    }

    fn emit(&mut self) -> std::io::Result<()> {
        if self.line.is_empty() {
            return Ok(());
        }
        // Lines split at `\n` only, which no multi-byte character holds: whole characters.
        let text = String::from_utf8_lossy(&self.line);
        let masked = repro_core::secrets::mask_text(&text);
        let safe = repro_core::text::escape_unsafe(&masked);
        let written = self.inner.write_all(safe.as_bytes());
        self.line.clear();
        written
    }
}

impl<W: Write> Write for Human<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let mut rest = buf;
        while let Some(i) = rest.iter().position(|&b| b == b'\n') {
            self.line.extend_from_slice(&rest[..=i]);
            self.emit()?;
            rest = &rest[i + 1..];
        }
        self.line.extend_from_slice(rest);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.emit()?;
        self.inner.flush()
    }
}

impl<W: Write> Drop for Human<W> {
    fn drop(&mut self) {
        let _ = self.flush();
    }
}

/// Human text on stdout.
pub fn out() -> Human<std::io::StdoutLock<'static>> {
    Human::new(std::io::stdout().lock())
}

/// Human text on stderr: messages, warnings, the error line.
pub fn err() -> Human<std::io::StderrLock<'static>> {
    Human::new(std::io::stderr().lock())
}

/// `repro: TEXT` on stderr (a message a user reads, never data).
pub fn message(text: &str) {
    let _ = writeln!(err(), "repro: {text}");
}

pub fn json(v: &impl serde::Serialize) -> Result<()> {
    let mut o = std::io::stdout().lock();
    serde_json::to_writer_pretty(&mut o, v)?;
    writeln!(o)?;
    Ok(())
}

pub fn line(s: &str) -> Result<()> {
    let mut o = out();
    writeln!(o, "{s}")?;
    o.flush()?;
    Ok(())
}

/// Data for another program (signed envelopes), written exactly.
pub fn data(bytes: &[u8]) -> Result<()> {
    std::io::stdout().lock().write_all(bytes)?;
    Ok(())
}

fn short_time(rfc: &str) -> String {
    rfc.replace('T', " ").chars().take(19).collect()
}

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
    let views::RunParts { run: r, metrics, replays, models } = views::run_parts(v)?;
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
    writeln!(o, "environment")?;
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

pub fn environment_differs(
    python: &str,
    created: bool,
    differences: &[String],
    changes: &[PackageChange],
    as_json: bool,
) -> Result<()> {
    if as_json {
        return json(&json!({
            "verdict": null,
            "environment_differs": true,
            "python": python,
            "created": created,
            "differences": differences,
            "packages": changes,
        }));
    }
    let mut o = out();
    if created {
        writeln!(o, "the environment built at {python} does not match the recorded packages:")?;
    } else {
        writeln!(o, "{python} does not match the recorded environment; nothing was run:")?;
    }
    for d in differences {
        writeln!(o, "  {d}")?;
    }
    if !created {
        writeln!(o, "fix: pass --create-env to build a virtualenv with the recorded versions, or --python PATH")?;
    }
    Ok(())
}

pub fn replay(r: &ReplayReport, as_json: bool) -> Result<()> {
    if as_json {
        return json(r);
    }
    let mut o = out();
    writeln!(o, "replay    {} of run {}", r.replay, r.original)?;
    let c = &r.code;
    writeln!(
        o,
        "code      {} from {}{}{}",
        &c.commit[..c.commit.len().min(12)],
        c.source,
        if c.diff_applied { ", recorded diff applied" } else { "" },
        if c.untracked_restored > 0 { format!(", {} untracked restored", c.untracked_restored) } else { String::new() }
    )?;
    if let Some(origin) = &c.origin {
        writeln!(
            o,
            "origin    bundle {} signed by {}; allowed by {}",
            origin.bundle.short(),
            origin.signer.as_ref().map(|s| s.describe()).unwrap_or_else(|| "an unrecorded signer".into()),
            origin.allowed_by
        )?;
    }
    for i in &r.inputs {
        writeln!(o, "input     {}  {}, {}  {}", i.path, count(i.files, "file"), human_bytes(i.bytes), i.how)?;
    }
    if let Some(e) = &r.environment {
        writeln!(
            o,
            "python    {} {} ({} packages{})",
            e.python,
            e.version.as_deref().unwrap_or("?"),
            e.packages,
            e.created_with.as_ref().map(|t| format!(", built with {t}")).unwrap_or_default()
        )?;
    }
    for x in &r.outputs {
        writeln!(
            o,
            "output    {}  {}  {} → {}",
            x.path,
            x.verdict.as_str(),
            x.recorded.as_ref().map(|d| d.short()).unwrap_or_else(|| "absent".into()),
            x.replayed.as_ref().map(|d| d.short()).unwrap_or_else(|| "absent".into())
        )?;
    }
    for m in &r.metrics {
        let show = |v: Option<f64>| v.map(|v| v.to_string()).unwrap_or_else(|| "absent".into());
        writeln!(
            o,
            "metric    {} {} → {}{}",
            m.key,
            show(m.recorded),
            show(m.replayed),
            if m.within { "" } else { "  (outside tolerance)" }
        )?;
    }
    if !r.registry_calls.is_empty() {
        writeln!(o, "registry calls answered, not written (a replay never changes the registry):")?;
        for call in &r.registry_calls {
            writeln!(o, "  {}  {}", call.call, call.detail)?;
        }
    }
    if !r.captured_differences.is_empty() {
        writeln!(o, "captured fields that differ:")?;
        for d in &r.captured_differences {
            writeln!(o, "  {d}")?;
        }
    }
    writeln!(o, "verdict   {}", r.verdict.as_str().to_uppercase())?;
    for reason in &r.reasons {
        writeln!(o, "  {reason}")?;
    }
    if r.kept {
        writeln!(o, "tree      {} (kept)", r.tree)?;
    }
    if !r.verdict.reproduced() {
        writeln!(o, "next: repro diff {} {} explains the likely causes", r.original.short(), r.replay.short())?;
    }
    Ok(())
}

pub fn diff(d: &RunDiff, as_json: bool) -> Result<()> {
    if as_json {
        return json(d);
    }
    let mut o = out();
    writeln!(o, "a  {}", d.a)?;
    writeln!(o, "b  {}", d.b)?;
    for s in &d.sections {
        let shown: Vec<_> = s.changes.iter().collect();
        if s.same && shown.iter().all(|c| c.is_location_only()) {
            writeln!(o, "{:<12} same", s.name)?;
        } else {
            writeln!(o, "{:<12} differs", s.name)?;
        }
        for c in shown {
            writeln!(o, "  {}", c.describe())?;
        }
    }
    writeln!(o)?;
    if d.causes.is_empty() {
        if d.outputs_differ {
            writeln!(o, "no likely cause found")?;
        } else {
            writeln!(o, "the runs match: same outputs and no ingredient differs")?;
        }
        return Ok(());
    }
    if d.outputs_differ {
        writeln!(o, "likely causes, most likely first:")?;
    } else {
        writeln!(o, "outputs are the same; ingredient differences that did not change them:")?;
    }
    for (n, c) in d.causes.iter().enumerate() {
        writeln!(o, "  {}. {}", n + 1, c.summary)?;
        for e in &c.evidence {
            writeln!(o, "       {e}")?;
        }
    }
    Ok(())
}

fn items(o: &mut impl Write, items: &[AuditItem]) -> std::io::Result<()> {
    for i in items {
        let tag = match i.status {
            ItemStatus::Ok => "ok",
            ItemStatus::Warn => "WARN",
            ItemStatus::Missing => "MISSING",
        };
        writeln!(o, "  {tag:<8} {:<19} {}", i.name, i.detail)?;
        if let Some(f) = &i.fix {
            writeln!(o, "  {:<8} {:<19} fix: {f}", "", "")?;
        }
    }
    Ok(())
}

pub fn audit(r: &AuditReport, as_json: bool) -> Result<()> {
    if as_json {
        return json(r);
    }
    let mut o = out();
    let missing = r.items.iter().filter(|i| i.status == ItemStatus::Missing).count();
    let warn = r.items.iter().filter(|i| i.status == ItemStatus::Warn).count();
    let verdict = if r.complete {
        if warn > 0 {
            format!("complete, {warn} warning(s)")
        } else {
            "complete".into()
        }
    } else {
        format!(
            "INCOMPLETE: {missing} missing, {warn} warning(s){}",
            if r.strict { " (strict: warnings count)" } else { "" }
        )
    };
    writeln!(
        o,
        "audit of run {}{}: {verdict}",
        r.run.short(),
        r.name.as_ref().map(|n| format!(" ({n})")).unwrap_or_default()
    )?;
    items(&mut o, &r.items)?;
    Ok(())
}

pub fn refusal(list: &[AuditItem], as_json: bool) -> Result<()> {
    if as_json {
        json(&json!({"refused": true, "items": list}))?;
    }
    let mut e = err();
    writeln!(e, "repro: --strict: refusing to start; nothing was run or recorded. The pre-run audit found:")?;
    let bad: Vec<AuditItem> = list.iter().filter(|i| i.status != ItemStatus::Ok).cloned().collect();
    items(&mut e, &bad)?;
    Ok(())
}

pub fn snapshot(s: &Outcome, as_json: bool) -> Result<()> {
    if as_json {
        return json(s);
    }
    let mut o = out();
    let name = s.dataset.as_ref().map(|d| format!("{}:{}", d.name, d.version)).unwrap_or_else(|| "(unnamed)".into());
    writeln!(
        o,
        "{name}  {}  {} file(s), {}{}",
        s.digest,
        s.files,
        human_bytes(s.bytes),
        if s.reference { "  (reference only: contents not stored)" } else { "" }
    )?;
    writeln!(
        o,
        "  hashed {} file(s) ({}), {} from the stat cache; {} new object(s), {}",
        s.hashed_files,
        human_bytes(s.hashed_bytes),
        s.files.saturating_sub(s.hashed_files),
        s.new_objects,
        human_bytes(s.new_bytes)
    )?;
    Ok(())
}

pub fn datasets(rows: &[DatasetRow], as_json: bool) -> Result<()> {
    if as_json {
        return json(&rows);
    }
    let mut o = out();
    if rows.is_empty() {
        writeln!(o, "no datasets yet; create one with: repro data snapshot PATH --name NAME")?;
        return Ok(());
    }
    writeln!(o, "{:<28} {:<22} {:>7} {:>10}  {:<20} SOURCE", "DATASET", "SNAPSHOT", "FILES", "SIZE", "CREATED (UTC)")?;
    for d in rows {
        let label = format!("{}:{}{}", d.name, d.version, if d.reference { " (ref)" } else { "" });
        writeln!(
            o,
            "{:<28} {:<22} {:>7} {:>10}  {:<20} {}",
            label,
            d.snapshot.short(),
            d.files.map(|f| f.to_string()).unwrap_or_default(),
            d.bytes.map(human_bytes).unwrap_or_default(),
            short_time(&d.created_at),
            d.source
        )?;
    }
    Ok(())
}

pub fn dataset(d: &DatasetShow, as_json: bool) -> Result<()> {
    if as_json {
        return json(d);
    }
    let mut o = out();
    writeln!(o, "dataset   {}:{}", d.name, d.version)?;
    writeln!(o, "snapshot  {}", d.snapshot)?;
    writeln!(o, "source    {}", d.source)?;
    writeln!(
        o,
        "contents  {}",
        if d.stored == Some(true) { "stored" } else { "reference only (digests recorded, contents not stored)" }
    )?;
    writeln!(o, "files     {} ({})", d.files, human_bytes(d.bytes))?;
    for e in d.entries.iter().take(50) {
        writeln!(o, "  {:o}  {:>10}  {}  {}", e.mode, human_bytes(e.size), e.digest.short(), e.path)?;
    }
    if d.entries.len() > 50 {
        writeln!(o, "  … and {} more (--json lists all)", d.entries.len() - 50)?;
    }
    Ok(())
}

pub fn migration(r: &repro_store::migrate::MigrationReport, as_json: bool) -> Result<()> {
    if as_json {
        return json(r);
    }
    let mut o = out();
    if let Some(db) = &r.db {
        let rows: u64 = r.tables.iter().map(|t| t.rows).sum();
        writeln!(
            o,
            "metadata: {rows} rows in {} tables copied to {db}; every count and digest matches",
            r.tables.len()
        )?;
    }
    if let Some(objects) = &r.objects {
        writeln!(
            o,
            "objects: {} uploaded to {objects}, {} read back and verified",
            r.objects_copied, r.objects_verified
        )?;
    }
    writeln!(o, "the store now uses the new backends (.repro/repro.toml)")?;
    if let Some(old) = &r.retired_db {
        writeln!(o, "the embedded database {} is no longer used; keep it as a backup or remove it", old.display())?;
    }
    Ok(())
}

pub fn fsck(r: &FsckReport, as_json: bool) -> Result<()> {
    if as_json {
        return json(r);
    }
    let mut o = out();
    writeln!(
        o,
        "fsck: {} objects ({}), {} runs, {} snapshots, {} registry events: {}",
        r.objects,
        human_bytes(r.bytes),
        r.runs,
        r.snapshots,
        r.registry_events,
        if r.clean { "clean" } else { "DAMAGED" }
    )?;
    for d in &r.corrupt {
        writeln!(o, "  corrupt object {d}")?;
    }
    for s in &r.stray {
        writeln!(o, "  stray file in the object store: {s}")?;
    }
    for b in &r.broken_references {
        writeln!(o, "  {} refers to {} object {}", b.referrer, b.problem, b.object)?;
    }
    for b in &r.bad_runs {
        writeln!(o, "  {}: {}", b.run, b.problem)?;
    }
    for p in &r.registry {
        writeln!(o, "  {p}")?;
    }
    for i in &r.interrupted {
        writeln!(o, "  run {} was interrupted (repro died before it ended); marked interrupted", i.short())?;
    }
    if r.stale_temp_removed > 0 {
        writeln!(o, "  removed {} temp folder(s) left by interrupted writers", r.stale_temp_removed)?;
    }
    for t in &r.tampered {
        writeln!(o, "  {t}")?;
    }
    for c in &r.caches_rebuilt {
        writeln!(o, "  {c}")?;
    }
    for w in &r.warnings {
        writeln!(o, "  warning: {w}")?;
    }
    Ok(())
}

pub fn env_check(r: &CheckReport, as_json: bool) -> Result<()> {
    if as_json {
        return json(r);
    }
    let mut o = out();
    for q in &r.requirements {
        let spec = if q.spec.is_empty() { "(no version)" } else { q.spec.as_str() };
        writeln!(o, "  {:<9} {:<28} {:<24} {}", q.status_str(), q.name, spec, q.origin)?;
    }
    let verdict = if r.all_pinned() { "every dependency pinned" } else { "not fully pinned" };
    writeln!(
        o,
        "{} ({}): {} pinned, {} loose, {} unpinned — {verdict}",
        r.path, r.format, r.pinned, r.loose, r.unpinned
    )?;
    Ok(())
}

pub fn parity(r: &ParityReport, as_json: bool) -> Result<()> {
    if as_json {
        return json(r);
    }
    let mut o = out();
    let verdict = if r.pass { "PASS" } else { "FAIL" };
    writeln!(o, "parity of {} against {}: {verdict}", r.subject, r.against)?;
    if !r.artifact_packages.is_empty() {
        writeln!(o, "  the artifact imports: {}", r.artifact_packages.join(", "))?;
    }
    if let Some((a, b)) = &r.python {
        let tag = if r.python_critical { "FAIL" } else { "warn" };
        writeln!(o, "  {tag:<5} Python: trained with {a}, serving with {b}")?;
    }
    for d in &r.differences {
        let tag = if d.critical { "FAIL" } else { "warn" };
        writeln!(o, "  {tag:<5} {}", d.describe())?;
    }
    if r.differences.is_empty() && r.python.is_none() {
        writeln!(o, "  same packages, same Python")?;
    }
    Ok(())
}

pub fn env_registered(row: &EnvironmentRow, spec: &EnvironmentSpec, new: bool, as_json: bool) -> Result<()> {
    if as_json {
        return json(
            &json!({"name": row.name, "version": row.version, "new": new, "kind": row.kind, "spec": row.spec, "entries": spec.len()}),
        );
    }
    let what = if new { "registered" } else { "already registered (same content)" };
    line(&format!(
        "{}:{} {what}: {} {} from {}",
        row.name,
        row.version,
        count(spec.len() as u64, if row.kind == "declared" { "requirement" } else { "package" }),
        row.kind,
        row.source
    ))
}

pub fn env_list(rows: &[EnvironmentRow], as_json: bool) -> Result<()> {
    if as_json {
        return json(&rows);
    }
    let mut o = out();
    if rows.is_empty() {
        writeln!(o, "no registered environments; add one with: repro env register requirements.txt --name training")?;
        return Ok(());
    }
    writeln!(o, "{:<28} {:<10} {:<20} SOURCE", "ENVIRONMENT", "KIND", "REGISTERED (UTC)")?;
    for r in rows {
        writeln!(
            o,
            "{:<28} {:<10} {:<20} {}",
            format!("{}:{}", r.name, r.version),
            r.kind,
            short_time(&repro_store::rfc3339(r.created_ms)),
            r.source
        )?;
    }
    Ok(())
}

pub fn env_show(e: &EnvironmentShow, as_json: bool) -> Result<()> {
    if as_json {
        return json(e);
    }
    let mut o = out();
    let kind = match e.spec {
        EnvironmentSpec::Declared { .. } => "declared",
        EnvironmentSpec::Installed { .. } => "installed",
    };
    writeln!(o, "{}:{}  {kind} from {}", e.name, e.version, e.source)?;
    match &e.spec {
        EnvironmentSpec::Declared { declared } => {
            writeln!(o, "  {} ({}), {}", declared.path, declared.format, declared.digest.short())?;
            for q in &declared.requirements {
                let spec = if q.spec.is_empty() { "(no version)" } else { q.spec.as_str() };
                writeln!(o, "  {:<9} {:<28} {}", q.status_str(), q.name, spec)?;
            }
        }
        EnvironmentSpec::Installed { python_version, packages } => {
            writeln!(o, "  Python {}", python_version.as_deref().unwrap_or("?"))?;
            for p in packages {
                writeln!(o, "  {:<28} {}", p.name, p.version)?;
            }
        }
    }
    Ok(())
}

pub fn env_diff(d: &EnvDiff, as_json: bool) -> Result<()> {
    if as_json {
        return json(d);
    }
    let mut o = out();
    writeln!(o, "a  {}", d.a)?;
    writeln!(o, "b  {}", d.b)?;
    if let Some((a, b)) = &d.python {
        writeln!(o, "  Python {a} → {b}")?;
    }
    for c in &d.changes {
        writeln!(o, "  {}", c.describe())?;
    }
    if d.python.is_none() && d.changes.is_empty() {
        writeln!(o, "  same packages")?;
    }
    Ok(())
}

pub fn env_drift(env: &str, differences: &[String], as_json: bool) -> Result<()> {
    if as_json {
        return json(&json!({"refused": true, "environment": env, "differences": differences}));
    }
    let mut o = out();
    writeln!(o, "the interpreter does not match {env}; nothing was run:")?;
    for d in differences {
        writeln!(o, "  {d}")?;
    }
    writeln!(o, "fix: install the registered versions (repro env export), or pass --allow-env-drift to run and record the drift")?;
    Ok(())
}
