//! `repro run`: capture every ingredient, run the command with the seed, params and
//! determinism variables, tee its output, snapshot its outputs, and record the run.
//!
//! Order matters for "nothing half-written": everything that can fail on bad input is
//! checked before anything is stored; objects are durable before the metadata that refers
//! to them; the run row is inserted (status `running`) only once its inputs are stored,
//! and finished in one transaction.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::fs;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use repro_capture::declared::{self, Declared};
use repro_capture::snapshot::{self, Request};
use repro_capture::{git, hardware, python, script};
use repro_core::audit::{self, AuditItem, PlannedInput};
use repro_core::metrics::{self, MetricPoint, MetricsLine};
use repro_core::record::{
    DataRef, EnvironmentInfo, FileEntry, Logs, OutputRef, Params, RunRecord, RunStatus, ScriptInfo, Seed,
    RECORD_VERSION,
};
use repro_core::RunId;
use repro_store::Store;

use crate::openlineage::Lineage;
use crate::{ExecError, Reporter, Result};

mod container;
mod notebook;
mod prepare;
mod probe;
mod process;

use prepare::{bytes_to_store, pre_run_audit, prepare};
use process::{spawn_and_wait, store_logs, TempDir};

/// Variables that change numeric results or which code runs; recorded when set.
pub const DETERMINISM_VARIABLES: [&str; 26] = [
    "PYTHONHASHSEED",
    "CUBLAS_WORKSPACE_CONFIG",
    "OMP_NUM_THREADS",
    "MKL_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "VECLIB_MAXIMUM_THREADS",
    "NUMEXPR_NUM_THREADS",
    "BLIS_NUM_THREADS",
    "OPENBLAS_CORETYPE",
    "OPENBLAS_L2_SIZE",
    "MKL_CBWR",
    "MKL_ENABLE_INSTRUCTIONS",
    "KMP_DETERMINISTIC_REDUCTION",
    "OMP_PROC_BIND",
    "CUDA_VISIBLE_DEVICES",
    "CUDA_LAUNCH_BLOCKING",
    "NVIDIA_TF32_OVERRIDE",
    "TF_DETERMINISTIC_OPS",
    "TF_CUDNN_DETERMINISTIC",
    "TF_ENABLE_ONEDNN_OPTS",
    "PYTHONPATH",
    "PYTHONUNBUFFERED",
    "VIRTUAL_ENV",
    "CONDA_PREFIX",
    "LC_ALL",
    "LANG",
];

/// The cuBLAS workspace repro sets when `CUBLAS_WORKSPACE_CONFIG` is unset: the setting
/// PyTorch's reproducibility notes give for deterministic cuBLAS.
pub const CUBLAS_WORKSPACE: &str = ":4096:8";

/// Thread-count variables repro sets (to the usable core count) when they are unset, so a
/// replay on a bigger machine splits reductions the same way.
pub const THREAD_VARIABLES: [&str; 3] = ["OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"];

#[derive(Clone, Debug, Default)]
pub struct RunOptions {
    pub name: Option<String>,
    pub seed: Option<u64>,
    pub data: Vec<PathBuf>,
    pub params_files: Vec<PathBuf>,
    pub params: Vec<String>,
    pub env_file: Option<PathBuf>,
    pub outputs: Vec<PathBuf>,
    pub strict: bool,
    pub command: Vec<String>,
    /// The working directory (the CLI's current directory).
    pub cwd: PathBuf,
    /// The environment the command inherits (UTF-8 variables; others pass through untouched).
    pub vars: BTreeMap<String, String>,
    /// Exact hyperparameter values applied last (a replay passes the recorded ones).
    pub param_values: BTreeMap<String, serde_json::Value>,
    /// Set by `repro replay`: the run being rebuilt.
    pub replay_of: Option<RunId>,
    /// Echo the command's stdout on our stderr, keeping our stdout for a report (`--json`).
    pub stdout_to_stderr: bool,
    /// `--env NAME:V`: the registered environment the interpreter must match.
    pub env_registered: Option<String>,
    /// Run anyway when the interpreter differs from `env_registered`, recording the drift.
    pub allow_env_drift: bool,
    /// A tracking server serving this store (the CLI starts one on loopback): the command
    /// gets `MLFLOW_TRACKING_URI` and `MLFLOW_RUN_ID`, so MLflow calls log into this run.
    pub tracking_uri: Option<String>,
    /// The token that server accepts from the command (`MLFLOW_TRACKING_TOKEN`).
    pub tracking_token: Option<String>,
    /// `--no-probe`: do not watch inside the command's Python processes.
    pub no_probe: bool,
    /// `--auto-data`: snapshot the files the probe saw read but nobody declared, as inputs.
    pub auto_data: bool,
    /// `--image NAME[:TAG][@sha256:…]`: the container image the run happens in (else
    /// `REPRO_IMAGE`, else what the runtime says).
    pub image: Option<String>,
    /// Set by `repro replay`: each input it restored (by absolute path) with the stats and
    /// digests its restore verified, so the run's snapshot does not hash them a second time.
    pub restored: Vec<(PathBuf, repro_store::datasets::TreeCache)>,
}

