//! The auditor's copy: a model version goes through the registry to prod, is exported as
//! one bundle, and is audited and replayed in a fresh store in another folder, with the
//! original project out of reach. Damaged bundles are refused with nothing imported.

mod common;

use std::path::{Path, PathBuf};

use common::{id_of, item, status, TestContext};

/// Moves a folder out of the way for the rest of a test, and back when the test ends (so
/// the temp folder is cleaned up even when an assertion fails).
struct Moved {
    from: PathBuf,
    to: PathBuf,
}

impl Moved {
    fn away(dir: &Path) -> Moved {
        let to = dir.with_extension("gone");
        std::fs::rename(dir, &to).expect("move the project away");
        Moved { from: dir.to_path_buf(), to }
    }
}

impl Drop for Moved {
    fn drop(&mut self) {
        let _ = std::fs::rename(&self.to, &self.from);
    }
}

fn registry_events(t: &TestContext) -> i64 {
    t.sql("SELECT COUNT(*) FROM registry_events").trim().parse().expect("a count")
}

fn object_count(t: &TestContext) -> usize {
    walk(&t.path(".repro/objects"))
}

fn walk(dir: &Path) -> usize {
    std::fs::read_dir(dir)
        .map(|d| d.flatten().map(|e| if e.path().is_dir() { walk(&e.path()) } else { 1 }).sum())
        .unwrap_or(0)
}

/// A project whose model `pricing@1` went through staging to prod: replayed, signed and
/// approved by two people. Returns the project, the run id, and a folder outside the
/// project (the auditor's USB stick) holding the key pair.
fn pricing_in_prod() -> (TestContext, String, tempfile::TempDir) {
    let t = TestContext::sklearn_project();
    let run = id_of(&t.train(&["--json"]).success());
    let v = t.repro(&["model", "register", &run, "--name", "pricing", "--artifact", "model.pkl", "--json"]).success();
    assert_eq!(v.json()["version"], 1);
    t.repro(&["model", "promote", "pricing@1", "--to", "staging"]).success();

    let refused = t.repro(&["model", "promote", "pricing@1", "--to", "prod", "--json"]).expect_code(1).json();
    let unmet: Vec<&str> =
        refused["unmet"].as_array().expect("unmet").iter().map(|u| u["requirement"].as_str().expect("name")).collect();
    assert_eq!(unmet, ["replay_verified", "signed", "approvals"], "{refused:#}");

    let replay = t.repro(&["replay", "pricing@staging", "--json"]).success().json();
    assert_eq!(replay["verdict"], "identical", "{replay:#}");
    let stick = tempfile::tempdir().expect("tempdir");
    let keys = stick.path().join("keys");
    t.repro(&["key", "generate", "--out", keys.to_str().expect("utf-8")]).success();
    let key = keys.join("repro.key");
    t.repro(&["model", "sign", "pricing@1", "--key", key.to_str().expect("utf-8")]).success();
    // Two people, each with a key of their own that the store trusts; Alice approves twice.
    for (who, dir) in [("Alice <alice@example.com>", "alice"), ("Bob <bob@example.com>", "bob")] {
        t.trusted_approver(stick.path().join(dir).to_str().expect("utf-8"), who);
    }
    for (who, dir) in [
        ("Alice <alice@example.com>", "alice"),
        ("alice <ALICE@example.com>", "alice"),
        ("Bob <bob@example.com>", "bob"),
    ] {
        let key = stick.path().join(dir).join("repro.key");
        let key = key.to_str().expect("utf-8");
        t.repro(&[
            "model",
            "approve",
            "pricing@1",
            "--stage",
            "prod",
            "--key",
            key,
            "--as",
            who,
            "--comment",
            "checked",
        ])
        .success();
    }
    let promoted = t.repro(&["model", "promote", "pricing@1", "--to", "prod", "--json"]).success().json();
    assert_eq!(promoted["outcome"], "promoted", "{promoted:#}");
    assert_eq!(promoted["version"]["stage"], "prod");
    (t, run, stick)
}

