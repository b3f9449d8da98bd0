//! `repro migrate-store`: copies a store's metadata from its embedded SQLite database into
//! an empty PostgreSQL one, table by table in one transaction, then proves the copy: every
//! table's row count and a digest of its rows (in key order) must match on both sides.

use crate::db::{Db, Row, Val};
use crate::meta::{db, Metadata};
use crate::{Result, StoreError};

/// The tables a store's metadata lives in, parents before the rows that refer to them.
/// `tree_cache` and `tree_cache_chunks` are not here: it caches stat results of this machine's paths.
pub const TABLES: [&str; 23] = [
    "runs",
    "metrics",
    "snapshots",
    "datasets",
    "replays",
    "environments",
    "registry_events",
    "code_bundles",
    "experiments",
    "experiment_tags",
    "tracking",
    "run_params",
    "run_tags",
    "latest_metrics",
    "tokens",
    "artifacts",
    "run_inputs",
    "logged_models",
    "run_model_outputs",
    "logged_model_metrics",
    "run_model_inputs",
    "journal",
    "fsck_results",
];

/// One table's figures after the copy.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct TableCheck {
    pub table: String,
    pub rows: u64,
    /// BLAKE3 over the rows in key order, the same on both sides.
    pub digest: String,
}

impl Metadata {
    /// Copies every row of this (SQLite) store into `target`, which must hold no store yet,
    /// then checks both sides agree on every table's count and digest.
    pub fn copy_into(&self, target: &mut Metadata) -> Result<Vec<TableCheck>> {
        let tpath = target.path.clone();
        let terr = |c: &'static str| {
            let p = tpath.clone();
            move |e| db(&p, c, e)
        };
        let held: i64 = target
            .conn
            .query_row(
                "SELECT (SELECT COUNT(*) FROM runs) + (SELECT COUNT(*) FROM registry_events) + (SELECT COUNT(*) FROM datasets)",
                crate::db::params![],
                |r| r.get(0),
            )
            .map_err(terr("inspect the target"))?;
        if held > 0 {
            return Err(StoreError::Invalid(format!(
                "{} already holds a store ({held} runs, registry events and datasets); migrate into an empty database",
                tpath.display()
            )));
        }
        let tx = target
            .conn
            .transaction_with_behavior(crate::db::TransactionBehavior::Immediate)
            .map_err(terr("begin the copy"))?;
        // A new database holds only the Default experiment and the journal entry that
        // recorded it; the copy brings both as they were here.
        tx.execute_batch("DELETE FROM experiment_tags; DELETE FROM experiments; DELETE FROM journal")
            .map_err(terr("clear the target"))?;
        for table in TABLES {
            let cols = self.conn.columns(table).map_err(self.err("read the schema"))?;
            let list = cols.join(", ");
            let marks: Vec<String> = (1..=cols.len()).map(|i| format!("?{i}")).collect();
            let insert = format!("INSERT INTO {table} ({list}) VALUES ({})", marks.join(", "));
            // Insertion order is the order SQLite kept; PostgreSQL's rowid stand-in follows it.
            let rows = self
                .conn
                .query_rows(&format!("SELECT {list} FROM {table} ORDER BY rowid"), crate::db::params![])
                .or_else(|_| self.conn.query_rows(&format!("SELECT {list} FROM {table}"), crate::db::params![]))
                .map_err(self.err("read the store"))?;
            for row in rows {
                let vals: Vec<Val> = (0..cols.len())
                    .map(|i| row.get(i))
                    .collect::<crate::db::DbResult<_>>()
                    .map_err(self.err("read the store"))?;
                tx.execute(&insert, vals).map_err(|e| db(&tpath, &format!("copy {table}"), e))?;
            }
        }
        // Copied keys do not advance PostgreSQL's sequences; the next run must not reuse one.
        tx.execute_batch(
            "SELECT setval(pg_get_serial_sequence('runs', 'seq'), GREATEST((SELECT MAX(seq) FROM runs), 1))",
        )
        .map_err(terr("advance the run sequence"))?;
        // Prove it before it counts: both sides, every table, inside the copy's transaction.
        let mut checks = Vec::new();
        for table in TABLES {
            let here = table_check(&self.conn, table).map_err(self.err("check the copy"))?;
            let there = table_check(&tx, table).map_err(terr("check the copy"))?;
            if here != there {
                return Err(StoreError::Invalid(format!(
                    "the copy of table {table} differs ({} rows, digest {} here; {} rows, digest {} there); the store still uses its own database",
                    here.rows, here.digest, there.rows, there.digest
                )));
            }
            checks.push(here);
        }
        tx.commit().map_err(terr("commit the copy"))?;
        Ok(checks)
    }
}

/// A table's row count and the digest of its rows, ordered by every column.
fn table_check(conn: &Db, table: &str) -> crate::db::DbResult<TableCheck> {
    let cols = conn.columns(table)?;
    let order: Vec<String> = (1..=cols.len()).map(|i| i.to_string()).collect();
    let rows = conn.query_rows(
        &format!("SELECT {} FROM {table} ORDER BY {}", cols.join(", "), order.join(", ")),
        crate::db::params![],
    )?;
    let mut h = blake3::Hasher::new();
    for row in &rows {
        for i in 0..cols.len() {
            feed(&mut h, row, i)?;
        }
    }
    Ok(TableCheck { table: table.to_string(), rows: rows.len() as u64, digest: h.finalize().to_hex().to_string() })
}

