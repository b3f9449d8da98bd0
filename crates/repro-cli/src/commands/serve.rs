//! `repro serve`: the MLflow tracking API, the native API and the web UI over HTTP.

use anyhow::{Context as _, Result};

use crate::context::Context;
use crate::exit::Exit;

pub fn serve(
    ctx: &Context,
    host: &str,
    port: u16,
    allowed_hosts: Vec<String>,
    trusted_proxies: Vec<std::net::IpAddr>,
    max_connections: u32,
) -> Result<Exit> {
    let store = ctx.store()?;
    let addr: std::net::SocketAddr =
        format!("{host}:{port}")
            .parse()
            .or_else(|_| format!("[{host}]:{port}").parse())
            .with_context(|| format!("--host {host} --port {port} is not an address to listen on"))?;
    let options = repro_server::ServeOptions {
        allowed_hosts,
        trusted_proxies,
        max_connections: usize::try_from(max_connections).ok(),
    };
    repro_server::serve(store.root(), addr, options)?;
    Ok(Exit::Ok)
}
