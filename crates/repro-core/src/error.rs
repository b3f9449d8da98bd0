use thiserror::Error;

/// Errors from parsing and validating the vocabulary types.
#[derive(Debug, Error)]
pub enum CoreError {
    #[error("invalid digest '{0}': expected 'blake3:' followed by 64 lowercase hex digits")]
    InvalidDigest(String),
    #[error("invalid run id '{0}': expected 32 lowercase hex digits")]
    InvalidRunId(String),
    #[error("{source_name}: {message}")]
    Params { source_name: String, message: String },
    #[error("line {line}: {message}")]
    MetricsLine { line: usize, message: String },
    #[error("invalid DSSE envelope: {0}")]
    Envelope(String),
    #[error("signature check failed: {0}")]
    Signature(String),
    #[error("invalid provenance statement: {0}")]
    Statement(String),
    /// A manifest object (or a chunk of one) that is not what it should be.
    #[error("{0}")]
    Manifest(String),
    #[error("invalid dataset name '{0}': use letters, digits, '-', '_', '.', '/' (no ':')")]
    DatasetName(String),
}
