//! `repro show RUN`: everything recorded about a run.

use anyhow::Result;

use crate::context::Context;
use crate::exit::Exit;
use crate::render;

pub fn show(ctx: &Context, run: &str) -> Result<Exit> {
    render::show(&ctx.source()?.show(run)?, ctx.json)?;
    Ok(Exit::Ok)
}
