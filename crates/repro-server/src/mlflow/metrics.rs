//! Metrics: one point, a batch (points, params and tags), and a metric's history.

use std::collections::BTreeMap;

use axum::extract::State as AxState;
use axum::http::Method;
use axum::response::{IntoResponse, Response};
use axum::Json;
use repro_core::search;
use repro_store::tracking::MetricIn;
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
            .api(M::GET, &at("/metrics/get-history"), Read, metric_history);
    }
    r
}

const MAX_BATCH_METRICS: usize = 1000;
const MAX_BATCH_PARAMS: usize = 100;
const MAX_BATCH_TAGS: usize = 100;

fn metric_in(v: &Value, default_ts: i64) -> Result<MetricIn, ApiError> {
    let key = opt_string(v.get("key"), "key")?.ok_or_else(|| ApiError::missing_param("key"))?;
    check_key("metric", &key)?;
    let value = value_f64(v.get("value"), "value")?;
    let int = |name: &str| opt_int(v.get(name), name);
    Ok(MetricIn { key, value, timestamp: int("timestamp")?.unwrap_or(default_ts), step: int("step")?.unwrap_or(0) })
}

pub(crate) async fn log_metric(AxState(s): S, Req(r): Req) -> Reply {
    let r = Req(r);
    let id = r.run_id()?;
    r.f64("value")?;
    if r.opt_i64("timestamp")?.is_none() {
        return Err(ApiError::missing_param("timestamp"));
    }
    let m = metric_in(&Value::Object(r.0.clone()), repro_store::now_ms())?;
    log(&s, id, vec![m], vec![], vec![]).await
}

pub(crate) async fn log_batch(AxState(s): S, Req(r): Req) -> Reply {
    let r = Req(r);
    let id = r.run_id()?;
    let metrics = match r.0.get("metrics") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(a)) => {
            if a.len() > MAX_BATCH_METRICS {
                return Err(ApiError::invalid(format!(
                    "A batch logging request can contain at most {MAX_BATCH_METRICS} metrics. Got {} metrics. Please split up metrics across multiple requests and try again.",
                    a.len()
                )));
            }
            let now = repro_store::now_ms();
            a.iter().map(|v| metric_in(v, now)).collect::<Result<Vec<_>, _>>()?
        }
        Some(_) => return Err(ApiError::invalid("Invalid value for parameter 'metrics': expected a list.")),
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
