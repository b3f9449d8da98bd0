//! Pickles and joblib files: the modules they import (the opcode scan in `pickles.rs`),
//! the library of the pickled object's own class, and scikit-learn's `_sklearn_version`.

use super::{distribution, plain_version, Format, ModelFile};
use crate::pickles;

/// Standard-library modules a pickle names for containers and helpers: never the library
/// that made the model.
const STDLIB: [&str; 12] = [
    "collections",
    "copy",
    "datetime",
    "decimal",
    "functools",
    "fractions",
    "operator",
    "pathlib",
    "re",
    "types",
    "uuid",
    "_collections_abc",
];

/// A pickle (protocol 2+ starts with PROTO, older ones with an opcode such as `(`, `c`,
/// `]`, `}`) that names at least one module; joblib's when it names joblib's own classes.
pub(super) fn read(bytes: &[u8]) -> Option<ModelFile> {
    if !looks_like_pickle(bytes) {
        return None;
    }
    let scan = pickles::scan(bytes);
    if scan.modules.is_empty() {
        return None;
    }
    let mut m =
        ModelFile::new(if scan.modules.iter().any(|m| m == "joblib") { Format::Joblib } else { Format::Pickle });
    fill(&mut m, &scan);
    if m.format == Format::Joblib && m.library.as_deref() == Some("scikit-learn") && m.version.is_none() {
        m.version = sklearn_version_by_bytes(bytes);
    }
    Some(m)
}

/// The first byte of a pickle.
pub(super) fn looks_like_pickle(bytes: &[u8]) -> bool {
    matches!(bytes.first(), Some(0x80 | b'(' | b'c' | b']' | b'}' | b'N' | b'I'))
}

/// Imports, library and version from a scan (shared with PyTorch's `data.pkl`).
pub(super) fn fill(m: &mut ModelFile, scan: &pickles::Scan) {
    for module in scan.modules.iter().filter(|x| !STDLIB.contains(&x.as_str())) {
        let d = distribution(module);
        if !m.imports.contains(&d) {
            m.imports.push(d);
        }
    }
    if m.library.is_none() {
        // The pickled object's own class comes first; joblib's wrappers and the standard
        // library's containers are not what made the model.
        m.library = scan
            .modules
            .iter()
            .find(|x| x.as_str() != "joblib" && !STDLIB.contains(&x.as_str()))
            .map(|x| distribution(x));
    }
    if m.library.as_deref() == Some("scikit-learn") {
        m.version = scan.sklearn_version.as_deref().and_then(plain_version);
    }
}

/// `_sklearn_version` and the short string after it, found by its bytes: joblib writes
/// numpy arrays raw in the middle of the pickle, where the opcode scan stops, and the
/// estimator's state (with the version) comes after them.
pub(super) fn sklearn_version_by_bytes(bytes: &[u8]) -> Option<String> {
    const KEY: &[u8] = b"\x8c\x10_sklearn_version";
    let at = bytes.windows(KEY.len()).rposition(|w| w == KEY)? + KEY.len();
    let mut rest = bytes.get(at..)?;
    if rest.first() == Some(&0x94) {
        rest = &rest[1..]; // MEMOIZE
    }
    match rest {
        [0x8c, n, tail @ ..] => plain_version(&String::from_utf8_lossy(tail.get(..usize::from(*n))?)),
        _ => None,
    }
}
