//! The registry's event log in the metadata database, and its anchor file.
//!
//! Appends happen inside an IMMEDIATE transaction that also reads the log, so the new
//! event's number and `prev` are those of the true last event even with several writers.
//! After the commit the anchor file (`registry.head`, beside the database) is rewritten
//! with the new head: an edit of the database alone cannot remove events from the end of
//! the log without fsck noticing. The file may lag one event behind after a crash between
//! commit and rewrite; it is only ever required to name an event that still exists.

use std::path::{Path, PathBuf};

use crate::db::{params, Db, TransactionBehavior};
use repro_core::registry::{ChainProblem, Change, Event, Registry};
use repro_core::Digest;

use repro_core::metrics::MetricPoint;
use repro_core::record::RunRecord;

use crate::conn::{db, parse_digest, Conn};
use crate::datasets::SnapshotRow;
use crate::runs::ReplayRow;
use crate::verdicts::Verdicts;
use crate::{Result, StoreError};

pub(crate) const ANCHOR_FILE: &str = "registry.head";
use crate::schema::EMPTY_ANCHOR;

/// The anchor file's word on the log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Anchor {
    /// The file is gone: removed behind repro's back.
    Missing,
    /// No event had been written when it was last updated.
    Empty,
    /// The last event repro wrote (or one before it, after a crash between commit and update).
    At(u64, Digest),
}

impl Anchor {
    pub fn event(&self) -> Option<(u64, &Digest)> {
        match self {
            Anchor::At(seq, hash) => Some((*seq, hash)),
            _ => None,
        }
    }

    /// The problem the anchor itself shows, whatever the log holds.
    pub fn problem(&self) -> Option<String> {
        matches!(self, Anchor::Missing).then(|| {
            "the registry's anchor file (.repro/registry.head) is missing: it was removed behind repro's back".into()
        })
    }
}

/// What an append needs to know, decided by the caller from the current registry.
pub struct NewEvent {
    pub model: String,
    pub version: u32,
    pub actor: String,
    pub change: Change,
}

/// The model registry's tables: the hash-chained event log (`registry_events`), with the
/// anchor file beside the database, and the git bundles of imported code (`code_bundles`).
pub struct Models<'a> {
    pub(crate) c: Conn<'a>,
    /// The anchor file (`registry.head`).
    pub(crate) anchor_file: &'a Path,
}

