//! A replay's signed verdict: the statement (`repro_core::provenance::verdict_statement`)
//! built from the two runs, signed as a DSSE envelope, and checked again wherever a verdict
//! is evidence (a `signed_replay` policy, `model verify`, bundle import).
//!
//! Where it is kept: the envelope and the public key are objects, and the replay report
//! names them (`attestation`). The report is itself an object named by the replay's row
//! in `replays`, which the facts journal covers, so no new table is needed and a verdict
//! is found by run (`replays_of`) and so by model version (the version's run). An edit of
//! the envelope makes its object corrupt; a swapped report breaks the journal.

use std::path::Path;

use ed25519_dalek::pkcs8::DecodePublicKey;
use ed25519_dalek::{SigningKey, VerifyingKey};
use repro_core::provenance::{self as prov, ArtifactFile, VerdictCheck, VerdictInput, VerdictSummary};
use repro_core::record::{RunRecord, Verdict};
use repro_core::registry::ModelVersion;
use repro_core::snapshot::SnapshotKind;
use repro_core::Digest;
use repro_store::meta::{ReplayRow, StoredRun};
use repro_store::Store;
use serde::{Deserialize, Serialize};

use super::ReplayReport;
use crate::trust::{Trust, TrustRole};
use crate::{keys, ExecError, Result};

/// Where a replay's signed verdict is, as its report names it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct VerdictAttestation {
    /// The DSSE envelope (one JSON line), an object.
    pub envelope: Digest,
    /// The signer's public key (SPKI PEM), an object.
    pub public_key: Digest,
    pub keyid: String,
}

/// The key a replay signs its verdict with: the `--key` given, else your own private key
/// when there is one (`$REPRO_KEY_DIR/repro.key` …), else none and the verdict is unsigned.
/// Resolved before anything is built, so a bad `--key` costs nothing.
pub fn verdict_signer(key: Option<&Path>) -> Result<Option<SigningKey>> {
    keys::optional_signer(key)
}

/// Every file of the run's outputs, with both digests: the statement's subjects, named as a
/// model version's artifact files are (`out/path` inside a folder output).
fn output_files(store: &Store, record: &RunRecord) -> Result<Vec<ArtifactFile>> {
    let mut files = Vec::new();
    for o in &record.outputs {
        let Some(snapshot) = &o.snapshot else { continue };
        let manifest = store
            .objects
            .manifest(snapshot)
            .map_err(|e| ExecError::Usage(format!("the snapshot of output {} is unreadable ({e})", o.path)))?;
        let out = o.path.trim_end_matches('/');
        for e in &manifest.entries {
            let bytes = store.objects.read(&e.digest)?;
            files.push(ArtifactFile {
                name: match manifest.kind {
                    SnapshotKind::File => out.to_string(),
                    SnapshotKind::Dir => format!("{out}/{}", e.path),
                },
                sha256: prov::hex_sha256(&bytes),
                blake3: e.digest.hex().to_string(),
                size: e.size,
            });
        }
    }
    Ok(files)
}

/// Signs the verdict of `report` with `key`, stores the envelope and the public key, and
/// says where they are (for the report, before it is stored).
pub fn sign(
    store: &Store,
    original: &StoredRun,
    replay: &StoredRun,
    report: &ReplayReport,
    key: &SigningKey,
) -> Result<VerdictAttestation> {
    let lineage = original.lineage.clone().unwrap_or_else(|| original.record.lineage());
    let subjects = output_files(store, &original.record)?;
    let judged_at = repro_util::clock::rfc3339(repro_util::clock::now_ms());
    let statement = prov::verdict_statement(&VerdictInput {
        original: &original.record,
        original_lineage: &lineage,
        replay: &replay.record,
        replay_lineage: replay.lineage.as_ref(),
        verdict: report.verdict,
        reasons: &report.reasons,
        outputs: &report.outputs,
        subjects: &subjects,
        judged_at: &judged_at,
        repro_version: env!("CARGO_PKG_VERSION"),
    })?;
    let payload = serde_json::to_vec(&statement).expect("a JSON value always serializes");
    let (keyid, envelope, public_key) = crate::keys::store_signed(store, key, &payload)?;
    Ok(VerdictAttestation { envelope, public_key, keyid })
}

/// The signed verdict a stored replay report names, if any (`None` also for reports written
/// before verdicts were signed).
pub fn attestation_in(report: &[u8]) -> Option<VerdictAttestation> {
    #[derive(Deserialize)]
    struct Report {
        #[serde(default)]
        attestation: Option<VerdictAttestation>,
    }
    serde_json::from_slice::<Report>(report).ok()?.attestation
}

