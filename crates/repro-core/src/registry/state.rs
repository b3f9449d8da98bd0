//! The registry the event log folds into: models, versions, stages, lookups.

use super::*;

// ---- state ----------------------------------------------------------------------------

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Approval {
    pub stage: String,
    pub by: String,
    pub at_ms: i64,
    pub comment: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signature: Option<ApprovalSignature>,
}

/// Where an approval's signature is: the DSSE envelope over its statement and the public
/// key, as objects, and the key id.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApprovalSignature {
    pub keyid: String,
    pub envelope: Digest,
    pub public_key: Digest,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignatureRef {
    pub keyid: String,
    pub envelope: Digest,
    pub public_key: Digest,
    pub by: String,
    pub at_ms: i64,
}

/// A signed statement about a version other than its provenance: a CycloneDX BOM.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AttestationRef {
    pub predicate_type: String,
    pub keyid: String,
    pub envelope: Digest,
    pub public_key: Digest,
    pub by: String,
    pub at_ms: i64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Archived {
    pub reason: String,
    pub by: String,
    pub at_ms: i64,
    /// The stage the version held when it was archived, so that a lookup of that stage can
    /// say where its version went. Folded from the events, never written or read.
    #[serde(skip)]
    pub left_stage: Option<String>,
}

/// Whether the key that signed a bundle counted, as the importing store judged it then.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SignerStatus {
    /// Signed by the key given with `--key`, or by one the store's `[trust]` lists.
    Trusted,
    /// A valid signature by a key nobody vouched for: integrity only, not authority.
    Unknown,
    /// No manifest signature at all.
    Unsigned,
}

impl SignerStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            SignerStatus::Trusted => "trusted",
            SignerStatus::Unknown => "unknown",
            SignerStatus::Unsigned => "unsigned",
        }
    }
}

/// Who signed a bundle's manifest, and whether that key counted when it was imported.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BundleSigner {
    pub status: SignerStatus,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keyid: Option<String>,
    /// The name `[trust]` gives the key, when it gives one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

impl BundleSigner {
    pub fn unsigned() -> BundleSigner {
        BundleSigner { status: SignerStatus::Unsigned, keyid: None, name: None }
    }

    /// One line for people: "trusted key <id> (Ada)", "untrusted key <id>", "unsigned".
    pub fn describe(&self) -> String {
        let key = self.keyid.as_deref().unwrap_or("?");
        match self.status {
            SignerStatus::Trusted => match &self.name {
                Some(n) => format!("trusted key {key} ({n})"),
                None => format!("trusted key {key}"),
            },
            SignerStatus::Unknown => format!("untrusted key {key}"),
            SignerStatus::Unsigned => "no one (unsigned)".to_string(),
        }
    }
}

const SOURCE_MARK: &str = " [in the source store]";

/// One step of a version's history, for `model show`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HistoryEntry {
    pub seq: u64,
    pub kind: String,
    pub by: String,
    pub at_ms: i64,
    pub detail: String,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ModelVersion {
    pub name: String,
    pub version: u32,
    /// The run that made it; `None` for an external version (see [`External`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run: Option<RunId>,
    /// `None` until the run finishes, for a version registered while its run ran.
    pub lineage: Option<Digest>,
    /// The files it pins; `None` for an external version not adopted yet.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifact: Option<Artifact>,
    /// Where an external version's files live, when repro did not make them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub external: Option<External>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub tags: BTreeMap<String, String>,
    /// The model's aliases that point here.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub aliases: Vec<String>,
    pub updated_at_ms: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deleted: Option<Archived>,
    pub registered_by: String,
    pub registered_at_ms: i64,
    /// The stage the version holds now.
    pub stage: Option<String>,
    pub archived: Option<Archived>,
    pub approvals: Vec<Approval>,
    pub signatures: Vec<SignatureRef>,
    /// Signed statements other than provenance (`repro model bom --sign`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub attestations: Vec<AttestationRef>,
    /// The CycloneDX BOM and the model card a bundle carried, when imported.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub imported_bom: Option<Digest>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub imported_card: Option<Digest>,
    /// The names the model had before its renames, oldest first. Statements signed before a
    /// rename name the version as it was then.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub former_names: Vec<String>,
    /// The bundle it came from, when imported.
    pub imported_from: Option<Digest>,
    /// Who signed that bundle, as judged at import.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub import_signer: Option<BundleSigner>,
    pub history: Vec<HistoryEntry>,
}

