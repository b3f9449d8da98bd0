//! Metrics: one point, a batch (points, params and tags), a metric's history, and the
//! histories of several runs at once (whole, or sampled for a chart) as MLflow's web UI
//! asks for them.

use std::collections::BTreeMap;

use axum::extract::State as AxState;
use axum::http::Method;
use axum::response::{IntoResponse, Response};
use axum::Json;
use repro_core::search;
use repro_store::tracking::{MetricIn, ModelPoint};
use serde::Serialize;
use serde_json::Value;

use super::{log, MetricJson, Reply, MLFLOW_PREFIXES, S};
use crate::request::{check_key, max_results, opt_int, opt_string, page_offset, value_f64, Req};
use crate::routes::{Role, Routes};
use crate::ApiError;

pub(crate) fn routes() -> Routes {
    use Method as M;
    use Role::{Read, Write};
    let mut r = Routes::new();
    for p in MLFLOW_PREFIXES {
        let at = |rest: &str| format!("{p}{rest}");
        r = r
            .api(M::POST, &at("/runs/log-metric"), Write, log_metric)
            .api(M::POST, &at("/runs/log-batch"), Write, log_batch)
            .api(M::GET, &at("/metrics/get-history"), Read, metric_history)
            .api(M::GET, &at("/metrics/get-history-bulk"), Read, history_bulk)
            .api(M::GET, &at("/metrics/get-history-bulk-interval"), Read, history_bulk_interval);
    }
    r
}

const MAX_BATCH_METRICS: usize = 1000;
const MAX_BATCH_PARAMS: usize = 100;
const MAX_BATCH_TAGS: usize = 100;

/// One metric; `at` names it in errors as MLflow does (`metrics[0].` in a batch). A
/// timestamp is required, as MLflow's protobuf has it; a step defaults to 0.
fn metric_in(v: &Value, at: &str) -> Result<MetricIn, ApiError> {
    let name = |field: &str| format!("{at}{field}");
    let key = opt_string(v.get("key"), &name("key"))?.ok_or_else(|| ApiError::missing_param(&name("key")))?;
    check_key("metric", &key)?;
    let value = value_f64(v.get("value"), &name("value"))?;
    let int = |field: &str| opt_int(v.get(field), &name(field));
    let timestamp = int("timestamp")?.ok_or_else(|| ApiError::missing_param(&name("timestamp")))?;
    let text = |field: &str| opt_string(v.get(field), &name(field)).map(Option::unwrap_or_default);
    let model_id = text("model_id")?;
    let model = (!model_id.is_empty()).then_some(ModelPoint {
        model_id,
        dataset_name: text("dataset_name")?,
        dataset_digest: text("dataset_digest")?,
    });
    Ok(MetricIn { key, value, timestamp, step: int("step")?.unwrap_or(0), model })
}

pub(crate) async fn log_metric(AxState(s): S, Req(r): Req) -> Reply {
    let r = Req(r);
    let id = r.run_id()?;
    r.f64("value")?;
    let m = metric_in(&Value::Object(r.0.clone()), "")?;
    log(&s, id, vec![m], vec![], vec![]).await
}

