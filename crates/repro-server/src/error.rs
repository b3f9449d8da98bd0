use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use repro_exec::ExecError;
use repro_store::StoreError;
use thiserror::Error;

/// Why the server could not start or keep serving.
#[derive(Debug, Error)]
pub enum ServerError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("cannot listen on {addr}: {source}; pick another --port or stop what uses it")]
    Bind { addr: String, source: std::io::Error },
    #[error("cannot start the server's runtime: {0}")]
    Runtime(std::io::Error),
    /// A `repro serve` option that cannot be used, with what to give instead.
    #[error("{0}")]
    Config(String),
}

/// An error as the MLflow client expects it: a JSON envelope with the error code's name,
/// and a 4xx status for anything the client got wrong (a 5xx makes it retry for minutes).
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
}

impl ApiError {
    pub fn invalid(message: impl Into<String>) -> Self {
        ApiError { status: StatusCode::BAD_REQUEST, code: "INVALID_PARAMETER_VALUE", message: message.into() }
    }

    pub fn missing_param(name: &str) -> Self {
        Self::invalid(format!("Missing value for required parameter '{name}'. See the API docs for more information about request parameters."))
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        ApiError { status: StatusCode::NOT_FOUND, code: "RESOURCE_DOES_NOT_EXIST", message: message.into() }
    }

    pub fn no_endpoint(path: &str) -> Self {
        ApiError {
            status: StatusCode::NOT_FOUND,
            code: "ENDPOINT_NOT_FOUND",
            message: format!(
                "No API endpoint at {path}; this server implements the MLflow tracking API under /api/2.0/mlflow"
            ),
        }
    }

    /// A backend (PostgreSQL, S3) unreachable for now: 503, which MLflow clients retry.
    pub fn unavailable(message: impl Into<String>) -> Self {
        ApiError { status: StatusCode::SERVICE_UNAVAILABLE, code: "TEMPORARILY_UNAVAILABLE", message: message.into() }
    }

    pub fn internal(message: impl Into<String>) -> Self {
        ApiError { status: StatusCode::INTERNAL_SERVER_ERROR, code: "INTERNAL_ERROR", message: message.into() }
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Missing(m) => ApiError::not_found(m),
            StoreError::UnknownRun(r) => ApiError::not_found(format!("Run with id={r} not found")),
            StoreError::AlreadyThere(m) => {
                ApiError { status: StatusCode::BAD_REQUEST, code: "RESOURCE_ALREADY_EXISTS", message: m }
            }
            StoreError::Invalid(m) => ApiError::invalid(m),
            other if other.is_unavailable() => ApiError::unavailable(other.to_string()),
            other => ApiError::internal(other.to_string()),
        }
    }
}

/// The native API's and the UI's view of a failure: the CLI's own message (so `repro
/// --server` says what the local command says), 404 for what does not exist, 400 for what
/// the client got wrong, 500 only for what is wrong on the server.
impl From<ExecError> for ApiError {
    fn from(e: ExecError) -> Self {
        match e {
            ExecError::Store(
                s @ (StoreError::UnknownRun(_)
                | StoreError::UnknownModel(_)
                | StoreError::UnknownDataset(_)
                | StoreError::Missing(_)),
            ) => ApiError::not_found(s.to_string()),
            ExecError::Store(s @ (StoreError::AmbiguousRun { .. } | StoreError::Invalid(_))) => {
                ApiError::invalid(s.to_string())
            }
            ExecError::Store(s) => ApiError::from(s),
            e @ (ExecError::Usage(_) | ExecError::Core(_) | ExecError::Parse { .. }) => {
                ApiError::invalid(e.to_string())
            }
            other => ApiError::internal(other.to_string()),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = serde_json::json!({"error_code": self.code, "message": self.message});
        (self.status, axum::Json(body)).into_response()
    }
}
