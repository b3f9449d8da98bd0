//! Nothing is built on damage. Registry writes, bundle exports and signatures vouch for a
//! run and its artifact, so before any of them: the newest fsck verdict must not have found
//! the store damaged, and the version's own evidence — its run's recorded facts against
//! their journal, the record against its lineage, every object the run and the artifact
//! refer to — must re-check. Damage found here is kept as a verdict, like fsck's, so every
//! later registry write waits too, until the store is restored and `repro fsck` is clean.
//!
//! One exception: archiving. It only takes a version out of its stage, which is what an
//! incident response needs most when the evidence can no longer be trusted.

use repro_core::registry::ModelVersion;
use repro_store::meta::StoredRun;
use repro_store::{Store, StoreError};

use crate::Result;

const RESTORE: &str =
    "registry writes, exports and signatures wait until .repro is restored from a backup and `repro fsck` finds it clean";

/// Refuses while the newest fsck verdict (or a check like the ones below) found damage.
pub fn refuse_if_damaged(store: &Store) -> Result<()> {
    if let Some(message) = damage_message(&store.meta)? {
        return Err(StoreError::Damaged(message).into());
    }
    Ok(())
}

/// The refusal, when the newest verdict found damage; shared with the store's own check
/// inside registry appends.
pub fn damage_message(meta: &repro_store::Metadata) -> Result<Option<String>> {
    Ok(meta.verdicts().last_damage()?.map(|(at, problems)| {
        let first = problems.first().cloned().unwrap_or_else(|| "damage".into());
        let more = problems.len().saturating_sub(1);
        format!(
            "the store is damaged (found {}: {first}{}); {RESTORE}",
            repro_util::clock::rfc3339(at),
            if more > 0 { format!(", and {more} more problem(s)") } else { String::new() }
        )
    }))
}

/// Checks what a run vouches for: its facts and every object it refers to.
pub fn vouch_for_run(store: &Store, run: &StoredRun, progress: &dyn crate::Progress) -> Result<()> {
    refuse_if_damaged(store)?;
    let check = crate::audit::verify_objects(store, run, progress);
    let id = run.record.id.short();
    let mut problems = check.tampered.clone();
    problems.extend(check.missing.iter().map(|d| format!("run {id}: object {d} is missing")));
    problems.extend(check.corrupt.iter().map(|d| format!("run {id}: object {d} is corrupt")));
    refuse(store, problems)
}

/// Checks a version: its run as above, and the artifact's bytes against both digests. An
/// external version has only what adoption pinned (if anything) to check.
pub fn vouch_for_version(store: &Store, version: &ModelVersion, progress: &dyn crate::Progress) -> Result<()> {
    if let Some(id) = &version.run {
        let run = store.meta.runs().get(id)?;
        vouch_for_run(store, &run, progress)?;
    }
    let mut problems = Vec::new();
    for f in version.artifact.iter().flat_map(|a| &a.files) {
        match store.objects.read(&f.blake3) {
            Ok(bytes) if repro_core::provenance::hex_sha256(&bytes) == f.sha256 => {}
            Ok(_) => {
                problems.push(format!("{}: artifact file {} no longer has its SHA-256", version.reference(), f.path))
            }
            Err(e) => problems.push(format!("{}: artifact file {}: {e}", version.reference(), f.path)),
        }
    }
    refuse(store, problems)
}

fn refuse(store: &Store, problems: Vec<String>) -> Result<()> {
    if problems.is_empty() {
        return Ok(());
    }
    store.meta.verdicts().record_damage(&problems)?;
    let more = problems.len() - 1;
    Err(StoreError::Damaged(format!(
        "{}{}; {RESTORE}",
        problems[0],
        if more > 0 { format!(", and {more} more problem(s)") } else { String::new() }
    ))
    .into())
}
