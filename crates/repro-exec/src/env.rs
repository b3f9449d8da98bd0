//! Environments: `repro env check` (is every dependency of a file pinned?) and `repro env
//! parity` (does the environment a model is served from match the one it was trained in?).

use std::path::{Path, PathBuf};

use repro_capture::{declared, python};
use repro_core::diff::{compare_packages, normalize_package_name, PackageChangeKind};
use repro_core::pickles;
use repro_core::record::{DeclaredRequirement, InstalledPackage, PinStatus, PythonEnvironment};
use repro_core::snapshot::Manifest;
use repro_store::meta::StoredRun;
use repro_store::Store;
use serde::Serialize;

use crate::{ExecError, Result};

#[derive(Debug, Serialize)]
pub struct CheckReport {
    pub path: String,
    pub format: String,
    pub requirements: Vec<DeclaredRequirement>,
    pub pinned: usize,
    pub loose: usize,
    pub unpinned: usize,
}

impl CheckReport {
    pub fn all_pinned(&self) -> bool {
        self.loose == 0 && self.unpinned == 0
    }
}

/// Reads a declared-environment file and classifies every dependency.
pub fn check(file: &Path, cwd: &Path) -> Result<CheckReport> {
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
        requirements: d.environment.requirements,
    })
}

/// What a training environment is compared against.
#[derive(Clone, Debug)]
pub enum Against {
    /// A live interpreter (e.g. inside the serving image).
    Python(PathBuf),
    /// A manifest written by `repro env capture`, or a declared file (requirements, lock …).
    File(PathBuf),
}

#[derive(Debug, Serialize)]
pub struct ParityDifference {
    pub package: String,
    pub kind: PackageChangeKind,
    /// The training version.
    pub expected: Option<String>,
    /// The serving version (or spec, for a file that does not pin it).
    pub actual: Option<String>,
    /// A difference that fails parity: the artifact imports the package, or training declared it.
    pub critical: bool,
    pub why: String,
}

impl ParityDifference {
    pub fn describe(&self) -> String {
        let v = |x: &Option<String>| x.clone().unwrap_or_else(|| "absent".into());
        let what = match self.kind {
            PackageChangeKind::Missing => {
                format!("{} {} in training, absent when serving", self.package, v(&self.expected))
            }
            PackageChangeKind::Extra => format!("{} {} only when serving", self.package, v(&self.actual)),
            k => format!(
                "{}: trained with {}, serving with {} ({} difference)",
                self.package,
                v(&self.expected),
                v(&self.actual),
                k.as_str()
            ),
        };
        if self.why.is_empty() {
            what
        } else {
            format!("{what} — {}", self.why)
        }
    }
}

#[derive(Debug, Serialize)]
pub struct ParityReport {
    pub subject: String,
    pub against: String,
    /// Training and serving Python versions, when they differ.
    pub python: Option<(String, String)>,
    pub python_critical: bool,
    /// The distributions the run's pickled outputs import, in order of first use.
    pub artifact_packages: Vec<String>,
    pub differences: Vec<ParityDifference>,
    pub ignored: Vec<String>,
    pub pass: bool,
}

/// Compares the environment a run trained in with `against`. Differences in a package the
/// run's pickled outputs import, or that the run declared, fail; others are reported.
pub fn parity(
    store: &Store,
    run: &StoredRun,
    against: &Against,
    ignore: &[String],
    cwd: &Path,
) -> Result<ParityReport> {
    let rec = &run.record;
    let trained = rec.environment.python.as_ref().ok_or_else(|| {
        ExecError::Usage(format!(
            "run {} recorded no Python environment, so there is nothing to compare; parity needs a Python run",
            rec.id.short()
        ))
    })?;
    let (serving, against_label) = serving_environment(against, cwd)?;

    // What the artifact imports: the modules its pickles name, mapped to distributions.
    let mut artifact: Vec<String> = Vec::new();
    for o in &rec.outputs {
        let Some(s) = &o.snapshot else { continue };
        let Ok(m) = store.objects.read(s).map_err(ExecError::from).and_then(|b| {
            Manifest::from_bytes(&b).map_err(|e| ExecError::Usage(format!("manifest {} unreadable: {e}", s.short())))
        }) else {
            continue;
        };
        for e in m.entries.iter().filter(|e| e.size <= 1 << 30) {
            let Ok(bytes) = store.objects.read(&e.digest) else { continue };
            for module in pickles::referenced_modules(&bytes) {
                let dist = normalize_package_name(pickles::distribution_of(&module));
                if trained.packages.iter().any(|p| normalize_package_name(&p.name) == dist) && !artifact.contains(&dist)
                {
                    artifact.push(dist);
                }
            }
        }
    }
    let declared: Vec<String> = rec
        .environment
        .declared
        .iter()
        .flat_map(|d| d.requirements.iter().map(|r| normalize_package_name(&r.name)))
        .collect();
    let ignore_norm: Vec<String> = ignore.iter().map(|i| normalize_package_name(i)).collect();
    let mut skip: Vec<&str> = ignore_norm.iter().map(String::as_str).collect();
    skip.extend(repro_core::diff::INSTALLER_TOOLING);
    let changes = compare_packages(&trained.packages, &serving.packages, &skip);

    let mut differences: Vec<(usize, ParityDifference)> = changes
        .into_iter()
        .map(|c| {
            let name = normalize_package_name(&c.name);
            let position = artifact.iter().position(|a| *a == name);
            let (critical, why, tier) = match (position, declared.contains(&name), c.kind) {
                (_, _, PackageChangeKind::Extra) => (false, String::new(), usize::MAX),
                (Some(p), _, _) => (true, "the artifact imports it".to_string(), p),
                (None, true, _) => (true, "training declared it".to_string(), 1000),
                (None, false, _) => (false, String::new(), 2000),
            };
            (
                tier,
                ParityDifference {
                    package: c.name,
                    kind: c.kind,
                    expected: c.expected,
                    actual: c.actual,
                    critical,
                    why,
                },
            )
        })
        .collect();
    differences.sort_by(|(ta, a), (tb, b)| (ta, &a.package).cmp(&(tb, &b.package)));
    let differences: Vec<ParityDifference> = differences.into_iter().map(|(_, d)| d).collect();

    let minor = |v: &str| v.split('.').take(2).collect::<Vec<_>>().join(".");
    let python = match (&trained.version, &serving.version) {
        (Some(a), Some(b)) if a != b => Some((a.clone(), b.clone())),
        _ => None,
    };
    let python_critical = python.as_ref().is_some_and(|(a, b)| minor(a) != minor(b));
    let pass = !python_critical && differences.iter().all(|d| !d.critical);
    Ok(ParityReport {
        subject: format!("run {}", rec.id.short()),
        against: against_label,
        python,
        python_critical,
        artifact_packages: artifact,
        differences,
        ignored: ignore.to_vec(),
        pass,
    })
}

