//! The model registry, told as the auditor's story with real scikit-learn runs: a run is
//! registered, promoted to staging, refused for prod with everything missing listed, then
//! replayed, signed and approved into prod — and every registry event is hash-chained, so
//! an edit behind repro's back (sqlite3 on the database, one flipped byte of an object) is
//! named by `repro fsck` and `repro model verify`.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::{id_of, named, status, TestContext};
use serde_json::Value;

// ---- helpers ---------------------------------------------------------------------------

const ADA: &str = "Ada Auditor <ada@example.invalid>";
const BOB: &str = "Bob Reviewer <bob@example.invalid>";

/// The example project with a git identity of its own, so repro's default actor is known.
fn project() -> TestContext {
    let t = TestContext::sklearn_project();
    t.git(&["config", "user.name", "Ada Auditor"]);
    t.git(&["config", "user.email", "ada@example.invalid"]);
    t
}

/// The example project, one seeded run, its model.pkl registered as pricing@1.
fn registered() -> (TestContext, String) {
    let t = project();
    let run = id_of(&t.train(&["--json"]).success());
    let v = t.repro(&["model", "register", &run, "--name", "pricing", "--artifact", "model.pkl", "--json"]).success();
    assert_eq!(v.json()["version"], 1);
    (t, run)
}

/// Runs one statement on the store's database behind repro's back.
fn sql(t: &TestContext, statement: &str) -> String {
    t.sql(statement).trim().to_string()
}

/// How many events the registry's log holds, read behind repro's back.
fn events(t: &TestContext) -> usize {
    sql(t, "SELECT count(*) FROM registry_events").parse().expect("a count")
}

/// The newest event's kind and payload, read behind repro's back.
fn last_event(t: &TestContext) -> (String, Value) {
    let kind = sql(t, "SELECT kind FROM registry_events ORDER BY seq DESC LIMIT 1");
    let payload = sql(t, "SELECT payload FROM registry_events ORDER BY seq DESC LIMIT 1");
    (kind, serde_json::from_str(&payload).expect("payload JSON"))
}

/// The newest event is a refusal for `stage` naming exactly `unmet` (the requirements, in order).
fn assert_refusal_recorded(t: &TestContext, stage: &str, unmet: &[&str]) {
    let (kind, payload) = last_event(t);
    assert_eq!(kind, "refuse", "{payload:#}");
    assert_eq!(payload["stage"], stage, "{payload:#}");
    let named: Vec<&str> = payload["unmet"]
        .as_array()
        .expect("unmet")
        .iter()
        .map(|u| u.as_str().expect("text").split(':').next().unwrap_or_default())
        .collect();
    assert_eq!(named, unmet, "{payload:#}");
}

/// Files under the store's object folder.
fn object_files(t: &TestContext) -> usize {
    fn walk(p: &Path) -> usize {
        std::fs::read_dir(p)
            .map(|d| d.flatten().map(|e| if e.path().is_dir() { walk(&e.path()) } else { 1 }).sum())
            .unwrap_or(0)
    }
    walk(&t.path(".repro/objects"))
}

/// `repro key generate --out DIR --json`.
fn generate_key(t: &TestContext, dir: &str) -> Value {
    t.repro(&["key", "generate", "--out", dir, "--json"]).success().json()
}

fn sign(t: &TestContext, model: &str, key_dir: &str) -> Value {
    let key = format!("{key_dir}/repro.key");
    t.repro(&["model", "sign", model, "--key", &key, "--json"]).success().json()
}

/// The private key of `who` (made on first use, under keys/<their e-mail>), trusted by the
/// store as an approver under that name.
fn approver_key(t: &TestContext, who: &str) -> String {
    let slug: String = repro_core::registry::identity_key(who).chars().filter(|c| c.is_ascii_alphanumeric()).collect();
    let dir = format!("keys/{slug}");
    if t.path(&dir).join("repro.key").exists() {
        return format!("{dir}/repro.key");
    }
    t.trusted_approver(&dir, who).0
}

/// `who` approves with their own trusted key.
fn approve(t: &TestContext, model: &str, stage: &str, who: &str) -> Value {
    let key = approver_key(t, who);
    t.repro(&["model", "approve", model, "--stage", stage, "--key", &key, "--as", who, "--json"]).success().json()
}

fn show_version(t: &TestContext, model: &str) -> Value {
    t.repro(&["model", "show", model, "--json"]).success().json()
}

/// The kinds of a version's history, oldest first.
fn history(v: &Value) -> Vec<String> {
    v["history"].as_array().expect("history").iter().map(|h| h["kind"].as_str().expect("kind").to_string()).collect()
}

/// The requirement names a refused promotion lists.
fn unmet(outcome: &Value) -> Vec<String> {
    assert_eq!(outcome["outcome"], "refused", "{outcome:#}");
    let list = outcome["unmet"].as_array().expect("unmet");
    for u in list {
        assert!(!u["reason"].as_str().expect("reason").is_empty(), "every unmet requirement says why: {u}");
    }
    list.iter().map(|u| u["requirement"].as_str().expect("requirement").to_string()).collect()
}

fn unmet_reason<'a>(outcome: &'a Value, requirement: &str) -> &'a str {
    outcome["unmet"]
        .as_array()
        .expect("unmet")
        .iter()
        .find(|u| u["requirement"] == requirement)
        .and_then(|u| u["reason"].as_str())
        .unwrap_or_else(|| panic!("no unmet {requirement} in {outcome:#}"))
}

/// One check of `repro model verify --json`.
fn check<'a>(report: &'a Value, name: &str) -> (bool, &'a str) {
    let c = named(&report["checks"], name);
    (c["ok"].as_bool().expect("ok"), c["detail"].as_str().expect("detail"))
}

/// Flips the lowest bit of one byte of an object, behind repro's back.
fn flip_byte(t: &TestContext, digest: &str, offset: usize) {
    let mut bytes = t.read_object(digest);
    bytes[offset] ^= 1;
    t.write_object(digest, &bytes);
}

fn sha256sum(path: &Path) -> String {
    let out = Command::new("sha256sum").arg(path).output().expect("sha256sum");
    assert!(out.status.success());
    String::from_utf8_lossy(&out.stdout).split_whitespace().next().expect("digest").to_string()
}

fn is_hex(s: &str, len: usize) -> bool {
    s.len() == len && s.bytes().all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
}

/// A copy of the store to restore between tampering cases.
fn backup(t: &TestContext) {
    t.backup_store("store-backup");
}

fn restore(t: &TestContext) {
    t.restore_store("store-backup");
    t.repro(&["fsck"]).success();
}

/// pricing@1 in staging, signed by keys/, approved for prod by Bob: events #1 register,
/// #2 promote, #3 sign, #4 approve. Returns the context, the run id and the key's id.
fn signed_in_staging() -> (TestContext, String, String) {
    let (t, run) = registered();
    t.repro(&["model", "promote", "pricing@1", "--to", "staging"]).success();
    let keyid = generate_key(&t, "keys")["keyid"].as_str().expect("keyid").to_string();
    sign(&t, "pricing@1", "keys");
    approve(&t, "pricing@1", "prod", BOB);
    assert_eq!(events(&t), 4);
    t.repro(&["fsck"]).success();
    (t, run, keyid)
}

// ---- the auditor's story ----------------------------------------------------------------

