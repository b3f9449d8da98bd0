use std::path::PathBuf;

use repro_store::StoreError;
use thiserror::Error;

/// What can go wrong observing things. Messages name the file (and line) and say what to do.
#[derive(Debug, Error)]
pub enum CaptureError {
    #[error("{path}:{line}: {message}")]
    Parse { path: PathBuf, line: usize, message: String },
    #[error("{path}: {message}")]
    Invalid { path: PathBuf, message: String },
    #[error("cannot {action} {path}: {source}")]
    Io { action: &'static str, path: PathBuf, source: std::io::Error },
    #[error("{path} does not exist; check the path (it is resolved from {cwd})")]
    NoSuchPath { path: PathBuf, cwd: PathBuf },
    #[error("{path} is a {kind}, which a snapshot cannot hold; remove it or snapshot a folder without it")]
    Unsupported { path: PathBuf, kind: &'static str },
    #[error("command not found: {0}; check the spelling, or give its path")]
    CommandNotFound(String),
    #[error("no python3 or python on PATH to run {0} with nbclient; activate the virtualenv that has nbclient and ipykernel")]
    NoPython(String),
    #[error("git failed ({command}): {message}")]
    Git { command: String, message: String },
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl CaptureError {
    pub(crate) fn io(action: &'static str, path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> CaptureError {
        let path = path.into();
        move |source| CaptureError::Io { action, path, source }
    }
}
