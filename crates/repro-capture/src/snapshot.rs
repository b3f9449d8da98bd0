//! Data snapshots: hash a file or a folder in parallel, store new contents in the object
//! store (unless reference-only), and record the manifest whose digest names the snapshot.
//!
//! A stat cache per snapshot root (device, inode, size, mtime, ctime, mode → digest) lets
//! an unchanged tree be re-snapshotted with `stat` calls only: when every file matches,
//! even the manifest is not rebuilt. Files modified under two seconds ago are not cached,
//! since a write in the same clock tick would leave their times unchanged.

use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use rayon::prelude::*;
use repro_core::progress::Progress;
use repro_core::record::FileEntry;
use repro_core::snapshot::{Manifest, SnapshotKind};
use repro_core::Digest;
use repro_store::datasets::{CachedFile, DatasetVersion, SnapshotRow, TreeCache};
use repro_store::objects::FileStat;
use repro_store::{Batch, Store};
use serde::Serialize;

use crate::{CaptureError, Result};

const SMALL_FILE: u64 = 4 * 1024 * 1024;
const RACY_NS: i64 = 2_000_000_000;
/// Folders never taken into a snapshot: repro's own store and git's.
const SKIPPED_DIRS: [&str; 2] = [".repro", ".git"];

#[derive(Clone, Debug)]
pub struct Request<'a> {
    /// The file or folder to snapshot.
    pub path: &'a Path,
    /// Record digests only; do not copy contents into the store.
    pub reference: bool,
    /// Register as a version of this dataset name, with this source description.
    pub dataset: Option<(&'a str, &'a str)>,
    /// Files this process has just written and verified (a replay's restored input): their
    /// stats and digests answer in place of the stored stat cache, even the ones written
    /// in the last two seconds, since nothing else writes to a replay's private tree.
    pub verified: Option<&'a TreeCache>,
}

#[derive(Clone, Debug, Serialize)]
pub struct Outcome {
    pub digest: Digest,
    pub kind: SnapshotKind,
    pub files: u64,
    pub bytes: u64,
    pub reference: bool,
    /// Files hashed this time (not answered by the stat cache).
    pub hashed_files: u64,
    pub hashed_bytes: u64,
    pub new_objects: u64,
    pub new_bytes: u64,
    pub dataset: Option<DatasetVersion>,
}

/// A file found under the root: its path relative to the root and what it looked like.
struct Found {
    rel: String,
    stat: FileStat,
}

