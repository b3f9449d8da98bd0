//! The MLflow tracking REST API: experiments, runs, params, metrics, tags, batches, inputs,
//! metric history and run search, with MLflow's field names, defaults and error codes
//! (see `shared/reference/mlflow-rest.md`).

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{FromRequest, Request, State as AxState};
use axum::http::{Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Json;
use repro_core::record::RunStatus;
use repro_core::search;
use repro_core::RunId;
use repro_store::search::{ParamSource, RunQuery};
use repro_store::tracking::{DatasetInput, LatestMetric, MetricIn, TrackedRun};
use serde::Serialize;
use serde_json::{json, Map, Value};

use crate::{ApiError, State};

type S = AxState<Arc<State>>;
pub(crate) type Reply = Result<Json<Value>, ApiError>;

/// Largest request body accepted: MLflow's batch limit is 1 MB of JSON; dataset profiles may
/// be larger, so allow some room, and refuse beyond with a 400 the client does not retry.
const MAX_BODY: usize = 32 << 20;
const MAX_BATCH_METRICS: usize = 1000;
const MAX_BATCH_PARAMS: usize = 100;
const MAX_BATCH_TAGS: usize = 100;
const MAX_PARAM_VALUE: usize = 6000;
pub(crate) const MAX_TAG_VALUE: usize = 8000;
const MAX_KEY: usize = 250;
const MAX_RESULTS: i64 = 50_000;

pub(crate) async fn server_info() -> Json<Value> {
    Json(json!({
        "store_type": "repro",
        "workspaces_enabled": false,
        "multipart_uploads_enabled": false,
        "multipart_downloads_enabled": false,
        "presigned_upload_run_id_supported": false,
    }))
}

// ---- request parsing --------------------------------------------------------------------

/// The request message: the query string of a GET (repeated keys become lists), the JSON
/// body of anything else. Malformed input is a 400 in MLflow's envelope, never a 500.
pub(crate) struct Req(pub(crate) Map<String, Value>);

impl<St: Send + Sync> FromRequest<St> for Req {
    // The body is read by hand (`read_body`), so the state goes unused.
    type Rejection = ApiError;

    async fn from_request(req: Request, _state: &St) -> Result<Self, Self::Rejection> {
        if req.method() == Method::GET {
            let mut map = Map::new();
            for (k, v) in form_pairs(req.uri().query().unwrap_or("")) {
                match map.get_mut(&k) {
                    Some(Value::Array(a)) => a.push(Value::String(v)),
                    Some(old) => {
                        let first = old.take();
                        *old = Value::Array(vec![first, Value::String(v)]);
                    }
                    None => {
                        map.insert(k, Value::String(v));
                    }
                }
            }
            return Ok(Req(map));
        }
        let bytes = read_body(req.into_body()).await?;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(Req(Map::new()));
        }
        match serde_json::from_slice::<Value>(&bytes) {
            Ok(Value::Object(m)) => Ok(Req(m)),
            Ok(_) => Err(ApiError::invalid("The request body must be a JSON object.")),
            Err(e) => Err(ApiError::invalid(format!("Malformed JSON in the request body: {e}"))),
        }
    }
}

/// Reads a body up to `MAX_BODY`. A larger one is read on (and dropped) up to a bound, so
/// the client, which sends everything before it reads the answer, gets the 400 rather
/// than a reset connection.
async fn read_body(mut body: axum::body::Body) -> Result<Bytes, ApiError> {
    use http_body_util::BodyExt;
    const DRAIN: usize = 256 << 20;
    let mut buf = Vec::new();
    let mut total = 0usize;
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| ApiError::invalid(format!("The request body could not be read: {e}")))?;
        if let Ok(data) = frame.into_data() {
            total += data.len();
            if total <= MAX_BODY {
                buf.extend_from_slice(&data);
            } else if total > DRAIN {
                break;
            }
        }
    }
    if total > MAX_BODY {
        return Err(ApiError::invalid(format!(
            "The request body is larger than {} MiB; split it up (log-batch takes at most 1000 metrics).",
            MAX_BODY >> 20
        )));
    }
    Ok(Bytes::from(buf))
}

/// Percent-decodes (and, in a query string, turns `+` into a space); a `%` not followed by
/// two hex digits stays as it is, bytes that are not UTF-8 are replaced.
fn percent_decode(s: &str, plus_is_space: bool) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' if plus_is_space => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).ok().and_then(|h| u8::from_str_radix(h, 16).ok());
                match hex {
                    Some(b) => {
                        out.push(b);
                        i += 2;
                    }
                    None => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// `a=1&b=x%20y` → pairs, percent- and plus-decoded.
fn form_pairs(query: &str) -> Vec<(String, String)> {
    query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| match p.split_once('=') {
            Some((k, v)) => (percent_decode(k, true), percent_decode(v, true)),
            None => (percent_decode(p, true), String::new()),
        })
        .collect()
}

