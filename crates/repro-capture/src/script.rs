//! Which script a command runs: `python train.py`, `python -m pkg.mod`, `python -c …`,
//! `./train.sh`, `bash train.sh`, a plain command from PATH — and through a launcher: the
//! script a distributed launcher starts (`torchrun`, `python -m torch.distributed.run`,
//! `accelerate launch`, `deepspeed`), the notebook `jupyter nbconvert` executes, or a
//! notebook given alone (`repro run nb.ipynb`, executed with nbclient).

use std::ffi::OsStr;
use std::path::{Path, PathBuf};

use repro_core::record::ScriptKind;

use crate::{CaptureError, Result};

#[derive(Debug, Clone, PartialEq)]
pub struct ScriptGuess {
    pub kind: ScriptKind,
    /// The script file, absolute.
    pub file: Option<PathBuf>,
    /// The module name for `python -m`.
    pub module: Option<String>,
    /// The resolved program (argv[0]).
    pub program: PathBuf,
    /// The Python interpreter the command runs, when it is one (directly or by shebang).
    pub python: Option<PathBuf>,
    /// The launcher that starts the script (`torchrun`, `jupyter nbconvert`, `nbclient` …).
    pub launcher: Option<String>,
    /// Files the launcher itself writes (the notebook `jupyter nbconvert` produces), absolute.
    pub outputs: Vec<PathBuf>,
}

/// Finds `name` the way the shell would: a path when it holds a slash, else on `path_var`.
pub fn resolve_program(name: &str, cwd: &Path, path_var: Option<&OsStr>) -> Option<PathBuf> {
    if name.contains('/') {
        let p = cwd.join(name);
        return is_executable(&p).then_some(p);
    }
    let path_var = path_var?;
    std::env::split_paths(path_var).map(|d| d.join(name)).find(|p| is_executable(p))
}

fn is_executable(p: &Path) -> bool {
    match std::fs::metadata(p) {
        #[cfg(unix)]
        Ok(m) => {
            use std::os::unix::fs::PermissionsExt;
            m.is_file() && m.permissions().mode() & 0o111 != 0
        }
        #[cfg(not(unix))]
        Ok(m) => m.is_file(),
        Err(_) => false,
    }
}

/// `python`, `python3`, `python3.11`, `pythonw` …
pub fn is_python_name(name: &str) -> bool {
    let Some(rest) = name.strip_prefix("python") else { return false };
    let rest = rest.strip_suffix('w').unwrap_or(rest);
    rest.is_empty() || rest.split('.').all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
}

const SHELLS: [&str; 5] = ["sh", "bash", "zsh", "dash", "ksh"];