/// The serving side as an installed set: a live interpreter, a captured manifest, or the
/// exact pins of a declared file (unpinned entries keep their spec, and cannot match).
fn serving_environment(against: &Against, cwd: &Path) -> Result<(PythonEnvironment, String)> {
    match against {
        Against::Python(p) => {
            let p = cwd.join(p);
            if !p.exists() {
                return Err(ExecError::Usage(format!(
                    "--python {}: no such file; give the serving interpreter's path",
                    p.display()
                )));
            }
            let env = python::inspect(&p, "--python").ok_or_else(|| {
                ExecError::Usage(format!("{} is not a Python installation repro can read", p.display()))
            })?;
            Ok((env, p.display().to_string()))
        }
        Against::File(f) => {
            let abs = cwd.join(f);
            if !abs.is_file() {
                return Err(repro_capture::CaptureError::NoSuchPath { path: f.clone(), cwd: cwd.to_path_buf() }.into());
            }
            let text = std::fs::read(&abs).map_err(ExecError::io("read", &abs))?;
            if text.first() == Some(&b'{') {
                let env: PythonEnvironment = serde_json::from_slice(&text).map_err(|e| ExecError::Parse {
                    path: abs.clone(),
                    line: e.line(),
                    message: format!("not an environment manifest ({e}); write one with `repro env capture -o FILE`"),
                })?;
                return Ok((env, f.display().to_string()));
            }
            let d = declared::read(&abs, cwd)?;
            let packages = d
                .environment
                .requirements
                .iter()
                .map(|r| InstalledPackage {
                    name: r.name.clone(),
                    version: exact_version(&r.spec).unwrap_or_else(|| {
                        if r.spec.is_empty() {
                            "(unpinned)".into()
                        } else {
                            format!("{} (not pinned)", r.spec)
                        }
                    }),
                    installer: None,
                    build: None,
                    url: None,
                })
                .collect();
            let env = PythonEnvironment {
                executable: String::new(),
                kind: d.environment.format.clone(),
                prefix: String::new(),
                version: None,
                site_dirs: Vec::new(),
                packages,
                found_by: "file".into(),
            };
            Ok((env, f.display().to_string()))
        }
    }
}

/// `==1.4.2` → `1.4.2`; conda `=1.4.2=py311_0` → `1.4.2`; anything else is not exact.
fn exact_version(spec: &str) -> Option<String> {
    let s = spec.trim();
    let v = s.strip_prefix("===").or_else(|| s.strip_prefix("==")).or_else(|| s.strip_prefix('='))?;
    let v = v.split('=').next().unwrap_or(v).trim();
    (!v.is_empty() && !v.contains(['*', ',', '<', '>', '!', ' '])).then(|| v.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exact_versions() {
        assert_eq!(exact_version("==1.4.2").as_deref(), Some("1.4.2"));
        assert_eq!(exact_version("===1.0").as_deref(), Some("1.0"));
        assert_eq!(exact_version("=1.26.4=py311_0").as_deref(), Some("1.26.4"));
        for loose in ["", ">=1.2", "==1.*", "~=1.4", "==1.2,<2", "<2"] {
            assert_eq!(exact_version(loose), None, "{loose}");
        }
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
        Some(u) if u.starts_with("git+") || u.starts_with("https://") || u.starts_with("http://") => {
            format!("{} @ {}", p.name, u)
        }
        _ => format!("{}=={}", p.name, p.version),
    };
    let is_conda = |p: &InstalledPackage| p.installer.as_deref() == Some("conda") || p.build.is_some();
    let tooling =
        |p: &InstalledPackage| repro_core::diff::INSTALLER_TOOLING.contains(&normalize_package_name(&p.name).as_str());
    let lock = {
        let mut s = header.clone();
        s.push_str("# Install with: pip install --no-deps -r requirements.lock (the set is complete).\n");
        for p in env.packages.iter().filter(|p| !tooling(p)) {
            s.push_str(&pip_line(p));
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
