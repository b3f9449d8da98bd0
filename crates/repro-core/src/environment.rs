//! Registered environments: a named, immutable version of an environment — a declared
//! file (requirements, lock, conda …) or an installed set captured from an interpreter.
//! Its identity is the digest of the canonical JSON of its content, without any location,
//! so registering the same content again gives the same version.

use serde::{Deserialize, Serialize};

use crate::record::{DeclaredEnvironment, DeclaredRequirement, InstalledPackage, PinStatus, PythonEnvironment};
use crate::Digest;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum EnvironmentSpec {
    /// A declared file: what a project says it needs.
    Declared { declared: DeclaredEnvironment },
    /// An installed set (`repro env capture`): what an interpreter actually has.
    Installed { python_version: Option<String>, packages: Vec<InstalledPackage> },
}

impl EnvironmentSpec {
    /// An installed set without where it lives (executable, prefix and site folders are
    /// locations, not content).
    pub fn installed(env: &PythonEnvironment) -> Self {
        let mut packages = env.packages.clone();
        packages.sort_by(|a, b| a.name.cmp(&b.name));
        EnvironmentSpec::Installed { python_version: env.version.clone(), packages }
    }

    pub fn canonical_json(&self) -> Vec<u8> {
        let value = serde_json::to_value(self).expect("an environment spec always serializes");
        serde_json::to_vec(&value).expect("a JSON value always serializes")
    }

    pub fn digest(&self) -> Digest {
        Digest::of_bytes(&self.canonical_json())
    }

    /// What makes two specs the same environment: for a declared file, its format and the
    /// bytes of it and its companions (not where they were read from, nor the line origins
    /// that name the path); for an installed set, the whole (location-free) spec.
    pub fn identity(&self) -> Digest {
        match self {
            EnvironmentSpec::Declared { declared } => {
                let mut companions: Vec<&str> = declared.companions.iter().map(|c| c.digest.as_str()).collect();
                companions.sort();
                let v = serde_json::json!({
                    "format": declared.format,
                    "file": declared.digest.as_str(),
                    "companions": companions,
                });
                Digest::of_bytes(&serde_json::to_vec(&v).expect("JSON serializes"))
            }
            EnvironmentSpec::Installed { .. } => self.digest(),
        }
    }

    pub fn kind(&self) -> &'static str {
        match self {
            EnvironmentSpec::Declared { .. } => "declared",
            EnvironmentSpec::Installed { .. } => "installed",
        }
    }

    /// The spec as a package set, for comparison: an installed set as it is; a declared
    /// file as its exact pins, with loose or unpinned entries carrying their spec (so they
    /// never compare equal to a version).
    pub fn as_packages(&self) -> (Option<String>, Vec<InstalledPackage>) {
        match self {
            EnvironmentSpec::Installed { python_version, packages } => (python_version.clone(), packages.clone()),
            EnvironmentSpec::Declared { declared } => {
                let python =
                    declared.requirements.iter().find(|r| r.name == "python").and_then(|r| exact_version(&r.spec));
                let packages = declared
                    .requirements
                    .iter()
                    .filter(|r| r.name != "python")
                    .map(|r| InstalledPackage {
                        name: r.name.clone(),
                        version: match (r.status, exact_version(&r.spec)) {
                            (PinStatus::Pinned, Some(v)) => v,
                            _ if r.spec.is_empty() => "(unpinned)".into(),
                            _ => format!("{} (not pinned)", r.spec),
                        },
                        installer: None,
                        build: None,
                        url: None,
                    })
                    .collect();
                (python, packages)
            }
        }
    }

    pub fn len(&self) -> usize {
        match self {
            EnvironmentSpec::Declared { declared } => declared.requirements.len(),
            EnvironmentSpec::Installed { packages, .. } => packages.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// `==1.4.2` → `1.4.2`; conda `=1.4.2=py311_0` → `1.4.2`; anything else is not exact.
pub fn exact_version(spec: &str) -> Option<String> {
    let s = spec.trim();
    let v = s.strip_prefix("===").or_else(|| s.strip_prefix("==")).or_else(|| s.strip_prefix('='))?;
    let v = v.split('=').next().unwrap_or(v).trim();
    (!v.is_empty() && !v.contains(['*', ',', '<', '>', '!', ' ', ';'])).then(|| v.to_string())
}

/// Installer tools: what installs the model's dependencies, not one of them (`pip` in a
/// conda file's dependencies is how its `pip:` section gets installed).
pub const INSTALLERS: [&str; 4] = ["pip", "setuptools", "wheel", "uv"];

/// Why a requirement that is not pinned exactly does not make the environment any less
/// reproducible, or `None` when it does: a Python series pin (`python=3.11`, `3.11.*`) is
/// enough in a declared file, since each run records the exact interpreter, and installer
/// tools are no model's dependency. `repro env check` (without `--strict`) and the audit's
/// `environment_file` item both judge by this.
pub fn pin_note(r: &DeclaredRequirement) -> Option<&'static str> {
    if r.status == PinStatus::Pinned {
        return None;
    }
    // PEP 503 by hand: `diff` already depends on this module.
    let name = r.name.to_ascii_lowercase().replace(['_', '.'], "-");
    if INSTALLERS.contains(&name.as_str()) {
        return Some("an installer tool, not a model dependency");
    }
    if name == "python" {
        let v = r.spec.trim().trim_start_matches("==").trim_start_matches('=').trim_end_matches(".*");
        let parts: Vec<&str> = v.split('.').collect();
        let series = (2..=3).contains(&parts.len())
            && parts.iter().all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()));
        if series {
            return Some("a Python series pin; each run records the exact interpreter");
        }
    }
    None
}

