use serde_json::json;

use super::support::*;

#[tokio::test]
async fn an_artifact_is_uploaded_listed_and_downloaded() {
    let app = App::new();
    let run = app.run().await;
    assert_eq!(app.upload(&run, "model/weights.txt", "w=1").await, 200);
    let (status, body) = app
        .call("GET", "/api/2.0/mlflow-artifacts/artifacts", json!({"path": format!("0/{run}/artifacts/model")}))
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["files"][0]["path"], "weights.txt", "{body}");
    let url = format!("/api/2.0/mlflow-artifacts/artifacts/0/{run}/artifacts/model/weights.txt");
    let (status, bytes) = app.raw("GET", &url, json!({}), &[]).await;
    assert_eq!((status.as_u16(), bytes.as_slice()), (200, b"w=1".as_slice()));
}

#[tokio::test]
async fn missing_and_escaping_artifacts_are_the_clients_mistake() {
    let app = App::new();
    let run = app.run().await;
    let url = format!("/api/2.0/mlflow-artifacts/artifacts/0/{run}/artifacts/none.txt");
    let (status, body) = app.call("GET", &url, json!({})).await;
    assert_error((status, body), 404, "RESOURCE_DOES_NOT_EXIST");
    let (status, body) = app.call("GET", "/api/2.0/mlflow-artifacts/artifacts/0/%2E%2E/etc/passwd", json!({})).await;
    assert_error((status, body), 400, "INVALID_PARAMETER_VALUE");
}

#[test]
fn downloads_are_typed_as_mlflow_types_them_and_never_as_html() {
    use crate::download::content_type;
    // MLflow's test_mime_type_for_download_artifacts_api expectations.
    for (name, want) in [
        ("a.txt", "text/plain"),
        ("b.pkl", "application/octet-stream"),
        ("c.png", "image/png"),
        ("d.pdf", "application/pdf"),
        ("MLmodel", "text/plain"),
        ("mlproject", "text/plain"),
        ("model/conda.yaml", "text/plain"),
        ("no_extension", "application/octet-stream"),
        // What a browser would run is text, whatever the client logged it as.
        ("report.html", "text/plain"),
        ("page.xhtml", "text/plain"),
        ("plot.svg", "text/plain"),
    ] {
        assert_eq!(content_type(name), want, "{name}");
    }
}
