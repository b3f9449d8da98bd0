//! Evidence nobody can forge: every table of a real store edited, deleted from and inserted
//! into behind repro's back, and fsck naming each change; recorded metrics and params edited
//! and the audit and verify noticing; registry writes refused on a damaged store; approvals
//! that are signatures, counted per trusted person, through every door and across a bundle.
//! Everything runs on SQLite and, in CI's second pass, on PostgreSQL and S3.

mod common;

use common::{http, id_of, Server, TestContext};
use serde_json::{json, Value};

/// A run id no store holds, for rows inserted behind repro's back.
const FORGED_RUN: &str = "f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0";

/// Runs `statement` on the store's database as someone with write access would: foreign
/// keys do not stop them (the sqlite3 shell does not enforce them; PostgreSQL's superuser
/// turns their triggers off).
fn tamper(t: &TestContext, statement: &str) {
    if t.db_url().is_some() {
        t.sql(&format!("SET session_replication_role = replica; {statement}"));
    } else {
        t.sql(statement);
    }
}

/// The first row's key of `select` (columns joined by `|`).
fn key_of(t: &TestContext, select: &str) -> Vec<String> {
    let out = t.sql(select);
    let line = out.lines().next().unwrap_or_else(|| panic!("no row for {select}"));
    line.split('|').map(str::to_string).collect()
}

fn post(uri: &str, path: &str, body: &Value) -> Value {
    let (code, _, answer) =
        http(uri, "POST", path, &[("Content-Type", "application/json")], body.to_string().as_bytes());
    assert_eq!(code, 200, "POST {path} {body}: {answer}");
    serde_json::from_str(&answer).unwrap_or(Value::Null)
}

/// A store with a row in every table, written through repro's own doors: a captured run
/// with a metric, a param, data and an output; its replay; a registered version; an
/// environment; a token; a bundle imported from another project (code bundle); and, through
/// the MLflow API, an experiment with a tag, a run with metrics, params, tags and a dataset
/// input, a logged model, the run's model output and an artifact; then an fsck verdict.
fn everything(t: &TestContext) -> (String, String) {
    t.git(&["init", "-q", "-b", "main"]);
    t.write("data.csv", "x,y\n1,2\n");
    t.commit_all("initial");
    t.repro(&["init"]).success();
    let script = r#"echo hi > out.txt; echo '{"metric": "loss", "value": 0.5, "step": 1}' >> "$REPRO_METRICS""#;
    let run = id_of(&t.repro(&[
        "run", "--name", "tiny", "--seed", "1", "--param", "lr=0.1", "--data", "data.csv", "--output", "out.txt",
        "--json", "--", "sh", "-c", script,
    ]));
    t.repro(&["replay", &run]).success();
    t.repro(&["model", "register", &run, "--name", "tiny", "--artifact", "out.txt"]).success();
    t.write("requirements.txt", "numpy==2.0.0\n");
    t.repro(&["env", "register", "requirements.txt", "--name", "serving"]).success();

    // Another project's model, brought in by a bundle with its code.
    let other = TestContext::new();
    other.git(&["init", "-q", "-b", "main"]);
    other.write("d.csv", "a\n1\n");
    other.commit_all("other");
    other.repro(&["init"]).success();
    let o =
        id_of(&other.repro(&["run", "--seed", "2", "--output", "o.txt", "--json", "--", "sh", "-c", "echo o > o.txt"]));
    other.repro(&["model", "register", &o, "--name", "other", "--artifact", "o.txt"]).success();
    let bundle = t.path("other.tar");
    other.repro(&["bundle", "export", "other@1", "-o", bundle.to_str().expect("utf-8")]).success();
    t.repro(&["bundle", "import", bundle.to_str().expect("utf-8")]).success();

    // The MLflow door, on a server without tokens yet.
    let server = Server::start(t);
    let uri = server.uri.as_str();
    let api = "/api/2.0/mlflow";
    let exp = post(uri, &format!("{api}/experiments/create"), &json!({"name": "churn"}))["experiment_id"]
        .as_str()
        .expect("experiment id")
        .to_string();
    post(
        uri,
        &format!("{api}/experiments/set-experiment-tag"),
        &json!({"experiment_id": exp, "key": "team", "value": "risk"}),
    );
    let tracked = post(uri, &format!("{api}/runs/create"), &json!({"experiment_id": exp, "run_name": "api-run"}))
        ["run"]["info"]["run_id"]
        .as_str()
        .expect("run id")
        .to_string();
    post(
        uri,
        &format!("{api}/runs/log-batch"),
        &json!({"run_id": tracked, "metrics": [{"key": "auc", "value": 0.8, "timestamp": 1, "step": 0}],
                "params": [{"key": "depth", "value": "4"}], "tags": [{"key": "owner", "value": "ada"}]}),
    );
    post(
        uri,
        &format!("{api}/runs/log-inputs"),
        &json!({"run_id": tracked, "datasets": [{"dataset": {"name": "train", "digest": "d1", "source_type": "local", "source": "{}"}}]}),
    );
    let model = post(
        uri,
        &format!("{api}/logged-models"),
        &json!({"experiment_id": exp, "name": "forest", "source_run_id": tracked}),
    )["model"]["info"]["model_id"]
        .as_str()
        .expect("model id")
        .to_string();
    post(uri, &format!("{api}/runs/outputs"), &json!({"run_id": tracked, "models": [{"model_id": model, "step": 0}]}));
    // A metric of the logged model, and the model as an input of the run (schema 8's tables).
    post(
        uri,
        &format!("{api}/runs/log-metric"),
        &json!({"run_id": tracked, "key": "acc", "value": 0.9, "timestamp": 2, "step": 0, "model_id": model}),
    );
    post(uri, &format!("{api}/runs/log-inputs"), &json!({"run_id": tracked, "models": [{"model_id": model}]}));
    let (code, _, answer) = http(
        uri,
        "PUT",
        &format!("/api/2.0/mlflow-artifacts/artifacts/{exp}/{tracked}/artifacts/notes.txt"),
        &[],
        b"notes",
    );
    assert_eq!(code, 200, "{answer}");
    drop(server);
    t.repro(&["token", "create", "--role", "read", "--name", "auditor"]).success();
    let fsck = t.repro(&["fsck", "--json"]).success().json();
    assert_eq!(fsck["clean"], true, "a store written by repro is clean: {fsck:#}");
    (run, tracked)
}

