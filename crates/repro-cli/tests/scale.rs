//! Scale at test sizes (issue 19): a tree past the chunking threshold goes through the same
//! code paths as a million files. Chunked manifests round-trip; one change rewrites one
//! chunk; an incrementally made manifest is the one a fresh hash makes; the stat cache's
//! chunk digests are checked by fsck; a chunked input replays; kill -9 mid-snapshot leaves
//! a clean store.

mod common;

use std::time::Duration;

use common::{age, id_of, TestContext};
use serde_json::Value;

/// Past the 8,192 files a manifest keeps whole: about ten chunks.
const FILES: usize = 10_000;

/// Writes FILES small files in 50 folders, aged so the stat cache trusts them.
fn big_tree(t: &TestContext, dir: &str) {
    for i in 0..FILES {
        t.write(&format!("{dir}/d{:02}/f{i:05}.txt", i % 50), &format!("file {i}\n"));
    }
    age(&t.path(dir));
}

fn root_of(t: &TestContext, digest: &Value) -> Value {
    serde_json::from_slice(&t.read_object(digest.as_str().expect("digest"))).expect("the root is JSON")
}

#[test]
fn a_big_tree_is_chunked_and_one_change_rewrites_one_chunk() {
    let t = TestContext::new();
    t.repro(&["init"]).success();
    big_tree(&t, "tree");
    let cold = t.repro(&["data", "snapshot", "tree", "--name", "big", "--json"]).success().json();
    assert_eq!(cold["files"], FILES);
    let root = root_of(&t, &cold["digest"]);
    assert_eq!(root["manifest_version"], 2, "a tree past 8,192 files is chunked");
    let chunks = root["chunks"].as_array().expect("chunks").len();
    assert!((4..40).contains(&chunks), "{chunks} chunks");
    assert_eq!(cold["new_objects"], FILES + chunks + 1, "every file, every chunk, the root");
    let rows = t.sql("SELECT count(*) FROM tree_cache_chunks");
    assert_eq!(rows.trim(), chunks.to_string(), "one stat-cache row per chunk");

    // Nothing changed: nothing hashed, nothing written.
    let again = t.repro(&["data", "snapshot", "tree", "--name", "big", "--json"]).success().json();
    assert_eq!(
        (again["digest"].clone(), again["hashed_files"].clone(), again["new_objects"].clone()),
        (cold["digest"].clone(), 0.into(), 0.into())
    );

    // One file changed: the file, its chunk and the root are new; nothing else is written.
    t.write("tree/d07/f07007.txt", "changed\n");
    age(&t.path("tree/d07/f07007.txt"));
    let one = t.repro(&["data", "snapshot", "tree", "--name", "big", "--json"]).success().json();
    assert_eq!(one["hashed_files"], 1);
    assert_eq!(one["new_objects"], 3, "{one:#}");
    assert!(one["new_bytes"].as_u64().expect("bytes") < 256 * 1024, "{one:#}");
    let before = root_of(&t, &cold["digest"]);
    let after = root_of(&t, &one["digest"]);
    let differ = (0..chunks).filter(|&i| before["chunks"][i] != after["chunks"][i]).count();
    assert_eq!(differ, 1, "one chunk of the root changed");
    let show = t.repro(&["data", "show", "big:2", "--json"]).success().json();
    assert_eq!(show["files"], FILES);
    let changed = show["entries"].as_array().expect("entries").iter().find(|e| e["path"] == "d07/f07007.txt");
    assert_eq!(changed.expect("listed")["size"], 8);
    // data diff names the one file, having read one chunk of each side.
    let d = t.repro(&["data", "diff", "big:1", "big:2", "--json"]).success().json();
    assert_eq!(d["changed"].as_array().map(Vec::len), Some(1), "{d:#}");
    assert_eq!(d["changed"][0]["path"], "d07/f07007.txt");
    assert_eq!((d["added"].as_array().map(Vec::len), d["removed"].as_array().map(Vec::len)), (Some(0), Some(0)));
    assert_eq!(d["unchanged"], FILES - 1);
    assert_eq!((d["chunks"]["a"].clone(), d["chunks"]["shared"].clone()), (chunks.into(), (chunks - 1).into()));
    let human = t.repro(&["data", "diff", "big:1", "big:2"]).success().stdout();
    assert!(human.contains("1 changed, 0 added, 0 removed") && human.contains("~ d07/f07007.txt"), "{human}");
    let e = t.repro(&["data", "diff", "big:1", "nope"]).expect_code(2).error_line();
    assert!(e.contains("nope") && e.contains("repro data ls"), "{e}");

    // A file added and one removed: the manifest made from the cache is the one a fresh
    // hash of the tree makes.
    t.write("tree/d03/zz-new.txt", "new\n");
    std::fs::remove_file(t.path("tree/d04/f00004.txt")).expect("rm");
    age(&t.path("tree/d03/zz-new.txt"));
    let moved = t.repro(&["data", "snapshot", "tree", "--name", "big", "--json"]).success().json();
    assert_eq!(moved["hashed_files"], 1);
    assert!(moved["new_objects"].as_u64().expect("n") <= 6, "{moved:#}");
    t.sql("DELETE FROM tree_cache_chunks");
    t.sql("DELETE FROM tree_cache");
    let fresh = t.repro(&["data", "snapshot", "tree", "--reference", "--json"]).success().json();
    assert_eq!(fresh["hashed_files"], FILES);
    assert_eq!(fresh["digest"], moved["digest"], "incremental and fresh manifests agree");
    let d = t.repro(&["data", "diff", "big:2", "big:3", "--json"]).success().json();
    assert_eq!(d["added"][0]["path"], "d03/zz-new.txt", "{d:#}");
    assert_eq!(d["removed"][0]["path"], "d04/f00004.txt", "{d:#}");
    assert_eq!(d["changed"].as_array().map(Vec::len), Some(0));
    assert_eq!(t.repro(&["fsck", "--json"]).success().json()["clean"], true);

    // A missing chunk is a broken reference fsck names.
    // A missing chunk (one the first two versions share) is a broken reference fsck names,
    // and reading the manifest says which object is gone.
    let shared = (0..chunks).find(|&i| before["chunks"][i] == after["chunks"][i]).expect("a shared chunk");
    let gone = after["chunks"][shared]["digest"].as_str().expect("digest").to_string();
    t.delete_object(&gone);
    let r = t.repro(&["fsck", "--json"]).expect_code(1).json();
    assert!(r["broken_references"].to_string().contains("manifest chunk"), "{r:#}");
    let e = t.repro(&["data", "show", "big:1"]).expect_code(2).error_line();
    assert!(e.contains(&gone) && e.contains("missing"), "{e}");
}

