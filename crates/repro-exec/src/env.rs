//! Environments: `repro env check` (is every dependency of a file pinned?) and `repro env
//! parity` (does the environment a model is served from match the one it was trained in?).

use std::path::Path;

use repro_capture::{declared, python};
use repro_core::diff::{compare_packages, normalize_package_name};
use repro_core::environment::{self, EnvironmentSpec};
use repro_core::record::{DeclaredRequirement, InstalledPackage, PinStatus, PythonEnvironment};
use repro_store::environments::EnvironmentRow;
use repro_store::meta::StoredRun;
use repro_store::Store;
use serde::{Deserialize, Serialize};

use crate::{ExecError, Result};

#[derive(Debug, Serialize, Deserialize)]
pub struct CheckReport {
    pub path: String,
    pub format: String,
    pub requirements: Vec<DeclaredRequirement>,
    pub pinned: usize,
    pub loose: usize,
    pub unpinned: usize,
    /// Requirements not pinned exactly that do not matter (a Python series pin, installer
    /// tools), each with why; under `--strict` they count like any other.
    #[serde(default)]
    pub notes: Vec<CheckNote>,
    #[serde(default)]
    pub strict: bool,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct CheckNote {
    pub name: String,
    pub spec: String,
    pub origin: String,
    pub note: String,
}

impl CheckReport {
    /// Every dependency exactly pinned.
    pub fn all_pinned(&self) -> bool {
        self.loose == 0 && self.unpinned == 0
    }

    /// What `repro env check` exits by: exactly pinned under `--strict`, else every
    /// requirement pinned or noted.
    pub fn passes(&self) -> bool {
        self.all_pinned() || (!self.strict && self.loose + self.unpinned == self.notes.len())
    }
}

/// Reads a declared-environment file and classifies every dependency; `strict`: a Python
/// series pin and installer tools must be exact too.
pub fn check(file: &Path, cwd: &Path, strict: bool) -> Result<CheckReport> {
    let abs = cwd.join(file);
    if !abs.is_file() {
        return Err(repro_capture::CaptureError::NoSuchPath { path: file.to_path_buf(), cwd: cwd.to_path_buf() }.into());
    }
    let d = declared::read(&abs, cwd)?;
    let count = |s: PinStatus| d.environment.requirements.iter().filter(|r| r.status == s).count();
    Ok(CheckReport {
        path: d.environment.path.clone(),
        format: d.environment.format.clone(),
        pinned: count(PinStatus::Pinned),
        loose: count(PinStatus::Loose),
        unpinned: count(PinStatus::Unpinned),
        notes: d
            .environment
            .requirements
            .iter()
            .filter_map(|r| {
                environment::pin_note(r).map(|n| CheckNote {
                    name: r.name.clone(),
                    spec: r.spec.clone(),
                    origin: r.origin.clone(),
                    note: n.to_string(),
                })
            })
            .collect(),
        strict,
        requirements: d.environment.requirements,
    })
}

/// One side of a comparison: a package set and its Python version.
#[derive(Clone, Debug)]
pub struct Side {
    /// What it is, for people: a path, `NAME:V`, `run 1a2b3c4d`.
    pub label: String,
    pub python: Option<String>,
    pub packages: Vec<InstalledPackage>,
    /// The run it comes from (its artifact and declared file say which packages matter).
    pub run: Option<Box<StoredRun>>,
}

impl Side {
    pub fn of_spec(label: String, spec: &EnvironmentSpec) -> Side {
        let (python, packages) = spec.as_packages();
        Side { label, python, packages, run: None }
    }
}

/// A registered environment: `NAME` (the newest version) or `NAME:V`. `None` when the text
/// is not one (so callers may try a file or a run next).
pub fn find_registered(store: &Store, text: &str) -> Result<Option<(EnvironmentRow, EnvironmentSpec)>> {
    let Some((name, version)) = environment::parse_env_ref(text) else { return Ok(None) };
    let Some(row) = store.meta.environments().get(name, version)? else { return Ok(None) };
    let bytes = store.objects.read(&row.spec)?;
    let spec: EnvironmentSpec = serde_json::from_slice(&bytes).map_err(|e| {
        ExecError::Usage(format!(
            "environment {}:{}: its stored spec is unreadable ({e}); run `repro fsck`",
            row.name, row.version
        ))
    })?;
    Ok(Some((row, spec)))
}

/// A registered environment that must exist.
pub fn get_registered(store: &Store, text: &str) -> Result<(EnvironmentRow, EnvironmentSpec)> {
    find_registered(store, text)?.ok_or_else(|| {
        repro_store::StoreError::Missing(format!(
            "no registered environment '{text}'; `repro env ls` lists them (NAME or NAME:VERSION)"
        ))
        .into()
    })
}

/// What `repro run --env X` names.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EnvArg {
    /// A declared file (requirements.txt, environment.yml, …) or a manifest.
    File(std::path::PathBuf),
    /// A registered environment: `NAME:V`, or a `NAME` that is registered.
    Registered(String),
}

