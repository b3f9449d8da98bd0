//! A run's files for people: its outputs, the artifacts a tracking client logged and its
//! params files, each with a preview page (text shown escaped, images shown as images) and
//! a download. Only files the run's own record or artifact folder names can be opened: the
//! path is looked up among them, never joined onto anything, and downloads are served by
//! `download::send_object` (re-hashed first, `attachment`, content types that never run).

use std::collections::BTreeMap;

use axum::extract::State as AxState;
use axum::response::{IntoResponse, Response};
use maud::html;
use repro_core::snapshot::{Manifest, SnapshotKind};
use repro_core::Digest;
use repro_store::meta::StoredRun;
use repro_store::tracking::TrackedRun;
use repro_store::Store;

use super::layout::{crumb, digest, page};
use super::resolve_run;
use super::{api_error_page, enc, error_page, Params, Segment, S};
use crate::ApiError;

/// How much of a stored diff or params file the run page shows inline.
pub(crate) const TEXT_LIMIT: usize = 256 * 1024;

/// What a file is to the run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum FileKind {
    Output,
    Artifact,
    Params,
}

impl FileKind {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            FileKind::Output => "output",
            FileKind::Artifact => "artifact",
            FileKind::Params => "params",
        }
    }

    fn parse(s: &str) -> Option<FileKind> {
        [FileKind::Output, FileKind::Artifact, FileKind::Params].into_iter().find(|k| k.as_str() == s)
    }
}

/// One file of a run, by the path a person knows it by.
#[derive(Clone, Debug)]
pub(crate) struct RunFile {
    pub(crate) kind: FileKind,
    pub(crate) path: String,
    pub(crate) digest: Digest,
    pub(crate) size: u64,
}

impl RunFile {
    /// The preview page's URL (`raw` false) or the download's.
    pub(crate) fn href(&self, run: &str, raw: bool) -> String {
        format!(
            "/ui/runs/{}/{}?kind={}&path={}",
            enc(run),
            if raw { "raw" } else { "file" },
            self.kind.as_str(),
            enc(&self.path)
        )
    }
}

/// How many logged artifacts the run page lists (a client may log thousands).
const MAX_ARTIFACTS: usize = 2000;

/// Every file of `run` a person may open. Output files are named `OUTPUT/ENTRY` (a
/// single-file output by its own path), artifacts by their path under the run's artifact
/// root, params files by their path in the repository.
pub(crate) fn run_files(
    st: &Store,
    run: &StoredRun,
    tracked: &TrackedRun,
    manifests: &BTreeMap<Digest, Manifest>,
) -> Result<Vec<RunFile>, ApiError> {
    let mut out = Vec::new();
    for o in &run.record.outputs {
        let Some(m) = o.snapshot.as_ref().and_then(|d| manifests.get(d)) else { continue };
        for e in &m.entries {
            let path = match m.kind {
                SnapshotKind::File => o.path.clone(),
                SnapshotKind::Dir => format!("{}/{}", o.path.trim_end_matches('/'), e.path),
            };
            out.push(RunFile { kind: FileKind::Output, path, digest: e.digest.clone(), size: e.size });
        }
    }
    if let Some(root) = tracked.artifact_uri.strip_prefix("mlflow-artifacts:/").map(|r| r.trim_matches('/')) {
        let prefix = format!("{root}/");
        for (path, d, size) in st.meta.tracking().artifacts_under(root)?.into_iter().take(MAX_ARTIFACTS) {
            let rel = path.strip_prefix(&prefix).unwrap_or(&path).to_string();
            out.push(RunFile { kind: FileKind::Artifact, path: rel, digest: d, size });
        }
    }
    for f in &run.record.params.files {
        out.push(RunFile { kind: FileKind::Params, path: f.path.clone(), digest: f.digest.clone(), size: f.size });
    }
    Ok(out)
}

/// Bytes as text when they are text: UTF-8 with no NUL (a binary file is offered as a
/// download instead of being shown as noise).
pub(crate) fn text_of(bytes: &[u8]) -> Option<String> {
    if bytes.contains(&0) {
        return None;
    }
    std::str::from_utf8(bytes).ok().map(str::to_string)
}

