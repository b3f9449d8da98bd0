//! The model registry: versions, stages, approvals and signatures, as a fold over a
//! hash-chained event log.
//!
//! The event log is the only truth. Every registry change appends one event whose hash
//! covers the previous event's hash, so a row edited or removed behind repro's back breaks
//! the chain at that row. The state (`Registry`) is rebuilt from the events on every read;
//! registries hold hundreds of events, not millions, and a fold cannot drift from the log
//! the way a second table could.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::audit::{AuditReport, ItemStatus};
use crate::record::RunRecord;
use crate::{Digest, RunId};

/// The stages a store has when `repro.toml` names none.
pub const DEFAULT_STAGES: [&str; 3] = ["dev", "staging", "prod"];

/// What a stage policy may require, beyond the audit items (which may be named too).
pub const REQUIREMENTS: [(&str, &str); 7] = [
    ("git_clean", "the run's tree had no uncommitted changes"),
    ("env_pinned", "the declared environment pins every package (or the run used a registered environment)"),
    ("random_seed", "the seed was given, not generated"),
    ("dataset_snapshot", "every input is snapshotted with its content in the store"),
    ("replay_verified", "the latest replay of the run reproduced it"),
    ("signed", "the version carries a valid signature"),
    ("audit_complete", "every audit item is ok or warn"),
];

/// Letters, digits, `-`, `_`, `.`; starting with a letter or digit; at most 100 characters.
pub fn valid_model_name(name: &str) -> bool {
    crate::environment::valid_env_name(name)
}

/// Letters, digits, `-`, `_`; starting with a letter; at most 40 characters. Not all digits,
/// so `NAME@3` is always a version and `NAME@prod` always a stage.
pub fn valid_stage_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 40
        && name.starts_with(|c: char| c.is_ascii_alphabetic())
        && name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_'))
}

/// Which version of a model a reference means.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Selector {
    Version(u32),
    Stage(String),
}

/// `NAME@V` or `NAME@STAGE`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ModelRef {
    pub name: String,
    pub selector: Selector,
}

impl ModelRef {
    /// Parses `NAME@V` / `NAME@STAGE`; `None` when the text is not shaped like one.
    pub fn parse(text: &str) -> Option<ModelRef> {
        let (name, sel) = text.trim().rsplit_once('@')?;
        if !valid_model_name(name) {
            return None;
        }
        let selector = if !sel.is_empty() && sel.bytes().all(|b| b.is_ascii_digit()) {
            Selector::Version(sel.parse().ok().filter(|v| *v > 0)?)
        } else if valid_stage_name(sel) {
            Selector::Stage(sel.to_string())
        } else {
            return None;
        };
        Some(ModelRef { name: name.to_string(), selector })
    }
}

impl fmt::Display for ModelRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.selector {
            Selector::Version(v) => write!(f, "{}@{v}", self.name),
            Selector::Stage(s) => write!(f, "{}@{s}", self.name),
        }
    }
}

// ---- events ---------------------------------------------------------------------------

/// One file of a registered artifact, with the digests an attestation names.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ArtifactFile {
    /// The file's path relative to the repository (the output path, or a file inside an output folder).
    pub path: String,
    pub size: u64,
    pub blake3: Digest,
    /// Lowercase hex.
    pub sha256: String,
}

/// The model artifact a version pins: one of the run's outputs, or files inside one.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Artifact {
    /// What `--artifact` named, relative to the repository.
    pub path: String,
    /// The run output it belongs to, and that output's snapshot.
    pub output: String,
    pub snapshot: Digest,
    pub files: Vec<ArtifactFile>,
}

impl Artifact {
    /// Whether the files came through the MLflow API (`output` is then the version's MLflow
    /// `source`, and `snapshot` a manifest of the files, not one of the run's outputs).
    pub fn from_tracking(&self) -> bool {
        self.output.contains(":/")
    }

    /// A file's path inside the artifact: below the artifact's folder, or its name.
    pub fn relative<'a>(&self, file: &'a ArtifactFile) -> &'a str {
        file.path
            .strip_prefix(self.path.as_str())
            .and_then(|rest| rest.strip_prefix('/'))
            .unwrap_or_else(|| file.path.rsplit('/').next().unwrap_or(&file.path))
    }
}

