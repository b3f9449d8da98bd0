//! A replay's verdict as a signed statement: an in-toto Statement v1 whose subjects are the
//! original run's output files and whose predicate ([`VERDICT_PREDICATE_TYPE`]) says which
//! run was replayed (its lineage: commit, environment, inputs), where and when the replay
//! ran, what it concluded, and the digests it compared. Signed (DSSE, ed25519) by whoever
//! ran the replay, so "this model was reproduced" is a claim a key vouches for, not a row
//! anyone with the database can write; which keys count is the store's `[trust] signers`.
//!
//! ```json
//! {"_type": "https://in-toto.io/Statement/v1",
//!  "subject": [{"name": "model.pkl", "digest": {"sha256": "…", "blake3": "…"}}],
//!  "predicateType": "urn:repro:replay:verdict:v1",
//!  "predicate": {"verdict": "identical", "reproduced": true, "reasons": ["…"],
//!                "original": {"runId": "…", "lineage": "blake3:…", "commit": "…", …},
//!                "replay": {"runId": "…", "startedOn": "…", "host": "…", "hardware": {…}, …},
//!                "outputs": [{"path": "model.pkl", "verdict": "identical",
//!                             "original": {"blake3": "…"}, "replay": {"blake3": "…"}}],
//!                "judgedAt": "…", "producer": {"repro": "0.1.0"}}}
//! ```

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::dsse::{envelope_error, is_hex64};
use super::*;
use crate::environment::EnvironmentSpec;
use crate::record::Verdict;
use crate::replay::OutputComparison;

/// The predicate type of a signed replay verdict (see `docs/uris.md`).
pub const VERDICT_PREDICATE_TYPE: &str = "urn:repro:replay:verdict:v1";

/// Everything a verdict statement says; the caller has read the records and the outputs.
#[derive(Clone, Copy, Debug)]
pub struct VerdictInput<'a> {
    /// The run that was replayed, and its lineage digest as stored.
    pub original: &'a RunRecord,
    pub original_lineage: &'a Digest,
    /// The replay's own run, and its lineage once it ended.
    pub replay: &'a RunRecord,
    pub replay_lineage: Option<&'a Digest>,
    pub verdict: Verdict,
    pub reasons: &'a [String],
    pub outputs: &'a [OutputComparison],
    /// The original run's output files (the subjects): name → sha256 and blake3 of the bytes.
    pub subjects: &'a [ArtifactFile],
    /// When the verdict was signed (RFC 3339).
    pub judged_at: &'a str,
    pub repro_version: &'a str,
}

/// The verdict word a statement carries: repro's verdict, except that a replay whose
/// command failed where the original succeeded says `failed` — a broken rebuild, not a
/// different result.
pub fn verdict_word(verdict: Verdict, original_exit: Option<i32>, replay_exit: Option<i32>) -> &'static str {
    if verdict == Verdict::Differs && original_exit == Some(0) && replay_exit != Some(0) {
        "failed"
    } else {
        verdict.as_str()
    }
}

fn platform(record: &RunRecord) -> Value {
    let os = &record.environment.os;
    json!({"os": os.name, "kernel": os.kernel, "arch": os.arch, "libc": os.libc})
}

/// The original run's lineage as the statement names it: the commit, the environment (the
/// installed set's identity and the declared file) and each input snapshot.
fn original_json(record: &RunRecord, lineage: &Digest) -> Value {
    let mut environment = Map::new();
    if let Some(py) = &record.environment.python {
        environment.insert("installed".into(), EnvironmentSpec::installed(py).identity().as_str().into());
        environment.insert("python".into(), json!(py.version));
    }
    if let Some(d) = &record.environment.declared {
        environment.insert("declaredFile".into(), json!({"path": d.path, "digest": {"blake3": d.digest.hex()}}));
    }
    if let Some(r) = &record.environment.registered {
        environment.insert("registered".into(), r.as_str().into());
    }
    let inputs: Vec<Value> = record
        .inputs
        .iter()
        .map(|i| json!({"path": i.path, "digest": {"blake3": i.snapshot.hex()}, "referenceOnly": i.reference}))
        .collect();
    json!({
        "runId": record.id.as_str(),
        "lineage": lineage.as_str(),
        "commit": record.code.commit,
        "environment": environment,
        "inputs": inputs,
        "exitCode": record.exit_code,
    })
}

