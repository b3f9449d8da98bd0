//! Hand-made inputs for each format and its malformed variants; the files real libraries
//! wrote are in `tests/fixtures/models/` (read by `tests/models.rs`).

use super::*;
use proptest::prelude::*;

fn ubj_key(out: &mut Vec<u8>, k: &str) {
    out.push(b'L');
    out.extend_from_slice(&(k.len() as i64).to_be_bytes());
    out.extend_from_slice(k.as_bytes());
}

/// `{"learner": {"w": [1.0, 2.0] (typed f32)}, "version": [3, 2, 0]}` as XGBoost writes it.
fn xgboost_ubj() -> Vec<u8> {
    let mut b = vec![b'{'];
    ubj_key(&mut b, "learner");
    b.push(b'{');
    ubj_key(&mut b, "w");
    b.extend_from_slice(b"[$d#L");
    b.extend_from_slice(&2i64.to_be_bytes());
    b.extend_from_slice(&1f32.to_be_bytes());
    b.extend_from_slice(&2f32.to_be_bytes());
    ubj_key(&mut b, "name");
    b.push(b'S');
    ubj_key(&mut b, "gbtree");
    b.push(b'}');
    ubj_key(&mut b, "version");
    b.extend_from_slice(b"[#L");
    b.extend_from_slice(&3i64.to_be_bytes());
    b.extend_from_slice(&[b'i', 3, b'i', 2, b'i', 0]);
    b.push(b'}');
    b
}

fn pb_varint(out: &mut Vec<u8>, mut v: u64) {
    loop {
        let b = (v & 0x7f) as u8;
        v >>= 7;
        if v == 0 {
            out.push(b);
            return;
        }
        out.push(b | 0x80);
    }
}

fn pb_bytes(out: &mut Vec<u8>, field: u64, body: &[u8]) {
    pb_varint(out, field << 3 | 2);
    pb_varint(out, body.len() as u64);
    out.extend_from_slice(body);
}

/// ir_version 9, skl2onnx 1.17.0, a graph, opsets "" 17 and ai.onnx.ml 3.
fn onnx() -> Vec<u8> {
    let mut b = vec![0x08, 9];
    pb_bytes(&mut b, 2, b"skl2onnx");
    pb_bytes(&mut b, 3, b"1.17.0");
    pb_bytes(&mut b, 7, &[0x0a, 0x01, b'n']);
    for (d, v) in [("", 17u64), ("ai.onnx.ml", 3)] {
        let mut op = Vec::new();
        if !d.is_empty() {
            pb_bytes(&mut op, 1, d.as_bytes());
        }
        op.push(0x10);
        pb_varint(&mut op, v);
        pb_bytes(&mut b, 8, &op);
    }
    b
}

fn safetensors(header: &str) -> Vec<u8> {
    let mut b = (header.len() as u64).to_le_bytes().to_vec();
    b.extend_from_slice(header.as_bytes());
    b.extend_from_slice(&[0u8; 8]);
    b
}

#[test]
fn lightgbm_text_names_the_library_and_the_format_version() {
    let m = identify("model.txt", b"tree\nversion=v4\nnum_class=1\n\nTree=0\n").expect("lightgbm");
    assert_eq!((m.format, m.library.as_deref(), m.version.as_deref()), (Format::LightgbmText, Some("lightgbm"), None));
    assert_eq!(m.format_version.as_deref(), Some("v4"));
    assert!(m.describe().contains("written by lightgbm (the file does not say which version)"), "{}", m.describe());
    assert_eq!(identify("model.txt", b"tree\nnum_class=1\n"), None, "no version line: not one");
    assert_eq!(identify("model.txt", b"trees and flowers\n"), None);
}

