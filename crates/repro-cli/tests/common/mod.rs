//! The test harness: a temp folder with a real git repository, the real `repro` binary,
//! and a real Python virtualenv with scikit-learn (built once, shared, pinned by
//! requirements-test.txt at the workspace root).

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

#[allow(unused_imports)]
pub use repro_test::{cached_venv, have_tool, s3_bucket, shared_backends, venv, workspace};

pub struct TestContext {
    pub tmp: tempfile::TempDir,
    pub dir: PathBuf,
    /// The PostgreSQL databases `repro init` made for this test (`REPRO_TEST_PG`), dropped with it.
    scratch: std::cell::RefCell<Vec<repro_test::ScratchDb>>,
    /// The `s3://` prefixes `repro init` got for this test (`REPRO_TEST_S3_BUCKET`).
    prefixes: std::cell::RefCell<Vec<String>>,
}

impl TestContext {
    /// An empty folder.
    pub fn new() -> TestContext {
        TestContext::new_in(&std::env::temp_dir())
    }

    /// An empty folder under `base` (another file system, say).
    pub fn new_in(base: &Path) -> TestContext {
        let tmp = tempfile::tempdir_in(base).expect("tempdir");
        let dir = tmp.path().canonicalize().expect("canonical");
        TestContext { tmp, dir, scratch: Default::default(), prefixes: Default::default() }
    }

    /// A git repository holding a copy of examples/sklearn-pricing, its data generated,
    /// everything committed, and a repro store.
    pub fn sklearn_project() -> TestContext {
        let t = TestContext::sklearn_repo();
        t.repro(&["init"]).success();
        t
    }

    /// The same git repository, without a store.
    pub fn sklearn_repo() -> TestContext {
        let t = TestContext::new();
        let src = workspace().join("examples/sklearn-pricing");
        for f in ["train.py", "generate_data.py", "params.yaml", "requirements.txt", ".gitignore"] {
            std::fs::copy(src.join(f), t.dir.join(f)).expect("copy example");
        }
        t.git(&["init", "-q", "-b", "main"]);
        t.git(&["remote", "add", "origin", "https://example.invalid/pricing.git"]);
        let py = t.python();
        let out = Command::new(&py).arg("generate_data.py").current_dir(&t.dir).output().expect("generate data");
        assert!(out.status.success(), "generate_data.py failed: {}", String::from_utf8_lossy(&out.stderr));
        // Data is an input, not code: keep it out of git like a real project would.
        t.append(".gitignore", "data/\n");
        t.commit_all("initial");
        t
    }

    pub fn python(&self) -> PathBuf {
        venv().join("bin/python")
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.join(rel)
    }

    pub fn write(&self, rel: &str, text: &str) {
        let p = self.path(rel);
        if let Some(parent) = p.parent() {
            std::fs::create_dir_all(parent).expect("mkdir");
        }
        std::fs::write(p, text).expect("write");
    }

    pub fn append(&self, rel: &str, text: &str) {
        use std::io::Write;
        let mut f = std::fs::OpenOptions::new().append(true).create(true).open(self.path(rel)).expect("open");
        f.write_all(text.as_bytes()).expect("append");
    }

