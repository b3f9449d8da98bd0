use serde_json::json;

use super::support::*;

#[tokio::test]
async fn a_version_is_registered_from_a_runs_files() {
    let app = App::new();
    let run = app.run().await;
    assert_eq!(app.upload(&run, "model/weights.txt", "w=1").await, 200);
    app.call("POST", &ml("/registered-models/create"), json!({"name": "pricing"})).await;
    let create = json!({"name": "pricing", "source": format!("runs:/{run}/model"), "run_id": run});
    let (status, body) = app.call("POST", &ml("/model-versions/create"), create).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["model_version"]["version"], "1");
    let (status, body) = app.call("GET", &ml("/model-versions/get"), json!({"name": "pricing", "version": "1"})).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["model_version"]["run_id"], run.as_str());
    let (status, body) =
        app.call("GET", &ml("/model-versions/get-download-uri"), json!({"name": "pricing", "version": "1"})).await;
    assert_eq!(status, 200, "{body}");
    assert!(body["artifact_uri"].as_str().is_some_and(|u| u.contains("registry/pricing/1")), "{body}");
}

/// An unknown model is a 404 on every path, the stage transition's included (which goes
/// through exec's promotion: its errors once became 500s, which the client retries).
#[tokio::test]
async fn unknown_versions_are_the_clients_mistake() {
    let app = App::new();
    assert_error(
        app.call("GET", &ml("/model-versions/get"), json!({"name": "nope", "version": "1"})).await,
        404,
        "RESOURCE_DOES_NOT_EXIST",
    );
    assert_error(
        app.call("GET", &ml("/model-versions/get"), json!({"name": "nope", "version": "x"})).await,
        400,
        "INVALID_PARAMETER_VALUE",
    );
    let move_it = json!({"name": "nope", "version": "1", "stage": "Production"});
    assert_error(
        app.call("POST", &ml("/model-versions/transition-stage"), move_it).await,
        404,
        "RESOURCE_DOES_NOT_EXIST",
    );
    let bad_stage = json!({"name": "nope", "version": "1", "stage": "Live"});
    assert_error(
        app.call("POST", &ml("/model-versions/transition-stage"), bad_stage).await,
        400,
        "INVALID_PARAMETER_VALUE",
    );
    let source = json!({"name": "nope", "source": "s3://bucket/\u{7}model"});
    assert_error(app.call("POST", &ml("/model-versions/create"), source).await, 400, "INVALID_PARAMETER_VALUE");
    let huge = json!({"name": "nope", "source": format!("s3://bucket/{}", "m".repeat(5000))});
    assert_error(app.call("POST", &ml("/model-versions/create"), huge).await, 400, "INVALID_PARAMETER_VALUE");
}
