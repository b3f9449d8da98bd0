//! Notebooks and launchers in `repro run`: the files a launcher writes (the executed
//! notebook), a notebook's two digests, and the nbclient command `repro run nb.ipynb`
//! becomes when it is spawned.
//!
//! The record keeps the user's command (`nb.ipynb`); it is expanded to
//! `python3 <driver> nb.ipynb <executed> <kernels>` only when the process starts, in a run
//! and in its replay alike, so the recorded command replays with whatever interpreter the
//! replay approved (the one first on PATH) and with the driver of the repro that replays.

use repro_capture::script::ScriptGuess;
use repro_core::record::{PythonEnvironment, ScriptKind};

use super::*;

/// The nbclient runner, written into the run's private folder at spawn time.
const DRIVER: &str = include_str!("nbclient_driver.py");

/// How `repro run nb.ipynb` executes: the interpreter, the notebook and where the
/// executed copy goes (all absolute).
#[derive(Clone, Debug)]
pub(super) struct NotebookRun {
    python: PathBuf,
    notebook: PathBuf,
    executed: PathBuf,
}

/// The outputs a launcher writes, added to `outputs` (so they are snapshotted, and never
/// taken for untracked code), and for `repro run nb.ipynb` how it runs: the executed copy
/// goes to the `--output` that names an `.ipynb`, else to `<stem>.executed.ipynb` beside it.
pub(super) fn launcher_outputs(
    guess: &ScriptGuess,
    command: &[String],
    outputs: &mut Vec<PathBuf>,
) -> Result<Option<NotebookRun>> {
    for o in &guess.outputs {
        if !outputs.contains(o) {
            outputs.push(o.clone());
        }
    }
    if guess.launcher.as_deref() != Some("nbclient") {
        return Ok(None);
    }
    let (Some(notebook), Some(python)) = (guess.file.clone(), guess.python.clone()) else { return Ok(None) };
    if command.len() > 1 {
        return Err(ExecError::Usage(format!(
            "repro run {} takes no arguments after the notebook; pass values with --param (the notebook reads the JSON file REPRO_PARAMS names)",
            command[0]
        )));
    }
    let executed = match outputs.iter().find(|o| o.extension().is_some_and(|e| e == "ipynb")) {
        Some(o) => o.clone(),
        None => {
            let stem = notebook.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
            let beside = notebook.with_file_name(format!("{stem}.executed.ipynb"));
            outputs.push(beside.clone());
            beside
        }
    };
    if executed == notebook || fs::canonicalize(&executed).ok() == fs::canonicalize(&notebook).ok() {
        return Err(ExecError::Usage(format!(
            "--output {} is the notebook itself; name another file for the executed copy (e.g. --output {})",
            executed.display(),
            notebook.with_extension("executed.ipynb").display()
        )));
    }
    Ok(Some(NotebookRun { python, notebook, executed }))
}

/// Refuses, before anything is recorded, a notebook the interpreter cannot execute.
pub(super) fn check_runnable(run: Option<&NotebookRun>, env: Option<&PythonEnvironment>) -> Result<()> {
    let Some(run) = run else { return Ok(()) };
    let Some(env) = env else {
        return Err(ExecError::Usage(format!(
            "{} is not a Python installation repro can read, so {} cannot run; activate a virtualenv with nbclient and ipykernel",
            run.python.display(),
            run.notebook.display()
        )));
    };
    for needed in ["nbclient", "ipykernel"] {
        if !env.packages.iter().any(|p| repro_capture::python::normalize(&p.name) == needed) {
            return Err(ExecError::Usage(format!(
                "{needed} is not installed in {}; install it there (pip install nbclient ipykernel) to run {}",
                env.executable,
                run.notebook.display()
            )));
        }
    }
    Ok(())
}

/// A notebook's digests: `digest` of its code cells (the object a reader can open as a
/// script), `file_digest` of the whole file; both objects are returned to be stored. For a
/// notebook with uncommitted changes, `diff_elsewhere` says what else was changed.
pub(super) fn notebook_digests(
    info: &mut ScriptInfo,
    file: &Path,
    root: Option<&Path>,
    dirty: bool,
) -> Result<Vec<Vec<u8>>> {
    let bytes = fs::read(file).map_err(ExecError::io("read", file))?;
    let code = repro_capture::notebook::code_cells(&bytes, file)?;
    info.digest = Some(repro_core::Digest::of_bytes(&code));
    info.file_digest = Some(repro_core::Digest::of_bytes(&bytes));
    if let (Some(root), Some(rel), true) = (root, info.path.as_deref(), dirty) {
        let other = git::diff_head_excluding(root, rel)?;
        info.diff_elsewhere = (!other.is_empty()).then(|| repro_core::Digest::of_bytes(&other));
    }
    Ok(vec![bytes, code])
}

/// The program and arguments to spawn: the recorded command, or for a notebook the nbclient
/// driver (written into `work`) in the interpreter found when the run was prepared.
pub(super) fn spawn_argv(command: &[String], run: Option<&NotebookRun>, work: &Path) -> Result<Vec<String>> {
    let Some(run) = run else { return Ok(command.to_vec()) };
    let driver = work.join("repro_nbclient.py");
    fs::write(&driver, DRIVER).map_err(ExecError::io("write", &driver))?;
    let kernels = work.join("kernels");
    Ok([&run.python, &driver, &run.notebook, &run.executed, &kernels].iter().map(|p| p.display().to_string()).collect())
}

/// Where the kind of script a guess names is stored as a notebook.
pub(super) fn is_notebook(guess: &ScriptGuess) -> bool {
    guess.kind == ScriptKind::Notebook
}
