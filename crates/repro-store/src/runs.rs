//! Runs as `repro run` (or an MLflow client) records them, their metric points, and the
//! verdicts of their replays: the `runs`, `metrics` and `replays` tables.

use repro_core::metrics::MetricPoint;
use repro_core::record::{RunRecord, RunStatus, Verdict};
use repro_core::{Digest, RunId};

use std::path::Path;

use crate::conn::{db, parse_digest, Conn};
use crate::db::{params, Db, OptionalExtension, TransactionBehavior, Val};
use crate::journal::Journal;
use crate::{Result, StoreError};

/// One `runs` row as read, before decoding.
struct RunRow {
    id: String,
    json: String,
    lineage: Option<String>,
    object: Option<String>,
    pid: Option<u32>,
    pid_start: Option<String>,
    status: String,
    host: String,
    name: Option<String>,
}

/// A run as the metadata store holds it.
#[derive(Clone, Debug)]
pub struct StoredRun {
    pub record: RunRecord,
    /// The run's name now: `record.name` is the name it was recorded with (covered by the
    /// lineage digest), and MLflow's `runs/update` may have renamed it since.
    pub name: Option<String>,
    pub lineage: Option<Digest>,
    pub record_object: Option<Digest>,
    pub pid: Option<u32>,
    pub pid_start: Option<String>,
}

/// A replay of a run and its verdict.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct ReplayRow {
    pub replay: RunId,
    pub original: RunId,
    pub verdict: Verdict,
    /// The replay report (JSON), stored as an object.
    pub report: Digest,
    pub created_ms: i64,
}

const RUN_COLUMNS: &str = "id, record, lineage, record_object, pid, pid_start, status, host, name";

fn row_to_run(row: &crate::db::Row) -> crate::db::DbResult<RunRow> {
    Ok(RunRow {
        id: row.get(0)?,
        json: row.get(1)?,
        lineage: row.get(2)?,
        object: row.get(3)?,
        pid: row.get(4)?,
        pid_start: row.get(5)?,
        status: row.get(6)?,
        host: row.get(7)?,
        name: row.get(8)?,
    })
}

/// Inside a finishing run's transaction: its final record, status and lineage, and no
/// owning process any more.
pub(crate) fn mark_finished(
    tx: &Db,
    j: &mut Journal,
    path: &Path,
    record: &RunRecord,
    ended_ms: i64,
    lineage: &Digest,
    record_object: &Digest,
) -> Result<()> {
    let id = record.id.as_str();
    let json = serde_json::to_string(record).expect("records serialize");
    tx.execute(
        "UPDATE runs SET status = ?2, exit_code = ?3, ended_ms = ?4, record = ?5, lineage = ?6, record_object = ?7,
             pid = NULL, pid_start = NULL
         WHERE id = ?1",
        params![id, record.status.as_str(), record.exit_code, ended_ms, json, lineage.as_str(), record_object.as_str()],
    )
    .map_err(|e| db(path, "finish run", e))?;
    j.touch(tx, "finish", "runs", &[id.into()]).map_err(|e| db(path, "finish run", e))
}

/// The `runs`, `metrics` and `replays` tables.
pub struct Runs<'a> {
    pub(crate) c: Conn<'a>,
}

