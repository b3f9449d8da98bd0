//! The installed set of a Python interpreter, read from its metadata files directly
//! (`*.dist-info`, `*.egg-info`, `conda-meta/*.json`) instead of spawning pip: one
//! directory listing and two small reads a package.

use std::collections::{BTreeMap, HashMap};
use std::ffi::OsStr;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};

use repro_core::record::{InstalledPackage, PythonEnvironment};

use crate::script::resolve_program;

pub use repro_core::diff::normalize_package_name as normalize;

/// The interpreter a command will use: the one it names, else the active virtualenv or
/// conda env, else `python3` on PATH.
pub fn find_interpreter(
    named: Option<&Path>,
    vars: &BTreeMap<String, String>,
    path_var: Option<&OsStr>,
) -> Option<(PathBuf, &'static str)> {
    if let Some(p) = named {
        return Some((p.to_path_buf(), "command"));
    }
    for (var, how) in [("VIRTUAL_ENV", "VIRTUAL_ENV"), ("CONDA_PREFIX", "CONDA_PREFIX")] {
        if let Some(prefix) = vars.get(var) {
            for name in ["bin/python", "bin/python3", "python.exe"] {
                let p = Path::new(prefix).join(name);
                if p.is_file() {
                    return Some((p, how));
                }
            }
        }
    }
    resolve_program("python3", Path::new("/"), path_var)
        .or_else(|| resolve_program("python", Path::new("/"), path_var))
        .map(|p| (p, "PATH"))
}

/// Reads the environment of the interpreter at `executable`. `None` when it is not a
/// Python installation we can read. Package URLs come without credentials (see
/// [`inspect_reporting`]).
pub fn inspect(executable: &Path, found_by: &str) -> Option<PythonEnvironment> {
    inspect_reporting(executable, found_by).map(|(env, _)| env)
}

/// [`inspect`], with what was removed from package URLs (`direct_url.json`, a conda
/// package's channel) before they could be recorded: not every installer strips
/// credentials from `direct_url.json` as pip does.
pub fn inspect_reporting(executable: &Path, found_by: &str) -> Option<(PythonEnvironment, Vec<String>)> {
    let mut env = read_environment(executable, found_by)?;
    let mut removed = Vec::new();
    for p in &mut env.packages {
        let Some(url) = &p.url else { continue };
        let (clean, found) = repro_core::secrets::strip_text(url);
        if found.is_empty() {
            continue;
        }
        let source = if p.installer.as_deref() == Some("conda") { "its conda channel" } else { "direct_url.json" };
        removed.extend(found.iter().map(|f| format!("installed package {} ({source}): {}", p.name, f.credential)));
        p.url = Some(clean.into_owned());
    }
    Some((env, removed))
}

