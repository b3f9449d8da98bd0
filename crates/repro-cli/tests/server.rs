//! The tracking server, driven by the real MLflow client (mlflow-skinny, pinned in
//! fixtures/mlflow-client.txt): a notebook-style flow against `repro serve`, and an
//! MLflow-instrumented training script captured by `repro run` with no change to it.

mod common;

use std::path::PathBuf;
use std::process::Command;

use common::{id_of, item, status, Server, TestContext};
use serde_json::Value;

/// The MLflow client and scikit-learn, in a venv of their own.
fn mlflow_python() -> PathBuf {
    let ws = common::workspace();
    common::cached_venv(
        &ws.join("target/test-venv-mlflow"),
        &ws.join("crates/repro-cli/tests/fixtures/mlflow-client.txt"),
    )
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
    let t = TestContext::new();
    t.repro(&["init"]).success();
    let server = Server::start(&t);
    let py = mlflow_python();
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
    drop(server);
    // Nothing half-written: no experiment beyond Default, no run; the traversal wrote nothing.
    assert_eq!(t.runs().len(), 0);
    assert!(!t.tmp.path().join("escaped").exists() && !t.path("escaped").exists());
    t.repro(&["fsck"]).success();
}

#[test]
fn an_mlflow_instrumented_script_is_captured_by_repro_run_unchanged() {
    let t = TestContext::sklearn_project();
    std::fs::copy(
        common::workspace().join("crates/repro-cli/tests/fixtures/mlflow_train.py"),
        t.path("mlflow_train.py"),
    )
    .expect("copy script");
    t.commit_all("mlflow script");
    let py = mlflow_python();
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
    assert_eq!(shown["metric_count"], 4);
    let keys: Vec<&str> =
        shown["metrics"].as_array().expect("metrics").iter().map(|m| m["key"].as_str().expect("key")).collect();
    assert!(keys.contains(&"final_rmse") && keys.contains(&"rmse"), "{keys:?}");
    assert!(!t.path("mlruns").exists(), "nothing was logged to a local ./mlruns");
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
    let db = std::fs::read(t.path(".repro/repro.db")).expect("db");
    let wal = std::fs::read(t.path(".repro/repro.db-wal")).unwrap_or_default();
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
        return e.error_code
print(json.dumps([code(lambda: c.get_experiment("0")), code(lambda: c.search_runs(["0"])), code(lambda: c.create_experiment("x" + str(id(c))))]))
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
    assert_eq!(call(None), serde_json::json!(["UNAUTHENTICATED", "UNAUTHENTICATED", "UNAUTHENTICATED"]));
    assert_eq!(
        call(Some("repro_not_a_token")),
        serde_json::json!(["UNAUTHENTICATED", "UNAUTHENTICATED", "UNAUTHENTICATED"])
    );
    assert_eq!(call(Some(&read)), serde_json::json!(["ok", "ok", "PERMISSION_DENIED"]));
    assert_eq!(call(Some(&write)), serde_json::json!(["ok", "ok", "ok"]));
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
