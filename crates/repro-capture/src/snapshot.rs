//! Data snapshots: hash a file or a folder in parallel, store new contents in the object
//! store (unless reference-only), and record the manifest whose digest names the snapshot.
//!
//! A stat cache per snapshot root (device, inode, size, mtime, ctime, mode → digest) lets
//! an unchanged tree be re-snapshotted with `stat` calls only: when every file matches,
//! even the manifest is not rebuilt. Files modified under two seconds ago are not cached,
//! since a write in the same clock tick would leave their times unchanged.

use std::fs;
use std::io::Read;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use rayon::prelude::*;
use repro_core::progress::Progress;
use repro_core::record::FileEntry;
use repro_core::snapshot::{
    chunk_bytes, chunk_ranges, root_bytes, ChunkRef, EntryRef, Manifest, RawDigest, SnapshotKind, CHUNKED_OVER,
};
use repro_core::Digest;
use repro_store::datasets::{CacheChunk, CacheUpdate, CachedFile, DatasetVersion, SnapshotRow, TreeCache};
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

/// A manifest made (or remembered): its digest, the root's bytes when they were made, and
/// the chunks serialized anew.
struct Built {
    digest: Digest,
    root: Option<Vec<u8>>,
    chunks: Vec<(Digest, Vec<u8>)>,
    /// Each chunk's digest, in order (empty when remembered or kept whole).
    chunk_digests: Vec<Digest>,
    reused: usize,
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
    // The walk lists each folder in order, so this is a check; names made lossy (not
    // UTF-8) can still need the sort.
    if !found.is_sorted_by(|a, b| a.rel < b.rel) {
        found.sort_unstable_by(|a, b| a.rel.cmp(&b.rel));
    }
    tracing::debug!(files = found.len(), "walked");

    let root_key = root.display().to_string();
    let stored_cache;
    let cache = match req.verified {
        Some(v) => v,
        None => {
            stored_cache = store.meta.datasets().tree_cache(&root_key)?;
            &stored_cache
        }
    };
    // Raw BLAKE3 digests: made into text only where a manifest or an object needs them.
    let mut digests: Vec<Option<[u8; 32]>> = Vec::with_capacity(found.len());
    // Whether the cache says the file's object is in the store already.
    let mut held: Vec<bool> = Vec::with_capacity(found.len());
    let mut rows = cache.files().peekable();
    let mut unchanged = found.len() == cache.len();
    for f in &found {
        while rows.peek().is_some_and(|(_, c)| c.rel < f.rel.as_str()) {
            rows.next();
        }
        let hit = rows.peek().filter(|(_, c)| c.rel == f.rel && same_file(&c.stat, &f.stat));
        unchanged &= hit.is_some_and(|(_, c)| c.stat.mode == f.stat.mode);
        held.push(hit.is_some_and(|(chunk, _)| chunk.stored));
        digests.push(hit.map(|(_, c)| c.blake3));
    }
    tracing::debug!(cached = cache.len(), unchanged, "stat cache merged");