/// One change behind repro's back, and what fsck must then say.
struct Case {
    table: &'static str,
    what: &'static str,
    statement: String,
    /// The run it must name, for a run's own rows.
    run: Option<String>,
}

fn cases(t: &TestContext, run: &str, tracked: &str) -> Vec<Case> {
    let mut out = Vec::new();
    let mut add = |table: &'static str, run: Option<&str>, edit: String, delete: String, insert: String| {
        for (what, statement) in [("edit", edit), ("delete", delete), ("insert", insert)] {
            let run = if what == "insert" && run.is_some() && statement.contains(FORGED_RUN) {
                Some(FORGED_RUN.to_string())
            } else {
                run.map(str::to_string)
            };
            out.push(Case { table, what, statement, run });
        }
    };
    add(
        "runs",
        Some(run),
        format!("UPDATE runs SET name = 'forged' WHERE id = '{run}'"),
        format!("DELETE FROM runs WHERE id = '{run}'"),
        format!(
            "INSERT INTO runs (id, name, status, exit_code, started_ms, ended_ms, host, record, lineage, record_object)
             SELECT '{FORGED_RUN}', name, status, exit_code, started_ms, ended_ms, host, record, lineage, record_object
             FROM runs WHERE id = '{run}'"
        ),
    );
    add(
        "metrics",
        Some(run),
        format!("UPDATE metrics SET value = 0.99 WHERE run_id = '{run}' AND key = 'loss'"),
        format!("DELETE FROM metrics WHERE run_id = '{run}' AND key = 'loss'"),
        format!("INSERT INTO metrics (run_id, key, value, step, timestamp_ms, is_nan) VALUES ('{run}', 'loss', 0.01, 9, 1, FALSE)"),
    );
    add(
        "tracking",
        Some(tracked),
        format!("UPDATE tracking SET user_id = 'forged' WHERE run_id = '{tracked}'"),
        format!("DELETE FROM tracking WHERE run_id = '{tracked}'"),
        format!(
            "INSERT INTO tracking (run_id, experiment_id, user_id, lifecycle_stage, artifact_uri, origin)
             VALUES ('{FORGED_RUN}', 0, 'x', 'active', 'mlflow-artifacts:/0', 'api')"
        ),
    );
    add(
        "run_params",
        Some(run),
        format!("UPDATE run_params SET value = '0.9' WHERE run_id = '{run}' AND key = 'lr'"),
        format!("DELETE FROM run_params WHERE run_id = '{run}' AND key = 'lr'"),
        format!("INSERT INTO run_params (run_id, key, value) VALUES ('{run}', 'forged', '1')"),
    );
    add(
        "run_tags",
        Some(tracked),
        format!("UPDATE run_tags SET value = 'mallory' WHERE run_id = '{tracked}' AND key = 'owner'"),
        format!("DELETE FROM run_tags WHERE run_id = '{tracked}' AND key = 'owner'"),
        format!("INSERT INTO run_tags (run_id, key, value) VALUES ('{tracked}', 'forged', '1')"),
    );
    add(
        "run_inputs",
        Some(tracked),
        format!("UPDATE run_inputs SET source = 'forged' WHERE run_id = '{tracked}'"),
        format!("DELETE FROM run_inputs WHERE run_id = '{tracked}'"),
        format!(
            "INSERT INTO run_inputs (run_id, name, digest, source_type, source, tags) VALUES ('{tracked}', 'x', 'd2', 'local', '{{}}', '{{}}')"
        ),
    );
    add(
        "run_model_outputs",
        Some(tracked),
        format!("UPDATE run_model_outputs SET step = 5 WHERE run_id = '{tracked}'"),
        format!("DELETE FROM run_model_outputs WHERE run_id = '{tracked}'"),
        format!("INSERT INTO run_model_outputs (run_id, model_id, step) VALUES ('{tracked}', 'm-forged', 0)"),
    );
    add(
        "logged_model_metrics",
        Some(tracked),
        format!("UPDATE logged_model_metrics SET value = 0.99 WHERE run_id = '{tracked}'"),
        format!("DELETE FROM logged_model_metrics WHERE run_id = '{tracked}'"),
        format!(
            "INSERT INTO logged_model_metrics (run_id, model_id, key, value, is_nan, step, timestamp_ms)
             VALUES ('{tracked}', 'm-forged', 'acc', 1, FALSE, 0, 1)"
        ),
    );
    add(
        "run_model_inputs",
        Some(tracked),
        format!("UPDATE run_model_inputs SET model_id = 'm-forged' WHERE run_id = '{tracked}'"),
        format!("DELETE FROM run_model_inputs WHERE run_id = '{tracked}'"),
        format!("INSERT INTO run_model_inputs (run_id, model_id) VALUES ('{tracked}', 'm-forged')"),
    );
    let replay = key_of(t, "SELECT replay_id FROM replays")[0].clone();
    add(
        "replays",
        Some(&replay),
        format!("UPDATE replays SET verdict = 'differs' WHERE replay_id = '{replay}'"),
        format!("DELETE FROM replays WHERE replay_id = '{replay}'"),
        format!(
            "INSERT INTO replays (replay_id, original_id, verdict, report, created_ms)
             SELECT '{FORGED_RUN}', original_id, verdict, report, created_ms FROM replays WHERE replay_id = '{replay}'"
        ),
    );
    let store = |table: &'static str, edit: &str, delete: &str, insert: &str| {
        (table, edit.to_string(), delete.to_string(), insert.to_string())
    };
    let snapshot = key_of(t, "SELECT digest FROM snapshots ORDER BY digest")[0].clone();
    let commit = key_of(t, "SELECT git_commit FROM code_bundles")[0].clone();
    let artifact = key_of(t, "SELECT path FROM artifacts")[0].clone();
    let fsck_id = key_of(t, "SELECT id FROM fsck_results ORDER BY at_ms LIMIT 1")[0].clone();
    let zero = format!("blake3:{}", "0".repeat(64));
    for (table, edit, delete, insert) in [
        store(
            "experiments",
            "UPDATE experiments SET name = 'forged' WHERE name = 'churn'",
            "DELETE FROM experiments WHERE name = 'churn'",
            "INSERT INTO experiments VALUES (999, 'forged', 'mlflow-artifacts:/999', 'active', 1, 1)",
        ),
        store(
            "experiment_tags",
            "UPDATE experiment_tags SET value = 'forged' WHERE key = 'team'",
            "DELETE FROM experiment_tags WHERE key = 'team'",
            "INSERT INTO experiment_tags VALUES (0, 'forged', '1')",
        ),
        store(
            "snapshots",
            &format!("UPDATE snapshots SET files = files + 1 WHERE digest = '{snapshot}'"),
            &format!("DELETE FROM snapshots WHERE digest = '{snapshot}'"),
            &format!("INSERT INTO snapshots VALUES ('{zero}', 'file', 1, 1, 1, 1)"),
        ),
        store(
            "datasets",
            "UPDATE datasets SET source = 'forged' WHERE name = 'data.csv'",
            "DELETE FROM datasets WHERE name = 'data.csv'",
            &format!("INSERT INTO datasets VALUES ('forged', 1, '{snapshot}', 'forged', 0, 1)"),
        ),
        store(
            "environments",
            "UPDATE environments SET source = 'forged' WHERE name = 'serving'",
            "DELETE FROM environments WHERE name = 'serving'",
            "INSERT INTO environments SELECT 'forged', version, identity, spec, kind, source, created_ms FROM environments",
        ),
        store(
            "code_bundles",
            &format!("UPDATE code_bundles SET object = '{zero}' WHERE git_commit = '{commit}'"),
            &format!("DELETE FROM code_bundles WHERE git_commit = '{commit}'"),
            &format!("INSERT INTO code_bundles VALUES ('{}', '{zero}', 1)", "a".repeat(40)),
        ),
        store(
            "tokens",
            "UPDATE tokens SET role = 'admin'",
            "DELETE FROM tokens",
            "INSERT INTO tokens (id, hash, role, name, created_ms) VALUES ('forged', 'blake3:x', 'admin', 'root', 1)",
        ),
        store(
            "artifacts",
            &format!("UPDATE artifacts SET object = '{zero}' WHERE path = '{artifact}'"),
            &format!("DELETE FROM artifacts WHERE path = '{artifact}'"),
            &format!("INSERT INTO artifacts VALUES ('0/{FORGED_RUN}/artifacts/x', '{zero}', 1, 1)"),
        ),
        store(
            "logged_models",
            "UPDATE logged_models SET status = 'LOGGED_MODEL_READY'",
            "DELETE FROM logged_models",
            "INSERT INTO logged_models (model_id, experiment_id, name, status, artifact_uri, creation_ms, updated_ms)
             VALUES ('m-forged', 0, 'x', 'LOGGED_MODEL_READY', 'mlflow-artifacts:/0', 1, 1)",
        ),
        store(
            "fsck_results",
            &format!("UPDATE fsck_results SET problems = '[\"forged\"]' WHERE id = '{fsck_id}'"),
            &format!("DELETE FROM fsck_results WHERE id = '{fsck_id}'"),
            "INSERT INTO fsck_results VALUES ('forged', 1, 'h', TRUE, '[]')",
        ),
    ] {
        add(table, None, edit, delete, insert);
    }
    let mut own = |table: &'static str, what: &'static str, statement: String| {
        out.push(Case { table, what, statement, run: None })
    };
    // The registry's own chain.
    own("registry_events", "edit", "UPDATE registry_events SET actor = 'mallory' WHERE seq = 1".into());
    own("registry_events", "delete", "DELETE FROM registry_events WHERE seq = 1".into());
    own(
        "registry_events",
        "insert",
        "INSERT INTO registry_events (seq, at_ms, actor, model, version, kind, payload, prev, hash)
         SELECT 99, at_ms, actor, model, version, kind, payload, hash, 'blake3:{}' FROM registry_events WHERE seq = 1"
            .replace("{}", &"0".repeat(64)),
    );
    // The journal itself.
    let scope = format!("run/{run}");
    own("journal", "edit", format!("UPDATE journal SET body = replace(body, 'loss', 'lost') WHERE scope = '{scope}'"));
    own("journal", "delete", format!("DELETE FROM journal WHERE scope = '{scope}' AND seq = 1"));
    own(
        "journal",
        "insert",
        format!(
            "INSERT INTO journal (scope, seq, at_ms, kind, body, prev, hash)
             SELECT scope, seq + 100, at_ms, kind, body, hash, 'forged' FROM journal WHERE scope = '{scope}' AND seq = 1"
        ),
    );
    out
}