impl Req {
    pub(crate) fn opt_str(&self, key: &str) -> Result<Option<String>, ApiError> {
        match self.0.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(Value::Number(n)) => Ok(Some(n.to_string())),
            Some(Value::Bool(b)) => Ok(Some(b.to_string())),
            Some(Value::Array(a)) if a.len() == 1 => match &a[0] {
                Value::String(s) => Ok(Some(s.clone())),
                _ => Err(ApiError::invalid(format!("Invalid value for parameter '{key}': expected a string."))),
            },
            Some(_) => Err(ApiError::invalid(format!("Invalid value for parameter '{key}': expected a string."))),
        }
    }

    pub(crate) fn str(&self, key: &str) -> Result<String, ApiError> {
        self.opt_str(key)?.ok_or_else(|| ApiError::missing_param(key))
    }

    pub(crate) fn opt_i64(&self, key: &str) -> Result<Option<i64>, ApiError> {
        let bad = || ApiError::invalid(format!("Invalid value for parameter '{key}': expected an integer."));
        match self.0.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Number(n)) => n
                .as_i64()
                .or_else(|| n.as_f64().filter(|f| f.fract() == 0.0).map(|f| f as i64))
                .map(Some)
                .ok_or_else(bad),
            Some(Value::String(s)) => s.trim().parse().map(Some).map_err(|_| bad()),
            Some(_) => Err(bad()),
        }
    }

    /// A double as MLflow sends it: a number, or "NaN" / "Infinity" / "-Infinity".
    pub(crate) fn f64(&self, key: &str) -> Result<f64, ApiError> {
        value_f64(self.0.get(key), key)
    }

    pub(crate) fn run_id(&self) -> Result<String, ApiError> {
        let id = match self.opt_str("run_id")? {
            Some(id) if !id.is_empty() => id,
            _ => {
                self.opt_str("run_uuid")?.filter(|s| !s.is_empty()).ok_or_else(|| ApiError::missing_param("run_id"))?
            }
        };
        Ok(id)
    }

    pub(crate) fn str_list(&self, key: &str) -> Result<Vec<String>, ApiError> {
        match self.0.get(key) {
            None | Some(Value::Null) => Ok(Vec::new()),
            Some(Value::String(s)) => Ok(vec![s.clone()]),
            Some(Value::Array(a)) => a
                .iter()
                .map(|v| match v {
                    Value::String(s) => Ok(s.clone()),
                    Value::Number(n) => Ok(n.to_string()),
                    _ => Err(ApiError::invalid(format!("Invalid value for parameter '{key}': expected strings."))),
                })
                .collect(),
            Some(_) => Err(ApiError::invalid(format!("Invalid value for parameter '{key}': expected a list."))),
        }
    }

    /// `experiment_ids` of the searches, as numbers.
    pub(crate) fn experiment_ids(&self) -> Result<Vec<i64>, ApiError> {
        self.str_list("experiment_ids")?
            .iter()
            .map(|e| e.trim().parse::<i64>().map_err(|_| ApiError::invalid(format!("Invalid experiment id '{e}'."))))
            .collect()
    }

    /// A repeated message field: absent is empty, anything but a list is a 400.
    pub(crate) fn list(&self, key: &str) -> Result<&[Value], ApiError> {
        match self.0.get(key) {
            None | Some(Value::Null) => Ok(&[]),
            Some(Value::Array(a)) => Ok(a),
            Some(_) => Err(ApiError::invalid(format!("Invalid value for parameter '{key}': expected a list."))),
        }
    }

    /// `[{key, value}]` pairs (tags, params).
    pub(crate) fn pairs(&self, key: &str) -> Result<Vec<(String, String)>, ApiError> {
        let list = match self.0.get(key) {
            None | Some(Value::Null) => return Ok(Vec::new()),
            Some(Value::Array(a)) => a,
            Some(_) => return Err(ApiError::invalid(format!("Invalid value for parameter '{key}': expected a list."))),
        };
        list.iter()
            .map(|item| {
                let k = item.get("key").and_then(Value::as_str);
                let v = match item.get("value") {
                    Some(Value::String(s)) => Some(s.clone()),
                    Some(Value::Number(n)) => Some(n.to_string()),
                    Some(Value::Bool(b)) => Some(b.to_string()),
                    _ => None,
                };
                match (k, v) {
                    (Some(k), Some(v)) => Ok((k.to_string(), v)),
                    (None, _) => Err(ApiError::missing_param(&format!("{key}.key"))),
                    (_, None) => Err(ApiError::missing_param(&format!("{key}.value"))),
                }
            })
            .collect()
    }
}

fn value_f64(v: Option<&Value>, key: &str) -> Result<f64, ApiError> {
    match v {
        Some(Value::Number(n)) => n.as_f64().ok_or_else(|| ApiError::invalid(format!("Invalid value for '{key}'."))),
        Some(Value::String(s)) => match s.as_str() {
            "NaN" | "nan" => Ok(f64::NAN),
            "Infinity" | "inf" => Ok(f64::INFINITY),
            "-Infinity" | "-inf" => Ok(f64::NEG_INFINITY),
            other => other.parse().map_err(|_| {
                ApiError::invalid(format!("Invalid value \"{other}\" for parameter '{key}': expected a number."))
            }),
        },
        None | Some(Value::Null) => Err(ApiError::missing_param(key)),
        Some(_) => Err(ApiError::invalid(format!("Invalid value for parameter '{key}': expected a number."))),
    }
}

pub(crate) fn experiment_id(s: &str) -> Result<i64, ApiError> {
    s.trim()
        .parse::<i64>()
        .ok()
        .filter(|i| *i >= 0)
        .ok_or_else(|| ApiError::not_found(format!("No Experiment with id={s} exists")))
}

pub(crate) fn check_key(kind: &str, key: &str) -> Result<(), ApiError> {
    if key.is_empty() || key.len() > MAX_KEY || key.contains("..") || key.starts_with('/') {
        return Err(ApiError::invalid(format!(
            "Invalid {kind} name: '{}'. Names may be up to {MAX_KEY} characters, and may not be empty, start with '/' or contain '..'.",
            key.chars().take(300).collect::<String>()
        )));
    }
    Ok(())
}

pub(crate) fn check_value(kind: &str, key: &str, value: &str, max: usize) -> Result<(), ApiError> {
    if value.chars().count() > max {
        return Err(ApiError::invalid(format!(
            "{kind} '{key}' had length {}, which exceeded length limit of {max}",
            value.chars().count()
        )));
    }
    Ok(())
}

// ---- rendering ----------------------------------------------------------------------------

pub(crate) fn kv(map: &BTreeMap<String, String>) -> Value {
    Value::Array(map.iter().map(|(k, v)| json!({"key": k, "value": v})).collect())
}

// Runs and metric points are written straight from the store's structs (serde derive), not
// through `serde_json::Value`: a page of 1,000 runs or a history of 10,000 points is then
// written without building a map per object first. Fields are in alphabetical order, the
// order `json!` maps have, so the bytes are the same as before.

/// A double as MLflow writes it: non-finite values as strings.
struct Num(f64);

impl Serialize for Num {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self.0 {
            v if v.is_nan() => s.serialize_str("NaN"),
            f64::INFINITY => s.serialize_str("Infinity"),
            f64::NEG_INFINITY => s.serialize_str("-Infinity"),
            v => s.serialize_f64(v),
        }
    }
}

#[derive(Serialize)]
struct MetricJson<'a> {
    key: &'a str,
    step: i64,
    timestamp: i64,
    value: Num,
}

impl<'a> From<&'a LatestMetric> for MetricJson<'a> {
    fn from(m: &'a LatestMetric) -> Self {
        MetricJson { key: &m.key, step: m.step, timestamp: m.timestamp, value: Num(m.value) }
    }
}