impl ModelVersion {
    /// A version as its registering event makes it: in no stage, unapproved, unsigned.
    pub(super) fn fresh(
        e: &Event,
        run: Option<RunId>,
        lineage: Option<Digest>,
        artifact: Option<Artifact>,
        history: Vec<HistoryEntry>,
    ) -> Self {
        ModelVersion {
            name: e.model.clone(),
            version: e.version,
            run,
            lineage,
            artifact,
            external: None,
            model_id: None,
            description: None,
            tags: BTreeMap::new(),
            aliases: Vec::new(),
            updated_at_ms: e.at_ms,
            deleted: None,
            registered_by: e.actor.clone(),
            registered_at_ms: e.at_ms,
            stage: None,
            archived: None,
            approvals: Vec::new(),
            signatures: Vec::new(),
            attestations: Vec::new(),
            imported_bom: None,
            imported_card: None,
            former_names: Vec::new(),
            imported_from: None,
            import_signer: None,
            history,
        }
    }

    pub fn reference(&self) -> String {
        format!("{}@{}", self.name, self.version)
    }

    /// Whether `name` is this version's model's name, now or before a rename.
    pub fn known_as(&self, name: &str) -> bool {
        self.name == name || self.former_names.iter().any(|n| n == name)
    }

    /// The lineage the version is held to: the pinned one, else (before its `pin` event)
    /// the run's own; `None` while the run has not finished.
    pub fn lineage_or<'a>(&'a self, run_lineage: Option<&'a Digest>) -> Option<&'a Digest> {
        self.lineage.as_ref().or(run_lineage)
    }

    /// Whether the run still is what the version was registered from: the lineage the store
    /// recorded for it (`recorded`) and the digest its record re-hashes to (`rehashed`) are
    /// both the one the version is held to.
    pub fn lineage_holds(&self, recorded: Option<&Digest>, rehashed: &Digest) -> bool {
        self.lineage_or(recorded).is_some_and(|l| recorded == Some(l) && rehashed == l)
    }

    /// The distinct people who approved this version for `stage` (see [`identity_key`]),
    /// each with their first approval.
    pub fn approvers(&self, stage: &str) -> Vec<&Approval> {
        let mut seen = BTreeSet::new();
        self.approvals.iter().filter(|a| a.stage == stage && seen.insert(identity_key(&a.by))).collect()
    }
}

/// Who someone is, for counting approvals: the e-mail address when there is one
/// (`Ada <ada@example.com>`), else the name, case-folded and trimmed.
pub fn identity_key(who: &str) -> String {
    let who = who.trim();
    if let (Some(open), Some(close)) = (who.rfind('<'), who.rfind('>')) {
        if open < close {
            let email = who[open + 1..close].trim();
            if !email.is_empty() {
                return email.to_lowercase();
            }
        }
    }
    who.to_lowercase()
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Model {
    pub name: String,
    /// Every version ever registered, deleted ones included (their numbers are never reused).
    pub versions: BTreeMap<u32, ModelVersion>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub tags: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub aliases: BTreeMap<String, u32>,
    pub created_at_ms: i64,
    /// Who made the model: the actor of its first event.
    #[serde(default)]
    pub created_by: String,
    pub updated_at_ms: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deleted: Option<Archived>,
    /// The names the model had before its renames, oldest first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub former_names: Vec<String>,
}

impl Model {
    fn new(e: &Event) -> Model {
        Model {
            name: e.model.clone(),
            created_at_ms: e.at_ms,
            created_by: e.actor.clone(),
            updated_at_ms: e.at_ms,
            ..Model::default()
        }
    }

    /// The version holding `stage`, if any.
    pub fn in_stage(&self, stage: &str) -> Option<&ModelVersion> {
        self.versions.values().find(|v| v.stage.as_deref() == Some(stage))
    }

    pub fn latest(&self) -> Option<&ModelVersion> {
        self.live().next_back()
    }

    /// The versions not deleted.
    pub fn live(&self) -> impl DoubleEndedIterator<Item = &ModelVersion> {
        self.versions.values().filter(|v| v.deleted.is_none())
    }
}

/// Why a reference names no version: each says what exists instead.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LookupError {
    NoModel {
        name: String,
        known: Vec<String>,
    },
    NoVersion {
        name: String,
        version: u32,
        known: Vec<u32>,
    },
    /// `archived`: the version last archived out of the stage (its reference and the
    /// archive), when one was.
    EmptyStage {
        name: String,
        stage: String,
        held: Vec<(String, u32)>,
        archived: Option<Box<(String, Archived)>>,
    },
    Deleted {
        what: String,
        by: String,
        at_ms: i64,
    },
}

