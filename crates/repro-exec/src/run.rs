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

use crate::{ExecError, Reporter, Result};

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

struct Prepared {
    record: RunRecord,
    diff_bytes: Option<Vec<u8>>,
    files_to_store: Vec<PathBuf>,
    script_file: Option<PathBuf>,
    params_bytes: Vec<Vec<u8>>,
    child_env: Vec<(String, String)>,
    planned_inputs: Vec<(PathBuf, String)>,
    /// Outputs: absolute path, recorded path, and the file's modification time before the run.
    planned_outputs: Vec<(PathBuf, String, Option<std::time::SystemTime>)>,
    declared: Option<Declared>,
    /// Differences between the interpreter and the registered environment.
    drift: Vec<String>,
    /// Credentials removed from URLs before anything was recorded: where, and what kind.
    removed: Vec<String>,
}

/// Path as recorded: relative to the repository root when inside it, else absolute.
fn recorded_path(abs: &Path, root: Option<&Path>) -> String {
    match root.and_then(|r| abs.strip_prefix(r).ok()) {
        Some(rel) if rel.as_os_str().is_empty() => ".".into(),
        Some(rel) => rel.display().to_string(),
        None => abs.display().to_string(),
    }
}

fn absolute(cwd: &Path, p: &Path) -> PathBuf {
    let joined = cwd.join(p);
    // Normalize `.` and `..` lexically: outputs may not exist yet, so no canonicalize.
    let mut out = PathBuf::new();
    for c in joined.components() {
        match c {
            std::path::Component::ParentDir => {
                out.pop();
            }
            std::path::Component::CurDir => {}
            other => out.push(other),
        }
    }
    out
}