fn feed(h: &mut blake3::Hasher, row: &Row, i: usize) -> crate::db::DbResult<()> {
    // One tag byte and a length for each value, so that no two rows hash alike by accident.
    match row.get::<_, Val>(i)? {
        Val::Null => h.update(b"n"),
        Val::Int(v) => h.update(b"i").update(&v.to_le_bytes()),
        Val::Real(v) => h.update(b"r").update(&v.to_bits().to_le_bytes()),
        Val::Text(s) => h.update(b"t").update(&(s.len() as u64).to_le_bytes()).update(s.as_bytes()),
        Val::Blob(b) => h.update(b"b").update(&(b.len() as u64).to_le_bytes()).update(&b),
    };
    Ok(())
}

/// What `repro migrate-store` did.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct MigrationReport {
    /// The database the metadata moved to, and each table's checked count and digest.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub db: Option<String>,
    pub tables: Vec<TableCheck>,
    /// Where the objects went, and how many were copied and verified there.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub objects: Option<String>,
    pub objects_copied: u64,
    pub objects_verified: u64,
    /// The embedded database, kept as it was (no longer used).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retired_db: Option<std::path::PathBuf>,
}

/// `repro.toml` with `key = "value"` lines added to its `[store]` section, comments kept.
pub(crate) fn config_with(text: &str, keys: &[(&str, &str)]) -> String {
    let lines: Vec<String> = keys.iter().map(|(k, v)| format!("{k} = {}", toml::Value::from(*v))).collect();
    let mut out = Vec::new();
    let mut added = false;
    for line in text.lines() {
        out.push(line.to_string());
        if !added && line.trim() == "[store]" {
            out.extend(lines.iter().cloned());
            added = true;
        }
    }
    if !added {
        out.insert(0, String::new());
        for l in lines.iter().rev() {
            out.insert(0, l.clone());
        }
        out.insert(0, "[store]".to_string());
    }
    out.join("\n") + "\n"
}

impl crate::Store {
    /// Moves this embedded store onto shared backends: the metadata into the (empty)
    /// PostgreSQL database `backends.db`, the objects into `backends.objects`. Everything is
    /// copied and checked first (every table's count and digest; every object re-read from
    /// the bucket and hashed); only then does `repro.toml` switch to the new backends. A
    /// failure anywhere leaves the store as it was, on its own database and folder.
    pub fn migrate_to(&self, backends: &crate::Backends, progress: &dyn Fn(&str)) -> Result<MigrationReport> {
        let config_path = self.root().join(crate::config::CONFIG_FILE);
        let bad = |message: String| StoreError::Config { path: config_path.clone(), message };
        if backends.db.is_none() && backends.objects.is_none() {
            return Err(bad("say where to: --db postgres://USER@HOST/DB and/or --objects s3://BUCKET/PREFIX".into()));
        }
        // Everything checked before anything is copied.
        if let (Some(_), Some(now)) = (&backends.objects, &self.config.store.objects) {
            return Err(bad(format!(
                "the store's objects are already in {now}; migrate-store moves an embedded store"
            )));
        }
        if let (Some(_), Some(now)) = (&backends.db, &self.config.store.db) {
            return Err(bad(format!(
                "the store's metadata is already in {now}; migrate-store moves an embedded store"
            )));
        }
        if let Some(url) = &backends.objects {
            crate::config::parse_objects_url(url).map_err(bad)?;
        }
        if let Some(url) = &backends.db {
            crate::config::check_db_url(url).map_err(bad)?;
        }
        let mut report = MigrationReport::default();
        let mut keys: Vec<(&str, &str)> = Vec::new();
        // Objects first: uploading is idempotent, so a failure there leaves nothing to undo;
        // the metadata copy, one transaction, comes last.
        if let Some(url) = &backends.objects {
            let remote = crate::remote::Remote::connect(url)?;
            remote.check()?;
            // Stray files in objects/ are fsck's business, not the migration's.
            let local: Vec<_> = self
                .objects
                .list()?
                .into_iter()
                .flatten()
                .map(|d| {
                    let path = self.objects.path_of(&d);
                    (d, path)
                })
                .collect();
            progress(&format!("copying {} objects into {url}", local.len()));
            report.objects_copied = remote.upload_all(&local)? as u64;
            progress(&format!("verifying {} objects in {url}", local.len()));
            for (d, _) in &local {
                match remote.verify(d)? {
                    crate::objects::Verified::Ok { .. } => report.objects_verified += 1,
                    _ => {
                        return Err(StoreError::Invalid(format!(
                            "object {d} did not arrive intact in {url}; the store still uses its own objects folder"
                        )))
                    }
                }
            }
            report.objects = Some(url.clone());
            keys.push(("objects", url));
        }
        if let Some(url) = &backends.db {
            progress(&format!("copying the metadata into {url}"));
            let mut target = Metadata::connect(self.root(), Some(url))?;
            report.tables = self.meta.copy_into(&mut target)?;
            report.db = Some(url.clone());
            keys.push(("db", url));
        }
        // Only now does the store switch: repro.toml names the new backends.
        let text = std::fs::read_to_string(&config_path).map_err(StoreError::io("read", &config_path))?;
        let new = config_with(&text, &keys);
        let tmp = self.root().join(crate::objects::TMP_DIR).join("repro.toml.migrating");
        crate::objects::write_durably(&tmp, new.as_bytes()).map_err(StoreError::io("write", &tmp))?;
        crate::Config::load(&tmp).map_err(|e| bad(format!("the new configuration would not load: {e}")))?;
        std::fs::rename(&tmp, &config_path).map_err(StoreError::io("replace", &config_path))?;
        if backends.db.is_some() {
            report.retired_db = Some(self.root().join(crate::meta::DB_FILE));
        }
        Ok(report)
    }
}
