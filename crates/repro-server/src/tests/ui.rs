use serde_json::json;

use super::support::*;

#[tokio::test]
async fn the_pages_render() {
    let app = App::new();
    let run = app.run().await;
    for path in ["/ui", "/ui/models", &format!("/ui/runs/{run}")] {
        let (status, bytes) = app.raw("GET", path, json!({}), &[]).await;
        let html = String::from_utf8_lossy(&bytes);
        assert_eq!(status, 200, "{path}: {html}");
        assert!(html.starts_with("<!doctype html>"), "{path}");
    }
    let (status, _) = app.raw("GET", "/", json!({}), &[]).await;
    assert_eq!(status, 303);
}

#[tokio::test]
async fn unknown_runs_and_half_a_diff_are_the_clients_mistake() {
    let app = App::new();
    let (status, bytes) = app.raw("GET", "/ui/runs/0123456789abcdef0123456789abcdef", json!({}), &[]).await;
    assert_eq!(status, 404, "{}", String::from_utf8_lossy(&bytes));
    let (status, bytes) = app.raw("GET", "/ui/runs/%3Cscript%3E", json!({}), &[]).await;
    let html = String::from_utf8_lossy(&bytes);
    assert_eq!(status, 404);
    assert!(!html.contains("<script>"), "{html}");
    let (status, _) = app.raw("GET", "/ui/diff", json!({"a": "x"}), &[]).await;
    assert_eq!(status, 400);
}
