//! Registered models: create, get, rename, update, delete, search, latest versions, tags
//! and aliases.

use axum::extract::State as AxState;
use axum::http::Method;
use axum::Json;
use repro_core::registry::{Change, Model};
use repro_core::search;
use serde_json::{json, Value};

use super::registry::{
    append, check_tags, current_registry, held_stage, latest_per_stage, live_model, live_version, model_json,
    model_name, page, registry_order, tag, version_json, version_number,
};
use super::{Reply, MLFLOW_PREFIXES, S};
use crate::request::{max_results, page_offset, Req};
use crate::routes::{Role, Routes};
use crate::ApiError;

pub(crate) fn routes() -> Routes {
    use Method as M;
    use Role::{Read, Write};
    let mut r = Routes::new();
    for p in MLFLOW_PREFIXES {
        let at = |rest: &str| format!("{p}{rest}");
        r = r
            .api(M::POST, &at("/registered-models/create"), Write, create_model)
            .api(M::GET, &at("/registered-models/get"), Read, get_model)
            .api(M::POST, &at("/registered-models/rename"), Write, rename_model)
            .api(M::PATCH, &at("/registered-models/update"), Write, update_model)
            .api(M::DELETE, &at("/registered-models/delete"), Write, delete_model)
            .api(M::GET, &at("/registered-models/search"), Read, search_models)
            .api(M::GET, &at("/registered-models/get-latest-versions"), Read, latest_versions)
            .api(M::POST, &at("/registered-models/get-latest-versions"), Read, latest_versions)
            .api(M::POST, &at("/registered-models/set-tag"), Write, set_model_tag)
            .api(M::DELETE, &at("/registered-models/delete-tag"), Write, delete_model_tag)
            .api(M::GET, &at("/registered-models/alias"), Read, get_by_alias)
            .api(M::POST, &at("/registered-models/alias"), Write, set_alias)
            .api(M::DELETE, &at("/registered-models/alias"), Write, delete_alias);
    }
    r
}

pub(crate) async fn create_model(AxState(s): S, r: Req) -> Reply {
    let name = model_name(&r)?;
    if !repro_core::registry::valid_model_name(&name) {
        return Err(ApiError::invalid(format!(
            "Invalid model name '{}': repro model names use letters, digits, '-', '_' and '.', start with a letter or digit, and are at most 100 characters.",
            name.chars().take(120).collect::<String>()
        )));
    }
    let tags = r.pairs("tags")?;
    check_tags(&tags)?;
    let description = r.opt_str("description")?.filter(|d| !d.is_empty());
    let n = name.clone();
    let reg = append(
        &s,
        "registered-models/create",
        move |reg| {
            if reg.models.get(&n).is_some_and(|m| m.deleted.is_none()) {
                return Err(ApiError::already_exists(format!("Registered Model (name={n}) already exists.")));
            }
            Ok((0, Change::Create { description, tags: tags.into_iter().collect() }))
        },
        name.clone(),
    )
    .await?;
    Ok(Json(json!({"registered_model": model_json(live_model(&reg, &name)?)})))
}

pub(crate) async fn get_model(AxState(s): S, r: Req) -> Reply {
    let name = model_name(&r)?;
    let reg = current_registry(&s).await?;
    Ok(Json(json!({"registered_model": model_json(live_model(&reg, &name)?)})))
}

/// A rename is an event in the registry's chain: the versions and their signed history go
/// with the model. Through MLflow the old name is gone, as MLflow answers; repro's own
/// commands still resolve it (with a note).
pub(crate) async fn rename_model(AxState(s): S, r: Req) -> Reply {
    let name = model_name(&r)?;
    let new_name = r.str("new_name")?;
    if new_name.is_empty() {
        return Err(ApiError::missing_param("new_name"));
    }
    if !repro_core::registry::valid_model_name(&new_name) {
        return Err(ApiError::invalid(format!(
            "Invalid model name '{}': repro model names use letters, digits, '-', '_' and '.', start with a letter or digit, and are at most 100 characters.",
            new_name.chars().take(120).collect::<String>()
        )));
    }
    let (n, to) = (name.clone(), new_name.clone());
    let reg = append(
        &s,
        "registered-models/rename",
        move |reg| {
            live_model(reg, &n)?;
            if reg.models.contains_key(&to) {
                return Err(ApiError::already_exists(format!("Registered Model (name={to}) already exists.")));
            }
            Ok((0, Change::Rename { to }))
        },
        name,
    )
    .await?;
    Ok(Json(json!({"registered_model": model_json(live_model(&reg, &new_name)?)})))
}

pub(crate) async fn update_model(AxState(s): S, r: Req) -> Reply {
    let name = model_name(&r)?;
    let description = r.opt_str("description")?.unwrap_or_default();
    let n = name.clone();
    let reg = append(
        &s,
        "registered-models/update",
        move |reg| {
            live_model(reg, &n)?;
            Ok((0, Change::Describe { description }))
        },
        name.clone(),
    )
    .await?;
    Ok(Json(json!({"registered_model": model_json(live_model(&reg, &name)?)})))
}

pub(crate) async fn delete_model(AxState(s): S, r: Req) -> Reply {
    let name = model_name(&r)?;
    let n = name.clone();
    append(
        &s,
        "registered-models/delete",
        move |reg| {
            let m = live_model(reg, &n)?;
            if let Some(v) = m.live().find(|v| v.stage.is_some()) {
                return Err(held_stage(v));
            }
            Ok((0, Change::Delete {}))
        },
        name,
    )
    .await?;
    Ok(Json(json!({})))
}