pub fn snapshot(store: &mut Store, req: &Request<'_>, progress: &dyn Progress) -> Result<Outcome> {
    let cwd = std::env::current_dir().unwrap_or_default();
    let root = fs::canonicalize(req.path).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => CaptureError::NoSuchPath { path: req.path.to_path_buf(), cwd: cwd.clone() },
        _ => CaptureError::Io { action: "read", path: req.path.to_path_buf(), source: e },
    })?;
    let meta = fs::metadata(&root).map_err(CaptureError::io("read", &root))?;
    tracing::debug!(path = %root.display(), "snapshot start");
    let (kind, mut found) = if meta.is_dir() {
        (SnapshotKind::Dir, walk(&root, "")?)
    } else if meta.is_file() {
        let name = root.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| "file".into());
        (SnapshotKind::File, vec![Found { rel: name, stat: FileStat::of(&meta) }])
    } else {
        return Err(CaptureError::Unsupported { path: root, kind: "special file" });
    };
    let abs = |f: &Found| if kind == SnapshotKind::Dir { root.join(&f.rel) } else { root.clone() };
    // Sorted by relative path: the manifest's order and the stat cache's, so the two
    // merge without a hash map.
    found.sort_unstable_by(|a, b| a.rel.cmp(&b.rel));
    tracing::debug!(files = found.len(), "walked");

    let root_key = root.display().to_string();
    let stored;
    let cache = match req.verified {
        Some(v) => v,
        None => {
            stored = store.meta.datasets().tree_cache(&root_key)?;
            &stored
        }
    };
    // Raw BLAKE3 digests: made into text only where a manifest or an object needs them.
    let mut digests: Vec<Option<[u8; 32]>> = Vec::with_capacity(found.len());
    let mut rows = cache.files().peekable();
    let mut unchanged = found.len() == cache.len();
    for f in &found {
        while rows.peek().is_some_and(|c| c.rel < f.rel.as_str()) {
            rows.next();
        }
        let hit = rows.peek().filter(|c| c.rel == f.rel && same_file(&c.stat, &f.stat)).map(|c| c.blake3);
        unchanged &= hit.is_some() && rows.peek().is_some_and(|c| c.stat.mode == f.stat.mode);
        digests.push(hit);
    }
    tracing::debug!(cached = cache.len(), unchanged, "stat cache merged");

    let batch = store.objects.batch()?;
    let hashed_files = AtomicU64::new(0);
    let hashed_bytes = AtomicU64::new(0);
    let mut fresh = vec![false; found.len()];
    let process = |idxs: &[usize], digests: &mut Vec<Option<[u8; 32]>>, fresh: &mut Vec<bool>| -> Result<()> {
        if idxs.is_empty() {
            return Ok(());
        }
        let total: u64 = idxs.iter().map(|&i| found[i].stat.size).sum();
        progress.start(if req.reference { "hashing" } else { "storing" }, total);
        let results: Vec<(usize, Result<Digest>)> = idxs
            .par_iter()
            .map(|&i| {
                let f = &found[i];
                let r = hash_and_store(&abs(f), &f.stat, if req.reference { None } else { Some(&batch) });
                hashed_files.fetch_add(1, Ordering::Relaxed);
                hashed_bytes.fetch_add(f.stat.size, Ordering::Relaxed);
                progress.advance(f.stat.size);
                (i, r)
            })
            .collect();
        progress.finish();
        for (i, r) in results {
            digests[i] = Some(r?.raw());
            fresh[i] = true;
        }
        Ok(())
    };

    let misses: Vec<usize> = (0..found.len()).filter(|&i| digests[i].is_none()).collect();
    process(&misses, &mut digests, &mut fresh)?;
    tracing::debug!(hashed = misses.len(), "hashed");

    let build = |digests: &[Option<[u8; 32]>]| {
        let entries = found
            .iter()
            .zip(digests)
            .map(|(f, d)| FileEntry {
                path: f.rel.clone(),
                size: f.stat.size,
                mode: f.stat.mode,
                digest: text(d.as_ref().expect("every file has a digest by now")),
            })
            .collect();
        let manifest = Manifest::new(kind, entries);
        let bytes = manifest.to_bytes();
        (Digest::of_bytes(&bytes), Some(bytes))
    };
    // Every file as the cache remembers it: the manifest is the one the cache was made from.
    let (mut digest, mut manifest_bytes) = match (&cache.manifest, unchanged) {
        (Some(m), true) => (m.clone(), None),
        _ => build(&digests),
    };
    tracing::debug!(rebuilt = manifest_bytes.is_some(), "manifest");

    let known = store.meta.datasets().snapshot(&digest)?;
    if !req.reference && !known.as_ref().is_some_and(|k| k.stored) {
        // Cached digests say nothing about the store: make sure their objects are there.
        let cached: Vec<usize> = (0..found.len()).filter(|&i| !fresh[i]).collect();
        let names: Vec<Digest> = cached.iter().map(|&i| text(digests[i].as_ref().expect("digest"))).collect();
        let held = store.objects.contains_many(&names);
        let absent: Vec<usize> = cached.into_iter().zip(held).filter(|(_, held)| !held).map(|(i, _)| i).collect();
        if !absent.is_empty() {
            process(&absent, &mut digests, &mut fresh)?;
            (digest, manifest_bytes) = build(&digests);
        }
    }
    if !store.objects.contains(&digest) {
        // Store the manifest under the digest of the bytes written, never a remembered one.
        let bytes = match manifest_bytes {
            Some(b) => b,
            None => {
                let (d, b) = build(&digests);
                digest = d;
                b.expect("built")
            }
        };
        batch.add_bytes(&digest, &bytes)?;
    }
    let (new_objects, new_bytes) = batch.pending();
    batch.commit()?;
    tracing::debug!(new_objects, "objects durable");

    // The cache to keep: every file not modified in the last two seconds. When every file
    // matched the cache and the manifest came from it, the cache is already right.
    let reused = unchanged && cache.manifest.as_ref() == Some(&digest);
    let new_cache = if reused {
        None
    } else {
        let cutoff = now_ns() - RACY_NS;
        let complete = found.iter().all(|f| f.stat.mtime_ns < cutoff);
        let cacheable = found.iter().zip(&digests).filter(|(f, _)| f.stat.mtime_ns < cutoff).map(|(f, d)| CachedFile {
            rel: &f.rel,
            stat: f.stat,
            blake3: *d.as_ref().expect("digest"),
        });
        Some(TreeCache::new(complete.then(|| digest.clone()), cacheable)).filter(|c| c != cache)
    };
    let cache_changed = new_cache.is_some();

    let files = found.len() as u64;
    let bytes: u64 = found.iter().map(|f| f.stat.size).sum();
    let row = SnapshotRow {
        digest: digest.clone(),
        kind: match kind {
            SnapshotKind::File => "file".into(),
            SnapshotKind::Dir => "dir".into(),
        },
        files,
        bytes,
        stored: !req.reference,
        created_ms: repro_util::clock::now_ms(),
    };
    // Nothing new to say (the common re-snapshot): skip the write transaction and its fsync.
    let known_fully = known.is_some_and(|k| k.stored || req.reference) && !cache_changed;
    let known_version = match (known_fully, req.dataset) {
        (true, Some((name, _))) => store.meta.datasets().version_of(name, &digest)?.map(Some),
        (true, None) => Some(None),
        (false, _) => None,
    };
    let dataset = match known_version {
        Some(v) => v,
        None => store.meta.datasets().record_snapshot(
            &row,
            req.dataset.map(|(n, s)| (n, s, req.reference)),
            new_cache.as_ref().map(|c| (root_key.as_str(), c)),
        )?,
    };
    tracing::debug!("snapshot recorded");
    Ok(Outcome {
        digest,
        kind,
        files,
        bytes,
        reference: req.reference,
        hashed_files: hashed_files.into_inner(),
        hashed_bytes: hashed_bytes.into_inner(),
        new_objects: new_objects as u64,
        new_bytes,
        dataset,
    })
}