#[test]
fn fsck_drops_a_stat_cache_chunk_that_names_the_wrong_manifest_chunk() {
    let t = TestContext::new();
    t.repro(&["init"]).success();
    big_tree(&t, "tree");
    let cold = t.repro(&["data", "snapshot", "tree", "--reference", "--json"]).success().json();
    let root = root_of(&t, &cold["digest"]);
    // Each row's chunk digest swapped for another chunk's: files that match their stat
    // would make a manifest that names the wrong chunk.
    let (a, b) = (root["chunks"][0]["digest"].as_str().expect("d"), root["chunks"][1]["digest"].as_str().expect("d"));
    t.sql(&format!("UPDATE tree_cache_chunks SET chunk = '{b}' WHERE chunk = '{a}'"));
    let r = t.repro(&["fsck", "--json"]).success().json();
    assert!(r["caches_rebuilt"].to_string().contains("tree_cache"), "{r:#}");
    assert_eq!(t.sql("SELECT count(*) FROM tree_cache_chunks").trim(), "0", "the root's rows are dropped");
    let again = t.repro(&["data", "snapshot", "tree", "--reference", "--json"]).success().json();
    assert_eq!(again["digest"], cold["digest"]);
}

#[test]
fn a_chunked_input_replays_identical_without_hashing_it_again() {
    let t = TestContext::new();
    t.git(&["init", "-q", "-b", "main"]);
    t.write(
        "count.py",
        "import os\nn = sum(len(fs) for _, _, fs in os.walk('tree'))\nopen('out.txt', 'w').write(f'{n}\\n')\n",
    );
    t.write(".gitignore", "tree/\nout.txt\n");
    t.commit_all("count");
    t.repro(&["init"]).success();
    big_tree(&t, "tree");
    let py = t.python();
    let run = t
        .repro(&[
            "run",
            "--seed",
            "1",
            "--data",
            "tree",
            "--output",
            "out.txt",
            "--json",
            "--",
            py.to_str().expect("p"),
            "count.py",
        ])
        .success();
    let id = id_of(&run);
    let r = t.repro(&["replay", &id, "--json"]).success().json();
    assert_eq!(r["verdict"], "identical", "{r:#}");
    assert_eq!(t.repro(&["fsck", "--json"]).success().json()["clean"], true);
}

#[test]
fn kill_9_during_a_chunked_snapshot_leaves_a_store_fsck_calls_clean() {
    let t = TestContext::new();
    t.repro(&["init"]).success();
    big_tree(&t, "tree");
    // Kills land while files are stored, while chunks and the root are written, and while
    // the stat cache's rows are: each round changes a file so there is something to write.
    // Fewer rounds against PostgreSQL + S3, where each fsck lists and checks the bucket.
    let delays: &[u64] = if t.db_url().is_some() { &[150, 900] } else { &[30, 150, 400, 900, 1600] };
    for (round, &delay_ms) in delays.iter().enumerate() {
        let mut child = t
            .cmd()
            .args(["data", "snapshot", "tree", "--name", "big"])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("spawn");
        std::thread::sleep(Duration::from_millis(delay_ms));
        std::process::Command::new("kill").args(["-9", &child.id().to_string()]).status().expect("kill");
        child.wait().expect("wait");
        let fsck = t.repro(&["fsck", "--json"]).success().json();
        assert_eq!(fsck["clean"], true, "after a kill at {delay_ms} ms: {fsck:#}");
        t.write(&format!("tree/d{round:02}/f{round:05}.txt"), &format!("round {round}\n"));
        age(&t.path(&format!("tree/d{round:02}/f{round:05}.txt")));
    }
    // A snapshot allowed to finish is the one a fresh hash of the tree makes.
    let done = t.repro(&["data", "snapshot", "tree", "--name", "big", "--json"]).success().json();
    t.sql("DELETE FROM tree_cache_chunks");
    t.sql("DELETE FROM tree_cache");
    let fresh = t.repro(&["data", "snapshot", "tree", "--reference", "--json"]).success().json();
    assert_eq!(fresh["digest"], done["digest"]);
    assert_eq!(t.repro(&["fsck", "--json"]).success().json()["clean"], true);
}