#[test]
fn the_auditor_audits_and_replays_a_prod_model_from_its_bundle_alone() {
    let (t, run, stick) = pricing_in_prod();
    let bundle = stick.path().join("pricing-v1.tar");
    let key = stick.path().join("keys/repro.key");
    let export = t
        .repro(&[
            "bundle",
            "export",
            "pricing@prod",
            "-o",
            bundle.to_str().expect("utf-8"),
            "--include-data",
            "--key",
            key.to_str().expect("utf-8"),
            "--json",
        ])
        .success()
        .json();
    assert_eq!(export["model"], "pricing@1");
    assert_eq!(export["runs"], 2, "the run and its replay: {export:#}");
    assert!(export["signed_by"].is_string(), "{export:#}");
    let commit = export["code"].as_str().expect("code commit").to_string();

    // Another machine: a fresh store elsewhere; the project (repository and store) is gone.
    let auditor = TestContext::new();
    auditor.repro(&["init"]).success();
    let _gone = Moved::away(&t.dir);
    let public = stick.path().join("keys/repro.pub");
    let imported = auditor
        .repro(&[
            "bundle",
            "import",
            bundle.to_str().expect("utf-8"),
            "--key",
            public.to_str().expect("utf-8"),
            "--json",
        ])
        .success()
        .json();
    assert_eq!(imported["imported"], true, "{imported:#}");
    assert_eq!(imported["stage"], "prod");
    assert_eq!(imported["signatures_verified"].as_array().map(Vec::len), Some(1));
    assert_eq!(imported["signer"]["status"], "trusted", "the key given with --key: {imported:#}");

    let (audit, code) = auditor.audit("pricing@prod");
    assert_eq!(code, 0, "{audit:#}");
    assert_eq!(audit["complete"], true);
    assert_eq!(status(&audit, "registry_version"), "ok");
    assert!(item(&audit, "registry_version")["detail"].as_str().expect("detail").contains("pricing@1 (prod)"));
    assert_eq!(status(&audit, "replay_verified"), "ok");
    assert_eq!(status(&audit, "objects_verified"), "ok");
    assert_eq!(audit["run"], run.as_str());

    let verify = auditor
        .repro(&["model", "verify", "pricing@prod", "--key", public.to_str().expect("utf-8"), "--json"])
        .success();
    assert_eq!(verify.json()["ok"], true, "{}", verify.stdout());
    let shown = auditor.repro(&["model", "show", "pricing@1", "--json"]).success().json();
    assert_eq!(shown["approvals"].as_array().map(Vec::len), Some(3), "the history came along: {shown:#}");
    assert!(shown["imported_from"].is_string());
    let kinds: Vec<&str> =
        shown["history"].as_array().expect("history").iter().map(|h| h["kind"].as_str().expect("kind")).collect();
    // The refused promotion to prod before the replay is part of the history that came along.
    assert_eq!(kinds, ["register", "promote", "refuse", "sign", "approve", "approve", "approve", "promote", "import"]);

    // Replay with a virtualenv built from the record, code from the bundle's git bundle: the
    // auditor's store trusts the key on the stick (--key vouched for one import only).
    trust_signers(&auditor, &[public.to_str().expect("utf-8")]);
    let replay = auditor.repro(&["replay", "pricing@prod", "--create-env", "--json"]);
    let report = replay.json();
    assert_eq!(replay.code(), 0, "{report:#}\n{}", replay.stderr());
    assert_eq!(report["verdict"], "identical", "{report:#}");
    assert!(report["code"]["source"].as_str().expect("source").contains("code bundle"), "{report:#}");
    assert_eq!(report["code"]["commit"], commit.as_str());
    auditor.repro(&["fsck"]).success();

    // Importing the same bundle again changes nothing.
    let events = registry_events(&auditor);
    let again = auditor.repro(&["bundle", "import", bundle.to_str().expect("utf-8"), "--json"]).success().json();
    assert_eq!(again["imported"], false);
    assert_eq!(registry_events(&auditor), events);
}

