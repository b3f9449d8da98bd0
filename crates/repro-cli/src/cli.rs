//! The command line, in one place: every command, flag and `REPRO_*` variable (the model
//! registry's subcommands in `cli/model.rs`). Doc comments are the help text.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

mod model;
pub use model::ModelCmd;

/// The variables repro reads (the CLI resolves them once, here).
pub const ENV_STORE: &str = "REPRO_STORE";
pub const ENV_SERVER: &str = "REPRO_SERVER";
pub const ENV_TOKEN: &str = "REPRO_TOKEN";

#[derive(Parser, Debug)]
#[command(
    name = "repro",
    version,
    about = "Capture, audit and replay machine-learning training runs",
    long_about = "repro records every ingredient of a training run (code, environment, data, \
hyperparameters, seed, script, outputs) into an immutable, content-addressed store, and \
audits whether a run can be rebuilt.",
    after_help = "Examples:\n  repro init\n  repro run --seed 42 --data data/train.csv --params params.yaml --output model.pkl -- python train.py\n  repro audit latest\n  repro replay latest\n  repro diff baseline latest\n  REPRO_SERVER=http://models.internal:5000 REPRO_TOKEN=repro_… repro audit pricing@prod   (a shared store)\n\nExit codes: 0 ok; 1 the checked thing failed (audit incomplete, fsck found damage, --strict refused); 2 bad input; `repro run` exits with the command's own code."
)]
pub struct Cli {
    /// The store to use: a `.repro` folder or the folder holding it (default: found by
    /// walking up from the current folder, like git).
    #[arg(long, global = true, env = ENV_STORE, value_name = "DIR")]
    pub store: Option<PathBuf>,

    /// Read from (and change the registry of) the store a `repro serve` shares, instead of
    /// a local one: runs, show, audit, diff, data ls/show, env ls/show/diff/parity, model
    /// ls/show/verify/promote/approve/archive. Commands that need this machine (run, replay,
    /// init, data snapshot, …) refuse it. Example: --server http://10.0.0.5:5000
    #[arg(long, global = true, env = ENV_SERVER, value_name = "URL")]
    pub server: Option<String>,

    /// The token `--server` sends (`repro token create` on the server's store makes one):
    /// read for reading, write to approve, admin to promote or archive.
    #[arg(long, global = true, env = ENV_TOKEN, hide_env_values = true, value_name = "TOKEN")]
    pub token: Option<String>,

    /// Print machine-readable JSON on stdout instead of text.
    #[arg(long, global = true)]
    pub json: bool,

    /// Log what repro does on stderr (-v, -vv); RUST_LOG works too.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,

    #[command(subcommand)]
    pub command: Cmd,
}

#[derive(Args, Debug, Default)]
pub struct InitArgs {
    /// Keep the metadata in this PostgreSQL database (postgres://USER@HOST[:PORT]/DB).
    #[arg(long, value_name = "URL")]
    pub db: Option<String>,
    /// Keep the objects in this S3 bucket and prefix (s3://BUCKET[/PREFIX]).
    #[arg(long, value_name = "URL")]
    pub objects: Option<String>,
}

#[derive(Args, Debug, Default)]
pub struct MigrateArgs {
    #[command(flatten)]
    pub backends: InitArgs,
    /// Where to: a postgres:// URL (the metadata) or an s3:// URL (the objects); give it twice
    /// for both. The same as --db / --objects.
    #[arg(long, value_name = "URL")]
    pub to: Vec<String>,
}

#[derive(Subcommand, Debug)]
pub enum Cmd {
    /// Create a store (.repro/) in the current folder.
    ///
    /// By default the metadata is an embedded SQLite database and the objects a folder,
    /// both inside .repro/. A team shares one store on PostgreSQL and S3-compatible object
    /// storage: every machine (and `repro serve`) that runs `repro init` with the same
    /// --db and --objects works on the same runs, models and objects. The S3 endpoint and
    /// credentials come from AWS_ENDPOINT_URL, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY,
    /// AWS_REGION (and AWS_ALLOW_HTTP=true for plain HTTP); a database password from
    /// PGPASSWORD. Neither is written into .repro/repro.toml.
    ///
    /// Examples:
    ///   repro init
    ///   repro init --db postgres://repro@db.internal/ml --objects s3://ml-artifacts/repro
    Init(InitArgs),

