//! `repro diff`: the pure comparison of `repro_core::diff`, fed with what the store holds
//! (the two records, their metrics, and the manifests of their snapshots).

use std::collections::{BTreeMap, HashMap, HashSet};

use repro_core::diff::{self, DiffInput, RunDiff};
use repro_core::metrics::last_values;
use repro_core::record::{FileEntry, RunRecord};
use repro_core::snapshot::{self, ChangedFile, ChunkedRoot, Manifest, ManifestObject};
use repro_core::Digest;
use repro_store::meta::StoredRun;
use repro_store::Store;
use serde::{Deserialize, Serialize};

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
            if let Some(cut) = differing_chunks(store, x, y) {
                out.insert((*x).clone(), cut.a);
                out.insert((*y).clone(), cut.b);
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

/// Two chunked manifests cut down to the chunks they do not share, and how many chunks
/// each has and shares.
struct Cut {
    a: Manifest,
    b: Manifest,
    chunks: ChunkReads,
}

/// How a comparison of two snapshots read their manifests.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChunkReads {
    /// Chunks of each manifest (0 for one kept whole).
    pub a: usize,
    pub b: usize,
    /// Chunks both name: not read, since they hold the same files.
    pub shared: usize,
}

/// `None` unless both are chunked and every chunk read verifies.
fn differing_chunks(store: &Store, x: &Digest, y: &Digest) -> Option<Cut> {
    let root = |d: &Digest| match snapshot::parse(&store.objects.read(d).ok()?).ok()? {
        ManifestObject::Chunked(r) => Some(r),
        ManifestObject::Whole(_) => None,
    };
    let (rx, ry) = (root(x)?, root(y)?);
    let shared: HashSet<Digest> = {
        let in_x: HashSet<&Digest> = rx.chunks.iter().map(|c| &c.digest).collect();
        ry.chunks.iter().filter(|c| in_x.contains(&c.digest)).map(|c| c.digest.clone()).collect()
    };
    let chunks = ChunkReads { a: rx.chunks.len(), b: ry.chunks.len(), shared: shared.len() };
    let part = |r: ChunkedRoot| {
        let chunks: Vec<_> = r.chunks.into_iter().filter(|c| !shared.contains(&c.digest)).collect();
        let files = chunks.iter().map(|c| c.files).sum();
        let bytes = chunks.iter().map(|c| c.bytes).sum();
        let root = ChunkedRoot { chunks, files, bytes, ..r };
        Manifest::assemble(root, |c| store.objects.read(&c.digest).map_err(|_| ()), |_| ()).ok()
    };
    Some(Cut { a: part(rx)?, b: part(ry)?, chunks })
}

/// `repro data diff A B`: the files two dataset versions differ in.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DatasetDiff {
    pub a: DatasetSide,
    pub b: DatasetSide,
    pub added: Vec<FileEntry>,
    pub removed: Vec<FileEntry>,
    pub changed: Vec<ChangedFile>,
    /// Files in both with the same content and mode.
    pub unchanged: u64,
    pub chunks: ChunkReads,
}

/// One side of a [`DatasetDiff`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DatasetSide {
    pub name: String,
    pub version: u32,
    pub snapshot: Digest,
    pub files: u64,
    pub bytes: u64,
}

/// Compares two dataset versions (NAME or NAME:VERSION each) file by file, reading of two
/// chunked manifests only the chunks they do not share.
pub fn datasets(store: &Store, a: &str, b: &str) -> Result<DatasetDiff> {
    let side = |spec: &str| -> Result<DatasetSide> {
        let v = store.meta.datasets().get(spec)?;
        let row = store.meta.datasets().snapshot(&v.snapshot)?;
        Ok(DatasetSide {
            name: v.name,
            version: v.version,
            files: row.as_ref().map_or(0, |r| r.files),
            bytes: row.as_ref().map_or(0, |r| r.bytes),
            snapshot: v.snapshot,
        })
    };
    let (a, b) = (side(a)?, side(b)?);
    let (ma, mb, chunks) = match differing_chunks(store, &a.snapshot, &b.snapshot) {
        Some(cut) => (cut.a, cut.b, cut.chunks),
        None => (store.objects.manifest(&a.snapshot)?, store.objects.manifest(&b.snapshot)?, ChunkReads::default()),
    };
    let d = snapshot::compare(&ma.entries, &mb.entries);
    let unchanged = a.files.saturating_sub((d.removed.len() + d.changed.len()) as u64);
    Ok(DatasetDiff { a, b, added: d.added, removed: d.removed, changed: d.changed, unchanged, chunks })
}
