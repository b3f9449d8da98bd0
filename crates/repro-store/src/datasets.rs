//! Snapshots (content-addressed trees of files), the dataset versions that name them, and
//! the stat cache that lets the next snapshot of a folder skip files that did not change.

use repro_core::Digest;

use crate::conn::{db, parse_digest, Conn};
use crate::db::{params, OptionalExtension, TransactionBehavior, Val};
use crate::journal::Journal;
use crate::objects::FileStat;
use crate::{Result, StoreError};

/// A stat-cache row as stored: root, manifest, encoded files.
pub(crate) type CacheRow = (String, Option<Digest>, Vec<u8>);

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

/// The stat cache of one snapshot root: what each file looked like when it was hashed,
/// sorted by relative path, and the manifest digest they made (when every file was cacheable).
///
/// Kept in its compact binary form (one row per root, since reading 20,000 rows costs more
/// than the walk it is meant to save) and read in place: at a million files, decoding every
/// row into a string of its own cost 0.4 s and 140 MB, a fifth of an unchanged re-snapshot.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TreeCache {
    pub manifest: Option<Digest>,
    encoded: Vec<u8>,
    files: usize,
}

/// One file of a [`TreeCache`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CachedFile<'a> {
    pub rel: &'a str,
    pub stat: FileStat,
    /// The raw BLAKE3 digest (kept raw: turning a million of them into text costs more
    /// than the rest of a re-snapshot).
    pub blake3: [u8; 32],
}

const CACHE_MAGIC: &[u8; 4] = b"RTC1";

impl Default for TreeCache {
    fn default() -> Self {
        TreeCache { manifest: None, encoded: CACHE_MAGIC.to_vec(), files: 0 }
    }
}

impl TreeCache {
    /// A cache of `files` (sorted by `rel`), made by `manifest` when every file of the tree is in it.
    pub fn new<'a>(manifest: Option<Digest>, files: impl IntoIterator<Item = CachedFile<'a>>) -> TreeCache {
        let mut encoded = CACHE_MAGIC.to_vec();
        let mut count = 0;
        for f in files {
            encoded.extend_from_slice(&(f.rel.len() as u32).to_le_bytes());
            encoded.extend_from_slice(f.rel.as_bytes());
            for v in [f.stat.dev, f.stat.ino, f.stat.size, f.stat.mtime_ns as u64, f.stat.ctime_ns as u64] {
                encoded.extend_from_slice(&v.to_le_bytes());
            }
            encoded.extend_from_slice(&f.stat.mode.to_le_bytes());
            encoded.extend_from_slice(&f.blake3);
            count += 1;
        }
        TreeCache { manifest, encoded, files: count }
    }

    /// Checks a stored form; anything malformed is `None` (a damaged cache is only a cache miss).
    pub fn from_encoded(manifest: Option<Digest>, encoded: Vec<u8>) -> Option<TreeCache> {
        let mut rest = encoded.strip_prefix(CACHE_MAGIC)?;
        let mut files = 0;
        while !rest.is_empty() {
            next_file(&mut rest)?;
            files += 1;
        }
        Some(TreeCache { manifest, encoded, files })
    }

    /// The stored form.
    pub fn encoded(&self) -> &[u8] {
        &self.encoded
    }

    pub fn len(&self) -> usize {
        self.files
    }

    pub fn is_empty(&self) -> bool {
        self.files == 0
    }

    /// The files, in order, read in place.
    pub fn files(&self) -> impl Iterator<Item = CachedFile<'_>> {
        // Checked when made: every record decodes.
        let mut rest = self.encoded.get(CACHE_MAGIC.len()..).unwrap_or_default();
        std::iter::from_fn(move || next_file(&mut rest))
    }
}

