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
use repro_core::snapshot::Manifest;
use repro_core::Digest;
use repro_store::meta::StoredRun;
use repro_store::registry::NewEvent;
use repro_store::Store;
use serde::{Deserialize, Serialize};

use crate::{ExecError, Result};

/// Who is acting: `--as`, else git's `user.name <user.email>`, else `$USER@host`
/// (`repro_core::actor` writes the name).
pub fn actor(cwd: &Path, as_who: Option<&str>) -> Result<String> {
    if let Some(who) = as_who {
        return repro_core::actor::claimed(who).map_err(ExecError::Usage);
    }
    let user = std::env::var("USER").ok();
    Ok(repro_core::actor::local(repro_capture::git::identity(cwd), user.as_deref(), &repro_store::process::hostname()))
}

/// The run a version pins, refused when its record no longer hashes to the pinned lineage
/// (so nothing is signed or exported on top of an edited record).
/// The version's run, checked against the lineage the version is held to, and that lineage.
pub fn pinned_run(store: &Store, version: &ModelVersion) -> Result<(StoredRun, Digest)> {
    let run = store.meta.get_run(&version.run)?;
    let lineage = still_running(version, &run)?;
    if !version.lineage_holds(run.lineage.as_ref(), &run.record.lineage()) {
        return Err(ExecError::Usage(format!(
            "run {} no longer matches the lineage {} pins; run `repro model verify {}` and `repro fsck`",
            version.run.short(),
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
            version.run.short()
        ))
    })
}

/// Parses `NAME@V` / `NAME@STAGE` and finds the version, or says what exists.
pub fn lookup(registry: &Registry, text: &str) -> Result<ModelVersion> {
    let r = parse_ref(text)?;
    registry.lookup(&r).cloned().map_err(|e| repro_store::StoreError::UnknownModel(e.to_string()).into())
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
            let manifest =
                store.objects.read(snapshot).ok().and_then(|b| Manifest::from_bytes(&b).ok()).ok_or_else(|| {
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
    let run = store.meta.get_run(&id)?;
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
    crate::integrity::vouch_for_run(store, &run, &repro_store::fsck::NoProgress)?;
    let artifact = resolve_artifact(store, &run, artifact, cwd)?;
    let event = store.meta.append_registry_event(repro_store::now_ms(), |reg| {
        Ok::<_, ExecError>(NewEvent {
            model: name.to_string(),
            version: reg.next_version(name),
            actor: actor.to_string(),
            change: Change::Register {
                run: id.clone(),
                lineage: Some(lineage.clone()),
                artifact: artifact.clone(),
                model_id: None,
            },
        })
    })?;
    found(store, name, event.version)
}

fn found(store: &Store, name: &str, version: u32) -> Result<ModelVersion> {
    let reg = store.meta.registry()?;
    lookup(&reg, &format!("{name}@{version}"))
}

/// What a promotion did.
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "lowercase")]
pub enum PromoteOutcome {
    Promoted {
        version: Box<ModelVersion>,
        stage: String,
        from: Option<String>,
        replaced: Option<u32>,
    },
    /// The version already holds the stage; nothing was written.
    Already {
        version: Box<ModelVersion>,
        stage: String,
    },
    Refused {
        reference: String,
        stage: String,
        unmet: Vec<Unmet>,
    },
}

/// The facts a policy is judged on, for one version.
pub struct Facts {
    pub run: StoredRun,
    pub audit: AuditReport,
    pub valid_signatures: usize,
    pub signature_problems: Vec<String>,
    pub parity: Option<std::result::Result<Vec<String>, String>>,
    pub approvals: Vec<repro_core::approval::ApprovalCheck>,
}

pub fn gather_facts(
    store: &Store,
    version: &ModelVersion,
    policy: &StagePolicy,
    progress: &dyn crate::Progress,
) -> Result<Facts> {
    let run = store.meta.get_run(&version.run)?;
    let audit = crate::audit::audit_run(store, &run, false, progress)?;
    let mut valid = 0;
    let mut problems = Vec::new();
    for s in &version.signatures {
        match crate::provenance::check_signature(store, version, s, None) {
            Ok(()) => valid += 1,
            Err(e) => problems.push(format!("key {}: {e}", s.keyid)),
        }
    }
    let parity = policy.parity.as_ref().map(|env| parity_with(store, &run, env));
    let trust = crate::trust::Trust::of(store)?;
    let approvals = crate::approval::check_approvals(store, version, &trust, &[]);
    Ok(Facts { run, audit, valid_signatures: valid, signature_problems: problems, parity, approvals })
}

fn parity_with(store: &Store, run: &StoredRun, env: &str) -> std::result::Result<Vec<String>, String> {
    let (row, spec) = crate::env::get_registered(store, env).map_err(|e| e.to_string())?;
    let against = crate::env::Side::of_spec(format!("{}:{}", row.name, row.version), &spec);
    let subject = crate::env::run_side(run.clone()).map_err(|e| e.to_string())?;
    let report = crate::env::parity(store, &subject, &against, &[]).map_err(|e| e.to_string())?;
    if report.pass {
        return Ok(Vec::new());
    }
    let mut out: Vec<String> = report.differences.iter().filter(|d| d.critical).map(|d| d.describe()).collect();
    if let (Some((a, b)), true) = (&report.python, report.python_critical) {
        out.insert(0, format!("Python {a} → {b}"));
    }
    if out.is_empty() {
        out.push("the parity check failed".into());
    }
    Ok(out)
}

