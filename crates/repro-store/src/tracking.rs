//! What the MLflow tracking API adds to a run: experiments, params, tags, the latest value of
//! each metric, dataset inputs — in the same database as the runs they belong to.
//!
//! A run is one row of `runs` whichever door it came through: `repro run` (captured) or
//! `POST /runs/create` (tracking only; its record says nothing was captured). The `tracking`
//! row holds what MLflow knows and repro's record does not: the experiment, the MLflow user,
//! the lifecycle stage, the artifact URI. Runs without one (recorded before the server
//! existed) belong to the Default experiment "0". Metric points go to the one `metrics`
//! table; `latest_metrics` keeps each key's latest point so searches never scan series.

use std::collections::{BTreeMap, HashMap};

use crate::db::{params, Db, OptionalExtension, TransactionBehavior, Val};
use crate::journal::Journal;
use repro_core::record::RunRecord;
use repro_core::search::RunView;
use repro_core::RunId;
use serde::Serialize;

use crate::meta::{db, Metadata};
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

/// Recomputes the latest point of each of a run's metrics (after points arrive in bulk).
pub(crate) const REFRESH_LATEST: &str = "
INSERT INTO latest_metrics (run_id, key, value, step, timestamp_ms, is_nan)
SELECT run_id, key, value, step, timestamp_ms, is_nan FROM metrics m
WHERE run_id = ?1 AND rowid = (SELECT rowid FROM metrics m2 WHERE m2.run_id = m.run_id AND m2.key = m.key
                              ORDER BY step DESC, timestamp_ms DESC, value DESC LIMIT 1)
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

impl Metadata {
    // ---- experiments ---------------------------------------------------------------------

    pub fn create_experiment(
        &mut self,
        name: &str,
        artifact_location: Option<&str>,
        tags: &[(String, String)],
    ) -> Result<i64> {
        let path = self.path.clone();
        let tx = self
            .conn
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
        let mut stmt = self.conn.prepare(&sql).map_err(self.err("read experiments"))?;
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
            .map_err(self.err("read experiments"))?;
        let mut out = rows.collect::<crate::db::DbResult<Vec<_>>>().map_err(self.err("read experiments"))?;
        let mut stmt = self
            .conn
            .prepare("SELECT key, value FROM experiment_tags WHERE experiment_id = ?1")
            .map_err(self.err("read tags"))?;
        for e in &mut out {
            let tags = stmt
                .query_map([e.experiment_id], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))
                .map_err(self.err("read tags"))?;
            e.tags = tags.collect::<crate::db::DbResult<_>>().map_err(self.err("read tags"))?;
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
        self.write("rename experiment", TransactionBehavior::Immediate, |tx, j| {
            tx.execute(
                "UPDATE experiments SET name = ?2, last_update_time = ?3 WHERE experiment_id = ?1",
                params![id, new_name, crate::now_ms()],
            )
            .map_err(self.err("rename experiment"))?;
            j.touch(tx, "experiment", "experiments", &[Val::Int(id)]).map_err(self.err("rename experiment"))
        })
    }

    pub fn set_experiment_stage(&self, id: i64, stage: &str) -> Result<()> {
        if id == 0 && stage == "deleted" {
            return Err(invalid(
                "Cannot delete the default experiment '0'. This is an internally reserved experiment.",
            ));
        }
        self.get_experiment(id)?;
        self.write("update experiment", TransactionBehavior::Immediate, |tx, j| {
            tx.execute(
                "UPDATE experiments SET lifecycle_stage = ?2, last_update_time = ?3 WHERE experiment_id = ?1",
                params![id, stage, crate::now_ms()],
            )
            .map_err(self.err("update experiment"))?;
            j.touch(tx, "experiment", "experiments", &[Val::Int(id)]).map_err(self.err("update experiment"))
        })
    }

    pub fn set_experiment_tag(&self, id: i64, key: &str, value: Option<&str>) -> Result<()> {
        self.get_experiment(id)?;
        self.write("tag experiment", TransactionBehavior::Immediate, |tx, j| {
            match value {
                Some(v) => tx
                    .execute("INSERT INTO experiment_tags VALUES (?1, ?2, ?3) ON CONFLICT (experiment_id, key) DO UPDATE SET value = excluded.value", params![id, key, v])
                    .map_err(self.err("tag experiment"))?,
                None => tx
                    .execute("DELETE FROM experiment_tags WHERE experiment_id = ?1 AND key = ?2", params![id, key])
                    .map_err(self.err("untag experiment"))?,
            };
            j.touch(tx, "experiment", "experiment_tags", &[Val::Int(id), key.into()]).map_err(self.err("tag experiment"))
        })
    }

    // ---- runs -----------------------------------------------------------------------------

