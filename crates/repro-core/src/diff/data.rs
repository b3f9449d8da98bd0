//! The `data` section, and the per-file comparison of two snapshot manifests.

use super::*;

/// Per-file differences between two manifests of the same path.
#[derive(Default)]
pub(super) struct FileDiff {
    changed: Vec<String>,
    added: Vec<String>,
    removed: Vec<String>,
    mode: Vec<String>,
    pub(super) changes: Vec<Change>,
}

impl FileDiff {
    pub(super) fn summary(&self) -> String {
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
    // Labelled: under a snapshot's line, a file's line would otherwise read the same.
    let show = |e: &FileEntry| format!("file {} ({})", e.digest.short(), human_bytes(e.size));
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
pub(super) fn snapshot_detail(
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

pub(super) fn data_section(
    a: &[DataRef],
    b: &[DataRef],
    manifests: &BTreeMap<Digest, Manifest>,
    found: &mut Findings,
) -> Section {
    let (ia, ib) = (first_by(a, |r| r.path.clone()), first_by(b, |r| r.path.clone()));
    let show = |r: &DataRef| match &r.dataset {
        Some(d) => format!("{d} (snapshot {})", r.snapshot.short()),
        None => format!("snapshot {}", r.snapshot.short()),
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
