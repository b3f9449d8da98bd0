//! `--server URL`: the native JSON API of `repro serve` (`/api/v1/…`), over a blocking HTTP
//! client (ureq; the CLI is synchronous, so no runtime is started for one request).
//!
//! Every failure is one line naming the server: it cannot be reached, wants a token,
//! refused the token's role, or refused the request (its message, which is the message the
//! local command gives for the same mistake).

use std::time::Duration;

use anyhow::{bail, Context, Result};
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;

/// Answers larger than this are refused: a `data show` of a million files is ~200 MB.
const MAX_ANSWER: u64 = 1 << 30;

pub struct Client {
    base: String,
    token: Option<String>,
    agent: ureq::Agent,
}

impl Client {
    /// `url` is where `repro serve` listens: `http://host:port` (a path prefix is kept, for
    /// a server behind a proxy).
    pub fn new(url: &str, token: Option<String>) -> Result<Client> {
        let base = url.trim().trim_end_matches('/').to_string();
        let rest = base.strip_prefix("http://").or_else(|| base.strip_prefix("https://"));
        if rest.is_none_or(|r| r.is_empty() || r.starts_with('/')) {
            bail!("--server '{url}' is not a server address; give http://HOST:PORT (where `repro serve` listens)");
        }
        let token = token.map(|t| t.trim().to_string()).filter(|t| !t.is_empty());
        if token.as_deref().is_some_and(|t| t.chars().any(|c| c.is_control() || c == ' ')) {
            bail!("--token holds spaces or control characters; pass the token `repro token create` printed");
        }
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            // An audit re-hashes every object of a run on the server; give it time.
            .timeout_connect(Some(Duration::from_secs(10)))
            .timeout_global(Some(Duration::from_secs(3600)))
            .build()
            .into();
        Ok(Client { base, token, agent })
    }

    pub fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T> {
        let mut req = self.agent.get(format!("{}{path}", self.base));
        if let Some(t) = &self.token {
            req = req.header("Authorization", format!("Bearer {t}"));
        }
        self.answer(req.call(), path)
    }

    pub fn post<T: DeserializeOwned>(&self, path: &str, body: &impl Serialize) -> Result<T> {
        let bytes = serde_json::to_vec(body).context("encode the request")?;
        let mut req = self.agent.post(format!("{}{path}", self.base)).content_type("application/json");
        if let Some(t) = &self.token {
            req = req.header("Authorization", format!("Bearer {t}"));
        }
        self.answer(req.send(&bytes[..]), path)
    }

    fn answer<T: DeserializeOwned>(
        &self,
        sent: Result<ureq::http::Response<ureq::Body>, ureq::Error>,
        path: &str,
    ) -> Result<T> {
        let mut resp = match sent {
            Ok(r) => r,
            Err(e) => bail!(
                "cannot reach the repro server at {}: {}; is `repro serve` running there? (--server / REPRO_SERVER)",
                self.base,
                reason(&e)
            ),
        };
        let status = resp.status().as_u16();
        let body =
            resp.body_mut().with_config().limit(MAX_ANSWER).read_to_vec().map_err(|e| {
                anyhow::anyhow!("the repro server at {} broke off its answer: {}", self.base, reason(&e))
            })?;
        if (200..300).contains(&status) {
            return serde_json::from_slice(&body).with_context(|| {
                format!("the answer of {} to {path} is not what this repro reads; is it another version?", self.base)
            });
        }
        let message = serde_json::from_slice::<Value>(&body)
            .ok()
            .and_then(|v| v.get("message").and_then(Value::as_str).map(str::to_string))
            .unwrap_or_else(|| format!("HTTP {status}"));
        match status {
            401 if self.token.is_none() => bail!(
                "the repro server at {} needs a token: pass --token TOKEN or set REPRO_TOKEN \
                 (`repro token create --role read` on the server's store makes one)",
                self.base
            ),
            401 => bail!("the repro server at {} refused the token: {message}", self.base),
            403 => bail!("the repro server at {} refused: {message}", self.base),
            404 if message.starts_with("No API endpoint") => {
                bail!("{} does not serve the native API ({message}); is it a repro server of this version?", self.base)
            }
            s if s >= 500 => bail!("the repro server at {} failed: {message}", self.base),
            // The server's message is the local command's message for the same mistake.
            _ => bail!("{message}"),
        }
    }
}

/// The cause of a transport error, without ureq's wrapping.
fn reason(e: &ureq::Error) -> String {
    match e {
        ureq::Error::Io(io) if io.kind() == std::io::ErrorKind::ConnectionRefused => "connection refused".into(),
        ureq::Error::HostNotFound => "no such host".into(),
        ureq::Error::Timeout(_) => "timed out".into(),
        other => other.to_string(),
    }
}

/// What a path segment or query value keeps as it is: RFC 3986's unreserved characters,
/// `@` and `:` (a run name may hold `/`, `?` or `#`, which are encoded).
const KEEP: &percent_encoding::AsciiSet =
    &percent_encoding::NON_ALPHANUMERIC.remove(b'-').remove(b'_').remove(b'.').remove(b'~').remove(b'@').remove(b':');

/// Percent-encodes a path segment or query value.
pub fn enc(s: &str) -> String {
    percent_encoding::utf8_percent_encode(s, KEEP).to_string()
}
