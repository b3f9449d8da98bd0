//! What every MLflow handler reads a request with: the extractor (`Req`: the query string of
//! a GET, the JSON body of anything else), the body bound, and the validators MLflow's own
//! server applies (key names, value lengths, page sizes). Malformed input is a 400 in
//! MLflow's envelope, never a 500.

use axum::http::Method;
use axum::response::{IntoResponse, Response};
use axum::Json;
use repro_core::search;
use serde_json::{Map, Value};

use crate::ApiError;
use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};

/// Largest request body accepted: MLflow's batch limit is 1 MB of JSON; dataset profiles may
/// be larger, so allow some room, and refuse beyond with a 400 the client does not retry.
pub(crate) const MAX_BODY: usize = 32 << 20;
pub(crate) const MAX_PARAM_VALUE: usize = 6000;
pub(crate) const MAX_TAG_VALUE: usize = 8000;
pub(crate) const MAX_KEY: usize = 250;
pub(crate) const MAX_RESULTS: i64 = 50_000;

/// The request message: the query string of a GET (repeated keys become lists), the JSON
/// body of anything else. Malformed input is a 400 in MLflow's envelope, never a 500.
pub(crate) struct Req(pub(crate) Map<String, Value>);

impl<St: Send + Sync> FromRequest<St> for Req {
    // The body is read by hand (`read_body`), so the state goes unused.
    type Rejection = ApiError;

    async fn from_request(req: Request, _state: &St) -> Result<Self, Self::Rejection> {
        if req.method() == Method::GET {
            let mut map = Map::new();
            for (k, v) in form_pairs(req.uri().query().unwrap_or("")) {
                match map.get_mut(&k) {
                    Some(Value::Array(a)) => a.push(Value::String(v)),
                    Some(old) => {
                        let first = old.take();
                        *old = Value::Array(vec![first, Value::String(v)]);
                    }
                    None => {
                        map.insert(k, Value::String(v));
                    }
                }
            }
            return Ok(Req(map));
        }
        let bytes = read_body(req.into_body()).await?;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(Req(Map::new()));
        }
        match serde_json::from_slice::<Value>(&bytes) {
            Ok(Value::Object(m)) => Ok(Req(m)),
            Ok(_) => Err(ApiError::invalid("The request body must be a JSON object.")),
            Err(e) => Err(ApiError::invalid(format!("Malformed JSON in the request body: {e}"))),
        }
    }
}

/// Reads a body up to `MAX_BODY`. A larger one is read on (and dropped) up to a bound, so
/// the client, which sends everything before it reads the answer, gets the 400 rather
/// than a reset connection.
pub(crate) async fn read_body(mut body: axum::body::Body) -> Result<Bytes, ApiError> {
    use http_body_util::BodyExt;
    const DRAIN: usize = 256 << 20;
    let mut buf = Vec::new();
    let mut total = 0usize;
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| ApiError::invalid(format!("The request body could not be read: {e}")))?;
        if let Ok(data) = frame.into_data() {
            total += data.len();
            if total <= MAX_BODY {
                buf.extend_from_slice(&data);
            } else if total > DRAIN {
                break;
            }
        }
    }
    if total > MAX_BODY {
        return Err(ApiError::invalid(format!(
            "The request body is larger than {} MiB; split it up (log-batch takes at most 1000 metrics).",
            MAX_BODY >> 20
        )));
    }
    Ok(Bytes::from(buf))
}

/// What a query-string component keeps as it is: RFC 3986's unreserved characters.
pub(crate) const COMPONENT: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'_').remove(b'.').remove(b'~');
/// What RFC 6266's `filename*` keeps as it is (RFC 5987's `attr-char`).
pub(crate) const ATTR_CHAR: &AsciiSet =
    &COMPONENT.remove(b'!').remove(b'#').remove(b'$').remove(b'&').remove(b'+').remove(b'^').remove(b'`').remove(b'|');

/// Percent-decodes (and, in a query string, turns `+` into a space); a `%` not followed by
/// two hex digits stays as it is, bytes that are not UTF-8 are replaced.
pub(crate) fn percent_decode(s: &str, plus_is_space: bool) -> String {
    if plus_is_space && s.contains('+') {
        percent_encoding::percent_decode_str(&s.replace('+', " ")).decode_utf8_lossy().into_owned()
    } else {
        percent_encoding::percent_decode_str(s).decode_utf8_lossy().into_owned()
    }
}

/// Percent-encodes a query-string component.
pub(crate) fn encode_component(s: &str) -> String {
    utf8_percent_encode(s, COMPONENT).to_string()
}

/// Percent-encodes a file name for `filename*=UTF-8''…`.
pub(crate) fn encode_attr(s: &str) -> String {
    utf8_percent_encode(s, ATTR_CHAR).to_string()
}

/// `a=1&b=x%20y` → pairs, percent- and plus-decoded.
pub(crate) fn form_pairs(query: &str) -> Vec<(String, String)> {
    query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| match p.split_once('=') {
            Some((k, v)) => (percent_decode(k, true), percent_decode(v, true)),
            None => (percent_decode(p, true), String::new()),
        })
        .collect()
}

