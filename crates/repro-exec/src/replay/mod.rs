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

use code::code_origin;
use code::rebuild_code;
use data::restore_inputs;
use environment::choose_interpreter;
use environment::create_env;
use environment::environment_differences;
use environment::run_options;
use outputs::compare_outputs;
mod code;
mod data;
mod environment;
mod outputs;
#[cfg(test)]
mod tests;
pub mod verdict;

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
    /// Hard-link inputs to the store's objects ([`repro_store::Placement::Link`]) instead of
    /// giving each a file of its own.
    pub link_data: bool,
    /// Read back every reflinked input file, even where the store's stamp vouches for its object.
    pub verify_data: bool,
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
    /// The key that signs the verdict ([`verdict::verdict_signer`]); none: unsigned.
    pub signer: Option<ed25519_dalek::SigningKey>,
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
    /// `restored from the store`, `linked to the store's objects` (`--link-data`), or `verified in
    /// place` for inputs outside the repository.
    pub how: &'static str,
    /// Files placed as reflinks and not read back, because the store's stamp vouched for their
    /// object ([`repro_store::ReadBack`]); 0 with `--verify-data`.
    pub unread_files: u64,
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
    /// The signed verdict (an in-toto statement in a DSSE envelope), when a key signed it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub attestation: Option<verdict::VerdictAttestation>,
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
    let original = store.meta.runs().get(&id)?;
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
    let metrics_recorded = last_values(&store.meta.runs().metrics(&id)?);
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
    let (inputs, restored) = restore_inputs(store, &rec, &area.tree, opts.link_data, opts.verify_data, reporter)?;

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
    run_opts.restored = restored;
    reporter.message(&format!("running: {}", run_opts.command.join(" ")));
    let (replay_id, status, exit_code, replay_record) = match crate::run::run(store, &run_opts, reporter)? {
        RunOutcome::Ran { id, status, exit_code, record } => (id, status, exit_code, record),
        RunOutcome::Refused { .. } | RunOutcome::EnvDrift { .. } => {
            return Err(cannot(&id, "the rebuilt run was refused"))
        }
    };

    // 5. Compare.
    let metrics_replayed = last_values(&store.meta.runs().metrics(&replay_id)?);
    let comparator = store.config.replay.compare.clone();
    let outputs = compare_outputs(store, &rec, &replay_record, &area, comparator.as_deref(), &run_opts.vars)?;
    let metrics = compare_metrics(&metrics_recorded, &metrics_replayed, &opts.tolerances);
    let (verdict, mut reasons) = judge(&outputs, &metrics, rec.exit_code, exit_code, comparator.is_some());
    let replay_stored = store.meta.runs().get(&replay_id)?;
    let run_diff = crate::diff::diff_runs(store, &original, &replay_stored)?;
    // A command that failed is explained by what failed (the probe's exception, the file it
    // could not open) before anything else.
    if let Some(c) = run_diff.causes.iter().find(|c| c.kind == repro_core::diff::CauseKind::CommandFailed) {
        reasons.insert(0, c.summary.replacen(" in run b", "", 1).replacen("which run a read", "which the run read", 1));
    }
    let captured_differences = run_diff.captured_field_differences();
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
        attestation: None,
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
    // The signature goes into the report before the report is stored, so the report object
    // (named by the journaled `replays` row) is what says the verdict was signed.
    if let Some(key) = &opts.signer {
        report.attestation = Some(verdict::sign(store, &original, &replay_stored, &report, key)?);
    }
    let bytes = serde_json::to_vec_pretty(&report).expect("reports serialize");
    let object = store.objects.put_bytes(&bytes)?;
    report.report_object = Some(object.clone());
    store.meta.runs().record_replay(&ReplayRow {
        replay: replay_id,
        original: id,
        verdict,
        report: object,
        created_ms: repro_util::clock::now_ms(),
    })?;
    drop(area);
    Ok(ReplayOutcome::Done(Box::new(report)))
}

/// `rel` joined to `root`, refusing absolute paths and `..` (a record is data, not trusted).
fn inside(root: &Path, rel: &str) -> Option<PathBuf> {
    let p = Path::new(rel);
    if p.is_absolute() || p.components().any(|c| matches!(c, std::path::Component::ParentDir)) {
        return None;
    }
    Some(root.join(p))
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
    if let (Some(d), Some(p)) = (&rec.script.file_digest, &rec.script.path) {
        needed.push((d.clone(), format!("the notebook {p}")));
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
    store.objects.manifest(digest).map_err(|e| match e {
        repro_store::StoreError::NotAManifest { problem, .. } => {
            cannot(run, format!("the manifest {} is not a manifest ({problem}); run `repro fsck`", digest.short()))
        }
        e => e.into(),
    })
}