impl fmt::Display for LookupError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LookupError::NoModel { name, known } if known.is_empty() => {
                write!(f, "no model named '{name}': the registry is empty; `repro model register` adds one")
            }
            LookupError::NoModel { name, known } => {
                write!(f, "no model named '{name}' (models: {}); `repro model ls` lists them", known.join(", "))
            }
            LookupError::NoVersion { name, version, known } => write!(
                f,
                "model '{name}' has no version {version} (versions: {}); `repro model show {name}` lists them",
                known.iter().map(u32::to_string).collect::<Vec<_>>().join(", ")
            ),
            LookupError::EmptyStage { name, stage, archived: Some(last), .. } => {
                let (reference, a) = &**last;
                write!(
                f,
                "'{name}' has no version in {stage} ({reference} was there until {} archived it on {}: {}); \
                 `repro model promote {name}@V --to {stage}`",
                a.by,
                utc_minute(a.at_ms),
                a.reason
            )
            }
            LookupError::EmptyStage { name, stage, held, .. } if held.is_empty() => write!(
                f,
                "no version of '{name}' is in {stage} (no version holds a stage yet); `repro model promote {name}@V --to {stage}`"
            ),
            LookupError::EmptyStage { name, stage, held, .. } => write!(
                f,
                "no version of '{name}' is in {stage} ({}); `repro model promote {name}@V --to {stage}`",
                held.iter().map(|(s, v)| format!("{s}: {name}@{v}")).collect::<Vec<_>>().join(", ")
            ),
            LookupError::Deleted { what, by, .. } => {
                write!(f, "{what} was deleted by {by}; its history stays in the registry log (`repro model show`)")
            }
        }
    }
}

/// The registry as the event log makes it.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Registry {
    pub models: BTreeMap<String, Model>,
    /// The last event folded in, for anchoring signatures and conflict checks.
    pub head: Option<(u64, Digest)>,
    /// Old name → the name it was renamed to (each rename's step; follow to the end).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub renamed: BTreeMap<String, String>,
}

impl Registry {
    /// Folds the log. Events that cannot apply (which only a rewritten log produces) are
    /// skipped and reported, so a damaged registry can still be shown and checked.
    pub fn fold(events: &[Event]) -> (Registry, Vec<ChainProblem>) {
        let mut reg = Registry::default();
        let mut problems = Vec::new();
        for e in events {
            match reg.apply(e) {
                Ok(()) => reg.touch(e),
                Err(message) => problems.push(ChainProblem {
                    seq: e.seq,
                    message: format!("registry event {} cannot apply: {message}", e.describe()),
                }),
            }
            reg.head = Some((e.seq, e.hash.clone()));
        }
        (reg, problems)
    }