fn replay_json(record: &RunRecord, lineage: Option<&Digest>) -> Value {
    let hw = &record.hardware;
    let gpus: Vec<Value> =
        hw.gpus.iter().map(|g| json!({"model": g.model, "driver": g.driver, "cuda": g.cuda})).collect();
    json!({
        "runId": record.id.as_str(),
        "lineage": lineage.map(Digest::as_str),
        "startedOn": record.started_at,
        "finishedOn": record.ended_at,
        "host": record.host,
        "user": record.user,
        "platform": platform(record),
        "hardware": {
            "cpu": hw.cpu_model,
            "logicalCpus": hw.logical_cpus,
            "memoryBytes": hw.memory_bytes,
            "gpus": gpus,
        },
        "exitCode": record.exit_code,
    })
}

/// The in-toto statement of a replay's verdict. Subjects come out sorted by name.
pub fn verdict_statement(input: &VerdictInput<'_>) -> Result<Value, CoreError> {
    let mut subjects: Vec<&ArtifactFile> = input.subjects.iter().collect();
    subjects.sort_by(|a, b| a.name.cmp(&b.name));
    for a in &subjects {
        if !is_hex64(&a.sha256) || !is_hex64(&a.blake3) {
            return Err(CoreError::Statement(format!("output file '{}': digests must be 64 lowercase hex", a.name)));
        }
    }
    let subject: Vec<Value> =
        subjects.iter().map(|a| json!({"name": a.name, "digest": {"sha256": a.sha256, "blake3": a.blake3}})).collect();
    let side = |d: &Option<Digest>| d.as_ref().map(|d| json!({"blake3": d.hex()}));
    let outputs: Vec<Value> = input
        .outputs
        .iter()
        .map(|o| {
            json!({
                "path": o.path,
                "verdict": o.verdict.as_str(),
                "original": side(&o.recorded),
                "replay": side(&o.replayed),
            })
        })
        .collect();
    let word = verdict_word(input.verdict, input.original.exit_code, input.replay.exit_code);
    Ok(json!({
        "_type": STATEMENT_TYPE,
        "subject": subject,
        "predicateType": VERDICT_PREDICATE_TYPE,
        "predicate": {
            "verdict": word,
            "reproduced": input.verdict.reproduced(),
            "reasons": input.reasons,
            "original": original_json(input.original, input.original_lineage),
            "replay": replay_json(input.replay, input.replay_lineage),
            "outputs": outputs,
            "judgedAt": input.judged_at,
            "producer": {"repro": input.repro_version},
        },
    }))
}

/// What checking a verdict against a model version needs from its statement.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerdictSummary {
    pub original_run: RunId,
    pub original_lineage: Digest,
    pub replay_run: RunId,
    /// `identical`, `equivalent`, `differs` or `failed`.
    pub verdict: String,
    pub reproduced: bool,
    /// Output file name → digests.
    pub subjects: BTreeMap<String, SubjectDigests>,
}

/// Reads a verdict statement; anything else is an error naming what it found.
pub fn parse_verdict(payload: &[u8]) -> Result<VerdictSummary, CoreError> {
    let bad = |m: String| CoreError::Statement(format!("not a replay verdict: {m}"));
    let v: Value = serde_json::from_slice(payload).map_err(|e| bad(format!("not JSON ({e})")))?;
    let text = |pointer: &str| -> Result<String, CoreError> {
        v.pointer(pointer)
            .and_then(Value::as_str)
            .map(str::to_string)
            .ok_or_else(|| bad(format!("`{}` is missing or not a string", pointer.trim_start_matches('/'))))
    };
    if text("/_type")? != STATEMENT_TYPE {
        return Err(bad(format!("`_type` is not {STATEMENT_TYPE}")));
    }
    let predicate_type = text("/predicateType")?;
    if predicate_type != VERDICT_PREDICATE_TYPE {
        return Err(bad(format!("`predicateType` is '{predicate_type}', expected '{VERDICT_PREDICATE_TYPE}'")));
    }
    let run = |pointer: &str| RunId::parse(&text(pointer)?).map_err(|e| bad(format!("{pointer}: {e}")));
    let verdict = text("/predicate/verdict")?;
    if !["identical", "equivalent", "differs", "failed"].contains(&verdict.as_str()) {
        return Err(bad(format!("unknown verdict '{verdict}'")));
    }
    let reproduced = v
        .pointer("/predicate/reproduced")
        .and_then(Value::as_bool)
        .ok_or_else(|| bad("`predicate.reproduced` must be true or false".into()))?;
    if reproduced != (verdict == "identical" || verdict == "equivalent") {
        return Err(bad(format!("`reproduced` is {reproduced} but the verdict is {verdict}")));
    }
    let lineage = Digest::parse(&text("/predicate/original/lineage")?)
        .map_err(|e| bad(format!("predicate.original.lineage: {e}")))?;
    let mut subjects = BTreeMap::new();
    for s in v.get("subject").and_then(Value::as_array).ok_or_else(|| bad("`subject` must be a list".into()))? {
        let name = s.get("name").and_then(Value::as_str).ok_or_else(|| bad("a subject has no name".into()))?;
        let digest = |alg: &str| {
            s.pointer(&format!("/digest/{alg}"))
                .and_then(Value::as_str)
                .map(str::to_string)
                .ok_or_else(|| bad(format!("subject {name} has no {alg} digest")))
        };
        subjects.insert(name.to_string(), SubjectDigests { sha256: digest("sha256")?, blake3: digest("blake3")? });
    }
    Ok(VerdictSummary {
        original_run: run("/predicate/original/runId")?,
        original_lineage: lineage,
        replay_run: run("/predicate/replay/runId")?,
        verdict,
        reproduced,
        subjects,
    })
}

