//! Tokens: when the store has any (`repro token create`), every route but the public ones
//! (`/health`, `/version`, the sign-in form) needs one — `Authorization: Bearer <token>` as
//! the MLflow client sends `MLFLOW_TRACKING_TOKEN`, or Basic auth with the token as the
//! password — whose role is at least the one the route table gives the route (`routes`):
//! `read` reads, `write` writes, `admin` also changes what a stage serves.
//!
//! The web UI's pages also take the session cookie of its login page (see `login`, the sign-in form), and
//! send a browser without one to that page instead of answering 401.

pub(crate) mod login;

use std::sync::Arc;

use axum::extract::Request;
use axum::http::{HeaderMap, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};
use base64::Engine as _;

use crate::routes::{Kind, Role, Route};
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

tokio::task_local! {
    /// The name of the token a request came with (`repro token create --name`), while its
    /// handler runs.
    pub(crate) static TOKEN_NAME: String;
}

/// The role a stored token has.
fn role_of(role: &str) -> Role {
    match role {
        "admin" => Role::Admin,
        "write" => Role::Write,
        _ => Role::Read,
    }
}

/// Why a token's role is not enough, in one line that says what would be.
fn too_small(have: Role, need: Role, method: &Method, path: &str) -> ApiError {
    let path: String = path.chars().filter(|c| !c.is_control()).take(200).collect();
    let a = if need == Role::Admin { "an" } else { "a" };
    let need = need.name();
    let message = if have == Role::Read {
        format!(
            "A read token cannot {method} {path}; use {a} {need} token (`repro token create --role {need}` on the server's store)"
        )
    } else {
        format!(
            "{method} {path} needs {a} {need} token (this one is {}); `repro token create --role {need}` on the server's store makes one",
            have.name()
        )
    };
    ApiError::forbidden(message)
}

/// A refusal written for whom the route is for: a page for the UI, the JSON envelope for
/// the APIs.
fn refusal(ui: bool, e: ApiError) -> Response {
    if ui {
        crate::ui::api_error_page(e)
    } else {
        e.into_response()
    }
}

/// Lets a request through to its handler when its caller has the role its route needs
/// (`routes`). Without tokens in the store everyone has every role: the server is open to
/// whoever reaches it (loopback unless told otherwise, and the guard's Host and Origin
/// checks apply).
pub(crate) async fn authorize(state: &Arc<State>, route: &Route, req: Request, next: Next) -> Response {
    if route.role == Role::Public {
        return next.run(req).await;
    }
    let ui = route.kind == Kind::Ui;
    let bearer = presented(req.headers());
    // The cookie counts for the UI only: the APIs take no ambient credentials.
    let session = if ui && bearer.is_none() { login::session_of(req.headers()) } else { None };
    let token = bearer.or_else(|| session.as_deref().and_then(|id| state.sessions.token(id)));
    if let (Some(t), Some(h)) = (&token, &state.ephemeral) {
        if repro_store::tokens::token_hash(t) == *h {
            // `repro run`'s own token writes, as the command's MLflow client must.
            if Role::Write < route.role {
                return refusal(ui, too_small(Role::Write, route.role, req.method(), req.uri().path()));
            }
            return next.run(req).await;
        }
    }
    let lookup = token.clone();
    let checked = state.with_meta(move |m, _| Ok(m.tokens().identity(lookup.as_deref())?)).await;
    let (any, found) = match checked {
        Ok(found) => found,
        Err(e) => return refusal(ui, e),
    };
    if !any {
        return next.run(req).await;
    }
    match found {
        None if ui && (req.method() == Method::GET || req.method() == Method::HEAD) => {
            // A revoked token ends the sessions made with it.
            if let Some(id) = &session {
                state.sessions.remove(id);
            }
            let wanted = req.uri().path_and_query().map(|p| p.as_str()).unwrap_or("/ui");
            Redirect::to(&login::login_url(wanted)).into_response()
        }
        None => refusal(
            ui,
            ApiError {
                status: StatusCode::UNAUTHORIZED,
                code: "UNAUTHENTICATED",
                message: if token.is_some() {
                    "The token is not valid for this server; create one with `repro token create`.".into()
                } else {
                    "This server requires a token: send `Authorization: Bearer <token>` (MLFLOW_TRACKING_TOKEN for the MLflow client).".into()
                },
            },
        ),
        Some((role, _)) if role_of(&role) < route.role => {
            refusal(ui, too_small(role_of(&role), route.role, req.method(), req.uri().path()))
        }
        Some((_, name)) => {
            // Registry events through the MLflow door are by the token that asked.
            match session {
                Some(id) => {
                    let logout = login::logout_csrf(state, &id);
                    TOKEN_NAME.scope(name, crate::ui::SIGNED_IN.scope(logout, next.run(req))).await
                }
                None => TOKEN_NAME.scope(name, next.run(req)).await,
            }
        }
    }
}
