//! `repro runs`: the runs, newest first.

use anyhow::Result;

use crate::context::Context;
use crate::exit::Exit;
use crate::render;

pub fn runs(ctx: &Context, limit: Option<usize>) -> Result<Exit> {
    render::runs(&ctx.source()?.runs(limit)?, ctx.json)?;
    Ok(Exit::Ok)
}
