//! Model versions: create (which pins the files), get, update, delete, search, tags, the
//! download URI, and stage transitions through repro's promotion.

use axum::extract::State as AxState;
use axum::http::Method;
use axum::Json;
use repro_core::registry::{Artifact, ArtifactFile, Change, ModelVersion, Registry};
use repro_core::search;
use repro_store::registry::NewEvent;
use serde_json::json;

use super::registry::{
    actor, append, check_tags, current_registry, download_uri_of, held_stage, hold, live_model, live_version,
    model_name, page, registry_order, source, tag, version_json, version_number,
};
use super::{Reply, MLFLOW_PREFIXES, S};
use crate::request::{max_results, page_offset, Req};
use crate::routes::{Role, Routes};
use crate::{ApiError, State};

pub(crate) fn routes() -> Routes {
    use Method as M;
    use Role::{Admin, Read, Write};
    let mut r = Routes::new();
    for p in MLFLOW_PREFIXES {
        let at = |rest: &str| format!("{p}{rest}");
        r = r
            .api(M::POST, &at("/model-versions/create"), Write, create_version)
            .api(M::GET, &at("/model-versions/get"), Read, get_version)
            .api(M::PATCH, &at("/model-versions/update"), Write, update_version)
            .api(M::DELETE, &at("/model-versions/delete"), Write, delete_version)
            .api(M::GET, &at("/model-versions/search"), Read, search_versions)
            // Staging, Production and Archived change what a stage serves: a release, so an
            // admin's, as `repro model promote` through the native API.
            .api(M::POST, &at("/model-versions/transition-stage"), Admin, transition_stage)
            .api(M::GET, &at("/model-versions/get-download-uri"), Read, download_uri)
            .api(M::POST, &at("/model-versions/set-tag"), Write, set_version_tag)
            .api(M::DELETE, &at("/model-versions/delete-tag"), Write, delete_version_tag);
    }
    r
}

/// The artifact folder an MLflow `source` names, with the run and logged model behind it.
struct Source {
    path: String,
    run: Option<String>,
    model_id: Option<String>,
}

/// The longest source recorded for an external version: a URI, not a document.
const MAX_SOURCE: usize = 4096;

/// What a `source` names: files this server holds, or a place outside it (`None`: an
/// external version — another bucket, a plain path, `runs:/` of a run this store never saw).
fn resolve_source(m: &repro_store::Metadata, source: &str, model_id: Option<&str>) -> Result<Option<Source>, ApiError> {
    let external = || {
        if source.len() > MAX_SOURCE || source.chars().any(char::is_control) || source.trim().is_empty() {
            return Err(ApiError::invalid(format!(
                "Invalid model version source '{}': a source is a URI or a path of at most {MAX_SOURCE} characters, without control characters.",
                source.chars().take(200).filter(|c| !c.is_control()).collect::<String>()
            )));
        }
        Ok(None)
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
            return from_logged(rest).map(Some);
        }
        return external();
    }
    if let Some(rest) = source.strip_prefix("runs:/") {
        let (run, path) = rest.split_once('/').unwrap_or((rest, ""));
        let tracked = match m.tracking().get_tracked_run(run) {
            Ok(t) => t,
            Err(repro_store::StoreError::Missing(_)) => return external(),
            Err(e) => return Err(e.into()),
        };
        let base = tracked.artifact_uri.trim_start_matches("mlflow-artifacts:").trim_start_matches('/').to_string();
        let path = if path.trim_matches('/').is_empty() { base } else { format!("{base}/{}", path.trim_matches('/')) };
        return Ok(Some(Source {
            path: clean(&path)?,
            run: Some(run.to_string()),
            model_id: model_id.map(str::to_string),
        }));
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
            return Ok(Some(s));
        }
        // `<exp>/<run>/artifacts/…` is a run's; `<exp>/models/<m-id>/artifacts/…` a logged model's.
        let parts: Vec<&str> = path.split('/').collect();
        if parts.len() >= 3 && parts[1] == "models" && parts[2].starts_with("m-") {
            let mut s = from_logged(parts[2])?;
            s.path = path;
            return Ok(Some(s));
        }
        let run = (parts.len() >= 3 && parts[2] == "artifacts").then(|| parts[1].to_string());
        return Ok(Some(Source { path, run, model_id: None }));
    }
    external()
}

/// Pins the files under the source's folder: each object re-hashed on read (a damaged one
/// is an error), its sha256 computed, and a manifest of them stored as the snapshot. `None`
/// when the folder holds no files.
fn pin_files(m: &repro_store::Metadata, st: &State, source: &str, path: &str) -> Result<Option<Artifact>, ApiError> {
    let mut listed = m.tracking().artifacts_under(path)?;
    if listed.is_empty() {
        if let Some((digest, size)) = m.tracking().get_artifact(path)? {
            listed.push((path.to_string(), digest, size));
        }
    }
    if listed.is_empty() {
        return Ok(None);
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
        Some(_) => manifest.digest(),
        None => st.objects.put_manifest(&manifest)?,
    };
    Ok(Some(artifact))
}

/// Adds `name@version` to the logged model's `mlflow.modelVersions` tag, as MLflow's server
/// does after registering from a logged model: a JSON list, written the way Python's
/// `json.dumps` writes it, since clients compare the text.
fn note_version_on_logged_model(m: &repro_store::Metadata, id: &str, name: &str, version: u32) -> Result<(), ApiError> {
    const TAG: &str = "mlflow.modelVersions";
    let model = m.tracking().get_logged_model(id)?;
    let mut listed: Vec<(String, u64)> = model
        .tags
        .get(TAG)
        .and_then(|t| serde_json::from_str::<Vec<serde_json::Value>>(t).ok())
        .unwrap_or_default()
        .iter()
        .filter_map(|e| Some((e.get("name")?.as_str()?.to_string(), e.get("version")?.as_u64()?)))
        .collect();
    let entry = (name.to_string(), u64::from(version));
    if listed.contains(&entry) {
        return Ok(());
    }
    listed.push(entry);
    let text: Vec<String> = listed
        .iter()
        .map(|(n, v)| format!("{{\"name\": {}, \"version\": {v}}}", serde_json::Value::from(n.as_str())))
        .collect();
    m.tracking().set_logged_model_tags(id, &[(TAG.to_string(), format!("[{}]", text.join(", ")))])?;
    Ok(())
}