/// A map as MLflow's list of `{"key", "value"}` objects.
struct Kv<'a>(&'a BTreeMap<String, String>);

impl Serialize for Kv<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        #[derive(Serialize)]
        struct Pair<'a> {
            key: &'a str,
            value: &'a str,
        }
        s.collect_seq(self.0.iter().map(|(key, value)| Pair { key, value }))
    }
}

#[derive(Serialize)]
struct RunInfoJson<'a> {
    artifact_uri: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    end_time: Option<i64>,
    experiment_id: String,
    lifecycle_stage: &'a str,
    run_id: &'a str,
    run_name: &'a str,
    run_uuid: &'a str,
    start_time: i64,
    status: &'a str,
    user_id: &'a str,
}

fn run_info(r: &TrackedRun) -> RunInfoJson<'_> {
    RunInfoJson {
        artifact_uri: &r.artifact_uri,
        end_time: r.end_time,
        experiment_id: r.experiment_id.to_string(),
        lifecycle_stage: &r.lifecycle_stage,
        run_id: r.run_id.as_str(),
        run_name: &r.run_name,
        run_uuid: r.run_id.as_str(),
        start_time: r.start_time,
        status: r.status,
        user_id: &r.user_id,
    }
}

#[derive(Serialize)]
struct RunDataJson<'a> {
    metrics: Vec<MetricJson<'a>>,
    params: Kv<'a>,
    tags: Kv<'a>,
}

#[derive(Serialize)]
struct DatasetJson<'a> {
    digest: &'a str,
    name: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    profile: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    schema: Option<&'a str>,
    source: &'a str,
    source_type: &'a str,
}

#[derive(Serialize)]
struct DatasetInputJson<'a> {
    dataset: DatasetJson<'a>,
    tags: Kv<'a>,
}

#[derive(Serialize)]
struct InputsJson<'a> {
    dataset_inputs: Vec<DatasetInputJson<'a>>,
}

#[derive(Serialize)]
struct Empty {}

#[derive(Serialize)]
struct RunJson<'a> {
    data: RunDataJson<'a>,
    info: RunInfoJson<'a>,
    inputs: InputsJson<'a>,
    outputs: Empty,
}

fn run_json(r: &TrackedRun) -> RunJson<'_> {
    let dataset_inputs = r
        .inputs
        .iter()
        .map(|d| DatasetInputJson {
            dataset: DatasetJson {
                digest: &d.digest,
                name: &d.name,
                profile: d.profile.as_deref(),
                schema: d.schema.as_deref(),
                source: &d.source,
                source_type: &d.source_type,
            },
            tags: Kv(&d.tags),
        })
        .collect();
    RunJson {
        data: RunDataJson {
            metrics: r.metrics.iter().map(MetricJson::from).collect(),
            params: Kv(&r.params),
            tags: Kv(&r.tags),
        },
        info: run_info(r),
        inputs: InputsJson { dataset_inputs },
        outputs: Empty {},
    }
}

fn experiment_json(e: &repro_store::tracking::Experiment) -> Value {
    json!({
        "experiment_id": e.experiment_id.to_string(),
        "name": e.name,
        "artifact_location": e.artifact_location,
        "lifecycle_stage": e.lifecycle_stage,
        "creation_time": e.creation_time,
        "last_update_time": e.last_update_time,
        "tags": kv(&e.tags),
    })
}

fn ok() -> Reply {
    Ok(Json(json!({})))
}

// ---- artifacts (the mlflow-artifacts proxy) ------------------------------------------------

/// The artifact path of a proxy URL, percent-decoded and checked (no `..`, no empty segment).
fn artifact_path(uri: &Uri) -> Result<String, ApiError> {
    let raw = uri.path().split_once("/mlflow-artifacts/artifacts/").map(|(_, p)| p).unwrap_or("");
    let decoded = percent_decode(raw, false);
    repro_store::tracking::clean_artifact_path(&decoded).map_err(ApiError::invalid)
}

/// `PUT …/artifacts/<path>`: the body streams to a temp file, is hashed, and becomes an
/// object; the path then names it. Nothing is buffered whole in memory.
pub(crate) async fn upload_artifact(AxState(s): S, uri: Uri, body: axum::body::Body) -> Result<Response, ApiError> {
    use http_body_util::BodyExt;
    use tokio::io::AsyncWriteExt;
    let path = artifact_path(&uri)?;
    if is_registry_path(&path) {
        return Err(ApiError::invalid("Registered model files cannot be written: the registry pins them."));
    }
    let tmp = s.objects.tmp_dir().join(format!("{}-upload-{}", std::process::id(), uuid::Uuid::new_v4().simple()));
    let result = async {
        let mut file = tokio::fs::File::create(&tmp)
            .await
            .map_err(|e| ApiError::internal(format!("cannot stage the upload: {e}")))?;
        let mut body = body;
        while let Some(frame) = body.frame().await {
            let frame = frame.map_err(|e| ApiError::invalid(format!("The upload could not be read: {e}")))?;
            if let Ok(data) = frame.into_data() {
                file.write_all(&data).await.map_err(|e| ApiError::internal(format!("cannot stage the upload: {e}")))?;
            }
        }
        file.flush().await.map_err(|e| ApiError::internal(format!("cannot stage the upload: {e}")))?;
        drop(file);
        let staged = tmp.clone();
        s.with_meta(move |m, st| {
            let (digest, size) = repro_store::objects::hash_file(&staged)
                .map_err(|e| ApiError::internal(format!("cannot hash the upload: {e}")))?;
            let seen =
                std::fs::metadata(&staged).map_err(|e| ApiError::internal(format!("cannot stat the upload: {e}")))?;
            let batch = st.objects.batch()?;
            batch.add_copy(&digest, &staged, &repro_store::objects::FileStat::of(&seen))?;
            batch.commit()?;
            m.tracking().put_artifact(&path, &digest, size)?;
            Ok(())
        })
        .await
    }
    .await;
    let _ = tokio::fs::remove_file(&tmp).await;
    result?;
    Ok(StatusCode::OK.into_response())
}

