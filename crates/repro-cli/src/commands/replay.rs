//! `repro replay RUN`: rebuild a past run, run it again, and say whether it is the same.

use anyhow::Result;
use repro_exec::replay::{ReplayOptions, ReplayOutcome};

use crate::cli::ReplayArgs;
use crate::context::Context;
use crate::exit::Exit;
use crate::render;

pub fn replay(ctx: &Context, args: ReplayArgs) -> Result<Exit> {
    // The key first: a wrong --key is one line before anything is built or recorded.
    let signer = repro_exec::replay::verdict::verdict_signer(args.key.as_deref())?;
    let mut store = ctx.store()?;
    let id = store.meta.resolve_run(&args.run)?;
    let tracking = super::tracking_server(&store, true);
    let opts = ReplayOptions {
        run: Some(id),
        workdir: args.workdir,
        python: args.python,
        create_env: args.create_env,
        tolerances: args.tolerance.into_iter().collect(),
        keep: args.keep,
        link_data: args.link_data,
        verify_data: args.verify_data,
        cwd: ctx.cwd()?,
        vars: ctx.vars(),
        tracking_uri: tracking.as_ref().map(|t| t.uri()),
        tracking_token: tracking.as_ref().map(|t| t.token.clone()),
        registry_calls: tracking.as_ref().and_then(|t| t.held.clone()),
        trust_code: args.trust_code,
        signer,
    };
    match repro_exec::replay::replay(&mut store, &opts, &ctx.ui())? {
        ReplayOutcome::EnvironmentDiffers { python, created, differences, changes } => {
            render::environment_differs(&python, created, &differences, &changes, ctx.json)?;
            Ok(Exit::CheckFailed)
        }
        ReplayOutcome::Done(report) => {
            render::replay(&report, ctx.json)?;
            Ok(Exit::check(report.verdict.reproduced()))
        }
    }
}
