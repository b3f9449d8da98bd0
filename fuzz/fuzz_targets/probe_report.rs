//! The probe's per-process reports (`<pid>.json`, `<pid>.files`, `<pid>.paths`/`.modes`),
//! written by Python code inside the user's process, so anything the script does to them
//! must not panic repro: never a panic, and every path parsed is absolute.
#![no_main]
use libfuzzer_sys::fuzz_target;
use repro_core::probe::{merge, parse_events, parse_files, parse_report};

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let (files, _) = parse_files(&text);
    let (paths, modes) = text.split_once('\n').unwrap_or((&text, ""));
    let events = parse_events(paths, modes, "/work");
    assert!(files.iter().chain(&events).all(|f| f.path.starts_with('/')));
    if let Ok(r) = parse_report(data, files) {
        let m = merge(vec![r.clone(), r]);
        assert_eq!(m.processes, 2);
    }
});
