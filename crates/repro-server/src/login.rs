//! Signing in to the web UI when the store has tokens: a form takes a token once, and the
//! browser gets a session cookie (`repro_session`: HttpOnly, SameSite=Strict, Path=/).
//!
//! The cookie holds a random session id (256 bits), never the token: the id maps to the
//! token in this server's memory only, so the token is not stored by the browser, not
//! written to disk, and a restart signs everyone out. Each request re-checks the token, so
//! `repro token revoke` ends its sessions at once; a session also ends after 12 hours and
//! at logout. The cookie is honoured for `/ui` pages only, never by the APIs.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::rejection::FormRejection;
use axum::extract::{DefaultBodyLimit, Form, Query, State as AxState};
use axum::http::header::{COOKIE, SET_COOKIE};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::Router;
use serde::Deserialize;

use crate::ui::{enc, esc, page};
use crate::State;

pub const LOGIN: &str = "/ui/login";
pub const LOGOUT: &str = "/ui/logout";
const COOKIE_NAME: &str = "repro_session";
const LIFETIME: Duration = Duration::from_secs(12 * 3600);
/// Sign-ins kept at most; the oldest goes first (a bound on memory, whoever logs in).
const MAX_SESSIONS: usize = 10_000;

struct Session {
    token: String,
    expires: Instant,
}

#[derive(Default)]
pub struct Sessions {
    map: Mutex<HashMap<String, Session>>,
}

impl Sessions {
    fn create(&self, token: String) -> Option<String> {
        let id = format!("{}{}", uuid::Uuid::new_v4().simple(), uuid::Uuid::new_v4().simple());
        let mut map = self.map.lock().ok()?;
        let now = Instant::now();
        map.retain(|_, s| s.expires > now);
        if map.len() >= MAX_SESSIONS {
            if let Some(oldest) = map.iter().min_by_key(|(_, s)| s.expires).map(|(k, _)| k.clone()) {
                map.remove(&oldest);
            }
        }
        map.insert(id.clone(), Session { token, expires: now + LIFETIME });
        Some(id)
    }

    /// The token a live session was made with.
    pub fn token(&self, id: &str) -> Option<String> {
        let mut map = self.map.lock().ok()?;
        match map.get(id) {
            Some(s) if s.expires > Instant::now() => Some(s.token.clone()),
            Some(_) => {
                map.remove(id);
                None
            }
            None => None,
        }
    }

    pub fn remove(&self, id: &str) {
        if let Ok(mut map) = self.map.lock() {
            map.remove(id);
        }
    }
}

/// The session id the browser sent, if any.
pub fn session_of(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == COOKIE_NAME)
        .map(|(_, v)| v.trim().to_string())
        .filter(|v| !v.is_empty() && v.len() <= 128)
}

/// Where the login page sends the browser back to: a UI page of this server, nothing else
/// (an open redirect would let a link bounce a signed-in user anywhere).
fn safe_next(next: Option<&str>) -> String {
    match next {
        Some(n)
            if (n == "/ui" || n.starts_with("/ui/") || n.starts_with("/ui?"))
                && !n.contains("//")
                && !n.contains('\\')
                && !n.chars().any(char::is_control)
                && !n.starts_with(LOGIN) =>
        {
            n.to_string()
        }
        _ => "/ui".into(),
    }
}

pub fn login_url(wanted: &str) -> String {
    format!("{LOGIN}?next={}", enc(&safe_next(Some(wanted))))
}

pub fn router() -> Router<Arc<State>> {
    Router::new()
        .route(LOGIN, get(login_page).post(login))
        .route(LOGOUT, post(logout))
        // A token is ~40 bytes; nothing bigger needs reading.
        .layer(DefaultBodyLimit::max(16 * 1024))
}

#[derive(Deserialize)]
struct LoginQuery {
    next: Option<String>,
}

