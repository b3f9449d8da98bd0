//! Which script a command runs: `python train.py`, `python -m pkg.mod`, `python -c …`,
//! `./train.sh`, `bash train.sh`, or a plain command from PATH.

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
    let program = resolve_program(first, cwd, path_var).ok_or_else(|| CaptureError::CommandNotFound(first.clone()))?;
    let base = program.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let mut guess =
        ScriptGuess { kind: ScriptKind::Command, file: None, module: None, program: program.clone(), python: None };

    if is_python_name(&base) {
        guess.python = Some(program);
        let mut i = 1;
        while i < argv.len() {
            let a = argv[i].as_str();
            if a == "-m" || (a.starts_with("-m") && a.len() > 2 && !a.starts_with("--")) {
                let module = if a == "-m" { argv.get(i + 1).cloned() } else { Some(a[2..].to_string()) };
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
}