/// What an event did. The JSON of this enum (without `kind`) is the stored payload.
// A change lives only while one event is written or folded; boxing `Import`'s fields would
// buy nothing but noise at every construction.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase", deny_unknown_fields)]
pub enum Change {
    Register {
        run: RunId,
        /// The run's lineage digest. Absent when the version was registered (through the MLflow
        /// API) while its run was still running: a `pin` event fixes it when the run finishes.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        lineage: Option<Digest>,
        artifact: Artifact,
        /// The MLflow logged model (`m-…`) the files came from, when registered through MLflow.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        model_id: Option<String>,
    },
    /// The lineage of a version registered while its run ran, fixed when the run finished.
    Pin {
        lineage: Digest,
    },
    /// A model made before it has versions (MLflow's `create_registered_model`); version 0.
    Create {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        description: Option<String>,
        #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
        tags: BTreeMap<String, String>,
    },
    /// The description of the model (version 0) or of a version.
    Describe {
        description: String,
    },
    /// Sets (or, with no value, removes) a tag of the model (version 0) or of a version.
    Tag {
        key: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        value: Option<String>,
    },
    /// Points an alias of the model at the event's version.
    Alias {
        alias: String,
    },
    /// Removes an alias (version 0).
    Unalias {
        alias: String,
    },
    /// Deletes the model (version 0, with all its versions) or one version, as MLflow's
    /// delete calls do. The events stay; the versions can no longer be used.
    Delete {},
    Promote {
        stage: String,
        /// The stage the version left, if it was in one.
        from: Option<String>,
        /// The version that held the stage before and left it.
        replaced: Option<u32>,
        /// The requirements the policy named, all met at the time.
        checked: Vec<String>,
        /// The distinct approvers counted.
        approvers: Vec<String>,
    },
    Approve {
        stage: String,
        comment: Option<String>,
        /// The approver's signed statement (see `approval`). Absent from approvals recorded
        /// before approvals were signatures, which keep their event hash.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        signature: Option<ApprovalSignature>,
    },
    Sign {
        keyid: String,
        /// The DSSE envelope (one JSON line) and the PEM public key, as objects.
        envelope: Digest,
        public_key: Digest,
    },
    Archive {
        reason: String,
    },
    /// A version brought in by `repro bundle import`, with its history as the source had it.
    Import {
        run: RunId,
        lineage: Digest,
        artifact: Artifact,
        stage: Option<String>,
        approvals: Vec<Approval>,
        signatures: Vec<SignatureRef>,
        archived: Option<Archived>,
        /// The source's event hashes for this version, in order (evidence, not re-checked here).
        source_events: Vec<Digest>,
        /// The version's history as the source had it.
        #[serde(default)]
        history: Vec<HistoryEntry>,
        bundle: Digest,
        /// Who signed the bundle's manifest, and whether the importing store trusted the key
        /// then (absent in imports made before repro recorded it).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        signer: Option<BundleSigner>,
        /// The runs this import added to the store (their records, and so their commands,
        /// came from the bundle). Absent in older imports: then the version's run.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        runs: Option<Vec<RunId>>,
    },
}

impl Change {
    pub fn kind(&self) -> &'static str {
        match self {
            Change::Register { .. } => "register",
            Change::Pin { .. } => "pin",
            Change::Create { .. } => "create",
            Change::Describe { .. } => "describe",
            Change::Tag { .. } => "tag",
            Change::Alias { .. } => "alias",
            Change::Unalias { .. } => "unalias",
            Change::Delete {} => "delete",
            Change::Promote { .. } => "promote",
            Change::Approve { .. } => "approve",
            Change::Sign { .. } => "sign",
            Change::Archive { .. } => "archive",
            Change::Import { .. } => "import",
        }
    }

    /// The stored payload: the change's JSON without the `kind` tag (that has its own column).
    pub fn payload(&self) -> String {
        let mut value = serde_json::to_value(self).expect("registry changes serialize");
        if let Some(map) = value.as_object_mut() {
            map.remove("kind");
        }
        serde_json::to_string(&value).expect("JSON values serialize")
    }

    pub fn from_payload(kind: &str, payload: &str) -> Result<Change, String> {
        let mut value: serde_json::Value = serde_json::from_str(payload).map_err(|e| format!("payload: {e}"))?;
        let map = value.as_object_mut().ok_or("payload is not a JSON object")?;
        map.insert("kind".into(), serde_json::Value::String(kind.to_string()));
        serde_json::from_value(value).map_err(|e| format!("payload of a '{kind}' event: {e}"))
    }
}