/// Checks one signed verdict from the bytes of its envelope and public key: the key is the
/// one recorded, the signature verifies (by `trusted` when given), and the statement is the
/// verdict of `replay` about exactly this version's run, lineage and artifact bytes.
pub fn check_verdict_bytes(
    envelope: &[u8],
    public_key: &[u8],
    attestation: &VerdictAttestation,
    row: &ReplayRow,
    version: &ModelVersion,
) -> std::result::Result<VerdictSummary, String> {
    let text = std::str::from_utf8(envelope).map_err(|_| "the envelope is not text".to_string())?;
    let envelope = prov::Envelope::parse(text).map_err(|e| e.to_string())?;
    let pem = std::str::from_utf8(public_key).map_err(|_| "the public key is not text".to_string())?;
    let stored =
        VerifyingKey::from_public_key_pem(pem).map_err(|e| format!("the stored public key is unreadable ({e})"))?;
    if prov::sslib_keyid(&stored) != attestation.keyid {
        return Err(format!("the stored public key is not key {} the report names", attestation.keyid));
    }
    let summary = prov::open_verdict(&envelope, &stored).map_err(|e| e.to_string())?;
    if summary.replay_run != row.replay || summary.original_run != row.original {
        return Err(format!(
            "the statement is the verdict of replay {} of run {}, not of replay {} of run {}",
            summary.replay_run.short(),
            summary.original_run.short(),
            row.replay.short(),
            row.original.short()
        ));
    }
    let agrees =
        summary.verdict == row.verdict.as_str() || (summary.verdict == "failed" && row.verdict == Verdict::Differs);
    if !agrees {
        return Err(format!("the statement says {}, the store records {}", summary.verdict, row.verdict.as_str()));
    }
    let r = version.reference();
    let (run, artifact) = version.evidence()?;
    if summary.original_run != *run {
        return Err(format!("it is about run {}, {r} pins run {}", summary.original_run.short(), run.short()));
    }
    if version.lineage.as_ref().is_some_and(|l| *l != summary.original_lineage) {
        return Err(format!("it is about lineage {}, which is not the one {r} pins", summary.original_lineage.short()));
    }
    for f in &artifact.files {
        match summary.subjects.get(&f.path) {
            Some(d) if d.sha256 == f.sha256 && d.blake3 == f.blake3.hex() => {}
            Some(_) => return Err(format!("its subject {} has other digests than {r} pins", f.path)),
            None => return Err(format!("its subjects do not include {r}'s artifact file {}", f.path)),
        }
    }
    Ok(summary)
}

/// Every replay of `version`'s run, its signed verdict (if any) checked against the version;
/// trusted when its key is in `[trust] signers` or among `also_trusted` (a `--key` given for
/// one check). Oldest first.
pub fn check_verdicts(
    store: &Store,
    version: &ModelVersion,
    trust: &Trust,
    also_trusted: &[VerifyingKey],
) -> Result<Vec<VerdictCheck>> {
    let mut checks = Vec::new();
    // An external version has no run, so no replay of it.
    let Some(run) = &version.run else { return Ok(checks) };
    for row in store.meta.runs().replays_of(run)? {
        let mut check = VerdictCheck {
            replay: row.replay.clone(),
            verdict: row.verdict,
            created_ms: row.created_ms,
            keyid: None,
            valid: false,
            trusted: false,
            name: None,
            problem: None,
        };
        let report = match store.objects.read(&row.report) {
            Ok(r) => r,
            Err(e) => {
                // A report that cannot be read may have named a signature: say so, never "unsigned".
                check.keyid = Some("?".into());
                check.problem = Some(format!("its report: {e}"));
                checks.push(check);
                continue;
            }
        };
        if let Some(a) = attestation_in(&report) {
            let envelope = store.objects.read(&a.envelope).map_err(|e| format!("its envelope: {e}"));
            let key = store.objects.read(&a.public_key).map_err(|e| format!("its public key: {e}"));
            check.problem = envelope
                .and_then(|e| key.map(|k| (e, k)))
                .and_then(|(e, k)| check_verdict_bytes(&e, &k, &a, &row, version))
                .err();
            check.valid = check.problem.is_none();
            check.trusted =
                trust.has(&a.keyid, TrustRole::Signer) || also_trusted.iter().any(|k| prov::sslib_keyid(k) == a.keyid);
            check.name = trust.get(&a.keyid).and_then(|t| t.name.clone());
            check.keyid = Some(a.keyid);
        }
        checks.push(check);
    }
    Ok(checks)
}

/// The stored envelopes of every signed verdict of `version`'s run, one JSON line each.
pub fn envelopes(store: &Store, version: &ModelVersion) -> Result<Vec<String>> {
    let mut lines = Vec::new();
    let Some(run) = &version.run else { return Ok(lines) };
    for row in store.meta.runs().replays_of(run)? {
        let Some(a) = attestation_in(&store.objects.read(&row.report)?) else { continue };
        let bytes = store.objects.read(&a.envelope)?;
        let text = String::from_utf8(bytes)
            .map_err(|_| ExecError::Usage(format!("the verdict envelope {} is not text", a.envelope)))?;
        lines.push(text.trim().to_string());
    }
    Ok(lines)
}