/// Streams an artifact: the object is re-hashed from disk first (a damaged object is an
/// error, never served), then sent in chunks, so a model of gigabytes never sits in memory.
pub(crate) async fn download_artifact(AxState(s): S, uri: Uri) -> Result<Response, ApiError> {
    use tokio::io::AsyncReadExt;
    let path = artifact_path(&uri)?;
    let name = path.rsplit('/').next().unwrap_or("artifact").to_string();
    let (file, size) = s
        .with_meta(move |m, st| {
            let digest = if is_registry_path(&path) {
                crate::registry_api::registered_file(&m.models().registry()?, &path)?
            } else {
                m.tracking()
                    .get_artifact(&path)?
                    .ok_or_else(|| ApiError::not_found(format!("Artifact '{path}' does not exist")))?
                    .0
            };
            let size = match st.objects.verify(&digest)? {
                repro_store::objects::Verified::Ok { bytes } => bytes,
                repro_store::objects::Verified::Missing => {
                    return Err(repro_store::StoreError::ObjectMissing(digest).into())
                }
                repro_store::objects::Verified::Corrupt => {
                    return Err(repro_store::StoreError::ObjectCorrupt(digest).into())
                }
            };
            // verify fetched it into the cache when the store has a remote.
            let object = st.objects.fetch(&digest)?;
            let file = std::fs::File::open(&object)
                .map_err(|e| ApiError::internal(format!("cannot read {}: {e}", object.display())))?;
            Ok((file, size))
        })
        .await?;
    let chunks = futures_util::stream::unfold(tokio::fs::File::from_std(file), |mut f| async move {
        let mut buf = vec![0u8; 256 << 10];
        match f.read(&mut buf).await {
            Ok(0) => None,
            Ok(n) => {
                buf.truncate(n);
                Some((Ok::<_, std::io::Error>(Bytes::from(buf)), f))
            }
            Err(e) => Some((Err(e), f)),
        }
    });
    Ok((
        [
            (axum::http::header::CONTENT_TYPE, "application/octet-stream".to_string()),
            (axum::http::header::CONTENT_LENGTH, size.to_string()),
            // Logged bytes are the client's: a browser saves them, never renders them here.
            (axum::http::header::CONTENT_DISPOSITION, attachment(&name)),
        ],
        axum::body::Body::from_stream(chunks),
    )
        .into_response())
}

/// `Content-Disposition: attachment` naming the file: an ASCII name with anything that
/// could end the quoted string or the header replaced, and the exact name percent-encoded
/// as RFC 6266's `filename*` for browsers that read it.
fn attachment(name: &str) -> String {
    let plain: String =
        name.chars().map(|c| if c.is_ascii_graphic() && c != '"' && c != '\\' || c == ' ' { c } else { '_' }).collect();
    let mut exact = String::with_capacity(name.len());
    for b in name.bytes() {
        if b.is_ascii_alphanumeric() || b"!#$&+-.^_`|~".contains(&b) {
            exact.push(b as char);
        } else {
            exact.push_str(&format!("%{b:02X}"));
        }
    }
    format!("attachment; filename=\"{plain}\"; filename*=UTF-8''{exact}")
}

/// Registered versions' files live under `registry/` (read-only: they are pinned).
fn is_registry_path(path: &str) -> bool {
    path.split('/').next() == Some(crate::registry_api::REGISTRY_PREFIX)
}

pub(crate) async fn delete_artifact(AxState(s): S, uri: Uri) -> Reply {
    let path = artifact_path(&uri)?;
    if is_registry_path(&path) {
        return Err(ApiError::invalid("Registered model files cannot be deleted: the registry pins them."));
    }
    s.with_meta(move |m, _| Ok(m.tracking().delete_artifact(&path)?)).await?;
    ok()
}

pub(crate) async fn list_artifacts(AxState(s): S, Req(r): Req) -> Reply {
    let dir = Req(r).opt_str("path")?.unwrap_or_default();
    let dir = if dir.trim_matches('/').is_empty() {
        String::new()
    } else {
        repro_store::tracking::clean_artifact_path(&dir).map_err(ApiError::invalid)?
    };
    if is_registry_path(&dir) {
        let files =
            s.with_meta(move |m, _| crate::registry_api::list_registered(&m.models().registry()?, &dir)).await?;
        return Ok(Json(if files.is_empty() { json!({}) } else { json!({"files": files}) }));
    }
    let entries = s.with_meta(move |m, _| Ok(m.tracking().list_artifacts(&dir)?)).await?;
    if entries.is_empty() {
        return Ok(Json(json!({})));
    }
    let files: Vec<Value> = entries
        .iter()
        .map(|e| match e.file_size {
            Some(size) => json!({"path": e.path, "is_dir": false, "file_size": size}),
            None => json!({"path": e.path, "is_dir": true}),
        })
        .collect();
    Ok(Json(json!({"files": files})))
}

// ---- experiments -------------------------------------------------------------------------

pub(crate) async fn create_experiment(AxState(s): S, Req(r): Req) -> Reply {
    let r = Req(r);
    let name = r.str("name")?;
    if name.trim().is_empty() || name.len() > 500 {
        return Err(ApiError::invalid("Invalid experiment name: it must be 1 to 500 characters."));
    }
    let location = r.opt_str("artifact_location")?.filter(|l| !l.is_empty());
    if let Some(l) = &location {
        check_artifact_location(l)?;
    }
    let tags = r.pairs("tags")?;
    let id = s.with_meta(move |m, _| Ok(m.tracking().create_experiment(&name, location.as_deref(), &tags)?)).await?;
    Ok(Json(json!({"experiment_id": id.to_string()})))
}

/// An experiment's artifact location must be one this server serves from its own store:
/// every run's artifacts go through the `mlflow-artifacts:` proxy whatever the experiment
/// says, so any other location (`file:///etc`, `s3://…`) would only be a promise a client
/// might act on.
fn check_artifact_location(location: &str) -> Result<(), ApiError> {
    let refuse = || {
        ApiError::invalid(format!(
            "artifact_location '{}' is not served by this server: repro keeps every artifact in its own store; omit it, or use mlflow-artifacts:/NAME",
            location.chars().filter(|c| !c.is_control()).take(200).collect::<String>()
        ))
    };
    let rest = location.strip_prefix("mlflow-artifacts:/").ok_or_else(refuse)?;
    // `mlflow-artifacts://host/…` names another server.
    if rest.starts_with('/') {
        return Err(refuse());
    }
    let path = repro_store::tracking::clean_artifact_path(&percent_decode(rest, false)).map_err(|_| refuse())?;
    if is_registry_path(&path) {
        return Err(refuse());
    }
    Ok(())
}

