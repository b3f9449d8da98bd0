//! DSSE envelopes as `repro model verify` and `repro bundle import` read them.
#![no_main]
use libfuzzer_sys::fuzz_target;
use repro_core::provenance::Envelope;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Ok(env) = Envelope::parse(text) {
        // What parses writes back out as an envelope that parses to the same thing.
        let again = Envelope::parse(&env.to_json_line()).expect("round trip");
        assert_eq!(again, env);
    }
});
