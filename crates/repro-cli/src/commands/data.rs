//! `repro data snapshot|ls|show|diff`: data snapshots and named datasets.

use anyhow::Result;
use repro_capture::snapshot::{self, Request};

use crate::cli::DataCmd;
use crate::context::Context;
use crate::exit::Exit;
use crate::render;

pub fn data(ctx: &Context, cmd: DataCmd) -> Result<Exit> {
    match cmd {
        DataCmd::Snapshot { path, name, reference } => {
            let mut store = ctx.store()?;
            let cwd = ctx.cwd()?;
            let canonical = std::fs::canonicalize(cwd.join(&path))
                .map_err(|_| repro_capture::CaptureError::NoSuchPath { path: path.clone(), cwd: cwd.clone() })?;
            let name = match name {
                Some(n) => n,
                None => {
                    canonical.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| "data".into())
                }
            };
            repro_core::snapshot::check_dataset_name(&name)?;
            let source = canonical.display().to_string();
            let outcome = snapshot::snapshot(
                &mut store,
                &Request { path: &canonical, reference, dataset: Some((&name, &source)), verified: None },
                &ctx.ui(),
            )?;
            render::snapshot(&outcome, ctx.json)?;
        }
        DataCmd::Ls => render::datasets(&ctx.source()?.datasets()?, ctx.json)?,
        DataCmd::Show { dataset } => render::dataset(&ctx.source()?.dataset(&dataset)?, ctx.json)?,
        DataCmd::Diff { a, b } => render::dataset_diff(&ctx.source()?.dataset_diff(&a, &b)?, ctx.json)?,
    }
    Ok(Exit::Ok)
}