    let objects = &store.objects;
    let batch = objects.batch()?;
    let hashed_files = AtomicU64::new(0);
    let hashed_bytes = AtomicU64::new(0);
    let mut fresh = vec![false; found.len()];
    let process = |idxs: &[usize], digests: &mut Vec<Option<[u8; 32]>>, fresh: &mut Vec<bool>| -> Result<()> {
        if idxs.is_empty() {
            return Ok(());
        }
        let total: u64 = idxs.iter().map(|&i| found[i].stat.size).sum();
        progress.start(if req.reference { "hashing" } else { "storing" }, total);
        let results: Vec<(usize, Result<[u8; 32]>)> = idxs
            .par_iter()
            .map(|&i| {
                let f = &found[i];
                let r = hash_and_store(&abs(f), &f.stat, if req.reference { None } else { Some(&batch) });
                hashed_files.fetch_add(1, Ordering::Relaxed);
                // Progress moves by whole MiB: a call per small file cost a lock each.
                let before = hashed_bytes.fetch_add(f.stat.size, Ordering::Relaxed);
                let mib = ((before + f.stat.size) >> 20) - (before >> 20);
                if mib > 0 {
                    progress.advance(mib << 20);
                }
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
    tracing::debug!(hashed = misses.len(), "hashed");

    // The manifest's chunks (one for a tree small enough to keep whole), by the paths alone.
    let chunked = found.len() > CHUNKED_OVER;
    let ranges = chunk_ranges(found.iter().map(|f| f.rel.as_str()));
    // A chunk of the cache whose files all matched, unchanged and not hashed again, names
    // the manifest chunk they make: it is neither serialized nor hashed again.
    let reusable = |r: &Range<usize>, fresh: &[bool]| -> Option<&CacheChunk> {
        let old = cache.chunk(&found.get(r.start)?.rel).filter(|c| c.digest.is_some() && c.len() == r.len())?;
        old.files()
            .zip(r.clone())
            .all(|(c, i)| {
                let f = &found[i];
                !fresh[i] && c.rel == f.rel && same_file(&c.stat, &f.stat) && c.stat.mode == f.stat.mode
            })
            .then_some(old)
    };
    let entry = |i: usize, digests: &[Option<[u8; 32]>]| FileEntry {
        path: found[i].rel.clone(),
        size: found[i].stat.size,
        mode: found[i].stat.mode,
        digest: text(digests[i].as_ref().expect("every file has a digest by now")),
    };
    let chunk_of = |r: &Range<usize>, digests: &[Option<[u8; 32]>]| -> (Digest, Vec<u8>) {
        let part: Vec<EntryRef<'_>> = r
            .clone()
            .map(|i| EntryRef {
                path: &found[i].rel,
                size: found[i].stat.size,
                mode: found[i].stat.mode,
                digest: RawDigest(digests[i].expect("every file has a digest by now")),
            })
            .collect();
        let bytes = chunk_bytes(&part);
        (Digest::of_bytes(&bytes), bytes)
    };
    let build = |digests: &[Option<[u8; 32]>], fresh: &[bool]| -> Built {
        if !chunked {
            let enc = Manifest::new(kind, (0..found.len()).map(|i| entry(i, digests)).collect()).encode();
            return Built {
                digest: enc.digest,
                root: Some(enc.root),
                chunks: Vec::new(),
                chunk_digests: Vec::new(),
                reused: 0,
            };
        }
        // Chunks are made on every core: at a million files, serializing them one after
        // another was a tenth of a --reference snapshot.
        let made: Vec<(ChunkRef, Option<Vec<u8>>)> = ranges
            .par_iter()
            .map(|r| {
                let bytes = found[r.clone()].iter().map(|f| f.stat.size).sum();
                let old = reusable(r, fresh).and_then(|c| c.digest.clone());
                let (digest, new) = match old.filter(|d| objects.contains(d)) {
                    Some(d) => (d, None),
                    None => {
                        let (d, b) = chunk_of(r, digests);
                        (d, Some(b))
                    }
                };
                (ChunkRef { first: found[r.start].rel.clone(), files: r.len() as u64, bytes, digest }, new)
            })
            .collect();
        let reused = made.iter().filter(|(_, new)| new.is_none()).count();
        let mut refs = Vec::with_capacity(made.len());
        let mut chunks = Vec::new();
        for (r, new) in made {
            chunks.extend(new.map(|b| (r.digest.clone(), b)));
            refs.push(r);
        }
        let chunk_digests: Vec<Digest> = refs.iter().map(|c| c.digest.clone()).collect();
        let root = root_bytes(kind, refs);
        Built { digest: Digest::of_bytes(&root), root: Some(root), chunks, chunk_digests, reused }
    };
    // Every file as the cache remembers it: the manifest is the one the cache was made from.
    let mut built = match (&cache.manifest, unchanged) {
        (Some(m), true) => {
            Built { digest: m.clone(), root: None, chunks: Vec::new(), chunk_digests: Vec::new(), reused: ranges.len() }
        }
        _ => build(&digests, &fresh),
    };
    tracing::debug!(rebuilt = built.root.is_some(), chunks = ranges.len(), reused = built.reused, "manifest");

    let known = store.meta.datasets().snapshot(&built.digest)?;
    if !req.reference && !known.as_ref().is_some_and(|k| k.stored) {
        // Cached digests say nothing about the store, unless the cache saw the objects
        // stored: make sure the others are there.
        let cached: Vec<usize> = (0..found.len()).filter(|&i| !fresh[i] && !held[i]).collect();
        let names: Vec<Digest> = cached.iter().map(|&i| text(digests[i].as_ref().expect("digest"))).collect();
        let there = store.objects.contains_many(&names);
        let absent: Vec<usize> = cached.into_iter().zip(there).filter(|(_, there)| !there).map(|(i, _)| i).collect();
        tracing::debug!(checked = names.len(), absent = absent.len(), "objects looked for");
        if !absent.is_empty() {
            process(&absent, &mut digests, &mut fresh)?;
            built = build(&digests, &fresh);
        }
    }
    if !store.objects.contains(&built.digest) {
        // Store the manifest under the digest of the bytes written, never a remembered one.
        if built.root.is_none() {
            built = build(&digests, &fresh);
        }
        for (d, bytes) in &built.chunks {
            batch.add_bytes(d, bytes)?;
        }
        batch.add_bytes(&built.digest, built.root.as_deref().expect("built"))?;
    }
    let digest = built.digest.clone();
    let (new_objects, new_bytes) = batch.pending();
    batch.commit()?;
    tracing::debug!(new_objects, new_bytes, "objects durable");

    // The cache to keep, chunk by chunk: every file not modified in the last two seconds.
    // A chunk's row is written only when it changed. A replay's tree keeps none: it is
    // private to the replay, and its restore's digests were the cache.
    let cutoff = now_ns() - RACY_NS;
    let complete = found.iter().all(|f| f.stat.mtime_ns < cutoff);
    let mut new_chunks: Vec<CacheChunk> = Vec::new();
    let mut kept: Vec<&str> = Vec::with_capacity(ranges.len());
    for (k, r) in ranges.iter().enumerate() {
        let first = found[r.start].rel.as_str();
        let old = cache.chunk(first);
        let stored = !req.reference || old.is_some_and(|c| c.stored);
        if let Some(old) = reusable(r, &fresh) {
            if old.stored != stored {
                new_chunks.push(old.with_stored(stored));
            }
            kept.push(first);
            continue;
        }
        let cacheable: Vec<usize> = r.clone().filter(|&i| found[i].stat.mtime_ns < cutoff).collect();
        let chunk_digest = (chunked && cacheable.len() == r.len()).then(|| match built.chunk_digests.get(k) {
            Some(d) => d.clone(),
            None => chunk_of(r, &digests).0,
        });
        let files = cacheable.iter().map(|&i| CachedFile {
            rel: &found[i].rel,
            stat: found[i].stat,
            blake3: *digests[i].as_ref().expect("digest"),
        });
        let chunk = CacheChunk::new(first.to_string(), chunk_digest, stored, files);
        // A chunk with no file old enough to trust has no row (an old one is dropped).
        if chunk.is_empty() {
            continue;
        }
        kept.push(first);
        if old != Some(&chunk) {
            new_chunks.push(chunk);
        }
    }
    let manifest = complete.then(|| digest.clone());
    let gone: Vec<&str> =
        cache.chunks().iter().map(|c| c.first.as_str()).filter(|f| kept.binary_search(f).is_err()).collect();
    let update = CacheUpdate { manifest, write: new_chunks.iter().collect(), drop: gone };
    let cache_changed = req.verified.is_none()
        && (!update.write.is_empty() || !update.drop.is_empty() || update.manifest != cache.manifest);
    tracing::debug!(rows = update.write.len(), dropped = update.drop.len(), "stat cache");

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
            cache_changed.then_some((root_key.as_str(), &update)),
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

/// Hashes one file (and stores it, given a batch) and returns its raw digest.
fn hash_and_store(path: &Path, stat: &FileStat, batch: Option<&Batch<'_>>) -> Result<[u8; 32]> {
    thread_local! {
        /// Each hashing thread reads small files into one buffer: at a million files, an
        /// allocation per file showed in the profile.
        static BUF: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
    }
    if stat.size > SMALL_FILE {
        let (d, _) = repro_util::hash::hash_file(path).map_err(CaptureError::io("read", path))?;
        if let Some(batch) = batch {
            batch.add_copy(&d, path, stat)?;
        }
        return Ok(d.raw());
    }
    // Read once: hash and store the very same bytes.
    BUF.with(|buf| {
        let mut buf = buf.borrow_mut();
        buf.clear();
        fs::File::open(path).and_then(|mut h| h.read_to_end(&mut buf)).map_err(CaptureError::io("read", path))?;
        let raw = *blake3::hash(&buf).as_bytes();
        if let Some(batch) = batch {
            batch.add_bytes(&text(&raw), &buf)?;
        }
        Ok(raw)
    })
}

/// Lists every file under `dir`, folders in parallel, in the manifest's order (sorted by
/// relative path), so a million paths need no sort afterwards.
fn walk(dir: &Path, rel: &str) -> Result<Vec<Found>> {
    enum Item {
        File(Found),
        Dir(PathBuf, String),
    }
    let mut items: Vec<Item> = Vec::new();
    for entry in fs::read_dir(dir).map_err(CaptureError::io("list", dir))? {
        let entry = entry.map_err(CaptureError::io("list", dir))?;
        let name = entry.file_name();
        let name = name.to_string_lossy();
        let child_rel = if rel.is_empty() { name.to_string() } else { format!("{rel}/{name}") };
        let ft = entry.file_type().map_err(CaptureError::io("read", entry.path()))?;
        if ft.is_dir() {
            if !SKIPPED_DIRS.contains(&name.as_ref()) {
                items.push(Item::Dir(entry.path(), child_rel));
            }
            continue;
        }
        // Plain files: stat relative to the open folder (no path walk). Symlinks are
        // followed to files; a symlinked folder could loop, so it is refused.
        if ft.is_file() {
            let meta = entry.metadata().map_err(CaptureError::io("read", entry.path()))?;
            items.push(Item::File(Found { rel: child_rel, stat: FileStat::of(&meta) }));
            continue;
        }
        let abs = entry.path();
        let meta = fs::metadata(&abs).map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => CaptureError::Unsupported { path: abs.clone(), kind: "dangling symlink" },
            _ => CaptureError::Io { action: "read", path: abs.clone(), source: e },
        })?;
        if meta.is_file() {
            items.push(Item::File(Found { rel: child_rel, stat: FileStat::of(&meta) }));
        } else if meta.is_dir() {
            return Err(CaptureError::Unsupported { path: abs, kind: "symlink to a folder" });
        } else {
            return Err(CaptureError::Unsupported { path: abs, kind: "special file (socket, FIFO or device)" });
        }
    }
    // A folder sorts as its name and a '/', the way every path under it compares with its
    // siblings' ("a.txt" < "a/x", since '.' < '/').
    fn key(item: &Item) -> std::iter::Chain<std::str::Bytes<'_>, std::option::IntoIter<u8>> {
        match item {
            Item::File(f) => f.rel.bytes().chain(None),
            Item::Dir(_, rel) => rel.bytes().chain(Some(b'/')),
        }
    }
    items.sort_unstable_by(|a, b| key(a).cmp(key(b)));
    let nested: Vec<Vec<Found>> = items
        .par_iter()
        .map(|item| match item {
            Item::Dir(abs, rel) => walk(abs, rel),
            Item::File(_) => Ok(Vec::new()),
        })
        .collect::<Result<_>>()?;
    // Sized exactly: at a million files the slack of doubling growth, held at every level
    // at once, was a third of the snapshot's memory.
    let mut files = Vec::with_capacity(nested.iter().map(Vec::len).sum::<usize>() + items.len());
    for (item, below) in items.into_iter().zip(nested) {
        match item {
            Item::File(f) => files.push(f),
            Item::Dir(..) => files.extend(below),
        }
    }
    files.shrink_to_fit();
    Ok(files)
}

fn now_ns() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos() as i64).unwrap_or(0)
}

/// Reads a snapshot's manifest from the store (verified).
pub fn manifest(store: &Store, digest: &Digest) -> Result<Manifest> {
    Ok(store.objects.manifest(digest)?)
}
