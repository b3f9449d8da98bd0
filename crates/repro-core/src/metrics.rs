//! The metrics file a command may append to (`REPRO_METRICS`): one JSON object per line,
//! `{"metric": "acc", "value": 0.93, "step": 1}` or `{"param": "k", "value": "v"}`.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::CoreError;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MetricPoint {
    pub key: String,
    pub value: f64,
    pub step: i64,
    /// Milliseconds since the Unix epoch, when the line gave one.
    pub timestamp_ms: Option<i64>,
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
        let value = obj
            .get("value")
            .and_then(Value::as_f64)
            .ok_or_else(|| err(format!("metric '{key}' needs a numeric \"value\"")))?;
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

    proptest! {
        #[test]
        fn never_panics(s in ".*") {
            let _ = parse_line(1, &s);
        }
    }
}
