//! `repro env …`: capture, check, register, ls, show, diff, parity and export environments.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{Context as _, Result};
use repro_exec::env::ExportFormat;

use crate::cli::{EnvCmd, ExportFormatArg};
use crate::context::Context;
use crate::exit::Exit;
use crate::files::write_file;
use crate::render;
use crate::source::Against;

pub fn env(ctx: &Context, cmd: EnvCmd) -> Result<Exit> {
    let json = ctx.json;
    match cmd {
        EnvCmd::Capture { python, output } => {
            let env = repro_exec::env::capture_interpreter(python.as_deref(), &ctx.cwd()?, &ctx.vars())?;
            let text = serde_json::to_string_pretty(&env).context("serialize manifest")?;
            match output {
                Some(o) => {
                    write_file(&o, text.as_bytes())?;
                    if !json {
                        render::message(&format!(
                            "wrote {} packages of Python {} to {}",
                            env.packages.len(),
                            env.version.as_deref().unwrap_or("?"),
                            o.display()
                        ));
                    }
                }
                None => render::json(&env)?,
            }
            Ok(Exit::Ok)
        }
        EnvCmd::Check { file, strict } => {
            let report = repro_exec::env::check(&file, &ctx.cwd()?, strict)?;
            render::env_check(&report, json)?;
            Ok(Exit::check(report.passes()))
        }
        EnvCmd::Export { run, format, output } => {
            let store = ctx.store()?;
            let stored = store.meta.runs().get(&store.meta.resolve_run(&run)?)?;
            let format = match format {
                ExportFormatArg::Requirements => ExportFormat::Requirements,
                ExportFormatArg::Conda => ExportFormat::Conda,
                ExportFormatArg::Dockerfile => ExportFormat::Dockerfile,
            };
            let files = repro_exec::env::export(&stored, format)?;
            match output {
                Some(o) => {
                    // The first file goes where -o says; the ones it needs (a lock the
                    // Dockerfile copies) go beside it, under their own names.
                    let dir = o.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new(".")).to_path_buf();
                    let mut written = Vec::new();
                    for (i, (name, text)) in files.iter().enumerate() {
                        let path = if i == 0 { o.clone() } else { dir.join(name) };
                        write_file(&path, text.as_bytes())?;
                        written.push(path.display().to_string());
                    }
                    render::written(&written, json)?;
                }
                None if json => {
                    let map: BTreeMap<&str, &str> = files.iter().map(|(n, t)| (n.as_str(), t.as_str())).collect();
                    render::json(&map)?;
                }
                None => {
                    for (i, (name, text)) in files.iter().enumerate() {
                        if i > 0 {
                            render::line(&format!("# ---- {name} ----"))?;
                        }
                        render::line(text.trim_end())?;
                    }
                }
            }
            Ok(Exit::Ok)
        }
        EnvCmd::Parity { subject, against, python, ignore } => {
            let against = match (&python, &against) {
                (Some(p), _) => Against::Python(p),
                (None, Some(f)) => Against::Named(f),
                (None, None) => anyhow::bail!("give --python PATH or --against FILE|NAME:V to compare with"),
            };
            let report = ctx.source()?.parity(&subject, against, &ignore)?;
            render::parity(&report, json)?;
            Ok(Exit::check(report.pass))
        }
        EnvCmd::Register { file, name } => {
            let mut store = ctx.store()?;
            let (row, spec, new) = repro_exec::env::register(&mut store, &file, &name, &ctx.cwd()?)?;
            if let repro_core::environment::EnvironmentSpec::Declared { declared } = &spec {
                for r in &declared.redacted {
                    render::message(&format!("warning: a credential was removed before registering: {r}"));
                }
            }
            render::env_registered(&row, &spec, new, json)?;
            Ok(Exit::Ok)
        }
        EnvCmd::Ls => {
            render::env_list(&ctx.source()?.environments()?, json)?;
            Ok(Exit::Ok)
        }
        EnvCmd::Show { env } => {
            render::env_show(&ctx.source()?.environment(&env)?, json)?;
            Ok(Exit::Ok)
        }
        EnvCmd::Diff { a, b } => {
            render::env_diff(&ctx.source()?.env_diff(&a, &b)?, json)?;
            Ok(Exit::Ok)
        }
    }
}
