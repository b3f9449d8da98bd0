use serde_json::json;

use super::support::*;

fn tokens(app: &App) {
    let meta = repro_store::Store::connect_meta(&app.dir.path().join(".repro")).expect("meta");
    meta.tokens().create("t1", "reader-token", "read", "reader").expect("token");
    meta.tokens().create("t2", "writer-token", "write", "writer").expect("token");
}

#[tokio::test]
async fn a_token_of_the_right_role_is_let_in() {
    let app = App::new();
    tokens(&app);
    let bearer = [("authorization", "Bearer writer-token")];
    let body = json!({"name": "pricing"});
    let (status, bytes) = app.raw("POST", &ml("/experiments/create"), body, &bearer).await;
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&bytes));
    let (status, _) = app.raw("GET", "/api/v1/runs", json!({}), &[("authorization", "Bearer reader-token")]).await;
    assert_eq!(status, 200);
    // Health needs nothing.
    assert_eq!(app.raw("GET", "/health", json!({}), &[]).await.0, 200);
}

#[tokio::test]
async fn no_token_a_bad_one_or_too_small_a_role_is_refused() {
    let app = App::new();
    tokens(&app);
    let json_of = |(status, bytes): (axum::http::StatusCode, Vec<u8>)| {
        (status, serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null))
    };
    let create = || json!({"name": "pricing"});
    assert_error(json_of(app.raw("POST", &ml("/experiments/create"), create(), &[]).await), 401, "UNAUTHENTICATED");
    let bad = [("authorization", "Bearer nope")];
    assert_error(json_of(app.raw("POST", &ml("/experiments/create"), create(), &bad).await), 401, "UNAUTHENTICATED");
    let reader = [("authorization", "Bearer reader-token")];
    assert_error(
        json_of(app.raw("POST", &ml("/experiments/create"), create(), &reader).await),
        403,
        "PERMISSION_DENIED",
    );
    // A browser without a session is sent to sign in.
    let (status, _) = app.raw("GET", "/ui", json!({}), &[]).await;
    assert_eq!(status, 303);
    let (status, bytes) = app.raw("GET", "/ui/login", json!({}), &[]).await;
    assert_eq!(status, 200);
    assert!(String::from_utf8_lossy(&bytes).contains("<form"));
}

#[tokio::test]
async fn a_refusal_before_the_body_is_read_closes_the_connection_and_a_read_body_keeps_it() {
    use tower::ServiceExt as _;
    let app = App::new();
    tokens(&app);
    let post = |token: Option<&str>| {
        let mut req = axum::http::Request::builder()
            .method("POST")
            .uri(ml("/experiments/create"))
            .header("host", "127.0.0.1")
            .header("content-type", "application/json");
        if let Some(t) = token {
            req = req.header("authorization", format!("Bearer {t}"));
        }
        req.body(axum::body::Body::from(json!({"name": format!("e{}", token.unwrap_or(""))}).to_string()))
            .expect("request")
    };
    let connection = |answer: &axum::response::Response| {
        answer.headers().get("connection").and_then(|v| v.to_str().ok()).unwrap_or("").to_string()
    };
    // Refused by the token check: the body was never read, and the client must not reuse
    // a connection the server is about to drop.
    for token in [None, Some("nope"), Some("reader-token")] {
        let answer = app.router.clone().oneshot(post(token)).await.expect("answer");
        assert!(answer.status().is_client_error(), "{token:?}: {}", answer.status());
        assert_eq!(connection(&answer), "close", "{token:?}");
    }
    // Let in, the handler reads the body: the connection stays open for the next request.
    let answer = app.router.clone().oneshot(post(Some("writer-token"))).await.expect("answer");
    assert_eq!(answer.status(), 200);
    assert_eq!(connection(&answer), "");
    // A GET has no body to leave unread, refused or not.
    let get = axum::http::Request::builder()
        .uri("/api/v1/runs")
        .header("host", "127.0.0.1")
        .body(axum::body::Body::empty())
        .expect("request");
    let answer = app.router.clone().oneshot(get).await.expect("answer");
    assert_eq!((answer.status().as_u16(), connection(&answer)), (401, String::new()));
}
