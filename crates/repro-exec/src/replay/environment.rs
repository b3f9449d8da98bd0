//! Steps 3 and 4 of a replay: the interpreter, a fresh environment when asked, and the run's options.

use super::*;

/// The interpreter named by `--python`, else the recorded one if it still exists, else
/// python3 on PATH. `None` when the run recorded no Python.
pub(super) fn choose_interpreter(rec: &RunRecord, opts: &ReplayOptions) -> Result<Option<(PathBuf, &'static str)>> {
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
pub(super) fn environment_differences(
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

// ---- 3. environment ----------------------------------------------------------------------

/// Builds a virtualenv holding exactly the recorded packages: with uv when it is on PATH,
/// else `python -m venv` and pip, both with `--no-deps` (the recorded set is already
/// complete, and resolving again could pick other versions). Returns the tool used.
pub(super) fn create_env(
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

pub(super) fn run_options(
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
            .filter(|p| repro_util::hash::hash_file(p).map(|(d, _)| d == f.digest).unwrap_or(false));
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
        // Watched as the run was: the replay's own reads and seeds explain a difference.
        no_probe: rec.probe.as_ref().is_some_and(|p| p.status == repro_core::probe::ProbeStatus::Disabled),
        // The original's undeclared inputs that --auto-data kept are among `data` already.
        auto_data: false,
        // The caller's REPRO_IMAGE (in `vars`) and the runtime still say where the replay ran.
        image: None,
        // Filled in by the caller from the restore.
        restored: Vec::new(),
    })
}
