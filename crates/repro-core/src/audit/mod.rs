//! Audit rules: which of the ingredients an auditor asks for a run has, and why not.
//!
//! The seven an auditor asks for come first (`git_commit` … `registry_version`), then the
//! supporting evidence. Missing means the run cannot be rebuilt; warn means it can, with a
//! caveat the auditor should read.

use serde::{Deserialize, Serialize};

use crate::record::{
    CodeState, DeclaredEnvironment, EnvironmentInfo, Hardware, OutputRef, Params, PinStatus, PythonEnvironment,
    ReplaySummary, RunRecord, RunStatus, ScriptInfo, ScriptKind, Seed,
};
use crate::{Digest, RunId};

mod auditor;
mod probed;
mod supporting;
#[cfg(test)]
mod tests;

pub use auditor::{
    dataset_snapshot, environment_file, environment_item, git_commit, hyperparameters, random_seed, registry,
    training_script, RegistryMention,
};
pub use probed::{check_outputs, check_params, check_seed, determinism, undeclared_inputs};
pub use supporting::{hardware, installed_packages, objects_verified, outputs, replay_verified, result};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ItemStatus {
    Ok,
    Warn,
    Missing,
}

impl ItemStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            ItemStatus::Ok => "ok",
            ItemStatus::Warn => "warn",
            ItemStatus::Missing => "missing",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AuditItem {
    pub name: String,
    pub status: ItemStatus,
    pub detail: String,
    /// What to do about it; absent when the item is ok.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fix: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AuditReport {
    pub run: RunId,
    /// The run's name, when it has one (so the report reads alone, e.g. from a server).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    pub complete: bool,
    pub strict: bool,
    pub items: Vec<AuditItem>,
}

/// What re-hashing the run's objects found.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ObjectCheck {
    pub checked: usize,
    pub bytes: u64,
    pub missing: Vec<Digest>,
    pub corrupt: Vec<Digest>,
    /// Recorded facts of the run (metric points, params, tags, …) that its journal says
    /// were changed behind repro's back, one line each.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tampered: Vec<String>,
    /// The input data files among `missing`, by name, so the audit can say which data is
    /// absent rather than which digest.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub missing_data: Vec<MissingDataFile>,
    /// The model version (`pricing@1`) the run was imported with, from a bundle exported
    /// without its input data, when that is why data is missing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub imported_without_data: Option<String>,
}

/// A file of a run's input whose content the store does not hold.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MissingDataFile {
    pub digest: Digest,
    /// The file as the run saw it: the input's path, or a path inside the input folder.
    pub file: String,
    /// The input (`--data` path) it belongs to.
    pub input: String,
    /// The dataset version the input is (`data/train.csv:1`).
    pub dataset: Option<String>,
}

/// An input as known before the run starts (for `repro run --strict`).
#[derive(Clone, Debug)]
pub struct PlannedInput {
    pub path: String,
    pub reference: bool,
}

/// The seven ingredients, in the order an auditor reads them.
pub const AUDITOR_ITEMS: [&str; 7] = [
    "git_commit",
    "environment_file",
    "dataset_snapshot",
    "hyperparameters",
    "random_seed",
    "training_script",
    "registry_version",
];

/// The supporting evidence that follows the seven in a run's audit.
pub const SUPPORTING_ITEMS: [&str; 8] = [
    "installed_packages",
    "hardware",
    "outputs",
    "undeclared_inputs",
    "determinism",
    "objects_verified",
    "result",
    "replay_verified",
];

/// Every item of a run's audit, in report order (what a stage policy may `require`).
pub fn all_items() -> impl Iterator<Item = &'static str> {
    AUDITOR_ITEMS.iter().chain(SUPPORTING_ITEMS.iter()).copied()
}

fn item(name: &str, status: ItemStatus, detail: impl Into<String>, fix: Option<&str>) -> AuditItem {
    AuditItem { name: name.to_string(), status, detail: detail.into(), fix: fix.map(str::to_string) }
}

/// What an audit says in place of a fact repro never recorded: a run a tracking client
/// created through the MLflow API has placeholders (no command, seed 0, no CPU) where a
/// `repro run` has captured facts.
pub const NOT_CAPTURED: &str = "not captured: created through the MLflow tracking API";

