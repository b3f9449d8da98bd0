use axum::body::Body as AxBody;
use axum::http::Request;
use tower::ServiceExt;

use super::support::*;
use crate::{declare, guarded};

#[tokio::test]
async fn a_route_missing_from_the_table_is_refused() {
    let (_dir, state) = store();
    let (router, table) = declare().build();
    // A handler given a path behind the table's back.
    let sneaky = router.route("/sneaky", axum::routing::post(|| async { "written" }));
    let app = guarded(sneaky, table, state);
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
