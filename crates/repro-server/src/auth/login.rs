//! Signing in to the web UI when the store has tokens: a form takes a token once, and the
//! browser gets a session cookie (`repro_session`: HttpOnly, SameSite=Strict, Path=/).
//!
//! The cookie holds a random session id (256 bits), never the token: the id maps to the
//! token in this server's memory only, so the token is not stored by the browser, not
//! written to disk, and a restart signs everyone out. Each request re-checks the token, so
//! `repro token revoke` ends its sessions at once; a session also ends after 12 hours and
//! at logout. The cookie is honoured for `/ui` pages only, never by the APIs.
//!
//! Both forms carry a CSRF token (see `csrf`), checked on POST: sign-in against a nonce
//! cookie the form page sets, sign-out against the session. Cookies get `Secure` when the
//! request came over HTTPS, which for plain-HTTP `repro serve` means a trusted proxy said so
//! (`--trusted-proxy`, see `guard`).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::rejection::FormRejection;
use axum::extract::{Extension, Form, Query, State as AxState};
use axum::http::header::{COOKIE, SET_COOKIE};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;

use crate::request::Https;
use crate::routes::{Role, Routes};
use crate::ui::enc;
use crate::ui::layout::page;
use crate::State;
use maud::{html, Markup};

/// The sign-in form and sign-out are open to all: the one takes a token, the other ends only
/// the session its own cookie names; both check a CSRF token.
pub(crate) fn routes() -> Routes {
    use axum::http::Method as M;
    Routes::new()
        .limit(Some(crate::request::MAX_FORM))
        .page(M::GET, LOGIN, Role::Public, login_page)
        .page(M::POST, LOGIN, Role::Public, login)
        .page(M::POST, LOGOUT, Role::Public, logout)
}

pub const LOGIN: &str = "/ui/login";
pub const LOGOUT: &str = "/ui/logout";
const COOKIE_NAME: &str = "repro_session";
/// The sign-in form's nonce, which its CSRF token is made from.
const CSRF_COOKIE: &str = "repro_csrf";
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
    cookie(headers, COOKIE_NAME)
}

fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
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

#[derive(Deserialize)]
pub(crate) struct LoginQuery {
    next: Option<String>,
}

/// A CSRF token: a MAC, under this process's secret, of what it protects (the sign-in
/// form's nonce cookie, or the session id for sign-out), so a page on another site can
/// neither read nor forge one.
fn csrf(state: &State, purpose: &str, value: &str) -> blake3::Hash {
    let mut h = blake3::Hasher::new_keyed(&state.secret);
    h.update(purpose.as_bytes()).update(&[0]).update(value.as_bytes());
    h.finalize()
}

/// Whether `presented` is the CSRF token for `value` (compared in constant time).
fn csrf_ok(state: &State, purpose: &str, value: &str, presented: Option<&str>) -> bool {
    presented.and_then(|p| blake3::Hash::from_hex(p.trim()).ok()).is_some_and(|p| p == csrf(state, purpose, value))
}

/// The token the sign-out form carries for this session.
pub(crate) fn logout_csrf(state: &State, session: &str) -> String {
    csrf(state, "logout", session).to_hex().to_string()
}

/// The sign-in form's nonce: the browser's, if it has a well-formed one, else a new one
/// (with the cookie that gives it to the browser).
fn nonce(headers: &HeaderMap, https: bool) -> (String, Option<String>) {
    match cookie(headers, CSRF_COOKIE).filter(|n| n.len() == 32 && n.bytes().all(|b| b.is_ascii_hexdigit())) {
        Some(n) => (n, None),
        None => {
            let n = uuid::Uuid::new_v4().simple().to_string();
            let set = format!("{CSRF_COOKIE}={n}; Path=/ui; HttpOnly; SameSite=Strict{}", secure(https));
            (n, Some(set))
        }
    }
}

fn secure(https: bool) -> &'static str {
    if https {
        "; Secure"
    } else {
        ""
    }
}

fn https_of(h: Option<Extension<Https>>) -> bool {
    h.is_some_and(|Extension(Https(on))| on)
}

fn form(state: &State, nonce: &str, next: &str, problem: Option<&str>) -> Markup {
    html! {
        h1 { "Sign in" }
        @if let Some(p) = problem {
            div.error #login-error { (p) }
        }
        p {
            "This server needs a token. " code { "repro token create --role read" }
            " on its store makes one."
        }
        form method="post" action=(LOGIN) #login {
            input type="hidden" name="next" value=(next);
            input type="hidden" name="csrf" value=(csrf(state, "login", nonce).to_hex());
            label { "Token " input type="password" name="token" autocomplete="current-password" autofocus; }
            " "
            button type="submit" { "Sign in" }
        }
    }
}

