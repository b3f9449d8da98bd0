//! `repro report NAME@V [-o FILE]`: the audit report of a model version, one HTML file.

use std::path::{Path, PathBuf};

use anyhow::Result;

use crate::context::Context;
use crate::exit::Exit;
use crate::files::write_file;
use crate::render;

pub fn report(ctx: &Context, model: &str, output: Option<&Path>) -> Result<Exit> {
    let mut store = ctx.store()?;
    // The report is made by the server's templates, so the file and the served page are one.
    let html = repro_server::audit_report(&mut store, model).map_err(|e| anyhow::anyhow!(e.message))?;
    if output == Some(Path::new("-")) {
        render::data(html.as_bytes())?;
        return Ok(Exit::Ok);
    }
    let path = match output {
        Some(p) => p.to_path_buf(),
        None => {
            let safe: String =
                model.chars().map(|c| if c.is_ascii_alphanumeric() || "-_.".contains(c) { c } else { '-' }).collect();
            PathBuf::from(format!("report-{safe}.html"))
        }
    };
    write_file(&path, html.as_bytes())?;
    render::report_written(model, &path, html.len(), ctx.json)?;
    Ok(Exit::Ok)
}
