//! What repro keeps and shows is safe to keep and show: no credential from a URL is ever
//! recorded (nor printed from a run recorded before repro stripped them), no terminal
//! control sequence from a name or value reaches the terminal, and a run renamed through
//! MLflow is shown by its current name. All through the real binary.

mod common;

use std::path::Path;

use common::{id_of, item, status, Server, TestContext};
use serde_json::Value;

/// Every file under `dir` (the store's folder: its database and objects) that holds `needle`.
fn files_holding(dir: &Path, needle: &str) -> Vec<String> {
    let mut hits = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).expect("ls").flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if std::fs::read(&p).is_ok_and(|b| b.windows(needle.len()).any(|w| w == needle.as_bytes())) {
                hits.push(p.display().to_string());
            }
        }
    }
    hits
}

/// Asserts that nothing the store holds, locally or in its database, contains `secret`.
fn store_never_held(t: &TestContext, secret: &str) {
    assert_eq!(files_holding(&t.path(".repro"), secret), Vec::<String>::new());
    if t.db_url().is_some() {
        for table in ["runs", "run_params", "run_tags", "snapshots", "datasets"] {
            let rows = t.sql(&format!("SELECT * FROM {table}"));
            assert!(!rows.contains(secret), "{table}: {rows}");
        }
    }
}

fn post_once(uri: &str, path: &str, body: &Value) -> Value {
    let (code, _, text) =
        common::http(uri, "POST", path, &[("Content-Type", "application/json")], body.to_string().as_bytes());
    assert_eq!(code, 200, "{path}: {text}");
    serde_json::from_str(&text).expect("JSON answer")
}

#[test]
fn a_token_in_the_git_remote_is_never_recorded_shown_served_or_bundled() {
    const TOKEN: &str = "glpat-Zq81TokenNeverKept";
    let t = TestContext::sklearn_project();
    t.git(&["remote", "set-url", "origin", &format!("https://oauth2:{TOKEN}@gitlab.example/pricing.git")]);
    let run = t.train(&["--json", "--name", "baseline"]).success();
    let id = id_of(&run);
    assert!(
        run.stderr().contains(
            "warning: a credential was removed before recording: the git remote (code.remote): a password in the URL's user info"
        ),
        "{}",
        run.stderr()
    );
    assert!(!run.stderr().contains(TOKEN), "{}", run.stderr());

    let show = t.repro(&["show", &id, "--json"]).success();
    assert_eq!(show.json()["code"]["remote"], "https://gitlab.example/pricing.git");
    for args in [&["show", "baseline"][..], &["runs"], &["audit", "baseline"], &["audit", "baseline", "--json"]] {
        let out = t.repro(args);
        assert!(!out.stdout().contains(TOKEN) && !out.stderr().contains(TOKEN), "{args:?}: {}", out.stdout());
    }
    let server = Server::start(&t);
    let (code, body) = common::http_get(&server.uri, &format!("/api/v1/runs/{id}"));
    assert_eq!(code, 200, "{body}");
    assert!(body.contains("https://gitlab.example/pricing.git") && !body.contains(TOKEN), "{body}");
    drop(server);

    t.repro(&["model", "register", &id, "--name", "pricing", "--artifact", "model.pkl"]).success();
    let bundle = t.tmp.path().join("pricing.tar");
    t.repro(&["bundle", "export", "pricing@1", "-o", bundle.to_str().expect("utf-8"), "--unsigned"]).success();
    let bytes = std::fs::read(&bundle).expect("bundle");
    assert!(!bytes.windows(TOKEN.len()).any(|w| w == TOKEN.as_bytes()), "the bundle holds the token");
    store_never_held(&t, TOKEN);

    let fsck = t.repro(&["fsck", "--json"]).success().json();
    assert_eq!(fsck["clean"], true);
    assert_eq!(fsck["warnings"], Value::Array(vec![]), "{fsck:#}");
}

