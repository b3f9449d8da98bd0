//! Replay and diff, told as the auditor's story: months later, with the repository moved
//! on, the data overwritten and the virtualenv upgraded, the run is rebuilt from the store
//! and compared — and when two runs differ, `repro diff` says why.

mod common;

use std::path::Path;
use std::process::Command;

use common::{id_of, item, status, Run, TestContext};
use serde_json::Value;

/// `repro run --json` of the example with the given interpreter; returns the run id.
fn train_json(t: &TestContext, py: &Path) -> String {
    id_of(&t.train_with(py, &["--json"]).success())
}

fn pip(py: &Path, args: &[&str]) {
    let out = Command::new(py)
        .args(["-m", "pip", "install", "-q", "--disable-pip-version-check"])
        .args(args)
        .output()
        .expect("pip");
    assert!(out.status.success(), "pip install {args:?}: {}", String::from_utf8_lossy(&out.stderr));
}

fn first_cause(diff: &Value) -> (&str, &str) {
    let c = &diff["causes"][0];
    (c["kind"].as_str().unwrap_or_else(|| panic!("no cause in {diff:#}")), c["summary"].as_str().expect("summary"))
}

/// Nothing of a replay is left in the store's temp folder.
fn assert_no_leftovers(t: &TestContext) {
    let tmp = t.path(".repro/tmp");
    let left: Vec<String> = std::fs::read_dir(&tmp)
        .map(|d| d.flatten().map(|e| e.file_name().to_string_lossy().into_owned()).collect())
        .unwrap_or_default();
    assert!(left.is_empty(), "left behind in .repro/tmp: {left:?}");
    assert!(!t.path(".repro/replays").exists(), "a tree was kept without --keep");
}

#[test]
fn seeded_run_replays_identical_after_the_repo_data_and_venv_move_on() {
    let t = TestContext::sklearn_project();
    // A loose pin, as real projects have: the venv decides which joblib runs.
    let reqs = std::fs::read_to_string(t.path("requirements.txt")).expect("reqs");
    t.write("requirements.txt", &reqs.replace("joblib==1.6.0", "joblib>=1.5"));
    t.commit_all("loosen joblib");
    let venv = t.private_venv();
    let py = venv.join("bin/python");

    let a = train_json(&t, &py);
    let r = t.repro(&["replay", &a, "--json"]).success();
    let report = r.json();
    assert_eq!(report["verdict"], "identical", "{report:#}");
    assert_eq!(report["outputs"][0]["path"], "model.pkl");
    assert_eq!(report["outputs"][0]["recorded"], report["outputs"][0]["replayed"]);
    assert!(report["code"]["source"].as_str().expect("source").contains("original repository"));
    assert_eq!(report["inputs"][0]["how"], "restored from the store");
    let first_replay = report["replay"].as_str().expect("replay id").to_string();
    assert!(r.stderr().contains("rmse="), "the command's output goes to stderr under --json");
    assert_no_leftovers(&t);

    // The replay is a run of its own, linked to the original; the original shows it.
    let replay = t.repro(&["show", &first_replay, "--json"]).success().json();
    assert_eq!(replay["replay_of"], a.as_str());
    assert_eq!(replay["seed"]["value"], 42);
    let orig = t.repro(&["show", &a, "--json"]).success().json();
    assert_eq!(orig["replays"][0]["verdict"], "identical");
    assert!(orig.get("replay_of").is_none());
    let (audit, _) = t.audit(&a);
    assert_eq!(status(&audit, "replay_verified"), "ok", "{}", item(&audit, "replay_verified"));
    assert!(t.repro(&["show", &a]).success().stdout().contains("replayed  identical"));

    // Another joblib in the same venv: same code, data, params and seed.
    pip(&py, &["joblib==1.5.2"]);
    let b = train_json(&t, &py);
    let diff = t.repro(&["diff", &a, &b, "--json"]).success().json();
    let (kind, summary) = first_cause(&diff);
    assert_eq!(kind, "unpinned_package_changed", "{diff:#}");
    assert!(summary.contains("joblib") && summary.contains("1.6.0") && summary.contains("1.5.2"), "{summary}");
    let human = t.repro(&["diff", &a, &b]).success().stdout();
    let causes = human.split("likely causes").nth(1).or_else(|| human.split("did not change them").nth(1));
    assert!(causes.expect("a causes list").lines().nth(1).unwrap_or_default().contains("joblib"), "{human}");

    // The data file at the same path is overwritten: same path, different content.
    let gen =
        Command::new(&py).args(["generate_data.py", "--seed", "7"]).current_dir(&t.dir).output().expect("generate");
    assert!(gen.status.success());
    let c = train_json(&t, &py);
    let diff = t.repro(&["diff", &b, &c, "--json"]).success().json();
    let (kind, summary) = first_cause(&diff);
    assert_eq!(kind, "data_changed", "{diff:#}");
    assert!(summary.contains("data/train.csv") && summary.contains("same path"), "{summary}");
    assert_eq!(diff["outputs_differ"], true);

    // The repository moves on.
    t.append("train.py", "\n# refactored later\n");
    t.commit_all("later work");

    // The venv no longer matches the recorded run: replay refuses to run, naming the package.
    let refused = t.repro(&["replay", &a]).expect_code(1);
    assert!(refused.stdout().contains("joblib 1.6.0 → 1.5.2"), "{}", refused.stdout());
    assert!(refused.stdout().contains("--create-env"));
    assert_no_leftovers(&t);

    // --create-env builds the recorded versions, and the result is bit-identical again.
    let r = t.repro(&["replay", &a, "--create-env", "--json"]).success();
    let report = r.json();
    assert_eq!(report["verdict"], "identical", "{report:#}\n{}", r.stderr());
    assert!(report["environment"]["created_with"].as_str().is_some());
    let replay_id = report["replay"].as_str().expect("id");
    let replay = t.repro(&["show", replay_id, "--json"]).success().json();
    assert_eq!(common::named(&replay["environment"]["python"]["packages"], "joblib")["version"], "1.6.0");
    assert_eq!(
        replay["inputs"][0]["snapshot"],
        t.repro(&["show", &a, "--json"]).success().json()["inputs"][0]["snapshot"]
    );
    assert_no_leftovers(&t);
    t.repro(&["fsck"]).success();
}

