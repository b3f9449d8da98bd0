//! A file's BLAKE3 digest, as the object store names objects and capture records files.

use std::fs::File;
use std::io::Read;
use std::path::Path;

use repro_core::Digest;

/// Files up to this size are read whole; larger ones are hashed through mapped windows.
const SMALL_FILE: u64 = 4 * 1024 * 1024;
/// The mapped window for large files: bounds memory while letting BLAKE3 use every core.
const WINDOW: u64 = 32 * 1024 * 1024;

/// Hashes a file with bounded memory: small files are read whole, large ones through
/// mapped windows hashed on every core.
pub fn hash_file(path: &Path) -> std::io::Result<(Digest, u64)> {
    hash_open(&File::open(path)?)
}

/// [`hash_file`] of a file already open (whose stat the caller takes before and after).
pub fn hash_open(file: &File) -> std::io::Result<(Digest, u64)> {
    read_hashing(file, |_| Ok(()))
}

/// Copies `src` into `dest` and hashes the bytes on the way: one read of the source, not a
/// copy and then a second read to verify it. Bounded memory, as [`hash_file`]. For a large
/// file, one thread writes a window while the others hash the next, so the copy costs about
/// the larger of the two rather than their sum.
pub fn copy_hashing(src: File, dest: &mut File) -> std::io::Result<(Digest, u64)> {
    use std::io::Write;
    let len = src.metadata()?.len();
    if len <= SMALL_FILE {
        return read_hashing(&src, |bytes| dest.write_all(bytes));
    }
    std::thread::scope(|scope| {
        // One window in flight beside the one being hashed: at most three mapped at once.
        let (tx, rx) = std::sync::mpsc::sync_channel::<memmap2::Mmap>(1);
        let writer = scope.spawn(move || -> std::io::Result<()> {
            for window in rx {
                dest.write_all(&window)?;
            }
            Ok(())
        });
        let hashed =
            hash_windows(&src, len, |window| tx.send(window).map_err(|_| std::io::Error::other("the copy stopped")));
        drop(tx);
        // The writer's own error says more than "the copy stopped".
        writer.join().unwrap_or_else(|_| Err(std::io::Error::other("the copying thread panicked")))?;
        Ok((hashed?, len))
    })
}

/// Reads `file` once, hashing it and handing each piece to `sink` in order: small files
/// whole, large ones through mapped windows (hashed on every core, then handed on).
fn read_hashing(mut file: &File, mut sink: impl FnMut(&[u8]) -> std::io::Result<()>) -> std::io::Result<(Digest, u64)> {
    let len = file.metadata()?.len();
    if len <= SMALL_FILE {
        let mut buf = Vec::with_capacity(len as usize);
        file.read_to_end(&mut buf)?;
        sink(&buf)?;
        return Ok((Digest::of_bytes(&buf), buf.len() as u64));
    }
    Ok((hash_windows(file, len, |window| sink(&window))?, len))
}

/// Hashes the first `len` bytes of `file` through mapped windows, on every core, handing each
/// window to `each` once it is hashed; an error from `each` stops the pass.
fn hash_windows(
    file: &File,
    len: u64,
    mut each: impl FnMut(memmap2::Mmap) -> std::io::Result<()>,
) -> std::io::Result<Digest> {
    let mut hasher = blake3::Hasher::new();
    let mut offset = 0u64;
    while offset < len {
        let size = WINDOW.min(len - offset);
        let window = map_window(file, offset, size)?;
        hasher.update_rayon(&window);
        each(window)?;
        offset += size;
    }
    Ok(Digest::from_hash(hasher.finalize()))
}

/// Maps `size` bytes of `file` from `offset`, read-only, for one sequential pass.
fn map_window(file: &File, offset: u64, size: u64) -> std::io::Result<memmap2::Mmap> {
    // SAFETY: the map is read-only and dropped after its window is used; a file truncated
    // underneath us would fault, which the caller's change check cannot prevent, so we
    // only map files we just stat'ed (the snapshot re-checks size and mtime afterwards;
    // copies read the store's read-only objects).
    let map = unsafe { memmap2::MmapOptions::new().offset(offset).len(size as usize).map(file)? };
    #[cfg(unix)]
    let _ = map.advise(memmap2::Advice::Sequential);
    Ok(map)
}

/// A file's BLAKE3 digest, lowercase hex SHA-256 and size, read once in bounded chunks: for
/// files in-toto statements name by SHA-256 too (an adopted model may be gigabytes).
pub fn hash_file_with_sha256(path: &Path) -> std::io::Result<(Digest, String, u64)> {
    use sha2::Digest as _;
    let mut file = File::open(path)?;
    let mut blake = blake3::Hasher::new();
    let mut sha = sha2::Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut len = 0u64;
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        blake.update(&buf[..n]);
        sha.update(&buf[..n]);
        len += n as u64;
    }
    let hex: String = sha.finalize().iter().map(|b| format!("{b:02x}")).collect();
    Ok((Digest::from_hash(blake.finalize()), hex, len))
}

#[cfg(test)]
mod tests {

    #[test]
    fn both_digests_match_the_whole_file_hashed_at_once() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("model.bin");
        // Over one chunk, and not a multiple of it.
        let bytes: Vec<u8> = (0..(3 << 20) + 17).map(|i| (i % 251) as u8).collect();
        std::fs::write(&path, &bytes).expect("write");
        let (blake3, sha256, len) = super::hash_file_with_sha256(&path).expect("hash");
        assert_eq!(blake3, Digest::of_bytes(&bytes));
        assert_eq!(sha256, repro_core::provenance::hex_sha256(&bytes));
        assert_eq!(len, bytes.len() as u64);
    }

    use super::*;

    #[test]
    fn a_hashing_copy_is_the_file_and_its_digest_small_and_large() {
        let dir = tempfile::tempdir().expect("tempdir");
        for len in [0usize, 5, (SMALL_FILE as usize) + 1, (WINDOW as usize) + 4099] {
            let src = dir.path().join(format!("src-{len}"));
            let bytes: Vec<u8> = (0..len).map(|i| (i % 253) as u8).collect();
            std::fs::write(&src, &bytes).expect("write");
            let dest_path = dir.path().join(format!("dest-{len}"));
            let mut dest = File::create(&dest_path).expect("create");
            let (digest, n) = copy_hashing(File::open(&src).expect("open"), &mut dest).expect("copy");
            drop(dest);
            assert_eq!((digest, n), (Digest::of_bytes(&bytes), len as u64));
            assert!(std::fs::read(&dest_path).expect("read") == bytes, "{len} bytes copied as they were");
            // A destination that cannot be written is an error, never a hang or a digest.
            let mut read_only = File::open(&dest_path).expect("open");
            assert!(copy_hashing(File::open(&src).expect("open"), &mut read_only).is_err() || len == 0, "{len}");
        }
    }

    #[test]
    fn large_files_hash_like_small_ones() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("big");
        let data: Vec<u8> = (0..(SMALL_FILE + WINDOW + 12345)).map(|i| (i % 251) as u8).collect();
        std::fs::write(&p, &data).expect("write");
        let (d, n) = hash_file(&p).expect("hash");
        assert_eq!(n, data.len() as u64);
        assert_eq!(d, Digest::of_bytes(&data));
    }
}