/// An event as stored: the row of the log.
#[derive(Clone, Debug, PartialEq)]
pub struct Event {
    pub seq: u64,
    pub at_ms: i64,
    pub actor: String,
    pub model: String,
    pub version: u32,
    pub kind: String,
    /// The payload text exactly as stored; the hash covers these bytes.
    pub payload: String,
    pub prev: Option<Digest>,
    pub hash: Digest,
}

/// The fields of an event that its hash covers, in a fixed order.
#[derive(Serialize)]
struct Hashed<'a> {
    seq: u64,
    at_ms: i64,
    actor: &'a str,
    model: &'a str,
    version: u32,
    kind: &'a str,
    payload: &'a str,
    prev: Option<&'a str>,
}

/// The hash of an event: BLAKE3 over a domain tag and the JSON of its fields.
#[allow(clippy::too_many_arguments)]
pub fn event_hash(
    seq: u64,
    at_ms: i64,
    actor: &str,
    model: &str,
    version: u32,
    kind: &str,
    payload: &str,
    prev: Option<&Digest>,
) -> Digest {
    let body = Hashed { seq, at_ms, actor, model, version, kind, payload, prev: prev.map(Digest::as_str) };
    let mut bytes = b"repro-registry-event-v1\n".to_vec();
    bytes.extend(serde_json::to_vec(&body).expect("event fields serialize"));
    Digest::of_bytes(&bytes)
}

impl Event {
    /// The next event after `last`, hashed.
    pub fn next(last: Option<&Event>, at_ms: i64, actor: &str, model: &str, version: u32, change: &Change) -> Event {
        let seq = last.map_or(1, |e| e.seq + 1);
        let prev = last.map(|e| e.hash.clone());
        let kind = change.kind().to_string();
        let payload = change.payload();
        let hash = event_hash(seq, at_ms, actor, model, version, &kind, &payload, prev.as_ref());
        Event { seq, at_ms, actor: actor.to_string(), model: model.to_string(), version, kind, payload, prev, hash }
    }

    pub fn computed_hash(&self) -> Digest {
        event_hash(
            self.seq,
            self.at_ms,
            &self.actor,
            &self.model,
            self.version,
            &self.kind,
            &self.payload,
            self.prev.as_ref(),
        )
    }

    pub fn change(&self) -> Result<Change, String> {
        Change::from_payload(&self.kind, &self.payload)
    }

    /// `#3 promote pricing@2` (`#4 create pricing` for the model's own events), for messages.
    pub fn describe(&self) -> String {
        if self.version == 0 {
            format!("#{} {} {}", self.seq, self.kind, self.model)
        } else {
            format!("#{} {} {}@{}", self.seq, self.kind, self.model, self.version)
        }
    }
}

/// A break in the event log, named for the user.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ChainProblem {
    pub seq: u64,
    pub message: String,
}