#[test]
fn unseeded_randomness_replays_differs_and_diff_names_it() {
    let t = TestContext::sklearn_project();
    t.write(
        "noisy.py",
        "import json, os, random\n\
         x = random.random()  # not seeded from REPRO_SEED\n\
         open('out.txt', 'w').write(repr(x))\n\
         with open(os.environ['REPRO_METRICS'], 'a') as f:\n\
         \x20   f.write(json.dumps({'metric': 'score', 'value': x}) + '\\n')\n",
    );
    t.commit_all("noisy");
    let py = t.python();
    let run = t
        .repro(&["run", "--json", "--seed", "1", "--output", "out.txt", "--", py.to_str().expect("utf-8"), "noisy.py"])
        .success();
    let a = id_of(&run);
    let r = t.repro(&["replay", &a, "--json"]).expect_code(1);
    let report = r.json();
    assert_eq!(report["verdict"], "differs", "{report:#}");
    let reasons = report["reasons"].to_string();
    assert!(reasons.contains("score") && reasons.contains("out.txt"), "{reasons}");
    let b = report["replay"].as_str().expect("replay").to_string();
    let human = t.repro(&["replay", &a]).expect_code(1).stdout();
    assert!(human.contains("DIFFERS") && human.contains("repro diff"), "{human}");

    let diff = t.repro(&["diff", &a, &b, "--json"]).success().json();
    assert_eq!(first_cause(&diff).0, "uncontrolled_randomness", "{diff:#}");
    let text = t.repro(&["diff", &a, &b]).success().stdout();
    assert!(text.contains("likely causes") && text.contains("uncontrolled randomness"), "{text}");
    let (audit, code) = t.audit(&a);
    assert_eq!(code, 1, "a run whose latest replay differs is not reproducible");
    assert_eq!(status(&audit, "replay_verified"), "missing");
}

