//! What the pages show, read from the store on the blocking pool, apart from how it is
//! written as HTML.

use std::collections::BTreeMap;

use repro_core::audit::AuditReport;
use repro_core::diff::RunDiff;
use repro_core::metrics::MetricPoint;
use repro_core::registry::{verify_chain, ModelVersion, Registry};
use repro_core::search;
use repro_core::snapshot::Manifest;
use repro_core::{Digest, RunId};
use repro_store::fsck::NoProgress;
use repro_store::meta::{ReplayRow, StoredRun};
use repro_store::objects::Verified;
use repro_store::search::{ParamSource, RunQuery};
use repro_store::tracking::TrackedRun;
use repro_store::{Metadata, Objects, Store};

use crate::{ApiError, State};

/// How many runs the runs table shows at most (the first, in the chosen order); the count
/// above it says how many matched.
const MAX_TABLE_ROWS: usize = 1000;
/// How much of each log the run page shows (its end).
const LOG_TAIL: usize = 64 * 1024;

// ---- runs table -------------------------------------------------------------------------

/// The runs table: the active runs of every experiment that match (at most
/// `MAX_TABLE_ROWS`), how many matched, how many there are, and the experiments' names.
pub(crate) struct RunsData {
    pub(crate) runs: Vec<TrackedRun>,
    pub(crate) matched: usize,
    pub(crate) total: usize,
    pub(crate) experiments: BTreeMap<i64, String>,
}

/// `searched` is false when the filter or order did not parse: then nothing matches.
pub(crate) fn load_runs(
    m: &mut Metadata,
    clauses: &[search::Clause],
    order_by: &[search::OrderBy],
    searched: bool,
) -> Result<RunsData, ApiError> {
    let experiments: BTreeMap<i64, String> =
        m.tracking().list_experiments()?.into_iter().map(|e| (e.experiment_id, e.name)).collect();
    // Experiment 0 holds the runs `repro run` captured, whether or not it has a row.
    let ids: Vec<i64> = std::iter::once(0).chain(experiments.keys().copied().filter(|k| *k != 0)).collect();
    // A running captured run's params are in its record, not yet in the tracking
    // tables: show (and filter and sort on) them too.
    let all = RunQuery {
        experiments: &ids,
        stages: &["active"],
        clauses: &[],
        order: &[],
        offset: 0,
        limit: None,
        params: ParamSource::WithRecord,
    };
    let total = m.tracking().count_runs(&all)?;
    let (runs, matched) = if searched {
        let q = RunQuery { clauses, order: order_by, limit: Some(MAX_TABLE_ROWS), ..all };
        (m.tracking().search_runs(&q)?, m.tracking().count_runs(&q)?)
    } else {
        (Vec::new(), 0)
    };
    Ok(RunsData { runs, matched, total, experiments })
}

// ---- one run ----------------------------------------------------------------------------

/// Everything the run page shows, read on the blocking pool.
pub(crate) struct RunData {
    pub(crate) run: StoredRun,
    pub(crate) metrics: Vec<MetricPoint>,
    pub(crate) replays: Vec<ReplayRow>,
    pub(crate) audit: AuditReport,
    pub(crate) versions: Vec<ModelVersion>,
    pub(crate) manifests: BTreeMap<Digest, Manifest>,
    pub(crate) stdout: Option<String>,
    pub(crate) stderr: Option<String>,
    /// False for a run a tracking client created (`tracking.origin = 'api'`): its record's
    /// code, command, seed, environment and hardware are placeholders, not captured facts.
    pub(crate) captured: bool,
    /// The run as the tracking API sees it: the params, tags and metrics clients logged.
    pub(crate) tracked: TrackedRun,
    pub(crate) replay_of: Option<ReplayOf>,
}

