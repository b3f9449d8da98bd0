//! Every route the server answers, declared once, with the method and the role it needs.
//!
//! The router is built from this table and nothing else: `Builder` is the only way a
//! handler gets a path (the modules export handlers, not routers), and each `add` records
//! the (method, path, role) it registers. The guard (`guard::check`) authorises by the
//! route axum *matched* (`MatchedPath`) and the method, looked up in the same table — never
//! by a prefix or suffix of the raw path — and refuses any pair the table does not hold, so
//! a route slipped into the router some other way answers 404 before its handler runs
//! (`a_route_missing_from_the_table_is_refused` below).

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use axum::extract::DefaultBodyLimit;
use axum::handler::Handler;
use axum::http::Method;
use axum::routing::{on, MethodFilter};
use axum::Router;

use crate::{api, login, native, registry_api, ui, State};

/// What a caller must be to use a route. The order matters: a role includes those below it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Role {
    /// Anyone who reaches the server: health, version, the sign-in form.
    Public,
    /// Any token.
    Read,
    /// `write` and `admin` tokens, and the token `repro run` gives its command.
    Write,
    /// `admin` tokens only: what changes which version a stage serves.
    Admin,
}

impl Role {
    pub fn name(self) -> &'static str {
        match self {
            Role::Public => "public",
            Role::Read => "read",
            Role::Write => "write",
            Role::Admin => "admin",
        }
    }
}

/// Who a route is for, which decides how a refusal is written and which credentials count.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// JSON APIs (MLflow's and the native one): errors in the `{"error_code", "message"}`
    /// envelope; only `Authorization` counts, never a cookie.
    Api,
    /// Web pages: the session cookie counts; a browser without one is sent to sign in.
    Ui,
    /// `/health` and `/version`: plain text.
    Plain,
}

/// What a request that writes carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Body {
    /// A JSON message (`Content-Type: application/json`): every API write but one.
    Json,
    /// Raw bytes of any type: the artifact upload.
    Raw,
    /// An HTML form with its CSRF token: sign-in and sign-out.
    Form,
}

/// One (method, path) of the table.
#[derive(Clone, Debug)]
pub struct Route {
    pub method: Method,
    /// The path as axum matches it (`{name}` one segment, `{*rest}` the remainder).
    pub path: String,
    pub role: Role,
    pub kind: Kind,
    pub body: Body,
}

/// The table, indexed for the guard.
pub(crate) struct Table {
    routes: Vec<Route>,
    index: HashMap<(Method, String), usize>,
    paths: HashSet<String>,
}

impl Table {
    fn new(routes: Vec<Route>) -> Table {
        let index = routes.iter().enumerate().map(|(i, r)| ((r.method.clone(), r.path.clone()), i)).collect();
        let paths = routes.iter().map(|r| r.path.clone()).collect();
        Table { routes, index, paths }
    }

    /// The entry for a method on a matched path; HEAD is answered by GET's handler, so it
    /// needs what GET needs.
    pub(crate) fn get(&self, method: &Method, path: &str) -> Option<&Route> {
        let method = if method == Method::HEAD { &Method::GET } else { method };
        self.index.get(&(method.clone(), path.to_string())).map(|&i| &self.routes[i])
    }

    /// Whether some method is served at this matched path.
    pub(crate) fn has_path(&self, path: &str) -> bool {
        self.paths.contains(path)
    }
}

/// The only way to give a handler a path.
struct Builder {
    router: Router<Arc<State>>,
    routes: Vec<Route>,
    /// The largest body the handlers added next may read through axum's extractors.
    limit: Option<usize>,
}

impl Builder {
    fn new() -> Builder {
        Builder { router: Router::new(), routes: Vec::new(), limit: None }
    }

    fn add<H, T>(mut self, method: Method, path: &str, role: Role, kind: Kind, body: Body, handler: H) -> Self
    where
        H: Handler<T, Arc<State>>,
        T: 'static,
    {
        let filter = MethodFilter::try_from(method.clone()).expect("the table names only standard methods");
        let mut service = on(filter, handler);
        if let Some(limit) = self.limit {
            service = service.layer(DefaultBodyLimit::max(limit));
        }
        // `route` merges with what the path already serves, and panics on a method
        // declared twice: the table cannot give one pair two roles.
        self.router = self.router.route(path, service);
        self.routes.push(Route { method, path: path.to_string(), role, kind, body });
        self
    }

