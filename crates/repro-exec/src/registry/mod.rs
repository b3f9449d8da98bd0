//! `repro model …`: registering a run's artifact as a model version, moving versions
//! through stages under the store's policies, approvals and archiving.
//!
//! Every change is one event appended to the registry's log (see `repro_core::registry`);
//! nothing here edits or deletes a version.

use std::path::Path;

use repro_core::audit::AuditReport;
use repro_core::record::RunStatus;
use repro_core::registry::{
    self, Artifact, ArtifactFile, Change, ModelRef, ModelVersion, PromotionFacts, Registry, StagePolicy, Unmet,
};
use repro_core::Digest;
use repro_store::meta::StoredRun;
use repro_store::registry::NewEvent;
use repro_store::Store;
use serde::{Deserialize, Serialize};

use crate::{ExecError, Result};

mod adopt;
pub mod approval;
pub mod facts;
mod promote;
pub mod provenance;

pub use adopt::{adopt, AdoptOutcome};
pub use approval::ApproveOutcome;
pub use promote::{
    facts_for_readiness, gather_facts, promote, readiness, Facts, PromoteOutcome, Readiness, Requirement,
};

/// Who is acting: `--as`, else git's `user.name <user.email>`, else `$USER@host`
/// (`repro_core::actor` writes the name).
pub fn actor(cwd: &Path, as_who: Option<&str>) -> Result<String> {
    if let Some(who) = as_who {
        return repro_core::actor::claimed(who).map_err(ExecError::Usage);
    }
    let user = std::env::var("USER").ok();
    Ok(repro_core::actor::local(repro_capture::git::identity(cwd), user.as_deref(), &repro_util::host::hostname()))
}

/// The run and the files a version pins, or (for an external version) why it has none to
/// show: everything that signs, exports or judges evidence starts here.
pub fn evidence(version: &ModelVersion) -> Result<(&repro_core::RunId, &Artifact)> {
    version.evidence().map_err(ExecError::Usage)
}

/// The files a version pins, or why repro does not hold them yet.
pub fn files(version: &ModelVersion) -> Result<&Artifact> {
    version.files().map_err(ExecError::Usage)
}

/// The run a version pins, refused when its record no longer hashes to the pinned lineage
/// (so nothing is signed or exported on top of an edited record).
/// The version's run, checked against the lineage the version is held to, and that lineage.
pub fn pinned_run(store: &Store, version: &ModelVersion) -> Result<(StoredRun, Digest)> {
    let (id, _) = evidence(version)?;
    let run = store.meta.runs().get(id)?;
    let lineage = still_running(version, &run)?;
    if !version.lineage_holds(run.lineage.as_ref(), &run.record.lineage()) {
        return Err(ExecError::Usage(format!(
            "run {} no longer matches the lineage {} pins; run `repro model verify {}` and `repro fsck`",
            id.short(),
            version.reference(),
            version.reference()
        )));
    }
    Ok((run, lineage))
}

/// The lineage a version is held to, or an error when its run has not finished yet (a
/// version registered through the MLflow API during the run).
pub fn still_running(version: &ModelVersion, run: &StoredRun) -> Result<Digest> {
    version.lineage_or(run.lineage.as_ref()).cloned().ok_or_else(|| {
        ExecError::Usage(format!(
            "{} was registered while run {} was running, and the run has not finished: its lineage is fixed when it does",
            version.reference(),
            run.record.id.short()
        ))
    })
}

/// Parses `NAME@V` / `NAME@STAGE` and finds the version, or says what exists.
pub fn lookup(registry: &Registry, text: &str) -> Result<ModelVersion> {
    let r = parse_ref(text)?;
    let found = registry.lookup(&r).cloned().map_err(|e| repro_store::StoreError::UnknownModel(e.to_string()))?;
    if found.name != r.name {
        // The old name still works, so a script written before the rename keeps running; the
        // note says what to write from now on.
        eprintln!(
            "note: model '{}' was renamed to '{}'; {} names this version now",
            r.name,
            found.name,
            found.reference()
        );
    }
    Ok(found)
}

