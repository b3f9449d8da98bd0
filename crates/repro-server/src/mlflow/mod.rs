//! The MLflow REST API (`/api/2.0/mlflow/…`, also under `/ajax-api`), with MLflow's field
//! names, defaults and error codes (see `shared/reference/mlflow-rest.md`): one module per
//! resource, each declaring its own routes; what several of them write or render lives here.
//! `graphql` serves MLflow's GraphQL endpoint through the other modules' handlers.

pub(crate) mod artifacts;
pub(crate) mod experiments;
pub(crate) mod graphql;
pub(crate) mod logged_models;
pub(crate) mod metrics;
pub(crate) mod model_versions;
pub(crate) mod registered_models;
mod registry;
pub(crate) mod runs;

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::extract::State as AxState;
use axum::http::Method;
use axum::Json;
use repro_store::tracking::{LatestMetric, MetricIn};
use serde::Serialize;
use serde_json::{json, Value};

use crate::request::{check_key, check_value, MAX_PARAM_VALUE, MAX_TAG_VALUE};
use crate::routes::{Role, Routes};
use crate::{ApiError, State};

/// What the MLflow client asks before it logs (MLflow 3).
pub(crate) fn routes() -> Routes {
    Routes::new().api(Method::GET, "/api/3.0/mlflow/server-info", Role::Read, server_info)
}

pub(crate) type S = AxState<Arc<State>>;
pub(crate) type Reply = Result<Json<Value>, ApiError>;

/// MLflow's tracking and registry APIs are served under both prefixes (`/ajax-api` is what
/// MLflow's own web UI calls), with the same roles.
pub(crate) const MLFLOW_PREFIXES: [&str; 2] = ["/api/2.0/mlflow", "/ajax-api/2.0/mlflow"];
pub(crate) const ARTIFACT_PREFIXES: [&str; 2] =
    ["/api/2.0/mlflow-artifacts/artifacts", "/ajax-api/2.0/mlflow-artifacts/artifacts"];

pub(crate) async fn server_info() -> Json<Value> {
    Json(json!({
        "store_type": "repro",
        "workspaces_enabled": false,
        "multipart_uploads_enabled": false,
        "multipart_downloads_enabled": false,
        "presigned_upload_run_id_supported": false,
    }))
}

pub(crate) fn kv(map: &BTreeMap<String, String>) -> Value {
    Value::Array(map.iter().map(|(k, v)| json!({"key": k, "value": v})).collect())
}

// Runs and metric points are written straight from the store's structs (serde derive), not
// through `serde_json::Value`: a page of 1,000 runs or a history of 10,000 points is then
// written without building a map per object first. Fields are in alphabetical order, the
// order `json!` maps have, so the bytes are the same as before.

/// A double as MLflow writes it: non-finite values as strings.
pub(crate) struct Num(f64);

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
pub(crate) struct MetricJson<'a> {
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
pub(crate) struct Kv<'a>(&'a BTreeMap<String, String>);

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

pub(crate) fn ok() -> Reply {
    Ok(Json(json!({})))
}

pub(crate) fn view_stages(view: Option<&str>) -> Result<&'static [&'static str], ApiError> {
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

pub(crate) async fn log(
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
