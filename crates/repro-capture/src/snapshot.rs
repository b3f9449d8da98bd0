//! Data snapshots: hash a file or a folder in parallel, store new contents in the object
//! store (unless reference-only), and record the manifest whose digest names the snapshot.
//!
//! A stat cache (device, inode, size, mtime, ctime → digest) lets an unchanged tree be
//! re-snapshotted with `stat` calls only. Entries younger than two seconds are not cached,
//! since a write in the same clock tick would leave the times unchanged.

use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use rayon::prelude::*;
use repro_core::record::FileEntry;
use repro_core::snapshot::{Manifest, SnapshotKind};
use repro_core::Digest;
use repro_store::fsck::Progress;
use repro_store::meta::{DatasetVersion, SnapshotRow, StatEntry};
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

struct Found {
    rel: String,
    abs: PathBuf,
    meta: fs::Metadata,
}

struct Stat {
    dev: u64,
    ino: u64,
    size: u64,
    mtime_ns: i64,
    ctime_ns: i64,
}

#[cfg(unix)]
fn stat_of(m: &fs::Metadata) -> Stat {
    use std::os::unix::fs::MetadataExt;
    Stat {
        dev: m.dev(),
        ino: m.ino(),
        size: m.len(),
        mtime_ns: m.mtime() * 1_000_000_000 + m.mtime_nsec(),
        ctime_ns: m.ctime() * 1_000_000_000 + m.ctime_nsec(),
    }
}

#[cfg(not(unix))]
fn stat_of(m: &fs::Metadata) -> Stat {
    let mtime_ns = m
        .modified()
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map(|d| d.as_nanos() as i64)
        .unwrap_or(0);
    Stat { dev: 0, ino: 0, size: m.len(), mtime_ns, ctime_ns: mtime_ns }
}

pub fn snapshot(store: &mut Store, req: &Request<'_>, progress: &dyn Progress) -> Result<Outcome> {
    let cwd = std::env::current_dir().unwrap_or_default();
    let root = fs::canonicalize(req.path).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => CaptureError::NoSuchPath { path: req.path.to_path_buf(), cwd: cwd.clone() },
        _ => CaptureError::Io { action: "read", path: req.path.to_path_buf(), source: e },
    })?;
    let meta = fs::metadata(&root).map_err(CaptureError::io("read", &root))?;
    let (kind, found, cache_prefix) = if meta.is_dir() {
        (SnapshotKind::Dir, walk(&root, "")?, format!("{}/", root.display()))
    } else if meta.is_file() {
        let name = root.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| "file".into());
        (SnapshotKind::File, vec![Found { rel: name, abs: root.clone(), meta }], root.display().to_string())
    } else {
        return Err(CaptureError::Unsupported { path: root, kind: "special file" });
    };

    let cache = store.meta.stat_cache_under(&cache_prefix)?;
    let key = |f: &Found| f.abs.display().to_string();
    let mut digests: Vec<Option<Digest>> = found
        .iter()
        .map(|f| {
            let s = stat_of(&f.meta);
            cache.get(&key(f)).and_then(|c| {
                (c.dev == s.dev
                    && c.ino == s.ino
                    && c.size == s.size
                    && c.mtime_ns == s.mtime_ns
                    && c.ctime_ns == s.ctime_ns)
                    .then(|| c.digest.clone())
            })
        })
        .collect();

    let batch = store.objects.batch()?;
    let hashed_files = AtomicU64::new(0);
    let hashed_bytes = AtomicU64::new(0);
    let mut fresh = vec![false; found.len()];
    let process = |idxs: &[usize], digests: &mut Vec<Option<Digest>>, fresh: &mut Vec<bool>| -> Result<()> {
        let total: u64 = idxs.iter().map(|&i| found[i].meta.len()).sum();
        progress.start(if req.reference { "hashing" } else { "storing" }, total);
        let results: Vec<(usize, Result<Digest>)> = idxs
            .par_iter()
            .map(|&i| {
                let f = &found[i];
                let r = hash_and_store(f, if req.reference { None } else { Some(&batch) });
                hashed_files.fetch_add(1, Ordering::Relaxed);
                hashed_bytes.fetch_add(f.meta.len(), Ordering::Relaxed);
                progress.advance(f.meta.len());
                (i, r)
            })
            .collect();
        progress.finish();
        for (i, r) in results {
            digests[i] = Some(r?);
            fresh[i] = true;
        }
        Ok(())
    };

    let misses: Vec<usize> = (0..found.len()).filter(|&i| digests[i].is_none()).collect();
    process(&misses, &mut digests, &mut fresh)?;

    let build = |digests: &[Option<Digest>]| {
        let entries = found
            .iter()
            .zip(digests)
            .map(|(f, d)| FileEntry {
                path: f.rel.clone(),
                size: f.meta.len(),
                mode: crate::git::mode_of(&f.meta),
                digest: d.clone().expect("every file has a digest by now"),
            })
            .collect();
        Manifest::new(kind, entries)
    };
    let mut manifest = build(&digests);
    let mut digest = manifest.digest();

    if !req.reference {
        // Cached digests say nothing about the store: make sure their objects are there,
        // unless this very snapshot is already known to be stored.
        let known_stored = store.meta.get_snapshot(&digest)?.map(|s| s.stored).unwrap_or(false);
        if !known_stored {
            let absent: Vec<usize> = (0..found.len())
                .filter(|&i| !fresh[i] && !store.objects.contains(digests[i].as_ref().expect("digest")))
                .collect();
            if !absent.is_empty() {
                process(&absent, &mut digests, &mut fresh)?;
                manifest = build(&digests);
                digest = manifest.digest();
            }
        }
    }

    batch.add_bytes(&digest, &manifest.to_bytes())?;
    let (new_objects, new_bytes) = batch.pending();
    batch.commit()?;

    let cutoff = now_ns() - RACY_NS;
    let stat_updates: Vec<(String, StatEntry)> = found
        .iter()
        .zip(&digests)
        .zip(&fresh)
        .filter(|(_, &fresh)| fresh)
        .filter_map(|((f, d), _)| {
            let s = stat_of(&f.meta);
            (s.mtime_ns < cutoff).then(|| {
                (
                    key(f),
                    StatEntry {
                        dev: s.dev,
                        ino: s.ino,
                        size: s.size,
                        mtime_ns: s.mtime_ns,
                        ctime_ns: s.ctime_ns,
                        digest: d.clone().expect("digest"),
                    },
                )
            })
        })
        .collect();
    let row = SnapshotRow {
        digest: digest.clone(),
        kind: match kind {
            SnapshotKind::File => "file".into(),
            SnapshotKind::Dir => "dir".into(),
        },
        files: manifest.entries.len() as u64,
        bytes: manifest.total_bytes(),
        stored: !req.reference,
        created_ms: repro_store::now_ms(),
    };
    let dataset = store.meta.record_snapshot(&row, req.dataset.map(|(n, s)| (n, s, req.reference)), &stat_updates)?;
    Ok(Outcome {
        digest,
        kind,
        files: row.files,
        bytes: row.bytes,
        reference: req.reference,
        hashed_files: hashed_files.into_inner(),
        hashed_bytes: hashed_bytes.into_inner(),
        new_objects: new_objects as u64,
        new_bytes,
        dataset,
    })
}