#[test]
fn every_table_edited_deleted_or_inserted_behind_repros_back_is_named_by_fsck() {
    let t = TestContext::new();
    let (run, tracked) = everything(&t);

    // Every table of the schema has a case here, or is one of the caches checked below.
    let listed = if t.db_url().is_some() {
        t.sql("SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema() ORDER BY 1")
    } else {
        t.sql("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY 1")
    };
    let cases = cases(&t, &run, &tracked);
    for table in listed.lines() {
        let covered = cases.iter().any(|c| c.table == table)
            || ["latest_metrics", "tree_cache", "tree_cache_chunks", "repro_schema"].contains(&table);
        assert!(covered, "table {table} has no tamper case: add one, or say why fsck need not notice");
    }

    t.backup_store("clean");
    for c in &cases {
        tamper(&t, &c.statement);
        let r = t.repro(&["fsck", "--json"]);
        assert_eq!(r.code(), 1, "{} of {}: fsck said clean\n{}", c.what, c.table, r.stdout());
        let report = r.json();
        let named = match c.table {
            "registry_events" => report["registry"].as_array().is_some_and(|p| !p.is_empty()),
            table => report["tampered"].as_array().is_some_and(|list| {
                list.iter().any(|p| {
                    p["table"] == table
                        && c.run.as_deref().is_none_or(|run| p["run"] == run)
                        && !p["problem"].as_str().unwrap_or("").is_empty()
                })
            }),
        };
        assert!(named, "{} of a row of {} went unnamed: {report:#}", c.what, c.table);
        // The human report names it too, one line each.
        let human = t.repro(&["fsck"]).expect_code(1).stdout();
        assert!(human.contains("DAMAGED"), "{human}");
        t.restore_store("clean");
    }

    // The caches: fsck rebuilds them and says so; the store stays clean.
    tamper(&t, &format!("UPDATE latest_metrics SET value = 0.99 WHERE run_id = '{run}'"));
    let r = t.repro(&["fsck", "--json"]).success().json();
    assert!(
        r["caches_rebuilt"]
            .as_array()
            .is_some_and(|c| c.iter().any(|m| m.as_str().is_some_and(|m| m.contains("latest_metrics")))),
        "{r:#}"
    );
    assert_eq!(t.sql(&format!("SELECT value FROM latest_metrics WHERE run_id = '{run}'")).trim(), "0.5", "rebuilt");
    // A stat-cache row that lies about a root's files (edited or inserted: the same to fsck).
    let snapshot = key_of(&t, "SELECT digest FROM snapshots ORDER BY digest")[0].clone();
    let blob = if t.db_url().is_some() { "decode('00', 'hex')" } else { "X'00'" };
    tamper(&t, &format!("INSERT INTO tree_cache (root, manifest, files) VALUES ('/forged', '{snapshot}', {blob})"));
    let r = t.repro(&["fsck", "--json"]).success().json();
    assert!(r["caches_rebuilt"].to_string().contains("tree_cache"), "{r:#}");
    assert_eq!(t.sql("SELECT count(*) FROM tree_cache").trim(), "0", "the bad stat-cache row is dropped");
    // A deleted cache row is only a cache miss: the next snapshot hashes again.
    t.restore_store("clean");
    tamper(&t, "DELETE FROM latest_metrics");
    let r = t.repro(&["fsck", "--json"]).success().json();
    assert!(r["caches_rebuilt"].to_string().contains("latest_metrics"), "{r:#}");

    // PostgreSQL keeps the schema version in a table: an edit stops every command, named.
    if t.db_url().is_some() {
        t.restore_store("clean");
        tamper(&t, "UPDATE repro_schema SET version = 6");
        let e = t.repro(&["fsck"]).expect_code(2).error_line();
        assert!(e.contains("repro_schema") && e.contains("edited behind repro's back"), "{e}");
    }
}

