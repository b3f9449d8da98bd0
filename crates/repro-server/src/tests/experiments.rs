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

#[tokio::test]
async fn wrongly_typed_fields_are_refused_in_mlflows_words() {
    // MLflow's own test_create_experiment_validation / test_log_metric_validation match on
    // these messages; a number where the protobuf says string is not quietly stringified.
    let app = App::new();
    let said = |got: (axum::http::StatusCode, serde_json::Value), want: &str| {
        assert_error(got.clone(), 400, "INVALID_PARAMETER_VALUE");
        let message = got.1["message"].as_str().unwrap_or_default().to_string();
        assert!(message.contains(want), "{message}");
    };
    said(
        app.call("POST", &ml("/experiments/create"), json!({"name": 123})).await,
        "Invalid value 123 for parameter 'name' supplied",
    );
    said(
        app.call("POST", &ml("/experiments/create"), json!({"name": "e", "artifact_location": 9.0})).await,
        "Invalid value 9.0 for parameter 'artifact_location' supplied",
    );
    said(
        app.call("POST", &ml("/experiments/create"), json!({"name": "e", "tags": "5"})).await,
        r#"Invalid value "5" for parameter 'tags' supplied"#,
    );
    let run = app.run().await;
    let metric = |run: serde_json::Value, key: serde_json::Value, step: serde_json::Value| json!({"run_id": run, "key": key, "value": 41, "timestamp": 59, "step": step});
    said(
        app.call("POST", &ml("/runs/log-metric"), metric(json!(31), json!("m"), json!(26))).await,
        "Invalid value 31 for parameter 'run_id' supplied",
    );
    said(
        app.call("POST", &ml("/runs/log-metric"), metric(json!(run), json!(31), json!(26))).await,
        "Invalid value 31 for parameter 'key' supplied",
    );
    said(
        app.call("POST", &ml("/runs/log-metric"), metric(json!(run), json!("m"), json!("foo"))).await,
        r#"Invalid value "foo" for parameter 'step' supplied"#,
    );
    said(
        app.call("POST", &ml("/runs/log-parameter"), json!({"run_id": run, "key": 31, "value": "v"})).await,
        "Invalid value 31 for parameter 'key' supplied",
    );
    said(
        app.call("POST", &ml("/runs/set-tag"), json!({"run_id": run, "key": "k", "value": 41})).await,
        "Invalid value 41 for parameter 'value' supplied",
    );
}

#[tokio::test]
async fn experiments_are_ordered_as_mlflow_orders_them() {
    let app = App::new();
    for name in ["a", "ab", "Abc"] {
        let (status, body) = app.call("POST", &ml("/experiments/create"), json!({"name": name})).await;
        assert_eq!(status, 200, "{body}");
    }
    let names = |body: serde_json::Value| -> Vec<String> {
        body["experiments"]
            .as_array()
            .map(|a| a.iter().filter_map(|e| e["name"].as_str().map(str::to_string)).collect())
            .unwrap_or_default()
    };
    // Byte order, as MLflow's SQL compares names: upper case sorts before lower case.
    let (status, body) =
        app.call("POST", &ml("/experiments/search"), json!({"order_by": ["name DESC"], "max_results": 10})).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(names(body), ["ab", "a", "Default", "Abc"]);
    let (_, body) =
        app.call("POST", &ml("/experiments/search"), json!({"order_by": ["attribute.name"], "max_results": 10})).await;
    assert_eq!(names(body), ["Abc", "Default", "a", "ab"]);
    assert_error(
        app.call("POST", &ml("/experiments/search"), json!({"order_by": ["colour DESC"], "max_results": 10})).await,
        400,
        "INVALID_PARAMETER_VALUE",
    );
}
