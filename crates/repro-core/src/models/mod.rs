//! What a model file is and which library wrote it, read from its bytes: `repro env
//! parity` fails first on a difference in the library that wrote the artifact, and `repro
//! show` says what each output is.
//!
//! One file per family of formats: pickles and joblib (`pickle.rs`, over the opcode scan in
//! `pickles.rs`), zip archives — PyTorch, Keras, skops (`archive.rs`) —, LightGBM's text
//! model (`lightgbm.rs`), JSON documents — LightGBM's dump, XGBoost's model (`json.rs`) —,
//! XGBoost's UBJSON (`ubjson.rs`), ONNX's protobuf (`onnx.rs`), safetensors
//! (`safetensors.rs`).
//!
//! The content decides, never the name alone: a `model.bin` that is a LightGBM model is
//! one, a `model.onnx` that is not ONNX is nothing. Any bytes are safe: a file that is
//! truncated, damaged or crafted is "not understood" (`None`), never a panic, and no length
//! it states is trusted beyond the bytes present (fuzzed: `fuzz/fuzz_targets/model_file.rs`).

mod archive;
mod json;
mod lightgbm;
mod onnx;
mod pickle;
mod safetensors;
#[cfg(test)]
mod tests;
mod ubjson;

use std::collections::BTreeMap;
use std::io::{Read, Seek};

use serde::{Deserialize, Serialize};

/// The formats understood.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Format {
    Pickle,
    Joblib,
    /// `torch.save` (and `torch.jit.save`): a zip whose `*/data.pkl` is a pickle.
    TorchZip,
    LightgbmText,
    /// `Booster.dump_model()` written as JSON.
    LightgbmJson,
    XgboostJson,
    XgboostUbjson,
    Onnx,
    Safetensors,
    Keras,
    Skops,
}

impl Format {
    pub fn as_str(self) -> &'static str {
        match self {
            Format::Pickle => "pickle",
            Format::Joblib => "joblib",
            Format::TorchZip => "torch-zip",
            Format::LightgbmText => "lightgbm-text",
            Format::LightgbmJson => "lightgbm-json",
            Format::XgboostJson => "xgboost-json",
            Format::XgboostUbjson => "xgboost-ubjson",
            Format::Onnx => "onnx",
            Format::Safetensors => "safetensors",
            Format::Keras => "keras",
            Format::Skops => "skops",
        }
    }

    /// For people: "a LightGBM text model".
    pub fn title(self) -> &'static str {
        match self {
            Format::Pickle => "a pickle",
            Format::Joblib => "a joblib pickle",
            Format::TorchZip => "a PyTorch archive",
            Format::LightgbmText => "a LightGBM text model",
            Format::LightgbmJson => "a LightGBM JSON dump",
            Format::XgboostJson => "an XGBoost JSON model",
            Format::XgboostUbjson => "an XGBoost UBJSON model",
            Format::Onnx => "an ONNX model",
            Format::Safetensors => "a safetensors file",
            Format::Keras => "a Keras archive",
            Format::Skops => "a skops archive",
        }
    }

    /// A format any runtime loads without the library that wrote it (ONNX, safetensors):
    /// serving without the writer is expected, not a gap.
    pub fn portable(self) -> bool {
        matches!(self, Format::Onnx | Format::Safetensors)
    }
}

/// What a model file says about itself.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModelFile {
    pub format: Format,
    /// The distribution that wrote it (`lightgbm`, `torch`, `scikit-learn`, for ONNX the
    /// producer's: `skl2onnx`, `torch`), PEP 503 normalized; `None` when the file does not tell.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub library: Option<String>,
    /// The version of `library` that wrote it, only when the file records it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// The version of the format itself: LightGBM's `v4`, ONNX's IR version, PyTorch's
    /// archive version, skops's protocol.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub format_version: Option<String>,
    /// The distributions its pickled objects import (pickle, joblib, PyTorch), in order of
    /// first use: loading the file imports exactly these.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub imports: Vec<String>,
    /// What else the file says, in its own terms: ONNX's producer and opsets, safetensors'
    /// `__metadata__`, the skops version.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub details: BTreeMap<String, String>,
}

impl ModelFile {
    fn new(format: Format) -> ModelFile {
        ModelFile {
            format,
            library: None,
            version: None,
            format_version: None,
            imports: Vec::new(),
            details: BTreeMap::new(),
        }
    }

    /// One line: "a LightGBM text model (format v4), written by lightgbm 4.6.0".
    pub fn describe(&self) -> String {
        let mut s = self.format.title().to_string();
        if let Some(v) = &self.format_version {
            s.push_str(&format!(" (format {v})"));
        }
        match (&self.library, &self.version) {
            (Some(l), Some(v)) => s.push_str(&format!(", written by {l} {v}")),
            (Some(l), None) => s.push_str(&format!(", written by {l} (the file does not say which version)")),
            _ => {}
        }
        if !self.details.is_empty() {
            let d: Vec<String> = self.details.iter().map(|(k, v)| format!("{k} {v}")).collect();
            s.push_str(&format!("; {}", d.join(", ")));
        }
        s
    }
}

/// The first bytes of every zip archive (a local file header).
pub fn is_zip(head: &[u8]) -> bool {
    head.starts_with(b"PK\x03\x04")
}

/// What the file `name` (its path, for the extension: only a tie-breaker) holding `bytes`
/// is; `None` when it is no model format this module knows. `bytes` may be only the start
/// of a large file: what needs the rest is then left out, or the file not understood.
pub fn identify(name: &str, bytes: &[u8]) -> Option<ModelFile> {
    if is_zip(bytes) {
        return identify_archive(std::io::Cursor::new(bytes));
    }
    lightgbm::text(bytes)
        .or_else(|| safetensors::read(bytes))
        .or_else(|| json::read(bytes))
        .or_else(|| ubjson::xgboost(bytes))
        .or_else(|| onnx::read(bytes, name.to_ascii_lowercase().ends_with(".onnx")))
        .or_else(|| pickle::read(bytes))
}

/// A zip archive read through `reader` (a whole file in memory, or an open file: only the
/// central directory and the small entries that say what the archive is are read).
pub fn identify_archive<R: Read + Seek>(reader: R) -> Option<ModelFile> {
    archive::read(reader)
}

/// A distribution's name as pip compares them, for names a file states.
fn distribution(module_or_name: &str) -> String {
    crate::diff::normalize_package_name(crate::pickles::distribution_of(module_or_name))
}

/// A version string as a file states it, when it is one (short, plain characters): a
/// crafted file cannot put text of its choosing in a report line.
fn plain_version(v: &str) -> Option<String> {
    let v = v.trim();
    let ok = !v.is_empty() && v.len() <= 40 && v.chars().all(|c| c.is_ascii_alphanumeric() || ".+-_!".contains(c));
    ok.then(|| v.to_string())
}

/// A short free-text value a file states (a producer name, a metadata value), with control
/// characters dropped and the length bounded.
fn plain_text(v: &str) -> String {
    let t: String = v.chars().filter(|c| !c.is_control()).take(80).collect();
    t.trim().to_string()
}