/// An edit of one tar entry: its name and bytes in, the entries to write in its place out.
type Edit<'a> = dyn Fn(&str, Vec<u8>) -> Vec<(String, Vec<u8>)> + 'a;

/// Rewrites a tar: `edit` sees each entry's name and bytes and may change them, drop the
/// entry (None) or add entries after it.
fn rewrite(src: &Path, dest: &Path, edit: &Edit<'_>) {
    let mut archive = tar::Archive::new(std::fs::File::open(src).expect("open bundle"));
    let mut out = tar::Builder::new(std::fs::File::create(dest).expect("create"));
    for entry in archive.entries().expect("entries") {
        let mut entry = entry.expect("entry");
        let name = entry.path().expect("path").to_string_lossy().into_owned();
        let mut bytes = Vec::new();
        std::io::Read::read_to_end(&mut entry, &mut bytes).expect("read");
        for (n, b) in edit(&name, bytes) {
            let mut h = tar::Header::new_gnu();
            h.set_size(b.len() as u64);
            h.set_mode(0o644);
            h.set_entry_type(tar::EntryType::Regular);
            // `append_data` would refuse `..`; write the raw name to test hostile input.
            let raw = n.as_bytes();
            h.as_old_mut().name[..raw.len()].copy_from_slice(raw);
            h.set_cksum();
            out.append(&h, b.as_slice()).expect("append");
        }
    }
    out.finish().expect("finish");
}

