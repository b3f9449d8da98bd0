//! Why two runs differ: a field-by-field comparison of two run records, and the causes of a
//! difference in their results ranked most likely first. Also the comparison of two sets of
//! installed packages, which `repro replay` and environment parity use on their own.
//!
//! What counts as a difference: an ingredient that can change what the command computes.
//! Where a run happened (the repository's absolute path, the interpreter's path, the
//! virtualenv's path, the run's id, name, times, user and host, its logs) is not one. The
//! paths of those are listed in their section with the note [`LOCATION_ONLY`] so a reader
//! sees them, but they never make a section differ and never become a cause; the run's
//! id, name, times, user, host, logs and the run it replays are left out altogether (they
//! always differ, or say what a run is rather than what it computed). So are the Python
//! site folders and how the interpreter was found (locations too), the params files (their
//! merged values are compared) and the GPU probe's message.

use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::audit::{count, human_bytes};
use crate::record::{
    CodeState, DataRef, DeclaredEnvironment, DeclaredRequirement, FileEntry, Gpu, InstalledPackage, OutputRef,
    PinStatus, PythonEnvironment, RunRecord, ScriptInfo, ScriptKind,
};
use crate::snapshot::{Manifest, SnapshotKind};
use crate::{Digest, RunId};

use code::code_section;
use code::script_section;
use data::data_section;
use environment::environment_section;
use packages::packages_section;
use probed::probe_section;
use results::metrics_section;
use results::outputs_section;
use results::result_section;
use settings::hardware_section;
use settings::params_section;
use settings::seed_section;
use settings::variables_section;
mod code;
mod data;
mod environment;
mod packages;
mod probed;
mod results;
mod settings;
#[cfg(test)]
mod tests;

pub use packages::{compare_packages, normalize_package_name, PackageChange, PackageChangeKind};

/// The note of a change that is shown but is not a difference (see the module docs).
pub const LOCATION_ONLY: &str = "location only";

/// What virtualenv creators add or omit on their own (`python -m venv` brings pip, older
/// ones setuptools and wheel too, uv none): callers comparing environments built by
/// different tools pass these to `compare_packages` as `ignore`.
pub const INSTALLER_TOOLING: [&str; 3] = ["pip", "setuptools", "wheel"];

/// Variables that set how many threads numeric libraries use: a different count splits
/// floating-point reductions differently, so results can differ in the last bits.
const THREAD_VARIABLES: [&str; 3] = ["OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"];

/// Variables that name where an environment lives, not what is in it.
const LOCATION_VARIABLES: [&str; 2] = ["VIRTUAL_ENV", "CONDA_PREFIX"];

/// How many lines of per-file evidence a cause carries; the section has them all.
const MAX_EVIDENCE_FILES: usize = 20;

// ---------------------------------------------------------------------------------------
// The run diff: types
// ---------------------------------------------------------------------------------------

pub struct DiffInput<'a> {
    pub a: &'a RunRecord,
    pub b: &'a RunRecord,
    /// Last value per metric key (`metrics::last_values`).
    pub metrics_a: &'a BTreeMap<String, f64>,
    pub metrics_b: &'a BTreeMap<String, f64>,
    /// Manifests of input and output snapshots by digest (those the caller could read; a
    /// missing one means per-file detail is unavailable for that snapshot, which the diff
    /// says in a note instead of failing).
    pub manifests: &'a BTreeMap<Digest, Manifest>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RunDiff {
    pub a: RunId,
    pub b: RunId,
    /// Always every section, in the order of [`SECTIONS`].
    pub sections: Vec<Section>,
    /// Any output's content or presence, any metric's last value, or the status or exit code
    /// differs.
    pub outputs_differ: bool,
    /// Ranked, most likely first. When the outputs do not differ these are the ingredient
    /// differences that did not change them.
    pub causes: Vec<Cause>,
}

/// The section names, in the order a diff lists them.
pub const SECTIONS: [&str; 13] = [
    "result",
    "code",
    "script",
    "environment",
    "packages",
    "data",
    "params",
    "seed",
    "hardware",
    "variables",
    "probe",
    "outputs",
    "metrics",
];

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Section {
    /// One of [`SECTIONS`] (owned only when read back from JSON).
    pub name: Cow<'static, str>,
    /// No change in this section other than location-only ones.
    pub same: bool,
    pub changes: Vec<Change>,
}

/// One field that differs. `a`/`b` are the values in each run, `None` when absent there.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Change {
    pub field: String,
    pub a: Option<String>,
    pub b: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

