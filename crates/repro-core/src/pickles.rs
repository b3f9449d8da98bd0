//! Which Python modules a pickled artifact refers to: a model pickled by scikit-learn names
//! `sklearn.ensemble._forest`, `numpy._core.multiarray` … in its GLOBAL / STACK_GLOBAL
//! opcodes, and unpickling it imports exactly those. Environment parity uses this to tell
//! the packages an artifact depends on from the rest.
//!
//! A scan, not an unpickler: it walks the opcode stream far enough to find the module names
//! (protocols 0–5) and stops at the first byte it does not understand. Any input is safe.

/// The top-level modules (`sklearn`, `numpy`) a pickle's globals come from, in the order
/// they first appear (the pickled object's own class comes first). Empty for bytes that
/// are not a pickle.
pub fn referenced_modules(bytes: &[u8]) -> Vec<String> {
    scan(bytes).modules
}

/// What the opcode scan found.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Scan {
    /// Top-level modules, in order of first appearance.
    pub modules: Vec<String>,
    /// The string pickled right after `_sklearn_version`: scikit-learn estimators add it to
    /// their state, so a pickle says which scikit-learn wrote it.
    pub sklearn_version: Option<String>,
}

/// The modules a pickle refers to and the scikit-learn version its estimators recorded.
pub fn scan(bytes: &[u8]) -> Scan {
    let mut out = Vec::new();
    let mut sklearn_version: Option<String> = None;
    let mut strings: Vec<String> = Vec::new(); // recent string pushes, for STACK_GLOBAL
    let mut i = 0usize;
    let take = |i: &mut usize, n: usize| -> Option<&[u8]> {
        let s = bytes.get(*i..i.checked_add(n)?)?;
        *i += n;
        Some(s)
    };
    let line = |i: &mut usize| -> Option<&[u8]> {
        let rest = bytes.get(*i..)?;
        let end = rest.iter().position(|&b| b == b'\n')?;
        *i += end + 1;
        Some(&rest[..end])
    };
    let le = |s: &[u8]| s.iter().rev().fold(0u64, |acc, &b| (acc << 8) | u64::from(b));
    while let Some(&op) = bytes.get(i) {
        i += 1;
        let ok = match op {
            // GLOBAL / INST: "module\nname\n".
            b'c' | b'i' => match (line(&mut i), line(&mut i)) {
                (Some(module), Some(_)) => {
                    add(&mut out, module);
                    true
                }
                _ => false,
            },
            // STACK_GLOBAL: module and name were the last two strings pushed.
            0x93 => {
                if strings.len() >= 2 {
                    let module = strings[strings.len() - 2].clone();
                    add(&mut out, module.as_bytes());
                }
                true
            }
            // Strings, remembered for STACK_GLOBAL.
            0x8c => match take(&mut i, 1).and_then(|n| take(&mut i, n[0] as usize)) {
                Some(s) => push(&mut strings, &mut sklearn_version, s),
                None => false,
            },
            b'X' => match take(&mut i, 4).map(le).and_then(|n| take(&mut i, n as usize)) {
                Some(s) => push(&mut strings, &mut sklearn_version, s),
                None => false,
            },
            0x8d => match take(&mut i, 8).map(le).and_then(|n| usize::try_from(n).ok()).and_then(|n| take(&mut i, n)) {
                Some(s) => push(&mut strings, &mut sklearn_version, s),
                None => false,
            },
            // Bytes and byte strings: skipped by length (model weights live here).
            b'C' => take(&mut i, 1).and_then(|n| take(&mut i, n[0] as usize)).is_some(),
            b'B' | b'T' => take(&mut i, 4).map(le).and_then(|n| take(&mut i, n as usize)).is_some(),
            b'U' => take(&mut i, 1).and_then(|n| take(&mut i, n[0] as usize)).is_some(),
            0x8e | 0x96 => {
                take(&mut i, 8).map(le).and_then(|n| usize::try_from(n).ok()).and_then(|n| take(&mut i, n)).is_some()
            }
            // Memo gets push a value this scan does not track (a module name memoized
            // earlier, say): a placeholder keeps STACK_GLOBAL from pairing older strings.
            b'h' => take(&mut i, 1).is_some() && push(&mut strings, &mut sklearn_version, b""),
            b'j' => take(&mut i, 4).is_some() && push(&mut strings, &mut sklearn_version, b""),
            b'g' => line(&mut i).is_some() && push(&mut strings, &mut sklearn_version, b""),
            // Fixed-size arguments.
            0x80 | b'K' | b'q' | 0x82 => take(&mut i, 1).is_some(),
            b'M' | 0x83 => take(&mut i, 2).is_some(),
            b'J' | b'r' | 0x84 => take(&mut i, 4).is_some(),
            b'G' | 0x95 => take(&mut i, 8).is_some(),
            0x8a => take(&mut i, 1).and_then(|n| take(&mut i, n[0] as usize)).is_some(),
            0x8b => take(&mut i, 4).map(le).and_then(|n| take(&mut i, n as usize)).is_some(),
            // Newline-terminated arguments.
            b'I' | b'L' | b'F' | b'S' | b'V' | b'P' | b'p' => line(&mut i).is_some(),
            // The end.
            b'.' => break,
            // No argument.
            b'(' | b')' | b']' | b'}' | b'N' | b'a' | b'b' | b'd' | b'e' | b'l' | b'o' | b's' | b't' | b'u' | b'0'
            | b'1' | b'2' | b'R' | b'Q' | 0x81 | 0x85 | 0x86 | 0x87 | 0x88 | 0x89 | 0x8f | 0x90 | 0x91 | 0x92
            | 0x94 | 0x97 | 0x98 => true,
            _ => false,
        };
        if !ok {
            break;
        }
    }
    Scan { modules: out, sklearn_version }
}

