//! `repro audit`: the audit rules of `repro-core` applied to a stored run, with every
//! object the run refers to re-hashed.

use std::sync::atomic::{AtomicU64, Ordering};

use rayon::prelude::*;
use repro_core::audit::{self, AuditReport, ObjectCheck};
use repro_core::snapshot::Manifest;
use repro_core::{Digest, RunId};
use repro_store::objects::Verified;
use repro_store::Store;

use crate::Result;

/// Every object a run refers to, snapshot contents included (for stored snapshots).
pub fn run_objects(store: &Store, id: &RunId) -> Result<(Vec<Digest>, Vec<Digest>)> {
    let run = store.meta.get_run(id)?;
    let mut all = run.record.referenced_objects();
    all.extend(run.record_object.clone());
    let mut unreadable = Vec::new();
    let snapshots: Vec<Digest> = run
        .record
        .inputs
        .iter()
        .filter(|i| !i.reference)
        .map(|i| i.snapshot.clone())
        .chain(run.record.outputs.iter().filter_map(|o| o.snapshot.clone()))
        .collect();
    for s in snapshots {
        match store.objects.read(&s).ok().and_then(|b| Manifest::from_bytes(&b).ok()) {
            Some(m) => all.extend(m.entries.into_iter().map(|e| e.digest)),
            None => unreadable.push(s),
        }
    }
    all.sort();
    all.dedup();
    Ok((all, unreadable))
}

/// Re-hashes every object of the run.
pub fn verify_objects(store: &Store, id: &RunId, progress: &dyn crate::Progress) -> Result<ObjectCheck> {
    let run = store.meta.get_run(id)?;
    let (all, _) = run_objects(store, id)?;
    progress.start("verifying objects", all.len() as u64);
    let bytes = AtomicU64::new(0);
    let objects = &store.objects;
    let results: Vec<(Digest, Verified)> = all
        .par_iter()
        .map(|d| {
            let v = objects.verify(d).unwrap_or(Verified::Missing);
            if let Verified::Ok { bytes: b } = v {
                bytes.fetch_add(b, Ordering::Relaxed);
            }
            progress.advance(1);
            (d.clone(), v)
        })
        .collect();
    progress.finish();
    let mut check = ObjectCheck { checked: results.len(), bytes: bytes.into_inner(), ..Default::default() };
    for (d, v) in results {
        match v {
            Verified::Ok { .. } => {}
            Verified::Missing => check.missing.push(d),
            Verified::Corrupt => check.corrupt.push(d),
        }
    }
    // The record itself: the stored row must still hash to its lineage digest.
    if let (Some(lineage), Some(object)) = (&run.lineage, &run.record_object) {
        if run.record.lineage() != *lineage && !check.corrupt.contains(object) {
            check.corrupt.push(object.clone());
        }
    }
    Ok(check)
}

pub fn audit_run(store: &Store, id: &RunId, strict: bool, progress: &dyn crate::Progress) -> Result<AuditReport> {
    let run = store.meta.get_run(id)?;
    let check = verify_objects(store, id, progress)?;
    Ok(audit::audit_run(&run.record, &check, None, strict))
}