impl Change {
    fn new(field: impl Into<String>, a: Option<String>, b: Option<String>) -> Self {
        Change { field: field.into(), a, b, note: None }
    }

    fn with_note(mut self, note: impl Into<String>) -> Self {
        self.note = Some(note.into());
        self
    }

    /// Shown for context, not a difference (see the module docs).
    pub fn is_location_only(&self) -> bool {
        self.note.as_deref() == Some(LOCATION_ONLY)
    }

    /// One line for people: `usable_cores: 2 → 4`, `numpy: 1.26.4 → absent (missing)`.
    pub fn describe(&self) -> String {
        let side = |v: &Option<String>| v.clone().unwrap_or_else(|| "absent".into());
        let note = self.note.as_deref().map(|n| format!(" ({n})")).unwrap_or_default();
        format!("{}: {} → {}{note}", self.field, side(&self.a), side(&self.b))
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Cause {
    pub kind: CauseKind,
    /// One line naming the thing that differs.
    pub summary: String,
    pub evidence: Vec<String>,
}

/// The kinds of cause, in rank order: a more likely explanation of different results first.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CauseKind {
    /// Run b's command failed where run a's finished (the probe says with what).
    CommandFailed,
    CodeChanged,
    DataChanged,
    /// A file the script read without declaring it differs, or only one run read it.
    UndeclaredInputChanged,
    InputsChanged,
    ParamsChanged,
    SeedChanged,
    /// The seeds the script set itself differ.
    SeedsSetChanged,
    /// A framework's determinism setting (cudnn.benchmark, TF32, deterministic algorithms) differs.
    DeterminismChanged,
    /// Unpinned (or undeclared), so it resolved to another version: the most telling.
    UnpinnedPackageChanged,
    /// A package the training imported changed version (the probe saw it imported).
    UsedPackageChanged,
    PackageChanged,
    PythonChanged,
    DeclaredEnvironmentChanged,
    ThreadsChanged,
    VariablesChanged,
    HardwareChanged,
    UncontrolledRandomness,
}

impl RunDiff {
    /// The captured fields that differed outside code, data, params and seed, one line each
    /// (for the replay report: thread counts, CPU flags, packages …). Location-only changes
    /// are left out.
    pub fn captured_field_differences(&self) -> Vec<String> {
        self.sections
            .iter()
            .filter(|s| matches!(s.name.as_ref(), "hardware" | "variables" | "packages" | "environment"))
            .flat_map(|s| {
                s.changes.iter().filter(|c| !c.is_location_only()).map(move |c| format!("{}.{}", s.name, c.describe()))
            })
            .collect()
    }

