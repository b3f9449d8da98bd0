//! `repro model promote`: gathering the facts a stage policy is judged on, and moving the stage.

use super::*;

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
    pub replay_verdicts: Vec<repro_core::provenance::VerdictCheck>,
}

pub fn gather_facts(
    store: &Store,
    version: &ModelVersion,
    policy: &StagePolicy,
    progress: &dyn crate::Progress,
) -> Result<Facts> {
    let run = store.meta.runs().get(super::evidence(version)?.0)?;
    let audit = crate::audit::audit_run(store, &run, false, progress)?;
    let mut valid = 0;
    let mut problems = Vec::new();
    for s in &version.signatures {
        match super::provenance::check_signature(store, version, s, None) {
            Ok(()) => valid += 1,
            Err(e) => problems.push(format!("key {}: {e}", s.keyid)),
        }
    }
    let parity = policy.parity.as_ref().map(|env| parity_with(store, &run, env));
    let trust = crate::trust::Trust::of(store)?;
    let approvals = super::approval::check_approvals(store, version, &trust, &[]);
    // Reading every replay report and checking signatures is work only a policy that asks
    // for signed verdicts needs.
    let replay_verdicts = if policy.signed_replay {
        crate::replay::verdict::check_verdicts(store, version, &trust, &[])?
    } else {
        Vec::new()
    };
    Ok(Facts { run, audit, valid_signatures: valid, signature_problems: problems, parity, approvals, replay_verdicts })
}

fn parity_with(store: &Store, run: &StoredRun, env: &str) -> std::result::Result<Vec<String>, String> {
    let (row, spec) = crate::env::get_registered(store, env).map_err(|e| e.to_string())?;
    let against = crate::env::Side::of_spec(format!("{}:{}", row.name, row.version), &spec);
    let subject = crate::env::run_side(run.clone()).map_err(|e| e.to_string())?;
    let report = crate::parity::parity(store, &subject, &against, &[]).map_err(|e| e.to_string())?;
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
    let version = lookup(&store.meta.models().registry()?, reference)?;
    if version.stage.as_deref() == Some(stage) {
        return Ok(PromoteOutcome::Already { version: Box::new(version), stage: stage.to_string() });
    }
    crate::integrity::vouch_for_version(store, &version, progress)?;
    if version.external.is_some() {
        let unmet = registry::evaluate_external(&version, stage, &policy);
        return match unmet.is_empty() {
            true => move_stage(store, version, stage, actor, Vec::new(), Vec::new()),
            false => refuse(store, &version, stage, actor, unmet),
        };
    }
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
            replay_verdicts: facts.replay_verdicts.clone(),
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
                    facts.run.record.id.short(),
                    facts.run.lineage.as_ref().map_or("none".into(), |l| l.short()),
                    facts.run.record.lineage().short()
                ),
                fix: "run `repro fsck`: the store was changed behind repro's back".into(),
            },
        );
    }
    // Whatever the policy, the artifact must still be the bytes the version pinned.
    for f in version.artifact.iter().flat_map(|a| &a.files) {
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
        return refuse(store, &version, stage, actor, unmet);
    }
    let mut checked = policy.require.clone();
    if policy.signed_replay {
        checked.push("signed_replay".into());
    }
    let approvers: Vec<String> = if policy.signed_approvals {
        repro_core::approval::counted(&facts.approvals, stage)
    } else {
        version.approvers(stage).iter().map(|a| a.by.clone()).collect()
    };
    move_stage(store, version, stage, actor, checked, approvers)
}

/// Records the refusal in the version's history (a `refuse` event: who tried, for which
/// stage, every unmet requirement), so the registry shows what was stopped and why.
fn refuse(
    store: &mut Store,
    version: &ModelVersion,
    stage: &str,
    actor: &str,
    unmet: Vec<Unmet>,
) -> Result<PromoteOutcome> {
    let reasons: Vec<String> = unmet.iter().map(|u| format!("{}: {}", u.requirement, u.reason)).collect();
    store.meta.models().append(repro_util::clock::now_ms(), |_| {
        Ok::<_, ExecError>(NewEvent {
            model: version.name.clone(),
            version: version.version,
            actor: actor.to_string(),
            change: Change::Refuse { stage: stage.to_string(), unmet: reasons.clone() },
        })
    })?;
    Ok(PromoteOutcome::Refused { reference: version.reference(), stage: stage.to_string(), unmet })
}

