//! `repro fsck`: re-hash every object, check every reference from the metadata, recompute
//! every run's lineage digest, and finish off what interrupted writers left behind.

use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering};

use rayon::prelude::*;
use repro_core::environment::EnvironmentSpec;
use repro_core::record::{RunRecord, RunStatus};
use repro_core::{Digest, RunId};
use serde::Serialize;

use crate::objects::Verified;
use crate::{Result, Store};

#[derive(Debug, Default, Serialize)]
pub struct FsckReport {
    pub clean: bool,
    pub objects: usize,
    pub bytes: u64,
    pub runs: usize,
    pub snapshots: usize,
    /// Objects whose content does not hash to their name.
    pub corrupt: Vec<Digest>,
    /// Files in the object folder that are not objects.
    pub stray: Vec<String>,
    /// Objects referred to by metadata but absent (or corrupt), with who refers to them.
    pub broken_references: Vec<BrokenReference>,
    /// Runs whose stored record does not match its lineage digest or cannot be read.
    pub bad_runs: Vec<BadRun>,
    /// Runs whose repro process died before recording the end; now marked interrupted.
    pub interrupted: Vec<RunId>,
    /// Temp folders of writers that died, removed (they were never referred to).
    pub stale_temp_removed: usize,
    /// Registry events in the log.
    pub registry_events: usize,
    /// Breaks in the registry's event chain, and versions that no longer agree with their run.
    pub registry: Vec<String>,
    /// Rows edited, deleted or inserted behind repro's back, and breaks in the journal's
    /// chains (see `journal`): named by run, table and key.
    pub tampered: Vec<crate::journal::Tampered>,
    /// Caches found wrong and rebuilt (`latest_metrics`, `tree_cache`): not damage, since
    /// nothing is derived from a cache that fsck cannot rebuild.
    pub caches_rebuilt: Vec<String>,
    /// What is not damage but deserves a look (e.g. a run recorded before repro stripped
    /// credentials from URLs). Warnings leave the store clean.
    pub warnings: Vec<String>,
}

impl FsckReport {
    /// Every problem that makes the store not clean, one line each.
    pub fn problems(&self) -> Vec<String> {
        let mut out: Vec<String> = self.corrupt.iter().map(|d| format!("corrupt object {d}")).collect();
        out.extend(self.stray.iter().map(|s| format!("stray file in the object store: {s}")));
        out.extend(
            self.broken_references
                .iter()
                .map(|b| format!("{} refers to {} object {}", b.referrer, b.problem, b.object)),
        );
        out.extend(self.bad_runs.iter().map(|b| format!("{}: {}", b.run, b.problem)));
        out.extend(self.registry.iter().cloned());
        out.extend(self.tampered.iter().map(|t| t.to_string()));
        out
    }
}

#[derive(Debug, Serialize)]
pub struct BrokenReference {
    pub object: Digest,
    pub referrer: String,
    pub problem: String,
}

#[derive(Debug, Serialize)]
pub struct BadRun {
    pub run: String,
    pub problem: String,
}

// Re-exported: the server names these through `fsck`.
pub use repro_core::progress::{NoProgress, Progress};

