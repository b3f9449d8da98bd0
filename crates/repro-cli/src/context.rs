//! What every command starts from, resolved once: the output mode, the store or server it
//! works on, and the variables repro reads.
//!
//! A setting is resolved flag → environment variable → the store's `.repro/repro.toml` →
//! default. clap does the first two (`env = …` on the flag, so `--help` shows both); the
//! store's settings are read once by `Store::open`. [`VARIABLES`] names every variable any
//! part of repro reads or sets, so there is one place to look (a test keeps it complete).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result};
use repro_store::Store;

use crate::cli::Cli;
use crate::progress::Ui;
use crate::source::Source;

/// Who reads a variable, and what it means.
pub struct Variable {
    pub name: &'static str,
    pub meaning: &'static str,
}

/// Every environment variable repro reads for its own behaviour or sets for the command it
/// runs. `REPRO_*` variables read by a flag are the flag's default. Beside these, the variables
/// that change numeric results are recorded with each run when set
/// (`repro_exec::run::DETERMINISM_VARIABLES`); they are not settings of repro.
pub const VARIABLES: &[Variable] = &[
    Variable { name: "REPRO_STORE", meaning: "--store: the store folder (default: found by walking up, like git)" },
    Variable { name: "REPRO_SERVER", meaning: "--server: read from a `repro serve` instead of a local store" },
    Variable { name: "REPRO_TOKEN", meaning: "--token: the token --server sends" },
    Variable { name: "REPRO_KEY_DIR", meaning: "where `repro key generate` writes keys and signing looks for them" },
    Variable { name: "XDG_CONFIG_HOME", meaning: "keys go to $XDG_CONFIG_HOME/repro when REPRO_KEY_DIR is unset" },
    Variable { name: "HOME", meaning: "keys go to ~/.config/repro otherwise; also where Python user sites are" },
    Variable { name: "REPRO_SEED", meaning: "set for the command: the run's seed" },
    Variable { name: "REPRO_PARAMS", meaning: "set for the command: a JSON file of the flattened params" },
    Variable { name: "REPRO_METRICS", meaning: "set for the command: a file it appends JSON-line metrics to" },
    Variable {
        name: "REPRO_PROBE_DIR",
        meaning: "set for the command (with the probe first on PYTHONPATH): where each Python process writes what the probe saw",
    },
    Variable {
        name: "REPRO_IMAGE",
        meaning: "--image: the container image `repro run` records (NAME[:TAG][@sha256:…])",
    },
    Variable {
        name: "REPRO_CONTAINER_ROOT",
        meaning: "the folder container detection reads (/.dockerenv, /run/.containerenv, /proc/1/cgroup); / when unset",
    },
    Variable {
        name: "KUBERNETES_SERVICE_HOST",
        meaning: "set in every Kubernetes pod: the run is recorded as in a container",
    },
    Variable { name: "REPRO_RUN_ID", meaning: "set for the command: the run's id" },
    Variable { name: "REPRO_PROVENANCE_OUT", meaning: "named in provenance: where an attestation was asked to go" },
    Variable { name: "PYTHONHASHSEED", meaning: "set for the command to the run's seed" },
    Variable { name: "MLFLOW_TRACKING_URI", meaning: "set for the command: the run's own tracking server" },
    Variable { name: "MLFLOW_TRACKING_TOKEN", meaning: "set for the command: the token of that server" },
    Variable { name: "MLFLOW_RUN_ID", meaning: "set for the command: its MLflow run is the repro run" },
    Variable { name: "MLFLOW_EXPERIMENT_ID", meaning: "read: the experiment a run goes in; set for the command" },
    Variable { name: "MLFLOW_EXPERIMENT_NAME", meaning: "read: the experiment a run goes in (by name)" },
    Variable { name: "MLFLOW_REGISTRY_URI", meaning: "removed for a replay: its registry calls are held" },
    Variable { name: "MLFLOW_TRACKING_USERNAME", meaning: "removed for a replay" },
    Variable { name: "MLFLOW_TRACKING_PASSWORD", meaning: "removed for a replay" },
    Variable { name: "OMP_NUM_THREADS", meaning: "set for the command to the usable cores when unset" },
    Variable { name: "MKL_NUM_THREADS", meaning: "set for the command to the usable cores when unset" },
    Variable { name: "OPENBLAS_NUM_THREADS", meaning: "set for the command to the usable cores when unset" },
    Variable { name: "PYTHONUNBUFFERED", meaning: "set for the command (1) when unset, so logs interleave" },
    Variable { name: "PYTHONPATH", meaning: "a replay points it at the rebuilt code" },
    Variable { name: "PATH", meaning: "finding the Python interpreter and the command" },
    Variable { name: "VIRTUAL_ENV", meaning: "the active virtualenv's interpreter comes first" },
    Variable { name: "CONDA_PREFIX", meaning: "the active conda environment's interpreter comes next" },
    Variable { name: "USER", meaning: "who ran it, when git has no user.name" },
    Variable { name: "LOGNAME", meaning: "who ran it, when USER is unset too" },
    Variable { name: "GIT_TERMINAL_PROMPT", meaning: "set to 0 for the git repro runs: it never waits for a password" },
    Variable { name: "GIT_ASKPASS", meaning: "set to `true` for the git repro runs, for the same reason" },
    Variable {
        name: "GIT_OPTIONAL_LOCKS",
        meaning: "set to 0 for the git repro runs: reading never takes git's locks",
    },
    Variable { name: "HOSTNAME", meaning: "the host recorded when the system call fails" },
    Variable { name: "PGPASSWORD", meaning: "the PostgreSQL password (never written to repro.toml)" },
    Variable { name: "AWS_ENDPOINT_URL", meaning: "the S3 endpoint (never written to repro.toml)" },
    Variable { name: "AWS_ACCESS_KEY_ID", meaning: "S3 credentials" },
    Variable { name: "AWS_SECRET_ACCESS_KEY", meaning: "S3 credentials" },
    Variable { name: "AWS_REGION", meaning: "the S3 region" },
    Variable { name: "AWS_ALLOW_HTTP", meaning: "true: S3 over plain HTTP" },
    Variable { name: "RUST_LOG", meaning: "what -v logs, in tracing's filter syntax" },
    Variable { name: "NO_COLOR", meaning: "set: no colour in logs" },
    Variable { name: "REPRO_TEST_PG", meaning: "tests only: run the suite on this PostgreSQL server" },
    Variable { name: "REPRO_TEST_S3_ENDPOINT", meaning: "tests only: the S3 endpoint the suite's stores use" },
    Variable { name: "REPRO_TEST_S3_BUCKET", meaning: "tests only: the bucket on that endpoint" },
    Variable { name: "REPRO_TEST_VENV", meaning: "tests only: where the shared test virtualenv lives" },
    Variable { name: "REPRO_TEST_FRAMEWORKS_VENV", meaning: "tests only: where the frameworks test virtualenv lives" },
    Variable { name: "REPRO_TEST_REQUIRE_ALL", meaning: "tests only: a missing optional tool fails the test" },
    Variable {
        name: "REPRO_TEST_REFLINK_DIR",
        meaning: "tests only: a folder on a file system with reflinks (scripts/reflink-fs.sh), for the reflinked-restore tests",
    },
];

