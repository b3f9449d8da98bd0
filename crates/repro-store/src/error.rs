use std::path::PathBuf;

use repro_core::Digest;
use thiserror::Error;

/// Everything that can go wrong keeping things. Each message is one line that names the
/// thing and says what to do.
#[derive(Debug, Error)]
pub enum StoreError {
    #[error(
        "no repro store in {0} or any parent folder; run `repro init` there (or pass --store DIR / set REPRO_STORE)"
    )]
    NotFound(PathBuf),
    #[error(
        "{0} is not a repro store (no repro.toml inside); pass the folder that holds .repro/, or run `repro init`"
    )]
    NotAStore(PathBuf),
    #[error("a repro store already exists at {0}; use it, or remove it first to start over")]
    AlreadyExists(PathBuf),
    #[error("cannot {action} {path}: {source}")]
    Io { action: &'static str, path: PathBuf, source: std::io::Error },
    #[error("metadata database {path}: {context}: {source}")]
    Database { path: PathBuf, context: String, source: crate::db::DbError },
    #[error("{path}: {message}")]
    Config { path: PathBuf, message: String },
    #[error("the store was written by a newer repro (schema {found}, this build knows {known}); upgrade repro")]
    SchemaTooNew { found: i64, known: i64 },
    #[error("object {0} is missing from the store; run `repro fsck` to see what else is damaged")]
    ObjectMissing(Digest),
    #[error("object {0} is corrupt (its content no longer hashes to its name); run `repro fsck` and restore the store from a backup")]
    ObjectCorrupt(Digest),
    #[error("object {digest} is not a readable snapshot manifest ({problem}); run `repro fsck`")]
    NotAManifest { digest: Digest, problem: String },
    #[error("no run matches '{0}'; `repro runs` lists the runs (a run is named by id, a 4+ character id prefix, its name, or `latest`)")]
    UnknownRun(String),
    #[error("{0}; the registry was changed behind repro's back, so nothing more is written to it: run `repro fsck` and restore .repro from a backup")]
    RegistryDamaged(String),
    /// A run's facts changed while its end was being sealed: seal the record again.
    #[error("run {0} received more facts while its end was being recorded; try again")]
    FactsMoved(String),
    /// What fsck can see is damaged; registry writes, exports and signatures wait until the
    /// store is restored.
    #[error("{0}")]
    Damaged(String),
    /// Tracking API: something named does not exist (MLflow RESOURCE_DOES_NOT_EXIST).
    #[error("{0}")]
    Missing(String),
    /// Tracking API: a name already taken (MLflow RESOURCE_ALREADY_EXISTS).
    #[error("{0}")]
    AlreadyThere(String),
    /// Tracking API: a request the store refuses (MLflow INVALID_PARAMETER_VALUE).
    #[error("{0}")]
    Invalid(String),
    /// A model reference that names no version; the message lists what exists.
    #[error("{0}")]
    UnknownModel(String),
    #[error("'{spec}' matches {count} runs ({examples}); give more characters of the id")]
    AmbiguousRun { spec: String, count: usize, examples: String },
    #[error("no dataset '{0}'; `repro data ls` lists the datasets")]
    UnknownDataset(String),
    #[error("stored record of run {run} is unreadable ({message}); run `repro fsck`")]
    BadRecord { run: String, message: String },
    #[error("{path} changed while it was being snapshotted; run again when nothing writes to it")]
    ChangedDuringSnapshot { path: PathBuf },
    /// The object store's shared tier (S3) could not do something.
    #[error("{0}")]
    Remote(Box<RemoteFailure>),
    #[error("bucket '{bucket}' does not exist at {endpoint}; create it first (repro never creates buckets)")]
    NoBucket { bucket: String, endpoint: String },
}

/// Boxed in [`StoreError::Remote`]: every error type that wraps a `StoreError` stays small.
#[derive(Debug, Error)]
#[error("cannot {action} {url} ({endpoint}): {cause}; {advice}")]
pub struct RemoteFailure {
    /// Reads as "upload object blake3:… to".
    pub action: String,
    /// `s3://BUCKET[/PREFIX]`.
    pub url: String,
    pub endpoint: String,
    pub cause: String,
    pub advice: &'static str,
}

impl StoreError {
    /// A shared backend that is unreachable for now (the database's connection lost or
    /// refused, the object store failing), not anything about the request: worth retrying.
    pub fn is_unavailable(&self) -> bool {
        match self {
            StoreError::Database { source, .. } => source.is_connection(),
            StoreError::Remote(_) => true,
            _ => false,
        }
    }

    pub(crate) fn io(action: &'static str, path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> StoreError {
        let path = path.into();
        move |source| StoreError::Io { action, path, source }
    }
}