/// Checks that each event hashes to its recorded hash, links to the one before, and that
/// sequence numbers have no gaps. `anchor`, when known, is an event (seq, hash) that must
/// still be in the log: it catches events removed from the end.
pub fn verify_chain(events: &[Event], anchor: Option<(u64, &Digest)>) -> Vec<ChainProblem> {
    let mut problems = Vec::new();
    let mut prev: Option<&Event> = None;
    for e in events {
        let expected_seq = prev.map_or(1, |p| p.seq + 1);
        if e.seq != expected_seq {
            problems.push(ChainProblem {
                seq: e.seq,
                message: format!(
                    "registry event #{expected_seq}{} is gone: events were removed from the log",
                    if e.seq > expected_seq + 1 { format!("..#{}", e.seq - 1) } else { String::new() }
                ),
            });
        }
        if e.computed_hash() != e.hash {
            problems.push(ChainProblem {
                seq: e.seq,
                message: format!(
                    "registry event {} was changed: its content no longer hashes to its recorded hash",
                    e.describe()
                ),
            });
        }
        if e.prev.as_ref() != prev.map(|p| &p.hash) {
            problems.push(ChainProblem {
                seq: e.seq,
                message: format!(
                    "registry event {} does not link to the event before it: the log was rewritten",
                    e.describe()
                ),
            });
        }
        if let Err(message) = e.change() {
            problems.push(ChainProblem {
                seq: e.seq,
                message: format!("registry event {} is unreadable: {message}", e.describe()),
            });
        }
        prev = Some(e);
    }
    if let Some((seq, hash)) = anchor {
        match events.iter().find(|e| e.seq == seq) {
            None => problems.push(ChainProblem {
                seq,
                message: format!(
                    "registry event #{seq} (the last one repro wrote) is gone: events were removed from the log"
                ),
            }),
            Some(e) if &e.hash != hash => problems.push(ChainProblem {
                seq,
                message: format!("registry event {} is not the one repro wrote: the log was rewritten", e.describe()),
            }),
            Some(_) => {}
        }
    }
    problems
}

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

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Archived {
    pub reason: String,
    pub by: String,
    pub at_ms: i64,
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
    pub run: RunId,
    /// `None` until the run finishes, for a version registered while its run ran.
    pub lineage: Option<Digest>,
    pub artifact: Artifact,
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
    /// The bundle it came from, when imported.
    pub imported_from: Option<Digest>,
    /// Who signed that bundle, as judged at import.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub import_signer: Option<BundleSigner>,
    pub history: Vec<HistoryEntry>,
}

impl ModelVersion {
    /// A version as its registering event makes it: in no stage, unapproved, unsigned.
    fn fresh(e: &Event, run: RunId, lineage: Option<Digest>, artifact: Artifact, history: Vec<HistoryEntry>) -> Self {
        ModelVersion {
            name: e.model.clone(),
            version: e.version,
            run,
            lineage,
            artifact,
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
            imported_from: None,
            import_signer: None,
            history,
        }
    }