    pub fn section(&self, name: &str) -> Option<&Section> {
        self.sections.iter().find(|s| s.name == name)
    }
}

// ---------------------------------------------------------------------------------------
// The run diff: comparison
// ---------------------------------------------------------------------------------------

/// What the section builders gather besides their changes.
#[derive(Default)]
struct Findings {
    causes: Vec<Cause>,
    /// Evidence of a code change, from the code and script sections: one cause for all.
    code: Vec<String>,
    /// Evidence of a thread-count change, from variables and hardware: one cause for all.
    threads: Vec<String>,
    /// What makes the outputs differ.
    outputs: Vec<String>,
}

impl Findings {
    fn cause(&mut self, kind: CauseKind, summary: String, evidence: Vec<String>) {
        self.causes.push(Cause { kind, summary, evidence });
    }
}

/// Compares run `a` (the reference) with run `b`.
pub fn diff_runs(input: &DiffInput<'_>) -> RunDiff {
    let (a, b) = (input.a, input.b);
    let mut found = Findings::default();
    let package_changes = match (&a.environment.python, &b.environment.python) {
        (Some(pa), Some(pb)) => Some(compare_packages(&pa.packages, &pb.packages, &[])),
        _ => None,
    };
    let mut sections = vec![
        result_section(a, b, &mut found),
        code_section(a, b, &mut found),
        script_section(&a.script, &b.script, &mut found),
        environment_section(a, b, package_changes.as_deref(), &mut found),
        packages_section(a, b, package_changes.as_deref(), &mut found),
        data_section(&a.inputs, &b.inputs, input.manifests, &mut found),
        params_section(a, b, &mut found),
        seed_section(a, b, &mut found),
        hardware_section(a, b, &mut found),
        variables_section(a, b, &mut found),
        probe_section(a, b, &mut found),
        outputs_section(&a.outputs, &b.outputs, input.manifests, &mut found),
        metrics_section(input.metrics_a, input.metrics_b, &mut found),
    ];
    debug_assert!(sections.iter().map(|s| s.name.as_ref()).eq(SECTIONS));

    if !found.code.is_empty() {
        let more = match found.code.len() {
            1 => String::new(),
            2 => " (and 1 more difference)".to_string(),
            n => format!(" (and {} more differences)", n - 1),
        };
        let summary = format!("code changed: {}{more}", found.code[0]);
        let evidence = std::mem::take(&mut found.code);
        found.cause(CauseKind::CodeChanged, summary, evidence);
    }
    if !found.threads.is_empty() {
        let summary = format!("thread counts differ: {}", found.threads.join("; "));
        let evidence = std::mem::take(&mut found.threads);
        found.cause(CauseKind::ThreadsChanged, summary, evidence);
    }
    let outputs_differ = !found.outputs.is_empty();
    let explained = found.causes.iter().any(|c| c.kind <= CauseKind::PythonChanged);
    if outputs_differ && !explained {
        let evidence = std::mem::take(&mut found.outputs);
        found.cause(
            CauseKind::UncontrolledRandomness,
            "uncontrolled randomness: same code, data, params, seed and environment, yet the outputs differ — the \
             command likely draws random numbers it does not seed from REPRO_SEED (or runs nondeterministic threads)"
                .into(),
            evidence,
        );
    }

    let mut causes = found.causes;
    for cause in &mut causes {
        cause.summary = one_line(std::mem::take(&mut cause.summary));
        cause.evidence.iter_mut().for_each(|e| *e = one_line(std::mem::take(e)));
    }
    causes.sort_by(|x, y| (x.kind, &x.summary).cmp(&(y.kind, &y.summary)));
    for change in sections.iter_mut().flat_map(|s| s.changes.iter_mut()) {
        change.field = one_line(std::mem::take(&mut change.field));
        for value in [&mut change.a, &mut change.b, &mut change.note].into_iter().flatten() {
            *value = one_line(std::mem::take(value));
        }
    }
    RunDiff { a: a.id.clone(), b: b.id.clone(), sections, outputs_differ, causes }
}

fn section(name: &'static str, changes: Vec<Change>) -> Section {
    let same = changes.iter().all(Change::is_location_only);
    Section { name: Cow::Borrowed(name), same, changes }
}

/// Pushes a change when the two sides differ; tells whether they did.
fn compare(changes: &mut Vec<Change>, field: &str, a: Option<String>, b: Option<String>) -> bool {
    if a == b {
        return false;
    }
    changes.push(Change::new(field, a, b));
    true
}

fn compare_location(changes: &mut Vec<Change>, field: &str, a: Option<String>, b: Option<String>) {
    if a != b {
        changes.push(Change::new(field, a, b).with_note(LOCATION_ONLY));
    }
}

/// Changes between two maps, key by key, in key order.
fn map_changes<V: PartialEq>(
    prefix: &str,
    a: &BTreeMap<String, V>,
    b: &BTreeMap<String, V>,
    show: impl Fn(&V) -> String,
) -> Vec<Change> {
    let keys: BTreeSet<&String> = a.keys().chain(b.keys()).collect();
    keys.into_iter()
        .filter(|k| a.get(*k) != b.get(*k))
        .map(|k| Change::new(format!("{prefix}{k}"), a.get(k).map(&show), b.get(k).map(&show)))
        .collect()
}

fn or_unknown(v: &Option<String>) -> &str {
    v.as_deref().unwrap_or("unknown")
}

fn or_unset(v: &Option<String>) -> &str {
    v.as_deref().unwrap_or("unset")
}

/// Items by key; the first of a key wins (a list that names something twice is a capture
/// oddity, and the first is what a reader of the record sees first).
fn first_by<T>(items: &[T], key: impl Fn(&T) -> String) -> BTreeMap<String, &T> {
    let mut map = BTreeMap::new();
    for item in items {
        map.entry(key(item)).or_insert(item);
    }
    map
}

/// "a, b, c and 2 more".
fn list(items: &[String], max: usize) -> String {
    if items.len() <= max {
        items.join(", ")
    } else {
        format!("{} and {} more", items[..max].join(", "), items.len() - max)
    }
}

/// The text with control characters escaped, so that every line a diff prints is one line
/// whatever a path, variable or argument held.
fn one_line(s: String) -> String {
    if !s.chars().any(char::is_control) {
        return s;
    }
    s.chars().map(|c| if c.is_control() { c.escape_default().to_string() } else { c.to_string() }).collect()
}
