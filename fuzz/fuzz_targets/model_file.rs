//! What a model file is (`repro env parity`, `repro show` read every output with it): any
//! bytes under any name, no panic, and nothing it reports carries control characters.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // The first byte picks the name: the extension only breaks ties (ONNX cut short).
    let name = if data.first().is_some_and(|b| b & 1 == 1) { "model.onnx" } else { "model" };
    if let Some(m) = repro_core::models::identify(name, data) {
        let texts = m.library.iter().chain(m.version.iter()).chain(m.format_version.iter()).chain(m.details.values());
        for t in texts {
            assert!(!t.chars().any(char::is_control), "{t:?}");
        }
        let _ = m.describe();
    }
});
