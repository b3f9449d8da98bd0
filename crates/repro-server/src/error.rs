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

    /// A conflict: MLflow answers it with 400 and this code.
    pub fn already_exists(message: impl Into<String>) -> Self {
        ApiError { status: StatusCode::BAD_REQUEST, code: "RESOURCE_ALREADY_EXISTS", message: message.into() }
    }

    /// A request that is well formed but cannot be done in the present state (a stage's
    /// policy not met).
    pub fn invalid_state(message: impl Into<String>) -> Self {
        ApiError { status: StatusCode::BAD_REQUEST, code: "INVALID_STATE", message: message.into() }
    }

    /// A token whose role is too small, or a write a replay's server never does.
    pub fn forbidden(message: impl Into<String>) -> Self {
        ApiError { status: StatusCode::FORBIDDEN, code: "PERMISSION_DENIED", message: message.into() }
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

/// The one mapping from the store's and exec's errors to HTTP. What the client got wrong —
/// something that does not exist, a malformed or ambiguous reference, a conflict — is a 4xx,
/// never a 5xx: MLflow's client retries a 5xx for minutes. A backend that is down is a 503
/// (worth retrying); only what is wrong on the server is a 500.
fn of_store(e: &StoreError, message: String) -> ApiError {
    match e {
        StoreError::UnknownRun(_)
        | StoreError::UnknownModel(_)
        | StoreError::UnknownDataset(_)
        | StoreError::Missing(_) => ApiError::not_found(message),
        StoreError::AlreadyThere(_) => ApiError::already_exists(message),
        StoreError::Invalid(_) | StoreError::AmbiguousRun { .. } => ApiError::invalid(message),
        other if other.is_unavailable() => ApiError::unavailable(message),
        _ => ApiError::internal(message),
    }
}

/// The MLflow door's view: MLflow's own wording for an unknown run.
impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        let message = match &e {
            StoreError::UnknownRun(r) => format!("Run with id={r} not found"),
            other => other.to_string(),
        };
        of_store(&e, message)
    }
}

/// The native API's, the UI's and the MLflow door's view of an exec call: the CLI's own
/// message (so `repro --server` says what the local command says), with the status of
/// `of_store`; a malformed reference or request is a 400.
impl From<ExecError> for ApiError {
    fn from(e: ExecError) -> Self {
        match e {
            ExecError::Store(s) => {
                let message = s.to_string();
                of_store(&s, message)
            }
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

#[cfg(test)]
mod tests {
    use super::*;

    /// A client's mistake is a 4xx whichever door it comes through; a damaged store is a 500.
    #[test]
    fn a_clients_mistake_is_never_a_5xx() {
        let client = || {
            vec![
                StoreError::UnknownRun("r".into()),
                StoreError::UnknownModel("no model 'm'".into()),
                StoreError::UnknownDataset("d".into()),
                StoreError::Missing("m".into()),
                StoreError::AlreadyThere("a".into()),
                StoreError::Invalid("i".into()),
                StoreError::AmbiguousRun { spec: "ab".into(), count: 2, examples: "abc, abd".into() },
            ]
        };
        for e in client() {
            let text = e.to_string();
            assert!(ApiError::from(e).status.is_client_error(), "{text}");
        }
        for e in client() {
            let text = e.to_string();
            assert!(ApiError::from(ExecError::Store(e)).status.is_client_error(), "{text}");
        }
        let model = ApiError::from(ExecError::Store(StoreError::UnknownModel("no model 'm'".into())));
        assert_eq!((model.status, model.code), (StatusCode::NOT_FOUND, "RESOURCE_DOES_NOT_EXIST"));
        let usage = ApiError::from(ExecError::Usage("bad".into()));
        assert_eq!((usage.status, usage.code), (StatusCode::BAD_REQUEST, "INVALID_PARAMETER_VALUE"));
        let damaged = ApiError::from(StoreError::Damaged("x".into()));
        assert_eq!((damaged.status, damaged.code), (StatusCode::INTERNAL_SERVER_ERROR, "INTERNAL_ERROR"));
    }

    #[test]
    fn each_door_keeps_its_wording_for_an_unknown_run() {
        assert_eq!(ApiError::from(StoreError::UnknownRun("ab".into())).message, "Run with id=ab not found");
        let cli = ApiError::from(ExecError::Store(StoreError::UnknownRun("ab".into())));
        assert_eq!(cli.message, StoreError::UnknownRun("ab".into()).to_string());
    }
}
