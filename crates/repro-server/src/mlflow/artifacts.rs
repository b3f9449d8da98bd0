//! The artifact proxy (`mlflow-artifacts`): upload, download, list and delete a run's files;
//! registered versions' files are served read-only under `registry/`.

use axum::extract::{Path as UrlPath, State as AxState};
use axum::http::{Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};

use super::registry::{is_registry_path, list_registered, registered_file};
use super::{ok, Reply, ARTIFACT_PREFIXES, S};
use crate::request::Req;
use crate::routes::{Role, Routes};
use crate::ApiError;

/// MLflow's web UI (`/ajax-api`) downloads through the proxy and uploads run-relative.
pub(crate) fn routes() -> Routes {
    use crate::routes::{Body, Kind};
    use Method as M;
    use Role::{Read, Write};
    let [files, ajax_files] = ARTIFACT_PREFIXES;
    let mut r = Routes::new()
        .api(M::GET, files, Read, list_artifacts)
        .api(M::GET, &format!("{files}/{{*path}}"), Read, download_artifact)
        .add(M::PUT, &format!("{files}/{{*path}}"), Write, Kind::Api, Body::Raw, upload_artifact)
        .api(M::DELETE, &format!("{files}/{{*path}}"), Write, delete_artifact)
        .api(M::GET, ajax_files, Read, list_artifacts)
        .api(M::GET, &format!("{ajax_files}/{{*path}}"), Read, download_artifact)
        // MLflow's run-relative routes: a run's files by run id, a version's by name and number.
        .api(M::GET, "/api/2.0/mlflow/artifacts/list", Read, list_run_artifacts)
        .api(M::GET, "/ajax-api/2.0/mlflow/artifacts/list", Read, list_run_artifacts)
        .api(M::GET, "/get-artifact", Read, get_run_artifact)
        .api(M::GET, "/model-versions/get-artifact", Read, get_model_version_artifact)
        .add(M::POST, "/ajax-api/2.0/mlflow/upload-artifact", Write, Kind::Api, Body::Raw, upload_run_artifact);
    for p in super::MLFLOW_PREFIXES {
        r = r
            .api(
                M::GET,
                &format!("{p}/logged-models/{{model_id}}/artifacts/directories"),
                Read,
                list_logged_model_artifacts,
            )
            .api(M::GET, &format!("{p}/logged-models/{{model_id}}/artifacts/files"), Read, get_logged_model_artifact);
    }
    r
}

/// A path a client asked for inside a run or a version, refused as MLflow refuses it
/// (`validate_path_is_safe`: no `..`, no backslash, not absolute, no `#`) with its words.
fn relative_path(path: &str) -> Result<String, ApiError> {
    let invalid = || ApiError::invalid("Invalid path");
    if path.contains(['#', '\\']) || path.starts_with('/') || path.split('/').any(|p| p == "..") {
        return Err(invalid());
    }
    if path.trim_matches('/').is_empty() {
        return Ok(String::new());
    }
    repro_store::tracking::clean_artifact_path(path).map_err(|_| invalid())
}

/// The store path under which a run's files live (`mlflow-artifacts:/0/RUN/artifacts` →
/// `0/RUN/artifacts`).
async fn run_root(s: &std::sync::Arc<crate::State>, run_id: String) -> Result<(String, String), ApiError> {
    let run = s.with_meta(move |m, _| Ok(m.tracking().get_tracked_run(&run_id)?)).await?;
    let uri = run.artifact_uri.clone();
    let root = uri
        .strip_prefix("mlflow-artifacts:/")
        .map(|r| r.trim_matches('/').to_string())
        .ok_or_else(|| ApiError::internal(format!("run artifact root '{uri}' is not this server's")))?;
    Ok((uri, root))
}

fn join(root: &str, rel: &str) -> String {
    match (root.is_empty(), rel.is_empty()) {
        (_, true) => root.to_string(),
        (true, false) => rel.to_string(),
        (false, false) => format!("{root}/{rel}"),
    }
}

/// `GET /api/2.0/mlflow/artifacts/list?run_id=…&path=…`: a run's folder, entries relative
/// to the run's root, with the root's URI.
pub(crate) async fn list_run_artifacts(AxState(s): S, r: Req) -> Reply {
    let rel = relative_path(&r.opt_str("path")?.unwrap_or_default())?;
    let (root_uri, root) = run_root(&s, r.run_id()?).await?;
    list_under(&s, root_uri, root, rel).await
}

