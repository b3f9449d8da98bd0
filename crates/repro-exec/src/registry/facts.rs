//! `repro model bom / card`: the facts of a model version gathered once (registry, run
//! record, metrics, the user's `model_card.md` and `[model_card]`), the CycloneDX BOM and
//! the model card rendered from them, the BOM signed as an in-toto statement, and the
//! checks `model verify` runs on a BOM and card that came in a bundle.

use std::path::Path;

use ed25519_dalek::pkcs8::DecodePublicKey;
use ed25519_dalek::VerifyingKey;
use repro_core::model_card::{
    self, card, cyclonedx, Considerations, DatasetFact, FileFact, ModelFacts, PackageFact, TrainingFacts,
};
use repro_core::provenance::{self as prov, PAYLOAD_TYPE};
use repro_core::registry::{AttestationRef, Change, ModelVersion};
use repro_core::Digest;
use repro_store::registry::NewEvent;
use repro_store::Store;
use serde::Serialize;
use serde_json::{json, Value};

use super::lookup;
use crate::{keys, ExecError, Result};

/// The user's own card: `model_card.md` in the folder that holds `.repro`.
pub const USER_CARD_FILE: &str = "model_card.md";

/// The version's facts. `project` is where `model_card.md` is looked for (None: nowhere,
/// as for a version checked after import, whose user sections travel in its BOM).
pub fn gather(store: &Store, version: &ModelVersion, project: Option<&Path>) -> Result<ModelFacts> {
    let (run_id, artifact) = super::evidence(version)?;
    let run = store.meta.runs().get(run_id)?;
    let lineage = super::still_running(version, &run)?;
    let r = &run.record;
    let points = store.meta.runs().metrics(run_id)?;
    let user = match project.map(|p| p.join(USER_CARD_FILE)) {
        Some(path) if path.is_file() => {
            let text = std::fs::read_to_string(&path).map_err(ExecError::io("read", &path))?;
            model_card::parse_user_card(&text)
        }
        _ => Default::default(),
    };
    let mut considerations = user.considerations.clone();
    if let Some(c) = &store.config.model_card {
        considerations.merge(&Considerations {
            users: c.users.clone(),
            use_cases: c.use_cases.clone(),
            limitations: c.limitations.clone(),
            tradeoffs: c.tradeoffs.clone(),
            ethical: c.ethical_considerations.clone(),
        });
    }
    let python = r.environment.python.as_ref();
    Ok(ModelFacts {
        name: version.name.clone(),
        version: version.version,
        registered_at: repro_util::clock::rfc3339(version.registered_at_ms),
        registered_by: version.registered_by.clone(),
        description: version.description.clone(),
        run: run_id.as_str().to_string(),
        run_name: r.name.clone(),
        lineage,
        artifact_snapshot: artifact.snapshot.clone(),
        files: artifact
            .files
            .iter()
            .map(|f| FileFact {
                path: f.path.clone(),
                size: f.size,
                sha256: f.sha256.clone(),
                blake3: f.blake3.hex().to_string(),
            })
            .collect(),
        datasets: r
            .inputs
            .iter()
            .map(|i| DatasetFact {
                path: i.path.clone(),
                snapshot: i.snapshot.clone(),
                files: i.files,
                bytes: i.bytes,
                dataset: i.dataset.clone(),
            })
            .collect(),
        metrics: repro_core::metrics::last_values(&points),
        packages: python
            .map(|p| {
                p.packages
                    .iter()
                    .map(|p| PackageFact {
                        name: p.name.clone(),
                        version: p.version.clone(),
                        installer: p.installer.clone(),
                    })
                    .collect()
            })
            .unwrap_or_default(),
        training: TrainingFacts {
            // A BOM is read by more people than the store: URL credentials are masked.
            command: r.script.argv.iter().map(|a| repro_core::secrets::mask_text(a).into_owned()).collect(),
            workdir: r.script.workdir.clone(),
            commit: r.code.commit.clone(),
            dirty: r.code.dirty,
            seed: r.seed.value,
            seed_generated: r.seed.generated,
            params: r.params.values.iter().map(|(k, v)| (k.clone(), v.to_string())).collect(),
            python: python.and_then(|p| p.version.clone()),
            os: r.environment.os.name.clone(),
            arch: r.environment.os.arch.clone(),
            started_at: r.started_at.clone(),
            ended_at: r.ended_at.clone(),
            registered_environment: r.environment.registered.clone(),
            declared_file: r.environment.declared.as_ref().map(|d| (d.path.clone(), d.digest.clone())),
        },
        considerations,
        user,
    })
}

/// The card and the BOM of one version, rendered from the same facts.
pub struct Documents {
    pub version: ModelVersion,
    pub card: String,
    pub bom: Vec<u8>,
}

