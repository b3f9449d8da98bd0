//! Snapshot manifests: the tree of a data snapshot (path, size, mode, digest per file),
//! whose own digest names the snapshot.
//!
//! Two forms. A tree of up to [`CHUNKED_OVER`] files is one object (version 1): its entries,
//! sorted by path. A bigger tree is a root object (version 2) that lists chunks of about
//! 1,000 consecutive entries each, every chunk an object of its own. Chunk boundaries
//! depend on the paths alone (a path ends a chunk when its hash says so), so a changed file
//! changes one chunk and the root, and an added or removed file moves at most the
//! boundaries next to it: a million-file tree with one file changed writes ~0.3 MB, not
//! 110 MB, and two versions compare chunk by chunk.

use std::ops::Range;

use serde::{Deserialize, Serialize};

use crate::record::FileEntry;
use crate::{CoreError, Digest};

pub const MANIFEST_VERSION: u32 = 1;
/// The version of a chunked manifest's root object.
pub const CHUNKED_VERSION: u32 = 2;
/// Trees with more files than this are stored chunked; smaller ones keep the one-object
/// form (and the digests they always had).
pub const CHUNKED_OVER: usize = 8192;
/// A path ends a chunk when its hash is 0 modulo this: chunks of ~1,024 entries (~130 KB)
/// on average, so a root of a million files lists ~1,000 chunks (~150 KB).
const CHUNK_AVERAGE: u64 = 1024;
/// No chunk holds more entries than this (~520 KB), whatever the hashes say: one changed
/// file writes at most this chunk and the root.
const CHUNK_MAX: usize = 4096;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SnapshotKind {
    File,
    Dir,
}

/// A snapshot's manifest. For a single file, `entries` holds one entry whose path is the
/// file's name; for a folder, paths are relative to it with `/` separators.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    pub manifest_version: u32,
    pub kind: SnapshotKind,
    pub entries: Vec<FileEntry>,
}

/// The root object of a chunked manifest.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChunkedRoot {
    pub manifest_version: u32,
    pub kind: SnapshotKind,
    pub files: u64,
    pub bytes: u64,
    pub chunks: Vec<ChunkRef>,
}

/// One chunk as the root lists it: its first path, how much it holds, and its object.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChunkRef {
    pub first: String,
    pub files: u64,
    pub bytes: u64,
    pub digest: Digest,
}

/// A chunk object. Its field names differ from a manifest's, so a chunk is never taken
/// for a snapshot.
#[derive(Serialize, Deserialize)]
struct Chunk<E> {
    manifest_chunk: u32,
    entries: E,
}

/// A manifest object as read: the whole manifest, or the root of a chunked one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ManifestObject {
    Whole(Manifest),
    Chunked(ChunkedRoot),
}

/// The objects that store a manifest: the root (whose digest names the snapshot) and,
/// for a chunked one, its chunks.
#[derive(Clone, Debug)]
pub struct EncodedManifest {
    pub digest: Digest,
    pub root: Vec<u8>,
    pub chunks: Vec<(Digest, Vec<u8>)>,
}

impl Manifest {
    /// Builds a manifest; entries are sorted by path so the digest is canonical.
    pub fn new(kind: SnapshotKind, mut entries: Vec<FileEntry>) -> Self {
        entries.sort_by(|a, b| a.path.cmp(&b.path));
        Manifest { manifest_version: MANIFEST_VERSION, kind, entries }
    }

    /// The objects to store, in the form the tree's size calls for.
    pub fn encode(&self) -> EncodedManifest {
        if self.entries.len() <= CHUNKED_OVER {
            let whole = WholeRef { manifest_version: MANIFEST_VERSION, kind: self.kind, entries: &self.entries };
            let root = serde_json::to_vec(&whole).expect("a manifest always serializes");
            return EncodedManifest { digest: Digest::of_bytes(&root), root, chunks: Vec::new() };
        }
        let mut refs = Vec::new();
        let mut chunks = Vec::new();
        for range in chunk_ranges(self.entries.iter().map(|e| e.path.as_str())) {
            let part = &self.entries[range];
            let bytes = chunk_bytes(part);
            let digest = Digest::of_bytes(&bytes);
            refs.push(chunk_ref(part, digest.clone()));
            chunks.push((digest, bytes));
        }
        let root = root_bytes(self.kind, refs);
        EncodedManifest { digest: Digest::of_bytes(&root), root, chunks }
    }

    /// The digest that names a snapshot of exactly these entries.
    pub fn digest(&self) -> Digest {
        self.encode().digest
    }

    pub fn total_bytes(&self) -> u64 {
        self.entries.iter().map(|e| e.size).sum()
    }

