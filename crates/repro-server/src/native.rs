//! The native JSON API, `/api/v1/…`: for each read command of the CLI, exactly what `repro
//! … --json` prints (the same `repro_exec::views` function makes both), so `repro --server
//! URL` renders a server's answer with the code that renders a local store. Run references
//! are what the CLI takes: an id, a 4+ character prefix, a name, `latest`, `NAME@V`,
//! `NAME@STAGE`.
//!
//! Errors use the server's one envelope, `{"error_code", "message"}`, with the CLI's own
//! message: 404 for what does not exist, 400 for a malformed reference, query or body, 401 /
//! 403 from the token check, 405 for a wrong method, 413 for a body over 64 KiB. Roles (the
//! route table, `routes`): any token reads; `write` approves; `admin` promotes and archives
//! (they change what a stage serves). Without tokens the server is open to whoever reaches
//! it (loopback by default).

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, PathRejection, QueryRejection};
use axum::extract::{Path, Query, State as AxState};
use axum::http::{HeaderMap, StatusCode};
use axum::Json;
use repro_exec::views;
use repro_store::fsck::NoProgress;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::routes::{Role, Routes};
use crate::{ApiError, State};

/// Bodies are a few short fields.
pub(crate) fn routes() -> Routes {
    use axum::http::Method as M;
    use Role::{Admin, Read, Write};
    Routes::new()
        .limit(Some(MAX_BODY))
        .api(M::GET, "/api/v1", Read, index)
        .api(M::GET, "/api/v1/", Read, index)
        .api(M::GET, "/api/v1/runs", Read, runs)
        .api(M::GET, "/api/v1/runs/{run}", Read, show)
        .api(M::GET, "/api/v1/runs/{run}/audit", Read, audit)
        .api(M::GET, "/api/v1/diff", Read, diff)
        .api(M::GET, "/api/v1/data", Read, datasets)
        .api(M::GET, "/api/v1/data/{dataset}", Read, dataset)
        .api(M::GET, "/api/v1/data-diff", Read, data_diff)
        .api(M::GET, "/api/v1/environments", Read, environments)
        .api(M::GET, "/api/v1/environments/{env}", Read, environment)
        .api(M::GET, "/api/v1/env-diff", Read, env_diff)
        .api(M::GET, "/api/v1/parity", Read, parity)
        .api(M::GET, "/api/v1/models", Read, models)
        .api(M::GET, "/api/v1/models/{model}", Read, model)
        .api(M::GET, "/api/v1/models/{model}/verify", Read, verify)
        .api(M::POST, "/api/v1/models/{model}/promote", Admin, promote)
        .api(M::POST, "/api/v1/models/{model}/approve", Write, approve)
        .api(M::POST, "/api/v1/models/{model}/archive", Admin, archive)
        .api(M::GET, "/api/v1/stages", Read, stages)
        .api(M::GET, "/api/v1/approvals", Read, approvals)
}

type S = AxState<Arc<State>>;
type Reply<T> = Result<Json<T>, ApiError>;
type Seg = Result<Path<String>, PathRejection>;
type Q = Result<Query<Vec<(String, String)>>, QueryRejection>;

/// Longest run, model, dataset or environment reference taken: names are short, and an
/// error message echoes the reference.
const MAX_REF: usize = 512;
/// Largest request body: the write actions take a few short fields.
pub(crate) const MAX_BODY: usize = 64 * 1024;