    pub fn git(&self, args: &[&str]) {
        let out = Command::new("git")
            .args(["-c", "user.name=Test", "-c", "user.email=test@example.invalid", "-c", "commit.gpgsign=false"])
            .args(args)
            .current_dir(&self.dir)
            .output()
            .expect("git");
        assert!(out.status.success(), "git {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    }

    pub fn commit_all(&self, msg: &str) {
        self.git(&["add", "-A"]);
        self.git(&["commit", "-q", "-m", msg]);
    }

    /// The real binary, run in the test folder with a clean repro environment.
    pub fn cmd(&self) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_repro"));
        c.current_dir(&self.dir).env_remove("REPRO_STORE").env_remove("RUST_LOG").env("NO_COLOR", "1");
        // The person's default key folder is the test's own, never the machine user's.
        c.env("REPRO_KEY_DIR", self.tmp.path().join("home-keys"));
        // Runs see no container, whatever machine runs the suite (its /.dockerenv, its pod),
        // so what they record and print is the same everywhere.
        c.env("REPRO_CONTAINER_ROOT", self.tmp.path().join("no-container"))
            .env_remove("KUBERNETES_SERVICE_HOST")
            .env_remove("REPRO_IMAGE");
        for v in ["OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "PYTHONHASHSEED", "VIRTUAL_ENV"] {
            c.env_remove(v);
        }
        c
    }

    /// `repro --json ARGS` with the frameworks virtualenv first on PATH, as an activated venv
    /// would be (`--json` so the run's id can be read; the command's output goes to stderr).
    pub fn in_frameworks_venv(&self, args: &[&str]) -> Run {
        let venv = repro_test::frameworks_venv();
        let path = format!("{}:{}", venv.join("bin").display(), std::env::var("PATH").unwrap_or_default());
        let mut c = self.cmd();
        c.arg("--json").args(args).env("PATH", path).env("VIRTUAL_ENV", &venv);
        Run { args: args.iter().map(|s| s.to_string()).collect(), out: c.output().expect("run repro") }
    }

    /// `repro show RUN --json`.
    pub fn show_json(&self, run: &str) -> Value {
        self.repro(&["show", run, "--json"]).success().json()
    }

    pub fn repro(&self, args: &[&str]) -> Run {
        let mut args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        if args.first().is_some_and(|a| a == "init") && !args.iter().any(|a| a == "--db" || a == "--objects") {
            args.extend(self.backend_args());
        }
        let out = self.cmd().args(&args).output().expect("run repro");
        Run { args, out }
    }

    /// `--db`/`--objects` for a new store on the shared backends, when the suite runs on them.
    pub fn backend_args(&self) -> Vec<String> {
        let Some(db) = repro_test::ScratchDb::create() else {
            return Vec::new();
        };
        let mut args = vec!["--db".to_string(), db.url.clone()];
        if let Some(bucket) = s3_bucket() {
            let url = format!("s3://{bucket}/{}", uuid_like());
            self.prefixes.borrow_mut().push(url.clone());
            args.extend(["--objects".to_string(), url]);
        }
        self.scratch.borrow_mut().push(db);
        args
    }

    /// The URL of this test's (first) PostgreSQL store database, if it has one.
    pub fn db_url(&self) -> Option<String> {
        self.scratch.borrow().first().map(|d| d.url.clone())
    }

    /// Where object `digest` ("blake3:…") lives in the bucket: (bucket, key), when this
    /// test's store keeps its objects in S3.
    fn bucket_key(&self, digest: &str) -> Option<(String, String)> {
        let url = self.prefixes.borrow().first().cloned()?;
        let hex = digest.trim_start_matches("blake3:");
        let (bucket, prefix) = url.trim_start_matches("s3://").split_once('/').expect("s3://BUCKET/PREFIX");
        Some((bucket.to_string(), format!("{prefix}/objects/{}/{}", &hex[..2], &hex[2..])))
    }

    /// One signed S3 call (boto3 from the S3 server's venv, as any S3 client would make it):
    /// `get`, `put` (bytes on stdin) or `delete`. Returns what `get` read.
    fn s3(&self, op: &str, bucket: &str, key: &str, bytes: &[u8]) -> Vec<u8> {
        use std::io::Write;
        const SCRIPT: &str = "import sys, boto3\n\
            op, bucket, key = sys.argv[1:4]\n\
            s3 = boto3.client('s3')\n\
            if op == 'get': sys.stdout.buffer.write(s3.get_object(Bucket=bucket, Key=key)['Body'].read())\n\
            elif op == 'put': s3.put_object(Bucket=bucket, Key=key, Body=sys.stdin.buffer.read())\n\
            else: s3.delete_object(Bucket=bucket, Key=key)\n";
        let py = workspace().join("target/s3-venv/bin/python");
        let mut child = Command::new(&py)
            .args(["-c", SCRIPT, op, bucket, key])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("{}: {e} (scripts/s3-server.sh builds it)", py.display()));
        child.stdin.take().expect("stdin").write_all(bytes).expect("send");
        let out = child.wait_with_output().expect("boto3");
        assert!(out.status.success(), "s3 {op} {bucket}/{key}: {}", String::from_utf8_lossy(&out.stderr));
        out.stdout
    }

