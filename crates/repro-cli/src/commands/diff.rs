//! `repro diff A B`: every ingredient side by side, then the likely causes.

use anyhow::Result;

use crate::context::Context;
use crate::exit::Exit;
use crate::render;

pub fn diff(ctx: &Context, a: &str, b: &str) -> Result<Exit> {
    render::diff(&ctx.source()?.diff(a, b)?, ctx.json)?;
    Ok(Exit::Ok)
}
