//! The model registry: versions, stages, approvals and signatures, as a fold over a
//! hash-chained event log.
//!
//! The event log is the only truth. Every registry change appends one event whose hash
//! covers the previous event's hash, so a row edited or removed behind repro's back breaks
//! the chain at that row. The state (`Registry`) is rebuilt from the events on every read;
//! registries hold hundreds of events, not millions, and a fold cannot drift from the log
//! the way a second table could.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::audit::{AuditReport, ItemStatus};
use crate::record::RunRecord;
use crate::{Digest, RunId};

pub mod approval;
mod events;
mod external;
mod policy;
mod state;
#[cfg(test)]
mod tests;

pub use events::{event_hash, events_of, verify_chain, Artifact, ArtifactFile, ChainProblem, Change, Event};
pub use external::{evaluate_external, External};
pub use policy::{
    default_policies, evaluate, known_requirement, validate_policies, PromotionFacts, StagePolicy, Unmet,
};
pub use state::{
    identity_key, Approval, ApprovalSignature, Archived, AttestationRef, BundleSigner, HistoryEntry, LookupError,
    Model, ModelVersion, Registry, SignatureRef, SignerStatus,
};

/// The stages a store has when `repro.toml` names none.
pub const DEFAULT_STAGES: [&str; 3] = ["dev", "staging", "prod"];

/// What a stage policy may require, beyond the audit items (which may be named too).
pub const REQUIREMENTS: [(&str, &str); 7] = [
    ("git_clean", "the run's tree had no uncommitted changes"),
    ("env_pinned", "the declared environment pins every package (or the run used a registered environment)"),
    ("random_seed", "the seed was given, not generated"),
    ("dataset_snapshot", "every input is snapshotted with its content in the store"),
    ("replay_verified", "the latest replay of the run reproduced it"),
    ("signed", "the version carries a valid signature"),
    ("audit_complete", "every audit item is ok or warn"),
];

/// Letters, digits, `-`, `_`, `.`; starting with a letter or digit; at most 100 characters.
pub fn valid_model_name(name: &str) -> bool {
    crate::environment::valid_env_name(name)
}

/// Letters, digits, `-`, `_`; starting with a letter; at most 40 characters. Not all digits,
/// so `NAME@3` is always a version and `NAME@prod` always a stage.
pub fn valid_stage_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 40
        && name.starts_with(|c: char| c.is_ascii_alphabetic())
        && name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_'))
}

/// Which version of a model a reference means.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Selector {
    Version(u32),
    Stage(String),
}

/// `NAME@V` or `NAME@STAGE`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ModelRef {
    pub name: String,
    pub selector: Selector,
}

impl ModelRef {
    /// Parses `NAME@V` / `NAME@STAGE`; `None` when the text is not shaped like one.
    pub fn parse(text: &str) -> Option<ModelRef> {
        let (name, sel) = text.trim().rsplit_once('@')?;
        if !valid_model_name(name) {
            return None;
        }
        let selector = if !sel.is_empty() && sel.bytes().all(|b| b.is_ascii_digit()) {
            Selector::Version(sel.parse().ok().filter(|v| *v > 0)?)
        } else if valid_stage_name(sel) {
            Selector::Stage(sel.to_string())
        } else {
            return None;
        };
        Some(ModelRef { name: name.to_string(), selector })
    }
}

impl fmt::Display for ModelRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.selector {
            Selector::Version(v) => write!(f, "{}@{v}", self.name),
            Selector::Stage(s) => write!(f, "{}@{s}", self.name),
        }
    }
}
