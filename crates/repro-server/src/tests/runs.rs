use serde_json::json;

use super::support::*;

#[tokio::test]
async fn a_run_is_created_tagged_and_read_back() {
    let app = App::new();
    let run = app.run().await;
    let (status, body) =
        app.call("POST", &ml("/runs/log-parameter"), json!({"run_id": run, "key": "lr", "value": "0.1"})).await;
    assert_eq!((status.as_u16(), body), (200, json!({})));
    let (status, _) =
        app.call("POST", &ml("/runs/set-tag"), json!({"run_id": run, "key": "team", "value": "pricing"})).await;
    assert_eq!(status, 200);
    let (status, body) = app.call("GET", &ml("/runs/get"), json!({"run_id": run})).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["run"]["info"]["run_id"], run.as_str());
    assert_eq!(body["run"]["info"]["status"], "RUNNING");
    assert_eq!(body["run"]["data"]["params"], json!([{"key": "lr", "value": "0.1"}]));
    assert!(body["run"]["data"]["tags"]
        .as_array()
        .is_some_and(|t| t.contains(&json!({"key": "team", "value": "pricing"}))));
    let (status, body) = app.call("POST", &ml("/runs/search"), json!({"experiment_ids": ["0"]})).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["runs"].as_array().map(Vec::len), Some(1));
}

#[tokio::test]
async fn unknown_runs_and_bad_parameters_are_the_clients_mistake() {
    let app = App::new();
    assert_error(
        app.call("GET", &ml("/runs/get"), json!({"run_id": "0123456789abcdef0123456789abcdef"})).await,
        404,
        "RESOURCE_DOES_NOT_EXIST",
    );
    assert_error(app.call("GET", &ml("/runs/get"), json!({})).await, 400, "INVALID_PARAMETER_VALUE");
    let run = app.run().await;
    app.call("POST", &ml("/runs/log-parameter"), json!({"run_id": run, "key": "lr", "value": "0.1"})).await;
    // A param is written once: another value for it is refused.
    assert_error(
        app.call("POST", &ml("/runs/log-parameter"), json!({"run_id": run, "key": "lr", "value": "0.2"})).await,
        400,
        "INVALID_PARAMETER_VALUE",
    );
    assert_error(
        app.call("POST", &ml("/runs/update"), json!({"run_id": run, "status": "DONE"})).await,
        400,
        "INVALID_PARAMETER_VALUE",
    );
}
