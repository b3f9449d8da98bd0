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
