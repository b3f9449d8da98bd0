//! What the MLflow tracking API adds to a run: experiments, params, tags, the latest value of
//! each metric, dataset inputs — in the same database as the runs they belong to.
//!
//! A run is one row of `runs` whichever door it came through: `repro run` (captured) or
//! `POST /runs/create` (tracking only; its record says nothing was captured). The `tracking`
//! row holds what MLflow knows and repro's record does not: the experiment, the MLflow user,
//! the lifecycle stage, the artifact URI. Runs without one (recorded before the server
//! existed) belong to the Default experiment "0". Metric points go to the one `metrics`
//! table; `latest_metrics` keeps each key's latest point so searches never scan series.

mod runs;

use std::collections::{BTreeMap, HashMap};

use crate::db::{params, Db, OptionalExtension, TransactionBehavior, Val};
use crate::journal::Journal;
use repro_core::record::RunRecord;
use repro_core::search::RunView;
use repro_core::RunId;
use serde::Serialize;

use crate::conn::{db, Conn};
use crate::search::{self, ParamSource, RunQuery};
use crate::{Result, StoreError};

/// A run's recorded params (`params.values`, then `params.logged`) as MLflow params: what
/// `repro run` captured is searchable like what a client logged. Existing keys win, so a
/// param a client logged keeps its value.
pub(crate) const PARAMS_FROM_RECORD: &str = "
INSERT INTO run_params (run_id, key, value)
SELECT r.id, j.key, CASE WHEN j.type = 'text' THEN j.value ELSE json(j.value) END
FROM runs r, json_each(r.record, '$.params.values') j WHERE r.id = ?1 ON CONFLICT DO NOTHING;
";
pub(crate) const LOGGED_FROM_RECORD: &str = "
INSERT INTO run_params (run_id, key, value)
SELECT r.id, j.key, CASE WHEN j.type = 'text' THEN j.value ELSE json(j.value) END
FROM runs r, json_each(r.record, '$.params.logged') j WHERE r.id = ?1 ON CONFLICT DO NOTHING;
";

/// Inside a finishing run's transaction: what `repro run` captured becomes searchable
/// through the tracking API like what a client logged; a key a client logged keeps its value.
pub(crate) fn index_captured_params(tx: &Db, j: &mut Journal, path: &std::path::Path, id: &str) -> Result<()> {
    tx.execute(PARAMS_FROM_RECORD, [id]).map_err(|e| db(path, "index params", e))?;
    tx.execute(LOGGED_FROM_RECORD, [id]).map_err(|e| db(path, "index params", e))?;
    j.touch_run_rows(tx, "finish", "run_params", id).map_err(|e| db(path, "index params", e))
}

/// Recomputes the latest point of each of a run's metrics (after points arrive in bulk). One
/// sort of the run's points: a subquery per point picking its key's latest was quadratic in
/// the points of one key (50,000 took over 7 minutes on PostgreSQL).
pub(crate) const REFRESH_LATEST: &str = "
INSERT INTO latest_metrics (run_id, key, value, step, timestamp_ms, is_nan)
SELECT run_id, key, value, step, timestamp_ms, is_nan FROM (
    SELECT run_id, key, value, step, timestamp_ms, is_nan, ROW_NUMBER() OVER (
        PARTITION BY key ORDER BY step DESC, timestamp_ms DESC, value DESC) AS n
    FROM metrics WHERE run_id = ?1) latest
WHERE n = 1
ON CONFLICT (run_id, key) DO UPDATE SET value = excluded.value, step = excluded.step,
    timestamp_ms = excluded.timestamp_ms, is_nan = excluded.is_nan";

