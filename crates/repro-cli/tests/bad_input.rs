//! Bad input: one clear line naming the thing and what to do, exit 2, nothing written.

mod common;

use common::TestContext;

fn assert_nothing_recorded(t: &TestContext) {
    assert!(t.runs().is_empty(), "no run may be recorded");
    let objects = walk(&t.path(".repro/objects"));
    assert_eq!(objects, 0, "no object may be written");
}

fn walk(p: &std::path::Path) -> usize {
    std::fs::read_dir(p)
        .map(|d| d.flatten().map(|e| if e.path().is_dir() { walk(&e.path()) } else { 1 }).sum())
        .unwrap_or(0)
}

#[test]
fn commands_outside_a_store_suggest_repro_init() {
    let t = TestContext::new();
    for args in [&["runs"][..], &["audit", "latest"], &["fsck"], &["run", "--", "true"], &["data", "ls"]] {
        let r = t.repro(args).expect_code(2);
        let line = r.error_line();
        assert!(line.contains("no repro store") && line.contains("repro init"), "{line}");
    }
    let r = t.cmd().args(["runs"]).env("REPRO_STORE", t.path("nowhere")).output().expect("run");
    assert_eq!(r.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&r.stderr).contains("is not a repro store"));
}

#[test]
fn init_twice_is_refused() {
    let t = TestContext::new();
    t.repro(&["init"]).success();
    let r = t.repro(&["init"]).expect_code(2);
    assert!(r.error_line().contains("already exists"));
}

#[test]
fn bad_backends_are_refused_at_init_and_leave_no_store() {
    let t = TestContext::new();
    let cases: [(&[&str], &str); 6] = [
        (&["--db", "mysql://u@h/db"], "is not a postgres://USER@HOST/DB URL"),
        (&["--db", "postgres://u:hunter2@h/db"], "PGPASSWORD"),
        (&["--db", "postgres://h"], "names no host or no database"),
        (&["--objects", "gs://bucket/x"], "is not an s3://BUCKET[/PREFIX] URL"),
        (&["--objects", "s3://Bad_Bucket/x"], "is not an S3 bucket name"),
        // Nothing listens on port 1: refused at once, named, no waiting.
        (&["--db", "postgres://postgres@127.0.0.1:1/repro"], "postgres://postgres@127.0.0.1:1/repro"),
    ];
    for (args, needle) in cases {
        let mut all = vec!["init"];
        all.extend_from_slice(args);
        let start = std::time::Instant::now();
        let r = t.repro(&all).expect_code(2);
        let line = r.error_line();
        assert!(line.contains(needle), "{args:?}: {line}");
        assert!(!line.contains("hunter2"), "the password is never echoed: {line}");
        assert!(start.elapsed() < std::time::Duration::from_secs(10), "{args:?} took {:?}", start.elapsed());
        assert!(!t.path(".repro").exists(), "{args:?} left a half-made store");
    }
}

#[test]
fn store_is_found_from_a_subfolder_and_by_flag() {
    let t = TestContext::new();
    t.repro(&["init"]).success();
    t.write("sub/deeper/x.txt", "x");
    let r = t.cmd().args(["runs", "--json"]).current_dir(t.path("sub/deeper")).output().expect("run");
    assert_eq!(r.status.code(), Some(0), "{}", String::from_utf8_lossy(&r.stderr));
    let other = TestContext::new();
    other.repro(&["--store", t.dir.to_str().expect("p"), "runs"]).success();
    other.repro(&["--store", t.path(".repro").to_str().expect("p"), "runs"]).success();
}

#[test]
fn bad_run_inputs_fail_cleanly_and_write_nothing() {
    let t = TestContext::new();
    t.git(&["init", "-q"]);
    t.repro(&["init"]).success();
    t.write("bad.yaml", "model:\n  depth: 6\n   lr: [\n");
    t.write("bad.json", "{\"a\": 1,}\n");
    t.write("list.yaml", "- 1\n- 2\n");
    t.write("requirements.txt", "numpy==1.26.4\nscipy==\n");
    t.write("ok.yaml", "a: 1\n");
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (vec!["run", "--data", "missing.csv", "--", "true"], "missing.csv does not exist"),
        (vec!["run", "--params", "missing.yaml", "--", "true"], "missing.yaml does not exist"),
        (vec!["run", "--params", "bad.yaml", "--", "true"], "bad.yaml:3:"),
        (vec!["run", "--params", "bad.json", "--", "true"], "bad.json:1:"),
        (vec!["run", "--params", "list.yaml", "--", "true"], "top level must be a mapping"),
        (vec!["run", "--param", "novalue", "--", "true"], "expected KEY=VALUE"),
        (vec!["run", "--params", "ok.yaml", "--", "no-such-command-xyz"], "command not found: no-such-command-xyz"),
        (
            vec!["run", "--env", "requirements.txt", "--", "true"],
            "requirements.txt:2: cannot parse requirement 'scipy=='",
        ),
        (vec!["run", "--env", "nope.txt", "--", "true"], "nope.txt does not exist"),
        (vec!["run", "--seed", "-1", "--", "true"], ""),
        (vec!["run", "--seed", "99999999999", "--", "true"], ""),
    ];
    for (args, expect) in cases {
        let r = t.repro(&args).expect_code(2);
        if expect.is_empty() {
            assert!(r.stderr().contains("error"), "{:?}: {}", args, r.stderr());
        } else {
            let line = r.error_line();
            assert!(line.contains(expect), "{args:?}: {line}");
        }
        assert_nothing_recorded(&t);
    }
}