impl Models<'_> {
    /// A store joining a shared database that already has a registry log anchors at the
    /// log's head as it finds it: from then on, this folder notices the log being cut back.
    pub(crate) fn join_anchor(&self) -> Result<()> {
        if self.anchor_file.exists() {
            return Ok(());
        }
        match self.events()?.last() {
            Some(last) => self.write_anchor(last),
            None => crate::schema::create_anchor(self.anchor_file),
        }
    }

    fn anchor_path(&self) -> PathBuf {
        self.anchor_file.to_path_buf()
    }

    fn read_events(conn: &Db, path: &std::path::Path) -> Result<Vec<Event>> {
        let mut stmt = conn
            .prepare(
                "SELECT seq, at_ms, actor, model, version, kind, payload, prev, hash FROM registry_events ORDER BY seq",
            )
            .map_err(|e| db(path, "read the registry", e))?;
        let rows = stmt
            .query_map(params![], |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    r.get::<_, i64>(1)?,
                    r.get::<_, String>(2)?,
                    r.get::<_, String>(3)?,
                    r.get::<_, i64>(4)?,
                    r.get::<_, String>(5)?,
                    r.get::<_, String>(6)?,
                    r.get::<_, Option<String>>(7)?,
                    r.get::<_, String>(8)?,
                ))
            })
            .map_err(|e| db(path, "read the registry", e))?;
        let mut out = Vec::new();
        for row in rows {
            let (seq, at_ms, actor, model, version, kind, payload, prev, hash) =
                row.map_err(|e| db(path, "read the registry", e))?;
            let owner = format!("registry event #{seq}");
            out.push(Event {
                seq: u64::try_from(seq).unwrap_or(0),
                at_ms,
                actor,
                model,
                version: u32::try_from(version).unwrap_or(0),
                kind,
                payload,
                prev: prev.map(|p| parse_digest(&p, &owner)).transpose()?,
                hash: parse_digest(&hash, &owner)?,
            });
        }
        Ok(out)
    }

    /// The whole event log, oldest first.
    pub fn events(&self) -> Result<Vec<Event>> {
        Self::read_events(self.c.db, self.c.path)
    }

    /// The registry as its log makes it, and anything in the log that could not apply.
    pub fn with_problems(&self) -> Result<(Registry, Vec<ChainProblem>)> {
        Ok(Registry::fold(&self.events()?))
    }

    pub fn registry(&self) -> Result<Registry> {
        Ok(self.with_problems()?.0)
    }

    /// What the anchor file says. Created with the registry tables, so a missing file
    /// means someone removed it.
    pub fn anchor(&self) -> Result<Anchor> {
        let path = self.anchor_path();
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Anchor::Missing),
            Err(e) => return Err(StoreError::Io { action: "read", path, source: e }),
        };
        let bad = || StoreError::BadRecord {
            run: path.display().to_string(),
            message: "expected '<seq> <digest>'; run `repro fsck`".into(),
        };
        if text.trim() == EMPTY_ANCHOR.trim() {
            return Ok(Anchor::Empty);
        }
        let (seq, hash) = text.trim().split_once(' ').ok_or_else(bad)?;
        let seq: u64 = seq.parse().map_err(|_| bad())?;
        let hash = Digest::parse(hash.trim()).map_err(|_| bad())?;
        Ok(Anchor::At(seq, hash))
    }

    /// Appends one event. `decide` sees the registry as it is inside the write transaction
    /// and returns the event to append, or an error that aborts without writing.
    pub fn append<E: From<StoreError>>(
        &self,
        at_ms: i64,
        decide: impl FnOnce(&Registry) -> std::result::Result<NewEvent, E>,
    ) -> std::result::Result<Event, E> {
        let mut written = self.append_all(at_ms, |reg| decide(reg).map(|e| vec![e]))?;
        written.pop().ok_or_else(|| StoreError::Invalid("no registry event was decided".into()).into())
    }

    /// Appends several events in one transaction (a registration with its tags): all land or
    /// none. Each later event is decided against the same registry, so `decide` numbers them.
    pub fn append_all<E: From<StoreError>>(
        &self,
        at_ms: i64,
        decide: impl FnOnce(&Registry) -> std::result::Result<Vec<NewEvent>, E>,
    ) -> std::result::Result<Vec<Event>, E> {
        let path = self.c.path.to_path_buf();
        let anchor = self.anchor()?;
        let tx = self
            .c
            .db
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(|e| db(&path, "write the registry", e))?;
        let mut events = Self::read_events(&tx, &path)?;
        refuse_damaged(&events, &anchor)?;
        let before = events.last().map_or(0, |e| e.seq);
        let (registry, _) = Registry::fold(&events);
        let decided = decide(&registry)?;
        // Whatever door it came through, nothing but an archive is built on a store the
        // newest verdict found damaged (see `repro_exec::integrity`).
        if decided.iter().any(|n| !matches!(n.change, Change::Archive { .. })) {
            self.refuse_if_damaged_in(&tx, "registry writes")?;
        }
        let mut written = Vec::with_capacity(decided.len());
        for new in decided {
            let event = Event::next(events.last(), at_ms, &new.actor, &new.model, new.version, &new.change);
            insert_event(&tx, &event).map_err(|e| db(&path, "write the registry", e))?;
            events.push(event.clone());
            written.push(event);
        }
        // The new events must fold: a decision that cannot apply is refused, not stored.
        if let Some(p) = Registry::fold(&events).1.into_iter().find(|p| p.seq > before) {
            return Err(StoreError::Invalid(p.message).into());
        }
        tx.commit().map_err(|e| db(&path, "write the registry", e))?;
        if let Some(last) = written.last() {
            self.write_anchor(last)?;
        }
        Ok(written)
    }

    /// Inside a finishing run's transaction: a `pin` event for each version of the run
    /// registered before its lineage existed. A damaged log is left alone (fsck names it);
    /// finishing the run matters more. Returns the last event written.
    pub(crate) fn pin_versions(
        tx: &Db,
        path: &std::path::Path,
        anchor: &Anchor,
        run: &repro_core::RunId,
        lineage: &Digest,
        at_ms: i64,
    ) -> Result<Option<Event>> {
        let mut events = Self::read_events(tx, path)?;
        let unpinned: Vec<(String, u32)> = {
            let (registry, _) = Registry::fold(&events);
            registry
                .versions_of_run(run)
                .into_iter()
                .filter(|v| v.lineage.is_none() && v.deleted.is_none())
                .map(|v| (v.name.clone(), v.version))
                .collect()
        };
        if unpinned.is_empty() || refuse_damaged(&events, anchor).is_err() {
            return Ok(None);
        }
        for (model, version) in unpinned {
            let change = Change::Pin { lineage: lineage.clone() };
            let event = Event::next(events.last(), at_ms, "repro", &model, version, &change);
            insert_event(tx, &event).map_err(|e| db(path, "pin a registered version", e))?;
            events.push(event);
        }
        Ok(events.pop())
    }

    pub(crate) fn write_anchor(&self, event: &Event) -> Result<()> {
        // Never move the anchor backwards: a slower writer may finish after a later one. The
        // look and the write happen under a lock, or two writers could both look, and the
        // slower one write its older event last.
        let lock_path = self.anchor_path().with_extension("lock");
        let lock = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(StoreError::io("open", &lock_path))?;
        lock.lock().map_err(StoreError::io("lock", &lock_path))?;
        if let Ok(Anchor::At(seq, _)) = self.anchor() {
            if seq > event.seq {
                return Ok(());
            }
        }
        let path = self.anchor_path();
        crate::objects::write_durably(&path, format!("{} {}\n", event.seq, event.hash).as_bytes())
            .map_err(StoreError::io("write", path))
    }

    /// Writes what `repro bundle import` brings, in one transaction: runs (with metrics),
    /// snapshot rows, replays, code bundles, and the registry event `decide` returns. Runs
    /// the store already has are left as they are (the caller checked they agree).
    pub fn import_bundle<E: From<StoreError>>(
        &self,
        rows: &ImportRows,
        at_ms: i64,
        decide: impl FnOnce(&Registry) -> std::result::Result<NewEvent, E>,
    ) -> std::result::Result<Event, E> {
        let path = self.c.path.to_path_buf();
        let e = |c: &'static str| {
            let path = path.clone();
            move |err| db(&path, c, err)
        };
        let anchor = self.anchor()?;
        let tx = self.c.db.transaction_with_behavior(TransactionBehavior::Immediate).map_err(e("import"))?;
        // An imported run's chain here starts with what the bundle brought ("import"); the
        // chain its record seals is the exporting store's.
        let mut j = crate::journal::Journal::new();
        for run in &rows.runs {
            let exists: i64 = tx
                .query_row("SELECT COUNT(*) FROM runs WHERE id = ?1", [run.record.id.as_str()], |r| r.get(0))
                .map_err(e("import runs"))?;
            if exists > 0 {
                continue;
            }
            let json = serde_json::to_string(&run.record).expect("records serialize");
            tx.execute(
                "INSERT INTO runs (id, name, status, exit_code, started_ms, ended_ms, host, pid, pid_start, record, lineage, record_object)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, NULL, NULL, ?8, ?9, ?10)",
                params![
                    run.record.id.as_str(),
                    run.record.name,
                    run.record.status.as_str(),
                    run.record.exit_code,
                    run.started_ms,
                    run.ended_ms,
                    run.record.host,
                    json,
                    run.lineage.as_str(),
                    run.record_object.as_str()
                ],
            )
            .map_err(e("import runs"))?;
            let mut stmt = tx
                .prepare("INSERT INTO metrics (run_id, key, value, step, timestamp_ms, is_nan) VALUES (?1, ?2, ?3, ?4, ?5, ?6)")
                .map_err(e("import metrics"))?;
            for m in &run.metrics {
                let (value, nan) = crate::tracking::storable(m.value);
                stmt.execute(params![
                    run.record.id.as_str(),
                    m.key,
                    value,
                    m.step,
                    m.timestamp_ms.unwrap_or(run.ended_ms),
                    nan
                ])
                .map_err(e("import metrics"))?;
            }
            tx.execute(crate::tracking::REFRESH_LATEST, [run.record.id.as_str()]).map_err(e("import metrics"))?;
            for sql in [crate::tracking::PARAMS_FROM_RECORD, crate::tracking::LOGGED_FROM_RECORD] {
                tx.execute(sql, [run.record.id.as_str()]).map_err(e("index params"))?;
            }
            for table in ["runs", "metrics", "run_params"] {
                j.touch_run_rows(&tx, "import", table, run.record.id.as_str()).map_err(e("import runs"))?;
            }
        }
        for s in &rows.snapshots {
            tx.execute(
                "INSERT INTO snapshots (digest, kind, files, bytes, stored, created_ms) VALUES (?1, ?2, ?3, ?4, ?5, ?6)
                 ON CONFLICT(digest) DO UPDATE SET stored = CASE WHEN excluded.stored > snapshots.stored THEN excluded.stored ELSE snapshots.stored END",
                params![s.digest.as_str(), s.kind, s.files as i64, s.bytes as i64, s.stored, s.created_ms],
            )
            .map_err(e("import snapshots"))?;
            j.touch(&tx, "import", "snapshots", &[s.digest.as_str().into()]).map_err(e("import snapshots"))?;
        }
        for r in &rows.replays {
            tx.execute(
                "INSERT INTO replays (replay_id, original_id, verdict, report, created_ms) VALUES (?1, ?2, ?3, ?4, ?5)
                 ON CONFLICT DO NOTHING",
                params![r.replay.as_str(), r.original.as_str(), r.verdict.as_str(), r.report.as_str(), r.created_ms],
            )
            .map_err(e("import replays"))?;
            j.touch(&tx, "import", "replays", &[r.replay.as_str().into()]).map_err(e("import replays"))?;
        }
        for (commit, object) in &rows.code_bundles {
            tx.execute(
                "INSERT INTO code_bundles (git_commit, object, created_ms) VALUES (?1, ?2, ?3) ON CONFLICT DO NOTHING",
                params![commit, object.as_str(), at_ms],
            )
            .map_err(e("import code"))?;
            j.touch(&tx, "import", "code_bundles", &[commit.as_str().into()]).map_err(e("import code"))?;
        }
        j.append(&tx, at_ms).map_err(e("import"))?;
        let events = Self::read_events(&tx, &path)?;
        refuse_damaged(&events, &anchor)?;
        self.refuse_if_damaged_in(&tx, "imports")?;
        let (registry, _) = Registry::fold(&events);
        let new = decide(&registry)?;
        let event = Event::next(events.last(), at_ms, &new.actor, &new.model, new.version, &new.change);
        insert_event(&tx, &event).map_err(e("import the registry event"))?;
        tx.commit().map_err(e("import"))?;
        self.write_anchor(&event)?;
        Ok(event)
    }

    /// Refuses `what` while the newest verdict, read inside the caller's transaction, found
    /// the store damaged.
    fn refuse_if_damaged_in(&self, tx: &Db, what: &str) -> Result<()> {
        match (Verdicts { c: self.c }).last_damage_in(tx)? {
            Some((at, problems)) => Err(StoreError::Damaged(format!(
                "the store is damaged (found {}: {}); {what} wait until .repro is restored from a backup and `repro fsck` finds it clean",
                crate::rfc3339(at),
                problems.first().map_or("damage", String::as_str)
            ))),
            None => Ok(()),
        }
    }

    // ---- code bundles ------------------------------------------------------------------

    /// Records that the git bundle object `object` holds `commit` (from `repro bundle import`).
    pub fn record_code_bundle(&self, commit: &str, object: &Digest) -> Result<()> {
        self.c.write("record the code bundle", TransactionBehavior::Immediate, |tx, j| {
            tx.execute(
                "INSERT INTO code_bundles (git_commit, object, created_ms) VALUES (?1, ?2, ?3) ON CONFLICT DO NOTHING",
                params![commit, object.as_str(), crate::now_ms()],
            )
            .map_err(self.c.err("record the code bundle"))?;
            j.touch(tx, "code", "code_bundles", &[commit.into()]).map_err(self.c.err("record the code bundle"))
        })
    }

    /// The git bundle object holding `commit`, if one was imported.
    pub fn code_bundle(&self, commit: &str) -> Result<Option<Digest>> {
        Ok(self.code_bundles()?.into_iter().find(|(c, _)| c == commit).map(|(_, d)| d))
    }

    pub fn code_bundles(&self) -> Result<Vec<(String, Digest)>> {
        let mut stmt = self
            .c
            .db
            .prepare("SELECT git_commit, object FROM code_bundles ORDER BY git_commit")
            .map_err(self.c.err("read code bundles"))?;
        let rows = stmt
            .query_map(params![], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))
            .map_err(self.c.err("read code bundles"))?;
        let mut out = Vec::new();
        for r in rows {
            let (commit, object) = r.map_err(self.c.err("read code bundles"))?;
            let d = parse_digest(&object, &format!("code bundle of {commit}"))?;
            out.push((commit, d));
        }
        Ok(out)
    }
}