    /// Move this store onto PostgreSQL and/or S3-compatible object storage.
    ///
    /// Copies every table into the (empty) database and every object into the bucket, then
    /// checks the copy: each table's row count and a digest of its rows must match, and each
    /// object is read back from the bucket and hashed. Only then does .repro/repro.toml switch
    /// to the new backends; on any failure the store stays as it was. Other machines then
    /// join with `repro init --db … --objects …`. Credentials come from PGPASSWORD and the
    /// AWS_* variables, as for `repro init`.
    ///
    /// Examples:
    ///   repro migrate-store --db postgres://repro@db.internal/ml --objects s3://ml-artifacts/repro
    ///   repro migrate-store --to postgres://repro@db.internal/ml --to s3://ml-artifacts/repro
    MigrateStore(MigrateArgs),

    /// Run a command and record everything needed to reproduce it.
    ///
    /// The command runs with REPRO_SEED, PYTHONHASHSEED, REPRO_PARAMS (a JSON file of the
    /// flattened params) and REPRO_METRICS (append JSON lines such as
    /// {"metric": "acc", "value": 0.9, "step": 1}) set; unset OMP/MKL/OPENBLAS thread counts
    /// are fixed to this machine's usable cores. repro exits with the command's exit code.
    ///
    /// A notebook given alone (repro run nb.ipynb) is executed with nbclient in the python3
    /// first on PATH, its executed copy written beside it as NB.executed.ipynb (or to the
    /// --output that names an .ipynb) and recorded as an output; its code cells are its
    /// digest. Launchers (torchrun, python -m torch.distributed.run, accelerate launch,
    /// deepspeed, jupyter nbconvert) are recorded as such, with the script they start.
    ///
    /// Examples:
    ///   repro run --name baseline --seed 42 --data data/train.csv --params params.yaml --output model.pkl -- python train.py
    ///   repro run --seed 42 --data data/ analysis.ipynb
    ///   repro run --seed 42 -- torchrun --nproc_per_node=2 train.py
    ///   repro run --image ghcr.io/org/train@sha256:… -- python train.py
    #[command(verbatim_doc_comment)]
    Run(RunArgs),

    /// List runs, newest first.
    ///
    /// Example: repro runs --limit 5
    Runs {
        /// Show at most N runs.
        #[arg(long, value_name = "N")]
        limit: Option<usize>,
    },

    /// Show everything recorded about a run.
    ///
    /// RUN is a run id, a unique id prefix (4+ characters), a run name, `latest`, or a model
    /// version (pricing@3, pricing@prod).
    /// Example: repro show latest
    Show {
        /// The run (id, 4+ character prefix, name, `latest`, or a model version NAME@V / NAME@STAGE).
        run: String,
    },

    /// Check that a run has every ingredient an auditor asks for.
    ///
    /// Exit 0 when complete, 1 when something is missing (with --strict, warnings count as missing).
    /// Example: repro audit latest --strict
    Audit {
        /// The run (id, 4+ character prefix, name, `latest`, or a model version NAME@V / NAME@STAGE).
        run: String,
        /// Treat warnings (dirty tree, loose pins, generated seed …) as missing.
        #[arg(long)]
        strict: bool,
    },