fn prepare(store: &Store, opts: &RunOptions) -> Result<Prepared> {
    if opts.command.is_empty() {
        return Err(ExecError::Usage("no command given; put it after --, e.g. repro run -- python train.py".into()));
    }
    let cwd = fs::canonicalize(&opts.cwd).map_err(ExecError::io("enter", &opts.cwd))?;
    let path_var: Option<OsString> = opts.vars.get("PATH").map(OsString::from);

    // Bad input first: nothing is written until all of this passes.
    let guess = script::identify(&opts.command, &cwd, path_var.as_deref())?;
    let mut params = Params::default();
    let mut params_bytes = Vec::new();
    let mut params_paths = Vec::new();
    for f in &opts.params_files {
        let abs = absolute(&cwd, f);
        if !abs.is_file() {
            return Err(repro_capture::CaptureError::NoSuchPath { path: f.clone(), cwd: cwd.clone() }.into());
        }
        let (bytes, flat) = crate::params::read_params_file(&abs)?;
        params.values.extend(flat);
        params_bytes.push(bytes);
        params_paths.push(abs);
    }
    for p in &opts.params {
        let (k, v) = repro_core::params::parse_param_flag(p)?;
        params.values.insert(k, v);
    }
    params.values.extend(opts.param_values.clone());
    let mut input_abs = Vec::new();
    for d in &opts.data {
        let abs = absolute(&cwd, d);
        if fs::symlink_metadata(&abs).is_err() {
            return Err(repro_capture::CaptureError::NoSuchPath { path: d.clone(), cwd: cwd.clone() }.into());
        }
        input_abs.push(fs::canonicalize(&abs).unwrap_or(abs));
    }
    let output_abs: Vec<PathBuf> = opts.outputs.iter().map(|o| absolute(&cwd, o)).collect();
    if let Some(e) = &opts.env_file {
        let abs = absolute(&cwd, e);
        if !abs.is_file() {
            return Err(repro_capture::CaptureError::NoSuchPath { path: e.clone(), cwd: cwd.clone() }.into());
        }
    }

    // Observe in parallel: git, the interpreter's packages and the hardware are independent.
    let exclude: Vec<PathBuf> = input_abs.iter().chain(output_abs.iter()).cloned().collect();
    let max_untracked = store.config.capture.max_untracked_file_bytes;
    let (git_cap, python_env, hw) = std::thread::scope(|s| {
        let g = s.spawn(|| git::capture(&cwd, &exclude, max_untracked));
        let p = s.spawn(|| {
            python::find_interpreter(guess.python.as_deref(), &opts.vars, path_var.as_deref())
                .and_then(|(exe, how)| python::inspect_reporting(&exe, how))
        });
        let h = s.spawn(|| hardware::capture(path_var.as_deref()));
        (g.join().unwrap_or_default(), p.join().ok().flatten(), h.join().unwrap_or_default())
    });
    let (python_env, python_removed) = python_env.map_or((None, Vec::new()), |(env, removed)| (Some(env), removed));
    let root: Option<PathBuf> = git_cap.code.repo_root.as_ref().map(PathBuf::from);
    let root_ref = root.as_deref();
    let base = root.clone().unwrap_or_else(|| cwd.clone());

    // The declared environment: --env NAME:V (registered), --env FILE, else the nearest
    // well-known file.
    let registered = opts.env_registered.as_deref().map(|r| crate::env::get_registered(store, r)).transpose()?;
    let declared = match (&registered, &opts.env_file) {
        (Some(_), _) => None,
        (None, Some(e)) => Some(declared::read(&absolute(&cwd, e), &base)?),
        (None, None) => declared::detect(&cwd, root_ref).map(|p| declared::read(&p, &base)).transpose()?,
    };
    let drift = match &registered {
        Some((_, spec)) => crate::env::drift(spec, python_env.as_ref()),
        None => Vec::new(),
    };
    let registered_declared = registered.as_ref().and_then(|(_, spec)| match spec {
        repro_core::environment::EnvironmentSpec::Declared { declared } => Some(declared.clone()),
        _ => None,
    });

    // The script.
    let mut files_to_store = Vec::new();
    let script_info = {
        let mut info = ScriptInfo {
            argv: opts.command.clone(),
            workdir: recorded_path(&cwd, root_ref),
            kind: guess.kind,
            path: None,
            digest: None,
            tracked_unchanged: None,
            git_state: None,
        };
        if let Some(file) = &guess.file {
            let rel = recorded_path(file, root_ref);
            info.path = Some(rel.clone());
            if file.is_file() {
                let (d, _) = repro_store::objects::hash_file(file).map_err(ExecError::io("read", file))?;
                info.digest = Some(d);
                files_to_store.push(file.clone());
                if let Some(r) = root_ref.filter(|r| file.starts_with(r)) {
                    let (state, unchanged) = if git_cap.untracked.contains(&rel) {
                        ("untracked by git", false)
                    } else if git_cap.changed.contains(&rel) {
                        ("modified since the last commit", false)
                    } else if git::is_tracked(r, &rel) {
                        ("tracked and unchanged", true)
                    } else {
                        ("ignored by git", false)
                    };
                    info.git_state = Some(state.to_string());
                    info.tracked_unchanged = Some(unchanged);
                }
            }
        }
        info
    };

    let seed = match opts.seed {
        Some(v) => Seed { value: v, generated: false },
        None => {
            let b = uuid::Uuid::new_v4();
            let bytes = b.as_bytes();
            Seed {
                value: u64::from(u32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]) >> 1),
                generated: true,
            }
        }
    };

    // What the child gets, and what is recorded of it.
    let mut child_env: Vec<(String, String)> = Vec::new();
    let mut set_by_repro = Vec::new();
    let cores = hw.usable_cores.max(1).to_string();
    for v in THREAD_VARIABLES {
        if !opts.vars.contains_key(v) {
            child_env.push((v.to_string(), cores.clone()));
            set_by_repro.push(v.to_string());
        }
    }
    if !opts.vars.contains_key("PYTHONHASHSEED") {
        child_env.push(("PYTHONHASHSEED".into(), (seed.value % (1u64 << 32)).to_string()));
        set_by_repro.push("PYTHONHASHSEED".into());
    }
    if !opts.vars.contains_key("PYTHONUNBUFFERED") {
        // Output goes through a pipe to be stored; keep it live on the terminal.
        child_env.push(("PYTHONUNBUFFERED".into(), "1".into()));
        set_by_repro.push("PYTHONUNBUFFERED".into());
    }
    let mut variables = BTreeMap::new();
    for v in DETERMINISM_VARIABLES {
        if let Some(val) = opts.vars.get(v) {
            variables.insert(v.to_string(), val.clone());
        }
    }
    for (k, v) in &child_env {
        variables.insert(k.clone(), v.clone());
    }
    set_by_repro.sort();

    params.files = params_paths
        .iter()
        .zip(&params_bytes)
        .map(|(p, b)| FileEntry {
            path: recorded_path(p, root_ref),
            size: b.len() as u64,
            mode: 0o644,
            digest: repro_core::Digest::of_bytes(b),
        })
        .collect();

    let id = RunId::from_bytes(*uuid::Uuid::new_v4().as_bytes());
    let (started_ms, host) = (repro_store::now_ms(), repro_store::process::hostname());
    let user = repro_store::process::username()
        .or_else(|| opts.vars.get("USER").or_else(|| opts.vars.get("LOGNAME")).cloned())
        .unwrap_or_else(|| "unknown".into());
    let record = RunRecord {
        record_version: RECORD_VERSION,
        id,
        name: opts.name.clone(),
        status: RunStatus::Running,
        exit_code: None,
        signal: None,
        started_at: repro_store::rfc3339(started_ms),
        ended_at: None,
        user,
        host,
        code: git_cap.code.clone(),
        script: script_info,
        environment: EnvironmentInfo {
            declared: declared.as_ref().map(|d| d.environment.clone()).or(registered_declared),
            python: python_env,
            os: hardware::os_info(),
            variables,
            set_by_repro,
            registered: registered.as_ref().map(|(row, _)| format!("{}:{}", row.name, row.version)),
            drift: Vec::new(),
        },
        hardware: hw,
        inputs: Vec::new(),
        params,
        seed,
        outputs: Vec::new(),
        logs: Logs::default(),
        metric_count: 0,
        notes: Vec::new(),
        replay_of: opts.replay_of.clone(),
        facts: None,
    };
    files_to_store.extend(git_cap.untracked_files.iter().cloned());
    let mut removed = git_cap.removed.clone();
    removed.extend(python_removed);
    if let Some(d) = &declared {
        removed.extend(d.environment.redacted.iter().map(|r| format!("the declared environment, {r}")));
    }
    Ok(Prepared {
        planned_inputs: input_abs.iter().map(|a| (a.clone(), recorded_path(a, root_ref))).collect(),
        planned_outputs: output_abs
            .iter()
            .map(|a| {
                let before = fs::metadata(a).ok().filter(|m| m.is_file()).and_then(|m| m.modified().ok());
                (a.clone(), recorded_path(a, root_ref), before)
            })
            .collect(),
        record,
        diff_bytes: git_cap.diff_bytes,
        files_to_store,
        script_file: guess.file.clone().filter(|f| f.is_file()),
        params_bytes,
        child_env,
        declared,
        drift,
        removed,
    })
}