pub(crate) async fn get_experiment(AxState(s): S, Req(r): Req) -> Reply {
    let id = experiment_id(&Req(r).str("experiment_id")?)?;
    let e = s.with_meta(move |m, _| Ok(m.tracking().get_experiment(id)?)).await?;
    Ok(Json(json!({"experiment": experiment_json(&e)})))
}

pub(crate) async fn get_experiment_by_name(AxState(s): S, Req(r): Req) -> Reply {
    let name = Req(r).str("experiment_name")?;
    let e = s.with_meta(move |m, _| Ok(m.tracking().get_experiment_by_name(&name)?)).await?;
    Ok(Json(json!({"experiment": experiment_json(&e)})))
}

fn view_stages(view: Option<&str>) -> Result<&'static [&'static str], ApiError> {
    Ok(match view.unwrap_or("ACTIVE_ONLY") {
        "ACTIVE_ONLY" | "1" => &["active"],
        "DELETED_ONLY" | "2" => &["deleted"],
        "ALL" | "3" => &["active", "deleted"],
        other => {
            return Err(ApiError::invalid(format!(
                "Invalid view type '{other}': use ACTIVE_ONLY, DELETED_ONLY or ALL."
            )))
        }
    })
}

pub(crate) fn max_results(r: &Req, default: i64) -> Result<usize, ApiError> {
    let n = r.opt_i64("max_results")?.unwrap_or(default);
    if !(1..=MAX_RESULTS).contains(&n) {
        return Err(ApiError::invalid(format!(
            "Invalid value {n} for parameter 'max_results' supplied. It must be at most {MAX_RESULTS}, and positive."
        )));
    }
    Ok(n as usize)
}

pub(crate) fn page_offset(r: &Req) -> Result<usize, ApiError> {
    match r.opt_str("page_token")?.filter(|t| !t.is_empty()) {
        None => Ok(0),
        Some(t) => search::parse_page_token(&t).map_err(|e| ApiError::invalid(e.to_string())),
    }
}

pub(crate) async fn search_experiments(AxState(s): S, Req(r): Req) -> Reply {
    let r = Req(r);
    let stages = view_stages(r.opt_str("view_type")?.as_deref())?;
    let limit = max_results(&r, 1000)?;
    let offset = page_offset(&r)?;
    let filter = r.opt_str("filter")?.unwrap_or_default();
    let clauses = search::parse_experiment_filter(&filter).map_err(|e| ApiError::invalid(e.to_string()))?;
    let all = s.with_meta(|m, _| Ok(m.tracking().list_experiments()?)).await?;
    let mut found: Vec<_> = all
        .into_iter()
        .filter(|e| stages.contains(&e.lifecycle_stage.as_str()))
        .filter(|e| {
            let view = search::ExperimentView {
                name: &e.name,
                creation_time: e.creation_time,
                last_update_time: e.last_update_time,
                tags: &e.tags,
            };
            search::matches_experiment(&clauses, &view)
        })
        .collect();
    found.sort_by_key(|e| std::cmp::Reverse(e.creation_time));
    let page: Vec<Value> = found.iter().skip(offset).take(limit).map(experiment_json).collect();
    let mut out = json!({"experiments": page});
    if offset + limit < found.len() {
        out["next_page_token"] = json!(search::page_token(offset + limit));
    }
    Ok(Json(out))
}

pub(crate) async fn update_experiment(AxState(s): S, Req(r): Req) -> Reply {
    let r = Req(r);
    let id = experiment_id(&r.str("experiment_id")?)?;
    if let Some(name) = r.opt_str("new_name")?.filter(|n| !n.is_empty()) {
        s.with_meta(move |m, _| Ok(m.tracking().rename_experiment(id, &name)?)).await?;
    }
    ok()
}

pub(crate) async fn delete_experiment(AxState(s): S, Req(r): Req) -> Reply {
    let id = experiment_id(&Req(r).str("experiment_id")?)?;
    s.with_meta(move |m, _| Ok(m.tracking().set_experiment_stage(id, "deleted")?)).await?;
    ok()
}

pub(crate) async fn restore_experiment(AxState(s): S, Req(r): Req) -> Reply {
    let id = experiment_id(&Req(r).str("experiment_id")?)?;
    s.with_meta(move |m, _| Ok(m.tracking().set_experiment_stage(id, "active")?)).await?;
    ok()
}

pub(crate) async fn set_experiment_tag(AxState(s): S, Req(r): Req) -> Reply {
    let r = Req(r);
    let id = experiment_id(&r.str("experiment_id")?)?;
    let (key, value) = (r.str("key")?, r.str("value")?);
    check_key("tag", &key)?;
    check_value("Tag value", &key, &value, 20_000)?;
    s.with_meta(move |m, _| Ok(m.tracking().set_experiment_tag(id, &key, Some(&value))?)).await?;
    ok()
}

pub(crate) async fn delete_experiment_tag(AxState(s): S, Req(r): Req) -> Reply {
    let r = Req(r);
    let id = experiment_id(&r.str("experiment_id")?)?;
    let key = r.str("key")?;
    s.with_meta(move |m, _| Ok(m.tracking().set_experiment_tag(id, &key, None)?)).await?;
    ok()
}

// ---- runs ---------------------------------------------------------------------------------

const ADJECTIVES: [&str; 16] = [
    "amber", "brave", "calm", "dapper", "eager", "fierce", "gentle", "honest", "keen", "lucid", "merry", "nimble",
    "placid", "quick", "rustic", "sturdy",
];
const NOUNS: [&str; 16] = [
    "ant", "bear", "crane", "deer", "eel", "finch", "goat", "hare", "ibis", "jay", "koala", "lynx", "mole", "newt",
    "owl", "panda",
];

fn run_name_for(id: &RunId) -> String {
    let b = id.as_str().as_bytes();
    let pick = |i: usize| b.get(i).copied().unwrap_or(0) as usize;
    format!("{}-{}-{}", ADJECTIVES[pick(0) % 16], NOUNS[pick(1) % 16], (pick(2) * 7 + pick(3)) % 1000)
}

