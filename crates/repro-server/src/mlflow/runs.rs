//! Runs: create, get, update, delete, restore and search, params, tags, dataset inputs and
//! model outputs; a tracking-only run's end seals its record.

use axum::extract::State as AxState;
use axum::http::Method;
use axum::response::{IntoResponse, Response};
use axum::Json;
use repro_core::record::RunStatus;
use repro_core::search;
use repro_core::RunId;
use repro_store::search::{ParamSource, RunQuery};
use repro_store::tracking::{DatasetInput, TrackedRun};
use serde::Serialize;
use serde_json::{json, Value};

use super::{log, ok, view_stages, Kv, MetricJson, Reply, MLFLOW_PREFIXES, S};
use crate::request::{check_key, check_value, experiment_id, max_results, page_offset, Req, MAX_TAG_VALUE};
use crate::routes::{Role, Routes};
use crate::{ApiError, State};

pub(crate) fn routes() -> Routes {
    use Method as M;
    use Role::{Read, Write};
    let mut r = Routes::new();
    for p in MLFLOW_PREFIXES {
        let at = |rest: &str| format!("{p}{rest}");
        r = r
            .api(M::POST, &at("/runs/create"), Write, create_run)
            .api(M::GET, &at("/runs/get"), Read, get_run)
            .api(M::POST, &at("/runs/update"), Write, update_run)
            .api(M::POST, &at("/runs/delete"), Write, delete_run)
            .api(M::POST, &at("/runs/restore"), Write, restore_run)
            .api(M::POST, &at("/runs/search"), Read, search_runs)
            .api(M::POST, &at("/runs/log-parameter"), Write, log_param)
            .api(M::POST, &at("/runs/set-tag"), Write, set_tag)
            .api(M::POST, &at("/runs/delete-tag"), Write, delete_tag)
            .api(M::POST, &at("/runs/log-inputs"), Write, log_inputs)
            .api(M::POST, &at("/runs/outputs"), Write, log_outputs);
    }
    r
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

const ADJECTIVES: [&str; 16] = [
    "amber", "brave", "calm", "dapper", "eager", "fierce", "gentle", "honest", "keen", "lucid", "merry", "nimble",
    "placid", "quick", "rustic", "sturdy",
];
const NOUNS: [&str; 16] = [
    "ant", "bear", "crane", "deer", "eel", "finch", "goat", "hare", "ibis", "jay", "koala", "lynx", "mole", "newt",
    "owl", "panda",
];

fn run_name_for(id: &RunId) -> String {
    friendly_name(id.as_str())
}

/// A readable name picked by an id (`merry-owl-217`), as MLflow names an unnamed run or
/// logged model; the same id gives the same name.
pub(crate) fn friendly_name(id: &str) -> String {
    let b = id.as_bytes();
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
    let (run, outputs, model_inputs) = s
        .with_meta(move |m, _| {
            let t = m.tracking();
            Ok((t.get_tracked_run(&id)?, t.run_outputs(&id)?, t.run_model_inputs(&id)?))
        })
        .await?;
    let mut out =
        serde_json::to_value(run_json(&run)).map_err(|e| ApiError::internal(format!("cannot write the run: {e}")))?;
    if !model_inputs.is_empty() {
        out["inputs"]["model_inputs"] = model_inputs.iter().map(|id| json!({"model_id": id})).collect();
    }
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
    let mut models = Vec::new();
    for item in r.list("models")? {
        let model =
            item.get("model_id").and_then(Value::as_str).ok_or_else(|| ApiError::missing_param("models.model_id"))?;
        models.push(model.to_string());
    }
    s.with_meta(move |m, _| {
        if !inputs.is_empty() {
            m.tracking().log_inputs(&id, &inputs)?;
        }
        if !models.is_empty() {
            m.tracking().log_run_model_inputs(&id, &models)?;
        }
        Ok(())
    })
    .await?;
    ok()
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

#[cfg(test)]
mod tests {
    use repro_core::RunId;
    use repro_store::tracking::{DatasetInput, LatestMetric};
    use serde_json::json;

    use super::super::{kv, Num};
    use super::*;

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
    }
}