/// The "Environment variables" section of `repro --help`.
pub fn variables_help() -> String {
    let width = VARIABLES.iter().map(|v| v.name.len()).max().unwrap_or(0);
    let mut s = String::from("Environment variables (read by repro, or set for the command it runs):\n");
    for v in VARIABLES.iter().filter(|v| !v.meaning.starts_with("tests only")) {
        s.push_str(&format!("  {:<width$}  {}\n", v.name, v.meaning));
    }
    s
}

/// The global flags, resolved once, and what commands ask of them.
pub struct Context {
    pub json: bool,
    store_dir: Option<PathBuf>,
    server: Option<String>,
    token: Option<String>,
}

impl Context {
    pub fn new(cli: &Cli) -> Context {
        Context {
            json: cli.json,
            store_dir: cli.store.clone(),
            // An empty REPRO_SERVER (`REPRO_SERVER= repro …`) means no server, as an unset one.
            server: cli.server.clone().filter(|s| !s.trim().is_empty()),
            token: cli.token.clone(),
        }
    }

    /// `--store`, when given.
    pub fn store_dir(&self) -> Option<&Path> {
        self.store_dir.as_deref()
    }

    pub fn server(&self) -> Option<&str> {
        self.server.as_deref()
    }

    /// The local store: `--store`, else found by walking up from the current folder.
    pub fn store(&self) -> Result<Store> {
        let root = match self.store_dir() {
            Some(dir) => repro_store::explicit(dir)?,
            None => repro_store::discover(&self.cwd()?)?,
        };
        Ok(Store::open(&root)?)
    }

    /// Where reads (and registry changes) go: the local store or `--server`.
    pub fn source(&self) -> Result<Source> {
        match self.server() {
            Some(url) => Source::remote(url, self.token.clone()),
            None => Ok(Source::Local(Box::new(self.store()?))),
        }
    }

    pub fn cwd(&self) -> Result<PathBuf> {
        std::env::current_dir().context("cannot read the current folder")
    }

    /// The process environment, for the commands that record or pass it on.
    pub fn vars(&self) -> BTreeMap<String, String> {
        std::env::vars().collect()
    }

    /// Progress on stderr; silent under --json.
    pub fn ui(&self) -> Ui {
        Ui::new(self.json)
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::VARIABLES;

    fn sources(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
        for e in std::fs::read_dir(dir).expect("read a source folder").flatten() {
            let p = e.path();
            if p.is_dir() {
                sources(&p, out);
            } else if p.extension().is_some_and(|x| x == "rs") {
                out.push(p);
            }
        }
    }

    /// The list is the one place to look only while it is complete: every variable a
    /// crate reads (`env::var`, `var_os`, a `vars.get`) or sets (`.env(`, `env_remove`) and
    /// every `REPRO_*` name in the sources is in it (or among the recorded ones).
    #[test]
    fn every_variable_repro_reads_is_listed() {
        let crates = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let mut files = Vec::new();
        for c in std::fs::read_dir(&crates).expect("read crates/").flatten() {
            let src = c.path().join("src");
            if src.is_dir() {
                sources(&src, &mut files);
            }
        }
        assert!(files.len() > 20, "found only {} source files under {}", files.len(), crates.display());
        let read = regex::Regex::new(
            r#"(?:var|var_os|vars\.get|\.env|env_remove|contains_key)\("([A-Z][A-Z0-9_]{2,})"|"(REPRO_[A-Z0-9_]+)""#,
        )
        .expect("regex");
        let recorded = repro_exec::run::DETERMINISM_VARIABLES;
        let mut missing = std::collections::BTreeSet::new();
        for f in &files {
            let text = std::fs::read_to_string(f).expect("read a source file");
            for c in read.captures_iter(&text) {
                let name = c.get(1).or_else(|| c.get(2)).map(|m| m.as_str()).unwrap_or_default();
                if !VARIABLES.iter().any(|v| v.name == name) && !recorded.contains(&name) {
                    missing.insert(format!("{name} ({})", f.display()));
                }
            }
        }
        assert!(missing.is_empty(), "variables read but not in context::VARIABLES: {missing:?}");
    }
}
