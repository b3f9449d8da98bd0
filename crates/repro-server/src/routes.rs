//! Every route the server answers, declared once, with the method and the role it needs.
//!
//! The router is built from this table and nothing else: `Routes` is the only way a
//! handler gets a path (each module declares its own with `fn routes() -> Routes`, and
//! `lib.rs` merges them), and each `add` records the (method, path, role) it registers. The guard (`guard::check`) authorises by the
//! route axum *matched* (`MatchedPath`) and the method, looked up in the same table — never
//! by a prefix or suffix of the raw path — and refuses any pair the table does not hold, so
//! a route slipped into the router some other way answers 404 before its handler runs
//! (`a_route_missing_from_the_table_is_refused` in the crate's tests).

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use axum::extract::DefaultBodyLimit;
use axum::handler::Handler;
use axum::http::Method;
use axum::routing::{on, MethodFilter, MethodRouter};
use axum::Router;

use crate::State;

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
    /// Raw bytes of any type: the artifact uploads (the proxy's PUT, the web UI's POST).
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
    pub(crate) fn new(routes: Vec<Route>) -> Table {
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

/// A module's routes: the only way to give a handler a path. Each module declares its own
/// (`fn routes() -> Routes`), `lib.rs` merges them, and the router and the guard's table are
/// both built from the merged list, so neither can hold a route the other lacks.
pub(crate) struct Routes {
    entries: Vec<(Route, MethodRouter<Arc<State>>)>,
    /// The largest body the handlers added next may read through axum's extractors.
    limit: Option<usize>,
}

impl Routes {
    pub(crate) fn new() -> Routes {
        Routes { entries: Vec::new(), limit: None }
    }

    pub(crate) fn add<H, T>(
        mut self,
        method: Method,
        path: &str,
        role: Role,
        kind: Kind,
        body: Body,
        handler: H,
    ) -> Self
    where
        H: Handler<T, Arc<State>>,
        T: 'static,
    {
        let filter = MethodFilter::try_from(method.clone()).expect("the table names only standard methods");
        let mut service = on(filter, handler);
        if let Some(limit) = self.limit {
            service = service.layer(DefaultBodyLimit::max(limit));
        }
        self.entries.push((Route { method, path: path.to_string(), role, kind, body }, service));
        self
    }

    pub(crate) fn api<H: Handler<T, Arc<State>>, T: 'static>(
        self,
        method: Method,
        path: &str,
        role: Role,
        h: H,
    ) -> Self {
        self.add(method, path, role, Kind::Api, Body::Json, h)
    }

    pub(crate) fn page<H: Handler<T, Arc<State>>, T: 'static>(
        self,
        method: Method,
        path: &str,
        role: Role,
        h: H,
    ) -> Self {
        self.add(method, path, role, Kind::Ui, Body::Form, h)
    }

    pub(crate) fn limit(mut self, limit: Option<usize>) -> Self {
        self.limit = limit;
        self
    }

    pub(crate) fn merge(mut self, other: Routes) -> Self {
        self.entries.extend(other.entries);
        self
    }

    /// The router and the table of what it serves.
    pub(crate) fn build(self) -> (Router<Arc<State>>, Table) {
        let mut router = Router::new();
        let mut routes = Vec::with_capacity(self.entries.len());
        for (route, service) in self.entries {
            // `route` merges with what the path already serves, and panics on a method
            // declared twice: the table cannot give one pair two roles.
            router = router.route(&route.path, service);
            routes.push(route);
        }
        (router, Table::new(routes))
    }
}

/// Every route, as the guard sees it.
pub fn table() -> Vec<Route> {
    crate::declare().entries.into_iter().map(|(r, _)| r).collect()
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
                // Only searches POSTed by MLflow's client, GraphQL (whose every field reads),
                // and the sign-in pages, write nothing.
                let posted_read = r.path.ends_with("/search")
                    || r.path.ends_with("/search-datasets")
                    || r.path.ends_with("/get-latest-versions")
                    || r.path == "/graphql";
                assert!(posted_read || r.kind == Kind::Ui, "{} {} writes with {:?}", r.method, r.path, r.role);
            }
        }
        for needle in ["/model-versions/transition-stage", "/promote", "/archive"] {
            let admin: Vec<_> = routes.iter().filter(|r| r.path.ends_with(needle)).collect();
            assert!(!admin.is_empty() && admin.iter().all(|r| r.role == Role::Admin), "{needle}");
        }
    }
}