fn form(next: &str, problem: Option<&str>) -> String {
    let mut b = String::from("<h1>Sign in</h1>");
    if let Some(p) = problem {
        let _ = write!(b, "<div class=\"error\" id=\"login-error\">{}</div>", esc(p));
    }
    let _ = write!(
        b,
        "<p>This server needs a token. <code>repro token create --role read</code> on its store makes one.</p>\
         <form method=\"post\" action=\"{LOGIN}\" id=\"login\"><input type=\"hidden\" name=\"next\" value=\"{}\">\
         <label>Token <input type=\"password\" name=\"token\" autocomplete=\"current-password\" autofocus></label> \
         <button type=\"submit\">Sign in</button></form>",
        esc(next)
    );
    b
}

async fn login_page(q: Result<Query<LoginQuery>, axum::extract::rejection::QueryRejection>) -> Response {
    let next = q.ok().and_then(|Query(q)| q.next);
    page("Sign in", &form(&safe_next(next.as_deref()), None)).into_response()
}

#[derive(Deserialize)]
struct LoginForm {
    #[serde(default)]
    token: String,
    next: Option<String>,
}

async fn login(AxState(s): AxState<Arc<State>>, f: Result<Form<LoginForm>, FormRejection>) -> Response {
    let Ok(Form(f)) = f else {
        let body = form("/ui", Some("The sign-in form was not understood; send token=… as a form."));
        return (StatusCode::BAD_REQUEST, page("Sign in", &body)).into_response();
    };
    let next = safe_next(f.next.as_deref());
    let token = f.token.trim().to_string();
    let lookup = token.clone();
    let checked = s.with_meta(move |m, _| Ok(m.token_role(Some(&lookup))?)).await;
    match checked {
        Err(e) => (e.status, page("Sign in", &form(&next, Some(&e.message)))).into_response(),
        // No tokens: the UI is open, nothing to sign in to.
        Ok((false, _)) => Redirect::to(&next).into_response(),
        // Never echo what was typed: a near-miss token is still a secret.
        Ok((true, None)) => {
            let body = form(&next, Some("That token is not valid for this server."));
            (StatusCode::UNAUTHORIZED, page("Sign in", &body)).into_response()
        }
        Ok((true, Some(_))) => match s.sessions.create(token) {
            Some(id) => {
                let cookie =
                    format!("{COOKIE_NAME}={id}; Path=/; HttpOnly; SameSite=Strict; Max-Age={}", LIFETIME.as_secs());
                ([(SET_COOKIE, cookie)], Redirect::to(&next)).into_response()
            }
            None => {
                (StatusCode::INTERNAL_SERVER_ERROR, page("Sign in", &form(&next, Some("Sessions are unavailable."))))
                    .into_response()
            }
        },
    }
}

async fn logout(AxState(s): AxState<Arc<State>>, headers: HeaderMap) -> Response {
    if let Some(id) = session_of(&headers) {
        s.sessions.remove(&id);
    }
    let clear = format!("{COOKIE_NAME}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0");
    ([(SET_COOKIE, clear)], Redirect::to(LOGIN)).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_ui_pages_are_places_to_return_to() {
        assert_eq!(safe_next(Some("/ui/runs/abc?x=1")), "/ui/runs/abc?x=1");
        assert_eq!(safe_next(Some("/ui?filter=a")), "/ui?filter=a");
        for bad in
            ["https://evil.example", "//evil.example", "/ui//evil", "/api/v1/runs", "/ui\\x", "/uix", "/ui/login"]
        {
            assert_eq!(safe_next(Some(bad)), "/ui", "{bad}");
        }
        assert_eq!(safe_next(None), "/ui");
    }

    #[test]
    fn the_session_cookie_is_found_among_others() {
        let mut h = HeaderMap::new();
        h.insert(COOKIE, "a=1; repro_session=abc ; b=2".parse().expect("header"));
        assert_eq!(session_of(&h).as_deref(), Some("abc"));
        h.insert(COOKIE, "repro_sessionx=1".parse().expect("header"));
        assert_eq!(session_of(&h), None);
    }

    #[test]
    fn sessions_end_when_removed() {
        let s = Sessions::default();
        let id = s.create("t".into()).expect("session");
        assert_eq!(s.token(&id).as_deref(), Some("t"));
        s.remove(&id);
        assert_eq!(s.token(&id), None);
    }
}
