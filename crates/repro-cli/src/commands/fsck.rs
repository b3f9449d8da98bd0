//! `repro fsck`: re-hash every object, check every reference and the registry's chain.

use anyhow::Result;

use crate::context::Context;
use crate::exit::Exit;
use crate::render;

pub fn fsck(ctx: &Context) -> Result<Exit> {
    let store = ctx.store()?;
    let report = repro_store::fsck::fsck(&store, &ctx.ui())?;
    render::fsck(&report, ctx.json)?;
    Ok(Exit::check(report.clean))
}