/// The run of this store a client named, if it is one (anything else makes the version external).
fn run_of_store(
    m: &repro_store::Metadata,
    run: Option<&str>,
) -> Result<Option<repro_store::meta::StoredRun>, ApiError> {
    let Some(id) = run.and_then(|r| repro_core::RunId::parse(r).ok()) else { return Ok(None) };
    match m.runs().get(&id) {
        Ok(run) => Ok(Some(run)),
        Err(repro_store::StoreError::UnknownRun(_) | repro_store::StoreError::Missing(_)) => Ok(None),
        Err(e) => Err(e.into()),
    }
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
    let logged = model_id.clone();
    let reg = s
        .with_meta(move |m, st| {
            let register = match resolve_source(m, &source, model_id.as_deref())? {
                Some(found) => {
                    let run_text = run_param.clone().or(found.run.clone());
                    match run_of_store(m, run_text.as_deref())? {
                        Some(run) => {
                            let artifact = pin_files(m, st, &source, &found.path)?.ok_or_else(|| {
                                ApiError::invalid(format!(
                                    "No artifacts under '{}': log the model's files (log_model / log_artifacts) before registering it.",
                                    found.path
                                ))
                            })?;
                            // A finished run's lineage is pinned now; a running one's when it finishes.
                            Change::Register {
                                run: run.record.id.clone(),
                                lineage: run.lineage.clone(),
                                artifact,
                                model_id: found.model_id,
                            }
                        }
                        // Files this server holds, but no run of this store behind them (a
                        // logged model with no source run): external, with its files pinned.
                        None => Change::External {
                            source: source.clone(),
                            run_id: run_text,
                            artifact: pin_files(m, st, &source, &found.path)?,
                            model_id: found.model_id,
                        },
                    }
                }
                None => Change::External { source: source.clone(), run_id: run_param, artifact: None, model_id },
            };
            // The registration, its tags and its description land together or not at all.
            let mut extra: Vec<Change> =
                tags.into_iter().map(|(key, value)| Change::Tag { key, value: Some(value) }).collect();
            extra.extend(description.map(|description| Change::Describe { description }));
            let decide = |reg: &Registry| {
                reg.registration(&n, register, extra)
                    .ok_or_else(|| ApiError::invalid(format!("Invalid model name '{n}'.")))
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
            if let Some(id) = &logged {
                note_version_on_logged_model(m, id, &n, v)?;
            }
            Ok((m.models().registry()?, v))
        })
        .await?;
    let (reg, version) = reg;
    Ok(Json(json!({"model_version": version_json(live_version(&reg, &name, version)?)})))
}

pub(crate) async fn get_version(AxState(s): S, r: Req) -> Reply {
    let name = model_name(&r)?;
    let version = version_number(&r)?;
    let reg = current_registry(&s).await?;
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
    let mut order = registry_order(&r.str_list("order_by")?)?;
    if order.is_empty() {
        // MLflow's default: the most recently changed first.
        order.push(("last_updated_timestamp".to_string(), false));
    }
    let limit = max_results(&r, 10_000)?;
    let offset = page_offset(&r)?;
    let reg = current_registry(&s).await?;
    let mut versions: Vec<(&ModelVersion, String)> = reg
        .models
        .values()
        .filter(|m| m.deleted.is_none())
        .flat_map(|m| m.live())
        .map(|v| (v, source(v)))
        .filter(|(v, src)| {
            let view = search::RegistryView {
                name: &v.name,
                run_id: v.run_text(),
                source_path: Some(src),
                version: Some(i64::from(v.version)),
                tags: &v.tags,
            };
            search::matches_registry(&clauses, &view)
        })
        .collect();
    // Ties: by name, then the newest version first.
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
    live_version(&current_registry(&s).await?, &name, version)?;
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
                    .map_err(ApiError::from)?;
            }
            Some(stage) => {
                let progress = repro_store::fsck::NoProgress;
                let outcome = repro_exec::registry::promote(&mut store, &reference, stage, &by, &progress)
                    .map_err(ApiError::from)?;
                if let repro_exec::registry::PromoteOutcome::Refused { unmet, .. } = outcome {
                    let list: Vec<String> = unmet.iter().map(|u| format!("{}: {}", u.requirement, u.reason)).collect();
                    return Err(ApiError::invalid_state(format!(
                            "{reference} cannot enter {stage}: the stage's policy is not met ({}). `repro model promote {reference} --to {stage}` lists the fixes.",
                            list.join("; ")
                        )));
                }
            }
        }
        Ok(())
    })
    .await
    .map_err(|e| ApiError::internal(format!("the promotion stopped: {e}")))?;
    outcome?;
    let reg = current_registry(&s).await?;
    Ok(Json(json!({"model_version": version_json(live_version(&reg, &name, version)?)})))
}

pub(crate) async fn download_uri(AxState(s): S, r: Req) -> Reply {
    let name = model_name(&r)?;
    let version = version_number(&r)?;
    let reg = current_registry(&s).await?;
    Ok(Json(json!({"artifact_uri": download_uri_of(live_version(&reg, &name, version)?)})))
}