    /// `POST /runs/create`: a tracking-only run in `experiment_id`.
    #[allow(clippy::too_many_arguments)]
    pub fn create_tracked_run(
        &mut self,
        id: &RunId,
        experiment_id: i64,
        user_id: &str,
        run_name: &str,
        start_time: i64,
        tags: &[(String, String)],
        host: &str,
    ) -> Result<()> {
        let path = self.path.clone();
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(|e| db(&path, "create run", e))?;
        let stage: Option<String> = tx
            .query_row("SELECT lifecycle_stage FROM experiments WHERE experiment_id = ?1", [experiment_id], |r| {
                r.get(0)
            })
            .optional()
            .map_err(|e| db(&path, "create run", e))?;
        match stage.as_deref() {
            None => return Err(not_found(format!("No Experiment with id={experiment_id} exists"))),
            Some("active") => {}
            Some(_) => {
                return Err(invalid(format!(
                    "The experiment {experiment_id} must be in the 'active' state. Current state is deleted."
                )))
            }
        }
        let record = RunRecord::tracking_only(
            id.clone(),
            Some(run_name.to_string()),
            user_id.to_string(),
            host.to_string(),
            crate::rfc3339(start_time),
        );
        let json = serde_json::to_string(&record).expect("records serialize");
        tx.execute(
            "INSERT INTO runs (id, name, status, exit_code, started_ms, host, pid, pid_start, record)
             VALUES (?1, ?2, 'running', NULL, ?3, ?4, NULL, NULL, ?5)",
            params![id.as_str(), run_name, start_time, host, json],
        )
        .map_err(|e| db(&path, "create run", e))?;
        let artifact_uri = format!("mlflow-artifacts:/{experiment_id}/{id}/artifacts");
        tx.execute(
            "INSERT INTO tracking (run_id, experiment_id, user_id, lifecycle_stage, artifact_uri, origin)
             VALUES (?1, ?2, ?3, 'active', ?4, 'api')",
            params![id.as_str(), experiment_id, user_id, artifact_uri],
        )
        .map_err(|e| db(&path, "create run", e))?;
        let mut all_tags = tags.to_vec();
        all_tags.push((RUN_NAME_TAG.to_string(), run_name.to_string()));
        for (k, v) in &all_tags {
            tx.execute("INSERT INTO run_tags VALUES (?1, ?2, ?3) ON CONFLICT (run_id, key) DO UPDATE SET value = excluded.value", params![id.as_str(), k, v])
                .map_err(|e| db(&path, "tag run", e))?;
        }
        let mut j = Journal::new();
        for table in ["runs", "tracking", "run_tags"] {
            j.touch_run_rows(&tx, "create", table, id.as_str()).map_err(|e| db(&path, "create run", e))?;
        }
        j.append(&tx, start_time).map_err(|e| db(&path, "create run", e))?;
        tx.commit().map_err(|e| db(&path, "create run", e))
    }

    /// Gives a run `repro run` owns its tracking row, so a script's MLflow calls land in it.
    pub fn adopt_run(&self, id: &RunId, experiment_id: i64, user_id: &str) -> Result<()> {
        let artifact_uri = format!("mlflow-artifacts:/{experiment_id}/{id}/artifacts");
        self.write("adopt run", TransactionBehavior::Immediate, |tx, j| {
            tx.lock_key(id.as_str()).map_err(self.err("adopt run"))?;
            tx.execute(
                "INSERT INTO tracking (run_id, experiment_id, user_id, lifecycle_stage, artifact_uri)
                 VALUES (?1, ?2, ?3, 'active', ?4) ON CONFLICT DO NOTHING",
                params![id.as_str(), experiment_id, user_id, artifact_uri],
            )
            .map_err(self.err("adopt run"))?;
            j.touch(tx, "create", "tracking", &[id.as_str().into()]).map_err(self.err("adopt run"))
        })
    }