/// Renders both documents for the version `reference` names.
pub fn documents(store: &Store, reference: &str) -> Result<Documents> {
    let version = lookup(&store.meta.models().registry()?, reference)?;
    documents_of(store, version)
}

fn documents_of(store: &Store, version: ModelVersion) -> Result<Documents> {
    let facts = gather(store, &version, Some(store.project_dir()))?;
    let card = card::render(&facts);
    let bom = cyclonedx::bom_bytes(&facts, &prov::hex_sha256(card.as_bytes()));
    Ok(Documents { version, card, bom })
}

#[derive(Debug, Serialize)]
pub struct BomSigned {
    pub keyid: String,
    pub envelope: Digest,
}

/// `repro model bom NAME@V --sign`: an in-toto statement whose subjects are the artifact
/// files and whose predicate is the BOM (`https://cyclonedx.org/bom`), signed as a DSSE
/// envelope, stored, and recorded by an `attest` event. The BOM names the card by its
/// SHA-256, so the signature covers the card too.
pub fn sign_bom(store: &mut Store, docs: &Documents, key: Option<&Path>, actor: &str) -> Result<BomSigned> {
    let key_path = crate::keys::signing_key_path(key)?;
    let signing = keys::load_signing_key(&key_path)?;
    let version = &docs.version;
    if let Some(a) = &version.archived {
        return Err(ExecError::Usage(format!(
            "{} is archived ({}); its BOM cannot be signed",
            version.reference(),
            a.reason
        )));
    }
    // As `model sign`: nothing is signed on top of an edited record or a damaged store.
    super::pinned_run(store, version)?;
    let artifact = super::files(version)?;
    crate::integrity::vouch_for_version(store, version, &repro_core::progress::NoProgress)?;
    for f in &artifact.files {
        if prov::hex_sha256(&store.objects.read(&f.blake3)?) != f.sha256 {
            return Err(ExecError::Usage(format!("artifact file {} changed since registration; not signing", f.path)));
        }
    }
    let bom: Value = serde_json::from_slice(&docs.bom).expect("the BOM just rendered is JSON");
    let statement = json!({
        "_type": prov::STATEMENT_TYPE,
        "subject": artifact.files.iter().map(|f| json!({
            "name": f.path,
            "digest": {"sha256": f.sha256, "blake3": f.blake3.hex()},
        })).collect::<Vec<_>>(),
        "predicateType": cyclonedx::PREDICATE_TYPE,
        "predicate": bom,
    });
    let payload = serde_json::to_vec(&statement).expect("statements serialize");
    let (keyid, envelope_digest, public_key) = crate::keys::store_signed(store, &signing, &payload)?;
    store.meta.models().append(repro_util::clock::now_ms(), |reg| {
        let now = lookup(reg, &version.reference())?;
        if now.archived.is_some() {
            return Err(ExecError::Usage(format!("{} was archived meanwhile; not signed", now.reference())));
        }
        Ok(NewEvent {
            model: version.name.clone(),
            version: version.version,
            actor: actor.to_string(),
            change: Change::Attest {
                predicate_type: cyclonedx::PREDICATE_TYPE.into(),
                keyid: keyid.clone(),
                envelope: envelope_digest.clone(),
                public_key: public_key.clone(),
            },
        })
    })?;
    Ok(BomSigned { keyid, envelope: envelope_digest })
}

