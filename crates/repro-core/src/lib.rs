//! The vocabulary of repro: identifiers, the run record (lineage), snapshot manifests,
//! hyperparameter flattening, the metrics line format and the audit rules.
//!
//! Pure logic only: no file system, no processes, no network. Every other crate of
//! ours depends on this one; it depends on none of them.

pub mod approval;
pub mod audit;
pub mod diff;
pub mod digest;
pub mod environment;
pub mod error;
pub mod metrics;
pub mod params;
pub mod pickles;
pub mod provenance;
pub mod record;
pub mod registry;
pub mod search;
pub mod snapshot;

pub use digest::{Digest, RunId};
pub use error::CoreError;
