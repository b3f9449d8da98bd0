//! The metadata database: runs, metrics, snapshots, datasets and the stat cache, in SQLite
//! (WAL mode, so readers never wait for the one writer, and several `repro run` processes
//! share one store).

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::db::{params, Db, OptionalExtension, TransactionBehavior, Val};
use crate::journal::Journal;
use repro_core::metrics::MetricPoint;
use repro_core::record::{RunRecord, RunStatus, Verdict};
use repro_core::{Digest, RunId};

use crate::conn::Conn;
pub(crate) use crate::conn::{db, parse_digest};
use crate::datasets::Datasets;
pub use crate::datasets::{CachedFile, DatasetVersion, SnapshotRow, TreeCache};
pub use crate::environments::EnvironmentRow;
use crate::environments::Environments;
use crate::tokens::Tokens;
use crate::{Result, StoreError};

pub const DB_FILE: &str = "repro.db";

pub struct Metadata {
    pub(crate) conn: Db,
    /// What messages call the database: the SQLite file, or the PostgreSQL URL.
    pub(crate) path: PathBuf,
    /// The registry's anchor file, in the store's folder (each folder anchors the log as it saw it).
    pub(crate) anchor: PathBuf,
}

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

impl Metadata {
    /// Connects to the metadata database of the store at `root`: `repro.db` inside it, or
    /// the PostgreSQL database `url` names (creating or upgrading the schema there).
    pub fn connect(root: &Path, url: Option<&str>) -> Result<Metadata> {
        let Some(url) = url else {
            return Metadata::open(&root.join(DB_FILE));
        };
        let name = PathBuf::from(url);
        let conn = Db::postgres(url).map_err(|e| db(&name, "connect", e))?;
        let m = Metadata { conn, path: name, anchor: root.join(crate::registry::ANCHOR_FILE) };
        crate::schema::migrate(&m.conn, &m.path, &m.anchor)?;
        Ok(m)
    }

    /// Opens (creating when new) the SQLite database at `path`.
    pub fn open(path: &Path) -> Result<Metadata> {
        let conn = rusqlite::Connection::open(path).map_err(|e| db(path, "open", e.into()))?;
        let configure = |e: rusqlite::Error| db(path, "configure", e.into());
        conn.busy_timeout(Duration::from_secs(60)).map_err(configure)?;
        // WAL: concurrent readers with one writer; FULL: a commit survives power loss.
        conn.pragma_update(None, "journal_mode", "WAL").map_err(|e| db(path, "enable WAL", e.into()))?;
        conn.pragma_update(None, "synchronous", "FULL").map_err(configure)?;
        conn.pragma_update(None, "foreign_keys", "ON").map_err(configure)?;
        crate::search::register_functions(&conn).map_err(configure)?;
        // Read the database through a memory map: a search touches thousands of pages, and
        // copying each one through a read() costs more than the lookup. The pages are the
        // kernel's file cache, not the process's own memory.
        conn.pragma_update(None, "mmap_size", 1i64 << 30).map_err(configure)?;
        let anchor = path.with_file_name(crate::registry::ANCHOR_FILE);
        let m = Metadata { conn: Db::sqlite(conn, path), path: path.to_path_buf(), anchor };
        crate::schema::migrate(&m.conn, &m.path, &m.anchor)?;
        Ok(m)
    }

    /// The schema version the database says it is at, read now.
    pub(crate) fn schema_version_now(&self) -> Result<i64> {
        crate::schema::version(&self.conn, false).map_err(self.err("read the schema version"))
    }