#[test]
fn metrics_and_params_edited_behind_repros_back_fail_fsck_audit_and_verify() {
    let t = TestContext::sklearn_project();
    let run = id_of(&t.train(&["--json"]).success());
    t.repro(&["model", "register", &run, "--name", "pricing", "--artifact", "model.pkl"]).success();
    let key = t.sql(&format!("SELECT key FROM metrics WHERE run_id = '{run}' ORDER BY key LIMIT 1")).trim().to_string();
    t.backup_store("clean");

    // The reproduction: a metric changed in both tables, so every read shows the lie.
    t.sql(&format!("UPDATE metrics SET value = 0.99 WHERE run_id = '{run}' AND key = '{key}'"));
    t.sql(&format!("UPDATE latest_metrics SET value = 0.99 WHERE run_id = '{run}' AND key = '{key}'"));
    let fsck = t.repro(&["fsck", "--json"]).expect_code(1).json();
    let named = fsck["tampered"]
        .as_array()
        .expect("tampered")
        .iter()
        .any(|p| p["run"] == run.as_str() && p["table"] == "metrics" && p["key"] == key.as_str());
    assert!(named, "{fsck:#}");
    let (audit, code) = t.audit(&run);
    assert_eq!(code, 1, "{audit:#}");
    let item =
        audit["items"].as_array().expect("items").iter().find(|i| i["name"] == "objects_verified").expect("item");
    assert_eq!(item["status"], "missing", "{audit:#}");
    assert!(item["detail"].as_str().expect("detail").contains(&format!("metrics {key}")), "{item:#}");
    t.repro(&["model", "verify", "pricing@1"]).expect_code(1);
    t.restore_store("clean");

    // A logged param edited: fsck, the audit and verify all name it.
    let param =
        t.sql(&format!("SELECT key FROM run_params WHERE run_id = '{run}' ORDER BY key LIMIT 1")).trim().to_string();
    t.sql(&format!("UPDATE run_params SET value = '999' WHERE run_id = '{run}' AND key = '{param}'"));
    let fsck = t.repro(&["fsck"]).expect_code(1).stdout();
    assert!(fsck.contains(&format!("run_params {param}: edited behind repro's back (value)")), "{fsck}");
    assert_eq!(t.audit(&run).1, 1);
    let v = t.repro(&["model", "verify", "pricing@1", "--json"]).expect_code(1).json();
    let lineage = v["checks"].as_array().expect("checks").iter().find(|c| c["name"] == "lineage").expect("lineage");
    assert!(lineage["detail"].as_str().expect("detail").contains("run_params"), "{v:#}");
}

