use serde_json::json;

use super::support::*;

#[tokio::test]
async fn a_logged_model_is_created_and_read_back() {
    let app = App::new();
    let run = app.run().await;
    let (status, body) = app
        .call("POST", &ml("/logged-models"), json!({"experiment_id": "0", "name": "clf", "source_run_id": run}))
        .await;
    assert_eq!(status, 200, "{body}");
    let id = body["model"]["info"]["model_id"].as_str().expect("model id").to_string();
    assert!(id.starts_with("m-"), "{id}");
    let (status, body) = app.call("GET", &ml(&format!("/logged-models/{id}")), json!({})).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["model"]["info"]["name"], "clf");
    let (status, body) = app.call("POST", &ml("/logged-models/search"), json!({"experiment_ids": ["0"]})).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["models"].as_array().map(Vec::len), Some(1));
}

#[tokio::test]
async fn unknown_logged_models_are_the_clients_mistake() {
    let app = App::new();
    assert_error(app.call("GET", &ml("/logged-models/m-0000"), json!({})).await, 404, "RESOURCE_DOES_NOT_EXIST");
    assert_error(app.call("DELETE", &ml("/logged-models/m-0000"), json!({})).await, 404, "RESOURCE_DOES_NOT_EXIST");
}
