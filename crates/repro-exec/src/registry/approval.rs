//! `repro model approve`: an approval is a statement signed with the approver's key (see
//! `repro_core::approval`), recorded by an `approve` event naming the envelope and the key;
//! and the check of every approval against its version and the store's trusted keys, which
//! is what a stage with `signed_approvals` counts.
//!
//! Locally the approver signs with their own key. Through the server the client signs and
//! sends the envelope; the server accepts it only when it is signed by the key registered
//! for the asking token (`repro token create --approver-key`), and records the token's person
//! as the approver — never a name from the request.

use repro_core::approval::{ApprovalCheck, ApprovalStatement};
use repro_core::provenance::{self as prov, Envelope, SigningKey, VerifyingKey, PAYLOAD_TYPE};
use repro_core::registry::{Approval, ApprovalSignature, Change, ModelVersion};
use repro_store::registry::NewEvent;
use repro_store::Store;
use serde::{Deserialize, Serialize};

use super::{lookup, policy};
use crate::trust::{Trust, TrustRole};
use crate::{ExecError, Result};

/// What an approval did.
#[derive(Debug, Serialize, Deserialize)]
pub struct ApproveOutcome {
    pub version: ModelVersion,
    pub stage: String,
    pub by: String,
    /// The key that signed it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keyid: Option<String>,
    /// Whether that key is one of the store's trusted approvers (`[trust] approvers`).
    #[serde(default)]
    pub trusted: bool,
    /// The approver had approved this version for this stage before: counted once.
    pub repeated: bool,
    /// The approvals of the stage that count now.
    pub approvers: usize,
    pub needed: u32,
    /// The stage counts only signed approvals by trusted keys.
    #[serde(default)]
    pub signed_only: bool,
}

/// The statement inside `envelope`, when `key` signed it as an in-toto payload.
fn open(envelope: &Envelope, key: &VerifyingKey) -> std::result::Result<ApprovalStatement, String> {
    if envelope.payload_type != PAYLOAD_TYPE {
        return Err(format!("the payload type is '{}', not {PAYLOAD_TYPE}", envelope.payload_type));
    }
    prov::verify_envelope(envelope, key).map_err(|e| e.to_string())?;
    ApprovalStatement::parse(&envelope.payload).map_err(|e| e.to_string())
}

fn check_comment(comment: Option<&str>) -> Result<()> {
    if comment.is_some_and(|c| c.chars().any(|ch| ch.is_control() && ch != '\n') || c.len() > 4096) {
        return Err(ExecError::Usage("--comment may not hold control characters or exceed 4 KiB".into()));
    }
    Ok(())
}

/// The statement `approver` signs to approve `reference` for `stage`, now.
pub fn statement(
    version: &ModelVersion,
    stage: &str,
    approver: &str,
    comment: Option<&str>,
) -> Result<ApprovalStatement> {
    check_comment(comment)?;
    crate::registry::evidence(version)?;
    let at = repro_util::clock::rfc3339(repro_util::clock::now_ms());
    ApprovalStatement::of(version, stage, approver, &at, comment).ok_or_else(|| {
        ExecError::Usage(format!(
            "{} was registered while run {} was running, and the run has not finished: it can be approved once it has",
            version.reference(),
            version.run_text().unwrap_or("?")
        ))
    })
}

/// `repro model approve NAME@V --stage STAGE`: signs the approval with `signer` and records it.
pub fn approve(
    store: &mut Store,
    reference: &str,
    stage: &str,
    signer: &SigningKey,
    approver: &str,
    comment: Option<&str>,
) -> Result<ApproveOutcome> {
    policy(store, stage)?;
    let version = lookup(&store.meta.models().registry()?, reference)?;
    let statement = statement(&version, stage, approver, comment)?;
    let envelope = prov::sign_envelope(signer, PAYLOAD_TYPE, &statement.payload());
    record(store, &version.reference(), &envelope, &signer.verifying_key(), approver)
}