    /// Rebuilds `latest_metrics` wherever it disagrees with `metrics` (it is a cache of each
    /// key's latest point). Returns what was rebuilt, for fsck to say.
    pub(crate) fn rebuild_latest_metrics(&self) -> Result<Vec<String>> {
        let e = || self.err("check latest_metrics");
        let wrong = self
            .conn
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
            self.write("rebuild latest_metrics", TransactionBehavior::Immediate, |tx, _| {
                tx.lock_key(&run).map_err(self.err("rebuild latest_metrics"))?;
                tx.execute(
                    "DELETE FROM latest_metrics WHERE run_id = ?1 AND NOT EXISTS
                     (SELECT 1 FROM metrics m WHERE m.run_id = latest_metrics.run_id AND m.key = latest_metrics.key)",
                    [run.as_str()],
                )
                .map_err(self.err("rebuild latest_metrics"))?;
                tx.execute(crate::tracking::REFRESH_LATEST, [run.as_str()])
                    .map_err(self.err("rebuild latest_metrics"))?;
                Ok(())
            })?;
            out.push(format!(
                "latest_metrics: run {} disagreed with its metric points; rebuilt from metrics",
                &run[..run.len().min(8)]
            ));
        }
        Ok(out)
    }

    /// Keeps fsck's verdict, so registry writes, exports and signatures wait while the last
    /// fsck found damage (see `damage`).
    pub(crate) fn record_fsck(&self, report: &crate::fsck::FsckReport) -> Result<()> {
        self.record_verdict(report.clean, &report.problems())
    }

    /// Keeps damage a check outside fsck found (a registry write refused), so that every
    /// later registry write waits until a clean fsck.
    pub fn record_damage(&self, problems: &[String]) -> Result<()> {
        self.record_verdict(false, problems)
    }

    fn record_verdict(&self, clean: bool, problems: &[String]) -> Result<()> {
        let id = uuid::Uuid::new_v4().simple().to_string();
        let json = serde_json::to_string(&problems).expect("strings serialize");
        self.write("record the fsck verdict", TransactionBehavior::Immediate, |tx, j| {
            tx.execute(
                "INSERT INTO fsck_results (id, at_ms, host, clean, problems) VALUES (?1, ?2, ?3, ?4, ?5)",
                params![id, crate::now_ms(), crate::process::hostname(), clean, json],
            )
            .map_err(self.err("record the fsck verdict"))?;
            j.touch(tx, "fsck", "fsck_results", &[id.as_str().into()]).map_err(self.err("record the fsck verdict"))
        })
    }

    /// What the newest fsck verdict says is damaged (empty: it found the store clean, or no
    /// fsck has run), with when it ran.
    pub fn last_fsck_damage(&self) -> Result<Option<(i64, Vec<String>)>> {
        self.last_fsck_damage_in(&self.conn)
    }

    /// [`Metadata::last_fsck_damage`], read inside the caller's transaction.
    pub(crate) fn last_fsck_damage_in(&self, conn: &Db) -> Result<Option<(i64, Vec<String>)>> {
        let rows = conn
            .query_rows(
                "SELECT at_ms, clean, problems FROM fsck_results ORDER BY at_ms DESC, id DESC LIMIT 1",
                params![],
            )
            .map_err(self.err("read the fsck verdict"))?;
        let Some(r) = rows.first() else { return Ok(None) };
        let clean: bool = r.get(1).map_err(self.err("read the fsck verdict"))?;
        if clean {
            return Ok(None);
        }
        let at: i64 = r.get(0).map_err(self.err("read the fsck verdict"))?;
        let problems: String = r.get(2).map_err(self.err("read the fsck verdict"))?;
        Ok(Some((at, serde_json::from_str(&problems).unwrap_or_else(|_| vec![problems]))))
    }

    /// Checks one run's journal against its rows, and against the head its record sealed.
    pub fn check_run_facts(&self, record: &RunRecord) -> Result<Vec<crate::journal::Tampered>> {
        let mut out =
            crate::journal::check_run(&self.conn, record.id.as_str()).map_err(self.err("check the journal"))?;
        out.extend(self.sealed_head_problem(record)?);
        Ok(out)
    }

    /// Whether the entry a finished run's record sealed is still in its chain.
    pub(crate) fn sealed_head_problem(&self, record: &RunRecord) -> Result<Option<crate::journal::Tampered>> {
        let Some(facts) = &record.facts else { return Ok(None) };
        let scope = crate::journal::run_scope(record.id.as_str());
        let e = || self.err("check the journal");
        // A run imported from a bundle sealed the exporting store's chain, not this one.
        if crate::journal::first_kind(&self.conn, &scope).map_err(e())?.as_deref() == Some("import") {
            return Ok(None);
        }
        let at = crate::journal::entry_at(&self.conn, &scope, facts.seq).map_err(e())?;
        Ok((at.as_deref() != Some(facts.hash.as_str())).then(|| crate::journal::Tampered {
            run: Some(record.id.to_string()),
            table: "journal".into(),
            key: String::new(),
            problem: format!(
                "entry {} is not the one the run's record sealed when it ended: its facts were rewritten",
                facts.seq
            ),
        }))
    }

    /// The connection, as the table groups' repositories borrow it.
    pub(crate) fn conn(&self) -> Conn<'_> {
        Conn { db: &self.conn, path: &self.path }
    }

    pub(crate) fn err(&self, context: &str) -> impl FnOnce(crate::db::DbError) -> StoreError + '_ {
        self.conn().err(context)
    }

    /// Runs `f` in a write transaction and appends what it journaled, in the same
    /// transaction: a change and its journal entry land together or not at all.
    pub(crate) fn write<T>(
        &self,
        context: &str,
        behavior: TransactionBehavior,
        f: impl FnOnce(&Db, &mut Journal) -> Result<T>,
    ) -> Result<T> {
        self.conn().write(context, behavior, f)
    }

    /// Snapshots, the datasets that name them, and the stat cache that speeds them up.
    pub fn datasets(&self) -> Datasets<'_> {
        Datasets { c: self.conn() }
    }

    /// Registered environments (`repro env register`).
    pub fn environments(&self) -> Environments<'_> {
        Environments { c: self.conn() }
    }

    /// API tokens: who may use a server, and whom each token speaks for.
    pub fn tokens(&self) -> Tokens<'_> {
        Tokens { c: self.conn() }
    }

    // ---- runs -------------------------------------------------------------------------

    /// Records a run that is starting, owned by this process.
    pub fn insert_run(&self, record: &RunRecord, started_ms: i64) -> Result<()> {
        let (pid, pid_start) = crate::process::current();
        let json = serde_json::to_string(record).expect("records serialize");
        self.write("record the new run", TransactionBehavior::Immediate, |tx, j| {
            let id = record.id.as_str();
            tx.execute(
                "INSERT INTO runs (id, name, status, exit_code, started_ms, host, pid, pid_start, record)
                 VALUES (?1, ?2, ?3, NULL, ?4, ?5, ?6, ?7, ?8)",
                params![id, record.name, record.status.as_str(), started_ms, record.host, pid, pid_start, json],
            )
            .map_err(self.err("record the new run"))?;
            j.touch(tx, "create", "runs", &[id.into()]).map_err(self.err("record the new run"))
        })
    }

    /// Stores metric points of a run (`repro run`'s metrics file), before its end is
    /// recorded: the end's record then seals them with the rest of the run's facts.
    pub fn add_points(&self, run: &RunId, points: &[MetricPoint], default_ms: i64) -> Result<()> {
        if points.is_empty() {
            return Ok(());
        }
        self.write("store metrics", TransactionBehavior::Concurrent, |tx, j| {
            let e = self.err("store metrics");
            let id = run.as_str();
            tx.lock_key(id).map_err(self.err("store metrics"))?;
            let mut stmt = tx
                .prepare("INSERT INTO metrics (run_id, key, value, step, timestamp_ms, is_nan) VALUES (?1, ?2, ?3, ?4, ?5, ?6)")
                .map_err(self.err("store metrics"))?;
            for m in points {
                let (value, nan) = crate::tracking::storable(m.value);
                let ts = m.timestamp_ms.unwrap_or(default_ms);
                stmt.execute(params![id, m.key, value, m.step, ts, nan]).map_err(self.err("store metrics"))?;
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
        crate::journal::head(&self.conn, &crate::journal::run_scope(run.as_str())).map_err(self.err("read the journal"))
    }

    /// Seals the run's journal head into its record, stores the record as an object and
    /// ends the run. A fact that lands meanwhile (a straggling MLflow call) means sealing
    /// again.
    pub fn seal_and_finish(
        &mut self,
        objects: &crate::Objects,
        record: &mut RunRecord,
        ended_ms: i64,
    ) -> Result<(Digest, Digest)> {
        let mut tries = 0;
        loop {
            let head = self.facts_head(&record.id)?;
            record.facts =
                head.as_ref().map(|(seq, hash)| repro_core::record::FactsHead { seq: *seq, hash: hash.clone() });
            let canonical = record.canonical_json();
            let lineage = Digest::of_bytes(&canonical);
            let object = objects.put_bytes(&canonical)?;
            match self.finish_run(record, ended_ms, &lineage, &object, head.as_ref()) {
                Err(StoreError::FactsMoved(_)) if tries < 20 => tries += 1,
                Err(e) => return Err(e),
                Ok(()) => return Ok((lineage, object)),
            }
        }
    }

    /// Records the end of a run: the final record and its lineage, in one transaction.
    /// `sealed` is the journal head the record holds (`RunRecord::facts`): if anything was
    /// journaled for the run since (a late MLflow call), nothing is written and
    /// `StoreError::FactsMoved` asks the caller to seal the record again.
    pub fn finish_run(
        &mut self,
        record: &RunRecord,
        ended_ms: i64,
        lineage: &Digest,
        record_object: &Digest,
        sealed: Option<&(i64, String)>,
    ) -> Result<()> {
        let path = self.path.clone();
        let json = serde_json::to_string(record).expect("records serialize");
        let anchor = self.registry_anchor()?;
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(|e| db(&path, "finish run", e))?;
        let id = record.id.as_str();
        // The run's own points may be arriving through the tracking API (`log_batch`) too.
        tx.lock_key(id).map_err(|e| db(&path, "finish run", e))?;
        let head = crate::journal::head(&tx, &crate::journal::run_scope(id)).map_err(|e| db(&path, "finish run", e))?;
        if head.as_ref() != sealed {
            return Err(StoreError::FactsMoved(id.to_string()));
        }
        let mut j = Journal::new();
        tx.execute(
            "UPDATE runs SET status = ?2, exit_code = ?3, ended_ms = ?4, record = ?5, lineage = ?6, record_object = ?7,
                 pid = NULL, pid_start = NULL
             WHERE id = ?1",
            params![
                id,
                record.status.as_str(),
                record.exit_code,
                ended_ms,
                json,
                lineage.as_str(),
                record_object.as_str()
            ],
        )
        .map_err(|e| db(&path, "finish run", e))?;
        j.touch(&tx, "finish", "runs", &[id.into()]).map_err(|e| db(&path, "finish run", e))?;
        // What `repro run` captured is searchable through the tracking API like what a
        // client logged; a key a client logged keeps its value.
        tx.execute(crate::tracking::PARAMS_FROM_RECORD, [id]).map_err(|e| db(&path, "index params", e))?;
        tx.execute(crate::tracking::LOGGED_FROM_RECORD, [id]).map_err(|e| db(&path, "index params", e))?;
        j.touch_run_rows(&tx, "finish", "run_params", id).map_err(|e| db(&path, "index params", e))?;
        j.append(&tx, ended_ms).map_err(|e| db(&path, "finish run", e))?;
        // Versions registered (through MLflow) while the run ran get their lineage in the
        // same transaction, so no finished run leaves a version unpinned.
        let pinned = Self::pin_versions(&tx, &path, &anchor, &record.id, lineage, ended_ms)?;
        tx.commit().map_err(|e| db(&path, "finish run", e))?;
        if let Some(last) = pinned {
            self.write_anchor(&last)?;
        }
        Ok(())
    }

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

    const RUN_COLUMNS: &'static str = "id, record, lineage, record_object, pid, pid_start, status, host, name";

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

    pub fn get_run(&self, id: &RunId) -> Result<StoredRun> {
        let row = self
            .conn
            .query_row(
                &format!("SELECT {} FROM runs WHERE id = ?1", Self::RUN_COLUMNS),
                [id.as_str()],
                Self::row_to_run,
            )
            .optional()
            .map_err(self.err("read run"))?
            .ok_or_else(|| StoreError::UnknownRun(id.to_string()))?;
        self.decode(row)
    }

    /// Newest first.
    pub fn list_runs(&self, limit: Option<usize>) -> Result<Vec<StoredRun>> {
        let limit = limit.map_or(i64::MAX, |l| i64::try_from(l).unwrap_or(i64::MAX));
        let mut stmt = self
            .conn
            .prepare(&format!("SELECT {} FROM runs ORDER BY seq DESC LIMIT ?1", Self::RUN_COLUMNS))
            .map_err(self.err("list runs"))?;
        let rows = stmt.query_map([limit], Self::row_to_run).map_err(self.err("list runs"))?;
        let mut out = Vec::new();
        for r in rows {
            out.push(self.decode(r.map_err(self.err("list runs"))?)?);
        }
        Ok(out)
    }

    /// Resolves what a user typed: a full id, a 4+ character id prefix, a run name (the
    /// newest run of that name), or `latest`.
    ///
    /// `NAME@V` and `NAME@STAGE` name the run a model version pins. A run whose name
    /// happens to look like that is still found when no model of that name exists.
    pub fn resolve_run(&self, spec: &str) -> Result<RunId> {
        let spec = spec.trim();
        if let Some(r) = repro_core::registry::ModelRef::parse(spec) {
            let registry = self.registry()?;
            match registry.lookup(&r) {
                Ok(v) => return Ok(v.run.clone()),
                Err(e @ repro_core::registry::LookupError::NoModel { .. }) => {
                    return self.resolve_plain_run(spec).map_err(|_| StoreError::UnknownModel(e.to_string()))
                }
                Err(e) => return Err(StoreError::UnknownModel(e.to_string())),
            }
        }
        self.resolve_plain_run(spec)
    }

    fn resolve_plain_run(&self, spec: &str) -> Result<RunId> {
        let one = |sql: &str, arg: &str| -> Result<Vec<String>> {
            let mut stmt = self.conn.prepare(sql).map_err(self.err("find run"))?;
            let rows = stmt.query_map([arg], |r| r.get::<_, String>(0)).map_err(self.err("find run"))?;
            rows.collect::<crate::db::DbResult<Vec<_>>>().map_err(self.err("find run"))
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
            .conn
            .prepare(&format!("SELECT {} FROM runs WHERE status = 'running'", Self::RUN_COLUMNS))
            .map_err(self.err("list running runs"))?;
        let rows = stmt.query_map(params![], Self::row_to_run).map_err(self.err("list running runs"))?;
        let mut dead = Vec::new();
        for r in rows {
            let run = self.decode(r.map_err(self.err("list running runs"))?)?;
            if run.record.status == RunStatus::Interrupted {
                dead.push(run);
            }
        }
        let mut ids = Vec::new();
        for run in dead {
            let mut record = run.record;
            record.status = RunStatus::Interrupted;
            let json = serde_json::to_string(&record).expect("records serialize");
            self.write("mark run interrupted", TransactionBehavior::Immediate, |tx, j| {
                let id = record.id.as_str();
                tx.lock_key(id).map_err(self.err("mark run interrupted"))?;
                let n = tx
                    .execute(
                        "UPDATE runs SET status = 'interrupted', record = ?2, pid = NULL WHERE id = ?1 AND status = 'running'",
                        params![id, json],
                    )
                    .map_err(self.err("mark run interrupted"))?;
                if n > 0 {
                    j.touch(tx, "interrupted", "runs", &[id.into()]).map_err(self.err("mark run interrupted"))?;
                }
                Ok(())
            })?;
            ids.push(record.id);
        }
        Ok(ids)
    }

    pub fn metrics(&self, run: &RunId) -> Result<Vec<MetricPoint>> {
        let mut stmt = self
            .conn
            .prepare(
                "SELECT key, CASE WHEN is_nan THEN NULL ELSE value END, step, timestamp_ms FROM metrics WHERE run_id = ?1
                 ORDER BY key, step, timestamp_ms, rowid",
            )
            .map_err(self.err("read metrics"))?;
        let rows = stmt
            .query_map([run.as_str()], |r| {
                Ok(MetricPoint {
                    key: r.get(0)?,
                    value: r.get::<_, Option<f64>>(1)?.unwrap_or(f64::NAN),
                    step: r.get(2)?,
                    timestamp_ms: Some(r.get(3)?),
                })
            })
            .map_err(self.err("read metrics"))?;
        rows.collect::<crate::db::DbResult<Vec<_>>>().map_err(self.err("read metrics"))
    }

    // ---- replays -------------------------------------------------------------------------

    /// Records the verdict of a finished replay; `report` is the stored report object.
    pub fn record_replay(&self, row: &ReplayRow) -> Result<()> {
        self.write("record the replay", TransactionBehavior::Immediate, |tx, j| {
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
            .map_err(self.err("record the replay"))?;
            j.touch(tx, "replay", "replays", &[row.replay.as_str().into()]).map_err(self.err("record the replay"))
        })
    }

    fn replay_rows(&self, sql: &str, arg: &str) -> Result<Vec<ReplayRow>> {
        self.conn().rows(
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

    pub fn all_runs(&self) -> Result<Vec<StoredRun>> {
        self.list_runs(None)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// A metadata database for a test in `dir`: a scratch PostgreSQL database when
/// `REPRO_TEST_PG` is set (dropped with the guard), else SQLite.
#[cfg(test)]
pub(crate) fn scratch(dir: &Path) -> (Metadata, Option<repro_test::ScratchDb>) {
    match repro_test::ScratchDb::create() {
        Some(s) => (Metadata::connect(dir, Some(&s.url)).expect("connect"), Some(s)),
        None => (Metadata::open(&dir.join(DB_FILE)).expect("open"), None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn machines_opening_a_new_database_at_once_all_get_one_schema() {
        let Some(scratch) = repro_test::ScratchDb::create() else {
            eprintln!("skipped: needs REPRO_TEST_PG");
            return;
        };
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let url = scratch.url.clone();
                std::thread::spawn(move || {
                    let dir = tempfile::tempdir().expect("tempdir");
                    Metadata::connect(dir.path(), Some(&url)).map(|_| ()).map_err(|e| e.to_string())
                })
            })
            .collect();
        for t in threads {
            t.join().expect("thread").expect("connect");
        }
        let dir = tempfile::tempdir().expect("tempdir");
        let m = Metadata::connect(dir.path(), Some(&scratch.url)).expect("connect");
        let rows: i64 = m.conn.query_row("SELECT COUNT(*) FROM repro_schema", params![], |r| r.get(0)).expect("count");
        assert_eq!(rows, 1);
        assert_eq!(crate::schema::version(&m.conn, false).expect("version"), crate::schema::SCHEMA_VERSION);
    }
}
