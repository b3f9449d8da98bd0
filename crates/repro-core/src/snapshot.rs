//! Snapshot manifests: the tree of a data snapshot (path, size, mode, digest per file),
//! whose own digest names the snapshot.

use serde::{Deserialize, Serialize};

use crate::record::FileEntry;
use crate::Digest;

pub const MANIFEST_VERSION: u32 = 1;

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

impl Manifest {
    /// Builds a manifest; entries are sorted by path so the digest is canonical.
    pub fn new(kind: SnapshotKind, mut entries: Vec<FileEntry>) -> Self {
        entries.sort_by(|a, b| a.path.cmp(&b.path));
        Manifest { manifest_version: MANIFEST_VERSION, kind, entries }
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("a manifest always serializes")
    }

    pub fn digest(&self) -> Digest {
        Digest::of_bytes(&self.to_bytes())
    }

    pub fn total_bytes(&self) -> u64 {
        self.entries.iter().map(|e| e.size).sum()
    }

    pub fn from_bytes(bytes: &[u8]) -> Result<Self, serde_json::Error> {
        serde_json::from_slice(bytes)
    }
}

/// A dataset name people type after `--data NAME:` or in `repro data show`: one line, no
/// `:` (which separates the name from a version elsewhere).
pub fn check_dataset_name(name: &str) -> Result<(), crate::CoreError> {
    if name.is_empty() || name.contains(':') || name.chars().any(|c| c.is_control()) {
        return Err(crate::CoreError::DatasetName(name.to_string()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(path: &str, content: &[u8]) -> FileEntry {
        FileEntry { path: path.into(), size: content.len() as u64, mode: 0o644, digest: Digest::of_bytes(content) }
    }

    #[test]
    fn digest_is_independent_of_entry_order() {
        let a = Manifest::new(SnapshotKind::Dir, vec![entry("a", b"1"), entry("b/c", b"2")]);
        let b = Manifest::new(SnapshotKind::Dir, vec![entry("b/c", b"2"), entry("a", b"1")]);
        assert_eq!(a.digest(), b.digest());
    }

    #[test]
    fn same_path_other_content_is_another_snapshot() {
        let a = Manifest::new(SnapshotKind::File, vec![entry("train.csv", b"1,2")]);
        let b = Manifest::new(SnapshotKind::File, vec![entry("train.csv", b"1,3")]);
        assert_ne!(a.digest(), b.digest());
    }

    #[test]
    fn round_trip_and_garbage() {
        let a = Manifest::new(SnapshotKind::Dir, vec![entry("x", b"1")]);
        assert_eq!(Manifest::from_bytes(&a.to_bytes()).expect("parses"), a);
        assert!(Manifest::from_bytes(b"{not json").is_err());
        assert!(Manifest::from_bytes(b"{\"kind\":\"dir\"}").is_err());
    }
}
