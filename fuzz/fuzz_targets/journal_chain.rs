//! Journal chains as fsck reads them from a database anyone with access may have edited:
//! never a panic, and a chain written by repro's own hashing checks clean.
#![no_main]
use libfuzzer_sys::fuzz_target;
use repro_store::journal::{check_chain, entry_hash, Entry};

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    // Each line is one entry's body; half the time the chain is hashed honestly.
    let honest = data.first().is_some_and(|b| b % 2 == 0);
    let mut entries = Vec::new();
    let mut prev: Option<String> = None;
    for (i, body) in text.lines().enumerate() {
        let seq = i as i64 + 1;
        let hash = if honest { entry_hash("run/x", seq, 0, "log", body, prev.as_deref()) } else { body.chars().rev().collect() };
        entries.push(Entry { seq, at_ms: 0, kind: "log".into(), body: body.to_string(), prev: prev.clone(), hash: hash.clone() });
        prev = Some(hash);
    }
    let problems = check_chain("run/x", &entries);
    if honest {
        assert!(problems.iter().all(|p| !p.problem.contains("hash") && !p.problem.contains("follow")), "{problems:?}");
    }
});
