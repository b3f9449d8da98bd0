//! One store shared by several machines and servers: PostgreSQL metadata and S3 objects.
//!
//! These run in the suite's PostgreSQL + S3 pass (`REPRO_TEST_PG`, `REPRO_TEST_S3_BUCKET`;
//! `.ci/run` sets them and starts the S3 server). In the SQLite pass there is nothing shared
//! to test, and they say so.

mod common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{http, id_of, Server, TestContext};
use serde_json::{json, Value};

/// The `--db`/`--objects` of a new shared store, with the guard of its database; `None`
/// outside the shared-backend pass.
fn shared_backend(t: &TestContext) -> Option<Vec<String>> {
    if !common::shared_backends() || common::s3_bucket().is_none() {
        eprintln!("skipped: runs in the PostgreSQL + S3 pass (REPRO_TEST_PG and REPRO_TEST_S3_BUCKET)");
        return None;
    }
    Some(t.backend_args())
}

fn init_with(t: &TestContext, backend: &[String]) {
    let mut args = vec!["init"];
    args.extend(backend.iter().map(String::as_str));
    t.repro(&args).success();
}

fn post(uri: &str, path: &str, body: Value) -> Value {
    let (status, _, text) =
        http(uri, "POST", path, &[("Content-Type", "application/json")], body.to_string().as_bytes());
    assert_eq!(status, 200, "POST {path}: {text}");
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("POST {path}: {e}: {text}"))
}

fn get(uri: &str, path: &str) -> Value {
    let (status, body) = common::http_get(uri, path);
    assert_eq!(status, 200, "GET {path}: {body}");
    serde_json::from_str(&body).unwrap_or_else(|e| panic!("GET {path}: {e}: {body}"))
}

#[test]
fn two_servers_on_one_store_and_sixteen_writers_lose_nothing() {
    let a = TestContext::new();
    let Some(backend) = shared_backend(&a) else { return };
    init_with(&a, &backend);
    // Another machine: its own folder, the same database and bucket.
    let b = TestContext::new();
    init_with(&b, &backend);
    let (sa, sb) = (Server::start(&a), Server::start(&b));

    // Written through one server, read back through the other.
    let exp = post(&sa.uri, "/api/2.0/mlflow/experiments/create", json!({"name": "shared"}));
    let exp = exp["experiment_id"].as_str().expect("experiment id").to_string();
    let run = post(&sa.uri, "/api/2.0/mlflow/runs/create", json!({"experiment_id": exp, "run_name": "first"}));
    let run_id = run["run"]["info"]["run_id"].as_str().expect("run id").to_string();
    post(
        &sa.uri,
        "/api/2.0/mlflow/runs/log-batch",
        json!({"run_id": run_id, "metrics": [{"key": "acc", "value": 0.9, "timestamp": 1, "step": 1}],
               "params": [{"key": "lr", "value": "0.1"}]}),
    );
    let weights: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
    let path = format!("/api/2.0/mlflow-artifacts/artifacts/{exp}/{run_id}/artifacts/model/weights.bin");
    let (status, _, body) = http(&sa.uri, "PUT", &path, &[], &weights);
    assert_eq!(status, 200, "upload: {body}");
    let seen = get(&sb.uri, &format!("/api/2.0/mlflow/runs/get?run_id={run_id}"));
    assert_eq!(seen["run"]["data"]["metrics"][0]["value"], 0.9, "{seen:#}");
    assert_eq!(seen["run"]["data"]["params"][0]["value"], "0.1", "{seen:#}");
    assert_eq!(seen["run"]["info"]["run_name"], "first");
    let (status, head, raw) = common::http_bytes(&sb.uri, "GET", &path, &[], b"");
    assert_eq!(status, 200, "{head}");
    assert_eq!(raw, weights, "the artifact read through the other server is the one written");
    // The CLI in the other folder sees the run too.
    let runs = b.repro(&["runs", "--json"]).success().json();
    assert!(runs.as_array().expect("runs").iter().any(|r| r["id"] == run_id.as_str()), "{runs:#}");

    // 16 clients, each its own run, alternating between the two servers batch by batch.
    const CLIENTS: usize = 16;
    const BATCHES: usize = 40;
    const POINTS: usize = 5;
    let uris = [sa.uri.clone(), sb.uri.clone()];
    let threads: Vec<_> = (0..CLIENTS)
        .map(|c| {
            let (uris, exp) = (uris.clone(), exp.clone());
            std::thread::spawn(move || {
                let run = post(&uris[c % 2], "/api/2.0/mlflow/runs/create", json!({"experiment_id": exp}));
                let id = run["run"]["info"]["run_id"].as_str().expect("run id").to_string();
                for n in 0..BATCHES {
                    let metrics: Vec<Value> = (0..POINTS)
                        .map(|p| json!({"key": "loss", "value": (n * POINTS + p) as f64, "timestamp": 1, "step": n * POINTS + p}))
                        .collect();
                    post(&uris[(c + n) % 2], "/api/2.0/mlflow/runs/log-batch", json!({"run_id": id, "metrics": metrics}));
                }
                id
            })
        })
        .collect();
    let ids: Vec<String> = threads.into_iter().map(|t| t.join().expect("client")).collect();
    for (i, id) in ids.iter().enumerate() {
        let history = get(
            &uris[i % 2],
            &format!("/api/2.0/mlflow/metrics/get-history?run_id={id}&metric_key=loss&max_results=25000"),
        );
        let points = history["metrics"].as_array().map(Vec::len).unwrap_or(0);
        assert_eq!(points, BATCHES * POINTS, "run {id}: every acknowledged point is there");
    }
    let total = a.sql("SELECT COUNT(*) FROM metrics WHERE key = 'loss'");
    assert_eq!(total.trim(), (CLIENTS * BATCHES * POINTS).to_string());
    a.repro(&["fsck"]).success();
    b.repro(&["fsck"]).success();
}