/// Image types a browser shows in an `<img>` and never runs (SVG is not one of them).
fn is_image(path: &str) -> bool {
    let lower = path.to_ascii_lowercase();
    [".png", ".jpg", ".jpeg", ".gif", ".webp"].iter().any(|e| lower.ends_with(e))
}

/// The run (by anything the CLI takes) and the file `kind`/`path` names in it.
async fn find(s: &S, spec: String, q: &BTreeMap<String, String>) -> Result<(String, RunFile), Response> {
    let bad = |m: &str| error_page(axum::http::StatusCode::BAD_REQUEST, "Bad Request", m);
    let kind = q.get("kind").and_then(|k| FileKind::parse(k)).ok_or_else(|| {
        bad("Name the file with ?kind=output|artifact|params&path=PATH (the run page links each file).")
    })?;
    let path = q.get("path").filter(|p| !p.is_empty()).cloned().ok_or_else(|| bad("Give the file's ?path=."))?;
    let found = s
        .with_store(move |st| {
            let id = resolve_run(&st.meta, &spec)?;
            let run = st.meta.runs().get(&id)?;
            let tracked = st.meta.tracking().get_tracked_run(id.as_str())?;
            let manifests = repro_exec::diff::manifests(st, &[&run]);
            let file = run_files(st, &run, &tracked, &manifests)?
                .into_iter()
                .find(|f| f.kind == kind && f.path == path)
                .ok_or_else(|| {
                    ApiError::not_found(format!(
                        "Run {} has no {} file '{path}'. Its page lists the files it has.",
                        id.short(),
                        kind.as_str()
                    ))
                })?;
            Ok((id.as_str().to_string(), file))
        })
        .await;
    found.map_err(api_error_page)
}

/// `/ui/runs/RUN/file?kind=…&path=…`: the file shown (text or image) with its facts.
pub(crate) async fn file_page(AxState(s): S, Segment(spec): Segment, Params(q): Params) -> Response {
    let s = AxState(s);
    let (run, file) = match find(&s, spec, &q).await {
        Ok(f) => f,
        Err(r) => return r,
    };
    let preview = if file.size as usize <= TEXT_LIMIT && !is_image(&file.path) {
        let d = file.digest.clone();
        match s.0.with_store(move |st| Ok(st.objects.read(&d)?)).await {
            Ok(bytes) => text_of(&bytes),
            Err(e) => return api_error_page(e),
        }
    } else {
        None
    };
    let name = file.path.rsplit('/').next().unwrap_or(&file.path).to_string();
    let body = html! {
        h1 { (file.path) }
        table {
            tr { th { "Kind" } td { (file.kind.as_str()) } }
            tr { th { "Size" } td { (repro_core::audit::human_bytes(file.size)) } }
            tr { th { "BLAKE3" } td { (digest(Some(&file.digest))) } }
        }
        p { a #download href=(file.href(&run, true)) download=(name) { "Download" } }
        @if let Some(text) = &preview {
            pre #preview { (text) }
        } @else if is_image(&file.path) {
            img #preview src=(file.href(&run, true)) alt=(file.path) style="max-width:100%";
        } @else if file.size as usize > TEXT_LIMIT {
            p.muted { "Too large to show here; download it." }
        } @else {
            p.muted { "Not text; download it." }
        }
    };
    let short = run.get(..8).unwrap_or(&run).to_string();
    let crumbs = [crumb("Runs", "/ui"), crumb(format!("Run {short}"), format!("/ui/runs/{}#files", enc(&run)))];
    page(&file.path, &crumbs, body).into_response()
}

/// `/ui/runs/RUN/raw?kind=…&path=…`: the file's bytes as a download.
pub(crate) async fn file_raw(AxState(s): S, Segment(spec): Segment, Params(q): Params) -> Response {
    let s = AxState(s);
    let (_, file) = match find(&s, spec, &q).await {
        Ok(f) => f,
        Err(r) => return r,
    };
    let name = file.path.rsplit('/').next().unwrap_or(&file.path).to_string();
    match crate::download::send_object(&s.0, file.digest, &name).await {
        Ok(r) => r,
        Err(e) => api_error_page(e),
    }
}