/// The run tag MLflow keeps the run's name in.
pub const RUN_NAME_TAG: &str = "mlflow.runName";

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Experiment {
    pub experiment_id: i64,
    pub name: String,
    pub artifact_location: String,
    pub lifecycle_stage: String,
    pub creation_time: i64,
    pub last_update_time: i64,
    pub tags: BTreeMap<String, String>,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct LatestMetric {
    pub key: String,
    pub value: f64,
    pub step: i64,
    pub timestamp: i64,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct DatasetInput {
    pub name: String,
    pub digest: String,
    pub source_type: String,
    pub source: String,
    pub schema: Option<String>,
    pub profile: Option<String>,
    pub tags: BTreeMap<String, String>,
}

/// A dataset as an experiment's runs used it (`search-datasets`).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct DatasetSummary {
    pub experiment_id: i64,
    pub name: String,
    pub digest: String,
    /// The `mlflow.data.context` input tag (`training`, `eval` …), when logged.
    pub context: Option<String>,
}

/// A run as the tracking API shows it.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct TrackedRun {
    pub run_id: RunId,
    pub run_name: String,
    pub experiment_id: i64,
    pub user_id: String,
    /// The MLflow status name: RUNNING, FINISHED, FAILED, KILLED.
    pub status: &'static str,
    pub start_time: i64,
    pub end_time: Option<i64>,
    pub artifact_uri: String,
    pub lifecycle_stage: String,
    /// Owned by a `repro run` process (captured), not by a tracking client.
    pub captured: bool,
    pub metrics: Vec<LatestMetric>,
    pub params: BTreeMap<String, String>,
    pub tags: BTreeMap<String, String>,
    pub inputs: Vec<DatasetInput>,
}

/// The owned parts a [`RunView`] of a [`TrackedRun`] borrows: how `repro_core::search` sees
/// the run, for matching and sorting runs in memory (the SQL search in `search.rs` must agree).
pub struct SearchParts {
    pub metrics: BTreeMap<String, f64>,
    /// (name, digest, `mlflow.data.context` tag or "").
    pub datasets: Vec<(String, String, String)>,
}

impl TrackedRun {
    pub fn search_parts(&self) -> SearchParts {
        SearchParts {
            metrics: self.metrics.iter().map(|m| (m.key.clone(), m.value)).collect(),
            datasets: self
                .inputs
                .iter()
                .map(|d| {
                    (d.name.clone(), d.digest.clone(), d.tags.get("mlflow.data.context").cloned().unwrap_or_default())
                })
                .collect(),
        }
    }
}

impl SearchParts {
    pub fn view<'a>(&'a self, run: &'a TrackedRun) -> RunView<'a> {
        RunView {
            run_id: run.run_id.as_str(),
            run_name: &run.run_name,
            status: run.status,
            user_id: &run.user_id,
            artifact_uri: &run.artifact_uri,
            start_time: run.start_time,
            end_time: run.end_time,
            metrics: &self.metrics,
            params: &run.params,
            tags: &run.tags,
            datasets: &self.datasets,
        }
    }
}

/// One metric point as a client logs it.
#[derive(Clone, Debug, PartialEq)]
pub struct MetricIn {
    pub key: String,
    pub value: f64,
    pub timestamp: i64,
    pub step: i64,
    /// The logged model the point measures (MLflow's `log_metric(model_id=…)`): the point is
    /// the run's, and also one of the model's.
    pub model: Option<ModelPoint>,
}

/// Which logged model a metric point measures, and on which dataset.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ModelPoint {
    pub model_id: String,
    pub dataset_name: String,
    pub dataset_digest: String,
}

fn mlflow_status(status: &str) -> &'static str {
    match status {
        "running" => "RUNNING",
        "finished" => "FINISHED",
        "killed" => "KILLED",
        _ => "FAILED",
    }
}

fn invalid(message: impl Into<String>) -> StoreError {
    StoreError::Invalid(message.into())
}

fn not_found(message: impl Into<String>) -> StoreError {
    StoreError::Missing(message.into())
}

/// A metric value as SQLite can keep it (NaN would become NULL): the value, and the NaN flag.
pub(crate) fn storable(v: f64) -> (f64, bool) {
    if v.is_nan() {
        (0.0, true)
    } else {
        (v, false)
    }
}

/// A point as `later` compares it: NaN as the stored latest point reads back (`f64::NAN`),
/// whatever its sign or payload, so a batch picks the point the one-by-one order would keep.
fn point_order(m: &MetricIn) -> (i64, i64, f64) {
    (m.step, m.timestamp, if m.value.is_nan() { f64::NAN } else { m.value })
}