#[test]
fn replay_without_the_original_checkout_uses_the_remote_and_stored_objects() {
    let t = TestContext::sklearn_project();
    // A real remote (a bare repository), the recorded diff and an untracked file.
    let away = tempfile::tempdir().expect("tempdir");
    let remote = away.path().join("remote.git");
    let out = Command::new("git").args(["clone", "-q", "--bare"]).arg(&t.dir).arg(&remote).output().expect("git");
    assert!(out.status.success());
    t.git(&["remote", "set-url", "origin", remote.to_str().expect("utf-8")]);
    t.append("train.py", "\n# an uncommitted tweak\n");
    t.write("NOTES.md", "tried a deeper forest\n");
    let a = id_of(&t.train(&["--json"]).success());
    let shown = t.repro(&["show", &a, "--json"]).success().json();
    assert_eq!(shown["code"]["dirty"], true);

    // The checkout is gone; only the store (moved elsewhere) and the remote remain.
    let store = away.path().join("kept-store");
    std::fs::rename(t.path(".repro"), &store).expect("move store");
    std::fs::remove_dir_all(&t.dir).expect("remove checkout");
    let elsewhere = away.path().join("elsewhere");
    std::fs::create_dir_all(&elsewhere).expect("mkdir");
    let out = t
        .cmd()
        .current_dir(&elsewhere)
        .args(["--store", store.to_str().expect("utf-8"), "replay", &a, "--keep", "--json"])
        .output()
        .expect("replay");
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let report: Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(report["verdict"], "identical", "{report:#}");
    assert!(report["code"]["source"].as_str().expect("source").contains("remote"), "{report:#}");
    assert_eq!(report["code"]["diff_applied"], true);
    assert_eq!(report["code"]["untracked_restored"], 1);
    // --keep leaves the rebuilt tree, with the recorded tweak and the untracked file.
    let tree = Path::new(report["tree"].as_str().expect("tree"));
    assert!(tree.starts_with(&store), "{}", tree.display());
    assert!(std::fs::read_to_string(tree.join("train.py")).expect("train.py").contains("an uncommitted tweak"));
    assert_eq!(std::fs::read_to_string(tree.join("NOTES.md")).expect("notes"), "tried a deeper forest\n");
    assert!(tree.join("data/train.csv").is_file());
}

#[test]
fn differing_bytes_are_judged_by_metrics_or_the_configured_comparator() {
    let t = TestContext::sklearn_project();
    // An output with an incidental field (a timestamp), and a deterministic metric.
    t.write(
        "stamp.py",
        "import json, os, time\n\
         json.dump({'weights': [1, 2, 3], 'written_at': time.time_ns()}, open('model.json', 'w'))\n\
         with open(os.environ['REPRO_METRICS'], 'a') as f:\n\
         \x20   f.write(json.dumps({'metric': 'score', 'value': 0.75}) + '\\n')\n",
    );
    t.write(
        "compare.py",
        "import json, sys\n\
         a, b = (json.load(open(p)) for p in sys.argv[1:3])\n\
         for d in (a, b):\n\
         \x20   d.pop('written_at')\n\
         sys.exit(0 if a == b else 1)\n",
    );
    t.commit_all("stamp");
    let py = t.python();
    let a = id_of(
        &t.repro(&[
            "run",
            "--json",
            "--seed",
            "3",
            "--output",
            "model.json",
            "--",
            py.to_str().expect("utf-8"),
            "stamp.py",
        ])
        .success(),
    );

    // No comparator: the bytes differ, every metric agrees → equivalent.
    let report = t.repro(&["replay", &a, "--json"]).success().json();
    assert_eq!(report["verdict"], "equivalent", "{report:#}");
    assert_eq!(report["outputs"][0]["verdict"], "differs");

    // A comparator that ignores the timestamp decides: equivalent.
    t.append(".repro/repro.toml", "\n[replay]\ncompare = \"python3 compare.py {recorded} {replayed}\"\n");
    let report = t.repro(&["replay", &a, "--json"]).success().json();
    assert_eq!(report["verdict"], "equivalent", "{report:#}");
    assert_eq!(report["outputs"][0]["verdict"], "equivalent");
    assert!(report["outputs"][0]["files"][0]["comparator"].as_str().expect("said").starts_with("equivalent"));

    // A comparator that says no: differs, exit 1, with its last words.
    let toml = std::fs::read_to_string(t.path(".repro/repro.toml")).expect("toml");
    t.write(".repro/repro.toml", &toml.replace("python3 compare.py", "echo weights differ >&2; false"));
    let report = t.repro(&["replay", &a, "--json"]).expect_code(1).json();
    assert_eq!(report["verdict"], "differs");
    assert!(report["reasons"].to_string().contains("weights differ"), "{report:#}");

    // Tolerances name metrics the run recorded.
    let bad = t.repro(&["replay", &a, "--tolerance", "acc=0.1"]).expect_code(2);
    assert!(bad.error_line().contains("no metric 'acc'") && bad.error_line().contains("score"));
    let bad = t.repro(&["replay", &a, "--tolerance", "score=-1"]).expect_code(2);
    assert!(bad.stderr().contains("≥ 0"), "{}", bad.stderr());
    t.repro(&["replay", &a, "--tolerance", "score=0.01"]).expect_code(1);
    assert_no_leftovers(&t);
}

