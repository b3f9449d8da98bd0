//! `repro --server URL`: the CLI reading a real `repro serve` over its native JSON API
//! (`/api/v1`), against real scikit-learn runs — the same bytes as local mode for every read
//! command, tokens and roles for the registry's changes, hostile requests answered with 4xx
//! JSON, and the web UI's login cookie.

mod common;

use common::{header, hidden_field, http, id_of, sign_in_form, Server, TestContext};
use serde_json::Value;

fn token(t: &TestContext, role: &str) -> (String, String) {
    let v = t.repro(&["token", "create", "--role", role, "--name", role, "--json"]).success().json();
    (v["id"].as_str().expect("id").to_string(), v["token"].as_str().expect("token").to_string())
}

#[test]
fn remote_mode_prints_what_local_mode_prints_and_the_server_guards_the_registry() {
    let t = TestContext::sklearn_project();
    let a = id_of(&t.train(&["--name", "baseline", "--json"]).success());
    let b = id_of(&t.train(&["--name", "deeper", "--param", "model.max_depth=9", "--json"]).success());
    t.repro(&["model", "register", &a, "--name", "pricing", "--artifact", "model.pkl"]).success();
    t.repro(&["key", "generate"]).success();
    t.repro(&["model", "approve", "pricing@1", "--stage", "prod", "--as", "Ada <ada@example.com>"]).success();
    t.repro(&["env", "register", "requirements.txt", "--name", "training"]).success();
    let datasets = t.repro(&["data", "ls", "--json"]).success().json();
    let dataset = datasets[0]["name"].as_str().expect("a dataset").to_string();
    let list = datasets.as_array().expect("datasets");
    let last_dataset = list[list.len() - 1]["name"].as_str().expect("a dataset").to_string();

    let server = Server::start(&t);
    let uri = server.uri.clone();
    let reads: Vec<Vec<&str>> = vec![
        vec!["runs"],
        vec!["runs", "--limit", "1"],
        vec!["show", &a],
        vec!["show", "pricing@1"],
        vec!["show", &a[..8]],
        vec!["show", "deeper"],
        vec!["audit", &a],
        vec!["audit", "latest", "--strict"],
        vec!["diff", &a, &b],
        vec!["diff", "baseline", "deeper"],
        vec!["data", "ls"],
        vec!["data", "show", &dataset],
        vec!["data", "diff", &dataset, &last_dataset],
        vec!["env", "ls"],
        vec!["env", "show", "training"],
        vec!["env", "diff", "training:1", &a],
        vec!["env", "parity", &a, "--against", "training:1"],
        vec!["model", "ls"],
        vec!["model", "show", "pricing"],
        vec!["model", "show", "pricing@1"],
        vec!["model", "verify", "pricing@1"],
    ];
    for args in &reads {
        for json in [true, false] {
            let mut local_args = args.clone();
            if json {
                local_args.push("--json");
            }
            let local = t.repro(&local_args);
            let mut remote_args = vec!["--server", uri.as_str()];
            remote_args.extend_from_slice(&local_args);
            let remote = t.repro(&remote_args);
            assert_eq!(
                remote.code(),
                local.code(),
                "exit code of {remote_args:?}\nlocal stderr: {}\nremote stderr: {}",
                local.stderr(),
                remote.stderr()
            );
            assert!(!local.stdout().is_empty(), "{local_args:?} printed nothing: {}", local.stderr());
            assert_eq!(remote.stdout(), local.stdout(), "stdout of {remote_args:?} differs from local mode");
        }
    }
    // REPRO_SERVER works like --server; audit's exit code contract holds remotely.
    let r = t.cmd().env("REPRO_SERVER", &uri).args(["audit", &a, "--strict", "--json"]).output().expect("repro");
    let local = t.repro(&["audit", &a, "--strict", "--json"]);
    assert_eq!(r.status.code(), Some(local.code()));
    assert_eq!(String::from_utf8_lossy(&r.stdout), local.stdout());

    // Unknown things: exit 2 with the local command's message.
    let r = t.repro(&["--server", &uri, "show", "no-such-run"]).expect_code(2);
    assert!(r.error_line().contains("no run matches 'no-such-run'"), "{}", r.stderr());
    let r = t.repro(&["--server", &uri, "audit", "pricing@7"]).expect_code(2);
    assert!(r.error_line().contains("no version 7"), "{}", r.stderr());
    // Commands that need this machine refuse --server.
    for args in [
        vec!["run", "--", "true"],
        vec!["replay", "latest"],
        vec!["init"],
        vec!["fsck"],
        vec!["data", "snapshot", "data"],
        vec!["env", "capture"],
        vec!["key", "generate"],
        vec!["bundle", "export", "pricing@1", "-o", "x.tar"],
        vec!["token", "ls"],
        vec!["serve"],
    ] {
        let mut full = vec!["--server", uri.as_str()];
        full.extend_from_slice(&args);
        let r = t.repro(&full).expect_code(2);
        assert!(r.error_line().contains("works on this machine and a local store only"), "{args:?}: {}", r.stderr());
    }

    // Registry changes through the server, open (no tokens yet): promote to dev.
    let r = t.repro(&["--server", &uri, "model", "promote", "pricing@1", "--to", "dev", "--json"]).success();
    assert_eq!(r.json()["outcome"], "promoted");
    // A refusal is exit 1, as locally: the stage stays, and the history records the attempt
    // under the server's identity for it (no tokens yet: anyone who can reach it).
    let r = t.repro(&["--server", &uri, "model", "promote", "pricing@1", "--to", "prod"]).expect_code(1);
    assert!(r.stdout().contains("refused: pricing@1 cannot enter prod"), "{}", r.stdout());
    let after = t.repro(&["model", "show", "pricing@1", "--json"]).success().json();
    assert_eq!(after["stage"], "dev", "{after:#}");
    let last = after["history"].as_array().and_then(|h| h.last()).cloned().unwrap_or_default();
    assert_eq!(last["kind"], "refuse", "{after:#}");
    assert!(last["by"].as_str().unwrap_or_default().contains("anyone who can reach repro serve"), "{last:#}");
    assert!(last["detail"].as_str().unwrap_or_default().starts_with("refused for prod: "), "{last:#}");

    // Tokens: none → a clear error; a wrong one → refused; read reads but cannot change the
    // registry; write approves but cannot promote; admin promotes.
    let (_, read) = token(&t, "read");
    let (_, write) = token(&t, "write");
    let (_, admin) = token(&t, "admin");
    let r = t.repro(&["--server", &uri, "runs"]).expect_code(2);
    assert!(r.error_line().contains("needs a token: pass --token TOKEN or set REPRO_TOKEN"), "{}", r.stderr());
    let r = t.repro(&["--server", &uri, "--token", "repro_0000", "runs"]).expect_code(2);
    assert!(r.error_line().contains("refused the token"), "{}", r.stderr());
    let local_runs = t.repro(&["runs", "--json"]).success().stdout();
    let r = t.repro(&["--server", &uri, "--token", &read, "runs", "--json"]).success();
    assert_eq!(r.stdout(), local_runs);
    let history_len = |t: &TestContext| {
        let shown = t.repro(&["model", "show", "pricing@1", "--json"]).success().json();
        shown["history"].as_array().map(Vec::len).unwrap_or_default()
    };
    let events_before = history_len(&t);
    let r = t.repro(&["--server", &uri, "--token", &read, "model", "promote", "pricing@1", "--to", "staging"]);
    let r = r.expect_code(2);
    assert!(r.error_line().contains("A read token cannot POST"), "{}", r.stderr());
    let r = t.repro(&["--server", &uri, "--token", &read, "model", "approve", "pricing@1", "--stage", "prod"]);
    assert!(r.expect_code(2).error_line().contains("A read token cannot"));
    let r = t.repro(&["--server", &uri, "--token", &write, "model", "promote", "pricing@1", "--to", "staging"]);
    assert!(r.expect_code(2).error_line().contains("needs an admin token (this one is write)"));
    let r = t.repro(&["--server", &uri, "--token", &write, "model", "archive", "pricing@1", "--reason", "x"]);
    assert!(r.expect_code(2).error_line().contains("needs an admin token"));
    assert_eq!(history_len(&t), events_before, "a promotion the token may not ask for is not even a refusal");
    // A write token approves only when it is bound to the approver's key, and the approver
    // is the token's person, whatever the statement claims.
    let r = t.repro(&["--server", &uri, "--token", &write, "model", "approve", "pricing@1", "--stage", "prod"]);
    assert!(r.expect_code(2).error_line().contains("is bound to no approver key"), "a plain write token");
    t.repro(&["key", "generate", "--out", "bo-keys"]).success();
    let bo = t
        .repro(&[
            "token",
            "create",
            "--role",
            "write",
            "--name",
            "Bo",
            "--email",
            "bo@example.com",
            "--approver-key",
            "bo-keys/repro.pub",
            "--json",
        ])
        .success()
        .json();
    let (bo_id, bo_token) = (bo["id"].as_str().expect("id"), bo["token"].as_str().expect("token"));
    let ok = t
        .cmd()
        .env("REPRO_TOKEN", bo_token)
        .args(["--server", &uri, "model", "approve", "pricing@1", "--stage", "prod", "--key", "bo-keys/repro.key"])
        .args(["--as", "Someone Else <ceo@example.com>"])
        .status()
        .expect("approve");
    assert!(ok.success(), "a write token bound to the key approves");
    let v = t.repro(&["model", "show", "pricing@1", "--json"]).success().json();
    let by: Vec<&str> = v["approvals"].as_array().expect("approvals").iter().filter_map(|a| a["by"].as_str()).collect();
    assert_eq!(by, ["Ada <ada@example.com>".to_string(), format!("Bo <bo@example.com> (token {bo_id}, repro serve)")]);
    let r = t.repro(&["--server", &uri, "--token", &admin, "model", "promote", "pricing@1", "--to", "staging"]);
    let r = r.success();
    assert!(r.stdout().contains("promoted pricing@1 to staging (from dev)"), "{}", r.stdout());
    let v = t.repro(&["model", "show", "pricing@1", "--json"]).success().json();
    assert_eq!(v["stage"], "staging");
    // The approvals endpoint lists them, oldest first.
    let (code, _, body) =
        http(&uri, "GET", "/api/v1/approvals?model=pricing", &[("Authorization", &format!("Bearer {read}"))], b"");
    assert_eq!(code, 200, "{body}");
    let list: Value = serde_json::from_str(&body).expect("json");
    assert_eq!(list.as_array().map(Vec::len), Some(2), "{list}");

    // The server gone: a clear one-line error, exit 2.
    drop(server);
    let r = t.repro(&["--server", &uri, "runs"]).expect_code(2);
    assert!(r.error_line().contains(&format!("cannot reach the repro server at {uri}")), "{}", r.stderr());
    let r = t.repro(&["--server", "not a url", "runs"]).expect_code(2);
    assert!(r.error_line().contains("is not a server address"), "{}", r.stderr());
}

