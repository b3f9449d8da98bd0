//! Installed packages compared by normalized name, and the `packages` section.

use super::*;

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
pub(super) fn classify_versions(expected: &str, actual: &str) -> PackageChangeKind {
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

pub(super) fn packages_section(
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
    // What the training imported (the probe saw it) ranks before what was merely installed.
    let used: BTreeSet<String> = [a, b]
        .iter()
        .filter_map(|r| r.probe.as_ref())
        .flat_map(|p| p.packages_used.iter().map(|u| normalize_package_name(&u.name)))
        .collect();
    for pc in package_changes {
        changes.push(Change::new(pc.name.clone(), pc.expected.clone(), pc.actual.clone()).with_note(pc.kind.as_str()));
        let name = normalize_package_name(&pc.name);

        let mut evidence = vec![pc.describe()];
        let imported = used.contains(&name);
        if imported {
            evidence.push("the training imported it (the probe saw it)".to_string());
        }
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
                if imported {
                    let summary = format!("package {} — the training imported it", pc.describe());
                    found.cause(CauseKind::UsedPackageChanged, summary, evidence);
                } else {
                    found.cause(CauseKind::PackageChanged, format!("package {}", pc.describe()), evidence);
                }
            }
        }
    }
    section("packages", changes)
}
