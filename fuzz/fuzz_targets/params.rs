//! Params files (YAML, JSON, TOML) and --param flags.
#![no_main]
use std::path::Path;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&sel, rest)) = data.split_first() else { return };
    let name = ["p.yaml", "p.json", "p.toml"][sel as usize % 3];
    if let Err(e) = repro_exec::params::parse_params(Path::new(name), rest) {
        let msg = e.to_string();
        assert!(!msg.contains('\n'), "{msg}");
    }
    if let Ok(s) = std::str::from_utf8(rest) {
        let _ = repro_core::params::parse_param_flag(s);
    }
});