    /// Rebuild a past run from the store, run it again, and say whether the result is the same.
    ///
    /// The code is cloned at the recorded commit with the recorded diff and untracked files,
    /// every input is restored and verified, the interpreter is checked against the recorded
    /// packages (or, with --create-env, a virtualenv with exactly those versions is built), and
    /// the command runs with the recorded seed, params and variables. Outputs are compared by
    /// digest, metrics within --tolerance; when bytes differ, `[replay] compare` in repro.toml
    /// may judge them. The replay is a run of its own, linked to the original.
    ///
    /// A run another store recorded (imported with `repro bundle import`, or a replay of one)
    /// runs only when a key listed in `[trust] signers` signed its bundle, or with
    /// --trust-code. MLflow registry calls the command makes are answered and listed in the
    /// report, never written to the registry.
    ///
    /// Exit 0: identical or equivalent; 1: differs, or the environment differs; 2: cannot rebuild,
    /// or foreign code refused.
    ///
    /// Example: repro replay baseline
    ///
    /// Example: repro replay 3f2a --create-env --tolerance rmse=0.001 --keep
    Replay(ReplayArgs),

    /// Explain why two runs differ: every ingredient side by side, then the likely causes.
    ///
    /// Example: repro diff baseline latest
    Diff {
        /// The first run (id, 4+ character prefix, name, or `latest`).
        run_a: String,
        /// The second run.
        run_b: String,
    },

    /// Write the audit report of a model version: one self-contained HTML file (no network,
    /// no script) an auditor can read without repro and print to PDF — the checklist with
    /// fixes, the lineage picture, the environment, metrics, the registry history with
    /// approvals and signatures verified, replays, and what it cannot vouch for.
    ///
    /// Example: repro report pricing@1 -o pricing-1.html
    ///
    /// Example: repro report pricing@prod -o - > report.html
    Report {
        /// The version: NAME@V or NAME@STAGE.
        model: String,
        /// Where to write it (default: report-NAME-V.html here, e.g. report-pricing-1.html; `-` for stdout).
        #[arg(short, long, value_name = "FILE")]
        output: Option<PathBuf>,
    },

    /// Data snapshots and named datasets.
    #[command(subcommand)]
    Data(DataCmd),

    /// Python environments.
    #[command(subcommand)]
    Env(EnvCmd),

    /// The model registry: versions, stages, approvals, signatures.
    ///
    /// NAME@V (pricing@3) and NAME@STAGE (pricing@prod) also work wherever a run is
    /// accepted: show, audit, replay, diff, env parity, env export.
    #[command(subcommand)]
    Model(ModelCmd),

    /// Signing keys (ed25519): yours, and the ones this store trusts.
    ///
    /// Your key pair (repro.key, repro.pub) lives in $REPRO_KEY_DIR, else
    /// $XDG_CONFIG_HOME/repro, else ~/.config/repro; `repro model sign`, `model approve` and
    /// `bundle export` use it when no --key is given, and `--key repro.pub` finds it there.
    /// The keys a store trusts, and for what, are listed under [trust] in .repro/repro.toml.
    #[command(subcommand)]
    Key(KeyCmd),

    /// Audit bundles: one file holding everything needed to audit and replay a model version elsewhere.
    #[command(subcommand)]
    Bundle(BundleCmd),

    /// API tokens for `repro serve`: once one exists, every request must carry one.
    #[command(subcommand)]
    Token(TokenCmd),

    /// OpenLineage events ([openlineage] in .repro/repro.toml): events the endpoint did not take
    /// wait in .repro/openlineage/queue/ and go out before the next run's.
    #[command(subcommand)]
    Lineage(LineageCmd),

