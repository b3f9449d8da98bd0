//! `repro diff`: the pure comparison of `repro_core::diff`, fed with what the store holds
//! (the two records, their metrics, and the manifests of their snapshots).

use std::collections::{BTreeMap, HashMap, HashSet};

use repro_core::diff::{self, DiffInput, RunDiff};
use repro_core::metrics::last_values;
use repro_core::record::RunRecord;
use repro_core::snapshot::{self, ChunkedRoot, Manifest, ManifestObject};
use repro_core::Digest;
use repro_store::meta::StoredRun;
use repro_store::Store;

use crate::Result;

/// The manifests of every input and output snapshot of the given runs that can be read
/// (an unreadable one only costs the per-file detail; the diff says so).
pub fn manifests(store: &Store, runs: &[&StoredRun]) -> BTreeMap<Digest, Manifest> {
    let mut out = BTreeMap::new();
    for run in runs {
        let digests = run
            .record
            .inputs
            .iter()
            .map(|i| i.snapshot.clone())
            .chain(run.record.outputs.iter().filter_map(|o| o.snapshot.clone()));
        for d in digests {
            if out.contains_key(&d) {
                continue;
            }
            if let Ok(m) = store.objects.manifest(&d) {
                out.insert(d, m);
            }
        }
    }
    out
}

pub fn diff_runs(store: &Store, a: &StoredRun, b: &StoredRun) -> Result<RunDiff> {
    let metrics_a = last_values(&store.meta.runs().metrics(&a.record.id)?);
    let metrics_b = last_values(&store.meta.runs().metrics(&b.record.id)?);
    let manifests = compared(store, &a.record, &b.record);
    Ok(diff::diff_runs(&DiffInput {
        a: &a.record,
        b: &b.record,
        metrics_a: &metrics_a,
        metrics_b: &metrics_b,
        manifests: &manifests,
    }))
}

/// The snapshots the diff compares file by file: inputs and outputs of one path whose
/// content differs. Both sides chunked, only the chunks they do not share are read: chunks
/// follow the paths, so a shared chunk holds the same files on both sides and the files
/// that differ are all in the others. Reading two versions of a million-file dataset that
/// differ in one file costs two roots and two chunks, not two whole manifests. A snapshot
/// compared in more than one pair is read whole.
fn compared(store: &Store, a: &RunRecord, b: &RunRecord) -> BTreeMap<Digest, Manifest> {
    let mut pairs: Vec<(&Digest, &Digest)> = Vec::new();
    for x in &a.inputs {
        pairs.extend(
            b.inputs
                .iter()
                .filter(|y| y.path == x.path && y.snapshot != x.snapshot)
                .map(|y| (&x.snapshot, &y.snapshot)),
        );
    }
    for x in &a.outputs {
        for y in b.outputs.iter().filter(|y| y.path == x.path) {
            if let (Some(dx), Some(dy)) = (&x.snapshot, &y.snapshot) {
                pairs.extend((dx != dy).then_some((dx, dy)));
            }
        }
    }
    let mut uses: HashMap<&Digest, usize> = HashMap::new();
    for (x, y) in &pairs {
        *uses.entry(x).or_default() += 1;
        *uses.entry(y).or_default() += 1;
    }
    let mut out = BTreeMap::new();
    for (x, y) in &pairs {
        if uses[x] == 1 && uses[y] == 1 {
            if let Some((mx, my)) = differing_chunks(store, x, y) {
                out.insert((*x).clone(), mx);
                out.insert((*y).clone(), my);
            }
        }
    }
    for d in uses.keys() {
        if !out.contains_key(*d) {
            // An unreadable one only costs the per-file detail; the diff says so.
            if let Ok(m) = store.objects.manifest(d) {
                out.insert((*d).clone(), m);
            }
        }
    }
    out
}

/// Two chunked manifests cut down to the chunks they do not share; `None` unless both are
/// chunked and every chunk read verifies.
fn differing_chunks(store: &Store, x: &Digest, y: &Digest) -> Option<(Manifest, Manifest)> {
    let root = |d: &Digest| match snapshot::parse(&store.objects.read(d).ok()?).ok()? {
        ManifestObject::Chunked(r) => Some(r),
        ManifestObject::Whole(_) => None,
    };
    let (rx, ry) = (root(x)?, root(y)?);
    let shared: HashSet<Digest> = {
        let in_x: HashSet<&Digest> = rx.chunks.iter().map(|c| &c.digest).collect();
        ry.chunks.iter().filter(|c| in_x.contains(&c.digest)).map(|c| c.digest.clone()).collect()
    };
    let part = |r: ChunkedRoot| {
        let chunks: Vec<_> = r.chunks.into_iter().filter(|c| !shared.contains(&c.digest)).collect();
        let files = chunks.iter().map(|c| c.files).sum();
        let bytes = chunks.iter().map(|c| c.bytes).sum();
        let root = ChunkedRoot { chunks, files, bytes, ..r };
        Manifest::assemble(root, |c| store.objects.read(&c.digest).map_err(|_| ()), |_| ()).ok()
    };
    Some((part(rx)?, part(ry)?))
}
