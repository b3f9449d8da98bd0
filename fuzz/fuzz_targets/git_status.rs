//! `git status --porcelain=v2 -z` output.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = repro_capture::git::parse_status(data);
});