    /// The local file of object `digest` (the store's folder, or its cache of the bucket).
    pub fn object_file(&self, digest: &str) -> PathBuf {
        let hex = digest.trim_start_matches("blake3:");
        self.path(&format!(".repro/objects/{}/{}", &hex[..2], &hex[2..]))
    }

    /// The bytes the store holds for object `digest` (from the bucket when it has one).
    pub fn read_object(&self, digest: &str) -> Vec<u8> {
        match self.bucket_key(digest) {
            Some((bucket, key)) => self.s3("get", &bucket, &key, b""),
            None => std::fs::read(self.object_file(digest)).expect("object file"),
        }
    }

    /// Replaces object `digest`'s bytes behind repro's back: its file, and its copy in the
    /// bucket when the store has one (damage there is what every machine would see).
    pub fn write_object(&self, digest: &str, bytes: &[u8]) {
        let file = self.object_file(digest);
        if file.exists() || self.bucket_key(digest).is_none() {
            use std::os::unix::fs::PermissionsExt;
            let _ = std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644));
            std::fs::write(&file, bytes).expect("write object file");
        }
        if let Some((bucket, key)) = self.bucket_key(digest) {
            self.s3("put", &bucket, &key, bytes);
        }
    }

    /// Removes object `digest` behind repro's back (file and bucket copy).
    pub fn delete_object(&self, digest: &str) {
        let _ = std::fs::remove_file(self.object_file(digest));
        if let Some((bucket, key)) = self.bucket_key(digest) {
            self.s3("delete", &bucket, &key, b"");
        }
    }

    /// Copies the store (its folder, and its PostgreSQL database when it has one) aside as `name`.
    pub fn backup_store(&self, name: &str) {
        let ok = Command::new("cp").arg("-a").arg(self.path(".repro")).arg(self.path(name)).status().expect("cp");
        assert!(ok.success());
        if let Some(url) = self.db_url() {
            let dump = self.path(&format!("{name}.pgdump"));
            let out = Command::new("pg_dump")
                .args(["-Fc", "-f"])
                .arg(&dump)
                .arg(&url)
                .output()
                .expect("pg_dump (install postgresql-client, or run scripts/test-all.sh)");
            assert!(out.status.success(), "pg_dump: {}", String::from_utf8_lossy(&out.stderr));
        }
    }

    /// Puts back what `backup_store(name)` copied aside.
    pub fn restore_store(&self, name: &str) {
        std::fs::remove_dir_all(self.path(".repro")).expect("remove the damaged store");
        let ok = Command::new("cp").arg("-a").arg(self.path(name)).arg(self.path(".repro")).status().expect("cp");
        assert!(ok.success());
        // The bucket gets the saved copies back too (damage there is what a test undoes).
        if let Some(url) = self.prefixes.borrow().first() {
            let (bucket, prefix) = url.trim_start_matches("s3://").split_once('/').expect("s3://BUCKET/PREFIX");
            const PUT_ALL: &str = "import os, sys, boto3\n\
                bucket, prefix, root = sys.argv[1:4]\n\
                s3 = boto3.client('s3')\n\
                for shard in os.listdir(root):\n    \
                    for name in os.listdir(os.path.join(root, shard)):\n        \
                        with open(os.path.join(root, shard, name), 'rb') as f:\n            \
                            s3.put_object(Bucket=bucket, Key=f'{prefix}/objects/{shard}/{name}', Body=f.read())\n";
            let out = Command::new(workspace().join("target/s3-venv/bin/python"))
                .args(["-c", PUT_ALL, bucket, prefix])
                .arg(self.path(&format!("{name}/objects")))
                .output()
                .expect("boto3");
            assert!(out.status.success(), "restore the bucket: {}", String::from_utf8_lossy(&out.stderr));
        }
        if let Some(url) = self.db_url() {
            let dump = self.path(&format!("{name}.pgdump"));
            let out = Command::new("pg_restore")
                .args(["--clean", "--if-exists", "--single-transaction", "-d", &url])
                .arg(&dump)
                .output()
                .expect("pg_restore (install postgresql-client, or run scripts/test-all.sh)");
            assert!(out.status.success(), "pg_restore: {}", String::from_utf8_lossy(&out.stderr));
        }
    }

    /// Runs one SQL statement on the store's metadata database (sqlite3 on `repro.db`, or
    /// psql on PostgreSQL), as someone editing it behind repro's back would; returns stdout.
    pub fn sql(&self, statement: &str) -> String {
        let out = match self.db_url() {
            Some(url) => Command::new("psql")
                .args(["-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", &url, "-c", statement])
                .output(),
            None => Command::new("sqlite3").arg(self.path(".repro/repro.db")).arg(statement).output(),
        }
        .expect("the SQL client: sqlite3, or psql on PostgreSQL (apt-get install sqlite3 postgresql-client, or run scripts/test-all.sh)");
        assert!(out.status.success(), "{statement}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// A virtualenv of this test's own (a copy of the shared one), free to be changed.
    pub fn private_venv(&self) -> PathBuf {
        let dest = self.dir.join(".venv");
        let ok = Command::new("cp").arg("-a").arg(venv()).arg(&dest).status().expect("cp").success();
        assert!(ok, "copying the test venv failed");
        dest
    }

    /// A git repository with a store, one seeded run named `tiny` whose output `out.txt` is
    /// registered as `tiny@1` (no Python needed). Returns the context and the run id.
    pub fn tiny_registered() -> (TestContext, String) {
        let t = TestContext::new();
        t.git(&["init", "-q", "-b", "main"]);
        t.write("data.csv", "x,y\n1,2\n");
        t.write(".gitignore", "out.txt\n");
        t.commit_all("initial");
        t.repro(&["init"]).success();
        let script = "echo hi > out.txt";
        let run = t.repro(&[
            "run", "--name", "tiny", "--seed", "1", "--data", "data.csv", "--output", "out.txt", "--json", "--", "sh",
            "-c", script,
        ]);
        let id = id_of(&run.success());
        t.repro(&["model", "register", &id, "--name", "tiny", "--artifact", "out.txt"]).success();
        (t, id)
    }

    /// A person's own key pair in `dir` (`repro key generate --out DIR`), trusted by this
    /// store as an approver named `who` (`repro key add`). Returns (private, public) paths.
    pub fn trusted_approver(&self, dir: &str, who: &str) -> (String, String) {
        self.repro(&["key", "generate", "--out", dir]).success();
        let public = format!("{dir}/repro.pub");
        self.repro(&["key", "add", &public, "--approver", "--name", who]).success();
        (format!("{dir}/repro.key"), public)
    }

    /// `repro run` of the example's training script, with everything an auditor wants.
    pub fn train(&self, extra: &[&str]) -> Run {
        self.train_with(&self.python(), extra)
    }

    /// `repro run` of the example's training script with the given interpreter.
    pub fn train_with(&self, py: &Path, extra: &[&str]) -> Run {
        let py = py.to_str().expect("utf-8 path");
        let mut args =
            vec!["run", "--seed", "42", "--data", "data/train.csv", "--params", "params.yaml", "--output", "model.pkl"];
        args.extend_from_slice(extra);
        args.extend_from_slice(&["--", py, "train.py"]);
        self.repro(&args)
    }

    pub fn runs(&self) -> Vec<Value> {
        match self.repro(&["runs", "--json"]).success().json() {
            Value::Array(a) => a,
            other => panic!("runs --json is not an array: {other}"),
        }
    }

    pub fn audit(&self, run: &str) -> (Value, i32) {
        let r = self.repro(&["audit", run, "--json"]);
        let code = r.code();
        (r.json(), code)
    }
}

pub struct Run {
    pub args: Vec<String>,
    pub out: Output,
}

impl Run {
    pub fn code(&self) -> i32 {
        self.out.status.code().unwrap_or(-1)
    }
    pub fn stdout(&self) -> String {
        String::from_utf8_lossy(&self.out.stdout).into_owned()
    }
    pub fn stderr(&self) -> String {
        String::from_utf8_lossy(&self.out.stderr).into_owned()
    }
    pub fn expect_code(self, code: i32) -> Self {
        assert_eq!(self.code(), code, "repro {:?}\nstdout:\n{}\nstderr:\n{}", self.args, self.stdout(), self.stderr());
        self
    }
    pub fn success(self) -> Self {
        self.expect_code(0)
    }
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.out.stdout).unwrap_or_else(|e| {
            panic!("repro {:?}: stdout is not JSON ({e}):\n{}\nstderr:\n{}", self.args, self.stdout(), self.stderr())
        })
    }
    /// The error line of a failed command: exactly one line, starting with `error:` (the
    /// progress messages before it, `repro: …`, are not part of the error).
    pub fn error_line(&self) -> String {
        let err = self.stderr();
        let lines: Vec<&str> = err.lines().filter(|l| !l.trim().is_empty() && !l.starts_with("repro: ")).collect();
        assert_eq!(lines.len(), 1, "expected one error line, got:\n{err}");
        assert!(lines[0].starts_with("error: "), "{err}");
        lines[0].to_string()
    }
}

