//! `repro model sign / attest / verify`: signed in-toto provenance for model versions, and
//! the checks that the registry, the run and the artifact are still what was signed.

use std::collections::BTreeMap;
use std::path::Path;

use ed25519_dalek::pkcs8::DecodePublicKey;
use ed25519_dalek::VerifyingKey;
use repro_core::metrics::MetricPoint;
use repro_core::provenance::{self as prov, StatementInput};
use repro_core::registry::{self, Artifact, Change, Event, ModelVersion, SignatureRef};
use repro_core::Digest;
use repro_store::meta::StoredRun;
use repro_store::objects::Verified;
use repro_store::registry::NewEvent;
use repro_store::Store;
use serde::{Deserialize, Serialize};

use super::lookup;
use crate::{keys, ExecError, Result};

/// SHA-256 of the objects a statement names by BLAKE3 (script, environment file, diff,
/// params files, input manifests), where the store has them.
fn object_sha256(store: &Store, record: &repro_core::record::RunRecord) -> BTreeMap<Digest, String> {
    let mut wanted = record.referenced_objects();
    wanted.extend(record.inputs.iter().map(|i| i.snapshot.clone()));
    wanted.into_iter().filter_map(|d| store.objects.read(&d).ok().map(|b| (d, prov::hex_sha256(&b)))).collect()
}

fn subjects(artifact: &Artifact) -> Vec<prov::ArtifactFile> {
    artifact
        .files
        .iter()
        .map(|f| prov::ArtifactFile {
            name: f.path.clone(),
            sha256: f.sha256.clone(),
            blake3: f.blake3.hex().to_string(),
            size: f.size,
        })
        .collect()
}

#[derive(Debug, Serialize)]
pub struct SignOutcome {
    pub version: ModelVersion,
    pub keyid: String,
    pub envelope: Digest,
}

/// `repro model sign NAME@V [--key FILE]`: a DSSE envelope over an in-toto statement with a
/// SLSA provenance predicate, stored as an object and recorded by a `sign` event.
pub fn sign(store: &mut Store, reference: &str, key: Option<&Path>, actor: &str) -> Result<SignOutcome> {
    let key_path = keys::signing_key_path(key)?;
    let signing = keys::load_signing_key(&key_path)?;
    let registry = store.meta.models().registry()?;
    let version = lookup(&registry, reference)?;
    if let Some(a) = &version.archived {
        return Err(ExecError::Usage(format!(
            "{} is archived ({}); it cannot be signed",
            version.reference(),
            a.reason
        )));
    }
    let (run, lineage) = super::pinned_run(store, &version)?;
    let artifact = super::files(&version)?;
    crate::integrity::vouch_for_version(store, &version, &repro_core::progress::NoProgress)?;
    // Sign only what still is what the version pinned.
    for f in &artifact.files {
        let bytes = store.objects.read(&f.blake3)?;
        if prov::hex_sha256(&bytes) != f.sha256 {
            return Err(ExecError::Usage(format!("artifact file {} changed since registration; not signing", f.path)));
        }
    }
    let artifacts = subjects(artifact);
    let shas = object_sha256(store, &run.record);
    let head = registry.head.clone();
    let points = store.meta.runs().metrics(&run.record.id)?;
    let metrics = repro_core::metrics::metrics_digest(&points);
    let statement = prov::statement(&StatementInput {
        record: &run.record,
        lineage: &lineage,
        model: &version.name,
        version: version.version,
        artifacts: &artifacts,
        object_sha256: &shas,
        registry_head: head.as_ref().map(|(s, h)| (*s, h)),
        repro_version: env!("CARGO_PKG_VERSION"),
        metrics: Some((&metrics, points.len())),
    })?;
    let (keyid, envelope_digest, public_key) =
        keys::store_signed(store, &signing, &prov::statement_payload(&statement))?;
    store.meta.models().append(repro_util::clock::now_ms(), |reg| {
        let now = lookup(reg, &version.reference())?;
        if now.archived.is_some() {
            return Err(ExecError::Usage(format!("{} was archived meanwhile; not signed", now.reference())));
        }
        Ok(NewEvent {
            model: version.name.clone(),
            version: version.version,
            actor: actor.to_string(),
            change: Change::Sign {
                keyid: keyid.clone(),
                envelope: envelope_digest.clone(),
                public_key: public_key.clone(),
            },
        })
    })?;
    let version = lookup(&store.meta.models().registry()?, &version.reference())?;
    Ok(SignOutcome { version, keyid, envelope: envelope_digest })
}