pub(crate) async fn create_run(AxState(s): S, Req(r): Req) -> Reply {
    let r = Req(r);
    let exp = match r.opt_str("experiment_id")?.filter(|e| !e.is_empty()) {
        Some(e) => experiment_id(&e)?,
        None => 0,
    };
    let user = r.opt_str("user_id")?.unwrap_or_default();
    let start = r.opt_i64("start_time")?.unwrap_or_else(repro_store::now_ms);
    let tags = r.pairs("tags")?;
    for (k, v) in &tags {
        check_key("tag", k)?;
        check_value("Tag value", k, v, MAX_TAG_VALUE)?;
    }
    let id = RunId::from_bytes(*uuid::Uuid::new_v4().as_bytes());
    let name = r
        .opt_str("run_name")?
        .filter(|n| !n.is_empty())
        .or_else(|| tags.iter().find(|(k, _)| k == repro_store::tracking::RUN_NAME_TAG).map(|(_, v)| v.clone()))
        .unwrap_or_else(|| run_name_for(&id));
    let run = s
        .with_meta(move |m, st| {
            m.tracking().create_tracked_run(&id, exp, &user, &name, start, &tags, &st.host)?;
            Ok(m.tracking().get_tracked_run(id.as_str())?)
        })
        .await?;
    Ok(Json(json!({"run": run_json(&run)})))
}

pub(crate) async fn get_run(AxState(s): S, Req(r): Req) -> Reply {
    let id = Req(r).run_id()?;
    let (run, outputs) =
        s.with_meta(move |m, _| Ok((m.tracking().get_tracked_run(&id)?, m.tracking().run_outputs(&id)?))).await?;
    let mut out =
        serde_json::to_value(run_json(&run)).map_err(|e| ApiError::internal(format!("cannot write the run: {e}")))?;
    if !outputs.is_empty() {
        out["outputs"] = json!({
            "model_outputs": outputs.iter().map(|(id, step)| json!({"model_id": id, "step": step})).collect::<Vec<_>>()
        });
    }
    Ok(Json(json!({"run": out})))
}

fn parse_status(s: &str) -> Result<RunStatus, ApiError> {
    Ok(match s {
        "RUNNING" | "SCHEDULED" | "1" | "2" => RunStatus::Running,
        "FINISHED" | "3" => RunStatus::Finished,
        "FAILED" | "4" => RunStatus::Failed,
        "KILLED" | "5" => RunStatus::Killed,
        other => {
            return Err(ApiError::invalid(format!(
                "Invalid run status '{other}': use RUNNING, SCHEDULED, FINISHED, FAILED or KILLED."
            )))
        }
    })
}

pub(crate) async fn update_run(AxState(s): S, Req(r): Req) -> Reply {
    let r = Req(r);
    let id = r.run_id()?;
    let status = r.opt_str("status")?.map(|st| parse_status(&st)).transpose()?;
    let end = r.opt_i64("end_time")?;
    let name = r.opt_str("run_name")?.filter(|n| !n.is_empty());
    let run = s
        .with_meta(move |m, st| {
            let run = m.tracking().get_tracked_run(&id)?;
            if let Some(n) = &name {
                m.tracking().rename_run(&id, n)?;
            }
            match status {
                Some(RunStatus::Running) | None => {
                    if status.is_some() {
                        m.tracking().set_tracked_status(&id, RunStatus::Running.as_str())?;
                    }
                }
                Some(end_status) if !run.captured => finish_tracked(m, st, &id, end_status, end)?,
                // A captured run ends when its `repro run` process does; the script's
                // end_run() is acknowledged and changes nothing.
                Some(_) => {}
            }
            Ok(m.tracking().get_tracked_run(&id)?)
        })
        .await?;
    Ok(Json(json!({"run_info": run_info(&run)})))
}

/// Ends a tracking-only run: the final record (status, end time, the params and the number
/// of metric points it logged) is stored as an object and its lineage digest recorded.
fn finish_tracked(
    m: &mut repro_store::Metadata,
    st: &State,
    id: &str,
    status: RunStatus,
    end: Option<i64>,
) -> Result<(), ApiError> {
    let run_id = RunId::parse(id).map_err(|_| ApiError::not_found(format!("Run with id={id} not found")))?;
    let stored = m.runs().get(&run_id)?;
    if stored.lineage.is_some() {
        return Ok(());
    }
    let mut record = stored.record;
    let end = end.unwrap_or_else(repro_store::now_ms);
    record.status = status;
    record.ended_at = Some(repro_store::rfc3339(end));
    record.params.logged = m.tracking().tracked_params(id)?;
    record.metric_count = m.runs().metrics(&run_id)?.len() as u64;
    m.seal_and_finish(&st.objects, &mut record, end)?;
    Ok(())
}

pub(crate) async fn delete_run(AxState(s): S, Req(r): Req) -> Reply {
    let id = Req(r).run_id()?;
    s.with_meta(move |m, _| Ok(m.tracking().set_run_stage(&id, "deleted")?)).await?;
    ok()
}

pub(crate) async fn restore_run(AxState(s): S, Req(r): Req) -> Reply {
    let id = Req(r).run_id()?;
    s.with_meta(move |m, _| Ok(m.tracking().set_run_stage(&id, "active")?)).await?;
    ok()
}

fn metric_in(v: &Value, default_ts: i64) -> Result<MetricIn, ApiError> {
    let key = v.get("key").and_then(Value::as_str).ok_or_else(|| ApiError::missing_param("key"))?.to_string();
    check_key("metric", &key)?;
    let value = value_f64(v.get("value"), "value")?;
    let int = |name: &str| -> Result<Option<i64>, ApiError> {
        match v.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Number(n)) => {
                n.as_i64().map(Some).ok_or_else(|| ApiError::invalid(format!("Invalid value for parameter '{name}'.")))
            }
            Some(Value::String(s)) => {
                s.parse().map(Some).map_err(|_| ApiError::invalid(format!("Invalid value for parameter '{name}'.")))
            }
            Some(_) => Err(ApiError::invalid(format!("Invalid value for parameter '{name}'."))),
        }
    };
    Ok(MetricIn { key, value, timestamp: int("timestamp")?.unwrap_or(default_ts), step: int("step")?.unwrap_or(0) })
}