#[test]
fn a_run_captured_on_one_machine_replays_on_another() {
    let a = TestContext::sklearn_repo();
    let Some(backend) = shared_backend(&a) else { return };
    init_with(&a, &backend);
    let id = id_of(&a.train(&["--json"]).success());
    // Machine B: a checkout of its own, no data folder, its own .repro on the same backend.
    let b = TestContext::new();
    let out = Command::new("git").args(["clone", "-q"]).arg(&a.dir).arg(&b.dir).output().expect("git clone");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(!b.path("data").exists());
    init_with(&b, &backend);
    let report = b.repro(&["replay", &id, "--json"]).success().json();
    assert_eq!(report["verdict"], "identical", "{report:#}");
    assert_eq!(report["inputs"][0]["how"], "restored from the store", "{report:#}");
    // Each machine sees the other's work.
    let shown = a.repro(&["show", &id, "--json"]).success().json();
    assert_eq!(shown["replays"][0]["verdict"], "identical", "{shown:#}");
    let (audit, _) = b.audit(&id);
    assert_eq!(common::status(&audit, "replay_verified"), "ok");
}

/// A PostgreSQL cluster of this test's own (initdb in a temp folder, another port), never
/// the shared server: it is restarted under the writers.
struct PrivatePg {
    dir: tempfile::TempDir,
    port: u16,
    bin: std::path::PathBuf,
}

impl PrivatePg {
    fn start() -> Option<PrivatePg> {
        PrivatePg::start_with(None)
    }