    fn api<H: Handler<T, Arc<State>>, T: 'static>(self, method: Method, path: &str, role: Role, h: H) -> Self {
        self.add(method, path, role, Kind::Api, Body::Json, h)
    }

    fn page<H: Handler<T, Arc<State>>, T: 'static>(self, method: Method, path: &str, role: Role, h: H) -> Self {
        self.add(method, path, role, Kind::Ui, Body::Form, h)
    }

    fn limit(mut self, limit: Option<usize>) -> Self {
        self.limit = limit;
        self
    }
}

/// MLflow's tracking and registry APIs are served under both prefixes (`/ajax-api` is what
/// MLflow's own web UI calls), with the same roles.
const MLFLOW_PREFIXES: [&str; 2] = ["/api/2.0/mlflow", "/ajax-api/2.0/mlflow"];
const ARTIFACT_PREFIXES: [&str; 2] =
    ["/api/2.0/mlflow-artifacts/artifacts", "/ajax-api/2.0/mlflow-artifacts/artifacts"];

fn declare() -> Builder {
    use Method as M;
    use Role::{Admin, Public, Read, Write};
    let mut b = Builder::new().add(M::GET, "/health", Public, Kind::Plain, Body::Json, || async { "OK" }).add(
        M::GET,
        "/version",
        Public,
        Kind::Plain,
        Body::Json,
        || async { env!("CARGO_PKG_VERSION") },
    );

    // MLflow: the handlers read bodies themselves, up to their own bound (`api::read_body`).
    for p in MLFLOW_PREFIXES {
        let at = |rest: &str| format!("{p}{rest}");
        b = b
            .api(M::POST, &at("/experiments/create"), Write, api::create_experiment)
            .api(M::GET, &at("/experiments/get"), Read, api::get_experiment)
            .api(M::GET, &at("/experiments/get-by-name"), Read, api::get_experiment_by_name)
            .api(M::GET, &at("/experiments/search"), Read, api::search_experiments)
            // A read the client POSTs (the filter may be long).
            .api(M::POST, &at("/experiments/search"), Read, api::search_experiments)
            .api(M::GET, &at("/experiments/list"), Read, api::search_experiments)
            .api(M::POST, &at("/experiments/update"), Write, api::update_experiment)
            .api(M::POST, &at("/experiments/delete"), Write, api::delete_experiment)
            .api(M::POST, &at("/experiments/restore"), Write, api::restore_experiment)
            .api(M::POST, &at("/experiments/set-experiment-tag"), Write, api::set_experiment_tag)
            .api(M::POST, &at("/experiments/delete-experiment-tag"), Write, api::delete_experiment_tag)
            .api(M::POST, &at("/runs/create"), Write, api::create_run)
            .api(M::GET, &at("/runs/get"), Read, api::get_run)
            .api(M::POST, &at("/runs/update"), Write, api::update_run)
            .api(M::POST, &at("/runs/delete"), Write, api::delete_run)
            .api(M::POST, &at("/runs/restore"), Write, api::restore_run)
            .api(M::POST, &at("/runs/search"), Read, api::search_runs)
            .api(M::POST, &at("/runs/log-metric"), Write, api::log_metric)
            .api(M::POST, &at("/runs/log-parameter"), Write, api::log_param)
            .api(M::POST, &at("/runs/set-tag"), Write, api::set_tag)
            .api(M::POST, &at("/runs/delete-tag"), Write, api::delete_tag)
            .api(M::POST, &at("/runs/log-batch"), Write, api::log_batch)
            .api(M::POST, &at("/runs/log-inputs"), Write, api::log_inputs)
            .api(M::POST, &at("/runs/outputs"), Write, registry_api::log_outputs)
            .api(M::GET, &at("/metrics/get-history"), Read, api::metric_history)
            // The model registry.
            .api(M::POST, &at("/registered-models/create"), Write, registry_api::create_model)
            .api(M::GET, &at("/registered-models/get"), Read, registry_api::get_model)
            .api(M::POST, &at("/registered-models/rename"), Write, registry_api::rename_model)
            .api(M::PATCH, &at("/registered-models/update"), Write, registry_api::update_model)
            .api(M::DELETE, &at("/registered-models/delete"), Write, registry_api::delete_model)
            .api(M::GET, &at("/registered-models/search"), Read, registry_api::search_models)
            .api(M::GET, &at("/registered-models/get-latest-versions"), Read, registry_api::latest_versions)
            .api(M::POST, &at("/registered-models/get-latest-versions"), Read, registry_api::latest_versions)
            .api(M::POST, &at("/registered-models/set-tag"), Write, registry_api::set_model_tag)
            .api(M::DELETE, &at("/registered-models/delete-tag"), Write, registry_api::delete_model_tag)
            .api(M::GET, &at("/registered-models/alias"), Read, registry_api::get_by_alias)
            .api(M::POST, &at("/registered-models/alias"), Write, registry_api::set_alias)
            .api(M::DELETE, &at("/registered-models/alias"), Write, registry_api::delete_alias)
            .api(M::POST, &at("/model-versions/create"), Write, registry_api::create_version)
            .api(M::GET, &at("/model-versions/get"), Read, registry_api::get_version)
            .api(M::PATCH, &at("/model-versions/update"), Write, registry_api::update_version)
            .api(M::DELETE, &at("/model-versions/delete"), Write, registry_api::delete_version)
            .api(M::GET, &at("/model-versions/search"), Read, registry_api::search_versions)
            // Staging, Production and Archived change what a stage serves: a release, so an
            // admin's, as `repro model promote` through the native API.
            .api(M::POST, &at("/model-versions/transition-stage"), Admin, registry_api::transition_stage)
            .api(M::GET, &at("/model-versions/get-download-uri"), Read, registry_api::download_uri)
            .api(M::POST, &at("/model-versions/set-tag"), Write, registry_api::set_version_tag)
            .api(M::DELETE, &at("/model-versions/delete-tag"), Write, registry_api::delete_version_tag)
            // Logged models (MLflow 3).
            .api(M::POST, &at("/logged-models"), Write, registry_api::create_logged_model)
            .api(M::POST, &at("/logged-models/search"), Read, registry_api::search_logged_models)
            .api(M::GET, &at("/logged-models/{id}"), Read, registry_api::get_logged_model)
            .api(M::PATCH, &at("/logged-models/{id}"), Write, registry_api::finalize_logged_model)
            .api(M::DELETE, &at("/logged-models/{id}"), Write, registry_api::delete_logged_model)
            .api(M::PATCH, &at("/logged-models/{id}/tags"), Write, registry_api::set_logged_model_tags)
            .api(M::DELETE, &at("/logged-models/{id}/tags/{key}"), Write, registry_api::delete_logged_model_tag)
            .api(M::POST, &at("/logged-models/{id}/params"), Write, registry_api::log_logged_model_params);
    }
    b = b.api(M::GET, "/api/3.0/mlflow/server-info", Read, api::server_info);

    // The artifact proxy. MLflow's web UI (`/ajax-api`) only downloads.
    let [files, ajax_files] = ARTIFACT_PREFIXES;
    b = b
        .api(M::GET, files, Read, api::list_artifacts)
        .api(M::GET, &format!("{files}/{{*path}}"), Read, api::download_artifact)
        .add(M::PUT, &format!("{files}/{{*path}}"), Write, Kind::Api, Body::Raw, api::upload_artifact)
        .api(M::DELETE, &format!("{files}/{{*path}}"), Write, api::delete_artifact)
        .api(M::GET, ajax_files, Read, api::list_artifacts)
        .api(M::GET, &format!("{ajax_files}/{{*path}}"), Read, api::download_artifact);

    // The native API: bodies are a few short fields.
    b = b
        .limit(Some(native::MAX_BODY))
        .api(M::GET, "/api/v1", Read, native::index)
        .api(M::GET, "/api/v1/", Read, native::index)
        .api(M::GET, "/api/v1/runs", Read, native::runs)
        .api(M::GET, "/api/v1/runs/{run}", Read, native::show)
        .api(M::GET, "/api/v1/runs/{run}/audit", Read, native::audit)
        .api(M::GET, "/api/v1/diff", Read, native::diff)
        .api(M::GET, "/api/v1/data", Read, native::datasets)
        .api(M::GET, "/api/v1/data/{dataset}", Read, native::dataset)
        .api(M::GET, "/api/v1/environments", Read, native::environments)
        .api(M::GET, "/api/v1/environments/{env}", Read, native::environment)
        .api(M::GET, "/api/v1/env-diff", Read, native::env_diff)
        .api(M::GET, "/api/v1/parity", Read, native::parity)
        .api(M::GET, "/api/v1/models", Read, native::models)
        .api(M::GET, "/api/v1/models/{model}", Read, native::model)
        .api(M::GET, "/api/v1/models/{model}/verify", Read, native::verify)
        .api(M::POST, "/api/v1/models/{model}/promote", Admin, native::promote)
        .api(M::POST, "/api/v1/models/{model}/approve", Write, native::approve)
        .api(M::POST, "/api/v1/models/{model}/archive", Admin, native::archive)
        .api(M::GET, "/api/v1/stages", Read, native::stages)
        .api(M::GET, "/api/v1/approvals", Read, native::approvals);

    // The web UI. The sign-in form and sign-out are open to all: the one takes a token, the
    // other ends only the session its own cookie names; both check a CSRF token.
    b.limit(Some(login::MAX_FORM))
        .page(M::GET, "/", Read, ui::root)
        .page(M::GET, "/ui", Read, ui::runs_page)
        .page(M::GET, "/ui/", Read, ui::root)
        .page(M::GET, "/ui/runs/{id}", Read, ui::run_page)
        .page(M::GET, "/ui/diff", Read, ui::diff_page)
        .page(M::GET, "/ui/models", Read, ui::models_page)
        .page(M::GET, login::LOGIN, Public, login::login_page)
        .page(M::POST, login::LOGIN, Public, login::login)
        .page(M::POST, login::LOGOUT, Public, login::logout)
}