pub fn fsck(store: &Store, progress: &dyn Progress) -> Result<FsckReport> {
    let mut report = FsckReport {
        stale_temp_removed: remove_stale_temp(store),
        interrupted: store.meta.runs().reap_interrupted()?,
        ..Default::default()
    };

    // 1. Every object re-hashes to its name (with a remote: every object in the bucket, as
    // downloaded, since that is what every other machine reads).
    let listed = store.objects.list()?;
    let mut digests = Vec::with_capacity(listed.len());
    for item in listed {
        match item {
            Ok(d) => digests.push(d),
            Err(p) => report.stray.push(p.display().to_string()),
        }
    }
    if store.objects.remote().is_none() {
        // Every local object is re-hashed below and the intact ones stamped again: after fsck the
        // stamps vouch for exactly what it verified.
        store.objects.clear_stamps();
    }
    progress.start("verifying objects", digests.len() as u64);
    let bytes = AtomicU64::new(0);
    let objects = &store.objects;
    let results: Vec<(Digest, Result<Verified>)> = digests
        .par_iter()
        .map(|d| {
            let r = objects.verify_durable(d);
            if let Ok(Verified::Ok { bytes: b }) = r {
                bytes.fetch_add(b, Ordering::Relaxed);
            }
            progress.advance(1);
            (d.clone(), r)
        })
        .collect();
    progress.finish();
    let mut good: HashSet<Digest> = HashSet::with_capacity(results.len());
    for (d, r) in results {
        match r? {
            Verified::Ok { .. } => {
                good.insert(d);
            }
            Verified::Corrupt => report.corrupt.push(d),
            Verified::Missing => {}
        }
    }
    report.objects = digests.len();
    report.bytes = bytes.into_inner();
    // What the bucket was just seen to hold, re-hashed, is all a later snapshot may take as
    // uploaded without asking (an object deleted behind repro's back is forgotten here).
    if let Some(remote) = store.objects.remote() {
        remote.set_known(&good)?;
    }
    let check = |d: &Digest, referrer: String, report: &mut FsckReport| {
        if !good.contains(d) {
            let problem = if report.corrupt.contains(d) { "corrupt" } else { "missing" };
            report.broken_references.push(BrokenReference { object: d.clone(), referrer, problem: problem.into() });
            false
        } else {
            true
        }
    };

    // 2. Every run: its record, lineage and references.
    let runs = store.meta.runs().all()?;
    report.runs = runs.len();
    for run in &runs {
        let id = run.record.id.to_string();
        if run.record.status == RunStatus::Running || run.record.status == RunStatus::Interrupted {
            // Unfinished runs have no lineage yet; their snapshots are checked below.
        } else {
            match (&run.lineage, &run.record_object) {
                (Some(lineage), Some(object)) => {
                    if run.record.lineage() != *lineage {
                        report.bad_runs.push(BadRun {
                            run: id.clone(),
                            problem:
                                "the stored record no longer matches its lineage digest (edited behind repro's back?)"
                                    .into(),
                        });
                    }
                    if check(object, format!("run {id} record"), &mut report) {
                        match store.objects.read(object).map(|b| serde_json::from_slice::<RunRecord>(&b)) {
                            Ok(Ok(rec)) if rec.lineage() == *lineage => {}
                            _ => report.bad_runs.push(BadRun {
                                run: id.clone(),
                                problem: "the record object does not match the lineage digest".into(),
                            }),
                        }
                    }
                }
                _ => report
                    .bad_runs
                    .push(BadRun { run: id.clone(), problem: "an ended run without a lineage digest".into() }),
            }
        }
        for d in run.record.referenced_objects() {
            check(&d, format!("run {id}"), &mut report);
        }
        // Not damage: the record is what was captured, and its lineage digest covers it, so
        // it is never rewritten. The credential itself must be revoked; say where it sits.
        for place in repro_core::secrets::find_in_record(&run.record) {
            report.warnings.push(format!(
                "run {id} was recorded with a credential in a URL, in {place}; records are never rewritten (the lineage covers them), so revoke that credential (`repro show` masks it)"
            ));
        }
    }

    // Replays: the report exists and the replay run says which run it replays.
    for r in store.meta.runs().all_replays()? {
        // A signed verdict's envelope and key are named by the report (see
        // repro-exec's replay/verdict.rs); their signature is `model verify`'s to check.
        if check(&r.report, format!("replay {} report", r.replay), &mut report) {
            let named = store.objects.read(&r.report).ok().and_then(|b| {
                let v: serde_json::Value = serde_json::from_slice(&b).ok()?;
                let a = v.get("attestation")?;
                Some([
                    ("envelope", a.get("envelope")?.as_str()?.to_string()),
                    ("public key", a.get("public_key")?.as_str()?.to_string()),
                ])
            });
            for (what, digest) in named.into_iter().flatten() {
                match Digest::parse(&digest) {
                    Ok(d) => {
                        check(&d, format!("replay {} signed verdict ({what})", r.replay), &mut report);
                    }
                    Err(_) => report.bad_runs.push(BadRun {
                        run: r.replay.to_string(),
                        problem: format!("its report names a verdict {what} '{digest}' that is not a digest"),
                    }),
                }
            }
        }
        let linked = runs.iter().find(|run| run.record.id == r.replay).and_then(|run| run.record.replay_of.as_ref());
        if linked != Some(&r.original) {
            report.bad_runs.push(BadRun {
                run: r.replay.to_string(),
                problem: format!("recorded as a replay of {} but its record does not say so", r.original),
            });
        }
    }

    // Registered environments: their spec objects.
    for env in store.meta.environments().list()? {
        let who = format!("environment {}:{}", env.name, env.version);
        if !check(&env.spec, who.clone(), &mut report) {
            continue;
        }
        match store.objects.read(&env.spec).map(|b| serde_json::from_slice::<EnvironmentSpec>(&b)) {
            Ok(Ok(EnvironmentSpec::Declared { declared })) => {
                for place in repro_core::secrets::find_in_declared(&declared) {
                    report.warnings.push(format!(
                        "{who} was registered with a credential in a URL, in {place}; revoke that credential"
                    ));
                }
                check(&declared.digest, format!("{who} file {}", declared.path), &mut report);
                for c in &declared.companions {
                    check(&c.digest, format!("{who} file {}", c.path), &mut report);
                }
            }
            Ok(Ok(EnvironmentSpec::Installed { .. })) => {}
            _ => report.bad_runs.push(BadRun { run: who, problem: "its spec object is not an environment".into() }),
        }
    }

    // The registry: the event chain, then what each version pins.
    let events = store.meta.models().events()?;
    report.registry_events = events.len();
    let anchor = store.meta.models().anchor()?;
    report.registry.extend(anchor.problem());
    report.registry.extend(repro_core::registry::verify_chain(&events, anchor.event()).into_iter().map(|p| p.message));
    let (registry, problems) = repro_core::registry::Registry::fold(&events);
    report.registry.extend(problems.into_iter().map(|p| p.message));
    for v in registry.models.values().flat_map(|m| m.versions.values()) {
        let who = v.reference();
        // An external version names no run of this store: there is no lineage to hold it to.
        let pinned_run = v.run.as_ref().map(|id| (id, runs.iter().find(|r| &r.record.id == id)));
        match pinned_run {
            None if v.external.is_none() => report.registry.push(format!("{who} names no run and is not external")),
            None => {}
            Some((id, None)) => report.registry.push(format!("{who} pins run {id}, which is not in the store")),
            Some((id, Some(run))) => match (&v.lineage, &run.lineage) {
                (Some(pinned), actual) if actual.as_ref() != Some(pinned) => report.registry.push(format!(
                    "{who} pins lineage {} but run {} has {}",
                    pinned.short(),
                    id.short(),
                    actual.as_ref().map_or("none".into(), |l| l.short())
                )),
                (None, Some(_)) if v.deleted.is_none() => report.registry.push(format!(
                    "{who} was registered while run {} ran and was never pinned to the lineage it finished with",
                    id.short()
                )),
                _ => {}
            },
        }
        if let Some(artifact) = &v.artifact {
            check(&artifact.snapshot, format!("{who} artifact snapshot"), &mut report);
            for f in &artifact.files {
                check(&f.blake3, format!("{who} artifact {}", f.path), &mut report);
            }
        } else if v.external.is_none() {
            report.registry.push(format!("{who} pins no files and is not external"));
        }
        for sig in &v.signatures {
            check(&sig.envelope, format!("{who} signature envelope"), &mut report);
            check(&sig.public_key, format!("{who} signing key"), &mut report);
        }
    }
    for (path, object) in store.meta.tracking().all_artifacts()? {
        check(&object, format!("artifact {path}"), &mut report);
    }
    for (commit, object) in store.meta.models().code_bundles()? {
        check(&object, format!("code bundle of commit {}", &commit[..commit.len().min(12)]), &mut report);
    }

    // The journal: every chain re-derived and replayed against the tables.
    report.tampered = crate::journal::check_all(&store.meta.conn).map_err(store.meta.err("check the journal"))?;
    for run in &runs {
        report.tampered.extend(store.meta.sealed_head_problem(&run.record)?);
    }
    if store.meta.conn.is_postgres() {
        let version = store.meta.schema_version_now()?;
        if version != crate::schema::SCHEMA_VERSION {
            report.tampered.push(crate::journal::Tampered {
                run: None,
                table: "repro_schema".into(),
                key: String::new(),
                problem: format!("says schema {version}, but the tables are schema {}", crate::schema::SCHEMA_VERSION),
            });
        }
    }
    report.caches_rebuilt.extend(store.meta.tracking().rebuild_latest_metrics()?);
    report.caches_rebuilt.extend(check_tree_cache(store)?);

    // 3. Every snapshot: its manifest, and each file's object when contents are stored.
    let snapshots = store.meta.datasets().snapshots()?;
    report.snapshots = snapshots.len();
    for s in &snapshots {
        let who = format!("snapshot {}", s.digest.short());
        if !check(&s.digest, who.clone(), &mut report) {
            continue;
        }
        for c in store.objects.manifest_chunks(&s.digest).unwrap_or_default() {
            check(&c, format!("{who} manifest chunk"), &mut report);
        }
        let manifest = match store.objects.manifest(&s.digest) {
            Ok(m) => m,
            _ => {
                report.bad_runs.push(BadRun { run: who.clone(), problem: "manifest object is not a manifest".into() });
                continue;
            }
        };
        if s.stored {
            for e in &manifest.entries {
                check(&e.digest, format!("{who} file {}", e.path), &mut report);
            }
        }
    }
    // A stat-cache row vouches that its files' objects were stored, so a copying snapshot
    // does not look for them: once objects are found missing or corrupt, no row does, and
    // the next snapshots look again and store what is gone.
    if !report.corrupt.is_empty() || !report.broken_references.is_empty() {
        store.meta.datasets().forget_stored()?;
    }
    report.clean = report.corrupt.is_empty()
        && report.stray.is_empty()
        && report.broken_references.is_empty()
        && report.bad_runs.is_empty()
        && report.registry.is_empty()
        && report.tampered.is_empty();
    store.meta.verdicts().record_fsck(report.clean, &report.problems())?;
    Ok(report)
}

