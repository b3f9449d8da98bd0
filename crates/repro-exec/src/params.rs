//! Reading `--params FILE` (YAML, JSON or TOML) into flat `a.b.c` keys.

use std::collections::BTreeMap;
use std::path::Path;

use serde_json::Value;

use crate::{ExecError, Result};

/// Parses a params file by its extension (YAML when unknown) and flattens it.
pub fn read_params_file(path: &Path) -> Result<(Vec<u8>, BTreeMap<String, Value>)> {
    let bytes = std::fs::read(path).map_err(ExecError::io("read params file", path))?;
    let flat = parse_params(path, &bytes)?;
    Ok((bytes, flat))
}

/// Parses params file contents; `path` picks the format (by extension) and names errors.
pub fn parse_params(path: &Path, bytes: &[u8]) -> Result<BTreeMap<String, Value>> {
    let text = std::str::from_utf8(bytes).map_err(|e| ExecError::Parse {
        path: path.to_path_buf(),
        line: line_at(bytes, e.valid_up_to()),
        message: "not UTF-8 text".into(),
    })?;
    let ext = path.extension().map(|e| e.to_string_lossy().to_ascii_lowercase()).unwrap_or_default();
    let parse_err = |line: usize, message: String| ExecError::Parse { path: path.to_path_buf(), line, message };
    let doc: Value = match ext.as_str() {
        "json" => serde_json::from_str(text)
            .map_err(|e| parse_err(e.line().max(1), format!("not valid JSON: {}", strip_location(&e.to_string()))))?,
        "toml" => {
            let table: toml::Table = text.parse().map_err(|e: toml::de::Error| {
                let line = e.span().map(|s| text[..s.start.min(text.len())].lines().count().max(1)).unwrap_or(1);
                parse_err(line, format!("not valid TOML: {}", e.message().lines().next().unwrap_or("")))
            })?;
            serde_json::to_value(table).map_err(|e| parse_err(1, e.to_string()))?
        }
        _ => {
            let v: serde_norway::Value = serde_norway::from_str(text).map_err(|e| {
                let line = e.location().map(|l| l.line()).unwrap_or(1);
                parse_err(
                    line,
                    format!("not valid YAML: {}", strip_location(e.to_string().lines().next().unwrap_or(""))),
                )
            })?;
            yaml_to_json(path, v)?
        }
    };
    Ok(repro_core::params::flatten(&path.display().to_string(), &doc)?)
}

fn yaml_to_json(path: &Path, v: serde_norway::Value) -> Result<Value> {
    use serde_norway::Value as Y;
    Ok(match v {
        Y::Null => Value::Null,
        Y::Bool(b) => Value::Bool(b),
        Y::Number(n) => {
            if let Some(i) = n.as_i64() {
                Value::from(i)
            } else if let Some(u) = n.as_u64() {
                Value::from(u)
            } else {
                n.as_f64()
                    .and_then(serde_json::Number::from_f64)
                    .map(Value::Number)
                    .unwrap_or_else(|| Value::String(n.to_string()))
            }
        }
        Y::String(s) => Value::String(s),
        Y::Sequence(s) => Value::Array(s.into_iter().map(|x| yaml_to_json(path, x)).collect::<Result<_>>()?),
        Y::Mapping(m) => {
            let mut out = serde_json::Map::new();
            for (k, v) in m {
                let key = match k {
                    Y::String(s) => s,
                    Y::Number(n) => n.to_string(),
                    Y::Bool(b) => b.to_string(),
                    other => {
                        return Err(ExecError::Parse {
                            path: path.to_path_buf(),
                            line: 1,
                            message: format!("mapping keys must be names, found {other:?}"),
                        })
                    }
                };
                out.insert(key, yaml_to_json(path, v)?);
            }
            Value::Object(out)
        }
        Y::Tagged(t) => yaml_to_json(path, t.value)?,
    })
}

fn strip_location(s: &str) -> String {
    match s.find(" at line ") {
        Some(i) => s[..i].to_string(),
        None => s.to_string(),
    }
}

fn line_at(bytes: &[u8], offset: usize) -> usize {
    bytes[..offset.min(bytes.len())].iter().filter(|&&b| b == b'\n').count() + 1
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(name: &str, text: &str) -> Result<BTreeMap<String, Value>> {
        let d = tempfile::tempdir().expect("tempdir");
        let p = d.path().join(name);
        std::fs::write(&p, text).expect("write");
        read_params_file(&p).map(|(_, f)| f)
    }

    #[test]
    fn three_formats_flatten_alike() {
        let y = parse("p.yaml", "model:\n  depth: 6\n  lr: 0.1\nname: x\n").expect("yaml");
        let j = parse("p.json", r#"{"model": {"depth": 6, "lr": 0.1}, "name": "x"}"#).expect("json");
        let t = parse("p.toml", "name = \"x\"\n[model]\ndepth = 6\nlr = 0.1\n").expect("toml");
        assert_eq!(y, j);
        assert_eq!(j, t);
        assert_eq!(y["model.depth"], serde_json::json!(6));
    }

    #[test]
    fn garbage_names_file_and_line() {
        for (name, text, line) in [
            ("p.yaml", "a: 1\nb: [\n", 3),
            ("p.yaml", "a: 1\n  b: 2\n", 2),
            ("p.json", "{\n\"a\": }\n", 2),
            ("p.toml", "a = 1\nb = \n", 2),
            ("p.yaml", "- 1\n- 2\n", 0),
            ("p.yaml", "", 0),
        ] {
            let e = parse(name, text).expect_err(text).to_string();
            assert!(e.contains(name), "{e}");
            if line > 0 {
                assert!(e.contains(&format!("{name}:{line}:")), "{e}");
            }
            assert!(!e.contains('\n'), "{e}");
        }
        let d = tempfile::tempdir().expect("tempdir");
        let p = d.path().join("bin.yaml");
        std::fs::write(&p, b"a: \xff\xfe\n").expect("write");
        assert!(read_params_file(&p).expect_err("binary").to_string().contains("not UTF-8"));
    }
}
