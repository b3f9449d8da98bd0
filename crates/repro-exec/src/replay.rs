//! `repro replay`: rebuild a recorded run from the store, run it again, and say whether the
//! result is the same.
//!
//! The order is the one an auditor would follow by hand, and every step is checked before
//! the next: the objects the rebuild needs exist and hash right; the code is a fresh clone
//! at the recorded commit with the recorded diff and untracked files, and `git diff HEAD`
//! of it reproduces the recorded diff byte for byte; each input is restored and re-hashed;
//! the interpreter's installed set equals the recorded one (or a new virtualenv is built
//! to equal it). Only then does the command run, through `repro run` itself, so the replay
//! is a complete run of its own, linked to the original.
//!
//! Everything is built in a private folder of the store's `tmp/` (named by our pid, so
//! `repro fsck` removes it if we are killed); on any error it is removed before the error
//! is reported, and nothing is recorded.
//!
//! A run whose record another store made (brought by `repro bundle import`, or a replay of
//! such a run) is foreign code: its command, params, diff and script are the bundle's, even
//! when the commit is found in a local repository. It is replayed only when the bundle's
//! signer is a key `[trust]` lists now, or with `--trust-code`; otherwise the replay stops
//! before anything is built. A replay never writes to the registry: the in-process server
//! holds the command's MLflow registry calls, and the report lists them.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};

use repro_capture::{git, python, script};
use repro_core::diff::{compare_packages, PackageChange, INSTALLER_TOOLING};
use repro_core::metrics::last_values;
use repro_core::record::{PythonEnvironment, RunRecord, RunStatus, Verdict};
use repro_core::registry::{BundleSigner, Change};
use repro_core::snapshot::{Manifest, SnapshotKind};
use repro_core::{Digest, RunId};
use repro_store::meta::{ReplayRow, StoredRun};
use repro_store::objects::Verified;
use repro_store::Store;
use serde::Serialize;

use repro_core::replay::{compare_metrics, judge};
pub use repro_core::replay::{FileComparison, MetricComparison, OutputComparison};

use crate::run::{RunOptions, RunOutcome, DETERMINISM_VARIABLES};
use crate::{ExecError, Reporter, Result};

#[derive(Clone, Debug, Default)]
pub struct ReplayOptions {
    pub run: Option<RunId>,
    /// Where to build the tree (must not exist, or be empty); default: a private folder.
    pub workdir: Option<PathBuf>,
    /// The interpreter to run with (default: the recorded one if it still exists, else python3).
    pub python: Option<PathBuf>,
    /// Build a fresh virtualenv with exactly the recorded packages.
    pub create_env: bool,
    /// Absolute tolerance per metric (default 0: equal).
    pub tolerances: BTreeMap<String, f64>,
    /// Leave the rebuilt tree (and environment) for inspection.
    pub keep: bool,
    pub cwd: PathBuf,
    pub vars: BTreeMap<String, String>,
    /// The tracking server the replayed command logs into, as `repro run` gives one. It
    /// must hold registry writes (see [`HeldCalls`]); without one, the command's MLflow
    /// variables are removed so its calls go nowhere shared.
    pub tracking_uri: Option<String>,
    pub tracking_token: Option<String>,
    /// Where that server lists the registry calls it answered without writing them.
    pub registry_calls: Option<HeldCalls>,
    /// Run a foreign run's code even though no trusted key signed the bundle it came from.
    pub trust_code: bool,
}

/// An MLflow registry write a replayed command made, answered as if it were done and not
/// written: a replay re-runs training, it must not register, promote or alias anything.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct HeldRegistryCall {
    /// The MLflow endpoint, e.g. `model-versions/create`.
    pub call: String,
    pub model: String,
    /// The version it was about (absent for a model-level call).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version: Option<u32>,
    /// The registry event it would have appended (`register`, `tag`, `alias`, `promote` …).
    pub kind: String,
    /// What it would have done, for people.
    pub detail: String,
}

/// The list a replay's tracking server fills while the command runs.
pub type HeldCalls = Arc<Mutex<Vec<HeldRegistryCall>>>;

/// Where a foreign run's record came from, and why its code was allowed to run.
#[derive(Clone, Debug, Serialize)]
pub struct CodeOrigin {
    /// The imported run whose record this one is (itself, or the run it replays).
    pub imported_run: RunId,
    pub bundle: Digest,
    /// The bundle's signer as judged at import (absent for imports before repro recorded it).
    pub signer: Option<BundleSigner>,
    /// `trusted signer` (a key `[trust]` lists now) or `--trust-code`.
    pub allowed_by: &'static str,
}

#[derive(Debug, Serialize)]
pub struct CodeReport {
    /// Where the commit came from.
    pub source: String,
    pub commit: String,
    pub branch: Option<String>,
    pub diff_applied: bool,
    pub untracked_restored: usize,
    /// Files git does not track that were restored from the store (an ignored script).
    pub restored_from_store: Vec<String>,
    /// For a run another store recorded: the bundle it came from and who vouched for it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub origin: Option<CodeOrigin>,
}

#[derive(Debug, Serialize)]
pub struct InputReport {
    pub path: String,
    pub dataset: Option<String>,
    pub files: u64,
    pub bytes: u64,
    /// `restored from the store`, or `verified in place` for inputs outside the repository.
    pub how: &'static str,
}