/// Drops stat-cache rows that disagree with the manifest they name (or name none): a cache
/// row is trusted for files whose stat matches, and a chunk's digest for the manifest chunk
/// its files make, so a wrong hash in either would be recorded as the tree's content.
/// Dropping costs the next snapshot of that root one re-hash.
fn check_tree_cache(store: &Store) -> Result<Vec<String>> {
    let mut dropped = Vec::new();
    for root in store.meta.datasets().tree_cache_roots()? {
        let cache = store.meta.datasets().tree_cache(&root)?;
        let agrees = cache.manifest.as_ref().and_then(|m| store.objects.manifest(m).ok()).is_some_and(|manifest| {
            let mut want: Vec<([u8; 32], u64)> = manifest.entries.iter().map(|e| (e.digest.raw(), e.size)).collect();
            let mut have: Vec<([u8; 32], u64)> = cache.files().map(|(_, f)| (f.blake3, f.stat.size)).collect();
            want.sort();
            have.sort();
            want == have && cache.chunks().iter().all(|c| chunk_agrees(store, c))
        });
        if !agrees {
            store.meta.datasets().drop_tree_cache(&root)?;
            dropped.push(format!("tree_cache: the stat cache of {root} did not match its manifest; dropped (the next snapshot re-hashes it)"));
        }
    }
    Ok(dropped)
}