impl EnvArg {
    /// A file when one exists there; else a registered `NAME:V` (or a `NAME` that is
    /// registered); anything else is a file that does not exist (and the run says so).
    pub fn resolve(store: &Store, cwd: &Path, given: &Path) -> Result<EnvArg> {
        if cwd.join(given).exists() {
            return Ok(EnvArg::File(given.to_path_buf()));
        }
        let text = given.to_string_lossy().into_owned();
        let registered = match environment::parse_env_ref(&text) {
            Some((name, version)) => text.contains(':') || store.meta.environments().get(name, version)?.is_some(),
            None => false,
        };
        Ok(if registered { EnvArg::Registered(text) } else { EnvArg::File(given.to_path_buf()) })
    }
}

/// The interpreter `repro env capture` reads: `--python PATH` (relative to `cwd`), else the
/// one a run would use (the active virtualenv or conda environment, else `python3` on PATH).
pub fn capture_interpreter(
    python: Option<&Path>,
    cwd: &Path,
    vars: &std::collections::BTreeMap<String, String>,
) -> Result<PythonEnvironment> {
    let found = match python {
        Some(p) => {
            let p = cwd.join(p);
            if !p.exists() {
                return Err(ExecError::Usage(format!(
                    "{} does not exist; give the path of a Python interpreter",
                    p.display()
                )));
            }
            Some((p, "--python"))
        }
        None => python::find_interpreter(None, vars, vars.get("PATH").map(std::ffi::OsStr::new)),
    };
    let Some((exe, how)) = found else {
        return Err(ExecError::Usage(
            "no Python interpreter found; pass --python PATH or activate an environment".into(),
        ));
    };
    python::inspect(&exe, how).ok_or_else(|| {
        ExecError::Usage(format!(
            "{} is not a Python installation repro can read (no site-packages or version found)",
            exe.display()
        ))
    })
}

/// What to compare with: a file (a manifest from `repro env capture`, or a declared file),
/// else a registered environment, else (when `runs` is true) a run. Without `cwd` (on a
/// server, where a path would name the server's disk, not the caller's) files are not tried.
pub fn resolve_side(store: &Store, text: &str, cwd: Option<&Path>, runs: bool) -> Result<Side> {
    if let Some(path) = cwd.map(|c| c.join(text)).filter(|p| p.is_file()) {
        return file_side(&path, text);
    }
    if let Some((row, spec)) = find_registered(store, text)? {
        return Ok(Side::of_spec(format!("{}:{}", row.name, row.version), &spec));
    }
    if runs {
        if let Ok(id) = store.meta.resolve_run(text) {
            return run_side(store.meta.runs().get(&id)?);
        }
    }
    let what = match (cwd.is_some(), runs) {
        (true, true) => "is neither a file, a registered environment or a run",
        (true, false) => "is neither a file or a registered environment",
        (false, true) => "is neither a registered environment or a run",
        (false, false) => "is not a registered environment",
    };
    Err(ExecError::Usage(format!(
        "'{text}' {what}; give {}NAME:VERSION (`repro env ls`){}",
        if cwd.is_some() { "a path, " } else { "" },
        if runs { ", or a run (`repro runs`)" } else { "" }
    )))
}

/// How an interpreter's installed set departs from a registered environment, one line
/// each (empty: it matches). An installed set must match package for package (pip,
/// setuptools and wheel aside); a declared file's exact pins must be installed at that
/// version and its ranges satisfied.
pub fn drift(spec: &EnvironmentSpec, actual: Option<&PythonEnvironment>) -> Vec<String> {
    let Some(actual) = actual else {
        return vec!["no Python interpreter was found to check against it".into()];
    };
    let mut out = Vec::new();
    match spec {
        EnvironmentSpec::Installed { python_version, packages } => {
            if python_version.is_some() && *python_version != actual.version {
                out.push(format!(
                    "Python {} registered, {} here",
                    python_version.as_deref().unwrap_or("?"),
                    actual.version.as_deref().unwrap_or("?")
                ));
            }
            out.extend(
                compare_packages(packages, &actual.packages, &repro_core::diff::INSTALLER_TOOLING)
                    .iter()
                    .map(repro_core::diff::PackageChange::describe),
            );
        }
        EnvironmentSpec::Declared { declared } => {
            out.extend(declared.requirements.iter().filter_map(|r| requirement_drift(r, &actual.packages)));
        }
    }
    out
}