    /// With `Some(password)`, connections must give it (scram-sha-256), as on a real server.
    fn start_with(password: Option<&str>) -> Option<PrivatePg> {
        let bin = std::fs::read_dir("/usr/lib/postgresql")
            .ok()?
            .filter_map(Result::ok)
            .map(|e| e.path().join("bin"))
            .find(|b| b.join("initdb").exists())?;
        let dir = tempfile::tempdir().expect("tempdir");
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").expect("port");
            l.local_addr().expect("addr").port()
        };
        // initdb refuses root; the cluster belongs to the postgres user.
        let data = dir.path().join("data");
        std::fs::create_dir_all(&data).expect("mkdir");
        let owner = Command::new("chown").args(["-R", "postgres:postgres"]).arg(dir.path()).status().expect("chown");
        assert!(owner.success());
        let pwfile = dir.path().join("pw");
        if let Some(pw) = password {
            std::fs::write(&pwfile, pw).expect("password file");
            Command::new("chown").args(["postgres:postgres"]).arg(&pwfile).status().expect("chown");
        }
        let pg = PrivatePg { dir, port, bin };
        let initdb = pg.bin.join("initdb");
        let mut args = vec![initdb.to_str()?, "-U", "postgres", "-D", data.to_str()?];
        match password {
            Some(_) => args.extend(["-A", "scram-sha-256", "--pwfile", pwfile.to_str()?]),
            None => args.extend(["-A", "trust"]),
        }
        pg.as_postgres(&args);
        pg.ctl("start");
        Some(pg)
    }

    fn as_postgres(&self, args: &[&str]) {
        let out = Command::new("runuser").args(["-u", "postgres", "--"]).args(args).output().expect("runuser");
        assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
    }

    fn ctl(&self, what: &str) {
        let data = self.dir.path().join("data");
        let opts = format!("-p {} -k {} -c listen_addresses=127.0.0.1", self.port, self.dir.path().display());
        let log = self.dir.path().join("log");
        let args = [
            self.bin.join("pg_ctl").display().to_string(),
            "-D".into(),
            data.display().to_string(),
            "-l".into(),
            log.display().to_string(),
            "-o".into(),
            opts,
            "-m".into(),
            "fast".into(),
            "-w".into(),
            what.into(),
        ];
        self.as_postgres(&args.iter().map(String::as_str).collect::<Vec<_>>());
    }

    fn url(&self, db: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{db}", self.port)
    }
}

impl Drop for PrivatePg {
    fn drop(&mut self) {
        let _ = Command::new("runuser")
            .args(["-u", "postgres", "--"])
            .arg(self.bin.join("pg_ctl"))
            .arg("-D")
            .arg(self.dir.path().join("data"))
            .args(["-m", "immediate", "stop"])
            .output();
    }
}

#[test]
fn writers_survive_a_postgres_restart_and_nothing_committed_is_lost() {
    if !common::shared_backends() {
        eprintln!("skipped: runs in the PostgreSQL pass (REPRO_TEST_PG)");
        return;
    }
    let Some(pg) = PrivatePg::start() else {
        panic!("no PostgreSQL server binaries (initdb, pg_ctl) under /usr/lib/postgresql");
    };
    let t = TestContext::new();
    t.git(&["init", "-q"]);
    t.repro(&["init", "--db", &pg.url("postgres")]).success();
    let server = Server::start(&t);
    let run = post(&server.uri, "/api/2.0/mlflow/runs/create", json!({"experiment_id": "0"}));
    let run_id = run["run"]["info"]["run_id"].as_str().expect("run id").to_string();
    // A captured run in flight across the restart: it must finish, not be half-written.
    let marker = t.path("started");
    let captured = t
        .cmd()
        .args(["run", "--seed", "1", "--json", "--", "sh", "-c", &format!("touch {}; sleep 4", marker.display())])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn repro run");
    // Four writers log steadily; each remembers which batches were acknowledged.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writers: Vec<_> = (0..4)
        .map(|w| {
            let (uri, id, stop) = (server.uri.clone(), run_id.clone(), stop.clone());
            std::thread::spawn(move || {
                let (mut acked, mut refused) = (Vec::new(), Vec::new());
                let mut n = 0;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    let step = w * 1_000_000 + n;
                    let body =
                        json!({"run_id": id, "metrics": [{"key": "w", "value": 1.0, "timestamp": 1, "step": step}]});
                    let json = [("Content-Type", "application/json")];
                    let (status, _, text) =
                        http(&uri, "POST", "/api/2.0/mlflow/runs/log-batch", &json, body.to_string().as_bytes());
                    if status == 200 {
                        acked.push(step);
                    } else {
                        refused.push((status, text));
                    }
                    n += 1;
                    std::thread::sleep(Duration::from_millis(5));
                }
                (acked, refused)
            })
        })
        .collect();
    let start = Instant::now();
    while !marker.exists() {
        assert!(start.elapsed() < Duration::from_secs(30), "the captured command never started");
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_millis(500));
    pg.ctl("restart");
    std::thread::sleep(Duration::from_millis(1500));
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let mut acked = Vec::new();
    for w in writers {
        let (a, refused) = w.join().expect("writer");
        acked.extend(a);
        for (status, text) in refused {
            // Failing cleanly: 503 in MLflow's envelope (the client retries it), naming the cause.
            assert_eq!(status, 503, "{text}");
            assert!(text.contains("TEMPORARILY_UNAVAILABLE"), "{text}");
            // The cause as the driver words it: "connection closed", "Connection reset by peer",
            // or the database's URL (postgres://…): any says which backend went away.
            let lower = text.to_lowercase();
            assert!(lower.contains("postgres") || lower.contains("connection"), "{status}: {text}");
        }
    }
    let out = captured.wait_with_output().expect("repro run");
    assert!(
        out.status.success(),
        "the captured run finished across the restart: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let captured_id =
        serde_json::from_slice::<Value>(&out.stdout).expect("json")["id"].as_str().expect("id").to_string();
    let shown = t.repro(&["show", &captured_id, "--json"]).success().json();
    assert_eq!(shown["status"], "finished", "{shown:#}");
    // Every acknowledged point is there.
    let history = get(
        &server.uri,
        &format!("/api/2.0/mlflow/metrics/get-history?run_id={run_id}&metric_key=w&max_results=25000"),
    );
    let stored: std::collections::BTreeSet<i64> =
        history["metrics"].as_array().expect("points").iter().filter_map(|m| m["step"].as_i64()).collect();
    let missing: Vec<_> = acked.iter().filter(|s| !stored.contains(&(**s as i64))).collect();
    assert!(missing.is_empty(), "{} acknowledged points lost: {missing:?}", missing.len());
    assert!(acked.len() > 20, "the writers wrote ({} acknowledged)", acked.len());
    t.repro(&["fsck"]).success();
}

