//! Signed provenance of a model version, in the formats other tools read: a DSSE envelope
//! (`payloadType`, base64 `payload`, `signatures[].keyid`/`sig`) around an in-toto
//! Statement v1 whose predicate is SLSA Provenance v1, signed with ed25519.
//!
//! Pure: the caller reads key files, artifact bytes and objects; this module only encodes,
//! hashes, signs and checks.
//!
//! # The build type ([`BUILD_TYPE`])
//!
//! A statement of ours describes one `repro run` whose outputs became a registered model
//! version. Its predicate holds:
//!
//! - `buildDefinition.externalParameters` (what the user chose): `command` (argv list),
//!   `workdir` (relative to the repository root), `params` (flattened `a.b` → value),
//!   `seed`, `seedGenerated`, and `environment`: `python` {`version`, `interpreter`,
//!   `kind`}, `declaredFile` {`path`, `format`, `digest`}, `registered` (`NAME:V`),
//!   `packages` (`name==version`, as installed), `variables` (the determinism-relevant
//!   environment variables the command saw).
//! - `buildDefinition.internalParameters` (what repro decided): `runId`, `runName`,
//!   `lineage` (the record's `blake3:` digest, which covers everything the record holds),
//!   `model`, `version`, `registryHead` {`seq`, `hash`} (the registry event log's last
//!   event when the statement was made), `replayOf`, `platform` {`os`, `kernel`, `arch`,
//!   `libc`}.
//! - `buildDefinition.resolvedDependencies`: resource descriptors, each with an
//!   `annotations.role`: `code` (the git commit, `digest.gitCommit`), `diff` (uncommitted
//!   changes), `untracked` (untracked files stored with the run), `script`, `environment`
//!   (the declared environment file and its companions), `params` (params files), `input`
//!   (each input data snapshot; named by its path, its digest is that of repro's snapshot
//!   manifest, which names every file by BLAKE3).
//! - `runDetails.builder` {`id`: [`BUILDER_ID`], `version.repro`}, `runDetails.metadata`
//!   {`invocationId`: the run id, `startedOn`, `finishedOn`}, `runDetails.byproducts`: the
//!   stdout and stderr logs.
//!
//! Digest sets use the in-toto algorithm names; `blake3` is bare hex (no `blake3:` prefix),
//! and a `sha256` next to it is always of the same bytes, never of something else.

use std::collections::BTreeMap;

use base64::alphabet;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig, STANDARD};
use base64::engine::DecodePaddingMode;
use base64::Engine as _;
use ed25519_dalek::Signer as _;
pub use ed25519_dalek::{SigningKey, VerifyingKey};
use serde_json::{json, Map, Value};
use sha2::Digest as _;

use crate::record::RunRecord;
use crate::{CoreError, Digest, RunId};

/// The DSSE payload type of an in-toto statement.
pub const PAYLOAD_TYPE: &str = "application/vnd.in-toto+json";
/// The in-toto Statement version we write and read.
pub const STATEMENT_TYPE: &str = "https://in-toto.io/Statement/v1";
/// The predicate: SLSA Provenance v1.
pub const PREDICATE_TYPE: &str = "https://slsa.dev/provenance/v1";
/// What a repro-run statement's parameters mean (see the module documentation). The
/// `.invalid` host cannot collide with anyone's real build type; bump `v1` when a field
/// changes meaning.
pub const BUILD_TYPE: &str = "https://repro.invalid/buildtypes/run/v1";
/// The builder: repro on the user's own machine. Its trust is the trust in the key that
/// signed, not in a hosted build service, which this id says by being local.
pub const BUILDER_ID: &str = "https://repro.invalid/builders/local/v1";

/// DSSE base64: we write standard base64 with padding; the DSSE spec asks readers to take
/// the URL-safe alphabet and missing padding too.
const LENIENT_STANDARD: GeneralPurpose = GeneralPurpose::new(
    &alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);
const LENIENT_URL_SAFE: GeneralPurpose = GeneralPurpose::new(
    &alphabet::URL_SAFE,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// DSSE v1 pre-authentication encoding: what is actually signed, so that the payload type
/// is covered and no payload can be read as another type.
pub fn pae(payload_type: &str, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(payload_type.len() + payload.len() + 32);
    out.extend_from_slice(format!("DSSEv1 {} {} {} ", payload_type.len(), payload_type, payload.len()).as_bytes());
    out.extend_from_slice(payload);
    out
}

/// Lowercase hex SHA-256.
pub fn hex_sha256(bytes: &[u8]) -> String {
    hex(&sha2::Sha256::digest(bytes))
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(s, "{b:02x}");
    }
    s
}

fn is_hex64(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// The key id securesystemslib (1.x) gives an ed25519 key by default: SHA-256 of the
/// canonical JSON `{"keytype":"ed25519","keyval":{"public":"<hex>"},"scheme":"ed25519"}`.
/// Using the same id lets `securesystemslib.dsse.Envelope.verify` and in-toto tooling
/// match our signatures to the key without being told the id.
///
/// Not the id of securesystemslib's legacy `keys` API (before 1.0, and in-toto's old key
/// files), which also hashed `"keyid_hash_algorithms":["sha256","sha512"]` and so gives
/// another id for the same key; the `Signer`/`SSlibKey` API uses this form (0.31 and 1.x alike).
pub fn sslib_keyid(key: &VerifyingKey) -> String {
    // Keys already in sorted order, no whitespace, and hex needs no escaping: this string
    // is the canonical form.
    let canonical =
        format!(r#"{{"keytype":"ed25519","keyval":{{"public":"{}"}},"scheme":"ed25519"}}"#, hex(key.as_bytes()));
    hex_sha256(canonical.as_bytes())
}

/// One signature of an envelope.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Signature {
    /// An unauthenticated hint of which key signed ([`sslib_keyid`] for ours); may be empty.
    pub keyid: String,
    pub sig: Vec<u8>,
}

/// A DSSE envelope.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Envelope {
    pub payload_type: String,
    pub payload: Vec<u8>,
    pub signatures: Vec<Signature>,
}

fn envelope_error(message: impl Into<String>) -> CoreError {
    CoreError::Envelope(message.into())
}

fn b64_decode(field: &str, text: &str) -> Result<Vec<u8>, CoreError> {
    LENIENT_STANDARD
        .decode(text)
        .or_else(|_| LENIENT_URL_SAFE.decode(text))
        .map_err(|e| envelope_error(format!("`{field}` is not base64 ({e})")))
}

