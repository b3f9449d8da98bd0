//! The `environment` section: interpreter, declared file and its requirements.

use super::*;

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

pub(super) fn environment_section(
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
