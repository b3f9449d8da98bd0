//! The web UI of `repro serve`, in a real headless Chromium (Debian's `chromium`, driven by
//! playwright-core from tests/browser/check.mjs): two real scikit-learn runs and a registered
//! model, every page opened, its content checked and a full-page screenshot saved under
//! target/ui-screenshots; then, with a token, the login page, the session cookie and sign-out.

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

#[test]
fn the_web_ui_shows_a_real_run_in_headless_chromium() {
    let t = TestContext::sklearn_project();
    let a = id_of(&t.train(&["--name", "<script>alert(1)</script>", "--json"]).success());
    let b = id_of(&t.train(&["--name", "deeper", "--param", "model.max_depth=9", "--json"]).success());
    t.repro(&["model", "register", &a, "--name", "pricing", "--artifact", "model.pkl"]).success();
    t.repro(&["model", "promote", "pricing@1", "--to", "staging"]).success();

    let server = Server::start(&t);

    // What does not need a browser: status codes and escaping in the raw HTML.
    let (code, _) = http_get(&server.uri, "/");
    assert_eq!(code, 303, "/ redirects to /ui");
    let (code, html) = http_get(&server.uri, "/ui");
    assert_eq!(code, 200, "{html}");
    assert!(html.contains("&lt;script&gt;alert(1)&lt;/script&gt;"), "{html}");
    assert!(!html.contains("<script>alert(1)</script>"), "the run name is not escaped:\n{html}");
    let (code, html) = http_get(&server.uri, "/ui?filter=metrics.rmse%20%3C%3C%3C%201");
    assert_eq!(code, 400, "a bad filter is a 400 page: {html}");
    assert!(html.contains("Bad filter"), "{html}");
    let (code, html) = http_get(&server.uri, "/ui/runs/not-a-run");
    assert_eq!(code, 404);
    assert!(html.contains("no run matches") && html.contains("Back to the runs table"), "{html}");
    // What the CLI prints (8-character ids, names, NAME@STAGE) opens the run's page.
    for spec in [&a[..8], "deeper", "latest", "pricing@1", "pricing@staging"] {
        let (code, head, _) = common::http(&server.uri, "GET", &format!("/ui/runs/{spec}"), &[], b"");
        let to = if spec == "deeper" || spec == "latest" { &b } else { &a };
        assert_eq!(code, 303, "{spec}");
        assert_eq!(common::header(&head, "location"), Some(format!("/ui/runs/{to}").as_str()), "{spec}");
    }
    let (code, _) = http_get(&server.uri, &format!("/ui/diff?a={a}"));
    assert_eq!(code, 400);
    let (code, html) = http_get(&server.uri, &format!("/ui/runs/{a}"));
    assert_eq!(code, 200, "{html}");
    assert!(html.contains("git_commit") && html.contains("<svg") && html.contains("model.pkl"), "{html}");

    // The browser: Debian's chromium, driven by the pinned playwright-core (installed here
    // on first use, as the test virtualenvs are).
    let chromium = std::env::var_os("CHROMIUM").map_or_else(|| PathBuf::from("/usr/bin/chromium"), PathBuf::from);
    if !common::have_tool(chromium.exists(), "Chromium", "apt-get install chromium") {
        return;
    }
    let node = Command::new("node").arg("--version").output().is_ok_and(|o| o.status.success());
    if !common::have_tool(node, "Node.js", "apt-get install nodejs npm") {
        return;
    }
    npm_ci();
    let out = workspace().join("target/ui-screenshots");
    let _ = std::fs::remove_dir_all(&out);
    let run = Command::new("node")
        .arg(browser_dir().join("check.mjs"))
        .args([server.uri.as_str(), out.to_str().expect("utf-8 path"), a.as_str(), b.as_str()])
        .output()
        .expect("node (is Node.js installed?)");
    let log = format!("{}{}", String::from_utf8_lossy(&run.stdout), String::from_utf8_lossy(&run.stderr));
    assert!(run.status.success(), "check.mjs failed:\n{log}");
    for shot in
        ["runs.png", "runs-sorted.png", "runs-filtered.png", "runs-bad-filter.png", "run.png", "diff.png", "models.png"]
    {
        let size = std::fs::metadata(out.join(shot)).map(|m| m.len()).unwrap_or(0);
        assert!(size > 1000, "screenshot {shot} is missing or empty ({size} bytes)\n{log}");
    }
    assert_png(&out.join("run.png"));

    // With a token, the same UI behind its login page.
    let token = t.repro(&["token", "create", "--role", "read", "--json"]).success().json()["token"]
        .as_str()
        .expect("token")
        .to_string();
    let run = Command::new("node")
        .arg(browser_dir().join("check.mjs"))
        .args([server.uri.as_str(), out.to_str().expect("utf-8 path"), a.as_str(), b.as_str(), token.as_str()])
        .output()
        .expect("node");
    let log = format!("{}{}", String::from_utf8_lossy(&run.stdout), String::from_utf8_lossy(&run.stderr));
    assert!(run.status.success(), "check.mjs (login) failed:\n{log}");
    assert_png(&out.join("login.png"));
    drop(server);
}

fn assert_png(path: &Path) {
    let bytes = std::fs::read(path).expect("read screenshot");
    assert!(bytes.starts_with(b"\x89PNG\r\n\x1a\n"), "{} is not a PNG", path.display());
}
