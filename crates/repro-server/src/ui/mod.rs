//! The web UI: server-rendered HTML pages over the same store the API serves — the runs
//! table, a run's lineage, audit, metric charts and logs, the diff of two runs, and the
//! model registry. No JavaScript and no external assets: one small stylesheet in the head,
//! charts as inline SVG. Every value shown is HTML-escaped (names, params, tags and logs are
//! user input).

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::extract::{FromRequestParts, Path, Query, State as AxState};
use axum::http::request::Parts;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};

use crate::routes::{Role, Routes};
use crate::State;

mod charts;
mod compare;
mod data;
mod files;
pub(crate) mod layout;
mod lineage;
mod models;
pub(crate) mod report;
mod run_page;
mod run_sections;
mod runs;

pub(crate) use layout::{api_error_page, error_page};

pub(crate) type S = AxState<Arc<State>>;

/// A page's query string. axum's own `Query` answers a malformed one (bad percent-encoding,
/// not UTF-8) in plain text; a page answers with an HTML 400 instead.
pub(crate) struct Params(pub(crate) BTreeMap<String, String>);

impl<St: Send + Sync> FromRequestParts<St> for Params {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &St) -> Result<Self, Response> {
        match Query::<BTreeMap<String, String>>::from_request_parts(parts, state).await {
            Ok(Query(q)) => Ok(Params(q)),
            Err(e) => Err(error_page(StatusCode::BAD_REQUEST, "Bad Request", &e.body_text())),
        }
    }
}

/// The query string as its pairs in order, repeated keys kept (`cols=a&cols=b`, what a form
/// of checkboxes sends); errors as `Params`.
pub(crate) struct Pairs(pub(crate) Vec<(String, String)>);

impl<St: Send + Sync> FromRequestParts<St> for Pairs {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &St) -> Result<Self, Response> {
        match Query::<Vec<(String, String)>>::from_request_parts(parts, state).await {
            Ok(Query(q)) => Ok(Pairs(q)),
            Err(e) => Err(error_page(StatusCode::BAD_REQUEST, "Bad Request", &e.body_text())),
        }
    }
}

/// One path segment (`{id}`), for the same reason as `Params`.
pub(crate) struct Segment(pub(crate) String);

impl<St: Send + Sync> FromRequestParts<St> for Segment {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &St) -> Result<Self, Response> {
        match Path::<String>::from_request_parts(parts, state).await {
            Ok(Path(p)) => Ok(Segment(p)),
            Err(e) => Err(error_page(StatusCode::BAD_REQUEST, "Bad Request", &e.body_text())),
        }
    }
}

// Set (by the auth check) while a page is made for a browser signed in with the login
// form, so the page offers to sign out: the sign-out form's CSRF token.
tokio::task_local! {
    pub(crate) static SIGNED_IN: String;
}

pub(crate) fn routes() -> Routes {
    use axum::http::Method as M;
    use Role::Read;
    Routes::new()
        .limit(Some(crate::request::MAX_FORM))
        .page(M::GET, "/", Read, root)
        .page(M::GET, "/ui", Read, runs::runs_page)
        .page(M::GET, "/ui/", Read, root)
        .page(M::GET, "/ui/runs/{id}", Read, run_page::run_page)
        .page(M::GET, "/ui/runs/{id}/file", Read, files::file_page)
        .page(M::GET, "/ui/runs/{id}/raw", Read, files::file_raw)
        .page(M::GET, "/ui/diff", Read, compare::diff_page)
        .page(M::GET, "/ui/compare", Read, compare::compare_page)
        .page(M::GET, "/ui/models", Read, models::models_page)
        .page(M::GET, "/ui/models/{spec}", Read, models::model_page)
        .page(M::GET, "/ui/models/{spec}/report", Read, report::report_page)
        .page(M::GET, "/ui/static/links.js", Role::Public, links_js)
}

/// `/` and `/ui/` are the runs table.
pub(crate) async fn root() -> Redirect {
    Redirect::to("/ui")
}

// ---- text helpers -----------------------------------------------------------------------

/// A RUN as the CLI takes it (a full id, a 4+ character prefix, a name, `latest`,
/// `NAME@V`, `NAME@STAGE`), resolved by the store's own resolver so the UI and the CLI
/// cannot disagree; errors carry the CLI's wording (unknown is a 404, ambiguous a 400).
pub(crate) fn resolve_run(m: &repro_store::Metadata, spec: &str) -> Result<repro_core::RunId, crate::ApiError> {
    m.resolve_run(spec).map_err(|e| crate::ApiError::from(repro_exec::ExecError::Store(e)))
}

/// Percent-encodes a query-string component.
pub(crate) fn enc(s: &str) -> String {
    crate::request::encode_component(s)
}

pub(crate) fn fmt_num(v: f64) -> String {
    if v.is_finite() && v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{v:.0}")
    } else if v.is_finite() {
        let s = format!("{v:.6}");
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        format!("{v}")
    }
}

/// A param value as text: strings bare, anything else as JSON.
pub(crate) fn param_text(v: &serde_json::Value) -> String {
    v.as_str().map(str::to_string).unwrap_or_else(|| v.to_string())
}

/// `/ui/static/links.js`.
pub(crate) async fn links_js() -> Response {
    ([(axum::http::header::CONTENT_TYPE, "text/javascript; charset=utf-8")], layout::LINKS_JS).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_components_are_percent_encoded() {
        assert_eq!(enc("metrics.rmse ASC"), "metrics.rmse%20ASC");
        assert_eq!(enc("a&b=<c>"), "a%26b%3D%3Cc%3E");
    }
}