/// Checks a signed BOM from the bytes of its envelope and key: the key is the one recorded
/// (or `trusted`), the signature verifies, the subjects are the version's files and the BOM
/// it carries agrees with `facts`. Returns the BOM.
pub fn check_attestation_bytes(
    envelope: &[u8],
    public_key: &[u8],
    version: &ModelVersion,
    a: &AttestationRef,
    facts: &ModelFacts,
    trusted: Option<&VerifyingKey>,
) -> std::result::Result<Value, String> {
    let text = std::str::from_utf8(envelope).map_err(|_| "the envelope is not text".to_string())?;
    let envelope = prov::Envelope::parse(text).map_err(|e| e.to_string())?;
    let pem = std::str::from_utf8(public_key).map_err(|_| "the public key is not text".to_string())?;
    let stored =
        VerifyingKey::from_public_key_pem(pem).map_err(|e| format!("the stored public key is unreadable ({e})"))?;
    if prov::sslib_keyid(&stored) != a.keyid {
        return Err(format!("the stored public key is not key {} the registry recorded", a.keyid));
    }
    let key = match trusted {
        Some(t) if prov::sslib_keyid(t) == a.keyid => t,
        _ => &stored,
    };
    if envelope.payload_type != PAYLOAD_TYPE {
        return Err(format!("payload type {} is not an in-toto statement", envelope.payload_type));
    }
    prov::verify_envelope(&envelope, key).map_err(|e| e.to_string())?;
    let statement: Value =
        serde_json::from_slice(&envelope.payload).map_err(|e| format!("the statement is not JSON ({e})"))?;
    if statement["predicateType"] != a.predicate_type.as_str() || statement["_type"] != prov::STATEMENT_TYPE {
        return Err("the statement is not the one the registry recorded".into());
    }
    let signed: std::collections::BTreeMap<String, (String, String)> = statement["subject"]
        .as_array()
        .map(|s| {
            s.iter()
                .filter_map(|x| {
                    Some((
                        x["name"].as_str()?.to_string(),
                        (x["digest"]["sha256"].as_str()?.to_string(), x["digest"]["blake3"].as_str()?.to_string()),
                    ))
                })
                .collect()
        })
        .unwrap_or_default();
    let pinned: std::collections::BTreeMap<String, (String, String)> = version
        .artifact
        .iter()
        .flat_map(|a| &a.files)
        .map(|f| (f.path.clone(), (f.sha256.clone(), f.blake3.hex().to_string())))
        .collect();
    if signed != pinned {
        return Err(format!("the signed subjects are not {}'s artifact files", version.reference()));
    }
    let bom = statement["predicate"].clone();
    let problems = cyclonedx::check(&bom, facts);
    if !problems.is_empty() {
        return Err(format!("the signed BOM disagrees with the store: {}", problems.join("; ")));
    }
    Ok(bom)
}

/// `model verify`'s `bom` check, for a version with a signed BOM or one a bundle carried:
/// the problems, and what was checked.
pub fn verify_documents(
    store: &Store,
    version: &ModelVersion,
    trusted: Option<&VerifyingKey>,
) -> Result<Option<(Vec<String>, String)>> {
    if version.attestations.is_empty() && version.imported_bom.is_none() && version.imported_card.is_none() {
        return Ok(None);
    }
    let facts = gather(store, version, None)?;
    let mut problems = Vec::new();
    let mut checked = Vec::new();
    let mut bom_value = None;
    if let Some(d) = &version.imported_bom {
        match store
            .objects
            .read(d)
            .map_err(|e| e.to_string())
            .and_then(|b| serde_json::from_slice::<Value>(&b).map_err(|e| format!("it is not JSON ({e})")))
        {
            Ok(bom) => {
                problems.extend(cyclonedx::check(&bom, &facts).into_iter().map(|p| format!("the bundle's BOM: {p}")));
                checked.push("the bundle's BOM agrees with the run and the artifact".to_string());
                bom_value = Some(bom);
            }
            Err(e) => problems.push(format!("the bundle's BOM {}: {e}", d.short())),
        }
    }
    if let Some(d) = &version.imported_card {
        match store.objects.read(d) {
            Ok(card) => {
                let sha = prov::hex_sha256(&card);
                match bom_value.as_ref().and_then(cyclonedx::card_sha256) {
                    Some(want) if want == sha => checked.push("the card is the one the BOM names".into()),
                    Some(_) => {
                        problems.push("the bundle's model card is not the one its BOM names (SHA-256 differs)".into())
                    }
                    None => problems.push("the bundle's model card has no BOM naming it".into()),
                }
            }
            Err(e) => problems.push(format!("the bundle's model card {}: {e}", d.short())),
        }
    }
    for a in version.attestations.iter().filter(|a| a.predicate_type == cyclonedx::PREDICATE_TYPE) {
        let result = store
            .objects
            .read(&a.envelope)
            .and_then(|e| Ok((e, store.objects.read(&a.public_key)?)))
            .map_err(|e| e.to_string())
            .and_then(|(e, k)| check_attestation_bytes(&e, &k, version, a, &facts, trusted));
        match result {
            Ok(_) => checked.push(format!("signed BOM by key {} verifies", &a.keyid[..a.keyid.len().min(12)])),
            Err(e) => problems.push(format!("the signed BOM by key {}: {e}", a.keyid)),
        }
    }
    Ok(Some((problems, checked.join("; "))))
}

/// The BOM and card a bundle of `version` carries: those it was imported with, else
/// rendered here.
pub fn for_bundle(store: &Store, version: &ModelVersion) -> Result<(Vec<u8>, Vec<u8>)> {
    if let (Some(b), Some(c)) = (&version.imported_bom, &version.imported_card) {
        return Ok((store.objects.read(b)?, store.objects.read(c)?));
    }
    let docs = documents_of(store, version.clone())?;
    Ok((docs.bom, docs.card.into_bytes()))
}