const ENDPOINTS: &[(&str, &str, &str)] = &[
    ("GET", "/api/v1/runs?limit=N", "repro runs"),
    ("GET", "/api/v1/runs/{run}", "repro show RUN"),
    ("GET", "/api/v1/runs/{run}/audit?strict=true", "repro audit RUN [--strict]"),
    ("GET", "/api/v1/diff?a={run}&b={run}", "repro diff A B"),
    ("GET", "/api/v1/data", "repro data ls"),
    ("GET", "/api/v1/data/{name[:version]}", "repro data show"),
    ("GET", "/api/v1/data-diff?a={name[:version]}&b={name[:version]}", "repro data diff A B"),
    ("GET", "/api/v1/environments", "repro env ls"),
    ("GET", "/api/v1/environments/{name[:version]}", "repro env show"),
    ("GET", "/api/v1/env-diff?a=&b=", "repro env diff A B (registered environments or runs)"),
    ("GET", "/api/v1/parity?subject=&against=&ignore=", "repro env parity (against a registered NAME:V)"),
    ("GET", "/api/v1/models", "repro model ls"),
    ("GET", "/api/v1/models/{name|name@v|name@stage}", "repro model show"),
    ("GET", "/api/v1/models/{name@v}/verify", "repro model verify"),
    ("POST", "/api/v1/models/{name@v}/promote {\"to\", \"as\"}", "repro model promote (admin)"),
    ("POST", "/api/v1/models/{name@v}/approve {\"stage\", \"as\", \"comment\"}", "repro model approve (write)"),
    ("POST", "/api/v1/models/{name@v}/archive {\"reason\", \"as\"}", "repro model archive (admin)"),
    ("GET", "/api/v1/stages", "the stage policies of repro.toml"),
    ("GET", "/api/v1/approvals?model=NAME", "every approval, oldest first"),
];

pub(crate) async fn index() -> Json<Value> {
    let list: Vec<Value> = ENDPOINTS.iter().map(|(m, p, what)| json!({"method": m, "path": p, "what": what})).collect();
    Json(json!({"api": "repro native API v1", "endpoints": list}))
}

// ---- input ------------------------------------------------------------------------------

fn checked(text: String, what: &str) -> Result<String, ApiError> {
    if text.trim().is_empty() {
        return Err(ApiError::invalid(format!("The {what} is empty.")));
    }
    if text.len() > MAX_REF || text.chars().any(char::is_control) {
        return Err(ApiError::invalid(format!(
            "The {what} is not a reference ({} bytes{}); names are at most {MAX_REF} bytes of printable text.",
            text.len(),
            if text.chars().any(char::is_control) { ", with control characters" } else { "" }
        )));
    }
    Ok(text)
}

fn segment(p: Seg, what: &str) -> Result<String, ApiError> {
    let Path(text) = p.map_err(|e| ApiError::invalid(format!("The {what} in the path is unreadable: {e}")))?;
    checked(text, what)
}

/// A query string, every key known to the endpoint (a misspelt `strcit` is an error, not
/// silently ignored).
struct Params(Vec<(String, String)>);

impl Params {
    fn parse(q: Q, known: &[&str]) -> Result<Params, ApiError> {
        let Query(pairs) = q.map_err(|e| ApiError::invalid(format!("The query string is unreadable: {e}")))?;
        if let Some((k, _)) = pairs.iter().find(|(k, _)| !known.contains(&k.as_str())) {
            return Err(ApiError::invalid(format!(
                "Unknown query parameter '{}'; this endpoint takes: {}",
                k.chars().take(64).collect::<String>(),
                if known.is_empty() { "none".to_string() } else { known.join(", ") }
            )));
        }
        Ok(Params(pairs))
    }

    fn get(&self, key: &str) -> Option<&str> {
        self.0.iter().rev().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
    }

    fn required(&self, key: &str, what: &str) -> Result<String, ApiError> {
        match self.get(key) {
            Some(v) => checked(v.to_string(), what),
            None => Err(ApiError::invalid(format!("Missing query parameter '{key}' ({what})."))),
        }
    }

    fn all(&self, key: &str) -> Vec<String> {
        self.0.iter().filter(|(k, _)| k == key).map(|(_, v)| v.clone()).collect()
    }

    fn flag(&self, key: &str) -> Result<bool, ApiError> {
        match self.get(key) {
            None | Some("false") | Some("0") => Ok(false),
            Some("true") | Some("1") | Some("") => Ok(true),
            Some(other) => Err(ApiError::invalid(format!("'{key}' is true or false, not '{other}'"))),
        }
    }
}