/// A name no other test uses.
/// Ages a file, or every file under a folder, so the stat cache may trust it (files modified
/// in the last two seconds are not cached). Setting the mtime changes the ctime, so the next
/// snapshot hashes what was aged once more.
pub fn age(path: &Path) {
    if path.is_dir() {
        for e in std::fs::read_dir(path).expect("ls").flatten() {
            age(&e.path());
        }
    } else {
        let f = std::fs::File::options().write(true).open(path).expect("open");
        f.set_modified(std::time::SystemTime::now() - std::time::Duration::from_secs(60)).expect("set mtime");
    }
}

pub fn uuid_like() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0);
    format!("t{}-{}-{}", std::process::id(), nanos, N.fetch_add(1, Ordering::Relaxed))
}

/// The audit item `name` of an audit JSON report.
pub fn item<'a>(report: &'a Value, name: &str) -> &'a Value {
    report["items"]
        .as_array()
        .expect("items")
        .iter()
        .find(|i| i["name"] == name)
        .unwrap_or_else(|| panic!("no item {name} in {report}"))
}

/// The run id a `repro run --json` printed.
pub fn id_of(run: &Run) -> String {
    run.json()["id"].as_str().unwrap_or_else(|| panic!("no run id in {}", run.stdout())).to_string()
}

