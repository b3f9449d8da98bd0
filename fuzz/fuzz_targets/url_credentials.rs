//! URL credentials removed from text before it is recorded (declared files, remotes,
//! package URLs) and masked in what is shown: never a panic, and what comes out holds no
//! credential, keeps every line, and strips to itself.
#![no_main]
use libfuzzer_sys::fuzz_target;
use repro_core::secrets::{has_credentials, mask_text, strip_text, strip_url};

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let (clean, found) = strip_text(&text);
    assert!(!has_credentials(&clean), "{text:?} -> {clean:?}");
    assert_eq!(clean.lines().count(), text.lines().count());
    assert!(found.iter().all(|f| f.line >= 1 && f.line <= text.lines().count().max(1)));
    let (again, more) = strip_text(&clean);
    assert!(more.is_empty() && again == clean);
    assert!(!has_credentials(&mask_text(&text)));
    let _ = strip_url(&text);
});