/// An S3 server of this test's own (moto via scripts/s3-server.sh on a free port), so it can
/// be stopped under a run; stopped again when dropped.
struct PrivateS3 {
    port: u16,
}

impl PrivateS3 {
    fn start() -> PrivateS3 {
        let port = std::net::TcpListener::bind("127.0.0.1:0").expect("port").local_addr().expect("addr").port();
        let s = PrivateS3 { port };
        s.script("start");
        let (status, _, body) = http(&s.endpoint(), "PUT", "/fault-bucket", &[], b"");
        assert_eq!(status, 200, "create bucket: {body}");
        s
    }

    fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    fn log(&self) -> std::path::PathBuf {
        common::workspace().join(format!("target/s3-server-{}.log", self.port))
    }

    fn script(&self, what: &str) {
        let out = Command::new(common::workspace().join("scripts/s3-server.sh"))
            .args([what, &self.port.to_string()])
            .output()
            .expect("scripts/s3-server.sh");
        assert!(out.status.success(), "s3-server.sh {what}: {}", String::from_utf8_lossy(&out.stderr));
    }
}

impl Drop for PrivateS3 {
    fn drop(&mut self) {
        self.script("stop");
    }
}

#[test]
fn an_s3_server_stopped_mid_upload_fails_the_run_cleanly_and_nothing_points_at_missing_objects() {
    let t = TestContext::new();
    let Some(backend) = shared_backend(&t) else { return };
    let s3 = PrivateS3::start();
    let on_private = |args: &[&str]| {
        let mut c = t.cmd();
        c.env("AWS_ENDPOINT_URL", s3.endpoint()).args(args);
        c
    };
    t.git(&["init", "-q"]);
    let out = on_private(&["init", "--db", &backend[1], "--objects", "s3://fault-bucket/team"]).output().expect("init");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    // 200 MB of output goes up in parts; the server stops once the first part has landed.
    let script = "head -c 200000000 /dev/urandom > big.bin";
    let child = on_private(&["run", "--seed", "1", "--output", "big.bin", "--", "sh", "-c", script])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn repro run");
    let start = Instant::now();
    loop {
        let log = std::fs::read_to_string(s3.log()).unwrap_or_default();
        if log.contains("partNumber=") {
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(120), "the upload never started");
        std::thread::sleep(Duration::from_millis(10));
    }
    s3.script("stop");
    let out = child.wait_with_output().expect("repro run");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    let last = stderr.lines().last().unwrap_or("");
    assert!(
        last.starts_with("error: ") && last.contains("s3://fault-bucket/team") && last.contains("reachable"),
        "{stderr}"
    );
    // The run is not finished, and no row names an object of the output.
    assert_eq!(t.sql("SELECT COUNT(*) FROM runs WHERE lineage IS NOT NULL OR record_object IS NOT NULL").trim(), "0");
    let runs = t.repro(&["runs", "--json"]).success().json();
    assert_eq!(runs[0]["status"], "interrupted", "{runs:#}");
    // Through the tracking server: an artifact upload while S3 is down is a 503 the client
    // retries, and no artifact row appears.
    let endpoint = s3.endpoint();
    let server = Server::start_with(&t, &[("AWS_ENDPOINT_URL", endpoint.as_str())]);
    let run = post(&server.uri, "/api/2.0/mlflow/runs/create", json!({"experiment_id": "0"}));
    let id = run["run"]["info"]["run_id"].as_str().expect("run id");
    let path = format!("/api/2.0/mlflow-artifacts/artifacts/0/{id}/artifacts/model.bin");
    let (status, _, body) = http(&server.uri, "PUT", &path, &[], b"weights");
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("TEMPORARILY_UNAVAILABLE") && body.contains("s3://fault-bucket/team"), "{body}");
    assert_eq!(t.sql("SELECT COUNT(*) FROM artifacts").trim(), "0");
}