/// Whether (step, timestamp, value) is later than the stored latest point: MLflow's rule.
fn later(a: (i64, i64, f64), b: (i64, i64, f64)) -> bool {
    (a.0, a.1).cmp(&(b.0, b.1)).then_with(|| a.2.total_cmp(&b.2)).is_gt()
}

/// The MLflow tracking tables: experiments, the tracking side of runs (params, tags,
/// latest metrics, dataset inputs, status), artifacts, and logged models (`logged.rs`).
pub struct Tracking<'a> {
    pub(crate) c: Conn<'a>,
}

impl Tracking<'_> {
    /// Rebuilds `latest_metrics` wherever it disagrees with `metrics` (it is a cache of each
    /// key's latest point). Returns what was rebuilt, for fsck to say.
    pub(crate) fn rebuild_latest_metrics(&self) -> Result<Vec<String>> {
        let e = || self.c.err("check latest_metrics");
        let wrong = self
            .c
            .db
            .query_rows(
                "SELECT w.run_id FROM (SELECT run_id, key, value, step, timestamp_ms, is_nan FROM
                     (SELECT run_id, key, value, step, timestamp_ms, is_nan,
                             ROW_NUMBER() OVER (PARTITION BY run_id, key ORDER BY step DESC, timestamp_ms DESC, value DESC) AS n
                      FROM metrics) AS ranked WHERE n = 1) AS w
                 LEFT JOIN latest_metrics l ON l.run_id = w.run_id AND l.key = w.key
                 WHERE l.run_id IS NULL OR l.value != w.value OR l.step != w.step OR l.timestamp_ms != w.timestamp_ms
                    OR l.is_nan != w.is_nan
                 UNION
                 SELECT l.run_id FROM latest_metrics l
                 WHERE NOT EXISTS (SELECT 1 FROM metrics m WHERE m.run_id = l.run_id AND m.key = l.key)",
                params![],
            )
            .map_err(e())?;
        let mut out = Vec::new();
        for r in wrong {
            let run: String = r.get(0).map_err(e())?;
            self.c.write("rebuild latest_metrics", TransactionBehavior::Immediate, |tx, _| {
                tx.lock_key(&run).map_err(self.c.err("rebuild latest_metrics"))?;
                tx.execute(
                    "DELETE FROM latest_metrics WHERE run_id = ?1 AND NOT EXISTS
                     (SELECT 1 FROM metrics m WHERE m.run_id = latest_metrics.run_id AND m.key = latest_metrics.key)",
                    [run.as_str()],
                )
                .map_err(self.c.err("rebuild latest_metrics"))?;
                tx.execute(REFRESH_LATEST, [run.as_str()]).map_err(self.c.err("rebuild latest_metrics"))?;
                Ok(())
            })?;
            out.push(format!(
                "latest_metrics: run {} disagreed with its metric points; rebuilt from metrics",
                &run[..run.len().min(8)]
            ));
        }
        Ok(out)
    }

    pub fn create_experiment(
        &mut self,
        name: &str,
        artifact_location: Option<&str>,
        tags: &[(String, String)],
    ) -> Result<i64> {
        let path = self.c.path.to_path_buf();
        let tx = self
            .c
            .db
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(|e| db(&path, "create experiment", e))?;
        let exists: Option<i64> = tx
            .query_row("SELECT experiment_id FROM experiments WHERE name = ?1", [name], |r| r.get(0))
            .optional()
            .map_err(|e| db(&path, "create experiment", e))?;
        if exists.is_some() {
            return Err(StoreError::AlreadyThere(format!("Experiment(name={name}) already exists.")));
        }
        let id: i64 = tx
            .query_row("SELECT COALESCE(MAX(experiment_id), 0) + 1 FROM experiments", params![], |r| r.get(0))
            .map_err(|e| db(&path, "create experiment", e))?;
        let location = artifact_location.map(str::to_string).unwrap_or_else(|| format!("mlflow-artifacts:/{id}"));
        let now = crate::now_ms();
        tx.execute("INSERT INTO experiments VALUES (?1, ?2, ?3, 'active', ?4, ?4)", params![id, name, location, now])
            .map_err(|e| db(&path, "create experiment", e))?;
        let mut j = Journal::new();
        j.touch(&tx, "experiment", "experiments", &[Val::Int(id)]).map_err(|e| db(&path, "create experiment", e))?;
        for (k, v) in tags {
            tx.execute("INSERT INTO experiment_tags VALUES (?1, ?2, ?3) ON CONFLICT (experiment_id, key) DO UPDATE SET value = excluded.value", params![id, k, v])
                .map_err(|e| db(&path, "tag experiment", e))?;
            j.touch(&tx, "experiment", "experiment_tags", &[Val::Int(id), k.as_str().into()])
                .map_err(|e| db(&path, "tag experiment", e))?;
        }
        j.append(&tx, now).map_err(|e| db(&path, "create experiment", e))?;
        tx.commit().map_err(|e| db(&path, "create experiment", e))?;
        Ok(id)
    }

    fn experiment_rows(&self, filter_sql: &str, args: &[&dyn crate::db::Arg]) -> Result<Vec<Experiment>> {
        let sql = format!(
            "SELECT experiment_id, name, artifact_location, lifecycle_stage, creation_time, last_update_time
             FROM experiments {filter_sql} ORDER BY experiment_id"
        );
        let mut stmt = self.c.db.prepare(&sql).map_err(self.c.err("read experiments"))?;
        let rows = stmt
            .query_map(args, |r| {
                Ok(Experiment {
                    experiment_id: r.get(0)?,
                    name: r.get(1)?,
                    artifact_location: r.get(2)?,
                    lifecycle_stage: r.get(3)?,
                    creation_time: r.get(4)?,
                    last_update_time: r.get(5)?,
                    tags: BTreeMap::new(),
                })
            })
            .map_err(self.c.err("read experiments"))?;
        let mut out = rows.collect::<crate::db::DbResult<Vec<_>>>().map_err(self.c.err("read experiments"))?;
        let mut stmt = self
            .c
            .db
            .prepare("SELECT key, value FROM experiment_tags WHERE experiment_id = ?1")
            .map_err(self.c.err("read tags"))?;
        for e in &mut out {
            let tags = stmt
                .query_map([e.experiment_id], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))
                .map_err(self.c.err("read tags"))?;
            e.tags = tags.collect::<crate::db::DbResult<_>>().map_err(self.c.err("read tags"))?;
        }
        Ok(out)
    }

    pub fn get_experiment(&self, id: i64) -> Result<Experiment> {
        self.experiment_rows("WHERE experiment_id = ?1", &[&id])?
            .into_iter()
            .next()
            .ok_or_else(|| not_found(format!("No Experiment with id={id} exists")))
    }

    pub fn get_experiment_by_name(&self, name: &str) -> Result<Experiment> {
        self.experiment_rows("WHERE name = ?1", &[&name])?
            .into_iter()
            .next()
            .ok_or_else(|| not_found(format!("Could not find experiment with name '{name}'")))
    }

    /// Every experiment in `stages` (active, deleted), by id.
    pub fn list_experiments(&self) -> Result<Vec<Experiment>> {
        self.experiment_rows("", &[])
    }

    pub fn rename_experiment(&self, id: i64, new_name: &str) -> Result<()> {
        self.get_experiment(id)?;
        if self.get_experiment_by_name(new_name).is_ok_and(|e| e.experiment_id != id) {
            return Err(StoreError::AlreadyThere(format!("Experiment(name={new_name}) already exists.")));
        }
        self.c.write("rename experiment", TransactionBehavior::Immediate, |tx, j| {
            tx.execute(
                "UPDATE experiments SET name = ?2, last_update_time = ?3 WHERE experiment_id = ?1",
                params![id, new_name, crate::now_ms()],
            )
            .map_err(self.c.err("rename experiment"))?;
            j.touch(tx, "experiment", "experiments", &[Val::Int(id)]).map_err(self.c.err("rename experiment"))
        })
    }

    pub fn set_experiment_stage(&self, id: i64, stage: &str) -> Result<()> {
        if id == 0 && stage == "deleted" {
            return Err(invalid(
                "Cannot delete the default experiment '0'. This is an internally reserved experiment.",
            ));
        }
        self.get_experiment(id)?;
        self.c.write("update experiment", TransactionBehavior::Immediate, |tx, j| {
            tx.execute(
                "UPDATE experiments SET lifecycle_stage = ?2, last_update_time = ?3 WHERE experiment_id = ?1",
                params![id, stage, crate::now_ms()],
            )
            .map_err(self.c.err("update experiment"))?;
            j.touch(tx, "experiment", "experiments", &[Val::Int(id)]).map_err(self.c.err("update experiment"))
        })
    }

    pub fn set_experiment_tag(&self, id: i64, key: &str, value: Option<&str>) -> Result<()> {
        self.get_experiment(id)?;
        self.c.write("tag experiment", TransactionBehavior::Immediate, |tx, j| {
            match value {
                Some(v) => tx
                    .execute("INSERT INTO experiment_tags VALUES (?1, ?2, ?3) ON CONFLICT (experiment_id, key) DO UPDATE SET value = excluded.value", params![id, key, v])
                    .map_err(self.c.err("tag experiment"))?,
                None => tx
                    .execute("DELETE FROM experiment_tags WHERE experiment_id = ?1 AND key = ?2", params![id, key])
                    .map_err(self.c.err("untag experiment"))?,
            };
            j.touch(tx, "experiment", "experiment_tags", &[Val::Int(id), key.into()]).map_err(self.c.err("tag experiment"))
        })
    }
}

