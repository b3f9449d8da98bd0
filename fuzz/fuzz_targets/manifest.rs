//! Snapshot manifests read back from the store.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(m) = repro_core::snapshot::Manifest::from_bytes(data) {
        // Whatever parses re-serializes and re-parses to the same manifest.
        let again = repro_core::snapshot::Manifest::from_bytes(&m.to_bytes()).expect("round trip");
        assert_eq!(again, m);
    }
});