/// Identifies the script `argv` runs from `cwd`. Fails only when the program itself cannot be found.
pub fn identify(argv: &[String], cwd: &Path, path_var: Option<&OsStr>) -> Result<ScriptGuess> {
    let first = argv.first().ok_or_else(|| CaptureError::CommandNotFound("(empty command)".into()))?;
    if first.ends_with(".ipynb") {
        return notebook_alone(first, cwd, path_var);
    }
    let program = resolve_program(first, cwd, path_var).ok_or_else(|| CaptureError::CommandNotFound(first.clone()))?;
    let base = program.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let mut guess = ScriptGuess {
        kind: ScriptKind::Command,
        file: None,
        module: None,
        program: program.clone(),
        python: None,
        launcher: None,
        outputs: Vec::new(),
    };

    if let Some(launcher) = Launcher::of_program(&base, argv.get(1).map(String::as_str)) {
        guess.python = shebang_python(&program, path_var);
        let skip = if launcher == Launcher::Accelerate || base == "jupyter" { 2 } else { 1 };
        launcher.apply(&base, &argv[skip.min(argv.len())..], cwd, &mut guess);
        return Ok(guess);
    }

    if is_python_name(&base) {
        guess.python = Some(program);
        let mut i = 1;
        while i < argv.len() {
            let a = argv[i].as_str();
            if a == "-m" || (a.starts_with("-m") && a.len() > 2 && !a.starts_with("--")) {
                let module = if a == "-m" { argv.get(i + 1).cloned() } else { Some(a[2..].to_string()) };
                let rest = if a == "-m" { i + 2 } else { i + 1 };
                if let Some(launcher) = module.as_deref().and_then(Launcher::of_module) {
                    let name = module.clone().unwrap_or_default();
                    launcher.apply(&name, &argv[rest.min(argv.len())..], cwd, &mut guess);
                    return Ok(guess);
                }
                guess.kind = ScriptKind::PythonModule;
                if let Some(m) = &module {
                    guess.file = module_file(m, cwd);
                }
                guess.module = module;
                return Ok(guess);
            }
            if a == "-c" || (a.starts_with("-c") && !a.starts_with("--")) || a == "-" {
                guess.kind = ScriptKind::PythonInline;
                return Ok(guess);
            }
            if a == "--" {
                i += 1;
                break;
            }
            if a == "-W" || a == "-X" || a == "--check-hash-based-pycs" {
                i += 2;
                continue;
            }
            if a.starts_with('-') {
                i += 1;
                continue;
            }
            break;
        }
        match argv.get(i) {
            Some(script) => {
                guess.kind = ScriptKind::PythonFile;
                guess.file = Some(cwd.join(script));
            }
            None => guess.kind = ScriptKind::PythonInline, // an interactive interpreter
        }
        return Ok(guess);
    }

    if SHELLS.contains(&base.as_str()) {
        if let Some(script) = argv.iter().skip(1).find(|a| !a.starts_with('-')) {
            let p = cwd.join(script);
            if p.is_file() {
                guess.kind = ScriptKind::Executable;
                guess.python = shebang_python(&p, path_var);
                guess.file = Some(p);
            }
        }
        return Ok(guess);
    }

    if first.contains('/') {
        guess.kind = ScriptKind::Executable;
        guess.python = shebang_python(&program, path_var);
        guess.file = Some(program);
    }
    Ok(guess)
}

/// `repro run nb.ipynb`: the notebook runs under nbclient in the `python3` (else `python`)
/// first on PATH — the active virtualenv's, which must have nbclient and ipykernel.
fn notebook_alone(nb: &str, cwd: &Path, path_var: Option<&OsStr>) -> Result<ScriptGuess> {
    let file = cwd.join(nb);
    if !file.is_file() {
        return Err(CaptureError::NoSuchPath { path: nb.into(), cwd: cwd.to_path_buf() });
    }
    let python = ["python3", "python"]
        .into_iter()
        .find_map(|p| resolve_program(p, cwd, path_var))
        .ok_or_else(|| CaptureError::NoPython(nb.to_string()))?;
    Ok(ScriptGuess {
        kind: ScriptKind::Notebook,
        file: Some(file),
        module: None,
        program: python.clone(),
        python: Some(python),
        launcher: Some("nbclient".into()),
        outputs: Vec::new(),
    })
}

/// A program that starts the training script rather than being it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Launcher {
    /// `torchrun`, `python -m torch.distributed.run` (or `.launch`).
    Torchrun,
    /// `deepspeed`, `python -m deepspeed.launcher.runner`.
    Deepspeed,
    /// `accelerate launch`, `python -m accelerate.commands.launch`.
    Accelerate,
    /// `jupyter nbconvert`, `jupyter-nbconvert`.
    Nbconvert,
}

/// Options of the launchers that take no value; every other option without `=` takes the
/// next argument (the launchers' own parsers are closed sets, and most options take one).
const TORCHRUN_FLAGS: [&str; 10] = [
    "-m",
    "--module",
    "--no-python",
    "--no_python",
    "--standalone",
    "--run-path",
    "--run_path",
    "--use-env",
    "--use_env",
    "-h",
];
const DEEPSPEED_FLAGS: [&str; 12] = [
    "--module",
    "--no_python",
    "--no_local_rank",
    "--no_ssh_check",
    "--force_multi",
    "--save_pid",
    "--elastic_training",
    "--bind_cores_to_rank",
    "--no_ssh",
    "--enable_each_rank_log",
    "--autotuning",
    "-h",
];
const ACCELERATE_FLAGS: [&str; 22] = [
    "-m",
    "--module",
    "--no_python",
    "--cpu",
    "--multi_gpu",
    "--tpu",
    "--ipex",
    "--use_xpu",
    "--use_deepspeed",
    "--use_fsdp",
    "--use_megatron_lm",
    "--debug",
    "-q",
    "--quiet",
    "--same_network",
    "--tpu_use_cluster",
    "--tpu_use_sudo",
    "--downcast_bf16",
    "--enable_cpu_affinity",
    "--dynamo_use_fullgraph",
    "--dynamo_use_dynamic",
    "-h",
];
/// nbconvert's options that take a value (its boolean flags are many; these are few).
const NBCONVERT_VALUES: [&str; 9] = [
    "--to",
    "--output",
    "--output-dir",
    "--template",
    "--template-file",
    "--config",
    "--log-level",
    "--writer",
    "--post",
];

