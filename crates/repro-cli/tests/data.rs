//! Data snapshots and named datasets.

mod common;

use common::{age, TestContext};

#[test]
fn same_content_same_version_changed_content_next_version() {
    let t = TestContext::new();
    t.repro(&["init"]).success();
    t.write("data/a.csv", "x,y\n1,2\n");
    t.write("data/sub/b.csv", "x,y\n3,4\n");
    let v1 = t.repro(&["data", "snapshot", "data", "--name", "train", "--json"]).success().json();
    assert_eq!(v1["dataset"]["version"], 1);
    assert_eq!(v1["files"], 2);
    assert_eq!(v1["new_objects"], 3, "two files and the manifest");
    let again = t.repro(&["data", "snapshot", "data", "--name", "train", "--json"]).success().json();
    assert_eq!(again["dataset"]["version"], 1);
    assert_eq!(again["digest"], v1["digest"]);
    assert_eq!(again["new_objects"], 0);

    // Same path, other content: a new version, never confused by name.
    t.write("data/a.csv", "x,y\n1,999\n");
    let v2 = t.repro(&["data", "snapshot", "data", "--name", "train", "--json"]).success().json();
    assert_eq!(v2["dataset"]["version"], 2);
    assert_ne!(v2["digest"], v1["digest"]);
    assert_eq!(v2["new_objects"], 2, "only the changed file and the manifest are new");

    let ls = t.repro(&["data", "ls", "--json"]).success().json();
    assert_eq!(ls.as_array().expect("arr").len(), 2);
    let show = t.repro(&["data", "show", "train:1", "--json"]).success().json();
    assert_eq!(show["snapshot"], v1["digest"]);
    let paths: Vec<&str> =
        show["entries"].as_array().expect("e").iter().map(|e| e["path"].as_str().expect("p")).collect();
    assert_eq!(paths, vec!["a.csv", "sub/b.csv"]);
    assert_eq!(
        t.repro(&["data", "show", "train", "--json"]).success().json()["version"],
        2,
        "NAME alone is the newest"
    );
    assert!(t.repro(&["data", "ls"]).success().stdout().contains("train:2"));
    t.repro(&["fsck"]).success();
}

#[test]
fn reference_snapshot_stores_no_contents_and_audit_warns() {
    let t = TestContext::new();
    t.git(&["init", "-q"]);
    t.repro(&["init"]).success();
    t.write("big.bin", &"z".repeat(100_000));
    let r = t.repro(&["data", "snapshot", "big.bin", "--reference", "--json"]).success().json();
    assert_eq!(r["reference"], true);
    assert_eq!(r["new_objects"], 1, "only the manifest is stored");
    assert_eq!(r["dataset"]["name"], "big.bin");
    let show = t.repro(&["data", "show", "big.bin", "--json"]).success().json();
    assert_eq!(show["stored"], false);
    assert!(t.repro(&["data", "show", "big.bin"]).success().stdout().contains("reference only"));
}

#[test]
fn unchanged_tree_is_answered_by_the_stat_cache() {
    let t = TestContext::new();
    t.repro(&["init"]).success();
    for i in 0..50 {
        t.write(&format!("tree/d{}/f{i}.bin", i % 5), &format!("content {i}"));
    }
    age(&t.path("tree"));
    let cold = t.repro(&["data", "snapshot", "tree", "--json"]).success().json();
    assert_eq!(cold["hashed_files"], 50);
    let warm = t.repro(&["data", "snapshot", "tree", "--json"]).success().json();
    assert_eq!(warm["hashed_files"], 0, "nothing re-hashed");
    assert_eq!(warm["digest"], cold["digest"]);
    // A touched file (new mtime) is re-hashed; content unchanged keeps the digest.
    t.write("tree/d0/f0.bin", "content 0");
    let touched = t.repro(&["data", "snapshot", "tree", "--json"]).success().json();
    assert_eq!(touched["hashed_files"], 1);
    assert_eq!(touched["digest"], cold["digest"]);
}

