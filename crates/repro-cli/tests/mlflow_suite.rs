//! MLflow's own tracking-server tests (`../shared/mlflow-tests`: the REST tracking, model
//! registry and mlflow-artifacts tests), unchanged, against the real `repro serve`: a
//! pytest plugin (`mlflow_suite/repro_launcher.py`) replaces only MLflow's server launchers.
//! Every test either passes, is an open gap (a strict xfail), or does not apply, with its
//! reason (`mlflow_suite/applicability.py`); docs/mlflow-tests.md must say exactly what
//! this run found.

mod common;

use std::process::Command;

#[test]
fn mlflows_own_server_tests_pass_against_repro_serve() {
    let ws = common::workspace();
    let tests = ws.join("../shared/mlflow-tests");
    if !common::have_tool(
        tests.join("tests/tracking").is_dir(),
        "MLflow's server tests",
        "they are read from ../shared/mlflow-tests beside the checkout",
    ) {
        return;
    }
    // Pass 1 covers it: each test starts a server over a store of its own, which on the
    // shared backends would be a PostgreSQL database per test for the same HTTP surface.
    if common::shared_backends() {
        eprintln!("skipping: MLflow's server tests run in the SQLite pass");
        return;
    }
    let venv = common::cached_venv(
        &ws.join("target/test-venv-mlflow-server"),
        &ws.join("crates/repro-cli/tests/fixtures/mlflow-server-tests.txt"),
    );
    let report = tempfile::tempdir().expect("tempdir");
    let junit = report.path().join("junit.xml");
    let out = Command::new(venv.join("bin/python"))
        .args(["-m", "pytest"])
        .args([
            "tests/tracking/test_rest_tracking.py",
            "tests/tracking/test_model_registry.py",
            "tests/tracking/test_mlflow_artifacts.py",
        ])
        // The plugin; no cache or bytecode written into the read-only shared folder;
        // MLflow's own addopts (-v, --showlocals, colour) replaced by a short report.
        .args(["-p", "repro_launcher", "-p", "no:cacheprovider", "-o", "addopts=", "-q", "--color=no", "-rfE"])
        .args(["--timeout", "120"])
        .arg(format!("--junitxml={}", junit.display()))
        .current_dir(&tests)
        .env("PYTHONPATH", ws.join("crates/repro-cli/tests/mlflow_suite"))
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .env("REPRO_BIN", env!("CARGO_BIN_EXE_repro"))
        .env("REPRO_KEY_DIR", report.path().join("keys"))
        .env("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
        .env("MLFLOW_DISABLE_TELEMETRY", "true")
        .env("DO_NOT_TRACK", "true")
        .env_remove("MLFLOW_TRACKING_URI")
        .env_remove("REPRO_STORE")
        .output()
        .expect("run pytest");
    let said = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    let tail: String = said.lines().rev().take(80).collect::<Vec<_>>().into_iter().rev().collect::<Vec<_>>().join("\n");
    assert!(out.status.success(), "MLflow's server tests failed against repro serve:\n{tail}");
    let summary = said.lines().rev().find(|l| l.contains(" passed")).unwrap_or_default().to_string();
    eprintln!("MLflow's server tests against repro serve: {summary}");

    let check = Command::new("python3")
        .arg(ws.join("scripts/mlflow-tests-table.py"))
        .arg("--junit")
        .arg(&junit)
        .arg("--check")
        .output()
        .expect("python3");
    assert!(check.status.success(), "{}", String::from_utf8_lossy(&check.stderr));
}
