//! External model versions: registered from a source repro does not hold (an `s3://…`
//! bucket, a plain path, `runs:/` of a run this store never saw), so teams whose artifacts
//! live elsewhere can migrate. Their source is recorded as given and nothing is vouched for:
//! there is no run and no lineage, and until `repro model adopt` fetches and hashes the
//! files there are no bytes either. Every check that needs evidence asks [`ModelVersion::run_id`]
//! or [`ModelVersion::files`], which say so plainly instead of pretending.

use super::*;

/// Where an external version came from.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct External {
    /// The source URI as the client gave it.
    pub source: String,
    /// The run id the client named, unchecked (even a run of this store is not taken to have
    /// made the files).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub claimed_run: Option<String>,
    /// Where the adopted bytes were read from, once adopted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub adopted_from: Option<String>,
}

pub(super) fn register(
    e: &Event,
    source: String,
    run_id: Option<String>,
    artifact: Option<Artifact>,
    model_id: Option<String>,
    entry: impl Fn(String) -> HistoryEntry,
) -> ModelVersion {
    let held = if artifact.is_some() { "its files held" } else { "its files not held" };
    let detail = format!("external source {source} ({held}, no run of this store)");
    let mut v = ModelVersion::fresh(e, None, None, artifact, vec![entry(detail)]);
    v.model_id = model_id;
    v.external = Some(External { source, claimed_run: run_id, adopted_from: None });
    v
}

pub(super) fn adopt(
    v: &mut ModelVersion,
    artifact: Artifact,
    from: String,
    e: &Event,
    entry: impl Fn(String) -> HistoryEntry,
) -> Result<(), String> {
    let Some(external) = v.external.as_mut() else {
        return Err("only an external version can be adopted".into());
    };
    if v.artifact.is_some() {
        return Err("the version's files are already pinned".into());
    }
    v.history.push(entry(format!("adopted: {} file(s) from {from}", artifact.files.len())));
    external.adopted_from = Some(from);
    v.artifact = Some(artifact);
    v.updated_at_ms = v.updated_at_ms.max(e.at_ms);
    Ok(())
}

impl ModelVersion {
    /// The run that made the version, or why repro cannot name one.
    pub fn run_id(&self) -> Result<&RunId, String> {
        match (&self.run, &self.external) {
            (Some(run), _) => Ok(run),
            (None, Some(x)) => Err(format!(
                "{} is an external version (source {}): repro recorded no run as making it, so there is no lineage to check",
                self.reference(),
                x.source
            )),
            (None, None) => Err(format!("{} names no run", self.reference())),
        }
    }

    /// The files the version pins, or why there are none yet.
    pub fn files(&self) -> Result<&Artifact, String> {
        match (&self.artifact, &self.external) {
            (Some(a), _) => Ok(a),
            (None, Some(x)) => Err(format!(
                "{r} is an external version: repro does not hold its files (source {s}); bring them in with `repro model adopt {r}`",
                r = self.reference(),
                s = x.source
            )),
            (None, None) => Err(format!("{} pins no files", self.reference())),
        }
    }

    /// Both, for the checks that need the run and the bytes it made.
    pub fn evidence(&self) -> Result<(&RunId, &Artifact), String> {
        Ok((self.run_id()?, self.files()?))
    }

    /// The source as MLflow reports it: the external URI, or the pinned artifact's source.
    pub fn source_uri(&self) -> Option<&str> {
        match (&self.external, &self.artifact) {
            (Some(x), _) => Some(x.source.as_str()),
            (None, Some(a)) => Some(a.output.as_str()),
            (None, None) => None,
        }
    }

    /// The run id MLflow reports: this store's run, or the one an external version's client named.
    pub fn run_text(&self) -> Option<&str> {
        match (&self.run, &self.external) {
            (Some(run), _) => Some(run.as_str()),
            (None, Some(x)) => x.claimed_run.as_deref(),
            (None, None) => None,
        }
    }
}

/// Every reason an external version may not enter `stage`: each requirement of the policy
/// that needs evidence is unmet, because there is no run to judge (adopting the files pins
/// the bytes, not the training behind them). A policy that requires nothing lets it in, as
/// MLflow's stages do.
pub fn evaluate_external(version: &ModelVersion, stage: &str, policy: &StagePolicy) -> Vec<Unmet> {
    let r = version.reference();
    let source = version.external.as_ref().map_or("?", |x| x.source.as_str());
    let why = |what: &str| {
        let bytes = if version.artifact.is_some() {
            "its files are adopted, but no run of this store made them"
        } else {
            "repro holds neither its files nor the run that made them"
        };
        format!("{r} is an external version (source {source}): {bytes}, so {what} cannot be shown")
    };
    let fix = "register a version from a run repro recorded (`repro model register`)".to_string();
    let mut unmet = Vec::new();
    if let Some(a) = &version.archived {
        unmet.push(Unmet {
            requirement: "not_archived".into(),
            reason: format!("{r} was archived: {}", a.reason),
            fix: "register a new version".into(),
        });
    }
    if let Some(from) = &policy.from {
        if version.stage.as_deref() != Some(from.as_str()) {
            unmet.push(Unmet {
                requirement: "from".into(),
                reason: format!(
                    "{stage} takes versions from {from}; {r} is {}",
                    version.stage.as_deref().map_or("in no stage".to_string(), |s| format!("in {s}"))
                ),
                fix: format!("repro model promote {r} --to {from}"),
            });
        }
    }
    for req in &policy.require {
        unmet.push(Unmet { requirement: req.clone(), reason: why(req), fix: fix.clone() });
    }
    if let Some(env) = &policy.parity {
        unmet.push(Unmet {
            requirement: "parity".into(),
            reason: why(&format!("parity with '{env}'")),
            fix: fix.clone(),
        });
    }
    if policy.approvals > 0 {
        unmet.push(Unmet {
            requirement: "approvals".into(),
            reason: why("an approval of its lineage"),
            fix: fix.clone(),
        });
    }
    if policy.signed_replay {
        unmet.push(Unmet { requirement: "signed_replay".into(), reason: why("a signed replay"), fix });
    }
    unmet
}
