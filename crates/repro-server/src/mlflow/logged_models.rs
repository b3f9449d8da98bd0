//! Logged models (MLflow 3): create, get, finalize, delete, search, tags and params.

use std::cmp::Ordering;
use std::sync::Arc;

use axum::extract::{Path as UrlPath, State as AxState};
use axum::http::Method;
use axum::Json;
use repro_core::search;
use repro_store::logged::{LoggedModel, ModelMetric, NewLoggedModel};
use serde_json::{json, Value};

use super::registry::{check_tags, current_registry, logged_model_json, page, registrations};
use super::{Reply, MLFLOW_PREFIXES, S};
use crate::request::{experiment_id, max_results, page_offset, Req};
use crate::routes::{Role, Routes};
use crate::{ApiError, State};

pub(crate) fn routes() -> Routes {
    use Method as M;
    use Role::{Read, Write};
    let mut r = Routes::new();
    for p in MLFLOW_PREFIXES {
        let at = |rest: &str| format!("{p}{rest}");
        r = r
            .api(M::POST, &at("/logged-models"), Write, create_logged_model)
            .api(M::POST, &at("/logged-models/search"), Read, search_logged_models)
            .api(M::GET, &at("/logged-models/{id}"), Read, get_logged_model)
            .api(M::PATCH, &at("/logged-models/{id}"), Write, finalize_logged_model)
            .api(M::DELETE, &at("/logged-models/{id}"), Write, delete_logged_model)
            .api(M::PATCH, &at("/logged-models/{id}/tags"), Write, set_logged_model_tags)
            .api(M::DELETE, &at("/logged-models/{id}/tags/{key}"), Write, delete_logged_model_tag)
            .api(M::POST, &at("/logged-models/{id}/params"), Write, log_logged_model_params);
    }
    r
}

async fn logged_reply(s: &Arc<State>, m: LoggedModel) -> Reply {
    let reg = current_registry(s).await?;
    Ok(Json(json!({"model": logged_model_json(&m, &registrations(&reg, &m.model_id))})))
}

pub(crate) async fn create_logged_model(AxState(s): S, r: Req) -> Reply {
    let experiment_id = experiment_id(&r.str("experiment_id")?)?;
    let params = r.pairs("params")?;
    let tags = r.pairs("tags")?;
    check_tags(&tags)?;
    let new = NewLoggedModel {
        experiment_id,
        // An unnamed model gets a name of its own, as in MLflow, not one every model shares.
        name: r
            .opt_str("name")?
            .filter(|n| !n.is_empty())
            .unwrap_or_else(|| super::runs::friendly_name(&uuid::Uuid::new_v4().simple().to_string())),
        model_type: r.opt_str("model_type")?.filter(|t| !t.is_empty()),
        source_run_id: r.opt_str("source_run_id")?.filter(|t| !t.is_empty()),
        creator_id: None,
        params: params.into_iter().collect(),
        tags: tags.into_iter().collect(),
    };
    let m = s.with_meta(move |m, _| Ok(m.tracking().create_logged_model(&new)?)).await?;
    logged_reply(&s, m).await
}

pub(crate) async fn get_logged_model(AxState(s): S, UrlPath(id): UrlPath<String>) -> Reply {
    let m = s.with_meta(move |m, _| Ok(m.tracking().get_logged_model(&id)?)).await?;
    logged_reply(&s, m).await
}

pub(crate) async fn finalize_logged_model(AxState(s): S, UrlPath(id): UrlPath<String>, r: Req) -> Reply {
    let status = r.str("status")?;
    let status = match status.as_str() {
        "LOGGED_MODEL_READY" | "2" => "LOGGED_MODEL_READY",
        "LOGGED_MODEL_UPLOAD_FAILED" | "3" => "LOGGED_MODEL_UPLOAD_FAILED",
        "LOGGED_MODEL_PENDING" | "1" => "LOGGED_MODEL_PENDING",
        other => {
            return Err(ApiError::invalid(format!(
                "Invalid logged model status '{other}': use LOGGED_MODEL_READY or LOGGED_MODEL_UPLOAD_FAILED."
            )))
        }
    };
    let m = s.with_meta(move |m, _| Ok(m.tracking().finalize_logged_model(&id, status)?)).await?;
    logged_reply(&s, m).await
}

pub(crate) async fn delete_logged_model(AxState(s): S, UrlPath(id): UrlPath<String>) -> Reply {
    s.with_meta(move |m, _| Ok(m.tracking().delete_logged_model(&id)?)).await?;
    Ok(Json(json!({})))
}

pub(crate) async fn set_logged_model_tags(AxState(s): S, UrlPath(id): UrlPath<String>, r: Req) -> Reply {
    let tags = r.pairs("tags")?;
    check_tags(&tags)?;
    let m = s.with_meta(move |m, _| Ok(m.tracking().set_logged_model_tags(&id, &tags)?)).await?;
    logged_reply(&s, m).await
}

pub(crate) async fn delete_logged_model_tag(AxState(s): S, UrlPath((id, key)): UrlPath<(String, String)>) -> Reply {
    s.with_meta(move |m, _| Ok(m.tracking().delete_logged_model_tag(&id, &key)?)).await?;
    Ok(Json(json!({})))
}

