//! Each command: resolve the store, call the libraries, hand the result to `render`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use repro_capture::snapshot::{self, Request};
use repro_exec::replay::{ReplayOptions, ReplayOutcome};
use repro_exec::run::{RunOptions, RunOutcome};
use repro_store::Store;
use serde_json::json;

use crate::cli::{Cli, Cmd, DataCmd, EnvCmd, ModelCmd};
use crate::model;
use crate::progress::Ui;
use crate::render;
use crate::source::{Against, Source};
use crate::{EXIT_FAILED_CHECK, EXIT_OK};

/// The tracking server a command's MLflow calls log into, on a free loopback port. Without
/// one (no loopback?) the run goes ahead and MLflow logs wherever it would have (a replay
/// then removes the MLflow variables instead). A replay's server holds registry writes.
fn tracking_server(store: &Store, replay: bool) -> Option<repro_server::Background> {
    let started = if replay {
        repro_server::Background::start_replay(store.root())
    } else {
        repro_server::Background::start(store.root())
    };
    match started {
        Ok(b) => Some(b),
        Err(e) => {
            render::message(&format!("warning: no tracking server for the command's MLflow calls: {e}"));
            None
        }
    }
}

pub fn open_store(cli_store: Option<&Path>) -> Result<Store> {
    let root = match cli_store {
        Some(dir) => repro_store::explicit(dir)?,
        None => {
            let cwd = std::env::current_dir().context("cannot read the current folder")?;
            repro_store::discover(&cwd)?
        }
    };
    Ok(Store::open(&root)?)
}

pub fn cwd() -> Result<PathBuf> {
    std::env::current_dir().context("cannot read the current folder")
}

/// The commands that need this machine (its files, interpreters, keys or a local store),
/// named for the refusal when `--server` is given.
fn local_only(cmd: &Cmd) -> Option<&'static str> {
    Some(match cmd {
        Cmd::Init(_) => "init",
        Cmd::MigrateStore(_) => "migrate-store",
        Cmd::Run(_) => "run",
        Cmd::Replay(_) => "replay",
        Cmd::Data(DataCmd::Snapshot { .. }) => "data snapshot",
        Cmd::Env(EnvCmd::Capture { .. }) => "env capture",
        Cmd::Env(EnvCmd::Check { .. }) => "env check",
        Cmd::Env(EnvCmd::Register { .. }) => "env register",
        Cmd::Env(EnvCmd::Export { .. }) => "env export",
        Cmd::Model(ModelCmd::Register { .. }) => "model register",
        Cmd::Model(ModelCmd::Sign { .. }) => "model sign",
        Cmd::Model(ModelCmd::Attest { .. }) => "model attest",
        Cmd::Key(_) => "key",
        Cmd::Bundle(_) => "bundle",
        Cmd::Token(_) => "token",
        Cmd::Serve { .. } => "serve",
        Cmd::Fsck => "fsck",
        _ => return None,
    })
}

