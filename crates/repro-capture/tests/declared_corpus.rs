//! The declared-environment parsers against a corpus of real-world-shaped files
//! (tests/fixtures/declared/), each compared with a committed snapshot of its parse
//! (tests/snapshots/declared/). After an intended change, rewrite the snapshots with
//! `REPRO_BLESS=1 cargo test -p repro-capture --test declared_corpus` and review the diff.
//!
//! Then garbage: truncated and garbled versions of every fixture must parse or fail with a
//! one-line error naming the file and a line, never panic.

use std::path::{Path, PathBuf};

use repro_capture::declared;
use repro_core::record::{DeclaredRequirement, PinStatus};
use serde_json::json;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/declared")
}

/// Each fixture, and whether it is read as a whole (`declared::read`: format, companions,
/// includes) or only its own text parsed (a pyproject.toml beside a lock would be passed
/// over for the lock by `read`).
const CORPUS: [(&str, bool); 11] = [
    ("requirements/requirements.txt", true),
    ("conda/environment.yml", true),
    ("pyproject/pyproject.toml", true),
    ("uv/uv.lock", true),
    ("uv/pyproject.toml", false),
    ("poetry/poetry.lock", true),
    ("poetry/pyproject.toml", false),
    ("poetry-legacy/poetry.lock", true),
    ("pipenv/Pipfile.lock", true),
    ("conda-lock/conda-lock.yml", true),
    ("requirements/constraints.txt", false),
];

fn snapshot_of(rel: &str, whole: bool) -> serde_json::Value {
    let path = fixtures().join(rel);
    if whole {
        let d = declared::read(&path, &fixtures()).unwrap_or_else(|e| panic!("{rel}: {e}"));
        let companions: Vec<&str> = d.environment.companions.iter().map(|c| c.path.as_str()).collect();
        json!({
            "path": d.environment.path,
            "format": d.environment.format,
            "companions": companions,
            "requirements": d.environment.requirements,
        })
    } else {
        let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{rel}: {e}"));
        let reqs = declared::parse_text(&path, &text).unwrap_or_else(|e| panic!("{rel}: {e}"));
        json!({ "path": rel, "requirements": reqs })
    }
}

#[test]
fn corpus_matches_the_snapshots() {
    let bless = std::env::var_os("REPRO_BLESS").is_some();
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/snapshots/declared");
    let mut failures = Vec::new();
    for (rel, whole) in CORPUS {
        let actual = serde_json::to_string_pretty(&snapshot_of(rel, whole)).expect("serializes") + "\n";
        let snap = dir.join(format!("{}.json", rel.replace('/', "__")));
        if bless {
            std::fs::create_dir_all(&dir).expect("mkdir snapshots");
            std::fs::write(&snap, &actual).expect("write snapshot");
            continue;
        }
        match std::fs::read_to_string(&snap) {
            Ok(expected) if expected == actual => {}
            Ok(expected) => {
                failures.push(format!("{rel} differs from {}:\n{}", snap.display(), diff(&expected, &actual)))
            }
            Err(_) => failures.push(format!("{rel}: no snapshot at {}", snap.display())),
        }
    }
    assert!(
        failures.is_empty(),
        "{}\n\nIf the change is intended, rerun with REPRO_BLESS=1 and review the snapshot diff.",
        failures.join("\n\n")
    );
}

/// A line diff (longest common subsequence), `-` expected and `+` actual, with a line of
/// context around each change.
fn diff(expected: &str, actual: &str) -> String {
    let (a, b): (Vec<&str>, Vec<&str>) = (expected.lines().collect(), actual.lines().collect());
    let mut lcs = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for i in (0..a.len()).rev() {
        for j in (0..b.len()).rev() {
            lcs[i][j] = if a[i] == b[j] { lcs[i + 1][j + 1] + 1 } else { lcs[i + 1][j].max(lcs[i][j + 1]) };
        }
    }
    let mut ops = Vec::new();
    let (mut i, mut j) = (0, 0);
    while i < a.len() || j < b.len() {
        if i < a.len() && j < b.len() && a[i] == b[j] {
            ops.push((' ', a[i]));
            i += 1;
            j += 1;
        } else if i < a.len() && (j == b.len() || lcs[i + 1][j] >= lcs[i][j + 1]) {
            ops.push(('-', a[i]));
            i += 1;
        } else {
            ops.push(('+', b[j]));
            j += 1;
        }
    }
    let near = |k: usize| ops[k.saturating_sub(1)..(k + 2).min(ops.len())].iter().any(|(c, _)| *c != ' ');
    let mut out = String::new();
    for (k, (c, line)) in ops.iter().enumerate() {
        if near(k) {
            out.push_str(&format!("{c} {line}\n"));
        }
    }
    out
}

/// Parses `text` as if it were the fixture at `path`; fails the test on a panic or on an
/// error that is not one line naming the file and a line within (or just past) the text.
fn check_garbage(path: &Path, text: &str, what: &str) {
    let name = path.file_name().and_then(|n| n.to_str()).expect("file name");
    let result = std::panic::catch_unwind(|| declared::parse_text(path, text));
    let Ok(result) = result else { panic!("{name} {what}: the parser panicked on:\n{text}") };
    let Err(e) = result else { return };
    let msg = e.to_string();
    assert!(!msg.contains('\n'), "{name} {what}: error on more than one line: {msg}");
    let at = msg.find(&format!("{name}:")).unwrap_or_else(|| panic!("{name} {what}: error without the file: {msg}"));
    let digits: String = msg[at + name.len() + 1..].chars().take_while(char::is_ascii_digit).collect();
    let line: usize = digits.parse().unwrap_or_else(|_| panic!("{name} {what}: error without a line: {msg}"));
    let lines = text.lines().count();
    assert!(line >= 1 && line <= lines + 1, "{name} {what}: line {line} of {lines}: {msg}");
}