impl Req {
    pub(crate) fn opt_str(&self, key: &str) -> Result<Option<String>, ApiError> {
        match self.0.get(key) {
            // A query string's repeated key arrives as a one-element list.
            Some(Value::Array(a)) if a.len() == 1 && a[0].is_string() => Ok(a[0].as_str().map(str::to_string)),
            v => opt_string(v, key),
        }
    }

    pub(crate) fn str(&self, key: &str) -> Result<String, ApiError> {
        self.opt_str(key)?.ok_or_else(|| ApiError::missing_param(key))
    }

    pub(crate) fn opt_i64(&self, key: &str) -> Result<Option<i64>, ApiError> {
        opt_int(self.0.get(key), key)
    }

    /// A double as MLflow sends it: a number, or "NaN" / "Infinity" / "-Infinity".
    pub(crate) fn f64(&self, key: &str) -> Result<f64, ApiError> {
        value_f64(self.0.get(key), key)
    }

    pub(crate) fn run_id(&self) -> Result<String, ApiError> {
        let id = match self.opt_str("run_id")? {
            Some(id) if !id.is_empty() => id,
            _ => {
                self.opt_str("run_uuid")?.filter(|s| !s.is_empty()).ok_or_else(|| ApiError::missing_param("run_id"))?
            }
        };
        Ok(id)
    }

    pub(crate) fn str_list(&self, key: &str) -> Result<Vec<String>, ApiError> {
        match self.0.get(key) {
            None | Some(Value::Null) => Ok(Vec::new()),
            Some(Value::String(s)) => Ok(vec![s.clone()]),
            Some(Value::Array(a)) => a
                .iter()
                .map(|v| match v {
                    Value::String(s) => Ok(s.clone()),
                    Value::Number(n) => Ok(n.to_string()),
                    other => Err(invalid_value(key, other, "expected strings")),
                })
                .collect(),
            Some(v) => Err(invalid_value(key, v, "expected a list")),
        }
    }

    /// `experiment_ids` of the searches, as numbers.
    pub(crate) fn experiment_ids(&self) -> Result<Vec<i64>, ApiError> {
        self.str_list("experiment_ids")?
            .iter()
            .map(|e| e.trim().parse::<i64>().map_err(|_| ApiError::invalid(format!("Invalid experiment id '{e}'."))))
            .collect()
    }

    /// A repeated message field: absent is empty, anything but a list is a 400.
    pub(crate) fn list(&self, key: &str) -> Result<&[Value], ApiError> {
        match self.0.get(key) {
            None | Some(Value::Null) => Ok(&[]),
            Some(Value::Array(a)) => Ok(a),
            Some(v) => Err(invalid_value(key, v, "expected a list")),
        }
    }

    /// `[{key, value}]` pairs (tags, params).
    pub(crate) fn pairs(&self, key: &str) -> Result<Vec<(String, String)>, ApiError> {
        let list = match self.0.get(key) {
            None | Some(Value::Null) => return Ok(Vec::new()),
            Some(Value::Array(a)) => a,
            Some(v) => return Err(invalid_value(key, v, "expected a list")),
        };
        list.iter()
            .map(|item| {
                let k = item.get("key").and_then(Value::as_str);
                let v = match item.get("value") {
                    Some(Value::String(s)) => Some(s.clone()),
                    Some(Value::Number(n)) => Some(n.to_string()),
                    Some(Value::Bool(b)) => Some(b.to_string()),
                    _ => None,
                };
                match (k, v) {
                    (Some(k), Some(v)) => Ok((k.to_string(), v)),
                    (None, _) => Err(ApiError::missing_param(&format!("{key}.key"))),
                    (_, None) => Err(ApiError::missing_param(&format!("{key}.value"))),
                }
            })
            .collect()
    }
}

pub(crate) fn value_f64(v: Option<&Value>, key: &str) -> Result<f64, ApiError> {
    match v {
        Some(v @ Value::Number(n)) => n.as_f64().ok_or_else(|| invalid_value(key, v, "expected a number")),
        Some(v @ Value::String(s)) => match s.as_str() {
            "NaN" | "nan" => Ok(f64::NAN),
            "Infinity" | "inf" => Ok(f64::INFINITY),
            "-Infinity" | "-inf" => Ok(f64::NEG_INFINITY),
            other => other.parse().map_err(|_| invalid_value(key, v, "expected a number")),
        },
        None | Some(Value::Null) => Err(ApiError::missing_param(key)),
        Some(v) => Err(invalid_value(key, v, "expected a number")),
    }
}

/// An optional string field. MLflow refuses a number where its protobuf says string
/// (`{"name": 123}`), so a client that works against repro works against MLflow too.
pub(crate) fn opt_string(v: Option<&Value>, key: &str) -> Result<Option<String>, ApiError> {
    match v {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(v) => Err(invalid_value(key, v, "expected a string")),
    }
}

