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
//!
//! What the registered-model, model-version and logged-model modules share: rendering,
//! lookups, the one append path and a replay's held writes.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::Json;
use repro_core::registry::{Change, Event, Model, ModelVersion, Registry};
use repro_core::search;
use repro_store::logged::LoggedModel;
use repro_store::registry::NewEvent;
use serde_json::{json, Value};

use super::{kv, Reply};
use crate::request::{check_key, check_value, Req, MAX_TAG_VALUE};
use crate::{ApiError, Held, HeldChange, State};

/// The folder of the artifact proxy that serves registered versions' files.
pub(crate) const REGISTRY_PREFIX: &str = "registry";
/// Who MLflow-door events are by: the token that asked (`repro_core::actor`).
pub(crate) fn actor() -> String {
    let name = crate::auth::TOKEN_NAME.try_with(|n| n.clone()).ok();
    repro_core::actor::mlflow_client(name.as_deref())
}

// ---- rendering ----------------------------------------------------------------------------

/// MLflow's (deprecated) stage of a version: repro's `staging` and `prod` stages are MLflow's
/// Staging and Production; an archived version is Archived; anything else is "None".
pub(crate) fn mlflow_stage(v: &ModelVersion) -> &'static str {
    match (v.archived.is_some(), v.stage.as_deref()) {
        (true, _) => "Archived",
        (_, Some("staging")) => "Staging",
        (_, Some("prod" | "production")) => "Production",
        _ => "None",
    }
}

/// The source an MLflow client sees: what it registered, or, for a version `repro model
/// register` made, the proxy folder its files are served from.
/// An external version's source is the URI it was registered with, as given.
pub(crate) fn source(v: &ModelVersion) -> String {
    match (&v.external, &v.artifact) {
        (Some(x), _) => x.source.clone(),
        (None, Some(a)) if a.from_tracking() => a.output.clone(),
        _ => download_uri_of(v),
    }
}

/// Where a client downloads the files: the proxy folder of the version's pinned files, or,
/// for an external version repro holds nothing of, its own source.
pub(crate) fn download_uri_of(v: &ModelVersion) -> String {
    match (&v.external, &v.artifact) {
        (Some(x), None) => x.source.clone(),
        _ => format!("mlflow-artifacts:/{REGISTRY_PREFIX}/{}/{}", v.name, v.version),
    }
}

pub(crate) fn version_json(v: &ModelVersion) -> Value {
    let mut out = json!({
        "name": v.name,
        "version": v.version.to_string(),
        "creation_timestamp": v.registered_at_ms,
        "last_updated_timestamp": v.updated_at_ms,
        "user_id": v.registered_by,
        "current_stage": mlflow_stage(v),
        "description": v.description.clone().unwrap_or_default(),
        "source": source(v),
        "run_id": v.run_text().unwrap_or_default(),
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
pub(crate) fn latest_per_stage<'a>(m: &'a Model, stages: &[String]) -> BTreeMap<&'static str, &'a ModelVersion> {
    let mut latest = BTreeMap::new();
    for v in m.live() {
        let st = mlflow_stage(v);
        if stages.is_empty() || stages.iter().any(|w| w.eq_ignore_ascii_case(st)) {
            latest.insert(st, v);
        }
    }
    latest
}

pub(crate) fn model_json(m: &Model) -> Value {
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

pub(crate) fn logged_model_json(m: &LoggedModel, registrations: &[(String, u32)]) -> Value {
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
    let metrics: Vec<Value> = m
        .metrics
        .iter()
        .map(|p| {
            let mut point = json!({
                "key": p.key, "value": super::Num(p.value), "timestamp": p.timestamp, "step": p.step,
                "run_id": p.run_id, "model_id": m.model_id,
            });
            if let Some(o) = point.as_object_mut() {
                for (k, v) in [("dataset_name", &p.dataset_name), ("dataset_digest", &p.dataset_digest)] {
                    if !v.is_empty() {
                        o.insert(k.into(), json!(v));
                    }
                }
            }
            point
        })
        .collect();
    json!({"info": info, "data": {"params": kv(&m.params), "metrics": metrics}})
}

// ---- lookups --------------------------------------------------------------------------------

pub(crate) fn model_name(r: &Req) -> Result<String, ApiError> {
    let name = r.str("name")?;
    if name.is_empty() {
        return Err(ApiError::missing_param("name"));
    }
    Ok(name)
}

pub(crate) fn version_number(r: &Req) -> Result<u32, ApiError> {
    let text = r.str("version")?;
    text.trim().parse::<u32>().ok().filter(|v| *v > 0).ok_or_else(|| {
        ApiError::invalid(format!(
            "Parameter 'version' must be an integer, got '{}'.",
            text.chars().take(50).collect::<String>()
        ))
    })
}

pub(crate) fn no_model(name: &str) -> ApiError {
    ApiError::not_found(format!("Registered Model with name={name} not found"))
}

pub(crate) fn live_model<'a>(reg: &'a Registry, name: &str) -> Result<&'a Model, ApiError> {
    reg.models.get(name).filter(|m| m.deleted.is_none()).ok_or_else(|| no_model(name))
}

pub(crate) fn live_version<'a>(reg: &'a Registry, name: &str, version: u32) -> Result<&'a ModelVersion, ApiError> {
    live_model(reg, name)?
        .versions
        .get(&version)
        .filter(|v| v.deleted.is_none())
        .ok_or_else(|| ApiError::not_found(format!("Model Version (name={name}, version={version}) not found")))
}