#[test]
fn auditor_story_run_register_staging_refused_for_prod_then_replay_sign_approve_into_prod() {
    let t = project();
    let run = id_of(&t.train(&["--json"]).success());

    // Register: version 1, pinning the run and the artifact's digests.
    let v =
        t.repro(&["model", "register", "latest", "--name", "pricing", "--artifact", "model.pkl", "--json"]).success();
    let v = v.json();
    assert_eq!((v["name"].as_str(), v["version"].as_u64()), (Some("pricing"), Some(1)), "{v:#}");
    assert_eq!(v["run"], run.as_str());
    assert_eq!(v["registered_by"], ADA, "the actor defaults to git's user.name <user.email>");
    assert!(v["lineage"].as_str().expect("lineage").starts_with("blake3:"));
    assert_eq!(v["stage"], Value::Null);
    let files = v["artifact"]["files"].as_array().expect("files");
    assert_eq!(files.len(), 1, "{v:#}");
    assert_eq!(files[0]["path"], "model.pkl");
    assert_eq!(files[0]["sha256"], sha256sum(&t.path("model.pkl")), "sha256 of the very bytes the run wrote");
    assert!(is_hex(files[0]["blake3"].as_str().expect("blake3").trim_start_matches("blake3:"), 64), "{v:#}");
    assert_eq!(files[0]["size"], std::fs::metadata(t.path("model.pkl")).expect("stat").len());
    assert_eq!(history(&v), ["register"]);
    assert_eq!(events(&t), 1);

    // Staging: git_clean, env_pinned, random_seed, dataset_snapshot are all met.
    let p = t.repro(&["model", "promote", "pricing@1", "--to", "staging", "--json"]).success().json();
    assert_eq!((p["outcome"].as_str(), p["stage"].as_str()), (Some("promoted"), Some("staging")), "{p:#}");
    assert_eq!(p["version"]["stage"], "staging");
    assert_eq!(events(&t), 2);
    let checked: Value =
        serde_json::from_str(&sql(&t, "SELECT payload FROM registry_events WHERE seq = 2")).expect("payload JSON");
    assert_eq!(checked["checked"], serde_json::json!(["git_clean", "env_pinned", "random_seed", "dataset_snapshot"]));

    // Prod: refused, every missing requirement listed, nothing written.
    let refused = t.repro(&["model", "promote", "pricing@1", "--to", "prod", "--json"]).expect_code(1).json();
    assert_eq!(unmet(&refused), ["replay_verified", "signed", "approvals"], "{refused:#}");
    assert!(
        unmet_reason(&refused, "approvals").contains("needs 2 approvals signed by distinct trusted approvers"),
        "{refused:#}"
    );
    assert_eq!(events(&t), 3, "a refused promotion is recorded, with what stopped it");
    assert_refusal_recorded(&t, "prod", &["replay_verified", "signed", "approvals"]);
    let human = t.repro(&["model", "promote", "pricing@1", "--to", "prod"]).expect_code(1).stdout();
    assert!(human.contains("3 requirement(s) unmet"), "{human}");
    for (name, fix) in [
        ("replay_verified", "repro replay"),
        ("signed", "repro model sign pricing@1"),
        ("approvals", "repro model approve pricing@1 --stage prod"),
    ] {
        assert!(human.contains(name) && human.contains(fix), "{name} / {fix} missing from:\n{human}");
    }
    assert_eq!(events(&t), 4, "each attempt is recorded");

    // A key pair: the private half readable by its owner only.
    let key = generate_key(&t, "keys");
    let mode = |p: &str| std::fs::metadata(t.path(p)).expect("stat").permissions().mode() & 0o777;
    assert_eq!(mode("keys/repro.key"), 0o600);
    assert!(std::fs::read_to_string(t.path("keys/repro.pub")).expect("pub").starts_with("-----BEGIN PUBLIC KEY-----"));
    let keyid = key["keyid"].as_str().expect("keyid").to_string();
    assert!(is_hex(&keyid, 64), "{key}");

    // Replay through the model reference: identical.
    let replay = t.repro(&["replay", "pricing@staging", "--json"]).success().json();
    assert_eq!(replay["verdict"], "identical", "{replay:#}");
    assert_eq!(replay["original"], run.as_str());
    let replay_id = replay["replay"].as_str().expect("replay id").to_string();

    // Sign.
    let s = sign(&t, "pricing@1", "keys");
    assert_eq!(s["keyid"], keyid.as_str());
    assert_eq!(s["model"], "pricing@1");
    assert_eq!(events(&t), 5);

    // Approvals are signatures. Ada's own key (the default one, in her key folder) is
    // trusted by the store as hers.
    let own = t.repro(&["key", "generate", "--json"]).success().json();
    let own_pub = own["public"].as_str().expect("public").to_string();
    t.repro(&["key", "add", &own_pub, "--approver", "--name", ADA]).success();
    let a = t
        .repro(&["model", "approve", "pricing@1", "--stage", "prod", "--comment", "reviewed the replay", "--json"])
        .success()
        .json();
    assert_eq!(a["by"], ADA, "the name in the statement defaults to git's identity");
    assert_eq!((a["keyid"].as_str(), a["trusted"].as_bool()), (own["keyid"].as_str(), Some(true)), "{a:#}");
    assert_eq!(
        (a["repeated"].as_bool(), a["approvers"].as_u64(), a["needed"].as_u64()),
        (Some(false), Some(1), Some(2))
    );
    // The same key again, under another name: one key is one person, counted once.
    let own_key = own["private"].as_str().expect("private").to_string();
    let again = t
        .repro(&[
            "model",
            "approve",
            "pricing@1",
            "--stage",
            "prod",
            "--key",
            &own_key,
            "--as",
            "Mallory <m@x.invalid>",
            "--json",
        ])
        .success()
        .json();
    assert_eq!((again["repeated"].as_bool(), again["approvers"].as_u64()), (Some(true), Some(1)), "{again:#}");
    let still = t.repro(&["model", "promote", "pricing@1", "--to", "prod", "--json"]).expect_code(1).json();
    assert_eq!(unmet(&still), ["approvals"], "replayed and signed now: {still:#}");
    assert!(unmet_reason(&still, "approvals").contains(&format!("has 1 ({ADA})")), "{still:#}");
    assert_eq!(events(&t), 8, "two approvals and the refusal recorded");
    assert_refusal_recorded(&t, "prod", &["approvals"]);

    let bob = approve(&t, "pricing@1", "prod", BOB);
    assert_eq!((bob["repeated"].as_bool(), bob["approvers"].as_u64()), (Some(false), Some(2)));

    // Prod.
    let p = t.repro(&["model", "promote", "pricing@1", "--to", "prod", "--json"]).success().json();
    assert_eq!(p["outcome"], "promoted", "{p:#}");
    assert_eq!((p["stage"].as_str(), p["from"].as_str()), (Some("prod"), Some("staging")));
    assert_eq!(events(&t), 10);
    let (kind, promote) = last_event(&t);
    assert_eq!(kind, "promote");
    assert_eq!(promote["approvers"], serde_json::json!([ADA, BOB]), "distinct approvers, first approval each");
    assert!(promote["checked"].as_array().expect("checked").iter().any(|c| c == "replay_verified"));

    // The version's record: who approved, when, for which stage, why; the whole history.
    let shown = show_version(&t, "pricing@prod");
    assert_eq!((shown["version"].as_u64(), shown["stage"].as_str()), (Some(1), Some("prod")));
    let approvals = shown["approvals"].as_array().expect("approvals");
    assert_eq!(approvals.len(), 3);
    assert!(approvals.iter().all(|a| a["stage"] == "prod" && a["at_ms"].as_i64().unwrap_or(0) > 0));
    assert_eq!(approvals[0]["by"], ADA);
    assert_eq!(approvals[0]["comment"], "reviewed the replay");
    assert_eq!(approvals[2]["by"], BOB);
    assert_eq!(shown["signatures"][0]["keyid"], keyid.as_str());
    assert_eq!(
        history(&shown),
        ["register", "promote", "refuse", "refuse", "sign", "approve", "approve", "refuse", "approve", "promote"]
    );
    let text = t.repro(&["model", "show", "pricing@1"]).success().stdout();
    assert!(text.contains("pricing@1 (prod)") && text.contains("reviewed the replay"), "{text}");

    // Verify against the key we trust.
    let verified = t.repro(&["model", "verify", "pricing@prod", "--key", "keys/repro.pub", "--json"]).success().json();
    assert_eq!(verified["ok"], true, "{verified:#}");
    for name in ["event_chain", "lineage", "artifact", "signature"] {
        assert!(check(&verified, name).0, "{name}: {verified:#}");
    }
    assert!(check(&verified, "event_chain").1.contains("10 events"), "{verified:#}");
    // README's `--key repro.pub`: a bare name not found here is the one in the key folder
    // (REPRO_KEY_DIR here), and a missing one names both places.
    let home = t.tmp.path().join("verify-keys");
    let verify_with = |key: &str| {
        let out = t
            .cmd()
            .args(["model", "verify", "pricing@prod", "--key", key, "--json"])
            .env("REPRO_KEY_DIR", &home)
            .output()
            .expect("repro model verify");
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (code, _, err) = verify_with("repro.pub");
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("repro.pub") && err.contains("verify-keys") && err.lines().count() == 1, "{err}");
    std::fs::create_dir_all(&home).expect("key folder");
    std::fs::copy(t.path("keys/repro.pub"), home.join("repro.pub")).expect("copy the key");
    let (code, out, err) = verify_with("repro.pub");
    assert_eq!(code, Some(0), "{err}");
    let keyed: serde_json::Value = serde_json::from_str(&out).expect("json");
    assert_eq!(keyed["ok"], true, "{keyed:#}");

    // NAME@V / NAME@STAGE wherever a run is accepted.
    let (audit, code) = t.audit("pricing@prod");
    assert_eq!(code, 0, "{audit:#}");
    assert_eq!(audit["run"], run.as_str());
    assert_eq!(status(&audit, "registry_version"), "ok");
    assert!(common::item(&audit, "registry_version")["detail"].as_str().expect("detail").contains("pricing@1 (prod)"));
    assert_eq!(status(&audit, "replay_verified"), "ok");
    assert_eq!(t.repro(&["show", "pricing@1", "--json"]).success().json()["id"], run.as_str());
    let diff = t.repro(&["diff", "pricing@1", "latest", "--json"]).success().json();
    assert_eq!((diff["a"].as_str(), diff["b"].as_str()), (Some(run.as_str()), Some(replay_id.as_str())));
    t.repro(&["env", "export", "pricing@prod", "-o", "serving.lock.txt"]).success();
    let lock = std::fs::read_to_string(t.path("serving.lock.txt")).expect("lock");
    let shown_run = t.repro(&["show", &run, "--json"]).success().json();
    let sklearn =
        named(&shown_run["environment"]["python"]["packages"], "scikit-learn")["version"].as_str().expect("version");
    assert!(lock.contains(&format!("scikit-learn=={sklearn}")), "{lock}");
    let py = t.python();
    let parity = t.repro(&["env", "parity", "pricing@prod", "--python", py.to_str().expect("utf-8"), "--json"]);
    assert_eq!(parity.success().json()["pass"], true);

    let ls = t.repro(&["model", "ls", "--json"]).success().json();
    assert_eq!(ls[0]["stages"], serde_json::json!({"prod": 1}), "{ls:#}");
    let fsck = t.repro(&["fsck", "--json"]).success().json();
    assert_eq!((fsck["clean"].as_bool(), fsck["registry_events"].as_u64()), (Some(true), Some(10)), "{fsck:#}");
}

