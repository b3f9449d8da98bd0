//! `repro diff`: the pure comparison of `repro_core::diff`, fed with what the store holds
//! (the two records, their metrics, and the manifests of their snapshots).

use std::collections::BTreeMap;

use repro_core::diff::{self, DiffInput, RunDiff};
use repro_core::metrics::last_values;
use repro_core::snapshot::Manifest;
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
            if let Some(m) = store.objects.read(&d).ok().and_then(|b| Manifest::from_bytes(&b).ok()) {
                out.insert(d, m);
            }
        }
    }
    out
}

pub fn diff_runs(store: &Store, a: &StoredRun, b: &StoredRun) -> Result<RunDiff> {
    let metrics_a = last_values(&store.meta.runs().metrics(&a.record.id)?);
    let metrics_b = last_values(&store.meta.runs().metrics(&b.record.id)?);
    let manifests = manifests(store, &[a, b]);
    Ok(diff::diff_runs(&DiffInput {
        a: &a.record,
        b: &b.record,
        metrics_a: &metrics_a,
        metrics_b: &metrics_b,
        manifests: &manifests,
    }))
}
