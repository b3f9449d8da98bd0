//! Approval statements (inside the envelopes of signed approvals): never a panic, and what
//! parses re-serializes to a statement that parses to the same thing.
#![no_main]
use libfuzzer_sys::fuzz_target;
use repro_core::approval::ApprovalStatement;

fuzz_target!(|data: &[u8]| {
    if let Ok(s) = ApprovalStatement::parse(data) {
        let again = ApprovalStatement::parse(&s.payload()).expect("a statement we wrote parses");
        assert_eq!(again, s);
    }
});