pub(crate) async fn log_logged_model_params(AxState(s): S, UrlPath(id): UrlPath<String>, r: Req) -> Reply {
    let params = r.pairs("params")?;
    s.with_meta(move |m, _| Ok(m.tracking().log_logged_model_params(&id, &params)?)).await?;
    Ok(Json(json!({})))
}

pub(crate) async fn search_logged_models(AxState(s): S, r: Req) -> Reply {
    let experiments = r.experiment_ids()?;
    let clauses = search::parse_registry_filter(&r.opt_str("filter")?.unwrap_or_default())
        .map_err(|e| ApiError::invalid(e.to_string()))?;
    let limit = max_results(&r, 100)?;
    let offset = page_offset(&r)?;
    let datasets = dataset_filters(&r)?;
    let order = model_order(&r)?;
    let mut found = s.with_meta(move |m, _| Ok(m.tracking().logged_models(&experiments)?)).await?;
    // Stable: models the order does not tell apart keep the store's order (newest first).
    for o in order.iter().rev() {
        found.sort_by(|a, b| o.compare(a, b));
    }
    let reg = current_registry(&s).await?;
    let models: Vec<Value> = found
        .iter()
        .filter(|m| datasets.is_empty() || m.metrics.iter().any(|p| datasets.iter().any(|d| d.matches(p))))
        .filter(|m| {
            let view = search::RegistryView {
                name: &m.name,
                run_id: m.source_run_id.as_deref(),
                source_path: Some(&m.artifact_uri),
                version: None,
                tags: &m.tags,
            };
            search::matches_registry(&clauses, &view)
        })
        .map(|m| logged_model_json(m, &registrations(&reg, &m.model_id)))
        .collect();
    Ok(Json(page(models, "models", offset, limit)))
}

/// `datasets` in a search: a model qualifies when a point was measured on one of them.
struct DatasetFilter {
    name: String,
    digest: Option<String>,
}

impl DatasetFilter {
    fn matches(&self, p: &ModelMetric) -> bool {
        p.dataset_name == self.name && self.digest.as_ref().is_none_or(|d| &p.dataset_digest == d)
    }
}

fn dataset_filters(r: &Req) -> Result<Vec<DatasetFilter>, ApiError> {
    let mut out = Vec::new();
    for d in r.list("datasets")? {
        let name = d
            .get("dataset_name")
            .and_then(Value::as_str)
            .filter(|n| !n.is_empty())
            .ok_or_else(|| ApiError::missing_param("datasets.dataset_name"))?;
        let digest = d.get("dataset_digest").and_then(Value::as_str).filter(|n| !n.is_empty());
        out.push(DatasetFilter { name: name.to_string(), digest: digest.map(str::to_string) });
    }
    Ok(out)
}

/// One `order_by` entry of a logged-model search: a column, or `metrics.<key>` (the model's
/// latest point of that key, on the named dataset when one is given).
struct ModelOrder {
    field: String,
    ascending: bool,
    dataset: Option<DatasetFilter>,
}

impl ModelOrder {
    fn metric(&self, m: &LoggedModel, key: &str) -> Option<f64> {
        m.metrics
            .iter()
            .filter(|p| p.key == key && self.dataset.as_ref().is_none_or(|d| d.matches(p)))
            .max_by_key(|p| (p.step, p.timestamp))
            .map(|p| p.value)
    }

    fn compare(&self, a: &LoggedModel, b: &LoggedModel) -> Ordering {
        let ord = match self.field.as_str() {
            "name" => a.name.cmp(&b.name),
            "model_id" => a.model_id.cmp(&b.model_id),
            "creation_timestamp" | "creation_time" => a.creation_ms.cmp(&b.creation_ms),
            "last_updated_timestamp" => a.updated_ms.cmp(&b.updated_ms),
            f => {
                let key = f.strip_prefix("metrics.").unwrap_or(f);
                match (self.metric(a, key), self.metric(b, key)) {
                    // Models without the metric come last either way, as in MLflow.
                    (Some(x), Some(y)) => x.total_cmp(&y),
                    (Some(_), None) => return Ordering::Less,
                    (None, Some(_)) => return Ordering::Greater,
                    (None, None) => return Ordering::Equal,
                }
            }
        };
        if self.ascending {
            ord
        } else {
            ord.reverse()
        }
    }
}

fn model_order(r: &Req) -> Result<Vec<ModelOrder>, ApiError> {
    let mut out = Vec::new();
    for o in r.list("order_by")? {
        let field = o
            .get("field_name")
            .and_then(Value::as_str)
            .filter(|n| !n.is_empty())
            .ok_or_else(|| ApiError::missing_param("order_by.field_name"))?;
        let known = ["name", "model_id", "creation_timestamp", "creation_time", "last_updated_timestamp"];
        if !known.contains(&field) && !field.starts_with("metrics.") {
            return Err(ApiError::invalid(format!(
                "Invalid order by field name: {field}. Use name, model_id, creation_timestamp, last_updated_timestamp or metrics.<key>."
            )));
        }
        let dataset =
            o.get("dataset_name").and_then(Value::as_str).filter(|n| !n.is_empty()).map(|name| DatasetFilter {
                name: name.to_string(),
                digest: o.get("dataset_digest").and_then(Value::as_str).filter(|d| !d.is_empty()).map(str::to_string),
            });
        let ascending = o.get("ascending").and_then(Value::as_bool).unwrap_or(true);
        out.push(ModelOrder { field: field.to_string(), ascending, dataset });
    }
    Ok(out)
}