/// Records a signed approval: `envelope` must verify under `key` and approve exactly the
/// version `reference` names (its run, lineage and artifact bytes) for a stage that exists.
/// `actor` is who the event is by: the local approver, or the server's token person.
pub fn record(
    store: &mut Store,
    reference: &str,
    envelope: &Envelope,
    key: &VerifyingKey,
    actor: &str,
) -> Result<ApproveOutcome> {
    let signed = open(envelope, key).map_err(|e| ExecError::Usage(format!("the approval is not valid: {e}")))?;
    let stage = signed.stage.clone();
    let policy = policy(store, &stage)?;
    let version = lookup(&store.meta.models().registry()?, reference)?;
    if let Some(why) = signed.mismatch(&version, &stage) {
        return Err(ExecError::Usage(format!("the signed approval does not match {}: {why}", version.reference())));
    }
    if let Some(a) = &version.archived {
        return Err(ExecError::Usage(format!(
            "{} is archived ({}); it cannot be approved",
            version.reference(),
            a.reason
        )));
    }
    crate::integrity::vouch_for_version(store, &version, &repro_core::progress::NoProgress)?;
    let keyid = prov::sslib_keyid(key);
    let envelope_object = store.objects.put_bytes(format!("{}\n", envelope.to_json_line()).as_bytes())?;
    let public_key = store.objects.put_bytes(crate::keys::public_pem(key).as_bytes())?;
    let mut repeated = false;
    store.meta.models().append(repro_util::clock::now_ms(), |reg| {
        let now = lookup(reg, &version.reference())?;
        if let Some(a) = &now.archived {
            return Err(ExecError::Usage(format!("{} was archived meanwhile ({})", now.reference(), a.reason)));
        }
        if now.lineage != version.lineage || now.artifact != version.artifact {
            return Err(ExecError::Usage(format!("{} changed while it was being approved", now.reference())));
        }
        repeated = now.approvals.iter().any(|a| {
            a.stage == stage && a.signature.as_ref().is_some_and(|s| s.keyid == keyid)
                || a.signature.is_none()
                    && repro_core::registry::identity_key(&a.by) == repro_core::registry::identity_key(actor)
        });
        Ok(NewEvent {
            model: version.name.clone(),
            version: version.version,
            actor: actor.to_string(),
            change: Change::Approve {
                stage: stage.clone(),
                comment: signed.comment.clone(),
                signature: Some(ApprovalSignature {
                    keyid: keyid.clone(),
                    envelope: envelope_object.clone(),
                    public_key: public_key.clone(),
                }),
            },
        })
    })?;
    let version = lookup(&store.meta.models().registry()?, &version.reference())?;
    let trust = Trust::of(store)?;
    let checks = check_approvals(store, &version, &trust, &[]);
    let approvers = if policy.signed_approvals {
        repro_core::approval::counted(&checks, &stage).len()
    } else {
        version.approvers(&stage).len()
    };
    Ok(ApproveOutcome {
        trusted: trust.has(&keyid, TrustRole::Approver),
        keyid: Some(keyid),
        version,
        stage,
        by: actor.to_string(),
        repeated,
        approvers,
        needed: policy.approvals,
        signed_only: policy.signed_approvals,
    })
}

/// Checks every approval of `version`: its signature against the recorded key, its
/// statement against the version and stage, and the key against the trusted approvers
/// (or `also_trusted`, keys given on the command line for one check).
pub fn check_approvals(
    store: &Store,
    version: &ModelVersion,
    trust: &Trust,
    also_trusted: &[VerifyingKey],
) -> Vec<ApprovalCheck> {
    version
        .approvals
        .iter()
        .map(|a| {
            let Some(sig) = &a.signature else {
                return ApprovalCheck {
                    stage: a.stage.clone(),
                    by: a.by.clone(),
                    keyid: None,
                    valid: false,
                    trusted: false,
                    person: a.by.clone(),
                    problem: Some("unsigned".into()),
                };
            };
            let envelope = store.objects.read(&sig.envelope).map_err(|e| format!("its envelope: {e}"));
            let key = store.objects.read(&sig.public_key).map_err(|e| format!("its public key: {e}"));
            let problem = envelope
                .and_then(|e| key.map(|k| (e, k)))
                .and_then(|(e, k)| check_approval_bytes(&e, &k, version, a))
                .err();
            let trusted = trust.has(&sig.keyid, TrustRole::Approver)
                || also_trusted.iter().any(|k| prov::sslib_keyid(k) == sig.keyid);
            let person = trust
                .get(&sig.keyid)
                .and_then(|t| t.name.clone())
                .unwrap_or_else(|| format!("key {}", &sig.keyid[..sig.keyid.len().min(12)]));
            ApprovalCheck {
                stage: a.stage.clone(),
                by: a.by.clone(),
                keyid: Some(sig.keyid.clone()),
                valid: problem.is_none(),
                trusted,
                person,
                problem,
            }
        })
        .collect()
}

/// One approval from the bytes of its envelope and public key: the key is the recorded
/// one, the signature verifies, and the statement approves this version for its stage.
pub fn check_approval_bytes(
    envelope: &[u8],
    public_key: &[u8],
    version: &ModelVersion,
    approval: &Approval,
) -> std::result::Result<(), String> {
    let sig = approval.signature.as_ref().ok_or("unsigned")?;
    let text = std::str::from_utf8(envelope).map_err(|_| "the envelope is not text".to_string())?;
    let envelope = Envelope::parse(text).map_err(|e| e.to_string())?;
    let pem = std::str::from_utf8(public_key).map_err(|_| "the public key is not text".to_string())?;
    let key = crate::keys::parse_public_pem(pem).map_err(|e| format!("the stored public key is unreadable: {e}"))?;
    if prov::sslib_keyid(&key) != sig.keyid {
        return Err(format!("the stored public key is not key {} the registry recorded", sig.keyid));
    }
    let statement = open(&envelope, &key)?;
    if let Some(why) = statement.mismatch(version, &approval.stage) {
        return Err(why);
    }
    if statement.comment != approval.comment {
        return Err("the recorded comment is not the one signed".into());
    }
    Ok(())
}
