//! Approvals as signatures. An approval is an in-toto Statement v1 that one person approves
//! one model version — its run, lineage and artifact bytes — for one stage, signed (DSSE,
//! ed25519) with that person's key. "Two approvals" then means two keys, never two strings
//! in a request body or a `--as` flag; which keys count is the store's `[trust]`.
//!
//! ```json
//! {"_type": "https://in-toto.io/Statement/v1",
//!  "subject": [{"name": "model.pkl", "digest": {"sha256": "…", "blake3": "…"}}],
//!  "predicateType": "urn:repro:approval:v1",
//!  "predicate": {"model": "pricing", "version": 1, "stage": "prod", "run": "…",
//!                "lineage": "blake3:…", "approver": "Ada <ada@corp.example>",
//!                "approvedAt": "2026-12-04T10:00:00Z", "comment": "…"}}
//! ```

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::{identity_key, ModelVersion};
use crate::provenance::{SubjectDigests, STATEMENT_TYPE};
use crate::CoreError;

/// The predicate type of an approval statement (see `docs/uris.md`).
pub const APPROVAL_PREDICATE_TYPE: &str = "urn:repro:approval:v1";
/// The predicate type approvals carried before [`APPROVAL_PREDICATE_TYPE`]: the same
/// predicate, still accepted so that approvals already signed keep counting.
pub const LEGACY_APPROVAL_PREDICATE_TYPE: &str = "https://repro.invalid/approval/v1";

/// What an approval statement says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ApprovalStatement {
    pub model: String,
    pub version: u32,
    pub stage: String,
    pub run: String,
    pub lineage: String,
    /// Who the signer says they are (the key is what counts).
    pub approver: String,
    pub approved_at: String,
    pub comment: Option<String>,
    /// Artifact file path → digests.
    pub subjects: BTreeMap<String, SubjectDigests>,
}

impl ApprovalStatement {
    /// The statement approving `version` for `stage`; `None` while the version has no
    /// lineage (registered through MLflow while its run still runs, or external).
    pub fn of(
        version: &ModelVersion,
        stage: &str,
        approver: &str,
        approved_at: &str,
        comment: Option<&str>,
    ) -> Option<ApprovalStatement> {
        Some(ApprovalStatement {
            model: version.name.clone(),
            version: version.version,
            stage: stage.to_string(),
            run: version.run.as_ref()?.to_string(),
            lineage: version.lineage.as_ref()?.to_string(),
            approver: approver.to_string(),
            approved_at: approved_at.to_string(),
            comment: comment.map(str::to_string),
            subjects: version
                .artifact
                .as_ref()?
                .files
                .iter()
                .map(|f| {
                    (f.path.clone(), SubjectDigests { sha256: f.sha256.clone(), blake3: f.blake3.hex().to_string() })
                })
                .collect(),
        })
    }

    /// The in-toto statement, as signed.
    pub fn to_json(&self) -> Value {
        let subject: Vec<Value> = self
            .subjects
            .iter()
            .map(|(name, d)| json!({"name": name, "digest": {"sha256": d.sha256, "blake3": d.blake3}}))
            .collect();
        let mut predicate = json!({
            "model": self.model,
            "version": self.version,
            "stage": self.stage,
            "run": self.run,
            "lineage": self.lineage,
            "approver": self.approver,
            "approvedAt": self.approved_at,
        });
        if let Some(c) = &self.comment {
            predicate["comment"] = json!(c);
        }
        json!({
            "_type": STATEMENT_TYPE,
            "subject": subject,
            "predicateType": APPROVAL_PREDICATE_TYPE,
            "predicate": predicate,
        })
    }

    /// The bytes signed: the statement's JSON (keys sorted).
    pub fn payload(&self) -> Vec<u8> {
        serde_json::to_vec(&self.to_json()).expect("a JSON value always serializes")
    }