pub(crate) async fn search_models(AxState(s): S, r: Req) -> Reply {
    let clauses = search::parse_registry_filter(&r.opt_str("filter")?.unwrap_or_default())
        .map_err(|e| ApiError::invalid(e.to_string()))?;
    let order = registry_order(&r.str_list("order_by")?)?;
    let limit = max_results(&r, 100)?;
    let offset = page_offset(&r)?;
    let reg = current_registry(&s).await?;
    let mut models: Vec<&Model> = reg
        .models
        .values()
        .filter(|m| m.deleted.is_none())
        .filter(|m| {
            let view =
                search::RegistryView { name: &m.name, run_id: None, source_path: None, version: None, tags: &m.tags };
            search::matches_registry(&clauses, &view)
        })
        .collect();
    models.sort_by(|a, b| {
        for (key, asc) in &order {
            let o = match key.as_str() {
                "last_updated_timestamp" => a.updated_at_ms.cmp(&b.updated_at_ms),
                "creation_timestamp" => a.created_at_ms.cmp(&b.created_at_ms),
                _ => a.name.cmp(&b.name),
            };
            let o = if *asc { o } else { o.reverse() };
            if o.is_ne() {
                return o;
            }
        }
        a.name.cmp(&b.name)
    });
    Ok(Json(page(models.into_iter().map(model_json).collect(), "registered_models", offset, limit)))
}

pub(crate) async fn latest_versions(AxState(s): S, r: Req) -> Reply {
    let name = model_name(&r)?;
    let stages = r.str_list("stages")?;
    for st in &stages {
        if !["None", "Staging", "Production", "Archived"].iter().any(|k| k.eq_ignore_ascii_case(st)) {
            return Err(ApiError::invalid(format!(
                "Invalid Model Version stage: {st}. Value must be one of None, Staging, Production, Archived."
            )));
        }
    }
    let reg = current_registry(&s).await?;
    let m = live_model(&reg, &name)?;
    let latest = latest_per_stage(m, &stages);
    let versions: Vec<Value> = latest.values().map(|v| version_json(v)).collect();
    Ok(Json(json!({"model_versions": versions})))
}

pub(crate) async fn set_model_tag(AxState(s): S, r: Req) -> Reply {
    tag(s, r, true, false).await
}

pub(crate) async fn delete_model_tag(AxState(s): S, r: Req) -> Reply {
    tag(s, r, false, false).await
}

/// MLflow's alias rules, plus one of repro's: `NAME@X` means the version in stage X before
/// alias X, so an alias may not be a stage's name.
fn check_alias(alias: &str, stages: &[String]) -> Result<(), ApiError> {
    let reserved_version = alias.len() > 1
        && alias.to_ascii_lowercase().starts_with('v')
        && alias[1..].bytes().all(|b| b.is_ascii_digit());
    if alias.is_empty()
        || alias.len() > 255
        || !alias.chars().all(|c| c.is_alphanumeric() || c == '_' || c == '-')
        || alias.eq_ignore_ascii_case("latest")
        || reserved_version
    {
        return Err(ApiError::invalid(format!(
            "Invalid alias name '{}': aliases are letters, digits, '_' and '-', at most 255 characters; 'latest' and 'v<number>' are reserved.",
            alias.chars().take(100).collect::<String>()
        )));
    }
    if stages.iter().any(|s| s == alias) {
        return Err(ApiError::invalid(format!(
            "'{alias}' is a stage of this registry (repro.toml [stages.{alias}]); promote with `repro model promote NAME@V --to {alias}` instead of aliasing"
        )));
    }
    Ok(())
}

pub(crate) async fn set_alias(AxState(s): S, r: Req) -> Reply {
    let name = model_name(&r)?;
    let alias = r.str("alias")?;
    let version = version_number(&r)?;
    let stages = s.stages()?;
    check_alias(&alias, &stages)?;
    let n = name.clone();
    append(
        &s,
        "registered-models/alias",
        move |reg| {
            live_version(reg, &n, version)?;
            Ok((version, Change::Alias { alias }))
        },
        name,
    )
    .await?;
    Ok(Json(json!({})))
}

pub(crate) async fn delete_alias(AxState(s): S, r: Req) -> Reply {
    let name = model_name(&r)?;
    let alias = r.str("alias")?;
    let n = name.clone();
    append(
        &s,
        "registered-models/alias",
        move |reg| {
            if !live_model(reg, &n)?.aliases.contains_key(&alias) {
                return Err(ApiError::invalid(format!("Registered model alias {alias} not found.")));
            }
            Ok((0, Change::Unalias { alias }))
        },
        name,
    )
    .await?;
    Ok(Json(json!({})))
}

pub(crate) async fn get_by_alias(AxState(s): S, r: Req) -> Reply {
    let name = model_name(&r)?;
    let alias = r.str("alias")?;
    let reg = current_registry(&s).await?;
    let m = live_model(&reg, &name)?;
    // MLflow answers an unknown alias with a 400, not a 404.
    let v = m
        .aliases
        .get(&alias)
        .and_then(|v| m.versions.get(v))
        .ok_or_else(|| ApiError::invalid(format!("Registered model alias {alias} not found.")))?;
    Ok(Json(json!({"model_version": version_json(v)})))
}