impl Launcher {
    fn of_program(base: &str, next: Option<&str>) -> Option<Self> {
        match (base, next) {
            ("torchrun", _) => Some(Launcher::Torchrun),
            ("deepspeed", _) => Some(Launcher::Deepspeed),
            ("accelerate", Some("launch")) => Some(Launcher::Accelerate),
            ("jupyter", Some("nbconvert")) | ("jupyter-nbconvert", _) => Some(Launcher::Nbconvert),
            _ => None,
        }
    }

    fn of_module(module: &str) -> Option<Self> {
        match module {
            "torch.distributed.run" | "torch.distributed.launch" => Some(Launcher::Torchrun),
            "deepspeed.launcher.runner" => Some(Launcher::Deepspeed),
            "accelerate.commands.launch" => Some(Launcher::Accelerate),
            "nbconvert" => Some(Launcher::Nbconvert),
            _ => None,
        }
    }

    /// Fills `guess` with the script `args` (the launcher's arguments) start.
    fn apply(self, name: &str, args: &[String], cwd: &Path, guess: &mut ScriptGuess) {
        guess.launcher = Some(match (self, name) {
            (Launcher::Accelerate, "accelerate") => "accelerate launch".to_string(),
            (Launcher::Nbconvert, _) => "jupyter nbconvert".to_string(),
            _ => name.to_string(),
        });
        if self == Launcher::Nbconvert {
            nbconvert(args, cwd, guess);
            return;
        }
        let flags: &[&str] = match self {
            Launcher::Torchrun => &TORCHRUN_FLAGS,
            Launcher::Deepspeed => &DEEPSPEED_FLAGS,
            _ => &ACCELERATE_FLAGS,
        };
        let (mut module, mut no_python, mut script) = (false, false, None);
        let mut i = 0;
        while i < args.len() {
            let a = args[i].as_str();
            if a == "--" {
                script = args.get(i + 1).cloned();
                break;
            }
            if a.starts_with('-') && a.len() > 1 {
                let opt = a.split('=').next().unwrap_or(a);
                if matches!(opt, "-m" | "--module") {
                    module = true;
                }
                if matches!(opt, "--no-python" | "--no_python") {
                    no_python = true;
                }
                i += if a.contains('=') || flags.contains(&opt) { 1 } else { 2 };
                continue;
            }
            // accelerate: the first `.py` is the script even after unknown flags.
            script = Some(a.to_string());
            break;
        }
        if self == Launcher::Accelerate && !module {
            if let Some(py) = args.iter().find(|a| a.ends_with(".py") && !a.starts_with('-')) {
                script = Some(py.clone());
            }
        }
        let Some(script) = script else { return };
        if module {
            guess.kind = ScriptKind::PythonModule;
            guess.file = module_file(&script, cwd);
            guess.module = Some(script);
        } else if no_python {
            guess.kind = ScriptKind::Executable;
            guess.file = Some(cwd.join(&script)).filter(|p| p.is_file());
        } else {
            guess.kind = ScriptKind::PythonFile;
            guess.file = Some(cwd.join(&script));
        }
    }
}