#[test]
fn hostile_requests_to_the_native_api_get_4xx_json_and_change_nothing() {
    let (t, id) = TestContext::tiny_registered();
    let server = Server::start(&t);
    let uri = server.uri.as_str();
    let registry_before = t.repro(&["model", "show", "tiny", "--json"]).success().stdout();

    let long = "a".repeat(20_000);
    let huge_query = format!("/api/v1/runs?limit={}", "9".repeat(60_000));
    let gets = [
        ("/api/v1/runs/..%2F..%2Fetc%2Fpasswd", 404),
        ("/api/v1/runs/../../etc/passwd", 404),
        ("/api/v1/data/..%2F..%2F..%2Fetc%2Fshadow", 404),
        ("/api/v1/environments/..%2F..%2Fetc", 404),
        ("/api/v1/models/..%2Fx@1", 400),
        ("/api/v1/models/nope@1", 404),
        ("/api/v1/models/tiny@99/verify", 404),
        ("/api/v1/runs/%00", 400),
        ("/api/v1/runs/%ff%fe", 400),
        ("/api/v1/runs?limit=-1", 400),
        ("/api/v1/runs?limit=abc", 400),
        ("/api/v1/runs?bogus=1", 400),
        ("/api/v1/runs/latest/audit?strict=maybe", 400),
        ("/api/v1/diff?a=latest", 400),
        ("/api/v1/parity?subject=latest&against=%2Fetc%2Fpasswd", 400),
        ("/api/v1/env-diff?a=%2Fetc%2Fpasswd&b=latest", 400),
        ("/api/v1/nothing-here", 404),
        (huge_query.as_str(), 400),
    ];
    let long_path = format!("/api/v1/runs/{long}");
    for (path, want) in gets.iter().copied().chain([(long_path.as_str(), 400)]) {
        let (code, head, body) = http(uri, "GET", path, &[], b"");
        assert_eq!(code, want, "GET {}: {head}\n{body}", &path[..path.len().min(80)]);
        let v: Value = serde_json::from_str(&body).unwrap_or_else(|e| panic!("GET {path}: not JSON ({e}): {body}"));
        assert!(v["error_code"].is_string() && v["message"].is_string(), "{v}");
        assert!(body.len() < 4096, "the error echoes too much: {} bytes", body.len());
    }
    // Wrong methods: 405 with a JSON body.
    for (method, path) in
        [("DELETE", "/api/v1/runs"), ("POST", "/api/v1/runs"), ("PUT", "/api/v1/models/tiny@1/promote")]
    {
        let (code, _, body) = http(uri, method, path, &[], b"");
        assert_eq!(code, 405, "{method} {path}: {body}");
        assert!(body.contains("\"error_code\":\"METHOD_NOT_ALLOWED\""), "{body}");
    }
    // Malformed bodies for the registry's changes: 400 (413 when too big), nothing written.
    let big = format!("{{\"to\": \"{}\"}}", "x".repeat(200_000));
    let bodies: [(&str, &[u8], u16); 7] = [
        ("promote", b"{bad", 400),
        ("promote", b"[]", 400),
        ("promote", b"{\"to\": 5}", 400),
        ("promote", b"{\"to\": \"dev\", \"sudo\": true}", 400),
        ("approve", b"{\"stage\": \"prod\", \"as\": \"\\u0000\"}", 400),
        ("archive", b"{\"reason\": \"\"}", 400),
        ("promote", big.as_bytes(), 413),
    ];
    for (action, body, want) in bodies {
        let path = format!("/api/v1/models/tiny@1/{action}");
        let (code, _, answer) = http(uri, "POST", &path, &[("Content-Type", "application/json")], body);
        assert_eq!(code, want, "{action} {}: {answer}", String::from_utf8_lossy(&body[..body.len().min(60)]));
        assert!(answer.contains("\"error_code\""), "{answer}");
    }
    let json = [("Content-Type", "application/json")];
    let (code, _, answer) = http(uri, "POST", "/api/v1/models/tiny@1/promote", &json, b"{\"to\": \"nowhere\"}");
    assert_eq!(code, 400, "{answer}");
    assert!(answer.contains("there is no stage 'nowhere'"), "{answer}");

    assert_eq!(t.repro(&["model", "show", "tiny", "--json"]).success().stdout(), registry_before);
    assert!(t.repro(&["fsck", "--json"]).success().json()["clean"].as_bool().unwrap_or(false));
    // And the server still answers.
    let (code, _, body) = http(uri, "GET", &format!("/api/v1/runs/{id}"), &[], b"");
    assert_eq!(code, 200, "{body}");
}

