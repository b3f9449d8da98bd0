//! The runs table and the compare page: paging, stable columns, the chooser, badges, and
//! comparing any number of runs by what the CLI takes.

use serde_json::json;

use super::support::*;

/// A run made through the API with a name, params and a metric history; its id.
async fn logged_run(app: &App, name: &str, start: i64, params: &[(&str, &str)], rmse: &[f64]) -> String {
    let create = json!({"experiment_id": "0", "run_name": name, "start_time": start});
    let (status, body) = app.call("POST", &ml("/runs/create"), create).await;
    assert_eq!(status, 200, "{body}");
    let id = body["run"]["info"]["run_id"].as_str().expect("id").to_string();
    let params: Vec<_> = params.iter().map(|(k, v)| json!({"key": k, "value": v})).collect();
    let metrics: Vec<_> = rmse
        .iter()
        .enumerate()
        .map(|(i, v)| json!({"key": "rmse", "value": v, "timestamp": start + i as i64, "step": i}))
        .collect();
    let batch =
        json!({"run_id": id, "params": params, "metrics": metrics, "tags": [{"key": "team", "value": "pricing"}]});
    let (status, body) = app.call("POST", &ml("/runs/log-batch"), batch).await;
    assert_eq!(status, 200, "{body}");
    id
}

#[tokio::test]
async fn the_runs_table_pages_and_keeps_its_columns() {
    let app = App::new();
    let mut ids = Vec::new();
    for i in 0..120 {
        let lr = format!("0.{i:03}");
        ids.push(
            logged_run(&app, &format!("run-{i:03}"), 1_000 + i, &[("lr", &lr), ("depth", "4")], &[1.0 + i as f64])
                .await,
        );
    }
    let page = app.page("/ui", &[]).await;
    assert_eq!(page.status, 200, "{}", page.html);
    let html = &page.html;
    assert!(html.contains("<p class=\"muted\" id=\"runs-count\">120 of 120 runs · 1–50 shown</p>"), "{html}");
    assert_eq!(html.matches("name=\"runs\" value=\"").count(), 50, "50 rows with tick boxes");
    assert!(html.contains("page 1 of 3") && html.contains("rel=\"next\" href=\"/ui?page=2\""), "{html}");
    // Newest first; the name is the link, the id is 8 characters that do not wrap.
    let newest = &ids[119];
    assert!(html.contains(&format!("<td class=\"name\"><a href=\"/ui/runs/{newest}\">run-119</a></td>")), "{html}");
    assert!(html.contains(&format!("<code class=\"id\" title=\"{newest}\">{}</code>", &newest[..8])), "{html}");
    assert!(html
        .contains("<span class=\"badge muted\" title=\"created through the MLflow API: nothing captured\">api</span>"));
    // Default columns: params, the metric and the user tag, the same with a filter.
    // The columns, by the keys their headers sort by.
    let header = |h: &str| -> String {
        let head = h.split("<thead>").nth(1).and_then(|t| t.split("</thead>").next()).unwrap_or("");
        head.split("title=\"sort by ")
            .skip(1)
            .filter_map(|s| s.split("\">").nth(1)?.split("</a>").next())
            .collect::<Vec<_>>()
            .join("|")
    };
    for col in ["param depth", "param lr", "metric rmse", "tag team"] {
        assert!(header(html).contains(col), "{col}: {}", header(html));
    }
    let filtered = app.page("/ui?filter=params.lr%20%3D%20%270.005%27", &[]).await;
    assert!(filtered.html.contains("1 of 120 runs"), "{}", filtered.html);
    assert_eq!(header(&filtered.html), header(html), "columns do not move with the filter");
    let last = app.page("/ui?page=3", &[]).await;
    assert!(last.html.contains("101–120 shown") && last.html.contains("rel=\"prev\""), "{}", last.html);
    assert_eq!(last.html.matches("name=\"runs\" value=\"").count(), 20);

    // The chooser: repeated cols (a form) and a comma list (a link) say the same.
    let a = app.page("/ui?cols=metrics.rmse&cols=tags.team", &[]).await;
    let b = app.page("/ui?cols=metrics.rmse,tags.team", &[]).await;
    assert_eq!(header(&a.html), header(&b.html));
    assert!(!header(&a.html).contains("param lr") && header(&a.html).contains("metric rmse"), "{}", header(&a.html));
    assert!(a.html.contains("<input type=\"checkbox\" name=\"cols\" value=\"metrics.rmse\" checked>"), "{}", a.html);
    // Sorting by a metric keeps the column visible and says so.
    let sorted = app.page("/ui?order=metrics.rmse%20ASC", &[]).await;
    assert!(sorted.html.contains("metric rmse ▲"), "{}", sorted.html);
    assert!(sorted.html.contains(">run-000</a>"), "the smallest rmse first");

    for (path, says) in [
        ("/ui?per=0", "per=0 is not a number from 1 to 500"),
        ("/ui?cols=lr", "column 'lr' is not params.KEY, metrics.KEY or tags.KEY"),
        ("/ui?experiment=x", "experiment=x is not an experiment id"),
    ] {
        let page = app.page(path, &[]).await;
        assert_eq!(page.status, 400, "{path}");
        assert!(page.html.contains(says), "{path}: {}", page.html);
    }
}

