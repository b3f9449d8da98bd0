//! Stage policies: what a promotion requires, and which requirements a version does not meet.

use super::*;

// ---- stage policy ---------------------------------------------------------------------

/// `[stages.NAME]` in repro.toml.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StagePolicy {
    /// The stage a version must hold before it may enter this one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
    /// Requirement names: see [`REQUIREMENTS`] and the audit items.
    #[serde(default)]
    pub require: Vec<String>,
    /// A registered environment (`NAME` or `NAME:V`) the artifact's run must have parity with.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parity: Option<String>,
    /// Distinct approvers needed for this stage.
    #[serde(default)]
    pub approvals: u32,
    /// Only approvals signed by a key in `[trust] approvers` count (one per person); the
    /// unsigned `--as` approvals of older stores stay in the history but do not count.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub signed_approvals: bool,
    /// The run must have a replay whose verdict is signed by a key in `[trust] signers`, and
    /// the newest such verdict must say it reproduced. `replay_verified` alone (the audit's
    /// latest replay, signed or not) keeps its meaning for policies that do not ask for this.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub signed_replay: bool,
}

/// The policies of a store that configures none.
pub fn default_policies() -> BTreeMap<String, StagePolicy> {
    let base: Vec<String> =
        ["git_clean", "env_pinned", "random_seed", "dataset_snapshot"].iter().map(|s| s.to_string()).collect();
    let mut prod = base.clone();
    prod.extend(["replay_verified".to_string(), "signed".to_string()]);
    BTreeMap::from([
        ("dev".to_string(), StagePolicy::default()),
        ("staging".to_string(), StagePolicy { require: base, ..Default::default() }),
        (
            "prod".to_string(),
            StagePolicy {
                from: Some("staging".into()),
                require: prod,
                parity: None,
                approvals: 2,
                signed_approvals: true,
                signed_replay: false,
            },
        ),
    ])
}

/// Whether a requirement name is one repro knows.
pub fn known_requirement(name: &str) -> bool {
    REQUIREMENTS.iter().any(|(n, _)| *n == name) || crate::audit::all_items().any(|i| i == name)
}

/// Checks policies for unknown names and stages that refer to stages that do not exist.
pub fn validate_policies(policies: &BTreeMap<String, StagePolicy>) -> Result<(), String> {
    for (stage, p) in policies {
        if !valid_stage_name(stage) {
            return Err(format!(
                "stage name '{stage}' is not valid: use letters, digits, '-', '_', starting with a letter"
            ));
        }
        if let Some(from) = &p.from {
            if !policies.contains_key(from) {
                return Err(format!("[stages.{stage}] from = \"{from}\": there is no stage '{from}'"));
            }
        }
        for r in &p.require {
            if !known_requirement(r) {
                let mut known: Vec<&str> = REQUIREMENTS.iter().map(|(n, _)| *n).collect();
                for i in crate::audit::all_items() {
                    if !known.contains(&i) {
                        known.push(i);
                    }
                }
                return Err(format!(
                    "[stages.{stage}] require: unknown requirement '{r}' (known: {})",
                    known.join(", ")
                ));
            }
        }
    }
    Ok(())
}

/// An unmet requirement of a promotion.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Unmet {
    pub requirement: String,
    pub reason: String,
    pub fix: String,
}

/// What a promotion is judged on, gathered by the caller (audit, signature checks, parity).
pub struct PromotionFacts<'a> {
    pub record: &'a RunRecord,
    pub audit: &'a AuditReport,
    /// Signatures of the version that verify, and why the others do not.
    pub valid_signatures: usize,
    pub signature_problems: Vec<String>,
    /// The parity check's differences, when the policy asks for parity (empty = at parity).
    pub parity: Option<Result<Vec<String>, String>>,
    /// Each approval's signature, checked against the version and the trusted keys.
    pub approvals: Vec<super::approval::ApprovalCheck>,
    /// Each replay of the version's run, its signed verdict checked against the version and
    /// the trusted signers (gathered only when the policy asks for `signed_replay`).
    pub replay_verdicts: Vec<crate::provenance::VerdictCheck>,
}