impl Envelope {
    /// The envelope as compact JSON on one line (no trailing newline): keys `payload`,
    /// `payloadType`, `signatures` [{`keyid`, `sig`}], byte fields in standard base64.
    pub fn to_json_line(&self) -> String {
        let signatures: Vec<Value> =
            self.signatures.iter().map(|s| json!({"keyid": s.keyid, "sig": STANDARD.encode(&s.sig)})).collect();
        json!({
            "payload": STANDARD.encode(&self.payload),
            "payloadType": self.payload_type,
            "signatures": signatures,
        })
        .to_string()
    }

    /// Reads one envelope (surrounding whitespace allowed). Unknown fields are ignored, as
    /// DSSE readers do; a missing `keyid` reads as empty.
    pub fn parse(text: &str) -> Result<Envelope, CoreError> {
        let value: Value = serde_json::from_str(text.trim()).map_err(|e| envelope_error(format!("not JSON ({e})")))?;
        let obj = value.as_object().ok_or_else(|| envelope_error("expected a JSON object"))?;
        let string = |obj: &Map<String, Value>, field: &str, what: &str| -> Result<String, CoreError> {
            match obj.get(field) {
                Some(Value::String(s)) => Ok(s.clone()),
                Some(_) => Err(envelope_error(format!("`{what}` must be a string"))),
                None => Err(envelope_error(format!("`{what}` is missing"))),
            }
        };
        let payload_type = string(obj, "payloadType", "payloadType")?;
        let payload = b64_decode("payload", &string(obj, "payload", "payload")?)?;
        let list = match obj.get("signatures") {
            Some(Value::Array(list)) => list,
            Some(_) => return Err(envelope_error("`signatures` must be a list")),
            None => return Err(envelope_error("`signatures` is missing")),
        };
        let mut signatures = Vec::with_capacity(list.len());
        for (i, item) in list.iter().enumerate() {
            let sig_obj =
                item.as_object().ok_or_else(|| envelope_error(format!("`signatures[{i}]` must be an object")))?;
            let sig_field = format!("signatures[{i}].sig");
            let sig = b64_decode(&sig_field, &string(sig_obj, "sig", &sig_field)?)?;
            let keyid = match sig_obj.get("keyid") {
                None | Some(Value::Null) => String::new(),
                Some(_) => string(sig_obj, "keyid", &format!("signatures[{i}].keyid"))?,
            };
            signatures.push(Signature { keyid, sig });
        }
        Ok(Envelope { payload_type, payload, signatures })
    }
}

/// Signs `payload` (over its PAE) with one signature whose keyid is [`sslib_keyid`].
pub fn sign_envelope(key: &SigningKey, payload_type: &str, payload: &[u8]) -> Envelope {
    let sig = key.sign(&pae(payload_type, payload));
    Envelope {
        payload_type: payload_type.to_string(),
        payload: payload.to_vec(),
        signatures: vec![Signature { keyid: sslib_keyid(&key.verifying_key()), sig: sig.to_bytes().to_vec() }],
    }
}

/// Checks that a signature carrying `key`'s keyid verifies over the envelope's PAE
/// (strict ed25519: no malleable or small-order signatures). Does not look at the payload
/// type: [`open_statement`] does.
pub fn verify_envelope(env: &Envelope, key: &VerifyingKey) -> Result<(), CoreError> {
    let keyid = sslib_keyid(key);
    if env.signatures.is_empty() {
        return Err(CoreError::Signature("the envelope has no signatures".into()));
    }
    let mine: Vec<&Signature> = env.signatures.iter().filter(|s| s.keyid == keyid).collect();
    if mine.is_empty() {
        let others: Vec<&str> =
            env.signatures.iter().map(|s| if s.keyid.is_empty() { "(no keyid)" } else { s.keyid.as_str() }).collect();
        return Err(CoreError::Signature(format!(
            "no signature by key {keyid}; the envelope is signed by {}: pass the public key that signed it",
            others.join(", ")
        )));
    }
    let message = pae(&env.payload_type, &env.payload);
    for s in &mine {
        let Ok(bytes) = <[u8; 64]>::try_from(s.sig.as_slice()) else { continue };
        if key.verify_strict(&message, &ed25519_dalek::Signature::from_bytes(&bytes)).is_ok() {
            return Ok(());
        }
    }
    let sizes = if mine.iter().all(|s| s.sig.len() != 64) { " (not a 64-byte ed25519 signature)" } else { "" };
    Err(CoreError::Signature(format!(
        "the signature by key {keyid} does not verify{sizes}: the payload or the signature changed after signing"
    )))
}

/// One artifact file of a model version: a subject of the statement.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ArtifactFile {
    /// The file's path within the version's artifacts, `/`-separated.
    pub name: String,
    /// Lowercase hex.
    pub sha256: String,
    /// Lowercase hex, without the `blake3:` prefix.
    pub blake3: String,
    pub size: u64,
}