    /// Reads an approval statement; anything else is an error naming what it found.
    pub fn parse(payload: &[u8]) -> Result<ApprovalStatement, CoreError> {
        let bad = |m: String| CoreError::Statement(format!("not an approval statement: {m}"));
        let v: Value = serde_json::from_slice(payload).map_err(|e| bad(format!("not JSON ({e})")))?;
        let text = |path: &[&str]| -> Result<String, CoreError> {
            path.iter()
                .try_fold(&v, |v, k| v.get(k))
                .and_then(Value::as_str)
                .map(str::to_string)
                .ok_or_else(|| bad(format!("`{}` is missing or not a string", path.join("."))))
        };
        if text(&["_type"])? != STATEMENT_TYPE {
            return Err(bad(format!("`_type` is not {STATEMENT_TYPE}")));
        }
        let predicate_type = text(&["predicateType"])?;
        if predicate_type != APPROVAL_PREDICATE_TYPE && predicate_type != LEGACY_APPROVAL_PREDICATE_TYPE {
            return Err(bad(format!("`predicateType` is '{predicate_type}', expected '{APPROVAL_PREDICATE_TYPE}'")));
        }
        let version = v
            .pointer("/predicate/version")
            .and_then(Value::as_u64)
            .and_then(|n| u32::try_from(n).ok())
            .ok_or_else(|| bad("`predicate.version` must be a version number".into()))?;
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
        let comment = match v.pointer("/predicate/comment") {
            None | Some(Value::Null) => None,
            Some(Value::String(c)) => Some(c.clone()),
            Some(_) => return Err(bad("`predicate.comment` must be a string".into())),
        };
        Ok(ApprovalStatement {
            model: text(&["predicate", "model"])?,
            version,
            stage: text(&["predicate", "stage"])?,
            run: text(&["predicate", "run"])?,
            lineage: text(&["predicate", "lineage"])?,
            approver: text(&["predicate", "approver"])?,
            approved_at: text(&["predicate", "approvedAt"])?,
            comment,
            subjects,
        })
    }

    /// Why this statement does not approve `version` for `stage`, if it does not: another
    /// model, version, run, lineage, stage, or other artifact bytes.
    pub fn mismatch(&self, version: &ModelVersion, stage: &str) -> Option<String> {
        let want = ApprovalStatement::of(version, stage, &self.approver, &self.approved_at, self.comment.as_deref());
        let Some(want) = want else {
            return Some(format!("{} has no lineage yet: its run has not finished", version.reference()));
        };
        // Approvals given before a rename name the model as it was then.
        let what = if !(self.model == want.model || version.known_as(&self.model)) || self.version != want.version {
            format!("it approves {}@{}, not {}", self.model, self.version, version.reference())
        } else if self.stage != want.stage {
            format!("it approves stage {}, not {stage}", self.stage)
        } else if self.run != want.run || self.lineage != want.lineage {
            format!(
                "it approves run {} with lineage {}, which is not what {} pins",
                self.run,
                self.lineage,
                version.reference()
            )
        } else if self.subjects != want.subjects {
            "it approves other artifact bytes than the version pins".to_string()
        } else {
            return None;
        };
        Some(what)
    }
}

/// How one approval fares when counted: what exec found checking its signature against
/// the version and the store's trusted keys.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApprovalCheck {
    pub stage: String,
    /// Who the event says approved.
    pub by: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keyid: Option<String>,
    /// The signature verifies and its statement approves this version for this stage.
    pub valid: bool,
    /// The key is one of the store's trusted approvers.
    pub trusted: bool,
    /// Who counts: the trusted key's name, else the key id (never the claimed name).
    pub person: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub problem: Option<String>,
}

impl ApprovalCheck {
    /// Why this approval does not count towards a stage that needs signed approvals.
    pub fn not_counted(&self) -> Option<String> {
        match (&self.keyid, self.valid, self.trusted) {
            (None, _, _) => Some(format!("{} (unsigned)", self.by)),
            (Some(_), false, _) => {
                Some(format!("{} ({})", self.by, self.problem.as_deref().unwrap_or("its signature does not verify")))
            }
            (Some(k), true, false) => {
                Some(format!("{} (key {} is not a trusted approver)", self.by, &k[..k.len().min(12)]))
            }
            (Some(_), true, true) => None,
        }
    }
}

