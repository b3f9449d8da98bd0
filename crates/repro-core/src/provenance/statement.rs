//! The in-toto statement with its SLSA predicate: building it from a run and reading it back.

use super::dsse::envelope_error;
use super::dsse::is_hex64;
use super::*;

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
    let build_type = str_field(&v, "predicate.buildDefinition.buildType")?;
    if build_type != BUILD_TYPE && build_type != LEGACY_BUILD_TYPE {
        return Err(statement_error(format!(
            "`predicate.buildDefinition.buildType` is '{build_type}', expected '{BUILD_TYPE}'"
        )));
    }

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