/// `repro model rename OLD NEW`: a `rename` event. The versions, their history and their
/// signatures go with the model; the old name keeps resolving until a model takes it again.
pub fn rename(store: &mut Store, old: &str, new: &str, actor: &str) -> Result<repro_core::registry::Model> {
    if !repro_core::registry::valid_model_name(new) {
        return Err(ExecError::Usage(format!(
            "'{new}' is not a model name: use letters, digits, '-', '_' and '.', starting with a letter or digit (at most 100 characters)"
        )));
    }
    store.meta.models().append(repro_util::clock::now_ms(), |reg| {
        reg.model(old).map_err(|e| repro_store::StoreError::UnknownModel(e.to_string()))?;
        if let Some(taken) = reg.models.get(new) {
            return Err(ExecError::Usage(match &taken.deleted {
                Some(_) => {
                    format!("a model named '{new}' was deleted and its history keeps the name; pick another name")
                }
                None => format!("a model named '{new}' exists; pick another name"),
            }));
        }
        Ok(NewEvent {
            model: old.to_string(),
            version: 0,
            actor: actor.to_string(),
            change: Change::Rename { to: new.to_string() },
        })
    })?;
    let reg = store.meta.models().registry()?;
    reg.model(new).cloned().map_err(|e| repro_store::StoreError::UnknownModel(e.to_string()).into())
}

pub fn parse_ref(text: &str) -> Result<ModelRef> {
    ModelRef::parse(text).ok_or_else(|| {
        ExecError::Usage(format!(
            "'{text}' is not a model reference: write NAME@VERSION (pricing@3) or NAME@STAGE (pricing@prod)"
        ))
    })
}

/// The stage's policy, or an error listing the stages there are.
pub fn policy(store: &Store, stage: &str) -> Result<StagePolicy> {
    let policies = store.config.stage_policies();
    policies.get(stage).cloned().ok_or_else(|| {
        ExecError::Usage(format!(
            "there is no stage '{stage}' (stages: {}); stages are set in [stages.NAME] of .repro/repro.toml",
            policies.keys().cloned().collect::<Vec<_>>().join(", ")
        ))
    })
}

fn normalize(path: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for p in path.split('/') {
        match p {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            p => parts.push(p),
        }
    }
    parts.join("/")
}

/// Finds which of the run's outputs `given` names: the output itself, or a file or folder
/// inside an output folder. `given` may be relative to the current folder, to the run's
/// working folder, or to the repository.
fn resolve_artifact(store: &Store, run: &StoredRun, given: &Path, cwd: &Path) -> Result<Artifact> {
    let record = &run.record;
    let mut candidates = Vec::new();
    let abs = if given.is_absolute() { given.to_path_buf() } else { cwd.join(given) };
    if let Some(root) = &record.code.repo_root {
        if let Ok(rel) = abs.strip_prefix(root) {
            candidates.push(normalize(&rel.to_string_lossy()));
        }
    }
    let text = given.to_string_lossy().into_owned();
    if !given.is_absolute() {
        candidates.push(normalize(&format!("{}/{text}", record.script.workdir)));
        candidates.push(normalize(&text));
    } else {
        candidates.push(text.clone());
    }
    for want in &candidates {
        for o in &record.outputs {
            let Some(snapshot) = &o.snapshot else { continue };
            let out = normalize(&o.path);
            let inside = if *want == out {
                Some(String::new())
            } else {
                want.strip_prefix(&format!("{out}/")).map(str::to_string)
            };
            let Some(inside) = inside else { continue };
            let manifest = store.objects.manifest(snapshot).ok().ok_or_else(|| {
                ExecError::Usage(format!("the snapshot of output {} is unreadable; run `repro fsck`", o.path))
            })?;
            let entries: Vec<_> = manifest
                .entries
                .iter()
                .filter(|e| match manifest.kind {
                    repro_core::snapshot::SnapshotKind::File => inside.is_empty(),
                    repro_core::snapshot::SnapshotKind::Dir => {
                        inside.is_empty() || e.path == inside || e.path.starts_with(&format!("{inside}/"))
                    }
                })
                .collect();
            if entries.is_empty() {
                continue;
            }
            let mut files = Vec::new();
            for e in entries {
                let bytes = store.objects.read(&e.digest)?;
                let path = match manifest.kind {
                    repro_core::snapshot::SnapshotKind::File => out.clone(),
                    repro_core::snapshot::SnapshotKind::Dir => format!("{out}/{}", e.path),
                };
                files.push(ArtifactFile {
                    path,
                    size: e.size,
                    blake3: e.digest.clone(),
                    sha256: repro_core::provenance::hex_sha256(&bytes),
                });
            }
            return Ok(Artifact { path: want.clone(), output: o.path.clone(), snapshot: snapshot.clone(), files });
        }
    }
    let outputs: Vec<&str> = record.outputs.iter().filter(|o| o.snapshot.is_some()).map(|o| o.path.as_str()).collect();
    Err(ExecError::Usage(if outputs.is_empty() {
        format!(
            "run {} recorded no outputs, so '{text}' cannot be its artifact; run again with --output {text}",
            record.id.short()
        )
    } else {
        format!(
            "'{text}' is not an output of run {} (outputs: {}); the artifact must be one of them or a file inside one",
            record.id.short(),
            outputs.join(", ")
        )
    }))
}

