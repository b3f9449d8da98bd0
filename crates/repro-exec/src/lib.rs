//! Doing things: the run wrapper (`repro run`: capture, spawn, tee logs, forward signals,
//! snapshot outputs, record) and the audit that re-checks a recorded run.
//!
//! Depends on `repro-core`, `repro-store` and `repro-capture`. It prints nothing itself:
//! the caller passes a [`Reporter`] for messages and progress.

pub mod artifacts;
pub mod audit;
pub mod bundle;
pub mod diff;
pub mod env;
mod error;
pub mod integrity;
pub mod keys;
pub mod openlineage;
pub mod params;
pub mod parity;
pub mod registry;
pub mod replay;
pub mod run;
mod scratch;
pub mod tokens;
pub mod trust;
pub mod views;

// The old paths of approvals and provenance, which live with the registry they sign for.
pub use error::ExecError;
pub use registry::{approval, provenance};
pub use repro_core::progress::Progress;

pub type Result<T, E = ExecError> = std::result::Result<T, E>;

/// Where the library's messages to the user go (the CLI prints them on stderr).
pub trait Reporter: Sync {
    fn message(&self, text: &str);
    /// Something the user must hear even when progress messages are off (`--json`).
    fn warn(&self, text: &str) {
        self.message(&format!("warning: {text}"));
    }
    fn progress(&self) -> &dyn Progress;
}

/// A reporter that says nothing.
pub struct Quiet;
impl Reporter for Quiet {
    fn message(&self, _text: &str) {}
    fn progress(&self) -> &dyn Progress {
        &repro_core::progress::NoProgress
    }
}
