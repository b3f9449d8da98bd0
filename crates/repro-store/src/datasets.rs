//! Snapshots (content-addressed trees of files), the dataset versions that name them, and
//! the stat cache that lets the next snapshot of a folder skip files that did not change.

use repro_core::Digest;

use crate::conn::{db, parse_digest, Conn};
use crate::db::{params, OptionalExtension, TransactionBehavior, Val};
use crate::journal::Journal;
use crate::{Result, StoreError};

/// The whole-cache blob of a root whose files are in chunk rows: no files.
const TREE_CACHE_EMPTY: &[u8; 4] = b"RTC1";

pub use crate::tree_cache::{CacheChunk, CacheUpdate, CachedFile, TreeCache};

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SnapshotRow {
    pub digest: Digest,
    pub kind: String,
    pub files: u64,
    pub bytes: u64,
    pub stored: bool,
    pub created_ms: i64,
}

#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct DatasetVersion {
    pub name: String,
    pub version: u32,
    pub snapshot: Digest,
    pub source: String,
    pub reference: bool,
    pub created_ms: i64,
}

/// The `snapshots`, `datasets` and `tree_cache` tables.
pub struct Datasets<'a> {
    pub(crate) c: Conn<'a>,
}

impl Datasets<'_> {
    pub fn snapshot(&self, digest: &Digest) -> Result<Option<SnapshotRow>> {
        self.c
            .db
            .query_row(
                "SELECT digest, kind, files, bytes, stored, created_ms FROM snapshots WHERE digest = ?1",
                [digest.as_str()],
                |r| {
                    Ok((
                        r.get::<_, String>(0)?,
                        r.get::<_, String>(1)?,
                        r.get::<_, i64>(2)?,
                        r.get::<_, i64>(3)?,
                        r.get::<_, bool>(4)?,
                        r.get(5)?,
                    ))
                },
            )
            .optional()
            .map_err(self.c.err("read snapshot"))?
            .map(|(d, kind, files, bytes, stored, created_ms)| {
                Ok(SnapshotRow {
                    digest: Digest::parse(&d)
                        .map_err(|e| StoreError::BadRecord { run: d.clone(), message: e.to_string() })?,
                    kind,
                    files: files as u64,
                    bytes: bytes as u64,
                    stored,
                    created_ms,
                })
            })
            .transpose()
    }

    pub fn snapshots(&self) -> Result<Vec<SnapshotRow>> {
        let mut stmt =
            self.c.db.prepare("SELECT digest FROM snapshots ORDER BY digest").map_err(self.c.err("list snapshots"))?;
        let digests: Vec<String> = stmt
            .query_map(params![], |r| r.get(0))
            .map_err(self.c.err("list snapshots"))?
            .collect::<crate::db::DbResult<_>>()
            .map_err(self.c.err("list snapshots"))?;
        let mut out = Vec::new();
        for d in digests {
            let digest =
                Digest::parse(&d).map_err(|e| StoreError::BadRecord { run: d.clone(), message: e.to_string() })?;
            out.extend(self.snapshot(&digest)?);
        }
        Ok(out)
    }

    /// Records a snapshot (its objects must already be durable), optionally as a new
    /// version of a named dataset, and replaces the stat cache of its root, in one
    /// transaction. Returns the dataset version (existing when the content was seen
    /// before under that name).
    pub fn record_snapshot(
        &self,
        row: &SnapshotRow,
        dataset: Option<(&str, &str, bool)>,
        cache: Option<(&str, &CacheUpdate<'_>)>,
    ) -> Result<Option<DatasetVersion>> {
        let path = self.c.path.to_path_buf();
        let e = |c: &'static str| {
            let path = path.clone();
            move |err| db(&path, c, err)
        };
        let tx = self.c.db.transaction_with_behavior(TransactionBehavior::Immediate).map_err(e("record snapshot"))?;
        tx.execute(
            "INSERT INTO snapshots (digest, kind, files, bytes, stored, created_ms) VALUES (?1, ?2, ?3, ?4, ?5, ?6)
             ON CONFLICT(digest) DO UPDATE SET stored = CASE WHEN excluded.stored > snapshots.stored THEN excluded.stored ELSE snapshots.stored END",
            params![row.digest.as_str(), row.kind, row.files as i64, row.bytes as i64, row.stored, row.created_ms],
        )
        .map_err(e("record snapshot"))?;
        let mut j = Journal::new();
        j.touch(&tx, "snapshot", "snapshots", &[row.digest.as_str().into()]).map_err(e("record snapshot"))?;
        if let Some((root, cache)) = cache {
            // The whole-cache blob of older stores is emptied: the chunk rows hold the files now.
            tx.execute(
                "INSERT INTO tree_cache (root, manifest, files) VALUES (?1, ?2, ?3)
                 ON CONFLICT(root) DO UPDATE SET manifest = excluded.manifest, files = excluded.files",
                params![root, cache.manifest.as_ref().map(Digest::as_str), &TREE_CACHE_EMPTY[..]],
            )
            .map_err(e("update stat cache"))?;
            for first in &cache.drop {
                tx.execute("DELETE FROM tree_cache_chunks WHERE root = ?1 AND first = ?2", params![root, *first])
                    .map_err(e("update stat cache"))?;
            }
            for c in &cache.write {
                tx.execute(
                    "INSERT INTO tree_cache_chunks (root, first, chunk, stored, files) VALUES (?1, ?2, ?3, ?4, ?5)
                     ON CONFLICT(root, first) DO UPDATE SET chunk = excluded.chunk, stored = excluded.stored, files = excluded.files",
                    params![root, c.first, c.digest.as_ref().map(Digest::as_str), c.stored, c.encoded()],
                )
                .map_err(e("update stat cache"))?;
            }
        }
        let mut version = None;
        if let Some((name, source, reference)) = dataset {
            let existing: Option<(u32, String, bool, i64)> = tx
                .query_row(
                    "SELECT version, source, reference, created_ms FROM datasets WHERE name = ?1 AND snapshot = ?2",
                    params![name, row.digest.as_str()],
                    |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
                )
                .optional()
                .map_err(e("find dataset version"))?;
            version = Some(match existing {
                Some((v, source, reference, created_ms)) => DatasetVersion {
                    name: name.to_string(),
                    version: v,
                    snapshot: row.digest.clone(),
                    source,
                    reference,
                    created_ms,
                },
                None => {
                    let next: u32 = tx
                        .query_row("SELECT COALESCE(MAX(version), 0) + 1 FROM datasets WHERE name = ?1", [name], |r| {
                            r.get(0)
                        })
                        .map_err(e("number dataset version"))?;
                    tx.execute(
                        "INSERT INTO datasets (name, version, snapshot, source, reference, created_ms) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                        params![name, next, row.digest.as_str(), source, reference, row.created_ms],
                    )
                    .map_err(e("record dataset version"))?;
                    j.touch(&tx, "snapshot", "datasets", &[name.into(), Val::Int(next.into())])
                        .map_err(e("record dataset version"))?;
                    DatasetVersion {
                        name: name.to_string(),
                        version: next,
                        snapshot: row.digest.clone(),
                        source: source.to_string(),
                        reference,
                        created_ms: row.created_ms,
                    }
                }
            });
        }
        j.append(&tx, row.created_ms).map_err(e("record snapshot"))?;
        tx.commit().map_err(e("record snapshot"))?;
        Ok(version)
    }

    fn read(&self, sql: &str, args: &[&dyn crate::db::Arg]) -> Result<Vec<DatasetVersion>> {
        self.c.rows(
            "read datasets",
            sql,
            args,
            |r| Ok((r.get(0)?, r.get(1)?, r.get::<_, String>(2)?, r.get(3)?, r.get(4)?, r.get(5)?)),
            |(name, version, snapshot, source, reference, created_ms): (String, u32, String, String, bool, i64)| {
                let snapshot = parse_digest(&snapshot, &name)?;
                Ok(DatasetVersion { name, version, snapshot, source, reference, created_ms })
            },
        )
    }

    /// Runs a query: `read` takes the columns of a row, `build` checks and shapes them.
    /// The version of dataset `name` whose snapshot is `digest`, if any.
    pub fn version_of(&self, name: &str, digest: &Digest) -> Result<Option<DatasetVersion>> {
        Ok(self
            .read(
                "SELECT name, version, snapshot, source, reference, created_ms FROM datasets WHERE name = ?1 AND snapshot = ?2",
                &[&name, &digest.as_str()],
            )?
            .into_iter()
            .next())
    }

    /// Every dataset version, by name then version.
    pub fn list(&self) -> Result<Vec<DatasetVersion>> {
        self.read(
            "SELECT name, version, snapshot, source, reference, created_ms FROM datasets ORDER BY name, version",
            &[],
        )
    }

    /// `NAME` (the newest version) or `NAME:VERSION`.
    pub fn get(&self, spec: &str) -> Result<DatasetVersion> {
        let (name, version) = match spec.rsplit_once(':') {
            Some((n, v)) if !n.is_empty() && v.parse::<u32>().is_ok() => (n, v.parse::<u32>().ok()),
            _ => (spec, None),
        };
        let rows = match version {
            Some(v) => self.read(
                "SELECT name, version, snapshot, source, reference, created_ms FROM datasets WHERE name = ?1 AND version = ?2",
                &[&name, &v],
            )?,
            None => self.read(
                "SELECT name, version, snapshot, source, reference, created_ms FROM datasets WHERE name = ?1 ORDER BY version DESC LIMIT 1",
                &[&name],
            )?,
        };
        rows.into_iter().next().ok_or_else(|| StoreError::UnknownDataset(spec.to_string()))
    }

    /// The stat cache of a snapshot root (an absolute path). A row that does not decode is
    /// left out: a damaged cache is only a cache miss.
    pub fn tree_cache(&self, root: &str) -> Result<TreeCache> {
        let row: Option<(Option<String>, Vec<u8>)> = self
            .c
            .db
            .query_row("SELECT manifest, files FROM tree_cache WHERE root = ?1", [root], |r| Ok((r.get(0)?, r.get(1)?)))
            .optional()
            .map_err(self.c.err("read stat cache"))?;
        let Some((manifest, whole)) = row else { return Ok(TreeCache::default()) };
        // Read without the memory map: the rows are copied out whole, once, and mapped
        // as well they would count twice against the snapshot's memory (110 MB at a
        // million files).
        let sqlite = !self.c.db.is_postgres();
        let mmap = |size: i64| -> Result<()> {
            if sqlite {
                self.c
                    .db
                    .execute_batch(&format!("PRAGMA mmap_size = {size}"))
                    .map_err(self.c.err("read stat cache"))?;
            }
            Ok(())
        };
        mmap(0)?;
        let rows = self
            .c
            .db
            .query_rows("SELECT first, chunk, stored, files FROM tree_cache_chunks WHERE root = ?1", [root])
            .map_err(self.c.err("read stat cache"));
        mmap(crate::db::MMAP_SIZE)?;
        let rows = rows?;
        // A store from before chunked caches kept each root's files in one blob.
        let mut chunks: Vec<CacheChunk> =
            CacheChunk::from_encoded(String::new(), None, false, whole).into_iter().collect();
        for r in rows {
            let first: String = r.get(0).map_err(self.c.err("read stat cache"))?;
            let chunk: Option<String> = r.get(1).map_err(self.c.err("read stat cache"))?;
            let stored: bool = r.get(2).map_err(self.c.err("read stat cache"))?;
            let files: Vec<u8> = r.get(3).unwrap_or_default();
            let digest = chunk.and_then(|d| Digest::parse(&d).ok());
            chunks.extend(CacheChunk::from_encoded(first, digest, stored, files));
        }
        Ok(TreeCache::from_chunks(manifest.and_then(|m| Digest::parse(&m).ok()), chunks))
    }

    /// Every root with a stat cache, for fsck.
    pub(crate) fn tree_cache_roots(&self) -> Result<Vec<String>> {
        let rows = self
            .c
            .db
            .query_rows("SELECT root FROM tree_cache UNION SELECT root FROM tree_cache_chunks", params![])
            .map_err(self.c.err("read the stat cache"))?;
        rows.into_iter().map(|r| r.get(0).map_err(self.c.err("read the stat cache"))).collect()
    }

    /// No stat-cache row vouches for stored objects any more (fsck found some gone).
    pub(crate) fn forget_stored(&self) -> Result<()> {
        self.c
            .db
            .execute("UPDATE tree_cache_chunks SET stored = ?1", params![false])
            .map_err(self.c.err("update the stat cache"))?;
        Ok(())
    }

    /// Drops a root's stat cache: its next snapshot hashes every file again.
    pub(crate) fn drop_tree_cache(&self, root: &str) -> Result<()> {
        for sql in ["DELETE FROM tree_cache WHERE root = ?1", "DELETE FROM tree_cache_chunks WHERE root = ?1"] {
            self.c.db.execute(sql, [root]).map_err(self.c.err("drop a stat-cache row"))?;
        }
        Ok(())
    }
}