/// A JSON body of the expected shape; unknown fields and wrong types are a 400.
fn body<T: DeserializeOwned>(b: Result<Bytes, BytesRejection>) -> Result<T, ApiError> {
    let bytes = b.map_err(|e| ApiError {
        status: e.status(),
        code: if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
            "REQUEST_LIMIT_EXCEEDED"
        } else {
            "INVALID_PARAMETER_VALUE"
        },
        message: format!("The request body is unreadable: {} (at most {} KiB)", e.body_text(), MAX_BODY >> 10),
    })?;
    serde_json::from_slice(&bytes)
        .map_err(|e| ApiError::invalid(format!("The request body is not what is expected: {e}")))
}

/// Who acts through the server: the person of the token the request came with. A name in
/// the request is refused, never believed: identity comes from the token.
async fn actor(
    s: &Arc<State>,
    headers: &HeaderMap,
    claimed: Option<&str>,
) -> Result<Option<repro_store::tokens::TokenPerson>, ApiError> {
    if claimed.is_some() {
        return Err(ApiError::invalid(
            "`as` is not accepted: through the server the acting person is the token's (`repro token create --name … --email …`)",
        ));
    }
    let Some(token) = crate::auth::presented(headers) else { return Ok(None) };
    s.with_meta(move |m, _| Ok(m.tokens().person(&token)?)).await
}

/// How the registry names a request's actor.
fn actor_name(person: Option<&repro_store::tokens::TokenPerson>) -> String {
    person.map_or_else(|| repro_core::actor::ANYONE.into(), |p| p.actor())
}

async fn from_store<T: Serialize + Send + 'static>(
    s: &Arc<State>,
    f: impl FnOnce(&mut repro_store::Store) -> Result<T, ApiError> + Send + 'static,
) -> Reply<T> {
    s.with_store(f).await.map(Json)
}

// ---- reads ------------------------------------------------------------------------------

pub(crate) async fn runs(AxState(s): S, q: Q) -> Reply<Value> {
    let p = Params::parse(q, &["limit"])?;
    let limit = match p.get("limit") {
        None => None,
        Some(n) => Some(n.parse::<usize>().map_err(|_| {
            ApiError::invalid(format!("'limit' is a number of runs, not '{}'", n.chars().take(64).collect::<String>()))
        })?),
    };
    from_store(&s, move |st| Ok(views::runs(st, limit)?)).await
}

pub(crate) async fn show(AxState(s): S, run: Seg, q: Q) -> Reply<Value> {
    let run = segment(run, "run")?;
    Params::parse(q, &[])?;
    from_store(&s, move |st| Ok(views::show(st, &run)?)).await
}

pub(crate) async fn audit(AxState(s): S, run: Seg, q: Q) -> Reply<repro_core::audit::AuditReport> {
    let run = segment(run, "run")?;
    let strict = Params::parse(q, &["strict"])?.flag("strict")?;
    from_store(&s, move |st| Ok(views::audit(st, &run, strict, &NoProgress)?)).await
}

pub(crate) async fn diff(AxState(s): S, q: Q) -> Reply<repro_core::diff::RunDiff> {
    let p = Params::parse(q, &["a", "b"])?;
    let (a, b) = (p.required("a", "first run")?, p.required("b", "second run")?);
    from_store(&s, move |st| Ok(views::diff(st, &a, &b)?)).await
}

pub(crate) async fn datasets(AxState(s): S, q: Q) -> Reply<Vec<views::DatasetRow>> {
    Params::parse(q, &[])?;
    from_store(&s, |st| Ok(views::datasets(st)?)).await
}

pub(crate) async fn dataset(AxState(s): S, d: Seg, q: Q) -> Reply<views::DatasetShow> {
    let d = segment(d, "dataset")?;
    Params::parse(q, &[])?;
    from_store(&s, move |st| Ok(views::dataset(st, &d)?)).await
}