#[test]
fn migrate_store_moves_an_embedded_store_and_every_machine_sees_the_same() {
    let t = TestContext::sklearn_repo();
    let Some(backend) = shared_backend(&t) else { return };
    // An embedded store with a run, a dataset, a registered and promoted model, MLflow data.
    let out = t.cmd().arg("init").output().expect("init");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let run = id_of(&t.train(&["--json"]).success());
    t.repro(&["data", "snapshot", "data", "--name", "train"]).success();
    t.repro(&["model", "register", &run, "--name", "pricing", "--artifact", "model.pkl"]).success();
    t.repro(&["model", "promote", "pricing@1", "--to", "staging"]).success();
    let server = Server::start(&t);
    let exp = post(&server.uri, "/api/2.0/mlflow/experiments/create", json!({"name": "tracked"}));
    let tracked = post(&server.uri, "/api/2.0/mlflow/runs/create", json!({"experiment_id": exp["experiment_id"]}));
    let tracked = tracked["run"]["info"]["run_id"].as_str().expect("id").to_string();
    post(
        &server.uri,
        "/api/2.0/mlflow/runs/log-batch",
        json!({"run_id": tracked, "metrics": [{"key": "loss", "value": 0.25, "timestamp": 1, "step": 0}],
               "params": [{"key": "lr", "value": "0.1"}], "tags": [{"key": "team", "value": "fore"}]}),
    );
    drop(server);
    let views = |c: &TestContext| -> Vec<Value> {
        [
            &["runs", "--json"][..],
            &["show", &run, "--json"],
            &["show", &tracked, "--json"],
            &["data", "ls", "--json"],
            &["model", "show", "pricing@1", "--json"],
            &["audit", &run, "--json"],
        ]
        .iter()
        .map(|args| {
            let r = c.repro(args);
            assert!(r.code() <= 1, "{args:?}: {}", r.stderr());
            r.json()
        })
        .collect()
    };
    let before = views(&t);

    // The move: objects uploaded and read back, every table copied and checked.
    let twice = t.repro(&["migrate-store", "--to", &backend[1], "--to", &backend[1]]).expect_code(2).error_line();
    assert!(twice.contains("named twice"), "{twice}");
    // `--to` as the issue spells it; `--db`/`--objects` below.
    let report = t.repro(&["migrate-store", "--json", "--to", &backend[1], "--to", &backend[3]]).success().json();
    assert!(report["objects_copied"].as_u64().expect("copied") > 5, "{report:#}");
    assert_eq!(report["objects_copied"], report["objects_verified"]);
    let tables = report["tables"].as_array().expect("tables");
    let rows = |name: &str| tables.iter().find(|x| x["table"] == name).map(|x| x["rows"].as_u64().unwrap_or(0));
    assert_eq!(rows("runs"), Some(2), "{report:#}");
    assert!(rows("registry_events") >= Some(2) && rows("metrics") >= Some(1), "{report:#}");
    let config = std::fs::read_to_string(t.path(".repro/repro.toml")).expect("config");
    assert!(config.contains(&format!("db = \"{}\"", backend[1])) && config.contains("objects = \"s3://"), "{config}");
    assert!(!config.contains("secret") && !config.contains("AWS_"), "no credentials in repro.toml");
    assert_eq!(views(&t), before, "the store reads the same after the move");
    let mut args = vec!["migrate-store"];
    args.extend(backend.iter().map(String::as_str));
    let again = t.repro(&args).expect_code(2).error_line();
    assert!(again.contains("already in"), "{again}");

    // The store now lives on the backend: its objects folder is only a cache.
    std::fs::remove_dir_all(t.path(".repro/objects")).expect("drop the cache");
    std::fs::create_dir(t.path(".repro/objects")).expect("mkdir");
    t.repro(&["fsck"]).success();
    // A second machine joins and sees exactly the same.
    let b = TestContext::new();
    let mut join = vec!["init"];
    join.extend(backend.iter().map(String::as_str));
    b.repro(&join).success();
    assert_eq!(views(&b), before, "another folder on the same backend reads the same");
    // Unsigned, so verification fails on that alone: the chain, the lineage and the artifact
    // (re-hashed from the bucket) hold.
    let verify = b.repro(&["model", "verify", "pricing@1"]).expect_code(1).stdout();
    for ok in ["ok   event_chain", "ok   lineage", "ok   artifact", "FAIL signature"] {
        assert!(verify.contains(ok), "{verify}");
    }

    // Into a database that already holds a store: refused, nothing changes.
    let c = TestContext::new();
    c.cmd().arg("init").output().expect("init");
    let r = c.repro(&["migrate-store", "--db", &backend[1]]).expect_code(2);
    assert!(r.error_line().contains("already holds a store"), "{}", r.error_line());
    assert!(!std::fs::read_to_string(c.path(".repro/repro.toml")).expect("config").contains("postgres://"));
}