/// The distinct people whose signed, trusted approvals of `stage` count: one per person
/// (the e-mail of the trusted name, else the key), however many keys or tokens they used.
pub fn counted(checks: &[ApprovalCheck], stage: &str) -> Vec<String> {
    let mut seen = std::collections::BTreeSet::new();
    checks
        .iter()
        .filter(|c| c.stage == stage && c.not_counted().is_none() && seen.insert(identity_key(&c.person)))
        .map(|c| c.person.clone())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::{Artifact, ArtifactFile};
    use crate::{Digest, RunId};

    fn version() -> ModelVersion {
        let run = RunId::from_bytes([1; 16]);
        let mut v: ModelVersion = serde_json::from_value(json!({
            "name": "pricing", "version": 1, "run": run, "lineage": Digest::of_bytes(b"l"),
            "artifact": Artifact { path: "model.pkl".into(), output: "model.pkl".into(), snapshot: Digest::of_bytes(b"s"),
                files: vec![ArtifactFile { path: "model.pkl".into(), size: 3, blake3: Digest::of_bytes(b"abc"), sha256: "ba78".into() }] },
            "updated_at_ms": 0, "registered_by": "ada", "registered_at_ms": 0, "stage": null, "archived": null,
            "approvals": [], "signatures": [], "imported_from": null, "history": []
        }))
        .expect("a version");
        v.stage = Some("staging".into());
        v
    }

    #[test]
    fn a_statement_round_trips_and_matches_only_its_version_and_stage() {
        let v = version();
        let s = ApprovalStatement::of(&v, "prod", "Ada <ada@corp.example>", "2026-12-04T10:00:00Z", Some("ok"))
            .expect("statement");
        let back = ApprovalStatement::parse(&s.payload()).expect("parses");
        assert_eq!(back, s);
        assert_eq!(back.mismatch(&v, "prod"), None);
        assert!(back.mismatch(&v, "staging").expect("stage").contains("stage prod"));
        let mut other = v.clone();
        other.artifact.as_mut().expect("fixture has files").files[0].sha256 = "ffff".into();
        assert!(back.mismatch(&other, "prod").expect("bytes").contains("artifact bytes"));
        other = v.clone();
        other.version = 2;
        assert!(back.mismatch(&other, "prod").expect("version").contains("pricing@1"));
        assert_eq!(s.to_json()["predicateType"], "urn:repro:approval:v1");
        let mut legacy = s.to_json();
        legacy["predicateType"] = json!(LEGACY_APPROVAL_PREDICATE_TYPE);
        let legacy = serde_json::to_vec(&legacy).expect("json");
        assert_eq!(ApprovalStatement::parse(&legacy).expect("an approval signed before the URN counts"), s);
        for garbage in
            [&b"{}"[..], b"[]", b"not json", br#"{"_type":"https://in-toto.io/Statement/v1","predicateType":"x"}"#]
        {
            let e = ApprovalStatement::parse(garbage).expect_err("garbage").to_string();
            assert!(!e.contains('\n'), "{e}");
        }
    }

    #[test]
    fn one_person_counts_once_and_only_trusted_valid_signatures_count() {
        let check = |by: &str, keyid: Option<&str>, valid, trusted, person: &str| ApprovalCheck {
            stage: "prod".into(),
            by: by.into(),
            keyid: keyid.map(str::to_string),
            valid,
            trusted,
            person: person.into(),
            problem: None,
        };
        let checks = [
            check("Ada", Some("k1"), true, true, "Ada <ada@corp.example>"),
            check("Ada again", Some("k2"), true, true, "Ada L. <ADA@corp.example>"),
            check("Bob", Some("k3"), true, false, "k3"),
            check("Carol", None, false, false, "Carol"),
            check("Dan", Some("k4"), false, true, "Dan <dan@corp.example>"),
            check("Eve", Some("k5"), true, true, "Eve <eve@corp.example>"),
        ];
        assert_eq!(counted(&checks, "prod"), ["Ada <ada@corp.example>", "Eve <eve@corp.example>"]);
        assert!(counted(&checks, "staging").is_empty());
        assert!(checks[2].not_counted().expect("untrusted").contains("not a trusted approver"));
        assert!(checks[3].not_counted().expect("unsigned").contains("unsigned"));
    }
}
