//! What every request passes before a handler sees it, in order: the route table (an
//! unknown method and path is refused, see `routes`), the `Host` allow-list, the `Origin`
//! check, the content type of API writes, then the token and its role (`auth`). And what
//! every response carries: `X-Content-Type-Options: nosniff`, and on the UI's pages a
//! policy that forbids framing them.
//!
//! Why each exists:
//! - **Host**: a page on `evil.example` whose name is made to resolve to 127.0.0.1 (DNS
//!   rebinding) reaches a loopback server as same-origin; it cannot change the `Host`
//!   header its browser sends, so refusing names this server was not told about stops it.
//! - **Origin**: a browser names the page that made a request; anything but this server's
//!   own origin is another site acting with the user's network position (a token-less
//!   server is open to whoever reaches it).
//! - **Content type**: a cross-site page can POST `text/plain`, form or multipart bodies
//!   without asking first; `application/json` needs a CORS preflight, which this server
//!   never grants (it answers no `OPTIONS` and sends no `Access-Control-*` header). PUT,
//!   PATCH and DELETE always need that preflight, so the artifact upload may carry any type
//!   and a DELETE without a body (what the MLflow client sends) needs none.

use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::extract::{ConnectInfo, MatchedPath, Request, State as AxState};
use axum::http::header::{CONNECTION, CONTENT_LENGTH, CONTENT_TYPE, HOST, ORIGIN, TRANSFER_ENCODING};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http_body::{Body as HttpBody, Frame, SizeHint};

use crate::request::Https;
use crate::routes::{Body, Kind, Route, Table};
use crate::{ApiError, ServerError, State};

/// The names a server answers to without being told: loopback, at any port.
const LOOPBACK: [&str; 3] = ["localhost", "127.0.0.1", "[::1]"];

/// Who may reach the server by which name, and whose forwarding headers count.
#[derive(Clone, Debug)]
pub struct Access {
    hosts: Vec<String>,
    proxies: Vec<IpAddr>,
}

impl Default for Access {
    fn default() -> Self {
        Access { hosts: LOOPBACK.iter().map(|h| h.to_string()).collect(), proxies: Vec::new() }
    }
}

impl Access {
    /// Loopback names, the address the server is bound to, and `allowed` (`--allowed-host`);
    /// `X-Forwarded-Proto` is believed from `proxies` (`--trusted-proxy`) only.
    pub fn new(bound: IpAddr, allowed: &[String], proxies: &[IpAddr]) -> Result<Access, ServerError> {
        let mut access = Access::default();
        let bound = match bound {
            IpAddr::V4(ip) => ip.to_string(),
            IpAddr::V6(ip) => format!("[{ip}]"),
        };
        access.hosts.push(bound);
        for name in allowed {
            access.hosts.push(configured_host(name).map_err(ServerError::Config)?);
        }
        access.hosts.sort();
        access.hosts.dedup();
        access.proxies = proxies.to_vec();
        Ok(access)
    }

    fn allows(&self, authority: &str) -> bool {
        host_name(authority).is_some_and(|h| self.hosts.contains(&h))
    }
}

fn is_port(s: &str) -> bool {
    !s.is_empty() && s.len() <= 5 && s.bytes().all(|b| b.is_ascii_digit())
}

/// The host of a `Host` header or URL authority, in one spelling: lower case, no port, no
/// trailing dot, IPv6 in brackets. `None` when it is not a host name at all.
fn host_name(authority: &str) -> Option<String> {
    let a = authority.trim();
    if let Some(rest) = a.strip_prefix('[') {
        let (inside, after) = rest.split_once(']')?;
        if !(after.is_empty() || after.strip_prefix(':').is_some_and(is_port)) {
            return None;
        }
        let ip: Ipv6Addr = inside.parse().ok()?;
        return Some(format!("[{ip}]"));
    }
    let name = match a.rsplit_once(':') {
        Some((h, port)) if is_port(port) => h,
        Some(_) => return None,
        None => a,
    };
    let name = name.strip_suffix('.').unwrap_or(name).to_ascii_lowercase();
    let valid = !name.is_empty()
        && name.len() <= 253
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_'));
    valid.then_some(name)
}