    /// Reads a whole (version 1) manifest; a chunked root is an error here (see [`parse`]).
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, CoreError> {
        match parse(bytes)? {
            ManifestObject::Whole(m) => Ok(m),
            ManifestObject::Chunked(_) => {
                Err(CoreError::Manifest("a chunked manifest needs its chunks read too".into()))
            }
        }
    }

    /// Puts a chunked manifest together from its root and its chunks' bytes, checking that
    /// each chunk holds what the root says, in order. `chunk` reads (and verifies) one object.
    pub fn assemble<E>(
        root: ChunkedRoot,
        mut chunk: impl FnMut(&ChunkRef) -> Result<Vec<u8>, E>,
        bad: impl Fn(CoreError) -> E,
    ) -> Result<Manifest, E> {
        let mut entries: Vec<FileEntry> = Vec::with_capacity(root.files.min(1 << 24) as usize);
        for r in &root.chunks {
            let bytes = chunk(r)?;
            let part = parse_chunk(&bytes, r).map_err(&bad)?;
            if entries.last().is_some_and(|last| last.path >= part[0].path) {
                return Err(bad(CoreError::Manifest(format!(
                    "chunk {} starts at '{}', not after the chunk before it",
                    r.digest.short(),
                    r.first
                ))));
            }
            entries.extend(part);
        }
        let m = Manifest { manifest_version: CHUNKED_VERSION, kind: root.kind, entries };
        if m.entries.len() as u64 != root.files || m.total_bytes() != root.bytes {
            return Err(bad(CoreError::Manifest(format!(
                "the root says {} files and {} bytes, its chunks hold {} and {}",
                root.files,
                root.bytes,
                m.entries.len(),
                m.total_bytes()
            ))));
        }
        Ok(m)
    }
}

/// A whole manifest's object, serialized from borrowed entries.
#[derive(Serialize)]
struct WholeRef<'a> {
    manifest_version: u32,
    kind: SnapshotKind,
    entries: &'a [FileEntry],
}

/// Reads a manifest object: whole, or a chunked root (checked for order and totals).
pub fn parse(bytes: &[u8]) -> Result<ManifestObject, CoreError> {
    #[derive(Deserialize)]
    struct Version {
        manifest_version: u32,
    }
    let bad = |e: serde_json::Error| CoreError::Manifest(format!("not a snapshot manifest ({e})"));
    let v: Version = serde_json::from_slice(bytes).map_err(bad)?;
    match v.manifest_version {
        MANIFEST_VERSION => Ok(ManifestObject::Whole(serde_json::from_slice(bytes).map_err(bad)?)),
        CHUNKED_VERSION => {
            let root: ChunkedRoot = serde_json::from_slice(bytes).map_err(bad)?;
            let sorted = root.chunks.windows(2).all(|w| w[0].first < w[1].first);
            let files: u64 = root.chunks.iter().map(|c| c.files).sum();
            let sum = root.chunks.iter().try_fold(0u64, |a, c| a.checked_add(c.bytes));
            if !sorted || files != root.files || sum != Some(root.bytes) || root.chunks.iter().any(|c| c.files == 0) {
                return Err(CoreError::Manifest(
                    "a chunked manifest whose chunk list is out of order or does not add up".into(),
                ));
            }
            Ok(ManifestObject::Chunked(root))
        }
        other => Err(CoreError::Manifest(format!(
            "manifest version {other} is newer than this repro knows ({CHUNKED_VERSION}); upgrade repro"
        ))),
    }
}

/// Whether a path ends a chunk: decided by the path alone, so unchanged stretches of a tree
/// keep their chunks when files elsewhere come and go.
fn ends_chunk(path: &str) -> bool {
    let h = blake3::hash(path.as_bytes());
    let first: [u8; 8] = h.as_bytes()[..8].try_into().expect("8 bytes");
    u64::from_le_bytes(first).is_multiple_of(CHUNK_AVERAGE)
}

/// Splits sorted paths into chunks (ranges of their positions).
pub fn chunk_ranges<'a>(paths: impl IntoIterator<Item = &'a str>) -> Vec<Range<usize>> {
    let mut out = Vec::new();
    let mut start = 0;
    let mut n = 0;
    for (i, p) in paths.into_iter().enumerate() {
        n = i + 1;
        if ends_chunk(p) || n - start == CHUNK_MAX {
            out.push(start..n);
            start = n;
        }
    }
    if start < n {
        out.push(start..n);
    }
    out
}

/// One entry as a chunk holds it, borrowed, with its digest raw: serializes to the bytes
/// of the [`FileEntry`] it stands for, without a string of its own per path and digest.
#[derive(Serialize)]
pub struct EntryRef<'a> {
    pub path: &'a str,
    pub size: u64,
    pub mode: u32,
    pub digest: RawDigest,
}

