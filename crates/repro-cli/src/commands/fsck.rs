//! `repro fsck`: re-hash every object, check every reference and the registry's chain; runs
//! it finds interrupted end with an OpenLineage ABORT. And `repro lineage flush`, the other
//! command that looks after what a run left undelivered.

use anyhow::Result;

use crate::context::Context;
use crate::exit::Exit;
use crate::render;

pub fn fsck(ctx: &Context) -> Result<Exit> {
    let store = ctx.store()?;
    let report = repro_store::fsck::fsck(&store, &ctx.ui())?;
    let vars = std::env::vars().collect();
    repro_exec::openlineage::abort_interrupted(&store, &report.interrupted, &vars, &ctx.ui());
    render::fsck(&report, ctx.json)?;
    Ok(Exit::check(report.clean))
}

/// `repro lineage flush`: the OpenLineage queue, sent now.
pub fn lineage_flush(ctx: &Context) -> Result<Exit> {
    let store = ctx.store()?;
    let vars = std::env::vars().collect();
    let (url, d) = repro_exec::openlineage::flush_queue(&store, &vars, &ctx.ui())?;
    render::lineage_flushed(&url, &d, ctx.json)?;
    Ok(Exit::check(d.queued == 0 && d.rejected.is_empty()))
}
