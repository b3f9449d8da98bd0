//! Tokens: when the store has any (`repro token create`), every request but `/health` and
//! `/version` must carry one — `Authorization: Bearer <token>` as the MLflow client sends
//! `MLFLOW_TRACKING_TOKEN`, or Basic auth with the token as the password. `read` tokens may
//! only read (GET, and the search endpoints that POST); `write` and `admin` may write.

use std::sync::Arc;

use axum::extract::{Request, State as AxState};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use base64::Engine as _;

use crate::{ApiError, State};

fn presented(headers: &HeaderMap) -> Option<String> {
    let value = headers.get(axum::http::header::AUTHORIZATION)?.to_str().ok()?.trim();
    let (scheme, rest) = value.split_once(' ')?;
    match scheme.to_ascii_lowercase().as_str() {
        "bearer" => Some(rest.trim().to_string()),
        "basic" => {
            let decoded = base64::engine::general_purpose::STANDARD.decode(rest.trim()).ok()?;
            let text = String::from_utf8(decoded).ok()?;
            text.split_once(':').map(|(_, password)| password.to_string())
        }
        _ => None,
    }
}

/// Whether a request changes anything: every non-GET but the searches (which POST).
fn writes(method: &Method, path: &str) -> bool {
    *method != Method::GET
        && *method != Method::HEAD
        && !["/runs/search", "/experiments/search", "/logged-models/search"].iter().any(|p| path.ends_with(p))
}

pub async fn check(AxState(state): AxState<Arc<State>>, req: Request, next: Next) -> Response {
    let path = req.uri().path().to_string();
    if path == "/health" || path == "/version" {
        return next.run(req).await;
    }
    let token = presented(req.headers());
    if let (Some(t), Some(h)) = (&token, &state.ephemeral) {
        if repro_store::tracking::token_hash(t) == *h {
            return next.run(req).await;
        }
    }
    let lookup = token.clone();
    let checked = state.with_meta(move |m, _| Ok(m.token_role(lookup.as_deref())?)).await;
    let (any, role) = match checked {
        Ok(x) => x,
        Err(e) => return e.into_response(),
    };
    if !any {
        return next.run(req).await;
    }
    match role {
        None => ApiError {
            status: StatusCode::UNAUTHORIZED,
            code: "UNAUTHENTICATED",
            message: if token.is_some() {
                "The token is not valid for this server; create one with `repro token create`.".into()
            } else {
                "This server requires a token: send `Authorization: Bearer <token>` (MLFLOW_TRACKING_TOKEN for the MLflow client).".into()
            },
        }
        .into_response(),
        Some(r) if r == "read" && writes(req.method(), &path) => ApiError {
            status: StatusCode::FORBIDDEN,
            code: "PERMISSION_DENIED",
            message: format!("A read token cannot {} {path}; use a write token.", req.method()),
        }
        .into_response(),
        Some(_) => next.run(req).await,
    }
}