/// `repro model promote NAME@V --to STAGE`.
pub fn promote(
    store: &mut Store,
    reference: &str,
    stage: &str,
    actor: &str,
    progress: &dyn crate::Progress,
) -> Result<PromoteOutcome> {
    let policy = policy(store, stage)?;
    let version = lookup(&store.meta.registry()?, reference)?;
    if version.stage.as_deref() == Some(stage) {
        return Ok(PromoteOutcome::Already { version: Box::new(version), stage: stage.to_string() });
    }
    crate::integrity::vouch_for_version(store, &version, progress)?;
    let facts = gather_facts(store, &version, &policy, progress)?;
    let mut unmet = registry::evaluate(
        &version,
        stage,
        &policy,
        &PromotionFacts {
            record: &facts.run.record,
            audit: &facts.audit,
            valid_signatures: facts.valid_signatures,
            signature_problems: facts.signature_problems.clone(),
            parity: facts.parity.clone(),
            approvals: facts.approvals.clone(),
        },
    );
    if !version.lineage_holds(facts.run.lineage.as_ref(), &facts.run.record.lineage()) {
        unmet.insert(
            0,
            Unmet {
                requirement: "lineage".into(),
                reason: format!(
                    "{} pins lineage {} but run {} now has {} (its record hashes to {})",
                    version.reference(),
                    version
                        .lineage_or(facts.run.lineage.as_ref())
                        .map_or("none (the run has not finished)".into(), |l| l.short()),
                    version.run.short(),
                    facts.run.lineage.as_ref().map_or("none".into(), |l| l.short()),
                    facts.run.record.lineage().short()
                ),
                fix: "run `repro fsck`: the store was changed behind repro's back".into(),
            },
        );
    }
    // Whatever the policy, the artifact must still be the bytes the version pinned.
    for f in &version.artifact.files {
        let intact = store.objects.read(&f.blake3).is_ok_and(|b| repro_core::provenance::hex_sha256(&b) == f.sha256);
        if !intact {
            unmet.insert(
                0,
                Unmet {
                    requirement: "artifact".into(),
                    reason: format!(
                        "artifact file {} ({}) is missing or corrupt in the store",
                        f.path,
                        f.blake3.short()
                    ),
                    fix: "run `repro fsck` and restore the store from a backup".into(),
                },
            );
        }
    }
    if !unmet.is_empty() {
        return Ok(PromoteOutcome::Refused { reference: version.reference(), stage: stage.to_string(), unmet });
    }
    let checked = policy.require.clone();
    let approvers: Vec<String> = if policy.signed_approvals {
        repro_core::approval::counted(&facts.approvals, stage)
    } else {
        version.approvers(stage).iter().map(|a| a.by.clone()).collect()
    };
    let mut from = None;
    let mut replaced = None;
    store.meta.append_registry_event(repro_store::now_ms(), |reg| {
        // The facts were gathered outside the write lock: refuse if the version changed since.
        let now = lookup(reg, &version.reference())?;
        if now.stage != version.stage || now.archived.is_some() || now.approvals.len() < version.approvals.len() {
            return Err(ExecError::Usage(format!(
                "{} changed while it was being checked; run the promotion again",
                version.reference()
            )));
        }
        from = now.stage.clone();
        replaced = reg.models.get(&version.name).and_then(|m| m.in_stage(stage)).map(|v| v.version);
        Ok(NewEvent {
            model: version.name.clone(),
            version: version.version,
            actor: actor.to_string(),
            change: Change::Promote {
                stage: stage.to_string(),
                from: from.clone(),
                replaced,
                checked: checked.clone(),
                approvers: approvers.clone(),
            },
        })
    })?;
    let version = found(store, &version.name, version.version)?;
    Ok(PromoteOutcome::Promoted { version: Box::new(version), stage: stage.to_string(), from, replaced })
}

/// What an approval did.
#[derive(Debug, Serialize, Deserialize)]
pub struct ApproveOutcome {
    pub version: ModelVersion,
    pub stage: String,
    pub by: String,
    /// The key that signed it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keyid: Option<String>,
    /// Whether that key is one of the store's trusted approvers (`[trust] approvers`).
    #[serde(default)]
    pub trusted: bool,
    /// The approver had approved this version for this stage before: counted once.
    pub repeated: bool,
    /// The approvals of the stage that count now.
    pub approvers: usize,
    pub needed: u32,
    /// The stage counts only signed approvals by trusted keys.
    #[serde(default)]
    pub signed_only: bool,
}

/// `repro model archive NAME@V --reason TEXT`.
pub fn archive(store: &mut Store, reference: &str, reason: &str, actor: &str) -> Result<ModelVersion> {
    let reason = reason.trim();
    if reason.is_empty() || reason.chars().any(char::is_control) {
        return Err(ExecError::Usage("--reason must say why, on one line".into()));
    }
    let mut target = None;
    store.meta.append_registry_event(repro_store::now_ms(), |reg| {
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
