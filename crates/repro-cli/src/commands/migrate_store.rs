//! `repro migrate-store`: move this store onto PostgreSQL and/or S3.

use anyhow::Result;

use crate::cli::MigrateArgs;
use crate::context::Context;
use crate::exit::Exit;
use crate::render;

pub fn migrate_store(ctx: &Context, args: MigrateArgs) -> Result<Exit> {
    let store = ctx.store()?;
    let backends = repro_store::Backends::with_targets(args.backends.db, args.backends.objects, &args.to)?;
    let json = ctx.json;
    let report = store.migrate_to(&backends, &|step| {
        if !json {
            render::message(step);
        }
    })?;
    render::migration(&report, json)?;
    Ok(Exit::Ok)
}