/// The element of a JSON array whose `name` is `name` (packages, requirements).
pub fn named<'a>(list: &'a Value, name: &str) -> &'a Value {
    list.as_array()
        .unwrap_or_else(|| panic!("not a list: {list}"))
        .iter()
        .find(|x| x["name"] == name)
        .unwrap_or_else(|| panic!("no {name} in {list}"))
}

pub fn status<'a>(report: &'a Value, name: &str) -> &'a str {
    item(report, name)["status"].as_str().expect("status")
}

/// `repro serve --port 0` on a test's store, stopped when dropped; `uri` is where it listens.
pub struct Server {
    child: std::process::Child,
    pub uri: String,
}

impl Server {
    pub fn start(t: &TestContext) -> Server {
        Server::start_with(t, &[])
    }

    /// A server with these environment variables set (another S3 endpoint, say).
    pub fn start_with(t: &TestContext, env: &[(&str, &str)]) -> Server {
        Server::start_full(t, env, &[], None)
    }

    /// A server started with these `repro serve` options.
    pub fn start_args(t: &TestContext, args: &[&str]) -> Server {
        Server::start_full(t, &[], args, None)
    }

    /// A server started with these options and a soft limit on open files, as many systems
    /// give a process (1,024).
    pub fn start_with_open_files(t: &TestContext, args: &[&str], soft: u64) -> Server {
        Server::start_full(t, &[], args, Some(soft))
    }

