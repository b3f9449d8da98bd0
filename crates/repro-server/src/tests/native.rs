use serde_json::json;

use super::support::*;

#[tokio::test]
async fn the_native_api_answers_as_the_cli_prints() {
    let app = App::new();
    let (status, body) = app.call("GET", "/api/v1", json!({})).await;
    assert_eq!(status, 200, "{body}");
    assert!(body.is_object(), "{body}");
    let (status, body) = app.call("GET", "/api/v1/models", json!({})).await;
    assert_eq!((status.as_u16(), body), (200, json!([])));
}

#[tokio::test]
async fn unknown_references_are_the_clients_mistake() {
    let app = App::new();
    let (status, body) = app.call("GET", "/api/v1/runs/nosuchrun", json!({})).await;
    assert_error((status, body.clone()), 404, "RESOURCE_DOES_NOT_EXIST");
    // The CLI's own message, not MLflow's wording.
    assert!(body["message"].as_str().is_some_and(|m| m.contains("repro runs")), "{body}");
    assert_error(app.call("GET", "/api/v1/models/nope", json!({})).await, 404, "RESOURCE_DOES_NOT_EXIST");
    assert_error(app.call("GET", "/api/v1/data/nope", json!({})).await, 404, "RESOURCE_DOES_NOT_EXIST");
    assert_error(app.call("GET", "/api/v1/data-diff?a=nope&b=nope", json!({})).await, 404, "RESOURCE_DOES_NOT_EXIST");
    assert_error(app.call("GET", "/api/v1/data-diff?a=nope", json!({})).await, 400, "INVALID_PARAMETER_VALUE");
    let promote = json!({"to": "prod", "as": "someone"});
    assert_error(app.call("POST", "/api/v1/models/nope@1/promote", promote).await, 400, "INVALID_PARAMETER_VALUE");
}