    pub fn reference(&self) -> String {
        format!("{}@{}", self.name, self.version)
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
    NoModel { name: String, known: Vec<String> },
    NoVersion { name: String, version: u32, known: Vec<u32> },
    EmptyStage { name: String, stage: String, held: Vec<(String, u32)> },
    Deleted { what: String, by: String, at_ms: i64 },
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
            LookupError::EmptyStage { name, stage, held } if held.is_empty() => write!(
                f,
                "no version of '{name}' is in {stage} (no version holds a stage yet); `repro model promote {name}@V --to {stage}`"
            ),
            LookupError::EmptyStage { name, stage, held } => write!(
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
                let mut v = ModelVersion::fresh(e, run, lineage, artifact, vec![entry(detail)]);
                v.model_id = model_id;
                self.add_version(e, v)?;
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
                model.deleted = None;
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
            Change::Delete {} => {
                let by = Archived { reason: "deleted".into(), by: e.actor.clone(), at_ms: e.at_ms };
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
                let mut v = ModelVersion::fresh(e, run, Some(lineage), artifact, steps);
                v.stage = stage;
                v.archived = archived;
                v.approvals = approvals;
                v.signatures = signatures;
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
            Change::Archive { reason } => {
                let v = self.version_mut(&e.model, e.version)?;
                v.history.push(entry(reason.clone()));
                v.stage = None;
                v.archived = Some(Archived { reason, by: e.actor.clone(), at_ms: e.at_ms });
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

    /// `NAME@V`, or `NAME@X` for the version in stage X, else the one alias X points at.
    pub fn lookup(&self, r: &ModelRef) -> Result<&ModelVersion, LookupError> {
        let model = self.model(&r.name)?;
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
    pub fn next_version(&self, name: &str) -> u32 {
        self.models.get(name).and_then(|m| m.versions.keys().next_back()).map_or(1, |v| v + 1)
    }

    /// Every version that pins `run`, oldest first.
    pub fn versions_of_run(&self, run: &RunId) -> Vec<&ModelVersion> {
        self.models.values().flat_map(|m| m.versions.values()).filter(|v| &v.run == run).collect()
    }
}

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
    pub approvals: Vec<crate::approval::ApprovalCheck>,
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
                        format!("the audit of run {} is incomplete: {}", version.run.short(), gaps.join(", ")),
                        format!("repro audit {}", version.run.short()),
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
    if policy.approvals > 0 && policy.signed_approvals {
        let counted = crate::approval::counted(&facts.approvals, stage);
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::{audit_run, ObjectCheck};
    use crate::record::sample;
    use proptest::prelude::*;

    fn artifact() -> Artifact {
        Artifact {
            path: "model.pkl".into(),
            output: "model.pkl".into(),
            snapshot: Digest::of_bytes(b"manifest"),
            files: vec![ArtifactFile {
                path: "model.pkl".into(),
                size: 5,
                blake3: Digest::of_bytes(b"model"),
                sha256: "00".repeat(32),
            }],
        }
    }

    fn log(changes: &[(&str, u32, &str, Change)]) -> Vec<Event> {
        let mut events: Vec<Event> = Vec::new();
        for (i, (model, version, actor, change)) in changes.iter().enumerate() {
            let e = Event::next(events.last(), 1_000 + i as i64, actor, model, *version, change);
            events.push(e);
        }
        events
    }

    fn register(run: &RunId) -> Change {
        Change::Register {
            run: run.clone(),
            lineage: Some(Digest::of_bytes(b"lineage")),
            artifact: artifact(),
            model_id: None,
        }
    }

    fn promote(stage: &str) -> Change {
        Change::Promote { stage: stage.into(), from: None, replaced: None, checked: vec![], approvers: vec![] }
    }

    fn approve(stage: &str) -> Change {
        Change::Approve { stage: stage.into(), comment: None, signature: None }
    }

    #[test]
    fn references_parse() {
        assert_eq!(
            ModelRef::parse("pricing@3"),
            Some(ModelRef { name: "pricing".into(), selector: Selector::Version(3) })
        );
        assert_eq!(
            ModelRef::parse("pricing@prod"),
            Some(ModelRef { name: "pricing".into(), selector: Selector::Stage("prod".into()) })
        );
        for bad in ["pricing", "@3", "pricing@", "pricing@0", "pricing@-1", "pri cing@3", "p@3x y", "a@99999999999"] {
            assert_eq!(ModelRef::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn stages_move_and_history_stays() {
        let run = sample::record().id;
        let events = log(&[
            ("pricing", 1, "ada", register(&run)),
            ("pricing", 2, "ada", register(&run)),
            ("pricing", 1, "ada", promote("prod")),
            ("pricing", 2, "bob", promote("prod")),
            ("pricing", 1, "bob", Change::Archive { reason: "superseded".into() }),
        ]);
        assert!(verify_chain(&events, events.last().map(|e| (e.seq, &e.hash))).is_empty());
        let (reg, problems) = Registry::fold(&events);
        assert!(problems.is_empty(), "{problems:?}");
        let m = reg.model("pricing").expect("model");
        assert_eq!(m.in_stage("prod").map(|v| v.version), Some(2));
        let v1 = &m.versions[&1];
        assert!(v1.archived.is_some() && v1.stage.is_none());
        assert_eq!(v1.history.len(), 4, "{:?}", v1.history);
        assert_eq!(reg.next_version("pricing"), 3);
        assert_eq!(reg.next_version("other"), 1);
        assert_eq!(reg.versions_of_run(&run).len(), 2);
    }

    #[test]
    fn lookups_name_what_exists() {
        let run = sample::record().id;
        let events = log(&[("pricing", 1, "ada", register(&run)), ("pricing", 1, "ada", promote("staging"))]);
        let (reg, _) = Registry::fold(&events);
        let err = |t: &str| reg.lookup(&ModelRef::parse(t).expect("parses")).expect_err(t).to_string();
        assert!(err("pricing@9").contains("versions: 1"), "{}", err("pricing@9"));
        assert!(err("nosuch@prod").contains("models: pricing"), "{}", err("nosuch@prod"));
        assert!(err("pricing@prod").contains("staging: pricing@1"), "{}", err("pricing@prod"));
        assert_eq!(reg.lookup(&ModelRef::parse("pricing@staging").expect("parses")).map(|v| v.version), Ok(1));
    }

    #[test]
    fn each_kind_of_tampering_is_named() {
        let run = sample::record().id;
        let events = log(&[
            ("pricing", 1, "ada", register(&run)),
            ("pricing", 1, "ada", promote("staging")),
            ("pricing", 1, "bob", approve("prod")),
        ]);
        let anchor = events.last().map(|e| (e.seq, e.hash.clone()));
        let anchor = anchor.as_ref().map(|(s, h)| (*s, h));

        let mut edited = events.clone();
        edited[1].payload = edited[1].payload.replace("staging", "prod");
        let p = verify_chain(&edited, anchor);
        assert_eq!(p.len(), 1, "{p:?}");
        assert!(p[0].message.contains("#2 promote pricing@1 was changed"), "{p:?}");

        let mut removed = events.clone();
        removed.remove(1);
        assert!(verify_chain(&removed, anchor).iter().any(|p| p.message.contains("#2 is gone")));

        let truncated = events[..2].to_vec();
        let p = verify_chain(&truncated, anchor);
        assert!(p.iter().any(|p| p.message.contains("#3 (the last one repro wrote) is gone")), "{p:?}");

        let mut actor = events.clone();
        actor[2].actor = "mallory".into();
        assert!(verify_chain(&actor, anchor).iter().any(|p| p.message.contains("was changed")));

        let mut garbage = events.clone();
        garbage[0].payload = "{not json".into();
        garbage[0].hash = garbage[0].computed_hash();
        assert!(verify_chain(&garbage, None).iter().any(|p| p.message.contains("unreadable")));
    }

    #[test]
    fn one_persons_approvals_count_once() {
        let run = sample::record().id;
        let events = log(&[
            ("pricing", 1, "Ada <ada@example.com>", register(&run)),
            ("pricing", 1, "Ada <ada@example.com>", approve("prod")),
            ("pricing", 1, "ada lovelace <ADA@example.com>", approve("prod")),
            ("pricing", 1, "Bob <bob@example.com>", approve("staging")),
        ]);
        let (reg, _) = Registry::fold(&events);
        let v = &reg.models["pricing"].versions[&1];
        assert_eq!(v.approvers("prod").len(), 1);
        assert_eq!(v.approvers("staging").len(), 1);
        assert_eq!(identity_key(" Bob "), "bob");
    }

    #[test]
    fn policy_lists_every_unmet_requirement() {
        let mut record = sample::record();
        record.code.dirty = true;
        record.code.diff_files = vec!["train.py".into()];
        record.seed.generated = true;
        let audit = audit_run(&record, &ObjectCheck::default(), &[], &[], false);
        let events = log(&[("pricing", 1, "ada", register(&record.id)), ("pricing", 1, "ada", approve("prod"))]);
        let (reg, _) = Registry::fold(&events);
        let v = &reg.models["pricing"].versions[&1];
        let policy = &default_policies()["prod"];
        let facts = PromotionFacts {
            record: &record,
            audit: &audit,
            valid_signatures: 0,
            signature_problems: vec![],
            parity: Some(Ok(vec!["numpy 1.26.4 → 2.0.0".into()])),
            approvals: vec![crate::approval::ApprovalCheck {
                stage: "prod".into(),
                by: "ada".into(),
                keyid: None,
                valid: false,
                trusted: false,
                person: "ada".into(),
                problem: None,
            }],
        };
        let unmet = evaluate(v, "prod", policy, &facts);
        let names: Vec<&str> = unmet.iter().map(|u| u.requirement.as_str()).collect();
        for expected in ["from", "git_clean", "random_seed", "replay_verified", "signed", "parity", "approvals"] {
            assert!(names.contains(&expected), "{expected} missing from {names:?}");
        }
        let approvals = unmet.iter().find(|u| u.requirement == "approvals").expect("approvals");
        assert!(
            approvals.reason.contains("needs 2 approvals signed by distinct trusted approvers")
                && approvals.reason.contains("has 0 (none yet); not counted: ada (unsigned)"),
            "{}",
            approvals.reason
        );
        // A policy that does not ask for signatures counts the names, as stores before did.
        let legacy = StagePolicy { signed_approvals: false, ..policy.clone() };
        let unmet = evaluate(v, "prod", &legacy, &facts);
        let approvals = unmet.iter().find(|u| u.requirement == "approvals").expect("approvals");
        assert!(approvals.reason.contains("needs 2 distinct approvals") && approvals.reason.contains("has 1 (ada)"));
        assert!(unmet.iter().all(|u| !u.reason.is_empty()));

        let dev = evaluate(v, "dev", &default_policies()["dev"], &facts);
        assert_eq!(dev.iter().filter(|u| u.requirement != "parity").count(), 0);
    }

    #[test]
    fn mlflow_door_events_fold() {
        let run = RunId::from_bytes([7; 16]);
        let mut unpinned = register(&run);
        if let Change::Register { lineage, model_id, .. } = &mut unpinned {
            *lineage = None;
            *model_id = Some("m-1".into());
        }
        let tags = BTreeMap::from([("team".to_string(), "a".to_string())]);
        let events = log(&[
            ("sk", 0, "ada", Change::Create { description: Some("first".into()), tags }),
            ("sk", 1, "ada", unpinned),
            ("sk", 1, "ada", Change::Alias { alias: "champion".into() }),
            ("sk", 1, "ada", Change::Tag { key: "k".into(), value: Some("v".into()) }),
            ("sk", 0, "ada", Change::Describe { description: "second".into() }),
            ("sk", 1, "repro", Change::Pin { lineage: Digest::of_bytes(b"lineage") }),
            ("sk", 2, "ada", register(&run)),
        ]);
        let (reg, problems) = Registry::fold(&events);
        assert!(problems.is_empty(), "{problems:?}");
        let m = reg.model("sk").expect("model");
        assert_eq!(m.description.as_deref(), Some("second"));
        assert_eq!(m.tags["team"], "a");
        let champion = reg.lookup(&ModelRef::parse("sk@champion").expect("ref")).expect("alias resolves");
        assert_eq!(champion.version, 1);
        assert_eq!(champion.aliases, vec!["champion".to_string()]);
        assert_eq!(champion.tags["k"], "v");
        assert_eq!(champion.model_id.as_deref(), Some("m-1"));
        assert_eq!(champion.lineage, Some(Digest::of_bytes(b"lineage")));

        // Deleting version 1 takes its alias with it; the number is never reused.
        let mut more = events.clone();
        more.push(Event::next(more.last(), 5_000, "ada", "sk", 1, &Change::Delete {}));
        let (reg, problems) = Registry::fold(&more);
        assert!(problems.is_empty(), "{problems:?}");
        let err = reg.lookup(&ModelRef::parse("sk@1").expect("ref")).expect_err("deleted");
        assert!(err.to_string().contains("sk@1 was deleted by ada"), "{err}");
        assert!(reg.lookup(&ModelRef::parse("sk@champion").expect("ref")).is_err());
        assert_eq!(reg.next_version("sk"), 3);
        assert_eq!(reg.model("sk").expect("model").latest().map(|v| v.version), Some(2));

        // Deleting the model hides it; creating the name again brings it back, numbering on.
        more.push(Event::next(more.last(), 6_000, "ada", "sk", 0, &Change::Delete {}));
        let (reg, _) = Registry::fold(&more);
        assert!(reg.model("sk").expect_err("deleted").to_string().contains("model 'sk' was deleted"));
        more.push(Event::next(
            more.last(),
            7_000,
            "ada",
            "sk",
            0,
            &Change::Create { description: None, tags: BTreeMap::new() },
        ));
        let (reg, problems) = Registry::fold(&more);
        assert!(problems.is_empty(), "{problems:?}");
        assert!(reg.model("sk").expect("back").latest().is_none());
        assert_eq!(reg.next_version("sk"), 3);

        // A second create of a live model, or an alias on a deleted version, cannot apply.
        more.push(Event::next(
            more.last(),
            8_000,
            "ada",
            "sk",
            0,
            &Change::Create { description: None, tags: BTreeMap::new() },
        ));
        more.push(Event::next(more.last(), 9_000, "ada", "sk", 1, &Change::Alias { alias: "x".into() }));
        let (_, problems) = Registry::fold(&more);
        assert_eq!(problems.len(), 2, "{problems:?}");
    }

    #[test]
    fn register_payloads_keep_their_old_shape() {
        let run = RunId::from_bytes([7; 16]);
        let payload = register(&run).payload();
        assert!(payload.starts_with("{\"artifact\"") || payload.contains("\"lineage\":\""), "{payload}");
        assert!(!payload.contains("model_id"), "{payload}");
        let back = Change::from_payload("register", &payload).expect("parses");
        assert_eq!(back, register(&run));
    }

    #[test]
    fn policies_are_validated() {
        assert!(validate_policies(&default_policies()).is_ok());
        let mut p = default_policies();
        p.get_mut("prod").expect("prod").require.push("git_cleen".into());
        assert!(validate_policies(&p).expect_err("typo").contains("unknown requirement 'git_cleen'"));
        let mut p = default_policies();
        p.get_mut("prod").expect("prod").from = Some("qa".into());
        assert!(validate_policies(&p).expect_err("no qa").contains("no stage 'qa'"));
    }

    proptest! {
        /// Any sequence of registry operations folds without problems, keeps each stage
        /// held by at most one version of a model, and verifies as a chain.
        #[test]
        fn any_history_folds_to_a_consistent_registry(ops in proptest::collection::vec((0u8..5, 0u8..2, 1u32..4, 0u8..3), 0..40)) {
            let run = sample::record().id;
            let stages = ["dev", "staging", "prod"];
            let mut events: Vec<Event> = Vec::new();
            for (op, model, version, stage) in ops {
                let model = ["a", "b"][model as usize];
                let (reg, _) = Registry::fold(&events);
                let exists = reg.models.get(model).is_some_and(|m| m.versions.contains_key(&version));
                let change = match op {
                    0 => {
                        let v = reg.next_version(model);
                        let e = Event::next(events.last(), 1, "ada", model, v, &register(&run));
                        events.push(e);
                        continue;
                    }
                    _ if !exists => continue,
                    1 => promote(stages[stage as usize]),
                    2 => approve(stages[stage as usize]),
                    3 => Change::Archive { reason: "old".into() },
                    _ => Change::Sign { keyid: "k".into(), envelope: Digest::of_bytes(b"e"), public_key: Digest::of_bytes(b"p") },
                };
                let e = Event::next(events.last(), 1, "bob", model, version, &change);
                events.push(e);
            }
            let (reg, problems) = Registry::fold(&events);
            prop_assert!(problems.is_empty(), "{:?}", problems);
            prop_assert!(verify_chain(&events, events.last().map(|e| (e.seq, &e.hash))).is_empty());
            for m in reg.models.values() {
                for s in stages {
                    prop_assert!(m.versions.values().filter(|v| v.stage.as_deref() == Some(s)).count() <= 1);
                }
            }
        }

        #[test]
        fn garbage_payloads_never_panic(kind in "[a-z]{0,8}", payload in ".{0,64}") {
            let _ = Change::from_payload(&kind, &payload);
        }

        #[test]
        fn references_never_panic(text in ".{0,40}") {
            if let Some(r) = ModelRef::parse(&text) {
                prop_assert_eq!(ModelRef::parse(&r.to_string()), Some(r));
            }
        }
    }
}