#[test]
fn a_new_version_takes_the_stage_and_an_archived_version_is_out_for_good() {
    let (t, run_a) = registered();
    t.repro(&["model", "promote", "pricing@1", "--to", "dev"]).success();
    t.repro(&["model", "promote", "pricing@1", "--to", "staging"]).success();
    let v1_before = show_version(&t, "pricing@1");

    // Retraining is a new run and a new version; version 1 is never edited.
    let run_b = id_of(&t.train(&["--param", "model.n_estimators=20", "--json"]).success());
    assert_ne!(run_a, run_b);
    let v2 = t.repro(&["model", "register", &run_b, "--name", "pricing", "--artifact", "model.pkl", "--json"]);
    let v2 = v2.success().json();
    assert_eq!(v2["version"], 2);
    assert_ne!(v2["artifact"]["files"][0]["sha256"], v1_before["artifact"]["files"][0]["sha256"]);
    let v1 = show_version(&t, "pricing@1");
    for field in ["run", "lineage", "artifact", "stage"] {
        assert_eq!(v1[field], v1_before[field], "{field} of pricing@1 changed");
    }

    // v2 takes staging; v1 leaves it, and its history says so.
    let p = t.repro(&["model", "promote", "pricing@2", "--to", "staging", "--json"]).success().json();
    assert_eq!((p["replaced"].as_u64(), p["from"].as_str()), (Some(1), None), "{p:#}");
    let n = events(&t);
    let v1 = show_version(&t, "pricing@1");
    assert_eq!(v1["stage"], Value::Null);
    let left = v1["history"].as_array().expect("history").last().expect("an entry").clone();
    assert_eq!(left["seq"].as_u64(), Some(n as u64), "{left}");
    assert!(left["detail"].as_str().expect("detail").contains("left staging: pricing@2 took it"), "{left}");
    assert_eq!(t.repro(&["show", "pricing@staging", "--json"]).success().json()["id"], run_b.as_str());
    let text = t.repro(&["model", "promote", "pricing@2", "--to", "staging"]).success().stdout();
    assert!(text.contains("already in staging"), "{text}");
    let already = t.repro(&["model", "promote", "pricing@2", "--to", "staging", "--json"]).success().json();
    assert_eq!(already["outcome"], "already");
    assert_eq!(events(&t), n, "promoting to the stage it holds writes nothing");

    // Archive v1: with a reason, once.
    let a = t.repro(&["model", "archive", "pricing@1", "--reason", "superseded by v2", "--json"]).success().json();
    assert_eq!(a["archived"]["reason"], "superseded by v2");
    assert_eq!(a["archived"]["by"], ADA);
    let n = events(&t);
    let e = t.repro(&["model", "archive", "pricing@1", "--reason", "again"]).expect_code(2).error_line();
    assert!(e.contains("pricing@1 is already archived (superseded by v2)"), "{e}");
    let e = t.repro(&["model", "archive", "pricing@2", "--reason", "  "]).expect_code(2).error_line();
    assert!(e.contains("--reason"), "{e}");

    // An archived version cannot come back: promote is refused (exit 1, listed), approve
    // and sign are errors (exit 2); none writes anything.
    let refused = t.repro(&["model", "promote", "pricing@1", "--to", "dev", "--json"]).expect_code(1).json();
    assert_eq!(unmet(&refused), ["not_archived"], "{refused:#}");
    assert!(unmet_reason(&refused, "not_archived").contains("superseded by v2"));
    let key = approver_key(&t, BOB);
    let e = t.repro(&["model", "approve", "pricing@1", "--stage", "prod", "--key", &key]).expect_code(2).error_line();
    assert!(e.contains("pricing@1 is archived") && e.contains("cannot be approved"), "{e}");
    generate_key(&t, "keys");
    let e = t.repro(&["model", "sign", "pricing@1", "--key", "keys/repro.key"]).expect_code(2).error_line();
    assert!(e.contains("pricing@1 is archived") && e.contains("cannot be signed"), "{e}");
    assert_eq!(events(&t), n + 1, "the refused promotion is recorded; the errors write nothing");

    // The model lists both versions with their histories.
    let m = t.repro(&["model", "show", "pricing", "--json"]).success().json();
    assert_eq!((m["latest"].as_u64(), m["stages"].clone()), (Some(2), serde_json::json!({"staging": 2})), "{m:#}");
    let versions = m["versions"].as_array().expect("versions");
    assert_eq!(versions.len(), 2);
    assert_eq!(history(&versions[0]), ["register", "promote", "promote", "promote", "archive", "refuse"]);
    assert_eq!(history(&versions[1]), ["register", "promote"]);
    assert!(versions[0]["archived"].is_object() && versions[1]["archived"].is_null());
    let text = t.repro(&["model", "show", "pricing"]).success().stdout();
    assert!(text.lines().any(|l| l.trim_start().starts_with("1 ") && l.contains("archived")), "{text}");
    let (audit, _) = t.audit(&run_a);
    let detail = common::item(&audit, "registry_version")["detail"].as_str().expect("detail").to_string();
    assert!(detail.contains("pricing@1 (archived)"), "{detail}");

    // Numbers are never reused.
    let v3 = t.repro(&["model", "register", &run_a, "--name", "pricing", "--artifact", "model.pkl", "--json"]);
    assert_eq!(v3.success().json()["version"], 3);
    t.repro(&["fsck"]).success();
}

// ---- tamper evidence ----------------------------------------------------------------------

#[test]
fn an_edited_or_removed_registry_event_is_named_by_fsck_and_verify() {
    let (t, _, _) = signed_in_staging();
    backup(&t);

    // (a) The promotion's payload edited with sqlite3: staging → prod.
    sql(&t, "UPDATE registry_events SET payload = replace(payload, '\"staging\"', '\"prod\"') WHERE seq = 2");
    assert_eq!(
        sql(&t, "SELECT CASE WHEN payload LIKE '%\"prod\"%' THEN 1 ELSE 0 END FROM registry_events WHERE seq = 2"),
        "1"
    );
    let fsck = t.repro(&["fsck"]).expect_code(1).stdout();
    assert!(fsck.contains("registry event #2 promote pricing@1 was changed"), "{fsck}");
    assert!(fsck.contains("DAMAGED"), "{fsck}");
    let report = t.repro(&["model", "verify", "pricing@1", "--json"]).expect_code(1).json();
    assert_eq!(report["ok"], false);
    let (ok, detail) = check(&report, "event_chain");
    assert!(!ok && detail.contains("#2 promote pricing@1 was changed"), "{report:#}");
    assert!(check(&report, "lineage").0 && check(&report, "artifact").0 && check(&report, "signature").0);
    let human = t.repro(&["model", "verify", "pricing@1"]).expect_code(1).stdout();
    assert!(human.contains("FAIL event_chain") && human.contains("VERIFICATION FAILED"), "{human}");
    restore(&t);

    // An approval's actor rewritten.
    sql(&t, "UPDATE registry_events SET actor = 'Mallory <m@example.invalid>' WHERE seq = 4");
    let fsck = t.repro(&["fsck"]).expect_code(1).stdout();
    assert!(fsck.contains("registry event #4 approve pricing@1 was changed"), "{fsck}");
    restore(&t);

    // (b) The last event deleted: the anchor file still names it.
    sql(&t, "DELETE FROM registry_events WHERE seq = 4");
    let fsck = t.repro(&["fsck", "--json"]).expect_code(1).json();
    let problems = fsck["registry"].as_array().expect("registry problems");
    assert!(
        problems.iter().any(|p| p.as_str().unwrap_or("").contains("#4 (the last one repro wrote) is gone")),
        "{fsck:#}"
    );
    let report = t.repro(&["model", "verify", "pricing@1", "--json"]).expect_code(1).json();
    let (ok, detail) = check(&report, "event_chain");
    assert!(!ok && detail.contains("#4 (the last one repro wrote) is gone"), "{report:#}");
    restore(&t);

    // An event in the middle deleted.
    sql(&t, "DELETE FROM registry_events WHERE seq = 2");
    let fsck = t.repro(&["fsck"]).expect_code(1).stdout();
    assert!(fsck.contains("registry event #2 is gone"), "{fsck}");
    restore(&t);

    // The anchor file removed.
    std::fs::remove_file(t.path(".repro/registry.head")).expect("rm anchor");
    let fsck = t.repro(&["fsck"]).expect_code(1).stdout();
    assert!(fsck.contains("registry.head") && fsck.contains("missing"), "{fsck}");
    restore(&t);
    assert_eq!(events(&t), 4);
}

#[test]
fn a_removed_last_event_stays_evident_after_the_next_write() {
    let (t, _, _) = signed_in_staging();
    sql(&t, "DELETE FROM registry_events WHERE seq = 4");
    t.repro(&["fsck"]).expect_code(1);
    // The next legitimate write must not launder the removal: either it is refused, or
    // fsck still reports the event that is gone.
    let key = approver_key(&t, "carol <carol@example.invalid>");
    let r = t.repro(&["model", "approve", "pricing@1", "--stage", "prod", "--key", &key]).expect_code(2);
    assert!(r.error_line().contains("#4") && r.error_line().contains("repro fsck"), "{}", r.error_line());
    let fsck = t.repro(&["fsck"]).expect_code(1).stdout();
    assert!(fsck.contains("#4") && fsck.contains("gone"), "approve exited {}; fsck:\n{fsck}", r.code());
}

