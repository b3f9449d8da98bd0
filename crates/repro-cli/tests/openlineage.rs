//! OpenLineage run events, as a data catalogue (Marquez) gets them: START and then
//! COMPLETE, FAIL or ABORT for every run, to a JSON lines file and to an HTTP endpoint that
//! may be down; every event read by the OpenLineage Python client (openlineage-python,
//! pinned by fixtures/openlineage-tools.txt).

mod common;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use common::*;
use serde_json::Value;

/// The OpenLineage Python client, pinned by fixtures/openlineage-tools.txt.
fn openlineage_python() -> PathBuf {
    let ws = workspace();
    let venv = cached_venv(
        &ws.join("target/test-venv-openlineage"),
        &ws.join("crates/repro-cli/tests/fixtures/openlineage-tools.txt"),
    );
    venv.join("bin/python")
}

/// Reads every event of `files` with the client's classes (check_openlineage.py); returns
/// its one-line summaries.
fn check_with_client(files: &[&Path]) -> Vec<Value> {
    let script = workspace().join("crates/repro-cli/tests/fixtures/check_openlineage.py");
    let out = Command::new(openlineage_python()).arg(script).args(files).output().expect("check_openlineage.py");
    assert!(out.status.success(), "the OpenLineage client refused an event: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).lines().map(|l| serde_json::from_str(l).expect("summary")).collect()
}

fn events(path: &Path) -> Vec<Value> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    text.lines().map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}"))).collect()
}

/// repro's 32-hex run id as the UUID OpenLineage carries.
fn uuid_of(id: &str) -> String {
    format!("{}-{}-{}-{}-{}", &id[..8], &id[8..12], &id[12..16], &id[16..20], &id[20..])
}

fn facet<'a>(event: &'a Value, name: &str) -> &'a Value {
    let f = &event["run"]["facets"][name];
    assert!(f.is_object(), "no run facet {name} in {event:#}");
    f
}

