use serde_json::{json, Value};

use super::support::*;

async fn query(app: &App, q: &str) -> Value {
    let (status, body) = app.call("POST", "/graphql", json!({"query": q})).await;
    assert_eq!(status, 200, "{body}");
    body
}

#[tokio::test]
async fn an_experiment_and_a_runs_metrics_are_read_through_graphql() {
    let app = App::new();
    let (_, created) = app.call("POST", &ml("/experiments/create"), json!({"name": "pricing"})).await;
    let experiment = created["experiment_id"].as_str().expect("id").to_string();
    let (_, run) = app.call("POST", &ml("/runs/create"), json!({"experiment_id": experiment, "start_time": 5})).await;
    let run = run["run"]["info"]["run_id"].as_str().expect("run id").to_string();
    let metrics = json!({"run_id": run, "metrics": [
        {"key": "rmse", "value": 0.25, "timestamp": 7, "step": 3},
        {"key": "loss", "value": "NaN", "timestamp": 8, "step": 4}
    ]});
    assert_eq!(app.call("POST", &ml("/runs/log-batch"), metrics).await.0, 200);

    let body = query(&app, &format!(r#"{{ mlflowGetExperiment(input: {{experimentId: "{experiment}"}}) {{ experiment {{ name lifecycleStage }} apiError {{ code }} }} }}"#)).await;
    assert_eq!(
        body,
        json!({"data": {"mlflowGetExperiment": {"experiment": {"name": "pricing", "lifecycleStage": "active"}, "apiError": null}}, "errors": null})
    );

    let body = query(
        &app,
        &format!(
            r#"query q @component(name: "RunPage") {{ mlflowGetRun(input: {{runId: "{run}"}}) {{ run {{
                info {{ runId status startTime endTime }}
                data {{ metrics {{ key value timestamp step }} }}
                experiment {{ name }}
                modelVersions {{ name }}
            }} }} }}"#
        ),
    )
    .await;
    assert_eq!(body["errors"], Value::Null, "{body}");
    let got = &body["data"]["mlflowGetRun"]["run"];
    // 64-bit integers as strings, an unset end time as the protobuf default, NaN as null.
    assert_eq!(got["info"], json!({"runId": run, "status": "RUNNING", "startTime": "5", "endTime": "0"}));
    let mut metrics = got["data"]["metrics"].as_array().cloned().unwrap_or_default();
    metrics.sort_by_key(|m| m["key"].as_str().map(str::to_string));
    assert_eq!(
        metrics,
        vec![
            json!({"key": "loss", "value": null, "timestamp": "8", "step": "4"}),
            json!({"key": "rmse", "value": 0.25, "timestamp": "7", "step": "3"}),
        ]
    );
    assert_eq!(got["experiment"], json!({"name": "pricing"}));
    assert_eq!(got["modelVersions"], json!([]));

    // MLflow's searches are mutations; they read all the same.
    let body = query(
        &app,
        &format!(r#"mutation {{ mlflowSearchRuns(input: {{experimentIds: ["{experiment}"]}}) {{ runs {{ info {{ runId }} }} }} }}"#),
    )
    .await;
    assert_eq!(body["data"]["mlflowSearchRuns"]["runs"], json!([{"info": {"runId": run}}]));
}

#[tokio::test]
async fn a_failing_field_and_an_over_deep_query_answer_errors() {
    let app = App::new();
    let body = query(&app, r#"{ mlflowGetRun(input: {runId: "nope"}) { run { info { runId } } } }"#).await;
    assert_eq!(body["data"], json!({"mlflowGetRun": null}), "{body}");
    assert!(body["errors"][0].as_str().is_some_and(|m| m.contains("nope")), "{body}");

    let deep = (0..12).fold("name".to_string(), |inner, _| format!("name {{ {inner} }}"));
    let body = query(
        &app,
        &format!(r#"{{ mlflowGetExperiment(input: {{experimentId: "0"}}) {{ experiment {{ {deep} }} }} }}"#),
    )
    .await;
    assert_eq!(body, json!({"data": null, "errors": ["Query exceeds maximum depth of 10"]}));

    let body = query(&app, "{ noSuchField }").await;
    assert_eq!(body["data"], Value::Null);
    assert!(body["errors"].as_array().is_some_and(|e| !e.is_empty()), "{body}");
    let body = query(&app, "{ unclosed").await;
    assert!(body["errors"].as_array().is_some_and(|e| !e.is_empty()), "{body}");

    assert_error(app.call("POST", "/graphql", json!({"variables": {}})).await, 400, "INVALID_PARAMETER_VALUE");
}

#[tokio::test]
async fn graphql_needs_a_token_when_the_store_has_tokens() {
    let app = App::new();
    let meta = repro_store::Store::connect_meta(&app.dir.path().join(".repro")).expect("meta");
    meta.tokens().create("t1", "reader-token", "read", "reader").expect("token");
    let q = json!({"query": "{ test(inputString: \"abc\") { output } }"});
    let (status, bytes) = app.raw("POST", "/graphql", q.clone(), &[]).await;
    let refused: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    assert_eq!((status.as_u16(), &refused["error_code"]), (401, &json!("UNAUTHENTICATED")), "{refused}");
    let (status, bytes) = app.raw("POST", "/graphql", q, &[("authorization", "Bearer reader-token")]).await;
    let body: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    assert_eq!((status.as_u16(), body), (200, json!({"data": {"test": {"output": "abc"}}, "errors": null})));
}
