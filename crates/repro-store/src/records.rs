//! A small file of fixed-size records that several processes append to and that a torn write
//! cannot poison: the store's memory of what its bucket holds ([`crate::known`]) and of which
//! objects were hashed since they last changed ([`crate::stamps`]).
//!
//! Format: a header the caller chooses (a magic and whatever ties the file to its subject: a
//! file written about something else is ignored), then records of the caller's payload and the
//! first 4 bytes of the BLAKE3 of that payload. Processes append whole records with `O_APPEND`;
//! a record that fails its check (a torn write at power loss) ends the trusted part. What the
//! file holds only ever saves work, so appends are not synced.

use std::fs::{self, OpenOptions};
use std::io::{Read, Write};
use std::path::Path;

const CHECK: usize = 4;

fn record(payload: &[u8], out: &mut Vec<u8>) {
    out.extend_from_slice(payload);
    out.extend_from_slice(&blake3::hash(payload).as_bytes()[..CHECK]);
}

/// Calls `each` with every trusted payload of `len` bytes, in order; nothing when the file is
/// absent, or does not start with `header`.
pub(crate) fn load(path: &Path, header: &[u8], len: usize, mut each: impl FnMut(&[u8])) {
    let Ok(bytes) = fs::read(path) else { return };
    let Some(rest) = bytes.strip_prefix(header) else { return };
    for r in rest.chunks_exact(len + CHECK) {
        let (payload, check) = r.split_at(len);
        if blake3::hash(payload).as_bytes()[..CHECK] != *check {
            break;
        }
        each(payload);
    }
}

/// Appends `payloads` in one write; first makes a new file with `header` when there is none or
/// the one there starts otherwise.
pub(crate) fn append<'a>(path: &Path, header: &[u8], payloads: impl Iterator<Item = &'a [u8]>) -> std::io::Result<()> {
    let mut out = Vec::new();
    for p in payloads {
        record(p, &mut out);
    }
    if out.is_empty() {
        return Ok(());
    }
    let mut first = vec![0u8; header.len()];
    let ours = fs::File::open(path).and_then(|mut f| f.read_exact(&mut first)).is_ok() && first == header;
    if !ours {
        // A new file appears whole (header included) or not at all.
        repro_util::fs::write_durably(path, header)?;
    }
    OpenOptions::new().append(true).open(path)?.write_all(&out)
}

/// Replaces the file with exactly `payloads`.
pub(crate) fn replace<'a>(path: &Path, header: &[u8], payloads: impl Iterator<Item = &'a [u8]>) -> std::io::Result<()> {
    let mut out = header.to_vec();
    for p in payloads {
        record(p, &mut out);
    }
    repro_util::fs::write_durably(path, &out)
}

/// Forgets everything the file said.
pub(crate) fn drop_file(path: &Path) {
    let _ = fs::remove_file(path);
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn loaded(path: &Path, header: &[u8], len: usize) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        load(path, header, len, |p| out.push(p.to_vec()));
        out
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(200))]

        /// Whatever follows the header, load never panics and hands on only whole records that
        /// pass their check, in order, stopping at the first that does not.
        #[test]
        fn garbage_never_passes_for_records(tail in proptest::collection::vec(any::<u8>(), 0..400), len in 1usize..80) {
            let dir = tempfile::tempdir().expect("tempdir");
            let p = dir.path().join("f");
            let header = b"TST1";
            fs::write(&p, [header.as_slice(), &tail].concat()).expect("write");
            for r in loaded(&p, header, len) {
                prop_assert_eq!(r.len(), len);
            }
            prop_assert!(loaded(&p, b"OTHR", len).is_empty());
        }

        /// What was appended or replaced is read back exactly; a cut anywhere keeps the whole
        /// records before it.
        #[test]
        fn appends_round_trip_and_a_cut_keeps_the_records_before_it(
            payloads in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 12), 1..20),
            cut in any::<prop::sample::Index>(),
        ) {
            let dir = tempfile::tempdir().expect("tempdir");
            let p = dir.path().join("f");
            let header = b"TST1";
            let (first, rest) = payloads.split_at(1);
            append(&p, header, first.iter().map(Vec::as_slice)).expect("append");
            append(&p, header, rest.iter().map(Vec::as_slice)).expect("append");
            prop_assert_eq!(loaded(&p, header, 12), payloads.clone());
            let bytes = fs::read(&p).expect("read");
            let at = header.len() + cut.index(bytes.len() - header.len() + 1);
            fs::write(&p, &bytes[..at]).expect("write");
            let whole = (at - header.len()) / (12 + CHECK);
            prop_assert_eq!(loaded(&p, header, 12), payloads[..whole].to_vec());
            replace(&p, header, rest.iter().map(Vec::as_slice)).expect("replace");
            prop_assert_eq!(loaded(&p, header, 12), rest.to_vec());
            drop_file(&p);
            prop_assert!(loaded(&p, header, 12).is_empty());
        }
    }
}
