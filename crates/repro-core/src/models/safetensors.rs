//! safetensors: an 8-byte little-endian header length, then that many bytes of JSON naming
//! each tensor (`dtype`, `shape`, `data_offsets`) and an optional `__metadata__` map of
//! strings, where writers put `format` (`pt`, `tf`, `flax`, `np`) and the like.

use std::collections::BTreeMap;

use serde_json::Value;

use super::{plain_text, Format, ModelFile};

/// The safetensors library refuses headers above 100 MB; so does this.
const MAX_HEADER: u64 = 100_000_000;

/// Metadata entries shown at most (a file may hold many; the first ones are enough).
const MAX_METADATA: usize = 12;

pub(super) fn read(bytes: &[u8]) -> Option<ModelFile> {
    let n = u64::from_le_bytes(bytes.get(..8)?.try_into().ok()?);
    if !(2..=MAX_HEADER).contains(&n) || bytes.get(8) != Some(&b'{') {
        return None;
    }
    let header = bytes.get(8..8 + usize::try_from(n).ok()?)?;
    let map: BTreeMap<String, Value> = serde_json::from_slice(header).ok()?;
    // Every entry but the metadata is a tensor: a file that merely starts like this is not one.
    let tensors = map.iter().filter(|(k, _)| k.as_str() != "__metadata__");
    let mut any = false;
    for (_, t) in tensors {
        if t.get("dtype").and_then(Value::as_str).is_none() || t.get("data_offsets").is_none() {
            return None;
        }
        any = true;
    }
    let meta = map.get("__metadata__").and_then(Value::as_object);
    if !any && meta.is_none() {
        return None;
    }
    let mut m = ModelFile::new(Format::Safetensors);
    if let Some(meta) = meta {
        for (k, v) in meta.iter().take(MAX_METADATA) {
            if let Some(v) = v.as_str() {
                m.details.insert(plain_text(k), plain_text(v));
            }
        }
        // The framework that wrote it, where the writer said (transformers and
        // safetensors.torch write `format: pt`).
        m.library = match meta.get("format").and_then(Value::as_str) {
            Some("pt") => Some("torch".into()),
            Some("tf") => Some("tensorflow".into()),
            Some("flax") => Some("flax".into()),
            Some("np" | "numpy") => Some("numpy".into()),
            Some("mlx") => Some("mlx".into()),
            _ => None,
        };
    }
    Some(m)
}
