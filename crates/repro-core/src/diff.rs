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
// Packages
// ---------------------------------------------------------------------------------------

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PackageChangeKind {
    /// In the reference set only.
    Missing,
    /// In the compared set only.
    Extra,
    /// The first release number differs (1.x → 2.x).
    Major,
    /// The second release number differs.
    Minor,
    /// A later release number differs.
    Patch,
    /// The versions differ otherwise: same release numbers with another suffix (1.0 vs
    /// 1.0.post1, 1.0 vs 1.0.0), or a version without release numbers.
    Other,
    /// Same version, another conda build string.
    Build,
    /// Same version, installed from another direct URL (or from an index in one set only).
    Source,
}

impl PackageChangeKind {
    pub fn as_str(self) -> &'static str {
        match self {
            PackageChangeKind::Missing => "missing",
            PackageChangeKind::Extra => "extra",
            PackageChangeKind::Major => "major",
            PackageChangeKind::Minor => "minor",
            PackageChangeKind::Patch => "patch",
            PackageChangeKind::Other => "other",
            PackageChangeKind::Build => "build",
            PackageChangeKind::Source => "source",
        }
    }

    /// Whether the installed version itself changed.
    pub fn is_version_change(self) -> bool {
        matches!(
            self,
            PackageChangeKind::Major | PackageChangeKind::Minor | PackageChangeKind::Patch | PackageChangeKind::Other
        )
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PackageChange {
    /// The name as the reference set spells it (the compared set's for an extra package).
    pub name: String,
    pub kind: PackageChangeKind,
    /// The version in the reference set; `version=build` when `kind` is `Build`,
    /// `version @ url` when `kind` is `Source` and the package came from a direct URL.
    pub expected: Option<String>,
    /// The version in the compared set, spelled like `expected`.
    pub actual: Option<String>,
}

impl PackageChange {
    /// One line for people: `scikit-learn 1.4.2 → 1.2.0 (minor)`, `numpy 1.26.4 missing`,
    /// `rich 13.0 extra`.
    pub fn describe(&self) -> String {
        let expected = self.expected.as_deref().unwrap_or("?");
        let actual = self.actual.as_deref().unwrap_or("?");
        one_line(match self.kind {
            PackageChangeKind::Missing => format!("{} {expected} missing", self.name),
            PackageChangeKind::Extra => format!("{} {actual} extra", self.name),
            kind => format!("{} {expected} → {actual} ({})", self.name, kind.as_str()),
        })
    }
}

/// A distribution name as PEP 503 compares them: lowercase, each run of `-`, `_`, `.` one `-`.
pub fn normalize_package_name(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    let mut in_separator = false;
    for c in name.chars() {
        if matches!(c, '-' | '_' | '.') {
            if !in_separator {
                out.push('-');
            }
            in_separator = true;
        } else {
            out.extend(c.to_lowercase());
            in_separator = false;
        }
    }
    out
}

/// Compares `actual` against `expected`. Names are compared PEP 503-normalized; packages
/// named in `ignore` (normalized too) are skipped. The result is sorted by normalized name.
/// Missing = in `expected` only; Extra = in `actual` only. A name listed twice in one set (a
/// broken environment with two metadata folders) counts once, as its first entry.
pub fn compare_packages(
    expected: &[InstalledPackage],
    actual: &[InstalledPackage],
    ignore: &[&str],
) -> Vec<PackageChange> {
    let ignore: BTreeSet<String> = ignore.iter().map(|n| normalize_package_name(n)).collect();
    let index = |set| -> BTreeMap<String, &InstalledPackage> {
        let mut map = first_by(set, |p: &InstalledPackage| normalize_package_name(&p.name));
        map.retain(|name, _| !ignore.contains(name));
        map
    };
    let (expected, actual) = (index(expected), index(actual));
    let names: BTreeSet<&String> = expected.keys().chain(actual.keys()).collect();
    let mut changes = Vec::new();
    for name in names {
        let change = match (expected.get(name), actual.get(name)) {
            (Some(e), None) => PackageChange {
                name: e.name.clone(),
                kind: PackageChangeKind::Missing,
                expected: Some(e.version.clone()),
                actual: None,
            },
            (None, Some(a)) => PackageChange {
                name: a.name.clone(),
                kind: PackageChangeKind::Extra,
                expected: None,
                actual: Some(a.version.clone()),
            },
            (Some(e), Some(a)) => {
                let (kind, expected, actual) = if e.version != a.version {
                    (classify_versions(&e.version, &a.version), e.version.clone(), a.version.clone())
                } else if e.build != a.build {
                    let with_build = |p: &InstalledPackage| match &p.build {
                        Some(b) => format!("{}={b}", p.version),
                        None => p.version.clone(),
                    };
                    (PackageChangeKind::Build, with_build(e), with_build(a))
                } else if e.url != a.url {
                    let with_url = |p: &InstalledPackage| match &p.url {
                        Some(u) => format!("{} @ {u}", p.version),
                        None => p.version.clone(),
                    };
                    (PackageChangeKind::Source, with_url(e), with_url(a))
                } else {
                    continue;
                };
                PackageChange { name: e.name.clone(), kind, expected: Some(expected), actual: Some(actual) }
            }
            (None, None) => continue,
        };
        changes.push(change);
    }
    changes
}

/// How far apart two different version strings are. Deliberately simple (a later issue may
/// switch to a PEP 440 crate): a leading `v` is dropped, the string is split on `.`, and the
/// leading numeric components are the release numbers; a component like `0rc1` contributes
/// its numeric prefix (`0`) and ends the release, as does the first non-numeric component.
/// Missing trailing release numbers count as 0. The first differing release number decides
/// (index 0 major, 1 minor, later patch); equal release numbers (or none on one side) with
/// different strings are `Other`.
fn classify_versions(expected: &str, actual: &str) -> PackageChangeKind {
    let (e, a) = (release_numbers(expected), release_numbers(actual));
    if e.is_empty() || a.is_empty() {
        return PackageChangeKind::Other;
    }
    let at = |r: &[String], i: usize| r.get(i).map_or("0", |s| s.as_str()).to_string();
    match (0..e.len().max(a.len())).find(|&i| at(&e, i) != at(&a, i)) {
        Some(0) => PackageChangeKind::Major,
        Some(1) => PackageChangeKind::Minor,
        Some(_) => PackageChangeKind::Patch,
        None => PackageChangeKind::Other,
    }
}

/// The release numbers of a version, as digit strings without leading zeros (kept as text so
/// a 30-digit date-like component cannot overflow; only equality matters here).
fn release_numbers(version: &str) -> Vec<String> {
    let version = version.trim();
    let version = version.strip_prefix(['v', 'V']).unwrap_or(version);
    let mut release = Vec::new();
    for component in version.split('.') {
        let digits: String = component.chars().take_while(char::is_ascii_digit).collect();
        if digits.is_empty() {
            break;
        }
        let trimmed = digits.trim_start_matches('0');
        release.push(if trimmed.is_empty() { "0".to_string() } else { trimmed.to_string() });
        if digits.len() != component.len() {
            break;
        }
    }
    release
}

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
pub const SECTIONS: [&str; 12] = [
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
    CodeChanged,
    DataChanged,
    InputsChanged,
    ParamsChanged,
    SeedChanged,
    UnpinnedPackageChanged,
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

fn or_unset(v: &Option<String>) -> &str {
    v.as_deref().unwrap_or("unset")
}

fn result_section(a: &RunRecord, b: &RunRecord, found: &mut Findings) -> Section {
    let mut changes = Vec::new();
    let num = |v: Option<i32>| v.map(|v| v.to_string());
    let status = compare(&mut changes, "status", Some(a.status.as_str().into()), Some(b.status.as_str().into()));
    let exit = compare(&mut changes, "exit_code", num(a.exit_code), num(b.exit_code));
    compare(&mut changes, "signal", num(a.signal), num(b.signal));
    if status || exit {
        found.outputs.extend(changes.iter().map(|c| format!("result {}", c.describe())));
    }
    section("result", changes)
}

fn code_section(a: &RunRecord, b: &RunRecord, found: &mut Findings) -> Section {
    let (ca, cb) = (&a.code, &b.code);
    let mut changes = Vec::new();
    compare_location(&mut changes, "repo_root", ca.repo_root.clone(), cb.repo_root.clone());
    if compare(&mut changes, "commit", ca.commit.clone(), cb.commit.clone()) {
        let short = |c: &Option<String>| c.as_deref().map_or("none".into(), |c| c.chars().take(12).collect::<String>());
        found.code.push(format!("commit {} → {}", short(&ca.commit), short(&cb.commit)));
    }
    // The branch and remote are where a commit is kept, not what it contains.
    compare_location(&mut changes, "branch", ca.branch.clone(), cb.branch.clone());
    compare_location(&mut changes, "remote", ca.remote.clone(), cb.remote.clone());
    compare(&mut changes, "dirty", Some(ca.dirty.to_string()), Some(cb.dirty.to_string()));
    let short = |d: &Option<Digest>| d.as_ref().map(Digest::short);
    if compare(&mut changes, "diff", short(&ca.diff), short(&cb.diff)) {
        let files = |f: &[String]| if f.is_empty() { "none".to_string() } else { list(f, 4) };
        found.code.push(format!(
            "uncommitted changes differ (run a: {}; run b: {})",
            files(&ca.diff_files),
            files(&cb.diff_files)
        ));
    }
    let untracked = |c: &CodeState| -> BTreeMap<String, Digest> {
        c.untracked.iter().map(|f| (f.path.clone(), f.digest.clone())).collect()
    };
    let untracked_changes = map_changes("untracked.", &untracked(ca), &untracked(cb), Digest::short);
    found.code.extend(untracked_changes.iter().map(|c| format!("untracked file {}", c.describe())));
    changes.extend(untracked_changes);
    let skipped = |c: &CodeState| -> BTreeMap<String, u64> {
        c.untracked_skipped.iter().map(|f| (f.path.clone(), f.size)).collect()
    };
    let skipped_changes =
        map_changes("untracked_not_stored.", &skipped(ca), &skipped(cb), |s| format!("{s} bytes, not stored"));
    found.code.extend(skipped_changes.iter().map(|c| format!("untracked file {}", c.describe())));
    changes.extend(skipped_changes);
    compare(&mut changes, "error", ca.error.clone(), cb.error.clone());
    section("code", changes)
}

fn is_python(kind: ScriptKind) -> bool {
    matches!(kind, ScriptKind::PythonFile | ScriptKind::PythonModule | ScriptKind::PythonInline)
}

/// The command line as compared: for a Python kind the interpreter is reduced to its file
/// name, since another virtualenv's path to the same Python is not another program.
fn compared_argv(script: &ScriptInfo) -> Vec<String> {
    let mut argv = script.argv.clone();
    if is_python(script.kind) {
        if let Some(first) = argv.first_mut() {
            let name = first.rsplit(['/', '\\']).next().unwrap_or(first.as_str()).to_string();
            *first = name;
        }
    }
    argv
}

/// A command line as one readable line; arguments that would read ambiguously are quoted.
fn show_argv(argv: &[String]) -> String {
    argv.iter()
        .map(|arg| {
            let plain =
                !arg.is_empty() && !arg.chars().any(|c| c.is_whitespace() || c.is_control() || "'\"".contains(c));
            if plain {
                arg.clone()
            } else {
                format!("{arg:?}")
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

fn script_section(sa: &ScriptInfo, sb: &ScriptInfo, found: &mut Findings) -> Section {
    let mut changes = Vec::new();
    let (argv_a, argv_b) = (compared_argv(sa), compared_argv(sb));
    if compare(&mut changes, "argv", Some(show_argv(&argv_a)), Some(show_argv(&argv_b))) {
        found.code.push(format!("command line {} → {}", show_argv(&argv_a), show_argv(&argv_b)));
    } else {
        compare_location(&mut changes, "argv", Some(show_argv(&sa.argv)), Some(show_argv(&sb.argv)));
    }
    if compare(&mut changes, "workdir", Some(sa.workdir.clone()), Some(sb.workdir.clone())) {
        found.code.push(format!("working directory {} → {}", sa.workdir, sb.workdir));
    }
    let kind = |s: &ScriptInfo| serde_json::to_value(s.kind).ok().and_then(|v| v.as_str().map(str::to_string));
    compare(&mut changes, "kind", kind(sa), kind(sb));
    if compare(&mut changes, "path", sa.path.clone(), sb.path.clone()) {
        found.code.push(format!("script {} → {}", or_unset(&sa.path), or_unset(&sb.path)));
    }
    let short = |d: &Option<Digest>| d.as_ref().map(Digest::short);
    if compare(&mut changes, "digest", short(&sa.digest), short(&sb.digest)) {
        let name = sb.path.as_deref().or(sa.path.as_deref()).unwrap_or("script");
        let side = |d: &Option<Digest>| d.as_ref().map_or("none".to_string(), Digest::short);
        found.code.push(format!("{name} content differs ({} → {})", side(&sa.digest), side(&sb.digest)));
    }
    let flag = |v: Option<bool>| v.map(|v| v.to_string());
    compare(&mut changes, "tracked_unchanged", flag(sa.tracked_unchanged), flag(sb.tracked_unchanged));
    compare(&mut changes, "git_state", sa.git_state.clone(), sb.git_state.clone());
    section("script", changes)
}

/// Declared requirements by normalized name (the first of a name wins, as in a pip resolve
/// the first constraint read is the one reported).
fn requirements(d: Option<&DeclaredEnvironment>) -> BTreeMap<String, &DeclaredRequirement> {
    let mut map = BTreeMap::new();
    for r in d.map(|d| d.requirements.as_slice()).unwrap_or_default() {
        map.entry(normalize_package_name(&r.name)).or_insert(r);
    }
    map
}

fn show_requirement(r: &DeclaredRequirement) -> String {
    if r.spec.is_empty() {
        format!("{} (unpinned)", r.name)
    } else {
        format!("{}{}", r.name, r.spec)
    }
}

fn environment_section(
    a: &RunRecord,
    b: &RunRecord,
    package_changes: Option<&[PackageChange]>,
    found: &mut Findings,
) -> Section {
    let (ea, eb) = (&a.environment, &b.environment);
    let mut changes = Vec::new();

    match (&ea.python, &eb.python) {
        (Some(pa), Some(pb)) => {
            if compare(&mut changes, "python.version", pa.version.clone(), pb.version.clone()) {
                found.cause(
                    CauseKind::PythonChanged,
                    format!("Python {} → {}", or_unknown(&pa.version), or_unknown(&pb.version)),
                    vec![format!("interpreter {} → {}", pa.executable, pb.executable)],
                );
            }
            compare_location(
                &mut changes,
                "python.executable",
                Some(pa.executable.clone()),
                Some(pb.executable.clone()),
            );
            compare_location(&mut changes, "python.prefix", Some(pa.prefix.clone()), Some(pb.prefix.clone()));
            compare(&mut changes, "python.kind", Some(pa.kind.clone()), Some(pb.kind.clone()));
        }
        (None, None) => {}
        (pa, pb) => {
            let show = |p: &Option<PythonEnvironment>| {
                p.as_ref().map(|p| format!("Python {} ({} at {})", or_unknown(&p.version), p.kind, p.prefix))
            };
            let (sa, sb) = (show(pa), show(pb));
            let side = |s: &Option<String>| s.clone().unwrap_or_else(|| "no Python found".into());
            found.cause(
                CauseKind::PythonChanged,
                format!("{} → {}", side(&sa), side(&sb)),
                vec![format!("the interpreter was found in run {} only", if pa.is_some() { "a" } else { "b" })],
            );
            changes.push(Change::new("python", sa, sb));
        }
    }

    let (da, db) = (ea.declared.as_ref(), eb.declared.as_ref());
    let mut spec_changes: BTreeMap<String, String> = BTreeMap::new();
    match (da, db) {
        (Some(da), Some(db)) => {
            compare(&mut changes, "declared.path", Some(da.path.clone()), Some(db.path.clone()));
            compare(&mut changes, "declared.format", Some(da.format.clone()), Some(db.format.clone()));
            compare(&mut changes, "declared.digest", Some(da.digest.short()), Some(db.digest.short()));
        }
        (None, None) => {}
        _ => {
            let show =
                |d: Option<&DeclaredEnvironment>| d.map(|d| format!("{} ({}, {})", d.path, d.format, d.digest.short()));
            changes.push(Change::new("declared", show(da), show(db)));
        }
    }
    let (ra, rb) = (requirements(da), requirements(db));
    for name in ra.keys().chain(rb.keys()).collect::<BTreeSet<_>>() {
        let (x, y) = (ra.get(name).map(|r| r.spec.clone()), rb.get(name).map(|r| r.spec.clone()));
        if x != y {
            let show = |r: Option<&&DeclaredRequirement>| r.map(|r| show_requirement(r));
            let (sx, sy) = (show(ra.get(name)), show(rb.get(name)));
            spec_changes.insert(
                name.clone(),
                format!("{} → {}", sx.as_deref().unwrap_or("not declared"), sy.as_deref().unwrap_or("not declared")),
            );
            changes.push(Change::new(format!("declared.requirements.{name}"), sx, sy));
        }
    }
    let declared_differs = match (da, db) {
        (Some(x), Some(y)) => x.digest != y.digest,
        (None, None) => false,
        _ => true,
    };
    if declared_differs {
        // A declared change that installed packages followed is told by the package causes;
        // what is left is a declaration the installed set did not follow (or a change
        // outside the requirements, like a comment, with nothing installed changed).
        let changed_packages: BTreeSet<String> =
            package_changes.unwrap_or_default().iter().map(|p| normalize_package_name(&p.name)).collect();
        let uncovered: Vec<String> = spec_changes
            .iter()
            .filter(|(name, _)| !changed_packages.contains(*name))
            .map(|(_, line)| line.clone())
            .collect();
        let path = db.or(da).map_or("the declared environment", |d| d.path.as_str());
        let digests = format!(
            "{} → {}",
            da.map_or("none".into(), |d| d.digest.short()),
            db.map_or("none".into(), |d| d.digest.short())
        );
        if !uncovered.is_empty() {
            let mut evidence = uncovered.clone();
            evidence.push(format!("file {digests}"));
            found.cause(
                CauseKind::DeclaredEnvironmentChanged,
                format!("declared environment {path} changed: {}", list(&uncovered, 3)),
                evidence,
            );
        } else if spec_changes.is_empty() && changed_packages.is_empty() {
            found.cause(
                CauseKind::DeclaredEnvironmentChanged,
                format!("declared environment {path} changed ({digests}); the installed packages did not"),
                vec![format!("file {digests}")],
            );
        }
    }

    let os = |r: &RunRecord| r.environment.os.clone();
    let (oa, ob) = (os(a), os(b));
    let mut platform = Vec::new();
    for (field, x, y) in [
        ("os.name", Some(oa.name), Some(ob.name)),
        ("os.kernel", Some(oa.kernel), Some(ob.kernel)),
        ("os.arch", Some(oa.arch), Some(ob.arch)),
        ("os.libc", oa.libc, ob.libc),
    ] {
        if compare(&mut changes, field, x.clone(), y.clone()) {
            platform.push(format!("{field} {} → {}", or_unknown(&x), or_unknown(&y)));
        }
    }
    if !platform.is_empty() {
        found.cause(CauseKind::HardwareChanged, format!("platform differs: {}", platform.join("; ")), platform);
    }
    section("environment", changes)
}

fn or_unknown(v: &Option<String>) -> &str {
    v.as_deref().unwrap_or("unknown")
}

/// Why a changed package's version was free to change on one side, if it was.
enum Looseness<'r> {
    Declared(&'r DeclaredEnvironment, &'r DeclaredRequirement),
    Undeclared(&'r DeclaredEnvironment),
}

fn looseness<'r>(declared: Option<&'r DeclaredEnvironment>, name: &str) -> Option<Looseness<'r>> {
    let d = declared?;
    match d.requirements.iter().find(|r| normalize_package_name(&r.name) == name) {
        Some(r) if r.status == PinStatus::Pinned => None,
        Some(r) => Some(Looseness::Declared(d, r)),
        None => Some(Looseness::Undeclared(d)),
    }
}

fn packages_section(
    a: &RunRecord,
    b: &RunRecord,
    package_changes: Option<&[PackageChange]>,
    found: &mut Findings,
) -> Section {
    let mut changes = Vec::new();
    let Some(package_changes) = package_changes else {
        // Without an installed set on both sides there is nothing to compare package by
        // package; the environment section says which run lacks an interpreter.
        let count_of = |r: &RunRecord| r.environment.python.as_ref().map(|p| count(p.packages.len() as u64, "package"));
        compare(&mut changes, "installed", count_of(a), count_of(b));
        return section("packages", changes);
    };
    let (da, db) = (a.environment.declared.as_ref(), b.environment.declared.as_ref());
    for pc in package_changes {
        changes.push(Change::new(pc.name.clone(), pc.expected.clone(), pc.actual.clone()).with_note(pc.kind.as_str()));
        let name = normalize_package_name(&pc.name);
        let mut evidence = vec![pc.describe()];
        let loose =
            if pc.kind.is_version_change() { looseness(da, &name).or_else(|| looseness(db, &name)) } else { None };
        let (expected, actual) = (pc.expected.as_deref().unwrap_or("?"), pc.actual.as_deref().unwrap_or("?"));
        match loose {
            Some(Looseness::Declared(d, r)) => {
                evidence.push(format!("declared at {} as '{}{}'", r.origin, r.name, r.spec));
                found.cause(
                    CauseKind::UnpinnedPackageChanged,
                    format!(
                        "{} {expected} → {actual}: not pinned in {} ('{}{}'), so it resolved to another version",
                        pc.name, d.path, r.name, r.spec
                    ),
                    evidence,
                );
            }
            Some(Looseness::Undeclared(d)) => {
                evidence.push(format!("{} does not name {}", d.path, pc.name));
                found.cause(
                    CauseKind::UnpinnedPackageChanged,
                    format!(
                        "{} {expected} → {actual}: not declared in {}, so nothing pinned it and it resolved to \
                         another version",
                        pc.name, d.path
                    ),
                    evidence,
                );
            }
            None => {
                for (run, d) in [("a", da), ("b", db)] {
                    if let Some(r) =
                        d.and_then(|d| d.requirements.iter().find(|r| normalize_package_name(&r.name) == name))
                    {
                        evidence.push(format!("run {run} declares '{}{}' at {}", r.name, r.spec, r.origin));
                    }
                }
                found.cause(CauseKind::PackageChanged, format!("package {}", pc.describe()), evidence);
            }
        }
    }
    section("packages", changes)
}

/// Per-file differences between two manifests of the same path.
#[derive(Default)]
struct FileDiff {
    changed: Vec<String>,
    added: Vec<String>,
    removed: Vec<String>,
    mode: Vec<String>,
    changes: Vec<Change>,
}

impl FileDiff {
    fn summary(&self) -> String {
        let mut parts = Vec::new();
        for (files, what) in [
            (&self.changed, "changed"),
            (&self.added, "added"),
            (&self.removed, "removed"),
            (&self.mode, "mode changed"),
        ] {
            if !files.is_empty() {
                parts.push(format!("{} {what}: {}", count(files.len() as u64, "file"), list(files, 3)));
            }
        }
        if parts.is_empty() {
            "no file differs (the manifests differ in form only)".into()
        } else {
            parts.join("; ")
        }
    }

    fn evidence(&self) -> Vec<String> {
        let mut lines: Vec<String> = self.changes.iter().take(MAX_EVIDENCE_FILES).map(Change::describe).collect();
        if self.changes.len() > MAX_EVIDENCE_FILES {
            lines.push(format!("and {} more", count((self.changes.len() - MAX_EVIDENCE_FILES) as u64, "file")));
        }
        lines
    }
}

fn file_diff(root: &str, ma: &Manifest, mb: &Manifest) -> FileDiff {
    let field = |m: &Manifest, entry: &str| {
        let root = root.trim_end_matches('/');
        let is_root = m.kind == SnapshotKind::File && (root == entry || root.ends_with(&format!("/{entry}")));
        if is_root {
            root.to_string()
        } else {
            format!("{root}/{entry}")
        }
    };
    let show = |e: &FileEntry| format!("{} ({})", e.digest.short(), human_bytes(e.size));
    let (ia, ib) = (first_by(&ma.entries, |e| e.path.clone()), first_by(&mb.entries, |e| e.path.clone()));
    let mut diff = FileDiff::default();
    for path in ia.keys().chain(ib.keys()).collect::<BTreeSet<_>>() {
        match (ia.get(path), ib.get(path)) {
            (Some(x), Some(y)) if x.digest != y.digest => {
                diff.changed.push(path.clone());
                diff.changes.push(Change::new(field(ma, path), Some(show(x)), Some(show(y))));
            }
            (Some(x), Some(y)) if x.mode != y.mode => {
                diff.mode.push(path.clone());
                diff.changes.push(
                    Change::new(
                        field(ma, path),
                        Some(format!("mode {:o}", x.mode)),
                        Some(format!("mode {:o}", y.mode)),
                    )
                    .with_note("mode only"),
                );
            }
            (Some(_), Some(_)) => {}
            (Some(x), None) => {
                diff.removed.push(path.clone());
                diff.changes.push(Change::new(field(ma, path), Some(show(x)), None));
            }
            (None, Some(y)) => {
                diff.added.push(path.clone());
                diff.changes.push(Change::new(field(mb, path), None, Some(show(y))));
            }
            (None, None) => {}
        }
    }
    diff
}

/// Per-file detail between two snapshots of one path, or why there is none.
fn snapshot_detail(
    root: &str,
    a: &Digest,
    b: &Digest,
    manifests: &BTreeMap<Digest, Manifest>,
) -> Result<FileDiff, String> {
    match (manifests.get(a), manifests.get(b)) {
        (Some(ma), Some(mb)) => Ok(file_diff(root, ma, mb)),
        (ma, _) => {
            let run = if ma.is_none() { "a" } else { "b" };
            let digest = if ma.is_none() { a } else { b };
            Err(format!("per-file detail unavailable: the manifest {} of run {run} could not be read", digest.short()))
        }
    }
}

fn data_section(a: &[DataRef], b: &[DataRef], manifests: &BTreeMap<Digest, Manifest>, found: &mut Findings) -> Section {
    let (ia, ib) = (first_by(a, |r| r.path.clone()), first_by(b, |r| r.path.clone()));
    let show = |r: &DataRef| match &r.dataset {
        Some(d) => format!("{d} ({})", r.snapshot.short()),
        None => r.snapshot.short(),
    };
    let mut changes = Vec::new();
    for path in ia.keys().chain(ib.keys()).collect::<BTreeSet<_>>() {
        match (ia.get(path), ib.get(path)) {
            (Some(x), Some(y)) if x.snapshot != y.snapshot => {
                let what = match (&x.dataset, &y.dataset) {
                    (Some(dx), Some(dy)) => format!("dataset {dx} → {dy}"),
                    _ => format!("snapshot {} → {}", x.snapshot.short(), y.snapshot.short()),
                };
                let change = Change::new(path.as_str(), Some(show(x)), Some(show(y)));
                match snapshot_detail(path, &x.snapshot, &y.snapshot, manifests) {
                    Ok(files) => {
                        found.cause(
                            CauseKind::DataChanged,
                            format!("{path}: same path, different content ({what}; {})", files.summary()),
                            files.evidence(),
                        );
                        changes.push(change.with_note("same path, different content"));
                        changes.extend(files.changes);
                    }
                    Err(why) => {
                        found.cause(
                            CauseKind::DataChanged,
                            format!("{path}: same path, different content ({what}; {why})"),
                            vec![format!("{path}: {} → {}", show(x), show(y))],
                        );
                        changes.push(change.with_note(format!("same path, different content; {why}")));
                    }
                }
            }
            (Some(_), Some(_)) => {}
            (x, y) => {
                let (run, r) = match (x, y) {
                    (Some(x), _) => ("a", *x),
                    (_, Some(y)) => ("b", *y),
                    (None, None) => continue,
                };
                found.cause(
                    CauseKind::InputsChanged,
                    format!("input {path} only in run {run} ({})", show(r)),
                    vec![format!("{path}: {} bytes in {}", r.bytes, count(r.files, "file"))],
                );
                changes.push(Change::new(path.as_str(), x.map(|r| show(r)), y.map(|r| show(r))));
            }
        }
    }
    section("data", changes)
}

fn params_section(a: &RunRecord, b: &RunRecord, found: &mut Findings) -> Section {
    let json = |v: &serde_json::Value| v.to_string();
    let mut changes = map_changes("", &a.params.values, &b.params.values, json);
    let logged = map_changes("logged.", &a.params.logged, &b.params.logged, String::clone);
    changes.extend(logged);
    for c in &changes {
        let name = match c.field.strip_prefix("logged.") {
            Some(key) => format!("logged param {key}"),
            None => format!("param {}", c.field),
        };
        found.cause(
            CauseKind::ParamsChanged,
            format!("{name}: {} → {}", or_unset(&c.a), or_unset(&c.b)),
            vec![c.describe()],
        );
    }
    section("params", changes)
}

fn seed_section(a: &RunRecord, b: &RunRecord, found: &mut Findings) -> Section {
    let mut changes = Vec::new();
    // Whether repro generated the seed is how it was chosen, not what the command saw.
    if compare(&mut changes, "value", Some(a.seed.value.to_string()), Some(b.seed.value.to_string())) {
        let generated: Vec<&str> =
            [("a", &a.seed), ("b", &b.seed)].into_iter().filter(|(_, s)| s.generated).map(|(run, _)| run).collect();
        let evidence = if generated.is_empty() {
            vec!["both seeds were given with --seed".to_string()]
        } else {
            vec![format!("generated by repro in run {}, not given with --seed", generated.join(" and run "))]
        };
        found.cause(CauseKind::SeedChanged, format!("seed {} → {}", a.seed.value, b.seed.value), evidence);
    }
    section("seed", changes)
}

fn show_gpu(g: &Gpu) -> String {
    let mut extra = Vec::new();
    if let Some(d) = &g.driver {
        extra.push(format!("driver {d}"));
    }
    if let Some(c) = &g.cuda {
        extra.push(format!("CUDA {c}"));
    }
    if let Some(m) = &g.memory {
        extra.push(m.clone());
    }
    if extra.is_empty() {
        g.model.clone()
    } else {
        format!("{} ({})", g.model, extra.join(", "))
    }
}

fn hardware_section(a: &RunRecord, b: &RunRecord, found: &mut Findings) -> Section {
    let (ha, hb) = (&a.hardware, &b.hardware);
    let mut changes = Vec::new();
    if compare(&mut changes, "cpu_model", ha.cpu_model.clone(), hb.cpu_model.clone()) {
        let summary = format!("CPU model {} → {}", or_unknown(&ha.cpu_model), or_unknown(&hb.cpu_model));
        found.cause(CauseKind::HardwareChanged, summary.clone(), vec![summary]);
    }
    if compare(&mut changes, "usable_cores", Some(ha.usable_cores.to_string()), Some(hb.usable_cores.to_string())) {
        found.threads.push(format!("usable cores {} → {}", ha.usable_cores, hb.usable_cores));
    }
    compare(&mut changes, "logical_cpus", Some(ha.logical_cpus.to_string()), Some(hb.logical_cpus.to_string()));
    compare(&mut changes, "memory", ha.memory_bytes.map(human_bytes), hb.memory_bytes.map(human_bytes));

    let (fa, fb): (BTreeSet<&String>, BTreeSet<&String>) =
        (ha.cpu_flags.iter().collect(), hb.cpu_flags.iter().collect());
    let only_a: Vec<String> = fa.difference(&fb).map(|f| f.to_string()).collect();
    let only_b: Vec<String> = fb.difference(&fa).map(|f| f.to_string()).collect();
    for flag in fa.symmetric_difference(&fb) {
        let side = |set: &BTreeSet<&String>| set.contains(flag).then(|| "present".to_string());
        changes.push(Change::new(format!("cpu_flags.{flag}"), side(&fa), side(&fb)));
    }
    if !only_a.is_empty() || !only_b.is_empty() {
        let mut parts = Vec::new();
        if !only_a.is_empty() {
            parts.push(format!("{} only in run a", only_a.join(" ")));
        }
        if !only_b.is_empty() {
            parts.push(format!("{} only in run b", only_b.join(" ")));
        }
        found.cause(CauseKind::HardwareChanged, format!("CPU flags differ: {}", parts.join("; ")), parts);
    }

    let mut gpu_lines = Vec::new();
    for i in 0..ha.gpus.len().max(hb.gpus.len()) {
        let (x, y) = (ha.gpus.get(i).map(show_gpu), hb.gpus.get(i).map(show_gpu));
        if compare(&mut changes, &format!("gpus[{i}]"), x.clone(), y.clone()) {
            gpu_lines.push(format!("GPU {i}: {} → {}", x.as_deref().unwrap_or("none"), y.as_deref().unwrap_or("none")));
        }
    }
    if !gpu_lines.is_empty() {
        let show_all = |gpus: &[Gpu]| {
            if gpus.is_empty() {
                "no GPU".to_string()
            } else {
                gpus.iter().map(show_gpu).collect::<Vec<_>>().join(", ")
            }
        };
        found.cause(
            CauseKind::HardwareChanged,
            format!("GPUs differ: {} → {}", show_all(&ha.gpus), show_all(&hb.gpus)),
            gpu_lines,
        );
    }
    section("hardware", changes)
}

fn variables_section(a: &RunRecord, b: &RunRecord, found: &mut Findings) -> Section {
    let (va, vb) = (&a.environment.variables, &b.environment.variables);
    let mut changes = Vec::new();
    // Which variables repro set itself is not compared: the command saw the values either way.
    for mut change in map_changes("", va, vb, String::clone) {
        let name = change.field.clone();
        let line = format!("{name} {} → {}", or_unset(&change.a), or_unset(&change.b));
        if LOCATION_VARIABLES.contains(&name.as_str()) {
            change = change.with_note(LOCATION_ONLY);
        } else if THREAD_VARIABLES.contains(&name.as_str()) {
            found.threads.push(line);
        } else {
            found.cause(CauseKind::VariablesChanged, format!("variable {line}"), vec![change.describe()]);
        }
        changes.push(change);
    }
    section("variables", changes)
}

fn outputs_section(
    a: &[OutputRef],
    b: &[OutputRef],
    manifests: &BTreeMap<Digest, Manifest>,
    found: &mut Findings,
) -> Section {
    let (ia, ib) = (first_by(a, |r| r.path.clone()), first_by(b, |r| r.path.clone()));
    let show = |o: &OutputRef| match (&o.snapshot, o.missing) {
        (Some(s), false) => format!("{} ({}, {})", s.short(), count(o.files, "file"), human_bytes(o.bytes)),
        _ => "missing".to_string(),
    };
    let mut changes = Vec::new();
    for path in ia.keys().chain(ib.keys()).collect::<BTreeSet<_>>() {
        match (ia.get(path), ib.get(path)) {
            (Some(x), Some(y)) => {
                let content = |o: &OutputRef| if o.missing { None } else { o.snapshot.clone() };
                let (cx, cy) = (content(x), content(y));
                if cx != cy {
                    let change = Change::new(path.as_str(), Some(show(x)), Some(show(y)));
                    found.outputs.push(format!("output {}", change.describe()));
                    match (&cx, &cy) {
                        (Some(dx), Some(dy)) => match snapshot_detail(path, dx, dy, manifests) {
                            Ok(files) => {
                                changes.push(change.with_note(files.summary()));
                                changes.extend(files.changes);
                            }
                            Err(why) => changes.push(change.with_note(why)),
                        },
                        _ => changes.push(change),
                    }
                }
                if x.predates_run != y.predates_run {
                    let stale = |o: &OutputRef| Some(if o.predates_run { "yes" } else { "no" }.to_string());
                    changes.push(
                        Change::new(format!("{path}.predates_run"), stale(x), stale(y))
                            .with_note("a file left from before the run, not rewritten by it"),
                    );
                }
            }
            // An output declared for one run only cannot be compared: it tells nothing about
            // whether the command's results differ.
            (x, y) => changes.push(
                Change::new(path.as_str(), x.map(|o| show(o)), y.map(|o| show(o)))
                    .with_note("declared in one run only"),
            ),
        }
    }
    section("outputs", changes)
}

fn same_metric(x: f64, y: f64) -> bool {
    x == y || (x.is_nan() && y.is_nan())
}

fn metrics_section(a: &BTreeMap<String, f64>, b: &BTreeMap<String, f64>, found: &mut Findings) -> Section {
    let mut changes = Vec::new();
    for key in a.keys().chain(b.keys()).collect::<BTreeSet<_>>() {
        let (x, y) = (a.get(key).copied(), b.get(key).copied());
        let same = match (x, y) {
            (Some(x), Some(y)) => same_metric(x, y),
            (None, None) => true,
            _ => false,
        };
        if !same {
            let change = Change::new(key.clone(), x.map(|v| v.to_string()), y.map(|v| v.to_string()));
            found.outputs.push(format!("metric {}", change.describe()));
            changes.push(change);
        }
    }
    section("metrics", changes)
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::sample::{package, record};
    use crate::record::*;
    use proptest::prelude::*;

    fn entry(path: &str, content: &[u8]) -> FileEntry {
        FileEntry { path: path.into(), size: content.len() as u64, mode: 0o644, digest: Digest::of_bytes(content) }
    }

    /// A record with every ingredient, and the manifests its snapshots name.
    #[derive(Debug)]
    struct Fixture {
        record: RunRecord,
        manifests: BTreeMap<Digest, Manifest>,
    }

    impl Fixture {
        fn new() -> Self {
            let mut fixture = Fixture { record: record(), manifests: BTreeMap::new() };
            fixture.set_input(&[("train.csv", b"x,y\n1,2\n")], "data/train.csv:1");
            fixture.set_output(b"model v1");
            fixture
        }

        fn set_input(&mut self, files: &[(&str, &[u8])], dataset: &str) {
            let manifest = Manifest::new(SnapshotKind::File, files.iter().map(|(p, c)| entry(p, c)).collect());
            let input = &mut self.record.inputs[0];
            input.snapshot = manifest.digest();
            input.dataset = Some(dataset.into());
            self.manifests.insert(manifest.digest(), manifest);
        }

        fn set_output(&mut self, content: &[u8]) {
            let manifest = Manifest::new(SnapshotKind::File, vec![entry("model.pkl", content)]);
            self.record.outputs[0].snapshot = Some(manifest.digest());
            self.manifests.insert(manifest.digest(), manifest);
        }
    }

    fn metrics(acc: f64) -> BTreeMap<String, f64> {
        BTreeMap::from([("acc".to_string(), acc)])
    }

    fn diff(a: &Fixture, b: &Fixture) -> RunDiff {
        diff_with_metrics(a, b, &metrics(0.9), &metrics(0.9))
    }

    fn diff_with_metrics(
        a: &Fixture,
        b: &Fixture,
        metrics_a: &BTreeMap<String, f64>,
        metrics_b: &BTreeMap<String, f64>,
    ) -> RunDiff {
        let mut manifests = a.manifests.clone();
        manifests.extend(b.manifests.clone());
        diff_runs(&DiffInput { a: &a.record, b: &b.record, metrics_a, metrics_b, manifests: &manifests })
    }

    fn kinds(d: &RunDiff) -> Vec<CauseKind> {
        d.causes.iter().map(|c| c.kind).collect()
    }

    /// A second run of the fixture: another id, time, host and user, nothing else.
    fn rerun() -> Fixture {
        let mut b = Fixture::new();
        b.record.id = RunId::from_bytes([2; 16]);
        b.record.name = Some("second".into());
        b.record.started_at = "2026-02-01T00:00:00.000Z".into();
        b.record.ended_at = Some("2026-02-01T00:00:09.000Z".into());
        b.record.host = "other".into();
        b.record.user = "v".into();
        b.record.logs.stdout = Some(Digest::of_bytes(b"log"));
        b
    }

    #[test]
    fn identical_ingredients_are_all_the_same() {
        let (a, b) = (Fixture::new(), rerun());
        let d = diff(&a, &b);
        assert_eq!(d.sections.iter().map(|s| s.name.as_ref()).collect::<Vec<_>>(), SECTIONS);
        for s in &d.sections {
            assert!(s.same && s.changes.is_empty(), "{s:?}");
        }
        assert!(!d.outputs_differ);
        assert!(d.causes.is_empty(), "{:?}", d.causes);
        assert!(d.captured_field_differences().is_empty());
        assert_eq!((d.a, d.b), (a.record.id.clone(), b.record.id.clone()));
    }

    #[test]
    fn an_unpinned_package_ranks_before_a_pinned_one() {
        let a = Fixture::new();
        let mut b = rerun();
        b.set_output(b"model v2");
        let python = b.record.environment.python.as_mut().expect("python");
        python.packages =
            vec![package("numpy", "2.0.0"), package("scikit-learn", "1.2.0"), package("threadpoolctl", "3.5.0")];
        let d = diff(&a, &b);
        assert!(d.outputs_differ);
        assert_eq!(kinds(&d), [CauseKind::UnpinnedPackageChanged, CauseKind::PackageChanged]);
        assert_eq!(
            d.causes[0].summary,
            "scikit-learn 1.4.2 → 1.2.0: not pinned in requirements.txt ('scikit-learn>=1.0'), so it resolved to \
             another version"
        );
        assert_eq!(d.causes[1].summary, "package numpy 1.26.4 → 2.0.0 (major)");
        assert!(d.causes[1].evidence.iter().any(|e| e.contains("'numpy==1.26.4' at requirements.txt:1")), "{d:?}");
        let packages = d.section("packages").expect("packages");
        assert!(!packages.same);
        assert_eq!(packages.changes[1].note.as_deref(), Some("minor"));
        assert_eq!(
            d.captured_field_differences(),
            ["packages.numpy: 1.26.4 → 2.0.0 (major)", "packages.scikit-learn: 1.4.2 → 1.2.0 (minor)"]
        );
    }

    #[test]
    fn an_undeclared_package_counts_as_unpinned_when_a_file_is_declared() {
        let mut a = Fixture::new();
        let declared = a.record.environment.declared.as_mut().expect("declared");
        declared.requirements.retain(|r| r.name != "threadpoolctl");
        let mut b = rerun();
        b.record.environment.declared = a.record.environment.declared.clone();
        b.record.environment.python.as_mut().expect("python").packages[2].version = "3.8.0".into();
        let d = diff(&a, &b);
        assert_eq!(kinds(&d), [CauseKind::UnpinnedPackageChanged]);
        assert!(d.causes[0].summary.starts_with("threadpoolctl 3.5.0 → 3.8.0: not declared in requirements.txt"));
        // Without any declared file nothing says it was free to move: a plain package change.
        a.record.environment.declared = None;
        b.record.environment.declared = None;
        let d = diff(&a, &b);
        assert_eq!(kinds(&d), [CauseKind::PackageChanged]);
        assert_eq!(d.causes[0].summary, "package threadpoolctl 3.5.0 → 3.8.0 (minor)");
    }

    #[test]
    fn changed_data_at_the_same_path_comes_first_and_names_the_file() {
        let a = Fixture::new();
        let mut b = rerun();
        b.set_input(&[("train.csv", b"x,y\n1,3\n")], "data/train.csv:2");
        b.set_output(b"model v2");
        b.record.environment.variables.insert("OMP_NUM_THREADS".into(), "4".into());
        let d = diff(&a, &b);
        assert_eq!(kinds(&d), [CauseKind::DataChanged, CauseKind::ThreadsChanged]);
        assert_eq!(
            d.causes[0].summary,
            "data/train.csv: same path, different content (dataset data/train.csv:1 → data/train.csv:2; 1 file \
             changed: train.csv)"
        );
        assert_eq!(d.causes[0].evidence.len(), 1);
        assert!(d.causes[0].evidence[0].starts_with("data/train.csv: blake3:"), "{:?}", d.causes[0].evidence);
        let data = d.section("data").expect("data");
        assert_eq!(data.changes[0].note.as_deref(), Some("same path, different content"));
        let outputs = d.section("outputs").expect("outputs");
        assert_eq!(outputs.changes[0].note.as_deref(), Some("1 file changed: model.pkl"));
    }

    #[test]
    fn a_manifest_that_could_not_be_read_is_a_note_not_a_failure() {
        let a = Fixture::new();
        let mut b = rerun();
        b.set_input(&[("train.csv", b"other")], "data/train.csv:2");
        let mut manifests = a.manifests.clone();
        manifests.remove(&b.record.inputs[0].snapshot);
        let (ma, mb) = (metrics(1.0), metrics(1.0));
        let d =
            diff_runs(&DiffInput { a: &a.record, b: &b.record, metrics_a: &ma, metrics_b: &mb, manifests: &manifests });
        assert_eq!(kinds(&d), [CauseKind::DataChanged]);
        assert!(d.causes[0].summary.contains("per-file detail unavailable"), "{}", d.causes[0].summary);
        let data = d.section("data").expect("data");
        assert_eq!(data.changes.len(), 1);
        assert!(data.changes[0].note.as_deref().is_some_and(|n| n.contains("of run b could not be read")));
    }

    #[test]
    fn inputs_in_one_run_only_and_folder_files() {
        let mut a = Fixture::new();
        let mut b = rerun();
        let folder = |files: &[(&str, &[u8])]| {
            Manifest::new(SnapshotKind::Dir, files.iter().map(|(p, c)| entry(p, c)).collect())
        };
        let (ma, mb) = (folder(&[("a.csv", b"1"), ("b.csv", b"2")]), folder(&[("b.csv", b"3"), ("c.csv", b"4")]));
        for (fixture, m) in [(&mut a, ma), (&mut b, mb)] {
            let mut input = fixture.record.inputs[0].clone();
            input.path = "data/images".into();
            input.snapshot = m.digest();
            input.dataset = None;
            fixture.record.inputs.push(input);
            fixture.manifests.insert(m.digest(), m);
        }
        b.record.inputs.remove(0);
        let d = diff(&a, &b);
        assert_eq!(kinds(&d), [CauseKind::DataChanged, CauseKind::InputsChanged]);
        assert!(
            d.causes[0].summary.ends_with("1 file changed: b.csv; 1 file added: c.csv; 1 file removed: a.csv)"),
            "{}",
            d.causes[0].summary
        );
        assert!(d.causes[1].summary.starts_with("input data/train.csv only in run a"));
        let fields: Vec<&str> = d.section("data").expect("data").changes.iter().map(|c| c.field.as_str()).collect();
        assert_eq!(
            fields,
            ["data/images", "data/images/a.csv", "data/images/b.csv", "data/images/c.csv", "data/train.csv"]
        );
    }

    #[test]
    fn same_ingredients_with_other_outputs_is_uncontrolled_randomness() {
        let a = Fixture::new();
        let mut b = rerun();
        b.set_output(b"model v2");
        let d = diff(&a, &b);
        assert!(d.outputs_differ);
        assert_eq!(kinds(&d), [CauseKind::UncontrolledRandomness]);
        assert!(d.causes[0].summary.contains("REPRO_SEED"));
        assert!(d.causes[0].evidence[0].starts_with("output model.pkl: blake3:"), "{:?}", d.causes[0].evidence);
    }

    #[test]
    fn a_thread_count_ranks_before_uncontrolled_randomness() {
        let a = Fixture::new();
        let mut b = rerun();
        b.set_output(b"model v2");
        b.record.environment.variables.insert("OMP_NUM_THREADS".into(), "8".into());
        b.record.environment.set_by_repro.clear();
        let d = diff(&a, &b);
        assert_eq!(kinds(&d), [CauseKind::ThreadsChanged, CauseKind::UncontrolledRandomness]);
        assert_eq!(d.causes[0].summary, "thread counts differ: OMP_NUM_THREADS 2 → 8");
        // The same difference with the same outputs is still reported, without randomness.
        let mut c = rerun();
        c.record.hardware.usable_cores = 8;
        c.record.environment.variables.insert("OMP_NUM_THREADS".into(), "8".into());
        let d = diff(&a, &c);
        assert!(!d.outputs_differ);
        assert_eq!(kinds(&d), [CauseKind::ThreadsChanged]);
        assert_eq!(d.causes[0].summary, "thread counts differ: usable cores 2 → 8; OMP_NUM_THREADS 2 → 8");
        assert!(d.captured_field_differences().contains(&"hardware.usable_cores: 2 → 8".to_string()));
    }

    #[test]
    fn another_location_alone_is_no_difference() {
        let a = Fixture::new();
        let mut b = rerun();
        let python = b.record.environment.python.as_mut().expect("python");
        python.executable = "/w/bin/python".into();
        python.prefix = "/w".into();
        python.site_dirs = vec!["/w/lib/python3.11/site-packages".into()];
        python.found_by = "VIRTUAL_ENV".into();
        b.record.environment.variables.insert("VIRTUAL_ENV".into(), "/w".into());
        b.record.script.argv[0] = "/w/bin/python".into();
        b.record.code.repo_root = Some("/home/v/repo".into());
        b.record.code.branch = Some("release".into());
        let d = diff(&a, &b);
        assert!(!d.outputs_differ);
        assert!(d.causes.is_empty(), "{:?}", d.causes);
        assert!(d.sections.iter().all(|s| s.same), "{:?}", d.sections);
        let located: Vec<&str> = d
            .sections
            .iter()
            .flat_map(|s| &s.changes)
            .filter(|c| c.is_location_only())
            .map(|c| c.field.as_str())
            .collect();
        assert_eq!(located, ["repo_root", "branch", "argv", "python.executable", "python.prefix", "VIRTUAL_ENV"]);
        assert!(d.captured_field_differences().is_empty());
    }

    #[test]
    fn a_metric_alone_makes_the_outputs_differ() {
        let (a, b) = (Fixture::new(), rerun());
        let d = diff_with_metrics(&a, &b, &metrics(0.9), &metrics(0.9000000000000001));
        assert!(d.outputs_differ);
        assert_eq!(kinds(&d), [CauseKind::UncontrolledRandomness]);
        let change = &d.section("metrics").expect("metrics").changes[0];
        assert_eq!((change.a.as_deref(), change.b.as_deref()), (Some("0.9"), Some("0.9000000000000001")));
        let d = diff_with_metrics(&a, &b, &metrics(f64::NAN), &metrics(f64::NAN));
        assert!(!d.outputs_differ, "NaN twice is the same result");
        let d = diff_with_metrics(&a, &b, &metrics(1.0), &BTreeMap::new());
        assert!(d.outputs_differ, "a metric logged by one run only");
    }

    #[test]
    fn a_failed_rerun_differs_in_its_result() {
        let a = Fixture::new();
        let mut b = rerun();
        b.record.status = RunStatus::Failed;
        b.record.exit_code = Some(1);
        let d = diff(&a, &b);
        assert!(d.outputs_differ);
        assert!(!d.section("result").expect("result").same);
        assert_eq!(d.causes[0].evidence, ["result status: finished → failed", "result exit_code: 0 → 1"]);
    }

    #[test]
    fn code_params_and_seed_are_causes() {
        let a = Fixture::new();
        let mut b = rerun();
        b.set_output(b"model v2");
        b.record.code.commit = Some("fedcba9876543210fedc".into());
        b.record.script.digest = Some(Digest::of_bytes(b"print(2)"));
        b.record.script.argv.push("--fast".into());
        b.record.params.values.insert("lr".into(), serde_json::json!(0.2));
        b.record.params.logged.insert("depth".into(), "3".into());
        b.record.seed = Seed { value: 7, generated: true };
        b.record.environment.variables.insert("PYTHONHASHSEED".into(), "7".into());
        let d = diff(&a, &b);
        assert_eq!(
            kinds(&d),
            [
                CauseKind::CodeChanged,
                CauseKind::ParamsChanged,
                CauseKind::ParamsChanged,
                CauseKind::SeedChanged,
                CauseKind::VariablesChanged
            ]
        );
        assert_eq!(d.causes[0].summary, "code changed: commit 0123456789ab → fedcba987654 (and 2 more differences)");
        assert_eq!(d.causes[0].evidence[1], "command line python train.py → python train.py --fast");
        assert_eq!(d.causes[1].summary, "logged param depth: unset → 3");
        assert_eq!(d.causes[2].summary, "param lr: 0.1 → 0.2");
        assert_eq!(d.causes[3].summary, "seed 42 → 7");
        assert_eq!(d.causes[3].evidence, ["generated by repro in run b, not given with --seed"]);
        assert_eq!(d.causes[4].summary, "variable PYTHONHASHSEED 42 → 7");
        // Only whether repro generated the seed differs: not a difference.
        let mut c = rerun();
        c.record.seed.generated = true;
        assert!(diff(&a, &c).causes.is_empty());
    }

    #[test]
    fn python_declared_file_and_hardware() {
        let a = Fixture::new();
        let mut b = rerun();
        b.record.environment.python.as_mut().expect("python").version = Some("3.12.1".into());
        let declared = b.record.environment.declared.as_mut().expect("declared");
        declared.digest = Digest::of_bytes(b"other");
        declared.requirements[1].spec = ">=1.3".into();
        b.record.hardware.cpu_flags = vec!["avx2".into(), "avx512f".into()];
        b.record.hardware.gpus =
            vec![Gpu { model: "H100".into(), driver: Some("550".into()), cuda: None, memory: None }];
        b.record.environment.os.libc = Some("glibc 2.39".into());
        let d = diff(&a, &b);
        assert_eq!(
            kinds(&d),
            [
                CauseKind::PythonChanged,
                CauseKind::DeclaredEnvironmentChanged,
                CauseKind::HardwareChanged,
                CauseKind::HardwareChanged,
                CauseKind::HardwareChanged
            ]
        );
        assert_eq!(d.causes[0].summary, "Python 3.11.7 → 3.12.1");
        assert_eq!(
            d.causes[1].summary,
            "declared environment requirements.txt changed: scikit-learn>=1.0 → scikit-learn>=1.3"
        );
        let hardware: Vec<&str> = d.causes[2..].iter().map(|c| c.summary.as_str()).collect();
        assert_eq!(
            hardware,
            [
                "CPU flags differ: fma only in run a; avx512f only in run b",
                "GPUs differ: no GPU → H100 (driver 550)",
                "platform differs: os.libc glibc 2.36 → glibc 2.39"
            ]
        );
        let captured = d.captured_field_differences();
        assert!(captured.contains(&"hardware.cpu_flags.fma: present → absent".to_string()), "{captured:?}");
        assert!(captured.contains(&"environment.python.version: 3.11.7 → 3.12.1".to_string()), "{captured:?}");
        // The declared change that the installed set followed is told by the package cause alone.
        b.record.environment.python.as_mut().expect("python").version = Some("3.11.7".into());
        b.record.environment.python.as_mut().expect("python").packages[1].version = "1.5.0".into();
        b.record.hardware = a.record.hardware.clone();
        b.record.environment.os = a.record.environment.os.clone();
        assert_eq!(kinds(&diff(&a, &b)), [CauseKind::UnpinnedPackageChanged]);
    }

    #[test]
    fn an_interpreter_found_in_one_run_only() {
        let a = Fixture::new();
        let mut b = rerun();
        b.record.environment.python = None;
        let d = diff(&a, &b);
        assert_eq!(kinds(&d), [CauseKind::PythonChanged]);
        assert_eq!(d.causes[0].summary, "Python 3.11.7 (venv at /v) → no Python found");
        let packages = d.section("packages").expect("packages");
        assert_eq!(packages.changes, [Change::new("installed", Some("3 packages".into()), None)]);
    }

    #[test]
    fn every_string_is_one_line() {
        let a = Fixture::new();
        let mut b = rerun();
        b.record.environment.variables.insert("LANG".into(), "C\nUTF-8".into());
        b.record.script.argv.push("a b\nc".into());
        let d = diff(&a, &b);
        fn strings(v: &serde_json::Value, out: &mut Vec<String>) {
            match v {
                serde_json::Value::String(s) => out.push(s.clone()),
                serde_json::Value::Array(items) => items.iter().for_each(|i| strings(i, out)),
                serde_json::Value::Object(map) => map.values().for_each(|i| strings(i, out)),
                _ => {}
            }
        }
        let mut all = Vec::new();
        strings(&serde_json::to_value(&d).expect("serializes"), &mut all);
        assert!(all.len() > 10 && all.iter().all(|s| !s.chars().any(char::is_control)), "{all:?}");
        assert!(d.causes.iter().any(|c| c.summary == "variable LANG unset → C\\nUTF-8"), "{:?}", d.causes);
    }

    #[test]
    fn package_classification() {
        let expected = [
            package("numpy", "1.26.4"),
            package("Scikit_Learn", "1.4.2"),
            package("scipy", "1.11.0"),
            package("torch", "2.1.0"),
            package("rich", "13.0"),
            package("pip", "24.0"),
            InstalledPackage { build: Some("py311_0".into()), ..package("mkl", "2023.1") },
            InstalledPackage { url: Some("file:///w/a.whl".into()), ..package("mylib", "0.1") },
            package("tzdata", "2024a"),
            package("pyyaml", "6.0"),
        ];
        let actual = [
            package("numpy", "2.0.0"),
            package("scikit-learn", "1.2.0"),
            package("scipy", "1.11.4"),
            package("torch", "2.1.0+cu121"),
            package("PIP", "23.0"),
            InstalledPackage { build: Some("py311_1".into()), ..package("mkl", "2023.1") },
            package("mylib", "0.1"),
            package("tzdata", "2024b"),
            package("PyYAML", "6.0"),
            package("wheel", "0.42"),
        ];
        let changes = compare_packages(&expected, &actual, &INSTALLER_TOOLING);
        let got: Vec<(&str, PackageChangeKind)> = changes.iter().map(|c| (c.name.as_str(), c.kind)).collect();
        use PackageChangeKind::*;
        assert_eq!(
            got,
            [
                ("mkl", Build),
                ("mylib", Source),
                ("numpy", Major),
                ("rich", Missing),
                ("Scikit_Learn", Minor),
                ("scipy", Patch),
                ("torch", Other),
                ("tzdata", Other),
            ]
        );
        assert_eq!(changes[0].expected.as_deref(), Some("2023.1=py311_0"));
        assert_eq!(changes[0].actual.as_deref(), Some("2023.1=py311_1"));
        assert_eq!(changes[1].describe(), "mylib 0.1 @ file:///w/a.whl → 0.1 (source)");
        assert_eq!(changes[3].describe(), "rich 13.0 missing");
        assert_eq!(changes[4].describe(), "Scikit_Learn 1.4.2 → 1.2.0 (minor)");
        let extra = compare_packages(&[], &[package("rich", "13.0")], &[]);
        assert_eq!(extra[0].describe(), "rich 13.0 extra");
        assert_eq!(
            compare_packages(&expected, &actual, &[]).iter().filter(|c| c.name.eq_ignore_ascii_case("pip")).count(),
            1
        );
        assert!(compare_packages(&expected, &expected, &[]).is_empty());
    }

    #[test]
    fn version_classes() {
        use PackageChangeKind::*;
        for (x, y, kind) in [
            ("1.0", "2.0", Major),
            ("v1.2", "1.3", Minor),
            ("1.2.3", "1.2.4", Patch),
            ("1.2.3.4", "1.2.3.5", Patch),
            ("1.0", "1.0.post1", Other),
            ("1.0", "1.0.0", Other),
            ("1.0rc1", "1.0", Other),
            ("1.0rc1", "1.1rc1", Minor),
            ("2.0rc1", "1.0", Major),
            ("1.01", "1.1", Other),
            ("abc", "def", Other),
            ("1.0", "dev", Other),
            ("99999999999999999999999.1", "99999999999999999999998.1", Major),
        ] {
            assert_eq!(classify_versions(x, y), kind, "{x} vs {y}");
            assert_eq!(classify_versions(y, x), kind, "{y} vs {x}");
        }
    }

    #[test]
    fn names_normalize_as_pep_503_says() {
        assert_eq!(normalize_package_name("Scikit_Learn"), "scikit-learn");
        assert_eq!(normalize_package_name("zope.interface"), "zope-interface");
        assert_eq!(normalize_package_name("A-_.b"), "a-b");
    }

    prop_compose! {
        fn variant()(
            seed in 0u64..3,
            lr in 0u8..3,
            threads in 1u8..3,
            sklearn in 0u8..3,
            data in 0u8..3,
            output in 0u8..3,
            cores in 1u32..3,
            flag in any::<bool>(),
        ) -> Fixture {
            let mut f = Fixture::new();
            f.record.seed.value = seed;
            f.record.params.values.insert("lr".into(), serde_json::json!(lr));
            f.record.environment.variables.insert("OMP_NUM_THREADS".into(), threads.to_string());
            f.record.environment.python.as_mut().expect("python").packages[1].version = format!("1.{sklearn}.0");
            f.set_input(&[("train.csv", &[data])], &format!("data/train.csv:{data}"));
            f.set_output(&[output]);
            f.record.hardware.usable_cores = cores;
            if flag {
                f.record.hardware.cpu_flags.push("avx512f".into());
            }
            f
        }
    }

    proptest! {
        #[test]
        fn a_run_never_differs_from_itself(
            x in variant(),
            m in prop::collection::btree_map("[a-z]{1,4}", any::<f64>(), 0..4),
        ) {
            let d = diff_with_metrics(&x, &x, &m, &m);
            prop_assert!(d.causes.is_empty(), "{:?}", d.causes);
            prop_assert!(!d.outputs_differ);
            prop_assert!(d.sections.iter().all(|s| s.same && s.changes.is_empty()));
        }

        #[test]
        fn swapping_the_runs_gives_the_same_cause_kinds(
            x in variant(),
            y in variant(),
            mx in prop::collection::btree_map("[ab]", 0u8..2, 0..3),
            my in prop::collection::btree_map("[ab]", 0u8..2, 0..3),
        ) {
            let to_f64 = |m: &BTreeMap<String, u8>| m.iter().map(|(k, v)| (k.clone(), f64::from(*v))).collect();
            let (mx, my): (BTreeMap<String, f64>, BTreeMap<String, f64>) = (to_f64(&mx), to_f64(&my));
            let forward = diff_with_metrics(&x, &y, &mx, &my);
            let backward = diff_with_metrics(&y, &x, &my, &mx);
            prop_assert_eq!(kinds(&forward), kinds(&backward));
            prop_assert_eq!(forward.outputs_differ, backward.outputs_differ);
        }
    }
}
