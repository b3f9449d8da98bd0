//! The MLflow model registry and logged models, as a second door onto repro's registry.
//!
//! There is one registry: the hash-chained event log of `repro model`. An MLflow
//! `create_model_version` appends a `register` event that pins the files (blake3 and sha256)
//! of the MLflow source and the run that made them; aliases, tags, descriptions and deletes
//! are events too. Stage transitions go through repro's promotion, so a stage's policy gates
//! the MLflow client exactly as it gates `repro model promote`. Every version's files are
//! served under `mlflow-artifacts:/registry/NAME/V/`, from the pinned objects, so
//! `models:/NAME@alias` always loads the bytes that were registered.
//!
//! A replay's server (`Background::start_replay`) answers every registry write as if it
//! were done and appends nothing: the change is checked against the registry as this server
//! has answered it, held in memory (so the command's later reads see it), and listed for
//! the replay's report. Re-running training must not register, promote or alias anything.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::extract::{Path as UrlPath, State as AxState};
use axum::Json;
use repro_core::registry::{self, Artifact, ArtifactFile, Change, Event, Model, ModelVersion, Registry};
use repro_core::search;
use repro_store::logged::{LoggedModel, NewLoggedModel};
use repro_store::registry::NewEvent;
use serde_json::{json, Value};

use crate::api::{check_key, check_value, experiment_id, kv, max_results, page_offset, Reply, Req, MAX_TAG_VALUE};
use crate::{ApiError, Held, HeldChange, State};

type S = AxState<Arc<State>>;

/// The folder of the artifact proxy that serves registered versions' files.
pub(crate) const REGISTRY_PREFIX: &str = "registry";
/// Who MLflow-door events are by: the MLflow API names no person for registry calls, so the
/// token that asked names them (`NAME (token, MLflow API)`), or, on a store without tokens,
/// the client in general.
fn actor() -> String {
    match crate::auth::TOKEN_NAME.try_with(|n| n.clone()) {
        Ok(name) if !name.is_empty() => format!("{name} (token, MLflow API)"),
        _ => "mlflow-client (repro serve)".to_string(),
    }
}

// ---- rendering ----------------------------------------------------------------------------

/// MLflow's (deprecated) stage of a version: repro's `staging` and `prod` stages are MLflow's
/// Staging and Production; an archived version is Archived; anything else is "None".
fn mlflow_stage(v: &ModelVersion) -> &'static str {
    match (v.archived.is_some(), v.stage.as_deref()) {
        (true, _) => "Archived",
        (_, Some("staging")) => "Staging",
        (_, Some("prod" | "production")) => "Production",
        _ => "None",
    }
}

/// The source an MLflow client sees: what it registered, or, for a version `repro model
/// register` made, the proxy folder its files are served from.
fn source(v: &ModelVersion) -> String {
    if v.artifact.from_tracking() {
        v.artifact.output.clone()
    } else {
        download_uri_of(v)
    }
}

fn download_uri_of(v: &ModelVersion) -> String {
    format!("mlflow-artifacts:/{REGISTRY_PREFIX}/{}/{}", v.name, v.version)
}

fn version_json(v: &ModelVersion) -> Value {
    let mut out = json!({
        "name": v.name,
        "version": v.version.to_string(),
        "creation_timestamp": v.registered_at_ms,
        "last_updated_timestamp": v.updated_at_ms,
        "user_id": v.registered_by,
        "current_stage": mlflow_stage(v),
        "description": v.description.clone().unwrap_or_default(),
        "source": source(v),
        "run_id": v.run.as_str(),
        // repro copies nothing asynchronously: a version is complete when its event is written.
        "status": "READY",
        "tags": kv(&v.tags),
        "run_link": "",
        "aliases": v.aliases,
    });
    if let (Some(id), Some(m)) = (&v.model_id, out.as_object_mut()) {
        m.insert("model_id".into(), json!(id));
    }
    out
}

/// The newest live version in each MLflow stage (of `stages` only, when any are named).
fn latest_per_stage<'a>(m: &'a Model, stages: &[String]) -> BTreeMap<&'static str, &'a ModelVersion> {
    let mut latest = BTreeMap::new();
    for v in m.live() {
        let st = mlflow_stage(v);
        if stages.is_empty() || stages.iter().any(|w| w.eq_ignore_ascii_case(st)) {
            latest.insert(st, v);
        }
    }
    latest
}