#[test]
fn the_database_password_comes_from_pgpassword_and_is_never_written() {
    if !common::shared_backends() {
        eprintln!("skipped: runs in the PostgreSQL pass (REPRO_TEST_PG)");
        return;
    }
    let Some(pg) = PrivatePg::start_with(Some("s3cret-pw")) else {
        panic!("no PostgreSQL server binaries (initdb, pg_ctl) under /usr/lib/postgresql");
    };
    let t = TestContext::new();
    let url = pg.url("postgres");
    let without = t.cmd().env_remove("PGPASSWORD").args(["init", "--db", &url]).output().expect("init");
    assert_eq!(without.status.code(), Some(2));
    let err = String::from_utf8_lossy(&without.stderr);
    assert!(err.contains(&url) && err.lines().count() == 1, "{err}");
    assert!(!t.path(".repro").exists());
    let with = t.cmd().env("PGPASSWORD", "s3cret-pw").args(["init", "--db", &url]).output().expect("init");
    assert!(with.status.success(), "{}", String::from_utf8_lossy(&with.stderr));
    let runs = t.cmd().env("PGPASSWORD", "s3cret-pw").args(["run", "--", "true"]).output().expect("run");
    assert!(runs.status.success(), "{}", String::from_utf8_lossy(&runs.stderr));
    for entry in std::fs::read_dir(t.path(".repro")).expect("store") {
        let path = entry.expect("entry").path();
        if path.is_file() {
            let text = String::from_utf8_lossy(&std::fs::read(&path).expect("read")).into_owned();
            assert!(!text.contains("s3cret-pw"), "{} holds the password", path.display());
        }
    }
}