/// Writes the promotion, judged outside the write lock: refused if the version changed since.
fn move_stage(
    store: &mut Store,
    version: ModelVersion,
    stage: &str,
    actor: &str,
    checked: Vec<String>,
    approvers: Vec<String>,
) -> Result<PromoteOutcome> {
    let mut from = None;
    let mut replaced = None;
    store.meta.models().append(repro_util::clock::now_ms(), |reg| {
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

/// One requirement of a stage's policy, judged for a version as it stands.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Requirement {
    pub name: String,
    pub met: bool,
    /// Why not (the refusal's words), or what was counted ("approvals 1/2").
    pub detail: String,
}

/// Whether a version could enter a stage now, requirement by requirement: what `promote`
/// would decide, without promoting.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Readiness {
    pub stage: String,
    /// The version holds this stage already.
    pub held: bool,
    pub ready: bool,
    pub requirements: Vec<Requirement>,
}

/// The facts every stage's policy is judged on, gathered once (the audit re-hashes the
/// run's objects): `None` for an external version, which has no run.
pub fn facts_for_readiness(
    store: &Store,
    version: &ModelVersion,
    progress: &dyn crate::Progress,
) -> Result<Option<Facts>> {
    if version.external.is_some() {
        return Ok(None);
    }
    let policies = store.config.stage_policies();
    let wide = StagePolicy { signed_replay: policies.values().any(|p| p.signed_replay), ..StagePolicy::default() };
    Ok(Some(gather_facts(store, version, &wide, progress)?))
}

/// Every configured stage's readiness for `version`, judged on `facts`
/// (`facts_for_readiness`), parity per stage that names an environment.
pub fn readiness(store: &Store, version: &ModelVersion, facts: Option<&Facts>) -> Vec<Readiness> {
    let policies = store.config.stage_policies();
    let mut out = Vec::new();
    for (stage, policy) in &policies {
        let unmet = match facts {
            None => registry::evaluate_external(version, stage, policy),
            Some(f) => registry::evaluate(
                version,
                stage,
                policy,
                &PromotionFacts {
                    record: &f.run.record,
                    audit: &f.audit,
                    valid_signatures: f.valid_signatures,
                    signature_problems: f.signature_problems.clone(),
                    parity: policy.parity.as_ref().map(|env| parity_with(store, &f.run, env)),
                    approvals: f.approvals.clone(),
                    replay_verdicts: f.replay_verdicts.clone(),
                },
            ),
        };
        let mut names: Vec<String> = Vec::new();
        if policy.from.is_some() {
            names.push("from".into());
        }
        names.extend(policy.require.iter().cloned());
        if policy.approvals > 0 {
            names.push("approvals".into());
        }
        if policy.signed_replay {
            names.push("signed_replay".into());
        }
        if policy.parity.is_some() {
            names.push("parity".into());
        }
        // Requirements the evaluation adds on its own (archived, a missing artifact).
        for u in &unmet {
            if !names.contains(&u.requirement) {
                names.insert(0, u.requirement.clone());
            }
        }
        let counted = match (facts, policy.signed_approvals) {
            (Some(f), true) => repro_core::registry::approval::counted(&f.approvals, stage).len(),
            _ => version.approvers(stage).len(),
        };
        let requirements = names
            .into_iter()
            .map(|name| {
                let problems: Vec<&str> =
                    unmet.iter().filter(|u| u.requirement == name).map(|u| u.reason.as_str()).collect();
                let detail = match (name.as_str(), problems.is_empty()) {
                    ("approvals", _) => format!("{counted}/{}", policy.approvals),
                    (_, false) => problems.join("; "),
                    (_, true) => String::new(),
                };
                Requirement { met: problems.is_empty(), name, detail }
            })
            .collect();
        out.push(Readiness {
            stage: stage.clone(),
            held: version.stage.as_deref() == Some(stage.as_str()),
            ready: unmet.is_empty(),
            requirements,
        });
    }
    out
}
