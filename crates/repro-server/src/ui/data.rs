//! What the run page shows, read from the store on the blocking pool, apart from how it is
//! written as HTML; and how every page resolves a RUN.

use std::collections::BTreeMap;

use repro_core::audit::AuditReport;
use repro_core::metrics::MetricPoint;
use repro_core::registry::ModelVersion;
use repro_core::{Digest, RunId};
use repro_store::fsck::NoProgress;
use repro_store::meta::{ReplayRow, StoredRun};
use repro_store::tracking::TrackedRun;
use repro_store::{Objects, Store};

use crate::ApiError;

/// How much of each log the run page shows (its end).
const LOG_TAIL: usize = 64 * 1024;

// ---- one run ----------------------------------------------------------------------------

/// Everything the run page shows, read on the blocking pool.
pub(crate) struct RunData {
    pub(crate) run: StoredRun,
    pub(crate) metrics: Vec<MetricPoint>,
    pub(crate) replays: Vec<ReplayRow>,
    pub(crate) audit: AuditReport,
    pub(crate) versions: Vec<ModelVersion>,
    pub(crate) stdout: Option<String>,
    pub(crate) stderr: Option<String>,
    /// False for a run a tracking client created (`tracking.origin = 'api'`): its record's
    /// code, command, seed, environment and hardware are placeholders, not captured facts.
    pub(crate) captured: bool,
    /// The run as the tracking API sees it: the params, tags and metrics clients logged.
    pub(crate) tracked: TrackedRun,
    pub(crate) replay_of: Option<ReplayOf>,
    /// The stored `git diff` of a dirty tree, as text (its end cut past `files::TEXT_LIMIT`).
    pub(crate) diff: Option<String>,
    /// Every file of the run a person may open: outputs, logged artifacts, params files.
    pub(crate) files: Vec<super::files::RunFile>,
    /// The params files' text, by path, where small and text.
    pub(crate) params_text: BTreeMap<String, String>,
}

/// How a replay run relates to the run it replayed: the verdict recorded for it, and the
/// report's reasons and per-output results when the report object can be read.
pub(crate) struct ReplayOf {
    pub(crate) original: RunId,
    /// `None` while the replay has no verdict (still running, or it failed before one).
    pub(crate) row: Option<ReplayRow>,
    pub(crate) reasons: Vec<String>,
    /// (output path, its verdict).
    pub(crate) outputs: Vec<(String, String)>,
}

fn replay_of(st: &Store, run: &StoredRun) -> Result<Option<ReplayOf>, ApiError> {
    let Some(original) = run.record.replay_of.clone() else { return Ok(None) };
    // No lookup by replay id exists; a run has few replays, so filtering is cheap.
    let row = st.meta.runs().replays_of(&original)?.into_iter().find(|r| r.replay == run.record.id);
    // The report is exec's serialized `ReplayReport`; read leniently, as reports written by
    // older versions may lack fields, and the verdict above stands without them.
    let report: Option<serde_json::Value> =
        row.as_ref().and_then(|r| st.objects.read(&r.report).ok()).and_then(|b| serde_json::from_slice(&b).ok());
    let strings = |v: Option<&serde_json::Value>| -> Vec<String> {
        v.and_then(|v| v.as_array())
            .map(|a| a.iter().filter_map(|s| s.as_str().map(str::to_string)).collect())
            .unwrap_or_default()
    };
    let reasons = strings(report.as_ref().and_then(|r| r.get("reasons")));
    let outputs = report
        .as_ref()
        .and_then(|r| r.get("outputs"))
        .and_then(|o| o.as_array())
        .map(|a| {
            a.iter()
                .filter_map(|o| Some((o.get("path")?.as_str()?.to_string(), o.get("verdict")?.as_str()?.to_string())))
                .collect()
        })
        .unwrap_or_default();
    Ok(Some(ReplayOf { original, row, reasons, outputs }))
}

pub(crate) fn log_tail(objects: &Objects, d: Option<&Digest>) -> Option<String> {
    let bytes = objects.read(d?).ok()?;
    let start = bytes.len().saturating_sub(LOG_TAIL);
    let mut text = String::from_utf8_lossy(&bytes[start..]).into_owned();
    if start > 0 {
        text.insert_str(0, &format!("… ({} earlier bytes not shown)\n", start));
    }
    Some(text)
}

/// What the run page shows, gathered as `repro show` and `repro audit` gather it.
pub(crate) fn load_run(st: &mut Store, id: &RunId) -> Result<RunData, ApiError> {
    let run = st.meta.runs().get(id)?;
    let metrics = st.meta.runs().metrics(id)?;
    let replays = st.meta.runs().replays_of(id)?;
    let versions: Vec<ModelVersion> = st.meta.models().registry()?.versions_of_run(id).into_iter().cloned().collect();
    let manifests = repro_exec::diff::manifests(st, &[&run]);
    let audit = repro_exec::audit::audit_run(st, &run, false, &NoProgress)?;
    let stdout = log_tail(&st.objects, run.record.logs.stdout.as_ref());
    let stderr = log_tail(&st.objects, run.record.logs.stderr.as_ref());
    let tracked = st.meta.tracking().get_tracked_run(id.as_str())?;
    let replay_of = replay_of(st, &run)?;
    let diff = run.record.code.diff.as_ref().and_then(|d| st.objects.read(d).ok()).map(|b| {
        let mut text = String::from_utf8_lossy(&b[..b.len().min(super::files::TEXT_LIMIT)]).into_owned();
        if b.len() > super::files::TEXT_LIMIT {
            text.push_str(&format!(
                "\n… ({} more bytes; download the diff to read them)\n",
                b.len() - super::files::TEXT_LIMIT
            ));
        }
        text
    });
    let files = super::files::run_files(st, &run, &tracked, &manifests)?;
    let params_text = run
        .record
        .params
        .files
        .iter()
        .filter(|f| f.size as usize <= super::files::TEXT_LIMIT)
        .filter_map(|f| Some((f.path.clone(), super::files::text_of(&st.objects.read(&f.digest).ok()?)?)))
        .collect();
    Ok(RunData {
        run,
        metrics,
        replays,
        audit,
        versions,
        stdout,
        stderr,
        captured: tracked.captured,
        tracked,
        replay_of,
        diff,
        files,
        params_text,
    })
}
