//! Tokens: when the store has any (`repro token create`), every request but `/health` and
//! `/version` must carry one — `Authorization: Bearer <token>` as the MLflow client sends
//! `MLFLOW_TRACKING_TOKEN`, or Basic auth with the token as the password. `read` tokens may
//! only read (GET, and the search endpoints that POST); `write` and `admin` may write; the
//! native API's promote and archive need `admin` (see `native`).
//!
//! The web UI (`/` and `/ui…`) also takes the session cookie of its login page (see
//! `login`), and sends a browser without one to that page instead of answering 401.

use std::sync::Arc;

use axum::extract::{Request, State as AxState};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};
use base64::Engine as _;

use crate::{ApiError, State};

pub(crate) fn presented(headers: &HeaderMap) -> Option<String> {
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

/// Whether a request changes anything: every non-GET but the reads the client POSTs.
fn writes(method: &Method, path: &str) -> bool {
    const POSTED_READS: [&str; 4] =
        ["/runs/search", "/experiments/search", "/logged-models/search", "/registered-models/get-latest-versions"];
    *method != Method::GET && *method != Method::HEAD && !POSTED_READS.iter().any(|p| path.ends_with(p))
}

tokio::task_local! {
    /// The name of the token a request came with (`repro token create --name`), while its
    /// handler runs.
    pub(crate) static TOKEN_NAME: String;
}

/// Who is asking, for the handlers that need more than `writes` decides.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Caller {
    /// The store has no tokens: everything is allowed from where the server listens.
    Open,
    Read,
    Write,
    Admin,
}

impl Caller {
    fn of(role: &str) -> Caller {
        match role {
            "admin" => Caller::Admin,
            "write" => Caller::Write,
            _ => Caller::Read,
        }
    }
}

/// The web UI's pages (the login page and logout are open to all).
fn is_ui(path: &str) -> bool {
    path == "/" || path == "/ui" || path.starts_with("/ui/")
}

pub async fn check(AxState(state): AxState<Arc<State>>, mut req: Request, next: Next) -> Response {
    let path = req.uri().path().to_string();
    if path == "/health" || path == "/version" || path == crate::login::LOGIN || path == crate::login::LOGOUT {
        return next.run(req).await;
    }
    let ui = is_ui(&path);
    let bearer = presented(req.headers());
    // The cookie counts for the UI only: the APIs take no ambient credentials.
    let session = if ui && bearer.is_none() { crate::login::session_of(req.headers()) } else { None };
    let token = bearer.or_else(|| session.as_deref().and_then(|id| state.sessions.token(id)));
    if let (Some(t), Some(h)) = (&token, &state.ephemeral) {
        if repro_store::tracking::token_hash(t) == *h {
            req.extensions_mut().insert(Caller::Write);
            return next.run(req).await;
        }
    }
    let lookup = token.clone();
    let checked = state.with_meta(move |m, _| Ok(m.token_identity(lookup.as_deref())?)).await;
    let (any, role, token_name) = match checked {
        Ok((any, found)) => {
            let (role, name) = found.map_or((None, None), |(r, n)| (Some(r), Some(n)));
            (any, role, name)
        }
        Err(e) => return e.into_response(),
    };
    if !any {
        req.extensions_mut().insert(Caller::Open);
        return next.run(req).await;
    }
    match role {
        None if ui && (req.method() == Method::GET || req.method() == Method::HEAD) => {
            // A revoked token ends the sessions made with it.
            if let Some(id) = &session {
                state.sessions.remove(id);
            }
            let wanted = req.uri().path_and_query().map(|p| p.as_str()).unwrap_or("/ui");
            Redirect::to(&crate::login::login_url(wanted)).into_response()
        }
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
        Some(r) => {
            req.extensions_mut().insert(Caller::of(&r));
            // Registry events through the MLflow door are by the token that asked.
            let name = token_name.unwrap_or_default();
            if session.is_some() {
                TOKEN_NAME.scope(name, crate::ui::SIGNED_IN.scope(true, next.run(req))).await
            } else {
                TOKEN_NAME.scope(name, next.run(req)).await
            }
        }
    }
}
