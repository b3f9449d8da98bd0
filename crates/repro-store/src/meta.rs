//! The metadata database: runs, metrics, snapshots, datasets and the stat cache, in SQLite
//! (WAL mode, so readers never wait for the one writer, and several `repro run` processes
//! share one store).

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::db::{Db, TransactionBehavior};
use crate::journal::Journal;
use repro_core::record::RunRecord;
use repro_core::{Digest, RunId};

pub(crate) use crate::conn::db;
use crate::conn::Conn;
use crate::datasets::Datasets;
pub use crate::datasets::{CachedFile, DatasetVersion, SnapshotRow, TreeCache};
pub use crate::environments::EnvironmentRow;
use crate::environments::Environments;
use crate::registry::Models;
use crate::runs::Runs;
pub use crate::runs::{ReplayRow, StoredRun};
use crate::tokens::Tokens;
use crate::tracking::Tracking;
use crate::verdicts::Verdicts;
use crate::{Result, StoreError};

pub const DB_FILE: &str = "repro.db";

pub struct Metadata {
    pub(crate) conn: Db,
    /// What messages call the database: the SQLite file, or the PostgreSQL URL.
    pub(crate) path: PathBuf,
    /// The registry's anchor file, in the store's folder (each folder anchors the log as it saw it).
    pub(crate) anchor: PathBuf,
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
        conn.pragma_update(None, "mmap_size", crate::db::MMAP_SIZE).map_err(configure)?;
        let anchor = path.with_file_name(crate::registry::ANCHOR_FILE);
        let m = Metadata { conn: Db::sqlite(conn, path), path: path.to_path_buf(), anchor };
        crate::schema::migrate(&m.conn, &m.path, &m.anchor)?;
        Ok(m)
    }

    /// The schema version the database says it is at, read now.
    pub(crate) fn schema_version_now(&self) -> Result<i64> {
        crate::schema::version(&self.conn, false).map_err(self.err("read the schema version"))
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

    /// The model registry: its event log and anchor, and imported code bundles.
    pub fn models(&self) -> Models<'_> {
        Models { c: self.conn(), anchor_file: &self.anchor }
    }

    /// Runs as `repro run` records them, their metric points, and replays' verdicts.
    pub fn runs(&self) -> Runs<'_> {
        Runs { c: self.conn() }
    }

    /// The MLflow tracking tables: experiments, runs' params, tags and latest metrics,
    /// artifacts, logged models.
    pub fn tracking(&self) -> Tracking<'_> {
        Tracking { c: self.conn() }
    }

    /// Snapshots, the datasets that name them, and the stat cache that speeds them up.
    pub fn datasets(&self) -> Datasets<'_> {
        Datasets { c: self.conn() }
    }

    /// Registered environments (`repro env register`).
    pub fn environments(&self) -> Environments<'_> {
        Environments { c: self.conn() }
    }

    /// fsck's verdicts, which hold registry writes back while the store is damaged.
    pub fn verdicts(&self) -> Verdicts<'_> {
        Verdicts { c: self.conn() }
    }

    /// API tokens: who may use a server, and whom each token speaks for.
    pub fn tokens(&self) -> Tokens<'_> {
        Tokens { c: self.conn() }
    }

    // ---- across table groups --------------------------------------------------------------

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
            let head = self.runs().facts_head(&record.id)?;
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
        let anchor = self.models().anchor()?;
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
        // Each table group writes its part, all in this one transaction: the run's row, its
        // captured params as tracking params, then (below) the registry's pins.
        crate::runs::mark_finished(&tx, &mut j, &path, record, ended_ms, lineage, record_object)?;
        crate::tracking::index_captured_params(&tx, &mut j, &path, id)?;
        j.append(&tx, ended_ms).map_err(|e| db(&path, "finish run", e))?;
        // Versions registered (through MLflow) while the run ran get their lineage in the
        // same transaction, so no finished run leaves a version unpinned.
        let pinned = Models::pin_versions(&tx, &path, &anchor, &record.id, lineage, ended_ms)?;
        tx.commit().map_err(|e| db(&path, "finish run", e))?;
        if let Some(last) = pinned {
            self.models().write_anchor(&last)?;
        }
        Ok(())
    }

    /// Resolves what a user typed: a full id, a 4+ character id prefix, a run name (the
    /// newest run of that name), or `latest`.
    ///
    /// `NAME@V` and `NAME@STAGE` name the run a model version pins. A run whose name
    /// happens to look like that is still found when no model of that name exists.
    pub fn resolve_run(&self, spec: &str) -> Result<RunId> {
        let spec = spec.trim();
        if let Some(r) = repro_core::registry::ModelRef::parse(spec) {
            let registry = self.models().registry()?;
            match registry.lookup(&r) {
                Ok(v) => return v.run_id().cloned().map_err(StoreError::UnknownModel),
                Err(e @ repro_core::registry::LookupError::NoModel { .. }) => {
                    return self.runs().resolve_plain(spec).map_err(|_| StoreError::UnknownModel(e.to_string()))
                }
                Err(e) => return Err(StoreError::UnknownModel(e.to_string())),
            }
        }
        self.runs().resolve_plain(spec)
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
        let rows: i64 =
            m.conn.query_row("SELECT COUNT(*) FROM repro_schema", crate::db::params![], |r| r.get(0)).expect("count");
        assert_eq!(rows, 1);
        assert_eq!(crate::schema::version(&m.conn, false).expect("version"), crate::schema::SCHEMA_VERSION);
    }
}
