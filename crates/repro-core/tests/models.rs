//! Model files written by the real libraries (fixtures/models/generate.py, the versions of
//! requirements-frameworks.txt): what each says about itself, and that no prefix or damaged
//! copy of any of them panics.

use repro_core::models::{identify, Format};

fn read(name: &str) -> Vec<u8> {
    std::fs::read(format!("{}/tests/fixtures/models/{name}", env!("CARGO_MANIFEST_DIR"))).expect("fixture")
}

const ALL: [&str; 12] = [
    "lightgbm.txt",
    "lightgbm_dump.json",
    "xgboost.json",
    "xgboost.ubj",
    "sklearn.pkl",
    "sklearn.joblib",
    "sklearn.onnx",
    "torch.onnx",
    "torch_state.pt",
    "torch.safetensors",
    "synthetic.keras",
    "synthetic.skops",
];

#[test]
fn each_real_file_names_its_writer() {
    // (file, format, library, its version, the format's version when checked)
    type Row = (&'static str, Format, Option<&'static str>, Option<&'static str>, Option<&'static str>);
    let expect: [Row; 12] = [
        ("lightgbm.txt", Format::LightgbmText, Some("lightgbm"), None, Some("v4")),
        ("lightgbm_dump.json", Format::LightgbmJson, Some("lightgbm"), None, Some("v4")),
        ("xgboost.json", Format::XgboostJson, Some("xgboost"), Some("3.2.0"), None),
        ("xgboost.ubj", Format::XgboostUbjson, Some("xgboost"), Some("3.2.0"), None),
        ("sklearn.pkl", Format::Pickle, Some("scikit-learn"), Some("1.9.1"), None),
        ("sklearn.joblib", Format::Joblib, Some("scikit-learn"), Some("1.9.1"), None),
        ("sklearn.onnx", Format::Onnx, Some("skl2onnx"), Some("1.20.0"), None),
        ("torch.onnx", Format::Onnx, Some("torch"), Some("2.15.0"), None),
        ("torch_state.pt", Format::TorchZip, Some("torch"), None, Some("3")),
        ("torch.safetensors", Format::Safetensors, Some("torch"), None, None),
        ("synthetic.keras", Format::Keras, Some("keras"), Some("3.6.0"), None),
        ("synthetic.skops", Format::Skops, Some("scikit-learn"), Some("1.9.1"), Some("2")),
    ];
    for (name, format, library, version, format_version) in expect {
        let m = identify(name, &read(name)).unwrap_or_else(|| panic!("{name} not understood"));
        assert_eq!(m.format, format, "{name}: {m:?}");
        assert_eq!(m.library.as_deref(), library, "{name}: {m:?}");
        assert_eq!(m.version.as_deref(), version, "{name}: {m:?}");
        if format_version.is_some() {
            assert_eq!(m.format_version.as_deref(), format_version, "{name}: {m:?}");
        }
    }
    let pt = identify("torch_state.pt", &read("torch_state.pt")).expect("pt");
    assert_eq!(pt.imports.first().map(String::as_str), Some("torch"), "{pt:?}");
    let pkl = identify("sklearn.pkl", &read("sklearn.pkl")).expect("pkl");
    assert!(pkl.imports.contains(&"numpy".to_string()), "{pkl:?}");
    let onnx = identify("sklearn.onnx", &read("sklearn.onnx")).expect("onnx");
    assert!(onnx.details["opsets"].contains("ai.onnx "), "{onnx:?}");
    assert_eq!(onnx.format_version.as_deref().map(|v| v.starts_with("IR ")), Some(true));
}

#[test]
fn the_name_never_decides_alone() {
    // A LightGBM model under any name is one; a text file named .onnx is not ONNX.
    assert_eq!(identify("model.bin", &read("lightgbm.txt")).map(|m| m.format), Some(Format::LightgbmText));
    assert_eq!(identify("model.onnx", b"ir_version 9\n"), None);
}

#[test]
fn prefixes_and_damaged_copies_never_panic() {
    for name in ALL {
        let bytes = read(name);
        let step = (bytes.len() / 300).max(1);
        for cut in (0..bytes.len()).step_by(step) {
            let _ = identify(name, &bytes[..cut]);
        }
        for pos in (0..bytes.len()).step_by(step.max(3)) {
            let mut b = bytes.clone();
            b[pos] ^= 0xa5;
            let _ = identify(name, &b);
        }
    }
}