fn read_environment(executable: &Path, found_by: &str) -> Option<PythonEnvironment> {
    let bin = executable.parent()?;
    let prefix = bin.parent()?.to_path_buf();
    let mut site_dirs = Vec::new();
    let mut version = None;
    let kind;
    let mut conda_prefix = None;
    if let Some(cfg) = read_pyvenv_cfg(&prefix.join("pyvenv.cfg")) {
        kind = "venv";
        version = cfg.get("version").or_else(|| cfg.get("version_info")).cloned();
        site_dirs.extend(lib_site_dirs(&prefix));
        if cfg.get("include-system-site-packages").map(|v| v.eq_ignore_ascii_case("true")).unwrap_or(false) {
            if let Some(home) = cfg.get("home") {
                if let Some(base) = Path::new(home).parent() {
                    site_dirs.extend(lib_site_dirs(base));
                }
            }
        }
    } else if prefix.join("conda-meta").is_dir() {
        kind = "conda";
        conda_prefix = Some(prefix.clone());
        site_dirs.extend(lib_site_dirs(&prefix));
    } else {
        kind = "system";
        let real = std::fs::canonicalize(executable).ok()?;
        let real_prefix = real.parent()?.parent()?.to_path_buf();
        site_dirs.extend(lib_site_dirs(&real_prefix));
        // Debian's layout: dist-packages beside the interpreter's own lib folder.
        let py = site_dirs
            .first()
            .and_then(|d| d.parent())
            .and_then(|d| d.file_name())
            .map(|n| n.to_string_lossy().into_owned());
        if let Some(py) = &py {
            for extra in [format!("/usr/local/lib/{py}/dist-packages"), "/usr/lib/python3/dist-packages".to_string()] {
                let p = PathBuf::from(extra);
                if p.is_dir() && !site_dirs.contains(&p) {
                    site_dirs.push(p);
                }
            }
            if let Some(home) = std::env::var_os("HOME") {
                let user = Path::new(&home).join(".local/lib").join(py).join("site-packages");
                if user.is_dir() {
                    site_dirs.push(user);
                }
            }
        }
        if version.is_none() {
            version = patchlevel(&real_prefix);
        }
    }
    if version.is_none() {
        version = patchlevel(&prefix).or_else(|| ask_interpreter(executable));
    }
    if site_dirs.is_empty() && version.is_none() {
        return None;
    }

    let mut packages: BTreeMap<String, InstalledPackage> = BTreeMap::new();
    if let Some(cp) = &conda_prefix {
        for p in conda_packages(cp) {
            packages.entry(normalize(&p.name)).or_insert(p);
        }
    }
    for dir in &site_dirs {
        for p in site_packages(dir) {
            // First on sys.path wins, as in Python; conda's own record wins over its dist-info.
            packages.entry(normalize(&p.name)).or_insert(p);
        }
    }
    Some(PythonEnvironment {
        executable: executable.display().to_string(),
        kind: kind.to_string(),
        prefix: prefix.display().to_string(),
        version,
        site_dirs: site_dirs.iter().map(|d| d.display().to_string()).collect(),
        packages: packages.into_values().collect(),
        found_by: found_by.to_string(),
    })
}

fn read_pyvenv_cfg(path: &Path) -> Option<HashMap<String, String>> {
    let text = std::fs::read_to_string(path).ok()?;
    Some(
        text.lines()
            .filter_map(|l| l.split_once('='))
            .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
            .collect(),
    )
}

fn lib_site_dirs(prefix: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for lib in ["lib", "lib64"] {
        let Ok(entries) = std::fs::read_dir(prefix.join(lib)) else { continue };
        let mut found: Vec<PathBuf> = entries
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().starts_with("python"))
            .map(|e| e.path().join("site-packages"))
            .filter(|p| p.is_dir())
            .collect();
        found.sort();
        for f in found {
            let real = std::fs::canonicalize(&f).unwrap_or(f.clone());
            if !out.iter().any(|o: &PathBuf| std::fs::canonicalize(o).unwrap_or(o.clone()) == real) {
                out.push(f);
            }
        }
    }
    // Windows layout.
    let win = prefix.join("Lib").join("site-packages");
    if win.is_dir() {
        out.push(win);
    }
    out
}

/// `PY_VERSION` from the installed headers, when they are there.
fn patchlevel(prefix: &Path) -> Option<String> {
    let include = std::fs::read_dir(prefix.join("include")).ok()?;
    for e in include.flatten() {
        let p = e.path().join("patchlevel.h");
        if let Ok(text) = std::fs::read_to_string(&p) {
            for line in text.lines() {
                if let Some(rest) = line.strip_prefix("#define PY_VERSION") {
                    return Some(rest.trim().trim_matches('"').to_string());
                }
            }
        }
    }
    None
}

/// The last resort: ask the interpreter (with `-I -S`, so no site imports; a few ms).
fn ask_interpreter(executable: &Path) -> Option<String> {
    let out = std::process::Command::new(executable)
        .args(["-I", "-S", "-c", "import sys; print('%d.%d.%d' % sys.version_info[:3])"])
        .output()
        .ok()?;
    out.status.success().then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// Every distribution in one site-packages folder.
pub fn site_packages(dir: &Path) -> Vec<InstalledPackage> {
    let Ok(entries) = std::fs::read_dir(dir) else { return Vec::new() };
    let mut out = Vec::new();
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let path = e.path();
        if name.ends_with(".dist-info") {
            if let Some(mut p) = read_metadata_headers(&path.join("METADATA")) {
                p.installer = std::fs::read_to_string(path.join("INSTALLER"))
                    .ok()
                    .map(|s| s.trim().to_string())
                    .filter(|s| !s.is_empty());
                p.url = direct_url(&path.join("direct_url.json"));
                out.push(p);
            }
        } else if name.ends_with(".egg-info") {
            let pkg_info = if path.is_dir() { path.join("PKG-INFO") } else { path.clone() };
            if let Some(p) = read_metadata_headers(&pkg_info) {
                out.push(p);
            }
        }
    }
    out
}