/// A BLAKE3 digest kept raw, serialized as its `blake3:` text.
pub struct RawDigest(pub [u8; 32]);

impl Serialize for RawDigest {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut text = [0u8; 71];
        text[..7].copy_from_slice(b"blake3:");
        text[7..].copy_from_slice(blake3::Hash::from_bytes(self.0).to_hex().as_bytes());
        s.serialize_str(std::str::from_utf8(&text).unwrap_or_default())
    }
}

/// The bytes of one chunk object.
pub fn chunk_bytes<E: Serialize>(entries: &[E]) -> Vec<u8> {
    serde_json::to_vec(&Chunk { manifest_chunk: 1, entries }).expect("a chunk always serializes")
}

/// What the root says of one chunk.
fn chunk_ref(entries: &[FileEntry], digest: Digest) -> ChunkRef {
    ChunkRef {
        first: entries.first().map(|e| e.path.clone()).unwrap_or_default(),
        files: entries.len() as u64,
        bytes: entries.iter().map(|e| e.size).sum(),
        digest,
    }
}

/// The bytes of a chunked manifest's root.
pub fn root_bytes(kind: SnapshotKind, chunks: Vec<ChunkRef>) -> Vec<u8> {
    let root = ChunkedRoot {
        manifest_version: CHUNKED_VERSION,
        kind,
        files: chunks.iter().map(|c| c.files).sum(),
        bytes: chunks.iter().map(|c| c.bytes).sum(),
        chunks,
    };
    serde_json::to_vec(&root).expect("a manifest root always serializes")
}

/// Reads one chunk, checking it against what the root says of it.
pub fn parse_chunk(bytes: &[u8], said: &ChunkRef) -> Result<Vec<FileEntry>, CoreError> {
    let c: Chunk<Vec<FileEntry>> = serde_json::from_slice(bytes)
        .map_err(|e| CoreError::Manifest(format!("chunk {} is not a manifest chunk ({e})", said.digest.short())))?;
    let sorted = c.entries.windows(2).all(|w| w[0].path < w[1].path);
    let bytes: u64 = c.entries.iter().map(|e| e.size).sum();
    if c.manifest_chunk != 1
        || !sorted
        || c.entries.len() as u64 != said.files
        || bytes != said.bytes
        || c.entries.first().map(|e| e.path.as_str()) != Some(said.first.as_str())
    {
        return Err(CoreError::Manifest(format!(
            "chunk {} does not hold what the manifest's root says it does",
            said.digest.short()
        )));
    }
    Ok(c.entries)
}

/// A file whose content or mode differs between two manifests.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChangedFile {
    pub path: String,
    pub before: FileState,
    pub after: FileState,
}

/// A file as one manifest lists it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileState {
    pub size: u64,
    pub mode: u32,
    pub digest: Digest,
}

/// What differs between two lists of entries, each sorted by path.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EntryDiff {
    pub added: Vec<FileEntry>,
    pub removed: Vec<FileEntry>,
    pub changed: Vec<ChangedFile>,
}

/// Compares two manifests' entries (sorted by path, as manifests keep them) in one pass.
pub fn compare(a: &[FileEntry], b: &[FileEntry]) -> EntryDiff {
    let state = |e: &FileEntry| FileState { size: e.size, mode: e.mode, digest: e.digest.clone() };
    let mut out = EntryDiff::default();
    let (mut i, mut j) = (0, 0);
    while i < a.len() || j < b.len() {
        match (a.get(i), b.get(j)) {
            (Some(x), Some(y)) if x.path == y.path => {
                if x.digest != y.digest || x.mode != y.mode {
                    out.changed.push(ChangedFile { path: x.path.clone(), before: state(x), after: state(y) });
                }
                i += 1;
                j += 1;
            }
            (Some(x), Some(y)) if x.path < y.path => {
                out.removed.push(x.clone());
                i += 1;
            }
            (Some(x), None) => {
                out.removed.push(x.clone());
                i += 1;
            }
            (_, Some(y)) => {
                out.added.push(y.clone());
                j += 1;
            }
            (None, None) => break,
        }
    }
    out
}

/// A dataset name people type after `--data NAME:` or in `repro data show`: one line, no
/// `:` (which separates the name from a version elsewhere).
pub fn check_dataset_name(name: &str) -> Result<(), CoreError> {
    if name.is_empty() || name.contains(':') || name.chars().any(|c| c.is_control()) {
        return Err(CoreError::DatasetName(name.to_string()));
    }
    Ok(())
}

#[cfg(test)]
mod tests;