fn model_json(m: &Model) -> Value {
    let latest = latest_per_stage(m, &[]);
    json!({
        "name": m.name,
        "creation_timestamp": m.created_at_ms,
        "last_updated_timestamp": m.updated_at_ms,
        "user_id": m.created_by,
        "description": m.description.clone().unwrap_or_default(),
        "latest_versions": latest.values().map(|v| version_json(v)).collect::<Vec<_>>(),
        "tags": kv(&m.tags),
        "aliases": m.aliases.iter().map(|(a, v)| json!({"alias": a, "version": v.to_string()})).collect::<Vec<_>>(),
    })
}

fn logged_model_json(m: &LoggedModel, registrations: &[(String, u32)]) -> Value {
    let mut info = json!({
        "model_id": m.model_id,
        "experiment_id": m.experiment_id.to_string(),
        "name": m.name,
        "creation_timestamp_ms": m.creation_ms,
        "last_updated_timestamp_ms": m.updated_ms,
        "artifact_uri": m.artifact_uri,
        "status": m.status,
        "tags": kv(&m.tags),
        "registrations": registrations
            .iter()
            .map(|(name, v)| json!({"name": name, "version": v.to_string()}))
            .collect::<Vec<_>>(),
    });
    if let Some(o) = info.as_object_mut() {
        for (k, v) in [
            ("creator_id", &m.creator_id),
            ("model_type", &m.model_type),
            ("source_run_id", &m.source_run_id),
            ("status_message", &m.status_message),
        ] {
            if let Some(v) = v {
                o.insert(k.into(), json!(v));
            }
        }
    }
    json!({"info": info, "data": {"params": kv(&m.params), "metrics": []}})
}

// ---- lookups --------------------------------------------------------------------------------

fn model_name(r: &Req) -> Result<String, ApiError> {
    let name = r.str("name")?;
    if name.is_empty() {
        return Err(ApiError::missing_param("name"));
    }
    Ok(name)
}

fn version_number(r: &Req) -> Result<u32, ApiError> {
    let text = r.str("version")?;
    text.trim().parse::<u32>().ok().filter(|v| *v > 0).ok_or_else(|| {
        ApiError::invalid(format!(
            "Parameter 'version' must be an integer, got '{}'.",
            text.chars().take(50).collect::<String>()
        ))
    })
}

fn no_model(name: &str) -> ApiError {
    ApiError::not_found(format!("Registered Model with name={name} not found"))
}

fn live_model<'a>(reg: &'a Registry, name: &str) -> Result<&'a Model, ApiError> {
    reg.models.get(name).filter(|m| m.deleted.is_none()).ok_or_else(|| no_model(name))
}

fn live_version<'a>(reg: &'a Registry, name: &str, version: u32) -> Result<&'a ModelVersion, ApiError> {
    live_model(reg, name)?
        .versions
        .get(&version)
        .filter(|v| v.deleted.is_none())
        .ok_or_else(|| ApiError::not_found(format!("Model Version (name={name}, version={version}) not found")))
}

/// Appends one registry event decided against the current registry, and returns the
/// registry as it is afterwards. A replay's server holds it instead (see [`hold`]).
async fn append(
    s: &Arc<State>,
    call: &'static str,
    decide: impl FnOnce(&Registry) -> Result<(u32, Change), ApiError> + Send + 'static,
    model: String,
) -> Result<Registry, ApiError> {
    let actor = actor();
    s.with_meta(move |m, st| {
        if let Some(held) = &st.held {
            return hold(m, held, call, &model, &actor, |reg| Ok(vec![decide(reg)?]));
        }
        m.models().append(repro_store::now_ms(), |reg| {
            let (version, change) = decide(reg)?;
            Ok::<_, ApiError>(NewEvent { model: model.clone(), version, actor, change })
        })?;
        Ok(m.models().registry()?)
    })
    .await
}

async fn registry(s: &Arc<State>) -> Result<Registry, ApiError> {
    s.with_meta(|m, st| match &st.held {
        Some(held) => Ok(Registry::fold(&held_events(m, &lock_held(held)?)?).0),
        None => Ok(m.models().registry()?),
    })
    .await
}

// ---- a replay's server: writes answered and held, never appended -----------------------------

fn lock_held(held: &Held) -> Result<std::sync::MutexGuard<'_, Vec<HeldChange>>, ApiError> {
    held.changes.lock().map_err(|_| ApiError::internal("the replay's held registry calls are unreadable"))
}

/// The stored log with the held changes chained after it (re-chained on every read: other
/// processes may append meanwhile).
fn held_events(m: &repro_store::Metadata, held: &[HeldChange]) -> Result<Vec<Event>, ApiError> {
    let mut events = m.models().events()?;
    for h in held {
        let e = Event::next(events.last(), h.at_ms, &h.actor, &h.model, h.version, &h.change);
        events.push(e);
    }
    Ok(events)
}