/// Checks the envelope's signature by `key` and reads the verdict it carries.
pub fn open_verdict(env: &Envelope, key: &VerifyingKey) -> Result<VerdictSummary, CoreError> {
    if env.payload_type != PAYLOAD_TYPE {
        return Err(envelope_error(format!("payloadType is '{}', expected '{PAYLOAD_TYPE}'", env.payload_type)));
    }
    verify_envelope(env, key)?;
    parse_verdict(&env.payload)
}

/// How one replay of a version's run fares as evidence: what exec found checking its
/// signed verdict (if any) against the version and the store's trusted signers.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct VerdictCheck {
    pub replay: RunId,
    /// The verdict the store recorded for the replay.
    pub verdict: Verdict,
    pub created_ms: i64,
    /// The key that signed the verdict; absent for an unsigned replay.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keyid: Option<String>,
    /// The signature verifies and the statement is about this version's run and bytes.
    pub valid: bool,
    /// The key is one of the store's trusted signers (or the key given for one check).
    pub trusted: bool,
    /// The trusted key's name, from `[trust]`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Why a signed verdict is not valid.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub problem: Option<String>,
}

impl VerdictCheck {
    fn key_short(&self) -> &str {
        self.keyid.as_deref().map_or("?", |k| &k[..k.len().min(12)])
    }

    /// One line: whose verdict, and how it stands.
    pub fn describe(&self) -> String {
        let r = self.replay.short();
        let v = self.verdict.as_str();
        match (&self.keyid, self.valid, self.trusted) {
            (None, _, _) => format!("replay {r} ({v}) is unsigned"),
            (Some(_), false, _) => format!(
                "the verdict of replay {r} ({v}) signed by key {} does not verify: {}",
                self.key_short(),
                self.problem.as_deref().unwrap_or("?")
            ),
            (Some(_), true, false) => format!(
                "replay {r} ({v}) has a valid signature by key {}, which [trust] signers does not list",
                self.key_short()
            ),
            (Some(_), true, true) => format!(
                "replay {r} ({v}) signed by trusted key {}{}",
                self.key_short(),
                self.name.as_deref().map(|n| format!(" ({n})")).unwrap_or_default()
            ),
        }
    }
}

/// The evidence a `signed_replay` policy accepts: the newest verdict signed by a trusted
/// key, when it reproduced the run. Otherwise the one-line reason it is missing.
pub fn signed_replay_unmet(checks: &[VerdictCheck]) -> Option<String> {
    let newest = checks.iter().filter(|c| c.valid && c.trusted).max_by_key(|c| c.created_ms);
    match newest {
        Some(c) if c.verdict.reproduced() => None,
        Some(c) => {
            Some(format!("the newest verdict signed by a trusted key says {}: {}", c.verdict.as_str(), c.describe()))
        }
        None if checks.is_empty() => Some("the run has not been replayed".into()),
        None => {
            // The most telling problem first: a forged or broken signature, then a key
            // nobody trusts, then no signature at all.
            let worst = checks
                .iter()
                .filter(|c| c.keyid.is_some() && !c.valid)
                .chain(checks.iter().filter(|c| c.valid && !c.trusted))
                .chain(checks.iter().filter(|c| c.keyid.is_none()))
                .next()
                .expect("checks is not empty");
            Some(format!("no replay verdict is signed by a trusted key: {}", worst.describe()))
        }
    }
}