#[test]
fn truncated_fixtures_never_panic() {
    for (rel, _) in CORPUS {
        let path = fixtures().join(rel);
        let text = std::fs::read_to_string(&path).expect("fixture");
        // Every cut on a character boundary, through the whole file.
        for cut in (0..text.len()).filter(|&i| text.is_char_boundary(i)) {
            check_garbage(&path, &text[..cut], &format!("cut at byte {cut}"));
        }
    }
}

#[test]
fn garbled_fixtures_never_panic() {
    let junk = [
        "\"", "[", "]", "{", "}", ":", "=", "-", "\n", "#", "\\", "'", "@", ";", ",", "\t", "é", "\u{0}", " -", "\\n",
        "\\u000a",
    ];
    for (rel, _) in CORPUS {
        let path = fixtures().join(rel);
        let text = std::fs::read_to_string(&path).expect("fixture");
        let bounds: Vec<usize> = (0..text.len()).filter(|&i| text.is_char_boundary(i)).collect();
        // A deterministic spread of positions: every 7th boundary, each with one junk string
        // replacing a character, inserted before it, and a line dropped or doubled there.
        for (n, &at) in bounds.iter().enumerate().step_by(7) {
            let j = junk[n % junk.len()];
            let next = bounds.get(n + 1).copied().unwrap_or(text.len());
            check_garbage(
                &path,
                &format!("{}{j}{}", &text[..at], &text[next..]),
                &format!("byte {at} replaced by {j:?}"),
            );
            check_garbage(
                &path,
                &format!("{}{j}{}", &text[..at], &text[at..]),
                &format!("{j:?} inserted at byte {at}"),
            );
        }
        let lines: Vec<&str> = text.lines().collect();
        for k in 0..lines.len() {
            let mut dropped = lines.clone();
            dropped.remove(k);
            check_garbage(&path, &dropped.join("\n"), &format!("line {} dropped", k + 1));
            let mut doubled = lines.clone();
            doubled.insert(k, lines[k]);
            check_garbage(&path, &doubled.join("\n"), &format!("line {} doubled", k + 1));
            let dedented: Vec<String> = lines
                .iter()
                .enumerate()
                .map(|(i, l)| if i == k { l.trim_start().to_string() } else { l.to_string() })
                .collect();
            check_garbage(&path, &dedented.join("\n"), &format!("line {} dedented", k + 1));
        }
    }
}

#[test]
fn empty_and_wrong_kind_inputs_never_panic() {
    for (rel, _) in CORPUS {
        let path = fixtures().join(rel);
        for text in ["", "\n", "{}", "[]", "null", "3", "\u{feff}", "a = 1\n", "- a\n", "key: [1, {a: b}]\n"] {
            check_garbage(&path, text, &format!("given {text:?}"));
        }
    }
}

#[test]
fn errors_name_the_file_and_line_of_the_mistake() {
    let cases = [
        ("requirements/requirements.txt", "numpy==1.26.4\nscipy>=\n", 2),
        ("conda/environment.yml", "name: x\ndependencies:\n  - numpy\n  - 'numpy=='\n  - =1.0\n", 5),
        ("conda/environment.yml", "name: x\ndependencies:\n  - pip:\n    - ok==1\n    - 'bad[,'\n", 5),
        (
            "pyproject/pyproject.toml",
            "[project]\nname = \"x\"\n\n[project.optional-dependencies]\nplot = [\"ok\", \"!bad\"]\n",
            5,
        ),
        ("uv/uv.lock", "version = 1\n[[package]]\nname = \"a\"\nversion = \"1\"\nwheels = [{ hash = 3 }]\n", 5),
        ("poetry/poetry.lock", "[[package]]\nname = \"a\"\nversion = \"1\"\ngroups = \"main\"\n", 4),
        (
            "pipenv/Pipfile.lock",
            "{\n  \"default\": {\n    \"a\": {\"version\": \"==1\"},\n    \"b\": {\"hashes\": [\"nohash\"]}\n  }\n}\n",
            4,
        ),
        ("pipenv/Pipfile.lock", "{\n  \"default\": {\n    \"a\": {\"version\": \"==1\"}\n  \n}\n", 6),
        (
            "conda-lock/conda-lock.yml",
            "version: 1\npackage:\n- name: a\n  version: 1\n- name: b\n  hash:\n    md5: zz\n",
            5,
        ),
        ("conda-lock/conda-lock.yml", "version: 1\npackage:\n- name: a\n  version: [1\n", 5),
    ];
    for (rel, text, line) in cases {
        let path = fixtures().join(rel);
        let name = path.file_name().and_then(|n| n.to_str()).expect("name").to_string();
        let e = declared::parse_text(&path, text).expect_err(text).to_string();
        assert!(e.contains(&format!("{name}:{line}:")), "{rel}: expected line {line}: {e}");
    }
}

/// Records written before the normalized fields existed must serialize to the same JSON,
/// or their lineage digests would change.
#[test]
fn old_requirement_json_is_unchanged() {
    let old = r#"{"name":"numpy","origin":"requirements.txt:1","spec":"==1.26.4","status":"pinned"}"#;
    let r: DeclaredRequirement = serde_json::from_str(old).expect("old JSON reads");
    assert_eq!(r, DeclaredRequirement::new("numpy", "==1.26.4", PinStatus::Pinned, "requirements.txt:1"));
    let again = serde_json::to_value(&r).expect("serializes");
    assert_eq!(serde_json::to_string(&again).expect("json"), old);
}
