use serde_json::json;

use super::support::*;

#[tokio::test]
async fn metrics_are_logged_and_their_history_read() {
    let app = App::new();
    let run = app.run().await;
    let point = json!({"run_id": run, "key": "rmse", "value": 0.5, "timestamp": 10, "step": 1});
    assert_eq!(app.call("POST", &ml("/runs/log-metric"), point).await, (axum::http::StatusCode::OK, json!({})));
    let batch = json!({"run_id": run, "metrics": [{"key": "rmse", "value": "NaN", "timestamp": 11, "step": 2}]});
    assert_eq!(app.call("POST", &ml("/runs/log-batch"), batch).await.0, 200);
    let (status, body) =
        app.call("GET", &ml("/metrics/get-history"), json!({"run_id": run, "metric_key": "rmse"})).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body["metrics"],
        json!([
            {"key": "rmse", "value": 0.5, "timestamp": 10, "step": 1},
            {"key": "rmse", "value": "NaN", "timestamp": 11, "step": 2}
        ])
    );
}

#[tokio::test]
async fn malformed_metrics_are_the_clients_mistake() {
    let app = App::new();
    let run = app.run().await;
    // MLflow requires the timestamp of a single point.
    assert_error(
        app.call("POST", &ml("/runs/log-metric"), json!({"run_id": run, "key": "k", "value": 1})).await,
        400,
        "INVALID_PARAMETER_VALUE",
    );
    assert_error(
        app.call("POST", &ml("/runs/log-metric"), json!({"run_id": run, "key": "k", "value": "high", "timestamp": 1}))
            .await,
        400,
        "INVALID_PARAMETER_VALUE",
    );
    assert_error(
        app.call("POST", &ml("/runs/log-batch"), json!({"run_id": run, "metrics": 3})).await,
        400,
        "INVALID_PARAMETER_VALUE",
    );
}