/// Reads one record off the front of `rest`; `None` at the end or on anything malformed.
fn next_file<'a>(rest: &mut &'a [u8]) -> Option<CachedFile<'a>> {
    fn take<'a>(rest: &mut &'a [u8], n: usize) -> Option<&'a [u8]> {
        if rest.len() < n {
            return None;
        }
        let (a, b) = rest.split_at(n);
        *rest = b;
        Some(a)
    }
    let u64_of = |b: &[u8]| u64::from_le_bytes(b.try_into().unwrap_or([0; 8]));
    let len = u32::from_le_bytes(take(rest, 4)?.try_into().ok()?) as usize;
    let rel = std::str::from_utf8(take(rest, len)?).ok()?;
    let nums = take(rest, 40)?;
    let mode = u32::from_le_bytes(take(rest, 4)?.try_into().ok()?);
    let blake3: [u8; 32] = take(rest, 32)?.try_into().ok()?;
    Some(CachedFile {
        rel,
        stat: FileStat {
            dev: u64_of(&nums[0..8]),
            ino: u64_of(&nums[8..16]),
            size: u64_of(&nums[16..24]),
            mtime_ns: u64_of(&nums[24..32]) as i64,
            ctime_ns: u64_of(&nums[32..40]) as i64,
            mode,
        },
        blake3,
    })
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
        cache: Option<(&str, &TreeCache)>,
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
            tx.execute(
                "INSERT INTO tree_cache (root, manifest, files) VALUES (?1, ?2, ?3)
                 ON CONFLICT(root) DO UPDATE SET manifest = excluded.manifest, files = excluded.files",
                params![root, cache.manifest.as_ref().map(Digest::as_str), cache.encoded()],
            )
            .map_err(e("update stat cache"))?;
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

    /// The stat cache of a snapshot root (an absolute path).
    pub fn tree_cache(&self, root: &str) -> Result<TreeCache> {
        let row: Option<(Option<String>, Vec<u8>)> = self
            .c
            .db
            .query_row("SELECT manifest, files FROM tree_cache WHERE root = ?1", [root], |r| Ok((r.get(0)?, r.get(1)?)))
            .optional()
            .map_err(self.c.err("read stat cache"))?;
        Ok(row
            .and_then(|(manifest, blob)| TreeCache::from_encoded(manifest.and_then(|m| Digest::parse(&m).ok()), blob))
            .unwrap_or_default())
    }

    /// Every stored record, for fsck.
    /// Every stat-cache row: (root, manifest, encoded files).
    pub(crate) fn tree_cache_rows(&self) -> Result<Vec<CacheRow>> {
        let rows = self
            .c
            .db
            .query_rows("SELECT root, manifest, files FROM tree_cache", params![])
            .map_err(self.c.err("read the stat cache"))?;
        let mut out = Vec::new();
        for r in rows {
            let root: String = r.get(0).map_err(self.c.err("read the stat cache"))?;
            let manifest: Option<String> = r.get(1).map_err(self.c.err("read the stat cache"))?;
            let files: Vec<u8> = r.get(2).unwrap_or_default();
            out.push((root, manifest.and_then(|m| Digest::parse(&m).ok()), files));
        }
        Ok(out)
    }

    pub(crate) fn drop_tree_cache(&self, root: &str) -> Result<()> {
        self.c
            .db
            .execute("DELETE FROM tree_cache WHERE root = ?1", [root])
            .map_err(self.c.err("drop a stat-cache row"))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tree_cache_round_trips_and_garbage_is_a_miss() {
        let f = CachedFile {
            rel: "a/b.csv",
            stat: FileStat { dev: 1, ino: 2, size: 3, mtime_ns: -4, ctime_ns: 5, mode: 0o644 },
            blake3: [7; 32],
        };
        let files = vec![f, CachedFile { rel: "é", ..f }];
        let c = TreeCache::new(None, files.clone());
        assert_eq!(c.len(), 2);
        assert_eq!(c.files().collect::<Vec<_>>(), files);
        let back = TreeCache::from_encoded(None, c.encoded().to_vec()).expect("decodes");
        assert_eq!(back, c);
        for bad in [&b""[..], b"RTC", b"RTC1\x05\0\0\0ab", b"XXXX"] {
            assert!(TreeCache::from_encoded(None, bad.to_vec()).is_none(), "{bad:?}");
        }
        let empty = TreeCache::from_encoded(None, b"RTC1".to_vec()).expect("empty");
        assert!(empty.is_empty() && empty == TreeCache::default());
        let enc = c.encoded().to_vec();
        for cut in 4..enc.len() {
            let partial = TreeCache::from_encoded(None, enc[..cut].to_vec());
            // Only a cut between records decodes, and then to a prefix of the files.
            if let Some(p) = partial {
                assert_eq!(p.files().collect::<Vec<_>>(), files[..p.len()].to_vec(), "cut at {cut}");
            }
        }
    }
}