#[test]
fn every_run_appends_start_then_complete_fail_or_abort_to_the_events_file() {
    let t = TestContext::sklearn_project();
    t.write("fail.py", "raise RuntimeError('no convergence')\n");
    t.commit_all("a script that fails");
    t.append(".repro/repro.toml", "\n[openlineage]\nnamespace = \"pricing-team\"\nfile = \"lineage/events.jsonl\"\n");
    let file = t.path("lineage/events.jsonl");

    // A run that succeeds: START, then COMPLETE, and --json stays one JSON document.
    let id = id_of(&t.train(&["--json"]).success());
    let shown = t.show_json(&id);
    let ev = events(&file);
    assert_eq!(ev.iter().map(|e| e["eventType"].as_str().unwrap_or("")).collect::<Vec<_>>(), ["START", "COMPLETE"]);
    let (start, complete) = (&ev[0], &ev[1]);
    for e in &ev {
        assert_eq!(e["run"]["runId"], uuid_of(&id).as_str());
        assert_eq!(e["job"]["namespace"], "pricing-team");
        assert_eq!(e["job"]["name"], "train.py");
        assert_eq!(e["schemaURL"], "https://openlineage.io/spec/2-0-2/OpenLineage.json#/$defs/RunEvent");
        assert!(e["producer"].as_str().is_some_and(|p| p.starts_with("urn:repro:")), "{e:#}");
    }
    assert!(start["eventTime"].as_str() <= complete["eventTime"].as_str());
    assert_eq!(complete["eventTime"], shown["ended_at"]);

    // The input is the snapshot `repro show` reports, by its digest.
    let input = &complete["inputs"][0];
    let snapshot = shown["inputs"][0]["snapshot"].as_str().expect("snapshot digest");
    assert_eq!(input["name"], t.path("data/train.csv").to_str().expect("utf-8"));
    assert_eq!(input["namespace"], format!("file://{}", shown["host"].as_str().expect("host")));
    assert_eq!(input["facets"]["version"]["datasetVersion"], snapshot);
    assert_eq!(input["facets"]["repro_snapshot"]["digest"], snapshot);
    assert_eq!(input["facets"]["repro_snapshot"]["path"], "data/train.csv");
    assert_eq!(input["facets"]["repro_snapshot"]["files"], shown["inputs"][0]["files"]);
    assert_eq!(start["inputs"], complete["inputs"], "the inputs are known when the run starts");
    // The output: declared at START, with its digest at the end.
    assert_eq!(start["outputs"][0]["name"], t.path("model.pkl").to_str().expect("utf-8"));
    assert!(start["outputs"][0]["facets"].get("version").is_none());
    let output = &complete["outputs"][0];
    assert_eq!(output["facets"]["version"]["datasetVersion"], shown["outputs"][0]["snapshot"]);

    // Facets: the code, the environment, the seed, the params, the engine.
    let code = facet(complete, "repro_source_code");
    assert_eq!(code["commit"], shown["code"]["commit"]);
    assert_eq!(code["dirty"], false, "the events file is not code: {code:#}");
    assert_eq!(code["scriptPath"], "train.py");
    let location = &complete["job"]["facets"]["sourceCodeLocation"];
    assert_eq!(
        (location["type"].as_str(), location["url"].as_str(), location["version"].as_str()),
        (Some("git"), Some("https://example.invalid/pricing.git"), shown["code"]["commit"].as_str())
    );
    let environment = facet(complete, "repro_environment");
    assert_eq!(environment["pythonVersion"], shown["environment"]["python"]["version"]);
    assert_eq!(environment["declaredDigest"], shown["environment"]["declared"]["digest"]);
    assert!(environment["packagesDigest"].as_str().is_some_and(|d| d.starts_with("blake3:")));
    assert_eq!(facet(complete, "repro_seed")["value"], 42);
    assert_eq!(facet(complete, "repro_params")["values"]["model.n_estimators"], 50);
    assert_eq!(facet(complete, "processing_engine")["name"], "repro");
    let run = facet(complete, "repro_run");
    assert_eq!((run["runId"].as_str(), run["status"].as_str()), (Some(id.as_str()), Some("finished")));
    assert_eq!(run["lineage"], shown["lineage"], "the end event names the sealed record");
    assert!(facet(start, "repro_run").get("lineage").is_none());
    assert!(complete["run"]["facets"].get("errorMessage").is_none());

    // A script that raises: START, then FAIL saying why; the tree is still clean.
    let r = t.repro(&[
        "run",
        "--seed",
        "1",
        "--data",
        "data/train.csv",
        "--json",
        "--",
        t.python().to_str().expect("utf-8"),
        "fail.py",
    ]);
    let failed_id = id_of(&r.expect_code(1));
    let ev = events(&file);
    assert_eq!(ev.len(), 4, "{ev:#?}");
    assert_eq!((ev[2]["eventType"].as_str(), ev[3]["eventType"].as_str()), (Some("START"), Some("FAIL")));
    assert_eq!(ev[3]["run"]["runId"], uuid_of(&failed_id).as_str());
    assert_eq!(ev[3]["job"]["name"], "fail.py");
    let error = facet(&ev[3], "errorMessage");
    assert_eq!(error["programmingLanguage"], "python");
    let message = error["message"].as_str().expect("message");
    assert!(message.contains("exited with status 1") && message.contains("RuntimeError: no convergence"), "{message}");
    assert_eq!(facet(&ev[3], "repro_source_code")["dirty"], false);

    // A command ended by a signal: ABORT.
    t.repro(&["run", "--seed", "1", "--", "sh", "-c", "kill -TERM $$"]);
    let ev = events(&file);
    assert_eq!((ev[4]["eventType"].as_str(), ev[5]["eventType"].as_str()), (Some("START"), Some("ABORT")));
    assert_eq!(ev[5]["job"]["name"], "sh");
    assert!(facet(&ev[5], "errorMessage")["message"].as_str().is_some_and(|m| m.contains("signal 15")));

    // Every event is what the OpenLineage client reads, facets included.
    let read = check_with_client(&[&file]);
    assert_eq!(read.len(), 6);
    assert_eq!(
        read[1]["runFacets"],
        serde_json::json!([
            "processing_engine",
            "repro_environment",
            "repro_params",
            "repro_run",
            "repro_seed",
            "repro_source_code"
        ])
    );
    assert_eq!((read[1]["inputs"].as_u64(), read[1]["outputs"].as_u64()), (Some(1), Some(1)));
}