impl Runs<'_> {
    /// Records a run that is starting, owned by this process.
    pub fn insert(&self, record: &RunRecord, started_ms: i64) -> Result<()> {
        let (pid, pid_start) = crate::process::current();
        let json = serde_json::to_string(record).expect("records serialize");
        self.c.write("record the new run", TransactionBehavior::Immediate, |tx, j| {
            let id = record.id.as_str();
            tx.execute(
                "INSERT INTO runs (id, name, status, exit_code, started_ms, host, pid, pid_start, record)
                 VALUES (?1, ?2, ?3, NULL, ?4, ?5, ?6, ?7, ?8)",
                params![id, record.name, record.status.as_str(), started_ms, record.host, pid, pid_start, json],
            )
            .map_err(self.c.err("record the new run"))?;
            j.touch(tx, "create", "runs", &[id.into()]).map_err(self.c.err("record the new run"))
        })
    }

    /// Stores metric points of a run (`repro run`'s metrics file), before its end is
    /// recorded: the end's record then seals them with the rest of the run's facts.
    pub fn add_points(&self, run: &RunId, points: &[MetricPoint], default_ms: i64) -> Result<()> {
        if points.is_empty() {
            return Ok(());
        }
        self.c.write("store metrics", TransactionBehavior::Concurrent, |tx, j| {
            let e = self.c.err("store metrics");
            let id = run.as_str();
            tx.lock_key(id).map_err(self.c.err("store metrics"))?;
            let mut stmt = tx
                .prepare("INSERT INTO metrics (run_id, key, value, step, timestamp_ms, is_nan) VALUES (?1, ?2, ?3, ?4, ?5, ?6)")
                .map_err(self.c.err("store metrics"))?;
            for m in points {
                let (value, nan) = crate::tracking::storable(m.value);
                let ts = m.timestamp_ms.unwrap_or(default_ms);
                stmt.execute(params![id, m.key, value, m.step, ts, nan]).map_err(self.c.err("store metrics"))?;
                j.add(
                    "metrics",
                    "metrics",
                    &[id.into(), m.key.as_str().into()],
                    &[Val::Real(value), Val::Int(m.step), Val::Int(ts), Val::Int(i64::from(nan))],
                );
            }
            tx.execute(crate::tracking::REFRESH_LATEST, [id]).map_err(e)?;
            Ok(())
        })
    }

    /// The head of a run's journal: (seq, hash), what a finishing record seals.
    pub fn facts_head(&self, run: &RunId) -> Result<Option<(i64, String)>> {
        crate::journal::head(self.c.db, &crate::journal::run_scope(run.as_str()))
            .map_err(self.c.err("read the journal"))
    }

    fn decode(&self, row: RunRow) -> Result<StoredRun> {
        let RunRow { id, json, lineage, object, pid, pid_start, status, host, name } = row;
        let bad = |message: String| StoreError::BadRecord { run: id.clone(), message };
        let mut record: RunRecord = serde_json::from_str(&json).map_err(|e| bad(e.to_string()))?;
        record.status = RunStatus::parse(&status).ok_or_else(|| bad(format!("unknown status '{status}'")))?;
        // A run still marked running whose owner died on this host was interrupted.
        if record.status == RunStatus::Running && host == crate::process::hostname() {
            if let Some(pid) = pid {
                if !crate::process::alive(pid, pid_start.as_deref().unwrap_or("")) {
                    record.status = RunStatus::Interrupted;
                }
            }
        }
        let parse = |s: Option<String>| s.map(|s| Digest::parse(&s).map_err(|e| bad(e.to_string()))).transpose();
        Ok(StoredRun { record, name, lineage: parse(lineage)?, record_object: parse(object)?, pid, pid_start })
    }

    pub fn get(&self, id: &RunId) -> Result<StoredRun> {
        let row = self
            .c
            .db
            .query_row(&format!("SELECT {} FROM runs WHERE id = ?1", RUN_COLUMNS), [id.as_str()], row_to_run)
            .optional()
            .map_err(self.c.err("read run"))?
            .ok_or_else(|| StoreError::UnknownRun(id.to_string()))?;
        self.decode(row)
    }

    /// Newest first.
    pub fn list(&self, limit: Option<usize>) -> Result<Vec<StoredRun>> {
        let limit = limit.map_or(i64::MAX, |l| i64::try_from(l).unwrap_or(i64::MAX));
        let mut stmt = self
            .c
            .db
            .prepare(&format!("SELECT {} FROM runs ORDER BY seq DESC LIMIT ?1", RUN_COLUMNS))
            .map_err(self.c.err("list runs"))?;
        let rows = stmt.query_map([limit], row_to_run).map_err(self.c.err("list runs"))?;
        let mut out = Vec::new();
        for r in rows {
            out.push(self.decode(r.map_err(self.c.err("list runs"))?)?);
        }
        Ok(out)
    }

    pub(crate) fn resolve_plain(&self, spec: &str) -> Result<RunId> {
        let one = |sql: &str, arg: &str| -> Result<Vec<String>> {
            let mut stmt = self.c.db.prepare(sql).map_err(self.c.err("find run"))?;
            let rows = stmt.query_map([arg], |r| r.get::<_, String>(0)).map_err(self.c.err("find run"))?;
            rows.collect::<crate::db::DbResult<Vec<_>>>().map_err(self.c.err("find run"))
        };
        if spec == "latest" {
            return one("SELECT id FROM runs WHERE id != ?1 ORDER BY seq DESC LIMIT 1", "")
                .map(|v| v.into_iter().next())?
                .map(|id| RunId::parse(&id).map_err(|e| StoreError::BadRecord { run: id, message: e.to_string() }))
                .unwrap_or_else(|| Err(StoreError::UnknownRun("latest (the store has no runs yet)".into())));
        }
        let is_hex = spec.len() >= 4 && spec.len() <= 32 && spec.bytes().all(|b| b.is_ascii_hexdigit());
        if is_hex {
            let lower = spec.to_ascii_lowercase();
            let ids = one("SELECT id FROM runs WHERE id >= ?1 ORDER BY id LIMIT 6", &lower)?;
            let matching: Vec<String> = ids.into_iter().filter(|id| id.starts_with(&lower)).collect();
            match matching.len() {
                0 => {}
                1 => {
                    return RunId::parse(&matching[0])
                        .map_err(|e| StoreError::BadRecord { run: matching[0].clone(), message: e.to_string() })
                }
                n => {
                    return Err(StoreError::AmbiguousRun {
                        spec: spec.to_string(),
                        count: n,
                        examples: matching.iter().map(|m| m[..12].to_string()).collect::<Vec<_>>().join(", "),
                    })
                }
            }
        }
        let by_name = one("SELECT id FROM runs WHERE name = ?1 ORDER BY seq DESC LIMIT 1", spec)?;
        match by_name.into_iter().next() {
            Some(id) => RunId::parse(&id).map_err(|e| StoreError::BadRecord { run: id, message: e.to_string() }),
            None => Err(StoreError::UnknownRun(spec.to_string())),
        }
    }

    /// Marks runs interrupted whose owning process is gone. Returns their ids.
    pub fn reap_interrupted(&self) -> Result<Vec<RunId>> {
        let mut stmt = self
            .c
            .db
            .prepare(&format!("SELECT {} FROM runs WHERE status = 'running'", RUN_COLUMNS))
            .map_err(self.c.err("list running runs"))?;
        let rows = stmt.query_map(params![], row_to_run).map_err(self.c.err("list running runs"))?;
        let mut dead = Vec::new();
        for r in rows {
            let run = self.decode(r.map_err(self.c.err("list running runs"))?)?;
            if run.record.status == RunStatus::Interrupted {
                dead.push(run);
            }
        }
        let mut ids = Vec::new();
        for run in dead {
            let mut record = run.record;
            record.status = RunStatus::Interrupted;
            let json = serde_json::to_string(&record).expect("records serialize");
            self.c.write("mark run interrupted", TransactionBehavior::Immediate, |tx, j| {
                let id = record.id.as_str();
                tx.lock_key(id).map_err(self.c.err("mark run interrupted"))?;
                let n = tx
                    .execute(
                        "UPDATE runs SET status = 'interrupted', record = ?2, pid = NULL WHERE id = ?1 AND status = 'running'",
                        params![id, json],
                    )
                    .map_err(self.c.err("mark run interrupted"))?;
                if n > 0 {
                    j.touch(tx, "interrupted", "runs", &[id.into()]).map_err(self.c.err("mark run interrupted"))?;
                }
                Ok(())
            })?;
            ids.push(record.id);
        }
        Ok(ids)
    }

    pub fn metrics(&self, run: &RunId) -> Result<Vec<MetricPoint>> {
        let mut stmt = self
            .c
            .db
            .prepare(
                "SELECT key, CASE WHEN is_nan THEN NULL ELSE value END, step, timestamp_ms FROM metrics WHERE run_id = ?1
                 ORDER BY key, step, timestamp_ms, rowid",
            )
            .map_err(self.c.err("read metrics"))?;
        let rows = stmt
            .query_map([run.as_str()], |r| {
                Ok(MetricPoint {
                    key: r.get(0)?,
                    value: r.get::<_, Option<f64>>(1)?.unwrap_or(f64::NAN),
                    step: r.get(2)?,
                    timestamp_ms: Some(r.get(3)?),
                })
            })
            .map_err(self.c.err("read metrics"))?;
        rows.collect::<crate::db::DbResult<Vec<_>>>().map_err(self.c.err("read metrics"))
    }

    /// Records the verdict of a finished replay; `report` is the stored report object.
    pub fn record_replay(&self, row: &ReplayRow) -> Result<()> {
        self.c.write("record the replay", TransactionBehavior::Immediate, |tx, j| {
            tx.execute(
                "INSERT INTO replays (replay_id, original_id, verdict, report, created_ms) VALUES (?1, ?2, ?3, ?4, ?5)",
                params![
                    row.replay.as_str(),
                    row.original.as_str(),
                    row.verdict.as_str(),
                    row.report.as_str(),
                    row.created_ms
                ],
            )
            .map_err(self.c.err("record the replay"))?;
            j.touch(tx, "replay", "replays", &[row.replay.as_str().into()]).map_err(self.c.err("record the replay"))
        })
    }

    fn replay_rows(&self, sql: &str, arg: &str) -> Result<Vec<ReplayRow>> {
        self.c.rows(
            "read replays",
            sql,
            &[&arg],
            |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, String>(2)?,
                    r.get::<_, String>(3)?,
                    r.get(4)?,
                ))
            },
            |(replay, original, verdict, report, created_ms): (String, String, String, String, i64)| {
                let bad = |m: String| StoreError::BadRecord { run: replay.clone(), message: m };
                Ok(ReplayRow {
                    replay: RunId::parse(&replay).map_err(|e| bad(e.to_string()))?,
                    original: RunId::parse(&original).map_err(|e| bad(e.to_string()))?,
                    verdict: Verdict::parse(&verdict)
                        .ok_or_else(|| bad(format!("unknown replay verdict '{verdict}'")))?,
                    report: parse_digest(&report, &replay)?,
                    created_ms,
                })
            },
        )
    }

    /// The replays of a run, oldest first.
    pub fn replays_of(&self, original: &RunId) -> Result<Vec<ReplayRow>> {
        self.replay_rows(
            "SELECT replay_id, original_id, verdict, report, created_ms FROM replays WHERE original_id = ?1
             ORDER BY created_ms, rowid",
            original.as_str(),
        )
    }

    /// Every replay, for fsck.
    pub fn all_replays(&self) -> Result<Vec<ReplayRow>> {
        self.replay_rows(
            "SELECT replay_id, original_id, verdict, report, created_ms FROM replays WHERE replay_id != ?1 ORDER BY rowid",
            "",
        )
    }

    pub fn all(&self) -> Result<Vec<StoredRun>> {
        self.list(None)
    }
}