    /// Serve the store over HTTP: the MLflow tracking API (MLflow clients log into repro), the
    /// native JSON API under /api/v1 (what `repro --server URL` reads) and the web UI at /ui.
    ///
    /// It answers only to the names it knows in the Host header (loopback, the address it
    /// listens on, and --allowed-host), refuses requests from other sites' pages (Origin),
    /// and closes connections that stall.
    ///
    /// Example: repro serve --port 5000   (then MLFLOW_TRACKING_URI=http://127.0.0.1:5000, or
    /// REPRO_SERVER=http://127.0.0.1:5000 repro runs)
    ///
    /// Example: repro serve --host 0.0.0.0 --allowed-host repro.internal --allowed-host 10.0.0.5
    Serve {
        /// The address to listen on; loopback by default.
        #[arg(long, default_value = "127.0.0.1")]
        host: String,
        /// The port (0: any free one).
        #[arg(long, default_value_t = 5000)]
        port: u16,
        /// Another name (or address) clients reach the server by, as it appears in the Host
        /// header, at any port; repeat for each. Needed with --host 0.0.0.0: loopback names
        /// and the listening address are the only ones allowed otherwise.
        #[arg(long = "allowed-host", value_name = "NAME")]
        allowed_hosts: Vec<String>,
        /// The address of a reverse proxy that terminates TLS: its X-Forwarded-Proto: https
        /// makes the sign-in cookie Secure. Repeat for each; the header is ignored from
        /// anyone else.
        #[arg(long = "trusted-proxy", value_name = "IP")]
        trusted_proxies: Vec<std::net::IpAddr>,
        /// Serve at most this many connections at once (fewer if the open-file limit is
        /// lower); at the cap, the connection idle longest is closed for a new one.
        #[arg(long, value_name = "N", default_value_t = 4096, value_parser = clap::value_parser!(u32).range(1..))]
        max_connections: u32,
    },

    /// Re-hash every object and check every reference and the registry's event chain; exit 1
    /// when anything is damaged.
    ///
    /// Example: repro fsck
    Fsck,

    /// Print the completion script for a shell on stdout. The wheel (pip/uv) already
    /// installs the bash, zsh and fish ones under its environment's share/ folder.
    ///
    /// Examples:
    ///   repro completions bash > ~/.local/share/bash-completion/completions/repro
    ///   repro completions zsh > ~/.zfunc/_repro      (with fpath+=~/.zfunc before compinit)
    ///   repro completions fish > ~/.config/fish/completions/repro.fish
    ///   repro completions powershell >> $PROFILE
    #[command(verbatim_doc_comment)]
    Completions {
        /// bash, zsh, fish, powershell or elvish.
        shell: clap_complete::Shell,
    },

    /// The manual pages: repro(1) on stdout, or with --out one page per command
    /// (repro.1, repro-run.1, repro-model-promote.1, …) written into a folder.
    ///
    /// Examples:
    ///   repro man | man -l -
    ///   repro man --out ~/.local/share/man/man1
    #[command(verbatim_doc_comment)]
    Man {
        /// The folder to write every page into (created when missing).
        #[arg(long, short, value_name = "DIR")]
        out: Option<PathBuf>,
    },
}

#[derive(clap::ValueEnum, Clone, Copy, Debug)]
pub enum Role {
    Read,
    Write,
    Admin,
}

#[derive(Subcommand, Debug)]
pub enum LineageCmd {
    /// Send the queued events now, oldest first, stopping at the first the endpoint does not
    /// take; exit 1 while events stay queued or were refused.
    ///
    /// Example: repro lineage flush
    Flush,
}

#[derive(Subcommand, Debug)]
pub enum TokenCmd {
    /// Create a token and print it (once: only its hash is stored).
    ///
    /// Example: repro token create --role write --name ci   (then MLFLOW_TRACKING_TOKEN=<token>)
    Create {
        /// read: GET and searches; write: everything a client logs, and model approvals;
        /// admin: all of it, model promote and archive included.
        #[arg(long, value_enum)]
        role: Role,
        /// Who or what the token is for: a person's name, or a purpose ("ci").
        #[arg(long, default_value = "")]
        name: String,
        /// The person's e-mail: one person counts once among approvers, however many
        /// tokens or keys they hold.
        #[arg(long, value_name = "EMAIL")]
        email: Option<String>,
        /// The person's public key (PEM): approvals sent with this token must be signed by
        /// it. Also trusts it as an approver in .repro/repro.toml. Needs --email.
        #[arg(long, value_name = "PUBFILE", requires = "email")]
        approver_key: Option<PathBuf>,
    },
    /// List tokens (ids, roles, names; never the tokens).
    Ls,
    /// Revoke a token by its id.
    Revoke {
        /// The id `repro token ls` shows.
        id: String,
    },
}