pub(crate) async fn log_batch(AxState(s): S, Req(r): Req) -> Reply {
    let r = Req(r);
    let id = r.run_id()?;
    let metrics = match r.list("metrics")? {
        [] => Vec::new(),
        a => {
            if a.len() > MAX_BATCH_METRICS {
                return Err(ApiError::invalid(format!(
                    "A batch logging request can contain at most {MAX_BATCH_METRICS} metrics. Got {} metrics. Please split up metrics across multiple requests and try again.",
                    a.len()
                )));
            }
            a.iter().enumerate().map(|(i, v)| metric_in(v, &format!("metrics[{i}]."))).collect::<Result<Vec<_>, _>>()?
        }
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

/// Runs one bulk request may name, and the points a bulk history returns (MLflow's bounds).
const MAX_BULK_RUNS: usize = 100;
const MAX_BULK_POINTS: usize = 25_000;
const MAX_SAMPLED_POINTS: i64 = 2_500;

#[derive(Serialize)]
struct PointOfRun<'a> {
    key: &'a str,
    run_id: &'a str,
    step: i64,
    timestamp: i64,
    value: super::Num,
}

/// A run's whole history of one metric, in MLflow's order for `cmp`.
async fn histories(
    s: &S,
    runs: Vec<String>,
    key: String,
    limit: usize,
) -> Result<Vec<(String, Vec<repro_store::tracking::LatestMetric>)>, ApiError> {
    s.with_meta(move |m, _| {
        let t = m.tracking();
        let mut out = Vec::with_capacity(runs.len());
        for id in runs {
            let points = t.metric_history(&id, &key, 0, limit)?;
            out.push((id, points));
        }
        Ok(out)
    })
    .await
}

/// `GET …/metrics/get-history-bulk?run_id=…&run_id=…&metric_key=…`: several runs' histories
/// of one metric, runs in id order, each run's points by (timestamp, step, value).
pub(crate) async fn history_bulk(s: S, r: Req) -> Result<Response, ApiError> {
    let mut runs = r.str_list("run_id")?;
    if runs.is_empty() {
        return Err(ApiError::invalid("GetMetricHistoryBulk request must specify at least one run_id."));
    }
    if runs.len() > MAX_BULK_RUNS {
        return Err(ApiError::invalid(format!(
            "GetMetricHistoryBulk request cannot specify more than {MAX_BULK_RUNS} run_ids. Received {} run_ids.",
            runs.len()
        )));
    }
    let key = r
        .opt_str("metric_key")?
        .ok_or_else(|| ApiError::invalid("GetMetricHistoryBulk request must specify a metric_key."))?;
    let limit = usize::try_from(r.opt_i64("max_results")?.unwrap_or(MAX_BULK_POINTS as i64).max(0))
        .unwrap_or(0)
        .min(MAX_BULK_POINTS);
    runs.sort();
    runs.dedup();
    let mut all = histories(&s, runs, key, MAX_BULK_POINTS).await?;
    for (_, points) in &mut all {
        points.sort_by(|a, b| (a.timestamp, a.step).cmp(&(b.timestamp, b.step)).then(a.value.total_cmp(&b.value)));
    }
    let metrics: Vec<PointOfRun> =
        all.iter().flat_map(|(id, points)| points.iter().map(move |p| point_of_run(id, p))).take(limit).collect();
    Ok(Json(serde_json::json!({ "metrics": metrics })).into_response())
}

fn point_of_run<'a>(run_id: &'a str, p: &'a repro_store::tracking::LatestMetric) -> PointOfRun<'a> {
    PointOfRun { key: &p.key, run_id, step: p.step, timestamp: p.timestamp, value: super::Num(p.value) }
}

/// `GET …/metrics/get-history-bulk-interval?run_ids=…&metric_key=…[&start_step&end_step]
/// [&max_results]`: each run's history sampled to about `max_results` points for a chart,
/// as MLflow 3.17 samples it: the points of the step range in (step, timestamp, value) order
/// cut into `max_results` even runs (SQL's NTILE), the first of each kept, and the last
/// point always shown.
pub(crate) async fn history_bulk_interval(s: S, r: Req) -> Result<Response, ApiError> {
    let runs = r.str_list("run_ids")?;
    if runs.is_empty() {
        return Err(ApiError::missing_param("run_ids"));
    }
    if runs.len() > MAX_BULK_RUNS {
        return Err(ApiError::invalid(format!(
            "GetMetricHistoryBulkInterval request must specify at most {MAX_BULK_RUNS} run_ids. Received {} run_ids.",
            runs.len()
        )));
    }
    let key =
        r.opt_str("metric_key")?.filter(|k| !k.is_empty()).ok_or_else(|| ApiError::missing_param("metric_key"))?;
    let wanted = r.opt_i64("max_results")?.unwrap_or(MAX_SAMPLED_POINTS);
    if !(1..=MAX_SAMPLED_POINTS).contains(&wanted) {
        return Err(ApiError::invalid(format!("max_results must be between 1 and {MAX_SAMPLED_POINTS}.")));
    }
    let range = match (r.opt_i64("start_step")?, r.opt_i64("end_step")?) {
        (Some(start), Some(end)) if start > end => {
            return Err(ApiError::invalid(format!(
                "end_step must be greater than start_step. Found start_step={start} and end_step={end}."
            )))
        }
        (Some(start), Some(end)) => Some((start, end)),
        (None, None) => None,
        _ => return Err(ApiError::invalid("If either start step or end step are specified, both must be specified.")),
    };
    let wanted = usize::try_from(wanted).unwrap_or(1);
    let mut all = histories(&s, runs, key, usize::MAX).await?;
    for (_, points) in &mut all {
        if let Some((start, end)) = range {
            points.retain(|p| (start..=end).contains(&p.step));
        }
        points.sort_by(|a, b| (a.step, a.timestamp).cmp(&(b.step, b.timestamp)).then(a.value.total_cmp(&b.value)));
    }
    let metrics: Vec<PointOfRun> = all
        .iter()
        .flat_map(|(id, points)| sample(points.len(), wanted).into_iter().map(move |i| point_of_run(id, &points[i])))
        .collect();
    Ok(Json(serde_json::json!({ "metrics": metrics })).into_response())
}

/// The indices kept of `total` ordered points for at most `wanted` (NTILE's buckets: the
/// first `total % wanted` one longer; the first point of each; the last point always).
fn sample(total: usize, wanted: usize) -> Vec<usize> {
    if total <= wanted {
        return (0..total).collect();
    }
    let (size, longer) = (total / wanted, total % wanted);
    let mut picks = Vec::with_capacity(wanted);
    let mut at = 0;
    for bucket in 0..wanted {
        picks.push(at);
        at += size + usize::from(bucket < longer);
    }
    if picks.last() != Some(&(total - 1)) {
        if let Some(last) = picks.last_mut() {
            *last = total - 1;
        }
    }
    picks
}

#[cfg(test)]
mod tests {
    use super::sample;

    #[test]
    fn sampling_keeps_the_first_point_of_each_even_bucket_and_always_the_last() {
        assert_eq!(sample(3, 5), vec![0, 1, 2]);
        assert_eq!(sample(10, 5), vec![0, 2, 4, 6, 9]);
        assert_eq!(sample(11, 5), vec![0, 3, 5, 7, 10]);
        assert_eq!(sample(10, 1), vec![9]);
        assert_eq!(sample(0, 5), Vec::<usize>::new());
    }
}
