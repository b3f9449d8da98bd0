//! Where a read (or a registry change) goes: the local store, or a `repro serve` given by
//! `--server URL`. Each method returns the shape `repro_exec::views` defines, so a command
//! renders the same text and the same `--json` whichever it was.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{bail, Context as _, Result};
use repro_core::audit::AuditReport;
use repro_core::diff::RunDiff;
use repro_core::registry::StagePolicy;
use repro_exec::env::EnvDiff;
use repro_exec::parity::ParityReport;
use repro_exec::provenance::VerifyReport;
use repro_exec::registry::{ApproveOutcome, PromoteOutcome};
use repro_exec::views::{self, DatasetRow, DatasetShow, EnvironmentShow, ModelShow, ModelView};
use repro_store::environments::EnvironmentRow;
use repro_store::Store;
use serde_json::{json, Value};

use crate::progress::Ui;
use crate::remote::{enc, Client};

pub enum Source {
    Local(Box<Store>),
    Remote(Client),
}

/// The serving side of `repro env parity`.
pub enum Against<'a> {
    /// A file, a registered NAME:V (or a run, for `env diff`).
    Named(&'a str),
    /// A live interpreter.
    Python(&'a Path),
}

impl Source {
    /// A `repro serve` at `url`, sending `token`.
    pub fn remote(url: &str, token: Option<String>) -> Result<Source> {
        Ok(Source::Remote(Client::new(url, token)?))
    }

    pub fn runs(&self, limit: Option<usize>) -> Result<Value> {
        match self {
            Source::Local(s) => Ok(views::runs(s, limit)?),
            Source::Remote(c) => c.get(&match limit {
                Some(n) => format!("/api/v1/runs?limit={n}"),
                None => "/api/v1/runs".into(),
            }),
        }
    }

    pub fn show(&self, run: &str) -> Result<Value> {
        match self {
            Source::Local(s) => Ok(views::show(s, run)?),
            Source::Remote(c) => c.get(&format!("/api/v1/runs/{}", enc(run))),
        }
    }

    pub fn audit(&self, run: &str, strict: bool) -> Result<AuditReport> {
        match self {
            Source::Local(s) => Ok(views::audit(s, run, strict, &Ui::new(true))?),
            Source::Remote(c) => c.get(&format!("/api/v1/runs/{}/audit?strict={strict}", enc(run))),
        }
    }

    pub fn diff(&self, a: &str, b: &str) -> Result<RunDiff> {
        match self {
            Source::Local(s) => Ok(views::diff(s, a, b)?),
            Source::Remote(c) => c.get(&format!("/api/v1/diff?a={}&b={}", enc(a), enc(b))),
        }
    }

    pub fn datasets(&self) -> Result<Vec<DatasetRow>> {
        match self {
            Source::Local(s) => Ok(views::datasets(s)?),
            Source::Remote(c) => c.get("/api/v1/data"),
        }
    }

    pub fn dataset(&self, spec: &str) -> Result<DatasetShow> {
        match self {
            Source::Local(s) => Ok(views::dataset(s, spec)?),
            Source::Remote(c) => c.get(&format!("/api/v1/data/{}", enc(spec))),
        }
    }

    pub fn dataset_diff(&self, a: &str, b: &str) -> Result<repro_exec::diff::DatasetDiff> {
        match self {
            Source::Local(s) => Ok(repro_exec::diff::datasets(s, a, b)?),
            Source::Remote(c) => c.get(&format!("/api/v1/data-diff?a={}&b={}", enc(a), enc(b))),
        }
    }

    pub fn environments(&self) -> Result<Vec<EnvironmentRow>> {
        match self {
            Source::Local(s) => Ok(views::environments(s)?),
            Source::Remote(c) => c.get("/api/v1/environments"),
        }
    }

    pub fn environment(&self, spec: &str) -> Result<EnvironmentShow> {
        match self {
            Source::Local(s) => Ok(views::environment(s, spec)?),
            Source::Remote(c) => c.get(&format!("/api/v1/environments/{}", enc(spec))),
        }
    }

    pub fn parity(&self, subject: &str, against: Against<'_>, ignore: &[String]) -> Result<ParityReport> {
        use repro_exec::env;
        match (self, against) {
            (Source::Local(s), against) => {
                let cwd = std::env::current_dir().context("cannot read the current folder")?;
                let subject = env::resolve_subject(s, subject)?;
                let against = match against {
                    Against::Python(p) => env::python_side(p, &cwd)?,
                    Against::Named(f) => env::resolve_side(s, f, Some(&cwd), false)?,
                };
                Ok(repro_exec::parity::parity(s, &subject, &against, ignore)?)
            }
            (Source::Remote(_), Against::Python(_)) => {
                bail!("--python names an interpreter on this machine; with --server compare against a registered NAME:V (register it there with `repro env register`)")
            }
            (Source::Remote(c), Against::Named(a)) => {
                let ignore: String = ignore.iter().map(|i| format!("&ignore={}", enc(i))).collect();
                c.get(&format!("/api/v1/parity?subject={}&against={}{ignore}", enc(subject), enc(a)))
            }
        }
    }

    pub fn env_diff(&self, a: &str, b: &str) -> Result<EnvDiff> {
        use repro_exec::env;
        match self {
            Source::Local(s) => {
                let cwd = std::env::current_dir().context("cannot read the current folder")?;
                let a = env::resolve_side(s, a, Some(&cwd), true)?;
                let b = env::resolve_side(s, b, Some(&cwd), true)?;
                Ok(env::diff(&a, &b))
            }
            Source::Remote(c) => c.get(&format!("/api/v1/env-diff?a={}&b={}", enc(a), enc(b))),
        }
    }

    pub fn models(&self) -> Result<Vec<ModelView>> {
        match self {
            Source::Local(s) => Ok(views::models(s)?),
            Source::Remote(c) => c.get("/api/v1/models"),
        }
    }

    pub fn model(&self, spec: &str) -> Result<ModelShow> {
        match self {
            Source::Local(s) => Ok(views::model(s, spec)?),
            Source::Remote(c) => c.get(&format!("/api/v1/models/{}", enc(spec))),
        }
    }

    pub fn stages(&self) -> Result<BTreeMap<String, StagePolicy>> {
        match self {
            Source::Local(s) => Ok(views::stages(s)),
            Source::Remote(c) => c.get("/api/v1/stages"),
        }
    }

    pub fn verify(&self, model: &str, key: Option<&Path>, ui: &Ui) -> Result<VerifyReport> {
        match (self, key) {
            (Source::Local(s), key) => Ok(repro_exec::provenance::verify(s, model, key, ui)?),
            (Source::Remote(_), Some(_)) => bail!(
                "--key is a key file on this machine; with --server the server checks the signatures with the keys \
                 recorded at signing (drop --key), or verify against a local copy (`repro bundle export` / `import`)"
            ),
            (Source::Remote(c), None) => c.get(&format!("/api/v1/models/{}/verify", enc(model))),
        }
    }

    pub fn promote(&mut self, model: &str, to: &str, who: &str, ui: &Ui) -> Result<PromoteOutcome> {
        match self {
            Source::Local(s) => Ok(repro_exec::registry::promote(s, model, to, who, ui)?),
            // The server names the token's person; it does not take a name from the client.
            Source::Remote(c) => c.post(&format!("/api/v1/models/{}/promote", enc(model)), &json!({"to": to})),
        }
    }

    /// Approves with `signer`'s signature. Remotely the statement is built and signed
    /// here (the private key never leaves this machine) and the server checks it against
    /// the key registered for the token.
    pub fn approve(
        &mut self,
        model: &str,
        stage: &str,
        who: &str,
        comment: Option<&str>,
        signer: &repro_core::provenance::SigningKey,
    ) -> Result<ApproveOutcome> {
        match self {
            Source::Local(s) => Ok(repro_exec::approval::approve(s, model, stage, signer, who, comment)?),
            Source::Remote(c) => {
                let version = match c.get::<ModelShow>(&format!("/api/v1/models/{}", enc(model)))? {
                    ModelShow::Version(v) => v,
                    ModelShow::Model(_) => bail!("'{model}' names a model, not a version: write NAME@VERSION"),
                };
                let statement = repro_exec::approval::statement(&version, stage, who, comment)?;
                let envelope = repro_core::provenance::sign_envelope(
                    signer,
                    repro_core::provenance::PAYLOAD_TYPE,
                    &statement.payload(),
                );
                let envelope: Value = serde_json::from_str(&envelope.to_json_line())?;
                c.post(&format!("/api/v1/models/{}/approve", enc(&version.reference())), &json!({"envelope": envelope}))
            }
        }
    }

    pub fn archive(&mut self, model: &str, reason: &str, who: &str) -> Result<repro_core::registry::ModelVersion> {
        match self {
            Source::Local(s) => Ok(repro_exec::registry::archive(s, model, reason, who)?),
            Source::Remote(c) => c.post(&format!("/api/v1/models/{}/archive", enc(model)), &json!({"reason": reason})),
        }
    }

    /// The store itself, for what only a local store can do.
    pub fn local(&mut self, what: &str) -> Result<&mut Store> {
        match self {
            Source::Local(s) => Ok(s),
            Source::Remote(_) => {
                bail!("`repro {what}` works on a local store only; drop --server (or unset REPRO_SERVER)")
            }
        }
    }
}
