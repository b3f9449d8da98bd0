//! Experiments: create, get, search, update, delete and restore, and their tags.

use axum::extract::State as AxState;
use axum::http::Method;
use axum::Json;
use repro_core::search;
use serde_json::{json, Value};

use super::registry::is_registry_path;
use super::{kv, ok, view_stages, Reply, MLFLOW_PREFIXES, S};
use crate::request::{check_key, check_value, experiment_id, max_results, page_offset, Req};
use crate::routes::{Role, Routes};
use crate::ApiError;

pub(crate) fn routes() -> Routes {
    use Method as M;
    use Role::{Read, Write};
    let mut r = Routes::new();
    for p in MLFLOW_PREFIXES {
        let at = |rest: &str| format!("{p}{rest}");
        r = r
            .api(M::POST, &at("/experiments/create"), Write, create_experiment)
            .api(M::GET, &at("/experiments/get"), Read, get_experiment)
            .api(M::GET, &at("/experiments/get-by-name"), Read, get_experiment_by_name)
            .api(M::GET, &at("/experiments/search"), Read, search_experiments)
            // A read the client POSTs (the filter may be long).
            .api(M::POST, &at("/experiments/search"), Read, search_experiments)
            .api(M::GET, &at("/experiments/list"), Read, search_experiments)
            .api(M::POST, &at("/experiments/update"), Write, update_experiment)
            .api(M::POST, &at("/experiments/delete"), Write, delete_experiment)
            .api(M::POST, &at("/experiments/restore"), Write, restore_experiment)
            .api(M::POST, &at("/experiments/set-experiment-tag"), Write, set_experiment_tag)
            .api(M::POST, &at("/experiments/delete-experiment-tag"), Write, delete_experiment_tag)
            // A read MLflow's web UI POSTs: the datasets an experiment's runs used.
            .api(M::POST, &at("/experiments/search-datasets"), Read, search_datasets);
    }
    r
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

pub(crate) async fn create_experiment(AxState(s): S, Req(r): Req) -> Reply {
    let r = Req(r);
    let name = r.str("name")?;
    if name.trim().is_empty() || name.len() > 500 {
        return Err(ApiError::invalid("Invalid experiment name: it must be 1 to 500 characters."));
    }
    let location = r.opt_str("artifact_location")?.filter(|l| !l.is_empty());
    // Every field's type is checked before any value is judged, as MLflow does.
    let tags = r.pairs("tags")?;
    if let Some(l) = &location {
        check_artifact_location(l)?;
    }
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
    let path = repro_store::tracking::clean_artifact_path(&crate::request::percent_decode(rest, false))
        .map_err(|_| refuse())?;
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

pub(crate) async fn search_experiments(AxState(s): S, Req(r): Req) -> Reply {
    let r = Req(r);
    let stages = view_stages(r.opt_str("view_type")?.as_deref())?;
    let limit = max_results(&r, 1000)?;
    let offset = page_offset(&r)?;
    let filter = r.opt_str("filter")?.unwrap_or_default();
    let order = experiment_order(&r.str_list("order_by")?)?;
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
    found.sort_by(|a, b| {
        order.iter().fold(std::cmp::Ordering::Equal, |done, (key, ascending)| {
            done.then_with(|| {
                let o = match key {
                    ExperimentKey::Name => a.name.as_bytes().cmp(b.name.as_bytes()),
                    ExperimentKey::Id => a.experiment_id.cmp(&b.experiment_id),
                    ExperimentKey::Created => a.creation_time.cmp(&b.creation_time),
                    ExperimentKey::Updated => a.last_update_time.cmp(&b.last_update_time),
                };
                if *ascending {
                    o
                } else {
                    o.reverse()
                }
            })
        })
    });
    let page: Vec<Value> = found.iter().skip(offset).take(limit).map(experiment_json).collect();
    let mut out = json!({"experiments": page});
    if offset + limit < found.len() {
        out["next_page_token"] = json!(search::page_token(offset + limit));
    }
    Ok(Json(out))
}

#[derive(Clone, Copy, PartialEq)]
enum ExperimentKey {
    Name,
    Id,
    Created,
    Updated,
}

/// `order_by` of experiments/search as MLflow's store reads it: `name`, `experiment_id`,
/// `creation_time` or `last_update_time` (optionally `attribute.`), then ASC or DESC. With no
/// time key, newest first; `experiment_id` ascending always breaks ties, so pages are stable.
/// Names compare byte by byte ("ab" > "a" > "Default" > "Abc"), as MLflow's SQL does.
fn experiment_order(clauses: &[String]) -> Result<Vec<(ExperimentKey, bool)>, ApiError> {
    let mut order = Vec::new();
    for clause in clauses {
        let words: Vec<&str> = clause.split_whitespace().collect();
        let (field, ascending) = match words.as_slice() {
            [f] => (*f, true),
            [f, dir] if dir.eq_ignore_ascii_case("asc") => (*f, true),
            [f, dir] if dir.eq_ignore_ascii_case("desc") => (*f, false),
            _ => return Err(ApiError::invalid(format!("Invalid order_by clause '{clause}': use FIELD [ASC|DESC]."))),
        };
        let key = match field.strip_prefix("attribute.").unwrap_or(field) {
            "name" => ExperimentKey::Name,
            "experiment_id" => ExperimentKey::Id,
            "creation_time" => ExperimentKey::Created,
            "last_update_time" => ExperimentKey::Updated,
            other => {
                return Err(ApiError::invalid(format!(
                    "Invalid order_by key '{other}': use name, experiment_id, creation_time or last_update_time."
                )))
            }
        };
        order.push((key, ascending));
    }
    if !order.iter().any(|(k, _)| matches!(k, ExperimentKey::Created | ExperimentKey::Updated)) {
        order.push((ExperimentKey::Created, false));
    }
    if !order.iter().any(|(k, _)| *k == ExperimentKey::Id) {
        order.push((ExperimentKey::Id, true));
    }
    Ok(order)
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

/// Experiments one `search-datasets` may name, and the summaries it returns (MLflow's bounds).
const MAX_DATASET_EXPERIMENTS: usize = 20;
const MAX_DATASET_SUMMARIES: usize = 1000;

/// `POST …/experiments/search-datasets {"experiment_ids": […]}`: each dataset the
/// experiments' runs logged as an input, once per name, digest and context.
pub(crate) async fn search_datasets(AxState(s): S, r: Req) -> Reply {
    let ids = r.str_list("experiment_ids")?;
    if ids.is_empty() {
        return Err(ApiError::invalid("SearchDatasets request must specify at least one experiment_id."));
    }
    if ids.len() > MAX_DATASET_EXPERIMENTS {
        return Err(ApiError::invalid(format!(
            "SearchDatasets request cannot specify more than {MAX_DATASET_EXPERIMENTS} experiment_ids. Received {} experiment_ids.",
            ids.len()
        )));
    }
    let ids = ids.iter().map(|i| experiment_id(i)).collect::<Result<Vec<_>, _>>()?;
    let found = s.with_meta(move |m, _| Ok(m.tracking().dataset_summaries(&ids, MAX_DATASET_SUMMARIES)?)).await?;
    let summaries: Vec<Value> = found
        .iter()
        .map(|d| {
            let mut v = json!({"experiment_id": d.experiment_id.to_string(), "name": d.name, "digest": d.digest});
            if let Some(c) = &d.context {
                v["context"] = json!(c);
            }
            v
        })
        .collect();
    Ok(Json(json!({ "dataset_summaries": summaries })))
}