/// `jupyter nbconvert [options] NB.ipynb`: the notebook, and the file it writes.
fn nbconvert(args: &[String], cwd: &Path, guess: &mut ScriptGuess) {
    let (mut to, mut output, mut output_dir, mut inplace, mut notebook) = (None, None, None, false, None);
    let mut i = 0;
    while i < args.len() {
        let a = args[i].as_str();
        if a.starts_with("--") {
            let (opt, value) = match a.split_once('=') {
                Some((o, v)) => (o, Some(v.to_string())),
                None if NBCONVERT_VALUES.contains(&a) || (a.contains('.') && !a.ends_with(".ipynb")) => {
                    i += 1;
                    (a, args.get(i).cloned())
                }
                None => (a, None),
            };
            match opt {
                "--to" => to = value,
                "--output" => output = value,
                "--output-dir" => output_dir = value,
                "--inplace" => inplace = true,
                _ => {}
            }
        } else if notebook.is_none() && a.ends_with(".ipynb") {
            notebook = Some(cwd.join(a));
        }
        i += 1;
    }
    let Some(nb) = notebook else { return };
    guess.kind = ScriptKind::Notebook;
    let to = to.unwrap_or_else(|| "notebook".into());
    let ext = match to.as_str() {
        "notebook" => "ipynb",
        "html" | "slides" => "html",
        "script" | "python" => "py",
        "markdown" => "md",
        "latex" => "tex",
        "pdf" | "webpdf" => "pdf",
        other => other,
    };
    let dir = match &output_dir {
        Some(d) => cwd.join(d),
        None => nb.parent().map(Path::to_path_buf).unwrap_or_else(|| cwd.to_path_buf()),
    };
    let stem = nb.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
    let written = match (inplace, output) {
        // Rewriting the notebook itself: the output is the script, nothing to add.
        (true, _) => None,
        (false, Some(o)) if Path::new(&o).extension().is_some() => Some(dir.join(o)),
        (false, Some(o)) => Some(dir.join(format!("{o}.{ext}"))),
        // nbconvert adds `.nbconvert` so a notebook-to-notebook run never overwrites its input.
        (false, None) if ext == "ipynb" => Some(dir.join(format!("{stem}.nbconvert.ipynb"))),
        (false, None) => Some(dir.join(format!("{stem}.{ext}"))),
    };
    guess.outputs.extend(written);
    guess.file = Some(nb);
}

fn module_file(module: &str, cwd: &Path) -> Option<PathBuf> {
    let rel: PathBuf = module.split('.').collect();
    let as_file = cwd.join(&rel).with_extension("py");
    if as_file.is_file() {
        return Some(as_file);
    }
    let as_pkg = cwd.join(&rel).join("__main__.py");
    as_pkg.is_file().then_some(as_pkg)
}