#[test]
fn a_removed_object_is_restored_by_the_next_copying_snapshot() {
    let t = TestContext::new();
    t.repro(&["init"]).success();
    t.write("d/x.txt", "hello");
    age(&t.path("d"));
    t.repro(&["data", "snapshot", "d", "--reference"]).success();
    // The stat cache knows x.txt's digest, but its bytes were never stored: a copying
    // snapshot must store them anyway.
    let r = t.repro(&["data", "snapshot", "d", "--json"]).success().json();
    assert_eq!(r["new_objects"], 1);
    assert_eq!(t.repro(&["data", "show", "d", "--json"]).success().json()["stored"], true);
    t.repro(&["fsck"]).success();
}

#[test]
fn the_stat_cache_vouches_for_stored_objects_until_fsck_finds_one_gone() {
    let t = TestContext::new();
    t.repro(&["init"]).success();
    for i in 0..20 {
        t.write(&format!("d/f{i}.txt"), &format!("file {i}"));
    }
    age(&t.path("d"));
    t.repro(&["data", "snapshot", "d"]).success();
    let victim = t.repro(&["data", "show", "d", "--json"]).success().json()["entries"][3]["digest"]
        .as_str()
        .expect("digest")
        .to_string();
    t.delete_object(&victim);
    // Its row says f3's object was stored: a copying snapshot does not look for it again.
    t.write("d/f0.txt", "changed 0");
    age(&t.path("d/f0.txt"));
    let trusted = t.repro(&["data", "snapshot", "d", "--json"]).success().json();
    assert_eq!(trusted["new_objects"], 2, "the changed file and the manifest: {trusted:#}");
    // fsck names the damage and takes the rows' word back: the next snapshot stores it again.
    let fsck = t.repro(&["fsck", "--json"]).expect_code(1).json();
    assert!(fsck.to_string().contains(&victim), "{fsck:#}");
    t.write("d/f1.txt", "changed 1");
    age(&t.path("d/f1.txt"));
    let healed = t.repro(&["data", "snapshot", "d", "--json"]).success().json();
    assert_eq!(healed["new_objects"], 3, "the changed file, the lost one and the manifest: {healed:#}");
    assert_eq!(t.repro(&["fsck", "--json"]).success().json()["clean"], true);
}

#[test]
fn corrupted_object_fails_audit_and_fsck_by_name() {
    let t = TestContext::new();
    t.git(&["init", "-q"]);
    t.repro(&["init"]).success();
    t.write("in.txt", "precious data");
    t.repro(&["run", "--seed", "1", "--data", "in.txt", "--", "true"]).success();
    t.repro(&["fsck"]).success();
    let show = t.repro(&["show", "latest", "--json"]).success().json();
    let manifest = show["inputs"][0]["snapshot"].as_str().expect("snap").to_string();
    let m = t.repro(&["data", "show", "in.txt", "--json"]).success().json();
    let content = m["entries"][0]["digest"].as_str().expect("digest").to_string();
    t.write_object(&content, b"precious dat4");

    let (report, code) = t.audit("latest");
    assert_eq!(code, 1);
    let item = common::item(&report, "objects_verified");
    assert_eq!(item["status"], "missing");
    assert!(item["detail"].as_str().expect("d").contains(&content[..19]), "{item}");
    let r = t.repro(&["fsck"]).expect_code(1);
    assert!(r.stdout().contains(&format!("corrupt object {content}")), "{}", r.stdout());
    let fsck = t.repro(&["fsck", "--json"]).expect_code(1).json();
    assert_eq!(fsck["clean"], false);
    assert!(fsck["broken_references"]
        .as_array()
        .expect("refs")
        .iter()
        .any(|b| b["referrer"].as_str().expect("r").contains("file in.txt")));
    // Reading a corrupt manifest is an error that says so.
    t.write_object(&manifest, b"{}");
    let line = t.repro(&["data", "show", "in.txt"]).expect_code(2).error_line();
    assert!(line.contains("is corrupt") && line.contains("repro fsck"), "{line}");
}

#[test]
fn editing_a_run_row_behind_repros_back_is_detected() {
    let t = TestContext::new();
    t.repro(&["init"]).success();
    t.repro(&["run", "--seed", "1", "--", "true"]).success();
    t.sql("UPDATE runs SET record = replace(record, '\"value\":1,', '\"value\":2,')");
    let r = t.repro(&["fsck"]).expect_code(1);
    assert!(r.stdout().contains("no longer matches its lineage digest"), "{}", r.stdout());
    let (report, code) = t.audit("latest");
    assert_eq!(code, 1);
    assert_eq!(common::status(&report, "objects_verified"), "missing");
}