#[test]
fn an_environment_file_with_credentials_is_stored_redacted_and_the_run_still_replays() {
    const PASSWORD: &str = "Sup3rSecretIndexPw";
    let t = TestContext::sklearn_project();
    // A private requirements file next to the committed one, as CI jobs write them: untracked,
    // so git capture stores it too (as the redacted copy, like the environment file).
    let pinned = std::fs::read_to_string(t.path("requirements.txt")).expect("requirements");
    t.write(
        "requirements-ci.txt",
        &format!(
            "--extra-index-url https://ci:{PASSWORD}@pypi.corp.example/simple\n\
             --find-links https://${{WHEELS_USER}}:${{WHEELS_TOKEN}}@wheels.corp.example/\n{pinned}"
        ),
    );
    let run = t.train(&["--json", "--env", "requirements-ci.txt"]).success();
    let id = id_of(&run);
    assert!(
        run.stderr().contains(
            "a credential was removed before recording: the declared environment, requirements-ci.txt:1: a password in the URL's user info"
        ),
        "{}",
        run.stderr()
    );
    assert!(!run.stderr().contains(PASSWORD));

    let show = t.repro(&["show", &id, "--json"]).success().json();
    let declared = &show["environment"]["declared"];
    assert_eq!(declared["path"], "requirements-ci.txt");
    assert_eq!(declared["redacted"], serde_json::json!(["requirements-ci.txt:1: a password in the URL's user info"]));
    let digest = declared["digest"].as_str().expect("digest");
    let stored = String::from_utf8(t.read_object(digest)).expect("text");
    assert!(stored.starts_with("--extra-index-url https://pypi.corp.example/simple\n"), "{stored}");
    assert!(
        stored.contains("https://${WHEELS_USER}:${WHEELS_TOKEN}@wheels.corp.example/"),
        "placeholders stay: {stored}"
    );
    let untracked = show["code"]["untracked"]
        .as_array()
        .expect("untracked")
        .iter()
        .find(|u| u["path"] == "requirements-ci.txt")
        .expect("stored as an untracked file")
        .clone();
    assert_eq!(untracked["digest"], digest, "the untracked copy is the redacted one too");
    store_never_held(&t, PASSWORD);

    let replay = t.repro(&["replay", &id, "--json"]).success().json();
    assert_eq!(replay["verdict"], "identical", "{replay:#}");
    store_never_held(&t, PASSWORD);
}

/// A record as an older repro wrote it, with a token in its remote: rewritten consistently
/// (record, lineage digest, record object), as that repro would have recorded it.
fn record_as_before_stripping(t: &TestContext, id: &str, remote: &str) {
    let mut v = t.repro(&["show", id, "--json"]).success().json();
    let m = v.as_object_mut().expect("object");
    for extra in
        ["lineage", "record_object", "tags", "metrics", "replays", "models", "recorded_name", "facts", "artifacts"]
    {
        m.remove(extra);
    }
    m["code"]["remote"] = Value::from(remote);
    let canonical = serde_json::to_vec(&v).expect("json");
    let digest = format!("blake3:{}", blake3::hash(&canonical).to_hex());
    if let Some(dir) = t.object_file(&digest).parent() {
        std::fs::create_dir_all(dir).expect("shard");
    }
    t.write_object(&digest, &canonical);
    let text = String::from_utf8(canonical).expect("utf-8").replace('\'', "''");
    t.sql(&format!(
        "UPDATE runs SET record = '{text}', lineage = '{digest}', record_object = '{digest}' WHERE id = '{id}'"
    ));
    // And the store as that repro left it: before the facts journal (schema 6), which the
    // next open journals as it finds it, before the logged models' metrics (schema 8) and
    // the stat cache's chunk rows (schema 9).
    let v6 = "DROP TABLE journal; DROP TABLE fsck_results; ALTER TABLE tokens DROP COLUMN email; \
              ALTER TABLE tokens DROP COLUMN approver_keyid; ALTER TABLE tokens DROP COLUMN approver_key; \
              DROP TABLE logged_model_metrics; DROP TABLE run_model_inputs; DROP TABLE tree_cache_chunks;";
    if t.db_url().is_some() {
        t.sql(&format!("{v6} UPDATE repro_schema SET version = 6;"));
    } else {
        t.sql(&format!("{v6} PRAGMA user_version = 6;"));
    }
}

