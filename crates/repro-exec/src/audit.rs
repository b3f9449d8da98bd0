//! `repro audit`: the audit rules of `repro-core` applied to a stored run, with every
//! object the run refers to re-hashed.

use std::sync::atomic::{AtomicU64, Ordering};

use rayon::prelude::*;
use repro_core::audit::{self, AuditReport, ObjectCheck};
use repro_core::record::ReplaySummary;
use repro_core::snapshot::SnapshotKind;
use repro_core::Digest;
use repro_store::meta::StoredRun;
use repro_store::objects::Verified;
use repro_store::Store;

/// Every object a run refers to, snapshot contents included (for stored snapshots).
pub fn run_objects(store: &Store, run: &StoredRun) -> (Vec<Digest>, Vec<Digest>) {
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
        match store.objects.manifest(&s).ok() {
            Some(m) => {
                all.extend(store.objects.manifest_chunks(&s).unwrap_or_default());
                all.extend(m.entries.into_iter().map(|e| e.digest))
            }
            None => unreadable.push(s),
        }
    }
    all.sort();
    all.dedup();
    (all, unreadable)
}

/// Re-hashes every object of the run.
pub fn verify_objects(store: &Store, run: &StoredRun, progress: &dyn crate::Progress) -> ObjectCheck {
    let (all, _) = run_objects(store, run);
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
    // Every fact recorded about the run, against its journal.
    match store.meta.check_run_facts(&run.record) {
        Ok(found) => check.tampered = found.iter().map(ToString::to_string).collect(),
        Err(e) => check.tampered.push(format!("the run's journal could not be read: {e}")),
    }
    // The record itself: the stored row must still hash to its lineage digest.
    if let (Some(lineage), Some(object)) = (&run.lineage, &run.record_object) {
        if run.record.lineage() != *lineage && !check.corrupt.contains(object) {
            check.corrupt.push(object.clone());
        }
    }
    check
}

pub fn audit_run(
    store: &Store,
    run: &StoredRun,
    strict: bool,
    progress: &dyn crate::Progress,
) -> crate::Result<AuditReport> {
    let mut check = verify_objects(store, run, progress);
    name_missing_data(store, run, &mut check)?;
    let replays = replay_summaries(store, &run.record.id)?;
    let registry = registry_mentions(store, run)?;
    let mut report = audit::audit_run(&run.record, &check, &registry, &replays, strict);
    report.name.clone_from(&run.name);
    match store.meta.tracking().get_tracked_run(run.record.id.as_str()) {
        Ok(tracked) if !tracked.captured => audit::mark_not_captured(&mut report),
        Ok(_) | Err(repro_store::StoreError::Missing(_)) => {}
        Err(e) => return Err(e.into()),
    }
    Ok(report)
}

/// Names the input files among the missing objects (path, input, dataset), and says when
/// they are missing because the run came from a bundle exported without its data: the
/// store then records the input's snapshot as not stored, and a registry version imported
/// from a bundle pins the run.
fn name_missing_data(store: &Store, run: &StoredRun, check: &mut ObjectCheck) -> crate::Result<()> {
    if check.missing.is_empty() {
        return Ok(());
    }
    let mut absent_snapshots = false;
    for input in run.record.inputs.iter().filter(|i| !i.reference) {
        let Some(manifest) = store.objects.manifest(&input.snapshot).ok() else {
            continue;
        };
        let mut hit = false;
        for e in manifest.entries.iter().filter(|e| check.missing.contains(&e.digest)) {
            hit = true;
            let file = match manifest.kind {
                SnapshotKind::File => input.path.clone(),
                SnapshotKind::Dir => format!("{}/{}", input.path.trim_end_matches('/'), e.path),
            };
            check.missing_data.push(audit::MissingDataFile {
                digest: e.digest.clone(),
                file,
                input: input.path.clone(),
                dataset: input.dataset.clone(),
            });
        }
        if hit && store.meta.datasets().snapshot(&input.snapshot)?.is_some_and(|s| !s.stored) {
            absent_snapshots = true;
        }
    }
    if absent_snapshots {
        let registry = store.meta.models().registry()?;
        check.imported_without_data = registry
            .versions_of_run(&run.record.id)
            .into_iter()
            .find(|v| v.imported_from.is_some())
            .map(|v| v.reference());
    }
    Ok(())
}

/// The model versions that pin a run, with whether each still agrees with its lineage.
pub fn registry_mentions(store: &Store, run: &StoredRun) -> crate::Result<Vec<audit::RegistryMention>> {
    Ok(mentions_in(&store.meta.models().registry()?, run))
}

/// The same from a registry already read: a page of many runs reads it once.
pub fn mentions_in(registry: &repro_core::registry::Registry, run: &StoredRun) -> Vec<audit::RegistryMention> {
    let actual = run.record.lineage();
    registry
        .versions_of_run(&run.record.id)
        .into_iter()
        .map(|v| audit::RegistryMention {
            reference: v.reference(),
            stage: v.stage.clone(),
            archived: v.archived.is_some(),
            lineage_matches: v.lineage_holds(run.lineage.as_ref(), &actual),
        })
        .collect()
}

/// The replays of a run, oldest first, as the audit and `repro show` present them.
pub fn replay_summaries(store: &Store, id: &repro_core::RunId) -> crate::Result<Vec<ReplaySummary>> {
    Ok(store
        .meta
        .runs()
        .replays_of(id)?
        .into_iter()
        .map(|r| ReplaySummary { replay: r.replay, verdict: r.verdict, at: repro_util::clock::rfc3339(r.created_ms) })
        .collect())
}
