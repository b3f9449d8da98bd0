//! The pickle scan (`repro env parity` reads model artifacts with it): any bytes, no panic,
//! and every name it returns is a plain top-level module name.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    for m in repro_core::pickles::referenced_modules(data) {
        assert!(!m.is_empty() && !m.contains('.') && m.len() <= 100, "{m:?}");
    }
});
