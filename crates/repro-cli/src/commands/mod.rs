//! One file per command. Each takes the [`Context`] and its own arguments, asks the
//! libraries (the meaning of a flag is decided there, not here), and hands the result to
//! its renderer in `crate::render`, which writes text or `--json`.

mod audit;
mod bundle;
mod data;
mod diff;
mod env;
mod fsck;
mod init;
mod key;
mod migrate_store;
mod model;
mod replay;
mod report;
mod run;
mod runs;
mod serve;
mod shell;
mod show;
mod token;

use anyhow::Result;

use crate::cli::{Cli, Cmd, DataCmd, EnvCmd, ModelCmd};
use crate::context::Context;
use crate::exit::Exit;
use crate::render;

/// The commands that need this machine (its files, interpreters, keys or a local store),
/// named for the refusal when `--server` is given.
fn local_only(cmd: &Cmd) -> Option<&'static str> {
    Some(match cmd {
        Cmd::Init(_) => "init",
        Cmd::MigrateStore(_) => "migrate-store",
        Cmd::Run(_) => "run",
        Cmd::Replay(_) => "replay",
        Cmd::Report { .. } => "report",
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

pub fn dispatch(cli: Cli) -> Result<Exit> {
    let ctx = Context::new(&cli);
    if let (Some(url), Some(what)) = (ctx.server(), local_only(&cli.command)) {
        anyhow::bail!(
            "`repro {what}` works on this machine and a local store only, not through --server {url}; \
             drop --server (or unset REPRO_SERVER)"
        );
    }
    match cli.command {
        Cmd::Init(args) => init::init(&ctx, args),
        Cmd::MigrateStore(args) => migrate_store::migrate_store(&ctx, args),
        Cmd::Run(args) => run::run(&ctx, args),
        Cmd::Runs { limit } => runs::runs(&ctx, limit),
        Cmd::Show { run } => show::show(&ctx, &run),
        Cmd::Audit { run, strict } => audit::audit(&ctx, &run, strict),
        Cmd::Replay(args) => replay::replay(&ctx, args),
        Cmd::Diff { run_a, run_b } => diff::diff(&ctx, &run_a, &run_b),
        Cmd::Report { model, output } => report::report(&ctx, &model, output.as_deref()),
        Cmd::Data(cmd) => data::data(&ctx, cmd),
        Cmd::Env(cmd) => env::env(&ctx, cmd),
        Cmd::Model(cmd) => model::model(&ctx, cmd),
        Cmd::Key(cmd) => key::key(&ctx, cmd),
        Cmd::Bundle(cmd) => bundle::bundle(&ctx, cmd),
        Cmd::Token(cmd) => token::token(&ctx, cmd),
        Cmd::Lineage(crate::cli::LineageCmd::Flush) => fsck::lineage_flush(&ctx),
        Cmd::Serve { host, port, allowed_hosts, trusted_proxies, max_connections } => {
            serve::serve(&ctx, &host, port, allowed_hosts, trusted_proxies, max_connections)
        }
        Cmd::Fsck => fsck::fsck(&ctx),
        Cmd::Completions { shell } => shell::completions(shell),
        Cmd::Man { out } => shell::man(out.as_deref(), ctx.json),
    }
}

/// The tracking server a command's MLflow calls log into, on a free loopback port. Without
/// one (no loopback?) the run goes ahead and MLflow logs wherever it would have (a replay
/// then removes the MLflow variables instead). A replay's server holds registry writes.
fn tracking_server(store: &repro_store::Store, replay: bool) -> Option<repro_server::Background> {
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