/// Never builds on a log that was changed behind repro's back: appending after a removed
/// or edited event would make the damage look like ordinary history. The anchor is read
/// before the write lock; a newer one written meanwhile only names a later event.
fn refuse_damaged(events: &[Event], anchor: &Anchor) -> Result<()> {
    let problems = repro_core::registry::verify_chain(events, anchor.event());
    match (anchor.problem(), problems.first()) {
        (Some(p), _) => Err(StoreError::RegistryDamaged(p)),
        (None, Some(p)) => Err(StoreError::RegistryDamaged(p.message.clone())),
        (None, None) => Ok(()),
    }
}

fn insert_event(conn: &Db, event: &Event) -> crate::db::DbResult<usize> {
    conn.execute(
        "INSERT INTO registry_events (seq, at_ms, actor, model, version, kind, payload, prev, hash)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
        params![
            event.seq as i64,
            event.at_ms,
            event.actor,
            event.model,
            event.version,
            event.kind,
            event.payload,
            event.prev.as_ref().map(Digest::as_str),
            event.hash.as_str()
        ],
    )
}

/// A run as a bundle carries it.
pub struct ImportRun {
    pub record: RunRecord,
    pub lineage: Digest,
    pub record_object: Digest,
    pub started_ms: i64,
    pub ended_ms: i64,
    pub metrics: Vec<MetricPoint>,
}

