//! JSON models: XGBoost's `save_model("m.json")` (`{"learner": {…}, "version": [3, 2, 0]}`,
//! the version of XGBoost that wrote it) and LightGBM's `dump_model()` written as JSON
//! (`{"name": "tree", "version": "v4", …}`, the format's version).

use serde::de::IgnoredAny;
use serde::Deserialize;
use serde_json::Value;

use super::{plain_version, Format, ModelFile};

/// Only the keys that tell; everything else (the trees) is skipped without being kept.
#[derive(Deserialize)]
struct Top {
    #[serde(default)]
    learner: Option<IgnoredAny>,
    #[serde(default)]
    name: Option<Value>,
    #[serde(default)]
    version: Option<Value>,
    #[serde(default)]
    tree_info: Option<IgnoredAny>,
}

pub(super) fn read(bytes: &[u8]) -> Option<ModelFile> {
    if bytes.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
        return None;
    }
    let top: Top = serde_json::from_slice(bytes).ok()?;
    if top.learner.is_some() {
        let mut m = ModelFile::new(Format::XgboostJson);
        m.library = Some("xgboost".into());
        m.version = top.version.as_ref().and_then(version_array);
        return Some(m);
    }
    let lightgbm = top.name.as_ref().and_then(Value::as_str) == Some("tree") && top.tree_info.is_some();
    if lightgbm {
        let mut m = ModelFile::new(Format::LightgbmJson);
        m.library = Some("lightgbm".into());
        m.format_version = top.version.as_ref().and_then(Value::as_str).and_then(plain_version);
        return Some(m);
    }
    None
}

/// `[3, 2, 0]` → `3.2.0`.
pub(super) fn version_array(v: &Value) -> Option<String> {
    let parts: Vec<u64> = v.as_array()?.iter().map(Value::as_u64).collect::<Option<_>>()?;
    (!parts.is_empty() && parts.len() <= 4).then(|| parts.iter().map(u64::to_string).collect::<Vec<_>>().join("."))
}