    fn apply(&mut self, e: &Event) -> Result<(), String> {
        let change = e.change()?;
        let entry = |detail: String| HistoryEntry {
            seq: e.seq,
            kind: e.kind.clone(),
            by: e.actor.clone(),
            at_ms: e.at_ms,
            detail,
        };
        match change {
            Change::Register { run, lineage, artifact, model_id } => {
                let detail = format!("run {} artifact {}", run.short(), artifact.path);
                let mut v = ModelVersion::fresh(e, Some(run), lineage, Some(artifact), vec![entry(detail)]);
                v.model_id = model_id;
                self.add_version(e, v)?;
            }
            Change::External { source, run_id, artifact, model_id } => {
                let v = super::external::register(e, source, run_id, artifact, model_id, entry);
                self.add_version(e, v)?;
            }
            Change::Adopt { artifact, from } => {
                super::external::adopt(self.version_mut(&e.model, e.version)?, artifact, from, e, entry)?;
            }
            Change::Pin { lineage } => {
                let v = self.version_mut(&e.model, e.version)?;
                if v.lineage.as_ref().is_some_and(|l| *l != lineage) {
                    return Err("the version is already pinned to another lineage".into());
                }
                v.history.push(entry(format!("lineage {} (the run finished)", lineage.short())));
                v.lineage = Some(lineage);
            }
            Change::Create { description, tags } => {
                if self.models.get(&e.model).is_some_and(|m| m.deleted.is_none()) {
                    return Err("the model exists".into());
                }
                let model = self.models.entry(e.model.clone()).or_insert_with(|| Model::new(e));
                // Re-creating a deleted name makes a new model (as in MLflow): its creation is
                // this event, whatever the deleted one's was. Its versions' numbers go on.
                if model.deleted.take().is_some() {
                    model.created_at_ms = e.at_ms;
                    model.created_by = e.actor.clone();
                }
                model.description = description;
                model.tags = tags;
                model.aliases.clear();
            }
            Change::Describe { description } => {
                if e.version == 0 {
                    self.model_mut(&e.model)?.description = Some(description);
                } else {
                    let v = self.version_mut(&e.model, e.version)?;
                    v.history.push(entry("description changed".into()));
                    v.description = Some(description);
                }
            }
            Change::Tag { key, value } => {
                let tags = if e.version == 0 {
                    &mut self.model_mut(&e.model)?.tags
                } else {
                    &mut self.version_mut(&e.model, e.version)?.tags
                };
                match value {
                    Some(value) => tags.insert(key, value),
                    None => tags.remove(&key),
                };
            }
            Change::Alias { alias } => {
                let model = self.model_mut(&e.model)?;
                if model.versions.get(&e.version).is_none_or(|v| v.deleted.is_some()) {
                    return Err("the alias names a version that is not registered".into());
                }
                model.aliases.insert(alias, e.version);
            }
            Change::Unalias { alias } => {
                self.model_mut(&e.model)?.aliases.remove(&alias);
            }
            Change::Rename { to } => {
                if e.version != 0 {
                    return Err("a rename names the model, not a version".into());
                }
                if !valid_model_name(&to) {
                    return Err(format!("'{to}' is not a model name"));
                }
                if self.models.contains_key(&to) {
                    return Err(format!("a model named '{to}' exists (or did: its history stays)"));
                }
                if self.models.get(&e.model).is_none_or(|m| m.deleted.is_some()) {
                    return Err("the model is not registered".into());
                }
                let mut model = self.models.remove(&e.model).ok_or("the model is not registered")?;
                let old = std::mem::replace(&mut model.name, to.clone());
                for v in model.versions.values_mut() {
                    v.name = to.clone();
                    v.former_names.push(old.clone());
                    v.history.push(entry(format!("model renamed from {old} to {to}")));
                    v.updated_at_ms = v.updated_at_ms.max(e.at_ms);
                }
                model.former_names.push(old.clone());
                model.updated_at_ms = model.updated_at_ms.max(e.at_ms);
                self.models.insert(to.clone(), model);
                self.renamed.insert(old, to);
            }
            Change::Delete {} => {
                let by = Archived { reason: "deleted".into(), by: e.actor.clone(), at_ms: e.at_ms, left_stage: None };
                let model = self.model_mut(&e.model)?;
                for v in model.versions.values_mut().filter(|v| e.version == 0 || v.version == e.version) {
                    if v.deleted.is_none() {
                        v.stage = None;
                        v.deleted = Some(by.clone());
                        v.history.push(entry("deleted".into()));
                    }
                }
                model.aliases.retain(|_, v| e.version != 0 && *v != e.version);
                if e.version == 0 {
                    model.deleted = Some(by);
                }
            }
            Change::Import {
                run,
                lineage,
                artifact,
                stage,
                approvals,
                signatures,
                archived,
                bundle,
                history,
                signer,
                attestations,
                bom,
                card,
                former_names,
                ..
            } => {
                let detail = match &signer {
                    Some(s) => {
                        format!("from bundle {} (run {}), signed by {}", bundle.short(), run.short(), s.describe())
                    }
                    None => format!("from bundle {} (run {})", bundle.short(), run.short()),
                };
                // The source's steps keep their own numbers, marked as the source's.
                let mut steps: Vec<HistoryEntry> = history
                    .into_iter()
                    .map(|mut h| {
                        if !h.detail.ends_with(SOURCE_MARK) {
                            h.detail.push_str(SOURCE_MARK);
                        }
                        h
                    })
                    .collect();
                steps.push(entry(detail));
                if let Some(s) = &stage {
                    let holder = self
                        .models
                        .get_mut(&e.model)
                        .and_then(|m| m.versions.values_mut().find(|v| v.stage.as_ref() == Some(s)));
                    if let Some(other) = holder {
                        other.stage = None;
                    }
                }
                let mut v = ModelVersion::fresh(e, Some(run), Some(lineage), Some(artifact), steps);
                v.stage = stage;
                v.archived = archived;
                v.approvals = approvals;
                v.signatures = signatures;
                v.attestations = attestations;
                v.imported_bom = bom;
                v.imported_card = card;
                v.former_names = former_names;
                v.imported_from = Some(bundle);
                v.import_signer = signer;
                self.add_version(e, v)?;
            }
            Change::Promote { stage, replaced, .. } => {
                let model = self.models.get_mut(&e.model).ok_or("the model is not registered")?;
                if !model.versions.contains_key(&e.version) {
                    return Err("the version is not registered".into());
                }
                for v in model.versions.values_mut() {
                    if v.version != e.version && v.stage.as_deref() == Some(stage.as_str()) {
                        v.stage = None;
                        v.history.push(entry(format!("left {stage}: {}@{} took it", e.model, e.version)));
                    }
                }
                let v = model.versions.get_mut(&e.version).ok_or("the version is not registered")?;
                let from = v.stage.replace(stage.clone());
                let detail = match (from, replaced) {
                    (Some(f), _) => format!("{f} → {stage}"),
                    (None, Some(r)) => format!("→ {stage} (replacing {}@{r})", e.model),
                    (None, None) => format!("→ {stage}"),
                };
                v.history.push(entry(detail));
            }
            Change::Approve { stage, comment, signature } => {
                let v = self.version_mut(&e.model, e.version)?;
                let how = match &signature {
                    Some(s) => format!(" (signed, key {})", &s.keyid[..s.keyid.len().min(12)]),
                    None => " (unsigned)".to_string(),
                };
                v.history.push(entry(match &comment {
                    Some(c) => format!("for {stage}{how}: {c}"),
                    None => format!("for {stage}{how}"),
                }));
                v.approvals.push(Approval { stage, by: e.actor.clone(), at_ms: e.at_ms, comment, signature });
            }
            Change::Sign { keyid, envelope, public_key } => {
                let v = self.version_mut(&e.model, e.version)?;
                v.history.push(entry(format!("key {keyid}")));
                v.signatures.push(SignatureRef { keyid, envelope, public_key, by: e.actor.clone(), at_ms: e.at_ms });
            }
            Change::Attest { predicate_type, keyid, envelope, public_key } => {
                let v = self.version_mut(&e.model, e.version)?;
                v.history.push(entry(format!("{predicate_type} signed by key {keyid}")));
                v.attestations.push(AttestationRef {
                    predicate_type,
                    keyid,
                    envelope,
                    public_key,
                    by: e.actor.clone(),
                    at_ms: e.at_ms,
                });
            }
            Change::Refuse { stage, unmet } => {
                let v = self.version_mut(&e.model, e.version)?;
                v.history.push(entry(format!("refused for {stage}: {}", unmet.join("; "))));
            }
            Change::Archive { reason } => {
                let v = self.version_mut(&e.model, e.version)?;
                v.history.push(entry(reason.clone()));
                let left_stage = v.stage.take();
                v.archived = Some(Archived { reason, by: e.actor.clone(), at_ms: e.at_ms, left_stage });
            }
        }
        Ok(())
    }