/// A Marquez-compatible endpoint: `python3 -m http.server`'s handler taking POSTs, recording
/// path, Authorization and body as one JSON line each in `log`, answering 201 as Marquez does.
struct Endpoint {
    child: Child,
    port: u16,
}

const ENDPOINT: &str = r#"
import http.server, json, sys
log, port = sys.argv[1], int(sys.argv[2])
class H(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        with open(log, "a") as f:
            f.write(json.dumps({"path": self.path, "auth": self.headers.get("Authorization"),
                                "type": self.headers.get("Content-Type"), "body": json.loads(body)}) + "\n")
        self.send_response(201)
        self.send_header("Content-Length", "0")
        self.end_headers()
    def log_message(self, *a):
        pass
http.server.HTTPServer.allow_reuse_address = True
s = http.server.HTTPServer(("127.0.0.1", port), H)
print(s.server_address[1], flush=True)
s.serve_forever()
"#;

impl Endpoint {
    fn start(log: &Path, port: u16) -> Endpoint {
        let mut child = Command::new("python3")
            .args(["-c", ENDPOINT])
            .arg(log)
            .arg(port.to_string())
            .stdout(Stdio::piped())
            .spawn()
            .expect("python3");
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("stdout")).read_line(&mut line).expect("port");
        let port = line.trim().parse().unwrap_or_else(|_| panic!("the endpoint did not start: {line:?}"));
        Endpoint { child, port }
    }

    fn stop(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Endpoint {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn posts(log: &Path) -> Vec<Value> {
    events(log)
}

#[test]
fn events_reach_the_endpoint_and_wait_in_a_queue_while_it_is_down() {
    let t = TestContext::sklearn_project();
    let log = t.path("received.jsonl");
    let endpoint = Endpoint::start(&log, 0);
    let port = endpoint.port;
    t.append(
        ".repro/repro.toml",
        &format!("\n[openlineage]\nurl = \"http://127.0.0.1:{port}\"\napi_key_env = \"OL_TEST_KEY\"\n"),
    );
    let run = |args: &[&str]| {
        let out = t.cmd().args(args).env("OL_TEST_KEY", "test-key-123").output().expect("repro");
        Run { args: args.iter().map(|s| s.to_string()).collect(), out }
    };
    let train = |extra: &[&str]| {
        let py = t.python();
        let mut args = vec!["run", "--seed", "42", "--data", "data/train.csv", "--output", "model.pkl", "--json"];
        args.extend_from_slice(extra);
        args.extend_from_slice(&["--", py.to_str().expect("utf-8"), "train.py"]);
        run(&args)
    };

    // Up: both events arrive, as the OpenLineage HTTP transport sends them.
    let first = id_of(&train(&[]).success());
    let got = posts(&log);
    assert_eq!(got.len(), 2, "{got:#?}");
    for (p, kind) in got.iter().zip(["START", "COMPLETE"]) {
        assert_eq!(p["path"], "/api/v1/lineage");
        assert_eq!(p["auth"], "Bearer test-key-123");
        assert_eq!(p["type"], "application/json");
        assert_eq!(p["body"]["eventType"], kind);
        assert_eq!(p["body"]["run"]["runId"], uuid_of(&first).as_str());
    }
    // The key is read from the environment, and recorded nowhere.
    assert!(!std::fs::read_to_string(t.path(".repro/repro.toml")).expect("toml").contains("test-key-123"));
    assert!(!t.show_json(&first).to_string().contains("test-key-123"));

    // Down: the run still succeeds, says the events were queued, and the queue holds them.
    endpoint.stop();
    let r = train(&[]).success();
    let second = id_of(&r);
    let err = r.stderr();
    let said: Vec<&str> = err.lines().filter(|l| l.contains("OpenLineage endpoint")).collect();
    assert_eq!(said.len(), 2, "{err}");
    assert!(
        said[1].contains(&format!("http://127.0.0.1:{port}/api/v1/lineage unreachable (connection refused)"))
            && said[1].contains("2 event(s) queued")
            && said[1].contains("retried on the next run"),
        "{err}"
    );
    let queue = t.path(".repro/openlineage/queue");
    let mut queued: Vec<PathBuf> = std::fs::read_dir(&queue).expect("the queue").flatten().map(|e| e.path()).collect();
    queued.sort();
    assert_eq!(queued.len(), 2, "{queued:?}");
    let first_queued: Value = serde_json::from_slice(&std::fs::read(&queued[0]).expect("queued")).expect("JSON");
    assert_eq!(
        (first_queued["eventType"].as_str(), first_queued["run"]["runId"].as_str()),
        (Some("START"), Some(uuid_of(&second).as_str()))
    );
    assert_eq!(posts(&log).len(), 2);

    // Back: the next run delivers the queued events first, in order, then its own.
    let _endpoint = Endpoint::start(&log, port);
    let r = train(&[]).success();
    let third = id_of(&r);
    assert!(r.stderr().contains("delivered 2 queued event(s)"), "{}", r.stderr());
    let got = posts(&log);
    let seen: Vec<(String, String)> = got[2..]
        .iter()
        .map(|p| {
            (
                p["body"]["run"]["runId"].as_str().unwrap_or("").to_string(),
                p["body"]["eventType"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect();
    let want: Vec<(String, String)> =
        [(&second, "START"), (&second, "COMPLETE"), (&third, "START"), (&third, "COMPLETE")]
            .iter()
            .map(|(id, kind)| (uuid_of(id), kind.to_string()))
            .collect();
    assert_eq!(seen, want);
    assert_eq!(std::fs::read_dir(&queue).expect("the queue").count(), 0, "the queue is empty again");

    // What the endpoint got is what the OpenLineage client reads; the store is clean.
    let bodies = t.path("bodies.jsonl");
    let lines: String = got.iter().map(|p| format!("{}\n", p["body"])).collect();
    std::fs::write(&bodies, lines).expect("write");
    assert_eq!(check_with_client(&[&bodies]).len(), 6);
    let fsck = t.repro(&["fsck", "--json"]).success().json();
    assert_eq!(fsck["clean"], true, "{fsck:#}");
}

#[test]
fn a_silent_endpoint_times_out_and_the_run_goes_on() {
    let t = TestContext::new();
    t.git(&["init", "-q", "-b", "main"]);
    t.write("a.txt", "a\n");
    t.commit_all("initial");
    t.repro(&["init"]).success();
    // Accepts connections and never answers.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    t.append(".repro/repro.toml", &format!("\n[openlineage]\nurl = \"http://127.0.0.1:{port}\"\ntimeout = 1\n"));
    let started = std::time::Instant::now();
    let r = t.repro(&["run", "--seed", "1", "--json", "--", "true"]).success();
    assert!(started.elapsed() < std::time::Duration::from_secs(30), "{:?}", started.elapsed());
    assert!(r.stderr().contains("unreachable (timed out); 2 event(s) queued"), "{}", r.stderr());
    r.json();
    drop(listener);
}

#[test]
fn openlineage_settings_are_checked_with_one_line_naming_the_key() {
    let t = TestContext::new();
    t.git(&["init", "-q", "-b", "main"]);
    t.write("a.txt", "a\n");
    t.commit_all("initial");
    t.repro(&["init"]).success();
    let base = std::fs::read_to_string(t.path(".repro/repro.toml")).expect("toml");
    for (section, needle) in [
        ("url = \"localhost:5000\"", "[openlineage] url: 'localhost:5000' is not an http:// or https:// URL"),
        ("url = \"http://h\"\napi_key = \"sk-live-1\"", "[openlineage] api_key: a secret never goes in repro.toml"),
        (
            "url = \"http://h\"\napi_key_env = \"sk-live-1\"",
            "[openlineage] api_key_env: not an environment variable's name",
        ),
        ("namespace = \"ml\"", "[openlineage]: set url"),
        ("url = \"http://h\"\ntimeout = 600", "[openlineage] timeout"),
    ] {
        t.write(".repro/repro.toml", &format!("{base}\n[openlineage]\n{section}\n"));
        let line = t.repro(&["run", "--", "true"]).expect_code(2).error_line();
        assert!(line.contains(needle) && line.contains("repro.toml"), "{section}: {line}");
        assert!(!line.contains("sk-live-1"), "a secret is never echoed: {line}");
    }
    // Nothing ran, nothing was queued.
    assert!(!t.path(".repro/openlineage").exists());
}

#[test]
fn a_killed_repro_ends_its_run_with_abort_at_fsck_and_flush_sends_the_queue() {
    let t = TestContext::sklearn_project();
    // A port nothing listens on yet: the endpoint is down until started on it below.
    let log = t.path("received.jsonl");
    let probe = Endpoint::start(&log, 0);
    let port = probe.port;
    probe.stop();
    t.append(
        ".repro/repro.toml",
        &format!("\n[openlineage]\nfile = \"lineage.jsonl\"\nurl = \"http://127.0.0.1:{port}\"\n"),
    );
    let file = t.path("lineage.jsonl");

    // repro itself killed (-9) while its command runs: START was sent, no end ever will be.
    let mut child = t.cmd().args(["run", "--seed", "3", "--", "sleep", "2"]).spawn().expect("repro run");
    // Killed once START is in the file and in the queue (the endpoint is down), not between
    // the two writes.
    let queue = t.path(".repro/openlineage/queue");
    let queued = || std::fs::read_dir(&queue).map(|d| d.flatten().count()).unwrap_or(0);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while events(&file).is_empty() || queued() == 0 {
        assert!(std::time::Instant::now() < deadline, "no START within 30 s");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    child.kill().expect("kill -9");
    child.wait().expect("reaped");
    let started = events(&file);
    assert_eq!(started.len(), 1, "{started:#?}");
    let run_uuid = started[0]["run"]["runId"].as_str().expect("run id").to_string();

    // fsck finds the run interrupted and ends it with ABORT, saying why.
    let fsck = t.repro(&["fsck", "--json"]).success().json();
    let interrupted = fsck["interrupted"].as_array().expect("interrupted");
    assert_eq!(interrupted.len(), 1, "{fsck:#}");
    assert_eq!(uuid_of(interrupted[0].as_str().expect("id")), run_uuid);
    let ev = events(&file);
    assert_eq!(ev.iter().map(|e| e["eventType"].as_str().unwrap_or("")).collect::<Vec<_>>(), ["START", "ABORT"]);
    assert_eq!(ev[1]["run"]["runId"], run_uuid.as_str());
    assert!(ev[0]["eventTime"].as_str() <= ev[1]["eventTime"].as_str(), "{ev:#?}");
    let why = facet(&ev[1], "errorMessage")["message"].as_str().expect("message");
    assert!(why.contains("repro stopped before recording the run's end"), "{why}");
    assert_eq!(check_with_client(&[&file]).len(), 2, "the client reads START and ABORT");
    // Found once: a second fsck sends nothing more.
    t.repro(&["fsck"]).success();
    assert_eq!(events(&file).len(), 2);

    // Both went to the queue too (the endpoint is down); flush says they are still there.
    let down = t.repro(&["lineage", "flush"]).expect_code(1);
    assert!(down.stdout().contains("2 event(s) still queued"), "{}", down.stdout());
    let endpoint = Endpoint::start(&log, port);
    let up = t.repro(&["lineage", "flush", "--json"]).success().json();
    assert_eq!(up["delivery"]["sent_from_queue"], 2, "{up:#}");
    assert_eq!(up["delivery"]["queued"], 0, "{up:#}");
    let got = posts(&log);
    assert_eq!(
        got.iter().map(|p| p["body"]["eventType"].as_str().unwrap_or("")).collect::<Vec<_>>(),
        ["START", "ABORT"]
    );
    endpoint.stop();
    let again = t.repro(&["lineage", "flush"]).success();
    assert!(again.stdout().contains("nothing left in the queue"), "{}", again.stdout());

    // A store that sends events nowhere: one line, exit 2.
    let other = TestContext::sklearn_project();
    let none = other.repro(&["lineage", "flush"]).expect_code(2);
    assert!(none.stderr().contains("set url in [openlineage]"), "{}", none.stderr());
    assert_eq!(none.stderr().lines().count(), 1, "{}", none.stderr());
}
