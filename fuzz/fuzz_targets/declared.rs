//! Declared environment files, all formats in one target (the first byte picks the format);
//! each format also has a target of its own.
#![no_main]
use std::path::Path;

use libfuzzer_sys::fuzz_target;

const NAMES: [&str; 7] = [
    "requirements.txt",
    "environment.yml",
    "pyproject.toml",
    "uv.lock",
    "poetry.lock",
    "Pipfile.lock",
    "conda-lock.yml",
];

fuzz_target!(|data: &[u8]| {
    let Some((&sel, rest)) = data.split_first() else { return };
    let Ok(text) = std::str::from_utf8(rest) else { return };
    let name = NAMES[sel as usize % NAMES.len()];
    if let Err(e) = repro_capture::declared::parse_text(&Path::new("/nonexistent-fuzz-dir").join(name), text) {
        // Errors are one line naming the file.
        let msg = e.to_string();
        assert!(!msg.contains('\n'), "{msg}");
        assert!(msg.contains(name), "{msg}");
    }
});
