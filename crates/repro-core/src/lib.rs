//! The vocabulary of repro: identifiers, the run record (lineage), snapshot manifests,
//! hyperparameter flattening, the metrics line format, the audit rules, credentials in
//! URLs (found and stripped before they are recorded) and text safe for a terminal.
//!
//! Pure logic only: no file system, no processes, no network. Every other crate of
//! ours depends on this one; it depends on none of them.

pub mod actor;
pub mod audit;
pub mod container;
pub mod diff;
pub mod digest;
pub mod environment;
pub mod error;
pub mod metrics;
pub mod model_card;
pub mod models;
pub mod openlineage;
pub mod params;
pub mod pickles;
pub mod probe;
pub mod progress;
pub mod provenance;
pub mod record;
pub mod registry;
pub mod replay;
pub mod search;
pub mod secrets;
pub mod snapshot;
pub mod text;

// The old path of the approval statement (it lives with the registry it reads).
pub use digest::{Digest, RunId};
pub use error::CoreError;
pub use registry::approval;