/// An optional integer field: a number, or a string of one (what a query string carries).
pub(crate) fn opt_int(v: Option<&Value>, key: &str) -> Result<Option<i64>, ApiError> {
    match v {
        None | Some(Value::Null) => Ok(None),
        Some(v @ Value::Number(n)) => n
            .as_i64()
            .or_else(|| n.as_f64().filter(|f| f.fract() == 0.0).map(|f| f as i64))
            .map(Some)
            .ok_or_else(|| invalid_value(key, v, "expected an integer")),
        Some(v @ Value::String(s)) => {
            s.trim().parse().map(Some).map_err(|_| invalid_value(key, v, "expected an integer"))
        }
        Some(v) => Err(invalid_value(key, v, "expected an integer")),
    }
}

/// A wrongly typed field, in MLflow's own words (`Invalid value 123 for parameter 'name'
/// supplied.`, the value as JSON), so clients and MLflow's tests that match on it agree.
pub(crate) fn invalid_value(key: &str, v: &Value, hint: &str) -> ApiError {
    let mut shown = v.to_string();
    if shown.chars().count() > 200 {
        shown = format!("{}…", shown.chars().take(200).collect::<String>());
    }
    ApiError::invalid(format!("Invalid value {shown} for parameter '{key}' supplied. Hint: {hint}."))
}

pub(crate) fn experiment_id(s: &str) -> Result<i64, ApiError> {
    s.trim()
        .parse::<i64>()
        .ok()
        .filter(|i| *i >= 0)
        .ok_or_else(|| ApiError::not_found(format!("No Experiment with id={s} exists")))
}

pub(crate) fn check_key(kind: &str, key: &str) -> Result<(), ApiError> {
    if key.is_empty() || key.len() > MAX_KEY || key.contains("..") || key.starts_with('/') {
        return Err(ApiError::invalid(format!(
            "Invalid {kind} name: '{}'. Names may be up to {MAX_KEY} characters, and may not be empty, start with '/' or contain '..'.",
            key.chars().take(300).collect::<String>()
        )));
    }
    Ok(())
}

pub(crate) fn check_value(kind: &str, key: &str, value: &str, max: usize) -> Result<(), ApiError> {
    if value.chars().count() > max {
        return Err(ApiError::invalid(format!(
            "{kind} '{key}' had length {}, which exceeded length limit of {max}",
            value.chars().count()
        )));
    }
    Ok(())
}

pub(crate) fn max_results(r: &Req, default: i64) -> Result<usize, ApiError> {
    let n = r.opt_i64("max_results")?.unwrap_or(default);
    if !(1..=MAX_RESULTS).contains(&n) {
        return Err(ApiError::invalid(format!(
            "Invalid value {n} for parameter 'max_results' supplied. It must be at most {MAX_RESULTS}, and positive."
        )));
    }
    Ok(n as usize)
}

pub(crate) fn page_offset(r: &Req) -> Result<usize, ApiError> {
    match r.opt_str("page_token")?.filter(|t| !t.is_empty()) {
        None => Ok(0),
        Some(t) => search::parse_page_token(&t).map_err(|e| ApiError::invalid(e.to_string())),
    }
}

impl IntoResponse for Req {
    fn into_response(self) -> Response {
        Json(Value::Object(self.0)).into_response()
    }
}

/// Set by the guard on each request that passed: whether it came over HTTPS, for the
/// handlers that write cookies.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Https(pub bool);

/// A token is ~40 bytes; nothing bigger needs reading.
pub(crate) const MAX_FORM: usize = 16 * 1024;

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn query_strings_decode() {
        assert_eq!(
            form_pairs("run_id=ab&metric_key=val%20loss&x=a+b&bad=%zz&end=%4"),
            vec![
                ("run_id".into(), "ab".into()),
                ("metric_key".into(), "val loss".into()),
                ("x".into(), "a b".into()),
                ("bad".into(), "%zz".into()),
                ("end".into(), "%4".into())
            ]
        );
        assert_eq!(form_pairs(""), vec![]);
    }

    #[test]
    fn numbers_read_as_mlflow_writes_them() {
        assert!(value_f64(Some(&json!("Infinity")), "v").is_ok_and(|v| v.is_infinite()));
        assert!(value_f64(Some(&json!("1e-3")), "v").is_ok_and(|v| v == 0.001));
        assert!(value_f64(Some(&json!({})), "v").is_err());
        assert!(value_f64(None, "v").is_err());
    }

    #[test]
    fn components_are_percent_encoded() {
        assert_eq!(encode_component("metrics.rmse ASC"), "metrics.rmse%20ASC");
        assert_eq!(encode_component("a&b=<c>~é"), "a%26b%3D%3Cc%3E~%C3%A9");
        assert_eq!(encode_attr("a b&c\"é.txt"), "a%20b&c%22%C3%A9.txt");
        assert_eq!(percent_decode("a%2Bb+c", true), "a+b c");
        assert_eq!(percent_decode("a%2Bb+c", false), "a+b+c");
    }
}
