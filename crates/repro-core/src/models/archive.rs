//! Zip archives: PyTorch's `torch.save` (a folder with `data.pkl`, `version`, `data/0` …),
//! Keras 3's `.keras` (`metadata.json` with `keras_version`, `config.json`, weights) and
//! skops's `.skops` (`schema.json` with the object's tree, `protocol`, `_skops_version`).

use std::io::{Read, Seek};

use serde_json::Value;

use super::{distribution, pickle, plain_text, plain_version, Format, ModelFile};
use crate::pickles;

/// The most of one entry read: PyTorch's `data.pkl` holds the object's structure, not its
/// tensors (those are separate entries), and a schema or metadata file is small. A larger
/// (or a zip bomb's) entry is read this far and no further.
const ENTRY_LIMIT: u64 = 64 << 20;

pub(super) fn read<R: Read + Seek>(reader: R) -> Option<ModelFile> {
    let mut zip = zip::ZipArchive::new(reader).ok()?;
    let names: Vec<String> = zip.file_names().filter_map(Result::ok).map(|n| n.into_owned()).collect();
    // PyTorch: `<folder>/data.pkl` at the archive's first level (the folder is the file's
    // stem, or `archive`).
    if let Some(data) = names.iter().find(|n| n.ends_with("/data.pkl") && n.matches('/').count() == 1) {
        let folder = data.trim_end_matches("data.pkl").to_string();
        let bytes = entry(&mut zip, data)?;
        let mut m = ModelFile::new(Format::TorchZip);
        m.library = Some("torch".into());
        pickle::fill(&mut m, &pickles::scan(&bytes));
        m.library = Some("torch".into());
        m.version = None;
        // `version` is the archive format (3 today); newer PyTorch also writes `.data/version`.
        for v in [format!("{folder}version"), format!("{folder}.data/version")] {
            if let Some(v) = entry(&mut zip, &v).and_then(|b| plain_version(&String::from_utf8_lossy(&b))) {
                m.format_version = Some(v);
                break;
            }
        }
        return Some(m);
    }
    if names.iter().any(|n| n == "metadata.json") {
        let meta: Value = serde_json::from_slice(&entry(&mut zip, "metadata.json")?).ok()?;
        let version = meta.get("keras_version")?.as_str()?;
        let mut m = ModelFile::new(Format::Keras);
        m.library = Some("keras".into());
        m.version = plain_version(version);
        return Some(m);
    }
    if names.iter().any(|n| n == "schema.json") {
        let schema: Value = serde_json::from_slice(&entry(&mut zip, "schema.json")?).ok()?;
        let skops = schema.get("_skops_version")?.as_str()?;
        let mut m = ModelFile::new(Format::Skops);
        m.format_version = schema.get("protocol").and_then(Value::as_u64).map(|p| p.to_string());
        if let Some(v) = plain_version(skops) {
            m.details.insert("skops".into(), v);
        }
        // The top object's module (`sklearn.linear_model._logistic`) names the library;
        // scikit-learn's estimators keep `_sklearn_version` in their state.
        if let Some(module) = schema.get("__module__").and_then(Value::as_str) {
            let top = module.split('.').next().unwrap_or_default();
            if !top.is_empty() && top.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                m.library = Some(distribution(top));
            }
        }
        if m.library.as_deref() == Some("scikit-learn") {
            // skops keeps a string as its JSON text (`"\"1.9.1\""`); older protocols as is.
            m.version = find_string(schema.get("content"), "_sklearn_version", 0)
                .and_then(|v| plain_version(v.trim().trim_matches('"')));
        }
        if let Some(class) = schema.get("__class__").and_then(Value::as_str) {
            m.details.insert("class".into(), plain_text(class));
        }
        return Some(m);
    }
    None
}

/// One entry's bytes, at most `ENTRY_LIMIT`; `None` when absent or unreadable.
fn entry<R: Read + Seek>(zip: &mut zip::ZipArchive<R>, name: &str) -> Option<Vec<u8>> {
    let f = zip.by_name(name).ok()?;
    let mut out = Vec::new();
    f.take(ENTRY_LIMIT).read_to_end(&mut out).ok()?;
    Some(out)
}

/// The string stored under `key` somewhere in skops's tree: a plain string, or a node whose
/// `content` is one. Depth-bounded: the tree is the file's to choose.
fn find_string(v: Option<&Value>, key: &str, depth: usize) -> Option<String> {
    let v = v?;
    if depth > 16 {
        return None;
    }
    match v {
        Value::Object(map) => {
            if let Some(found) = map.get(key) {
                match found {
                    Value::String(s) => return Some(s.clone()),
                    Value::Object(node) => {
                        if let Some(Value::String(s)) = node.get("content") {
                            return Some(s.clone());
                        }
                    }
                    _ => {}
                }
            }
            map.values().find_map(|x| find_string(Some(x), key, depth + 1))
        }
        Value::Array(items) => items.iter().find_map(|x| find_string(Some(x), key, depth + 1)),
        _ => None,
    }
}
