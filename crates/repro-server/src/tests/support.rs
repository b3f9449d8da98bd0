//! A store in a temp folder, the router over it, and one call at a time through it.

use std::sync::Arc;

use axum::body::Body as AxBody;
use axum::http::{Request, StatusCode};
use serde_json::{json, Value};
use tower::ServiceExt;

use crate::State;

pub(crate) fn store() -> (tempfile::TempDir, Arc<State>) {
    let dir = tempfile::tempdir().expect("tempdir");
    repro_store::Store::init(dir.path()).expect("store");
    let state = State::open(&dir.path().join(".repro")).expect("state");
    (dir, state)
}

/// The app over a fresh store (the store's folder lives as long as the app).
pub(crate) struct App {
    pub(crate) dir: tempfile::TempDir,
    pub(crate) router: axum::Router,
}

impl App {
    pub(crate) fn new() -> App {
        let (dir, state) = store();
        let router = crate::router(state);
        App { dir, router }
    }

    /// One request: a GET's `body` becomes its query string, anything else's its JSON body.
    pub(crate) async fn call(&self, method: &str, path: &str, body: Value) -> (StatusCode, Value) {
        let (status, bytes) = self.raw(method, path, body, &[]).await;
        let json = if bytes.is_empty() { Value::Null } else { serde_json::from_slice(&bytes).unwrap_or(Value::Null) };
        (status, json)
    }

    pub(crate) async fn raw(
        &self,
        method: &str,
        path: &str,
        body: Value,
        headers: &[(&str, &str)],
    ) -> (StatusCode, Vec<u8>) {
        let mut uri = path.to_string();
        let mut req = Request::builder().method(method).header("host", "127.0.0.1");
        let payload = if method == "GET" || method == "HEAD" {
            if let Value::Object(m) = &body {
                let q: Vec<String> = m
                    .iter()
                    .map(|(k, v)| {
                        let v = v.as_str().map_or_else(|| v.to_string(), str::to_string);
                        format!("{k}={}", crate::request::encode_component(&v))
                    })
                    .collect();
                if !q.is_empty() {
                    uri = format!("{uri}?{}", q.join("&"));
                }
            }
            AxBody::empty()
        } else {
            req = req.header("content-type", "application/json");
            AxBody::from(body.to_string())
        };
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let req = req.uri(uri).body(payload).expect("request");
        let answer = self.router.clone().oneshot(req).await.expect("answer");
        let status = answer.status();
        let bytes = axum::body::to_bytes(answer.into_body(), 64 << 20).await.expect("body");
        (status, bytes.to_vec())
    }
}

/// A GET answered with its headers, the body as text (for the pages).
pub(crate) struct Page {
    pub(crate) status: StatusCode,
    pub(crate) headers: axum::http::HeaderMap,
    pub(crate) html: String,
}

impl Page {
    pub(crate) fn header(&self, name: &str) -> &str {
        self.headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or("")
    }
}

impl App {
    /// GETs `path` (query string included) as a browser would, without following redirects.
    pub(crate) async fn page(&self, path: &str, headers: &[(&str, &str)]) -> Page {
        let mut req = Request::builder().method("GET").uri(path).header("host", "127.0.0.1");
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let answer = self.router.clone().oneshot(req.body(AxBody::empty()).expect("request")).await.expect("answer");
        let (status, headers) = (answer.status(), answer.headers().clone());
        let bytes = axum::body::to_bytes(answer.into_body(), 64 << 20).await.expect("body");
        Page { status, headers, html: String::from_utf8_lossy(&bytes).into_owned() }
    }
}

/// The MLflow path of an endpoint.
pub(crate) fn ml(rest: &str) -> String {
    format!("/api/2.0/mlflow{rest}")
}

impl App {
    /// A run in the default experiment; its id.
    pub(crate) async fn run(&self) -> String {
        let (status, body) =
            self.call("POST", &ml("/runs/create"), json!({"experiment_id": "0", "start_time": 1})).await;
        assert_eq!(status, 200, "{body}");
        body["run"]["info"]["run_id"].as_str().expect("run id").to_string()
    }

    /// Uploads a file into a run's artifacts through the proxy.
    pub(crate) async fn upload(&self, run: &str, path: &str, bytes: &str) -> StatusCode {
        let url = format!("/api/2.0/mlflow-artifacts/artifacts/0/{run}/artifacts/{path}");
        let req = Request::builder()
            .method("PUT")
            .uri(url)
            .header("host", "127.0.0.1")
            .header("content-type", "application/octet-stream")
            .body(AxBody::from(bytes.to_string()))
            .expect("request");
        self.router.clone().oneshot(req).await.expect("answer").status()
    }
}

/// Asserts an MLflow error envelope.
pub(crate) fn assert_error(got: (StatusCode, Value), status: u16, code: &str) {
    assert_eq!(got.0.as_u16(), status, "{}", got.1);
    assert_eq!(got.1["error_code"], code, "{}", got.1);
    assert!(got.1["message"].as_str().is_some_and(|m| !m.is_empty()), "{}", got.1);
}