#[test]
fn damaged_or_hostile_bundles_are_refused_with_nothing_imported() {
    let (t, _run, stick) = pricing_in_prod();
    let bundle = t.tmp.path().join("b.tar");
    let key = stick.path().join("keys/repro.key");
    t.repro(&[
        "bundle",
        "export",
        "pricing@1",
        "-o",
        bundle.to_str().expect("utf-8"),
        "--key",
        key.to_str().expect("utf-8"),
    ])
    .success();
    let original = std::fs::read(&bundle).expect("bundle");
    let dir = t.tmp.path().join("damaged");
    std::fs::create_dir_all(&dir).expect("mkdir");
    let variant = |name: &str, bytes: &[u8]| {
        let p = dir.join(name);
        std::fs::write(&p, bytes).expect("write");
        p
    };
    let rewritten = |name: &str, edit: &Edit<'_>| {
        let p = dir.join(name);
        rewrite(&bundle, &p, edit);
        p
    };

    let mut flipped = original.clone();
    let at = original.len() / 2;
    flipped[at] ^= 0x01;
    let manifest_hash_fixed = |bytes: Vec<u8>| -> Vec<(String, Vec<u8>)> {
        let m = String::from_utf8(bytes).expect("utf-8").replacen(
            "\"verdict\": \"identical\"",
            "\"verdict\": \"differs\"",
            1,
        );
        let digest = format!("blake3:{}\n", blake3::hash(m.as_bytes()).to_hex());
        vec![("repro-bundle.json".into(), m.into_bytes()), ("repro-bundle.json.blake3".into(), digest.into_bytes())]
    };
    let cases: Vec<(PathBuf, &str)> = vec![
        (variant("truncated.tar", &original[..original.len() * 2 / 3]), "truncated"),
        (variant("flipped.tar", &flipped), "refused"),
        (
            rewritten("object-edited.tar", &|n, mut b| {
                if n.starts_with("objects/") && b.len() > 100_000 {
                    let mid = b.len() / 2;
                    b[mid] ^= 0x01;
                }
                vec![(n.into(), b)]
            }),
            "was altered",
        ),
        (variant("empty.tar", b""), "no repro-bundle.json"),
        (variant("garbage.tar", b"this is not a tar file at all, not even close\n"), "refused"),
        (
            rewritten("manifest-edited.tar", &|n, b| {
                if n == "repro-bundle.json" {
                    let m = String::from_utf8(b).expect("utf-8").replacen("checked", "CHECKED", 1);
                    vec![(n.into(), m.into_bytes())]
                } else {
                    vec![(n.into(), b)]
                }
            }),
            "manifest was altered",
        ),
        (
            rewritten("resigned-digest.tar", &|n, b| match n {
                "repro-bundle.json" => manifest_hash_fixed(b),
                "repro-bundle.json.blake3" => vec![],
                _ => vec![(n.into(), b)],
            }),
            "signature",
        ),
        (
            rewritten("traversal.tar", &|n, b| {
                let mut v = vec![(n.to_string(), b)];
                if n == "repro-bundle.json.blake3" {
                    v.push(("../../escaped".into(), b"owned".to_vec()));
                }
                v
            }),
            "unexpected entry '../../escaped'",
        ),
        (
            rewritten("missing-object.tar", &|n, b| {
                if n.starts_with("objects/") && b.starts_with(b"{\"manifest_version\"") {
                    vec![]
                } else {
                    vec![(n.into(), b)]
                }
            }),
            "is missing",
        ),
    ];
    for (file, why) in &cases {
        let auditor = TestContext::new();
        auditor.repro(&["init"]).success();
        let r = auditor.repro(&["bundle", "import", file.to_str().expect("utf-8")]).expect_code(2);
        let line = r.error_line();
        assert!(line.contains(why), "{}: expected '{why}' in: {line}", file.display());
        assert!(!r.stderr().trim().contains('\n'), "one line: {}", r.stderr());
        assert_eq!(registry_events(&auditor), 0, "{}", file.display());
        assert_eq!(object_count(&auditor), 0, "{}: objects were written", file.display());
        assert!(!auditor.path("escaped").exists() && !auditor.tmp.path().join("escaped").exists());
        let leftovers = walk(&auditor.path(".repro/tmp"));
        assert_eq!(leftovers, 0, "{}: temp files left", file.display());
    }

    // Unsigned manifest: the version's own signature must be by the trusted key.
    let unsigned = t.tmp.path().join("unsigned.tar");
    t.repro(&["bundle", "export", "pricing@1", "-o", unsigned.to_str().expect("utf-8"), "--unsigned"]).success();
    let other = t.tmp.path().join("other-key");
    t.repro(&["key", "generate", "--out", other.to_str().expect("utf-8")]).success();
    let auditor = TestContext::new();
    auditor.repro(&["init"]).success();
    let wrong = other.join("repro.pub");
    let r = auditor
        .repro(&["bundle", "import", unsigned.to_str().expect("utf-8"), "--key", wrong.to_str().expect("utf-8")])
        .expect_code(2);
    assert!(r.error_line().contains("not signed by the key"), "{}", r.error_line());
    assert_eq!(registry_events(&auditor), 0);
    // A run that is neither the version's nor a listed replay of it does not ride along:
    // its record is a command this store might one day replay.
    let smuggled = dir.join("smuggled-run.tar");
    rewrite(&unsigned, &smuggled, &|n, b| match n {
        "repro-bundle.json" => {
            let mut m: serde_json::Value = serde_json::from_slice(&b).expect("manifest JSON");
            assert_eq!(m["runs"].as_array().map(Vec::len), Some(2), "the run and its replay");
            m["replays"] = serde_json::json!([]);
            let bytes = serde_json::to_vec_pretty(&m).expect("serialize");
            let digest = format!("blake3:{}\n", blake3::hash(&bytes).to_hex());
            vec![(n.into(), bytes), ("repro-bundle.json.blake3".into(), digest.into_bytes())]
        }
        "repro-bundle.json.blake3" => vec![],
        _ => vec![(n.into(), b)],
    });
    let r = auditor.repro(&["bundle", "import", smuggled.to_str().expect("utf-8")]).expect_code(2);
    assert!(r.error_line().contains("neither pricing@1's run nor a replay of it"), "{}", r.error_line());
    assert_eq!(registry_events(&auditor), 0);
    let ok = auditor.repro(&["bundle", "import", unsigned.to_str().expect("utf-8")]).success();
    assert!(ok.stderr().contains("manifest is unsigned"), "{}", ok.stderr());

    // A store that has another pricing@1 refuses the import.
    let other_store = TestContext::sklearn_project();
    let run = id_of(&other_store.train(&["--json", "--param", "model.n_estimators=7"]).success());
    other_store.repro(&["model", "register", &run, "--name", "pricing", "--artifact", "model.pkl"]).success();
    let r = other_store.repro(&["bundle", "import", bundle.to_str().expect("utf-8")]).expect_code(2);
    assert!(r.error_line().contains("already has a different pricing@1"), "{}", r.error_line());
    assert_eq!(registry_events(&other_store), 1);
}