/// A cache chunk that names a manifest chunk holds exactly that chunk's files.
fn chunk_agrees(store: &Store, c: &crate::datasets::CacheChunk) -> bool {
    let Some(d) = &c.digest else { return true };
    let Ok(bytes) = store.objects.read(d) else { return false };
    let said = repro_core::snapshot::ChunkRef {
        first: c.first.clone(),
        files: c.len() as u64,
        bytes: c.files().map(|f| f.stat.size).sum(),
        digest: d.clone(),
    };
    repro_core::snapshot::parse_chunk(&bytes, &said).is_ok_and(|entries| {
        entries.iter().zip(c.files()).all(|(e, f)| {
            e.path == f.rel && e.size == f.stat.size && e.mode == f.stat.mode && e.digest.raw() == f.blake3
        })
    })
}

/// Removes temp folders of batches whose writer process is gone.
fn remove_stale_temp(store: &Store) -> usize {
    let Ok(entries) = std::fs::read_dir(store.objects.tmp_dir()) else { return 0 };
    let mut removed = 0;
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let pid: Option<u32> = name.split('-').next().and_then(|p| p.parse().ok());
        let stale = match pid {
            Some(pid) => !crate::process::alive(pid, ""),
            None => true,
        };
        if stale {
            let p = e.path();
            let ok = if p.is_dir() { std::fs::remove_dir_all(&p) } else { std::fs::remove_file(&p) };
            if ok.is_ok() {
                removed += 1;
            }
        }
    }
    removed
}