#[derive(Debug)]
pub enum RunOutcome {
    /// `--strict` and the pre-run audit failed: nothing ran, nothing was recorded.
    Refused {
        items: Vec<AuditItem>,
    },
    /// The interpreter differs from the registered environment (`--env NAME:V`) and drift
    /// was not allowed: nothing ran, nothing was recorded.
    EnvDrift {
        env: String,
        differences: Vec<String>,
    },
    Ran {
        id: RunId,
        status: RunStatus,
        exit_code: i32,
        record: Box<RunRecord>,
    },
}

pub fn run(store: &mut Store, opts: &RunOptions, reporter: &dyn Reporter) -> Result<RunOutcome> {
    // OpenLineage events, when `[openlineage]` is configured: never a reason to fail the run.
    let mut lineage = Lineage::new(store, &opts.vars, reporter);
    let outcome = run_recorded(store, opts, reporter, &mut lineage);
    match &outcome {
        Ok(RunOutcome::Ran { record, .. }) => lineage.end(record, reporter),
        Err(e) => lineage.failed(&e.to_string(), reporter),
        Ok(RunOutcome::Refused { .. } | RunOutcome::EnvDrift { .. }) => {}
    }
    outcome
}

fn run_recorded(
    store: &mut Store,
    opts: &RunOptions,
    reporter: &dyn Reporter,
    lineage: &mut Lineage,
) -> Result<RunOutcome> {
    let mut p = prepare(store, opts)?;
    for r in &p.removed {
        reporter.warn(&format!("a credential was removed before recording: {r}"));
    }
    if !p.drift.is_empty() {
        let env = p.record.environment.registered.clone().unwrap_or_default();
        if !opts.allow_env_drift {
            return Ok(RunOutcome::EnvDrift { env, differences: std::mem::take(&mut p.drift) });
        }
        p.record.notes.push(format!(
            "ran with --allow-env-drift: the interpreter differed from {env} in {} way(s)",
            p.drift.len()
        ));
        p.record.environment.drift = std::mem::take(&mut p.drift);
    }
    if opts.strict {
        let items = pre_run_audit(&p);
        if !audit::is_complete(&items, true) {
            return Ok(RunOutcome::Refused { items });
        }
    }

    // Store the code, script, environment file and params (one durable batch).
    let mut stored: std::collections::HashMap<PathBuf, (repro_core::Digest, u64)> = Default::default();
    {
        let batch = store.objects.batch()?;
        if let Some(diff) = &p.diff_bytes {
            batch.add_bytes(&repro_core::Digest::of_bytes(diff), diff)?;
        }
        for b in p.params_bytes.iter().chain(&p.objects) {
            batch.add_bytes(&repro_core::Digest::of_bytes(b), b)?;
        }
        let declared_files = p.declared.iter().flat_map(|d| std::iter::once(&d.main_file).chain(&d.companion_files));
        for f in p.files_to_store.iter().chain(declared_files) {
            // Small source files: read once, and record the digest of the very bytes stored
            // (a file edited since it was first hashed is recorded as stored).
            let bytes = bytes_to_store(p.declared.as_ref(), f).map_err(ExecError::io("read", f))?;
            let d = repro_core::Digest::of_bytes(&bytes);
            batch.add_bytes(&d, &bytes)?;
            stored.insert(f.clone(), (d, bytes.len() as u64));
        }
        batch.commit()?;
    }
    let root = p.record.code.repo_root.clone().map(PathBuf::from);
    for entry in p.record.code.untracked.iter_mut() {
        if let Some((d, size)) = root.as_ref().and_then(|r| stored.get(&r.join(&entry.path))) {
            entry.digest = d.clone();
            entry.size = *size;
        }
    }
    if let Some((d, _)) = p.script_file.as_ref().and_then(|f| stored.get(f)) {
        p.record.script.digest = Some(d.clone());
    }
    if let (Some(files), Some(rec)) = (&p.declared, p.record.environment.declared.as_mut()) {
        if let Some((d, _)) = stored.get(&files.main_file) {
            rec.digest = d.clone();
        }
        for (entry, path) in rec.companions.iter_mut().zip(&files.companion_files) {
            if let Some((d, size)) = stored.get(path) {
                entry.digest = d.clone();
                entry.size = *size;
            }
        }
    }

    // Snapshot the inputs.
    for (abs, rel) in &p.planned_inputs {
        reporter.message(&format!("snapshotting {rel}"));
        let source = abs.display().to_string();
        let verified = opts.restored.iter().find(|(p, _)| p == abs).map(|(_, c)| c);
        let out = snapshot::snapshot(
            store,
            &Request { path: abs, reference: false, dataset: Some((rel, &source)), verified },
            reporter.progress(),
        )?;
        p.record.inputs.push(DataRef {
            path: rel.clone(),
            snapshot: out.digest,
            files: out.files,
            bytes: out.bytes,
            reference: false,
            dataset: out.dataset.map(|d| format!("{}:{}", d.name, d.version)),
        });
    }

    let started_ms = repro_util::clock::now_ms();
    store.meta.runs().insert(&p.record, started_ms)?;
    let id = p.record.id.clone();
    reporter.message(&format!("run {} started: {}", id, opts.command.join(" ")));
    let declared_outputs: Vec<String> = p.planned_outputs.iter().map(|(_, rel, _)| rel.clone()).collect();
    lineage.start(&p.record, started_ms, &declared_outputs, reporter);

    // The run's private folder: params for the child, the metrics file, captured logs.
    let work = store.objects.tmp_dir().join(format!("{}-run-{}", std::process::id(), id));
    fs::create_dir_all(&work).map_err(ExecError::io("create", &work))?;
    let cleanup = TempDir(work.clone());
    let params_json = work.join("params.json");
    let metrics_path = work.join("metrics.jsonl");
    fs::write(&params_json, serde_json::to_vec_pretty(&p.record.params.values).expect("params serialize"))
        .map_err(ExecError::io("write", &params_json))?;
    fs::write(&metrics_path, b"").map_err(ExecError::io("write", &metrics_path))?;

    let probe = if opts.no_probe {
        None
    } else {
        let python = p.record.environment.python.as_ref().map(|py| PathBuf::from(&py.executable));
        match probe::install(&store.root().join("probe"), &work, python.as_deref()) {
            Ok(pr) => Some(pr),
            Err(e) => {
                p.record.notes.push(format!("the probe could not be installed ({e}); the run was not watched inside"));
                None
            }
        }
    };

    let argv = notebook::spawn_argv(&opts.command, p.notebook.as_ref(), &work)?;
    let mut cmd = Command::new(&argv[0]);
    // Exactly `vars`: for `repro run` that is this process's environment; a replay hands over
    // the recorded determinism variables, the approved interpreter first on PATH, and no
    // MLflow registry URI — none of which would reach the command by inheritance.
    cmd.args(&argv[1..]).current_dir(&opts.cwd).env_clear().envs(&opts.vars);
    for (k, v) in &p.child_env {
        cmd.env(k, v);
    }
    if let Some(uri) = &opts.tracking_uri {
        let experiment = tracking_experiment(store, &opts.vars)?;
        store.meta.tracking().adopt_run(&id, experiment, &p.record.user)?;
        cmd.env("MLFLOW_TRACKING_URI", uri)
            .env("MLFLOW_RUN_ID", id.as_str())
            .env("MLFLOW_EXPERIMENT_ID", experiment.to_string());
        cmd.env_remove("MLFLOW_EXPERIMENT_NAME");
        match &opts.tracking_token {
            Some(t) => cmd.env("MLFLOW_TRACKING_TOKEN", t),
            None => cmd.env_remove("MLFLOW_TRACKING_TOKEN"),
        };
    }
    if let Some(pr) = &probe {
        for (k, v) in pr.env(&opts.vars) {
            cmd.env(k, v);
        }
    }
    cmd.env("REPRO_RUN_ID", id.as_str())
        .env("REPRO_SEED", p.record.seed.value.to_string())
        .env("REPRO_PARAMS", &params_json)
        .env("REPRO_METRICS", &metrics_path)
        .stdin(Stdio::inherit())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    #[cfg(target_os = "linux")]
    {
        use std::os::unix::process::CommandExt;
        // If repro itself is killed, the command must not run on unrecorded.
        // SAFETY: prctl is async-signal-safe; nothing else runs between fork and exec.
        unsafe {
            cmd.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM);
                Ok(())
            });
        }
    }
    let outcome = spawn_and_wait(cmd, &opts.command[0], &work, opts.stdout_to_stderr);
    let (status, mut logs) = match outcome {
        Ok(x) => x,
        Err(e) => {
            // The run row exists: end it honestly before reporting the error.
            p.record.status = RunStatus::Failed;
            p.record.notes.push(format!("the command could not be started: {e}"));
            let _ = finish(store, &mut p.record, &[], Logs::default(), 0);
            drop(cleanup);
            return Err(e);
        }
    };
    let (exit_code, signal) = status;
    p.record.exit_code = Some(exit_code);
    p.record.signal = signal;
    p.record.status = match (signal, exit_code) {
        (Some(_), _) => RunStatus::Killed,
        (None, 0) => RunStatus::Finished,
        _ => RunStatus::Failed,
    };

    if let Some(pr) = &probe {
        let declared = probe::Declared {
            cwd: &opts.cwd,
            inputs: p.planned_inputs.iter().map(|(a, _)| a.clone()).collect(),
            outputs: p.planned_outputs.iter().map(|(a, _, _)| a.clone()).collect(),
            params_files: opts.params_files.iter().map(|f| opts.cwd.join(f)).collect(),
            params_json: &params_json,
            overrides: override_keys(opts),
            private: &work,
        };
        let mut seen = probe::collect(pr, &p.record, &declared);
        if opts.auto_data {
            auto_data(store, &mut p.record, &mut seen, reporter)?;
        }
        if let Some(e) = &seen.exception {
            reporter.message(&format!("the command raised {}", e.describe()));
        }
        p.record.probe = Some(seen);
    } else if opts.no_probe {
        p.record.probe = Some(repro_core::probe::ProbeRecord::absent(repro_core::probe::ProbeStatus::Disabled));
    }

    // Outputs.
    for (abs, rel, before) in &p.planned_outputs {
        if fs::symlink_metadata(abs).is_err() {
            p.record.outputs.push(OutputRef {
                path: rel.clone(),
                snapshot: None,
                files: 0,
                bytes: 0,
                missing: true,
                predates_run: false,
            });
            reporter.message(&format!("output {rel} was not produced"));
            continue;
        }
        reporter.message(&format!("snapshotting output {rel}"));
        let out = snapshot::snapshot(
            store,
            &Request { path: abs, reference: false, dataset: None, verified: None },
            reporter.progress(),
        )?;
        p.record.outputs.push(OutputRef {
            path: rel.clone(),
            snapshot: Some(out.digest),
            files: out.files,
            bytes: out.bytes,
            missing: false,
            predates_run: before.is_some() && fs::metadata(abs).ok().and_then(|m| m.modified().ok()) == *before,
        });
        if p.record.outputs.last().is_some_and(|o| o.predates_run) {
            reporter.message(&format!("output {rel} was not rewritten by the run: it is left from before"));
        }
    }

    // Metrics and logged params.
    let mut points = Vec::new();
    let text = fs::read(&metrics_path).unwrap_or_default();
    let text = String::from_utf8_lossy(&text);
    let mut bad = 0usize;
    for (i, line) in text.lines().enumerate() {
        match metrics::parse_line(i + 1, line) {
            Ok(Some(MetricsLine::Metric(m))) => points.push(m),
            Ok(Some(MetricsLine::Param { key, value })) => {
                p.record.params.logged.insert(key, value);
            }
            Ok(None) => {}
            Err(e) => {
                bad += 1;
                if bad <= 5 {
                    p.record.notes.push(format!("REPRO_METRICS {e}; line skipped"));
                }
            }
        }
    }
    if bad > 5 {
        p.record.notes.push(format!("REPRO_METRICS: {} more malformed lines skipped", bad - 5));
    }
    if bad > 0 {
        reporter.message(&format!(
            "{bad} malformed line(s) in the metrics file were skipped (see `repro show {}`)",
            id.short()
        ));
    }
    store_logs(store, &work, &mut logs)?;
    // What the command logged through MLflow is part of the run too.
    let logged_by_api = if opts.tracking_uri.is_some() {
        for (k, v) in store.meta.tracking().tracked_params(id.as_str())? {
            p.record.params.logged.entry(k).or_insert(v);
        }
        store.meta.runs().metrics(&id)?.len() as u64
    } else {
        0
    };
    finish(store, &mut p.record, &points, logs, logged_by_api)?;
    drop(cleanup);
    // A command killed by a signal already reads 128 + signal, as a shell reports it.
    Ok(RunOutcome::Ran { id, status: p.record.status, exit_code, record: Box::new(p.record) })
}