/// `NAME:VERSION` or `NAME` (the newest). `None` when the text cannot be an environment name.
pub fn parse_env_ref(spec: &str) -> Option<(&str, Option<u32>)> {
    let (name, version) = match spec.rsplit_once(':') {
        Some((n, v)) => (n, Some(v.parse::<u32>().ok()?)),
        None => (spec, None),
    };
    valid_env_name(name).then_some((name, version))
}

/// Letters, digits, `-`, `_`, `.`; starting with a letter or digit; at most 100 characters.
pub fn valid_env_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 100
        && name.starts_with(|c: char| c.is_ascii_alphanumeric())
        && name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pkg(name: &str, version: &str) -> InstalledPackage {
        InstalledPackage { name: name.into(), version: version.into(), installer: None, build: None, url: None }
    }

    #[test]
    fn installed_identity_ignores_location_and_order() {
        let env = |exe: &str, pkgs: Vec<InstalledPackage>| PythonEnvironment {
            executable: exe.into(),
            kind: "venv".into(),
            prefix: exe.into(),
            version: Some("3.11.7".into()),
            site_dirs: vec![exe.into()],
            packages: pkgs,
            found_by: "x".into(),
        };
        let a = EnvironmentSpec::installed(&env("/a/bin/python", vec![pkg("numpy", "1.26.4"), pkg("joblib", "1.3.2")]));
        let b = EnvironmentSpec::installed(&env("/b/bin/python", vec![pkg("joblib", "1.3.2"), pkg("numpy", "1.26.4")]));
        assert_eq!(a.digest(), b.digest());
        let c = EnvironmentSpec::installed(&env("/a/bin/python", vec![pkg("numpy", "1.26.3")]));
        assert_ne!(a.digest(), c.digest());
        assert_eq!(a.kind(), "installed");
        assert_eq!(a.len(), 2);
    }

    #[test]
    fn series_pins_of_python_and_installer_tools_are_notes() {
        let req = |name: &str, spec: &str, status: PinStatus| {
            DeclaredRequirement::new(name, spec, status, "environment.yml:3")
        };
        assert!(pin_note(&req("python", "=3.11", PinStatus::Loose)).is_some_and(|n| n.contains("series")));
        assert!(pin_note(&req("python", "3.11.*", PinStatus::Loose)).is_some());
        assert!(pin_note(&req("python", "==3.11.*", PinStatus::Loose)).is_some());
        for tool in ["pip", "setuptools", "wheel", "uv"] {
            assert!(pin_note(&req(tool, "", PinStatus::Unpinned)).is_some(), "{tool}");
        }
        assert_eq!(pin_note(&req("python", "", PinStatus::Unpinned)), None, "no version at all");
        assert_eq!(pin_note(&req("python", ">=3.9", PinStatus::Loose)), None, "a range is not a series");
        assert_eq!(pin_note(&req("python", "=3", PinStatus::Loose)), None, "a major version is not a series");
        assert_eq!(pin_note(&req("numpy", "", PinStatus::Unpinned)), None);
        assert_eq!(pin_note(&req("python", "=3.11.8", PinStatus::Pinned)), None, "pinned needs no note");
    }

    #[test]
    fn exact_versions_and_refs() {
        assert_eq!(exact_version("==1.4.2").as_deref(), Some("1.4.2"));
        assert_eq!(exact_version("===1.0").as_deref(), Some("1.0"));
        assert_eq!(exact_version("=1.26.4=py311_0").as_deref(), Some("1.26.4"));
        for loose in ["", ">=1.2", "==1.*", "~=1.4", "==1.2,<2", "<2"] {
            assert_eq!(exact_version(loose), None, "{loose}");
        }
        assert_eq!(parse_env_ref("serving:2"), Some(("serving", Some(2))));
        assert_eq!(parse_env_ref("serving"), Some(("serving", None)));
        for bad in ["", ":1", "a:b", "-x", "a b", "a/b:1", "serving:-1"] {
            assert_eq!(parse_env_ref(bad), None, "{bad}");
        }
    }
}
