//! The tracking server, driven by the real MLflow client (mlflow-skinny, pinned in
//! fixtures/mlflow-client.txt): a notebook-style flow against `repro serve`, and an
//! MLflow-instrumented training script captured by `repro run` with no change to it.

mod common;

use std::path::PathBuf;
use std::process::Command;

use common::{id_of, item, status, Server, TestContext};
use serde_json::Value;

/// The MLflow client the project pins (3.x) and scikit-learn, in a venv of their own.
fn mlflow_python() -> PathBuf {
    client_venv("target/test-venv-mlflow", "mlflow-client.txt")
}

/// The newest MLflow 2.x client: teams on MLflow 2 are the ones migrating, so the client
/// flows run with it too.
fn mlflow2_python() -> PathBuf {
    client_venv("target/test-venv-mlflow2", "mlflow2-client.txt")
}

fn client_venv(dir: &str, requirements: &str) -> PathBuf {
    let ws = common::workspace();
    common::cached_venv(&ws.join(dir), &ws.join("crates/repro-cli/tests/fixtures").join(requirements))
        .join("bin/python")
}

fn python_json(py: &PathBuf, script: &str, uri: &str, dir: &std::path::Path) -> Value {
    let out = Command::new(py)
        .arg(common::workspace().join("crates/repro-cli/tests/fixtures").join(script))
        .current_dir(dir)
        .env("MLFLOW_TRACKING_URI", uri)
        .env("MLFLOW_DISABLE_TELEMETRY", "true")
        .env("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
        .output()
        .expect("python");
    assert!(
        out.status.success(),
        "{script} failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    // MLflow prints "View run at …" lines of its own; the JSON is the last line.
    let text = String::from_utf8_lossy(&out.stdout);
    let last = text.lines().rev().find(|l| l.trim_start().starts_with('{')).unwrap_or("");
    serde_json::from_str(last).unwrap_or_else(|e| panic!("no JSON from {script} ({e}):\n{text}"))
}

#[test]
fn the_mlflow_client_logs_searches_and_reads_back_through_repro_serve() {
    client_flow(mlflow_python(), 3);
}

#[test]
fn the_mlflow_2_client_logs_searches_and_reads_back_through_repro_serve() {
    client_flow(mlflow2_python(), 2);
}

fn client_flow(py: PathBuf, _major: u8) {
    let t = TestContext::new();
    t.repro(&["init"]).success();
    let server = Server::start(&t);
    let out = python_json(&py, "mlflow_client_flow.py", &server.uri, &t.dir);

    assert_eq!(out["experiment_id"], "1");
    assert_eq!(out["by_name"], "1");
    assert_eq!(out["missing_experiment_is_none"], true);
    assert_eq!(out["duplicate_experiment"], "RESOURCE_ALREADY_EXISTS");
    assert_eq!(out["default_experiment"], "Default");
    assert_eq!(out["experiment_search"], serde_json::json!(["pricing"]));
    assert_eq!(out["param_overwrite"], "INVALID_PARAMETER_VALUE");
    assert_eq!(out["same_param_again"], Value::Null);

    let run = &out["run"];
    assert_eq!(run["status"], "FINISHED");
    assert_eq!(run["name"], "baseline");
    assert_eq!(run["experiment_id"], "1");
    assert_eq!(run["has_end_time"], true);
    let run_id = out["run_id"].as_str().expect("run id");
    assert_eq!(run["artifact_uri"], format!("mlflow-artifacts:/1/{run_id}/artifacts").as_str());
    assert_eq!(run["params"], serde_json::json!({"lr": "0.01", "depth": "6", "n_estimators": "50"}));
    assert_eq!(run["metrics"]["loss"], 0.5, "the latest step wins: {run:#}");
    assert_eq!(run["metrics"]["acc"], 0.8);
    assert_eq!(run["metrics"]["odd"], Value::Null, "NaN travels and comes back");
    assert!((run["metrics"]["curve"].as_f64().expect("curve") - 2.9).abs() < 1e-9);
    assert_eq!(run["tags"]["team"], "forecasting");
    assert_eq!(run["inputs"], serde_json::json!([{"name": "train", "digest": "abc123", "context": "training"}]));
    assert_eq!(
        out["artifacts"],
        serde_json::json!([["model", true, null], ["notes.txt", false, 21]]),
        "log_artifact(s) went through the proxy: {out:#}"
    );
    assert_eq!(out["model_artifacts"], serde_json::json!([["model/sub", true], ["model/weights.bin", false]]));
    assert_eq!(out["weights_ok"], true);
    assert_eq!(out["mlmodel"], "flavors: {}\n");
    let history = out["history"].as_array().expect("history");
    assert_eq!(history.len(), 30);
    assert_eq!(history[29], serde_json::json!([29, 2.9]));

    assert_eq!(out["search"], serde_json::json!([["0.01", 0.9], ["0.01", 0.8]]), "filtered, best acc first");
    assert_eq!(out["paging"], serde_json::json!([2, true, 1, null]));
    assert_eq!(out["like"], 1);
    assert_eq!(out["ilike"], 1);
    assert_eq!(out["by_status"], 3);
    assert_eq!(out["by_run_name"], serde_json::json!(["baseline"]));
    assert_eq!(out["run_id_in"], 1);
    assert_eq!(out["param_is_null"], 2, "only the baseline logged depth");
    assert_eq!(out["dataset_context"], 1);
    assert_eq!(out["nan_not_equal"], 1, "a NaN latest value passes !=");
    assert_eq!(out["by_param_desc"], serde_json::json!(["0.1", "0.01", "0.01"]));
    assert_eq!(out["nan_then_absent"], "baseline", "NaN sorts before absent");
    assert_eq!(out["injection"], 0);
    assert_eq!(out["filtered_paging"], serde_json::json!([1, true, 1, null, true]));
    assert_eq!(out["bad_filter"], "INVALID_PARAMETER_VALUE");
    assert_eq!(out["unknown_run"], "RESOURCE_DOES_NOT_EXIST");
    assert_eq!(out["unknown_experiment"], "RESOURCE_DOES_NOT_EXIST");
    assert_eq!(out["after_delete"], 2);
    assert_eq!(out["deleted_visible"], 3);
    assert_eq!(out["after_restore"], 3);

    // The same runs, through repro's own door.
    drop(server);
    let shown = t.repro(&["show", run_id, "--json"]).success().json();
    assert_eq!(shown["status"], "finished");
    assert_eq!(shown["params"]["logged"]["lr"], "0.01");
    assert_eq!(shown["metric_count"], 34, "every point logged: {shown:#}");
    assert!(shown["lineage"].is_string(), "a finished tracking run gets its lineage digest");
    let (audit, code) = t.audit(run_id);
    assert_eq!(code, 1);
    assert_eq!(status(&audit, "git_commit"), "missing");
    assert!(item(&audit, "git_commit")["detail"].as_str().expect("detail").contains("MLflow tracking API"));
    assert_eq!(t.runs().len(), 3);
    t.repro(&["fsck"]).success();
}

#[test]
fn hostile_requests_get_mlflow_errors_never_a_500() {
    let t = TestContext::new();
    t.repro(&["init"]).success();
    let server = Server::start(&t);
    let py = mlflow_python();
    // Raw HTTP through Python's standard library: the client would refuse to send these.
    let script = r#"
import json, sys, urllib.request
base = sys.argv[1]
def call(method, path, body=None, raw=None):
    data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
    req = urllib.request.Request(base + path, data=data, method=method, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req) as r:
            text = r.read()
            try:
                return [r.status, json.loads(text or b"{}")]
            except ValueError:
                return [r.status, text.decode(errors="replace")]
    except urllib.error.HTTPError as e:
        text = e.read()
        try:
            return [e.code, json.loads(text)]
        except ValueError:
            return [e.code, text.decode(errors="replace")]
out = {
  "malformed": call("POST", "/api/2.0/mlflow/experiments/create", raw=b"{not json"),
  "not_object": call("POST", "/api/2.0/mlflow/experiments/create", raw=b"[1,2]"),
  "missing_name": call("POST", "/api/2.0/mlflow/experiments/create", {}),
  "wrong_type": call("POST", "/api/2.0/mlflow/experiments/create", {"name": {"x": 1}}),
  "unknown_route": call("GET", "/api/2.0/mlflow/nothing/here"),
  "unknown_run": call("GET", "/api/2.0/mlflow/runs/get?run_id=abc"),
  "bad_value": call("POST", "/api/2.0/mlflow/runs/log-metric", {"run_id": "x", "key": "k", "value": "many", "timestamp": 1}),
  "huge_batch": call("POST", "/api/2.0/mlflow/runs/log-batch", {"run_id": "x", "metrics": [{"key": "k", "value": 1, "timestamp": 1}] * 1001}),
  "bad_token": call("POST", "/api/2.0/mlflow/runs/search", {"experiment_ids": ["0"], "page_token": "%%%"}),
  "too_many": call("POST", "/api/2.0/mlflow/runs/search", {"experiment_ids": ["0"], "max_results": 50001}),
  "artifact_traversal": call("PUT", "/api/2.0/mlflow-artifacts/artifacts/1/r/artifacts/..%2F..%2F..%2Fescaped", raw=b"x"),
  "artifact_missing": call("GET", "/api/2.0/mlflow-artifacts/artifacts/1/r/artifacts/nothing"),
  "artifact_roundtrip": [call("PUT", "/api/2.0/mlflow-artifacts/artifacts/7/r/artifacts/a%20b.txt", raw=b"hello"), call("GET", "/api/2.0/mlflow-artifacts/artifacts?path=7/r/artifacts")],
  "traversal_key": call("POST", "/api/2.0/mlflow/runs/log-parameter", {"run_id": "x", "key": "../etc", "value": "1"}),
  "oversized": call("POST", "/api/2.0/mlflow/experiments/create", raw=b"{\"name\": \"" + b"a" * (40 << 20) + b"\"}"),
  "health": call("GET", "/health"),
  "version_no_source": call("POST", "/api/2.0/mlflow/model-versions/create", {"name": "m"}),
  "version_name_type": call("POST", "/api/2.0/mlflow/model-versions/create", {"name": ["a", "b"], "source": "runs:/x/m"}),
  "version_control_source": call("POST", "/api/2.0/mlflow/model-versions/create", {"name": "m", "source": "s3://b/a\nb"}),
  "version_traversal": call("POST", "/api/2.0/mlflow/model-versions/create", {"name": "m", "source": "mlflow-artifacts:/../../etc", "run_id": "x"}),
  "version_not_number": call("GET", "/api/2.0/mlflow/model-versions/get?name=m&version=abc"),
  "model_bad_name": call("POST", "/api/2.0/mlflow/registered-models/create", {"name": "../x"}),
  "alias_no_body": call("DELETE", "/api/2.0/mlflow/registered-models/alias"),
  "alias_unknown_model": call("POST", "/api/2.0/mlflow/registered-models/alias", {"name": "nope", "alias": "a", "version": "1"}),
  "alias_reserved": call("POST", "/api/2.0/mlflow/registered-models/alias", {"name": "nope", "alias": "v12", "version": "1"}),
  "registry_search_bad": call("GET", "/api/2.0/mlflow/registered-models/search?filter=name%20%3D%3D%3D%20x"),
  "logged_unknown": call("GET", "/api/2.0/mlflow/logged-models/m-0000"),
  "logged_bad_status": call("PATCH", "/api/2.0/mlflow/logged-models/m-0000", {"status": "DONE"}),
  "logged_no_experiment": call("POST", "/api/2.0/mlflow/logged-models", {"experiment_id": "99"}),
  "registry_file_missing": call("GET", "/api/2.0/mlflow-artifacts/artifacts/registry/nope/1/MLmodel"),
  "registry_file_write": call("PUT", "/api/2.0/mlflow-artifacts/artifacts/registry/nope/1/MLmodel", raw=b"x"),
}
json.dump(out, sys.stdout)
"#;
    let out = Command::new(&py).arg("-c").arg(script).arg(&server.uri).output().expect("python");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v: Value = serde_json::from_slice(&out.stdout).expect("json");
    let expect = |name: &str, http: u64, code: &str| {
        let r = &v[name];
        assert_eq!(r[0], http, "{name}: {r}");
        assert_eq!(r[1]["error_code"], code, "{name}: {r}");
        assert!(r[1]["message"].as_str().is_some_and(|m| !m.is_empty() && !m.contains('\n')), "{name}: {r}");
    };
    expect("malformed", 400, "INVALID_PARAMETER_VALUE");
    expect("not_object", 400, "INVALID_PARAMETER_VALUE");
    expect("missing_name", 400, "INVALID_PARAMETER_VALUE");
    expect("wrong_type", 400, "INVALID_PARAMETER_VALUE");
    expect("unknown_route", 404, "ENDPOINT_NOT_FOUND");
    expect("unknown_run", 404, "RESOURCE_DOES_NOT_EXIST");
    expect("bad_value", 400, "INVALID_PARAMETER_VALUE");
    expect("huge_batch", 400, "INVALID_PARAMETER_VALUE");
    expect("bad_token", 400, "INVALID_PARAMETER_VALUE");
    expect("too_many", 400, "INVALID_PARAMETER_VALUE");
    expect("traversal_key", 400, "INVALID_PARAMETER_VALUE");
    expect("artifact_traversal", 400, "INVALID_PARAMETER_VALUE");
    expect("artifact_missing", 404, "RESOURCE_DOES_NOT_EXIST");
    assert_eq!(v["artifact_roundtrip"][0][0], 200);
    assert_eq!(v["artifact_roundtrip"][1][1]["files"][0]["path"], "a b.txt", "{}", v["artifact_roundtrip"]);
    expect("oversized", 400, "INVALID_PARAMETER_VALUE");
    assert_eq!(v["health"][0], 200);
    expect("version_no_source", 400, "INVALID_PARAMETER_VALUE");
    expect("version_name_type", 400, "INVALID_PARAMETER_VALUE");
    expect("version_control_source", 400, "INVALID_PARAMETER_VALUE");
    expect("version_traversal", 400, "INVALID_PARAMETER_VALUE");
    expect("version_not_number", 400, "INVALID_PARAMETER_VALUE");
    expect("model_bad_name", 400, "INVALID_PARAMETER_VALUE");
    expect("alias_no_body", 400, "INVALID_PARAMETER_VALUE");
    expect("alias_unknown_model", 404, "RESOURCE_DOES_NOT_EXIST");
    expect("alias_reserved", 400, "INVALID_PARAMETER_VALUE");
    expect("registry_search_bad", 400, "INVALID_PARAMETER_VALUE");
    expect("logged_unknown", 404, "RESOURCE_DOES_NOT_EXIST");
    expect("logged_bad_status", 400, "INVALID_PARAMETER_VALUE");
    expect("logged_no_experiment", 404, "RESOURCE_DOES_NOT_EXIST");
    expect("registry_file_missing", 404, "RESOURCE_DOES_NOT_EXIST");
    expect("registry_file_write", 400, "INVALID_PARAMETER_VALUE");
    // A damaged object is never served: the download re-hashes it before streaming.
    t.write_object(&format!("blake3:{}", blake3::hash(b"hello").to_hex()), b"jello");
    let fetch = "import sys, urllib.request\ntry:\n    urllib.request.urlopen(sys.argv[1] + '/api/2.0/mlflow-artifacts/artifacts/7/r/artifacts/a%20b.txt').read()\n    print('served')\nexcept urllib.error.HTTPError as e:\n    print(e.code, e.read().decode())";
    let got = Command::new(&py).arg("-c").arg(fetch).arg(&server.uri).output().expect("python");
    let got = String::from_utf8_lossy(&got.stdout);
    assert!(got.contains("corrupt") && !got.contains("served") && !got.contains("jello"), "{got}");
    drop(server);
    // Nothing half-written: no experiment beyond Default, no run, no registry event; the
    // traversal wrote nothing.
    assert_eq!(t.repro(&["model", "ls", "--json"]).success().json(), serde_json::json!([]));
    assert_eq!(t.runs().len(), 0);
    assert!(!t.tmp.path().join("escaped").exists() && !t.path("escaped").exists());
    // The one damage is the object corrupted on purpose above, and fsck names it.
    let fsck = t.repro(&["fsck"]).expect_code(1);
    assert!(fsck.stdout().contains("artifact 7/r/artifacts/a b.txt refers to corrupt object"), "{}", fsck.stdout());
}

#[test]
fn an_mlflow_instrumented_script_is_captured_by_repro_run_unchanged() {
    instrumented_script(mlflow_python(), 3);
}

#[test]
fn an_mlflow_2_instrumented_script_is_captured_by_repro_run_unchanged() {
    instrumented_script(mlflow2_python(), 2);
}

/// `major`: the MLflow client's major version, where MLflow 2 and 3 log differently.
fn instrumented_script(py: PathBuf, major: u8) {
    let t = TestContext::sklearn_project();
    std::fs::copy(
        common::workspace().join("crates/repro-cli/tests/fixtures/mlflow_train.py"),
        t.path("mlflow_train.py"),
    )
    .expect("copy script");
    t.commit_all("mlflow script");
    let py = py.to_str().expect("utf-8");
    let r = t
        .cmd()
        .args([
            "run",
            "--json",
            "--seed",
            "42",
            "--data",
            "data/train.csv",
            "--param",
            "split=0.8",
            "--output",
            "model.pkl",
        ])
        .arg("--")
        .args([py, "mlflow_train.py"])
        .env("MLFLOW_DISABLE_TELEMETRY", "true")
        .env("MLFLOW_EXPERIMENT_NAME", "pricing")
        .output()
        .expect("repro run");
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
    let id = id_of(&common::Run { args: vec![], out: r });
    let shown = t.repro(&["show", &id, "--json"]).success().json();
    assert_eq!(shown["status"], "finished");
    assert_eq!(shown["params"]["logged"]["n_estimators"], "20", "{shown:#}");
    assert_eq!(shown["params"]["logged"]["max_depth"], "5");
    let keys: Vec<&str> =
        shown["metrics"].as_array().expect("metrics").iter().map(|m| m["key"].as_str().expect("key")).collect();
    // 3 rmse steps and final_rmse; MLflow 3's log_model then logs the run's latest metrics
    // again, linked to the logged model, so those two keys have a second point each.
    assert_eq!(shown["metric_count"], if major >= 3 { 6 } else { 4 }, "{keys:?}");
    assert!(keys.contains(&"final_rmse") && keys.contains(&"rmse"), "{keys:?}");
    assert!(!t.path("mlruns").exists(), "nothing was logged to a local ./mlruns");
    // The script's `mlflow.set_tag("stage", "experiment")` is shown with the run: the
    // person's tag in the text, MLflow's own (`mlflow.*`) only in the JSON.
    assert_eq!(shown["tags"]["stage"], "experiment", "{shown:#}");
    let text = t.repro(&["show", &id]).success().stdout();
    let tag_lines: Vec<&str> = text.lines().filter(|l| l.starts_with("tags ")).collect();
    assert_eq!(tag_lines.len(), 1, "{text}");
    assert!(tag_lines[0].contains("stage=experiment") && !tag_lines[0].contains("mlflow."), "{text}");
    // The captured run has everything an auditor asks for, MLflow's part included.
    let (audit, _) = t.audit(&id);
    for name in ["git_commit", "dataset_snapshot", "hyperparameters", "random_seed", "training_script"] {
        assert_eq!(status(&audit, name), "ok", "{name}: {audit:#}");
    }
    // And it is in the "pricing" experiment for MLflow clients.
    let server = Server::start(&t);
    let script = format!(
        "import json, mlflow; c = mlflow.MlflowClient(); r = c.get_run('{id}'); e = c.get_experiment_by_name('pricing'); \
         print(json.dumps([r.info.experiment_id == e.experiment_id, r.data.params, r.data.tags.get('stage'), r.info.status]))"
    );
    let out = Command::new(py).arg("-c").arg(&script).env("MLFLOW_TRACKING_URI", &server.uri).output().expect("python");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v: Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(v[0], true, "{v}");
    assert_eq!(v[1]["n_estimators"], "20");
    assert_eq!(v[1]["split"], "0.8", "what repro captured is an MLflow param too: {v}");
    assert_eq!(v[2], "experiment");
    assert_eq!(v[3], "FINISHED");

    // The script registered its model through MLflow while repro ran it: the version pins
    // the files and, since the run finished, the lineage repro recorded.
    let version = t.repro(&["model", "show", "forest@1", "--json"]).success().json();
    assert_eq!(version["run"], id.as_str());
    assert_eq!(version["lineage"], shown["lineage"], "pinned when the run finished: {version:#}");
    let files: Vec<&str> = version["artifact"]["files"]
        .as_array()
        .expect("files")
        .iter()
        .map(|f| f["path"].as_str().expect("path").rsplit('/').next().unwrap_or_default())
        .collect();
    assert!(files.contains(&"MLmodel") && files.contains(&"model.pkl"), "{files:?}");
    let kinds: Vec<&str> =
        version["history"].as_array().expect("history").iter().map(|h| h["kind"].as_str().expect("kind")).collect();
    assert_eq!(kinds, ["register", "pin"]);
    // MLflow's stage transitions go through repro's policies: a seeded, pinned, snapshotted
    // run from a clean tree may enter Staging; Production wants replay, signature, approvals.
    let script = "import json, mlflow\nfrom mlflow.exceptions import MlflowException\nc = mlflow.MlflowClient()\n\
        out = [c.transition_model_version_stage('forest', '1', 'Staging').current_stage]\n\
        try:\n    c.transition_model_version_stage('forest', '1', 'Production')\nexcept MlflowException as e:\n    out += [e.error_code, str(e)]\n\
        print(json.dumps(out))";
    let out = Command::new(py)
        .arg("-c")
        .arg(script)
        .env("MLFLOW_TRACKING_URI", &server.uri)
        .env("MLFLOW_DISABLE_TELEMETRY", "true")
        .env("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
        .output()
        .expect("python");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8_lossy(&out.stdout);
    let v: Value = serde_json::from_str(text.lines().last().unwrap_or_default()).expect("json");
    assert_eq!(v[0], "Staging", "{v}");
    assert_eq!(v[1], "INVALID_STATE", "{v}");
    for needed in ["replay_verified", "signed", "approvals"] {
        assert!(v[2].as_str().expect("message").contains(needed), "{needed}: {v}");
    }
    let version = t.repro(&["model", "show", "forest@staging", "--json"]).success().json();
    assert_eq!(version["version"], 1);
}

#[test]
fn a_replay_answers_the_scripts_registry_calls_and_writes_none() {
    let t = TestContext::sklearn_project();
    std::fs::copy(
        common::workspace().join("crates/repro-cli/tests/fixtures/mlflow_train.py"),
        t.path("mlflow_train.py"),
    )
    .expect("copy script");
    // The training script, then what a release step does with the version it registered.
    t.write(
        "release.py",
        "import json, runpy\nimport mlflow\nrunpy.run_path('mlflow_train.py', run_name='__main__')\n\
         c = mlflow.MlflowClient()\n\
         v = str(max(int(m.version) for m in c.search_model_versions(\"name='forest'\")))\n\
         c.set_registered_model_alias('forest', 'champion', v)\n\
         c.set_model_version_tag('forest', v, 'validated', 'yes')\n\
         try:\n    stage = c.transition_model_version_stage('forest', v, 'Staging').current_stage\n\
         except Exception as e:\n    stage = type(e).__name__\n\
         seen = c.get_model_version_by_alias('forest', 'champion')\n\
         print('release:', json.dumps({'version': v, 'alias': seen.version, 'tag': seen.tags.get('validated'), 'stage': stage}))\n\
         import os, urllib.request, urllib.error\n\
         req = urllib.request.Request(os.environ['MLFLOW_TRACKING_URI'] + '/api/v1/models/forest@1/approve', \
         data=b'{\"stage\": \"prod\", \"as\": \"CI <ci@example.com>\"}', method='POST', \
         headers={'Authorization': 'Bearer ' + os.environ.get('MLFLOW_TRACKING_TOKEN', ''), 'Content-Type': 'application/json'})\n\
         try:\n    code = urllib.request.urlopen(req).status\n\
         except urllib.error.HTTPError as e:\n    code = e.code\n\
         print('approve:', code)\n",
    );
    t.commit_all("mlflow script");
    let py = mlflow_python();
    let r = t
        .cmd()
        .args(["run", "--json", "--seed", "42", "--data", "data/train.csv", "--output", "model.pkl", "--"])
        .args([py.to_str().expect("utf-8"), "release.py"])
        .env("MLFLOW_DISABLE_TELEMETRY", "true")
        .env("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
        .output()
        .expect("repro run");
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
    let said_at_run = format!("{}{}", String::from_utf8_lossy(&r.stdout), String::from_utf8_lossy(&r.stderr));
    let id = id_of(&common::Run { args: vec![], out: r });
    let before = t.repro(&["model", "show", "forest", "--json"]).success().json();
    assert_eq!(before["versions"].as_array().map(Vec::len), Some(1), "{before:#}");
    // A script is no person: its approval, a name in a request, is refused under `repro run` too.
    assert_eq!(before["versions"][0]["approvals"].as_array().map(Vec::len), Some(0), "{before:#}");
    assert!(said_at_run.contains("approve: 400"), "{said_at_run}");
    let events = t.sql("SELECT COUNT(*) FROM registry_events");

    // The replayed script registers, aliases, tags and stages again: each call is answered
    // as done (the script reads back what it set) and nothing is written. A registry named
    // by the caller's environment is not where the calls go either.
    let replay = t
        .cmd()
        .args(["replay", &id])
        .env("MLFLOW_DISABLE_TELEMETRY", "true")
        .env("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
        .env("MLFLOW_REGISTRY_URI", "http://127.0.0.1:9/never")
        .output()
        .expect("repro replay");
    let replay = common::Run { args: vec!["replay".into(), id.clone()], out: replay };
    let text = replay.stdout();
    assert_eq!(replay.code(), 0, "{text}\n{}", replay.stderr());
    assert!(text.contains("verdict   IDENTICAL"), "{text}");
    let said = replay.stderr();
    // Moving a stage needs an admin token on every door; the command's own token writes only.
    assert!(
        said.contains(r#"release: {"version": "2", "alias": "2", "tag": "yes", "stage": "RestException"}"#),
        "{said}"
    );
    // The native API's registry writes are refused outright.
    assert!(said.contains("approve: 403"), "{said}");
    assert!(text.contains("registry calls answered, not written"), "{text}");
    for line in [
        "model-versions/create  register forest@2",
        "registered-models/alias  point alias champion at forest@2",
        "model-versions/set-tag  tag forest@2: validated=yes",
    ] {
        assert!(text.contains(line), "{line}: {text}");
    }

    assert_eq!(t.sql("SELECT COUNT(*) FROM registry_events"), events, "the replay appended registry events");
    let after = t.repro(&["model", "show", "forest", "--json"]).success().json();
    assert_eq!(after, before, "the replay changed the registry");
    t.repro(&["fsck"]).success();

    // The stored report lists the calls; the replay run's own tracking data landed as usual.
    let rows = t.sql("SELECT replay_id, report FROM replays");
    let (replay_id, report) = rows.trim().split_once('|').expect("one replay row");
    let report: Value = serde_json::from_slice(&t.read_object(report)).expect("report JSON");
    let calls: Vec<(&str, &str, i64)> = report["registry_calls"]
        .as_array()
        .expect("registry_calls")
        .iter()
        .map(|c| {
            assert_eq!(c["model"], "forest", "{c}");
            (c["call"].as_str().expect("call"), c["kind"].as_str().expect("kind"), c["version"].as_i64().unwrap_or(0))
        })
        .collect();
    assert_eq!(
        calls,
        [
            ("model-versions/create", "register", 2),
            ("registered-models/alias", "alias", 2),
            ("model-versions/set-tag", "tag", 2),
        ],
        "{report:#}"
    );
    let shown = t.repro(&["show", replay_id, "--json"]).success().json();
    assert_eq!(shown["params"]["logged"]["n_estimators"], "20", "{shown:#}");
    assert_eq!(shown["metric_count"], 6, "{shown:#}");
}

#[test]
fn the_mlflow_registry_is_repros_registry() {
    registry_flow(mlflow_python(), 3);
}

#[test]
fn the_mlflow_2_registry_is_repros_registry() {
    registry_flow(mlflow2_python(), 2);
}

/// `major`: the MLflow client's major version, where MLflow 2 and 3 log differently.
fn registry_flow(py: PathBuf, major: u8) {
    let t = TestContext::new();
    t.repro(&["init"]).success();
    let server = Server::start(&t);
    let out = python_json(&py, "mlflow_registry_flow.py", &server.uri, &t.dir);
    let run_id = out["run_id"].as_str().expect("run id");
    // MLflow 3 logs a model as a logged model; MLflow 2 as a folder of the run's artifacts.
    let model_id = out["model_id"].as_str();
    assert!(model_id.is_none_or(|id| id.starts_with("m-")), "{out:#}");
    let source = match model_id {
        Some(id) => format!("models:/{id}"),
        None => format!("mlflow-artifacts:/1/{run_id}/artifacts/skmodel"),
    };

    assert_eq!(out["logged_version"], "1");
    assert_eq!(out["status_during_run"], "READY");
    assert_eq!(out["second_version"], "2");
    assert_eq!(out["second_source"], source.as_str());
    assert_eq!(out["plain_source"], true, "{out:#}");
    assert_eq!(out["plain_run"], true);
    assert_eq!(
        out["with_tags"],
        serde_json::json!({"version": "2", "tags": {"origin": "api"}, "description": "again"}),
        "a version, its tags and its description are written together"
    );
    assert_eq!(out["duplicate_model"], "RESOURCE_ALREADY_EXISTS");
    assert_eq!(out["unknown_model"], "RESOURCE_DOES_NOT_EXIST");
    assert_eq!(out["bad_name"], "INVALID_PARAMETER_VALUE");
    assert_eq!(
        out["rename"],
        serde_json::json!({"name": "other", "kept": ["nothing yet", {"team": "risk"}], "old_gone": "RESOURCE_DOES_NOT_EXIST",
            "taken": "RESOURCE_ALREADY_EXISTS", "bad": "INVALID_PARAMETER_VALUE", "back": "empty"}),
        "{out:#}"
    );
    assert_eq!(out["alias_version"], "1");
    assert_eq!(out["alias_status"], "READY");
    assert_eq!(out["alias_run"], true);
    assert_eq!(out["unknown_alias"], "INVALID_PARAMETER_VALUE", "MLflow answers an unknown alias with a 400");
    assert_eq!(out["stage_alias"], "INVALID_PARAMETER_VALUE", "an alias may not shadow a stage");
    assert_eq!(out["alias_to_missing_version"], "RESOURCE_DOES_NOT_EXIST");
    assert_eq!(
        out["model"],
        serde_json::json!({"description": "churn classifier", "tags": {"owner": "ada"},
            "aliases": {"champion": "1", "challenger": "2"}, "latest": ["2"]})
    );
    assert_eq!(
        out["version1"],
        serde_json::json!({"tags": {"validated": "yes"}, "description": "first fit", "aliases": ["champion"],
            "stage": "None", "source": source})
    );
    assert_eq!(out["same_predictions"], true, "models:/churn@champion loads the trained model");
    assert_eq!(out["download_uri"], "mlflow-artifacts:/registry/churn/1");
    // MLflow 3 saves scikit-learn models with skops, MLflow 2 with cloudpickle.
    let weights = if major >= 3 { "model.skops" } else { "model.pkl" };
    for f in ["MLmodel", weights, "requirements.txt"] {
        assert!(out["downloaded_files"].as_array().expect("files").iter().any(|x| x == f), "{f}: {out:#}");
    }
    assert_eq!(out["search_models"], serde_json::json!(["churn", "empty", "plain"]));
    assert_eq!(out["search_like"], serde_json::json!(["churn"]));
    assert_eq!(out["search_tag"], serde_json::json!(["empty"]));
    assert_eq!(out["search_versions"], serde_json::json!(["1", "2"]));
    assert_eq!(out["search_by_run"], serde_json::json!(["1", "2"]));
    assert_eq!(out["bad_filter"], "INVALID_PARAMETER_VALUE");
    assert_eq!(out["paging"], serde_json::json!([1, true]));
    assert_eq!(out["to_production"], "INVALID_STATE", "the prod policy refuses a tracking-only run");
    assert_eq!(out["to_none"], "INVALID_PARAMETER_VALUE");
    assert_eq!(
        out["foreign_source"],
        serde_json::json!({"source": "s3://bucket/model", "run_id": true, "version": "3"})
    );
    assert_eq!(out["foreign_to_staging"], "INVALID_STATE", "the staging policy refuses an external version");
    if model_id.is_some() {
        assert_eq!(out["logged_model"], serde_json::json!({"status": "READY", "name": "skmodel", "source_run": true}));
        assert_eq!(out["logged_search"], serde_json::json!([true]));
        assert_eq!(out["run_outputs"], serde_json::json!([true]));
    }
    assert_eq!(out["deleted_version"], "RESOURCE_DOES_NOT_EXIST");
    assert_eq!(out["challenger_gone"], "INVALID_PARAMETER_VALUE");
    assert_eq!(out["deleted_model"], "RESOURCE_DOES_NOT_EXIST");
    assert_eq!(out["after_deletes"], serde_json::json!(["churn", "plain"]));

    // One registry, two doors: what the MLflow client did is what `repro model` shows.
    drop(server);
    let shown = t.repro(&["show", run_id, "--json"]).success().json();
    let v = t.repro(&["model", "show", "churn@champion", "--json"]).success().json();
    assert_eq!(v["version"], 1);
    assert_eq!(v["model_id"].as_str(), model_id);
    assert_eq!(v["aliases"], serde_json::json!(["champion"]));
    assert_eq!(v["tags"]["validated"], "yes");
    assert_eq!(v["lineage"], shown["lineage"], "registered while the run ran, pinned when it finished: {v:#}");
    let deleted = t.repro(&["model", "show", "churn@2"]).expect_code(2);
    assert!(deleted.error_line().contains("churn@2 was deleted by"), "{}", deleted.stderr());
    let listed = t.repro(&["model", "ls", "--json"]).success().json();
    let names: Vec<&str> =
        listed.as_array().expect("models").iter().map(|m| m["name"].as_str().expect("name")).collect();
    assert!(names.contains(&"churn"), "{listed:#}");
    let external = t.repro(&["model", "show", "plain@3"]).success().stdout();
    assert!(external.contains("EXTERNAL  source s3://bucket/model") && external.contains("NOT HELD"), "{external}");
    // The registered files verify from the store (the version is unsigned, so verify says so).
    let verify = t.repro(&["model", "verify", "churn@1", "--json"]).expect_code(1).json();
    let checks = verify["checks"].as_array().expect("checks");
    let check = |name: &str| checks.iter().find(|c| c["name"] == name).map(|c| c["ok"].clone());
    assert_eq!(check("lineage"), Some(Value::Bool(true)), "{verify:#}");
    assert_eq!(check("artifact"), Some(Value::Bool(true)), "{verify:#}");
    assert_eq!(check("event_chain"), Some(Value::Bool(true)), "{verify:#}");
    t.repro(&["fsck"]).success();
}

#[test]
fn tokens_gate_the_server_and_repro_run_still_captures() {
    let t = TestContext::new();
    t.git(&["init", "-q", "-b", "main"]);
    t.write(
        "log.py",
        "import mlflow\nwith mlflow.start_run():\n    mlflow.log_param('a', '1')\n    mlflow.log_metric('m', 2.0)\n",
    );
    t.commit_all("script");
    t.repro(&["init"]).success();
    let token = |role: &str| -> String {
        let v = t.repro(&["token", "create", "--role", role, "--name", role, "--json"]).success().json();
        v["token"].as_str().expect("token").to_string()
    };
    let (read, write) = (token("read"), token("write"));
    // Only hashes are stored.
    let (db, wal) = match t.db_url() {
        Some(_) => (t.sql("SELECT * FROM tokens").into_bytes(), Vec::new()),
        None => (
            std::fs::read(t.path(".repro/repro.db")).expect("db"),
            std::fs::read(t.path(".repro/repro.db-wal")).unwrap_or_default(),
        ),
    };
    for secret in [&read, &write] {
        let needle = secret.as_bytes();
        assert!(!db.windows(needle.len()).any(|w| w == needle) && !wal.windows(needle.len()).any(|w| w == needle));
    }
    let ls = t.repro(&["token", "ls", "--json"]).success().json();
    assert_eq!(ls.as_array().map(Vec::len), Some(2));
    assert!(!ls.to_string().contains(&read));

    let server = Server::start(&t);
    let py = mlflow_python();
    let probe = r#"
import json, mlflow
from mlflow.exceptions import MlflowException
c = mlflow.MlflowClient()
def code(f):
    try:
        f()
        return "ok"
    except MlflowException as e:
        # A code none of the assertions expects comes with its message, so that a failure
        # says what happened (a server error, or a connection the client lost).
        expected = ("UNAUTHENTICATED", "PERMISSION_DENIED", "RESOURCE_DOES_NOT_EXIST")
        return e.error_code if e.error_code in expected else f"{e.error_code}: {str(e)[:400]}"
print(json.dumps([code(lambda: c.get_experiment("0")), code(lambda: c.search_runs(["0"])), code(lambda: c.create_experiment("x" + str(id(c)))),
    code(lambda: c.search_registered_models()), code(lambda: c.get_latest_versions("nope")), code(lambda: c.create_registered_model("m" + str(id(c))))]))
"#;
    let call = |token: Option<&str>| -> Value {
        let mut cmd = Command::new(&py);
        cmd.arg("-c").arg(probe).env("MLFLOW_TRACKING_URI", &server.uri).env("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0");
        cmd.env("MLFLOW_DISABLE_TELEMETRY", "true").env_remove("MLFLOW_TRACKING_TOKEN");
        if let Some(tok) = token {
            cmd.env("MLFLOW_TRACKING_TOKEN", tok);
        }
        let out = cmd.output().expect("python");
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let text = String::from_utf8_lossy(&out.stdout);
        serde_json::from_str(text.lines().last().unwrap_or("")).expect("json")
    };
    let denied = serde_json::json!(vec!["UNAUTHENTICATED"; 6]);
    assert_eq!(call(None), denied);
    assert_eq!(call(Some("repro_not_a_token")), denied);
    // A read token reads and searches (the registry's POSTed read included), and writes nothing.
    assert_eq!(
        call(Some(&read)),
        serde_json::json!(["ok", "ok", "PERMISSION_DENIED", "ok", "RESOURCE_DOES_NOT_EXIST", "PERMISSION_DENIED"])
    );
    assert_eq!(call(Some(&write)), serde_json::json!(["ok", "ok", "ok", "ok", "RESOURCE_DOES_NOT_EXIST", "ok"]));
    // What a token writes into the registry is by that token's name.
    let who = format!(
        "import json, sys, urllib.request\nreq = urllib.request.Request(sys.argv[1] + '/api/2.0/mlflow/registered-models/search', headers={{'Authorization': 'Bearer {write}'}})\n\
         print(json.dumps(sorted({{m['user_id'] for m in json.load(urllib.request.urlopen(req))['registered_models']}})))"
    );
    let out = Command::new(&py).arg("-c").arg(&who).arg(&server.uri).output().expect("python");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v: Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(v, serde_json::json!(["write (token, MLflow API)"]), "{v}");
    let id = ls[1]["id"].as_str().expect("id");
    t.repro(&["token", "revoke", id]).success();
    assert_eq!(call(Some(&write))[0], "UNAUTHENTICATED");
    drop(server);

    // `repro run` gives its command a token of its own: capture works on a gated store.
    let r = t
        .cmd()
        .args(["run", "--json", "--seed", "1", "--"])
        .arg(&py)
        .arg("log.py")
        .env("MLFLOW_DISABLE_TELEMETRY", "true")
        .env("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
        .output()
        .expect("repro run");
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
    let id = id_of(&common::Run { args: vec![], out: r });
    let shown = t.repro(&["show", &id, "--json"]).success().json();
    assert_eq!(shown["params"]["logged"]["a"], "1");
    assert_eq!(shown["metric_count"], 1);
}

// ---- the server's guard: roles by route, Host, Origin, CSRF, stalled connections ----------

fn make_token(t: &TestContext, role: &str) -> String {
    let v = t.repro(&["token", "create", "--role", role, "--name", role, "--json"]).success().json();
    v["token"].as_str().expect("token").to_string()
}

/// A request written by hand, Host header and all: (status, head, body).
fn raw_http(uri: &str, request: &str) -> (u16, String, String) {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(uri.trim_start_matches("http://")).expect("connect");
    s.write_all(request.as_bytes()).expect("send");
    let mut raw = Vec::new();
    let _ = s.read_to_end(&mut raw);
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((text.as_str(), ""));
    let status = head.split_whitespace().nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
    (status, head.to_string(), body.to_string())
}

fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

/// A seeded, captured run's output registered as tiny@1 (a version repro's policies can
/// promote), on a store with read, write and admin tokens.
fn registered_with_tokens() -> (TestContext, [String; 3]) {
    let (t, _) = TestContext::tiny_registered();
    let tokens = [make_token(&t, "read"), make_token(&t, "write"), make_token(&t, "admin")];
    (t, tokens)
}

#[test]
fn a_write_token_cannot_release_a_model_through_any_door() {
    let (t, [read, write, admin]) = registered_with_tokens();
    let server = Server::start(&t);
    let uri = server.uri.as_str();
    let call = |token: &str, method: &str, path: &str, body: &str| {
        let auth = bearer(token);
        let headers = [("Authorization", auth.as_str()), ("Content-Type", "application/json")];
        let (code, _, answer) = common::http(uri, method, path, &headers, body.as_bytes());
        (code, answer)
    };
    let transitions = ["Staging", "Production", "Archived", "None"];
    for token in [&write, &read] {
        for prefix in ["/api/2.0/mlflow", "/ajax-api/2.0/mlflow"] {
            for stage in transitions {
                let body = format!("{{\"name\": \"tiny\", \"version\": \"1\", \"stage\": \"{stage}\"}}");
                let (code, answer) = call(token, "POST", &format!("{prefix}/model-versions/transition-stage"), &body);
                assert_eq!(code, 403, "{prefix} {stage}: {answer}");
                assert!(answer.contains("PERMISSION_DENIED") && answer.contains("admin"), "{answer}");
            }
        }
        let (code, answer) = call(token, "POST", "/api/v1/models/tiny@1/promote", "{\"to\": \"dev\"}");
        assert_eq!(code, 403, "{answer}");
        let (code, answer) = call(token, "POST", "/api/v1/models/tiny@1/archive", "{\"reason\": \"x\"}");
        assert_eq!(code, 403, "{answer}");
    }
    // A write token approves only with a statement signed by its person's key, never as a
    // name in the body (tests/security.rs covers signed approvals through this door).
    let (code, answer) =
        call(&write, "POST", "/api/v1/models/tiny@1/approve", "{\"stage\": \"prod\", \"as\": \"Bo <bo@x.org>\"}");
    assert_eq!(code, 400, "{answer}");
    assert!(answer.contains("`as` is not accepted"), "{answer}");
    let (code, answer) = call(&write, "POST", "/api/v1/models/tiny@1/approve", "{\"stage\": \"prod\"}");
    assert_eq!(code, 400, "{answer}");
    assert!(answer.contains("approvals are signed"), "{answer}");
    let shown = t.repro(&["model", "show", "tiny@1", "--json"]).success().json();
    assert!(shown["stage"].is_null() && shown["archived"].is_null(), "nothing moved: {shown:#}");

    // An admin releases: through MLflow's door (the stage's policy decides) and repro's.
    let body = "{\"name\": \"tiny\", \"version\": \"1\", \"stage\": \"Staging\"}";
    let (code, answer) = call(&admin, "POST", "/ajax-api/2.0/mlflow/model-versions/transition-stage", body);
    assert!(code == 200 || answer.contains("INVALID_STATE"), "{code} {answer}");
    let (code, answer) = call(&admin, "POST", "/api/v1/models/tiny@1/promote", "{\"to\": \"dev\"}");
    assert_eq!(code, 200, "{answer}");
    let body = "{\"name\": \"tiny\", \"version\": \"1\", \"stage\": \"Archived\"}";
    let (code, answer) = call(&admin, "POST", "/api/2.0/mlflow/model-versions/transition-stage", body);
    assert_eq!(code, 200, "{answer}");
    assert!(answer.contains("\"current_stage\":\"Archived\""), "{answer}");
    drop(server);
    let shown = t.repro(&["model", "show", "tiny@1", "--json"]).success().json();
    assert!(shown["archived"].is_object(), "{shown:#}");
    t.repro(&["fsck"]).success();
}

#[test]
fn a_read_token_cannot_write_artifacts_by_naming_a_search() {
    let t = TestContext::new();
    t.repro(&["init"]).success();
    let [read, write] = [make_token(&t, "read"), make_token(&t, "write")];
    let server = Server::start(&t);
    let uri = server.uri.as_str();
    let base = "/api/2.0/mlflow-artifacts/artifacts/0/abc/artifacts";
    let send = |token: &str, method: &str, path: &str, body: &[u8]| {
        let auth = bearer(token);
        let headers = [("Authorization", auth.as_str()), ("Content-Type", "text/plain")];
        common::http(uri, method, path, &headers, body)
    };
    for suffix in ["runs/search", "experiments/search", "logged-models/search", "registered-models/get-latest-versions"]
    {
        let path = format!("{base}/x/{suffix}");
        let (code, _, answer) = send(&read, "PUT", &path, b"planted");
        assert_eq!(code, 403, "PUT {suffix}: {answer}");
        assert!(answer.contains("PERMISSION_DENIED"), "{answer}");
    }
    // What a write token stored, a read token cannot delete either.
    let kept = format!("{base}/y/runs/search");
    assert_eq!(send(&write, "PUT", &kept, b"kept").0, 200);
    let (code, _, answer) = send(&read, "DELETE", &kept, b"");
    assert_eq!(code, 403, "{answer}");
    let (code, _, listing) = send(&read, "GET", "/api/2.0/mlflow-artifacts/artifacts?path=0/abc/artifacts/x/runs", b"");
    assert_eq!(code, 200, "{listing}");
    assert!(!listing.contains("search"), "nothing was planted: {listing}");
    let (code, _, body) = send(&read, "GET", &kept, b"");
    assert_eq!((code, body.as_str()), (200, "kept"));
    // MLflow's web UI door only downloads.
    let (code, _, _) = send(&write, "PUT", "/ajax-api/2.0/mlflow-artifacts/artifacts/0/abc/artifacts/z", b"x");
    assert_eq!(code, 405);
}

/// Raises this process's open-file limit so a test can hold many connections; what it is
/// afterwards.
fn raise_open_files(want: u64) -> u64 {
    let mut lim = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit and setrlimit read and write the struct on this stack frame only.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) != 0 {
            return 1024;
        }
        if lim.rlim_cur < want {
            let raised = libc::rlimit { rlim_cur: want.min(lim.rlim_max), rlim_max: lim.rlim_max };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
                return raised.rlim_cur;
            }
        }
    }
    lim.rlim_cur
}

/// `/health` on a fresh connection, with how long it took.
fn timed_health(uri: &str) -> (u16, std::time::Duration) {
    let started = std::time::Instant::now();
    let addr = uri.trim_start_matches("http://");
    let request = format!("GET /health HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    let mut s = std::net::TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(std::time::Duration::from_secs(30))).expect("timeout");
    use std::io::{Read, Write};
    s.write_all(request.as_bytes()).expect("send");
    let mut text = String::new();
    let _ = s.read_to_string(&mut text);
    let status = text.split_whitespace().nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
    (status, started.elapsed())
}

/// 1,100 connections that never finish a request (half send nothing, half half a request
/// head) must not keep `/health` from answering within 5 seconds: with the server started
/// at the common soft limit of 1,024 open files (it raises its own), and with a cap below
/// their number (the idle ones make room).
#[test]
fn stalled_connections_do_not_silence_the_server() {
    use std::io::Write;
    let limit = raise_open_files(4096);
    // Where the hard limit is lower than the test needs, as many as fit.
    let crowd = 1100.min(limit.saturating_sub(150) as usize);
    let t = TestContext::new();
    t.repro(&["init"]).success();
    let bound = std::time::Duration::from_secs(5);
    for args in [&[][..], &["--max-connections", "100"][..]] {
        let server = Server::start_with_open_files(&t, args, 1024);
        let addr = server.uri.trim_start_matches("http://").to_string();
        let mut stalled = Vec::new();
        for i in 0..crowd {
            let mut s = std::net::TcpStream::connect(&addr).expect("connect");
            if i % 2 == 1 {
                let _ = s.write_all(format!("GET /api/v1/runs HTTP/1.1\r\nHost: {addr}\r\nX-Slow: ").as_bytes());
            }
            stalled.push(s);
        }
        let (status, took) = timed_health(&server.uri);
        assert_eq!(status, 200, "{args:?}");
        assert!(took < bound, "/health took {took:?} with {crowd} stalled connections ({args:?})");
        drop(stalled);
    }
}

#[test]
fn other_sites_and_other_host_names_are_refused() {
    let t = TestContext::new();
    t.repro(&["init"]).success();
    let server = Server::start_args(&t, &["--allowed-host", "repro.test"]);
    let uri = server.uri.as_str();
    let addr = uri.trim_start_matches("http://");
    let port = addr.rsplit(':').next().expect("port");
    let create = |headers: &[(&str, &str)], name: &str| {
        let body = format!("{{\"name\": \"{name}\"}}");
        common::http(uri, "POST", "/api/2.0/mlflow/experiments/create", headers, body.as_bytes())
    };
    // What any page can send without asking: a text/plain POST. Refused, nothing written.
    let (code, _, answer) = create(&[("Content-Type", "text/plain")], "plain");
    assert_eq!(code, 400, "{answer}");
    assert!(answer.contains("application/json"), "{answer}");
    let (code, _, answer) = create(&[("Content-Type", "application/x-www-form-urlencoded")], "form");
    assert_eq!(code, 400, "{answer}");
    let (code, _, answer) = create(&[], "none");
    assert_eq!(code, 400, "{answer}");
    // Another site's page, whatever it sends.
    for origin in
        ["http://evil.example", "null", "https://127.0.0.1:1", &format!("http://localhost:{port}.evil.example")]
    {
        let (code, _, answer) = create(&[("Content-Type", "application/json"), ("Origin", origin)], "evil");
        assert_eq!(code, 403, "{origin}: {answer}");
        assert!(answer.contains("PERMISSION_DENIED"), "{answer}");
    }
    let (code, _, answer) = common::http(uri, "GET", "/api/v1/runs", &[("Origin", "http://evil.example")], b"");
    assert_eq!(code, 403, "{answer}");
    // No preflight is ever granted.
    let (code, head, _) = common::http(
        uri,
        "OPTIONS",
        "/api/2.0/mlflow/experiments/create",
        &[("Origin", &format!("http://{addr}"))],
        b"",
    );
    assert_eq!(code, 405, "{head}");
    assert!(common::header(&head, "access-control-allow-origin").is_none(), "{head}");
    // Its own pages (the UI's forms) and programs (no Origin) are served.
    let own = format!("http://{addr}");
    let (code, _, answer) = create(&[("Content-Type", "application/json; charset=utf-8"), ("Origin", &own)], "own");
    assert_eq!(code, 200, "{answer}");

    // DNS rebinding: a name the server was not told about gets a 400, a page for the UI.
    let ask = |host: &str, path: &str| {
        raw_http(uri, &format!("GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"))
    };
    for host in ["evil.example", &format!("evil.example:{port}"), "127.0.0.1.evil.example", "localhost.evil"] {
        let (code, _, answer) = ask(host, "/api/2.0/mlflow/experiments/search");
        assert_eq!(code, 400, "{host}: {answer}");
        let v: Value = serde_json::from_str(&answer).unwrap_or_else(|e| panic!("{e}: {answer}"));
        assert_eq!(v["error_code"], "BAD_REQUEST", "{v}");
        let (code, head, page) = ask(host, "/ui");
        assert_eq!(code, 400);
        assert!(
            common::header(&head, "content-type").is_some_and(|c| c.starts_with("text/html"))
                && page.contains("allowed-host"),
            "{page}"
        );
        assert_eq!(ask(host, "/health").0, 400);
    }
    let (code, _, _) = raw_http(uri, "GET /health HTTP/1.1\r\nConnection: close\r\n\r\n");
    assert_eq!(code, 400, "no Host at all");
    for host in
        [format!("localhost:{port}"), format!("[::1]:{port}"), format!("Repro.Test:{port}"), "repro.test".into()]
    {
        let (code, _, answer) = ask(&host, "/api/2.0/mlflow/experiments/search");
        assert_eq!(code, 200, "{host}: {answer}");
    }
    // What was refused wrote nothing.
    let (_, _, listing) = common::http(uri, "GET", "/api/2.0/mlflow/experiments/search?max_results=100", &[], b"");
    let v: Value = serde_json::from_str(&listing).expect("json");
    let mut names: Vec<&str> =
        v["experiments"].as_array().expect("experiments").iter().filter_map(|e| e["name"].as_str()).collect();
    names.sort_unstable();
    assert_eq!(names, ["Default", "own"], "{listing}");
}

#[test]
fn the_sign_in_form_needs_its_own_page_and_cookies_follow_the_proxy() {
    let t = TestContext::new();
    t.repro(&["init"]).success();
    let read = make_token(&t, "read");
    let form_type = ("Content-Type", "application/x-www-form-urlencoded");
    for trusted in [false, true] {
        let args: &[&str] = if trusted { &["--trusted-proxy", "127.0.0.1"] } else { &[] };
        let server = Server::start_args(&t, args);
        let uri = server.uri.as_str();
        let addr = uri.trim_start_matches("http://");
        // Pages may not be framed, nor their types guessed.
        let (code, head, page) = common::http(uri, "GET", "/ui/login", &[], b"");
        assert_eq!(code, 200, "{page}");
        let csp = common::header(&head, "content-security-policy").unwrap_or_default();
        assert!(csp.contains("frame-ancestors 'none'"), "{head}");
        assert_eq!(common::header(&head, "x-frame-options"), Some("DENY"));
        assert_eq!(common::header(&head, "x-content-type-options"), Some("nosniff"));
        // Another site's form: no nonce cookie (SameSite=Strict), no token of ours.
        let forged = format!("token={read}&next=%2Fui");
        let (code, head, _) = common::http(uri, "POST", "/ui/login", &[form_type], forged.as_bytes());
        assert_eq!(code, 403, "{head}");
        assert!(!head.contains("repro_session="), "{head}");
        let (nonce, csrf) = common::sign_in_form(uri);
        let wrong = format!("token={read}&csrf={}", "0".repeat(64));
        let (code, _, _) = common::http(uri, "POST", "/ui/login", &[form_type, ("Cookie", &nonce)], wrong.as_bytes());
        assert_eq!(code, 403);
        // The form as its page made it, through a TLS proxy that says so.
        let body = format!("token={read}&csrf={csrf}");
        let https = [form_type, ("Cookie", nonce.as_str()), ("X-Forwarded-Proto", "https")];
        let origin = format!("{}://{addr}", if trusted { "https" } else { "http" });
        let with_origin = [https[0], https[1], https[2], ("Origin", origin.as_str())];
        let (code, head, page) = common::http(uri, "POST", "/ui/login", &with_origin, body.as_bytes());
        assert_eq!(code, 303, "{head}\n{page}");
        let cookie = head
            .lines()
            .find(|l| l.to_ascii_lowercase().starts_with("set-cookie: repro_session="))
            .unwrap_or_else(|| panic!("{head}"));
        assert!(cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"), "{cookie}");
        assert_eq!(cookie.contains("Secure"), trusted, "Secure only when a trusted proxy says HTTPS: {cookie}");
    }
}

#[test]
fn downloads_are_attachments_and_artifact_locations_stay_in_the_store() {
    let (t, [read, write, _]) = registered_with_tokens();
    let server = Server::start(&t);
    let uri = server.uri.as_str();
    let auth = |token: &str| bearer(token);
    let (w, r) = (auth(&write), auth(&read));
    let page = b"<html><script>alert(document.cookie)</script></html>";
    let path = "/api/2.0/mlflow-artifacts/artifacts/0/abc/artifacts/%22x%22%0A%C3%A9.html";
    let (code, _, answer) =
        common::http(uri, "PUT", path, &[("Authorization", &w), ("Content-Type", "text/html")], page);
    assert_eq!(code, 200, "{answer}");
    let (code, head, body) = common::http(uri, "GET", path, &[("Authorization", &r)], b"");
    assert_eq!(code, 200, "{head}");
    assert_eq!(body.as_bytes(), page);
    assert_eq!(common::header(&head, "x-content-type-options"), Some("nosniff"));
    // An uploaded HTML page comes back as text, as MLflow serves it: never text/html.
    assert_eq!(common::header(&head, "content-type"), Some("text/plain"));
    let disposition = common::header(&head, "content-disposition").unwrap_or_default();
    assert_eq!(disposition, "attachment; filename=\"_x___.html\"; filename*=UTF-8''%22x%22%0A%C3%A9.html", "{head}");
    // A registered version's pinned files, the same way.
    let (code, _, listing) = common::http(
        uri,
        "GET",
        "/api/2.0/mlflow-artifacts/artifacts?path=registry/tiny/1",
        &[("Authorization", &r)],
        b"",
    );
    assert_eq!(code, 200, "{listing}");
    let v: Value = serde_json::from_str(&listing).expect("json");
    let file = v["files"][0]["path"].as_str().expect("a file").to_string();
    let (code, head, body) = common::http(
        uri,
        "GET",
        &format!("/api/2.0/mlflow-artifacts/artifacts/registry/tiny/1/{file}"),
        &[("Authorization", &r)],
        b"",
    );
    assert_eq!((code, body.as_str()), (200, "hi\n"), "{head}");
    assert_eq!(common::header(&head, "x-content-type-options"), Some("nosniff"));
    let name = file.rsplit('/').next().unwrap_or_default();
    assert!(
        common::header(&head, "content-disposition")
            .is_some_and(|d| d.starts_with(&format!("attachment; filename={name};"))),
        "{head}"
    );

    // Experiments keep their artifacts where this server serves them from.
    let create = |location: &str| {
        let body =
            serde_json::json!({"name": format!("e{}", location.len()), "artifact_location": location}).to_string();
        let headers = [("Authorization", w.as_str()), ("Content-Type", "application/json")];
        common::http(uri, "POST", "/api/2.0/mlflow/experiments/create", &headers, body.as_bytes())
    };
    for bad in [
        "file:///etc",
        "/etc",
        "s3://bucket/x",
        "mlflow-artifacts://evil.example:5000/x",
        "mlflow-artifacts:/../../etc",
        "mlflow-artifacts:/registry/tiny/1",
    ] {
        let (code, _, answer) = create(bad);
        assert_eq!(code, 400, "{bad}: {answer}");
        let v: Value = serde_json::from_str(&answer).expect("json");
        assert_eq!(v["error_code"], "INVALID_PARAMETER_VALUE", "{bad}: {v}");
    }
    let (code, _, answer) = create("mlflow-artifacts:/team/pricing");
    assert_eq!(code, 200, "{answer}");
}

/// Every route of the table, asked by no token and by read, write and admin tokens: each
/// answer is what the route's role says. The table is the router (`repro_server::routes`),
/// so a route cannot exist without an entry here.
#[test]
fn every_route_answers_each_role_as_the_table_says() {
    use repro_server::routes::{table, Body, Kind, Role};
    let t = TestContext::new();
    t.repro(&["init"]).success();
    let tokens = [None, Some(make_token(&t, "read")), Some(make_token(&t, "write")), Some(make_token(&t, "admin"))];
    let server = Server::start(&t);
    let uri = server.uri.as_str();
    let routes = table();
    assert!(routes.len() > 100, "{} routes", routes.len());
    let fill = |path: &str| {
        path.replace("{*path}", "0/walk/artifacts/walk.txt")
            .replace("{id}", "m-0000")
            .replace("{key}", "k")
            .replace("{run}", "nope")
            .replace("{model}", "nope@1")
            .replace("{dataset}", "nope")
            .replace("{env}", "nope")
    };
    let mut checked = 0;
    for (who, token) in tokens.iter().enumerate() {
        let have = [None, Some(Role::Read), Some(Role::Write), Some(Role::Admin)][who];
        for r in &routes {
            let path = fill(&r.path);
            let method = r.method.as_str();
            let auth = token.as_deref().map(bearer);
            let mut headers: Vec<(&str, String)> = Vec::new();
            if let Some(a) = &auth {
                headers.push(("Authorization", a.clone()));
            }
            let mut body = Vec::new();
            if r.method != "GET" {
                match r.body {
                    Body::Json => {
                        headers.push(("Content-Type", "application/json".into()));
                        body = b"{}".to_vec();
                    }
                    Body::Raw => {
                        headers.push(("Content-Type", "text/plain".into()));
                        body = b"walk".to_vec();
                    }
                    Body::Form => {
                        let (nonce, csrf) = common::sign_in_form(uri);
                        headers.push(("Content-Type", "application/x-www-form-urlencoded".into()));
                        headers.push(("Cookie", nonce));
                        body = format!("token={}&csrf={csrf}", token.as_deref().unwrap_or("")).into_bytes();
                    }
                }
            }
            let pairs: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
            let (code, head, answer) = common::http(uri, method, &path, &pairs, &body);
            let what = format!("{method} {path} ({:?} route) as {:?}: {code}\n{head}\n{answer}", r.role, have);
            assert!(code < 500, "a 5xx: {what}");
            let refused = code == 401 || code == 403;
            match have {
                None if r.role == Role::Public => {
                    // The sign-in form's own verdict on the (empty) token it was given.
                    let form_verdict = r.body == Body::Form && r.kind == Kind::Ui && code == 401;
                    assert!(!refused || form_verdict, "{what}");
                }
                None if r.kind == Kind::Ui && r.method == "GET" => {
                    assert_eq!(code, 303, "{what}");
                    assert!(common::header(&head, "location").is_some_and(|l| l.starts_with("/ui/login")), "{what}");
                }
                None => assert_eq!(code, 401, "{what}"),
                Some(role) if role < r.role => assert_eq!(code, 403, "{what}"),
                Some(_) => assert!(!refused, "{what}"),
            }
            checked += 1;
        }
    }
    assert_eq!(checked, routes.len() * 4);
    // Pairs the table does not hold are refused whoever asks, before any handler runs.
    for token in tokens.iter().flatten() {
        let auth = bearer(token);
        for (method, path, want) in [
            ("PUT", "/api/2.0/mlflow/runs/search", 405),
            ("DELETE", "/health", 405),
            ("TRACE", "/ui", 405),
            ("POST", "/api/2.0/mlflow/runs/search/x", 404),
            ("GET", "/api/2.0/mlflow/nothing", 404),
            ("GET", "/api/v1/nothing", 404),
        ] {
            let (code, _, answer) = common::http(uri, method, path, &[("Authorization", auth.as_str())], b"");
            assert_eq!(code, want, "{method} {path}: {answer}");
        }
    }
}

#[test]
fn a_run_created_through_the_api_is_audited_as_not_captured_never_by_its_placeholders() {
    let t = TestContext::new();
    t.repro(&["init"]).success();
    let server = Server::start(&t);
    let (code, _, text) = common::http(
        &server.uri,
        "POST",
        "/api/2.0/mlflow/runs/create",
        &[("Content-Type", "application/json")],
        br#"{"experiment_id": "0", "run_name": "api-made"}"#,
    );
    assert_eq!(code, 200, "{text}");
    let created: Value = serde_json::from_str(&text).expect("json");
    let id = created["run"]["info"]["run_id"].as_str().expect("run id").to_string();
    drop(server);
    let report = t.repro(&["audit", &id, "--json"]).expect_code(1).json();
    for name in ["random_seed", "hardware", "training_script", "git_commit"] {
        assert_eq!(status(&report, name), "missing", "{report:#}");
        assert_eq!(item(&report, name)["detail"], "not captured: created through the MLflow tracking API");
    }
    let said = t.repro(&["audit", &id]).expect_code(1).stdout();
    assert!(!said.contains("generated") && !said.contains("usable cores"), "{said}");
}