#[test]
fn registry_writes_stop_when_the_version_it_vouches_for_is_damaged() {
    let t = TestContext::sklearn_project();
    let run = id_of(&t.train(&["--json"]).success());
    t.repro(&["model", "register", &run, "--name", "pricing", "--artifact", "model.pkl"]).success();
    t.repro(&["key", "generate"]).success();
    let own = t.repro(&["key", "show", "--json"]).success().json();
    assert!(own["keyid"].as_str().is_some_and(|k| k.len() == 64), "{own:#}");
    let events = || t.sql("SELECT count(*) FROM registry_events").trim().to_string();
    let artifact = t.repro(&["model", "show", "pricing@1", "--json"]).success().json()["artifact"]["files"][0]
        ["blake3"]
        .as_str()
        .expect("blake3")
        .to_string();
    t.backup_store("clean");

    // One byte of the artifact flipped; no fsck has run. Approve, sign, export refuse.
    let mut bytes = t.read_object(&artifact);
    bytes[0] ^= 1;
    t.write_object(&artifact, &bytes);
    let before = events();
    let e = t.repro(&["model", "approve", "pricing@1", "--stage", "staging"]).expect_code(2).error_line();
    assert!(e.contains(&artifact) && e.contains("restored from a backup"), "{e}");
    // The damage found is kept: every later registry write waits, whichever version.
    let e =
        t.repro(&["model", "register", &run, "--name", "other", "--artifact", "model.pkl"]).expect_code(2).error_line();
    assert!(e.contains("the store is damaged"), "{e}");
    let e = t.repro(&["model", "sign", "pricing@1"]).expect_code(2).error_line();
    assert!(e.contains("the store is damaged"), "{e}");
    let out = t.path("pricing.tar");
    let e = t.repro(&["bundle", "export", "pricing@1", "-o", out.to_str().expect("utf-8")]).expect_code(2).error_line();
    assert!(e.contains("the store is damaged"), "{e}");
    assert!(!out.exists());
    assert_eq!(events(), before, "nothing was appended on top of the damage");
    // Archiving stays possible: taking a version out of service is what an incident needs.
    t.repro(&["model", "archive", "pricing@1", "--reason", "its artifact is damaged"]).success();

    // Restored and checked clean: writes go on.
    t.restore_store("clean");
    t.repro(&["model", "approve", "pricing@1", "--stage", "staging"]).success();
}