pub(crate) async fn data_diff(AxState(s): S, q: Q) -> Reply<repro_exec::diff::DatasetDiff> {
    let p = Params::parse(q, &["a", "b"])?;
    let (a, b) = (p.required("a", "first dataset")?, p.required("b", "second dataset")?);
    from_store(&s, move |st| Ok(repro_exec::diff::datasets(st, &a, &b)?)).await
}

pub(crate) async fn environments(AxState(s): S, q: Q) -> Reply<Vec<repro_store::environments::EnvironmentRow>> {
    Params::parse(q, &[])?;
    from_store(&s, |st| Ok(views::environments(st)?)).await
}

pub(crate) async fn environment(AxState(s): S, e: Seg, q: Q) -> Reply<views::EnvironmentShow> {
    let e = segment(e, "environment")?;
    Params::parse(q, &[])?;
    from_store(&s, move |st| Ok(views::environment(st, &e)?)).await
}

/// Registered environments and runs only: a path would name the server's files.
pub(crate) async fn env_diff(AxState(s): S, q: Q) -> Reply<repro_exec::env::EnvDiff> {
    let p = Params::parse(q, &["a", "b"])?;
    let (a, b) = (p.required("a", "first environment")?, p.required("b", "second environment")?);
    from_store(&s, move |st| {
        let a = repro_exec::env::resolve_side(st, &a, None, true)?;
        let b = repro_exec::env::resolve_side(st, &b, None, true)?;
        Ok(repro_exec::env::diff(&a, &b))
    })
    .await
}

pub(crate) async fn parity(AxState(s): S, q: Q) -> Reply<repro_exec::parity::ParityReport> {
    let p = Params::parse(q, &["subject", "against", "ignore"])?;
    let subject = p.required("subject", "training side")?;
    let against = p.required("against", "serving side")?;
    let ignore = p.all("ignore");
    from_store(&s, move |st| {
        let subject = repro_exec::env::resolve_subject(st, &subject)?;
        let against = repro_exec::env::resolve_side(st, &against, None, false)?;
        Ok(repro_exec::parity::parity(st, &subject, &against, &ignore)?)
    })
    .await
}

pub(crate) async fn models(AxState(s): S, q: Q) -> Reply<Vec<views::ModelView>> {
    Params::parse(q, &[])?;
    from_store(&s, |st| Ok(views::models(st)?)).await
}

pub(crate) async fn model(AxState(s): S, m: Seg, q: Q) -> Reply<views::ModelShow> {
    let m = segment(m, "model")?;
    Params::parse(q, &[])?;
    from_store(&s, move |st| Ok(views::model(st, &m)?)).await
}

pub(crate) async fn verify(AxState(s): S, m: Seg, q: Q) -> Reply<repro_exec::provenance::VerifyReport> {
    let m = segment(m, "model version")?;
    Params::parse(q, &[])?;
    from_store(&s, move |st| Ok(repro_exec::provenance::verify(st, &m, None, &NoProgress)?)).await
}

pub(crate) async fn stages(
    AxState(s): S,
    q: Q,
) -> Reply<std::collections::BTreeMap<String, repro_core::registry::StagePolicy>> {
    Params::parse(q, &[])?;
    from_store(&s, |st| Ok(views::stages(st))).await
}

pub(crate) async fn approvals(AxState(s): S, q: Q) -> Reply<Vec<views::ApprovalRow>> {
    let p = Params::parse(q, &["model"])?;
    let model = p.get("model").map(|m| checked(m.to_string(), "model")).transpose()?;
    from_store(&s, move |st| Ok(views::approvals(st, model.as_deref())?)).await
}

// ---- registry changes -------------------------------------------------------------------

