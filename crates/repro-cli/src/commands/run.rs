//! `repro run … -- COMMAND`: run it and record everything needed to reproduce it.

use anyhow::Result;
use repro_exec::env::EnvArg;
use repro_exec::run::{RunOptions, RunOutcome};

use crate::cli::RunArgs;
use crate::context::Context;
use crate::exit::Exit;
use crate::progress::Ui;
use crate::render;

pub fn run(ctx: &Context, args: RunArgs) -> Result<Exit> {
    let mut store = ctx.store()?;
    let cwd = ctx.cwd()?;
    let (env_file, env_registered) = match args.env_file {
        Some(given) => match EnvArg::resolve(&store, &cwd, &given)? {
            EnvArg::File(f) => (Some(f), None),
            EnvArg::Registered(r) => (None, Some(r)),
        },
        None => (None, None),
    };
    let tracking = super::tracking_server(&store, false);
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
        no_probe: args.no_probe,
        auto_data: args.auto_data,
        // A notebook given alone is recorded as the user typed it; repro expands it to the
        // nbclient command when it starts the process (in a replay too).
        command: args.notebook.map_or(args.command, |nb| vec![nb]),
        image: args.image,
        restored: Vec::new(),
        cwd,
        vars: ctx.vars(),
        stdout_to_stderr: ctx.json,
        tracking_uri: tracking.as_ref().map(|t| t.uri()),
        tracking_token: tracking.as_ref().map(|t| t.token.clone()),
        ..Default::default()
    };
    // Progress shows even under --json: the command's own output goes to stderr then too.
    match repro_exec::run::run(&mut store, &opts, &Ui::new(false))? {
        RunOutcome::Refused { items } => {
            render::refusal(&items, ctx.json)?;
            Ok(Exit::CheckFailed)
        }
        RunOutcome::EnvDrift { env, differences } => {
            render::env_drift(&env, &differences, ctx.json)?;
            Ok(Exit::CheckFailed)
        }
        RunOutcome::Ran { id, status, exit_code, record } => {
            render::ran(&id, status, exit_code, &record.notes, ctx.json)?;
            Ok(Exit::Command(exit_code.clamp(0, 255) as u8))
        }
    }
}
