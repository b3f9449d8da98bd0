//! Hyperparameters: flattening nested documents to `a.b.c` keys and reading `--param k=v`.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::CoreError;

/// Flattens a parsed params document into `a.b.c` keys. Arrays stay whole values.
/// The document's top level must be a mapping.
pub fn flatten(source_name: &str, doc: &Value) -> Result<BTreeMap<String, Value>, CoreError> {
    let Value::Object(map) = doc else {
        return Err(CoreError::Params {
            source_name: source_name.to_string(),
            message: format!("the top level must be a mapping of names to values, found {}", kind(doc)),
        });
    };
    let mut out = BTreeMap::new();
    for (k, v) in map {
        flatten_into(k, v, &mut out);
    }
    Ok(out)
}

fn flatten_into(prefix: &str, value: &Value, out: &mut BTreeMap<String, Value>) {
    match value {
        Value::Object(map) if !map.is_empty() => {
            for (k, v) in map {
                flatten_into(&format!("{prefix}.{k}"), v, out);
            }
        }
        other => {
            out.insert(prefix.to_string(), other.clone());
        }
    }
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "nothing (empty document)",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "a mapping",
    }
}

/// Parses one `--param KEY=VALUE`. Values that read as integers, floats or booleans
/// become those; anything else stays a string (so `--param lr=0.1` is the number 0.1).
pub fn parse_param_flag(flag: &str) -> Result<(String, Value), CoreError> {
    let err =
        |message: &str| CoreError::Params { source_name: format!("--param {flag}"), message: message.to_string() };
    let (key, raw) = flag.split_once('=').ok_or_else(|| err("expected KEY=VALUE, e.g. --param lr=0.01"))?;
    let key = key.trim();
    if key.is_empty() || key.starts_with('.') || key.ends_with('.') || key.contains("..") {
        return Err(err("the key must be a non-empty dotted name, e.g. model.depth"));
    }
    if key.chars().any(|c| c.is_control() || c.is_whitespace()) {
        return Err(err("the key must not contain spaces or control characters"));
    }
    Ok((key.to_string(), scalar(raw)))
}

fn scalar(raw: &str) -> Value {
    match raw {
        "true" => return Value::Bool(true),
        "false" => return Value::Bool(false),
        _ => {}
    }
    if let Ok(i) = raw.parse::<i64>() {
        return Value::from(i);
    }
    if let Ok(f) = raw.parse::<f64>() {
        if f.is_finite() && raw.chars().any(|c| c.is_ascii_digit()) {
            return Value::from(f);
        }
    }
    Value::String(raw.to_string())
}

/// A parameter value as text, the way MLflow shows params.
pub fn display_value(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    #[test]
    fn flattens_nested_mappings() {
        let flat = flatten("p.yaml", &json!({"model": {"depth": 6, "opt": {"lr": 0.1}}, "tags": [1, 2]})).expect("ok");
        assert_eq!(flat["model.depth"], json!(6));
        assert_eq!(flat["model.opt.lr"], json!(0.1));
        assert_eq!(flat["tags"], json!([1, 2]));
    }

    #[test]
    fn rejects_non_mapping_documents() {
        for doc in [json!(null), json!([1]), json!("x"), json!(3)] {
            let e = flatten("p.yaml", &doc).expect_err("must fail");
            assert!(e.to_string().starts_with("p.yaml: the top level must be a mapping"), "{e}");
        }
    }

    #[test]
    fn param_flags() {
        assert_eq!(parse_param_flag("lr=0.1").expect("ok"), ("lr".into(), json!(0.1)));
        assert_eq!(parse_param_flag("n=3").expect("ok"), ("n".into(), json!(3)));
        assert_eq!(parse_param_flag("x=true").expect("ok"), ("x".into(), json!(true)));
        assert_eq!(parse_param_flag("name=a=b").expect("ok"), ("name".into(), json!("a=b")));
        assert_eq!(parse_param_flag("v=inf").expect("ok"), ("v".into(), json!("inf")));
        for bad in ["novalue", "=3", ".a=1", "a..b=1", "a b=1"] {
            assert!(parse_param_flag(bad).is_err(), "{bad} accepted");
        }
    }

    proptest! {
        #[test]
        fn param_flag_never_panics(s in ".*") {
            let _ = parse_param_flag(&s);
        }
    }
}
