//! Before the command runs: everything captured and checked into a prepared record.

use super::*;

pub(super) struct Prepared {
    pub(super) record: RunRecord,
    pub(super) diff_bytes: Option<Vec<u8>>,
    pub(super) files_to_store: Vec<PathBuf>,
    pub(super) script_file: Option<PathBuf>,
    pub(super) params_bytes: Vec<Vec<u8>>,
    pub(super) child_env: Vec<(String, String)>,
    pub(super) planned_inputs: Vec<(PathBuf, String)>,
    /// Outputs: absolute path, recorded path, and the file's modification time before the run.
    pub(super) planned_outputs: Vec<(PathBuf, String, Option<std::time::SystemTime>)>,
    pub(super) declared: Option<Declared>,
    /// Differences between the interpreter and the registered environment.
    pub(super) drift: Vec<String>,
    /// Credentials removed from URLs before anything was recorded: where, and what kind.
    pub(super) removed: Vec<String>,
    /// Objects to store that are no file of the tree (a notebook and its code cells).
    pub(super) objects: Vec<Vec<u8>>,
    /// `repro run nb.ipynb`: how the notebook is executed.
    pub(super) notebook: Option<notebook::NotebookRun>,
}

/// Path as recorded: relative to the repository root when inside it, else absolute.
pub(super) fn recorded_path(abs: &Path, root: Option<&Path>) -> String {
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

pub(super) fn prepare(store: &Store, opts: &RunOptions) -> Result<Prepared> {
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
    let mut output_abs: Vec<PathBuf> = opts.outputs.iter().map(|o| absolute(&cwd, o)).collect();
    let notebook_run = notebook::launcher_outputs(&guess, &opts.command, &mut output_abs)?;
    let container = container::container(opts)?;
    if let Some(e) = &opts.env_file {
        let abs = absolute(&cwd, e);
        if !abs.is_file() {
            return Err(repro_capture::CaptureError::NoSuchPath { path: e.clone(), cwd: cwd.clone() }.into());
        }
    }

    // Observe in parallel: git, the interpreter's packages and the hardware are independent.
    let mut exclude: Vec<PathBuf> = input_abs.iter().chain(output_abs.iter()).cloned().collect();
    // repro's own OpenLineage events file is no more the code than the store is.
    if let Some(file) = store.config.openlineage.as_ref().and_then(|o| o.file.as_ref()) {
        exclude.push(store.project_dir().join(file));
    }
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
    notebook::check_runnable(notebook_run.as_ref(), python_env.as_ref())?;
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
    let mut objects = Vec::new();
    let script_info = {
        let mut info = ScriptInfo {
            argv: opts.command.clone(),
            workdir: recorded_path(&cwd, root_ref),
            kind: guess.kind,
            path: None,
            digest: None,
            tracked_unchanged: None,
            git_state: None,
            launcher: guess.launcher.clone(),
            file_digest: None,
            diff_elsewhere: None,
        };
        if let Some(file) = &guess.file {
            let rel = recorded_path(file, root_ref);
            info.path = Some(rel.clone());
            if file.is_file() && notebook::is_notebook(&guess) {
                objects = notebook::notebook_digests(&mut info, file, root_ref, git_cap.code.diff.is_some())?;
            } else if file.is_file() {
                let (d, _) = repro_util::hash::hash_file(file).map_err(ExecError::io("read", file))?;
                info.digest = Some(d);
                files_to_store.push(file.clone());
            }
            if file.is_file() {
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
    if !opts.vars.contains_key("CUBLAS_WORKSPACE_CONFIG") {
        // torch.use_deterministic_algorithms(True) needs it on CUDA (cuBLAS otherwise raises
        // or picks workspaces by timing); harmless without a GPU.
        child_env.push(("CUBLAS_WORKSPACE_CONFIG".into(), CUBLAS_WORKSPACE.into()));
        set_by_repro.push("CUBLAS_WORKSPACE_CONFIG".into());
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
    let (started_ms, host) = (repro_util::clock::now_ms(), repro_util::host::hostname());
    let user = repro_util::host::username()
        .or_else(|| opts.vars.get("USER").or_else(|| opts.vars.get("LOGNAME")).cloned())
        .unwrap_or_else(|| "unknown".into());
    let record = RunRecord {
        record_version: RECORD_VERSION,
        id,
        name: opts.name.clone(),
        status: RunStatus::Running,
        exit_code: None,
        signal: None,
        started_at: repro_util::clock::rfc3339(started_ms),
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
            container,
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
        probe: None,
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
        // A notebook's digests are of the bytes read above, stored as `objects`.
        script_file: guess.file.clone().filter(|f| f.is_file() && !notebook::is_notebook(&guess)),
        params_bytes,
        child_env,
        declared,
        drift,
        removed,
        objects,
        notebook: notebook_run,
    })
}

/// The bytes to store for a file the run keeps: a declared environment file that held
/// credentials is stored as its redacted copy wherever it appears, also when git sees it
/// as an untracked file.
pub(super) fn bytes_to_store(declared: Option<&Declared>, file: &Path) -> std::io::Result<Vec<u8>> {
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
pub(super) fn pre_run_audit(p: &Prepared) -> Vec<AuditItem> {
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
