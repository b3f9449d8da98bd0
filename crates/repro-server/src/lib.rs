//! The tracking server: the MLflow REST API (`/api/2.0/mlflow/…`, also under `/ajax-api`)
//! over repro's store, so the unmodified MLflow client logs into repro; the native JSON API
//! (`/api/v1/…`, what `repro --server URL` reads); and the web UI with its login.
//!
//! Where things live: `mlflow::*` one module per MLflow resource, `native` the native API,
//! `ui` the pages (`data` reads, `pages`/`run_page` write HTML), `auth` tokens and sign-in,
//! `guard` what every request passes first, `request` the extractor, limits and validators,
//! `error` the one error type and its one mapping to HTTP, `routes` the route table. Each
//! module declares its own routes; they are merged in `declare` and nowhere else.
//!
//! Depends on `repro-core`, `repro-store` and `repro-exec` (the native API answers with the
//! very functions the CLI calls); it stores what clients send and captures nothing itself. Handlers run the (synchronous, SQLite) store calls on tokio's blocking
//! pool, each with a connection from a small pool, so a slow query never stalls the
//! accepting threads.

mod auth;
mod download;
mod error;
mod guard;
mod listener;
mod mlflow;
mod native;
mod request;
pub mod routes;
#[cfg(test)]
mod tests;
mod ui;

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

pub use error::{ApiError, ServerError};

/// The audit report of a model version (`NAME@V`, `NAME@STAGE`) as one self-contained HTML
/// document: what `repro report` writes and `/ui/models/NAME@V/report` serves. An unknown
/// version is an error with a 4xx status.
pub fn audit_report(store: &mut repro_store::Store, spec: &str) -> Result<String, ApiError> {
    ui::report::render(store, spec)
}
pub use listener::Limits;
use repro_store::{Metadata, Objects};

/// What every handler shares.
pub struct State {
    root: PathBuf,
    pool: Mutex<Vec<Metadata>>,
    pub(crate) objects: Objects,
    pub(crate) host: String,
    /// The hash of a token only this process knows (`repro run` hands it to its command),
    /// accepted with write access whether or not the store has tokens.
    pub(crate) ephemeral: Option<String>,
    /// The web UI's sign-ins (see `auth::login`).
    pub(crate) sessions: auth::login::Sessions,
    /// Set for a replay's server: registry writes are answered and held, never appended.
    pub(crate) held: Option<Held>,
    /// The names the server answers to and the proxies it believes (see `guard`).
    pub(crate) access: guard::Access,
    /// This process's key for the UI's CSRF tokens: random, so a restart voids old forms.
    pub(crate) secret: [u8; 32],
}

/// The registry writes a replay's server answered without writing them: the calls, for the
/// replay's report, and the changes, applied over the stored log for this server's answers
/// so the command sees what it registered.
pub(crate) struct Held {
    pub(crate) calls: repro_exec::replay::HeldCalls,
    pub(crate) changes: Mutex<Vec<HeldChange>>,
}

pub(crate) struct HeldChange {
    pub(crate) at_ms: i64,
    pub(crate) actor: String,
    pub(crate) model: String,
    pub(crate) version: u32,
    pub(crate) change: repro_core::registry::Change,
}

/// How `repro serve` was asked to listen, beyond the address.
#[derive(Clone, Debug, Default)]
pub struct ServeOptions {
    /// More names clients may use in `Host` (`--allowed-host`), besides loopback and the
    /// bound address.
    pub allowed_hosts: Vec<String>,
    /// Peers whose `X-Forwarded-Proto: https` is believed (`--trusted-proxy`).
    pub trusted_proxies: Vec<IpAddr>,
    /// At most this many connections at once (`--max-connections`); the default otherwise.
    pub max_connections: Option<usize>,
}

impl State {
    /// Opens the store whose `.repro` folder is `root`.
    /// It answers to loopback names only; `serve` widens that as asked.
    pub fn open(root: &Path) -> Result<Arc<State>, ServerError> {
        Ok(Arc::new(State::with_access(root, guard::Access::default())?))
    }