/// A RUN as the CLI takes it (a full id, a 4+ character prefix, a name, `latest`,
/// `NAME@V`, `NAME@STAGE`), resolved by the store's own resolver so the UI and the CLI
/// cannot disagree; errors carry the CLI's wording (unknown is a 404, ambiguous a 400).
pub(crate) fn resolve_run(m: &Metadata, spec: &str) -> Result<RunId, ApiError> {
    m.resolve_run(spec).map_err(|e| ApiError::from(repro_exec::ExecError::Store(e)))
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
    Ok(RunData {
        run,
        metrics,
        replays,
        audit,
        versions,
        manifests,
        stdout,
        stderr,
        captured: tracked.captured,
        tracked,
        replay_of,
    })
}

// ---- diff -------------------------------------------------------------------------------

pub(crate) struct DiffData {
    pub(crate) a: StoredRun,
    pub(crate) b: StoredRun,
    pub(crate) diff: RunDiff,
}

/// `a` and `b` are RUN specs, as the CLI's `repro diff A B` takes them.
pub(crate) fn load_diff(st: &mut Store, a: &str, b: &str) -> Result<DiffData, ApiError> {
    let (a, b) = (resolve_run(&st.meta, a)?, resolve_run(&st.meta, b)?);
    let a = st.meta.runs().get(&a)?;
    let b = st.meta.runs().get(&b)?;
    let diff = repro_exec::diff::diff_runs(st, &a, &b)?;
    Ok(DiffData { a, b, diff })
}

// ---- models -----------------------------------------------------------------------------

/// One version's checks.
pub(crate) struct VersionCheck {
    pub(crate) lineage: Result<(), String>,
    pub(crate) artifact: Result<usize, String>,
}

pub(crate) struct ModelsData {
    pub(crate) registry: Registry,
    pub(crate) chain_problems: Vec<String>,
    pub(crate) checks: BTreeMap<(String, u32), VersionCheck>,
}

pub(crate) fn load_models(m: &mut Metadata, state: &State) -> Result<ModelsData, ApiError> {
    let events = m.models().events()?;
    let anchor = m.models().anchor()?;
    let mut chain_problems: Vec<String> =
        verify_chain(&events, anchor.event()).into_iter().map(|p| format!("#{}: {}", p.seq, p.message)).collect();
    chain_problems.extend(anchor.problem());
    let registry = m.models().registry()?;
    let mut checks = BTreeMap::new();
    for model in registry.models.values() {
        for v in model.versions.values() {
            let Some(run_id) = &v.run else {
                // An external version: nothing to verify but what adoption pinned.
                let lineage = Err(v.run_id().err().unwrap_or_default());
                let artifact = match v.files() {
                    Ok(a) => Ok(a.files.len()),
                    Err(e) => Err(e),
                };
                checks.insert((v.name.clone(), v.version), VersionCheck { lineage, artifact });
                continue;
            };
            let lineage = match m.runs().get(run_id) {
                Ok(run) if v.lineage_holds(run.lineage.as_ref(), &run.record.lineage()) => Ok(()),
                Ok(run) if run.lineage.is_none() => {
                    Err("the run is still running: its lineage is pinned when it finishes".to_string())
                }
                Ok(_) => Err("the run's record no longer hashes to the registered lineage".to_string()),
                Err(e) => Err(format!("the run is not in this store: {e}")),
            };
            let mut bad = Vec::new();
            let files = v.artifact.as_ref().map_or(&[][..], |a| &a.files[..]);
            for f in files {
                match state.objects.verify(&f.blake3).unwrap_or(Verified::Missing) {
                    Verified::Ok { .. } => {}
                    Verified::Missing => bad.push(format!("{} missing", f.path)),
                    Verified::Corrupt => bad.push(format!("{} corrupt", f.path)),
                }
            }
            let artifact = if bad.is_empty() { Ok(files.len()) } else { Err(bad.join(", ")) };
            checks.insert((v.name.clone(), v.version), VersionCheck { lineage, artifact });
        }
    }
    Ok(ModelsData { registry, chain_problems, checks })
}