/// `repro model attest NAME@V`: the stored envelopes of the version — its provenance
/// signatures, then the signed verdicts of its run's replays — one JSON line each.
pub fn attest(store: &Store, reference: &str) -> Result<(ModelVersion, Vec<String>)> {
    let version = lookup(&store.meta.models().registry()?, reference)?;
    let mut lines = Vec::new();
    // Provenance first, then the other statements (signed BOMs), each in the order signed.
    let envelopes =
        version.signatures.iter().map(|s| &s.envelope).chain(version.attestations.iter().map(|a| &a.envelope));
    for envelope in envelopes {
        let bytes = store.objects.read(envelope)?;
        let text =
            String::from_utf8(bytes).map_err(|_| ExecError::Usage(format!("envelope {envelope} is not text")))?;
        lines.push(text.trim().to_string());
    }
    lines.extend(crate::replay::verdict::envelopes(store, &version)?);
    if lines.is_empty() {
        return Err(ExecError::Usage(format!(
            "{} is not signed, so there is no attestation yet; run `repro model sign {}` (or `repro replay {} --key FILE` for a signed verdict) first",
            version.reference(),
            version.reference(),
            version.reference()
        )));
    }
    Ok((version, lines))
}

/// Checks one signature of `version` from the bytes of its envelope and public key: the
/// key is the one recorded, the signature verifies (with `trusted` when given), and the
/// statement names exactly this version's run, lineage and artifact files.
pub fn check_signature_bytes(
    envelope: &[u8],
    public_key: &[u8],
    version: &ModelVersion,
    s: &SignatureRef,
    trusted: Option<&VerifyingKey>,
    metrics: Option<&[MetricPoint]>,
) -> std::result::Result<prov::StatementSummary, String> {
    let text = std::str::from_utf8(envelope).map_err(|_| "the envelope is not text".to_string())?;
    let envelope = prov::Envelope::parse(text).map_err(|e| e.to_string())?;
    let pem = std::str::from_utf8(public_key).map_err(|_| "the public key is not text".to_string())?;
    let stored =
        VerifyingKey::from_public_key_pem(pem).map_err(|e| format!("the stored public key is unreadable ({e})"))?;
    if prov::sslib_keyid(&stored) != s.keyid {
        return Err(format!("the stored public key is not key {} the registry recorded", s.keyid));
    }
    let key = match trusted {
        Some(t) if prov::sslib_keyid(t) != s.keyid => {
            return Err(format!("signed by key {}, not by the trusted key {}", s.keyid, prov::sslib_keyid(t)))
        }
        Some(t) => t,
        None => &stored,
    };
    let summary = prov::open_statement(&envelope, key).map_err(|e| e.to_string())?;
    let r = version.reference();
    if !version.known_as(&summary.model) || summary.version != version.version {
        return Err(format!("the statement is for {}@{}, not {r}", summary.model, summary.version));
    }
    let (run, artifact) = version.evidence()?;
    if summary.run_id != *run {
        return Err(format!("the statement names run {}, {r} pins run {}", summary.run_id.short(), run.short()));
    }
    if version.lineage.as_ref().is_some_and(|l| *l != summary.lineage) {
        return Err(format!(
            "the statement names lineage {}, {r} pins {}",
            summary.lineage.short(),
            version.lineage.as_ref().map_or("none".into(), |l| l.short())
        ));
    }
    let pinned: BTreeMap<&str, (&str, &str)> =
        artifact.files.iter().map(|f| (f.path.as_str(), (f.sha256.as_str(), f.blake3.hex()))).collect();
    let signed: BTreeMap<&str, (&str, &str)> =
        summary.subjects.iter().map(|(n, d)| (n.as_str(), (d.sha256.as_str(), d.blake3.as_str()))).collect();
    if pinned != signed {
        let names: Vec<String> = pinned
            .keys()
            .chain(signed.keys())
            .filter(|n| pinned.get(*n) != signed.get(*n))
            .map(|n| n.to_string())
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .collect();
        return Err(format!("the signed subjects differ from {r}'s artifact files: {}", names.join(", ")));
    }
    if let (Some(signed), Some(points)) = (&summary.metrics, metrics) {
        if repro_core::metrics::metrics_digest(points) != *signed {
            return Err(format!("the run's metrics ({} points) differ from the ones signed", points.len()));
        }
    }
    Ok(summary)
}

