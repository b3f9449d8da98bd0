use serde_json::json;

use super::support::*;

#[tokio::test]
async fn a_model_is_created_tagged_and_found() {
    let app = App::new();
    let (status, body) = app.call("POST", &ml("/registered-models/create"), json!({"name": "pricing"})).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["registered_model"]["name"], "pricing");
    let tag = json!({"name": "pricing", "key": "team", "value": "risk"});
    assert_eq!(app.call("POST", &ml("/registered-models/set-tag"), tag).await.0, 200);
    let (status, body) = app.call("GET", &ml("/registered-models/get"), json!({"name": "pricing"})).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["registered_model"]["tags"], json!([{"key": "team", "value": "risk"}]));
    let (status, body) = app.call("GET", &ml("/registered-models/search"), json!({})).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["registered_models"].as_array().map(Vec::len), Some(1));
}

#[tokio::test]
async fn unknown_and_duplicate_models_are_the_clients_mistake() {
    let app = App::new();
    assert_error(
        app.call("GET", &ml("/registered-models/get"), json!({"name": "nope"})).await,
        404,
        "RESOURCE_DOES_NOT_EXIST",
    );
    app.call("POST", &ml("/registered-models/create"), json!({"name": "twice"})).await;
    assert_error(
        app.call("POST", &ml("/registered-models/create"), json!({"name": "twice"})).await,
        400,
        "RESOURCE_ALREADY_EXISTS",
    );
    assert_error(
        app.call("POST", &ml("/registered-models/create"), json!({"name": ""})).await,
        400,
        "INVALID_PARAMETER_VALUE",
    );
    assert_error(
        app.call("GET", &ml("/registered-models/alias"), json!({"name": "twice", "alias": "champion"})).await,
        400,
        "INVALID_PARAMETER_VALUE",
    );
}