/// How the installed packages depart from one declared requirement (`None`: satisfied,
/// or Python or an installer tool, which a declared file does not pin for the model): an
/// exact pin must be installed at that version and a range satisfied. The run page's
/// declared-vs-installed table marks drift by this, so it and `env check`/`drift` agree.
pub fn requirement_drift(r: &DeclaredRequirement, installed: &[InstalledPackage]) -> Option<String> {
    use std::str::FromStr;
    let name = normalize_package_name(&r.name);
    if name == "python" || repro_core::diff::INSTALLER_TOOLING.contains(&name.as_str()) {
        return None;
    }
    let Some(installed) = installed.iter().find(|p| normalize_package_name(&p.name) == name) else {
        return Some(format!("{} {} declared ({}), not installed", r.name, r.spec, r.origin).replace("  ", " "));
    };
    let ok = match environment::exact_version(&r.spec) {
        Some(v) if r.status == PinStatus::Pinned => v == installed.version,
        _ if r.spec.trim().is_empty() => true,
        _ => {
            match (
                pep508_rs::pep440_rs::VersionSpecifiers::from_str(&r.spec),
                pep508_rs::pep440_rs::Version::from_str(&installed.version),
            ) {
                (Ok(specs), Ok(v)) => specs.contains(&v),
                // Not a PEP 440 range (a conda spec): nothing to judge by.
                _ => true,
            }
        }
    };
    (!ok).then(|| format!("{}: {} declared ({}), {} installed", r.name, r.spec, r.origin, installed.version))
}

/// The training side of `parity`: `NAME:V` of a registered environment, else a run, else
/// a registered `NAME` (its newest version).
pub fn resolve_subject(store: &Store, text: &str) -> Result<Side> {
    let registered = |store: &Store| -> Result<Option<Side>> {
        Ok(find_registered(store, text)?
            .map(|(row, spec)| Side::of_spec(format!("{}:{}", row.name, row.version), &spec)))
    };
    if text.contains(':') {
        if let Some(side) = registered(store)? {
            return Ok(side);
        }
    }
    match store.meta.resolve_run(text) {
        Ok(id) => run_side(store.meta.runs().get(&id)?),
        Err(e) => registered(store)?.ok_or_else(|| e.into()),
    }
}

/// The environment a run trained in.
pub fn run_side(run: StoredRun) -> Result<Side> {
    let python = run.record.environment.python.clone().ok_or_else(|| {
        ExecError::Usage(format!(
            "run {} recorded no Python environment, so there is nothing to compare",
            run.record.id.short()
        ))
    })?;
    Ok(Side {
        label: format!("run {}", run.record.id.short()),
        python: python.version,
        packages: python.packages,
        run: Some(Box::new(run)),
    })
}

/// A live interpreter.
pub fn python_side(exe: &Path, cwd: &Path) -> Result<Side> {
    let p = cwd.join(exe);
    if !p.exists() {
        return Err(ExecError::Usage(format!("--python {}: no such file; give an interpreter's path", p.display())));
    }
    let env = python::inspect(&p, "--python")
        .ok_or_else(|| ExecError::Usage(format!("{} is not a Python installation repro can read", p.display())))?;
    Ok(Side { label: p.display().to_string(), python: env.version, packages: env.packages, run: None })
}

/// A manifest (JSON from `repro env capture`) or a declared file, as a package set.
fn file_side(abs: &Path, label: &str) -> Result<Side> {
    let (spec, _) = read_spec(abs, abs.parent().unwrap_or(Path::new(".")))?;
    Ok(Side::of_spec(label.to_string(), &spec))
}

/// Reads a file as an environment spec: a manifest from `repro env capture` (JSON), else a
/// declared file (requirements, conda, pyproject, locks), with the files to store for it.
/// URL credentials are removed from either, as capture removes them.
fn read_spec(abs: &Path, base: &Path) -> Result<(EnvironmentSpec, Option<declared::Declared>)> {
    let bytes = std::fs::read(abs).map_err(ExecError::io("read", abs))?;
    if bytes.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'{') {
        let mut env: PythonEnvironment = serde_json::from_slice(&bytes).map_err(|e| ExecError::Parse {
            path: abs.to_path_buf(),
            line: e.line(),
            message: format!("not an environment manifest ({e}); write one with `repro env capture -o FILE`"),
        })?;
        for p in &mut env.packages {
            p.url = p.url.take().map(|u| repro_core::secrets::strip_text(&u).0.into_owned());
        }
        return Ok((EnvironmentSpec::installed(&env), None));
    }
    let d = declared::read(abs, base)?;
    Ok((EnvironmentSpec::Declared { declared: d.environment.clone() }, Some(d)))
}