    fn add_version(&mut self, e: &Event, v: ModelVersion) -> Result<(), String> {
        let model = self.models.entry(e.model.clone()).or_insert_with(|| Model::new(e));
        if model.versions.contains_key(&e.version) {
            return Err(format!("version {} is registered twice", e.version));
        }
        // A new version brings a deleted model back, as registering a deleted name does in MLflow.
        if model.deleted.take().is_some() {
            model.description = None;
            model.tags.clear();
            model.created_at_ms = e.at_ms;
            model.created_by = e.actor.clone();
        }
        model.versions.insert(e.version, v);
        Ok(())
    }

    fn model_mut(&mut self, model: &str) -> Result<&mut Model, String> {
        self.models.get_mut(model).ok_or_else(|| "the model is not registered".to_string())
    }

    fn version_mut(&mut self, model: &str, version: u32) -> Result<&mut ModelVersion, String> {
        self.models
            .get_mut(model)
            .and_then(|m| m.versions.get_mut(&version))
            .ok_or_else(|| "the version is not registered".to_string())
    }

    /// After an event applied: timestamps, and each version's list of the aliases on it.
    fn touch(&mut self, e: &Event) {
        if let Some(model) = self.models.get_mut(&e.model) {
            model.updated_at_ms = model.updated_at_ms.max(e.at_ms);
            if let Some(v) = model.versions.get_mut(&e.version) {
                v.updated_at_ms = v.updated_at_ms.max(e.at_ms);
            }
            for v in model.versions.values_mut() {
                v.aliases = model.aliases.iter().filter(|(_, n)| **n == v.version).map(|(a, _)| a.clone()).collect();
            }
        }
    }

