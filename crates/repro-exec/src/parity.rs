//! `repro env parity`: does the environment a model is served from match the one it was
//! trained in? Differences are ranked by how sure repro is that they matter to the model:
//!
//! 1. the library that wrote the artifact (`the artifact was written by lightgbm 4.7.0;
//!    serving has 4.6.0`), read from the file itself (`repro_core::models`);
//! 2. the packages the artifact imports when loaded (its pickles' modules);
//! 3. the packages the training process used (`ParityInputs::used`, from the run's probe);
//! 4. the packages training declared (or, for a registered environment, every one it lists);
//! 5. the rest, then packages only serving has.
//!
//! Tiers 1–4 fail parity; 5 is reported.

use repro_core::diff::{compare_packages, normalize_package_name, PackageChange, PackageChangeKind};
use repro_core::record::InstalledPackage;
use repro_store::Store;
use serde::{Deserialize, Serialize};

use crate::artifacts::{understand_outputs, Artifact};
use crate::env::Side;
use crate::Result;

#[derive(Debug, Serialize, Deserialize)]
pub struct ParityDifference {
    pub package: String,
    pub kind: PackageChangeKind,
    /// The training version (for the artifact's writer: the version the file says wrote it).
    pub expected: Option<String>,
    /// The serving version (or spec, for a file that does not pin it).
    pub actual: Option<String>,
    /// A difference that fails parity: the artifact's writer, a package it imports, or one
    /// training used or declared.
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

#[derive(Debug, Serialize, Deserialize)]
pub struct ParityReport {
    pub subject: String,
    pub against: String,
    /// Training and serving Python versions, when they differ.
    pub python: Option<(String, String)>,
    pub python_critical: bool,
    /// What each of the run's output files that is a model says about itself: its format,
    /// the library that wrote it and, where the file records it, that library's version.
    #[serde(default)]
    pub artifacts: Vec<Artifact>,
    /// The distributions the run's artifacts import (pickles, PyTorch archives), in order of
    /// first use.
    pub artifact_packages: Vec<String>,
    pub differences: Vec<ParityDifference>,
    pub ignored: Vec<String>,
    pub pass: bool,
}

/// What says which packages matter, besides the two package sets: read from the training
/// run (`ParityInputs::of`), or built by a caller that knows more.
#[derive(Clone, Debug, Default)]
pub struct ParityInputs {
    /// The run's output files that are models.
    pub artifacts: Vec<Artifact>,
    /// The distributions the artifacts import, normalized, in order of first use.
    pub artifact_packages: Vec<String>,
    /// The distributions the training process imported (normalized); empty until the run
    /// records them.
    pub used: Vec<String>,
    /// The distributions training declared (normalized).
    pub declared: Vec<String>,
}

impl ParityInputs {
    /// From the training side: its run's outputs and declared file (nothing for a registered
    /// environment, whose every package counts).
    pub fn of(store: &Store, subject: &Side) -> ParityInputs {
        let Some(run) = &subject.run else { return ParityInputs::default() };
        let artifacts = understand_outputs(store, run);
        let mut artifact_packages: Vec<String> = Vec::new();
        for dist in artifacts.iter().flat_map(|a| &a.model.imports) {
            let dist = normalize_package_name(dist);
            // Only what training had installed: a module the pickle names that no
            // distribution provides (the script's own) is not a package to compare.
            if subject.packages.iter().any(|p| normalize_package_name(&p.name) == dist)
                && !artifact_packages.contains(&dist)
            {
                artifact_packages.push(dist);
            }
        }
        let declared = run
            .record
            .environment
            .declared
            .iter()
            .flat_map(|d| d.requirements.iter().map(|r| normalize_package_name(&r.name)))
            .collect();
        let used = run
            .record
            .probe
            .iter()
            .flat_map(|p| p.packages_used.iter().map(|u| normalize_package_name(&u.name)))
            .collect();
        ParityInputs { artifacts, artifact_packages, used, declared }
    }
}

/// Why a package matters, in ranking order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Tier {
    Writer,
    Imports(usize),
    Used,
    Declared,
    Other,
    Extra,
}

/// `repro env parity` for a training side and a serving side, reading what matters from the
/// training run.
pub fn parity(store: &Store, subject: &Side, against: &Side, ignore: &[String]) -> Result<ParityReport> {
    Ok(parity_with(subject, against, ignore, ParityInputs::of(store, subject)))
}