/// `repro model register RUN --name NAME --artifact PATH`.
pub fn register(
    store: &mut Store,
    run_spec: &str,
    name: &str,
    artifact: &Path,
    cwd: &Path,
    actor: &str,
) -> Result<ModelVersion> {
    if !registry::valid_model_name(name) {
        return Err(ExecError::Usage(format!(
            "invalid model name '{name}': use letters, digits, '-', '_', '.' (starting with a letter or digit)"
        )));
    }
    let id = store.meta.resolve_run(run_spec)?;
    let run = store.meta.runs().get(&id)?;
    if run.record.status != RunStatus::Finished {
        return Err(ExecError::Usage(format!(
            "run {} {} (exit {}); only a run that finished can be registered",
            id.short(),
            run.record.status.as_str(),
            run.record.exit_code.map_or("none".into(), |c| c.to_string())
        )));
    }
    let lineage = run
        .lineage
        .clone()
        .ok_or_else(|| ExecError::Usage(format!("run {} has no lineage digest; run `repro fsck`", id.short())))?;
    crate::integrity::vouch_for_run(store, &run, &repro_core::progress::NoProgress)?;
    let artifact = resolve_artifact(store, &run, artifact, cwd)?;
    let register = Change::Register { run: id.clone(), lineage: Some(lineage), artifact, model_id: None };
    let event = store.meta.models().append(repro_util::clock::now_ms(), |reg| {
        let (version, change) = reg
            .registration(name, register.clone(), Vec::new())
            .and_then(|changes| changes.into_iter().next())
            .ok_or_else(|| ExecError::Usage(format!("invalid model name '{name}'")))?;
        Ok::<_, ExecError>(NewEvent { model: name.to_string(), version, actor: actor.to_string(), change })
    })?;
    found(store, name, event.version)
}

fn found(store: &Store, name: &str, version: u32) -> Result<ModelVersion> {
    let reg = store.meta.models().registry()?;
    lookup(&reg, &format!("{name}@{version}"))
}

/// `repro model archive NAME@V --reason TEXT`.
pub fn archive(store: &mut Store, reference: &str, reason: &str, actor: &str) -> Result<ModelVersion> {
    let reason = reason.trim();
    if reason.is_empty() || reason.chars().any(char::is_control) {
        return Err(ExecError::Usage("--reason must say why, on one line".into()));
    }
    let mut target = None;
    store.meta.models().append(repro_util::clock::now_ms(), |reg| {
        let v = lookup(reg, reference)?;
        if let Some(a) = &v.archived {
            return Err(ExecError::Usage(format!("{} is already archived ({})", v.reference(), a.reason)));
        }
        target = Some((v.name.clone(), v.version));
        Ok(NewEvent {
            model: v.name.clone(),
            version: v.version,
            actor: actor.to_string(),
            change: Change::Archive { reason: reason.to_string() },
        })
    })?;
    let (name, number) = target.ok_or_else(|| ExecError::Usage("nothing was archived".into()))?;
    found(store, &name, number)
}

#[cfg(test)]
mod tests {
    use super::normalize;

    #[test]
    fn paths_normalize_lexically() {
        assert_eq!(normalize("./a/../b//c/"), "b/c");
        assert_eq!(normalize("examples/x/./model.pkl"), "examples/x/model.pkl");
        assert_eq!(normalize("../../x"), "x");
    }
}
