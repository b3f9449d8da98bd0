//! Which objects were hashed since they last changed (`.repro/object-stamps`), so that a replay
//! on a file system with reflinks can place a 10 GiB input in milliseconds instead of reading it
//! back: the clone shares the object's blocks, so it holds the object's bytes, and the stamp says
//! those bytes hashed to the object's name when the object's inode last looked exactly as it
//! does now.
//!
//! A stamp is the trust the snapshot's stat cache already places in a file's stat: the object's
//! device, inode, size, mtime and ctime as they were before and after a full hash that matched
//! its name. Changing the bytes changes the ctime (which a program cannot set, short of setting the
//! system clock back), and a replaced file has another inode. Two guards keep the comparison sound:
//! - a stamp is written only when the object's ctime is at least [`SETTLE_NS`] old once the hash
//!   is done, so a write within the same timestamp tick as the hash cannot go unseen;
//! - only objects of [`MIN_BYTES`] or more are stamped: below that, the read costs less than
//!   the bookkeeping.
//!
//! `--link-data` gains nothing from stamps: a hard link changes the object's ctime (its link
//! count), so the object is hashed before it is linked, as before.
//!
//! Who writes stamps: a restore that hashed a reflinked clone, and `repro fsck`, which starts the
//! file afresh and stamps every local object it re-hashes. Someone who can write the store's
//! folder can forge a stamp, as they can forge the stat cache; `repro fsck` re-hashes every
//! object whatever the stamps say, and `repro replay --verify-data` reads every restored byte.
//!
//! Records ([`crate::records`], header `RST1`): the raw digest, then dev, ino, size, mtime and
//! ctime (ns), little-endian.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};

use repro_core::Digest;

use crate::records;
use repro_util::fs::FileStat;

/// The file's name inside the store's folder.
pub const FILE: &str = "object-stamps";
const HEADER: &[u8; 4] = b"RST1";
const LEN: usize = 32 + 5 * 8;
/// Smaller objects are read back: their read costs less than a stamp.
pub const MIN_BYTES: u64 = 1 << 20;
/// How old an object's ctime must be when its hash ends for a stamp to be written.
pub const SETTLE_NS: i64 = 2_000_000_000;

/// What a stamp compares: the object's stat without its mode (a chmod changes the ctime).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Stamp([u64; 5]);

impl Stamp {
    fn of(s: &FileStat) -> Stamp {
        Stamp([s.dev, s.ino, s.size, s.mtime_ns as u64, s.ctime_ns as u64])
    }
}

pub(crate) struct Stamps {
    path: PathBuf,
    known: OnceLock<Mutex<HashMap<[u8; 32], Stamp>>>,
}

impl Stamps {
    pub(crate) fn in_store(root: &Path) -> Stamps {
        Stamps { path: root.join(FILE), known: OnceLock::new() }
    }

    fn known(&self) -> std::sync::MutexGuard<'_, HashMap<[u8; 32], Stamp>> {
        let m = self.known.get_or_init(|| {
            let mut known = HashMap::new();
            records::load(&self.path, HEADER, LEN, |r| {
                let (digest, rest) = r.split_at(32);
                let mut stamp = [0u64; 5];
                for (v, b) in stamp.iter_mut().zip(rest.chunks_exact(8)) {
                    *v = u64::from_le_bytes(b.try_into().unwrap_or([0; 8]));
                }
                // A later stamp of the same object (rewritten by a download) replaces the older.
                known.insert(digest.try_into().unwrap_or([0; 32]), Stamp(stamp));
            });
            Mutex::new(known)
        });
        m.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Whether the object, as `stat` shows it now, is the one that was hashed.
    pub(crate) fn vouch(&self, digest: &Digest, stat: &FileStat) -> bool {
        stat.size >= MIN_BYTES && self.known().get(&digest.raw()) == Some(&Stamp::of(stat))
    }

