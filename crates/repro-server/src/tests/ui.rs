use serde_json::json;

use super::support::*;

#[tokio::test]
async fn the_pages_render() {
    let app = App::new();
    let run = app.run().await;
    for path in ["/ui", "/ui/models", &format!("/ui/runs/{run}")] {
        let (status, bytes) = app.raw("GET", path, json!({}), &[]).await;
        let html = String::from_utf8_lossy(&bytes);
        assert_eq!(status, 200, "{path}: {html}");
        assert!(html.starts_with("<!doctype html>"), "{path}");
    }
    let (status, _) = app.raw("GET", "/", json!({}), &[]).await;
    assert_eq!(status, 303);
}

#[tokio::test]
async fn unknown_runs_and_half_a_diff_are_the_clients_mistake() {
    let app = App::new();
    let (status, bytes) = app.raw("GET", "/ui/runs/0123456789abcdef0123456789abcdef", json!({}), &[]).await;
    assert_eq!(status, 404, "{}", String::from_utf8_lossy(&bytes));
    let (status, bytes) = app.raw("GET", "/ui/runs/%3Cscript%3E", json!({}), &[]).await;
    let html = String::from_utf8_lossy(&bytes);
    assert_eq!(status, 404);
    assert!(!html.contains("<script>"), "{html}");
    let (status, _) = app.raw("GET", "/ui/diff", json!({"a": "x"}), &[]).await;
    assert_eq!(status, 400);
}

impl App {
    /// A run created through the MLflow API with a name; its id.
    async fn named_run(&self, name: &str, start_time: i64) -> String {
        let create = json!({"experiment_id": "0", "run_name": name, "start_time": start_time});
        let (status, body) = self.call("POST", &ml("/runs/create"), create).await;
        assert_eq!(status, 200, "{body}");
        body["run"]["info"]["run_id"].as_str().expect("run id").to_string()
    }

    /// Where `path` redirects (a 303 to the run page's canonical URL).
    async fn redirect(&self, path: &str) -> String {
        let page = self.page(path, &[]).await;
        assert_eq!(page.status, 303, "{path}: {}", page.html);
        page.header("location").to_string()
    }
}

#[tokio::test]
async fn every_ui_route_takes_a_run_as_the_cli_does() {
    let app = App::new();
    let old = app.named_run("baseline", 1_000).await;
    let new = app.named_run("baseline", 2_000).await;
    let other = app.named_run("other", 3_000).await;
    assert_eq!(app.upload(&old, "model/weights.txt", "w=1").await, 200);
    app.call("POST", &ml("/registered-models/create"), json!({"name": "pricing"})).await;
    let create = json!({"name": "pricing", "source": format!("runs:/{old}/model"), "run_id": old});
    let (status, body) = app.call("POST", &ml("/model-versions/create"), create).await;
    assert_eq!(status, 200, "{body}");
    let canonical = |id: &str| format!("/ui/runs/{id}");

    // A prefix, a name (the newest run of it), `latest`, NAME@V each land on the run's page.
    assert_eq!(app.redirect(&format!("/ui/runs/{}", &new[..8])).await, canonical(&new));
    assert_eq!(app.redirect(&format!("/ui/runs/{}", new[..8].to_uppercase())).await, canonical(&new));
    assert_eq!(app.redirect("/ui/runs/baseline").await, canonical(&new));
    assert_eq!(app.redirect("/ui/runs/latest").await, canonical(&other));
    assert_eq!(app.redirect("/ui/runs/pricing@1").await, canonical(&old));
    let page = app.page(&canonical(&new), &[]).await;
    assert_eq!(page.status, 200, "{}", page.html);
    assert!(page.html.contains(&format!("id=\"run-id\" title=\"the run's full id\">{new}</code>")), "{}", page.html);
    assert!(page.html.contains("<span id=\"run-name\">baseline</span>"));

    // The diff takes the same specs, unredirected.
    let diff = app.page(&format!("/ui/diff?a={}&b=baseline", &old[..6]), &[]).await;
    assert_eq!(diff.status, 200, "{}", diff.html);
    assert!(
        diff.html.contains(&format!("href=\"/ui/runs/{old}\""))
            && diff.html.contains(&format!("href=\"/ui/runs/{new}\""))
    );

    // A version registered without a run names none: an HTML 404 that says so.
    let external = json!({"name": "pricing", "source": "s3://bucket/model"});
    let (status, body) = app.call("POST", &ml("/model-versions/create"), external).await;
    assert_eq!(status, 200, "{body}");
    let page = app.page("/ui/runs/pricing@2", &[]).await;
    assert_eq!(page.status, 404, "{}", page.html);
    assert!(page.header("content-type").starts_with("text/html"), "{:?}", page.headers);
    assert!(page.html.contains("id=\"error-message\""), "{}", page.html);
    let diff = app.page(&format!("/ui/diff?a=pricing@2&b={new}"), &[]).await;
    assert_eq!(diff.status, 404, "{}", diff.html);
}

