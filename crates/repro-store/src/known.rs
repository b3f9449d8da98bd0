//! The objects a store knows to be in its bucket, kept across processes (`.repro/bucket-objects`),
//! so that a snapshot of a tree whose files were uploaded before asks the bucket nothing about
//! them: without it, every cached file costs a HEAD per snapshot (2,000 files took 4 s against a
//! local S3 server; a million would take tens of minutes).
//!
//! A digest is written here only after the bucket said it holds the object (an upload it
//! accepted, a HEAD that found it, a download that hashed right), and objects are never deleted
//! from the bucket by repro. What deletes them anyway (a person, a lifecycle rule) is what
//! `repro fsck` finds: its bucket check lists and re-hashes every object, then replaces this
//! file with exactly the objects it verified. Until then the file is trusted, and a snapshot
//! may record an object as stored that someone removed since; fsck then names that snapshot's
//! broken reference. A read that finds a listed object gone drops the whole file.
//!
//! The file is a [`crate::records`] file: its header is `RBK1`, the bucket URL's length (u32 LE)
//! and the URL (a file written for another bucket is ignored), its records raw digests. Losing
//! records costs HEADs only.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use crate::records;

/// The file's name inside the store's folder.
pub const FILE: &str = "bucket-objects";
const MAGIC: &[u8; 4] = b"RBK1";

fn header(url: &str) -> Vec<u8> {
    let mut h = MAGIC.to_vec();
    h.extend_from_slice(&(url.len() as u32).to_le_bytes());
    h.extend_from_slice(url.as_bytes());
    h
}

/// The digests recorded for the bucket at `url`; nothing when the file is absent, damaged at
/// its start or written for another bucket.
pub fn load(path: &Path, url: &str) -> HashSet<[u8; 32]> {
    let mut known = HashSet::new();
    records::load(path, &header(url), 32, |raw| {
        known.insert(raw.try_into().unwrap_or([0; 32]));
    });
    known
}

/// Appends `digests` (one write); creates the file with its header first when there is none.
pub fn append(path: &Path, url: &str, digests: &[[u8; 32]]) -> std::io::Result<()> {
    records::append(path, &header(url), digests.iter().map(|d| d.as_slice()))
}

/// Replaces the file with exactly `digests` (fsck's verified listing of the bucket).
pub fn replace<'a>(path: &Path, url: &str, digests: impl Iterator<Item = &'a [u8; 32]>) -> std::io::Result<()> {
    records::replace(path, &header(url), digests.map(|d| d.as_slice()))
}

/// Forgets everything (a listed object was found gone): the next process asks the bucket.
pub fn drop_file(path: &Path) {
    records::drop_file(path)
}

/// Where the store at `root` keeps the file.
pub fn path_in(root: &Path) -> PathBuf {
    root.join(FILE)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    #[test]
    fn appends_and_replaces_round_trip_and_damage_ends_the_trusted_part() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = path_in(dir.path());
        let url = "s3://bucket/prefix";
        assert!(load(&p, url).is_empty(), "no file: nothing known");
        let (a, b, c) = ([1u8; 32], [2u8; 32], [3u8; 32]);
        append(&p, url, &[a, b]).expect("append");
        append(&p, url, &[c]).expect("append");
        assert_eq!(load(&p, url), HashSet::from([a, b, c]));
        assert!(load(&p, "s3://other").is_empty(), "another bucket's file is not trusted");
        append(&p, "s3://other", &[c]).expect("append for another bucket");
        assert_eq!(load(&p, "s3://other"), HashSet::from([c]), "a file of its own");
        assert!(load(&p, url).is_empty(), "what was known of the first bucket is gone with its file");
        append(&p, url, &[a, b, c]).expect("append");

        // A torn last record, then a flipped byte in the middle: what follows is not trusted.
        let mut bytes = fs::read(&p).expect("read");
        bytes.truncate(bytes.len() - 5);
        fs::write(&p, &bytes).expect("write");
        assert_eq!(load(&p, url), HashSet::from([a, b]));
        let at = header(url).len() + 36 + 3;
        bytes[at] ^= 1;
        fs::write(&p, &bytes).expect("write");
        assert_eq!(load(&p, url), HashSet::from([a]));

        replace(&p, url, [c].iter()).expect("replace");
        assert_eq!(load(&p, url), HashSet::from([c]));
        drop_file(&p);
        assert!(load(&p, url).is_empty());
        for cut in 0..header(url).len() {
            fs::write(&p, &header(url)[..cut]).expect("write");
            assert!(load(&p, url).is_empty());
        }
    }
}
