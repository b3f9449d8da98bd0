//! Observing things: the git state of the code, the training script, Python environments
//! (installed and declared), the hardware, and data snapshots.
//!
//! Depends on `repro-core` for the vocabulary and on `repro-store` to keep what it
//! snapshots. It never spawns the user's command; `repro-exec` does that.

pub mod container;
pub mod declared;
mod error;
pub mod git;
pub mod hardware;
pub mod notebook;
pub mod python;
pub mod script;
pub mod snapshot;

pub use error::CaptureError;

pub type Result<T, E = CaptureError> = std::result::Result<T, E>;