#[tokio::test]
async fn errors_under_ui_are_html_pages_and_the_apis_stay_json() {
    let app = App::new();
    let _ = app.run().await;
    let _ = app.run().await;
    for (path, status, shown) in [
        ("/ui/runs/%3Cscript%3Ealert(1)%3C%2Fscript%3E", 404, "&lt;script&gt;alert(1)&lt;/script&gt;"),
        ("/ui/no/such/%3Cb%3Epage", 404, "No page at /ui/no/such/%3Cb%3Epage"),
        ("/ui/runs/%FF", 400, "Bad Request"),
        ("/ui/diff?a=%20&b=x", 400, "Give two runs"),
        ("/ui/diff?a=x", 400, "Give two runs"),
    ] {
        let page = app.page(path, &[]).await;
        assert_eq!(page.status.as_u16(), status, "{path}: {}", page.html);
        assert_eq!(page.header("content-type"), "text/html; charset=utf-8", "{path}");
        assert!(page.header("content-security-policy").contains("default-src 'none'"), "{path}");
        assert_eq!(page.header("x-content-type-options"), "nosniff", "{path}");
        assert!(page.html.starts_with("<!doctype html>"), "{path}");
        assert!(page.html.contains(shown), "{path}: {}", page.html);
        assert!(page.html.contains("<a id=\"back\" href=\"/ui\">"), "{path}");
        // The only script is the fragment redirect, served as a file; nothing from the path runs.
        assert!(!page.html.contains("<script>") && !page.html.contains("<b>page"), "{path}: {}", page.html);
    }
    // Two runs share no 4-character prefix often enough to test with; one character is
    // too short to be a prefix and is an unknown name.
    let page = app.page("/ui/runs/0", &[]).await;
    assert_eq!(page.status, 404, "{}", page.html);
    // Signed-in (or token) pages are never cached; anonymous ones may be.
    let page = app.page("/ui/runs/nope", &[("authorization", "Bearer x")]).await;
    assert_eq!(page.header("cache-control"), "no-store");
    assert_eq!(app.page("/ui", &[("cookie", "repro_session=abc")]).await.header("cache-control"), "no-store");
    // The APIs keep their JSON envelopes.
    assert_error(app.call("GET", &ml("/runs/get"), json!({"run_id": "nope"})).await, 404, "RESOURCE_DOES_NOT_EXIST");
    let (status, body) = app.call("GET", "/api/2.0/mlflow/no-such-thing", json!({})).await;
    assert_eq!(status, 404);
    assert_eq!(body["error_code"], "ENDPOINT_NOT_FOUND", "{body}");
}

#[tokio::test]
async fn an_api_run_page_says_what_was_not_captured() {
    let app = App::new();
    let run = app.named_run("from-mlflow", 1_000).await;
    let (status, body) =
        app.call("POST", &ml("/runs/log-parameter"), json!({"run_id": run, "key": "lr", "value": "0.1"})).await;
    assert_eq!(status, 200, "{body}");
    let page = app.page(&format!("/ui/runs/{run}"), &[]).await;
    assert_eq!(page.status, 200, "{}", page.html);
    let html = &page.html;
    for invented in ["generated by repro", "Seed 0", "seed 0", "usable cores", ">no</td>", "<span class=\"muted\">in "]
    {
        assert!(!html.contains(invented), "{invented}: {html}");
    }
    for what in ["Code state", "Command", "Environment", "Hardware", "Data inputs", "Seed"] {
        assert!(
            html.contains(&format!("<tr><th>{what}</th><td><span class=\"missing not-captured\">not captured")),
            "{what}: {html}"
        );
    }
    // What the client logged is shown.
    assert!(html.contains("<td><code>lr</code></td><td class=\"wrap\">0.1</td>"), "{html}");
    // The audit's capture items say so too, not what the placeholders would make them.
    assert!(
        html.contains(
            "<tr data-item=\"hardware\"><td><code>hardware</code></td><td><span class=\"badge bad\" title=\"\">missing</span></td><td>not captured"
        ),
        "{html}"
    );
}

#[tokio::test]
async fn a_replay_runs_page_shows_its_original_and_verdict() {
    use repro_core::record::{RunRecord, Verdict};
    let app = App::new();
    let original = app.named_run("train", 1_000).await;
    let original_id = repro_core::RunId::parse(&original).expect("id");
    let replay = repro_core::RunId::from_bytes([9; 16]);
    {
        let store = repro_store::Store::open(&app.dir.path().join(".repro")).expect("store");
        let mut record =
            RunRecord::tracking_only(replay.clone(), Some("train".into()), "ada".into(), "h".into(), "t".into());
        record.replay_of = Some(original_id.clone());
        store.meta.runs().insert(&record, 5_000).expect("replay run");
        let report = json!({
            "reasons": ["every output is bit-identical"],
            "outputs": [{"path": "model/<w>.bin", "verdict": "identical"}],
        });
        let report = store.objects.put_bytes(report.to_string().as_bytes()).expect("report");
        store
            .meta
            .runs()
            .record_replay(&repro_store::meta::ReplayRow {
                replay: replay.clone(),
                original: original_id,
                verdict: Verdict::Identical,
                report,
                created_ms: 6_000,
            })
            .expect("replay row");
    }
    let page = app.page(&format!("/ui/runs/{replay}"), &[]).await;
    assert_eq!(page.status, 200, "{}", page.html);
    let html = &page.html;
    assert!(html.contains(&format!("replay of <a class=\"mono id\" href=\"/ui/runs/{original}\"")), "{html}");
    assert!(html.contains("<span id=\"replay-verdict\" class=\"ok\">identical</span>"), "{html}");
    assert!(html.contains("<li>every output is bit-identical</li>"), "{html}");
    assert!(html.contains("<td>model/&lt;w&gt;.bin</td><td class=\"ok\">identical</td>"), "{html}");
    assert!(!html.contains("never replayed"), "{html}");
    assert!(html.contains(&format!("this run is a replay of {}: identical", &original[..8])), "{html}");
    // The original lists it.
    let page = app.page(&format!("/ui/runs/{original}"), &[]).await;
    assert!(page.html.contains(&format!("href=\"/ui/runs/{replay}\"")), "{}", page.html);
}
