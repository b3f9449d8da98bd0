//! Lines a command appends to REPRO_METRICS.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    for (i, line) in text.lines().enumerate() {
        if let Err(e) = repro_core::metrics::parse_line(i + 1, line) {
            assert!(e.to_string().starts_with(&format!("line {}:", i + 1)));
        }
    }
});
