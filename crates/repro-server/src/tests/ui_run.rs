//! The run page's content beyond facts: files with preview and download, tags, the
//! lineage picture and the verdict card of a run a tracking client made.

use serde_json::json;

use super::support::*;

#[tokio::test]
async fn logged_artifacts_are_listed_previewed_and_downloaded_safely() {
    let app = App::new();
    let run = app.run().await;
    assert_eq!(app.upload(&run, "eval/report.txt", "<script>alert(1)</script> rmse=0.42").await, 200);
    assert_eq!(app.upload(&run, "site/index.html", "<h1>hi</h1>").await, 200);
    let page = app.page(&format!("/ui/runs/{run}"), &[]).await;
    assert_eq!(page.status, 200, "{}", page.html);
    let link = format!("/ui/runs/{run}/file?kind=artifact&amp;path=eval%2Freport.txt");
    assert!(page.html.contains(&format!("<a href=\"{link}\"><code>eval/report.txt</code></a>")), "{}", page.html);
    assert!(page.html.contains("<td>logged artifact</td>"), "{}", page.html);

    // The preview shows the text, escaped; the download is an attachment of a type that
    // never runs, even for HTML.
    let preview = app.page(&link.replace("&amp;", "&"), &[]).await;
    assert_eq!(preview.status, 200, "{}", preview.html);
    assert!(
        preview.html.contains("<pre id=\"preview\">&lt;script&gt;alert(1)&lt;/script&gt; rmse=0.42</pre>"),
        "{}",
        preview.html
    );
    assert!(preview.html.contains("id=\"download\""), "{}", preview.html);
    let raw = app.page(&format!("/ui/runs/{run}/raw?kind=artifact&path=site/index.html"), &[]).await;
    assert_eq!(raw.status, 200);
    assert_eq!(raw.header("content-type"), "text/plain");
    assert!(raw.header("content-disposition").starts_with("attachment"), "{:?}", raw.headers);
    assert_eq!(raw.html, "<h1>hi</h1>");

    // Only the run's own files: no path tricks, no other kinds, one clear line each.
    for (path, status, says) in [
        (format!("/ui/runs/{run}/file?kind=artifact&path=../../etc/passwd"), 404, "has no artifact file"),
        (format!("/ui/runs/{run}/file?kind=output&path=eval/report.txt"), 404, "has no output file"),
        (format!("/ui/runs/{run}/file?path=eval/report.txt"), 400, "?kind=output|artifact|params"),
        (format!("/ui/runs/{run}/raw?kind=artifact"), 400, "Give the file"),
        ("/ui/runs/nope/raw?kind=artifact&path=x".to_string(), 404, "nope"),
    ] {
        let page = app.page(&path, &[]).await;
        assert_eq!(page.status.as_u16(), status, "{path}: {}", page.html);
        assert!(page.header("content-type").starts_with("text/html"), "{path}");
        assert!(page.html.contains(says), "{path}: {}", page.html);
    }
}

#[tokio::test]
async fn tags_lineage_and_the_verdict_card_of_an_api_run() {
    let app = App::new();
    let run = app.run().await;
    for (k, v) in [("team", "<b>pricing</b>"), ("mlflow.source.name", "train.py")] {
        let (status, body) = app.call("POST", &ml("/runs/set-tag"), json!({"run_id": run, "key": k, "value": v})).await;
        assert_eq!(status, 200, "{body}");
    }
    let page = app.page(&format!("/ui/runs/{run}"), &[]).await;
    let html = &page.html;
    assert!(
        html.contains(
            "<table id=\"tags-table\"><tr><th><code>team</code></th><td class=\"wrap\">&lt;b&gt;pricing&lt;/b&gt;</td>"
        ),
        "{html}"
    );
    assert!(
        html.contains("<summary>2 MLflow system tags</summary><table><tr><th><code>mlflow.runName</code>"),
        "{html}"
    );
    // The picture draws what was not captured as such, not as facts.
    assert!(html.contains("<svg class=\"lineage\" id=\"lineage\""), "{html}");
    assert!(html.contains("not captured (created through the API)"), "{html}");
    // The verdict card: what cannot be, said plainly.
    assert!(html.contains("<section class=\"card bad\" id=\"verdict\">"), "{html}");
    assert!(html.contains("cannot be replayed: nothing was captured to rebuild it from"), "{html}");
    assert!(html.contains("<td id=\"verdict-code\"><span class=\"muted not-captured\">not captured"), "{html}");
    assert!(!html.contains("never replayed"), "{html}");
}