/// The hyperparameter keys the command was told to override (`--param k=v`, or a replay's
/// recorded values): the ones a script that never reads `REPRO_PARAMS` ignores.
fn override_keys(opts: &RunOptions) -> Vec<String> {
    let mut keys: Vec<String> =
        opts.params.iter().filter_map(|p| p.split_once('=').map(|(k, _)| k.trim().to_string())).collect();
    keys.sort();
    keys.dedup();
    keys
}

/// `--auto-data`: the undeclared inputs become inputs of the run, snapshotted now (after the
/// command: a file it changed is recorded as it ended, and the note says so).
fn auto_data(
    store: &mut Store,
    record: &mut RunRecord,
    seen: &mut repro_core::probe::ProbeRecord,
    reporter: &dyn Reporter,
) -> Result<()> {
    let root = record.code.repo_root.clone().map(PathBuf::from);
    let mut kept = Vec::new();
    for u in std::mem::take(&mut seen.undeclared_inputs) {
        if !u.exists {
            kept.push(u);
            continue;
        }
        let abs = match &root {
            Some(r) if !Path::new(&u.path).is_absolute() => r.join(&u.path),
            _ => PathBuf::from(&u.path),
        };
        reporter.message(&format!("snapshotting {} (read by the command, not declared: --auto-data)", u.path));
        let source = abs.display().to_string();
        let out = snapshot::snapshot(
            store,
            &Request { path: &abs, reference: false, dataset: Some((&u.path, &source)), verified: None },
            reporter.progress(),
        )?;
        record.inputs.push(DataRef {
            path: u.path.clone(),
            snapshot: out.digest,
            files: out.files,
            bytes: out.bytes,
            reference: false,
            dataset: out.dataset.map(|d| format!("{}:{}", d.name, d.version)),
        });
        seen.auto_data.push(u.path);
    }
    seen.undeclared_inputs = kept;
    Ok(())
}

