//! `repro init`: a new store here (or at `--store`), optionally on PostgreSQL and S3.

use anyhow::Result;
use repro_store::Store;

use crate::cli::InitArgs;
use crate::context::Context;
use crate::exit::Exit;
use crate::render;

pub fn init(ctx: &Context, args: InitArgs) -> Result<Exit> {
    let dir = match ctx.store_dir() {
        Some(d) => d.to_path_buf(),
        None => ctx.cwd()?,
    };
    let backends = repro_store::Backends { db: args.db, objects: args.objects };
    let store = Store::init_with(&repro_store::init_parent(&dir), &backends)?;
    render::initialized(store.root(), ctx.json)?;
    Ok(Exit::Ok)
}