#[derive(Subcommand, Debug)]
pub enum KeyCmd {
    /// Create an ed25519 key pair: DIR/repro.key (private, mode 0600) and DIR/repro.pub (PEM).
    ///
    /// Example: repro key generate --out keys/
    Generate {
        /// Where to write the keys (default: $REPRO_KEY_DIR, else $XDG_CONFIG_HOME/repro, else
        /// ~/.config/repro).
        #[arg(long, value_name = "DIR")]
        out: Option<PathBuf>,
    },
    /// Show a public key's id (default: your own key), and whether this store trusts it.
    ///
    /// Example: repro key show ~/.config/repro/repro.pub
    Show {
        /// A public or private key file (PEM).
        file: Option<PathBuf>,
    },
    /// List the keys this store trusts ([trust] in .repro/repro.toml), and your own key.
    ///
    /// Example: repro key ls
    Ls,
    /// Trust a public key: copy it to .repro/keys/<keyid>.pub and list it in [trust].
    ///
    /// Example: repro key add ada.pub --approver --name "Ada Lovelace <ada@corp.example>"
    Add {
        /// The public key file (PEM, as `repro key generate` writes repro.pub).
        file: PathBuf,
        /// Its approvals count towards stages that need signed approvals.
        #[arg(long)]
        approver: bool,
        /// Its bundles, provenance signatures and replay verdicts are trusted.
        #[arg(long)]
        signer: bool,
        /// Whose key it is: "Name <email>" (one person counts once among approvers).
        #[arg(long, value_name = "WHO")]
        name: Option<String>,
    },
}

#[derive(Subcommand, Debug)]
pub enum BundleCmd {
    /// Write one tar file with everything needed to audit and replay a model version
    /// elsewhere: run record, code (git bundle + diff), environment, artifact, metrics,
    /// logs, attestations, public keys (and the data, with --include-data).
    ///
    /// Example: repro bundle export pricing@3 -o pricing-v3.tar --include-data
    Export {
        /// NAME@V or NAME@STAGE.
        model: String,
        /// The tar file to write.
        #[arg(short, long, value_name = "FILE")]
        output: PathBuf,
        /// Include the content of the input data (default: only their manifests and digests).
        #[arg(long)]
        include_data: bool,
        /// Sign the bundle's manifest with this private key (default: the key of
        /// `repro key generate`, when there is one).
        #[arg(long, value_name = "FILE")]
        key: Option<PathBuf>,
        /// Do not sign the bundle's manifest.
        #[arg(long, conflicts_with = "key")]
        unsigned: bool,
    },

    /// Import a bundle into this store (even an empty one), after verifying every digest
    /// and signature; a damaged bundle is refused and nothing is imported. Says who signed the
    /// bundle and whether that key is trusted (the --key given, or listed in `[trust]`): a
    /// valid signature by an unknown key proves integrity, not authority, and replaying the
    /// bundle's runs then asks for `repro replay --trust-code`.
    ///
    /// Example: repro bundle import pricing-v3.tar
    Import {
        /// The tar file.
        file: PathBuf,
        /// A public key you trust (PEM): the bundle's manifest (or, for an unsigned manifest,
        /// the model version) must be signed by it.
        #[arg(long, value_name = "PUBFILE")]
        key: Option<PathBuf>,
    },
}