/// The interpreter named by a `#!` line, when it is a Python.
fn shebang_python(script: &Path, path_var: Option<&OsStr>) -> Option<PathBuf> {
    use std::io::Read;
    let mut head = [0u8; 256];
    let n = std::fs::File::open(script).ok()?.read(&mut head).ok()?;
    let text = String::from_utf8_lossy(&head[..n]);
    let line = text.strip_prefix("#!")?.lines().next()?.trim();
    let mut parts = line.split_whitespace();
    let interp = parts.next()?;
    let name = Path::new(interp).file_name()?.to_string_lossy().into_owned();
    if name == "env" {
        let target = parts.find(|p| !p.starts_with('-'))?;
        return is_python_name(target).then(|| resolve_program(target, Path::new("/"), path_var)).flatten();
    }
    is_python_name(&name).then(|| PathBuf::from(interp))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn argv(s: &str) -> Vec<String> {
        s.split_whitespace().map(str::to_string).collect()
    }

    #[test]
    fn python_names() {
        for n in ["python", "python3", "python3.11", "pythonw", "python3.12w"] {
            assert!(is_python_name(n), "{n}");
        }
        for n in ["pythonic", "python3.", "py", "ipython", "python3.x"] {
            assert!(!is_python_name(n), "{n}");
        }
    }

    #[test]
    fn python_forms() {
        let dir = tempfile::tempdir().expect("tempdir");
        let cwd = dir.path();
        std::fs::create_dir_all(cwd.join("pkg")).expect("mkdir");
        std::fs::write(cwd.join("pkg/train.py"), "").expect("write");
        let path = std::env::var_os("PATH");
        let py = ["python3", "python"]
            .into_iter()
            .find(|p| resolve_program(p, cwd, path.as_deref()).is_some())
            .expect("a python on PATH");
        let g = identify(&argv(&format!("{py} -u -W ignore train.py --epochs 3")), cwd, path.as_deref()).expect("ok");
        assert_eq!(g.kind, ScriptKind::PythonFile);
        assert_eq!(g.file, Some(cwd.join("train.py")));
        let g = identify(&argv(&format!("{py} -m pkg.train")), cwd, path.as_deref()).expect("ok");
        assert_eq!((g.kind, g.file.clone()), (ScriptKind::PythonModule, Some(cwd.join("pkg/train.py"))));
        let g = identify(&argv(&format!("{py} -c pass")), cwd, path.as_deref()).expect("ok");
        assert_eq!(g.kind, ScriptKind::PythonInline);
        assert!(matches!(
            identify(&argv("no-such-program-xyz"), cwd, path.as_deref()),
            Err(CaptureError::CommandNotFound(_))
        ));
    }

    /// A folder with fake launchers (scripts whose shebang names `/opt/venv/bin/python3`)
    /// and a project with train.py, pkg/train.py and nb.ipynb.
    fn launchers() -> (tempfile::TempDir, std::ffi::OsString) {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().expect("tempdir");
        let bin = dir.path().join("bin");
        std::fs::create_dir_all(&bin).expect("mkdir");
        for name in ["torchrun", "accelerate", "deepspeed", "jupyter", "jupyter-nbconvert", "python3"] {
            let p = bin.join(name);
            std::fs::write(&p, "#!/opt/venv/bin/python3\n").expect("write");
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        }
        std::fs::create_dir_all(dir.path().join("pkg")).expect("mkdir");
        for f in ["train.py", "pkg/train.py", "nb.ipynb", "run.sh"] {
            std::fs::write(dir.path().join(f), "").expect("write");
        }
        let path = std::env::join_paths([bin]).expect("path");
        (dir, path)
    }

    #[test]
    fn distributed_launchers() {
        let (dir, path) = launchers();
        let cwd = dir.path();
        let venv_python = Some(PathBuf::from("/opt/venv/bin/python3"));
        let cases: [(&str, &str, ScriptKind, &str); 17] = [
            ("torchrun --nproc_per_node=2 train.py --lr 0.1", "torchrun", ScriptKind::PythonFile, "train.py"),
            ("torchrun --nproc_per_node 2 --nnodes 1 train.py", "torchrun", ScriptKind::PythonFile, "train.py"),
            (
                "torchrun --standalone --nproc-per-node 2 --master_port 29501 train.py",
                "torchrun",
                ScriptKind::PythonFile,
                "train.py",
            ),
            (
                "torchrun --rdzv-backend c10d --rdzv-endpoint=localhost:0 -r 3 -t 3 train.py",
                "torchrun",
                ScriptKind::PythonFile,
                "train.py",
            ),
            (
                "torchrun --nproc_per_node 2 -m pkg.train --epochs 3",
                "torchrun",
                ScriptKind::PythonModule,
                "pkg/train.py",
            ),
            ("torchrun --no-python --nproc_per_node 2 ./run.sh", "torchrun", ScriptKind::Executable, "run.sh"),
            (
                "python3 -m torch.distributed.run --nproc_per_node=2 train.py",
                "torch.distributed.run",
                ScriptKind::PythonFile,
                "train.py",
            ),
            (
                "python3 -m torch.distributed.launch --nproc_per_node 2 --use_env train.py",
                "torch.distributed.launch",
                ScriptKind::PythonFile,
                "train.py",
            ),
            ("accelerate launch train.py --lr 0.1", "accelerate launch", ScriptKind::PythonFile, "train.py"),
            (
                "accelerate launch --config_file cfg.yaml --num_processes 2 train.py",
                "accelerate launch",
                ScriptKind::PythonFile,
                "train.py",
            ),
            (
                "accelerate launch --multi_gpu --mixed_precision bf16 --some_new_flag train.py",
                "accelerate launch",
                ScriptKind::PythonFile,
                "train.py",
            ),
            (
                "accelerate launch --num_processes 2 -m pkg.train",
                "accelerate launch",
                ScriptKind::PythonModule,
                "pkg/train.py",
            ),
            (
                "python3 -m accelerate.commands.launch --num_processes=2 train.py",
                "accelerate.commands.launch",
                ScriptKind::PythonFile,
                "train.py",
            ),
            ("deepspeed train.py --deepspeed ds.json", "deepspeed", ScriptKind::PythonFile, "train.py"),
            (
                "deepspeed --num_gpus 2 --master_port 29500 --hostfile hosts train.py",
                "deepspeed",
                ScriptKind::PythonFile,
                "train.py",
            ),
            (
                "deepspeed --no_local_rank --include localhost:0,1 train.py",
                "deepspeed",
                ScriptKind::PythonFile,
                "train.py",
            ),
            ("deepspeed --module --num_gpus 2 pkg.train", "deepspeed", ScriptKind::PythonModule, "pkg/train.py"),
        ];
        for (command, launcher, kind, file) in cases {
            let g = identify(&argv(command), cwd, Some(&path)).expect(command);
            assert_eq!(g.launcher.as_deref(), Some(launcher), "{command}");
            assert_eq!(g.kind, kind, "{command}");
            assert_eq!(g.file, Some(cwd.join(file)), "{command}");
            if command.starts_with("python3") {
                assert_eq!(g.python, Some(cwd.join("bin/python3")), "{command}: the interpreter run");
            } else {
                assert_eq!(g.python, venv_python, "{command}: the launcher's shebang Python");
            }
        }
        // A launcher with no script yet names none.
        let g = identify(&argv("torchrun --nproc_per_node 2"), cwd, Some(&path)).expect("ok");
        assert_eq!((g.kind, g.file, g.launcher.as_deref()), (ScriptKind::Command, None, Some("torchrun")));
    }

    #[test]
    fn notebooks() {
        let (dir, path) = launchers();
        let cwd = dir.path();
        let g = identify(&argv("nb.ipynb"), cwd, Some(&path)).expect("ok");
        assert_eq!(
            (g.kind, g.file.clone(), g.launcher.as_deref()),
            (ScriptKind::Notebook, Some(cwd.join("nb.ipynb")), Some("nbclient"))
        );
        assert_eq!(g.python, Some(cwd.join("bin/python3")), "the python3 first on PATH");
        assert!(matches!(identify(&argv("missing.ipynb"), cwd, Some(&path)), Err(CaptureError::NoSuchPath { .. })));
        let empty = std::ffi::OsString::new();
        assert!(matches!(identify(&argv("nb.ipynb"), cwd, Some(&empty)), Err(CaptureError::NoPython(_))));

        let cases: [(&str, Option<&str>); 7] = [
            ("jupyter nbconvert --execute --to notebook nb.ipynb", Some("nb.nbconvert.ipynb")),
            ("jupyter nbconvert --to=notebook --execute --output out nb.ipynb", Some("out.ipynb")),
            (
                "jupyter nbconvert --execute --to notebook --output-dir results nb.ipynb",
                Some("results/nb.nbconvert.ipynb"),
            ),
            ("jupyter nbconvert --execute --ExecutePreprocessor.timeout 600 --to html nb.ipynb", Some("nb.html")),
            ("jupyter nbconvert --execute --to notebook --inplace nb.ipynb", None),
            ("jupyter-nbconvert --execute --to notebook --output=run.ipynb nb.ipynb", Some("run.ipynb")),
            ("python3 -m nbconvert --execute --to notebook nb.ipynb", Some("nb.nbconvert.ipynb")),
        ];
        for (command, written) in cases {
            let g = identify(&argv(command), cwd, Some(&path)).expect(command);
            assert_eq!(g.kind, ScriptKind::Notebook, "{command}");
            assert_eq!(g.launcher.as_deref(), Some("jupyter nbconvert"), "{command}");
            assert_eq!(g.file, Some(cwd.join("nb.ipynb")), "{command}");
            assert_eq!(g.outputs, written.map(|w| cwd.join(w)).into_iter().collect::<Vec<_>>(), "{command}");
        }
    }
}