/// Everything a statement says beyond the run record.
#[derive(Clone, Copy, Debug)]
pub struct StatementInput<'a> {
    pub record: &'a RunRecord,
    /// The record's lineage digest, as stored (the caller has already checked it).
    pub lineage: &'a Digest,
    pub model: &'a str,
    pub version: u32,
    /// The subjects; at least one, names unique.
    pub artifacts: &'a [ArtifactFile],
    /// SHA-256 (lowercase hex) of objects the record names by BLAKE3 (the script, the
    /// environment file, the diff, input snapshot manifests…), where the caller read them.
    /// A dependency gets a `sha256` digest exactly when its object is here.
    pub object_sha256: &'a BTreeMap<Digest, String>,
    /// The registry event log's last event (seq, hash) when the statement is made.
    pub registry_head: Option<(u64, &'a Digest)>,
    /// repro's own version, for `runDetails.builder.version`.
    pub repro_version: &'a str,
    /// [`crate::metrics::metrics_digest`] of the run's metric points and their number: a
    /// byproduct named `metrics`, so metrics edited after signing are caught.
    pub metrics: Option<(&'a Digest, usize)>,
}

fn statement_error(message: impl Into<String>) -> CoreError {
    CoreError::Statement(message.into())
}

fn digest_set(d: &Digest, sha: &BTreeMap<Digest, String>) -> Value {
    let mut set = Map::new();
    set.insert("blake3".into(), d.hex().into());
    if let Some(s) = sha.get(d) {
        set.insert("sha256".into(), s.as_str().into());
    }
    Value::Object(set)
}

fn descriptor(name: &str, uri: Option<String>, digest: Value, annotations: Value) -> Value {
    let mut rd = Map::new();
    rd.insert("name".into(), name.into());
    if let Some(uri) = uri {
        rd.insert("uri".into(), uri.into());
    }
    rd.insert("digest".into(), digest);
    rd.insert("annotations".into(), annotations);
    Value::Object(rd)
}

/// A remote URL without `user:password@`: a statement is shared, a token in a remote is not.
fn without_credentials(url: &str) -> String {
    match url.split_once("://") {
        Some((scheme, rest)) => {
            let authority_end = rest.find('/').unwrap_or(rest.len());
            match rest[..authority_end].rfind('@') {
                Some(at) => format!("{scheme}://{}", &rest[at + 1..]),
                None => url.to_string(),
            }
        }
        None => url.to_string(),
    }
}

fn resolved_dependencies(record: &RunRecord, sha: &BTreeMap<Digest, String>) -> Vec<Value> {
    let mut deps = Vec::new();
    let code = &record.code;
    if let Some(commit) = &code.commit {
        let location = match (&code.remote, &code.repo_root) {
            (Some(remote), _) => without_credentials(remote),
            (None, Some(root)) => format!("file://{root}"),
            (None, None) => String::new(),
        };
        let mut annotations = json!({"role": "code", "dirty": code.dirty});
        if let (Some(branch), Some(obj)) = (&code.branch, annotations.as_object_mut()) {
            obj.insert("branch".into(), branch.as_str().into());
        }
        deps.push(descriptor(
            "code",
            Some(format!("git+{location}@{commit}")),
            json!({"gitCommit": commit}),
            annotations,
        ));
    }
    if let Some(diff) = &code.diff {
        deps.push(descriptor(
            "code.diff",
            None,
            digest_set(diff, sha),
            json!({"role": "diff", "files": code.diff_files}),
        ));
    }
    for f in &code.untracked {
        deps.push(descriptor(&f.path, None, digest_set(&f.digest, sha), json!({"role": "untracked", "size": f.size})));
    }
    let script = &record.script;
    if let Some(d) = &script.digest {
        let name = script.path.as_deref().or(script.argv.first().map(String::as_str)).unwrap_or("script");
        let mut annotations = json!({"role": "script", "kind": script.kind});
        if let (Some(state), Some(obj)) = (&script.git_state, annotations.as_object_mut()) {
            obj.insert("gitState".into(), state.as_str().into());
        }
        deps.push(descriptor(name, None, digest_set(d, sha), annotations));
    }
    if let Some(declared) = &record.environment.declared {
        deps.push(descriptor(
            &declared.path,
            None,
            digest_set(&declared.digest, sha),
            json!({"role": "environment", "format": declared.format}),
        ));
        for c in &declared.companions {
            deps.push(descriptor(&c.path, None, digest_set(&c.digest, sha), json!({"role": "environment"})));
        }
    }
    for f in &record.params.files {
        deps.push(descriptor(&f.path, None, digest_set(&f.digest, sha), json!({"role": "params"})));
    }
    for input in &record.inputs {
        let mut annotations = json!({
            "role": "input",
            "digestOf": "repro snapshot manifest",
            "files": input.files,
            "bytes": input.bytes,
            "referenceOnly": input.reference,
        });
        if let (Some(dataset), Some(obj)) = (&input.dataset, annotations.as_object_mut()) {
            obj.insert("dataset".into(), dataset.as_str().into());
        }
        deps.push(descriptor(&input.path, None, digest_set(&input.snapshot, sha), annotations));
    }
    deps
}

fn external_parameters(record: &RunRecord, sha: &BTreeMap<Digest, String>) -> Value {
    let env = &record.environment;
    let mut environment = Map::new();
    if let Some(py) = &env.python {
        environment
            .insert("python".into(), json!({"version": py.version, "interpreter": py.executable, "kind": py.kind}));
        let packages: Vec<String> = py.packages.iter().map(|p| format!("{}=={}", p.name, p.version)).collect();
        environment.insert("packages".into(), packages.into());
    }
    if let Some(declared) = &env.declared {
        environment.insert(
            "declaredFile".into(),
            json!({"path": declared.path, "format": declared.format, "digest": digest_set(&declared.digest, sha)}),
        );
    }
    if let Some(registered) = &env.registered {
        environment.insert("registered".into(), registered.as_str().into());
    }
    environment.insert("variables".into(), json!(env.variables));
    json!({
        "command": record.script.argv,
        "workdir": record.script.workdir,
        "params": record.params.values,
        "seed": record.seed.value,
        "seedGenerated": record.seed.generated,
        "environment": environment,
    })
}

/// The in-toto Statement v1 (SLSA Provenance v1 predicate) for a model version. Subjects
/// come out sorted by name, so the same version always gives the same statement.
pub fn statement(input: &StatementInput<'_>) -> Result<Value, CoreError> {
    if input.artifacts.is_empty() {
        return Err(statement_error("a model version needs at least one artifact file to attest"));
    }
    let mut artifacts: Vec<&ArtifactFile> = input.artifacts.iter().collect();
    artifacts.sort_by(|a, b| a.name.cmp(&b.name));
    for pair in artifacts.windows(2) {
        if pair[0].name == pair[1].name {
            return Err(statement_error(format!("artifact '{}' is listed twice", pair[0].name)));
        }
    }
    for a in &artifacts {
        if a.name.is_empty() {
            return Err(statement_error("an artifact file has an empty name"));
        }
        if !is_hex64(&a.sha256) || !is_hex64(&a.blake3) {
            return Err(statement_error(format!(
                "artifact '{}': digests must be 64 lowercase hex digits (sha256 '{}', blake3 '{}')",
                a.name, a.sha256, a.blake3
            )));
        }
    }
    for (d, s) in input.object_sha256 {
        if !is_hex64(s) {
            return Err(statement_error(format!("sha256 of {d} must be 64 lowercase hex digits, not '{s}'")));
        }
    }
    let record = input.record;
    let subject: Vec<Value> =
        artifacts.iter().map(|a| json!({"name": a.name, "digest": {"sha256": a.sha256, "blake3": a.blake3}})).collect();

    let mut internal = Map::new();
    internal.insert("runId".into(), record.id.as_str().into());
    if let Some(name) = &record.name {
        internal.insert("runName".into(), name.as_str().into());
    }
    internal.insert("lineage".into(), input.lineage.as_str().into());
    internal.insert("model".into(), input.model.into());
    internal.insert("version".into(), input.version.into());
    if let Some((seq, hash)) = input.registry_head {
        internal.insert("registryHead".into(), json!({"seq": seq, "hash": hash.as_str()}));
    }
    if let Some(of) = &record.replay_of {
        internal.insert("replayOf".into(), of.as_str().into());
    }
    let os = &record.environment.os;
    internal.insert("platform".into(), json!({"os": os.name, "kernel": os.kernel, "arch": os.arch, "libc": os.libc}));

    let mut metadata = Map::new();
    metadata.insert("invocationId".into(), record.id.as_str().into());
    metadata.insert("startedOn".into(), record.started_at.as_str().into());
    if let Some(ended) = &record.ended_at {
        metadata.insert("finishedOn".into(), ended.as_str().into());
    }
    let mut byproducts: Vec<Value> = [("stdout", &record.logs.stdout), ("stderr", &record.logs.stderr)]
        .into_iter()
        .filter_map(|(name, d)| d.as_ref().map(|d| json!({"name": name, "digest": digest_set(d, input.object_sha256)})))
        .collect();
    if let Some((d, points)) = input.metrics {
        byproducts.push(json!({
            "name": "metrics",
            "digest": {"blake3": d.hex()},
            "annotations": {"points": points, "digestOf": "repro metric points (key, step, time, value)"},
        }));
    }
    let mut run_details = Map::new();
    run_details.insert("builder".into(), json!({"id": BUILDER_ID, "version": {"repro": input.repro_version}}));
    run_details.insert("metadata".into(), Value::Object(metadata));
    if !byproducts.is_empty() {
        run_details.insert("byproducts".into(), byproducts.into());
    }

    Ok(json!({
        "_type": STATEMENT_TYPE,
        "subject": subject,
        "predicateType": PREDICATE_TYPE,
        "predicate": {
            "buildDefinition": {
                "buildType": BUILD_TYPE,
                "externalParameters": external_parameters(record, input.object_sha256),
                "internalParameters": internal,
                "resolvedDependencies": resolved_dependencies(record, input.object_sha256),
            },
            "runDetails": run_details,
        },
    }))
}

/// The bytes to sign: the statement as compact JSON.
pub fn statement_payload(statement: &Value) -> Vec<u8> {
    statement.to_string().into_bytes()
}

/// A subject's digests.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SubjectDigests {
    pub sha256: String,
    pub blake3: String,
}