    /// Reads runs (`search::RUN_COLUMNS` per row, in the statement's order) with their data.
    pub(crate) fn read_runs(
        &self,
        sql: &str,
        args: &[&dyn crate::db::Arg],
        params: ParamSource,
    ) -> Result<Vec<TrackedRun>> {
        let mut stmt = self.conn.prepare_cached(sql).map_err(self.err("read runs"))?;
        let rows = stmt
            .query_map(args, |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, Option<String>>(1)?,
                    r.get::<_, i64>(2)?,
                    r.get::<_, String>(3)?,
                    r.get::<_, String>(4)?,
                    r.get::<_, i64>(5)?,
                    r.get::<_, Option<i64>>(6)?,
                    r.get::<_, String>(7)?,
                    r.get::<_, String>(8)?,
                    r.get::<_, bool>(9)?,
                ))
            })
            .map_err(self.err("read runs"))?;
        let mut out = Vec::new();
        for row in rows {
            let (id, name, experiment_id, user_id, status, start, end, artifact_uri, stage, captured) =
                row.map_err(self.err("read runs"))?;
            let run_id =
                RunId::parse(&id).map_err(|e| StoreError::BadRecord { run: id.clone(), message: e.to_string() })?;
            out.push(TrackedRun {
                run_id,
                run_name: name.unwrap_or_default(),
                experiment_id,
                user_id,
                status: mlflow_status(&status),
                start_time: start,
                end_time: end,
                artifact_uri,
                lifecycle_stage: stage,
                captured,
                metrics: Vec::new(),
                params: BTreeMap::new(),
                tags: BTreeMap::new(),
                inputs: Vec::new(),
            });
        }
        self.fill_run_data(&mut out, params)?;
        Ok(out)
    }

    /// Loads params, tags, latest metrics and inputs for `runs`: one query per table, each an
    /// index lookup per run (the ids travel as one JSON array).
    fn fill_run_data(&self, runs: &mut [TrackedRun], params: ParamSource) -> Result<()> {
        if runs.is_empty() {
            return Ok(());
        }
        let index: HashMap<String, usize> = runs.iter().enumerate().map(|(i, r)| (r.run_id.to_string(), i)).collect();
        let ids = serde_json::Value::from(index.keys().map(String::as_str).collect::<Vec<_>>()).to_string();
        let mut each =
            |context: &str,
             sql: &str,
             f: &mut dyn FnMut(&mut TrackedRun, &crate::db::Row) -> crate::db::DbResult<()>| {
                let mut run = || -> crate::db::DbResult<()> {
                    for row in self.conn.query_rows(sql, [&ids])? {
                        let id: String = row.get(0)?;
                        if let Some(&i) = index.get(&id) {
                            f(&mut runs[i], &row)?;
                        }
                    }
                    Ok(())
                };
                run().map_err(self.err(context))
            };
        each(
            "read params",
            "SELECT run_id, key, value FROM run_params WHERE run_id IN (SELECT value FROM json_each(?1))",
            &mut |r, row| {
                r.params.insert(row.get(1)?, row.get(2)?);
                Ok(())
            },
        )?;
        if params == ParamSource::WithRecord {
            // What a captured run's record holds until its finish copies it into run_params;
            // a logged value wins.
            each(
                "read params",
                &format!(
                    "SELECT r.id, j.key, CASE WHEN j.type = 'text' THEN j.value ELSE r.record -> j.fullkey END
                     FROM {}, json_each(r.record, '$.params.values') j
                     WHERE r.id IN (SELECT value FROM json_each(?1)) AND r.lineage IS NULL
                       AND COALESCE(t.origin, 'run') = 'run'",
                    search::RUN_SOURCE
                ),
                &mut |r, row| {
                    let key: String = row.get(1)?;
                    if let std::collections::btree_map::Entry::Vacant(e) = r.params.entry(key) {
                        e.insert(row.get(2)?);
                    }
                    Ok(())
                },
            )?;
        }
        each(
            "read tags",
            "SELECT run_id, key, value FROM run_tags WHERE run_id IN (SELECT value FROM json_each(?1))",
            &mut |r, row| {
                r.tags.insert(row.get(1)?, row.get(2)?);
                Ok(())
            },
        )?;
        each(
            "read metrics",
            "SELECT run_id, key, CASE WHEN is_nan THEN NULL ELSE value END, step, timestamp_ms FROM latest_metrics
             WHERE run_id IN (SELECT value FROM json_each(?1)) ORDER BY run_id, key",
            &mut |r, row| {
                r.metrics.push(LatestMetric {
                    key: row.get(1)?,
                    value: row.get::<_, Option<f64>>(2)?.unwrap_or(f64::NAN),
                    step: row.get(3)?,
                    timestamp: row.get(4)?,
                });
                Ok(())
            },
        )?;
        each(
            "read inputs",
            "SELECT run_id, name, digest, source_type, source, schema, profile, tags FROM run_inputs
             WHERE run_id IN (SELECT value FROM json_each(?1)) ORDER BY rowid",
            &mut |r, row| {
                let tags: String = row.get(7)?;
                r.inputs.push(DatasetInput {
                    name: row.get(1)?,
                    digest: row.get(2)?,
                    source_type: row.get(3)?,
                    source: row.get(4)?,
                    schema: row.get(5)?,
                    profile: row.get(6)?,
                    tags: serde_json::from_str(&tags).unwrap_or_default(),
                });
                Ok(())
            },
        )?;
        Ok(())
    }

    pub fn get_tracked_run(&self, id: &str) -> Result<TrackedRun> {
        let sql = format!("SELECT {} FROM {} WHERE r.id = ?1", search::RUN_COLUMNS, search::RUN_SOURCE);
        self.read_runs(&sql, &[&id], ParamSource::Logged)?
            .into_iter()
            .next()
            .ok_or_else(|| not_found(format!("Run with id={id} not found")))
    }

    /// `search_runs`: one page of the runs `q` asks for, in its order, with their data. The
    /// filter, order and page are answered in SQL (`search.rs`), so only the page is read.
    pub fn search_runs(&self, q: &RunQuery<'_>) -> Result<Vec<TrackedRun>> {
        let driver = self.pick_driver(q)?;
        let st = search::select(q, driver);
        let args: Vec<&dyn crate::db::Arg> = st.args.iter().map(|a| a as &dyn crate::db::Arg).collect();
        self.read_runs(&st.sql, &args, q.params)
    }

    /// How many runs `q` matches, whatever its page.
    pub fn count_runs(&self, q: &RunQuery<'_>) -> Result<usize> {
        let st = search::count(q);
        let args: Vec<&dyn crate::db::Arg> = st.args.iter().map(|a| a as &dyn crate::db::Arg).collect();
        let n: i64 = self
            .conn
            .prepare_cached(&st.sql)
            .and_then(|mut s| s.query_row(args.as_slice(), |r| r.get(0)))
            .map_err(self.err("count runs"))?;
        Ok(usize::try_from(n).unwrap_or(0))
    }

    /// Whether to narrow `q` through the index of one of its clauses first (`search::drivers`).
    ///
    /// Without one, the search walks the runs in the default order (`runs_started`) and stops
    /// once the page is full: cheap when matches are common, a walk of every run when they are
    /// rare. Narrowing reads only the clause's runs but must sort them all. So: count the
    /// clause's runs (up to where the answer is clear) and narrow when that costs less than the
    /// expected walk.
    fn pick_driver<'a>(&self, q: &RunQuery<'a>) -> Result<Option<search::Driver<'a>>> {
        let candidates = search::drivers(q);
        if candidates.is_empty() {
            return Ok(None);
        }
        // An upper bound on the number of runs: rowids are never reused (AUTOINCREMENT).
        let total: i64 = self
            .conn
            .prepare_cached("SELECT COALESCE(MAX(seq), 0) FROM runs")
            .and_then(|mut s| s.query_row(params![], |r| r.get(0)))
            .map_err(self.err("count runs"))?;
        let total = total.max(1) as f64;
        // A narrowed run costs about a lookup and its share of a sort; a walked run, a lookup.
        const NARROW_COST: f64 = 3.0;
        let wanted = match q.limit {
            Some(limit) if q.order.is_empty() => Some((q.offset.saturating_add(limit).saturating_add(1)) as f64),
            _ => None,
        };
        // Narrowing pays when count × NARROW_COST < the walk: the whole table when the walk
        // cannot stop early, else about wanted × total / count runs.
        let cap = match wanted {
            None => total / NARROW_COST,
            Some(w) => (w * total / NARROW_COST).sqrt().min(total / NARROW_COST),
        };
        let mut cap = cap.ceil() as usize + 1;
        let mut best = None;
        for d in candidates {
            let st = search::driver_count(d, cap);
            let args: Vec<&dyn crate::db::Arg> = st.args.iter().map(|a| a as &dyn crate::db::Arg).collect();
            let n: i64 = self
                .conn
                .prepare_cached(&st.sql)
                .and_then(|mut s| s.query_row(args.as_slice(), |r| r.get(0)))
                .map_err(self.err("plan the search"))?;
            let n = usize::try_from(n).unwrap_or(cap);
            if n < cap {
                // Only a clause with fewer runs can beat this one: count the rest up to here.
                best = Some(d);
                cap = n;
            }
        }
        Ok(best)
    }

    fn active_run(tx: &Db, path: &std::path::Path, id: &str) -> Result<()> {
        let stage: Option<String> = tx
            .query_row(
                "SELECT COALESCE(t.lifecycle_stage, 'active') FROM runs r LEFT JOIN tracking t ON t.run_id = r.id WHERE r.id = ?1",
                [id],
                |r| r.get(0),
            )
            .optional()
            .map_err(|e| db(path, "find run", e))?;
        match stage.as_deref() {
            None => Err(not_found(format!("Run with id={id} not found"))),
            Some("active") => Ok(()),
            Some(s) => Err(invalid(format!("The run {id} must be in the 'active' state. Current state is {s}."))),
        }
    }

    /// `log-batch` (and the single-item calls): params immutable, tags last-write-wins,
    /// metrics appended, all in one transaction.
    pub fn log_batch(
        &mut self,
        id: &str,
        metrics: &[MetricIn],
        params: &[(String, String)],
        tags: &[(String, String)],
    ) -> Result<()> {
        let path = self.path.clone();
        // Points of different runs never meet: on PostgreSQL they commit side by side, and
        // only writers to the same run wait for each other (latest_metrics is read, then written).
        let tx =
            self.conn.transaction_with_behavior(TransactionBehavior::Concurrent).map_err(|e| db(&path, "log", e))?;
        tx.lock_key(id).map_err(|e| db(&path, "log", e))?;
        Self::active_run(&tx, &path, id)?;
        let mut j = Journal::new();
        {
            let mut get = tx
                .prepare_cached("SELECT value FROM run_params WHERE run_id = ?1 AND key = ?2")
                .map_err(|e| db(&path, "log params", e))?;
            let mut put = tx
                .prepare_cached("INSERT INTO run_params VALUES (?1, ?2, ?3)")
                .map_err(|e| db(&path, "log params", e))?;
            for (k, v) in params {
                let old: Option<String> =
                    get.query_row(params![id, k], |r| r.get(0)).optional().map_err(|e| db(&path, "log params", e))?;
                match old {
                    Some(old) if &old == v => {}
                    Some(old) => {
                        return Err(invalid(format!(
                            "Changing param values is not allowed. Param with key='{k}' was already logged with value='{old}' for run ID='{id}'. Attempted logging new value '{v}'."
                        )))
                    }
                    None => {
                        put.execute(params![id, k, v]).map_err(|e| db(&path, "log params", e))?;
                        j.set("log", "run_params", &[id.into(), k.as_str().into()], &[v.as_str().into()]);
                    }
                }
            }
            let mut tag = tx
                .prepare_cached("INSERT INTO run_tags VALUES (?1, ?2, ?3) ON CONFLICT (run_id, key) DO UPDATE SET value = excluded.value")
                .map_err(|e| db(&path, "set tags", e))?;
            for (k, v) in tags {
                tag.execute(params![id, k, v]).map_err(|e| db(&path, "set tags", e))?;
                j.set("log", "run_tags", &[id.into(), k.as_str().into()], &[v.as_str().into()]);
                if k == RUN_NAME_TAG {
                    tx.execute("UPDATE runs SET name = ?2 WHERE id = ?1", params![id, v])
                        .map_err(|e| db(&path, "rename run", e))?;
                    j.touch(&tx, "log", "runs", &[id.into()]).map_err(|e| db(&path, "rename run", e))?;
                }
            }
            let mut point = tx
                .prepare_cached(
                    "INSERT INTO metrics (run_id, key, value, step, timestamp_ms, is_nan) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                )
                .map_err(|e| db(&path, "log metrics", e))?;
            // Only the latest point of each key in the batch can become the key's latest, so
            // `latest_metrics` is read and written once a key, not once a point.
            let mut latest: HashMap<&str, &MetricIn> = HashMap::new();
            for m in metrics {
                let (stored, nan) = storable(m.value);
                point
                    .execute(params![id, m.key, stored, m.step, m.timestamp, nan])
                    .map_err(|e| db(&path, "log metrics", e))?;
                j.add(
                    "log",
                    "metrics",
                    &[id.into(), m.key.as_str().into()],
                    &[Val::Real(stored), Val::Int(m.step), Val::Int(m.timestamp), Val::Int(i64::from(nan))],
                );
                latest
                    .entry(&m.key)
                    .and_modify(|best| {
                        if later(point_order(m), point_order(best)) {
                            *best = m;
                        }
                    })
                    .or_insert(m);
            }
            let mut latest_get = tx
                .prepare_cached(
                    "SELECT CASE WHEN is_nan THEN NULL ELSE value END, step, timestamp_ms FROM latest_metrics WHERE run_id = ?1 AND key = ?2",
                )
                .map_err(|e| db(&path, "log metrics", e))?;
            let mut latest_put = tx
                .prepare_cached("INSERT INTO latest_metrics VALUES (?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT (run_id, key) DO UPDATE SET value = excluded.value, step = excluded.step,     timestamp_ms = excluded.timestamp_ms, is_nan = excluded.is_nan")
                .map_err(|e| db(&path, "log metrics", e))?;
            for m in latest.into_values() {
                let cur: Option<(f64, i64, i64)> = latest_get
                    .query_row(params![id, m.key], |r| {
                        Ok((r.get::<_, Option<f64>>(0)?.unwrap_or(f64::NAN), r.get(1)?, r.get(2)?))
                    })
                    .optional()
                    .map_err(|e| db(&path, "log metrics", e))?;
                let newer = match cur {
                    None => true,
                    Some((v, s, t)) => later(point_order(m), (s, t, v)),
                };
                if newer {
                    let (stored, nan) = storable(m.value);
                    latest_put
                        .execute(params![id, m.key, stored, m.step, m.timestamp, nan])
                        .map_err(|e| db(&path, "log metrics", e))?;
                }
            }
        }
        j.append(&tx, crate::now_ms()).map_err(|e| db(&path, "log", e))?;
        tx.commit().map_err(|e| db(&path, "log", e))
    }

    pub fn delete_run_tag(&mut self, id: &str, key: &str) -> Result<()> {
        let path = self.path.clone();
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(|e| db(&path, "delete tag", e))?;
        Self::active_run(&tx, &path, id)?;
        let n = tx
            .execute("DELETE FROM run_tags WHERE run_id = ?1 AND key = ?2", params![id, key])
            .map_err(|e| db(&path, "delete tag", e))?;
        if n == 0 {
            return Err(not_found(format!("No tag with name: {key} in run with id {id}")));
        }
        let mut j = Journal::new();
        j.delete("untag", "run_tags", &[id.into(), key.into()]);
        j.append(&tx, crate::now_ms()).map_err(|e| db(&path, "delete tag", e))?;
        tx.commit().map_err(|e| db(&path, "delete tag", e))
    }

    pub fn log_inputs(&mut self, id: &str, inputs: &[DatasetInput]) -> Result<()> {
        let path = self.path.clone();
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(|e| db(&path, "log inputs", e))?;
        Self::active_run(&tx, &path, id)?;
        let mut j = Journal::new();
        for d in inputs {
            let tags = serde_json::to_string(&d.tags).expect("tags serialize");
            tx.execute(
                "INSERT INTO run_inputs (run_id, name, digest, source_type, source, schema, profile, tags)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)
                 ON CONFLICT(run_id, name, digest) DO UPDATE SET tags = excluded.tags",
                params![id, d.name, d.digest, d.source_type, d.source, d.schema, d.profile, tags],
            )
            .map_err(|e| db(&path, "log inputs", e))?;
            j.touch(&tx, "inputs", "run_inputs", &[id.into(), d.name.as_str().into(), d.digest.as_str().into()])
                .map_err(|e| db(&path, "log inputs", e))?;
        }
        j.append(&tx, crate::now_ms()).map_err(|e| db(&path, "log inputs", e))?;
        tx.commit().map_err(|e| db(&path, "log inputs", e))
    }

    pub fn set_run_stage(&self, id: &str, stage: &str) -> Result<()> {
        self.get_tracked_run(id)?;
        let now = crate::now_ms();
        self.write("update run", TransactionBehavior::Immediate, |tx, j| {
            tx.lock_key(id).map_err(self.err("update run"))?;
            tx.execute(
                "INSERT INTO tracking (run_id, experiment_id, user_id, lifecycle_stage, artifact_uri, deleted_time)
                 VALUES (?1, 0, '', ?2, 'mlflow-artifacts:/0/' || ?1 || '/artifacts', ?3)
                 ON CONFLICT(run_id) DO UPDATE SET lifecycle_stage = excluded.lifecycle_stage, deleted_time = excluded.deleted_time",
                params![id, stage, (stage == "deleted").then_some(now)],
            )
            .map_err(self.err("update run"))?;
            j.touch(tx, "lifecycle", "tracking", &[id.into()]).map_err(self.err("update run"))
        })
    }

    /// A page of a metric's history, in (step, timestamp) order.
    pub fn metric_history(&self, id: &str, key: &str, offset: usize, limit: usize) -> Result<Vec<LatestMetric>> {
        self.get_tracked_run(id)?;
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT key, CASE WHEN is_nan THEN NULL ELSE value END, step, timestamp_ms FROM metrics WHERE run_id = ?1 AND key = ?2
                 ORDER BY step, timestamp_ms, rowid LIMIT ?3 OFFSET ?4",
            )
            .map_err(self.err("read metric history"))?;
        let rows = stmt
            .query_map(
                params![id, key, i64::try_from(limit).unwrap_or(i64::MAX), i64::try_from(offset).unwrap_or(i64::MAX)],
                |r| {
                    Ok(LatestMetric {
                        key: r.get(0)?,
                        value: r.get::<_, Option<f64>>(1)?.unwrap_or(f64::NAN),
                        step: r.get(2)?,
                        timestamp: r.get(3)?,
                    })
                },
            )
            .map_err(self.err("read metric history"))?;
        rows.collect::<crate::db::DbResult<Vec<_>>>().map_err(self.err("read metric history"))
    }

    /// Ends a tracking-only run: its status, end time, and the params it logged go into the
    /// final record, whose lineage digest is then computed by the caller.
    pub fn tracked_params(&self, id: &str) -> Result<BTreeMap<String, String>> {
        Ok(self.get_tracked_run(id)?.params)
    }

    /// Renames a run (MLflow `runs/update` with `run_name`).
    pub fn rename_run(&self, id: &str, name: &str) -> Result<()> {
        self.write("rename run", TransactionBehavior::Immediate, |tx, j| {
            tx.lock_key(id).map_err(self.err("rename run"))?;
            tx.execute("UPDATE runs SET name = ?2 WHERE id = ?1", params![id, name]).map_err(self.err("rename run"))?;
            tx.execute("INSERT INTO run_tags VALUES (?1, ?2, ?3) ON CONFLICT (run_id, key) DO UPDATE SET value = excluded.value", params![id, RUN_NAME_TAG, name])
                .map_err(self.err("rename run"))?;
            j.touch(tx, "update", "runs", &[id.into()]).map_err(self.err("rename run"))?;
            j.touch(tx, "update", "run_tags", &[id.into(), RUN_NAME_TAG.into()]).map_err(self.err("rename run"))
        })
    }

    /// The status of a tracking-only run that has not ended (no lineage yet) moves; a
    /// captured run's status belongs to its `repro run` process and is left alone.
    pub fn set_tracked_status(&self, id: &str, status: &str) -> Result<()> {
        self.write("update run", TransactionBehavior::Immediate, |tx, j| {
            tx.lock_key(id).map_err(self.err("update run"))?;
            let n = tx
                .execute(
                    "UPDATE runs SET status = ?2 WHERE id = ?1 AND pid IS NULL AND lineage IS NULL",
                    params![id, status],
                )
                .map_err(self.err("update run"))?;
            if n > 0 {
                j.touch(tx, "update", "runs", &[id.into()]).map_err(self.err("update run"))?;
            }
            Ok(())
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

impl Metadata {
    /// Records that the artifact at `path` is `object` (a later upload to the same path
    /// replaces the entry; the earlier content stays in the object store).
    pub fn put_artifact(&self, path: &str, object: &repro_core::Digest, size: u64) -> Result<()> {
        self.write("record the artifact", TransactionBehavior::Immediate, |tx, j| {
            tx.execute(
                "INSERT INTO artifacts (path, object, size, created_ms) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (path) DO UPDATE SET object = excluded.object, size = excluded.size, created_ms = excluded.created_ms",
                params![path, object.as_str(), size as i64, crate::now_ms()],
            )
            .map_err(self.err("record the artifact"))?;
            j.touch(tx, "artifact", "artifacts", &[path.into()]).map_err(self.err("record the artifact"))
        })
    }

    pub fn get_artifact(&self, path: &str) -> Result<Option<(repro_core::Digest, u64)>> {
        let row: Option<(String, i64)> = self
            .conn
            .query_row("SELECT object, size FROM artifacts WHERE path = ?1", [path], |r| Ok((r.get(0)?, r.get(1)?)))
            .optional()
            .map_err(self.err("read the artifact"))?;
        row.map(|(o, size)| Ok((crate::meta::parse_digest(&o, path)?, size as u64))).transpose()
    }

    /// The entries directly inside folder `dir` ("" for the root).
    pub fn list_artifacts(&self, dir: &str) -> Result<Vec<ArtifactEntry>> {
        let prefix = if dir.is_empty() { String::new() } else { format!("{dir}/") };
        // Range scan on the primary key: everything that starts with `prefix`.
        let end = format!("{prefix}\u{10FFFF}");
        let mut stmt = self
            .conn
            .prepare_cached("SELECT path, size FROM artifacts WHERE path >= ?1 AND path < ?2 ORDER BY path")
            .map_err(self.err("list artifacts"))?;
        let rows = stmt
            .query_map(params![prefix, end], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))
            .map_err(self.err("list artifacts"))?;
        let mut out: Vec<ArtifactEntry> = Vec::new();
        for row in rows {
            let (path, size) = row.map_err(self.err("list artifacts"))?;
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
        self.write("delete the artifact", TransactionBehavior::Immediate, |tx, j| {
            let n =
                tx.execute("DELETE FROM artifacts WHERE path = ?1", [path]).map_err(self.err("delete the artifact"))?;
            if n > 0 {
                j.delete("artifact", "artifacts", &[path.into()]);
            }
            Ok(())
        })
    }

    /// Every artifact's object, for fsck.
    pub fn all_artifacts(&self) -> Result<Vec<(String, repro_core::Digest)>> {
        let mut stmt = self.conn.prepare("SELECT path, object FROM artifacts").map_err(self.err("read artifacts"))?;
        let rows = stmt
            .query_map(params![], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))
            .map_err(self.err("read artifacts"))?;
        let mut out = Vec::new();
        for r in rows {
            let (p, o) = r.map_err(self.err("read artifacts"))?;
            let d = crate::meta::parse_digest(&o, &p)?;
            out.push((p, d));
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
            m.put_artifact(p, &d, 1).expect("put");
        }
        let names = |dir: &str| -> Vec<(String, bool)> {
            m.list_artifacts(dir).expect("list").into_iter().map(|e| (e.path, e.is_dir)).collect()
        };
        assert_eq!(names("1/r/artifacts"), [("model".to_string(), true), ("notes.txt".to_string(), false)]);
        assert_eq!(names("1/r/artifacts/model").len(), 2);
        assert!(names("1/r/artifacts/notes.txt").is_empty(), "a file lists as nothing");
        assert!(m.get_artifact("1/r/artifacts/nothing").expect("get").is_none());
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
            let mut m = Metadata::open(&path).expect("open");
            m.create_tracked_run(&id, 0, "ada", "r", 1, &[], "h").expect("create");
            let pt = MetricIn { key: "acc".into(), value: 0.5, timestamp: 1, step: 0 };
            m.log_batch(id.as_str(), &[pt], &[("lr".into(), "0.1".into())], &[]).expect("log");
            // Back to what version 5 was.
            m.conn
                .execute_batch(
                    "DROP INDEX runs_started; DROP INDEX run_params_value; DROP INDEX run_tags_value;
                     DROP INDEX latest_metrics_value; DROP TABLE run_model_outputs; DROP TABLE logged_models;
                     DROP TABLE journal; DROP TABLE fsck_results; ALTER TABLE tokens DROP COLUMN email;
                     ALTER TABLE tokens DROP COLUMN approver_keyid; ALTER TABLE tokens DROP COLUMN approver_key;
                     PRAGMA user_version = 5;",
                )
                .expect("downgrade");
        }
        let m = Metadata::open(&path).expect("reopen");
        let version: i64 = m.conn.query_row("PRAGMA user_version", params![], |r| r.get(0)).expect("version");
        assert_eq!(version, 7);
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
        assert!(m.logged_models(&[]).expect("the logged-model tables exist").is_empty());
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
        assert_eq!(m.search_runs(&q).expect("search").len(), 1);
    }

    #[test]
    fn a_batch_keeps_the_latest_point_of_each_key_as_one_by_one_would() {
        let (_d, mut m, _s) = meta();
        let pt =
            |key: &str, value: f64, step: i64, timestamp: i64| MetricIn { key: key.into(), value, step, timestamp };
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
            m.create_tracked_run(id, 0, "ada", "r", 0, &[], "h").expect("create");
        }
        // A point logged before the batch that the batch must not displace.
        for id in [&batch, &single] {
            m.log_batch(id.as_str(), &[pt("d", 3.0, 9, 9)], &[], &[]).expect("log");
        }
        let mut with_d = points.to_vec();
        with_d.push(pt("d", 4.0, 8, 9));
        m.log_batch(batch.as_str(), &with_d, &[], &[]).expect("batch");
        for p in &with_d {
            m.log_batch(single.as_str(), std::slice::from_ref(p), &[], &[]).expect("one");
        }
        let latest = |id: &RunId| -> Vec<(String, String, i64, i64)> {
            let r = m.get_tracked_run(id.as_str()).expect("run");
            r.metrics.into_iter().map(|l| (l.key, format!("{:?}", l.value), l.step, l.timestamp)).collect()
        };
        assert_eq!(latest(&batch), latest(&single));
        let got = latest(&batch);
        assert_eq!(got[0], ("a".to_string(), "0.7".to_string(), 2, 1), "{got:?}");
        // On a tie of step and timestamp NaN counts as the greatest value (`later`).
        assert_eq!(got[1].1, "NaN", "{got:?}");
        assert_eq!(got[3], ("d".to_string(), "3.0".to_string(), 9, 9));
        assert_eq!(m.metric_history(batch.as_str(), "a", 0, 100).expect("history").len(), 4);
    }

    #[test]
    fn experiments_and_the_default_one() {
        let (_d, mut m, _s) = meta();
        assert_eq!(m.get_experiment(0).expect("default").name, "Default");
        let id = m.create_experiment("e", None, &[("k".into(), "v".into())]).expect("create");
        assert_eq!(id, 1);
        let e = m.get_experiment_by_name("e").expect("by name");
        assert_eq!(e.artifact_location, "mlflow-artifacts:/1");
        assert_eq!(e.tags["k"], "v");
        assert!(matches!(m.create_experiment("e", None, &[]), Err(StoreError::AlreadyThere(_))));
        assert!(matches!(m.get_experiment(9), Err(StoreError::Missing(_))));
        assert!(matches!(m.set_experiment_stage(0, "deleted"), Err(StoreError::Invalid(_))));
    }

    #[test]
    fn runs_log_and_keep_the_latest_metric() {
        let (_d, mut m, _s) = meta();
        let id = RunId::from_bytes([3; 16]);
        m.create_tracked_run(&id, 0, "ada", "brave-owl", 1000, &[("team".into(), "a".into())], "h").expect("create");
        let p = |k: &str, v: &str| (k.to_string(), v.to_string());
        let pt =
            |key: &str, value: f64, step: i64, timestamp: i64| MetricIn { key: key.into(), value, step, timestamp };
        m.log_batch(
            id.as_str(),
            &[pt("loss", 0.9, 0, 10), pt("loss", 0.5, 2, 5), pt("loss", 0.7, 1, 20)],
            &[p("lr", "0.1")],
            &[],
        )
        .expect("log");
        m.log_batch(id.as_str(), &[], &[p("lr", "0.1")], &[]).expect("same value is fine");
        let e = m.log_batch(id.as_str(), &[], &[p("lr", "0.2")], &[]).expect_err("overwrite");
        assert!(e.to_string().contains("Changing param values is not allowed"), "{e}");
        let r = m.get_tracked_run(id.as_str()).expect("run");
        assert_eq!(r.metrics, vec![LatestMetric { key: "loss".into(), value: 0.5, step: 2, timestamp: 5 }]);
        assert_eq!(r.params["lr"], "0.1");
        assert_eq!(r.tags[RUN_NAME_TAG], "brave-owl");
        assert_eq!(r.status, "RUNNING");
        assert!(!r.captured);
        let h = m.metric_history(id.as_str(), "loss", 0, 10).expect("history");
        assert_eq!(h.iter().map(|p| p.step).collect::<Vec<_>>(), [0, 1, 2]);
        assert_eq!(m.metric_history(id.as_str(), "loss", 2, 10).expect("page").len(), 1);
        m.set_run_stage(id.as_str(), "deleted").expect("delete");
        assert!(m.log_batch(id.as_str(), &[], &[], &[p("x", "y")]).is_err());
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
            m.search_runs(&q).expect("search").len()
        };
        assert_eq!(all(&["active"]), 0);
        assert_eq!(all(&["active", "deleted"]), 1);
    }
}