/// `repro env register FILE --name NAME`: the same content gives the same version.
pub fn register(
    store: &mut Store,
    file: &Path,
    name: &str,
    cwd: &Path,
) -> Result<(EnvironmentRow, EnvironmentSpec, bool)> {
    if !environment::valid_env_name(name) {
        return Err(ExecError::Usage(format!(
            "invalid environment name '{name}': use letters, digits, '-', '_', '.' (starting with a letter or digit)"
        )));
    }
    let abs = cwd.join(file);
    if !abs.is_file() {
        return Err(repro_capture::CaptureError::NoSuchPath { path: file.to_path_buf(), cwd: cwd.to_path_buf() }.into());
    }
    let base = abs.parent().unwrap_or(Path::new(".")).to_path_buf();
    let (spec, files) = read_spec(&abs, &base)?;
    // The files themselves are kept (redacted when they held credentials), so the version
    // can be shown and exported as written.
    let batch = store.objects.batch()?;
    if let Some(d) = &files {
        for f in std::iter::once(&d.main_file).chain(&d.companion_files) {
            let bytes = d.bytes_to_store(f).map_err(ExecError::io("read", f))?;
            batch.add_bytes(&repro_core::Digest::of_bytes(&bytes), &bytes)?;
        }
    }
    let json = spec.canonical_json();
    let digest = repro_core::Digest::of_bytes(&json);
    batch.add_bytes(&digest, &json)?;
    batch.commit()?;
    let (row, new) =
        store.meta.environments().register(name, &spec.identity(), &digest, spec.kind(), &abs.display().to_string())?;
    if !new {
        // The same content was registered before: that version, as it was registered.
        let (_, existing) = get_registered(store, &format!("{}:{}", row.name, row.version))?;
        return Ok((row, existing, false));
    }
    Ok((row, spec, new))
}

#[derive(Debug, Serialize, Deserialize)]
pub struct EnvDiff {
    pub a: String,
    pub b: String,
    pub python: Option<(String, String)>,
    pub changes: Vec<repro_core::diff::PackageChange>,
}

/// `repro env diff A B`: package by package, with the kind of each difference.
pub fn diff(a: &Side, b: &Side) -> EnvDiff {
    let python = match (&a.python, &b.python) {
        (Some(x), Some(y)) if x != y => Some((x.clone(), y.clone())),
        _ => None,
    };
    EnvDiff {
        a: a.label.clone(),
        b: b.label.clone(),
        python,
        changes: compare_packages(&a.packages, &b.packages, &repro_core::diff::INSTALLER_TOOLING),
    }
}

/// What `repro env export` writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExportFormat {
    Requirements,
    Conda,
    Dockerfile,
}

/// The lock file `Dockerfile` exports install (written beside the Dockerfile).
pub const DOCKER_LOCK_FILE: &str = "requirements.lock";

