//! What every declared-environment target checks: parsing never panics, and an error is
//! one line naming the file and a line number (from 1).

use std::path::Path;

pub fn check(name: &str, data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let path = Path::new("/nonexistent-fuzz-dir").join(name);
    if let Err(e) = repro_capture::declared::parse_text(&path, text) {
        let msg = e.to_string();
        assert!(!msg.contains('\n'), "{msg}");
        let at = msg.find(&format!("{name}:")).unwrap_or_else(|| panic!("no {name}: in {msg}"));
        let line = &msg[at + name.len() + 1..];
        assert!(line.starts_with(|c: char| ('1'..='9').contains(&c)), "no line number: {msg}");
    }
}