#[test]
fn a_flipped_byte_in_the_envelope_or_the_artifact_is_named_by_fsck_and_verify() {
    let (t, _, keyid) = signed_in_staging();
    let v = show_version(&t, "pricing@1");
    let envelope = v["signatures"][0]["envelope"].as_str().expect("envelope").to_string();
    let artifact = v["artifact"]["files"][0]["blake3"].as_str().expect("blake3").to_string();
    t.repro(&["model", "verify", "pricing@1", "--key", "keys/repro.pub"]).success();
    backup(&t);

    // (c) The signature envelope.
    let len = t.read_object(&envelope).len();
    flip_byte(&t, &envelope, len / 2);
    let report = t.repro(&["model", "verify", "pricing@1", "--key", "keys/repro.pub", "--json"]).expect_code(1).json();
    let (ok, detail) = check(&report, "signature");
    assert!(!ok && detail.contains(&keyid) && detail.contains("corrupt"), "{report:#}");
    assert!(check(&report, "event_chain").0 && check(&report, "artifact").0, "{report:#}");
    let fsck = t.repro(&["fsck"]).expect_code(1).stdout();
    assert!(fsck.contains(&format!("corrupt object {envelope}")), "{fsck}");
    assert!(fsck.contains("pricing@1 signature envelope refers to corrupt object"), "{fsck}");
    // Damage fsck has seen blocks every registry write until the store is restored.
    let key = approver_key(&t, ADA);
    let n = events(&t);
    let e = t.repro(&["model", "approve", "pricing@1", "--stage", "prod", "--key", &key]).expect_code(2).error_line();
    assert!(e.contains("the store is damaged") && e.contains(&envelope) && e.contains("restored"), "{e}");
    let e = t.repro(&["model", "promote", "pricing@1", "--to", "dev"]).expect_code(2).error_line();
    assert!(e.contains("the store is damaged"), "{e}");
    assert_eq!(events(&t), n, "nothing was written on top of the damage");
    restore(&t);

    // (d) The artifact.
    flip_byte(&t, &artifact, 1000);
    let report = t.repro(&["model", "verify", "pricing@1", "--json"]).expect_code(1).json();
    let (ok, detail) = check(&report, "artifact");
    assert!(!ok && detail.contains("model.pkl") && detail.contains("corrupt"), "{report:#}");
    let fsck = t.repro(&["fsck"]).expect_code(1).stdout();
    assert!(fsck.contains(&format!("corrupt object {artifact}")), "{fsck}");
    assert!(fsck.contains("pricing@1 artifact model.pkl refers to corrupt object"), "{fsck}");
    let n = events(&t);
    let e = t.repro(&["model", "sign", "pricing@1", "--key", "keys/repro.key"]).expect_code(2).error_line();
    assert!(e.contains(&artifact) && e.contains("corrupt"), "{e}");
    assert_eq!(events(&t), n, "nothing signed");
}

#[test]
fn an_edited_run_record_breaks_the_lineage_the_version_pins() {
    let (t, run, _) = signed_in_staging();
    backup(&t);

    // (e) The pinned run's record edited: the seed rewritten.
    let n = sql(
        &t,
        &format!("SELECT CASE WHEN record LIKE '%\"value\":42%' THEN 1 ELSE 0 END FROM runs WHERE id = '{run}'"),
    );
    assert_eq!(n, "1", "the record holds the seed");
    sql(&t, &format!("UPDATE runs SET record = replace(record, '\"value\":42', '\"value\":43') WHERE id = '{run}'"));
    let report = t.repro(&["model", "verify", "pricing@1", "--json"]).expect_code(1).json();
    let (ok, detail) = check(&report, "lineage");
    assert!(!ok && detail.contains("was changed") && detail.contains(&run[..8]), "{report:#}");
    assert!(check(&report, "event_chain").0, "{report:#}");
    let fsck = t.repro(&["fsck"]).expect_code(1).stdout();
    assert!(fsck.contains(&run) && fsck.contains("no longer matches its lineage digest"), "{fsck}");
    // The audit checks the registry's pin for real.
    let (audit, code) = t.audit("pricing@1");
    assert_eq!(code, 1);
    assert_eq!(status(&audit, "registry_version"), "missing", "{audit:#}");
    let n = events(&t);
    let e = t.repro(&["model", "sign", "pricing@1", "--key", "keys/repro.key"]).expect_code(2).error_line();
    assert!(e.contains("no longer matches the lineage"), "{e}");
    assert_eq!(events(&t), n);
    restore(&t);

    // The lineage column rewritten: promote refuses, naming the lineage.
    sql(&t, &format!("UPDATE runs SET lineage = 'blake3:{}' WHERE id = '{run}'", "0".repeat(64)));
    let e = t.repro(&["model", "promote", "pricing@1", "--to", "dev", "--json"]).expect_code(2).error_line();
    assert!(e.contains(&format!("run {}: runs: edited behind repro's back (lineage)", &run[..8])), "{e}");
    assert_eq!(events(&t), 4);
    let fsck = t.repro(&["fsck"]).expect_code(1).stdout();
    assert!(fsck.contains("pricing@1 pins lineage"), "{fsck}");
}

#[test]
fn promote_refuses_a_version_whose_run_record_was_edited() {
    // A run from a dirty tree cannot enter staging (git_clean) ...
    let t = project();
    t.append("train.py", "\n# an uncommitted edit\n");
    let run = id_of(&t.train(&["--json"]).success());
    t.repro(&["model", "register", &run, "--name", "pricing", "--artifact", "model.pkl"]).success();
    let refused = t.repro(&["model", "promote", "pricing@1", "--to", "staging", "--json"]).expect_code(1).json();
    assert_eq!(unmet(&refused), ["git_clean"], "{refused:#}");
    // ... and editing its record behind repro's back to say "clean" must not change that.
    let clean = if t.db_url().is_some() {
        "(record::jsonb || jsonb_build_object('code', (record::jsonb -> 'code') || \
         '{\"dirty\": false, \"diff\": null, \"diff_files\": [], \"untracked\": []}'::jsonb))::text"
    } else {
        "json_set(record, '$.code.dirty', json('false'), '$.code.diff', json('null'), \
         '$.code.diff_files', json('[]'), '$.code.untracked', json('[]'))"
    };
    sql(&t, &format!("UPDATE runs SET record = {clean} WHERE id = '{run}'"));
    t.repro(&["model", "verify", "pricing@1"]).expect_code(1);
    let r = t.repro(&["model", "promote", "pricing@1", "--to", "staging", "--json"]);
    assert_eq!(r.code(), 2, "a tampered record entered staging: {}", r.stdout());
    assert!(r.error_line().contains("runs: edited behind repro's back (record)"), "{}", r.error_line());
    assert_eq!(events(&t), 2, "the refusal is recorded, the tampered attempt writes nothing");
}

// ---- keys and signatures ------------------------------------------------------------------

#[test]
fn verify_checks_the_trusted_key_and_unsigned_versions_fail() {
    let (t, run) = registered();
    let a = generate_key(&t, "keys-a")["keyid"].as_str().expect("keyid").to_string();
    let b = generate_key(&t, "keys-b")["keyid"].as_str().expect("keyid").to_string();
    assert_ne!(a, b);
    sign(&t, "pricing@1", "keys-a");

    let ok = t.repro(&["model", "verify", "pricing@1", "--key", "keys-a/repro.pub", "--json"]).success().json();
    assert!(check(&ok, "signature").1.contains(&a), "{ok:#}");

    // Another key: not signed by it, and the message says by whom it is.
    let r = t.repro(&["model", "verify", "pricing@1", "--key", "keys-b/repro.pub", "--json"]).expect_code(1).json();
    let (ok, detail) = check(&r, "signature");
    assert!(!ok && detail.contains("no signature by the key in") && detail.contains(&b), "{r:#}");
    assert!(detail.contains(&format!("signed by {a}")), "{detail}");
    assert!(check(&r, "event_chain").0 && check(&r, "lineage").0 && check(&r, "artifact").0);

    // A private key where a public one is expected.
    let e = t.repro(&["model", "verify", "pricing@1", "--key", "keys-a/repro.key"]).expect_code(2).error_line();
    assert!(e.contains("is a private key") && e.contains(".pub"), "{e}");

    // Signed by b too: b's key verifies, and attest writes both envelopes.
    sign(&t, "pricing@1", "keys-b");
    t.repro(&["model", "verify", "pricing@1", "--key", "keys-b/repro.pub"]).success();
    let lines = t.repro(&["model", "attest", "pricing@1"]).success().stdout();
    assert_eq!(lines.lines().count(), 2, "{lines}");
    for l in lines.lines() {
        let env: Value = serde_json::from_str(l).expect("an envelope per line");
        assert_eq!(env["payloadType"], "application/vnd.in-toto+json");
    }

    // An unsigned version: verify fails on the signature alone, attest has nothing.
    t.repro(&["model", "register", &run, "--name", "pricing", "--artifact", "model.pkl"]).success();
    let r = t.repro(&["model", "verify", "pricing@2", "--json"]).expect_code(1).json();
    let (ok, detail) = check(&r, "signature");
    assert!(!ok && detail.contains("pricing@2 is not signed"), "{r:#}");
    assert!(check(&r, "event_chain").0 && check(&r, "lineage").0 && check(&r, "artifact").0, "{r:#}");
    let n = events(&t);
    let e = t.repro(&["model", "attest", "pricing@2", "-o", "att.jsonl"]).expect_code(2).error_line();
    assert!(e.contains("pricing@2 is not signed") && e.contains("repro model sign pricing@2"), "{e}");
    assert!(!t.path("att.jsonl").exists(), "nothing written");
    assert_eq!(events(&t), n);
}

// ---- bad input ----------------------------------------------------------------------------