    fn with_access(root: &Path, access: guard::Access) -> Result<State, ServerError> {
        let store = repro_store::Store::open(root)?;
        let mut secret = [0u8; 32];
        secret[..16].copy_from_slice(uuid::Uuid::new_v4().as_bytes());
        secret[16..].copy_from_slice(uuid::Uuid::new_v4().as_bytes());
        Ok(State {
            root: root.to_path_buf(),
            pool: Mutex::new(vec![store.meta]),
            objects: store.objects,
            host: repro_store::process::hostname(),
            ephemeral: None,
            sessions: auth::login::Sessions::default(),
            held: None,
            access,
            secret,
        })
    }

    /// The store's `.repro` folder.
    pub(crate) fn root(&self) -> &Path {
        &self.root
    }

    /// The stage names of the store's configuration (read on each call: it may change).
    pub(crate) fn stages(&self) -> Result<Vec<String>, ApiError> {
        let config = repro_store::Config::load(&self.root.join("repro.toml"))?;
        Ok(config.stage_policies().into_keys().collect())
    }

    /// Runs `f` with a pooled connection on the blocking pool.
    pub(crate) async fn with_meta<T: Send + 'static>(
        self: &Arc<Self>,
        f: impl FnOnce(&mut Metadata, &State) -> Result<T, ApiError> + Send + 'static,
    ) -> Result<T, ApiError> {
        let state = Arc::clone(self);
        tokio::task::spawn_blocking(move || {
            let mut meta = state.take_meta()?;
            let out = f(&mut meta, &state);
            state.give_back(meta);
            out
        })
        .await
        .map_err(|e| ApiError::internal(format!("the request's worker failed: {e}")))?
    }

    /// Runs `f` with the whole store (a pooled connection, repro.toml read anew) on the
    /// blocking pool: for the functions of `repro-exec` the CLI calls too.
    pub(crate) async fn with_store<T: Send + 'static>(
        self: &Arc<Self>,
        f: impl FnOnce(&mut repro_store::Store) -> Result<T, ApiError> + Send + 'static,
    ) -> Result<T, ApiError> {
        let state = Arc::clone(self);
        tokio::task::spawn_blocking(move || {
            let meta = state.take_meta()?;
            let mut store = repro_store::Store::open_with(&state.root, meta).map_err(ApiError::from)?;
            let out = f(&mut store);
            state.give_back(store.meta);
            out
        })
        .await
        .map_err(|e| ApiError::internal(format!("the request's worker failed: {e}")))?
    }

    fn take_meta(&self) -> Result<Metadata, ApiError> {
        match self.pool.lock().ok().and_then(|mut p| p.pop()) {
            Some(m) => Ok(m),
            None => repro_store::Store::connect_meta(&self.root).map_err(ApiError::from),
        }
    }

    fn give_back(&self, meta: Metadata) {
        if let Ok(mut p) = self.pool.lock() {
            if p.len() < 8 {
                p.push(meta);
            }
        }
    }
}

/// Every route the server answers: each module's own, merged here and nowhere else.
pub(crate) fn declare() -> routes::Routes {
    use axum::http::Method as M;
    use routes::{Body, Kind, Role};
    routes::Routes::new()
        .add(M::GET, "/health", Role::Public, Kind::Plain, Body::Json, || async { "OK" })
        .add(M::GET, "/version", Role::Public, Kind::Plain, Body::Json, || async { env!("CARGO_PKG_VERSION") })
        // MLflow: the handlers read bodies themselves, up to their own bound (`request`).
        .merge(mlflow::experiments::routes())
        .merge(mlflow::runs::routes())
        .merge(mlflow::metrics::routes())
        .merge(mlflow::registered_models::routes())
        .merge(mlflow::model_versions::routes())
        .merge(mlflow::logged_models::routes())
        .merge(mlflow::routes())
        .merge(mlflow::artifacts::routes())
        .merge(mlflow::graphql::routes())
        .merge(native::routes())
        .merge(ui::routes())
        .merge(auth::login::routes())
}

/// The whole HTTP surface: every declared route, behind the guard.
pub fn router(state: Arc<State>) -> axum::Router {
    let (routes, table) = declare().build();
    guarded(routes, table, state)
}

/// The guard wraps every route and the fallback; nothing added after this is reachable.
pub(crate) fn guarded(routes: axum::Router<Arc<State>>, table: routes::Table, state: Arc<State>) -> axum::Router {
    let guard = guard::Guard { state: Arc::clone(&state), table: Arc::new(table) };
    routes
        // Never reached: the guard answers unknown paths itself, without calling on.
        .fallback(|uri: axum::http::Uri| async move { ApiError::no_endpoint(uri.path()) })
        .layer(axum::middleware::from_fn_with_state(guard, guard::check))
        .with_state(state)
}