#[derive(Args, Debug)]
pub struct RunArgs {
    /// A name for the run (several runs may share one; RUN then means the newest).
    #[arg(long)]
    pub name: Option<String>,
    /// The random seed, exported as REPRO_SEED and PYTHONHASHSEED (generated and flagged when absent).
    #[arg(long, value_parser = clap::value_parser!(u64).range(0..=4_294_967_295))]
    pub seed: Option<u64>,
    /// An input file or folder, snapshotted before the run (repeatable).
    #[arg(long, value_name = "PATH")]
    pub data: Vec<PathBuf>,
    /// A hyperparameter file (YAML, JSON or TOML; nested keys become a.b.c) (repeatable).
    #[arg(long, value_name = "FILE")]
    pub params: Vec<PathBuf>,
    /// One hyperparameter, KEY=VALUE; wins over --params (repeatable).
    #[arg(long = "param", value_name = "KEY=VALUE")]
    pub param: Vec<String>,
    /// The environment file (default: environment.yml, requirements.txt, uv.lock, poetry.lock
    /// or pyproject.toml, nearest first), or a registered environment NAME:VERSION the
    /// interpreter must match (see `repro env register`).
    #[arg(long = "env", value_name = "FILE|NAME:V")]
    pub env_file: Option<PathBuf>,
    /// With --env NAME:V: run even when the interpreter differs from it, recording the drift.
    #[arg(long)]
    pub allow_env_drift: bool,
    /// An output file or folder, snapshotted after the run (repeatable).
    #[arg(long, value_name = "PATH")]
    pub output: Vec<PathBuf>,
    /// Refuse to start (exit 1, nothing recorded) unless the pre-run audit passes with no warnings.
    #[arg(long)]
    pub strict: bool,
    /// Do not watch inside the command's Python processes (files read, seeds set, packages
    /// imported, framework determinism settings); the audit then says it was not checked.
    #[arg(long)]
    pub no_probe: bool,
    /// Snapshot the files the command read but nobody declared with --data, as inputs.
    #[arg(long, conflicts_with = "no_probe")]
    pub auto_data: bool,
    /// The container image the run happens in, NAME[:TAG][@sha256:DIGEST] (default:
    /// REPRO_IMAGE, else what the container runtime tells); only a digest names it for good.
    #[arg(long, value_name = "NAME@sha256:…")]
    pub image: Option<String>,
    /// A notebook to execute instead of a command (repro run nb.ipynb).
    #[arg(value_name = "NOTEBOOK.ipynb", value_parser = parse_notebook, conflicts_with = "command")]
    pub notebook: Option<String>,
    /// The command, after --.
    #[arg(last = true, required_unless_present = "notebook", value_name = "COMMAND")]
    pub command: Vec<String>,
}

fn parse_notebook(s: &str) -> Result<String, String> {
    if s.ends_with(".ipynb") {
        Ok(s.to_string())
    } else {
        Err(format!("'{s}' is not a notebook (.ipynb); put a command after --, e.g. repro run -- python {s}"))
    }
}

#[derive(clap::ValueEnum, Clone, Copy, Debug)]
pub enum ExportFormatArg {
    Requirements,
    Conda,
    Dockerfile,
}

#[derive(Args, Debug)]
pub struct ReplayArgs {
    /// The run to replay (id, 4+ character prefix, name, `latest`, or NAME@V / NAME@STAGE).
    pub run: String,
    /// Build the tree in DIR (new or empty) instead of a private folder.
    #[arg(long, value_name = "DIR")]
    pub workdir: Option<PathBuf>,
    /// Run with this interpreter (default: the recorded one if it still exists, else python3).
    #[arg(long, value_name = "PATH", conflicts_with = "create_env")]
    pub python: Option<PathBuf>,
    /// Build a fresh virtualenv with exactly the recorded package versions (uv when on PATH,
    /// else venv + pip).
    #[arg(long)]
    pub create_env: bool,
    /// Accept a metric within an absolute difference, METRIC=ABS (repeatable).
    #[arg(long, value_name = "METRIC=ABS", value_parser = parse_tolerance)]
    pub tolerance: Vec<(String, f64)>,
    /// Leave the rebuilt tree for inspection (under .repro/replays/ unless --workdir).
    #[arg(long)]
    pub keep: bool,
    /// Hard-link the inputs to the store's read-only objects instead of giving each a file of
    /// its own (by default a reflink where the file system has them, else a copy): nothing is
    /// written, so a 20 GB dataset is in place after one hash. The files are the objects — their
    /// mode is the objects' (read-only), and a command that writes to its inputs as root
    /// would change the store (fsck names such an object as corrupt).
    #[arg(long)]
    pub link_data: bool,
    /// Read back and hash every restored input file. By default a file placed as a reflink (no
    /// bytes copied) is not read when the store's stamp says its object hashed right and has not
    /// changed since (same inode, size, mtime and ctime; `repro fsck` re-stamps what it verifies).
    #[arg(long)]
    pub verify_data: bool,
    /// Run a bundle's code even though no key in `[trust]` signed the bundle (unsigned, or
    /// signed by an unknown key). Read the code first: the command runs as you.
    #[arg(long)]
    pub trust_code: bool,
    /// Sign the verdict (an in-toto statement, DSSE) with this private key (default: your own,
    /// $REPRO_KEY_DIR/repro.key else ~/.config/repro/repro.key, when it exists; else unsigned).
    #[arg(long, value_name = "FILE")]
    pub key: Option<PathBuf>,
}