/// Appends one registry event decided against the current registry, and returns the
/// registry as it is afterwards. A replay's server holds it instead (see [`hold`]).
pub(crate) async fn append(
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

pub(crate) async fn current_registry(s: &Arc<State>) -> Result<Registry, ApiError> {
    s.with_meta(|m, st| match &st.held {
        Some(held) => Ok(Registry::fold(&held_events(m, &lock_held(held)?)?).0),
        None => Ok(m.models().registry()?),
    })
    .await
}

// ---- a replay's server: writes answered and held, never appended -----------------------------

pub(crate) fn lock_held(held: &Held) -> Result<std::sync::MutexGuard<'_, Vec<HeldChange>>, ApiError> {
    held.changes.lock().map_err(|_| ApiError::internal("the replay's held registry calls are unreadable"))
}

/// The stored log with the held changes chained after it (re-chained on every read: other
/// processes may append meanwhile).
pub(crate) fn held_events(m: &repro_store::Metadata, held: &[HeldChange]) -> Result<Vec<Event>, ApiError> {
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
pub(crate) fn hold(
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
pub(crate) fn held_detail(model: &str, version: u32, change: &Change) -> String {
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
        Change::External { source, .. } => format!("register {target} from the external source {}", short(source)),
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

pub(crate) fn check_tags(tags: &[(String, String)]) -> Result<(), ApiError> {
    for (k, v) in tags {
        check_key("tag", k)?;
        check_value("Tag value", k, v, MAX_TAG_VALUE)?;
    }
    Ok(())
}

/// A version holding a stage went through that stage's policy; deleting it would be a way
/// around the policy.
pub(crate) fn held_stage(v: &ModelVersion) -> ApiError {
    ApiError::invalid(format!(
        "{} holds the '{}' stage; archive it first (repro model archive {} --reason …)",
        v.reference(),
        v.stage.as_deref().unwrap_or_default(),
        v.reference()
    ))
}

/// `order_by` of the registry searches: `name`, `last_updated_timestamp`,
/// `creation_timestamp` or `version_number`, with `ASC`/`DESC`.
pub(crate) fn registry_order(items: &[String]) -> Result<Vec<(String, bool)>, ApiError> {
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

pub(crate) fn page(items: Vec<Value>, key: &str, offset: usize, limit: usize) -> Value {
    let more = offset + limit < items.len();
    let page: Vec<Value> = items.into_iter().skip(offset).take(limit).collect();
    let mut out = json!({ key: page });
    if more {
        out["next_page_token"] = json!(search::page_token(offset + limit));
    }
    out
}

/// Sets (`set`) or deletes a tag of the model, or of a version when `of_version`.
pub(crate) async fn tag(s: Arc<State>, r: Req, set: bool, of_version: bool) -> Reply {
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

// ---- the registry's files through the artifact proxy -----------------------------------------

/// `registry/NAME/V[/sub]` → the version and the path inside it.
pub(crate) fn registry_path<'a>(reg: &'a Registry, path: &'a str) -> Result<(&'a ModelVersion, &'a str), ApiError> {
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
    let Some(artifact) = &v.artifact else { return Ok(out) };
    for f in &artifact.files {
        let rel = artifact.relative(f);
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
        .iter()
        .flat_map(|a| a.files.iter().map(move |f| (a, f)))
        .find(|(a, f)| a.relative(f) == sub)
        .map(|(_, f)| f)
        .map(|f| f.blake3.clone())
        .ok_or_else(|| ApiError::not_found(format!("Artifact '{path}' does not exist")))
}

// ---- logged models --------------------------------------------------------------------------

pub(crate) fn registrations(reg: &Registry, id: &str) -> Vec<(String, u32)> {
    reg.models
        .values()
        .flat_map(|m| m.live())
        .filter(|v| v.model_id.as_deref() == Some(id))
        .map(|v| (v.name.clone(), v.version))
        .collect()
}

/// Registered versions' files live under `registry/` (read-only: they are pinned).
pub(crate) fn is_registry_path(path: &str) -> bool {
    path.split('/').next() == Some(REGISTRY_PREFIX)
}