/// Which distribution each importable top-level name of one site-packages folder belongs
/// to (`sklearn` → `scikit-learn`): `top_level.txt` where the installer wrote one, else the
/// first component of each path in `RECORD`.
pub fn module_owners(dir: &Path) -> Vec<(String, String)> {
    let Ok(entries) = std::fs::read_dir(dir) else { return Vec::new() };
    let mut out = Vec::new();
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if !name.ends_with(".dist-info") {
            continue;
        }
        let path = e.path();
        let Some(dist) = read_metadata_headers(&path.join("METADATA")).map(|p| p.name) else { continue };
        let mut tops: Vec<String> = match std::fs::read_to_string(path.join("top_level.txt")) {
            Ok(t) => t.lines().map(|l| l.trim().replace('/', ".")).filter(|l| !l.is_empty()).collect(),
            Err(_) => std::fs::read_to_string(path.join("RECORD"))
                .unwrap_or_default()
                .lines()
                .filter_map(|l| l.split(',').next())
                .filter_map(|p| {
                    let first = p.split('/').next()?;
                    let top = first.strip_suffix(".py").unwrap_or(first);
                    let top = top.split('.').next().unwrap_or(top);
                    (!first.ends_with(".dist-info") && !first.ends_with(".data") && !top.is_empty() && top != "..")
                        .then(|| top.to_string())
                })
                .collect(),
        };
        tops.sort();
        tops.dedup();
        out.extend(tops.into_iter().map(|t| (t, dist.clone())));
    }
    out
}

/// Name and Version from a core-metadata file, reading only its header block.
fn read_metadata_headers(path: &Path) -> Option<InstalledPackage> {
    let f = std::fs::File::open(path).ok()?;
    let mut name = None;
    let mut version = None;
    for line in BufReader::new(f).lines() {
        let line = line.ok()?;
        if line.is_empty() {
            break;
        }
        if let Some(v) = line.strip_prefix("Name:") {
            name = Some(v.trim().to_string());
        } else if let Some(v) = line.strip_prefix("Version:") {
            version = Some(v.trim().to_string());
        }
        if name.is_some() && version.is_some() {
            break;
        }
    }
    Some(InstalledPackage { name: name?, version: version?, installer: None, build: None, url: None })
}

fn direct_url(path: &Path) -> Option<String> {
    let text = std::fs::read_to_string(path).ok()?;
    let v: serde_json::Value = serde_json::from_str(&text).ok()?;
    let url = v.get("url")?.as_str()?.to_string();
    let editable = v.pointer("/dir_info/editable").and_then(|e| e.as_bool()).unwrap_or(false);
    let commit = v.pointer("/vcs_info/commit_id").and_then(|c| c.as_str());
    Some(match (editable, commit) {
        (true, _) => format!("editable {url}"),
        (_, Some(c)) => format!("{url}@{c}"),
        _ => url,
    })
}