fn parse_tolerance(s: &str) -> Result<(String, f64), String> {
    let (k, v) = s.split_once('=').ok_or_else(|| format!("'{s}' is not METRIC=ABS, e.g. rmse=0.001"))?;
    let k = k.trim();
    if k.is_empty() {
        return Err(format!("'{s}' names no metric; use METRIC=ABS, e.g. rmse=0.001"));
    }
    let v: f64 = v.trim().parse().map_err(|_| format!("'{v}' is not a number; use METRIC=ABS, e.g. rmse=0.001"))?;
    if !v.is_finite() || v < 0.0 {
        return Err(format!("tolerance '{v}' must be a finite number ≥ 0"));
    }
    Ok((k.to_string(), v))
}

#[derive(Subcommand, Debug)]
pub enum DataCmd {
    /// Snapshot a file or folder (contents stored unless --reference).
    ///
    /// With --name, the snapshot becomes a version of that dataset: the same content gives the
    /// same version, changed content the next one.
    /// Example: repro data snapshot data/ --name train
    Snapshot {
        path: PathBuf,
        /// Dataset name (default: the file or folder name).
        #[arg(long)]
        name: Option<String>,
        /// Record digests only; leave the contents where they are.
        #[arg(long)]
        reference: bool,
    },
    /// List datasets and their versions.
    ///
    /// Example: repro data ls
    Ls,
    /// Show a dataset version and its files.
    ///
    /// Example: repro data show train:2
    Show {
        /// NAME (newest version) or NAME:VERSION.
        dataset: String,
    },
    /// Show the files two dataset versions differ in: added, removed, changed.
    ///
    /// Of two big (chunked) versions only the chunks they do not share are read, so the cost
    /// follows what changed, not the size of the dataset.
    /// Example: repro data diff train:1 train:2
    Diff {
        /// NAME (newest version) or NAME:VERSION.
        a: String,
        /// NAME (newest version) or NAME:VERSION.
        b: String,
    },
}