#[test]
fn a_run_recorded_with_a_token_is_kept_warned_about_by_fsck_and_masked_when_shown() {
    const TOKEN: &str = "ghp_OldRunTokenAbc0123456789";
    let t = TestContext::sklearn_project();
    let id = id_of(&t.train(&["--json"]).success());
    record_as_before_stripping(&t, &id, &format!("https://x-access-token:{TOKEN}@github.com/o/pricing.git"));

    let fsck = t.repro(&["fsck", "--json"]).success();
    let report = fsck.json();
    assert_eq!(report["clean"], true, "a warning is not damage: {report:#}");
    let warnings: Vec<&str> =
        report["warnings"].as_array().expect("warnings").iter().filter_map(Value::as_str).collect();
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(warnings[0]
        .starts_with(&format!("run {id} was recorded with a credential in a URL, in the git remote (code.remote)")));
    assert!(!fsck.stdout().contains(TOKEN));
    let human = t.repro(&["fsck"]).success().stdout();
    assert!(human.contains(&format!("warning: run {id}")) && !human.contains(TOKEN), "{human}");

    // The record is what it was (its lineage holds), but people never see the token.
    let (audit, code) = t.audit(&id);
    assert_eq!(code, 0, "{audit:#}");
    assert_eq!(status(&audit, "objects_verified"), "ok");
    let detail = item(&audit, "git_commit")["detail"].as_str().expect("detail");
    assert!(detail.contains("(https://***@github.com/o/pricing.git)"), "{detail}");
    for args in [&["show", &id[..]][..], &["audit", &id], &["runs"]] {
        let out = t.repro(args).success().stdout();
        assert!(!out.contains(TOKEN), "{args:?}: {out}");
    }
    let shown = t.repro(&["show", &id]).success().stdout();
    assert!(shown.contains("remote https://***@github.com/o/pricing.git"), "{shown}");
}

#[test]
fn terminal_escapes_in_names_params_and_errors_are_shown_escaped() {
    let t = TestContext::sklearn_project();
    let name = "\u{1b}]0;pwned\u{7}";
    let id = id_of(&t.train(&["--json", "--name", name, "--param", "note=\u{1b}[31mred\u{202e}gnp.exe"]).success());
    let raw = |s: &str| s.chars().any(|c| c == '\u{1b}' || c == '\u{7}' || c == '\u{202e}' || c == '\u{9b}');
    for args in [&["runs"][..], &["show", &id], &["audit", &id]] {
        let out = t.repro(args);
        assert!(!raw(&out.stdout()) && !raw(&out.stderr()), "{args:?}: {:?}", out.stdout());
        assert!(out.stdout().contains("\\u{1b}]0;pwned\\u{7}"), "{args:?}: {}", out.stdout());
    }
    let shown = t.repro(&["show", &id]).stdout();
    assert!(shown.contains("note = \\u{1b}[31mred\\u{202e}gnp.exe"), "{shown}");
    // JSON keeps the exact value (serde escapes it the JSON way).
    assert_eq!(t.runs()[0]["name"], name);
    // Error lines quote what was typed, escaped.
    let err = t.repro(&["show", "\u{1b}[2Jnope\u{9b}"]).expect_code(2);
    assert!(!raw(&err.stderr()), "{:?}", err.stderr());
    assert!(err.error_line().contains("\\u{1b}[2Jnope\\u{9b}"), "{}", err.error_line());
    let err = t.repro(&["run", "--param", "a\u{1b}]0;x\u{7}=1", "--", "true"]).expect_code(2);
    assert!(!raw(&err.stderr()), "{:?}", err.stderr());
}

