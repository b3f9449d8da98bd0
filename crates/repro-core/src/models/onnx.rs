//! ONNX: a protobuf `ModelProto`. The fields read: `ir_version` (1, varint),
//! `producer_name` (2) and `producer_version` (3), the converter that wrote it (`skl2onnx`
//! 1.17.0, `pytorch` 2.4.0), and `opset_import` (8, repeated `OperatorSetIdProto`: `domain`
//! 1, `version` 2). Everything else — the graph and its weights — is skipped by length.
//!
//! A hand-written reader of protobuf's wire format (varints and length-delimited fields,
//! forty lines) instead of `prost`: these four fields need no generated code, no build
//! step, and no dependency in the crate every other one depends on.

use super::{distribution, plain_text, plain_version, Format, ModelFile};

/// One field: its number and its value (a varint, or the bytes of a length-delimited one;
/// fixed-width values are skipped and reported as `Fixed`).
enum Value<'a> {
    Varint(u64),
    Bytes(&'a [u8]),
    Fixed,
}

/// The fields of one message, in order, and whether the message parsed to its end: at the
/// first malformed byte the fields read before it are kept (a file cut short still says
/// what its first fields said).
fn fields(mut b: &[u8]) -> (Vec<(u64, Value<'_>)>, bool) {
    let mut out = Vec::new();
    while !b.is_empty() {
        let Some((tag, rest)) = varint(b) else { return (out, false) };
        let (field, wire) = (tag >> 3, tag & 7);
        if field == 0 {
            return (out, false);
        }
        let value = match wire {
            0 => match varint(rest) {
                Some((v, r)) => {
                    b = r;
                    Value::Varint(v)
                }
                None => return (out, false),
            },
            1 | 5 => {
                let n = if wire == 1 { 8 } else { 4 };
                let Some(r) = rest.get(n..) else { return (out, false) };
                b = r;
                Value::Fixed
            }
            2 => {
                let Some((len, r)) = varint(rest) else { return (out, false) };
                let Some(body) = usize::try_from(len).ok().and_then(|l| r.get(..l)) else { return (out, false) };
                b = &r[body.len()..];
                Value::Bytes(body)
            }
            _ => return (out, false), // groups (3, 4) are deprecated; 6, 7 do not exist
        };
        out.push((field, value));
    }
    (out, true)
}

/// A base-128 varint (at most ten bytes) and what follows it.
fn varint(b: &[u8]) -> Option<(u64, &[u8])> {
    let mut v = 0u64;
    for (i, &byte) in b.iter().enumerate().take(10) {
        v |= u64::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            return Some((v, &b[i + 1..]));
        }
    }
    None
}

/// `named_onnx`: the file's name ends in `.onnx`, which lets a file cut short (only its start
/// was read) count when its first fields are those of a model.
pub(super) fn read(bytes: &[u8], named_onnx: bool) -> Option<ModelFile> {
    // Every ModelProto a converter writes starts with ir_version (field 1, varint).
    if bytes.first() != Some(&0x08) {
        return None;
    }
    let (fields, complete) = fields(bytes);
    let mut ir = None;
    let (mut producer, mut producer_version, mut graph) = (None, None, false);
    let mut opsets: Vec<(String, u64)> = Vec::new();
    for (n, v) in &fields {
        match (n, v) {
            (1, Value::Varint(x)) => ir = Some(*x),
            (2, Value::Bytes(s)) => producer = std::str::from_utf8(s).ok().map(plain_text),
            (3, Value::Bytes(s)) => producer_version = std::str::from_utf8(s).ok().and_then(plain_version),
            (7, Value::Bytes(_)) => graph = true,
            (8, Value::Bytes(s)) => {
                let (inner, _) = self::fields(s);
                let mut domain = String::new();
                let mut version = None;
                for (k, x) in inner {
                    match (k, x) {
                        (1, Value::Bytes(d)) => domain = std::str::from_utf8(d).map(plain_text).unwrap_or_default(),
                        (2, Value::Varint(x)) => version = Some(x),
                        _ => {}
                    }
                }
                if let Some(v) = version {
                    if opsets.len() < 16 {
                        opsets.push((if domain.is_empty() { "ai.onnx".into() } else { domain }, v));
                    }
                }
            }
            _ => {}
        }
    }
    let ir = ir.filter(|v| (1..=100).contains(v))?;
    let whole = complete && graph;
    let cut_short = !complete && named_onnx && producer.as_deref().is_some_and(|p| !p.is_empty());
    if !whole && !cut_short {
        return None;
    }
    let mut m = ModelFile::new(Format::Onnx);
    m.format_version = Some(format!("IR {ir}"));
    if let Some(p) = producer.filter(|p| !p.is_empty()) {
        // The converter's distribution: "pytorch" is torch's exporter.
        let dist = match p.to_ascii_lowercase().as_str() {
            "pytorch" => "torch".to_string(),
            "tf2onnx" | "skl2onnx" | "onnxmltools" | "keras2onnx" => p.to_ascii_lowercase(),
            _ => distribution(&p.to_ascii_lowercase()),
        };
        m.details.insert(
            "producer".into(),
            match &producer_version {
                Some(v) => format!("{p} {v}"),
                None => p.clone(),
            },
        );
        m.library = Some(dist);
        m.version = producer_version;
    }
    if !opsets.is_empty() {
        let o: Vec<String> = opsets.iter().map(|(d, v)| format!("{d} {v}")).collect();
        m.details.insert("opsets".into(), o.join(", "));
    }
    Some(m)
}