/// What verifying a model version needs from one of our statements.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StatementSummary {
    /// Artifact file name → digests.
    pub subjects: BTreeMap<String, SubjectDigests>,
    pub run_id: RunId,
    pub lineage: Digest,
    pub model: String,
    pub version: u32,
    pub registry_head: Option<(u64, Digest)>,
    /// The `metrics` byproduct's digest, when the statement names one.
    pub metrics: Option<Digest>,
    /// The `gitCommit` of the `code` dependency, when the run was in a git repository.
    pub git_commit: Option<String>,
    pub builder_id: String,
}

fn field<'v>(value: &'v Value, path: &str) -> Result<&'v Value, CoreError> {
    path.split('.').try_fold(value, |v, key| v.get(key)).ok_or_else(|| statement_error(format!("`{path}` is missing")))
}

fn str_field<'v>(value: &'v Value, path: &str) -> Result<&'v str, CoreError> {
    field(value, path)?.as_str().ok_or_else(|| statement_error(format!("`{path}` must be a string")))
}

/// Reads a statement of ours (the payload of an envelope). Anything else — another
/// statement version, another predicate, another build type — is an error naming what it
/// found, since the fields verification needs would not be there.
pub fn parse_statement(payload: &[u8]) -> Result<StatementSummary, CoreError> {
    let v: Value = serde_json::from_slice(payload).map_err(|e| statement_error(format!("not JSON ({e})")))?;
    if !v.is_object() {
        return Err(statement_error("expected a JSON object"));
    }
    let expect = |path: &str, want: &str| -> Result<(), CoreError> {
        let got = str_field(&v, path)?;
        if got == want {
            Ok(())
        } else {
            Err(statement_error(format!("`{path}` is '{got}', expected '{want}'")))
        }
    };
    expect("_type", STATEMENT_TYPE)?;
    expect("predicateType", PREDICATE_TYPE)?;
    expect("predicate.buildDefinition.buildType", BUILD_TYPE)?;

    let list = field(&v, "subject")?.as_array().ok_or_else(|| statement_error("`subject` must be a list"))?;
    if list.is_empty() {
        return Err(statement_error("`subject` is empty: the statement attests no artifact"));
    }
    let mut subjects = BTreeMap::new();
    for (i, s) in list.iter().enumerate() {
        let name =
            str_field(s, "name").map_err(|_| statement_error(format!("`subject[{i}].name` must be a string")))?;
        let digest = |alg: &str| -> Result<String, CoreError> {
            match s.get("digest").and_then(|d| d.get(alg)).and_then(Value::as_str) {
                Some(h) if is_hex64(h) => Ok(h.to_string()),
                _ => Err(statement_error(format!("subject '{name}' has no {alg} digest of 64 lowercase hex digits"))),
            }
        };
        let digests = SubjectDigests { sha256: digest("sha256")?, blake3: digest("blake3")? };
        if subjects.insert(name.to_string(), digests).is_some() {
            return Err(statement_error(format!("subject '{name}' is listed twice")));
        }
    }

    let internal = field(&v, "predicate.buildDefinition.internalParameters")?;
    let run_id = RunId::parse(str_field(internal, "runId").map_err(in_internal)?)?;
    let lineage = Digest::parse(str_field(internal, "lineage").map_err(in_internal)?)?;
    let model = str_field(internal, "model").map_err(in_internal)?.to_string();
    let version = field(internal, "version")
        .map_err(in_internal)?
        .as_u64()
        .and_then(|n| u32::try_from(n).ok())
        .ok_or_else(|| statement_error("`internalParameters.version` must be a version number"))?;
    let registry_head = match internal.get("registryHead") {
        None | Some(Value::Null) => None,
        Some(head) => {
            let seq = head
                .get("seq")
                .and_then(Value::as_u64)
                .ok_or_else(|| statement_error("`internalParameters.registryHead.seq` must be a number"))?;
            let hash = head
                .get("hash")
                .and_then(Value::as_str)
                .ok_or_else(|| statement_error("`internalParameters.registryHead.hash` must be a string"))?;
            Some((seq, Digest::parse(hash)?))
        }
    };
    let deps = match v.pointer("/predicate/buildDefinition/resolvedDependencies") {
        None | Some(Value::Null) => &[][..],
        Some(Value::Array(deps)) => deps.as_slice(),
        Some(_) => return Err(statement_error("`resolvedDependencies` must be a list")),
    };
    let git_commit =
        deps.iter().find_map(|d| d.pointer("/digest/gitCommit").and_then(Value::as_str)).map(str::to_string);
    let builder_id = str_field(&v, "predicate.runDetails.builder.id")?.to_string();
    let metrics = match v.pointer("/predicate/runDetails/byproducts").and_then(Value::as_array) {
        Some(list) => match list.iter().find(|b| b.get("name").and_then(Value::as_str) == Some("metrics")) {
            Some(b) => {
                let hex = b
                    .pointer("/digest/blake3")
                    .and_then(Value::as_str)
                    .filter(|h| is_hex64(h))
                    .ok_or_else(|| statement_error("the `metrics` byproduct has no blake3 digest"))?;
                Some(Digest::parse(&format!("blake3:{hex}"))?)
            }
            None => None,
        },
        None => None,
    };
    Ok(StatementSummary { subjects, run_id, lineage, model, version, registry_head, metrics, git_commit, builder_id })
}