/// [`check_signature_bytes`] on the store's objects, plus (for versions registered here)
/// that the registry event the statement was signed after is still in the log.
pub fn check_signature(
    store: &Store,
    version: &ModelVersion,
    s: &SignatureRef,
    trusted: Option<&VerifyingKey>,
) -> std::result::Result<(), String> {
    check_signature_in(store, version, s, trusted, None)
}

fn check_signature_in(
    store: &Store,
    version: &ModelVersion,
    s: &SignatureRef,
    trusted: Option<&VerifyingKey>,
    events: Option<&[Event]>,
) -> std::result::Result<(), String> {
    let envelope = store.objects.read(&s.envelope).map_err(|e| format!("envelope object: {e}"))?;
    let public_key = store.objects.read(&s.public_key).map_err(|e| format!("public key object: {e}"))?;
    let points = store.meta.runs().metrics(version.run_id()?).map_err(|e| e.to_string())?;
    let summary = check_signature_bytes(&envelope, &public_key, version, s, trusted, Some(&points))?;
    // An imported version's statement names the source store's log; only ours can be checked.
    if version.imported_from.is_some() {
        return Ok(());
    }
    if let (Some((seq, hash)), Some(events)) = (&summary.registry_head, events) {
        match events.iter().find(|e| e.seq == *seq) {
            Some(e) if &e.hash == hash => {}
            Some(e) => {
                return Err(format!("the registry event {} it was signed after has been rewritten", e.describe()))
            }
            None => return Err(format!("the registry event #{seq} it was signed after is gone")),
        }
    }
    Ok(())
}