    /// The name a model known as `name` has now: `name` itself while a model has it, else
    /// where its renames lead.
    pub fn current_name<'a>(&'a self, name: &'a str) -> &'a str {
        let mut at = name;
        // Each step renames onto a name no model had, so the steps cannot cycle; the bound
        // guards a rewritten log all the same.
        for _ in 0..=self.renamed.len() {
            match self.renamed.get(at) {
                Some(next) if !self.models.contains_key(at) => at = next,
                _ => break,
            }
        }
        at
    }

    /// `NAME@V`, or `NAME@X` for the version in stage X, else the one alias X points at. A
    /// model's old name (before a rename) finds it under its new one.
    pub fn lookup(&self, r: &ModelRef) -> Result<&ModelVersion, LookupError> {
        let model = self.model(self.current_name(&r.name))?;
        let found = match &r.selector {
            Selector::Version(v) => model.versions.get(v).ok_or_else(|| LookupError::NoVersion {
                name: r.name.clone(),
                version: *v,
                known: model.live().map(|v| v.version).collect(),
            })?,
            Selector::Stage(s) => model
                .in_stage(s)
                .or_else(|| model.aliases.get(s).and_then(|v| model.versions.get(v)))
                .ok_or_else(|| LookupError::EmptyStage {
                    name: r.name.clone(),
                    stage: s.clone(),
                    held: model.versions.values().filter_map(|v| Some((v.stage.clone()?, v.version))).collect(),
                    archived: model
                        .versions
                        .values()
                        .filter_map(|v| v.archived.as_ref().map(|a| (v, a)))
                        .filter(|(_, a)| a.left_stage.as_deref() == Some(s.as_str()))
                        .max_by_key(|(_, a)| a.at_ms)
                        .map(|(v, a)| Box::new((v.reference(), a.clone()))),
                })?,
        };
        match &found.deleted {
            Some(d) => Err(LookupError::Deleted { what: found.reference(), by: d.by.clone(), at_ms: d.at_ms }),
            None => Ok(found),
        }
    }

    /// A model that exists (not deleted).
    pub fn model(&self, name: &str) -> Result<&Model, LookupError> {
        match self.models.get(name) {
            Some(m) => match &m.deleted {
                Some(d) => {
                    Err(LookupError::Deleted { what: format!("model '{name}'"), by: d.by.clone(), at_ms: d.at_ms })
                }
                None => Ok(m),
            },
            None => Err(LookupError::NoModel {
                name: name.to_string(),
                known: self.models.values().filter(|m| m.deleted.is_none()).map(|m| m.name.clone()).collect(),
            }),
        }
    }

    /// The number the next registration of `name` gets.
    /// What registering a new version of `name` appends, for both doors (`repro model
    /// register` and MLflow's `create_model_version`): the `register` change at the next
    /// version, then `extra` changes (tags, a description) on that same version, so they land
    /// together. `None` when `name` is not a valid model name (each door words its refusal).
    pub fn registration(&self, name: &str, register: Change, extra: Vec<Change>) -> Option<Vec<(u32, Change)>> {
        if !valid_model_name(name) || !matches!(register, Change::Register { .. } | Change::External { .. }) {
            return None;
        }
        let version = self.next_version(name);
        Some(std::iter::once(register).chain(extra).map(|c| (version, c)).collect())
    }

    pub fn next_version(&self, name: &str) -> u32 {
        self.models.get(name).and_then(|m| m.versions.keys().next_back()).map_or(1, |v| v + 1)
    }

    /// Every version that pins `run`, oldest first.
    pub fn versions_of_run(&self, run: &RunId) -> Vec<&ModelVersion> {
        self.models.values().flat_map(|m| m.versions.values()).filter(|v| v.run.as_ref() == Some(run)).collect()
    }
}

/// `YYYY-MM-DD HH:MM UTC` for a Unix time in milliseconds (the civil-from-days algorithm of
/// H. Hinnant), so an error can say when without a clock or a time crate.
pub(super) fn utc_minute(ms: i64) -> String {
    let minutes = ms.div_euclid(60_000);
    let (days, minute) = (minutes.div_euclid(1440), minutes.rem_euclid(1440));
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02} {:02}:{:02} UTC", minute / 60, minute % 60)
}