fn push(strings: &mut Vec<String>, sklearn_version: &mut Option<String>, s: &[u8]) -> bool {
    let text = String::from_utf8_lossy(s).into_owned();
    if sklearn_version.is_none() && strings.last().is_some_and(|k| k == "_sklearn_version") {
        // A version is short and plain; anything else is not one (a crafted or odd pickle).
        let plain = !text.is_empty()
            && text.len() <= 32
            && text.chars().all(|c| c.is_ascii_alphanumeric() || ".+-_".contains(c));
        if plain {
            *sklearn_version = Some(text.clone());
        }
    }
    if strings.len() >= 64 {
        strings.drain(..32);
    }
    strings.push(text);
    true
}

fn add(out: &mut Vec<String>, module: &[u8]) {
    let Ok(module) = std::str::from_utf8(module) else { return };
    let top = module.split('.').next().unwrap_or("");
    let valid = !top.is_empty()
        && top.len() <= 100
        && top.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        && !top.starts_with(|c: char| c.is_ascii_digit());
    let builtin = ["builtins", "__builtin__", "copy_reg", "copyreg", "_codecs"].contains(&top);
    if valid && !builtin && !out.iter().any(|m| m == top) {
        out.push(top.to_string());
    }
}

/// The distribution that provides a top-level module, for the common cases where the two
/// names differ; otherwise the module name itself (compared PEP 503-normalized).
pub fn distribution_of(module: &str) -> &str {
    match module {
        "sklearn" => "scikit-learn",
        "skimage" => "scikit-image",
        "PIL" => "pillow",
        "yaml" => "pyyaml",
        "cv2" => "opencv-python",
        "bs4" => "beautifulsoup4",
        "dateutil" => "python-dateutil",
        "google" => "protobuf",
        "xgboost" => "xgboost",
        "lightgbm" => "lightgbm",
        "torch" => "torch",
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn protocol_0_and_2_globals() {
        // pickle.dumps(collections.OrderedDict(), protocol=0) and a protocol-2 GLOBAL.
        let p0 = b"ccollections\nOrderedDict\np0\n((tRp1\n.";
        assert_eq!(referenced_modules(p0), ["collections"]);
        let p2 = b"\x80\x02cnumpy.core.multiarray\n_reconstruct\nq\x00csklearn.tree._tree\nTree\nq\x01\x86q\x02.";
        assert_eq!(referenced_modules(p2), ["numpy", "sklearn"]);
    }

    #[test]
    fn protocol_4_stack_globals_and_skipped_bytes() {
        // PROTO 4, FRAME, SHORT_BINUNICODE "sklearn.ensemble._forest", "RandomForestRegressor",
        // STACK_GLOBAL, a 5-byte SHORT_BINBYTES that looks like a string opcode, then
        // "numpy._core.multiarray" "_reconstruct" STACK_GLOBAL, STOP.
        let mut p = vec![0x80, 4, 0x95, 0, 0, 0, 0, 0, 0, 0, 0];
        for s in ["sklearn.ensemble._forest", "RandomForestRegressor"] {
            p.push(0x8c);
            p.push(s.len() as u8);
            p.extend_from_slice(s.as_bytes());
        }
        p.push(0x93);
        p.extend_from_slice(&[b'C', 5, 0x8c, 3, b'o', b's', 0x93]);
        for s in ["numpy._core.multiarray", "_reconstruct"] {
            p.push(0x8c);
            p.push(s.len() as u8);
            p.extend_from_slice(s.as_bytes());
        }
        p.push(0x93);
        p.push(b'.');
        assert_eq!(referenced_modules(&p), ["sklearn", "numpy"], "in order of first appearance");
        assert_eq!(distribution_of("sklearn"), "scikit-learn");
        assert_eq!(distribution_of("numpy"), "numpy");
    }

    #[test]
    fn garbage_is_empty_not_a_crash() {
        for g in [
            &b""[..],
            b"not a pickle",
            b"\x80\x04\x8c\xff",
            b"c\n",
            b"X\xff\xff\xff\xff",
            b"\x8d\xff\xff\xff\xff\xff\xff\xff\xff",
        ] {
            let _ = referenced_modules(g);
        }
        assert!(referenced_modules(b"hello world").is_empty());
    }

    proptest! {
        #[test]
        fn any_bytes_are_scanned_without_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let found = referenced_modules(&bytes);
            for m in found {
                prop_assert!(!m.is_empty() && !m.contains('.'));
            }
        }
    }
}