async fn log(
    s: &Arc<State>,
    id: String,
    metrics: Vec<MetricIn>,
    params: Vec<(String, String)>,
    tags: Vec<(String, String)>,
) -> Reply {
    for (k, v) in &params {
        check_key("param", k)?;
        check_value("Param value", k, v, MAX_PARAM_VALUE)?;
    }
    for (k, v) in &tags {
        check_key("tag", k)?;
        check_value("Tag value", k, v, MAX_TAG_VALUE)?;
    }
    s.with_meta(move |m, _| Ok(m.tracking().log_batch(&id, &metrics, &params, &tags)?)).await?;
    ok()
}

pub(crate) async fn log_metric(AxState(s): S, Req(r): Req) -> Reply {
    let r = Req(r);
    let id = r.run_id()?;
    r.f64("value")?;
    if r.opt_i64("timestamp")?.is_none() {
        return Err(ApiError::missing_param("timestamp"));
    }
    let m = metric_in(&Value::Object(r.0.clone()), repro_store::now_ms())?;
    log(&s, id, vec![m], vec![], vec![]).await
}

pub(crate) async fn log_param(AxState(s): S, Req(r): Req) -> Reply {
    let r = Req(r);
    let id = r.run_id()?;
    let (k, v) = (r.str("key")?, r.str("value")?);
    log(&s, id, vec![], vec![(k, v)], vec![]).await
}

pub(crate) async fn set_tag(AxState(s): S, Req(r): Req) -> Reply {
    let r = Req(r);
    let id = r.run_id()?;
    let (k, v) = (r.str("key")?, r.str("value")?);
    log(&s, id, vec![], vec![], vec![(k, v)]).await
}

pub(crate) async fn delete_tag(AxState(s): S, Req(r): Req) -> Reply {
    let r = Req(r);
    let id = r.run_id()?;
    let key = r.str("key")?;
    s.with_meta(move |m, _| Ok(m.tracking().delete_run_tag(&id, &key)?)).await?;
    ok()
}

pub(crate) async fn log_batch(AxState(s): S, Req(r): Req) -> Reply {
    let r = Req(r);
    let id = r.run_id()?;
    let metrics = match r.0.get("metrics") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(a)) => {
            if a.len() > MAX_BATCH_METRICS {
                return Err(ApiError::invalid(format!(
                    "A batch logging request can contain at most {MAX_BATCH_METRICS} metrics. Got {} metrics. Please split up metrics across multiple requests and try again.",
                    a.len()
                )));
            }
            let now = repro_store::now_ms();
            a.iter().map(|v| metric_in(v, now)).collect::<Result<Vec<_>, _>>()?
        }
        Some(_) => return Err(ApiError::invalid("Invalid value for parameter 'metrics': expected a list.")),
    };
    let params = r.pairs("params")?;
    let tags = r.pairs("tags")?;
    if params.len() > MAX_BATCH_PARAMS {
        return Err(ApiError::invalid(format!(
            "A batch logging request can contain at most {MAX_BATCH_PARAMS} params. Got {} params. Please split up params across multiple requests and try again.",
            params.len()
        )));
    }
    if tags.len() > MAX_BATCH_TAGS {
        return Err(ApiError::invalid(format!(
            "A batch logging request can contain at most {MAX_BATCH_TAGS} tags. Got {} tags. Please split up tags across multiple requests and try again.",
            tags.len()
        )));
    }
    // Within one batch the same param twice with two values is as wrong as across batches.
    let mut seen: BTreeMap<&str, &str> = BTreeMap::new();
    for (k, v) in &params {
        if let Some(old) = seen.insert(k, v) {
            if old != v {
                return Err(ApiError::invalid(format!("Duplicate parameter keys have been submitted: ['{k}']. Please ensure the request contains only one param value per param key.")));
            }
        }
    }
    log(&s, id, metrics, params, tags).await
}

pub(crate) async fn log_inputs(AxState(s): S, Req(r): Req) -> Reply {
    let r = Req(r);
    let id = r.run_id()?;
    let mut inputs = Vec::new();
    for item in r.list("datasets")? {
        let d = item.get("dataset").ok_or_else(|| ApiError::missing_param("dataset"))?;
        let field = |k: &str| -> Result<String, ApiError> {
            d.get(k)
                .and_then(Value::as_str)
                .map(str::to_string)
                .ok_or_else(|| ApiError::missing_param(&format!("dataset.{k}")))
        };
        let tags = Req(item.as_object().cloned().unwrap_or_default()).pairs("tags")?;
        inputs.push(DatasetInput {
            name: field("name")?,
            digest: field("digest")?,
            source_type: field("source_type")?,
            source: field("source")?,
            schema: d.get("schema").and_then(Value::as_str).map(str::to_string),
            profile: d.get("profile").and_then(Value::as_str).map(str::to_string),
            tags: tags.into_iter().collect(),
        });
    }
    s.with_meta(move |m, _| Ok(m.tracking().log_inputs(&id, &inputs)?)).await?;
    ok()
}

pub(crate) async fn metric_history(AxState(s): S, Req(r): Req) -> Result<Response, ApiError> {
    let r = Req(r);
    let id = r.run_id()?;
    let key = r.str("metric_key")?;
    let limit = max_results(&r, 25_000)?;
    let offset = page_offset(&r)?;
    let points = s.with_meta(move |m, _| Ok(m.tracking().metric_history(&id, &key, offset, limit + 1)?)).await?;
    #[derive(Serialize)]
    struct History<'a> {
        metrics: Vec<MetricJson<'a>>,
        #[serde(skip_serializing_if = "Option::is_none")]
        next_page_token: Option<String>,
    }
    let out = History {
        metrics: points.iter().take(limit).map(MetricJson::from).collect(),
        next_page_token: (points.len() > limit).then(|| search::page_token(offset.saturating_add(limit))),
    };
    Ok(Json(out).into_response())
}