fn in_internal(e: CoreError) -> CoreError {
    match e {
        CoreError::Statement(m) => statement_error(format!("{m} in `internalParameters`")),
        other => other,
    }
}

/// Verifies an envelope of ours with `key` and reads its statement: the payload type, the
/// signature, then the statement's shape, each failure saying which.
pub fn open_statement(env: &Envelope, key: &VerifyingKey) -> Result<StatementSummary, CoreError> {
    if env.payload_type != PAYLOAD_TYPE {
        return Err(envelope_error(format!("payloadType is '{}', expected '{PAYLOAD_TYPE}'", env.payload_type)));
    }
    verify_envelope(env, key)?;
    parse_statement(&env.payload)
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::record::sample;
    use crate::record::{DataRef, FileEntry};

    /// A fixed key so signatures (deterministic in ed25519) can be compared byte for byte.
    fn key7() -> SigningKey {
        SigningKey::from_bytes(&[7; 32])
    }

    fn artifact(name: &str, bytes: &[u8]) -> ArtifactFile {
        ArtifactFile {
            name: name.into(),
            sha256: hex_sha256(bytes),
            blake3: blake3::hash(bytes).to_hex().to_string(),
            size: bytes.len() as u64,
        }
    }

    fn sample_statement(record: &RunRecord, sha: &BTreeMap<Digest, String>) -> Value {
        let lineage = record.lineage();
        let head = Digest::of_bytes(b"event 9");
        let artifacts = [artifact("model.pkl", b"weights"), artifact("config.json", b"{}")];
        statement(&StatementInput {
            record,
            lineage: &lineage,
            model: "churn",
            version: 3,
            artifacts: &artifacts,
            object_sha256: sha,
            registry_head: Some((9, &head)),
            repro_version: "0.1.0",
            metrics: None,
        })
        .expect("statement")
    }

    #[test]
    fn pae_matches_the_dsse_spec() {
        // The example from the DSSE protocol document.
        assert_eq!(
            pae("http://example.com/HelloWorld", b"hello world"),
            b"DSSEv1 29 http://example.com/HelloWorld 11 hello world"
        );
        assert_eq!(pae("", b""), b"DSSEv1 0  0 ");
        // Lengths count bytes, not characters.
        assert_eq!(pae("é", "ü".as_bytes()), "DSSEv1 2 é 2 ü".as_bytes());
    }

    #[test]
    fn keyid_matches_securesystemslib() {
        // Expected values computed with securesystemslib 1.6.0 (cryptography 50.0.2):
        //   pub = Ed25519PrivateKey.from_private_bytes(SEED).public_key()
        //   SSlibKey.from_crypto(pub).keyid
        // with SEED = bytes([7] * 32) and bytes(range(32)). (securesystemslib 0.31's legacy
        // keys.format_metadata_to_key gives eab68a81… for the first: it hashes
        // keyid_hash_algorithms too; nothing current uses that id.)
        assert_eq!(
            sslib_keyid(&key7().verifying_key()),
            "bfe1a83869e5bf574e3ff3acbb83f840de84a990d10059f3096f0bf4f2b90c10"
        );
        let seed: [u8; 32] = std::array::from_fn(|i| i as u8);
        let key = SigningKey::from_bytes(&seed).verifying_key();
        assert_eq!(hex(key.as_bytes()), "03a107bff3ce10be1d70dd18e74bc09967e4d6309ba50d5f1ddc8664125531b8");
        assert_eq!(sslib_keyid(&key), "63d00ee3cf4f5c61ad94efa696c68f13b608fe56ecea13fb144a6fd18e9235b9");
    }

    #[test]
    fn envelope_is_byte_identical_to_securesystemslib() {
        // securesystemslib 1.6.0: Envelope(b'{"hello":"world"}', PAYLOAD_TYPE, {}).sign(
        //   CryptoSigner(Ed25519PrivateKey.from_private_bytes(bytes([7] * 32)))), then
        // json.dumps(env.to_dict(), separators=(",", ":")).
        let expected = concat!(
            r#"{"payload":"eyJoZWxsbyI6IndvcmxkIn0=","payloadType":"application/vnd.in-toto+json","#,
            r#""signatures":[{"keyid":"bfe1a83869e5bf574e3ff3acbb83f840de84a990d10059f3096f0bf4f2b90c10","#,
            r#""sig":"FQNnoeu0UNR5ZgHHOQ0mfYI1VzNq3iOISppniUaLJmS3FI6KPM5ReFQ0MG2neIcudfsBCSlKeU6UNWvUO+N/Ag=="}]}"#
        );
        let env = sign_envelope(&key7(), PAYLOAD_TYPE, br#"{"hello":"world"}"#);
        assert_eq!(env.to_json_line(), expected);
        let parsed = Envelope::parse(expected).expect("parse");
        assert_eq!(parsed, env);
        verify_envelope(&parsed, &key7().verifying_key()).expect("verifies");
    }

    #[test]
    fn verify_says_which_check_failed() {
        let key = key7();
        let env = sign_envelope(&key, PAYLOAD_TYPE, b"{}");
        verify_envelope(&env, &key.verifying_key()).expect("verifies");

        let mut tampered = env.clone();
        tampered.payload = b"{ }".to_vec();
        let e = verify_envelope(&tampered, &key.verifying_key()).expect_err("tampered payload").to_string();
        assert!(e.contains("does not verify") && e.contains("changed after signing"), "{e}");

        // The payload type is signed too.
        let mut retyped = env.clone();
        retyped.payload_type = "application/json".into();
        assert!(verify_envelope(&retyped, &key.verifying_key()).is_err());

        let other = SigningKey::from_bytes(&[8; 32]).verifying_key();
        let e = verify_envelope(&env, &other).expect_err("other key").to_string();
        assert!(e.contains("no signature by key") && e.contains(&sslib_keyid(&key.verifying_key())), "{e}");

        let mut short = env.clone();
        short.signatures[0].sig.truncate(10);
        let e = verify_envelope(&short, &key.verifying_key()).expect_err("short").to_string();
        assert!(e.contains("not a 64-byte"), "{e}");

        let unsigned = Envelope { signatures: vec![], ..env.clone() };
        let e = verify_envelope(&unsigned, &key.verifying_key()).expect_err("unsigned").to_string();
        assert!(e.contains("no signatures"), "{e}");

        // A bad signature under our keyid does not hide a good one under it.
        let mut two = env.clone();
        two.signatures.insert(0, Signature { keyid: env.signatures[0].keyid.clone(), sig: vec![0; 64] });
        verify_envelope(&two, &key.verifying_key()).expect("the second signature verifies");
    }

    #[test]
    fn verify_is_strict() {
        // A small-order public key (here the identity point) with R = identity and s = 0
        // "signs" every message under the lax ed25519 equation; strict verification refuses.
        let mut identity = [0u8; 32];
        identity[0] = 1;
        let weak = VerifyingKey::from_bytes(&identity).expect("decodes");
        let mut sig = [0u8; 64];
        sig[..32].copy_from_slice(&identity);
        let env = Envelope {
            payload_type: PAYLOAD_TYPE.into(),
            payload: b"anything at all".to_vec(),
            signatures: vec![Signature { keyid: sslib_keyid(&weak), sig: sig.to_vec() }],
        };
        use ed25519_dalek::Verifier as _;
        let lax = weak.verify(&pae(&env.payload_type, &env.payload), &ed25519_dalek::Signature::from_bytes(&sig));
        assert!(lax.is_ok(), "the lax check accepts the forgery");
        assert!(verify_envelope(&env, &weak).is_err());
    }

    #[test]
    fn parse_accepts_what_dsse_allows() {
        // URL-safe alphabet and missing padding.
        let env =
            Envelope::parse(r#"{"payload":"-_8","payloadType":"t","signatures":[{"sig":"AA"}]}"#).expect("lenient");
        assert_eq!(env.payload, vec![0xfb, 0xff]);
        assert_eq!(env.signatures, vec![Signature { keyid: String::new(), sig: vec![0] }]);
        let env =
            Envelope::parse("  {\"payload\":\"\",\"payloadType\":\"t\",\"signatures\":[],\"x\":1}\n").expect("ws");
        assert!(env.payload.is_empty() && env.signatures.is_empty());
    }

    #[test]
    fn parse_rejects_garbage_clearly() {
        let cases = [
            ("", "not JSON"),
            ("{", "not JSON"),
            ("[]", "expected a JSON object"),
            (r#"{"payloadType":"t","signatures":[]}"#, "`payload` is missing"),
            (r#"{"payload":"","signatures":[]}"#, "`payloadType` is missing"),
            (r#"{"payload":"","payloadType":"t"}"#, "`signatures` is missing"),
            (r#"{"payload":5,"payloadType":"t","signatures":[]}"#, "`payload` must be a string"),
            (r#"{"payload":"","payloadType":null,"signatures":[]}"#, "`payloadType` must be a string"),
            (r#"{"payload":"!!","payloadType":"t","signatures":[]}"#, "`payload` is not base64"),
            (r#"{"payload":"","payloadType":"t","signatures":{}}"#, "`signatures` must be a list"),
            (r#"{"payload":"","payloadType":"t","signatures":[1]}"#, "`signatures[0]` must be an object"),
            (r#"{"payload":"","payloadType":"t","signatures":[{"keyid":"k"}]}"#, "`signatures[0].sig` is missing"),
            (r#"{"payload":"","payloadType":"t","signatures":[{"sig":"*"}]}"#, "`signatures[0].sig` is not base64"),
            (
                r#"{"payload":"","payloadType":"t","signatures":[{"sig":"","keyid":7}]}"#,
                "`signatures[0].keyid` must be",
            ),
        ];
        for (text, want) in cases {
            let e = Envelope::parse(text).expect_err(text).to_string();
            assert!(e.starts_with("invalid DSSE envelope: ") && e.contains(want), "{text}: {e}");
            assert!(!e.contains('\n'), "one line: {e}");
        }
    }

    #[test]
    fn statement_has_the_in_toto_and_slsa_shape() {
        let mut record = sample::record();
        record.code.remote = Some("https://user:token@example.com/org/repo.git".into());
        record.code.diff = Some(Digest::of_bytes(b"diff"));
        record.code.diff_files = vec!["train.py".into()];
        record.code.dirty = true;
        record.inputs.push(DataRef {
            path: "data/big".into(),
            snapshot: Digest::of_bytes(b"manifest"),
            files: 20,
            bytes: 1 << 30,
            reference: true,
            dataset: Some("big:2".into()),
        });
        record.params.files =
            vec![FileEntry { path: "params.yaml".into(), size: 3, mode: 0o644, digest: Digest::of_bytes(b"lr: 1") }];
        record.environment.registered = Some("train-env:1".into());
        record.logs.stdout = Some(Digest::of_bytes(b"out"));
        let script = record.script.digest.clone().expect("sample script digest");
        let sha = BTreeMap::from([(script.clone(), hex_sha256(b"print(1)"))]);
        let s = sample_statement(&record, &sha);

        assert_eq!(s["_type"], STATEMENT_TYPE);
        assert_eq!(s["predicateType"], PREDICATE_TYPE);
        let names: Vec<&str> =
            s["subject"].as_array().expect("list").iter().filter_map(|x| x["name"].as_str()).collect();
        assert_eq!(names, ["config.json", "model.pkl"], "sorted by name");
        assert_eq!(s["subject"][1]["digest"]["sha256"], hex_sha256(b"weights"));
        assert_eq!(s["subject"][1]["digest"]["blake3"], blake3::hash(b"weights").to_hex().as_str());

        let bd = &s["predicate"]["buildDefinition"];
        assert_eq!(bd["buildType"], BUILD_TYPE);
        let ext = &bd["externalParameters"];
        assert_eq!(ext["command"], json!(["/v/bin/python", "train.py"]));
        assert_eq!(ext["params"], json!({"lr": 0.1}));
        assert_eq!(ext["seed"], 42);
        assert_eq!(ext["seedGenerated"], false);
        assert_eq!(ext["workdir"], ".");
        let env = &ext["environment"];
        assert_eq!(env["python"]["version"], "3.11.7");
        assert_eq!(env["python"]["interpreter"], "/v/bin/python");
        assert_eq!(env["packages"], json!(["numpy==1.26.4", "scikit-learn==1.4.2", "threadpoolctl==3.5.0"]));
        assert_eq!(env["declaredFile"]["path"], "requirements.txt");
        assert_eq!(env["registered"], "train-env:1");
        assert_eq!(env["variables"]["PYTHONHASHSEED"], "42");

        let int = &bd["internalParameters"];
        assert_eq!(int["runId"], record.id.as_str());
        assert_eq!(int["lineage"], record.lineage().as_str());
        assert_eq!(int["model"], "churn");
        assert_eq!(int["version"], 3);
        assert_eq!(int["registryHead"]["seq"], 9);

        let deps = bd["resolvedDependencies"].as_array().expect("list");
        let role = |r: &str| deps.iter().filter(|d| d["annotations"]["role"] == r).collect::<Vec<_>>();
        let code = role("code");
        assert_eq!(code.len(), 1);
        assert_eq!(code[0]["uri"], "git+https://example.com/org/repo.git@0123456789abcdef0123", "no credentials");
        assert_eq!(code[0]["digest"], json!({"gitCommit": "0123456789abcdef0123"}));
        assert_eq!(code[0]["annotations"]["dirty"], true);
        assert_eq!(role("diff")[0]["digest"]["blake3"], Digest::of_bytes(b"diff").hex());
        let script_dep = role("script");
        assert_eq!(script_dep[0]["name"], "train.py");
        assert_eq!(script_dep[0]["digest"], json!({"blake3": script.hex(), "sha256": hex_sha256(b"print(1)")}));
        assert_eq!(role("environment")[0]["name"], "requirements.txt");
        assert_eq!(role("params")[0]["name"], "params.yaml");
        let inputs = role("input");
        assert_eq!(inputs.len(), 2, "every input");
        assert_eq!(inputs[0]["name"], "data/train.csv");
        assert_eq!(inputs[0]["digest"], json!({"blake3": Digest::of_bytes(b"x").hex()}), "no sha256 not given");
        assert_eq!(inputs[1]["annotations"]["referenceOnly"], true);
        assert_eq!(inputs[1]["annotations"]["dataset"], "big:2");
        assert_eq!(inputs[1]["annotations"]["files"], 20);
        for d in deps {
            for (alg, h) in d["digest"].as_object().expect("digest set") {
                assert!(alg == "gitCommit" || is_hex64(h.as_str().unwrap_or("")), "{alg}: {h}");
            }
        }

        let rd = &s["predicate"]["runDetails"];
        assert_eq!(rd["builder"]["id"], BUILDER_ID);
        assert_eq!(rd["builder"]["version"]["repro"], "0.1.0");
        assert_eq!(rd["metadata"]["invocationId"], record.id.as_str());
        assert_eq!(rd["metadata"]["startedOn"], "2026-01-01T00:00:00.000Z");
        assert_eq!(rd["metadata"]["finishedOn"], "2026-01-01T00:00:01.000Z");
        assert_eq!(rd["byproducts"][0]["name"], "stdout");
    }

    #[test]
    fn statement_outside_git_and_unfinished() {
        let mut record = sample::record();
        record.code = Default::default();
        record.ended_at = None;
        record.environment.python = None;
        record.environment.declared = None;
        record.script.digest = None;
        let s = sample_statement(&record, &BTreeMap::new());
        let deps = s["predicate"]["buildDefinition"]["resolvedDependencies"].as_array().expect("list");
        assert_eq!(deps.len(), 1, "only the input: {deps:?}");
        assert!(s["predicate"]["runDetails"]["metadata"].get("finishedOn").is_none());
        assert!(s["predicate"]["runDetails"].get("byproducts").is_none());
        assert_eq!(parse_statement(&statement_payload(&s)).expect("parse").git_commit, None);

        // A repository without a remote names its folder.
        let mut record = sample::record();
        record.code.remote = None;
        let s = sample_statement(&record, &BTreeMap::new());
        assert_eq!(
            s["predicate"]["buildDefinition"]["resolvedDependencies"][0]["uri"],
            "git+file:///repo@0123456789abcdef0123"
        );
    }

    #[test]
    fn statement_rejects_bad_artifacts() {
        let record = sample::record();
        let lineage = record.lineage();
        let sha = BTreeMap::new();
        let make = |artifacts: &[ArtifactFile]| {
            statement(&StatementInput {
                record: &record,
                lineage: &lineage,
                model: "m",
                version: 1,
                artifacts,
                object_sha256: &sha,
                registry_head: None,
                repro_version: "0",
                metrics: None,
            })
        };
        assert!(make(&[]).expect_err("empty").to_string().contains("at least one artifact"));
        let a = artifact("m.pkl", b"1");
        assert!(make(&[a.clone(), a.clone()]).expect_err("twice").to_string().contains("listed twice"));
        let mut bad = a.clone();
        bad.blake3 = format!("blake3:{}", a.blake3);
        assert!(make(&[bad]).expect_err("prefixed").to_string().contains("64 lowercase hex"));
        let mut bad = a;
        bad.name = String::new();
        assert!(make(&[bad]).expect_err("no name").to_string().contains("empty name"));
    }

    #[test]
    fn statement_round_trips_through_sign_open() {
        let record = sample::record();
        let s = sample_statement(&record, &BTreeMap::new());
        let key = key7();
        let env = sign_envelope(&key, PAYLOAD_TYPE, &statement_payload(&s));
        let line = env.to_json_line();
        assert!(!line.contains('\n'));
        let summary = open_statement(&Envelope::parse(&line).expect("parse"), &key.verifying_key()).expect("open");
        assert_eq!(summary.run_id, record.id);
        assert_eq!(summary.lineage, record.lineage());
        assert_eq!(summary.model, "churn");
        assert_eq!(summary.version, 3);
        assert_eq!(summary.registry_head, Some((9, Digest::of_bytes(b"event 9"))));
        assert_eq!(summary.git_commit.as_deref(), Some("0123456789abcdef0123"));
        assert_eq!(summary.builder_id, BUILDER_ID);
        assert_eq!(summary.subjects.len(), 2);
        assert_eq!(summary.subjects["model.pkl"].sha256, hex_sha256(b"weights"));
        assert_eq!(summary.subjects["model.pkl"].blake3, blake3::hash(b"weights").to_hex().as_str());

        let retyped = Envelope { payload_type: "text/plain".into(), ..env };
        let e = open_statement(&retyped, &key.verifying_key()).expect_err("type").to_string();
        assert!(e.contains("payloadType is 'text/plain'"), "{e}");
    }

    #[test]
    fn parse_statement_rejects_what_is_not_ours() {
        let s = sample_statement(&sample::record(), &BTreeMap::new());
        let with = |pointer: &str, value: Value| {
            let mut s = s.clone();
            *s.pointer_mut(pointer).expect(pointer) = value;
            parse_statement(&statement_payload(&s)).expect_err(pointer).to_string()
        };
        assert!(with("/_type", json!("https://in-toto.io/Statement/v0.1"))
            .contains("`_type` is 'https://in-toto.io/Statement/v0.1'"));
        assert!(with("/predicateType", json!("https://slsa.dev/provenance/v0.2"))
            .contains("expected 'https://slsa.dev/provenance/v1'"));
        assert!(with("/predicate/buildDefinition/buildType", json!("x")).contains("buildType"));
        assert!(with("/subject", json!([])).contains("attests no artifact"));
        assert!(with("/subject/0/digest", json!({"sha256": "ab"})).contains("sha256 digest"));
        assert!(with("/subject/1/name", s["subject"][0]["name"].clone()).contains("listed twice"));
        assert!(with("/predicate/buildDefinition/internalParameters/runId", json!("nope")).contains("invalid run id"));
        assert!(with("/predicate/buildDefinition/internalParameters/version", json!(-1)).contains("version number"));
        assert!(with("/predicate/buildDefinition/internalParameters/lineage", json!(1))
            .contains("`lineage` must be a string in `internalParameters`"));
        assert!(with("/predicate/buildDefinition/internalParameters/registryHead", json!({"seq": 1}))
            .contains("registryHead.hash"));
        assert!(parse_statement(b"[]").expect_err("array").to_string().contains("expected a JSON object"));
        assert!(parse_statement(b"\xff").expect_err("bytes").to_string().contains("not JSON"));
    }

    /// Writes two envelopes over sample statements (`envelopes.jsonl`) and the public key
    /// (`repro.pub`) into `$REPRO_PROVENANCE_OUT`, for the check with the real Python tools:
    /// `crates/repro-cli/tests/fixtures/verify_provenance.py envelopes.jsonl repro.pub`.
    #[test]
    #[ignore = "writes files for a manual interop check with Python"]
    fn write_interop_envelopes() {
        use ed25519_dalek::pkcs8::spki::der::pem::LineEnding;
        use ed25519_dalek::pkcs8::EncodePublicKey as _;

        let out = std::path::PathBuf::from(std::env::var_os("REPRO_PROVENANCE_OUT").expect("REPRO_PROVENANCE_OUT"));
        let key = key7();
        let mut record = sample::record();
        record.code.remote = Some("https://example.com/org/repo.git".into());
        record.code.diff = Some(Digest::of_bytes(b"diff"));
        record.environment.registered = Some("train-env:1".into());
        let script = record.script.digest.clone().expect("script digest");
        let sha = BTreeMap::from([(script, hex_sha256(b"print(1)"))]);
        let first = sample_statement(&record, &sha);
        let mut second = first.clone();
        second["predicate"]["buildDefinition"]["internalParameters"]["version"] = json!(4);
        let mut lines = String::new();
        for s in [&first, &second] {
            lines.push_str(&sign_envelope(&key, PAYLOAD_TYPE, &statement_payload(s)).to_json_line());
            lines.push('\n');
        }
        std::fs::write(out.join("envelopes.jsonl"), lines).expect("write envelopes");
        let pem = key.verifying_key().to_public_key_pem(LineEnding::LF).expect("pem");
        std::fs::write(out.join("repro.pub"), pem).expect("write pub");
        std::fs::write(out.join("statement.json"), serde_json::to_string_pretty(&first).expect("json")).expect("write");
    }

    fn envelope_strategy() -> impl Strategy<Value = Envelope> {
        (
            ".{0,20}",
            prop::collection::vec(any::<u8>(), 0..200),
            prop::collection::vec((".{0,20}", prop::collection::vec(any::<u8>(), 0..80)), 0..4),
        )
            .prop_map(|(payload_type, payload, sigs)| Envelope {
                payload_type,
                payload,
                signatures: sigs.into_iter().map(|(keyid, sig)| Signature { keyid, sig }).collect(),
            })
    }

    proptest! {
        #[test]
        fn envelope_round_trips(env in envelope_strategy()) {
            let line = env.to_json_line();
            prop_assert!(!line.contains('\n'));
            prop_assert_eq!(Envelope::parse(&line).expect("round trip"), env);
        }

        #[test]
        fn parse_never_panics(s in ".*") {
            let _ = Envelope::parse(&s);
            let _ = parse_statement(s.as_bytes());
        }

        #[test]
        fn parse_of_a_damaged_envelope_never_panics(
            env in envelope_strategy(),
            cuts in prop::collection::vec((any::<prop::sample::Index>(), any::<char>()), 1..4),
        ) {
            let mut chars: Vec<char> = env.to_json_line().chars().collect();
            for (at, c) in cuts {
                let i = at.index(chars.len());
                chars[i] = c;
            }
            let _ = Envelope::parse(&chars.into_iter().collect::<String>());
        }

        #[test]
        fn any_change_to_the_payload_breaks_the_signature(
            payload in prop::collection::vec(any::<u8>(), 1..100),
            at in any::<prop::sample::Index>(),
            bit in 0u8..8,
        ) {
            let key = key7();
            let mut env = sign_envelope(&key, PAYLOAD_TYPE, &payload);
            prop_assert!(verify_envelope(&env, &key.verifying_key()).is_ok());
            let i = at.index(env.payload.len());
            env.payload[i] ^= 1 << bit;
            prop_assert!(verify_envelope(&env, &key.verifying_key()).is_err());
        }
    }

    #[test]
    fn metrics_digest_is_a_byproduct_and_reads_back() {
        let record = sample::record();
        let lineage = record.lineage();
        let artifacts =
            [ArtifactFile { name: "model.pkl".into(), sha256: "ab".repeat(32), blake3: "cd".repeat(32), size: 1 }];
        let points = [crate::metrics::MetricPoint { key: "rmse".into(), value: 1.5, step: 0, timestamp_ms: Some(1) }];
        let digest = crate::metrics::metrics_digest(&points);
        let sha = BTreeMap::new();
        let v = statement(&StatementInput {
            record: &record,
            lineage: &lineage,
            model: "m",
            version: 1,
            artifacts: &artifacts,
            object_sha256: &sha,
            registry_head: None,
            repro_version: "0",
            metrics: Some((&digest, points.len())),
        })
        .expect("statement");
        let summary = parse_statement(&statement_payload(&v)).expect("parses");
        assert_eq!(summary.metrics, Some(digest));
        let mut other = points.clone();
        other[0].value = 1.25;
        assert_ne!(crate::metrics::metrics_digest(&other), summary.metrics.expect("metrics"));
    }
}