#[test]
fn bad_references_and_inputs_are_one_line_errors_that_write_nothing() {
    let (t, _) = registered();
    t.repro(&["model", "promote", "pricing@1", "--to", "staging"]).success();
    generate_key(&t, "keys");

    // A run that failed (with an output) is recorded, but cannot be registered.
    let py = t.python();
    let code = "open('bad.pkl', 'w').write('x'); raise SystemExit(1)";
    let failed = t.repro(&[
        "run",
        "--seed",
        "1",
        "--output",
        "bad.pkl",
        "--json",
        "--",
        py.to_str().expect("utf-8"),
        "-c",
        code,
    ]);
    let failed = id_of(&failed.expect_code(1));

    let n = events(&t);
    let objects = object_files(&t);
    let key_before = std::fs::read(t.path("keys/repro.key")).expect("key");
    let expect = |args: &[&str], wanted: &[&str]| {
        let line = t.repro(args).expect_code(2).error_line();
        for w in wanted {
            assert!(line.contains(w), "repro {args:?}: '{w}' missing from: {line}");
        }
    };
    expect(&["show", "pricing@9"], &["no version 9", "versions: 1"]);
    expect(&["audit", "nosuch@prod"], &["no model named 'nosuch'", "models: pricing"]);
    expect(&["replay", "pricing@prod"], &["no version of 'pricing' is in prod", "staging: pricing@1"]);
    expect(&["diff", "pricing@9", "latest"], &["versions: 1"]);
    expect(&["env", "export", "pricing@dev"], &["is in dev", "staging: pricing@1"]);
    expect(&["env", "parity", "nosuch@1", "--against", "requirements.txt"], &["models: pricing"]);
    expect(&["model", "show", "pricing@0"], &["'pricing@0' is not a model reference", "NAME@VERSION"]);
    expect(&["model", "show", "nosuch"], &["no model named 'nosuch'", "models: pricing"]);
    expect(&["model", "promote", "pricing", "--to", "prod"], &["is not a model reference"]);
    expect(&["model", "promote", "pricing@1", "--to", "qa"], &["no stage 'qa'", "dev, prod, staging", "repro.toml"]);
    let key = approver_key(&t, BOB);
    let key = key.as_str();
    expect(&["model", "approve", "pricing@1", "--stage", "qa", "--key", key], &["no stage 'qa'", "dev, prod, staging"]);
    expect(&["model", "approve", "pricing@9", "--stage", "prod", "--key", key], &["versions: 1"]);
    expect(&["model", "approve", "pricing@1", "--stage", "prod", "--key", key, "--as", ""], &["--as", "give a name"]);
    expect(&["model", "approve", "pricing@1", "--stage", "prod", "--key", key, "--as", "a\u{7}b"], &["--as"]);
    expect(&["model", "approve", "pricing@1", "--stage", "prod"], &["no signing key", "repro key generate"]);
    expect(&["model", "archive", "nosuch@1", "--reason", "x"], &["no model named 'nosuch'"]);
    let artifact = ["model", "register", "pricing@1", "--name", "pricing", "--artifact"];
    expect(
        &[&artifact[..], &["data/train.csv"]].concat(),
        &["'data/train.csv' is not an output", "outputs: model.pkl"],
    );
    expect(&[&artifact[..], &["nosuch.pkl"]].concat(), &["'nosuch.pkl' is not an output", "outputs: model.pkl"]);
    expect(
        &["model", "register", "pricing@1", "--name", "bad name", "--artifact", "model.pkl"],
        &["invalid model name 'bad name'"],
    );
    expect(
        &["model", "register", &failed, "--name", "pricing", "--artifact", "bad.pkl"],
        &[&failed[..8], "failed (exit 1)", "only a run that finished"],
    );
    expect(&["model", "register", "nosuchrun", "--name", "pricing", "--artifact", "model.pkl"], &["nosuchrun"]);
    expect(&["model", "sign", "pricing@1", "--key", "keys/missing.key"], &["keys/missing.key", "no such key file"]);
    expect(&["model", "sign", "pricing@1", "--key", "keys/repro.pub"], &["is a public key", "private key"]);
    expect(&["model", "sign", "pricing@9", "--key", "keys/repro.key"], &["versions: 1"]);
    std::fs::set_permissions(t.path("keys/repro.key"), std::fs::Permissions::from_mode(0o644)).expect("chmod");
    expect(&["model", "sign", "pricing@1", "--key", "keys/repro.key"], &["too open", "chmod 600"]);
    std::fs::set_permissions(t.path("keys/repro.key"), std::fs::Permissions::from_mode(0o600)).expect("chmod");
    expect(&["model", "verify", "pricing@1", "--key", "keys/nope.pub"], &["no such key file"]);
    expect(&["key", "generate", "--out", "keys"], &["repro.key", "already there", "--out"]);

    assert_eq!(events(&t), n, "no registry event appended");
    assert_eq!(object_files(&t), objects, "no object written");
    assert_eq!(std::fs::read(t.path("keys/repro.key")).expect("key"), key_before, "the key is untouched");
    t.repro(&["fsck"]).success();
}

// ---- policies -----------------------------------------------------------------------------

/// Replaces the `[stages.*]` tables of the store's repro.toml with `stages`.
fn set_stages(t: &TestContext, stages: &str) {
    let path = t.path(".repro/repro.toml");
    let text = std::fs::read_to_string(&path).expect("repro.toml");
    let head = &text[..text.find("[stages.").expect("default stages are written by init")];
    std::fs::write(&path, format!("{head}{stages}")).expect("write repro.toml");
}

#[test]
fn a_custom_policy_with_parity_against_a_registered_serving_environment() {
    let (t, run) = registered();
    set_stages(
        &t,
        "[stages.canary]\nrequire = [\"random_seed\"]\n\n\
         [stages.prod]\nfrom = \"canary\"\nrequire = [\"git_clean\"]\napprovals = 1\nparity = \"serving\"\n",
    );
    // The serving image pins another scikit-learn than the run trained with.
    let shown = t.repro(&["show", &run, "--json"]).success().json();
    let trained = named(&shown["environment"]["python"]["packages"], "scikit-learn")["version"]
        .as_str()
        .expect("version")
        .to_string();
    let reqs = std::fs::read_to_string(t.path("requirements.txt")).expect("requirements");
    assert!(reqs.contains(&format!("scikit-learn=={trained}")), "{reqs}");
    t.write("serving.txt", &reqs.replace(&format!("scikit-learn=={trained}"), "scikit-learn==1.2.2"));
    t.repro(&["env", "register", "serving.txt", "--name", "serving"]).success();

    let e = t.repro(&["model", "promote", "pricing@1", "--to", "staging"]).expect_code(2).error_line();
    assert!(e.contains("no stage 'staging'") && e.contains("canary, prod"), "{e}");

    let refused = t.repro(&["model", "promote", "pricing@1", "--to", "prod", "--json"]).expect_code(1).json();
    assert_eq!(unmet(&refused), ["from", "parity", "approvals"], "{refused:#}");
    assert!(unmet_reason(&refused, "approvals").contains("needs 1 distinct approvals"));
    t.repro(&["model", "promote", "pricing@1", "--to", "canary"]).success();
    let a = approve(&t, "pricing@1", "prod", BOB);
    assert_eq!((a["approvers"].as_u64(), a["needed"].as_u64()), (Some(1), Some(1)));
    let n = events(&t);
    let refused = t.repro(&["model", "promote", "pricing@1", "--to", "prod", "--json"]).expect_code(1).json();
    assert_eq!(unmet(&refused), ["parity"], "{refused:#}");
    let reason = unmet_reason(&refused, "parity");
    assert!(reason.contains("'serving'") && reason.contains("scikit-learn") && reason.contains("1.2.2"), "{reason}");
    assert_eq!(events(&t), n + 1);
    assert_refusal_recorded(&t, "prod", &["parity"]);

    // The serving image fixed (serving:2 pins what the run trained with): prod.
    t.repro(&["env", "register", "requirements.txt", "--name", "serving"]).success();
    let p = t.repro(&["model", "promote", "pricing@1", "--to", "prod", "--json"]).success().json();
    assert_eq!((p["outcome"].as_str(), p["from"].as_str()), (Some("promoted"), Some("canary")), "{p:#}");

    // A policy naming an unknown requirement: every command refuses, naming the file and the name.
    set_stages(&t, "[stages.prod]\nrequire = [\"git_clean\", \"signd\"]\n");
    let n = events(&t);
    for args in [&["model", "ls"][..], &["model", "promote", "pricing@1", "--to", "prod"], &["runs"], &["fsck"]] {
        let e = t.repro(args).expect_code(2).error_line();
        assert!(e.contains("repro.toml") && e.contains("unknown requirement 'signd'"), "{args:?}: {e}");
        assert!(e.contains("known: git_clean"), "{e}");
    }
    set_stages(&t, "[stages.prod]\nfrom = \"qa\"\n");
    let e = t.repro(&["model", "ls"]).expect_code(2).error_line();
    assert!(e.contains("repro.toml") && e.contains("no stage 'qa'"), "{e}");
    assert_eq!(events(&t), n);
}

// ---- concurrency ----------------------------------------------------------------------------

#[test]
fn six_approvals_at_once_all_land_on_one_intact_chain() {
    let (t, _) = registered();
    let keys: Vec<String> =
        (0..6).map(|i| approver_key(&t, &format!("Person {i} <person{i}@example.invalid>"))).collect();
    let children: Vec<_> = (0..6)
        .map(|i| {
            let who = format!("Person {i} <person{i}@example.invalid>");
            t.cmd()
                .args([
                    "model",
                    "approve",
                    "pricing@1",
                    "--stage",
                    "prod",
                    "--key",
                    keys[i].as_str(),
                    "--as",
                    who.as_str(),
                    "--json",
                ])
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .expect("spawn repro")
        })
        .collect();
    for c in children {
        let out = c.wait_with_output().expect("wait");
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let a: Value = serde_json::from_slice(&out.stdout).expect("JSON");
        assert_eq!(a["repeated"], false, "{a:#}");
    }
    assert_eq!(events(&t), 7);
    assert_eq!(
        sql(&t, "SELECT seq FROM registry_events ORDER BY seq").lines().collect::<Vec<_>>().join(","),
        "1,2,3,4,5,6,7"
    );
    let v = show_version(&t, "pricing@1");
    let mut by: Vec<&str> =
        v["approvals"].as_array().expect("approvals").iter().filter_map(|a| a["by"].as_str()).collect();
    by.sort();
    assert_eq!(by, (0..6).map(|i| format!("Person {i} <person{i}@example.invalid>")).collect::<Vec<_>>());
    let fsck = t.repro(&["fsck", "--json"]).success().json();
    assert_eq!((fsck["clean"].as_bool(), fsck["registry_events"].as_u64()), (Some(true), Some(7)), "{fsck:#}");
    let anchor = std::fs::read_to_string(t.path(".repro/registry.head")).expect("anchor");
    assert_eq!(anchor.trim(), format!("7 {}", sql(&t, "SELECT hash FROM registry_events WHERE seq = 7")));
    // Unsigned, so verify fails as a whole; the chain itself is intact.
    let r = t.repro(&["model", "verify", "pricing@1", "--json"]).expect_code(1).json();
    assert!(check(&r, "event_chain").0, "{r:#}");
}

