//! The test harness the crates' tests share (dev-only, never published): a scratch
//! PostgreSQL database per test, the pinned test virtualenvs, and the rule for tests that
//! need a tool `cargo test` cannot install.
//!
//! It depends on no repro crate, so any of them can take it as a dev-dependency.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The workspace's root folder.
pub fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").canonicalize().expect("workspace root")
}

/// A part of a test needs a tool `cargo test` cannot install by itself (a browser from the
/// system's packages). Without it the part is skipped with the command that installs it,
/// unless `REPRO_TEST_REQUIRE_ALL` is set (scripts/test-all.sh and CI set it), where a
/// missing tool fails the test: CI must never pass by skipping.
pub fn have_tool(present: bool, what: &str, install: &str) -> bool {
    if present {
        return true;
    }
    let message = format!("{what} is missing: {install} (or run scripts/test-all.sh, which installs everything)");
    if std::env::var_os("REPRO_TEST_REQUIRE_ALL").is_some_and(|v| !v.is_empty()) {
        panic!("{message}; REPRO_TEST_REQUIRE_ALL is set, so nothing may be skipped");
    }
    eprintln!("skipped: {message}");
    false
}

/// The shared test virtualenv, created on first use (file-locked across test processes).
pub fn venv() -> PathBuf {
    let ws = workspace();
    let dir = std::env::var_os("REPRO_TEST_VENV").map(PathBuf::from).unwrap_or_else(|| ws.join("target/test-venv"));
    cached_venv(&dir, &ws.join("requirements-test.txt"))
}

/// The frameworks virtualenv (LightGBM, XGBoost, PyTorch, ONNX, a notebook kernel …,
/// pinned in `requirements-frameworks.txt`): 4 GB, so it is built once per checkout and may
/// be a symlink to one shared by several (`REPRO_TEST_FRAMEWORKS_VENV` names another folder).
pub fn frameworks_venv() -> PathBuf {
    let ws = workspace();
    let dir = std::env::var_os("REPRO_TEST_FRAMEWORKS_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| ws.join("target/test-venv-frameworks"));
    cached_venv(&dir, &ws.join("requirements-frameworks.txt"))
}

/// A virtualenv at `dir` holding exactly `requirements`, built once and reused while the
/// requirements are unchanged (a stamp holds a copy of them), file-locked across tests.
///
/// The path returned is the real folder: where `target/test-venv` is a symlink to a venv
/// other checkouts share, `cp -a` of the link (a test's private copy) would copy the link,
/// and the test's `pip install` would change the shared venv under everyone.
pub fn cached_venv(dir: &Path, requirements: &Path) -> PathBuf {
    let real = |d: &Path| std::fs::canonicalize(d).unwrap_or_else(|_| d.to_path_buf());
    let stamp_want = std::fs::read_to_string(requirements).expect("requirements file");
    let stamp = dir.join(".repro-test-stamp");
    if std::fs::read_to_string(&stamp).ok().as_deref() == Some(stamp_want.as_str()) {
        return real(dir);
    }
    std::fs::create_dir_all(dir.parent().expect("parent")).expect("mkdir");
    let lock = std::fs::File::create(dir.with_extension("lock")).expect("lock file");
    lock.lock().expect("lock the venv");
    if std::fs::read_to_string(&stamp).ok().as_deref() != Some(stamp_want.as_str()) {
        let _ = std::fs::remove_dir_all(dir);
        let ok = Command::new("python3").args(["-m", "venv"]).arg(dir).status().expect("python3 -m venv").success();
        assert!(ok, "python3 -m venv failed: install python3-venv (or run scripts/test-all.sh, which does)");
        let ok = Command::new(dir.join("bin/pip"))
            .args(["install", "-q", "--disable-pip-version-check", "-r"])
            .arg(requirements)
            .status()
            .expect("pip install")
            .success();
        assert!(
            ok,
            "pip install -r {} failed: the tests need PyPI (or a pip cache holding these wheels); \
             scripts/test-all.sh builds every test virtualenv ahead of time",
            requirements.display()
        );
        std::fs::write(&stamp, &stamp_want).expect("stamp");
    }
    real(dir)
}

/// The shared backends the suite runs against when `REPRO_TEST_PG` (a PostgreSQL server URL
/// without a database) is set: every `repro init` gets a database of its own there, and with
/// `REPRO_TEST_S3` (an S3 endpoint URL) a bucket prefix of its own too. Unset: SQLite and a folder.
pub fn shared_backends() -> bool {
    std::env::var_os("REPRO_TEST_PG").is_some_and(|v| !v.is_empty())
}

/// The S3 bucket the suite's stores share (each under its own prefix), from `REPRO_TEST_S3_BUCKET`.
pub fn s3_bucket() -> Option<String> {
    std::env::var("REPRO_TEST_S3_BUCKET").ok().filter(|v| !v.is_empty())
}

/// A database of its own on the PostgreSQL server `REPRO_TEST_PG` names (a URL without the
/// database, e.g. `postgres://postgres@127.0.0.1:5432`), dropped when this is dropped: the
/// store's tests run against PostgreSQL with that variable set, and against SQLite without.
pub struct ScratchDb {
    admin: String,
    name: String,
    /// The URL of the new database.
    pub url: String,
}

impl ScratchDb {
    /// `None` when `REPRO_TEST_PG` is unset.
    pub fn create() -> Option<ScratchDb> {
        let base = std::env::var("REPRO_TEST_PG").ok().filter(|s| !s.is_empty())?;
        let base = base.trim_end_matches('/').to_string();
        let name = format!("repro_test_{}", uuid::Uuid::new_v4().simple());
        let admin = format!("{base}/postgres");
        let mut client = postgres::Client::connect(&admin, postgres::NoTls)
            .unwrap_or_else(|e| panic!("REPRO_TEST_PG={base}: cannot connect: {}", pg_message(&e)));
        client
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .unwrap_or_else(|e| panic!("cannot create test database {name}: {}", pg_message(&e)));
        Some(ScratchDb { admin, url: format!("{base}/{name}"), name })
    }
}

impl Drop for ScratchDb {
    fn drop(&mut self) {
        if let Ok(mut client) = postgres::Client::connect(&self.admin, postgres::NoTls) {
            let _ = client.batch_execute(&format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name));
        }
    }
}

/// A PostgreSQL error as the server said it (the client's own Display only says "db error").
fn pg_message(e: &postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => db.message().to_string(),
        None => e.to_string(),
    }
}