#[test]
fn replay_that_cannot_rebuild_names_the_missing_piece_and_leaves_nothing() {
    let t = TestContext::sklearn_project();
    t.append("train.py", "\n# uncommitted\n");
    let a = id_of(&t.train(&["--json"]).success());
    let shown = t.repro(&["show", &a, "--json"]).success().json();
    let runs_before = t.runs().len();

    // A bad RUN.
    let r = t.repro(&["replay", "nosuchrun"]).expect_code(2);
    assert!(r.error_line().contains("no run matches 'nosuchrun'"));

    // A corrupted object: the stored diff.
    let diff = shown["code"]["diff"].as_str().expect("diff digest");
    let good = t.read_object(diff);
    let mut bad = good.clone();
    bad[0] ^= 1;
    t.write_object(diff, &bad);
    let r = t.repro(&["replay", &a]).expect_code(2);
    let line = r.error_line();
    assert!(line.contains("uncommitted diff") && line.contains("corrupt"), "{line}");
    assert_no_leftovers(&t);

    // A deleted object: a file of the input snapshot.
    t.write_object(diff, &good);
    let manifest = shown["inputs"][0]["snapshot"].as_str().expect("snapshot");
    let m: Value = serde_json::from_slice(&t.read_object(manifest)).expect("manifest json");
    let file = m["entries"][0]["digest"].as_str().expect("digest").to_string();
    let saved = t.read_object(&file);
    t.delete_object(&file);
    let r = t.repro(&["replay", &a]).expect_code(2);
    let line = r.error_line();
    assert!(line.contains("input data/train.csv") && line.contains("missing"), "{line}");
    assert_no_leftovers(&t);
    t.write_object(&file, &saved);

    // An unreachable commit: history rewritten and collected, and the recorded remote
    // (https://example.invalid/…) cannot be reached.
    t.git(&["checkout", "-q", "--orphan", "rewritten"]);
    t.commit_all("rewritten history");
    t.git(&["branch", "-D", "main"]);
    t.git(&["reflog", "expire", "--expire=now", "--all"]);
    t.git(&["gc", "-q", "--prune=now"]);
    let r = t.repro(&["replay", &a]).expect_code(2);
    let line = r.error_line();
    assert!(line.contains("is not reachable") && line.contains("does not hold it"), "{line}");
    assert_no_leftovers(&t);

    // A --workdir that is not empty is refused before anything is built.
    t.write("busy/file", "x");
    let r = t.repro(&["replay", &a, "--workdir", "busy"]).expect_code(2);
    assert!(r.error_line().contains("not empty"));
    assert!(t.path("busy/file").is_file());

    assert_eq!(t.runs().len(), runs_before, "no replay run was recorded");
    t.repro(&["fsck"]).success();
}

