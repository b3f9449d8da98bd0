//! The stat cache of a snapshot root: what each file looked like when it was hashed, so the
//! next snapshot of that folder hashes only what changed.
//!
//! Kept in chunks that follow the manifest's (one row each, keyed by the chunk's first path):
//! a re-snapshot with one file changed rewrites one row, not a 110 MB blob, and a chunk whose
//! files all match is known to make the same manifest chunk without serializing it again.
//! Each chunk is kept in its compact binary form and read in place: at a million files,
//! decoding every record into a string of its own cost 0.4 s and 140 MB.

use repro_core::Digest;

use crate::objects::FileStat;

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

/// A run of consecutive files of a cache, sorted by path.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CacheChunk {
    /// The first path of the manifest chunk these files belong to ("" for a cache kept whole).
    pub first: String,
    /// The manifest chunk exactly these files make (only when every file of it is cached).
    pub digest: Option<Digest>,
    /// Every file's object was in the store when this chunk was written, so a snapshot that
    /// stores contents need not look for them again (fsck checks the store itself).
    pub stored: bool,
    encoded: Vec<u8>,
    files: usize,
}

impl CacheChunk {
    /// A chunk of `files`, sorted by `rel`.
    pub fn new<'a>(
        first: String,
        digest: Option<Digest>,
        stored: bool,
        files: impl IntoIterator<Item = CachedFile<'a>>,
    ) -> CacheChunk {
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
        CacheChunk { first, digest, stored, encoded, files: count }
    }

    /// Checks a stored form; anything malformed is `None` (a damaged cache is only a cache miss).
    pub fn from_encoded(first: String, digest: Option<Digest>, stored: bool, encoded: Vec<u8>) -> Option<CacheChunk> {
        let mut rest = encoded.strip_prefix(CACHE_MAGIC)?;
        let mut files = 0;
        while !rest.is_empty() {
            next_file(&mut rest)?;
            files += 1;
        }
        Some(CacheChunk { first, digest, stored, encoded, files })
    }

    /// The same files, saying otherwise about the store.
    pub fn with_stored(&self, stored: bool) -> CacheChunk {
        CacheChunk { stored, ..self.clone() }
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

/// The stat cache of one root: its chunks in path order, and the manifest they made when
/// every file of the tree is in them.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TreeCache {
    pub manifest: Option<Digest>,
    chunks: Vec<CacheChunk>,
    files: usize,
}

impl TreeCache {
    /// A cache kept whole (one chunk): what a replay hands over for the files it restored.
    pub fn new<'a>(manifest: Option<Digest>, files: impl IntoIterator<Item = CachedFile<'a>>) -> TreeCache {
        TreeCache::from_chunks(manifest, vec![CacheChunk::new(String::new(), None, false, files)])
    }

    pub fn from_chunks(manifest: Option<Digest>, mut chunks: Vec<CacheChunk>) -> TreeCache {
        chunks.retain(|c| !c.is_empty());
        chunks.sort_by(|a, b| a.first.cmp(&b.first));
        let files = chunks.iter().map(CacheChunk::len).sum();
        TreeCache { manifest, chunks, files }
    }

    pub fn chunks(&self) -> &[CacheChunk] {
        &self.chunks
    }

    /// The chunk that starts at `first`.
    pub fn chunk(&self, first: &str) -> Option<&CacheChunk> {
        self.chunks.binary_search_by(|c| c.first.as_str().cmp(first)).ok().map(|i| &self.chunks[i])
    }

    pub fn len(&self) -> usize {
        self.files
    }

    pub fn is_empty(&self) -> bool {
        self.files == 0
    }

    /// Every file, in order, with the chunk that holds it.
    pub fn files(&self) -> impl Iterator<Item = (&CacheChunk, CachedFile<'_>)> {
        self.chunks.iter().flat_map(|c| c.files().map(move |f| (c, f)))
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

/// What a snapshot changes in a root's cache: the rows to write and the ones to drop.
pub struct CacheUpdate<'a> {
    pub manifest: Option<Digest>,
    pub write: Vec<&'a CacheChunk>,
    pub drop: Vec<&'a str>,
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
        let c = CacheChunk::new("a/b.csv".into(), None, true, files.clone());
        assert_eq!(c.len(), 2);
        assert_eq!(c.files().collect::<Vec<_>>(), files);
        let back = CacheChunk::from_encoded(c.first.clone(), None, true, c.encoded().to_vec()).expect("decodes");
        assert_eq!(back, c);
        for bad in [&b""[..], b"RTC", b"RTC1\x05\0\0\0ab", b"XXXX"] {
            assert!(CacheChunk::from_encoded(String::new(), None, false, bad.to_vec()).is_none(), "{bad:?}");
        }
        let empty = CacheChunk::from_encoded(String::new(), None, false, b"RTC1".to_vec()).expect("empty");
        assert!(empty.is_empty() && TreeCache::from_chunks(None, vec![empty]) == TreeCache::default());
        let enc = c.encoded().to_vec();
        for cut in 4..enc.len() {
            let partial = CacheChunk::from_encoded(String::new(), None, false, enc[..cut].to_vec());
            // Only a cut between records decodes, and then to a prefix of the files.
            if let Some(p) = partial {
                assert_eq!(p.files().collect::<Vec<_>>(), files[..p.len()].to_vec(), "cut at {cut}");
            }
        }
    }

    #[test]
    fn chunks_read_in_path_order_whatever_order_they_came_in() {
        let stat = FileStat { dev: 1, ino: 2, size: 3, mtime_ns: 4, ctime_ns: 5, mode: 0o644 };
        let file = |rel| CachedFile { rel, stat, blake3: [1; 32] };
        let b = CacheChunk::new("m".into(), None, false, [file("m"), file("n")]);
        let a = CacheChunk::new("a".into(), None, false, [file("a")]);
        let cache = TreeCache::from_chunks(None, vec![b, a]);
        assert_eq!(cache.len(), 3);
        assert_eq!(cache.files().map(|(_, f)| f.rel).collect::<Vec<_>>(), ["a", "m", "n"]);
        assert_eq!(cache.chunk("m").map(CacheChunk::len), Some(2));
        assert!(cache.chunk("b").is_none());
    }
}