/// Serves the store whose `.repro` folder is `root` until Ctrl-C (`repro serve`), on a
/// runtime of its own.
pub fn serve(root: &Path, addr: SocketAddr, options: ServeOptions) -> Result<(), ServerError> {
    let access = guard::Access::new(addr.ip(), &options.allowed_hosts, &options.trusted_proxies)?;
    // Before the runtime starts: the PostgreSQL client blocks on a runtime of its own.
    let state = Arc::new(State::with_access(root, access)?);
    let wanted = options.max_connections.unwrap_or(Limits::default().connections);
    let limits = Limits { connections: listener::fit_connections(wanted, true), ..Limits::default() };
    if limits.connections < wanted {
        eprintln!(
            "repro: serving at most {} connections at once (the limit on open files allows no more)",
            limits.connections
        );
    }
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().map_err(ServerError::Runtime)?;
    rt.block_on(async move {
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|e| ServerError::Bind { addr: addr.to_string(), source: e })?;
        let local = listener.local_addr().map_err(|e| ServerError::Bind { addr: addr.to_string(), source: e })?;
        tracing::info!("serving on http://{local}");
        eprintln!("repro: serving the store on http://{local} (MLflow clients: MLFLOW_TRACKING_URI=http://{local})");
        if addr.ip().is_unspecified() && options.allowed_hosts.is_empty() {
            eprintln!(
                "repro: listening on every interface, but answering only to loopback names and {}; \
                 add --allowed-host NAME for each name or address clients use",
                addr.ip()
            );
        }
        listener::run(listener, router(state), limits, async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await;
        Ok(())
    })
}

/// A server on a free loopback port in a thread of its own, for `repro run`: the command's
/// MLflow calls land in the store while repro waits for it. Stops when the handle drops.
pub struct Background {
    pub addr: SocketAddr,
    /// The token the command's MLflow client sends (`MLFLOW_TRACKING_TOKEN`).
    pub token: String,
    /// For a replay: the registry calls answered and not written.
    pub held: Option<repro_exec::replay::HeldCalls>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Background {
    pub fn start(root: &Path) -> Result<Background, ServerError> {
        Background::start_with(root, false)
    }

    /// The server for `repro replay`: tracking writes land as usual (they are the replay
    /// run's own), registry writes are answered and listed in `held`, never appended.
    pub fn start_replay(root: &Path) -> Result<Background, ServerError> {
        Background::start_with(root, true)
    }

    fn start_with(root: &Path, replay: bool) -> Result<Background, ServerError> {
        let token = format!("repro_run_{}", uuid::Uuid::new_v4().simple());
        let mut state = State::with_access(root, guard::Access::default())?;
        let held = replay.then(repro_exec::replay::HeldCalls::default);
        state.ephemeral = Some(repro_store::tokens::token_hash(&token));
        state.held = held.clone().map(|calls| Held { calls, changes: Mutex::new(Vec::new()) });
        let state = Arc::new(state);
        let std_listener = std::net::TcpListener::bind("127.0.0.1:0")
            .map_err(|e| ServerError::Bind { addr: "127.0.0.1:0".into(), source: e })?;
        let addr =
            std_listener.local_addr().map_err(|e| ServerError::Bind { addr: "127.0.0.1:0".into(), source: e })?;
        std_listener.set_nonblocking(true).map_err(|e| ServerError::Bind { addr: addr.to_string(), source: e })?;
        // One command's MLflow client: a few connections at a time.
        let limits = Limits { connections: listener::fit_connections(256, false), ..Limits::default() };
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("repro-tracking".into())
            .spawn(move || {
                let Ok(rt) = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build() else {
                    return;
                };
                rt.block_on(async move {
                    let Ok(listener) = tokio::net::TcpListener::from_std(std_listener) else { return };
                    listener::run(listener, router(state), limits, async {
                        let _ = rx.await;
                    })
                    .await;
                });
            })
            .map_err(|e| ServerError::Bind { addr: addr.to_string(), source: e })?;
        Ok(Background { addr, token, held, stop: Some(tx), thread: Some(thread) })
    }

    pub fn uri(&self) -> String {
        format!("http://{}", self.addr)
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