/// Everything `import_bundle` writes besides objects.
#[derive(Default)]
pub struct ImportRows {
    pub runs: Vec<ImportRun>,
    pub snapshots: Vec<SnapshotRow>,
    pub replays: Vec<ReplayRow>,
    pub code_bundles: Vec<(String, Digest)>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Metadata;
    use repro_core::registry::{Artifact, ModelRef};
    use repro_core::RunId;

    fn register(run: &RunId) -> Change {
        Change::Register {
            run: run.clone(),
            lineage: Some(Digest::of_bytes(b"l")),
            model_id: None,
            artifact: Artifact {
                path: "model.pkl".into(),
                output: "model.pkl".into(),
                snapshot: Digest::of_bytes(b"m"),
                files: vec![],
            },
        }
    }

    #[test]
    fn concurrent_appends_chain_and_anchor() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (_, scratch) = crate::meta::scratch(dir.path());
        let url = scratch.as_ref().map(|s| s.url.clone());
        let root = dir.path().to_path_buf();
        let run = RunId::from_bytes([1; 16]);
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let (root, url) = (root.clone(), url.clone());
                let run = run.clone();
                std::thread::spawn(move || {
                    let m = Metadata::connect(&root, url.as_deref()).expect("open");
                    for _ in 0..5 {
                        m.models()
                            .append::<StoreError>(1, |reg| {
                                Ok(NewEvent {
                                    model: "pricing".into(),
                                    version: reg.next_version("pricing"),
                                    actor: "ada".into(),
                                    change: register(&run),
                                })
                            })
                            .expect("append");
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().expect("thread");
        }
        let m = Metadata::connect(&root, url.as_deref()).expect("open");
        let events = m.models().events().expect("events");
        assert_eq!(events.len(), 20);
        let anchor = m.models().anchor().expect("anchor");
        assert_eq!(anchor.event().map(|(s, _)| s), Some(20));
        assert!(repro_core::registry::verify_chain(&events, anchor.event()).is_empty());
        let reg = m.models().registry().expect("fold");
        assert_eq!(reg.models["pricing"].versions.len(), 20);
        let v = reg.lookup(&ModelRef::parse("pricing@20").expect("ref")).expect("v20");
        assert_eq!(v.run, Some(run));
    }

    #[test]
    fn a_refused_append_writes_nothing() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (m, _scratch) = crate::meta::scratch(dir.path());
        let r = m.models().append(1, |_| Err(StoreError::UnknownRun("x".into())));
        assert!(r.is_err());
        assert!(m.models().events().expect("events").is_empty());
        assert_eq!(m.models().anchor().expect("anchor"), Anchor::Empty);
    }
}