#[test]
fn a_run_outside_git_cannot_be_replayed_and_diff_refuses_unknown_runs() {
    let t = TestContext::new();
    t.repro(&["init"]).success();
    t.repro(&["run", "--seed", "1", "--output", "o.txt", "--", "sh", "-c", "echo hi > o.txt"]).success();
    let r = t.repro(&["replay", "latest"]).expect_code(2);
    let line = r.error_line();
    assert!(line.contains("cannot replay run") && line.contains("git"), "{line}");
    assert_no_leftovers(&t);

    let r = t.repro(&["diff", "latest", "nosuchrun"]).expect_code(2);
    assert!(r.error_line().contains("no run matches 'nosuchrun'"));
    // A run compared with itself: nothing differs, no cause.
    let same = t.repro(&["diff", "latest", "latest", "--json"]).success().json();
    assert_eq!(same["outputs_differ"], false);
    assert_eq!(same["causes"].as_array().expect("causes").len(), 0);
    assert!(t.repro(&["diff", "latest", "latest"]).success().stdout().contains("the runs match"));
}

#[test]
fn replay_in_a_chosen_workdir_with_a_chosen_interpreter() {
    let t = TestContext::sklearn_project();
    let a = id_of(&t.train(&["--json"]).success());
    let py = t.python();
    let outside = tempfile::tempdir().expect("tempdir");

    // --workdir without --keep: built there, gone afterwards.
    let wd = outside.path().join("rebuild");
    let r = t
        .repro(&[
            "replay",
            &a,
            "--workdir",
            wd.to_str().expect("utf-8"),
            "--python",
            py.to_str().expect("utf-8"),
            "--json",
        ])
        .success()
        .json();
    assert_eq!(r["verdict"], "identical", "{r:#}");
    assert_eq!(r["environment"]["python"], py.to_str().expect("utf-8"));
    assert!(!wd.exists(), "the tree is removed without --keep");

    // An existing empty --workdir with --keep: the tree stays there, the folder itself too.
    // The replay run's snapshot takes the digests the restore verified instead of hashing
    // the input again (the snapshot's debug trace says how many files it hashed).
    let kept = outside.path().join("kept");
    std::fs::create_dir(&kept).expect("mkdir");
    let args = ["replay", &a, "--workdir", kept.to_str().expect("utf-8"), "--keep", "--json"];
    let out = t.cmd().args(args).env("RUST_LOG", "repro_capture::snapshot=debug").output().expect("run repro");
    let r = Run { args: args.iter().map(|s| s.to_string()).collect(), out }.success();
    let trace = r.stderr();
    let input_trace = trace
        .split("snapshot start")
        .find(|s| s.lines().next().is_some_and(|l| l.ends_with("data/train.csv")))
        .unwrap_or_else(|| panic!("the input's snapshot is traced: {trace}"));
    let hashed = input_trace.lines().find(|l| l.contains(" hashed=")).expect("the snapshot's trace");
    assert!(hashed.ends_with("hashed=0"), "the restored input was hashed again: {hashed}");
    let r = r.json();
    assert_eq!(r["verdict"], "identical");
    assert!(kept.join("train.py").is_file() && kept.join("data/train.csv").is_file());
    assert!(kept.join("model.pkl").is_file(), "the replayed output is there to inspect");

    // --link-data: the input is the store's object itself (one inode), hashed once, and the
    // replay is as identical; the store stays clean.
    use std::os::unix::fs::MetadataExt;
    let linked = outside.path().join("linked");
    let r = t
        .repro(&["replay", &a, "--workdir", linked.to_str().expect("utf-8"), "--keep", "--link-data", "--json"])
        .success()
        .json();
    assert_eq!(r["verdict"], "identical", "{r:#}");
    assert_eq!(r["inputs"][0]["how"], "linked to the store's objects", "{r:#}");
    let data = std::fs::metadata(linked.join("data/train.csv")).expect("stat");
    assert!(data.nlink() >= 2, "a hard link: {} links", data.nlink());
    let objects = t.path(".repro/objects");
    let same_inode = std::fs::read_dir(&objects)
        .expect("objects")
        .flatten()
        .filter_map(|shard| std::fs::read_dir(shard.path()).ok())
        .flat_map(|files| files.flatten())
        .any(|f| f.metadata().map(|m| m.ino() == data.ino()).unwrap_or(false));
    assert!(same_inode, "data/train.csv is one of the store's objects");
    assert_eq!(t.repro(&["fsck", "--json"]).success().json()["clean"], true);

    // --python that does not exist: bad input, nothing built.
    let e = t.repro(&["replay", &a, "--python", "/no/such/python"]).expect_code(2).error_line();
    assert!(e.contains("/no/such/python"), "{e}");
    assert_no_leftovers(&t);
}

