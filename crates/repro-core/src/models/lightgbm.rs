//! LightGBM's text model (`Booster.save_model`): a header of `key=value` lines after a first
//! line `tree`, `version=v4` being the format's version. LightGBM 4.x does not write its own
//! version into the file, so the library is named and its version left to the environment.

use super::{plain_version, Format, ModelFile};

/// The header is short (a few lines of names and feature ranges); a file whose first lines
/// do not fit this is not one.
const HEADER_LINES: usize = 64;

pub(super) fn text(bytes: &[u8]) -> Option<ModelFile> {
    let rest = bytes.strip_prefix(b"tree\n").or_else(|| bytes.strip_prefix(b"tree\r\n"))?;
    let mut m = ModelFile::new(Format::LightgbmText);
    m.library = Some("lightgbm".into());
    for line in rest.split(|&b| b == b'\n').take(HEADER_LINES) {
        let line = String::from_utf8_lossy(line);
        let line = line.trim_end_matches('\r');
        if line.is_empty() {
            break;
        }
        if let Some(v) = line.strip_prefix("version=") {
            m.format_version = plain_version(v);
        }
    }
    m.format_version.is_some().then_some(m)
}