fn text(raw: &[u8; 32]) -> Digest {
    Digest::from_hash(blake3::Hash::from_bytes(*raw))
}

fn same_file(a: &FileStat, b: &FileStat) -> bool {
    a.dev == b.dev && a.ino == b.ino && a.size == b.size && a.mtime_ns == b.mtime_ns && a.ctime_ns == b.ctime_ns
}

fn hash_and_store(path: &Path, stat: &FileStat, batch: Option<&Batch<'_>>) -> Result<Digest> {
    match batch {
        Some(batch) if stat.size <= SMALL_FILE => {
            // Read once: hash and store the very same bytes.
            let mut buf = Vec::with_capacity(stat.size as usize);
            fs::File::open(path).and_then(|mut h| h.read_to_end(&mut buf)).map_err(CaptureError::io("read", path))?;
            let d = Digest::of_bytes(&buf);
            batch.add_bytes(&d, &buf)?;
            Ok(d)
        }
        Some(batch) => {
            let (d, _) = repro_util::hash::hash_file(path).map_err(CaptureError::io("read", path))?;
            batch.add_copy(&d, path, stat)?;
            Ok(d)
        }
        None => Ok(repro_util::hash::hash_file(path).map_err(CaptureError::io("read", path))?.0),
    }
}

/// Lists every file under `dir`, folders in parallel.
fn walk(dir: &Path, rel: &str) -> Result<Vec<Found>> {
    let mut files = Vec::new();
    let mut subdirs: Vec<(PathBuf, String)> = Vec::new();
    for entry in fs::read_dir(dir).map_err(CaptureError::io("list", dir))? {
        let entry = entry.map_err(CaptureError::io("list", dir))?;
        let name = entry.file_name();
        let name = name.to_string_lossy();
        let child_rel = if rel.is_empty() { name.to_string() } else { format!("{rel}/{name}") };
        let ft = entry.file_type().map_err(CaptureError::io("read", entry.path()))?;
        if ft.is_dir() {
            if !SKIPPED_DIRS.contains(&name.as_ref()) {
                subdirs.push((entry.path(), child_rel));
            }
            continue;
        }
        // Plain files: stat relative to the open folder (no path walk). Symlinks are
        // followed to files; a symlinked folder could loop, so it is refused.
        if ft.is_file() {
            let meta = entry.metadata().map_err(CaptureError::io("read", entry.path()))?;
            files.push(Found { rel: child_rel, stat: FileStat::of(&meta) });
            continue;
        }
        let abs = entry.path();
        let meta = fs::metadata(&abs).map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => CaptureError::Unsupported { path: abs.clone(), kind: "dangling symlink" },
            _ => CaptureError::Io { action: "read", path: abs.clone(), source: e },
        })?;
        if meta.is_file() {
            files.push(Found { rel: child_rel, stat: FileStat::of(&meta) });
        } else if meta.is_dir() {
            return Err(CaptureError::Unsupported { path: abs, kind: "symlink to a folder" });
        } else {
            return Err(CaptureError::Unsupported { path: abs, kind: "special file (socket, FIFO or device)" });
        }
    }
    let nested: Vec<Vec<Found>> = subdirs.par_iter().map(|(abs, rel)| walk(abs, rel)).collect::<Result<_>>()?;
    files.extend(nested.into_iter().flatten());
    Ok(files)
}

fn now_ns() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos() as i64).unwrap_or(0)
}

/// Reads a snapshot's manifest from the store (verified).
pub fn manifest(store: &Store, digest: &Digest) -> Result<Manifest> {
    let bytes = store.objects.read(digest)?;
    Manifest::from_bytes(&bytes).map_err(|e| CaptureError::Invalid {
        path: store.objects.path_of(digest),
        message: format!("object {} is not a snapshot manifest ({e})", digest.short()),
    })
}