/// The items judged from what `repro run` captures.
pub const CAPTURE_ITEMS: [&str; 7] = [
    "git_commit",
    "environment_file",
    "dataset_snapshot",
    "random_seed",
    "training_script",
    "installed_packages",
    "hardware",
];

/// Rewrites the capture items of a run a tracking client created: missing, "not captured",
/// never judged from the placeholders (which would read "seed 0 was generated").
pub fn mark_not_captured(report: &mut AuditReport) {
    for item in report.items.iter_mut().filter(|i| CAPTURE_ITEMS.contains(&i.name.as_str())) {
        item.status = ItemStatus::Missing;
        item.detail = NOT_CAPTURED.to_string();
        item.fix = Some("run the script under `repro run` to capture it".to_string());
    }
    // `repro replay` rebuilds from what was captured; with nothing captured, advising it
    // would send the user into an error.
    for item in report.items.iter_mut().filter(|i| i.name == "replay_verified" && i.status != ItemStatus::Ok) {
        item.detail = "cannot be replayed: nothing was captured to rebuild it from".to_string();
        item.fix = Some("run the script under `repro run`; a replay can then rebuild it".to_string());
    }
    report.complete = is_complete(&report.items, report.strict);
}

/// Whether a set of items makes a complete audit.
pub fn is_complete(items: &[AuditItem], strict: bool) -> bool {
    items.iter().all(|i| match i.status {
        ItemStatus::Ok => true,
        ItemStatus::Warn => !strict,
        ItemStatus::Missing => false,
    })
}

/// The full audit of a recorded run.
pub fn audit_run(
    record: &RunRecord,
    objects: &ObjectCheck,
    registry_versions: &[RegistryMention],
    replays: &[ReplaySummary],
    strict: bool,
) -> AuditReport {
    let inputs: Vec<PlannedInput> =
        record.inputs.iter().map(|i| PlannedInput { path: describe_input(i), reference: i.reference }).collect();
    let probe = record.probe.as_ref();
    let mut items = vec![
        git_commit(&record.code),
        environment_item(&record.environment),
        dataset_snapshot(&inputs),
        check_params(hyperparameters(&record.params, true), probe),
        check_seed(random_seed(&record.seed), &record.seed, probe),
        training_script(&record.script),
        registry(registry_versions),
        installed_packages(record.environment.python.as_ref(), &record.script),
        hardware(&record.hardware),
        check_outputs(outputs(&record.outputs), probe),
        undeclared_inputs(probe),
        determinism(probe, &record.environment),
        objects_verified(objects),
        result(record),
        replay_verified(replays),
    ];
    items.iter_mut().for_each(|i| i.detail = i.detail.trim().to_string());
    AuditReport {
        run: record.id.clone(),
        name: record.name.clone(),
        complete: is_complete(&items, strict),
        strict,
        items,
    }
}

/// The part of the audit that can be judged before the command runs: what
/// `repro run --strict` checks before it starts anything.
pub fn pre_run_items(
    code: &CodeState,
    environment: &EnvironmentInfo,
    inputs: &[PlannedInput],
    params: &Params,
    seed: &Seed,
    script: &ScriptInfo,
) -> Vec<AuditItem> {
    vec![
        git_commit(code),
        environment_item(environment),
        dataset_snapshot(inputs),
        hyperparameters(params, false),
        random_seed(seed),
        training_script(script),
    ]
}

fn describe_input(i: &crate::record::DataRef) -> String {
    let name = i.dataset.as_deref().map(|d| format!(" = {d}")).unwrap_or_default();
    format!("{}{} ({}, {}, {})", i.path, name, i.snapshot.short(), count(i.files, "file"), human_bytes(i.bytes))
}

fn list(items: &[String], max: usize) -> String {
    if items.len() <= max {
        items.join(", ")
    } else {
        format!("{} and {} more", items[..max].join(", "), items.len() - max)
    }
}

fn truncate(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        s.to_string()
    } else {
        format!("{}…", s.chars().take(max).collect::<String>())
    }
}

/// "1 file", "3 files".
pub fn count(n: u64, noun: &str) -> String {
    if n == 1 {
        format!("1 {noun}")
    } else {
        format!("{n} {noun}s")
    }
}

/// Bytes for people: 1.5 KiB, 2.0 GiB.
pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u < UNITS.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}