/// `GET …/logged-models/ID/artifacts/directories[?artifact_directory_path=…]`: the same for
/// a logged model's folder.
pub(crate) async fn list_logged_model_artifacts(AxState(s): S, UrlPath(id): UrlPath<String>, r: Req) -> Reply {
    let rel = relative_path(&r.opt_str("artifact_directory_path")?.unwrap_or_default())?;
    let (root_uri, root) = logged_root(&s, id).await?;
    list_under(&s, root_uri, root, rel).await
}

/// `GET …/logged-models/ID/artifacts/files?artifact_file_path=…`: one of its files.
pub(crate) async fn get_logged_model_artifact(
    AxState(s): S,
    UrlPath(id): UrlPath<String>,
    r: Req,
) -> Result<Response, ApiError> {
    let rel = r
        .opt_str("artifact_file_path")?
        .filter(|p| !p.is_empty())
        .ok_or_else(|| ApiError::invalid("Request must include the \"artifact_file_path\" query parameter."))?;
    let rel = relative_path(&rel)?;
    let (_, root) = logged_root(&s, id).await?;
    send_artifact(&s, join(&root, &rel)).await
}

async fn logged_root(s: &std::sync::Arc<crate::State>, id: String) -> Result<(String, String), ApiError> {
    let m = s.with_meta(move |m, _| Ok(m.tracking().get_logged_model(&id)?)).await?;
    let uri = m.artifact_uri.clone();
    Ok((uri, m.artifact_path().to_string()))
}

/// A folder under `root` (a run's or a logged model's), entries named from the root as
/// MLflow names them, with the root's URI.
async fn list_under(s: &std::sync::Arc<crate::State>, root_uri: String, root: String, rel: String) -> Reply {
    let dir = join(&root, &rel);
    let entries = s.with_meta(move |m, _| Ok(m.tracking().list_artifacts(&dir)?)).await?;
    // The store names entries by their folder's; MLflow names them from the root.
    let files: Vec<Value> = entries
        .iter()
        .map(|e| {
            let name = e.path.rsplit('/').next().unwrap_or(&e.path);
            let path = join(&rel, name);
            match e.file_size {
                Some(size) => json!({"path": path, "is_dir": false, "file_size": size}),
                None => json!({"path": path, "is_dir": true}),
            }
        })
        .collect();
    let mut out = json!({"root_uri": root_uri});
    if !files.is_empty() {
        out["files"] = Value::Array(files);
    }
    Ok(Json(out))
}

/// `GET /get-artifact?run_id=…&path=…`: one of a run's files.
pub(crate) async fn get_run_artifact(AxState(s): S, r: Req) -> Result<Response, ApiError> {
    let rel = relative_path(&r.str("path")?)?;
    let (_, root) = run_root(&s, r.run_id()?).await?;
    send_artifact(&s, join(&root, &rel)).await
}

/// `GET /model-versions/get-artifact?name=…&version=…&path=…`: one of a registered
/// version's pinned files.
pub(crate) async fn get_model_version_artifact(AxState(s): S, r: Req) -> Result<Response, ApiError> {
    let rel = relative_path(&r.str("path")?)?;
    let name = r.str("name")?;
    let version = r.str("version")?;
    let version: u32 = version
        .parse()
        .map_err(|_| ApiError::invalid(format!("Invalid version '{version}': a version is a positive number.")))?;
    send_artifact(&s, join(&format!("{}/{name}/{version}", super::registry::REGISTRY_PREFIX), &rel)).await
}

/// The artifact path of a proxy URL, percent-decoded and checked (no `..`, no empty segment).
fn artifact_path(uri: &Uri) -> Result<String, ApiError> {
    let raw = uri.path().split_once("/mlflow-artifacts/artifacts/").map(|(_, p)| p).unwrap_or("");
    let decoded = crate::request::percent_decode(raw, false);
    repro_store::tracking::clean_artifact_path(&decoded).map_err(ApiError::invalid)
}