/// An `--allowed-host` value: a name or an address, without scheme, path or port.
fn configured_host(value: &str) -> Result<String, String> {
    let v = value.trim();
    if let Ok(ip) = v.parse::<Ipv6Addr>() {
        return Ok(format!("[{ip}]"));
    }
    let refuse = |why: &str| format!("--allowed-host {value:?} {why}");
    if v.contains("://") || v.contains('/') {
        return Err(refuse("is a URL; give the host name only, e.g. --allowed-host repro.example.com"));
    }
    if v.starts_with('[') && v.ends_with(']') || !v.contains(':') {
        return host_name(v).ok_or_else(|| refuse("is not a host name or IP address"));
    }
    Err(refuse("names a port; give the host name only (every port of an allowed name is allowed)"))
}

/// (scheme, host, port) of an origin, with the scheme's default port filled in.
fn origin_parts(scheme: &str, authority: &str) -> Option<(String, String, u16)> {
    let scheme = scheme.to_ascii_lowercase();
    let default = match scheme.as_str() {
        "http" => 80,
        "https" => 443,
        _ => return None,
    };
    let host = host_name(authority)?;
    let port = match authority.trim().rsplit_once(':') {
        Some((h, p)) if is_port(p) && (!h.starts_with('[') || h.ends_with(']')) => p.parse().ok()?,
        _ => default,
    };
    Some((scheme, host, port))
}

/// Whether the request came over HTTPS, as far as this server can know: only a proxy named
/// with `--trusted-proxy` is believed when it says so (`X-Forwarded-Proto`), since anyone
/// else could send the header.
fn forwarded_https(access: &Access, headers: &HeaderMap, peer: Option<SocketAddr>) -> bool {
    let trusted = peer.is_some_and(|p| access.proxies.iter().any(|ip| canonical(*ip) == canonical(p.ip())));
    trusted
        && headers
            .get("x-forwarded-proto")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(',').next())
            .is_some_and(|v| v.trim().eq_ignore_ascii_case("https"))
}

/// An IPv4 peer on a dual-stack socket arrives as `::ffff:a.b.c.d`.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// The guard's state: the server's and the route table.
#[derive(Clone)]
pub(crate) struct Guard {
    pub state: Arc<State>,
    pub table: Arc<Table>,
}

fn is_json(headers: &HeaderMap) -> bool {
    headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| v.split(';').next().unwrap_or("").trim())
        .is_some_and(|essence| essence.eq_ignore_ascii_case("application/json"))
}

fn has_body(headers: &HeaderMap) -> bool {
    let length = headers.get(CONTENT_LENGTH).and_then(|v| v.to_str().ok()).map(str::trim);
    headers.contains_key(TRANSFER_ENCODING) || length.is_some_and(|l| l != "0")
}

/// A refusal written for whom the path is for.
fn refuse(kind: Kind, status: StatusCode, code: &'static str, message: String) -> Response {
    match kind {
        Kind::Ui => crate::ui::error_page(status, status.canonical_reason().unwrap_or("Refused"), &message),
        Kind::Api | Kind::Plain => ApiError { status, code, message }.into_response(),
    }
}

/// A path's kind when no route matched it (for how the 404 is written only).
fn kind_of_path(path: &str) -> Kind {
    if path == "/" || path == "/ui" || path.starts_with("/ui/") {
        Kind::Ui
    } else {
        Kind::Api
    }
}

/// Echoing a path or header back is useful, but bounded.
fn short(s: &str) -> String {
    let mut out: String = s.chars().filter(|c| !c.is_control()).take(200).collect();
    if s.chars().count() > 200 {
        out.push('…');
    }
    out
}

