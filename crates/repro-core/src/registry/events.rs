//! Registry events: what each change records, the hash chain, and its verification.

use super::*;

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
    /// A version whose files repro does not hold, or whose run it does not know (MLflow's
    /// `create_model_version` with an `s3://…` source, a plain path, `runs:/` of a run this
    /// store never saw). Its source is recorded as given; it has no lineage, and no policy
    /// that needs evidence passes for it until an `adopt` pins its bytes.
    External {
        source: String,
        /// The run id the client named, unchecked: even when it names a run of this store,
        /// nothing says that run made these files.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        run_id: Option<String>,
        /// The files, when repro holds them after all (a logged model with no source run).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        artifact: Option<Artifact>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        model_id: Option<String>,
    },
    /// An external version's bytes, fetched and hashed into the store (`repro model adopt`).
    Adopt {
        artifact: Artifact,
        /// Where they were read from: the source itself, or the copy `--from` named.
        from: String,
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
    /// Renames the model (version 0): its versions and history go with it, the old name
    /// keeps resolving to it in repro's own commands until a model takes that name again.
    Rename {
        to: String,
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
    /// A promotion the stage's policy refused, with each unmet requirement as the refusal
    /// said it: the history shows what was tried, by whom, and why it was stopped. It
    /// changes nothing else.
    Refuse {
        stage: String,
        unmet: Vec<String>,
    },
    /// A signed statement about the version other than its provenance (a CycloneDX BOM):
    /// the DSSE envelope and the PEM public key, as objects.
    Attest {
        predicate_type: String,
        keyid: String,
        envelope: Digest,
        public_key: Digest,
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
        /// The source's other signed statements (`attest` events).
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        attestations: Vec<AttestationRef>,
        /// The CycloneDX BOM and the model card the bundle carried, as objects.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        bom: Option<Digest>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        card: Option<Digest>,
        /// The names the model had in the source before its renames.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        former_names: Vec<String>,
    },
}

impl Change {
    pub fn kind(&self) -> &'static str {
        match self {
            Change::Register { .. } => "register",
            Change::Pin { .. } => "pin",
            Change::External { .. } => "external",
            Change::Adopt { .. } => "adopt",
            Change::Create { .. } => "create",
            Change::Describe { .. } => "describe",
            Change::Tag { .. } => "tag",
            Change::Alias { .. } => "alias",
            Change::Unalias { .. } => "unalias",
            Change::Rename { .. } => "rename",
            Change::Delete {} => "delete",
            Change::Promote { .. } => "promote",
            Change::Approve { .. } => "approve",
            Change::Sign { .. } => "sign",
            Change::Archive { .. } => "archive",
            Change::Refuse { .. } => "refuse",
            Change::Attest { .. } => "attest",
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

/// The events that make `name@version` (a bundle carries them), in log order: the version's
/// own, under whatever name the model had when each was written, and the renames that led to
/// `name`. Walking back from the end, a rename onto the name the walk follows switches it to
/// the old name, and a rename away from it ends the walk: a later model that took an old name
/// brings none of the renamed model's events in, nor it any of theirs.
pub fn events_of<'a>(events: &'a [Event], name: &str, version: u32) -> Vec<&'a Event> {
    let mut current = name.to_string();
    let mut out = Vec::new();
    for e in events.iter().rev() {
        if e.version == version && e.model == current {
            out.push(e);
        }
        if e.version == 0 && e.kind == "rename" {
            if let Ok(Change::Rename { to }) = e.change() {
                if to == current {
                    out.push(e);
                    current = e.model.clone();
                } else if e.model == current {
                    // The name was another model's before it moved away: nothing earlier is ours.
                    break;
                }
            }
        }
    }
    out.reverse();
    out
}
