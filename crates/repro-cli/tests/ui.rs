//! The web UI of `repro serve`, in a real headless Chromium (Debian's `chromium`, driven by
//! playwright-core from tests/browser/check.mjs): a store of 21 runs of every kind and a model
//! with history, every page opened, its content checked and a full-page screenshot saved
//! under target/ui-screenshots; then, with a token, the login page, the session cookie and
//! sign-out.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::{http_get, id_of, workspace, Server, TestContext};

fn browser_dir() -> PathBuf {
    workspace().join("crates/repro-cli/tests/browser")
}

/// `npm ci` in tests/browser once (playwright-core, pinned by its package-lock; no browser
/// download), file-locked across test processes.
fn npm_ci() {
    let dir = browser_dir();
    if dir.join("node_modules/playwright-core").is_dir() {
        return;
    }
    std::fs::create_dir_all(workspace().join("target")).expect("target/");
    let lock = std::fs::File::create(workspace().join("target/browser-npm.lock")).expect("lock file");
    lock.lock().expect("lock");
    if dir.join("node_modules/playwright-core").is_dir() {
        return;
    }
    let out = Command::new("npm")
        .args(["ci", "--no-audit", "--no-fund"])
        .env("PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD", "1")
        .current_dir(&dir)
        .output()
        .expect("npm (is Node.js installed?)");
    assert!(
        out.status.success(),
        "npm ci in {} failed:\n{}{}",
        dir.display(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The store the browser walks: 21 runs of every kind a team has — two real scikit-learn
/// trainings, a replay, a dirty tree, a failed run, a 50,000-step metric, a 14-run sweep
/// with 200-step metrics and tags, and a run a tracking client made through the API — and
/// a model with history (registered, promoted, signed, approved once, refused prod).
struct Store {
    t: TestContext,
    ids: serde_json::Value,
}

fn build_store() -> Store {
    let t = TestContext::sklearn_project();
    let a = id_of(&t.train(&["--name", "<script>alert(1)</script>", "--json"]).success());
    let b = id_of(&t.train(&["--name", "deeper", "--param", "model.max_depth=9", "--json"]).success());
    t.repro(&["model", "register", &a, "--name", "pricing", "--artifact", "model.pkl"]).success();
    t.repro(&["model", "promote", "pricing@1", "--to", "staging"]).success();
    let replay = t.repro(&["replay", &a, "--json"]).success().json();
    assert_eq!(replay["verdict"], "identical", "{replay}");
    let replay = replay["replay"].as_str().expect("replay id").to_string();
    t.repro(&["key", "generate"]).success();
    t.repro(&["model", "sign", "pricing@1"]).success();
    let (approver, _) = t.trusted_approver("ada-keys", "Ada Lovelace <ada@corp.example>");
    t.repro(&["model", "approve", "pricing@1", "--stage", "prod", "--key", &approver, "--comment", "replay checked"])
        .success();
    // prod needs two approvals: refused, with its reasons.
    t.repro(&["model", "promote", "pricing@1", "--to", "prod"]).expect_code(1);

    t.append("train.py", "\n# an uncommitted tweak\n");
    let dirty = id_of(&t.train(&["--name", "dirty-tweak", "--json"]).success());
    t.git(&["checkout", "--", "train.py"]);

    let py = t.python();
    let py = py.to_str().expect("utf-8 path");
    let failing = "import sys\nprint('loading data/train.csv', file=sys.stderr)\nraise SystemExit('boom: column price is missing')";
    let failed = t.repro(&["run", "--name", "broken", "--seed", "1", "--json", "--", py, "-c", failing]);
    assert_ne!(failed.code(), 0, "the failing run fails");
    let failed = id_of(&failed);
    let long =
        "import json, os\nwith open(os.environ['REPRO_METRICS'], 'a') as f:\n    for i in range(50000):\n        \
                f.write(json.dumps({'metric': 'loss', 'value': 1000.0 / (i + 1) + (i % 7) * 0.01, 'step': i}) + '\\n')";
    let long = id_of(&t.repro(&["run", "--name", "long-50k", "--seed", "1", "--json", "--", py, "-c", long]).success());
    let mut sweep = Vec::new();
    for i in 0..14 {
        let lr = format!("lr={}", 0.01 * (i + 1) as f64);
        let depth = format!("depth={}", 3 + i % 4);
        let script = format!(
            "import json, os\nwith open(os.environ['REPRO_METRICS'], 'a') as f:\n    for s in range(200):\n        \
             f.write(json.dumps({{'metric': 'rmse', 'value': 28000 + {i} * 10 + 3000 / (s + 1), 'step': s}}) + '\\n')\n        \
             f.write(json.dumps({{'metric': 'r2', 'value': 0.8 + {i} * 0.01, 'step': s}}) + '\\n')"
        );
        let run = t.repro(&[
            "run",
            "--name",
            &format!("sweep-{i:02}"),
            "--seed",
            "7",
            "--param",
            &lr,
            "--param",
            &depth,
            "--json",
            "--",
            py,
            "-c",
            &script,
        ]);
        sweep.push(id_of(&run.success()));
    }
    let ids = serde_json::json!({
        "a": a, "b": b, "replay": replay, "dirty": dirty, "failed": failed, "long": long, "sweep": sweep,
    });
    Store { t, ids }
}

/// A run made the way an MLflow client makes one, through the server's REST API: params,
/// metrics, tags and an artifact, nothing captured.
fn api_run(uri: &str) -> String {
    let post = |path: &str, body: serde_json::Value| {
        let (code, _, out) =
            common::http(uri, "POST", path, &[("content-type", "application/json")], body.to_string().as_bytes());
        assert_eq!(code, 200, "{path}: {out}");
        serde_json::from_str::<serde_json::Value>(&out).expect("json")
    };
    let run = post(
        "/api/2.0/mlflow/runs/create",
        serde_json::json!({"experiment_id": "0", "run_name": "from-mlflow-client"}),
    );
    let id = run["run"]["info"]["run_id"].as_str().expect("run id").to_string();
    post(
        "/api/2.0/mlflow/runs/log-batch",
        serde_json::json!({
            "run_id": id,
            "params": [{"key": "lr", "value": "0.05"}],
            "metrics": [{"key": "rmse", "value": 28029.790889, "timestamp": 1, "step": 0}],
            "tags": [{"key": "team", "value": "pricing"}],
        }),
    );
    let (code, _, out) = common::http(
        uri,
        "PUT",
        &format!("/api/2.0/mlflow-artifacts/artifacts/0/{id}/artifacts/eval/notes.txt"),
        &[("content-type", "application/octet-stream")],
        b"holdout rmse 28029.79",
    );
    assert_eq!(code, 200, "artifact upload: {out}");
    post("/api/2.0/mlflow/runs/update", serde_json::json!({"run_id": id, "status": "FINISHED", "end_time": 5}));
    id
}

#[test]
fn the_web_ui_shows_a_real_store_in_headless_chromium() {
    let Store { t, mut ids } = build_store();
    let (a, b) = (ids["a"].as_str().expect("a").to_string(), ids["b"].as_str().expect("b").to_string());
    let server = Server::start(&t);
    ids["api"] = api_run(&server.uri).into();

    // What does not need a browser: status codes, escaping and sizes in the raw HTML.
    let (code, _) = http_get(&server.uri, "/");
    assert_eq!(code, 303, "/ redirects to /ui");
    let (code, html) = http_get(&server.uri, "/ui");
    assert_eq!(code, 200, "{html}");
    assert!(html.contains("&lt;script&gt;alert(1)&lt;/script&gt;"), "{html}");
    assert!(!html.contains("<script>alert(1)</script>"), "the run name is not escaped:\n{html}");
    let (code, html) = http_get(&server.uri, "/ui?filter=metrics.rmse%20%3C%3C%3C%201");
    assert_eq!(code, 400, "a bad filter is a 400 page: {html}");
    let (code, html) = http_get(&server.uri, "/ui/runs/not-a-run");
    assert_eq!(code, 404);
    assert!(html.contains("no run matches") && html.contains("Back to the runs table"), "{html}");
    // What the CLI prints (8-character ids, names, NAME@STAGE) opens the run's page.
    for spec in [&a[..8], "deeper", "pricing@1", "pricing@staging"] {
        let (code, head, _) = common::http(&server.uri, "GET", &format!("/ui/runs/{spec}"), &[], b"");
        let to = if spec == "deeper" { &b } else { &a };
        assert_eq!(code, 303, "{spec}");
        assert_eq!(common::header(&head, "location"), Some(format!("/ui/runs/{to}").as_str()), "{spec}");
    }
    let long = ids["long"].as_str().expect("long");
    let (code, html) = http_get(&server.uri, &format!("/ui/runs/{long}"));
    assert_eq!(code, 200);
    assert!(html.len() <= 200 * 1024, "the 50,000-step run page is {} bytes, over 200 KB", html.len());

    // The audit report: one self-contained file an auditor reads without repro.
    let report = t.repro(&["report", "pricing@1", "-o", "report.html", "--json"]).success().json();
    assert_eq!(report["model"], "pricing@1", "{report}");
    let html = std::fs::read_to_string(t.path("report.html")).expect("report.html");
    assert_eq!(report["bytes"].as_u64(), Some(html.len() as u64));
    for needed in [
        "Audit report: pricing@1",
        "id=\"lineage\"",
        "id=\"audit-items\"",
        "id=\"verify-checks\"",
        "data-check=\"signature\"",
        "id=\"readiness-table\"",
        "approvals 1/2 ✗",
        "data-kind=\"refuse\"",
        "refused for prod",
        "id=\"approvals-table\"",
        "✓ verifies",
        "identical",
        "id=\"packages\"",
        "id=\"single-metrics\"",
        "What this report cannot vouch for",
    ] {
        assert!(html.contains(needed), "the report lacks {needed}");
    }
    assert!(!html.contains("<script"), "the report needs no script");
    for external in ["src=\"http", "href=\"http", "url(http", "@import"] {
        assert!(!html.contains(external), "the report loads nothing from the network ({external})");
    }
    let (code, served) = http_get(&server.uri, "/ui/models/pricing@1/report");
    assert_eq!(code, 200);
    assert!(served.contains("Audit report: pricing@1") && served.contains("data-kind=\"refuse\""));

    // The browser: Debian's chromium, driven by the pinned playwright-core (installed here
    // on first use, as the test virtualenvs are).
    let chromium = std::env::var_os("CHROMIUM").map_or_else(|| PathBuf::from("/usr/bin/chromium"), PathBuf::from);
    if !common::have_tool(chromium.exists(), "Chromium", "apt-get install chromium") {
        return;
    }
    // The report prints to PDF with Chromium's own printer.
    let screens = workspace().join("target/ui-screenshots");
    let _ = std::fs::remove_dir_all(&screens);
    std::fs::create_dir_all(&screens).expect("screenshot folder");
    std::fs::copy(t.path("report.html"), screens.join("report.html")).expect("copy the report");
    let pdf = screens.join("report.pdf");
    let printed = Command::new(&chromium)
        .args(["--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-pdf-header-footer"])
        .arg(format!("--print-to-pdf={}", pdf.display()))
        .arg(format!("file://{}", t.path("report.html").display()))
        .output()
        .expect("chromium");
    assert!(printed.status.success(), "chromium --print-to-pdf failed: {}", String::from_utf8_lossy(&printed.stderr));
    let bytes = std::fs::read(&pdf).expect("report.pdf");
    assert!(bytes.starts_with(b"%PDF") && bytes.len() > 20_000, "report.pdf is {} bytes", bytes.len());
    let node = Command::new("node").arg("--version").output().is_ok_and(|o| o.status.success());
    if !common::have_tool(node, "Node.js", "apt-get install nodejs npm") {
        return;
    }
    npm_ci();
    let out = screens;
    let ids_file = out.join("ids.json");
    std::fs::write(&ids_file, ids.to_string()).expect("ids.json");
    let check = |token: Option<&str>| {
        let mut c = Command::new("node");
        c.arg(browser_dir().join("check.mjs")).args([server.uri.as_str(), out.to_str().expect("utf-8 path")]);
        c.arg(&ids_file);
        if let Some(token) = token {
            c.arg(token);
        }
        let run = c.output().expect("node (is Node.js installed?)");
        let log = format!("{}{}", String::from_utf8_lossy(&run.stdout), String::from_utf8_lossy(&run.stderr));
        assert!(run.status.success(), "check.mjs failed:\n{log}");
        log
    };
    let log = check(None);
    for shot in [
        "runs.png",
        "runs-sorted.png",
        "runs-filtered.png",
        "runs-bad-filter.png",
        "run.png",
        "run-failed.png",
        "run-dirty.png",
        "run-replay.png",
        "run-api.png",
        "run-long.png",
        "compare.png",
        "diff.png",
        "models.png",
        "model.png",
        "version.png",
        "report.png",
    ] {
        let size = std::fs::metadata(out.join(shot)).map(|m| m.len()).unwrap_or(0);
        assert!(size > 1000, "screenshot {shot} is missing or empty ({size} bytes)\n{log}");
        assert_png(&out.join(shot));
    }

    // With a token, the same UI behind its login page.
    let token = t.repro(&["token", "create", "--role", "read", "--json"]).success().json()["token"]
        .as_str()
        .expect("token")
        .to_string();
    check(Some(&token));
    assert_png(&out.join("login.png"));
    drop(server);
}

fn assert_png(path: &Path) {
    let bytes = std::fs::read(path).expect("read screenshot");
    assert!(bytes.starts_with(b"\x89PNG\r\n\x1a\n"), "{} is not a PNG", path.display());
}

#[test]
fn a_report_of_an_unknown_version_says_so_and_writes_nothing() {
    let (t, _) = TestContext::tiny_registered();
    let e = t.repro(&["report", "tiny@9", "-o", "r.html"]).expect_code(2).error_line();
    assert!(e.contains("tiny") && e.contains("no version 9"), "{e}");
    assert!(!t.path("r.html").exists(), "nothing is written");
    let e = t.repro(&["report", "nope@1"]).expect_code(2).error_line();
    assert!(e.contains("nope"), "{e}");
    // An external-free tiny version: the default file name, and what it cannot vouch for.
    t.repro(&["report", "tiny@1"]).success();
    let html = std::fs::read_to_string(t.path("report-tiny-1.html")).expect("default file");
    assert!(html.contains("That the training reproduces: no replay of the run was recorded."), "{html}");
    let stdout = t.repro(&["report", "tiny@1", "-o", "-"]).success().stdout();
    assert!(stdout.starts_with("<!doctype html>"), "-o - writes to stdout");
}
