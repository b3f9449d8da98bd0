//! The `result`, `outputs` and `metrics` sections.

use super::data::snapshot_detail;
use super::*;

pub(super) fn result_section(a: &RunRecord, b: &RunRecord, found: &mut Findings) -> Section {
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

pub(super) fn outputs_section(
    a: &[OutputRef],
    b: &[OutputRef],
    manifests: &BTreeMap<Digest, Manifest>,
    found: &mut Findings,
) -> Section {
    let (ia, ib) = (first_by(a, |r| r.path.clone()), first_by(b, |r| r.path.clone()));
    let show = |o: &OutputRef| match (&o.snapshot, o.missing) {
        (Some(s), false) => format!("snapshot {} ({}, {})", s.short(), count(o.files, "file"), human_bytes(o.bytes)),
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

pub(super) fn metrics_section(a: &BTreeMap<String, f64>, b: &BTreeMap<String, f64>, found: &mut Findings) -> Section {
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