#[derive(Debug, Serialize)]
pub struct EnvironmentReport {
    pub python: String,
    pub version: Option<String>,
    pub packages: usize,
    /// The tool that built a fresh environment (`uv`, `venv+pip`), when one was built.
    pub created_with: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct ReplayReport {
    pub original: RunId,
    pub replay: RunId,
    pub verdict: Verdict,
    /// Why the verdict is what it is, one line each.
    pub reasons: Vec<String>,
    /// The rebuilt tree (gone unless kept).
    pub tree: String,
    pub kept: bool,
    pub code: CodeReport,
    pub inputs: Vec<InputReport>,
    pub environment: Option<EnvironmentReport>,
    pub status: RunStatus,
    pub exit_code: i32,
    pub recorded_exit_code: Option<i32>,
    pub outputs: Vec<OutputComparison>,
    pub metrics: Vec<MetricComparison>,
    /// Captured fields that differ between the original and the replay (thread counts, CPU
    /// flags, packages …), whatever the verdict.
    pub captured_differences: Vec<String>,
    /// MLflow registry writes the command made, answered and not written.
    pub registry_calls: Vec<HeldRegistryCall>,
    /// The stored report object.
    pub report_object: Option<Digest>,
}

#[derive(Debug)]
pub enum ReplayOutcome {
    /// The interpreter's packages differ from the recorded set: nothing ran.
    EnvironmentDiffers {
        python: String,
        created: bool,
        differences: Vec<String>,
        changes: Vec<PackageChange>,
    },
    Done(Box<ReplayReport>),
}

fn cannot(run: &RunId, message: impl Into<String>) -> ExecError {
    ExecError::Replay { run: run.short().to_string(), message: message.into() }
}

/// The private folder a replay builds in; removed on drop unless kept.
struct WorkArea {
    dir: PathBuf,
    tree: PathBuf,
    /// `--workdir`: the tree lives there, and was created (true) or emptied (false) by us.
    user_tree: Option<bool>,
    keep: bool,
}

impl Drop for WorkArea {
    fn drop(&mut self) {
        if self.keep {
            return;
        }
        let _ = fs::remove_dir_all(&self.dir);
        match self.user_tree {
            Some(true) => {
                let _ = fs::remove_dir_all(&self.tree);
            }
            Some(false) => {
                if let Ok(entries) = fs::read_dir(&self.tree) {
                    for e in entries.flatten() {
                        let p = e.path();
                        let _ =
                            if p.is_dir() && !p.is_symlink() { fs::remove_dir_all(&p) } else { fs::remove_file(&p) };
                    }
                }
            }
            None => {}
        }
    }
}

pub fn replay(store: &mut Store, opts: &ReplayOptions, reporter: &dyn Reporter) -> Result<ReplayOutcome> {
    let id = opts.run.clone().ok_or_else(|| ExecError::Usage("no run given; e.g. repro replay latest".into()))?;
    let original = store.meta.get_run(&id)?;
    let rec = original.record.clone();
    match rec.status {
        RunStatus::Running => return Err(cannot(&id, "it is still running; replay it once it has ended")),
        RunStatus::Interrupted => {
            return Err(cannot(&id, "it was interrupted, so it has no recorded result to compare with; run it again"))
        }
        _ => {}
    }
    let Some(commit) = rec.code.commit.clone() else {
        let why = rec.code.error.clone().unwrap_or_else(|| "the repository had no commit yet".into());
        return Err(cannot(&id, format!("its code was not recorded at a git commit ({why}), so it cannot be rebuilt")));
    };
    if rec.code.repo_root.is_none() {
        return Err(cannot(&id, "it was not run inside a git repository, so its code cannot be rebuilt"));
    }
    let metrics_recorded = last_values(&store.meta.metrics(&id)?);
    for key in opts.tolerances.keys() {
        if !metrics_recorded.contains_key(key) {
            let known: Vec<&str> = metrics_recorded.keys().map(String::as_str).collect();
            let known = if known.is_empty() { "none".to_string() } else { known.join(", ") };
            return Err(ExecError::Usage(format!(
                "--tolerance {key}=…: run {} recorded no metric '{key}' (its metrics: {known})",
                id.short()
            )));
        }
    }
    let origin = code_origin(store, &rec, opts.trust_code)?;
    check_objects(store, &original)?;
    let python_choice = choose_interpreter(&rec, opts)?;

    // The work area: a private, pid-named folder of the store (fsck removes it if we die).
    let dir = store.objects.tmp_dir().join(format!("{}-replay-{}", std::process::id(), uuid::Uuid::new_v4().simple()));
    fs::create_dir_all(&dir).map_err(ExecError::io("create", &dir))?;
    let mut area = WorkArea { tree: dir.join("tree"), dir, user_tree: None, keep: false };
    if let Some(w) = &opts.workdir {
        let w = opts.cwd.join(w);
        match fs::read_dir(&w) {
            Ok(mut entries) => {
                if entries.next().is_some() {
                    return Err(ExecError::Usage(format!(
                        "--workdir {} is not empty; give a new or empty folder",
                        w.display()
                    )));
                }
                area.user_tree = Some(false);
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                fs::create_dir_all(&w).map_err(ExecError::io("create", &w))?;
                area.user_tree = Some(true);
            }
            Err(e) => return Err(ExecError::Io { action: "read", path: w, source: e }),
        }
        area.tree = fs::canonicalize(&w).map_err(ExecError::io("read", &w))?;
    }

    // 1. Code.
    reporter.message(&format!(
        "rebuilding the code of run {} at commit {}",
        id.short(),
        &commit[..commit.len().min(12)]
    ));
    let mut code = rebuild_code(store, &rec, &commit, &area.tree, &area.dir, &opts.cwd)?;
    code.origin = origin;

    // 2. Data.
    let inputs = restore_inputs(store, &rec, &area.tree, reporter)?;

    // 3. Environment.
    let mut env_report = None;
    let mut interpreter: Option<PathBuf> = None;
    if let Some(recorded) = rec.environment.python.as_ref() {
        let (exe, how) = python_choice.clone().unwrap_or_else(|| (PathBuf::from(&recorded.executable), "recorded"));
        let mut exe = exe;
        let mut created_with = None;
        if opts.create_env {
            let env_dir = area.dir.join("env");
            reporter.message(&format!("building a virtualenv with the {} recorded packages", recorded.packages.len()));
            let tool = create_env(&id, recorded, &env_dir, &area.dir, &opts.vars)?;
            exe = env_dir.join("bin/python");
            created_with = Some(tool);
        }
        let actual = python::inspect(&exe, how).ok_or_else(|| {
            cannot(&id, format!("{} is not a Python installation repro can read; pass --python PATH", exe.display()))
        })?;
        let (differences, changes) = environment_differences(recorded, &actual);
        if !differences.is_empty() {
            return Ok(ReplayOutcome::EnvironmentDiffers {
                python: exe.display().to_string(),
                created: created_with.is_some(),
                differences,
                changes,
            });
        }
        reporter.message(&format!(
            "environment: {} matches the {} recorded packages (Python {})",
            exe.display(),
            actual.packages.len(),
            actual.version.as_deref().unwrap_or("?")
        ));
        env_report = Some(EnvironmentReport {
            python: exe.display().to_string(),
            version: actual.version.clone(),
            packages: actual.packages.len(),
            created_with,
        });
        interpreter = Some(exe);
    }

    // 4. Run, as `repro run` does, with the recorded seed, params and variables.
    let mut run_opts = run_options(store, &rec, &area, interpreter.as_deref(), opts)?;
    run_opts.tracking_uri = opts.tracking_uri.clone();
    run_opts.tracking_token = opts.tracking_token.clone();
    reporter.message(&format!("running: {}", run_opts.command.join(" ")));
    let (replay_id, status, exit_code, replay_record) = match crate::run::run(store, &run_opts, reporter)? {
        RunOutcome::Ran { id, status, exit_code, record } => (id, status, exit_code, record),
        RunOutcome::Refused { .. } | RunOutcome::EnvDrift { .. } => {
            return Err(cannot(&id, "the rebuilt run was refused"))
        }
    };

    // 5. Compare.
    let metrics_replayed = last_values(&store.meta.metrics(&replay_id)?);
    let comparator = store.config.replay.compare.clone();
    let outputs = compare_outputs(store, &rec, &replay_record, &area, comparator.as_deref(), &run_opts.vars)?;
    let metrics = compare_metrics(&metrics_recorded, &metrics_replayed, &opts.tolerances);
    let (verdict, reasons) = judge(&outputs, &metrics, rec.exit_code, exit_code, comparator.is_some());
    let replay_stored = store.meta.get_run(&replay_id)?;
    let captured_differences = crate::diff::diff_runs(store, &original, &replay_stored)?.captured_field_differences();
    let registry_calls =
        opts.registry_calls.as_ref().and_then(|c| c.lock().ok().map(|calls| calls.clone())).unwrap_or_default();

    // 6. Record the verdict, linked to the original.
    let mut report = ReplayReport {
        original: id.clone(),
        replay: replay_id.clone(),
        verdict,
        reasons,
        tree: area.tree.display().to_string(),
        kept: opts.keep,
        code,
        inputs,
        environment: env_report,
        status,
        exit_code,
        recorded_exit_code: rec.exit_code,
        outputs,
        metrics,
        captured_differences,
        registry_calls,
        report_object: None,
    };
    if opts.keep {
        area.keep = true;
        // The private folder holds the tree (unless --workdir) and a built environment; it
        // moves out of tmp/ (which fsck clears) when it holds either, and is removed otherwise.
        let built_env = area.dir.join("env").exists();
        if area.user_tree.is_none() || built_env {
            let kept = store.root().join("replays").join(replay_id.as_str());
            fs::create_dir_all(store.root().join("replays")).map_err(ExecError::io("create", store.root()))?;
            fs::rename(&area.dir, &kept).map_err(ExecError::io("keep", &kept))?;
            if area.user_tree.is_none() {
                report.tree = kept.join("tree").display().to_string();
            }
        } else {
            let _ = fs::remove_dir_all(&area.dir);
        }
    }
    let bytes = serde_json::to_vec_pretty(&report).expect("reports serialize");
    let object = store.objects.put_bytes(&bytes)?;
    report.report_object = Some(object.clone());
    store.meta.record_replay(&ReplayRow {
        replay: replay_id,
        original: id,
        verdict,
        report: object,
        created_ms: repro_store::now_ms(),
    })?;
    drop(area);
    Ok(ReplayOutcome::Done(Box::new(report)))
}

/// Whether `rec` is foreign (its record, or that of the run it replays, came from a bundle),
/// and if so whether its code may run: the bundle's signer is a key `[trust]` lists now, or
/// the caller passed `--trust-code`. Refused before anything is built.
///
/// The commit alone would not decide it: a foreign record names the command, params, diff,
/// untracked files and interpreter, so even a commit found in a local repository runs what
/// the bundle says. A replay of a foreign run copies its record, so it stays foreign.
fn code_origin(store: &Store, rec: &RunRecord, trust_code: bool) -> Result<Option<CodeOrigin>> {
    // Which import brought each run (the first, if several name it).
    let mut imported: BTreeMap<RunId, (Digest, Option<BundleSigner>)> = BTreeMap::new();
    for e in store.meta.registry_events()?.iter().filter(|e| e.kind == "import") {
        // An import that cannot be read might be the one that brought this run: stop.
        let Ok(Change::Import { run, bundle, signer, runs, .. }) = Change::from_payload(&e.kind, &e.payload) else {
            return Err(cannot(
                &rec.id,
                format!(
                    "registry event {} cannot be read, so where this run came from is unknown; run `repro fsck`",
                    e.describe()
                ),
            ));
        };
        for r in runs.unwrap_or_else(|| vec![run]) {
            imported.entry(r).or_insert_with(|| (bundle.clone(), signer.clone()));
        }
    }
    if imported.is_empty() {
        return Ok(None);
    }
    // Up the `replay_of` links (bounded: records are data, a cycle must not hang us).
    let mut at = rec.clone();
    let mut found = None;
    for _ in 0..64 {
        if let Some((bundle, signer)) = imported.get(&at.id) {
            found = Some((at.id.clone(), bundle.clone(), signer.clone()));
            break;
        }
        let Some(parent) = at.replay_of.clone() else { break };
        match store.meta.get_run(&parent) {
            Ok(p) => at = p.record,
            Err(repro_store::StoreError::UnknownRun(_)) => break,
            Err(e) => return Err(e.into()),
        }
    }
    let Some((imported_run, bundle, signer)) = found else { return Ok(None) };
    let keyid = signer.as_ref().and_then(|s| s.keyid.clone());
    let trusted_now = match &keyid {
        Some(k) => crate::trust::Trust::of(store)?.contains(k),
        None => false,
    };
    let allowed_by = match (trusted_now, trust_code) {
        (true, _) => "trusted signer",
        (false, true) => "--trust-code",
        (false, false) => {
            let who = match (&signer, &keyid) {
                (None, _) => "imported before repro recorded who signed it".to_string(),
                (Some(_), None) => "which is unsigned".to_string(),
                (Some(_), Some(k)) => format!("signed by an untrusted key {k} (not in [trust] of .repro/repro.toml)"),
            };
            let argv = serde_json::to_string(&rec.script.argv).expect("strings serialize");
            let via =
                if imported_run == rec.id { String::new() } else { format!(" (through run {})", imported_run.short()) };
            return Err(cannot(
                &rec.id,
                format!(
                    "its record came from bundle {}{via}, {who}, so replaying it would run that bundle's code: {argv}; read the code, then pass --trust-code, or list the signer's key under [trust] signers",
                    bundle.short()
                ),
            ));
        }
    };
    Ok(Some(CodeOrigin { imported_run, bundle, signer, allowed_by }))
}

/// Every object the rebuild needs, checked before anything is built: the code's diff and
/// untracked files, the script, the environment and params files, and the manifests of
/// the inputs and outputs (input contents are re-hashed as they are restored).
fn check_objects(store: &Store, run: &StoredRun) -> Result<()> {
    let rec = &run.record;
    let mut needed: Vec<(Digest, String)> = Vec::new();
    if let Some(d) = &rec.code.diff {
        needed.push((d.clone(), "the uncommitted diff".into()));
    }
    for f in &rec.code.untracked {
        needed.push((f.digest.clone(), format!("the untracked file {}", f.path)));
    }
    if let (Some(d), Some(p)) = (&rec.script.digest, &rec.script.path) {
        needed.push((d.clone(), format!("the script {p}")));
    }
    if let Some(decl) = &rec.environment.declared {
        needed.push((decl.digest.clone(), format!("the environment file {}", decl.path)));
        for c in &decl.companions {
            needed.push((c.digest.clone(), format!("the environment file {}", c.path)));
        }
    }
    for f in &rec.params.files {
        needed.push((f.digest.clone(), format!("the params file {}", f.path)));
    }
    for i in &rec.inputs {
        needed.push((i.snapshot.clone(), format!("the manifest of input {}", i.path)));
    }
    for o in &rec.outputs {
        if let Some(s) = &o.snapshot {
            needed.push((s.clone(), format!("the manifest of output {}", o.path)));
        }
    }
    for (digest, what) in &needed {
        let problem = match store.objects.verify(digest)? {
            Verified::Ok { .. } => continue,
            Verified::Missing => "missing from the store",
            Verified::Corrupt => "corrupt (its content no longer hashes to its name)",
        };
        return Err(cannot(
            &rec.id,
            format!(
                "{what} ({}) is {problem}; `repro fsck` lists the damage — restore the store from a backup",
                digest.short()
            ),
        ));
    }
    for i in rec.inputs.iter().filter(|i| !i.reference) {
        let m = read_manifest(store, &i.snapshot, &rec.id)?;
        if let Some(e) = m.entries.iter().find(|e| !store.objects.contains(&e.digest)) {
            return Err(cannot(
                &rec.id,
                format!(
                    "file {} of input {} ({}) is missing from the store; `repro fsck` lists the damage",
                    e.path,
                    i.path,
                    e.digest.short()
                ),
            ));
        }
    }
    Ok(())
}

fn read_manifest(store: &Store, digest: &Digest, run: &RunId) -> Result<Manifest> {
    let bytes = store.objects.read(digest)?;
    Manifest::from_bytes(&bytes)
        .map_err(|e| cannot(run, format!("the manifest {} is not a manifest ({e}); run `repro fsck`", digest.short())))
}

/// The interpreter named by `--python`, else the recorded one if it still exists, else
/// python3 on PATH. `None` when the run recorded no Python.
fn choose_interpreter(rec: &RunRecord, opts: &ReplayOptions) -> Result<Option<(PathBuf, &'static str)>> {
    let Some(recorded) = rec.environment.python.as_ref() else { return Ok(None) };
    if let Some(p) = &opts.python {
        let p = opts.cwd.join(p);
        if !p.exists() {
            return Err(ExecError::Usage(format!(
                "--python {}: no such file; give the path of a Python interpreter",
                p.display()
            )));
        }
        return Ok(Some((p, "--python")));
    }
    let exe = PathBuf::from(&recorded.executable);
    if exe.exists() {
        return Ok(Some((exe, "recorded")));
    }
    let path_var = opts.vars.get("PATH").map(std::ffi::OsString::from);
    Ok(script::resolve_program("python3", Path::new("/"), path_var.as_deref()).map(|p| (p, "PATH")))
}

/// What differs between the recorded installed set and an interpreter's, one line each.
fn environment_differences(
    recorded: &PythonEnvironment,
    actual: &PythonEnvironment,
) -> (Vec<String>, Vec<PackageChange>) {
    // Capture strips credentials from package URLs; a run recorded before it did must still
    // match the same packages installed from the same (credentialed) URLs.
    let recorded_packages: Vec<_> = recorded
        .packages
        .iter()
        .map(|p| {
            let mut p = p.clone();
            p.url = p.url.map(|u| repro_core::secrets::strip_text(&u).0.into_owned());
            p
        })
        .collect();
    let changes = compare_packages(&recorded_packages, &actual.packages, &INSTALLER_TOOLING);
    let mut lines = Vec::new();
    if recorded.version != actual.version {
        lines.push(format!(
            "Python {} → {}",
            recorded.version.as_deref().unwrap_or("?"),
            actual.version.as_deref().unwrap_or("?")
        ));
    }
    lines.extend(changes.iter().map(PackageChange::describe));
    (lines, changes)
}

// ---- 1. code ---------------------------------------------------------------------------

fn rebuild_code(
    store: &Store,
    rec: &RunRecord,
    commit: &str,
    tree: &Path,
    scratch: &Path,
    cwd: &Path,
) -> Result<CodeReport> {
    let id = &rec.id;
    let root = rec.code.repo_root.as_deref().map(PathBuf::from);
    let mut tried: Vec<String> = Vec::new();
    let mut source = None;
    // A local repository holding the commit: the recorded one, else the one we stand in.
    let here = git::toplevel(cwd);
    for (repo, label) in [(root.clone(), "the original repository"), (here, "the repository of the current folder")] {
        let Some(repo) = repo else { continue };
        if source.is_some() || tried.iter().any(|t| t.contains(&repo.display().to_string())) {
            continue;
        }
        if !repo.join(".git").exists() {
            tried.push(format!("{} is gone", repo.display()));
            continue;
        }
        if !git::has_commit(&repo, commit) {
            tried.push(format!("{} does not hold it", repo.display()));
            continue;
        }
        reset_dir(tree)?;
        match git::clone_into(&repo.display().to_string(), tree, true) {
            Ok(()) => source = Some(format!("{label} {}", repo.display())),
            Err(e) => tried.push(format!("cloning {} failed ({e})", repo.display())),
        }
    }
    // A code bundle imported with the run (`repro bundle import`): local and verified.
    if source.is_none() {
        if let Some(obj) = store.meta.code_bundle(commit)? {
            match store.objects.verify(&obj)? {
                repro_store::objects::Verified::Ok { .. } => {
                    reset_dir(tree)?;
                    let path = store.objects.fetch(&obj)?;
                    match git::clone_into(&path.display().to_string(), tree, false) {
                        Ok(()) if git::has_commit(tree, commit) => {
                            source = Some(format!("the code bundle {} imported with the run", obj.short()))
                        }
                        Ok(()) => tried.push(format!("the code bundle {} does not hold it", obj.short())),
                        Err(e) => tried.push(format!("the code bundle {} could not be cloned ({e})", obj.short())),
                    }
                }
                _ => tried.push(format!("the code bundle {} is missing or corrupt", obj.short())),
            }
        }
    }
    // The recorded remote.
    if source.is_none() {
        match rec.code.remote.as_deref() {
            Some(url) => {
                reset_dir(tree)?;
                match git::clone_into(url, tree, false) {
                    Ok(()) if git::has_commit(tree, commit) || git::fetch_commit(tree, commit) => {
                        source = Some(format!("the remote {url}"))
                    }
                    Ok(()) => tried.push(format!("the remote {url} does not have it")),
                    Err(e) => tried.push(format!("the remote {url} could not be cloned ({e})")),
                }
            }
            None => tried.push("no remote was recorded".into()),
        }
    }
    let Some(source) = source else {
        return Err(cannot(
            id,
            format!(
                "commit {} is not reachable: {}; fetch or push that commit somewhere repro can reach, then replay from that checkout",
                &commit[..commit.len().min(12)],
                tried.join("; ")
            ),
        ));
    };
    git::checkout(tree, commit, rec.code.branch.as_deref())?;
    git::set_origin(tree, rec.code.remote.as_deref())?;

    let mut report = CodeReport {
        source,
        commit: commit.to_string(),
        branch: rec.code.branch.clone(),
        diff_applied: false,
        untracked_restored: 0,
        restored_from_store: Vec::new(),
        origin: None,
    };
    if let Some(diff) = &rec.code.diff {
        let patch = scratch.join("code.patch");
        store.objects.restore(diff, &patch, 0o600)?;
        let applied = git::apply_patch(tree, &patch);
        let _ = fs::remove_file(&patch);
        applied.map_err(|e| cannot(id, format!("the recorded diff does not apply to commit {commit}: {e}")))?;
        report.diff_applied = true;
    }
    for f in &rec.code.untracked {
        let dest = inside(tree, &f.path)
            .ok_or_else(|| cannot(id, format!("untracked file path {} leaves the tree", f.path)))?;
        store.objects.restore(&f.digest, &dest, f.mode)?;
        report.untracked_restored += 1;
    }
    // Files git ignores were not in the diff: the script and environment file come from
    // the store when the tree lacks them.
    let mut extra: Vec<(&str, &Digest)> = Vec::new();
    if let (Some(p), Some(d)) = (&rec.script.path, &rec.script.digest) {
        extra.push((p, d));
    }
    if let Some(decl) = &rec.environment.declared {
        extra.push((&decl.path, &decl.digest));
    }
    for (path, digest) in extra {
        let Some(dest) = inside(tree, path) else { continue };
        if !dest.exists() {
            store.objects.restore(digest, &dest, 0o644)?;
            report.restored_from_store.push(path.to_string());
        }
    }

    // Verify: the tree reproduces the recorded diff, and the script is the recorded one.
    let now = git::diff_head(tree)?;
    let now = (!now.is_empty()).then(|| Digest::of_bytes(&now));
    if now != rec.code.diff {
        return Err(cannot(
            id,
            format!(
                "the rebuilt tree does not match the record: `git diff HEAD` gives {}, the run recorded {}",
                now.map(|d| d.short().to_string()).unwrap_or_else(|| "no changes".into()),
                rec.code.diff.as_ref().map(|d| d.short().to_string()).unwrap_or_else(|| "no changes".into())
            ),
        ));
    }
    if let (Some(p), Some(d)) = (&rec.script.path, &rec.script.digest) {
        if let Some(file) = inside(tree, p) {
            let (got, _) = repro_store::objects::hash_file(&file).map_err(ExecError::io("read", &file))?;
            if got != *d {
                return Err(cannot(
                    id,
                    format!("the rebuilt script {p} hashes to {}, the run recorded {}", got.short(), d.short()),
                ));
            }
        }
    }
    Ok(report)
}

/// `rel` joined to `root`, refusing absolute paths and `..` (a record is data, not trusted).
fn inside(root: &Path, rel: &str) -> Option<PathBuf> {
    let p = Path::new(rel);
    if p.is_absolute() || p.components().any(|c| matches!(c, std::path::Component::ParentDir)) {
        return None;
    }
    Some(root.join(p))
}

fn reset_dir(dir: &Path) -> Result<()> {
    if dir.exists() {
        for e in fs::read_dir(dir).map_err(ExecError::io("read", dir))?.flatten() {
            let p = e.path();
            let r = if p.is_dir() && !p.is_symlink() { fs::remove_dir_all(&p) } else { fs::remove_file(&p) };
            r.map_err(ExecError::io("remove", &p))?;
        }
    }
    Ok(())
}

// ---- 2. data ---------------------------------------------------------------------------

fn restore_inputs(store: &Store, rec: &RunRecord, tree: &Path, reporter: &dyn Reporter) -> Result<Vec<InputReport>> {
    let mut out = Vec::new();
    for input in &rec.inputs {
        let manifest = read_manifest(store, &input.snapshot, &rec.id)?;
        let relative = inside(tree, &input.path);
        // Where the recorded content is read from: the store, or (reference-only and
        // outside-the-repository inputs) the original location, verified.
        let original_location = match (&relative, &rec.code.repo_root) {
            (Some(_), Some(root)) => Path::new(root).join(&input.path),
            _ => PathBuf::from(&input.path),
        };
        let files_at = |base: &Path, e: &repro_core::record::FileEntry| match manifest.kind {
            SnapshotKind::File => base.to_path_buf(),
            SnapshotKind::Dir => base.join(&e.path),
        };
        let how = match (&relative, input.reference) {
            (Some(dest), false) => {
                reporter.message(&format!(
                    "restoring input {} ({})",
                    input.path,
                    repro_core::audit::count(manifest.entries.len() as u64, "file")
                ));
                if fs::symlink_metadata(dest).is_ok() {
                    // Committed data: the snapshot, not the commit, is what the run read.
                    let r = if dest.is_dir() { fs::remove_dir_all(dest) } else { fs::remove_file(dest) };
                    r.map_err(ExecError::io("replace", dest))?;
                }
                for e in &manifest.entries {
                    let target = files_at(dest, e);
                    store.objects.restore(&e.digest, &target, e.mode).map_err(|err| {
                        cannot(&rec.id, format!("file {} of input {} cannot be restored: {err}", e.path, input.path))
                    })?;
                }
                "restored from the store"
            }
            (dest, _) => {
                reporter.message(&format!("verifying input {} in place", input.path));
                let mut changed = Vec::new();
                for e in &manifest.entries {
                    let f = files_at(&original_location, e);
                    match repro_store::objects::hash_file(&f) {
                        Ok((d, _)) if d == e.digest => {}
                        Ok(_) => changed.push(format!("{} (changed)", f.display())),
                        Err(_) => changed.push(format!("{} (gone)", f.display())),
                    }
                }
                if !changed.is_empty() {
                    let n = changed.len();
                    changed.truncate(5);
                    return Err(cannot(
                        &rec.id,
                        format!(
                            "input {} was recorded by reference and its content changed since: {}{}; restore those files or snapshot the data with its contents",
                            input.path,
                            changed.join(", "),
                            if n > 5 { format!(" and {} more", n - 5) } else { String::new() }
                        ),
                    ));
                }
                if let Some(dest) = dest {
                    // Verified in place; copy into the tree so the command finds it where it did.
                    for e in &manifest.entries {
                        let (src, target) = (files_at(&original_location, e), files_at(dest, e));
                        if let Some(parent) = target.parent() {
                            fs::create_dir_all(parent).map_err(ExecError::io("create", parent))?;
                        }
                        fs::copy(&src, &target).map_err(ExecError::io("copy", &src))?;
                    }
                }
                "verified in place"
            }
        };
        out.push(InputReport {
            path: input.path.clone(),
            dataset: input.dataset.clone(),
            files: input.files,
            bytes: input.bytes,
            how,
        });
    }
    Ok(out)
}

// ---- 3. environment ----------------------------------------------------------------------

/// Builds a virtualenv holding exactly the recorded packages: with uv when it is on PATH,
/// else `python -m venv` and pip, both with `--no-deps` (the recorded set is already
/// complete, and resolving again could pick other versions). Returns the tool used.
fn create_env(
    run: &RunId,
    recorded: &PythonEnvironment,
    env_dir: &Path,
    work: &Path,
    vars: &BTreeMap<String, String>,
) -> Result<String> {
    let path_var = vars.get("PATH").map(std::ffi::OsString::from);
    let want = recorded.version.clone().unwrap_or_default();
    let minor: String = want.split('.').take(2).collect::<Vec<_>>().join(".");
    let uv = script::resolve_program("uv", Path::new("/"), path_var.as_deref());
    // A base interpreter of the recorded version: the recorded one, pythonX.Y, python3.
    let mut candidates = vec![PathBuf::from(&recorded.executable)];
    for name in [format!("python{minor}"), "python3".to_string()] {
        candidates.extend(script::resolve_program(&name, Path::new("/"), path_var.as_deref()));
    }
    let base = candidates.into_iter().find(|c| {
        c.exists()
            && python::inspect(c, "base").and_then(|e| e.version).is_some_and(|v| {
                v == want || (!minor.is_empty() && v.split('.').take(2).collect::<Vec<_>>().join(".") == minor)
            })
    });

    let mut reqs = String::new();
    for p in &recorded.packages {
        if INSTALLER_TOOLING.contains(&python::normalize(&p.name).as_str()) {
            continue;
        }
        match p.url.as_deref() {
            Some(u) if u.starts_with("git+") || u.starts_with("https://") || u.starts_with("http://") => {
                reqs.push_str(&format!("{} @ {}\n", p.name, u))
            }
            _ => reqs.push_str(&format!("{}=={}\n", p.name, p.version)),
        }
    }
    let reqs_path = work.join("requirements.replay.txt");
    fs::write(&reqs_path, reqs).map_err(ExecError::io("write", &reqs_path))?;
    let python = env_dir.join("bin/python");

    let (tool, steps): (&str, Vec<Command>) = match (&uv, &base) {
        (Some(uv), base) => {
            let mut venv = Command::new(uv);
            venv.args(["venv", "--quiet", "--python"]);
            match base {
                Some(b) => venv.arg(b),
                None => venv.arg(&want),
            };
            venv.arg(env_dir);
            let mut install = Command::new(uv);
            install.args(["pip", "install", "--quiet", "--no-deps", "--python"]).arg(&python).arg("-r").arg(&reqs_path);
            ("uv", vec![venv, install])
        }
        (None, Some(base)) => {
            let mut venv = Command::new(base);
            venv.args(["-m", "venv"]).arg(env_dir);
            let mut install = Command::new(&python);
            install
                .args(["-m", "pip", "install", "--quiet", "--disable-pip-version-check", "--no-deps", "-r"])
                .arg(&reqs_path);
            ("venv+pip", vec![venv, install])
        }
        (None, None) => {
            return Err(cannot(
                run,
                format!(
                    "no Python {want} found to build the environment (looked for {} and python{minor}, python3 on PATH); install it, put uv on PATH, or pass --python",
                    recorded.executable
                ),
            ))
        }
    };
    for mut step in steps {
        step.env_clear().envs(vars).env_remove("VIRTUAL_ENV").env_remove("PYTHONPATH");
        let what = format!("{:?}", step.get_program());
        let out = step.output().map_err(|e| cannot(run, format!("cannot start {what}: {e}")))?;
        if !out.status.success() {
            let err = String::from_utf8_lossy(&out.stderr);
            let last: Vec<&str> = err.lines().map(str::trim).filter(|l| !l.is_empty()).collect();
            let tail = last.iter().rev().take(2).rev().cloned().collect::<Vec<_>>().join(" / ");
            return Err(cannot(run, format!("building the environment with {tool} failed: {tail}")));
        }
    }
    Ok(tool.to_string())
}

// ---- 4. run ------------------------------------------------------------------------------

fn run_options(
    store: &Store,
    rec: &RunRecord,
    area: &WorkArea,
    interpreter: Option<&Path>,
    opts: &ReplayOptions,
) -> Result<RunOptions> {
    let tree = &area.tree;
    let id = &rec.id;
    let recorded_exe = rec.environment.python.as_ref().map(|p| PathBuf::from(&p.executable));
    let mut command = rec.script.argv.clone();
    let switched = match (interpreter, &recorded_exe) {
        (Some(i), Some(r)) => i != r,
        _ => false,
    };
    // The interpreter the environment check approved runs the command, by absolute path:
    // a bare `python` would be looked up on today's PATH, which may lead elsewhere.
    if let (Some(first), Some(i)) = (command.first_mut(), interpreter) {
        let base = Path::new(first.as_str()).file_name().map(|n| n.to_string_lossy().into_owned());
        if Some(Path::new(first.as_str())) == recorded_exe.as_deref()
            || base.is_some_and(|b| script::is_python_name(&b))
        {
            *first = i.display().to_string();
        }
    }

    // The environment: the caller's, without any determinism variable, plus the recorded ones.
    let root = rec.code.repo_root.clone().unwrap_or_default();
    let mut vars = opts.vars.clone();
    for v in DETERMINISM_VARIABLES {
        vars.remove(v);
    }
    for (k, v) in &rec.environment.variables {
        match k.as_str() {
            "VIRTUAL_ENV" | "CONDA_PREFIX" if switched => {}
            "PYTHONPATH" if !root.is_empty() => {
                vars.insert(k.clone(), v.replace(&root, &tree.display().to_string()));
            }
            _ => {
                vars.insert(k.clone(), v.clone());
            }
        }
    }
    // The command's MLflow calls go to the replay's own server (which holds registry writes)
    // or nowhere shared: never to a registry named by the caller's environment or the record.
    vars.remove("MLFLOW_REGISTRY_URI");
    if opts.tracking_uri.is_none() {
        for v in
            ["MLFLOW_TRACKING_URI", "MLFLOW_TRACKING_TOKEN", "MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD"]
        {
            vars.remove(v);
        }
    }
    if let Some(i) = interpreter {
        // Subprocesses and `#!/usr/bin/env python` scripts find the same interpreter.
        if let Some(bin) = i.parent() {
            let path = vars.get("PATH").cloned().unwrap_or_default();
            vars.insert("PATH".into(), format!("{}:{path}", bin.display()));
            if rec.environment.variables.contains_key("VIRTUAL_ENV")
                && bin.parent().is_some_and(|p| p.join("pyvenv.cfg").is_file())
            {
                vars.insert("VIRTUAL_ENV".into(), bin.parent().map(|p| p.display().to_string()).unwrap_or_default());
            }
        }
    }

    let at = |rel: &str| -> PathBuf {
        match inside(tree, rel) {
            Some(p) => p,
            None => PathBuf::from(rel),
        }
    };
    let cwd = inside(tree, &rec.script.workdir)
        .ok_or_else(|| cannot(id, format!("its working folder {} is outside the repository", rec.script.workdir)))?;
    fs::create_dir_all(&cwd).map_err(ExecError::io("create", &cwd))?;

    // Params files: the tree's copy when it is the recorded one, else the stored bytes.
    let mut params_files = Vec::new();
    for (n, f) in rec.params.files.iter().enumerate() {
        let in_tree = inside(tree, &f.path)
            .filter(|p| repro_store::objects::hash_file(p).map(|(d, _)| d == f.digest).unwrap_or(false));
        let path = match in_tree {
            Some(p) => p,
            None => {
                let name = Path::new(&f.path).file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
                let p = area.dir.join("params").join(format!("{n}-{name}"));
                store.objects.restore(&f.digest, &p, 0o644)?;
                p
            }
        };
        params_files.push(path);
    }
    let env_file = rec.environment.declared.as_ref().map(|d| at(&d.path)).filter(|p| p.is_file());

    Ok(RunOptions {
        name: None,
        seed: Some(rec.seed.value),
        data: rec.inputs.iter().map(|i| at(&i.path)).collect(),
        params_files,
        params: Vec::new(),
        env_file,
        outputs: rec.outputs.iter().map(|o| at(&o.path)).collect(),
        strict: false,
        command,
        cwd,
        vars,
        param_values: rec.params.values.clone(),
        replay_of: Some(id.clone()),
        // The report goes to stdout; the command's own output must not mix with it.
        stdout_to_stderr: true,
        // The environment was checked against the recorded installed set above.
        env_registered: None,
        allow_env_drift: false,
        tracking_uri: None,
        tracking_token: None,
    })
}

// ---- 5. compare ----------------------------------------------------------------------------

fn compare_outputs(
    store: &Store,
    rec: &RunRecord,
    replay: &RunRecord,
    area: &WorkArea,
    comparator: Option<&str>,
    vars: &BTreeMap<String, String>,
) -> Result<Vec<OutputComparison>> {
    let mut out = Vec::new();
    for o in &rec.outputs {
        let r = replay.outputs.iter().find(|x| x.path == o.path);
        let replayed = r.and_then(|x| x.snapshot.clone());
        let mut cmp = OutputComparison {
            path: o.path.clone(),
            verdict: Verdict::Identical,
            recorded: o.snapshot.clone(),
            replayed: replayed.clone(),
            files: Vec::new(),
        };
        match (&o.snapshot, &replayed) {
            (a, b) if a == b => {}
            (Some(a), Some(b)) => {
                let ma = read_manifest(store, a, &rec.id)?;
                let mb = read_manifest(store, b, &replay.id)?;
                let before: BTreeMap<&str, &repro_core::record::FileEntry> =
                    ma.entries.iter().map(|e| (e.path.as_str(), e)).collect();
                let after: BTreeMap<&str, &repro_core::record::FileEntry> =
                    mb.entries.iter().map(|e| (e.path.as_str(), e)).collect();
                let mut all_vouched = comparator.is_some();
                for (p, e) in &before {
                    match after.get(p) {
                        Some(x) if x.digest == e.digest => {}
                        Some(_) => {
                            let verdict = match comparator {
                                Some(c) => {
                                    let file_of = |base: &Path| match ma.kind {
                                        SnapshotKind::File => base.to_path_buf(),
                                        SnapshotKind::Dir => base.join(p),
                                    };
                                    let recorded_copy = file_of(&area.dir.join("recorded").join(&o.path));
                                    store.objects.restore(&e.digest, &recorded_copy, 0o444)?;
                                    let replayed_file =
                                        file_of(&inside(&area.tree, &o.path).unwrap_or_else(|| PathBuf::from(&o.path)));
                                    let (ok, said) =
                                        run_comparator(c, &recorded_copy, &replayed_file, &area.tree, vars);
                                    all_vouched &= ok;
                                    Some(said)
                                }
                                None => None,
                            };
                            cmp.files.push(FileComparison {
                                path: p.to_string(),
                                change: "changed",
                                comparator: verdict,
                            });
                        }
                        None => {
                            all_vouched = false;
                            cmp.files.push(FileComparison { path: p.to_string(), change: "removed", comparator: None });
                        }
                    }
                }
                for p in after.keys().filter(|p| !before.contains_key(*p)) {
                    all_vouched = false;
                    cmp.files.push(FileComparison { path: p.to_string(), change: "added", comparator: None });
                }
                cmp.verdict = if all_vouched { Verdict::Equivalent } else { Verdict::Differs };
            }
            _ => cmp.verdict = Verdict::Differs,
        }
        out.push(cmp);
    }
    Ok(out)
}

/// Runs the `[replay] compare` command on one pair of files; exit 0 means equivalent.
fn run_comparator(
    template: &str,
    recorded: &Path,
    replayed: &Path,
    cwd: &Path,
    vars: &BTreeMap<String, String>,
) -> (bool, String) {
    let quote = |p: &Path| format!("'{}'", p.display().to_string().replace('\'', r"'\''"));
    let cmd = template.replace("{recorded}", &quote(recorded)).replace("{replayed}", &quote(replayed));
    match Command::new("sh").arg("-c").arg(&cmd).current_dir(cwd).env_clear().envs(vars).output() {
        Ok(o) if o.status.success() => (true, "equivalent (comparator exit 0)".into()),
        Ok(o) => {
            let err = String::from_utf8_lossy(&o.stderr);
            let out = String::from_utf8_lossy(&o.stdout);
            let last = err.lines().chain(out.lines()).map(str::trim).rfind(|l| !l.is_empty()).unwrap_or("");
            let code = o.status.code().map(|c| format!("exit {c}")).unwrap_or_else(|| "killed".into());
            (
                false,
                format!(
                    "differs (comparator {code}{})",
                    if last.is_empty() { String::new() } else { format!(": {last}") }
                ),
            )
        }
        Err(e) => (false, format!("the comparator could not start: {e}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn record_paths_cannot_leave_the_tree() {
        let root = Path::new("/t");
        assert_eq!(inside(root, "data/x.csv"), Some(PathBuf::from("/t/data/x.csv")));
        assert_eq!(inside(root, "."), Some(PathBuf::from("/t/.")));
        assert_eq!(inside(root, "../etc/passwd"), None);
        assert_eq!(inside(root, "/etc/passwd"), None);
        assert_eq!(inside(root, "a/../../b"), None);
    }
}