fn conda_packages(prefix: &Path) -> Vec<InstalledPackage> {
    let Ok(entries) = std::fs::read_dir(prefix.join("conda-meta")) else { return Vec::new() };
    let mut out = Vec::new();
    for e in entries.flatten() {
        if e.path().extension() != Some(OsStr::new("json")) {
            continue;
        }
        let Ok(text) = std::fs::read_to_string(e.path()) else { continue };
        let Ok(v) = serde_json::from_str::<serde_json::Value>(&text) else { continue };
        let get = |k: &str| v.get(k).and_then(|x| x.as_str()).map(str::to_string);
        if let (Some(name), Some(version)) = (get("name"), get("version")) {
            out.push(InstalledPackage {
                name,
                version,
                installer: Some("conda".into()),
                build: get("build"),
                url: get("channel"),
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalizes_like_pep_503() {
        assert_eq!(normalize("Scikit_Learn"), "scikit-learn");
        assert_eq!(normalize("zope.interface"), "zope-interface");
        assert_eq!(normalize("a__-b"), "a-b");
    }

    #[test]
    fn reads_a_fake_venv() {
        let d = tempfile::tempdir().expect("tempdir");
        let prefix = d.path();
        std::fs::create_dir_all(prefix.join("bin")).expect("mkdir");
        std::fs::write(prefix.join("bin/python"), "").expect("write");
        std::fs::write(prefix.join("pyvenv.cfg"), "home = /usr/bin\nversion = 3.11.7\n").expect("write");
        let sp = prefix.join("lib/python3.11/site-packages");
        std::fs::create_dir_all(sp.join("numpy-1.26.4.dist-info")).expect("mkdir");
        std::fs::write(
            sp.join("numpy-1.26.4.dist-info/METADATA"),
            "Metadata-Version: 2.1\nName: numpy\nVersion: 1.26.4\n\nbody\nName: wrong\n",
        )
        .expect("write");
        std::fs::write(sp.join("numpy-1.26.4.dist-info/INSTALLER"), "pip\n").expect("write");
        std::fs::create_dir_all(sp.join("old.egg-info")).expect("mkdir");
        std::fs::write(sp.join("old.egg-info/PKG-INFO"), "Name: Old_Pkg\nVersion: 0.1\n").expect("write");
        std::fs::create_dir_all(sp.join("broken-1.0.dist-info")).expect("mkdir");
        std::fs::write(sp.join("broken-1.0.dist-info/METADATA"), "garbage\0\u{1}").expect("write");
        let env = inspect(&prefix.join("bin/python"), "command").expect("reads");
        assert_eq!(env.kind, "venv");
        assert_eq!(env.version.as_deref(), Some("3.11.7"));
        let names: Vec<(&str, &str)> = env.packages.iter().map(|p| (p.name.as_str(), p.version.as_str())).collect();
        assert_eq!(names, vec![("numpy", "1.26.4"), ("Old_Pkg", "0.1")]);
        assert_eq!(env.packages[0].installer.as_deref(), Some("pip"));
    }

    #[test]
    fn package_urls_lose_their_credentials() {
        let d = tempfile::tempdir().expect("tempdir");
        let prefix = d.path();
        std::fs::create_dir_all(prefix.join("bin")).expect("mkdir");
        std::fs::write(prefix.join("bin/python"), "").expect("write");
        std::fs::write(prefix.join("pyvenv.cfg"), "home = /usr/bin\nversion = 3.11.7\n").expect("write");
        let sp = prefix.join("lib/python3.11/site-packages");
        for (name, url) in [
            ("private", r#"{"url": "https://__token__:pypi-SECRET@pypi.corp/private-1.0.whl", "archive_info": {}}"#),
            (
                "vcs",
                r#"{"url": "https://x-access-token:SECRET@github.com/o/vcs.git", "vcs_info": {"vcs": "git", "commit_id": "0123abc"}}"#,
            ),
            ("plain", r#"{"url": "https://files.example/plain-1.0.whl", "archive_info": {}}"#),
        ] {
            let info = sp.join(format!("{name}-1.0.dist-info"));
            std::fs::create_dir_all(&info).expect("mkdir");
            std::fs::write(info.join("METADATA"), format!("Name: {name}\nVersion: 1.0\n")).expect("write");
            std::fs::write(info.join("direct_url.json"), url).expect("write");
        }
        let (env, removed) = inspect_reporting(&prefix.join("bin/python"), "command").expect("reads");
        let urls: Vec<&str> = env.packages.iter().filter_map(|p| p.url.as_deref()).collect();
        assert_eq!(
            urls,
            [
                "https://files.example/plain-1.0.whl",
                "https://pypi.corp/private-1.0.whl",
                "https://github.com/o/vcs.git@0123abc"
            ]
        );
        assert_eq!(removed.len(), 2, "{removed:?}");
        assert!(removed[0].starts_with("installed package private (direct_url.json): a password"), "{removed:?}");
        assert!(removed.iter().all(|r| !r.contains("SECRET")));
    }
}