#[derive(Debug, Serialize, Deserialize)]
pub struct VerifyCheck {
    pub name: String,
    pub ok: bool,
    pub detail: String,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct VerifyReport {
    pub reference: String,
    pub ok: bool,
    pub checks: Vec<VerifyCheck>,
}

/// `repro model verify NAME@V [--key PUBFILE]`: the event chain, the run's lineage and
/// objects, the artifact's digests, and every signature.
pub fn verify(
    store: &Store,
    reference: &str,
    key: Option<&Path>,
    progress: &dyn crate::Progress,
) -> Result<VerifyReport> {
    let trusted = key.map(keys::load_public_key).transpose()?;
    let events = store.meta.models().events()?;
    let anchor = store.meta.models().anchor()?;
    let (registry, fold_problems) = registry::Registry::fold(&events);
    let version = lookup(&registry, reference)?;
    let mut checks = Vec::new();
    let mut check = |name: &str, problems: Vec<String>, ok_detail: String| {
        checks.push(VerifyCheck {
            name: name.to_string(),
            ok: problems.is_empty(),
            detail: if problems.is_empty() { ok_detail } else { problems.join("; ") },
        })
    };

    // The event chain.
    let mut problems: Vec<String> = anchor.problem().into_iter().collect();
    problems
        .extend(registry::verify_chain(&events, anchor.event()).into_iter().chain(fold_problems).map(|p| p.message));
    check("event_chain", problems, format!("{} events, each hashed and linked to the one before", events.len()));

    // The run and its lineage.
    let mut problems = Vec::new();
    let run = match version.run_id().map(|id| store.meta.runs().get(id)) {
        Ok(Ok(run)) => Some(run),
        Ok(Err(e)) => {
            problems.push(e.to_string());
            None
        }
        Err(e) => {
            problems.push(e);
            None
        }
    };
    let run_short = version.run_text().map_or("none".to_string(), |r| r.chars().take(8).collect());
    let held = run.as_ref().and_then(|r| version.lineage_or(r.lineage.as_ref()).cloned());
    if let (Some(run), None) = (&run, &held) {
        problems.push(format!(
            "{} was registered while run {} ran, and the run has not finished",
            version.reference(),
            run.record.id.short()
        ));
    }
    if let (Some(run), Some(held)) = (&run, &held) {
        if run.lineage.as_ref() != Some(held) {
            problems.push(format!(
                "the store says run {} has lineage {}, {} pins {}",
                run_short,
                run.lineage.as_ref().map_or("none".into(), |l| l.short()),
                version.reference(),
                held.short()
            ));
        }
        if run.record.lineage() != *held {
            problems.push(format!(
                "the stored record of run {} was changed: it no longer hashes to its lineage",
                run_short
            ));
        }
        let objects = crate::audit::verify_objects(store, run, progress);
        problems.extend(objects.tampered.iter().cloned());
        for d in &objects.missing {
            problems.push(format!("object {d} of the run is missing"));
        }
        let record_edited = run.record.lineage() != *held;
        for d in &objects.corrupt {
            // An edited record row is reported above; its object file may be intact.
            if record_edited
                && run.record_object.as_ref() == Some(d)
                && store.objects.verify(d).is_ok_and(|v| matches!(v, Verified::Ok { .. }))
            {
                continue;
            }
            problems.push(format!("object {d} of the run is corrupt"));
        }
    }
    check(
        "lineage",
        problems,
        format!(
            "run {} hashes to {}; its objects re-hash",
            run_short,
            held.as_ref().map_or("none".into(), |l| l.short())
        ),
    );

    // The artifact.
    let (problems, names) = match version.files() {
        Ok(artifact) => (
            artifact_problems(store, artifact, run.as_ref(), &run_short),
            artifact.files.iter().map(|f| f.path.as_str()).collect::<Vec<_>>(),
        ),
        // An external version not adopted: no bytes to check, and that is the problem.
        Err(e) => (vec![e], Vec::new()),
    };
    check("artifact", problems, format!("{} (blake3 and sha256 match)", names.join(", ")));

    // Signatures.
    let mut problems = Vec::new();
    let mut good = Vec::new();
    for s in &version.signatures {
        match check_signature_in(store, &version, s, trusted.as_ref(), Some(&events)) {
            Ok(()) => good.push(s.keyid.clone()),
            // With a trusted key, other keys' signatures are not the question.
            Err(e) if trusted.is_some() && e.contains("not by the trusted key") => {}
            Err(e) => problems.push(format!("key {}: {e}", s.keyid)),
        }
    }
    if version.signatures.is_empty() {
        problems.push(format!("{} is not signed (repro model sign {})", version.reference(), version.reference()));
    } else if good.is_empty() && problems.is_empty() {
        if let (Some(t), Some(path)) = (&trusted, key) {
            problems.push(format!(
                "no signature by the key in {} (keyid {}); signed by {}",
                path.display(),
                prov::sslib_keyid(t),
                version.signatures.iter().map(|s| s.keyid.as_str()).collect::<Vec<_>>().join(", ")
            ));
        }
    }
    let how = if trusted.is_some() {
        "with the key given"
    } else {
        "with the key stored at signing; pass --key to check against a key you trust"
    };
    check("signature", problems, format!("{} valid signature(s) by {} ({how})", good.len(), good.join(", ")));

    // The CycloneDX BOM: signed ones, and the BOM and card a bundle carried.
    if let Some((problems, detail)) = super::facts::verify_documents(store, &version, trusted.as_ref())? {
        check("bom", problems, detail);
    }

    // Approvals: each signed one must verify and approve exactly this version; whether its
    // key is trusted (by [trust], or the --key given) is said, since that decides whether
    // it counts. Unsigned approvals of older stores are listed as such.
    if !version.approvals.is_empty() {
        let trust = crate::trust::Trust::of(store)?;
        let also: Vec<VerifyingKey> = trusted.iter().cloned().collect();
        let results = super::approval::check_approvals(store, &version, &trust, &also);
        let mut problems = Vec::new();
        let mut notes = Vec::new();
        for c in &results {
            match (&c.keyid, c.valid, c.trusted) {
                (Some(k), false, _) => problems.push(format!(
                    "the approval for {} by {} (key {}) does not verify: {}",
                    c.stage,
                    c.by,
                    &k[..k.len().min(12)],
                    c.problem.as_deref().unwrap_or("?")
                )),
                (Some(k), true, true) => {
                    notes.push(format!("{} for {} (key {}, trusted)", c.person, c.stage, &k[..k.len().min(12)]))
                }
                (Some(k), true, false) => notes.push(format!(
                    "{} for {} (valid signature by untrusted key {})",
                    c.by,
                    c.stage,
                    &k[..k.len().min(12)]
                )),
                (None, _, _) => notes.push(format!("{} for {} (unsigned)", c.by, c.stage)),
            }
        }
        check("approvals", problems, notes.join("; "));
    }

    // Signed replay verdicts: each must verify and be about exactly this version; whether
    // its key is trusted is said. Unsigned replays are evidence of another, weaker kind
    // (the audit's replay_verified) and are only counted here.
    let trust = crate::trust::Trust::of(store)?;
    let also: Vec<VerifyingKey> = trusted.iter().cloned().collect();
    let verdicts = crate::replay::verdict::check_verdicts(store, &version, &trust, &also)?;
    if verdicts.iter().any(|c| c.keyid.is_some()) {
        let problems: Vec<String> =
            verdicts.iter().filter(|c| c.keyid.is_some() && !c.valid).map(|c| c.describe()).collect();
        let notes: Vec<String> = verdicts.iter().filter(|c| c.valid).map(|c| c.describe()).collect();
        let unsigned = verdicts.iter().filter(|c| c.keyid.is_none()).count();
        let mut detail = notes.join("; ");
        if unsigned > 0 {
            detail.push_str(&format!("; {unsigned} unsigned replay(s)"));
        }
        check("replay", problems, detail);
    }

    let ok = checks.iter().all(|c| c.ok);
    Ok(VerifyReport { reference: version.reference(), ok, checks })
}

/// What is wrong with a version's pinned files: the snapshot, the run output it should be
/// (for files of a run's output), and each file's bytes against both digests.
fn artifact_problems(store: &Store, artifact: &Artifact, run: Option<&StoredRun>, run_short: &str) -> Vec<String> {
    let mut problems = Vec::new();
    let manifest = store.objects.manifest(&artifact.snapshot).ok();
    if manifest.is_none() {
        problems
            .push(format!("the snapshot {} of output {} is missing or corrupt", artifact.snapshot, artifact.output));
    }
    if let Some(run) = run.filter(|_| !artifact.from_tracking()) {
        if !run.record.outputs.iter().any(|o| o.snapshot.as_ref() == Some(&artifact.snapshot)) {
            problems.push(format!("run {run_short} has no output with snapshot {}", artifact.snapshot.short()));
        }
    }
    for f in &artifact.files {
        match store.objects.read(&f.blake3) {
            Ok(bytes) if prov::hex_sha256(&bytes) != f.sha256 => {
                problems.push(format!("{}: sha256 differs from the one pinned", f.path))
            }
            Ok(_) => {}
            Err(_) => match store.objects.verify(&f.blake3) {
                Ok(Verified::Missing) => problems.push(format!("{}: object {} is missing", f.path, f.blake3)),
                _ => problems
                    .push(format!("{}: object {} is corrupt (it no longer hashes to its name)", f.path, f.blake3)),
            },
        }
        if let Some(m) = &manifest {
            if !m.entries.iter().any(|e| e.digest == f.blake3 && e.size == f.size) {
                problems.push(format!("{}: not in the output's snapshot", f.path));
            }
        }
    }
    problems
}