/// A person's key pair, under keys/<name>: (private, public).
fn person(t: &TestContext, name: &str) -> (String, String) {
    let dir = format!("keys/{name}");
    t.repro(&["key", "generate", "--out", &dir]).success();
    (format!("{dir}/repro.key"), format!("{dir}/repro.pub"))
}

#[test]
fn two_people_with_their_own_keys_take_a_model_to_prod_and_an_auditor_verifies_both_approvals() {
    let t = TestContext::sklearn_project();
    let run = id_of(&t.train(&["--json"]).success());
    t.repro(&["model", "register", &run, "--name", "pricing", "--artifact", "model.pkl"]).success();
    t.repro(&["model", "promote", "pricing@1", "--to", "staging"]).success();
    t.repro(&["replay", "pricing@1"]).success();
    let (release_key, _) = person(&t, "release");
    t.repro(&["model", "sign", "pricing@1", "--key", &release_key]).success();
    let (ada_key, ada_pub) = person(&t, "ada");
    let (bob_key, bob_pub) = person(&t, "bob");
    let (bob2_key, bob2_pub) = person(&t, "bob-laptop");
    let (eve_key, _) = person(&t, "eve");

    // A new store's prod counts signed approvals by trusted keys only.
    let stages = t.repro(&["model", "promote", "pricing@1", "--to", "prod", "--json"]).expect_code(1).json();
    assert!(stages.to_string().contains("signed by distinct trusted approvers"), "{stages:#}");

    // Ada approves locally with her key, which the store trusts as hers.
    t.repro(&["key", "add", &ada_pub, "--approver", "--name", "Ada Lovelace <ada@corp.example>"]).success();
    let a =
        t.repro(&["model", "approve", "pricing@1", "--stage", "prod", "--key", &ada_key, "--json"]).success().json();
    assert_eq!((a["trusted"].as_bool(), a["approvers"].as_u64()), (Some(true), Some(1)), "{a:#}");

    // Eve's key is nobody the store trusts: valid, but it does not count.
    let e = t.repro(&["model", "approve", "pricing@1", "--stage", "prod", "--key", &eve_key, "--json"]).success();
    assert!(e.stderr().contains("not in [trust] approvers"), "{}", e.stderr());
    assert_eq!((e.json()["trusted"].as_bool(), e.json()["approvers"].as_u64()), (Some(false), Some(1)));

    // Bob approves through the server with a token bound to him and his key; his second
    // token, bound to his laptop's key, is the same person: counted once.
    let token = |key: &str| {
        let v = t
            .repro(&[
                "token",
                "create",
                "--role",
                "write",
                "--name",
                "Bob",
                "--email",
                "bob@corp.example",
                "--approver-key",
                key,
                "--json",
            ])
            .success()
            .json();
        v["token"].as_str().expect("token").to_string()
    };
    let (bob_token, bob2_token) = (token(&bob_pub), token(&bob2_pub));
    let admin = t.repro(&["token", "create", "--role", "admin", "--name", "release", "--json"]).success().json()
        ["token"]
        .as_str()
        .expect("token")
        .to_string();
    let server = Server::start(&t);
    let uri = server.uri.as_str();
    let remote = |token: &str, key: &str| {
        t.repro(&[
            "--server",
            uri,
            "--token",
            token,
            "model",
            "approve",
            "pricing@1",
            "--stage",
            "prod",
            "--key",
            key,
            "--json",
        ])
    };
    // The server believes the token, not the body: a name in the request is refused.
    let (code, _, answer) = http(
        uri,
        "POST",
        "/api/v1/models/pricing@1/approve",
        &[("Authorization", &format!("Bearer {bob_token}")), ("Content-Type", "application/json")],
        br#"{"stage": "prod", "as": "approver-2 <a2@corp.example>"}"#,
    );
    assert_eq!(code, 400, "{answer}");
    assert!(answer.contains("`as` is not accepted"), "{answer}");
    // A statement signed by another key than the token's is refused.
    let r = remote(&bob_token, &eve_key).expect_code(2);
    assert!(r.error_line().contains("not signed by key"), "{}", r.stderr());
    let b = remote(&bob_token, &bob_key).success().json();
    assert_eq!((b["trusted"].as_bool(), b["approvers"].as_u64()), (Some(true), Some(2)), "{b:#}");
    assert!(b["by"].as_str().expect("by").starts_with("Bob <bob@corp.example> (token "), "{b:#}");
    let b2 = remote(&bob2_token, &bob2_key).success().json();
    assert_eq!(b2["approvers"].as_u64(), Some(2), "one person with two tokens and two keys counts once: {b2:#}");
    let b3 = remote(&bob_token, &bob_key).success().json();
    assert_eq!((b3["repeated"].as_bool(), b3["approvers"].as_u64()), (Some(true), Some(2)), "one key twice: {b3:#}");

    // A write token cannot release; the admin's can, and prod is reached.
    let r = t.repro(&["--server", uri, "--token", &bob_token, "model", "promote", "pricing@1", "--to", "prod"]);
    assert!(r.expect_code(2).error_line().contains("admin"), "a write token promoted");
    let p = t.repro(&["--server", uri, "--token", &admin, "model", "promote", "pricing@1", "--to", "prod", "--json"]);
    let p = p.success().json();
    assert_eq!(p["outcome"], "promoted", "{p:#}");
    let payload: Value = serde_json::from_str(
        t.sql("SELECT payload FROM registry_events WHERE kind = 'promote' ORDER BY seq DESC LIMIT 1").trim(),
    )
    .expect("payload");
    assert_eq!(payload["approvers"], json!(["Ada Lovelace <ada@corp.example>", "Bob <bob@corp.example>"]));
    drop(server);

    // The auditor: a bundle, a fresh store elsewhere, and both signatures checked there.
    let bundle = t.path("pricing.tar");
    let out = bundle.to_str().expect("utf-8");
    t.repro(&["bundle", "export", "pricing@prod", "-o", out, "--include-data", "--key", &release_key]).success();
    let auditor = TestContext::new();
    auditor.repro(&["init"]).success();
    let imported = auditor.repro(&["bundle", "import", bundle.to_str().expect("utf-8"), "--json"]).success().json();
    assert_eq!(imported["approvals_verified"].as_array().map(Vec::len), Some(5), "{imported:#}");
    let v = auditor.repro(&["model", "verify", "pricing@1", "--json"]).success().json();
    let approvals =
        v["checks"].as_array().expect("checks").iter().find(|c| c["name"] == "approvals").expect("approvals");
    assert_eq!(approvals["ok"], true, "{v:#}");
    let detail = approvals["detail"].as_str().expect("detail");
    assert!(detail.contains("valid signature by untrusted key"), "the auditor's store trusts nobody yet: {detail}");
    // Trusting Ada and Bob there: their approvals count, Eve's stays a valid but untrusted one.
    auditor
        .repro(&[
            "key",
            "add",
            t.path(&ada_pub).to_str().expect("utf-8"),
            "--approver",
            "--name",
            "Ada <ada@corp.example>",
        ])
        .success();
    auditor
        .repro(&[
            "key",
            "add",
            t.path(&bob_pub).to_str().expect("utf-8"),
            "--approver",
            "--name",
            "Bob <bob@corp.example>",
        ])
        .success();
    let v = auditor.repro(&["model", "verify", "pricing@1", "--json"]).success().json();
    let detail = v["checks"].as_array().expect("checks").iter().find(|c| c["name"] == "approvals").expect("approvals")
        ["detail"]
        .to_string();
    assert!(
        detail.contains("Ada <ada@corp.example> for prod") && detail.contains("Bob <bob@corp.example> for prod"),
        "{detail}"
    );
    // A flipped byte in an approval's envelope fails verify there.
    let envelope = auditor.repro(&["model", "show", "pricing@1", "--json"]).success().json()["approvals"][0]
        ["signature"]["envelope"]
        .as_str()
        .expect("envelope")
        .to_string();
    let mut bytes = auditor.read_object(&envelope);
    let at = bytes.len() / 2;
    bytes[at] ^= 1;
    auditor.write_object(&envelope, &bytes);
    auditor.repro(&["model", "verify", "pricing@1"]).expect_code(1);
}