pub fn dispatch(cli: Cli) -> Result<u8> {
    let json = cli.json;
    let store_arg = cli.store.clone();
    let store_dir = store_arg.as_deref();
    // An empty REPRO_SERVER (`REPRO_SERVER= repro …`) means no server, as an unset one.
    let server = cli.server.clone().filter(|s| !s.trim().is_empty());
    if let (Some(url), Some(what)) = (&server, local_only(&cli.command)) {
        anyhow::bail!(
            "`repro {what}` works on this machine and a local store only, not through --server {url}; \
             drop --server (or unset REPRO_SERVER)"
        );
    }
    let source = || Source::open(store_dir, server.as_deref(), cli.token.clone());
    match cli.command {
        Cmd::Init(args) => {
            let dir = match store_dir {
                Some(d) => d.to_path_buf(),
                None => std::env::current_dir().context("cannot read the current folder")?,
            };
            let dir = if dir.file_name().is_some_and(|n| n == repro_store::STORE_DIR) {
                dir.parent().map(Path::to_path_buf).unwrap_or(dir)
            } else {
                dir
            };
            let backends = repro_store::Backends { db: args.db, objects: args.objects };
            let store = Store::init_with(&dir, &backends)?;
            if json {
                render::json(&json!({"store": store.root()}))?;
            } else {
                render::line(&format!("initialized an empty repro store in {}", store.root().display()))?;
            }
            Ok(EXIT_OK)
        }
        Cmd::Run(args) => {
            let mut store = open_store(store_dir)?;
            let ui = Ui::new(false);
            let vars: BTreeMap<String, String> = std::env::vars().collect();
            let cwd = std::env::current_dir().context("cannot read the current folder")?;
            // --env: a file when one exists there, else a registered NAME:V (or a NAME that
            // is registered); anything else is a file that does not exist.
            let (env_file, env_registered) = match args.env_file {
                Some(e) if !cwd.join(&e).exists() => {
                    let text = e.to_string_lossy().into_owned();
                    let registered = match repro_core::environment::parse_env_ref(&text) {
                        Some((name, version)) => {
                            text.contains(':') || store.meta.get_environment(name, version)?.is_some()
                        }
                        None => false,
                    };
                    if registered {
                        (None, Some(text))
                    } else {
                        (Some(e), None)
                    }
                }
                other => (other, None),
            };
            let opts = RunOptions {
                name: args.name,
                seed: args.seed,
                data: args.data,
                params_files: args.params,
                params: args.param,
                env_file,
                env_registered,
                allow_env_drift: args.allow_env_drift,
                outputs: args.output,
                strict: args.strict,
                command: args.command,
                cwd: std::env::current_dir().context("cannot read the current folder")?,
                vars,
                stdout_to_stderr: json,
                ..Default::default()
            };
            let tracking = tracking_server(&store, false);
            let opts = RunOptions {
                tracking_uri: tracking.as_ref().map(|t| t.uri()),
                tracking_token: tracking.as_ref().map(|t| t.token.clone()),
                ..opts
            };
            match repro_exec::run::run(&mut store, &opts, &ui)? {
                RunOutcome::Refused { items } => {
                    render::refusal(&items, json)?;
                    Ok(EXIT_FAILED_CHECK)
                }
                RunOutcome::EnvDrift { env, differences } => {
                    render::env_drift(&env, &differences, json)?;
                    Ok(EXIT_FAILED_CHECK)
                }
                RunOutcome::Ran { id, status, exit_code, record } => {
                    for n in &record.notes {
                        render::message(&format!("note: {n}"));
                    }
                    if json {
                        render::json(&json!({"id": id, "status": status, "exit_code": exit_code}))?;
                    }
                    render::message(&format!(
                        "run {id} {} (exit {exit_code}); `repro audit {}` checks it",
                        status.as_str(),
                        id.short()
                    ));
                    Ok(exit_code.clamp(0, 255) as u8)
                }
            }
        }
        Cmd::Runs { limit } => {
            render::runs(&source()?.runs(limit)?, json)?;
            Ok(EXIT_OK)
        }
        Cmd::Show { run } => {
            render::show(&source()?.show(&run)?, json)?;
            Ok(EXIT_OK)
        }
        Cmd::Audit { run, strict } => {
            let report = source()?.audit(&run, strict)?;
            render::audit(&report, json)?;
            Ok(if report.complete { EXIT_OK } else { EXIT_FAILED_CHECK })
        }
        Cmd::Replay(args) => {
            let mut store = open_store(store_dir)?;
            let id = store.meta.resolve_run(&args.run)?;
            let ui = Ui::new(json);
            let opts = ReplayOptions {
                run: Some(id),
                workdir: args.workdir,
                python: args.python,
                create_env: args.create_env,
                tolerances: args.tolerance.into_iter().collect(),
                keep: args.keep,
                cwd: std::env::current_dir().context("cannot read the current folder")?,
                vars: std::env::vars().collect(),
                tracking_uri: None,
                tracking_token: None,
                registry_calls: None,
                trust_code: args.trust_code,
            };
            let tracking = tracking_server(&store, true);
            let opts = ReplayOptions {
                tracking_uri: tracking.as_ref().map(|t| t.uri()),
                tracking_token: tracking.as_ref().map(|t| t.token.clone()),
                registry_calls: tracking.as_ref().and_then(|t| t.held.clone()),
                ..opts
            };
            match repro_exec::replay::replay(&mut store, &opts, &ui)? {
                ReplayOutcome::EnvironmentDiffers { python, created, differences, changes } => {
                    render::environment_differs(&python, created, &differences, &changes, json)?;
                    Ok(EXIT_FAILED_CHECK)
                }
                ReplayOutcome::Done(report) => {
                    render::replay(&report, json)?;
                    Ok(if report.verdict.reproduced() { EXIT_OK } else { EXIT_FAILED_CHECK })
                }
            }
        }
        Cmd::Diff { run_a, run_b } => {
            render::diff(&source()?.diff(&run_a, &run_b)?, json)?;
            Ok(EXIT_OK)
        }
        Cmd::Data(DataCmd::Snapshot { path, name, reference }) => {
            let mut store = open_store(store_dir)?;
            let cwd = std::env::current_dir().context("cannot read the current folder")?;
            let abs = cwd.join(&path);
            let canonical = std::fs::canonicalize(&abs)
                .map_err(|_| repro_capture::CaptureError::NoSuchPath { path: path.clone(), cwd: cwd.clone() })?;
            let default_name =
                canonical.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| "data".into());
            let name = name.unwrap_or(default_name);
            validate_dataset_name(&name)?;
            let source = canonical.display().to_string();
            let ui = Ui::new(json);
            let outcome = snapshot::snapshot(
                &mut store,
                &Request { path: &canonical, reference, dataset: Some((&name, &source)) },
                &ui,
            )?;
            render::snapshot(&outcome, json)?;
            Ok(EXIT_OK)
        }
        Cmd::Data(DataCmd::Ls) => {
            render::datasets(&source()?.datasets()?, json)?;
            Ok(EXIT_OK)
        }
        Cmd::Data(DataCmd::Show { dataset }) => {
            render::dataset(&source()?.dataset(&dataset)?, json)?;
            Ok(EXIT_OK)
        }
        Cmd::Env(EnvCmd::Capture { python, output }) => {
            let vars: BTreeMap<String, String> = std::env::vars().collect();
            let path_var = std::env::var_os("PATH");
            let found = match &python {
                Some(p) => {
                    let cwd = std::env::current_dir().context("cannot read the current folder")?;
                    let p = cwd.join(p);
                    if !p.exists() {
                        anyhow::bail!("{} does not exist; give the path of a Python interpreter", p.display());
                    }
                    Some((p, "--python"))
                }
                None => repro_capture::python::find_interpreter(None, &vars, path_var.as_deref()),
            };
            let Some((exe, how)) = found else {
                anyhow::bail!("no Python interpreter found; pass --python PATH or activate an environment");
            };
            let Some(env) = repro_capture::python::inspect(&exe, how) else {
                anyhow::bail!(
                    "{} is not a Python installation repro can read (no site-packages or version found)",
                    exe.display()
                );
            };
            let text = serde_json::to_string_pretty(&env).context("serialize manifest")?;
            match output {
                Some(o) => {
                    write_file(&o, text.as_bytes())?;
                    if !json {
                        render::message(&format!(
                            "wrote {} packages of Python {} to {}",
                            env.packages.len(),
                            env.version.as_deref().unwrap_or("?"),
                            o.display()
                        ));
                    }
                }
                None => render::json(&env)?,
            }
            Ok(EXIT_OK)
        }
        Cmd::Env(EnvCmd::Check { file }) => {
            let cwd = std::env::current_dir().context("cannot read the current folder")?;
            let report = repro_exec::env::check(&file, &cwd)?;
            render::env_check(&report, json)?;
            Ok(if report.all_pinned() { EXIT_OK } else { EXIT_FAILED_CHECK })
        }
        Cmd::Env(EnvCmd::Export { run, format, output }) => {
            use repro_exec::env::ExportFormat;
            let store = open_store(store_dir)?;
            let stored = store.meta.get_run(&store.meta.resolve_run(&run)?)?;
            let format = match format {
                crate::cli::ExportFormatArg::Requirements => ExportFormat::Requirements,
                crate::cli::ExportFormatArg::Conda => ExportFormat::Conda,
                crate::cli::ExportFormatArg::Dockerfile => ExportFormat::Dockerfile,
            };
            let files = repro_exec::env::export(&stored, format)?;
            match output {
                Some(o) => {
                    let dir = o.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new(".")).to_path_buf();
                    let mut written = Vec::new();
                    for (i, (name, text)) in files.iter().enumerate() {
                        let path = if i == 0 { o.clone() } else { dir.join(name) };
                        write_file(&path, text.as_bytes())?;
                        written.push(path.display().to_string());
                    }
                    if json {
                        render::json(&json!({"written": written}))?;
                    } else {
                        render::message(&format!("wrote {}", written.join(", ")));
                    }
                }
                None if json => {
                    let map: BTreeMap<&str, &str> = files.iter().map(|(n, t)| (n.as_str(), t.as_str())).collect();
                    render::json(&map)?;
                }
                None => {
                    for (i, (name, text)) in files.iter().enumerate() {
                        if i > 0 {
                            render::line(&format!("# ---- {name} ----"))?;
                        }
                        render::line(text.trim_end())?;
                    }
                }
            }
            Ok(EXIT_OK)
        }
        Cmd::Env(EnvCmd::Parity { subject, against, python, ignore }) => {
            let against = match (&python, &against) {
                (Some(p), _) => Against::Python(p),
                (None, Some(f)) => Against::Named(f),
                (None, None) => anyhow::bail!("give --python PATH or --against FILE|NAME:V to compare with"),
            };
            let report = source()?.parity(&subject, against, &ignore)?;
            render::parity(&report, json)?;
            Ok(if report.pass { EXIT_OK } else { EXIT_FAILED_CHECK })
        }
        Cmd::Env(EnvCmd::Register { file, name }) => {
            let mut store = open_store(store_dir)?;
            let cwd = std::env::current_dir().context("cannot read the current folder")?;
            let (row, spec, new) = repro_exec::env::register(&mut store, &file, &name, &cwd)?;
            if let repro_core::environment::EnvironmentSpec::Declared { declared } = &spec {
                for r in &declared.redacted {
                    render::message(&format!("warning: a credential was removed before registering: {r}"));
                }
            }
            render::env_registered(&row, &spec, new, json)?;
            Ok(EXIT_OK)
        }
        Cmd::Env(EnvCmd::Ls) => {
            render::env_list(&source()?.environments()?, json)?;
            Ok(EXIT_OK)
        }
        Cmd::Env(EnvCmd::Show { env }) => {
            render::env_show(&source()?.environment(&env)?, json)?;
            Ok(EXIT_OK)
        }
        Cmd::Env(EnvCmd::Diff { a, b }) => {
            render::env_diff(&source()?.env_diff(&a, &b)?, json)?;
            Ok(EXIT_OK)
        }
        Cmd::Model(cmd) => model::model(&mut source()?, cmd, json),
        Cmd::Key(cmd) => model::key(cmd, store_dir, json),
        Cmd::Bundle(cmd) => model::bundle(store_dir, cmd, json),
        Cmd::Token(cmd) => {
            let store = open_store(store_dir)?;
            model::token(&store, cmd, json)
        }
        Cmd::Serve { host, port, allowed_hosts, trusted_proxies, max_connections } => {
            let store = open_store(store_dir)?;
            let addr: std::net::SocketAddr = format!("{host}:{port}")
                .parse()
                .or_else(|_| format!("[{host}]:{port}").parse())
                .with_context(|| format!("--host {host} --port {port} is not an address to listen on"))?;
            let options = repro_server::ServeOptions {
                allowed_hosts,
                trusted_proxies,
                max_connections: usize::try_from(max_connections).ok(),
            };
            repro_server::serve(store.root(), addr, options)?;
            Ok(EXIT_OK)
        }
        Cmd::MigrateStore(args) => {
            let store = open_store(store_dir)?;
            let mut backends = repro_store::Backends { db: args.backends.db, objects: args.backends.objects };
            for url in args.to {
                let slot = if url.starts_with("s3://") { &mut backends.objects } else { &mut backends.db };
                if slot.replace(url.clone()).is_some() {
                    anyhow::bail!(
                        "--to {url}: the store's {} is named twice; give one postgres:// and/or one s3:// URL",
                        if url.starts_with("s3://") { "objects' place" } else { "database" }
                    );
                }
            }
            let report = store.migrate_to(&backends, &|step| {
                if !json {
                    render::message(step);
                }
            })?;
            render::migration(&report, json)?;
            Ok(EXIT_OK)
        }
        Cmd::Fsck => {
            let store = open_store(store_dir)?;
            let ui = Ui::new(json);
            let report = repro_store::fsck::fsck(&store, &ui)?;
            render::fsck(&report, json)?;
            Ok(if report.clean { EXIT_OK } else { EXIT_FAILED_CHECK })
        }
    }
}

fn validate_dataset_name(name: &str) -> Result<()> {
    if name.is_empty() || name.contains(':') || name.chars().any(|c| c.is_control()) {
        anyhow::bail!("invalid dataset name '{name}': use letters, digits, '-', '_', '.', '/' (no ':')");
    }
    Ok(())
}

pub fn write_file(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let tmp = tempfile_in(dir)?;
    std::fs::write(&tmp, bytes).with_context(|| format!("cannot write {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("cannot write {}", path.display()))?;
    Ok(())
}

fn tempfile_in(dir: &Path) -> Result<PathBuf> {
    Ok(dir.join(format!(".repro-{}.tmp", std::process::id())))
}