/// The sign-in page (with `status`), setting the nonce cookie when the browser has none.
fn form_page(
    state: &State,
    headers: &HeaderMap,
    https: bool,
    status: StatusCode,
    next: &str,
    problem: Option<&str>,
) -> Response {
    let (nonce, set) = nonce(headers, https);
    let mut response = (status, page("Sign in", &[], form(state, &nonce, next, problem))).into_response();
    if let Some(value) = set.and_then(|c| HeaderValue::from_str(&c).ok()) {
        response.headers_mut().append(SET_COOKIE, value);
    }
    response
}

pub(crate) async fn login_page(
    AxState(s): AxState<Arc<State>>,
    headers: HeaderMap,
    https: Option<Extension<Https>>,
    q: Result<Query<LoginQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let next = q.ok().and_then(|Query(q)| q.next);
    form_page(&s, &headers, https_of(https), StatusCode::OK, &safe_next(next.as_deref()), None)
}

#[derive(Deserialize)]
pub(crate) struct LoginForm {
    #[serde(default)]
    token: String,
    next: Option<String>,
    csrf: Option<String>,
}

pub(crate) async fn login(
    AxState(s): AxState<Arc<State>>,
    headers: HeaderMap,
    https: Option<Extension<Https>>,
    f: Result<Form<LoginForm>, FormRejection>,
) -> Response {
    let https = https_of(https);
    let Ok(Form(f)) = f else {
        let problem = "The sign-in form was not understood; send token=… as a form.";
        return form_page(&s, &headers, https, StatusCode::BAD_REQUEST, "/ui", Some(problem));
    };
    let next = safe_next(f.next.as_deref());
    // The nonce cookie is SameSite=Strict: another site's form arrives without it.
    let nonce = cookie(&headers, CSRF_COOKIE).unwrap_or_default();
    if nonce.is_empty() || !csrf_ok(&s, "login", &nonce, f.csrf.as_deref()) {
        let problem = "This sign-in form expired or was sent from another site; sign in again here.";
        return form_page(&s, &HeaderMap::new(), https, StatusCode::FORBIDDEN, &next, Some(problem));
    }
    let token = f.token.trim().to_string();
    let lookup = token.clone();
    let checked = s.with_meta(move |m, _| Ok(m.tokens().role(Some(&lookup))?)).await;
    match checked {
        Err(e) => form_page(&s, &headers, https, e.status, &next, Some(&e.message)),
        // No tokens: the UI is open, nothing to sign in to.
        Ok((false, _)) => Redirect::to(&next).into_response(),
        // Never echo what was typed: a near-miss token is still a secret.
        Ok((true, None)) => form_page(
            &s,
            &headers,
            https,
            StatusCode::UNAUTHORIZED,
            &next,
            Some("That token is not valid for this server."),
        ),
        Ok((true, Some(_))) => match s.sessions.create(token) {
            Some(id) => {
                let cookie = format!(
                    "{COOKIE_NAME}={id}; Path=/; HttpOnly; SameSite=Strict; Max-Age={}{}",
                    LIFETIME.as_secs(),
                    secure(https)
                );
                ([(SET_COOKIE, cookie)], Redirect::to(&next)).into_response()
            }
            None => form_page(
                &s,
                &headers,
                https,
                StatusCode::INTERNAL_SERVER_ERROR,
                &next,
                Some("Sessions are unavailable."),
            ),
        },
    }
}

#[derive(Deserialize)]
pub(crate) struct LogoutForm {
    csrf: Option<String>,
}

pub(crate) async fn logout(
    AxState(s): AxState<Arc<State>>,
    headers: HeaderMap,
    https: Option<Extension<Https>>,
    f: Result<Form<LogoutForm>, FormRejection>,
) -> Response {
    if let Some(id) = session_of(&headers) {
        let presented = f.ok().and_then(|Form(f)| f.csrf);
        if !csrf_ok(&s, "logout", &id, presented.as_deref()) {
            let message = "This sign-out was sent without the page's form (another site, or an old page); use the Sign out button.";
            return crate::ui::error_page(StatusCode::FORBIDDEN, "Not signed out", message);
        }
        s.sessions.remove(&id);
    }
    let clear = format!("{COOKIE_NAME}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0{}", secure(https_of(https)));
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