/// The checks before the handler, then the headers after it.
pub(crate) async fn check(AxState(g): AxState<Guard>, req: Request, next: Next) -> Response {
    let (req, body_read) = watched(req);
    let matched = req.extensions().get::<MatchedPath>().map(|m| m.as_str().to_string());
    let route = matched.as_deref().and_then(|p| g.table.get(req.method(), p)).cloned();
    let kind = route.as_ref().map_or_else(|| kind_of_path(req.uri().path()), |r| r.kind);
    // A page made for a signed-in browser (or a token) may show what only that caller may
    // read: no cache, shared or private, keeps it, and Back after sign-out shows nothing.
    let credentialed = kind == Kind::Ui
        && (req.headers().contains_key(axum::http::header::AUTHORIZATION)
            || crate::auth::login::session_of(req.headers()).is_some());
    let mut response = match admit(&g, req, route.as_ref(), matched.as_deref(), kind) {
        Err(refused) => refused,
        Ok((req, route)) => crate::auth::authorize(&g.state, &route, req, next).await,
    };
    let headers = response.headers_mut();
    if body_read.is_some_and(|read| !read.load(Ordering::Acquire)) {
        // A refusal answers before the body is read. The server then drops the connection,
        // and a client that had put it back in its pool would send its next request into
        // a closed socket ("Remote end closed connection without response"); saying so
        // keeps the client from reusing it.
        headers.insert(CONNECTION, HeaderValue::from_static("close"));
    }
    headers.insert("x-content-type-options", HeaderValue::from_static("nosniff"));
    if kind == Kind::Ui {
        headers.insert(
            "content-security-policy",
            HeaderValue::from_static(
                "default-src 'none'; script-src 'self'; style-src 'unsafe-inline'; img-src 'self' data:; form-action 'self'; \
                 frame-ancestors 'none'; base-uri 'none'",
            ),
        );
        headers.insert("x-frame-options", HeaderValue::from_static("DENY"));
        if credentialed {
            headers.insert(axum::http::header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        }
    }
    response
}

/// The request with its body counted: the flag turns true once the body has been read to
/// its end. `None` for a request without a body.
fn watched(req: Request) -> (Request, Option<Arc<AtomicBool>>) {
    if req.body().is_end_stream() {
        return (req, None);
    }
    let read = Arc::new(AtomicBool::new(false));
    let (parts, body) = req.into_parts();
    let body = axum::body::Body::new(WatchedBody { inner: body, read: Arc::clone(&read) });
    (Request::from_parts(parts, body), Some(read))
}

struct WatchedBody {
    inner: axum::body::Body,
    read: Arc<AtomicBool>,
}

impl HttpBody for WatchedBody {
    type Data = axum::body::Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        if matches!(polled, Poll::Ready(None)) || self.inner.is_end_stream() {
            self.read.store(true, Ordering::Release);
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// Everything decided from the request alone.
// The refusal is the response itself, made at most once per request: its size costs nothing.
#[allow(clippy::result_large_err)]
fn admit(
    g: &Guard,
    mut req: Request,
    route: Option<&Route>,
    matched: Option<&str>,
    kind: Kind,
) -> Result<(Request, Route), Response> {
    let access = &g.state.access;
    let headers = req.headers();
    let path = req.uri().path().to_string();

    // Host first: a name the server was not told about gets nothing, not even a 404.
    let host = headers.get(HOST).and_then(|v| v.to_str().ok()).map(str::to_string);
    let authority = req.uri().authority().map(|a| a.as_str().to_string());
    let named = host.iter().chain(authority.iter()).collect::<Vec<_>>();
    if named.is_empty() || headers.get_all(HOST).iter().count() > 1 || !named.iter().all(|h| access.allows(h)) {
        let shown = named.first().map_or_else(|| "no Host header".to_string(), |h| format!("Host {}", short(h)));
        return Err(refuse(
            kind,
            StatusCode::BAD_REQUEST,
            "BAD_REQUEST",
            format!(
                "This server does not answer to {shown}; start it with `repro serve --allowed-host NAME` for each name clients use"
            ),
        ));
    }

    let peer = req.extensions().get::<ConnectInfo<SocketAddr>>().map(|c| c.0);
    let https = forwarded_https(access, headers, peer);
    if let Some(origin) = headers.get(ORIGIN) {
        let text = origin.to_str().unwrap_or("");
        let own = host.as_deref().and_then(|h| origin_parts(if https { "https" } else { "http" }, h));
        let theirs = text.split_once("://").and_then(|(scheme, rest)| origin_parts(scheme, rest));
        if headers.get_all(ORIGIN).iter().count() > 1 || own.is_none() || own != theirs {
            return Err(refuse(
                kind,
                StatusCode::FORBIDDEN,
                "PERMISSION_DENIED",
                format!(
                    "A request from the page at {} is refused: this server takes requests from its own pages and from programs, not from other sites",
                    short(text)
                ),
            ));
        }
    }

    let Some(route) = route else {
        let method = req.method().clone();
        return Err(unknown(kind, &method, &path, matched.filter(|m| g.table.has_path(m)).is_some()));
    };

    let writes = !matches!(*req.method(), Method::GET | Method::HEAD);
    let needs_json = route.kind == Kind::Api
        && route.body == Body::Json
        && writes
        && (*req.method() == Method::POST || has_body(headers));
    if needs_json && !is_json(headers) {
        let got = headers.get(CONTENT_TYPE).and_then(|v| v.to_str().ok()).map_or("none".to_string(), short);
        return Err(refuse(
            kind,
            StatusCode::BAD_REQUEST,
            "INVALID_PARAMETER_VALUE",
            format!(
                "{} {} takes a JSON body: send Content-Type: application/json (this request's is {got})",
                req.method(),
                short(&path)
            ),
        ));
    }
    req.extensions_mut().insert(Https(https));
    Ok((req, route.clone()))
}

/// A method and path the table does not hold: 405 when the path is served with other
/// methods, else 404. Nothing runs and nothing is revealed, so no token is asked for.
fn unknown(kind: Kind, method: &Method, path: &str, path_known: bool) -> Response {
    let native = path == "/api/v1" || path.starts_with("/api/v1/");
    let (status, code, message) = match (path_known, native) {
        (true, true) => (
            StatusCode::METHOD_NOT_ALLOWED,
            "METHOD_NOT_ALLOWED",
            format!("{method} is not served at {}; GET /api/v1 lists the methods", short(path)),
        ),
        (true, false) => {
            (StatusCode::METHOD_NOT_ALLOWED, "ENDPOINT_NOT_FOUND", format!("{method} is not served at {}", short(path)))
        }
        (false, true) => (
            StatusCode::NOT_FOUND,
            "ENDPOINT_NOT_FOUND",
            format!("No API endpoint at {}; GET /api/v1 lists the native API", short(path)),
        ),
        // A person who mistyped a page's URL is not told about the MLflow API.
        (false, false) if kind == Kind::Ui => {
            (StatusCode::NOT_FOUND, "ENDPOINT_NOT_FOUND", format!("No page at {}", short(path)))
        }
        (false, false) => return refuse(kind, StatusCode::NOT_FOUND, "ENDPOINT_NOT_FOUND", no_endpoint_message(path)),
    };
    refuse(kind, status, code, message)
}

fn no_endpoint_message(path: &str) -> String {
    ApiError::no_endpoint(&short(path)).message
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_names_are_compared_in_one_spelling() {
        assert_eq!(host_name("LocalHost.:5000").as_deref(), Some("localhost"));
        assert_eq!(host_name("[0:0:0:0:0:0:0:1]:80").as_deref(), Some("[::1]"));
        assert_eq!(host_name("127.0.0.1").as_deref(), Some("127.0.0.1"));
        for bad in ["", "a b", "evil.example:x", "[::1", "[zz]", "a@b", "a:1:2"] {
            assert_eq!(host_name(bad), None, "{bad}");
        }
        let access = Access::new("10.1.2.3".parse().expect("ip"), &["Repro.Example.com".into()], &[]).expect("access");
        for ok in
            ["localhost:1", "127.0.0.1:5000", "[::1]:9", "10.1.2.3:5000", "repro.example.com", "REPRO.example.com:443"]
        {
            assert!(access.allows(ok), "{ok}");
        }
        for refused in ["evil.example", "127.0.0.1.evil.example", "localhost.evil", "10.1.2.4", "0.0.0.0"] {
            assert!(!access.allows(refused), "{refused}");
        }
    }

    #[test]
    fn allowed_hosts_are_names_without_ports() {
        assert_eq!(configured_host("::1").as_deref(), Ok("[::1]"));
        assert_eq!(configured_host("repro.internal").as_deref(), Ok("repro.internal"));
        assert!(configured_host("http://repro.internal").is_err());
        assert!(configured_host("repro.internal:8080").is_err());
        assert!(configured_host("a b").is_err());
    }

    #[test]
    fn origins_match_with_default_ports() {
        assert_eq!(origin_parts("http", "127.0.0.1:80"), origin_parts("HTTP", "127.0.0.1"));
        assert_ne!(origin_parts("http", "127.0.0.1:5000"), origin_parts("https", "127.0.0.1:5000"));
        assert_ne!(origin_parts("http", "127.0.0.1:5000"), origin_parts("http", "127.0.0.1:5001"));
        assert_eq!(origin_parts("null", "x"), None);
    }

    #[test]
    fn only_a_trusted_proxy_says_https() {
        let proxy: IpAddr = "10.0.0.9".parse().expect("ip");
        let access = Access::new("0.0.0.0".parse().expect("ip"), &[], &[proxy]).expect("access");
        let mut h = HeaderMap::new();
        h.insert("x-forwarded-proto", HeaderValue::from_static("https"));
        let from = |ip: &str| Some(SocketAddr::new(ip.parse().expect("ip"), 1234));
        assert!(forwarded_https(&access, &h, from("10.0.0.9")));
        assert!(forwarded_https(&access, &h, from("::ffff:10.0.0.9")));
        assert!(!forwarded_https(&access, &h, from("10.0.0.8")));
        assert!(!forwarded_https(&access, &h, None));
    }
}
