//! The metrics file a command may append to (`REPRO_METRICS`): one JSON object per line,
//! `{"metric": "acc", "value": 0.93, "step": 1}` or `{"param": "k", "value": "v"}`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::CoreError;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MetricPoint {
    pub key: String,
    /// Non-finite values travel as the strings MLflow uses ("NaN", "Infinity", "-Infinity").
    #[serde(with = "non_finite")]
    pub value: f64,
    pub step: i64,
    /// Milliseconds since the Unix epoch, when the line gave one.
    pub timestamp_ms: Option<i64>,
}

/// A digest of a run's metric points that does not depend on their order: BLAKE3 over the
/// points sorted by key, step, time and value, each encoded with lengths and raw bits (no
/// float formatting in between). Signed statements name it, so edited metrics show.
pub fn metrics_digest(points: &[MetricPoint]) -> crate::Digest {
    let mut sorted: Vec<&MetricPoint> = points.iter().collect();
    sorted.sort_by(|a, b| {
        (&a.key, a.step, a.timestamp_ms, a.value.to_bits()).cmp(&(&b.key, b.step, b.timestamp_ms, b.value.to_bits()))
    });
    let mut h = blake3::Hasher::new();
    h.update(b"repro-metrics-v1\n");
    for p in sorted {
        h.update(&(p.key.len() as u64).to_le_bytes());
        h.update(p.key.as_bytes());
        h.update(&p.step.to_le_bytes());
        h.update(&p.timestamp_ms.unwrap_or(i64::MIN).to_le_bytes());
        h.update(&p.value.to_bits().to_le_bytes());
    }
    crate::Digest::from_hash(h.finalize())
}