/// The requests a command sent to the bucket (its `repro_store::remote` debug trace).
fn bucket_requests(t: &TestContext, args: &[&str]) -> (Value, u64) {
    let out = t.cmd().args(args).env("RUST_LOG", "repro_store::remote=debug").output().expect("run repro");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{args:?}: {stderr}");
    let requests = stderr
        .lines()
        .rev()
        .filter_map(|l| l.split("requests=").nth(1))
        .find_map(|n| n.trim().parse::<u64>().ok())
        .unwrap_or(0);
    (serde_json::from_slice(&out.stdout).expect("json"), requests)
}

#[test]
fn a_resnapshot_asks_the_bucket_about_what_changed_only_until_fsck_says_otherwise() {
    let t = TestContext::new();
    let Some(backend) = shared_backend(&t) else { return };
    init_with(&t, &backend);
    for i in 0..200 {
        t.write(&format!("tree/d{}/f{i}.csv", i % 7), &format!("row,{i}\n"));
    }
    let past = std::time::SystemTime::now() - Duration::from_secs(60);
    let age = |rel: &str| {
        let f = std::fs::File::options().write(true).open(t.path(rel)).expect("open");
        f.set_modified(past).expect("set mtime");
    };
    for i in 0..200 {
        age(&format!("tree/d{}/f{i}.csv", i % 7));
    }
    let snap = ["data", "snapshot", "tree", "--json"];
    let (cold, sent) = bucket_requests(&t, &snap);
    assert_eq!(cold["new_objects"], 201);
    assert!(sent >= 201, "every object went up: {sent} requests");

    // One file changed: its object and the manifest go up, the 199 others are known to be there.
    t.write("tree/d0/f0.csv", "row,changed\n");
    age("tree/d0/f0.csv");
    let (one, sent) = bucket_requests(&t, &snap);
    assert_eq!((one["hashed_files"].as_u64(), one["new_objects"].as_u64()), (Some(1), Some(2)), "{one:#}");
    assert!(sent <= 4, "a one-file change sent {sent} requests to the bucket");

    // Without the store's memory of the bucket, the stat cache still says which files'
    // objects the bucket took (its rows are written after the upload): they are not looked up.
    std::fs::remove_file(t.path(".repro/bucket-objects")).expect("the store remembers the bucket in a file");
    t.write("tree/d0/f7.csv", "row,changed 7\n");
    age("tree/d0/f7.csv");
    let (_, sent) = bucket_requests(&t, &snap);
    assert!(sent <= 4, "without it, {sent} requests");

    // Someone deletes an object from the bucket: the store still trusts its memory (a snapshot
    // records the tree as stored), until fsck lists the bucket, names the damage and forgets.
    let shown = t.repro(&["data", "show", "tree", "--json"]).success().json();
    let victim = shown["entries"]
        .as_array()
        .expect("entries")
        .iter()
        .find(|e| e["path"] == "d3/f3.csv")
        .and_then(|e| e["digest"].as_str())
        .expect("d3/f3.csv")
        .to_string();
    t.delete_object(&victim);
    t.write("tree/d1/f1.csv", "row,changed 1\n");
    age("tree/d1/f1.csv");
    let (trusted, _) = bucket_requests(&t, &snap);
    assert_eq!(trusted["new_objects"], 2, "the memory is trusted: {trusted:#}");
    let fsck = t.repro(&["fsck", "--json"]).expect_code(1).json();
    assert!(fsck.to_string().contains(&victim), "fsck names the deleted object: {fsck:#}");
    // Now the next snapshot asks about it, finds it gone and uploads it again.
    t.write("tree/d2/f2.csv", "row,changed 2\n");
    age("tree/d2/f2.csv");
    let (healed, sent) = bucket_requests(&t, &snap);
    assert_eq!(healed["new_objects"], 3, "the changed file, the deleted one and the manifest: {healed:#}");
    assert!(sent <= 6, "{sent} requests");
    assert_eq!(t.repro(&["fsck", "--json"]).success().json()["clean"], true);
}