/// One entry of an artifact folder listing.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ArtifactEntry {
    /// The name inside the listed folder.
    pub path: String,
    pub is_dir: bool,
    pub file_size: Option<u64>,
}

/// Checks an artifact path from a URL: `/`-separated, no empty, `.` or `..` segment, no
/// backslash or NUL, at most 1024 bytes. Returns it without a trailing slash.
pub fn clean_artifact_path(path: &str) -> std::result::Result<String, String> {
    let trimmed = path.trim_end_matches('/');
    if trimmed.is_empty() || trimmed.len() > 1024 {
        return Err(format!("Invalid artifact path '{path}': it must be 1 to 1024 bytes"));
    }
    for seg in trimmed.split('/') {
        if seg.is_empty() || seg == "." || seg == ".." || seg.contains(['\\', '\0']) {
            return Err(format!(
                "Invalid artifact path '{path}': segments may not be empty, '.' or '..', or hold '\\' or NUL"
            ));
        }
    }
    Ok(trimmed.to_string())
}

impl Tracking<'_> {
    /// Records that the artifact at `path` is `object` (a later upload to the same path
    /// replaces the entry; the earlier content stays in the object store).
    pub fn put_artifact(&self, path: &str, object: &repro_core::Digest, size: u64) -> Result<()> {
        self.c.write("record the artifact", TransactionBehavior::Immediate, |tx, j| {
            tx.execute(
                "INSERT INTO artifacts (path, object, size, created_ms) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (path) DO UPDATE SET object = excluded.object, size = excluded.size, created_ms = excluded.created_ms",
                params![path, object.as_str(), size as i64, crate::now_ms()],
            )
            .map_err(self.c.err("record the artifact"))?;
            j.touch(tx, "artifact", "artifacts", &[path.into()]).map_err(self.c.err("record the artifact"))
        })
    }

    pub fn get_artifact(&self, path: &str) -> Result<Option<(repro_core::Digest, u64)>> {
        let row: Option<(String, i64)> = self
            .c
            .db
            .query_row("SELECT object, size FROM artifacts WHERE path = ?1", [path], |r| Ok((r.get(0)?, r.get(1)?)))
            .optional()
            .map_err(self.c.err("read the artifact"))?;
        row.map(|(o, size)| Ok((crate::conn::parse_digest(&o, path)?, size as u64))).transpose()
    }

    /// The entries directly inside folder `dir` ("" for the root).
    pub fn list_artifacts(&self, dir: &str) -> Result<Vec<ArtifactEntry>> {
        let prefix = if dir.is_empty() { String::new() } else { format!("{dir}/") };
        // Range scan on the primary key: everything that starts with `prefix`.
        let end = format!("{prefix}\u{10FFFF}");
        let mut stmt = self
            .c
            .db
            .prepare_cached("SELECT path, size FROM artifacts WHERE path >= ?1 AND path < ?2 ORDER BY path")
            .map_err(self.c.err("list artifacts"))?;
        let rows = stmt
            .query_map(params![prefix, end], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))
            .map_err(self.c.err("list artifacts"))?;
        let mut out: Vec<ArtifactEntry> = Vec::new();
        for row in rows {
            let (path, size) = row.map_err(self.c.err("list artifacts"))?;
            let Some(rest) = path.strip_prefix(&prefix) else { continue };
            match rest.split_once('/') {
                Some((folder, _)) => {
                    if out.last().is_none_or(|e| e.path != folder) {
                        out.push(ArtifactEntry { path: folder.to_string(), is_dir: true, file_size: None });
                    }
                }
                None => out.push(ArtifactEntry { path: rest.to_string(), is_dir: false, file_size: Some(size as u64) }),
            }
        }
        Ok(out)
    }

    pub fn delete_artifact(&self, path: &str) -> Result<()> {
        self.c.write("delete the artifact", TransactionBehavior::Immediate, |tx, j| {
            let n = tx
                .execute("DELETE FROM artifacts WHERE path = ?1", [path])
                .map_err(self.c.err("delete the artifact"))?;
            if n > 0 {
                j.delete("artifact", "artifacts", &[path.into()]);
            }
            Ok(())
        })
    }

    /// Every artifact's object, for fsck.
    pub fn all_artifacts(&self) -> Result<Vec<(String, repro_core::Digest)>> {
        let mut stmt = self.c.db.prepare("SELECT path, object FROM artifacts").map_err(self.c.err("read artifacts"))?;
        let rows = stmt
            .query_map(params![], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))
            .map_err(self.c.err("read artifacts"))?;
        let mut out = Vec::new();
        for r in rows {
            let (p, o) = r.map_err(self.c.err("read artifacts"))?;
            let d = crate::conn::parse_digest(&o, &p)?;
            out.push((p, d));
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Metadata;

    #[test]
    fn artifact_paths_are_checked_and_listed_by_folder() {
        for bad in ["", "/", "a//b", "../x", "a/../b", "a/./b", "a\\b", "x\0y"] {
            assert!(clean_artifact_path(bad).is_err(), "{bad:?}");
        }
        assert_eq!(clean_artifact_path("1/r/artifacts/model/").as_deref(), Ok("1/r/artifacts/model"));
        let (_d, m, _s) = meta();
        let d = repro_core::Digest::of_bytes(b"x");
        for p in [
            "1/r/artifacts/notes.txt",
            "1/r/artifacts/model/MLmodel",
            "1/r/artifacts/model/model.pkl",
            "1/r2/artifacts/a",
        ] {
            m.tracking().put_artifact(p, &d, 1).expect("put");
        }
        let names = |dir: &str| -> Vec<(String, bool)> {
            m.tracking().list_artifacts(dir).expect("list").into_iter().map(|e| (e.path, e.is_dir)).collect()
        };
        assert_eq!(names("1/r/artifacts"), [("model".to_string(), true), ("notes.txt".to_string(), false)]);
        assert_eq!(names("1/r/artifacts/model").len(), 2);
        assert!(names("1/r/artifacts/notes.txt").is_empty(), "a file lists as nothing");
        assert!(m.tracking().get_artifact("1/r/artifacts/nothing").expect("get").is_none());
    }

    fn meta() -> (tempfile::TempDir, Metadata, Option<repro_test::ScratchDb>) {
        let dir = tempfile::tempdir().expect("tempdir");
        let (m, scratch) = crate::meta::scratch(dir.path());
        (dir, m, scratch)
    }

    #[test]
    fn a_version_5_store_gains_the_search_indexes_and_logged_models() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join(crate::meta::DB_FILE);
        let id = RunId::from_bytes([9; 16]);
        {
            let m = Metadata::open(&path).expect("open");
            m.tracking().create_tracked_run(&id, 0, "ada", "r", 1, &[], "h").expect("create");
            let pt = MetricIn { key: "acc".into(), value: 0.5, timestamp: 1, step: 0, model: None };
            m.tracking().log_batch(id.as_str(), &[pt], &[("lr".into(), "0.1".into())], &[]).expect("log");
            // Back to what version 5 was.
            m.conn
                .execute_batch(
                    "DROP INDEX runs_started; DROP INDEX run_params_value; DROP INDEX run_tags_value;
                     DROP INDEX latest_metrics_value; DROP TABLE run_model_outputs; DROP TABLE logged_models;
                     DROP TABLE journal; DROP TABLE fsck_results; DROP TABLE logged_model_metrics;
                     DROP TABLE run_model_inputs; DROP TABLE tree_cache_chunks; ALTER TABLE tokens DROP COLUMN email;
                     ALTER TABLE tokens DROP COLUMN approver_keyid; ALTER TABLE tokens DROP COLUMN approver_key;
                     PRAGMA user_version = 5;",
                )
                .expect("downgrade");
        }
        let m = Metadata::open(&path).expect("reopen");
        let version: i64 = m.conn.query_row("PRAGMA user_version", params![], |r| r.get(0)).expect("version");
        assert_eq!(version, crate::schema::SCHEMA_VERSION);
        // What the version 5 store held is now journaled, as it was when upgraded.
        assert!(crate::journal::check_all(&m.conn).expect("check").is_empty());
        assert_eq!(
            crate::journal::first_kind(&m.conn, &crate::journal::run_scope(id.as_str())).expect("kind").as_deref(),
            Some("genesis")
        );
        let indexes: i64 = m
            .conn
            .query_row(
                "SELECT COUNT(*) FROM sqlite_schema WHERE type = 'index' AND name IN
                 ('runs_started', 'run_params_value', 'run_tags_value', 'latest_metrics_value')",
                params![],
                |r| r.get(0),
            )
            .expect("indexes");
        assert_eq!(indexes, 4);
        assert!(m.tracking().logged_models(&[]).expect("the logged-model tables exist").is_empty());
        let clauses = repro_core::search::parse_filter("params.lr = '0.1' AND metrics.acc > 0.4").expect("filter");
        let q = RunQuery {
            experiments: &[0],
            stages: &["active"],
            clauses: &clauses,
            order: &[],
            offset: 0,
            limit: Some(10),
            params: ParamSource::Logged,
        };
        assert_eq!(m.tracking().search_runs(&q).expect("search").len(), 1);
    }

    #[test]
    fn a_batch_keeps_the_latest_point_of_each_key_as_one_by_one_would() {
        let (_d, m, _s) = meta();
        let pt = |key: &str, value: f64, step: i64, timestamp: i64| MetricIn {
            key: key.into(),
            value,
            step,
            timestamp,
            model: None,
        };
        // The same points, in one batch and one by one, into two runs.
        let points = [
            pt("a", 1.0, 0, 5),
            pt("b", f64::NAN, 3, 0),
            pt("a", 0.5, 2, 1),
            pt("b", 7.0, 3, 0),
            pt("a", 0.7, 2, 1),
            pt("c", f64::INFINITY, 1, 1),
            pt("a", 0.6, 2, 1),
            pt("c", f64::NEG_INFINITY, 1, 2),
            pt("b", -1.0, 2, 9),
        ];
        let (batch, single) = (RunId::from_bytes([1; 16]), RunId::from_bytes([2; 16]));
        for id in [&batch, &single] {
            m.tracking().create_tracked_run(id, 0, "ada", "r", 0, &[], "h").expect("create");
        }
        // A point logged before the batch that the batch must not displace.
        for id in [&batch, &single] {
            m.tracking().log_batch(id.as_str(), &[pt("d", 3.0, 9, 9)], &[], &[]).expect("log");
        }
        let mut with_d = points.to_vec();
        with_d.push(pt("d", 4.0, 8, 9));
        m.tracking().log_batch(batch.as_str(), &with_d, &[], &[]).expect("batch");
        for p in &with_d {
            m.tracking().log_batch(single.as_str(), std::slice::from_ref(p), &[], &[]).expect("one");
        }
        let latest = |id: &RunId| -> Vec<(String, String, i64, i64)> {
            let r = m.tracking().get_tracked_run(id.as_str()).expect("run");
            r.metrics.into_iter().map(|l| (l.key, format!("{:?}", l.value), l.step, l.timestamp)).collect()
        };
        assert_eq!(latest(&batch), latest(&single));
        let got = latest(&batch);
        assert_eq!(got[0], ("a".to_string(), "0.7".to_string(), 2, 1), "{got:?}");
        // On a tie of step and timestamp NaN counts as the greatest value (`later`).
        assert_eq!(got[1].1, "NaN", "{got:?}");
        assert_eq!(got[3], ("d".to_string(), "3.0".to_string(), 9, 9));
        assert_eq!(m.tracking().metric_history(batch.as_str(), "a", 0, 100).expect("history").len(), 4);
    }

    #[test]
    fn experiments_and_the_default_one() {
        let (_d, m, _s) = meta();
        assert_eq!(m.tracking().get_experiment(0).expect("default").name, "Default");
        let id = m.tracking().create_experiment("e", None, &[("k".into(), "v".into())]).expect("create");
        assert_eq!(id, 1);
        let e = m.tracking().get_experiment_by_name("e").expect("by name");
        assert_eq!(e.artifact_location, "mlflow-artifacts:/1");
        assert_eq!(e.tags["k"], "v");
        assert!(matches!(m.tracking().create_experiment("e", None, &[]), Err(StoreError::AlreadyThere(_))));
        assert!(matches!(m.tracking().get_experiment(9), Err(StoreError::Missing(_))));
        assert!(matches!(m.tracking().set_experiment_stage(0, "deleted"), Err(StoreError::Invalid(_))));
    }

    #[test]
    fn runs_log_and_keep_the_latest_metric() {
        let (_d, m, _s) = meta();
        let id = RunId::from_bytes([3; 16]);
        m.tracking()
            .create_tracked_run(&id, 0, "ada", "brave-owl", 1000, &[("team".into(), "a".into())], "h")
            .expect("create");
        let p = |k: &str, v: &str| (k.to_string(), v.to_string());
        let pt = |key: &str, value: f64, step: i64, timestamp: i64| MetricIn {
            key: key.into(),
            value,
            step,
            timestamp,
            model: None,
        };
        m.tracking()
            .log_batch(
                id.as_str(),
                &[pt("loss", 0.9, 0, 10), pt("loss", 0.5, 2, 5), pt("loss", 0.7, 1, 20)],
                &[p("lr", "0.1")],
                &[],
            )
            .expect("log");
        m.tracking().log_batch(id.as_str(), &[], &[p("lr", "0.1")], &[]).expect("same value is fine");
        let e = m.tracking().log_batch(id.as_str(), &[], &[p("lr", "0.2")], &[]).expect_err("overwrite");
        assert!(e.to_string().contains("Changing param values is not allowed"), "{e}");
        let r = m.tracking().get_tracked_run(id.as_str()).expect("run");
        assert_eq!(r.metrics, vec![LatestMetric { key: "loss".into(), value: 0.5, step: 2, timestamp: 5 }]);
        assert_eq!(r.params["lr"], "0.1");
        assert_eq!(r.tags[RUN_NAME_TAG], "brave-owl");
        assert_eq!(r.status, "RUNNING");
        assert!(!r.captured);
        let h = m.tracking().metric_history(id.as_str(), "loss", 0, 10).expect("history");
        assert_eq!(h.iter().map(|p| p.step).collect::<Vec<_>>(), [0, 1, 2]);
        assert_eq!(m.tracking().metric_history(id.as_str(), "loss", 2, 10).expect("page").len(), 1);
        m.tracking().set_run_stage(id.as_str(), "deleted").expect("delete");
        assert!(m.tracking().log_batch(id.as_str(), &[], &[], &[p("x", "y")]).is_err());
        let all = |stages: &[&str]| {
            let q = RunQuery {
                experiments: &[0],
                stages,
                clauses: &[],
                order: &[],
                offset: 0,
                limit: None,
                params: ParamSource::Logged,
            };
            m.tracking().search_runs(&q).expect("search").len()
        };
        assert_eq!(all(&["active"]), 0);
        assert_eq!(all(&["active", "deleted"]), 1);
    }
}
