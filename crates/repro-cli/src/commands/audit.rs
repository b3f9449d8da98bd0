//! `repro audit RUN`: does the run have every ingredient an auditor asks for?

use anyhow::Result;

use crate::context::Context;
use crate::exit::Exit;
use crate::render;

pub fn audit(ctx: &Context, run: &str, strict: bool) -> Result<Exit> {
    let report = ctx.source()?.audit(run, strict)?;
    render::audit(&report, ctx.json)?;
    Ok(Exit::check(report.complete))
}