/// Stores the logs and the final record, then ends the run row in one transaction.
fn finish(
    store: &mut Store,
    record: &mut RunRecord,
    points: &[MetricPoint],
    logs: Logs,
    already_stored: u64,
) -> Result<()> {
    record.logs = logs;
    record.metric_count = points.len() as u64 + already_stored;
    let ended_ms = repro_util::clock::now_ms();
    record.ended_at = Some(repro_util::clock::rfc3339(ended_ms));
    store.meta.runs().add_points(&record.id, points, ended_ms)?;
    store.meta.seal_and_finish(&store.objects, record, ended_ms)?;
    Ok(())
}

/// The experiment a captured run joins: `MLFLOW_EXPERIMENT_ID`, else `MLFLOW_EXPERIMENT_NAME`
/// (created when new), else Default ("0").
fn tracking_experiment(store: &mut Store, vars: &BTreeMap<String, String>) -> Result<i64> {
    if let Some(id) = vars.get("MLFLOW_EXPERIMENT_ID").filter(|v| !v.is_empty()) {
        let id: i64 = id
            .trim()
            .parse()
            .map_err(|_| ExecError::Usage(format!("MLFLOW_EXPERIMENT_ID={id} is not an experiment id (a number)")))?;
        store.meta.tracking().get_experiment(id)?;
        return Ok(id);
    }
    match vars.get("MLFLOW_EXPERIMENT_NAME").filter(|v| !v.is_empty()) {
        Some(name) => match store.meta.tracking().get_experiment_by_name(name) {
            Ok(e) => Ok(e.experiment_id),
            Err(_) => Ok(store.meta.tracking().create_experiment(name, None, &[])?),
        },
        None => Ok(0),
    }
}