#[test]
fn json_models_of_xgboost_and_lightgbm() {
    let x = identify(
        "m.json",
        br#"{"learner": {"attributes": {}, "gradient_booster": {"model": [1, 2]}}, "version": [3, 2, 0]}"#,
    )
    .expect("xgboost");
    assert_eq!(
        (x.format, x.library.as_deref(), x.version.as_deref()),
        (Format::XgboostJson, Some("xgboost"), Some("3.2.0"))
    );
    let l = identify("dump.json", br#"{"name":"tree","version":"v4","num_class":1,"tree_info":[]}"#).expect("lightgbm");
    assert_eq!((l.format, l.format_version.as_deref()), (Format::LightgbmJson, Some("v4")));
    assert_eq!(identify("x.json", br#"{"name": "tree"}"#), None, "not enough to say");
    assert_eq!(identify("x.json", br#"{"learner": 1, "version": "#), None, "cut short");
    let odd = identify("m.json", br#"{"learner": {}, "version": ["3\n", 2]}"#).expect("xgboost");
    assert_eq!(odd.version, None, "a version that is not numbers is not shown");
}

#[test]
fn xgboost_ubjson_finds_the_top_level_version() {
    let m = identify("m.ubj", &xgboost_ubj()).expect("ubjson");
    assert_eq!(
        (m.format, m.library.as_deref(), m.version.as_deref()),
        (Format::XgboostUbjson, Some("xgboost"), Some("3.2.0"))
    );
    let b = xgboost_ubj();
    for cut in 0..b.len() {
        let _ = identify("m.ubj", &b[..cut]);
    }
    // A count far beyond the bytes present: refused, not allocated or looped over.
    let mut huge = vec![b'{'];
    ubj_key(&mut huge, "learner");
    huge.extend_from_slice(b"[$d#L\x7f\xff\xff\xff\xff\xff\xff\xff");
    assert_eq!(identify("m.ubj", &huge), None);
    let mut deep = vec![b'{'];
    ubj_key(&mut deep, "learner");
    deep.extend(std::iter::repeat_n(b'[', 100_000));
    assert_eq!(identify("m.ubj", &deep), None, "nesting is bounded");
}

#[test]
fn onnx_producer_ir_and_opsets() {
    let m = identify("model.onnx", &onnx()).expect("onnx");
    assert_eq!(
        (m.format, m.library.as_deref(), m.version.as_deref()),
        (Format::Onnx, Some("skl2onnx"), Some("1.17.0"))
    );
    assert_eq!(m.format_version.as_deref(), Some("IR 9"));
    assert_eq!(m.details["opsets"], "ai.onnx 17, ai.onnx.ml 3");
    assert_eq!(m.details["producer"], "skl2onnx 1.17.0");
    // Cut short: understood from its first fields only when named .onnx.
    let b = onnx();
    let cut = &b[..b.len() - 3];
    assert!(identify("model.onnx", cut).is_some());
    assert_eq!(identify("model.bin", cut), None);
    for n in 0..b.len() {
        let _ = identify("model.onnx", &b[..n]);
    }
    assert_eq!(identify("x.onnx", &[0x08, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]), None);
}

#[test]
fn safetensors_metadata_names_the_framework() {
    let st = safetensors(r#"{"__metadata__":{"format":"pt"},"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}"#);
    let m = identify("model.safetensors", &st).expect("safetensors");
    assert_eq!((m.format, m.library.as_deref()), (Format::Safetensors, Some("torch")));
    assert_eq!(m.details["format"], "pt");
    let bare = safetensors(r#"{"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}"#);
    assert_eq!(identify("w.safetensors", &bare).expect("safetensors").library, None);
    assert_eq!(identify("x", &safetensors(r#"{"w": 3}"#)), None, "not a tensor table");
    let mut lying = safetensors(r#"{"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}"#);
    lying[..8].copy_from_slice(&u64::MAX.to_le_bytes());
    assert_eq!(identify("x", &lying), None);
}

#[test]
fn pickles_name_their_library_and_scikit_learns_version() {
    // PROTO 4, "sklearn.linear_model._base" "LinearRegression" STACK_GLOBAL, then the
    // state's "_sklearn_version" "1.5.2".
    let mut p = vec![0x80, 4];
    for s in ["sklearn.linear_model._base", "LinearRegression"] {
        p.push(0x8c);
        p.push(s.len() as u8);
        p.extend_from_slice(s.as_bytes());
    }
    p.push(0x93);
    for s in ["_sklearn_version", "1.5.2"] {
        p.push(0x8c);
        p.push(s.len() as u8);
        p.extend_from_slice(s.as_bytes());
    }
    p.push(b'.');
    let m = identify("model.pkl", &p).expect("pickle");
    assert_eq!(
        (m.format, m.library.as_deref(), m.version.as_deref()),
        (Format::Pickle, Some("scikit-learn"), Some("1.5.2"))
    );
    assert_eq!(m.imports, ["scikit-learn"]);
    assert_eq!(identify("x.pkl", b"\x80\x04N."), None, "a pickle of None imports nothing");
}

#[test]
fn zips_that_are_no_model_and_damaged_zips() {
    assert!(is_zip(b"PK\x03\x04rest"));
    assert_eq!(identify("a.zip", b"PK\x03\x04 not really a zip"), None);
    assert_eq!(identify("a.pt", b"PK\x03\x04"), None);
}

#[test]
fn garbage_is_not_understood() {
    for g in [&b""[..], b"\x00", b"{", b"{}", b"[1,2]", b"tree", b"\x08", b"\x80", b"hello world\n"] {
        assert_eq!(identify("model.onnx", g), None, "{g:?}");
    }
}

proptest! {
    #[test]
    fn any_bytes_any_name_no_panic(bytes in proptest::collection::vec(any::<u8>(), 0..600), onnx in any::<bool>()) {
        let _ = identify(if onnx { "m.onnx" } else { "m" }, &bytes);
    }

    #[test]
    fn any_prefix_of_a_valid_file_no_panic(cut in 0usize..200, which in 0usize..3) {
        let b = match which {
            0 => xgboost_ubj(),
            1 => onnx(),
            _ => safetensors(r#"{"__metadata__":{"format":"pt"},"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}"#),
        };
        let _ = identify("m.onnx", &b[..cut.min(b.len())]);
    }

    #[test]
    fn flipped_bytes_no_panic(pos in 0usize..120, byte in any::<u8>(), which in 0usize..3) {
        let mut b = match which {
            0 => xgboost_ubj(),
            1 => onnx(),
            _ => safetensors(r#"{"__metadata__":{"format":"pt"},"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}"#),
        };
        let n = b.len();
        b[pos % n] = byte;
        if let Some(m) = identify("m.onnx", &b) {
            for text in m.details.values().chain(m.version.iter()).chain(m.library.iter()) {
                prop_assert!(!text.chars().any(char::is_control), "{text:?}");
            }
        }
    }
}