/// Every reason `version` may not enter `stage` under `policy`; empty means it may.
pub fn evaluate(version: &ModelVersion, stage: &str, policy: &StagePolicy, facts: &PromotionFacts) -> Vec<Unmet> {
    let r = version.reference();
    let mut unmet = Vec::new();
    let mut push = |requirement: &str, reason: String, fix: String| {
        unmet.push(Unmet { requirement: requirement.to_string(), reason, fix })
    };
    if let Some(a) = &version.archived {
        push("not_archived", format!("{r} was archived: {}", a.reason), "register a new version".into());
    }
    if let Some(from) = &policy.from {
        if version.stage.as_deref() != Some(from.as_str()) {
            push(
                "from",
                format!(
                    "{stage} takes versions from {from}; {r} is {}",
                    version.stage.as_deref().map_or("in no stage".to_string(), |s| format!("in {s}"))
                ),
                format!("repro model promote {r} --to {from}"),
            );
        }
    }
    let item = |name: &str| facts.audit.items.iter().find(|i| i.name == name);
    for req in &policy.require {
        match req.as_str() {
            "git_clean" => {
                let code = &facts.record.code;
                if code.commit.is_none() {
                    push(req, "the run was not made from a git commit".into(), "run it inside a git repository".into());
                } else if code.dirty || code.diff.is_some() || !code.untracked.is_empty() {
                    let mut what: Vec<String> = code.diff_files.iter().map(|f| format!("{f} (modified)")).collect();
                    what.extend(code.untracked.iter().map(|f| format!("{} (untracked)", f.path)));
                    push(
                        req,
                        format!("the run's tree had uncommitted changes: {}", short_list(&what, 4)),
                        "commit the changes and run again".into(),
                    );
                }
            }
            "env_pinned" => audit_requirement(req, item("environment_file"), &mut push),
            "signed" => {
                if facts.valid_signatures == 0 {
                    let reason = if version.signatures.is_empty() {
                        format!("{r} is not signed")
                    } else {
                        format!("no signature of {r} verifies: {}", facts.signature_problems.join("; "))
                    };
                    push(req, reason, format!("repro model sign {r}"));
                }
            }
            "audit_complete" => {
                if !facts.audit.complete {
                    let gaps: Vec<String> = facts
                        .audit
                        .items
                        .iter()
                        .filter(|i| i.status == ItemStatus::Missing)
                        .map(|i| i.name.clone())
                        .collect();
                    push(
                        req,
                        format!("the audit of run {} is incomplete: {}", facts.record.id.short(), gaps.join(", ")),
                        format!("repro audit {}", facts.record.id.short()),
                    );
                }
            }
            name => audit_requirement(name, item(name), &mut push),
        }
    }
    if let Some(parity) = &facts.parity {
        let against = policy.parity.as_deref().unwrap_or("?");
        match parity {
            Ok(diffs) if diffs.is_empty() => {}
            Ok(diffs) => push(
                "parity",
                format!("the run's environment differs from '{against}': {}", short_list(diffs, 4)),
                format!("repro env parity {r} --against {against}"),
            ),
            Err(e) => push("parity", format!("parity with '{against}' could not be checked: {e}"), String::new()),
        }
    }
    if policy.signed_replay {
        if let Some(reason) = crate::provenance::signed_replay_unmet(&facts.replay_verdicts) {
            push(
                "signed_replay",
                reason,
                format!("repro replay {r} --key FILE, with a key in [trust] signers (repro key add FILE.pub --signer)"),
            );
        }
    }
    if policy.approvals > 0 && policy.signed_approvals {
        let counted = super::approval::counted(&facts.approvals, stage);
        if (counted.len() as u32) < policy.approvals {
            let who = if counted.is_empty() { "none yet".to_string() } else { counted.join(", ") };
            let skipped: Vec<String> =
                facts.approvals.iter().filter(|c| c.stage == stage).filter_map(|c| c.not_counted()).collect();
            let skipped =
                if skipped.is_empty() { String::new() } else { format!("; not counted: {}", skipped.join(", ")) };
            push(
                "approvals",
                format!(
                    "{stage} needs {} approvals signed by distinct trusted approvers, {r} has {} ({who}){skipped}",
                    policy.approvals,
                    counted.len()
                ),
                format!(
                    "repro model approve {r} --stage {stage}, by people whose keys are in [trust] approvers (repro key add FILE --approver)"
                ),
            );
        }
    } else if policy.approvals > 0 {
        let approvers = version.approvers(stage);
        if (approvers.len() as u32) < policy.approvals {
            let who = if approvers.is_empty() {
                "none yet".to_string()
            } else {
                approvers.iter().map(|a| a.by.as_str()).collect::<Vec<_>>().join(", ")
            };
            push(
                "approvals",
                format!("{stage} needs {} distinct approvals, {r} has {} ({who})", policy.approvals, approvers.len()),
                format!("repro model approve {r} --stage {stage}"),
            );
        }
    }
    unmet
}

fn audit_requirement(name: &str, item: Option<&crate::audit::AuditItem>, push: &mut impl FnMut(&str, String, String)) {
    match item {
        Some(i) if i.status == ItemStatus::Ok => {}
        Some(i) => push(name, i.detail.clone(), i.fix.clone().unwrap_or_default()),
        None => push(name, format!("the audit has no item '{name}'"), String::new()),
    }
}

fn short_list(items: &[String], max: usize) -> String {
    let mut s = items.iter().take(max).cloned().collect::<Vec<_>>().join(", ");
    if items.len() > max {
        s.push_str(&format!(" and {} more", items.len() - max));
    }
    s
}