// ---- third-party verification ---------------------------------------------------------------

/// securesystemslib and in-toto-attestation, pinned by fixtures/provenance-tools.txt.
fn provenance_python() -> PathBuf {
    let ws = common::workspace();
    let venv = common::cached_venv(
        &ws.join("target/test-venv-provenance"),
        &ws.join("crates/repro-cli/tests/fixtures/provenance-tools.txt"),
    );
    venv.join("bin/python")
}

fn verify_provenance(py: &Path, t: &TestContext, envelopes: &str, key: &str) -> std::process::Output {
    let script = common::workspace().join("crates/repro-cli/tests/fixtures/verify_provenance.py");
    Command::new(py).arg(script).arg(t.path(envelopes)).arg(t.path(key)).output().expect("verify_provenance.py")
}

#[test]
fn signed_provenance_verifies_with_securesystemslib_and_in_toto_attestation() {
    let py = provenance_python();
    let (t, run) = registered();
    let keyid = generate_key(&t, "keys")["keyid"].as_str().expect("keyid").to_string();
    sign(&t, "pricing@1", "keys");
    t.repro(&["model", "attest", "pricing@1", "-o", "pricing-1.intoto.jsonl"]).success();
    let written = std::fs::read_to_string(t.path("pricing-1.intoto.jsonl")).expect("attestation");
    assert_eq!(written, t.repro(&["model", "attest", "pricing@1"]).success().stdout(), "-o writes what stdout has");
    let envelope: Value = serde_json::from_str(written.trim()).expect("one envelope");

    let out = verify_provenance(&py, &t, "pricing-1.intoto.jsonl", "keys/repro.pub");
    assert!(out.status.success(), "verify_provenance.py: {}", String::from_utf8_lossy(&out.stderr));
    let found: Value = serde_json::from_slice(&out.stdout).expect("one JSON line");
    assert_eq!(found["keyid"], keyid.as_str(), "securesystemslib's keyid is repro's");
    assert_eq!(found["keyid"], envelope["signatures"][0]["keyid"]);
    assert_eq!(found["verified_keyids"], serde_json::json!([keyid]));
    assert_eq!(found["type"], "https://in-toto.io/Statement/v1");
    assert_eq!(found["predicateType"], "https://slsa.dev/provenance/v1");
    assert_eq!((found["model"].as_str(), found["version"].as_u64()), (Some("pricing"), Some(1)));
    assert_eq!(found["invocationId"], run.as_str());

    // The subjects are the artifact's files, with the digests the registry pinned.
    let v = show_version(&t, "pricing@1");
    let file = &v["artifact"]["files"][0];
    let blake3 = file["blake3"].as_str().expect("blake3").trim_start_matches("blake3:");
    assert_eq!(
        found["subjects"],
        serde_json::json!([{"name": "model.pkl", "digest": {"blake3": blake3, "sha256": file["sha256"]}}])
    );
    assert_eq!(file["sha256"], sha256sum(&t.path("model.pkl")));

    // The code commit and every input are resolved dependencies.
    let shown = t.repro(&["show", &run, "--json"]).success().json();
    let commit = shown["code"]["commit"].as_str().expect("commit");
    assert_eq!(found["gitCommit"], commit);
    let deps = found["dependencyNames"].as_array().expect("dependencyNames");
    for input in shown["inputs"].as_array().expect("inputs") {
        assert!(deps.contains(&input["path"]), "input {} is not a dependency: {deps:?}", input["path"]);
    }
    assert!(deps.iter().any(|d| d == "data/train.csv") && deps.iter().any(|d| d == "train.py"), "{deps:?}");

    // The command, params and seed are external parameters (read from the signed payload).
    let py_path = t.python();
    assert_eq!(found["command"], serde_json::json!([py_path.to_str().expect("utf-8"), "train.py"]));
    let decode = "import base64, json, sys\n\
                  envelope = json.loads(open(sys.argv[1]).readline())\n\
                  print(base64.b64decode(envelope['payload']).decode())\n";
    let out = Command::new(&py).args(["-c", decode]).arg(t.path("pricing-1.intoto.jsonl")).output().expect("python");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let statement: Value = serde_json::from_slice(&out.stdout).expect("statement JSON");
    let external = &statement["predicate"]["buildDefinition"]["externalParameters"];
    assert_eq!(external["seed"], 42, "{external:#}");
    assert_eq!(external["params"]["model.n_estimators"], 50, "{external:#}");
    assert_eq!(external["params"]["split.test_size"], 0.2, "{external:#}");
    assert_eq!(external["command"], found["command"]);

    // One changed character of the payload: the signature no longer verifies.
    let mut tampered = envelope.clone();
    let payload = tampered["payload"].as_str().expect("payload").to_string();
    let i = payload.len() / 2;
    let swapped = if &payload[i..=i] == "A" { "B" } else { "A" };
    tampered["payload"] = Value::String(format!("{}{swapped}{}", &payload[..i], &payload[i + 1..]));
    t.write("tampered.jsonl", &format!("{tampered}\n"));
    let out = verify_provenance(&py, &t, "tampered.jsonl", "keys/repro.pub");
    assert_eq!(out.status.code(), Some(1), "a tampered envelope verified: {}", String::from_utf8_lossy(&out.stdout));
    assert!(String::from_utf8_lossy(&out.stderr).contains("signature does not verify"));

    // And another key is not the signer.
    generate_key(&t, "other");
    let out = verify_provenance(&py, &t, "pricing-1.intoto.jsonl", "other/repro.pub");
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("do not include the key"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

// ---- signed replay verdicts --------------------------------------------------------------

/// The statement inside one DSSE line of `repro model attest`.
fn statement_of(line: &str) -> Value {
    let envelope = repro_core::provenance::Envelope::parse(line).expect("a DSSE envelope");
    serde_json::from_slice(&envelope.payload).expect("an in-toto statement")
}

#[test]
fn a_signed_replay_verdict_is_attested_gates_promotion_travels_in_bundles_and_tampering_shows() {
    let (t, run) = TestContext::tiny_registered();
    set_stages(&t, "[stages.prod]\nrequire = [\"replay_verified\"]\nsigned_replay = true\n");

    // A key that is not there: one line, exit 2, before anything is built or recorded.
    let r = t.repro(&["replay", "tiny@1", "--key", "no/such.key"]).expect_code(2);
    assert!(r.error_line().contains("no/such.key") && r.error_line().contains("no such key file"), "{}", r.stderr());
    assert!(!r.stderr().trim().contains('\n'), "one line: {}", r.stderr());
    assert_eq!(sql(&t, "SELECT count(*) FROM replays"), "0");

    // An unsigned replay still verifies the run the old way; the signed requirement is unmet.
    let unsigned = t.repro(&["replay", "tiny@1", "--json"]).success().json();
    assert!(unsigned.get("attestation").is_none(), "{unsigned:#}");
    let e = t.repro(&["model", "attest", "tiny@1"]).expect_code(2).error_line();
    assert!(e.contains("not signed") && e.contains("--key"), "{e}");
    let refused = t.repro(&["model", "promote", "tiny@1", "--to", "prod", "--json"]).expect_code(1).json();
    assert_eq!(unmet(&refused), ["signed_replay"], "replay_verified keeps its unsigned meaning: {refused:#}");
    assert!(unmet_reason(&refused, "signed_replay").contains("is unsigned"), "{refused:#}");

    // Signed with --key: the envelope is stored, listed by attest, and says what was compared.
    let keyid = generate_key(&t, "ada")["keyid"].as_str().expect("keyid").to_string();
    let signed = t.repro(&["replay", "tiny@1", "--key", "ada/repro.key", "--json"]).success().json();
    let replay = signed["replay"].as_str().expect("replay id").to_string();
    assert_eq!(signed["attestation"]["keyid"], keyid.as_str(), "{signed:#}");
    let envelope = signed["attestation"]["envelope"].as_str().expect("envelope").to_string();
    let attest = t.repro(&["model", "attest", "tiny@1"]).success().stdout();
    assert_eq!(attest.lines().count(), 1, "{attest}");
    let s = statement_of(attest.lines().next().expect("a line"));
    assert_eq!(s["_type"], "https://in-toto.io/Statement/v1");
    assert_eq!(s["predicateType"], "urn:repro:replay:verdict:v1");
    let version = show_version(&t, "tiny@1");
    let file = &version["artifact"]["files"][0];
    assert_eq!(s["subject"][0]["name"], "out.txt");
    assert_eq!(s["subject"][0]["digest"]["sha256"], file["sha256"]);
    assert_eq!(s["subject"][0]["digest"]["sha256"].as_str(), Some(sha256sum(&t.path("out.txt")).as_str()));
    let p = &s["predicate"];
    assert_eq!((p["verdict"].as_str(), p["reproduced"].as_bool()), (Some("identical"), Some(true)), "{s:#}");
    assert_eq!(p["original"]["runId"], run.as_str());
    assert_eq!(p["original"]["lineage"], version["lineage"]);
    assert!(p["original"]["commit"].as_str().is_some_and(|c| is_hex(c, 40)), "{p:#}");
    assert_eq!(p["original"]["inputs"][0]["path"], "data.csv");
    assert_eq!(p["replay"]["runId"], replay.as_str());
    assert!(p["replay"]["host"].is_string() && p["replay"]["hardware"]["logicalCpus"].is_u64(), "{p:#}");
    assert_eq!(p["outputs"][0]["original"], p["outputs"][0]["replay"]);

    // A valid signature by a key [trust] does not list is integrity, not authority.
    let refused = t.repro(&["model", "promote", "tiny@1", "--to", "prod", "--json"]).expect_code(1).json();
    let reason = unmet_reason(&refused, "signed_replay");
    assert!(reason.contains(&keyid[..12]) && reason.contains("[trust] signers does not list"), "{reason}");
    t.repro(&["key", "add", "ada/repro.pub", "--signer", "--name", ADA]).success();
    backup(&t);

    // Tampered: one byte of the stored envelope. Promotion refuses with the reason, verify
    // and fsck name it.
    let len = t.read_object(&envelope).len();
    flip_byte(&t, &envelope, len / 2);
    let refused = t.repro(&["model", "promote", "tiny@1", "--to", "prod", "--json"]).expect_code(1).json();
    let reason = unmet_reason(&refused, "signed_replay");
    assert!(reason.contains("does not verify") && reason.contains("corrupt"), "{reason}");
    let report = t.repro(&["model", "verify", "tiny@1", "--json"]).expect_code(1).json();
    let (ok, detail) = check(&report, "replay");
    assert!(!ok && detail.contains(&replay[..8]) && detail.contains("does not verify"), "{report:#}");
    let fsck = t.repro(&["fsck"]).expect_code(1).stdout();
    assert!(fsck.contains(&format!("corrupt object {envelope}")), "{fsck}");
    assert!(fsck.contains("signed verdict (envelope) refers to corrupt object"), "{fsck}");
    restore(&t);

    // By a trusted signer, it passes.
    let promoted = t.repro(&["model", "promote", "tiny@1", "--to", "prod", "--json"]).success().json();
    assert_eq!(promoted["outcome"], "promoted", "{promoted:#}");

    // The bundle carries it; the auditor's `model verify` checks it after import.
    t.repro(&["model", "sign", "tiny@1", "--key", "ada/repro.key"]).success();
    let bundle = t.tmp.path().join("tiny.tar");
    let b = bundle.to_str().expect("utf-8");
    t.repro(&["bundle", "export", "tiny@1", "-o", b, "--include-data", "--key", "ada/repro.key"]).success();
    let auditor = TestContext::new();
    auditor.repro(&["init"]).success();
    let public = t.path("ada/repro.pub");
    auditor.repro(&["bundle", "import", b, "--key", public.to_str().expect("utf-8")]).success();
    let report = auditor.repro(&["model", "verify", "tiny@1", "--json"]).success().json();
    let (ok, detail) = check(&report, "replay");
    assert!(ok && detail.contains(&replay[..8]) && detail.contains("1 unsigned"), "{report:#}");
    let lines = auditor.repro(&["model", "attest", "tiny@1"]).success().stdout();
    let types: Vec<Value> = lines.lines().map(|l| statement_of(l)["predicateType"].clone()).collect();
    assert_eq!(types, ["https://slsa.dev/provenance/v1", "urn:repro:replay:verdict:v1"]);
    flip_byte(&auditor, &envelope, len / 2);
    let report = auditor.repro(&["model", "verify", "tiny@1", "--json"]).expect_code(1).json();
    assert!(!check(&report, "replay").0, "{report:#}");
    let fsck = auditor.repro(&["fsck"]).expect_code(1).stdout();
    assert!(fsck.contains("signed verdict (envelope) refers to corrupt object"), "{fsck}");
}

#[test]
fn a_signed_replay_verdict_verifies_with_securesystemslib_and_in_toto_attestation() {
    let py = provenance_python();
    let (t, _) = TestContext::tiny_registered();
    let keyid = generate_key(&t, "keys")["keyid"].as_str().expect("keyid").to_string();
    t.repro(&["replay", "tiny@1", "--key", "keys/repro.key"]).success();
    t.repro(&["model", "attest", "tiny@1", "-o", "verdict.intoto.jsonl"]).success();
    // The predicate is repro's own, so only the envelope and the Statement layer are checked
    // by the third-party tools (verify_provenance.py also parses SLSA, which this is not).
    let script = "import json, sys\n\
        from cryptography.hazmat.primitives.serialization import load_pem_public_key\n\
        from google.protobuf import json_format\n\
        from in_toto_attestation.v1 import statement_pb2\n\
        from in_toto_attestation.v1.statement import Statement\n\
        from securesystemslib.dsse import Envelope\n\
        from securesystemslib.signer import SSlibKey\n\
        key = SSlibKey.from_crypto(load_pem_public_key(open(sys.argv[2], 'rb').read()))\n\
        envelope = Envelope.from_dict(json.loads(open(sys.argv[1]).readline()))\n\
        accepted = envelope.verify([key], 1)\n\
        pb = json_format.Parse(envelope.payload, statement_pb2.Statement())\n\
        Statement.copy_from_pb(pb).validate()\n\
        print(json.dumps({'keyids': sorted(accepted), 'predicateType': pb.predicate_type,\n\
                          'verdict': json.loads(envelope.payload)['predicate']['verdict']}))\n";
    let out = Command::new(&py)
        .args(["-c", script])
        .arg(t.path("verdict.intoto.jsonl"))
        .arg(t.path("keys/repro.pub"))
        .output()
        .expect("python");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let found: Value = serde_json::from_slice(&out.stdout).expect("one JSON line");
    assert_eq!(
        found,
        serde_json::json!({"keyids": [keyid], "predicateType": "urn:repro:replay:verdict:v1", "verdict": "identical"})
    );
}

#[test]
fn a_rename_is_an_event_the_signed_history_goes_along_and_the_old_name_still_resolves() {
    let (t, _run, keyid) = signed_in_staging();
    let r = t.repro(&["model", "rename", "pricing", "pricing-eu", "--json"]).success().json();
    assert_eq!(r, serde_json::json!({"model": "pricing-eu", "renamed_from": "pricing", "versions": 1}));
    assert_eq!(events(&t), 5, "one event, on the chain");
    let kind = sql(&t, "SELECT kind || ' ' || model || ' ' || version FROM registry_events ORDER BY seq DESC LIMIT 1");
    assert_eq!(kind, "rename pricing 0");

    // The version moved with its stage, approvals, signature and history.
    let v = show_version(&t, "pricing-eu@staging");
    assert_eq!(v["name"], "pricing-eu");
    assert_eq!(v["former_names"], serde_json::json!(["pricing"]));
    assert_eq!(v["approvals"].as_array().map(Vec::len), Some(1));
    assert_eq!(history(&v), ["register", "promote", "sign", "approve", "rename"]);
    assert_eq!(v["history"][4]["detail"], "model renamed from pricing to pricing-eu");
    // The old name still finds it, and says what to write from now on.
    let old = t.repro(&["model", "show", "pricing@1", "--json"]).success();
    assert_eq!(old.json()["name"], "pricing-eu");
    assert!(
        old.stderr().contains("renamed to 'pricing-eu'") && old.stderr().contains("pricing-eu@1"),
        "{}",
        old.stderr()
    );

    // The provenance was signed as pricing@1: it still verifies, the chain holds, fsck is clean.
    let verify = t.repro(&["model", "verify", "pricing-eu@1", "--key", "keys/repro.pub", "--json"]).success().json();
    assert!(check(&verify, "signature").1.contains(&keyid), "{verify:#}");
    assert!(check(&verify, "event_chain").0, "{verify:#}");
    t.repro(&["fsck"]).success();

    // A bundle of the renamed version carries its whole history (events written under either
    // name) and imports into a store that verifies it.
    let bundle = t.path("pricing-eu.tar");
    let export = t
        .repro(&["bundle", "export", "pricing-eu@1", "-o", bundle.to_str().expect("utf-8"), "--include-data", "--json"])
        .success()
        .json();
    assert_eq!(export["model"], "pricing-eu@1", "{export:#}");
    let auditor = TestContext::new();
    auditor.repro(&["init"]).success();
    let imported = auditor
        .repro(&[
            "bundle",
            "import",
            bundle.to_str().expect("utf-8"),
            "--key",
            t.path("keys/repro.pub").to_str().expect("utf-8"),
            "--json",
        ])
        .success()
        .json();
    assert_eq!(imported["signatures_verified"].as_array().map(Vec::len), Some(1), "{imported:#}");
    let there = auditor.repro(&["model", "show", "pricing-eu@1", "--json"]).success().json();
    assert_eq!(there["former_names"], serde_json::json!(["pricing"]));
    auditor
        .repro(&["model", "verify", "pricing-eu@1", "--key", t.path("keys/repro.pub").to_str().expect("utf-8")])
        .success();

    // A model that takes the old name ends the redirect; its events never join the bundle of
    // the renamed one.
    let run = id_of(&t.train(&["--json"]).success());
    t.repro(&["model", "register", &run, "--name", "pricing", "--artifact", "model.pkl"]).success();
    assert_eq!(show_version(&t, "pricing@1")["name"], "pricing");
    assert_eq!(show_version(&t, "pricing-eu@1")["name"], "pricing-eu");

    // Refusals: one line, exit 2, nothing written.
    let before = events(&t);
    for (args, needle) in [
        (["model", "rename", "pricing", "pricing-eu"], "a model named 'pricing-eu' exists"),
        (["model", "rename", "nope", "fresh"], "no model named 'nope'"),
        (["model", "rename", "pricing", "has space"], "is not a model name"),
    ] {
        let e = t.repro(&args).expect_code(2).error_line();
        assert!(e.contains(needle), "{args:?}: {e}");
    }
    assert_eq!(events(&t), before);
}

/// POSTs one MLflow call to the server; panics unless it answers 200.
fn mlflow_post(server: &common::Server, route: &str, body: Value) -> Value {
    let (status, _, text) = common::http(
        &server.uri,
        "POST",
        &format!("/api/2.0/mlflow/{route}"),
        &[("Content-Type", "application/json")],
        body.to_string().as_bytes(),
    );
    assert_eq!(status, 200, "{route}: {text}");
    serde_json::from_str(&text).expect("json")
}

#[test]
fn an_external_version_is_said_plainly_gated_by_every_evidence_policy_and_adopted_as_an_event() {
    let t = project();
    let server = common::Server::start(&t);
    mlflow_post(&server, "registered-models/create", serde_json::json!({"name": "churn"}));
    // A team's model in its own bucket, with the run id its old tracker gave it, and a
    // runs:/ source of a run this store never saw: both are recorded as external.
    let v1 = mlflow_post(
        &server,
        "model-versions/create",
        serde_json::json!({"name": "churn", "source": "gs://team-models/churn/7", "run_id": "0a1b2c3d"}),
    );
    assert_eq!(v1["model_version"]["source"], "gs://team-models/churn/7", "{v1}");
    assert_eq!(v1["model_version"]["run_id"], "0a1b2c3d");
    let v2 = mlflow_post(
        &server,
        "model-versions/create",
        serde_json::json!({"name": "churn", "source": "runs:/nosuchrun/model"}),
    );
    assert_eq!(v2["model_version"]["version"], "2");
    let (status, _, text) = common::http(
        &server.uri,
        "GET",
        "/api/2.0/mlflow/model-versions/get-download-uri?name=churn&version=1",
        &[],
        b"",
    );
    assert_eq!((status, text.contains("gs://team-models/churn/7")), (200, true), "{text}");
    drop(server);

    // Shown plainly: no run, no lineage, no bytes.
    let shown = t.repro(&["model", "show", "churn@1"]).success().stdout();
    assert!(shown.contains("EXTERNAL  source gs://team-models/churn/7"), "{shown}");
    assert!(
        shown.contains("the client named run '0a1b2c3d', unchecked: repro does not vouch that it made these files"),
        "{shown}"
    );
    assert!(shown.contains("NOT HELD") && shown.contains("repro model adopt churn@1"), "{shown}");
    let v = show_version(&t, "churn@1");
    assert!(v.get("run").is_none() && v.get("artifact").is_none(), "{v:#}");
    assert_eq!(v["external"]["source"], "gs://team-models/churn/7");
    assert_eq!(history(&v), ["external"]);

    // Every policy that needs evidence is unmet, each saying why; nothing is signed.
    let staging = t.repro(&["model", "promote", "churn@1", "--to", "staging", "--json"]).expect_code(1).json();
    assert_eq!(unmet(&staging), ["git_clean", "env_pinned", "random_seed", "dataset_snapshot"]);
    assert!(unmet_reason(&staging, "dataset_snapshot").contains("external version"), "{staging:#}");
    generate_key(&t, "keys");
    let sign = t.repro(&["model", "sign", "churn@1", "--key", "keys/repro.key"]).expect_code(2);
    assert!(sign.stderr().contains("is an external version"), "{}", sign.stderr());
    let verify = t.repro(&["model", "verify", "churn@1", "--json"]).expect_code(1).json();
    let (ok, _) = check(&verify, "lineage");
    assert!(!ok, "{verify:#}");
    let export = t.repro(&["bundle", "export", "churn@1", "-o", "churn.bundle", "--unsigned"]).expect_code(2);
    assert!(export.stderr().contains("external version"), "{}", export.stderr());
    assert!(!t.path("churn.bundle").exists());
    // A stage that requires nothing takes it, as MLflow's stages do.
    t.repro(&["model", "promote", "churn@1", "--to", "dev"]).success();

    // Adoption: repro does not reach into the bucket itself; a local copy is hashed and pinned.
    let no_copy = t.repro(&["model", "adopt", "churn@1"]).expect_code(2);
    assert!(no_copy.stderr().contains("pass --from PATH"), "{}", no_copy.stderr());
    assert_eq!(no_copy.stderr().lines().count(), 1, "{}", no_copy.stderr());
    let copy = t.path("churn-7");
    std::fs::create_dir_all(copy.join("data")).expect("mkdir");
    std::fs::write(copy.join("MLmodel"), "flavors: {}\n").expect("write");
    std::fs::write(copy.join("data/model.pkl"), b"\x80\x04weights").expect("write");
    let adopted = t.repro(&["model", "adopt", "churn@1", "--from", "churn-7", "--json"]).success().json();
    assert_eq!(adopted["files"], 2, "{adopted:#}");
    let v = show_version(&t, "churn@1");
    assert_eq!(history(&v), ["external", "refuse", "promote", "adopt"]);
    let files = v["artifact"]["files"].as_array().expect("files");
    let pkl = files.iter().find(|f| f["path"] == "gs://team-models/churn/7/data/model.pkl").expect("pkl pinned");
    assert_eq!(pkl["sha256"], sha256sum(&copy.join("data/model.pkl")));
    assert!(v.get("run").is_none(), "adoption pins bytes, not a run: {v:#}");
    let again = t.repro(&["model", "adopt", "churn@1", "--from", "churn-7"]).expect_code(2);
    assert!(again.stderr().contains("already pins its files"), "{}", again.stderr());
    // Still no run: the evidence policies stay unmet, now saying the files are held.
    let staging = t.repro(&["model", "promote", "churn@1", "--to", "staging", "--json"]).expect_code(1).json();
    assert!(unmet_reason(&staging, "git_clean").contains("its files are adopted, but no run"), "{staging:#}");
    let verify = t.repro(&["model", "verify", "churn@1", "--json"]).expect_code(1).json();
    assert!(check(&verify, "artifact").0, "{verify:#}");

    // A version of a run repro recorded is not external, and adopt says so.
    let run = id_of(&t.train(&["--json"]).success());
    t.repro(&["model", "register", &run, "--name", "pricing", "--artifact", "model.pkl"]).success();
    let not_external = t.repro(&["model", "adopt", "pricing@1", "--from", "churn-7"]).expect_code(2);
    assert!(not_external.stderr().contains("adopt is for external versions"), "{}", not_external.stderr());

    adopt_from_the_bucket(&t);

    // The adopted bytes are checked like any version's.
    t.repro(&["fsck"]).success();
    flip_byte(&t, pkl["blake3"].as_str().expect("digest"), 0);
    let fsck = t.repro(&["fsck"]).expect_code(1);
    assert!(fsck.stdout().contains("churn@1 artifact gs://team-models/churn/7/data/model.pkl"), "{}", fsck.stdout());
}

/// In the S3 pass: a version whose source is a folder in a bucket is adopted straight from
/// it (the objects are put there with plain PUTs, as any tool would), and a key that is
/// missing is one line.
fn adopt_from_the_bucket(t: &TestContext) {
    let (Some(bucket), Ok(endpoint)) = (common::s3_bucket(), std::env::var("AWS_ENDPOINT_URL")) else {
        eprintln!("the s3:// adoption runs in the S3 pass (REPRO_TEST_S3_BUCKET, AWS_ENDPOINT_URL)");
        return;
    };
    let prefix = format!("adopt-{}", std::process::id());
    for (key, body) in [("MLmodel", &b"flavors: {}\n"[..]), ("data/model.pkl", &b"\x80\x04bucket"[..])] {
        let (status, _, text) = common::http(&endpoint, "PUT", &format!("/{bucket}/{prefix}/m/{key}"), &[], body);
        assert_eq!(status, 200, "PUT {key}: {text}");
    }
    let server = common::Server::start(t);
    let source = format!("s3://{bucket}/{prefix}/m");
    let v = mlflow_post(&server, "model-versions/create", serde_json::json!({"name": "churn", "source": source}));
    let number = v["model_version"]["version"].as_str().expect("version").to_string();
    let missing = mlflow_post(
        &server,
        "model-versions/create",
        serde_json::json!({"name": "churn", "source": format!("s3://{bucket}/{prefix}/nothing")}),
    );
    drop(server);
    let adopted = t.repro(&["model", "adopt", &format!("churn@{number}"), "--json"]).success().json();
    assert_eq!((adopted["files"].as_u64(), adopted["from"].as_str()), (Some(2), Some(source.as_str())), "{adopted:#}");
    let v = show_version(t, &format!("churn@{number}"));
    let files: Vec<&str> =
        v["artifact"]["files"].as_array().expect("files").iter().filter_map(|f| f["path"].as_str()).collect();
    assert_eq!(files, [format!("{source}/MLmodel"), format!("{source}/data/model.pkl")]);
    let none = missing["model_version"]["version"].as_str().expect("version");
    let r = t.repro(&["model", "adopt", &format!("churn@{none}")]).expect_code(2);
    assert!(r.stderr().contains("holds no object and no folder of objects"), "{}", r.stderr());
    assert_eq!(r.stderr().lines().count(), 1, "{}", r.stderr());
    // Nothing of the downloads is left behind.
    let left: Vec<_> = std::fs::read_dir(t.path(".repro/tmp")).expect("tmp").flatten().collect();
    assert!(left.iter().all(|e| !e.file_name().to_string_lossy().contains("adopt")), "{left:?}");
}