#[derive(Subcommand, Debug)]
pub enum EnvCmd {
    /// Classify each dependency of an environment file as pinned, loose or unpinned.
    ///
    /// Exit 1 when a dependency is not pinned exactly. A Python series pin (`python=3.11`:
    /// each run records the exact interpreter) and installer tools (pip, setuptools, wheel,
    /// uv) are noted instead; --strict counts them too.
    ///
    /// Example: repro env check environment.yml
    Check {
        /// requirements.txt, environment.yml, pyproject.toml, uv.lock or poetry.lock.
        file: PathBuf,
        /// Every requirement must be exact, Python and installer tools included.
        #[arg(long)]
        strict: bool,
    },
    /// Write the exact environment of a run as a lock, a conda file or a Dockerfile.
    ///
    /// requirements: every package `==` the trained version (with hashes when the run's
    /// declared file has them for all); conda: an environment.yml; dockerfile: a Dockerfile on
    /// the recorded Python that installs the lock written beside it.
    ///
    /// Example: repro env export baseline --format dockerfile -o serving/Dockerfile
    Export {
        /// The run (id, 4+ character prefix, name, `latest`, or a model version NAME@V / NAME@STAGE).
        run: String,
        /// What to write.
        #[arg(long, value_enum, default_value = "requirements")]
        format: ExportFormatArg,
        /// Write to FILE (a Dockerfile's lock goes beside it) instead of stdout.
        #[arg(short, long, value_name = "FILE")]
        output: Option<PathBuf>,
    },
    /// Compare the environment a run trained in with the one it is served from.
    ///
    /// A difference in the library that wrote the run's model file (read from the file:
    /// LightGBM, XGBoost, PyTorch, ONNX, safetensors, Keras, skops, pickles) fails with exit
    /// 1 and comes first, then the packages the model imports, then those the run declared;
    /// other differences are reported. Against a live interpreter (--python), a manifest from
    /// `repro env capture`, or a pinned file.
    ///
    /// Example: repro env parity baseline --python /srv/venv/bin/python
    ///
    /// Example: repro env parity baseline --against serving.json --ignore gunicorn
    Parity {
        /// The training side: a run (id, prefix, name, `latest`) or a registered NAME:VERSION.
        subject: String,
        /// The serving side: a manifest from `repro env capture`, a requirements/lock file, or
        /// a registered NAME:VERSION.
        #[arg(long, value_name = "FILE|NAME:V", required_unless_present = "python", conflicts_with = "python")]
        against: Option<String>,
        /// The serving interpreter.
        #[arg(long, value_name = "PATH")]
        python: Option<PathBuf>,
        /// Packages whose difference does not matter: repeat the flag or separate names
        /// with commas (`--ignore gunicorn,uvicorn`).
        #[arg(long, value_name = "PKG", value_delimiter = ',')]
        ignore: Vec<String>,
    },
    /// Register an environment file or a captured manifest as NAME:1, NAME:2 …
    ///
    /// Versions are immutable: registering the same content again gives the same version,
    /// changed content the next one.
    ///
    /// Example: repro env register requirements.txt --name training
    ///
    /// Example: repro env register serving.json --name serving
    Register {
        /// A declared file (requirements, environment.yml, pyproject, lock) or a manifest
        /// written by `repro env capture`.
        file: PathBuf,
        #[arg(long)]
        name: String,
    },
    /// List registered environments.
    ///
    /// Example: repro env ls
    Ls,
    /// Show a registered environment (NAME for the newest version, or NAME:VERSION).
    ///
    /// Example: repro env show training:2
    Show { env: String },
    /// Compare two environments package by package (registered NAME:V, files, or runs).
    ///
    /// Example: repro env diff training:1 training:2
    Diff { a: String, b: String },
    /// Print the installed set of a Python interpreter (read from its metadata, no pip).
    ///
    /// Example: repro env capture --python .venv/bin/python -o serving.json
    Capture {
        /// The interpreter (default: the active virtualenv / conda env, else python3 on PATH).
        #[arg(long, value_name = "PATH")]
        python: Option<PathBuf>,
        /// Write the manifest (JSON) to FILE instead of stdout.
        #[arg(short, long, value_name = "FILE")]
        output: Option<PathBuf>,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tolerances_parse_and_garbage_is_refused_in_one_line() {
        assert_eq!(parse_tolerance("rmse=0.001"), Ok(("rmse".into(), 0.001)));
        assert_eq!(parse_tolerance(" val.loss = 1e-3 "), Ok(("val.loss".into(), 0.001)));
        assert_eq!(
            parse_tolerance("a=b=1").map(|t| t.0),
            Err("'b=1' is not a number; use METRIC=ABS, e.g. rmse=0.001".into())
        );
        for bad in ["rmse", "=1", "rmse=", "rmse=x", "rmse=-1", "rmse=inf", "rmse=NaN", "", "=", "\u{0}=\u{0}"] {
            let e = parse_tolerance(bad).expect_err(bad);
            assert!(!e.contains('\n') && e.contains("METRIC=ABS") || e.contains("≥ 0"), "{bad}: {e}");
        }
    }

    #[test]
    fn the_command_line_is_consistent() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }
}