/// Decides changes against the registry as this server has answered it, refuses them as an
/// append would if they cannot apply, and holds them: listed for the replay's report and
/// folded into this server's later answers, never written.
fn hold(
    m: &repro_store::Metadata,
    held: &Held,
    call: &str,
    model: &str,
    actor: &str,
    decide: impl FnOnce(&Registry) -> Result<Vec<(u32, Change)>, ApiError>,
) -> Result<Registry, ApiError> {
    let mut changes = lock_held(held)?;
    let mut events = held_events(m, &changes)?;
    let last_seq = events.last().map_or(0, |e| e.seq);
    let decided = decide(&Registry::fold(&events).0)?;
    let at_ms = repro_store::now_ms();
    for (version, change) in &decided {
        let e = Event::next(events.last(), at_ms, actor, model, *version, change);
        events.push(e);
    }
    let (after, problems) = Registry::fold(&events);
    if let Some(p) = problems.into_iter().find(|p| p.seq > last_seq) {
        return Err(ApiError::invalid(p.message));
    }
    let mut calls =
        held.calls.lock().map_err(|_| ApiError::internal("the replay's held registry calls are unreadable"))?;
    for (version, change) in decided {
        calls.push(repro_exec::replay::HeldRegistryCall {
            call: call.to_string(),
            model: model.to_string(),
            version: (version > 0).then_some(version),
            kind: change.kind().to_string(),
            detail: held_detail(model, version, &change),
        });
        changes.push(HeldChange { at_ms, actor: actor.to_string(), model: model.to_string(), version, change });
    }
    Ok(after)
}

/// What a held change would have done, in a few words.
fn held_detail(model: &str, version: u32, change: &Change) -> String {
    let target = if version == 0 { model.to_string() } else { format!("{model}@{version}") };
    let short = |v: &str| -> String {
        if v.chars().count() > 120 {
            format!("{}…", v.chars().take(120).collect::<String>())
        } else {
            v.to_string()
        }
    };
    match change {
        Change::Register { artifact, .. } => format!("register {target} from {}", short(&artifact.output)),
        Change::Create { .. } => format!("create the registered model {model}"),
        Change::Describe { .. } => format!("describe {target}"),
        Change::Tag { key, value: Some(v) } => format!("tag {target}: {}={}", short(key), short(v)),
        Change::Tag { key, value: None } => format!("remove tag {} from {target}", short(key)),
        Change::Alias { alias } => format!("point alias {alias} at {target}"),
        Change::Unalias { alias } => format!("remove alias {alias} from {model}"),
        Change::Delete {} => format!("delete {target}"),
        Change::Promote { stage, .. } => format!("move {target} to {stage} (its policy was not evaluated)"),
        Change::Archive { .. } => format!("archive {target}"),
        other => format!("{} {target}", other.kind()),
    }
}

fn check_tags(tags: &[(String, String)]) -> Result<(), ApiError> {
    for (k, v) in tags {
        check_key("tag", k)?;
        check_value("Tag value", k, v, MAX_TAG_VALUE)?;
    }
    Ok(())
}

// ---- registered models --------------------------------------------------------------------