/// The bytes to store for a file the run keeps: a declared environment file that held
/// credentials is stored as its redacted copy wherever it appears, also when git sees it
/// as an untracked file.
fn bytes_to_store(declared: Option<&Declared>, file: &Path) -> std::io::Result<Vec<u8>> {
    if let Some(d) = declared.filter(|d| !d.redacted.is_empty()) {
        let same = |a: &Path| {
            a == file || fs::canonicalize(a).ok().zip(fs::canonicalize(file).ok()).is_some_and(|(x, y)| x == y)
        };
        if let Some(path) = d.redacted.keys().find(|p| same(p)) {
            return d.bytes_to_store(path);
        }
    }
    fs::read(file)
}

/// The pre-run audit `--strict` applies.
fn pre_run_audit(p: &Prepared) -> Vec<AuditItem> {
    let inputs: Vec<PlannedInput> =
        p.planned_inputs.iter().map(|(_, rel)| PlannedInput { path: rel.clone(), reference: false }).collect();
    audit::pre_run_items(
        &p.record.code,
        &p.record.environment,
        &inputs,
        &p.record.params,
        &p.record.seed,
        &p.record.script,
    )
}

pub fn run(store: &mut Store, opts: &RunOptions, reporter: &dyn Reporter) -> Result<RunOutcome> {
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
        for b in &p.params_bytes {
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
        let out = snapshot::snapshot(
            store,
            &Request { path: abs, reference: false, dataset: Some((rel, &source)) },
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

    let started_ms = repro_store::now_ms();
    store.meta.insert_run(&p.record, started_ms)?;
    let id = p.record.id.clone();
    reporter.message(&format!("run {} started: {}", id, opts.command.join(" ")));

    // The run's private folder: params for the child, the metrics file, captured logs.
    let work = store.objects.tmp_dir().join(format!("{}-run-{}", std::process::id(), id));
    fs::create_dir_all(&work).map_err(ExecError::io("create", &work))?;
    let cleanup = TempDir(work.clone());
    let params_json = work.join("params.json");
    let metrics_path = work.join("metrics.jsonl");
    fs::write(&params_json, serde_json::to_vec_pretty(&p.record.params.values).expect("params serialize"))
        .map_err(ExecError::io("write", &params_json))?;
    fs::write(&metrics_path, b"").map_err(ExecError::io("write", &metrics_path))?;

    let mut cmd = Command::new(&opts.command[0]);
    // Exactly `vars`: for `repro run` that is this process's environment; a replay hands over
    // the recorded determinism variables, the approved interpreter first on PATH, and no
    // MLflow registry URI — none of which would reach the command by inheritance.
    cmd.args(&opts.command[1..]).current_dir(&opts.cwd).env_clear().envs(&opts.vars);
    for (k, v) in &p.child_env {
        cmd.env(k, v);
    }
    if let Some(uri) = &opts.tracking_uri {
        let experiment = tracking_experiment(store, &opts.vars)?;
        store.meta.adopt_run(&id, experiment, &p.record.user)?;
        cmd.env("MLFLOW_TRACKING_URI", uri)
            .env("MLFLOW_RUN_ID", id.as_str())
            .env("MLFLOW_EXPERIMENT_ID", experiment.to_string());
        cmd.env_remove("MLFLOW_EXPERIMENT_NAME");
        match &opts.tracking_token {
            Some(t) => cmd.env("MLFLOW_TRACKING_TOKEN", t),
            None => cmd.env_remove("MLFLOW_TRACKING_TOKEN"),
        };
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
        let out =
            snapshot::snapshot(store, &Request { path: abs, reference: false, dataset: None }, reporter.progress())?;
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
        for (k, v) in store.meta.tracked_params(id.as_str())? {
            p.record.params.logged.entry(k).or_insert(v);
        }
        store.meta.metrics(&id)?.len() as u64
    } else {
        0
    };
    finish(store, &mut p.record, &points, logs, logged_by_api)?;
    drop(cleanup);
    // A command killed by a signal already reads 128 + signal, as a shell reports it.
    Ok(RunOutcome::Ran { id, status: p.record.status, exit_code, record: Box::new(p.record) })
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
    let ended_ms = repro_store::now_ms();
    record.ended_at = Some(repro_store::rfc3339(ended_ms));
    store.meta.add_points(&record.id, points, ended_ms)?;
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
        store.meta.get_experiment(id)?;
        return Ok(id);
    }
    match vars.get("MLFLOW_EXPERIMENT_NAME").filter(|v| !v.is_empty()) {
        Some(name) => match store.meta.get_experiment_by_name(name) {
            Ok(e) => Ok(e.experiment_id),
            Err(_) => Ok(store.meta.create_experiment(name, None, &[])?),
        },
        None => Ok(0),
    }
}

struct TempDir(PathBuf);
impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

type ExitStatus = (i32, Option<i32>);

fn spawn_and_wait(mut cmd: Command, program: &str, work: &Path, stdout_to_stderr: bool) -> Result<(ExitStatus, Logs)> {
    use signal_hook::consts::{SIGHUP, SIGINT, SIGQUIT, SIGTERM};
    use signal_hook::iterator::exfiltrator::WithOrigin;
    use signal_hook::iterator::SignalsInfo;

    // Register before spawning so no signal slips between the two.
    let mut signals = SignalsInfo::<WithOrigin>::new([SIGINT, SIGTERM, SIGHUP, SIGQUIT])
        .map_err(|e| ExecError::Spawn { program: program.into(), source: e })?;
    let handle = signals.handle();
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => {
            handle.close();
            let err = if e.kind() == std::io::ErrorKind::NotFound {
                ExecError::Capture(repro_capture::CaptureError::CommandNotFound(program.to_string()))
            } else {
                ExecError::Spawn { program: program.into(), source: e }
            };
            return Err(err);
        }
    };
    let pid = child.id() as libc::pid_t;
    let forwarder = std::thread::spawn(move || {
        for info in signals.forever() {
            // Ctrl-C from the terminal reaches the whole foreground group, the command
            // included; forward only signals sent to repro alone (they carry a sender).
            if info.signal == SIGINT && info.process.is_none() {
                continue;
            }
            // SAFETY: plain kill(2) on the child we spawned.
            unsafe {
                libc::kill(pid, info.signal);
            }
        }
    });
    let so = work.join("stdout");
    let se = work.join("stderr");
    let out_pipe = child.stdout.take().expect("stdout is piped");
    let err_pipe = child.stderr.take().expect("stderr is piped");
    let (tx, rx) = std::sync::mpsc::channel::<(bool, u64)>();
    let tx2 = tx.clone();
    std::thread::spawn(move || {
        let echo: Box<dyn Write> =
            if stdout_to_stderr { Box::new(std::io::stderr()) } else { Box::new(std::io::stdout()) };
        let n = tee(out_pipe, echo, &so);
        let _ = tx.send((true, n));
    });
    std::thread::spawn(move || {
        let n = tee(err_pipe, std::io::stderr(), &se);
        let _ = tx2.send((false, n));
    });
    let status = child.wait().map_err(|e| ExecError::Spawn { program: program.into(), source: e });
    // A grandchild the command left behind may keep the pipes open for ever; once the
    // command itself has ended, give the streams a moment to drain, then record what came.
    let (mut out_bytes, mut err_bytes) = (0, 0);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(2);
    for _ in 0..2 {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        match rx.recv_timeout(left) {
            Ok((true, n)) => out_bytes = n,
            Ok((false, n)) => err_bytes = n,
            Err(_) => break,
        }
    }
    handle.close();
    let _ = forwarder.join();
    let status = status?;
    let exit = {
        #[cfg(unix)]
        {
            use std::os::unix::process::ExitStatusExt;
            match (status.code(), status.signal()) {
                (Some(c), _) => (c, None),
                (None, Some(s)) => (128 + s, Some(s)),
                _ => (1, None),
            }
        }
        #[cfg(not(unix))]
        {
            (status.code().unwrap_or(1), None)
        }
    };
    // Digests are filled in by `store_logs`; here we only know the sizes.
    Ok((exit, Logs { stdout: None, stderr: None, stdout_bytes: out_bytes, stderr_bytes: err_bytes }))
}