    fn start_full(t: &TestContext, env: &[(&str, &str)], args: &[&str], open_files: Option<u64>) -> Server {
        use std::io::BufRead;
        let mut cmd = t.cmd();
        if let Some(soft) = open_files {
            use std::os::unix::process::CommandExt;
            // SAFETY: between fork and exec the closure makes two system calls on a struct
            // on its own stack: nothing that allocates or takes a lock.
            unsafe {
                cmd.pre_exec(move || {
                    let mut lim = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
                    if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) == 0 {
                        lim.rlim_cur = soft.min(lim.rlim_max);
                        libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
                    }
                    Ok(())
                });
            }
        }
        let mut child = cmd
            .envs(env.iter().copied())
            .args(["serve", "--port", "0"])
            .args(args)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("spawn repro serve");
        let stderr = child.stderr.take().expect("stderr");
        let mut lines = std::io::BufReader::new(stderr).lines();
        let mut said = Vec::new();
        let uri = loop {
            let Some(line) = lines.next() else { panic!("repro serve stopped, saying:\n{}", said.join("\n")) };
            let line = line.expect("read");
            said.push(line.clone());
            if let Some(rest) = line.split("serving the store on ").nth(1) {
                break rest.split_whitespace().next().expect("uri").to_string();
            }
        };
        // Keep draining stderr so the server never blocks on a full pipe.
        std::thread::spawn(move || for _ in lines {});
        Server { child, uri }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One HTTP/1.1 request over a TCP socket: (status, head, body).
pub fn http(uri: &str, method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> (u16, String, String) {
    let (status, head, body) = http_bytes(uri, method, path, headers, body);
    (status, head, String::from_utf8_lossy(&body).into_owned())
}

/// The same, with the body as bytes (a chunked body put back together).
pub fn http_bytes(
    uri: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> (u16, String, Vec<u8>) {
    let addr = uri.trim_start_matches("http://");
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).expect("connect");
    let mut req = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str(&format!("Content-Length: {}\r\n\r\n", body.len()));
    s.write_all(req.as_bytes()).expect("send head");
    let _ = s.write_all(body);
    let mut raw = Vec::new();
    let _ = s.read_to_end(&mut raw);
    let at = raw.windows(4).position(|w| w == b"\r\n\r\n").map_or(raw.len(), |i| i + 4);
    let head = String::from_utf8_lossy(&raw[..at]).trim_end().to_string();
    let status = head.split_whitespace().nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
    let mut body = raw[at..].to_vec();
    if header(&head, "transfer-encoding").is_some_and(|v| v.eq_ignore_ascii_case("chunked")) {
        let mut out = Vec::new();
        let mut rest = &body[..];
        while let Some(end) = rest.windows(2).position(|w| w == b"\r\n") {
            let size = std::str::from_utf8(&rest[..end]).ok().and_then(|h| usize::from_str_radix(h.trim(), 16).ok());
            let Some(size) = size.filter(|&n| n > 0 && rest.len() >= end + 2 + n) else { break };
            out.extend_from_slice(&rest[end + 2..end + 2 + size]);
            rest = &rest[(end + 4 + size).min(rest.len())..];
        }
        body = out;
    }
    (status, head, body)
}

pub fn header<'a>(head: &'a str, name: &str) -> Option<&'a str> {
    head.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.trim().eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

/// A plain GET: (status, body).
pub fn http_get(uri: &str, path: &str) -> (u16, String) {
    let (status, _, body) = http(uri, "GET", path, &[], b"");
    (status, body)
}

/// The value of the hidden form field `name` in a page.
pub fn hidden_field(page: &str, name: &str) -> Option<String> {
    let at = page.find(&format!("name=\"{name}\" value=\""))?;
    let rest = &page[at..].split_once("value=\"")?.1;
    rest.split_once('"').map(|(v, _)| v.to_string())
}

/// What a browser has after opening the sign-in page: the nonce cookie (`name=value`, to
/// send back as `Cookie`) and the CSRF token its form carries.
pub fn sign_in_form(uri: &str) -> (String, String) {
    let (code, head, page) = http(uri, "GET", "/ui/login", &[], b"");
    assert_eq!(code, 200, "{head}");
    let cookie = head
        .lines()
        .filter_map(|l| l.split_once(':'))
        .filter(|(k, _)| k.trim().eq_ignore_ascii_case("set-cookie"))
        .map(|(_, v)| v.trim())
        .find(|v| v.starts_with("repro_csrf="))
        .and_then(|v| v.split(';').next())
        .expect("the sign-in page sets its nonce cookie")
        .to_string();
    (cookie, hidden_field(&page, "csrf").expect("the sign-in form carries a CSRF token"))
}