pub(crate) async fn search_runs(AxState(s): S, Req(r): Req) -> Result<Response, ApiError> {
    let r = Req(r);
    let experiments = r.experiment_ids()?;
    let stages = view_stages(r.opt_str("run_view_type")?.as_deref())?;
    let limit = max_results(&r, 1000)?;
    let offset = page_offset(&r)?;
    let clauses = search::parse_filter(&r.opt_str("filter")?.unwrap_or_default())
        .map_err(|e| ApiError::invalid(e.to_string()))?;
    let order = search::parse_order_by(&r.str_list("order_by")?).map_err(|e| ApiError::invalid(e.to_string()))?;
    // One more than the page: whether it is there says whether a next page exists.
    let runs = s
        .with_meta(move |m, _| {
            let q = RunQuery {
                experiments: &experiments,
                stages,
                clauses: &clauses,
                order: &order,
                offset,
                limit: Some(limit.saturating_add(1)),
                params: ParamSource::Logged,
            };
            Ok(m.tracking().search_runs(&q)?)
        })
        .await?;
    #[derive(Serialize)]
    struct Page<'a> {
        #[serde(skip_serializing_if = "Option::is_none")]
        next_page_token: Option<String>,
        runs: Vec<RunJson<'a>>,
    }
    let out = Page {
        next_page_token: (runs.len() > limit).then(|| search::page_token(offset.saturating_add(limit))),
        runs: runs.iter().take(limit).map(run_json).collect(),
    };
    Ok(Json(out).into_response())
}

impl IntoResponse for Req {
    fn into_response(self) -> Response {
        Json(Value::Object(self.0)).into_response()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_strings_decode() {
        assert_eq!(
            form_pairs("run_id=ab&metric_key=val%20loss&x=a+b&bad=%zz&end=%4"),
            vec![
                ("run_id".into(), "ab".into()),
                ("metric_key".into(), "val loss".into()),
                ("x".into(), "a b".into()),
                ("bad".into(), "%zz".into()),
                ("end".into(), "%4".into())
            ]
        );
        assert_eq!(form_pairs(""), vec![]);
    }

    /// What `run_json` wrote when it built `serde_json::Value`s: the reference for the bytes.
    fn run_value(r: &TrackedRun) -> Value {
        let num = |v: f64| {
            if v.is_nan() {
                json!("NaN")
            } else if v.is_infinite() {
                json!(if v > 0.0 { "Infinity" } else { "-Infinity" })
            } else {
                json!(v)
            }
        };
        let metrics: Vec<Value> = r
            .metrics
            .iter()
            .map(|m| json!({"key": m.key, "value": num(m.value), "timestamp": m.timestamp, "step": m.step}))
            .collect();
        let inputs: Vec<Value> = r
            .inputs
            .iter()
            .map(|d| {
                let mut dataset =
                    json!({"name": d.name, "digest": d.digest, "source_type": d.source_type, "source": d.source});
                if let Some(m) = dataset.as_object_mut() {
                    if let Some(s) = &d.schema {
                        m.insert("schema".into(), json!(s));
                    }
                    if let Some(p) = &d.profile {
                        m.insert("profile".into(), json!(p));
                    }
                }
                json!({"tags": kv(&d.tags), "dataset": dataset})
            })
            .collect();
        let mut info = json!({
            "run_id": r.run_id,
            "run_uuid": r.run_id,
            "run_name": r.run_name,
            "experiment_id": r.experiment_id.to_string(),
            "user_id": r.user_id,
            "status": r.status,
            "start_time": r.start_time,
            "artifact_uri": r.artifact_uri,
            "lifecycle_stage": r.lifecycle_stage,
        });
        if let (Some(end), Some(m)) = (r.end_time, info.as_object_mut()) {
            m.insert("end_time".into(), json!(end));
        }
        json!({
            "info": info,
            "data": {"metrics": metrics, "params": kv(&r.params), "tags": kv(&r.tags)},
            "inputs": {"dataset_inputs": inputs},
            "outputs": {},
        })
    }

    #[test]
    fn runs_are_written_byte_for_byte_as_before() {
        let metric = |key: &str, value: f64| LatestMetric { key: key.into(), value, step: 3, timestamp: -4 };
        let dataset = |schema: Option<&str>, profile: Option<&str>| DatasetInput {
            name: "train \"é\"".into(),
            digest: "d".into(),
            source_type: "http".into(),
            source: "{\"url\": \"x\"}".into(),
            schema: schema.map(str::to_string),
            profile: profile.map(str::to_string),
            tags: [("mlflow.data.context".to_string(), "training".to_string())].into(),
        };
        let mut r = TrackedRun {
            run_id: RunId::from_bytes([7; 16]),
            run_name: "n\u{1}\n".into(),
            experiment_id: 12,
            user_id: "ada".into(),
            status: "FINISHED",
            start_time: 1_700_000_000_000,
            end_time: Some(1_700_000_000_001),
            artifact_uri: "mlflow-artifacts:/12/x/artifacts".into(),
            lifecycle_stage: "active".into(),
            captured: false,
            metrics: vec![
                metric("a", 0.1),
                metric("b", f64::NAN),
                metric("c", f64::NEG_INFINITY),
                metric("d", -0.0),
                metric("e", 1e300),
                metric("f", 5.0),
            ],
            params: [("lr".to_string(), "0.01".to_string()), ("x".to_string(), String::new())].into(),
            tags: [("mlflow.runName".to_string(), "n".to_string())].into(),
            inputs: vec![dataset(None, None), dataset(Some("{}"), Some("p"))],
        };
        let same = |r: &TrackedRun| {
            let new = serde_json::to_string(&run_json(r)).expect("serializes");
            let old = serde_json::to_string(&run_value(r)).expect("serializes");
            assert_eq!(new, old);
        };
        same(&r);
        r.end_time = None;
        r.metrics.clear();
        r.params.clear();
        r.inputs.clear();
        same(&r);
    }

    #[test]
    fn doubles_travel_as_mlflow_writes_them() {
        let text = |v: f64| serde_json::to_string(&Num(v)).expect("serializes");
        assert_eq!(text(f64::NAN), "\"NaN\"");
        assert_eq!(text(f64::INFINITY), "\"Infinity\"");
        assert_eq!(text(f64::NEG_INFINITY), "\"-Infinity\"");
        assert_eq!(text(-0.0), "-0.0");
        assert_eq!(text(0.1), "0.1");
        assert!(value_f64(Some(&json!("Infinity")), "v").is_ok_and(|v| v.is_infinite()));
        assert!(value_f64(Some(&json!("1e-3")), "v").is_ok_and(|v| v == 0.001));
        assert!(value_f64(Some(&json!({})), "v").is_err());
        assert!(value_f64(None, "v").is_err());
    }
}