#[tokio::test]
async fn any_number_of_runs_compare_by_what_the_cli_takes() {
    let app = App::new();
    let a = logged_run(&app, "<i>base</i>", 1_000, &[("lr", "0.1"), ("opt", "adam")], &[3.0, 2.0, 1.5]).await;
    let b = logged_run(&app, "wide", 2_000, &[("lr", "0.2"), ("opt", "adam")], &[3.5, 2.5, 1.0]).await;
    let c = logged_run(&app, "sgd", 3_000, &[("lr", "0.3"), ("opt", "sgd")], &[4.0, 3.0, 2.0]).await;
    let comma = app.page(&format!("/ui/compare?runs={},wide,{}", &a[..8], &c[..6]), &[]).await;
    assert_eq!(comma.status, 200, "{}", comma.html);
    let repeated = app.page(&format!("/ui/compare?runs={a}&runs={b}&runs=sgd"), &[]).await;
    assert_eq!(repeated.status, 200, "{}", repeated.html);
    let html = &comma.html;
    assert!(html.contains("<h1>Compare 3 runs</h1>"), "{html}");
    assert!(html.contains(&format!("/ui/compare?runs={a},{b},{c}")), "a link to share: {html}");
    // The params grid: differing params first and marked, the same ones after.
    assert!(html.contains("<tr class=\"differs\"><td><code>lr</code></td>"), "{html}");
    let grid = html.split("id=\"params-grid\"").nth(1).expect("grid");
    assert!(
        grid.find("<code>lr</code>") < grid.find("<code>opt</code>")
            || grid.contains("<tr class=\"differs\"><td><code>opt")
    );
    // Every metric overlaid: one chart, three lines; parallel coordinates, three polylines.
    assert_eq!(html.matches("data-metric=\"rmse\"").count(), 1, "{html}");
    let chart = html.split("data-metric=\"rmse\"").nth(1).expect("chart");
    assert_eq!(chart.split("</figure>").next().unwrap_or("").matches("<path d=\"M").count(), 3);
    assert_eq!(html.matches("<polyline class=\"run-line\"").count(), 3, "{html}");
    // Pair diffs from here.
    assert!(html.contains(&format!("href=\"/ui/diff?a={a}&amp;b={b}\"")), "{html}");
    assert!(html.contains("id=\"pair-form\""));
    assert!(html.contains("&lt;i&gt;base&lt;/i&gt;") && !html.contains("<i>base</i>"), "names are escaped");

    for (path, status, says) in [
        ("/ui/compare?runs=wide".to_string(), 400, "Give two or more runs"),
        (format!("/ui/compare?runs=wide,{}", "f".repeat(32)), 404, "ffffffff"),
        ("/ui/compare?runs=wide,sgd&smooth=7".to_string(), 400, "from 0 to 0.99"),
    ] {
        let page = app.page(&path, &[]).await;
        assert_eq!(page.status.as_u16(), status, "{path}: {}", page.html);
        assert!(page.html.contains(says), "{path}: {}", page.html);
    }
    let many: Vec<String> = (0..51).map(|_| "wide".to_string()).collect();
    let page = app.page(&format!("/ui/compare?runs={}", many.join(",")), &[]).await;
    assert_eq!(page.status, 400);
    assert!(page.html.contains("compare at most 50"), "{}", page.html);
}

#[tokio::test]
async fn the_registry_has_a_page_per_model_and_per_version() {
    let app = App::new();
    let run = logged_run(&app, "train", 1_000, &[("lr", "0.1")], &[1.0]).await;
    assert_eq!(app.upload(&run, "model/weights.txt", "w=1").await, 200);
    app.call("POST", &ml("/registered-models/create"), json!({"name": "pricing"})).await;
    let create = json!({"name": "pricing", "source": format!("runs:/{run}/model"), "run_id": run});
    let (status, body) = app.call("POST", &ml("/model-versions/create"), create).await;
    assert_eq!(status, 200, "{body}");

    let list = app.page("/ui/models", &[]).await;
    assert_eq!(list.status, 200, "{}", list.html);
    assert!(list.html.contains("href=\"/ui/models/pricing\"><b>pricing</b>"), "{}", list.html);
    assert!(list.html.contains("<p class=\"ok\" id=\"chain\">Event chain intact: 2 events"), "{}", list.html);

    let model = app.page("/ui/models/pricing", &[]).await;
    assert_eq!(model.status, 200, "{}", model.html);
    assert!(model.html.contains("<table id=\"versions\">") && model.html.contains(">v1</a>"), "{}", model.html);
    assert!(model.html.contains("data-kind=\"register\""), "the history lists the registration: {}", model.html);

    let version = app.page("/ui/models/pricing%401", &[]).await;
    assert_eq!(version.status, 200, "{}", version.html);
    let html = &version.html;
    assert!(html.contains("id=\"verify\""), "{html}");
    assert!(
        html.contains("<tr data-check=\"event_chain\"><th>event_chain</th><td><span class=\"ok\">✓</span>"),
        "{html}"
    );
    // Readiness per stage, from the store's default policies: staging and prod are not.
    assert!(html.contains("<tr data-stage=\"prod\">"), "{html}");
    assert!(html.contains("approvals 0/2 ✗"), "{html}");
    assert!(html.contains("id=\"version-files\"") && html.contains("weights.txt"), "{html}");
    assert!(html.contains("/report\""), "the version links its report");

    for (path, says) in [
        ("/ui/models/nope", "There is no model 'nope'"),
        ("/ui/models/pricing%409", "model 'pricing' has no version 9"),
        ("/ui/models/%3Cb%3E%401", "&lt;b&gt;"),
    ] {
        let page = app.page(path, &[]).await;
        assert_eq!(page.status, 404, "{path}: {}", page.html);
        assert!(page.html.contains(says), "{path}: {}", page.html);
    }
}