#[test]
fn a_run_renamed_through_mlflow_shows_its_new_name_everywhere() {
    let t = TestContext::sklearn_project();
    let captured = id_of(&t.train(&["--json", "--name", "draft"]).success());
    let server = Server::start(&t);
    let tracked = post_once(
        &server.uri,
        "/api/2.0/mlflow/runs/create",
        &serde_json::json!({"experiment_id": "0", "run_name": "notebook"}),
    );
    let tracked = tracked["run"]["info"]["run_id"].as_str().expect("run id").to_string();
    for (run, new) in [(&captured, "final"), (&tracked, "notebook-\u{1b}[2Jv2")] {
        post_once(&server.uri, "/api/2.0/mlflow/runs/update", &serde_json::json!({"run_id": run, "run_name": new}));
    }

    // The native API and --json: the current name, and the recorded one beside it.
    let (code, body) = common::http_get(&server.uri, "/api/v1/runs/final");
    assert_eq!(code, 200, "{body}");
    let v: Value = serde_json::from_str(&body).expect("json");
    assert_eq!(v["id"], captured.as_str());
    assert_eq!(v["name"], "final");
    assert_eq!(v["recorded_name"], "draft");
    let remote = t.repro(&["--server", &server.uri, "show", "final"]).success().stdout();
    assert!(remote.starts_with(&format!("run       {captured}  (final)\nrenamed   from draft")), "{remote}");
    drop(server);

    let runs = t.repro(&["runs"]).success().stdout();
    assert!(runs.contains("final") && runs.contains("notebook-\\u{1b}[2Jv") && !runs.contains("draft"), "{runs}");
    let shown = t.repro(&["show", "final"]).success().stdout();
    assert!(shown.starts_with(&format!("run       {captured}  (final)\n")), "{shown}");
    let audit = t.repro(&["audit", "final"]).success().stdout();
    assert!(audit.starts_with(&format!("audit of run {} (final): complete", &captured[..8])), "{audit}");
    let json = t.repro(&["audit", "final", "--json"]).success().json();
    assert_eq!(json["name"], "final");
    let listed = t.runs();
    let by_id = |id: &str| listed.iter().find(|r| r["id"] == id).expect("listed").clone();
    assert_eq!(by_id(&captured)["name"], "final");
    assert_eq!(by_id(&tracked)["name"], "notebook-\u{1b}[2Jv2");
    assert_eq!(by_id(&tracked)["recorded_name"], "notebook");
    // The old name no longer finds it; the lineage, which covers the recorded name, holds.
    t.repro(&["show", "draft"]).expect_code(2);
    let fsck = t.repro(&["fsck", "--json"]).success().json();
    assert_eq!(fsck["clean"], true, "{fsck:#}");
}

#[test]
fn the_audit_of_a_bundle_without_data_names_the_data_and_how_to_get_it() {
    let t = TestContext::sklearn_project();
    let run = id_of(&t.train(&["--json"]).success());
    t.repro(&["model", "register", &run, "--name", "pricing", "--artifact", "model.pkl"]).success();
    let bundle = t.tmp.path().join("nodata.tar");
    t.repro(&["bundle", "export", "pricing@1", "-o", bundle.to_str().expect("utf-8"), "--unsigned"]).success();
    let auditor = TestContext::new();
    auditor.repro(&["init"]).success();
    auditor.repro(&["bundle", "import", bundle.to_str().expect("utf-8")]).success();

    let (audit, code) = auditor.audit("pricing@1");
    assert_eq!(code, 1, "{audit:#}");
    let objects = item(&audit, "objects_verified");
    assert_eq!(objects["status"], "missing", "the run cannot be rebuilt without its data");
    let detail = objects["detail"].as_str().expect("detail");
    assert!(
        detail.contains("the input data data/train.csv of dataset data/train.csv:1 (blake3:")
            && detail.contains(
                "is not in this store: the run came with pricing@1 from a bundle exported without --include-data"
            ),
        "{detail}"
    );
    let fix = objects["fix"].as_str().expect("fix");
    assert!(fix.contains("repro bundle export pricing@1 -o FILE --include-data"), "{fix}");
    assert!(!fix.contains("backup"), "nothing is damaged: {fix}");
    let human = auditor.repro(&["audit", "pricing@1"]).expect_code(1).stdout();
    assert!(human.contains("MISSING  objects_verified    1 of"), "{human}");

    // What the fix says works: the same data, snapshotted here, completes the store.
    std::fs::create_dir_all(auditor.path("data")).expect("mkdir");
    std::fs::copy(t.path("data/train.csv"), auditor.path("data/train.csv")).expect("copy data");
    auditor.repro(&["data", "snapshot", "data/train.csv"]).success();
    let (audit, _) = auditor.audit("pricing@1");
    assert_eq!(status(&audit, "objects_verified"), "ok", "{audit:#}");
}