    /// Records that the object hashed right between `before` and `after` (its stat at the start
    /// and the end of the hash), where that can be trusted later. A failed write only costs a
    /// read in a later replay, so it is logged, not returned.
    pub(crate) fn stamp(&self, digest: &Digest, before: &FileStat, after: &FileStat) {
        let now = repro_util::clock::now_ms() * 1_000_000;
        if Stamp::of(before) != Stamp::of(after) || after.size < MIN_BYTES || now - after.ctime_ns < SETTLE_NS {
            return;
        }
        let stamp = Stamp::of(after);
        let mut known = self.known();
        if known.get(&digest.raw()) == Some(&stamp) {
            return;
        }
        let mut payload = digest.raw().to_vec();
        for v in stamp.0 {
            payload.extend_from_slice(&v.to_le_bytes());
        }
        match records::append(&self.path, HEADER, std::iter::once(payload.as_slice())) {
            Ok(()) => {
                known.insert(digest.raw(), stamp);
            }
            Err(e) => tracing::debug!(file = %self.path.display(), error = %e, "cannot stamp an object"),
        }
    }

    /// Forgets every stamp (fsck, before it re-hashes and stamps what it finds intact).
    pub(crate) fn clear(&self) {
        records::drop_file(&self.path);
        self.known().clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stat(ino: u64, size: u64, ctime_ns: i64) -> FileStat {
        FileStat { dev: 7, ino, size, mtime_ns: ctime_ns, ctime_ns, mode: 0o444 }
    }

    #[test]
    fn a_stamp_vouches_for_exactly_the_stat_it_was_made_with_and_survives_the_process() {
        let dir = tempfile::tempdir().expect("tempdir");
        let d = Digest::of_bytes(b"object");
        let old = repro_util::clock::now_ms() * 1_000_000 - 10 * SETTLE_NS;
        let s = stat(42, MIN_BYTES, old);
        let stamps = Stamps::in_store(dir.path());
        assert!(!stamps.vouch(&d, &s), "no stamp yet");
        stamps.stamp(&d, &s, &s);
        assert!(stamps.vouch(&d, &s));
        for other in [stat(43, MIN_BYTES, old), stat(42, MIN_BYTES + 1, old), stat(42, MIN_BYTES, old + 1)] {
            assert!(!stamps.vouch(&d, &other), "{other:?}");
        }
        assert!(!stamps.vouch(&Digest::of_bytes(b"another"), &s));
        assert!(Stamps::in_store(dir.path()).vouch(&d, &s), "read back by another process");

        // Not stamped: changed during the hash, too small, or changed within the settle time.
        let (e, f, g) = (Digest::of_bytes(b"e"), Digest::of_bytes(b"f"), Digest::of_bytes(b"g"));
        stamps.stamp(&e, &s, &stat(42, MIN_BYTES, old + 5));
        stamps.stamp(&f, &stat(1, 10, old), &stat(1, 10, old));
        let fresh = stat(2, MIN_BYTES, repro_util::clock::now_ms() * 1_000_000);
        stamps.stamp(&g, &fresh, &fresh);
        let reread = Stamps::in_store(dir.path());
        assert!(!reread.vouch(&e, &stat(42, MIN_BYTES, old + 5)));
        assert!(!reread.vouch(&f, &stat(1, 10, old)));
        assert!(!reread.vouch(&g, &fresh));

        // A torn record ends the trusted part; clearing forgets everything.
        let p = dir.path().join(FILE);
        let bytes = std::fs::read(&p).expect("read");
        std::fs::write(&p, &bytes[..bytes.len() - 1]).expect("write");
        assert!(!Stamps::in_store(dir.path()).vouch(&d, &s));
        std::fs::write(&p, &bytes).expect("write");
        stamps.clear();
        assert!(!stamps.vouch(&d, &s));
        assert!(!Stamps::in_store(dir.path()).vouch(&d, &s));
    }
}