#[test]
fn a_bundle_without_data_imports_but_the_audit_says_what_is_missing() {
    let t = TestContext::sklearn_project();
    let run = id_of(&t.train(&["--json"]).success());
    t.repro(&["model", "register", &run, "--name", "pricing", "--artifact", "model.pkl"]).success();
    let bundle = t.tmp.path().join("nodata.tar");
    let out =
        t.repro(&["bundle", "export", "pricing@1", "-o", bundle.to_str().expect("utf-8"), "--unsigned"]).success();
    assert!(out.stdout().contains("without data"), "{}", out.stdout());
    let auditor = TestContext::new();
    auditor.repro(&["init"]).success();
    let r = auditor.repro(&["bundle", "import", bundle.to_str().expect("utf-8")]).success();
    assert!(r.stderr().contains("without --include-data"), "{}", r.stderr());
    let (audit, code) = auditor.audit("pricing@1");
    assert_eq!(code, 1, "{audit:#}");
    assert_eq!(status(&audit, "objects_verified"), "missing");
    assert_eq!(status(&audit, "registry_version"), "ok");
    // The version itself (artifact, lineage, chain) still verifies; it is unsigned.
    let v = auditor.repro(&["model", "verify", "pricing@1", "--json"]).expect_code(1).json();
    let checks: Vec<(&str, bool)> = v["checks"]
        .as_array()
        .expect("checks")
        .iter()
        .map(|c| (c["name"].as_str().expect("name"), c["ok"].as_bool().expect("ok")))
        .collect();
    assert!(checks.contains(&("artifact", true)) && checks.contains(&("signature", false)), "{v:#}");
}

