//! Registry event payloads and model references, as read back from the database and the
//! command line.
#![no_main]
use libfuzzer_sys::fuzz_target;
use repro_core::registry::{Change, ModelRef};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let (kind, payload) = text.split_once('\n').unwrap_or(("register", text));
    if let Ok(change) = Change::from_payload(kind, payload) {
        assert_eq!(change.kind(), kind);
        let again = Change::from_payload(kind, &change.payload()).expect("round trip");
        assert_eq!(again, change);
    }
    if let Some(r) = ModelRef::parse(text) {
        assert_eq!(ModelRef::parse(&r.to_string()), Some(r));
    }
});