/// Every route, as the guard sees it.
pub fn table() -> Vec<Route> {
    declare().routes
}

/// The whole HTTP surface: the table's routes behind the guard.
pub(crate) fn router(state: Arc<State>) -> Router {
    let b = declare();
    guarded(b.router, Table::new(b.routes), state)
}

/// The guard wraps every route and the fallback; nothing added after this is reachable.
fn guarded(routes: Router<Arc<State>>, table: Table, state: Arc<State>) -> Router {
    let guard = crate::guard::Guard { state: Arc::clone(&state), table: Arc::new(table) };
    routes
        // Never reached: the guard answers unknown paths itself, without calling on.
        .fallback(|uri: axum::http::Uri| async move { crate::ApiError::no_endpoint(uri.path()) })
        .layer(axum::middleware::from_fn_with_state(guard, crate::guard::check))
        .with_state(state)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_pair_is_declared_once_and_writes_need_a_token() {
        let routes = table();
        let mut seen = HashSet::new();
        for r in &routes {
            assert!(seen.insert((r.method.clone(), r.path.clone())), "{} {} twice", r.method, r.path);
            let reads = r.method == Method::GET;
            if !reads && r.role < Role::Write {
                // Only searches POSTed by MLflow's client, and the sign-in pages, write nothing.
                let posted_read = r.path.ends_with("/search") || r.path.ends_with("/get-latest-versions");
                assert!(posted_read || r.kind == Kind::Ui, "{} {} writes with {:?}", r.method, r.path, r.role);
            }
        }
        for needle in ["/model-versions/transition-stage", "/promote", "/archive"] {
            let admin: Vec<_> = routes.iter().filter(|r| r.path.ends_with(needle)).collect();
            assert!(!admin.is_empty() && admin.iter().all(|r| r.role == Role::Admin), "{needle}");
        }
    }

    #[tokio::test]
    async fn a_route_missing_from_the_table_is_refused() {
        use axum::body::Body as AxBody;
        use axum::http::Request;
        use tower::ServiceExt;

        let dir = tempfile::tempdir().expect("tempdir");
        repro_store::Store::init(dir.path()).expect("store");
        let state = State::open(&dir.path().join(".repro")).expect("state");
        let b = declare();
        // A handler given a path behind the table's back.
        let sneaky = b.router.route("/sneaky", axum::routing::post(|| async { "written" }));
        let app = guarded(sneaky, Table::new(b.routes), state);
        let req = |method: &str, path: &str| {
            Request::builder()
                .method(method)
                .uri(path)
                .header("host", "127.0.0.1")
                .header("content-type", "application/json")
                .body(AxBody::from("{}"))
                .expect("request")
        };
        let answer = app.clone().oneshot(req("POST", "/sneaky")).await.expect("answer");
        assert_eq!(answer.status(), 404);
        let body = axum::body::to_bytes(answer.into_body(), 1 << 20).await.expect("body");
        assert!(!String::from_utf8_lossy(&body).contains("written"));
        // A method the table does not give a declared path is refused too.
        let answer = app.clone().oneshot(req("PUT", "/health")).await.expect("answer");
        assert_eq!(answer.status(), 405);
        let answer = app.oneshot(req("GET", "/health")).await.expect("answer");
        assert_eq!(answer.status(), 200);
    }
}