#[test]
fn export_refuses_what_it_cannot_bundle() {
    let t = TestContext::sklearn_project();
    let run = id_of(&t.train(&["--json"]).success());
    t.repro(&["model", "register", &run, "--name", "pricing", "--artifact", "model.pkl"]).success();
    let out = t.tmp.path().join("x.tar");
    let r = t.repro(&["bundle", "export", "pricing@7", "-o", out.to_str().expect("utf-8")]).expect_code(2);
    assert!(r.error_line().contains("versions: 1"), "{}", r.error_line());
    // The commit is gone from every place repro looks: history rewritten, no remote reachable.
    std::fs::rename(t.path(".git"), t.path(".git-gone")).expect("hide .git");
    let r = t.repro(&["bundle", "export", "pricing@1", "-o", out.to_str().expect("utf-8")]).expect_code(2);
    assert!(r.error_line().contains("cannot bundle the code"), "{}", r.error_line());
    assert!(!out.exists(), "a half-written bundle was left");
    let leftovers: Vec<String> = std::fs::read_dir(t.tmp.path())
        .expect("ls")
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains(".tmp-"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
    std::fs::rename(t.path(".git-gone"), t.path(".git")).expect("restore .git");
}

/// A registered `pricing@1` and a bundle of it, signed by a fresh key (`None`: unsigned).
/// Returns the project, the bundle, the key folder (`repro.key`, `repro.pub`) and its key id.
fn pricing_bundle(signed: bool) -> (TestContext, PathBuf, PathBuf, String) {
    let t = TestContext::sklearn_project();
    let run = id_of(&t.train(&["--json"]).success());
    t.repro(&["model", "register", &run, "--name", "pricing", "--artifact", "model.pkl"]).success();
    let keys = t.tmp.path().join("exporter-keys");
    let keyid = t.repro(&["key", "generate", "--out", keys.to_str().expect("utf-8"), "--json"]).success().json()
        ["keyid"]
        .as_str()
        .expect("keyid")
        .to_string();
    let bundle = t.tmp.path().join("pricing-v1.tar");
    let mut args = vec!["bundle", "export", "pricing@1", "-o", bundle.to_str().expect("utf-8"), "--include-data"];
    let key = keys.join("repro.key");
    if signed {
        args.extend(["--key", key.to_str().expect("utf-8")]);
    } else {
        args.push("--unsigned");
    }
    t.repro(&args).success();
    (t, bundle, keys, keyid)
}

fn run_count(t: &TestContext) -> usize {
    t.runs().len()
}

/// Appends a `[trust]` section to the store's repro.toml.
fn trust_signers(t: &TestContext, entries: &[&str]) {
    let list: Vec<String> = entries.iter().map(|e| format!("{e:?}")).collect();
    t.append(".repro/repro.toml", &format!("\n[trust]\nsigners = [{}]\n", list.join(", ")));
}

/// The refusal of a foreign run's replay: exit 2, one line, nothing recorded or built.
fn assert_replay_refused(auditor: &TestContext, reference: &str, names: &[&str]) {
    let (runs, events) = (run_count(auditor), registry_events(auditor));
    let r = auditor.repro(&["replay", reference]).expect_code(2);
    let line = r.error_line();
    for n in names.iter().chain(&["--trust-code", "train.py"]) {
        assert!(line.contains(n), "expected '{n}' in: {line}");
    }
    assert_eq!(run_count(auditor), runs, "a refused replay recorded a run");
    assert_eq!(registry_events(auditor), events);
    assert_eq!(walk(&auditor.path(".repro/tmp")), 0, "a refused replay built something");
    assert!(!auditor.path(".repro/replays").exists());
}

#[test]
fn a_bundle_signed_by_an_unknown_key_proves_integrity_not_authority_and_its_code_runs_only_when_asked() {
    let (t, bundle, _keys, keyid) = pricing_bundle(true);
    let auditor = TestContext::new();
    auditor.repro(&["init"]).success();
    let imported = auditor.repro(&["bundle", "import", bundle.to_str().expect("utf-8"), "--json"]).success().json();
    assert_eq!(imported["imported"], true, "{imported:#}");
    assert_eq!(imported["signer"]["status"], "unknown", "{imported:#}");
    assert_eq!(imported["signer"]["keyid"], keyid.as_str());
    assert!(imported["signer"].get("name").is_none(), "{imported:#}");
    // The human text says it plainly (here on the second import, which writes nothing).
    let again = auditor.repro(&["bundle", "import", bundle.to_str().expect("utf-8")]).success();
    let text = again.stdout();
    assert!(
        text.contains(&format!("valid signature by an untrusted key {keyid}: integrity only, not authority")),
        "{text}"
    );
    assert!(!text.contains("signer: trusted"), "{text}");
    // The import event keeps the signer and its standing at import.
    let payload: serde_json::Value =
        serde_json::from_str(auditor.sql("SELECT payload FROM registry_events WHERE kind = 'import'").trim())
            .expect("the import event's payload is JSON");
    assert_eq!(payload["signer"], serde_json::json!({"status": "unknown", "keyid": keyid}), "{payload:#}");
    let shown = auditor.repro(&["model", "show", "pricing@1", "--json"]).success().json();
    assert_eq!(shown["import_signer"]["status"], "unknown", "{shown:#}");

    // The replay stops before building anything, naming the signer and the command — even
    // though the original repository (which holds the commit) is still on this machine.
    assert!(t.path(".git").exists());
    assert_replay_refused(&auditor, "pricing@1", &[&keyid, "untrusted key"]);

    let replay = auditor.repro(&["replay", "pricing@1", "--trust-code", "--json"]);
    let report = replay.json();
    assert_eq!(replay.code(), 0, "{report:#}\n{}", replay.stderr());
    assert_eq!(report["verdict"], "identical", "{report:#}");
    assert_eq!(report["code"]["origin"]["allowed_by"], "--trust-code", "{report:#}");
    assert_eq!(report["code"]["origin"]["signer"]["keyid"], keyid.as_str());
    // A replay of the foreign run copies its record: still foreign.
    let replay_id = report["replay"].as_str().expect("replay id").to_string();
    assert_replay_refused(&auditor, &replay_id, &[&keyid]);
    auditor.repro(&["fsck"]).success();
}

#[test]
fn an_unsigned_bundle_is_said_to_be_unsigned_and_its_code_is_refused_without_the_flag() {
    let (_t, bundle, _keys, _keyid) = pricing_bundle(false);
    let auditor = TestContext::new();
    auditor.repro(&["init"]).success();
    let imported = auditor.repro(&["bundle", "import", bundle.to_str().expect("utf-8"), "--json"]).success().json();
    assert_eq!(imported["signer"]["status"], "unsigned", "{imported:#}");
    assert!(imported["signer"].get("keyid").is_none(), "{imported:#}");
    let again = auditor.repro(&["bundle", "import", bundle.to_str().expect("utf-8")]).success();
    assert!(again.stdout().contains("signer: unsigned"), "{}", again.stdout());
    assert_replay_refused(&auditor, "pricing@1", &["unsigned"]);
}

#[test]
fn a_bundle_signed_by_a_key_the_store_trusts_replays_without_the_flag() {
    let (_t, bundle, keys, keyid) = pricing_bundle(true);
    let auditor = TestContext::new();
    auditor.repro(&["init"]).success();
    let public = keys.join("repro.pub");
    trust_signers(&auditor, &[public.to_str().expect("utf-8")]);
    let imported = auditor.repro(&["bundle", "import", bundle.to_str().expect("utf-8"), "--json"]).success().json();
    assert_eq!(imported["signer"]["status"], "trusted", "{imported:#}");
    assert_eq!(imported["signer"]["keyid"], keyid.as_str());
    let again = auditor.repro(&["bundle", "import", bundle.to_str().expect("utf-8")]).success();
    assert!(again.stdout().contains(&format!("signer: trusted key {keyid}")), "{}", again.stdout());

    let replay = auditor.repro(&["replay", "pricing@1", "--json"]);
    let report = replay.json();
    assert_eq!(replay.code(), 0, "{report:#}\n{}", replay.stderr());
    assert_eq!(report["verdict"], "identical", "{report:#}");
    assert_eq!(report["code"]["origin"]["allowed_by"], "trusted signer", "{report:#}");

    // Trust is the store's now, not the import's: with the key no longer listed, it is refused.
    let config = std::fs::read_to_string(auditor.path(".repro/repro.toml")).expect("repro.toml");
    let without = config.split("\n[trust]").next().expect("the part before [trust]").to_string();
    std::fs::write(auditor.path(".repro/repro.toml"), without).expect("write repro.toml");
    assert_replay_refused(&auditor, "pricing@1", &[&keyid]);
    // Listed again by its key id alone, it counts.
    trust_signers(&auditor, &[&keyid]);
    let r = auditor.repro(&["replay", "pricing@1", "--json"]);
    assert_eq!(r.code(), 0, "{}\n{}", r.stdout(), r.stderr());
}