fn hash_and_store(f: &Found, batch: Option<&Batch<'_>>) -> Result<Digest> {
    let size = f.meta.len();
    match batch {
        Some(batch) if size <= SMALL_FILE => {
            // Read once: hash and store the very same bytes.
            let mut buf = Vec::with_capacity(size as usize);
            fs::File::open(&f.abs)
                .and_then(|mut h| h.read_to_end(&mut buf))
                .map_err(CaptureError::io("read", &f.abs))?;
            let d = Digest::of_bytes(&buf);
            batch.add_bytes(&d, &buf)?;
            Ok(d)
        }
        Some(batch) => {
            let (d, _) = repro_store::objects::hash_file(&f.abs).map_err(CaptureError::io("read", &f.abs))?;
            batch.add_copy(&d, &f.abs, &f.meta)?;
            Ok(d)
        }
        None => Ok(repro_store::objects::hash_file(&f.abs).map_err(CaptureError::io("read", &f.abs))?.0),
    }
}

/// Lists every file under `dir`, folders in parallel.
fn walk(dir: &Path, rel: &str) -> Result<Vec<Found>> {
    let mut files = Vec::new();
    let mut subdirs = Vec::new();
    for entry in fs::read_dir(dir).map_err(CaptureError::io("list", dir))? {
        let entry = entry.map_err(CaptureError::io("list", dir))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let child_rel = if rel.is_empty() { name.clone() } else { format!("{rel}/{name}") };
        let abs = entry.path();
        let ft = entry.file_type().map_err(CaptureError::io("read", &abs))?;
        if ft.is_dir() {
            if !SKIPPED_DIRS.contains(&name.as_str()) {
                subdirs.push((abs, child_rel));
            }
            continue;
        }
        // Symlinks are followed to files; a symlinked folder could loop, so it is refused.
        let meta = fs::metadata(&abs).map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => CaptureError::Unsupported { path: abs.clone(), kind: "dangling symlink" },
            _ => CaptureError::Io { action: "read", path: abs.clone(), source: e },
        })?;
        if meta.is_file() {
            files.push(Found { rel: child_rel, abs, meta });
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