/// A replay's server changes no registry: these are refused (the MLflow registry calls are
/// answered and listed in the replay's report instead; see `mlflow::registry`).
fn refuse_in_replay(s: &State, what: &str) -> Result<(), ApiError> {
    match &s.held {
        None => Ok(()),
        Some(_) => Err(ApiError::forbidden(format!(
            "this is the tracking server of a `repro replay`, which never changes the registry: {what} is refused"
        ))),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PromoteBody {
    to: String,
    #[serde(rename = "as")]
    who: Option<String>,
}

pub(crate) async fn promote(
    AxState(s): S,
    headers: HeaderMap,
    m: Seg,
    b: Result<Bytes, BytesRejection>,
) -> Reply<repro_exec::registry::PromoteOutcome> {
    refuse_in_replay(&s, "promote")?;
    let m = segment(m, "model version")?;
    let b: PromoteBody = body(b)?;
    let person = actor(&s, &headers, b.who.as_deref()).await?;
    let (to, who) = (checked(b.to, "stage")?, actor_name(person.as_ref()));
    from_store(&s, move |st| Ok(repro_exec::registry::promote(st, &m, &to, &who, &NoProgress)?)).await
}

/// An approval through the server: the statement the client signed with its own key (the
/// stage and comment are inside it). `as`, `stage` and `comment` outside the signature are
/// refused with a message saying why.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ApproveBody {
    envelope: Option<Value>,
    stage: Option<String>,
    #[serde(rename = "as")]
    who: Option<String>,
    comment: Option<String>,
}

pub(crate) async fn approve(
    AxState(s): S,
    headers: HeaderMap,
    m: Seg,
    b: Result<Bytes, BytesRejection>,
) -> Reply<repro_exec::registry::ApproveOutcome> {
    refuse_in_replay(&s, "approve")?;
    let m = segment(m, "model version")?;
    let b: ApproveBody = body(b)?;
    let person = actor(&s, &headers, b.who.as_deref()).await?;
    let Some(envelope) = b.envelope else {
        return Err(ApiError::invalid(if b.stage.is_some() || b.comment.is_some() {
            "approvals are signed: send {\"envelope\": DSSE envelope of the approval statement} (`repro --server URL model approve` does), not a stage and comment"
        } else {
            "`envelope` is missing: send the DSSE envelope of the signed approval statement"
        }));
    };
    let forbidden = |m: &str| ApiError::forbidden(m);
    let Some(person) = person else {
        return Err(forbidden(
            "approvals through the server need a token bound to the approver's key (`repro token create --email … --approver-key FILE`)",
        ));
    };
    let (Some(keyid), Some(pem)) = (person.approver_keyid.clone(), person.approver_key.clone()) else {
        return Err(forbidden(&format!(
            "token {} is bound to no approver key; create one with `repro token create --email … --approver-key FILE`",
            person.id
        )));
    };
    let envelope = repro_core::provenance::Envelope::parse(&envelope.to_string())
        .map_err(|e| ApiError::invalid(format!("`envelope`: {e}")))?;
    let key = repro_exec::keys::parse_public_pem(&pem)
        .map_err(|e| ApiError::internal(format!("token {}'s approver key is unreadable: {e}", person.id)))?;
    if !envelope.signatures.iter().any(|sig| sig.keyid == keyid) {
        return Err(forbidden(&format!(
            "the approval is not signed by key {keyid}, the one registered for token {}",
            person.id
        )));
    }
    let who = person.actor();
    from_store(&s, move |st| Ok(repro_exec::approval::record(st, &m, &envelope, &key, &who)?)).await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ArchiveBody {
    reason: String,
    #[serde(rename = "as")]
    who: Option<String>,
}

pub(crate) async fn archive(
    AxState(s): S,
    headers: HeaderMap,
    m: Seg,
    b: Result<Bytes, BytesRejection>,
) -> Reply<repro_core::registry::ModelVersion> {
    refuse_in_replay(&s, "archive")?;
    let m = segment(m, "model version")?;
    let b: ArchiveBody = body(b)?;
    let person = actor(&s, &headers, b.who.as_deref()).await?;
    let who = actor_name(person.as_ref());
    from_store(&s, move |st| Ok(repro_exec::registry::archive(st, &m, &b.reason, &who)?)).await
}
