//! What a model version is, in the forms a supply-chain or risk team reads: a CycloneDX 1.6
//! ML-BOM ([`cyclonedx`]) and a Markdown model card ([`card`]).
//!
//! Both are rendered from one [`ModelFacts`], gathered once by `repro-exec` from the
//! registry, the run record, its metrics and the user's own `model_card.md` / `[model_card]`,
//! so the card and the BOM cannot disagree: neither reads anything the other does not.
//! Pure: no file is read here, and no clock: the BOM's timestamp is the registration's.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::Digest;

pub mod card;
pub mod cyclonedx;
#[cfg(test)]
mod tests;

pub use card::{parse_user_card, UserCard};

/// Everything the BOM and the card say about one model version.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ModelFacts {
    pub name: String,
    pub version: u32,
    /// When the version was registered (RFC 3339): the BOM's timestamp, so the same version
    /// gives the same bytes whenever it is asked for.
    pub registered_at: String,
    pub registered_by: String,
    pub description: Option<String>,
    pub run: String,
    pub run_name: Option<String>,
    /// The run record's digest, which covers everything the record holds.
    pub lineage: Digest,
    /// The output snapshot the artifact files are in.
    pub artifact_snapshot: Digest,
    pub files: Vec<FileFact>,
    pub datasets: Vec<DatasetFact>,
    /// Each metric's last value (the highest step).
    pub metrics: BTreeMap<String, f64>,
    pub packages: Vec<PackageFact>,
    pub training: TrainingFacts,
    pub considerations: Considerations,
    /// The user's `model_card.md`, for the card's own sections.
    pub user: UserCard,
}

/// One file of the artifact, by both digests the registry pinned.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileFact {
    pub path: String,
    pub size: u64,
    pub sha256: String,
    /// Bare hex.
    pub blake3: String,
}

/// One input of the training run: a data snapshot.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DatasetFact {
    pub path: String,
    /// The snapshot manifest's digest, which names every file by BLAKE3.
    pub snapshot: Digest,
    pub files: u64,
    pub bytes: u64,
    /// `name:version` of a registered dataset.
    pub dataset: Option<String>,
}

/// One installed package the run's interpreter had.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PackageFact {
    pub name: String,
    pub version: String,
    /// `pip`, `conda`, `uv` … as the package's INSTALLER said.
    pub installer: Option<String>,
}

/// How the model was trained: what `repro run` recorded.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct TrainingFacts {
    /// The command, credentials in URLs masked.
    pub command: Vec<String>,
    pub workdir: String,
    pub commit: Option<String>,
    pub dirty: bool,
    pub seed: u64,
    pub seed_generated: bool,
    /// Flattened `a.b` → the value as JSON text.
    pub params: BTreeMap<String, String>,
    pub python: Option<String>,
    pub os: String,
    pub arch: String,
    pub started_at: String,
    pub ended_at: Option<String>,
    /// `NAME:V` of a registered environment.
    pub registered_environment: Option<String>,
    /// The declared environment file (path, digest).
    pub declared_file: Option<(String, Digest)>,
}

/// What the user wrote about intended use and limits: `model_card.md`'s known sections and
/// `[model_card]` in `.repro/repro.toml`, merged (each item once).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Considerations {
    pub users: Vec<String>,
    pub use_cases: Vec<String>,
    pub limitations: Vec<String>,
    pub tradeoffs: Vec<String>,
    pub ethical: Vec<String>,
}

impl Considerations {
    pub fn is_empty(&self) -> bool {
        self.users.is_empty()
            && self.use_cases.is_empty()
            && self.limitations.is_empty()
            && self.tradeoffs.is_empty()
            && self.ethical.is_empty()
    }

    /// Adds `other`'s items that are not there yet, in order.
    pub fn merge(&mut self, other: &Considerations) {
        for (mine, theirs) in [
            (&mut self.users, &other.users),
            (&mut self.use_cases, &other.use_cases),
            (&mut self.limitations, &other.limitations),
            (&mut self.tradeoffs, &other.tradeoffs),
            (&mut self.ethical, &other.ethical),
        ] {
            for item in theirs {
                if !mine.contains(item) {
                    mine.push(item.clone());
                }
            }
        }
    }
}

impl ModelFacts {
    pub fn reference(&self) -> String {
        format!("{}@{}", self.name, self.version)
    }

    /// The BOM's serial number: a UUID derived from what identifies the version (name,
    /// number, lineage, artifact snapshot), so the same version always has the same one and
    /// two versions never share one. The layout is RFC 4122's name-based version 5 (the
    /// CycloneDX 1.6 schema accepts versions 1–5 only), hashed with BLAKE3 rather than SHA-1.
    pub fn serial_number(&self) -> String {
        let mut h = blake3::Hasher::new();
        for part in
            ["repro cyclonedx serial v1", &self.reference(), self.lineage.as_str(), self.artifact_snapshot.as_str()]
        {
            h.update(part.as_bytes());
            h.update(&[0]);
        }
        let mut b = [0u8; 16];
        b.copy_from_slice(&h.finalize().as_bytes()[..16]);
        b[6] = (b[6] & 0x0f) | 0x50;
        b[8] = (b[8] & 0x3f) | 0x80;
        let x: String = b.iter().map(|v| format!("{v:02x}")).collect();
        format!("urn:uuid:{}-{}-{}-{}-{}", &x[..8], &x[8..12], &x[12..16], &x[16..20], &x[20..])
    }
}

/// A metric value as both documents write it: Rust's shortest exact form.
pub fn metric_text(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v.is_infinite() {
        if v > 0.0 { "Infinity" } else { "-Infinity" }.into()
    } else {
        format!("{v}")
    }
}