#[test]
fn the_web_ui_signs_in_with_a_token_and_a_session_cookie() {
    let (t, _) = TestContext::tiny_registered();
    let server = Server::start(&t);
    let uri = server.uri.as_str();
    // No tokens: the UI is open.
    assert_eq!(http(uri, "GET", "/ui", &[], b"").0, 200);
    let (token_id, read) = token(&t, "read");

    // Without a cookie a browser is sent to the login page, remembering where it was going.
    let (code, head, _) = http(uri, "GET", "/ui/models", &[], b"");
    assert_eq!(code, 303, "{head}");
    assert_eq!(header(&head, "location"), Some("/ui/login?next=%2Fui%2Fmodels"));
    let (code, _, page) = http(uri, "GET", "/ui/login?next=%2Fui%2Fmodels", &[], b"");
    assert_eq!(code, 200);
    assert!(page.contains("method=\"post\" action=\"/ui/login\"") && page.contains("type=\"password\""), "{page}");
    // The APIs still answer 401 JSON, not a redirect.
    let (code, _, body) = http(uri, "GET", "/api/v1/runs", &[], b"");
    assert_eq!(code, 401, "{body}");

    // A wrong token: 401, and what was typed is not echoed.
    let (nonce, csrf) = sign_in_form(uri);
    let form = [("Content-Type", "application/x-www-form-urlencoded"), ("Cookie", nonce.as_str())];
    let body = format!("token=repro_wrongwrongwrong&next=%2Fui&csrf={csrf}");
    let (code, head, page) = http(uri, "POST", "/ui/login", &form, body.as_bytes());
    assert_eq!(code, 401, "{head}");
    assert!(page.contains("not valid") && !page.contains("repro_wrongwrongwrong"), "{page}");
    assert!(header(&head, "set-cookie").is_none());

    // The right token: a session cookie (not the token), back where the browser was going.
    let body = format!("token={read}&next=%2Fui%2Fmodels&csrf={csrf}");
    let (code, head, page) = http(uri, "POST", "/ui/login", &form, body.as_bytes());
    assert_eq!(code, 303, "{head}\n{page}");
    assert_eq!(header(&head, "location"), Some("/ui/models"));
    let set = header(&head, "set-cookie").expect("a cookie").to_string();
    assert!(set.starts_with("repro_session=") && set.contains("HttpOnly") && set.contains("SameSite=Strict"), "{set}");
    assert!(!set.contains(&read) && !head.contains(&read) && !page.contains(&read), "the token leaks: {head}");
    let cookie = set.split(';').next().expect("pair").to_string();
    let with = [("Cookie", cookie.as_str())];
    let (code, _, page) = http(uri, "GET", "/ui", &with, b"");
    assert_eq!(code, 200, "{page}");
    assert!(page.contains("id=\"logout\"") && !page.contains(&read), "{page}");
    assert_eq!(http(uri, "GET", "/ui/models", &with, b"").0, 200);
    // The cookie is for the UI only.
    assert_eq!(http(uri, "GET", "/api/v1/runs", &with, b"").0, 401);
    assert_eq!(http(uri, "GET", "/api/2.0/mlflow/experiments/search", &with, b"").0, 401);

    // Logout needs the page's form; then it clears the cookie, and the old session id is dead.
    assert_eq!(http(uri, "POST", "/ui/logout", &with, b"").0, 403, "a sign-out without the form's token");
    assert_eq!(http(uri, "GET", "/ui", &with, b"").0, 200, "and the session lives on");
    let out = format!("csrf={}", hidden_field(&page, "csrf").expect("the sign-out form's token"));
    let signed_form = [with[0], form[0]];
    let (code, head, _) = http(uri, "POST", "/ui/logout", &signed_form, out.as_bytes());
    assert_eq!(code, 303);
    assert_eq!(header(&head, "location"), Some("/ui/login"));
    assert!(header(&head, "set-cookie").is_some_and(|c| c.contains("Max-Age=0")), "{head}");
    assert_eq!(http(uri, "GET", "/ui", &with, b"").0, 303);

    // A revoked token ends its sessions.
    let (_, head, _) = http(uri, "POST", "/ui/login", &form, format!("token={read}&csrf={csrf}").as_bytes());
    let cookie = header(&head, "set-cookie").expect("cookie").split(';').next().expect("pair").to_string();
    assert_eq!(http(uri, "GET", "/ui", &[("Cookie", cookie.as_str())], b"").0, 200);
    t.repro(&["token", "revoke", &token_id]).success();
    let (_, write) = token(&t, "write");
    assert_eq!(http(uri, "GET", "/ui", &[("Cookie", cookie.as_str())], b"").0, 303);

    // No open redirect: only UI pages of this server are places to return to.
    let body = format!("token={write}&next=https%3A%2F%2Fevil.example%2F&csrf={csrf}");
    let (code, head, _) = http(uri, "POST", "/ui/login", &form, body.as_bytes());
    assert_eq!(code, 303);
    assert_eq!(header(&head, "location"), Some("/ui"));
    // Garbage instead of a form: a 4xx page, no crash.
    let (code, _, _) = http(uri, "POST", "/ui/login", &[("Content-Type", "application/json")], b"{\"token\": 1}");
    assert!((400..500).contains(&code), "{code}");
    assert_eq!(http(uri, "GET", "/health", &[], b"").0, 200);
}
