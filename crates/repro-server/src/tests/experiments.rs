use serde_json::json;

use super::support::*;

#[tokio::test]
async fn an_experiment_is_created_and_read_back() {
    let app = App::new();
    let (status, body) = app.call("POST", &ml("/experiments/create"), json!({"name": "pricing"})).await;
    assert_eq!(status, 200, "{body}");
    let id = body["experiment_id"].as_str().expect("id").to_string();
    let (status, body) = app.call("GET", &ml("/experiments/get"), json!({"experiment_id": id})).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["experiment"]["name"], "pricing");
    assert_eq!(body["experiment"]["lifecycle_stage"], "active");
}

#[tokio::test]
async fn unknown_and_duplicate_experiments_are_the_clients_mistake() {
    let app = App::new();
    assert_error(
        app.call("GET", &ml("/experiments/get"), json!({"experiment_id": "999"})).await,
        404,
        "RESOURCE_DOES_NOT_EXIST",
    );
    assert_error(
        app.call("GET", &ml("/experiments/get"), json!({"experiment_id": "x"})).await,
        404,
        "RESOURCE_DOES_NOT_EXIST",
    );
    app.call("POST", &ml("/experiments/create"), json!({"name": "twice"})).await;
    assert_error(
        app.call("POST", &ml("/experiments/create"), json!({"name": "twice"})).await,
        400,
        "RESOURCE_ALREADY_EXISTS",
    );
    assert_error(app.call("POST", &ml("/experiments/create"), json!({})).await, 400, "INVALID_PARAMETER_VALUE");
}
