//! Output: human text or `--json` on stdout. Write errors (a closed pipe) propagate so
//! `main` can treat `repro runs | head` as success.
//!
//! Human text reaches the terminal only through [`Human`], which escapes terminal controls
//! and masks URL credentials in every line, so no renderer has to remember to: run names,
//! tags, params, paths and metric keys come from people and HTTP clients, and records made
//! before capture stripped credentials may hold one. JSON is written as it is (serde
//! escapes what JSON must; a JSON reader wants the exact values).

use std::io::Write;

use anyhow::Result;
use serde_json::json;

/// A writer for people: each line, once complete, has URL credentials masked
/// (`https://***@host`) and terminal controls escaped (`\u{1b}`) before it is written.
/// Newlines and tabs stay: multi-line output is legitimate.
pub struct Human<W: Write> {
    inner: W,
    line: Vec<u8>,
}

impl<W: Write> Human<W> {
    pub fn new(inner: W) -> Self {
        Human { inner, line: Vec::new() }
    }

    fn emit(&mut self) -> std::io::Result<()> {
        if self.line.is_empty() {
            return Ok(());
        }
        // Lines split at `\n` only, which no multi-byte character holds: whole characters.
        let text = String::from_utf8_lossy(&self.line);
        let masked = repro_core::secrets::mask_text(&text);
        let safe = repro_core::text::escape_unsafe(&masked);
        let written = self.inner.write_all(safe.as_bytes());
        self.line.clear();
        written
    }
}

impl<W: Write> Write for Human<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let mut rest = buf;
        while let Some(i) = rest.iter().position(|&b| b == b'\n') {
            self.line.extend_from_slice(&rest[..=i]);
            self.emit()?;
            rest = &rest[i + 1..];
        }
        self.line.extend_from_slice(rest);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.emit()?;
        self.inner.flush()
    }
}

impl<W: Write> Drop for Human<W> {
    fn drop(&mut self) {
        let _ = self.flush();
    }
}

/// Human text on stdout.
pub fn out() -> Human<std::io::StdoutLock<'static>> {
    Human::new(std::io::stdout().lock())
}

/// Human text on stderr: messages, warnings, the error line.
pub fn err() -> Human<std::io::StderrLock<'static>> {
    Human::new(std::io::stderr().lock())
}

/// `repro: TEXT` on stderr (a message a user reads, never data).
pub fn message(text: &str) {
    let _ = writeln!(err(), "repro: {text}");
}

pub fn json(v: &impl serde::Serialize) -> Result<()> {
    let mut o = std::io::stdout().lock();
    serde_json::to_writer_pretty(&mut o, v)?;
    writeln!(o)?;
    Ok(())
}

pub fn line(s: &str) -> Result<()> {
    let mut o = out();
    writeln!(o, "{s}")?;
    o.flush()?;
    Ok(())
}

/// Data for another program (signed envelopes), written exactly.
pub fn data(bytes: &[u8]) -> Result<()> {
    std::io::stdout().lock().write_all(bytes)?;
    Ok(())
}

pub(crate) fn short_time(rfc: &str) -> String {
    rfc.replace('T', " ").chars().take(19).collect()
}

mod audit;
mod data;
mod diff;
mod env;
mod keys;
mod model;
mod replay;
mod runs;
mod store;

pub use audit::*;
pub use data::*;
pub use diff::*;
pub use env::*;
pub use keys::*;
pub use model::*;
pub use replay::*;
pub use runs::*;
pub use store::*;

/// Files a command wrote for the user (`-o`).
pub fn written(paths: &[String], as_json: bool) -> Result<()> {
    if as_json {
        return json(&serde_json::json!({"written": paths}));
    }
    message(&format!("wrote {}", paths.join(", ")));
    Ok(())
}