/// JSON has no NaN or infinities; write them as MLflow does, and read them back.
mod non_finite {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &f64, s: S) -> Result<S::Ok, S::Error> {
        if v.is_nan() {
            s.serialize_str("NaN")
        } else if v.is_infinite() {
            s.serialize_str(if *v > 0.0 { "Infinity" } else { "-Infinity" })
        } else {
            s.serialize_f64(*v)
        }
    }

    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Either {
        Number(f64),
        Text(String),
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
        match Either::deserialize(d)? {
            Either::Number(n) => Ok(n),
            Either::Text(t) => match t.as_str() {
                "NaN" => Ok(f64::NAN),
                "Infinity" => Ok(f64::INFINITY),
                "-Infinity" => Ok(f64::NEG_INFINITY),
                other => Err(serde::de::Error::custom(format!("'{other}' is not a metric value"))),
            },
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub enum MetricsLine {
    Metric(MetricPoint),
    Param { key: String, value: String },
}

/// Parses one line (1-based `line` for messages). Blank lines give `None`.
pub fn parse_line(line: usize, text: &str) -> Result<Option<MetricsLine>, CoreError> {
    let text = text.trim();
    if text.is_empty() {
        return Ok(None);
    }
    let err = |message: String| CoreError::MetricsLine { line, message };
    let value: Value = serde_json::from_str(text).map_err(|e| err(format!("not JSON ({e})")))?;
    let Value::Object(obj) = value else {
        return Err(err("expected a JSON object like {\"metric\": \"acc\", \"value\": 0.9}".into()));
    };
    if let Some(key) = obj.get("metric") {
        let key = key
            .as_str()
            .filter(|k| !k.is_empty())
            .ok_or_else(|| err("\"metric\" must be a non-empty string".into()))?;
        // JSON has no NaN or infinities: they come as the strings MLflow uses (what
        // `repro.log_metric` writes for them).
        let value = match obj.get("value") {
            Some(Value::String(s)) if s == "NaN" => Some(f64::NAN),
            Some(Value::String(s)) if s == "Infinity" => Some(f64::INFINITY),
            Some(Value::String(s)) if s == "-Infinity" => Some(f64::NEG_INFINITY),
            other => other.and_then(Value::as_f64),
        }
        .ok_or_else(|| {
            err(format!("metric '{key}' needs a numeric \"value\" (or \"NaN\", \"Infinity\", \"-Infinity\")"))
        })?;
        let step = match obj.get("step") {
            None | Some(Value::Null) => 0,
            Some(s) => s.as_i64().ok_or_else(|| err(format!("metric '{key}': \"step\" must be an integer")))?,
        };
        let timestamp_ms = match obj.get("timestamp") {
            None | Some(Value::Null) => None,
            Some(t) => Some(
                t.as_i64().ok_or_else(|| err(format!("metric '{key}': \"timestamp\" must be integer milliseconds")))?,
            ),
        };
        return Ok(Some(MetricsLine::Metric(MetricPoint { key: key.to_string(), value, step, timestamp_ms })));
    }
    if let Some(key) = obj.get("param") {
        let key =
            key.as_str().filter(|k| !k.is_empty()).ok_or_else(|| err("\"param\" must be a non-empty string".into()))?;
        let value = match obj.get("value") {
            Some(Value::String(s)) => s.clone(),
            Some(Value::Null) | None => return Err(err(format!("param '{key}' needs a \"value\""))),
            Some(other) => other.to_string(),
        };
        return Ok(Some(MetricsLine::Param { key: key.to_string(), value }));
    }
    Err(err("expected a \"metric\" or a \"param\" key".into()))
}

/// The last value of each metric: the one at the highest step. A command may log the same
/// step twice (a re-evaluation, a resumed run), so ties go to the later timestamp (a point
/// without one counts as earliest), then to the later line, which is what was written last.
pub fn last_values(points: &[MetricPoint]) -> BTreeMap<String, f64> {
    let mut last: BTreeMap<&str, &MetricPoint> = BTreeMap::new();
    for point in points {
        let newer = last
            .get(point.key.as_str())
            .is_none_or(|seen| (point.step, point.timestamp_ms) >= (seen.step, seen.timestamp_ms));
        if newer {
            last.insert(&point.key, point);
        }
    }
    last.into_iter().map(|(key, point)| (key.to_string(), point.value)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn metrics_and_params() {
        match parse_line(1, r#"{"metric": "acc", "value": 0.93, "step": 2}"#).expect("ok") {
            Some(MetricsLine::Metric(p)) => assert_eq!((p.key.as_str(), p.value, p.step), ("acc", 0.93, 2)),
            other => panic!("unexpected {other:?}"),
        }
        match parse_line(2, r#"{"param": "k", "value": 5}"#).expect("ok") {
            Some(MetricsLine::Param { key, value }) => assert_eq!((key.as_str(), value.as_str()), ("k", "5")),
            other => panic!("unexpected {other:?}"),
        }
        assert_eq!(parse_line(3, "   ").expect("ok"), None);
    }

    #[test]
    fn non_finite_values_come_as_mlflows_strings_and_other_strings_are_refused() {
        let value = |line: &str| match parse_line(1, line) {
            Ok(Some(MetricsLine::Metric(p))) => Ok(p.value),
            Ok(other) => panic!("unexpected {other:?}"),
            Err(e) => Err(e.to_string()),
        };
        assert!(value(r#"{"metric": "loss", "value": "NaN"}"#).expect("NaN").is_nan());
        assert_eq!(value(r#"{"metric": "loss", "value": "Infinity"}"#), Ok(f64::INFINITY));
        assert_eq!(value(r#"{"metric": "loss", "value": "-Infinity"}"#), Ok(f64::NEG_INFINITY));
        for bad in [r#""nan""#, r#""0.5""#, "null", "true"] {
            let e = value(&format!(r#"{{"metric": "loss", "value": {bad}}}"#)).expect_err(bad);
            assert!(e.contains("metric 'loss' needs a numeric"), "{e}");
        }
    }

    #[test]
    fn garbage_lines_name_their_line() {
        for bad in [
            "{",
            "[1]",
            r#"{"metric": "a"}"#,
            r#"{"metric": "a", "value": "x"}"#,
            r#"{"x": 1}"#,
            r#"{"metric": "a", "value": 1, "step": 1.5}"#,
        ] {
            let e = parse_line(7, bad).expect_err(bad);
            assert!(e.to_string().starts_with("line 7:"), "{e}");
        }
    }

    fn point(key: &str, value: f64, step: i64, timestamp_ms: Option<i64>) -> MetricPoint {
        MetricPoint { key: key.into(), value, step, timestamp_ms }
    }

    #[test]
    fn last_value_is_at_the_highest_step() {
        let points = [point("acc", 0.5, 1, None), point("acc", 0.9, 3, None), point("acc", 0.7, 2, Some(99))];
        assert_eq!(last_values(&points), BTreeMap::from([("acc".to_string(), 0.9)]));
        assert!(last_values(&[]).is_empty());
    }

    #[test]
    fn last_value_ties_go_to_the_later_timestamp_then_the_later_line() {
        let by_time = [point("a", 1.0, 5, Some(20)), point("a", 2.0, 5, Some(10)), point("a", 3.0, 5, None)];
        let by_line = [point("b", 1.0, 5, Some(10)), point("b", 2.0, 5, Some(10)), point("c", 4.0, 0, None)];
        let mut all = by_time.to_vec();
        all.extend(by_line);
        let last = last_values(&all);
        assert_eq!(last.get("a"), Some(&1.0), "timestamp beats position; None is earliest");
        assert_eq!(last.get("b"), Some(&2.0), "same step and time: the later line wins");
        assert_eq!(last.get("c"), Some(&4.0));
        assert_eq!(last.len(), 3);
    }

    proptest! {
        #[test]
        fn never_panics(s in ".*") {
            let _ = parse_line(1, &s);
        }
    }
}