/// A replay on a file system with reflinks (XFS, Btrfs) clones each input from the store and,
/// where the object's stamp says it hashed right and has not changed since, does not read the
/// clone back. scripts/test-all.sh mounts such a file system where it can and names it in
/// `REPRO_TEST_REFLINK_DIR`; elsewhere every input is copied, and read, whatever the stamps say.
#[test]
fn stamped_inputs_are_cloned_without_a_read_and_a_changed_object_is_refused() {
    let base = std::env::var_os("REPRO_TEST_REFLINK_DIR").map(std::path::PathBuf::from);
    let t = match &base {
        Some(b) => TestContext::new_in(b),
        None => TestContext::new(),
    };
    let reflinks = base.is_some();
    t.write(
        "train.py",
        "import hashlib, pathlib\n\
         data = pathlib.Path('data/big.bin').read_bytes()\n\
         pathlib.Path('digest.txt').write_text(hashlib.sha256(data).hexdigest())\n",
    );
    t.write(".gitignore", "data/\n");
    let big: Vec<u8> = (0..(3u32 << 20)).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect();
    std::fs::create_dir_all(t.path("data")).expect("mkdir");
    std::fs::write(t.path("data/big.bin"), &big).expect("write data");
    t.git(&["init", "-q", "-b", "main"]);
    t.commit_all("initial");
    t.repro(&["init"]).success();
    let py = t.python();
    let py = py.to_str().expect("utf-8");
    let a =
        id_of(&t.repro(&["run", "--json", "--seed", "1", "--data", "data/big.bin", "--", py, "train.py"]).success());

    // Written just now, the object is not stamped: the first replay reads its clone back (and
    // stamps it, the object being old enough by then); the second does not; --verify-data does.
    std::thread::sleep(std::time::Duration::from_millis(2100));
    let stamped = |extra: &[&str]| {
        let r = t.repro(&[&["replay", &a, "--json"], extra].concat()).success().json();
        assert_eq!(r["verdict"], "identical", "{r:#}");
        assert_eq!(r["inputs"][0]["how"], "restored from the store", "{r:#}");
        r["inputs"][0]["unread_files"].as_u64().expect("unread_files")
    };
    assert_eq!(stamped(&[]), 0);
    assert_eq!(stamped(&[]), u64::from(reflinks), "the second replay trusts the stamp where it cloned");
    assert_eq!(stamped(&["--verify-data"]), 0);
    if reflinks {
        assert!(t.path(".repro/object-stamps").is_file());
    }
    // With the stamps gone, fsck's re-hash of every local object stamps them again (a store
    // on S3 has its bucket checked instead, and the next replay reads).
    std::fs::remove_file(t.path(".repro/object-stamps")).ok();
    assert_eq!(t.repro(&["fsck", "--json"]).success().json()["clean"], true);
    assert_eq!(stamped(&[]), u64::from(reflinks && t.db_url().is_none()), "stamped by fsck");

    // The object changed behind repro's back (same inode, same size: only its ctime tells):
    // the stamp no longer vouches, the clone is read, and the replay refuses the input.
    let shown = t.show_json(&a);
    let manifest = shown["inputs"][0]["snapshot"].as_str().expect("snapshot");
    let m: Value = serde_json::from_slice(&t.read_object(manifest)).expect("manifest json");
    let file = m["entries"][0]["digest"].as_str().expect("digest").to_string();
    let mut forged = big.clone();
    forged[1 << 20] ^= 1;
    t.write_object(&file, &forged);
    let line = t.repro(&["replay", &a]).expect_code(2).error_line();
    assert!(line.contains("input data/big.bin") && line.contains("corrupt"), "{line}");
    assert_no_leftovers(&t);
    // fsck names it too.
    let report = t.repro(&["fsck", "--json"]).expect_code(1).json();
    assert_eq!(report["clean"], false, "{report:#}");
}