pub(crate) async fn create_model(AxState(s): S, r: Req) -> Reply {
    let name = model_name(&r)?;
    if !registry::valid_model_name(&name) {
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
                return Err(ApiError {
                    status: axum::http::StatusCode::BAD_REQUEST,
                    code: "RESOURCE_ALREADY_EXISTS",
                    message: format!("Registered Model (name={n}) already exists."),
                });
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
    let reg = registry(&s).await?;
    Ok(Json(json!({"registered_model": model_json(live_model(&reg, &name)?)})))
}

pub(crate) async fn rename_model(AxState(s): S, r: Req) -> Reply {
    let name = model_name(&r)?;
    live_model(&registry(&s).await?, &name)?;
    Err(ApiError::invalid(format!(
        "Registered models cannot be renamed here: '{name}' is part of its versions' hash-chained history and signed provenance. Register the versions under a new name instead."
    )))
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

/// A version holding a stage went through that stage's policy; deleting it would be a way
/// around the policy.
fn held_stage(v: &ModelVersion) -> ApiError {
    ApiError::invalid(format!(
        "{} holds the '{}' stage; archive it first (repro model archive {} --reason …)",
        v.reference(),
        v.stage.as_deref().unwrap_or_default(),
        v.reference()
    ))
}

/// `order_by` of the registry searches: `name`, `last_updated_timestamp`,
/// `creation_timestamp` or `version_number`, with `ASC`/`DESC`.
fn registry_order(items: &[String]) -> Result<Vec<(String, bool)>, ApiError> {
    items
        .iter()
        .map(|item| {
            let mut words = item.split_whitespace();
            let key = words.next().unwrap_or_default().trim_start_matches("attributes.").to_string();
            let ascending = match words.next().map(str::to_ascii_uppercase).as_deref() {
                None | Some("ASC") => true,
                Some("DESC") => false,
                Some(other) => {
                    return Err(ApiError::invalid(format!("Invalid order_by direction '{other}': use ASC or DESC.")))
                }
            };
            if !matches!(key.as_str(), "name" | "last_updated_timestamp" | "creation_timestamp" | "version_number")
                || words.next().is_some()
            {
                return Err(ApiError::invalid(format!(
                    "Invalid order_by clause '{item}': order by name, creation_timestamp, last_updated_timestamp or version_number, then ASC or DESC."
                )));
            }
            Ok((key, ascending))
        })
        .collect()
}

fn page(items: Vec<Value>, key: &str, offset: usize, limit: usize) -> Value {
    let more = offset + limit < items.len();
    let page: Vec<Value> = items.into_iter().skip(offset).take(limit).collect();
    let mut out = json!({ key: page });
    if more {
        out["next_page_token"] = json!(search::page_token(offset + limit));
    }
    out
}

pub(crate) async fn search_models(AxState(s): S, r: Req) -> Reply {
    let clauses = search::parse_registry_filter(&r.opt_str("filter")?.unwrap_or_default())
        .map_err(|e| ApiError::invalid(e.to_string()))?;
    let order = registry_order(&r.str_list("order_by")?)?;
    let limit = max_results(&r, 100)?;
    let offset = page_offset(&r)?;
    let reg = registry(&s).await?;
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
    let reg = registry(&s).await?;
    let m = live_model(&reg, &name)?;
    let latest = latest_per_stage(m, &stages);
    let versions: Vec<Value> = latest.values().map(|v| version_json(v)).collect();
    Ok(Json(json!({"model_versions": versions})))
}

/// Sets (`set`) or deletes a tag of the model, or of a version when `of_version`.
async fn tag(s: Arc<State>, r: Req, set: bool, of_version: bool) -> Reply {
    let name = model_name(&r)?;
    let version = if of_version { version_number(&r)? } else { 0 };
    let key = r.str("key")?;
    check_key("tag", &key)?;
    let value = if set { Some(r.str("value")?) } else { None };
    if let Some(v) = &value {
        check_value("Tag value", &key, v, MAX_TAG_VALUE)?;
    }
    let n = name.clone();
    let call = match (of_version, set) {
        (true, true) => "model-versions/set-tag",
        (true, false) => "model-versions/delete-tag",
        (false, true) => "registered-models/set-tag",
        (false, false) => "registered-models/delete-tag",
    };
    append(
        &s,
        call,
        move |reg| {
            if version == 0 {
                live_model(reg, &n)?;
            } else {
                live_version(reg, &n, version)?;
            }
            Ok((version, Change::Tag { key, value }))
        },
        name,
    )
    .await?;
    Ok(Json(json!({})))
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
    let reg = registry(&s).await?;
    let m = live_model(&reg, &name)?;
    // MLflow answers an unknown alias with a 400, not a 404.
    let v = m
        .aliases
        .get(&alias)
        .and_then(|v| m.versions.get(v))
        .ok_or_else(|| ApiError::invalid(format!("Registered model alias {alias} not found.")))?;
    Ok(Json(json!({"model_version": version_json(v)})))
}

// ---- model versions -------------------------------------------------------------------------

/// The artifact folder an MLflow `source` names, with the run and logged model behind it.
struct Source {
    path: String,
    run: Option<String>,
    model_id: Option<String>,
}

fn resolve_source(m: &repro_store::Metadata, source: &str, model_id: Option<&str>) -> Result<Source, ApiError> {
    let unsupported = || {
        ApiError::invalid(format!(
            "Unsupported model source '{}': repro registers files it holds, so the source must be an mlflow-artifacts:/, runs:/ or models:/m-… URI of this server (log the model with this tracking server first).",
            source.chars().take(200).collect::<String>()
        ))
    };
    let from_logged = |id: &str| -> Result<Source, ApiError> {
        let lm = m.tracking().get_logged_model(id)?;
        Ok(Source {
            path: lm.artifact_path().to_string(),
            run: lm.source_run_id.clone(),
            model_id: Some(id.to_string()),
        })
    };
    let clean = |p: &str| repro_store::tracking::clean_artifact_path(p).map_err(ApiError::invalid);
    if let Some(rest) = source.strip_prefix("models:/") {
        if rest.starts_with("m-") && !rest.contains('/') {
            return from_logged(rest);
        }
        return Err(unsupported());
    }
    if let Some(rest) = source.strip_prefix("runs:/") {
        let (run, path) = rest.split_once('/').unwrap_or((rest, ""));
        let tracked = m.tracking().get_tracked_run(run)?;
        let base = tracked.artifact_uri.trim_start_matches("mlflow-artifacts:").trim_start_matches('/').to_string();
        let path = if path.trim_matches('/').is_empty() { base } else { format!("{base}/{}", path.trim_matches('/')) };
        return Ok(Source { path: clean(&path)?, run: Some(run.to_string()), model_id: model_id.map(str::to_string) });
    }
    if let Some(rest) = source.strip_prefix("mlflow-artifacts:") {
        // `mlflow-artifacts://host:port/p` names a server; the path is what follows it.
        let path = match rest.strip_prefix("//") {
            Some(authority_and_path) => authority_and_path.split_once('/').map_or("", |(_, p)| p),
            None => rest.trim_start_matches('/'),
        };
        let path = clean(path)?;
        if let Some(id) = model_id {
            let mut s = from_logged(id)?;
            s.path = path;
            return Ok(s);
        }
        // `<exp>/<run>/artifacts/…` is a run's; `<exp>/models/<m-id>/artifacts/…` a logged model's.
        let parts: Vec<&str> = path.split('/').collect();
        if parts.len() >= 3 && parts[1] == "models" && parts[2].starts_with("m-") {
            let mut s = from_logged(parts[2])?;
            s.path = path;
            return Ok(s);
        }
        let run = (parts.len() >= 3 && parts[2] == "artifacts").then(|| parts[1].to_string());
        return Ok(Source { path, run, model_id: None });
    }
    Err(unsupported())
}

/// Pins the files under the source's folder: each object re-hashed on read (a damaged one
/// is an error), its sha256 computed, and a manifest of them stored as the snapshot.
fn pin_files(m: &repro_store::Metadata, st: &State, source: &str, path: &str) -> Result<Artifact, ApiError> {
    let mut listed = m.tracking().artifacts_under(path)?;
    if listed.is_empty() {
        if let Some((digest, size)) = m.tracking().get_artifact(path)? {
            listed.push((path.to_string(), digest, size));
        }
    }
    if listed.is_empty() {
        return Err(ApiError::invalid(format!(
            "No artifacts under '{path}': log the model's files (log_model / log_artifacts) before registering it."
        )));
    }
    let mut files = Vec::new();
    for (p, digest, size) in listed {
        let bytes = st.objects.read(&digest)?;
        files.push(ArtifactFile { path: p, size, blake3: digest, sha256: repro_core::provenance::hex_sha256(&bytes) });
    }
    let kind = if files.len() == 1 && files[0].path == path {
        repro_core::snapshot::SnapshotKind::File
    } else {
        repro_core::snapshot::SnapshotKind::Dir
    };
    let mut artifact = Artifact {
        path: path.to_string(),
        output: source.to_string(),
        snapshot: repro_core::Digest::of_bytes(b""),
        files,
    };
    let entries = artifact
        .files
        .iter()
        .map(|f| repro_core::record::FileEntry {
            path: artifact.relative(f).to_string(),
            size: f.size,
            mode: 0o644,
            digest: f.blake3.clone(),
        })
        .collect();
    let manifest = repro_core::snapshot::Manifest::new(kind, entries);
    // A replay's registration is held, not written: its manifest is named, not stored.
    artifact.snapshot = match &st.held {
        Some(_) => repro_core::Digest::of_bytes(&manifest.to_bytes()),
        None => st.objects.put_bytes(&manifest.to_bytes())?,
    };
    Ok(artifact)
}

pub(crate) async fn create_version(AxState(s): S, r: Req) -> Reply {
    let name = model_name(&r)?;
    let source = r.str("source")?;
    let run_param = r.opt_str("run_id")?.filter(|x| !x.is_empty());
    let model_id = r.opt_str("model_id")?.filter(|x| !x.is_empty());
    let tags = r.pairs("tags")?;
    check_tags(&tags)?;
    let description = r.opt_str("description")?.filter(|d| !d.is_empty());
    let n = name.clone();
    let by = actor();
    let reg = s
        .with_meta(move |m, st| {
            let found = resolve_source(m, &source, model_id.as_deref())?;
            let run_text = run_param.or(found.run).ok_or_else(|| {
                ApiError::invalid(
                    "repro pins every model version to the run that made it: pass run_id (or register a logged model that has a source run).",
                )
            })?;
            let run_id = repro_core::RunId::parse(&run_text)
                .map_err(|_| ApiError::not_found(format!("Run with id={run_text} not found")))?;
            let run = m.runs().get(&run_id)?;
            let artifact = pin_files(m, st, &source, &found.path)?;
            // A finished run's lineage is pinned now; a running one's when it finishes.
            let lineage = run.lineage.clone();
            // The registration, its tags and its description land together or not at all.
            let mut extra: Vec<Change> =
                tags.into_iter().map(|(key, value)| Change::Tag { key, value: Some(value) }).collect();
            extra.extend(description.map(|description| Change::Describe { description }));
            let decide = |reg: &Registry| {
                if !registry::valid_model_name(&n) {
                    return Err(ApiError::invalid(format!("Invalid model name '{n}'.")));
                }
                let version = reg.next_version(&n);
                let mut changes = vec![(version, Change::Register { run: run_id, lineage, artifact, model_id: found.model_id })];
                changes.extend(extra.into_iter().map(|c| (version, c)));
                Ok::<_, ApiError>(changes)
            };
            if let Some(held) = &st.held {
                let mut version = 0;
                let reg = hold(m, held, "model-versions/create", &n, &by, |reg| {
                    let changes = decide(reg)?;
                    version = changes.first().map_or(0, |(v, _)| *v);
                    Ok(changes)
                })?;
                return Ok((reg, version));
            }
            let written = m.models().append_all(repro_store::now_ms(), |reg| {
                let changes = decide(reg)?;
                Ok::<_, ApiError>(
                    changes
                        .into_iter()
                        .map(|(version, change)| NewEvent { model: n.clone(), version, actor: by.clone(), change })
                        .collect(),
                )
            })?;
            let v = written.first().map_or(0, |e| e.version);
            Ok((m.models().registry()?, v))
        })
        .await?;
    let (reg, version) = reg;
    Ok(Json(json!({"model_version": version_json(live_version(&reg, &name, version)?)})))
}

pub(crate) async fn get_version(AxState(s): S, r: Req) -> Reply {
    let name = model_name(&r)?;
    let version = version_number(&r)?;
    let reg = registry(&s).await?;
    Ok(Json(json!({"model_version": version_json(live_version(&reg, &name, version)?)})))
}

pub(crate) async fn update_version(AxState(s): S, r: Req) -> Reply {
    let name = model_name(&r)?;
    let version = version_number(&r)?;
    let description = r.opt_str("description")?.unwrap_or_default();
    let n = name.clone();
    let reg = append(
        &s,
        "model-versions/update",
        move |reg| {
            live_version(reg, &n, version)?;
            Ok((version, Change::Describe { description }))
        },
        name.clone(),
    )
    .await?;
    Ok(Json(json!({"model_version": version_json(live_version(&reg, &name, version)?)})))
}

pub(crate) async fn delete_version(AxState(s): S, r: Req) -> Reply {
    let name = model_name(&r)?;
    let version = version_number(&r)?;
    let n = name.clone();
    append(
        &s,
        "model-versions/delete",
        move |reg| {
            let v = live_version(reg, &n, version)?;
            if v.stage.is_some() {
                return Err(held_stage(v));
            }
            Ok((version, Change::Delete {}))
        },
        name,
    )
    .await?;
    Ok(Json(json!({})))
}

pub(crate) async fn set_version_tag(AxState(s): S, r: Req) -> Reply {
    tag(s, r, true, true).await
}

pub(crate) async fn delete_version_tag(AxState(s): S, r: Req) -> Reply {
    tag(s, r, false, true).await
}

pub(crate) async fn search_versions(AxState(s): S, r: Req) -> Reply {
    let clauses = search::parse_registry_filter(&r.opt_str("filter")?.unwrap_or_default())
        .map_err(|e| ApiError::invalid(e.to_string()))?;
    let order = registry_order(&r.str_list("order_by")?)?;
    let limit = max_results(&r, 10_000)?;
    let offset = page_offset(&r)?;
    let reg = registry(&s).await?;
    let mut versions: Vec<(&ModelVersion, String)> = reg
        .models
        .values()
        .filter(|m| m.deleted.is_none())
        .flat_map(|m| m.live())
        .map(|v| (v, source(v)))
        .filter(|(v, src)| {
            let view = search::RegistryView {
                name: &v.name,
                run_id: Some(v.run.as_str()),
                source_path: Some(src),
                version: Some(i64::from(v.version)),
                tags: &v.tags,
            };
            search::matches_registry(&clauses, &view)
        })
        .collect();
    // MLflow's default: newest version first.
    versions.sort_by(|(a, _), (b, _)| {
        for (key, asc) in &order {
            let o = match key.as_str() {
                "name" => a.name.cmp(&b.name),
                "last_updated_timestamp" => a.updated_at_ms.cmp(&b.updated_at_ms),
                "creation_timestamp" => a.registered_at_ms.cmp(&b.registered_at_ms),
                _ => a.version.cmp(&b.version),
            };
            let o = if *asc { o } else { o.reverse() };
            if o.is_ne() {
                return o;
            }
        }
        a.name.cmp(&b.name).then(b.version.cmp(&a.version))
    });
    Ok(Json(page(versions.into_iter().map(|(v, _)| version_json(v)).collect(), "model_versions", offset, limit)))
}

/// MLflow's (deprecated) stage transitions, through repro's own promotion: Staging and
/// Production are the `staging` and `prod` stages with their policies, Archived archives.
pub(crate) async fn transition_stage(AxState(s): S, r: Req) -> Reply {
    let name = model_name(&r)?;
    let version = version_number(&r)?;
    let stage = r.str("stage")?;
    let target = match stage.to_ascii_lowercase().as_str() {
        "staging" => Some("staging"),
        "production" => Some("prod"),
        "archived" => None,
        "none" => {
            return Err(ApiError::invalid(format!(
                "{name}@{version} cannot be moved back to no stage: repro's stages only move forward (promote another version, or archive this one)."
            )))
        }
        _ => {
            return Err(ApiError::invalid(format!(
                "Invalid Model Version stage: {stage}. Value must be one of None, Staging, Production, Archived."
            )))
        }
    };
    let reference = format!("{name}@{version}");
    live_version(&registry(&s).await?, &name, version)?;
    if s.held.is_some() {
        // A replay's stage moves are held like its other writes; the policy is not evaluated
        // (nothing would move), and the report says so.
        let n = name.clone();
        let reg = append(
            &s,
            "model-versions/transition-stage",
            move |reg| {
                let v = live_version(reg, &n, version)?;
                let change = match target {
                    None => Change::Archive { reason: "archived through the MLflow API".into() },
                    Some(stage) => Change::Promote {
                        stage: stage.to_string(),
                        from: v.stage.clone(),
                        replaced: live_model(reg, &n)?
                            .live()
                            .find(|x| x.version != version && x.stage.as_deref() == Some(stage))
                            .map(|x| x.version),
                        checked: Vec::new(),
                        approvers: Vec::new(),
                    },
                };
                Ok((version, change))
            },
            name.clone(),
        )
        .await?;
        return Ok(Json(json!({"model_version": version_json(live_version(&reg, &name, version)?)})));
    }
    let root = s.root().to_path_buf();
    let by = actor();
    let outcome = tokio::task::spawn_blocking(move || -> Result<(), ApiError> {
        let mut store = repro_store::Store::open(&root)?;
        match target {
            None => {
                repro_exec::registry::archive(&mut store, &reference, "archived through the MLflow API", &by)
                    .map_err(exec_error)?;
            }
            Some(stage) => {
                let progress = repro_store::fsck::NoProgress;
                let outcome = repro_exec::registry::promote(&mut store, &reference, stage, &by, &progress)
                    .map_err(exec_error)?;
                if let repro_exec::registry::PromoteOutcome::Refused { unmet, .. } = outcome {
                    let list: Vec<String> = unmet.iter().map(|u| format!("{}: {}", u.requirement, u.reason)).collect();
                    return Err(ApiError {
                        status: axum::http::StatusCode::BAD_REQUEST,
                        code: "INVALID_STATE",
                        message: format!(
                            "{reference} cannot enter {stage}: the stage's policy is not met ({}). `repro model promote {reference} --to {stage}` lists the fixes.",
                            list.join("; ")
                        ),
                    });
                }
            }
        }
        Ok(())
    })
    .await
    .map_err(|e| ApiError::internal(format!("the promotion stopped: {e}")))?;
    outcome?;
    let reg = registry(&s).await?;
    Ok(Json(json!({"model_version": version_json(live_version(&reg, &name, version)?)})))
}

fn exec_error(e: repro_exec::ExecError) -> ApiError {
    match e {
        repro_exec::ExecError::Usage(m) => ApiError::invalid(m),
        repro_exec::ExecError::Store(s) => s.into(),
        other => ApiError::internal(other.to_string()),
    }
}

pub(crate) async fn download_uri(AxState(s): S, r: Req) -> Reply {
    let name = model_name(&r)?;
    let version = version_number(&r)?;
    let reg = registry(&s).await?;
    Ok(Json(json!({"artifact_uri": download_uri_of(live_version(&reg, &name, version)?)})))
}

// ---- the registry's files through the artifact proxy -----------------------------------------

/// `registry/NAME/V[/sub]` → the version and the path inside it.
fn registry_path<'a>(reg: &'a Registry, path: &'a str) -> Result<(&'a ModelVersion, &'a str), ApiError> {
    let rest = path.strip_prefix(REGISTRY_PREFIX).and_then(|r| r.strip_prefix('/')).unwrap_or("");
    let mut parts = rest.splitn(3, '/');
    let (name, version, sub) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    let version: u32 = version.parse().map_err(|_| ApiError::not_found(format!("Artifact '{path}' does not exist")))?;
    Ok((live_version(reg, name, version)?, sub))
}

/// The listing of a folder inside a registered version (entries relative to it).
pub(crate) fn list_registered(reg: &Registry, path: &str) -> Result<Vec<Value>, ApiError> {
    let (v, sub) = registry_path(reg, path)?;
    let prefix = if sub.is_empty() { String::new() } else { format!("{sub}/") };
    let mut out: Vec<Value> = Vec::new();
    let mut dirs = std::collections::BTreeSet::new();
    for f in &v.artifact.files {
        let rel = v.artifact.relative(f);
        let Some(rest) = rel.strip_prefix(&prefix) else { continue };
        match rest.split_once('/') {
            Some((dir, _)) => {
                if dirs.insert(dir.to_string()) {
                    out.push(json!({"path": format!("{prefix}{dir}"), "is_dir": true}));
                }
            }
            None => out.push(json!({"path": format!("{prefix}{rest}"), "is_dir": false, "file_size": f.size})),
        }
    }
    Ok(out)
}

/// The object of one file of a registered version.
pub(crate) fn registered_file(reg: &Registry, path: &str) -> Result<repro_core::Digest, ApiError> {
    let (v, sub) = registry_path(reg, path)?;
    v.artifact
        .files
        .iter()
        .find(|f| v.artifact.relative(f) == sub)
        .map(|f| f.blake3.clone())
        .ok_or_else(|| ApiError::not_found(format!("Artifact '{path}' does not exist")))
}

// ---- logged models --------------------------------------------------------------------------

fn registrations(reg: &Registry, id: &str) -> Vec<(String, u32)> {
    reg.models
        .values()
        .flat_map(|m| m.live())
        .filter(|v| v.model_id.as_deref() == Some(id))
        .map(|v| (v.name.clone(), v.version))
        .collect()
}

async fn logged_reply(s: &Arc<State>, m: LoggedModel) -> Reply {
    let reg = registry(s).await?;
    Ok(Json(json!({"model": logged_model_json(&m, &registrations(&reg, &m.model_id))})))
}

pub(crate) async fn create_logged_model(AxState(s): S, r: Req) -> Reply {
    let experiment_id = experiment_id(&r.str("experiment_id")?)?;
    let params = r.pairs("params")?;
    let tags = r.pairs("tags")?;
    check_tags(&tags)?;
    let new = NewLoggedModel {
        experiment_id,
        name: r.opt_str("name")?.filter(|n| !n.is_empty()).unwrap_or_else(|| "model".into()),
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
    let found = s.with_meta(move |m, _| Ok(m.tracking().logged_models(&experiments)?)).await?;
    let reg = registry(&s).await?;
    let models: Vec<Value> = found
        .iter()
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

pub(crate) async fn log_outputs(AxState(s): S, r: Req) -> Reply {
    let run = r.run_id()?;
    let mut models = Vec::new();
    for item in r.list("models")? {
        let id =
            item.get("model_id").and_then(Value::as_str).ok_or_else(|| ApiError::missing_param("models.model_id"))?;
        let step = match item.get("step") {
            None | Some(Value::Null) => 0,
            Some(Value::Number(n)) => n.as_i64().unwrap_or(0),
            Some(Value::String(t)) => t.parse().map_err(|_| ApiError::invalid("Invalid value for 'models.step'."))?,
            Some(_) => return Err(ApiError::invalid("Invalid value for 'models.step'.")),
        };
        models.push((id.to_string(), step));
    }
    s.with_meta(move |m, _| Ok(m.tracking().log_run_outputs(&run, &models)?)).await?;
    Ok(Json(json!({})))
}
