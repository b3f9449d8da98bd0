//! Faults: kill -9 at any moment leaves a store fsck finds clean; signals reach the
//! command; concurrent runs on one store all land.

mod common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::TestContext;

fn wait_until(what: &str, mut f: impl FnMut() -> bool) {
    let start = Instant::now();
    while !f() {
        assert!(start.elapsed() < Duration::from_secs(30), "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn kill(pid: u32, sig: &str) {
    Command::new("kill").args([sig, &pid.to_string()]).status().expect("kill");
}

/// A store with `repro run -- sh -c 'sleep 30'` running in it, once the command has started.
fn start_a_long_run() -> (TestContext, std::process::Child) {
    let t = TestContext::new();
    t.git(&["init", "-q"]);
    t.repro(&["init"]).success();
    let marker = t.path("started");
    let script = format!("touch {}; sleep 30", marker.display());
    let child = t
        .cmd()
        .args(["run", "--seed", "1", "--", "sh", "-c", &script])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn");
    wait_until("the command to start", || marker.exists());
    (t, child)
}

#[test]
fn kill_9_during_a_run_leaves_a_clean_store_and_an_interrupted_run() {
    let (t, mut child) = start_a_long_run();
    kill(child.id(), "-9");
    child.wait().expect("wait");
    let runs = t.runs();
    assert_eq!(runs.len(), 1);
    assert_eq!(runs[0]["status"], "interrupted", "not running forever: {}", runs[0]);
    let fsck = t.repro(&["fsck", "--json"]).success().json();
    assert_eq!(fsck["clean"], true, "{fsck:#}");
    assert_eq!(fsck["interrupted"].as_array().expect("list").len(), 1);
    assert_eq!(
        t.repro(&["fsck", "--json"]).success().json()["interrupted"].as_array().expect("l").len(),
        0,
        "marked once"
    );
    let (report, code) = t.audit("latest");
    assert_eq!(code, 1);
    assert_eq!(common::status(&report, "result"), "missing");
}

#[test]
fn kill_9_during_snapshots_never_leaves_damage() {
    let t = TestContext::new();
    t.repro(&["init"]).success();
    // Enough data that the kill lands mid-snapshot: 300 files of 64 KiB plus one 24 MiB file.
    let block: String = "0123456789abcdef".repeat(4096);
    for i in 0..300 {
        t.write(&format!("data/d{}/f{i}.bin", i % 7), &format!("{i}{block}"));
    }
    std::fs::write(t.path("data/big.bin"), vec![7u8; 24 << 20]).expect("big");
    for delay_ms in [5u64, 20, 40, 80, 150, 300] {
        let mut child = t
            .cmd()
            .args(["data", "snapshot", "data", "--name", "d"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn");
        std::thread::sleep(Duration::from_millis(delay_ms));
        kill(child.id(), "-9");
        child.wait().expect("wait");
        let fsck = t.repro(&["fsck", "--json"]).success().json();
        assert_eq!(fsck["clean"], true, "after a kill at {delay_ms} ms: {fsck:#}");
        // Change one file so the next round writes something new.
        t.write(&format!("data/d0/f{delay_ms}.bin"), &format!("round {delay_ms}"));
    }
    // And a snapshot that is allowed to finish still works and verifies.
    t.repro(&["data", "snapshot", "data", "--name", "d"]).success();
    t.repro(&["fsck"]).success();
    let tmp_left = std::fs::read_dir(t.path(".repro/tmp")).expect("tmp").count();
    assert_eq!(tmp_left, 0, "fsck cleared what the killed writers left");
}

#[test]
fn sigterm_is_forwarded_and_the_run_is_recorded_killed() {
    let (t, mut child) = start_a_long_run();
    let start = Instant::now();
    kill(child.id(), "-TERM");
    let status = child.wait().expect("wait");
    assert!(start.elapsed() < Duration::from_secs(10), "the command was not stopped");
    assert_eq!(status.code(), Some(128 + 15), "repro exits like the command: killed by SIGTERM");
    let show = t.repro(&["show", "latest", "--json"]).success().json();
    assert_eq!(show["status"], "killed");
    assert_eq!(show["signal"], 15);
    t.repro(&["fsck"]).success();
}

#[test]
fn eight_concurrent_runs_on_one_store_all_land() {
    let t = TestContext::sklearn_project();
    let py = t.python();
    let children: Vec<_> = (0..8)
        .map(|i| {
            t.cmd()
                .args([
                    "run",
                    "--name",
                    &format!("r{i}"),
                    "--seed",
                    &i.to_string(),
                    "--data",
                    "data/train.csv",
                    "--params",
                    "params.yaml",
                    "--output",
                    &format!("out{i}.txt"),
                    "--",
                ])
                .arg(&py)
                .args([
                    "-c",
                    &format!("import os,time; time.sleep(0.2); open('out{i}.txt','w').write(os.environ['REPRO_SEED'])"),
                ])
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .expect("spawn")
        })
        .collect();
    for c in children {
        let out = c.wait_with_output().expect("wait");
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    }
    let runs = t.runs();
    assert_eq!(runs.len(), 8);
    assert!(runs.iter().all(|r| r["status"] == "finished"));
    let mut names: Vec<String> = runs.iter().map(|r| r["name"].as_str().expect("n").to_string()).collect();
    names.sort();
    assert_eq!(names, (0..8).map(|i| format!("r{i}")).collect::<Vec<_>>());
    // All eight read the same data: one dataset version.
    let ls = t.repro(&["data", "ls", "--json"]).success().json();
    assert_eq!(ls.as_array().expect("arr").iter().filter(|d| d["name"] == "data/train.csv").count(), 1);
    t.repro(&["fsck"]).success();
}

#[test]
fn kill_9_during_a_replay_leaves_a_clean_store_and_no_rebuilt_tree() {
    let t = TestContext::new();
    t.git(&["init", "-q", "-b", "main"]);
    // Slow only when replayed (the flag appears after the original run).
    let outside = tempfile::tempdir().expect("tempdir");
    let flag = outside.path().join("replay-is-slow");
    let started = outside.path().join("replay-started");
    t.write(
        "job.sh",
        &format!("echo out > out.txt\nif [ -e {} ]; then touch {}; sleep 30; fi\n", flag.display(), started.display()),
    );
    t.commit_all("job");
    t.repro(&["init"]).success();
    t.repro(&["run", "--seed", "5", "--output", "out.txt", "--", "sh", "job.sh"]).success();
    std::fs::write(&flag, "").expect("flag");
    let mut child =
        t.cmd().args(["replay", "latest"]).stdout(Stdio::null()).stderr(Stdio::null()).spawn().expect("spawn");
    wait_until("the replayed command to start", || started.exists());
    kill(child.id(), "-9");
    child.wait().expect("wait");

    let fsck = t.repro(&["fsck", "--json"]).success().json();
    assert_eq!(fsck["clean"], true, "{fsck:#}");
    assert!(fsck["stale_temp_removed"].as_u64().expect("count") >= 1, "the rebuilt tree is removed: {fsck:#}");
    let left: Vec<_> = std::fs::read_dir(t.path(".repro/tmp")).expect("tmp").flatten().collect();
    assert!(left.is_empty(), "{left:?}");
    let runs = t.runs();
    assert_eq!(runs.len(), 2);
    assert_eq!(runs[0]["status"], "interrupted");
    assert!(runs[0]["replay_of"].is_string());
    let (audit, _) = t.audit(runs[1]["id"].as_str().expect("id"));
    assert_eq!(common::status(&audit, "replay_verified"), "warn", "an interrupted replay verifies nothing");
}

#[test]
fn kill_9_during_a_bundle_import_or_export_leaves_clean_stores() {
    // A model whose bundle carries 48 MiB of data, so a kill can land mid-way.
    let t = TestContext::new();
    t.git(&["init", "-q", "-b", "main"]);
    t.write("job.sh", "head -c 1000 data/big.bin > model.bin\n");
    t.write(".gitignore", "data/\nmodel.bin\n");
    t.commit_all("job");
    t.repro(&["init"]).success();
    let big: Vec<u8> = (0..48u32 << 20).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect();
    std::fs::create_dir_all(t.path("data")).expect("mkdir");
    std::fs::write(t.path("data/big.bin"), big).expect("big");
    t.repro(&["run", "--seed", "3", "--data", "data/big.bin", "--output", "model.bin", "--", "sh", "job.sh"]).success();
    t.repro(&["model", "register", "latest", "--name", "m", "--artifact", "model.bin"]).success();
    let stick = tempfile::tempdir().expect("tempdir");
    let bundle = stick.path().join("m.tar");
    let bundle_arg = bundle.to_str().expect("utf-8");

    for delay_ms in [10u64, 60, 150] {
        let mut child = t
            .cmd()
            .args(["bundle", "export", "m@1", "-o", bundle_arg, "--include-data", "--unsigned"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn");
        std::thread::sleep(Duration::from_millis(delay_ms));
        kill(child.id(), "-9");
        child.wait().expect("wait");
        // Never a half-written bundle under the name asked for.
        if bundle.exists() {
            let auditor = TestContext::new();
            auditor.repro(&["init"]).success();
            auditor.repro(&["bundle", "import", bundle_arg]).success();
            std::fs::remove_file(&bundle).expect("rm");
        }
        t.repro(&["fsck"]).success();
    }
    t.repro(&["bundle", "export", "m@1", "-o", bundle_arg, "--include-data", "--unsigned"]).success();

    let auditor = TestContext::new();
    auditor.repro(&["init"]).success();
    for delay_ms in [10u64, 50, 120, 250] {
        let mut child = auditor
            .cmd()
            .args(["bundle", "import", bundle_arg])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn");
        std::thread::sleep(Duration::from_millis(delay_ms));
        kill(child.id(), "-9");
        let finished = child.wait().expect("wait").success();
        let fsck = auditor.repro(&["fsck", "--json"]).success().json();
        assert_eq!(fsck["clean"], true, "after a kill at {delay_ms} ms: {fsck:#}");
        let events = fsck["registry_events"].as_u64().expect("count");
        assert!(events <= 1, "{fsck:#}");
        if finished || events == 1 {
            // The import got through before the kill: it is whole.
            let (audit, _) = auditor.audit("m@1");
            assert_eq!(common::status(&audit, "objects_verified"), "ok", "{audit:#}");
            return;
        }
        assert_eq!(auditor.runs().len(), 0, "rows without their registry event");
    }
    auditor.repro(&["bundle", "import", bundle_arg]).success();
    let (audit, _) = auditor.audit("m@1");
    assert_eq!(common::status(&audit, "objects_verified"), "ok", "{audit:#}");
    assert_eq!(common::status(&audit, "registry_version"), "ok", "{audit:#}");
    auditor.repro(&["fsck"]).success();
}