/// `PUT …/artifacts/<path>`: the body streams to a temp file, is hashed, and becomes an
/// object; the path then names it. Nothing is buffered whole in memory.
pub(crate) async fn upload_artifact(AxState(s): S, uri: Uri, body: axum::body::Body) -> Result<Response, ApiError> {
    let path = artifact_path(&uri)?;
    if is_registry_path(&path) {
        return Err(ApiError::invalid("Registered model files cannot be written: the registry pins them."));
    }
    store_upload(&s, path, body, false).await?;
    Ok(StatusCode::OK.into_response())
}

/// `POST /ajax-api/2.0/mlflow/upload-artifact?run_uuid=…&path=…` with the file as the raw
/// body: what MLflow's web UI sends to add a file to a run.
pub(crate) async fn upload_run_artifact(AxState(s): S, uri: Uri, body: axum::body::Body) -> Result<Response, ApiError> {
    let query: std::collections::BTreeMap<String, String> =
        crate::request::form_pairs(uri.query().unwrap_or("")).into_iter().collect();
    let run = query
        .get("run_uuid")
        .or_else(|| query.get("run_id"))
        .filter(|r| !r.is_empty())
        .ok_or_else(|| ApiError::invalid("Request must specify run_uuid."))?
        .clone();
    let rel =
        query.get("path").filter(|p| !p.is_empty()).ok_or_else(|| ApiError::invalid("Request must specify path."))?;
    let rel = relative_path(rel)?;
    if rel.is_empty() {
        return Err(ApiError::invalid("Request must specify path."));
    }
    let (_, root) = run_root(&s, run).await?;
    store_upload(&s, join(&root, &rel), body, true).await?;
    Ok(Json(json!({})).into_response())
}

/// Streams a request body to a temp file, hashes it into an object, and names it `path`.
/// Nothing is buffered whole in memory. `need_data`: an empty body is MLflow's 400.
async fn store_upload(
    s: &std::sync::Arc<crate::State>,
    path: String,
    body: axum::body::Body,
    need_data: bool,
) -> Result<(), ApiError> {
    use http_body_util::BodyExt;
    use tokio::io::AsyncWriteExt;
    let tmp = s.objects.tmp_dir().join(format!("{}-upload-{}", std::process::id(), uuid::Uuid::new_v4().simple()));
    let result = async {
        let mut file = tokio::fs::File::create(&tmp)
            .await
            .map_err(|e| ApiError::internal(format!("cannot stage the upload: {e}")))?;
        let mut body = body;
        let mut received = 0usize;
        while let Some(frame) = body.frame().await {
            let frame = frame.map_err(|e| ApiError::invalid(format!("The upload could not be read: {e}")))?;
            if let Ok(data) = frame.into_data() {
                received += data.len();
                file.write_all(&data).await.map_err(|e| ApiError::internal(format!("cannot stage the upload: {e}")))?;
            }
        }
        file.flush().await.map_err(|e| ApiError::internal(format!("cannot stage the upload: {e}")))?;
        drop(file);
        if need_data && received == 0 {
            return Err(ApiError::invalid("Request must specify data."));
        }
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
    result
}

/// Streams an artifact: the object is re-hashed from disk first (a damaged object is an
/// error, never served), then sent in chunks, so a model of gigabytes never sits in memory.
pub(crate) async fn download_artifact(AxState(s): S, uri: Uri) -> Result<Response, ApiError> {
    send_artifact(&s, artifact_path(&uri)?).await
}

/// Streams the file at a store artifact path (a run's, or `registry/NAME/V/…`).
async fn send_artifact(s: &std::sync::Arc<crate::State>, path: String) -> Result<Response, ApiError> {
    let name = path.rsplit('/').next().unwrap_or("artifact").to_string();
    let digest = s
        .with_meta(move |m, _| {
            if is_registry_path(&path) {
                return registered_file(&m.models().registry()?, &path);
            }
            Ok(m.tracking()
                .get_artifact(&path)?
                .ok_or_else(|| ApiError::not_found(format!("Artifact '{path}' does not exist")))?
                .0)
        })
        .await?;
    crate::download::send_object(s, digest, &name).await
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
        let files = s.with_meta(move |m, _| list_registered(&m.models().registry()?, &dir)).await?;
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