/// The comparison itself, given what matters.
pub fn parity_with(subject: &Side, against: &Side, ignore: &[String], inputs: ParityInputs) -> ParityReport {
    let ignore_norm: Vec<String> = ignore.iter().map(|i| normalize_package_name(i)).collect();
    let mut skip: Vec<&str> = ignore_norm.iter().map(String::as_str).collect();
    skip.extend(repro_core::diff::INSTALLER_TOOLING);

    let mut ranked: Vec<(Tier, ParityDifference)> = Vec::new();
    let mut writers: Vec<String> = Vec::new();
    for a in &inputs.artifacts {
        let Some(lib) = a.model.library.as_deref().map(normalize_package_name) else { continue };
        if writers.contains(&lib) || skip.contains(&lib.as_str()) {
            continue;
        }
        writers.push(lib.clone());
        if let Some(d) = writer_difference(a, &lib, subject, against) {
            ranked.push((Tier::Writer, d));
        }
    }

    let registered = subject.run.is_none();
    for c in compare_packages(&subject.packages, &against.packages, &skip) {
        let name = normalize_package_name(&c.name);
        if writers.contains(&name) {
            continue; // judged above, against what the file says
        }
        let position = inputs.artifact_packages.iter().position(|a| *a == name);
        let (tier, why) = match (position, c.kind) {
            (_, PackageChangeKind::Extra) => (Tier::Extra, ""),
            (Some(p), _) => (Tier::Imports(p), "the artifact imports it"),
            (None, _) if inputs.used.contains(&name) => (Tier::Used, "training imported it"),
            (None, _) if inputs.declared.contains(&name) => (Tier::Declared, "training declared it"),
            (None, _) if registered => (Tier::Declared, "the environment lists it"),
            (None, _) => (Tier::Other, ""),
        };
        // What training imported fails parity when nothing says what the model needs; when
        // the artifact does say, a package it never imports is training-only: a warning.
        let model_known = !writers.is_empty() || !inputs.artifact_packages.is_empty();
        let (critical, why) = match tier {
            Tier::Used if model_known && !inputs.declared.contains(&name) => {
                (false, "training imported it; the artifact does not (training-only)")
            }
            Tier::Other | Tier::Extra => (false, why),
            _ => (true, why),
        };
        ranked.push((tier, difference(c, critical, why.to_string())));
    }
    ranked.sort_by(|(ta, a), (tb, b)| (ta, &a.package).cmp(&(tb, &b.package)));
    let differences: Vec<ParityDifference> = ranked.into_iter().map(|(_, d)| d).collect();

    let minor = |v: &str| v.split('.').take(2).collect::<Vec<_>>().join(".");
    let python = match (&subject.python, &against.python) {
        (Some(a), Some(b)) if a != b => Some((a.clone(), b.clone())),
        _ => None,
    };
    let python_critical = python.as_ref().is_some_and(|(a, b)| minor(a) != minor(b));
    let pass = !python_critical && differences.iter().all(|d| !d.critical);
    ParityReport {
        subject: subject.label.clone(),
        against: against.label.clone(),
        python,
        python_critical,
        artifacts: inputs.artifacts,
        artifact_packages: inputs.artifact_packages,
        differences,
        ignored: ignore.to_vec(),
        pass,
    }
}

fn difference(c: PackageChange, critical: bool, why: String) -> ParityDifference {
    ParityDifference { package: c.name, kind: c.kind, expected: c.expected, actual: c.actual, critical, why }
}

/// The artifact's writer, compared with serving: the version the file records, else the
/// one training had installed. `None` when serving has that very version.
fn writer_difference(a: &Artifact, lib: &str, subject: &Side, against: &Side) -> Option<ParityDifference> {
    let find = |side: &Side| side.packages.iter().find(|p| normalize_package_name(&p.name) == lib).cloned();
    let trained = find(subject);
    let wrote = match (&a.model.version, &trained) {
        (Some(v), Some(t)) => InstalledPackage { version: v.clone(), ..t.clone() },
        (Some(v), None) => {
            InstalledPackage { name: lib.to_string(), version: v.clone(), installer: None, build: None, url: None }
        }
        (None, Some(t)) => t.clone(),
        // Neither the file nor training says a version: nothing to compare with.
        (None, None) => return None,
    };
    let serving: Vec<InstalledPackage> = find(against).into_iter().collect();
    let c = compare_packages(std::slice::from_ref(&wrote), &serving, &[]).into_iter().next()?;
    let who = match &a.model.version {
        Some(v) => format!("{lib} {v}"),
        None => format!("{lib} (the file does not say which version; training had {})", wrote.version),
    };
    let has = match &c.actual {
        Some(v) => format!("serving has {v}"),
        None => "serving does not have it".to_string(),
    };
    // An ONNX or safetensors file loads without its writer: serving without it is expected.
    let critical = !(a.model.format.portable() && c.kind == PackageChangeKind::Missing);
    let why = format!("the artifact was written by {who}; {has}");
    Some(difference(c, critical, why))
}
