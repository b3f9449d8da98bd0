//! `repro bundle export|import`: one file holding what an auditor needs, elsewhere.

use anyhow::Result;

use crate::cli::BundleCmd;
use crate::context::Context;
use crate::exit::Exit;
use crate::render;

pub fn bundle(ctx: &Context, cmd: BundleCmd) -> Result<Exit> {
    match cmd {
        BundleCmd::Export { model, output, include_data, key, unsigned } => {
            let store = ctx.store()?;
            let signer = repro_exec::keys::bundle_signer(key.as_deref(), unsigned)?;
            let r = repro_exec::bundle::export(
                &store,
                &model,
                &output,
                include_data,
                signer.as_ref(),
                &ctx.cwd()?,
                &ctx.ui(),
            )?;
            render::bundle_exported(&r, ctx.json)?;
        }
        BundleCmd::Import { file, key } => {
            let mut store = ctx.store()?;
            let who = repro_exec::registry::actor(&ctx.cwd()?, None)?;
            let r = repro_exec::bundle::import(&mut store, &file, key.as_deref(), &who, &ctx.ui())?;
            render::bundle_imported(&r, key.is_some(), ctx.json)?;
        }
    }
    Ok(Exit::Ok)
}
