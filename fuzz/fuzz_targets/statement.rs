//! in-toto statements (envelope payloads) as verification reads them: never a panic.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = repro_core::provenance::parse_statement(data);
});