/// Copies a child's stream to our own and to a file. Our terminal going away (EPIPE)
/// must not stop the capture.
fn tee(mut from: impl Read, mut to: impl Write, file: &Path) -> u64 {
    let mut f = fs::File::create(file).ok();
    let mut buf = vec![0u8; 64 * 1024];
    let mut total = 0u64;
    let mut to_ok = true;
    loop {
        let n = match from.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(_) => break,
        };
        total += n as u64;
        if to_ok && (to.write_all(&buf[..n]).is_err() || to.flush().is_err()) {
            to_ok = false;
        }
        if let Some(fh) = f.as_mut() {
            if fh.write_all(&buf[..n]).is_err() {
                f = None;
            }
        }
    }
    total
}

/// Stores the captured stdout and stderr files as objects.
fn store_logs(store: &Store, work: &Path, logs: &mut Logs) -> Result<()> {
    let batch = store.objects.batch()?;
    for (name, slot, size) in
        [("stdout", &mut logs.stdout, &mut logs.stdout_bytes), ("stderr", &mut logs.stderr, &mut logs.stderr_bytes)]
    {
        let p = work.join(name);
        if let Ok(bytes) = fs::read(&p) {
            let d = repro_core::Digest::of_bytes(&bytes);
            batch.add_bytes(&d, &bytes)?;
            *slot = Some(d);
            *size = bytes.len() as u64;
        }
    }
    batch.commit()?;
    Ok(())
}