/// The exact environment of a run, as a requirements lock (every package `==` the trained
/// version), a conda environment.yml, or a Dockerfile installing that lock on the recorded
/// Python. Returns (file name, content) pairs: the Dockerfile comes with its lock.
pub fn export(run: &StoredRun, format: ExportFormat) -> Result<Vec<(String, String)>> {
    let rec = &run.record;
    let env = rec.environment.python.as_ref().ok_or_else(|| {
        ExecError::Usage(format!("run {} recorded no Python environment; there is nothing to export", rec.id.short()))
    })?;
    let version = env.version.clone().unwrap_or_default();
    let header = format!(
        "# The exact environment of run {} (Python {}, {} packages), written by `repro env export`.\n",
        rec.id,
        if version.is_empty() { "?" } else { &version },
        env.packages.len()
    );
    let pip_line = |p: &InstalledPackage| match p.url.as_deref() {
        // A lock is shared (a Dockerfile, a colleague): a run recorded before capture
        // stripped credentials must not hand its token on; pip asks netrc or keyring instead.
        Some(u) if u.starts_with("git+") || u.starts_with("https://") || u.starts_with("http://") => {
            format!("{} @ {}", p.name, repro_core::secrets::strip_text(u).0)
        }
        _ => format!("{}=={}", p.name, p.version),
    };
    let is_conda = |p: &InstalledPackage| p.installer.as_deref() == Some("conda") || p.build.is_some();
    let tooling =
        |p: &InstalledPackage| repro_core::diff::INSTALLER_TOOLING.contains(&normalize_package_name(&p.name).as_str());
    // Hashes are known where the run's declared file (a lock, or requirements with --hash)
    // lists them for the very version installed. pip checks hashes for all or none, so
    // they are written only when every package has them.
    let known_hashes = |p: &InstalledPackage| -> Option<Vec<String>> {
        let name = normalize_package_name(&p.name);
        rec.environment.declared.as_ref()?.requirements.iter().find_map(|r| {
            let same = normalize_package_name(&r.name) == name
                && r.version.as_deref().or(environment::exact_version(&r.spec).as_deref()) == Some(p.version.as_str());
            (same && !r.hashes.is_empty()).then(|| r.hashes.clone())
        })
    };
    let listed: Vec<&InstalledPackage> = env.packages.iter().filter(|p| !tooling(p)).collect();
    let hashes: Vec<Option<Vec<String>>> = listed.iter().map(|p| known_hashes(p)).collect();
    let all_hashed = !listed.is_empty() && hashes.iter().all(Option::is_some);
    let lock = {
        let mut s = header.clone();
        s.push_str("# Install with: pip install --no-deps -r requirements.lock (the set is complete).\n");
        let with = hashes.iter().filter(|h| h.is_some()).count();
        if !all_hashed && with > 0 {
            s.push_str(&format!(
                "# Hashes are known for {with} of {} packages; pip needs them for all or none, so none are written.\n",
                listed.len()
            ));
        }
        for (p, h) in listed.iter().zip(&hashes) {
            s.push_str(&pip_line(p));
            if let (true, Some(h)) = (all_hashed, h) {
                for hash in h.iter().filter(|h| h.starts_with("sha256:")) {
                    s.push_str(&format!(" \\\n    --hash={hash}"));
                }
            }
            s.push('\n');
        }
        s
    };
    Ok(match format {
        ExportFormat::Requirements => vec![("requirements.lock".into(), lock)],
        ExportFormat::Conda => {
            let mut s = header;
            s.push_str(&format!("name: repro-{}\nchannels:\n", rec.id.short()));
            let mut channels: Vec<String> =
                env.packages.iter().filter(|p| is_conda(p)).filter_map(|p| p.url.clone()).collect();
            channels.sort();
            channels.dedup();
            if channels.is_empty() {
                channels.push("conda-forge".into());
            }
            for c in channels {
                s.push_str(&format!("  - {c}\n"));
            }
            s.push_str("dependencies:\n");
            if !version.is_empty() {
                s.push_str(&format!("  - python={version}\n"));
            }
            for p in env.packages.iter().filter(|p| is_conda(p) && normalize_package_name(&p.name) != "python") {
                match &p.build {
                    Some(b) => s.push_str(&format!("  - {}={}={}\n", p.name, p.version, b)),
                    None => s.push_str(&format!("  - {}={}\n", p.name, p.version)),
                }
            }
            let pip: Vec<&InstalledPackage> = env.packages.iter().filter(|p| !is_conda(p) && !tooling(p)).collect();
            if !pip.is_empty() {
                // conda installs the pip section with pip itself: the recorded pip, pinned.
                match env.packages.iter().find(|p| normalize_package_name(&p.name) == "pip") {
                    Some(p) => s.push_str(&format!("  - pip={}\n", p.version)),
                    None => s.push_str("  - pip\n"),
                }
                s.push_str("  - pip:\n");
                for p in pip {
                    s.push_str(&format!("      - {}\n", pip_line(p)));
                }
            }
            vec![("environment.yml".into(), s)]
        }
        ExportFormat::Dockerfile => {
            if version.is_empty() {
                return Err(ExecError::Usage(format!(
                    "run {} recorded no Python version, so no base image can be chosen; export --format requirements instead",
                    rec.id.short()
                )));
            }
            let docker = format!(
                "{header}# Serving is built from the same lock as training: {DOCKER_LOCK_FILE}, beside this file.\n\
                 FROM python:{version}-slim\n\
                 COPY {DOCKER_LOCK_FILE} /tmp/{DOCKER_LOCK_FILE}\n\
                 RUN pip install --no-cache-dir --no-deps -r /tmp/{DOCKER_LOCK_FILE}\n"
            );
            vec![("Dockerfile".into(), docker), (DOCKER_LOCK_FILE.into(), lock)]
        }
    })
}