#[test]
fn unknown_runs_and_datasets_are_named() {
    let t = TestContext::new();
    t.repro(&["init"]).success();
    for (args, expect) in [
        (vec!["show", "deadbeef"], "no run matches 'deadbeef'"),
        (vec!["audit", "latest"], "no run matches 'latest"),
        (vec!["show", "nonexistent-name"], "repro runs"),
        (vec!["data", "show", "train:9"], "no dataset 'train:9'"),
        (vec!["data", "snapshot", "nope/"], "nope/ does not exist"),
    ] {
        let line = t.repro(&args).expect_code(2).error_line();
        assert!(line.contains(expect), "{args:?}: {line}");
    }
}

#[test]
fn ambiguous_prefix_lists_candidates() {
    let t = TestContext::new();
    t.repro(&["init"]).success();
    t.repro(&["run", "--seed", "1", "--", "true"]).success();
    let a = t.runs()[0]["id"].as_str().expect("id").to_string();
    // A second run whose id shares the first 8 digits (ids are random, so make one).
    let filler = if &a[8..9] == "f" { "e" } else { "f" };
    let b = format!("{}{}", &a[..8], filler.repeat(24));
    let sql = format!(
        "INSERT INTO runs (id, name, status, started_ms, host, record) SELECT '{b}', name, status, started_ms, host, record FROM runs WHERE id = '{a}'"
    );
    t.sql(&sql);
    let line = t.repro(&["show", &a[..8]]).expect_code(2).error_line();
    assert!(line.contains("matches 2 runs") && line.contains(&a[..12]) && line.contains(&b[..12]), "{line}");
    // More digits disambiguate; too few (under 4) are not an id prefix but a name.
    t.repro(&["show", &a[..9]]).success();
    let line = t.repro(&["show", &a[..3]]).expect_code(2).error_line();
    assert!(line.contains("no run matches"), "{line}");
}

#[test]
fn malformed_store_config_is_one_line_naming_the_file() {
    let t = TestContext::new();
    t.repro(&["init"]).success();
    std::fs::write(t.path(".repro/repro.toml"), "[store]\nformat = 1\nsurprise = true\n").expect("write");
    let line = t.repro(&["runs"]).expect_code(2).error_line();
    assert!(line.contains("repro.toml") && line.contains("surprise"), "{line}");
}

#[test]
fn usage_errors_exit_2_and_help_has_examples() {
    let t = TestContext::new();
    t.repro(&["run"]).expect_code(2);
    t.repro(&["frobnicate"]).expect_code(2);
    let help = t.repro(&["run", "--help"]).success().stdout();
    assert!(help.contains("Examples:\n  repro run --name baseline"), "{help}");
    assert!(help.contains("repro run --seed 42 --data data/ analysis.ipynb"), "{help}");
    let help = t.repro(&["--help"]).success().stdout();
    assert!(help.contains("Exit codes"), "{help}");
}

#[test]
fn a_closed_pipe_is_success() {
    use std::io::Read;
    use std::process::Stdio;
    let t = TestContext::new();
    t.repro(&["init"]).success();
    for _ in 0..30 {
        t.repro(&["run", "--seed", "1", "--", "true"]).success();
    }
    for args in [&["runs"][..], &["runs", "--json"]] {
        let mut child = t.cmd().args(args).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("spawn");
        // Read one byte, then close our end, as `| head -c1` would.
        let mut out = child.stdout.take().expect("stdout");
        let mut one = [0u8; 1];
        out.read_exact(&mut one).expect("first byte");
        drop(out);
        let status = child.wait().expect("wait");
        let mut err = String::new();
        child.stderr.take().expect("stderr").read_to_string(&mut err).expect("stderr");
        assert_eq!(status.code(), Some(0), "{args:?}: {err}");
        assert!(err.is_empty(), "{args:?}: {err}");
    }
}
