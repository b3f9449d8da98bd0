//! The object store: `objects/ab/cdef…` named by BLAKE3, written once.
//!
//! Durability is batched: a [`Batch`] writes every new object to a private temp folder,
//! makes all of them durable in one pass (`syncfs` on Linux, one `fsync` each elsewhere),
//! renames them into place and makes the renames durable, and only then may the caller
//! commit metadata that refers to them. An object under its final name is therefore always
//! complete, and metadata never points at an object that is not yet durable.
//!
//! With a remote (`s3://BUCKET[/PREFIX]`, see [`crate::remote`]) the local folder is a cache
//! and the bucket is the durable, shared tier: a batch commits locally as above, then uploads
//! every object it names, and returns only once the bucket holds them all. A read that
//! misses the cache (or finds a corrupt copy there) downloads the object, verified, first.

use std::collections::{HashMap, HashSet};
use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use rayon::prelude::*;
use repro_core::Digest;

// Re-exported: exec and the server hash files under this name.
pub use repro_util::hash::hash_file;
// Re-exported: the store's other small files (the registry anchor, repro.toml) are written so too.
pub use repro_util::fs::write_durably;
// Re-exported: the stat cache and capture name it through here.
pub use repro_util::fs::FileStat;

// Re-exported: fsck and the remote tier both name it through here.
use crate::remote::Remote;
pub use crate::remote::Verified;
use crate::stamps::Stamps;
use crate::{Result, StoreError};

const OBJECTS_DIR: &str = "objects";
pub const TMP_DIR: &str = "tmp";

pub struct Objects {
    dir: PathBuf,
    tmp: PathBuf,
    remote: Option<Arc<Remote>>,
    stamps: Stamps,
}

impl Objects {
    /// Makes the object folders; with a remote, first checks that its bucket answers.
    pub(crate) fn create(root: &Path, remote: Option<&str>) -> Result<()> {
        Objects::create_with(root, remote.map(Remote::connect).transpose()?.as_deref())
    }

    pub(crate) fn create_with(root: &Path, remote: Option<&Remote>) -> Result<()> {
        if let Some(remote) = remote {
            remote.check()?;
        }
        for d in [OBJECTS_DIR, TMP_DIR] {
            let p = root.join(d);
            fs::create_dir_all(&p).map_err(StoreError::io("create", &p))?;
        }
        Ok(())
    }

    /// Opens the objects of the store at `root`. A remote is not contacted until it is used.
    pub(crate) fn open(root: &Path, remote: Option<&str>) -> Result<Objects> {
        Objects::open_with(root, remote.map(Remote::connect).transpose()?)
    }

    pub(crate) fn open_with(root: &Path, remote: Option<Arc<Remote>>) -> Result<Objects> {
        let dir = root.join(OBJECTS_DIR);
        if !dir.is_dir() {
            return Err(StoreError::NotAStore(root.to_path_buf()));
        }
        let tmp = root.join(TMP_DIR);
        fs::create_dir_all(&tmp).map_err(StoreError::io("create", &tmp))?;
        if let Some(remote) = &remote {
            remote.attach_known(crate::known::path_in(root));
        }
        Ok(Objects { dir, tmp, remote, stamps: Stamps::in_store(root) })
    }

    /// The shared tier, when the store has one.
    pub fn remote(&self) -> Option<&Remote> {
        self.remote.as_deref()
    }

    /// Where the object's file is, or would be: with a remote, the cache may not hold it yet;
    /// [`Objects::fetch`] makes sure it does.
    pub fn path_of(&self, digest: &Digest) -> PathBuf {
        let hex = digest.hex();
        self.dir.join(&hex[..2]).join(&hex[2..])
    }

    /// The path of the object's file, downloading it into the cache first when a remote
    /// holds it and the cache does not. A cached copy is not re-hashed here; callers that
    /// need the bytes verified call [`Objects::verify`] (which also fetches) or [`Objects::read`].
    pub fn fetch(&self, digest: &Digest) -> Result<PathBuf> {
        let path = self.path_of(digest);
        if path.is_file() {
            return Ok(path);
        }
        match self.download(digest)? {
            Verified::Ok { .. } => Ok(path),
            Verified::Missing => Err(StoreError::ObjectMissing(digest.clone())),
            Verified::Corrupt => Err(StoreError::ObjectCorrupt(digest.clone())),
        }
    }

    /// Whether the store holds the object durably: the local folder, or with a remote, the
    /// bucket (a cached copy alone is no proof that it was ever uploaded). An unreachable
    /// remote answers false, so a caller writes the object again and the upload reports why.
    pub fn contains(&self, digest: &Digest) -> bool {
        match &self.remote {
            None => self.cached(digest),
            Some(remote) => remote.exists(digest).unwrap_or(false),
        }
    }

    /// `contains` for many objects at once (with a remote, the lookups run side by side).
    pub fn contains_many(&self, digests: &[Digest]) -> Vec<bool> {
        match &self.remote {
            None => digests.iter().map(|d| self.cached(d)).collect(),
            Some(remote) => remote.exists_many(digests).unwrap_or_else(|_| vec![false; digests.len()]),
        }
    }

    fn cached(&self, digest: &Digest) -> bool {
        self.path_of(digest).is_file()
    }

    /// Drops a cached copy that failed its hash, so the next read downloads it again.
    fn evict(&self, digest: &Digest) {
        let _ = fs::remove_file(self.path_of(digest));
    }

    /// Downloads the object from the remote into the cache, verified before it becomes
    /// visible under its name. `Missing` without a remote.
    fn download(&self, digest: &Digest) -> Result<Verified> {
        let Some(remote) = &self.remote else { return Ok(Verified::Missing) };
        // The pid first: fsck removes temp files whose writer is gone.
        let tmp = self.tmp.join(format!("{}-fetch-{}", std::process::id(), uuid::Uuid::new_v4().simple()));
        let got = remote.download(digest, &tmp)?;
        if let Verified::Ok { .. } = got {
            let dest = self.path_of(digest);
            let placed = (|| {
                set_mode(&tmp, 0o444).map_err(StoreError::io("set permissions on", &tmp))?;
                if let Some(shard) = dest.parent() {
                    fs::create_dir_all(shard).map_err(StoreError::io("create", shard))?;
                }
                fs::rename(&tmp, &dest).map_err(StoreError::io("rename into", &dest))
            })();
            if placed.is_err() {
                let _ = fs::remove_file(&tmp);
            }
            placed?;
        }
        Ok(got)
    }

    pub fn tmp_dir(&self) -> &Path {
        &self.tmp
    }

    pub fn objects_dir(&self) -> &Path {
        &self.dir
    }

    /// Starts a batch of writes in a private temp folder.
    pub fn batch(&self) -> Result<Batch<'_>> {
        let dir = self.tmp.join(format!("{}-{}", std::process::id(), uuid::Uuid::new_v4().simple()));
        fs::create_dir(&dir).map_err(StoreError::io("create", &dir))?;
        Ok(Batch { objects: self, dir, state: Mutex::new(BatchState::default()), committed: false })
    }

    /// Stores one blob durably (with a remote: in the bucket) and returns its digest.
    pub fn put_bytes(&self, bytes: &[u8]) -> Result<Digest> {
        let digest = Digest::of_bytes(bytes);
        let durable = match &self.remote {
            None => self.cached(&digest),
            // A cached copy alone goes through a batch all the same: its commit makes sure
            // the bucket has it.
            Some(remote) => self.cached(&digest) && remote.remembered(&digest),
        };
        if !durable {
            let batch = self.batch()?;
            batch.add_bytes(&digest, bytes)?;
            batch.commit()?;
        }
        Ok(digest)
    }

    /// Reads a whole object, verifying its digest; with a remote, a missing or corrupt
    /// cached copy is downloaded again first.
    pub fn read(&self, digest: &Digest) -> Result<Vec<u8>> {
        match self.read_cached(digest) {
            Err(StoreError::ObjectMissing(_) | StoreError::ObjectCorrupt(_)) if self.remote.is_some() => {
                self.evict(digest);
                self.fetch(digest)?;
                self.read_cached(digest)
            }
            read => read,
        }
    }

    fn read_cached(&self, digest: &Digest) -> Result<Vec<u8>> {
        let path = self.path_of(digest);
        let bytes = match fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(StoreError::ObjectMissing(digest.clone()))
            }
            Err(e) => return Err(StoreError::Io { action: "read", path, source: e }),
        };
        if Digest::of_bytes(&bytes) != *digest {
            return Err(StoreError::ObjectCorrupt(digest.clone()));
        }
        Ok(bytes)
    }

    /// Re-hashes one object. With a remote, an object the cache lacks (or holds corrupt) is
    /// downloaded and hashed on the way in, so `Ok` also means the cache now holds it
    /// intact, and `Corrupt` means the bucket's copy is.
    pub fn verify(&self, digest: &Digest) -> Result<Verified> {
        match self.verify_cached(digest)? {
            Verified::Ok { bytes } => Ok(Verified::Ok { bytes }),
            _ if self.remote.is_some() => {
                self.evict(digest);
                self.download(digest)
            }
            other => Ok(other),
        }
    }

    /// Re-hashes the durable copy: the bucket's when the store has a remote (streamed, not
    /// cached: fsck checks what other machines will read), else the local file.
    pub fn verify_durable(&self, digest: &Digest) -> Result<Verified> {
        match &self.remote {
            Some(remote) => remote.verify(digest),
            None => self.verify_cached(digest),
        }
    }

    /// Re-hashes the local copy, stamping it ([`crate::stamps`]) when it hashed right.
    fn verify_cached(&self, digest: &Digest) -> Result<Verified> {
        let path = self.path_of(digest);
        let hashed = File::open(&path).and_then(|f| {
            let before = FileStat::of(&f.metadata()?);
            let (d, bytes) = repro_util::hash::hash_open(&f)?;
            Ok((d, bytes, before, FileStat::of(&f.metadata()?)))
        });
        match hashed {
            Ok((d, bytes, before, after)) if d == *digest => {
                self.stamps.stamp(digest, &before, &after);
                Ok(Verified::Ok { bytes })
            }
            Ok(_) => Ok(Verified::Corrupt),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Verified::Missing),
            Err(e) => Err(StoreError::Io { action: "read", path, source: e }),
        }
    }

    /// Forgets every stamp: fsck re-hashes every local object and stamps the intact ones anew.
    pub(crate) fn clear_stamps(&self) {
        self.stamps.clear();
    }

    /// Copies an object out to `dest` (with `mode`), verified: see [`Objects::restore_as`].
    pub fn restore(&self, digest: &Digest, dest: &Path, mode: u32) -> Result<u64> {
        self.restore_as(digest, dest, mode, Placement::Own, ReadBack::UnlessStamped).map(|(bytes, _)| bytes)
    }

    /// Puts an object at `dest`, verifying the bytes `dest` will read: the file is made under
    /// a temp name beside `dest`, hashed, and only then renamed into place, so `dest` is either
    /// the verified content or untouched. [`Placement::Own`] clones the object where the file
    /// system can (FICLONE: no bytes copied, then one read to hash, skipped where the object's
    /// stamp vouches for it and `read` allows) and otherwise copies it, hashing while it copies
    /// (one read, not two); [`Placement::Link`] hard-links the object after hashing it (falling
    /// back to `Own` across file systems).
    /// With a remote, the object is fetched first, and a corrupt cached copy is fetched again.
    pub fn restore_as(
        &self,
        digest: &Digest,
        dest: &Path,
        mode: u32,
        placement: Placement,
        read: ReadBack,
    ) -> Result<(u64, Restored)> {
        match self.restore_cached(digest, dest, mode, placement, read) {
            Err(StoreError::ObjectMissing(_) | StoreError::ObjectCorrupt(_)) if self.remote.is_some() => {
                self.evict(digest);
                self.fetch(digest)?;
                self.restore_cached(digest, dest, mode, placement, read)
            }
            restored => restored,
        }
    }

    fn restore_cached(
        &self,
        digest: &Digest,
        dest: &Path,
        mode: u32,
        placement: Placement,
        read: ReadBack,
    ) -> Result<(u64, Restored)> {
        let src = self.path_of(digest);
        let dir = dest.parent().unwrap_or(Path::new("."));
        fs::create_dir_all(dir).map_err(StoreError::io("create", dir))?;
        let tmp = dir.join(format!(
            ".{}.repro-{}",
            dest.file_name().map(|n| n.to_string_lossy()).unwrap_or_default(),
            uuid::Uuid::new_v4().simple()
        ));
        let cleanup = |e: StoreError| {
            let _ = fs::remove_file(&tmp);
            e
        };
        let missing_or = |e: std::io::Error, action: &'static str| match e.kind() {
            std::io::ErrorKind::NotFound if !src.exists() => StoreError::ObjectMissing(digest.clone()),
            _ => StoreError::Io { action, path: src.clone(), source: e },
        };
        if placement == Placement::Link {
            // The link reads the object itself: hash the object, then link it.
            let (got, bytes) = hash_file(&src).map_err(|e| missing_or(e, "read"))?;
            if got != *digest {
                return Err(StoreError::ObjectCorrupt(digest.clone()));
            }
            match fs::hard_link(&src, &tmp) {
                Ok(()) => {
                    fs::rename(&tmp, dest).map_err(|e| {
                        cleanup(StoreError::Io { action: "write", path: dest.to_path_buf(), source: e })
                    })?;
                    return Ok((bytes, Restored::Linked));
                }
                // Another file system (or one without hard links): a file of its own.
                Err(e) if matches!(e.raw_os_error(), Some(libc::EXDEV | libc::EPERM | libc::EMLINK)) => {}
                Err(e) => return Err(cleanup(StoreError::Io { action: "link", path: tmp.clone(), source: e })),
            }
        }
        let source = File::open(&src).map_err(|e| missing_or(e, "read"))?;
        let stat_of = |f: &File| f.metadata().map(|m| FileStat::of(&m));
        let before = stat_of(&source).map_err(|e| missing_or(e, "read"))?;
        let mut out = fs::OpenOptions::new().write(true).create_new(true).open(&tmp).map_err(|e| StoreError::Io {
            action: "create",
            path: tmp.clone(),
            source: e,
        })?;
        let (got, bytes, how) = match clone_file(&source, &out) {
            Ok(()) => {
                // The clone holds the object's bytes as they were when it was made: checking
                // the object's stat after the clone covers a change made during it.
                let cloned = stat_of(&source).map_err(|e| missing_or(e, "read"))?;
                if read == ReadBack::UnlessStamped && cloned == before && self.stamps.vouch(digest, &cloned) {
                    (digest.clone(), cloned.size, Restored::Reflinked { read: false })
                } else {
                    let (got, bytes) = hash_file(&tmp)
                        .map_err(|e| cleanup(StoreError::Io { action: "read", path: tmp.clone(), source: e }))?;
                    if got == *digest {
                        let after = stat_of(&source).map_err(|e| missing_or(e, "read"))?;
                        self.stamps.stamp(digest, &before, &after);
                    }
                    (got, bytes, Restored::Reflinked { read: true })
                }
            }
            Err(_) => {
                let (got, bytes) = repro_util::hash::copy_hashing(source, &mut out)
                    .map_err(|e| cleanup(StoreError::Io { action: "copy", path: src.clone(), source: e }))?;
                (got, bytes, Restored::Copied)
            }
        };
        drop(out);
        if got != *digest {
            return Err(cleanup(StoreError::ObjectCorrupt(digest.clone())));
        }
        set_mode(&tmp, mode & 0o7777)
            .map_err(|e| cleanup(StoreError::Io { action: "chmod", path: tmp.clone(), source: e }))?;
        fs::rename(&tmp, dest)
            .map_err(|e| cleanup(StoreError::Io { action: "write", path: dest.to_path_buf(), source: e }))?;
        Ok((bytes, how))
    }

    /// Every object, with the name it claims (files whose names are not digests are
    /// returned as `Err(path)`). With a remote: every object in the bucket (the durable
    /// set), strays as `Err(s3://…)`.
    pub fn list(&self) -> Result<Vec<std::result::Result<Digest, PathBuf>>> {
        if let Some(remote) = &self.remote {
            return Ok(remote.list()?.into_iter().map(|o| o.map_err(PathBuf::from)).collect());
        }
        let mut out = Vec::new();
        for shard in fs::read_dir(&self.dir).map_err(StoreError::io("list", &self.dir))? {
            let shard = shard.map_err(StoreError::io("list", &self.dir))?;
            let shard_path = shard.path();
            let shard_name = shard.file_name().to_string_lossy().into_owned();
            if !shard_path.is_dir() {
                out.push(Err(shard_path));
                continue;
            }
            for entry in fs::read_dir(&shard_path).map_err(StoreError::io("list", &shard_path))? {
                let entry = entry.map_err(StoreError::io("list", &shard_path))?;
                let name = entry.file_name().to_string_lossy().into_owned();
                match Digest::parse(&format!("{}{shard_name}{name}", Digest::PREFIX)) {
                    Ok(d) => out.push(Ok(d)),
                    Err(_) => out.push(Err(entry.path())),
                }
            }
        }
        Ok(out)
    }
}

#[derive(Default)]
struct BatchState {
    pending: HashMap<Digest, PathBuf>,
    /// With a remote: objects skipped because the cache had them, which the commit must
    /// still find in (or upload to) the bucket.
    cached: HashSet<Digest>,
    bytes: u64,
}

/// A set of object writes made durable together. Dropping an uncommitted batch removes
/// its temp files; nothing outside the temp folder is touched before [`Batch::commit`].
pub struct Batch<'a> {
    objects: &'a Objects,
    dir: PathBuf,
    state: Mutex<BatchState>,
    committed: bool,
}

impl Batch<'_> {
    /// Reserves `digest` for this batch; false when it is already stored or pending.
    fn reserve(&self, digest: &Digest) -> Option<PathBuf> {
        let mut state = self.state.lock().expect("batch lock is never poisoned by a panic-free writer");
        if self.objects.cached(digest) {
            if self.objects.remote.is_some() {
                state.cached.insert(digest.clone());
            }
            return None;
        }
        if state.pending.contains_key(digest) {
            return None;
        }
        let tmp = self.dir.join(digest.hex());
        state.pending.insert(digest.clone(), tmp.clone());
        Some(tmp)
    }

    fn count(&self, n: u64) {
        if let Ok(mut s) = self.state.lock() {
            s.bytes += n;
        }
    }

    /// Adds bytes whose digest the caller computed from these very bytes.
    pub fn add_bytes(&self, digest: &Digest, bytes: &[u8]) -> Result<bool> {
        let Some(tmp) = self.reserve(digest) else { return Ok(false) };
        // Created read-only (the open handle may still write): objects are never changed
        // in place, and this saves a chmod per object at commit.
        let mut options = fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o444);
        let mut f = options.open(&tmp).map_err(StoreError::io("create", &tmp))?;
        f.write_all(bytes).map_err(StoreError::io("write", &tmp))?;
        self.count(bytes.len() as u64);
        Ok(true)
    }

    /// Adds a copy of `src`, already hashed to `digest` when it looked like `seen`. The
    /// file is checked again after the copy, so a file rewritten meanwhile is an error
    /// rather than an object under the wrong name.
    pub fn add_copy(&self, digest: &Digest, src: &Path, seen: &FileStat) -> Result<bool> {
        let Some(tmp) = self.reserve(digest) else { return Ok(false) };
        // std::fs::copy uses copy_file_range on Linux: the kernel moves the bytes.
        fs::copy(src, &tmp).map_err(StoreError::io("copy", src))?;
        set_mode(&tmp, 0o444).map_err(StoreError::io("set permissions on", &tmp))?;
        let now = FileStat::of(&fs::metadata(src).map_err(StoreError::io("stat", src))?);
        if now.size != seen.size || now.mtime_ns != seen.mtime_ns {
            return Err(StoreError::ChangedDuringSnapshot { path: src.to_path_buf() });
        }
        self.count(now.size);
        Ok(true)
    }

    /// Number of objects and bytes this batch will add.
    pub fn pending(&self) -> (usize, u64) {
        let s = self.state.lock().expect("batch lock");
        (s.pending.len(), s.bytes)
    }

    /// Makes every pending object durable and visible. With a remote, returns only once
    /// the bucket holds every object this batch was given, new or already cached. Returns
    /// how many objects the local store gained.
    pub fn commit(mut self) -> Result<usize> {
        let (pending, cached): (Vec<(Digest, PathBuf)>, Vec<Digest>) = {
            let mut s = self.state.lock().expect("batch lock");
            (s.pending.drain().collect(), s.cached.drain().collect())
        };
        self.commit_locally(&pending)?;
        self.committed = true;
        if let Some(remote) = &self.objects.remote {
            let at = |d: &Digest| (d.clone(), self.objects.path_of(d));
            let new: Vec<(Digest, PathBuf)> = pending.iter().map(|(d, _)| at(d)).collect();
            let cached: Vec<(Digest, PathBuf)> = cached.iter().map(at).collect();
            if let Err(e) = remote.push(&new, &cached) {
                // A cached copy that no longer hashes to its name cannot be uploaded; drop it
                // so that writing the same content again stores it afresh.
                if let StoreError::ObjectCorrupt(d) = &e {
                    self.objects.evict(d);
                }
                return Err(e);
            }
        }
        Ok(pending.len())
    }

    fn commit_locally(&self, pending: &[(Digest, PathBuf)]) -> Result<()> {
        if pending.is_empty() {
            return Ok(());
        }
        sync_all(&self.dir, pending.iter().map(|(_, p)| p.as_path()))?;
        let mut shards: Vec<PathBuf> = pending
            .iter()
            .map(|(d, _)| self.objects.path_of(d).parent().expect("shard folder").to_path_buf())
            .collect();
        shards.sort();
        shards.dedup();
        for shard in &shards {
            if !shard.is_dir() {
                fs::create_dir_all(shard).map_err(StoreError::io("create", shard))?;
            }
        }
        // Renames of distinct names are independent: do them on every core.
        pending.par_iter().try_for_each(|(digest, tmp)| {
            let dest = self.objects.path_of(digest);
            fs::rename(tmp, &dest).map_err(StoreError::io("rename into", &dest))
        })?;
        sync_dirs(&self.dir, &shards)
    }
}

impl Drop for Batch<'_> {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.dir);
        let _ = self.committed;
    }
}

/// Makes file contents durable: one `syncfs` for the whole file system on Linux.
#[cfg(target_os = "linux")]
fn sync_all<'a>(dir: &Path, _files: impl Iterator<Item = &'a Path>) -> Result<()> {
    syncfs(dir)
}

#[cfg(not(target_os = "linux"))]
fn sync_all<'a>(_dir: &Path, files: impl Iterator<Item = &'a Path>) -> Result<()> {
    for f in files {
        File::open(f).and_then(|f| f.sync_all()).map_err(StoreError::io("sync", f))?;
    }
    Ok(())
}

#[cfg(target_os = "linux")]
fn sync_dirs(dir: &Path, _shards: &[PathBuf]) -> Result<()> {
    syncfs(dir)
}

#[cfg(not(target_os = "linux"))]
fn sync_dirs(_dir: &Path, shards: &[PathBuf]) -> Result<()> {
    for s in shards {
        File::open(s).and_then(|f| f.sync_all()).map_err(StoreError::io("sync", s))?;
    }
    Ok(())
}

#[cfg(target_os = "linux")]
fn syncfs(dir: &Path) -> Result<()> {
    use std::os::fd::AsRawFd;
    let f = File::open(dir).map_err(StoreError::io("open", dir))?;
    // SAFETY: syncfs takes any open descriptor on the file system; `f` outlives the call.
    let rc = unsafe { libc::syncfs(f.as_raw_fd()) };
    if rc != 0 {
        return Err(StoreError::Io {
            action: "sync",
            path: dir.to_path_buf(),
            source: std::io::Error::last_os_error(),
        });
    }
    Ok(())
}

/// How [`Objects::restore_as`] places an object.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Placement {
    /// A file of its own: a reflink where the file system has them, else a hashing copy.
    Own,
    /// A hard link to the read-only object (`repro replay --link-data`): nothing copied, but
    /// the file *is* the object — a process that may write read-only files (root) and does
    /// would change the object, which fsck then names as corrupt.
    Link,
}

/// How an object was placed: what [`Placement::Own`] or [`Placement::Link`] came to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Restored {
    /// A clone of the object's blocks; `read: false` when its stamp vouched for the bytes.
    Reflinked {
        read: bool,
    },
    Copied,
    Linked,
}

/// Whether [`Objects::restore_as`] reads a reflinked clone back to hash it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReadBack {
    /// Unless the object's stamp ([`crate::stamps`]) vouches that it hashed right and has not
    /// changed since.
    UnlessStamped,
    /// Always (`repro replay --verify-data`).
    Always,
}

/// Makes `dest` share `src`'s blocks (FICLONE: Btrfs, XFS, bcachefs, OCFS2 …); an error
/// where the file system cannot, and the caller copies.
#[cfg(target_os = "linux")]
fn clone_file(src: &File, dest: &File) -> std::io::Result<()> {
    use std::os::fd::AsRawFd;
    // SAFETY: both descriptors are open for the duration of the call; FICLONE takes the
    // source descriptor as its argument and touches no memory of ours.
    let r = unsafe { libc::ioctl(dest.as_raw_fd(), libc::FICLONE, src.as_raw_fd()) };
    match r {
        0 => Ok(()),
        _ => Err(std::io::Error::last_os_error()),
    }
}

#[cfg(not(target_os = "linux"))]
fn clone_file(_: &File, _: &File) -> std::io::Result<()> {
    Err(std::io::Error::from(std::io::ErrorKind::Unsupported))
}

pub(crate) fn set_mode(path: &Path, mode: u32) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(path, fs::Permissions::from_mode(mode))
    }
    #[cfg(not(unix))]
    {
        let _ = (path, mode);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store() -> (tempfile::TempDir, Objects) {
        let dir = tempfile::tempdir().expect("tempdir");
        Objects::create(dir.path(), None).expect("create");
        let o = Objects::open(dir.path(), None).expect("open");
        (dir, o)
    }

    #[test]
    fn put_read_verify() {
        let (_d, o) = store();
        let d = o.put_bytes(b"hello").expect("put");
        assert_eq!(o.read(&d).expect("read"), b"hello");
        assert_eq!(o.verify(&d).expect("verify"), Verified::Ok { bytes: 5 });
        // Writing the same content again is a no-op.
        assert_eq!(o.put_bytes(b"hello").expect("put"), d);
    }

    #[test]
    fn corruption_is_detected() {
        let (_d, o) = store();
        let d = o.put_bytes(b"hello").expect("put");
        let p = o.path_of(&d);
        set_mode(&p, 0o644).expect("chmod");
        fs::write(&p, b"hellO").expect("write");
        assert_eq!(o.verify(&d).expect("verify"), Verified::Corrupt);
        assert!(matches!(o.read(&d), Err(StoreError::ObjectCorrupt(_))));
        let missing = Digest::of_bytes(b"nope");
        assert_eq!(o.verify(&missing).expect("verify"), Verified::Missing);
    }

    #[test]
    fn every_placement_restores_verified_bytes_and_a_damaged_object_leaves_dest_alone() {
        use std::os::unix::fs::MetadataExt;
        let (d, o) = store();
        let big: Vec<u8> = (0..(5 << 20) + 3).map(|i| (i % 241) as u8).collect();
        let out = d.path().join("tree");
        for (name, bytes) in [("small.csv", b"a,b\n1,2\n".to_vec()), ("big.bin", big)] {
            let digest = o.put_bytes(&bytes).expect("put");
            let own = out.join("own").join(name);
            let (n, how) = o.restore_as(&digest, &own, 0o640, Placement::Own, ReadBack::UnlessStamped).expect("own");
            assert_eq!(n, bytes.len() as u64);
            // This machine's file systems have no reflinks; where they do, the clone is hashed.
            assert!(matches!(how, Restored::Copied | Restored::Reflinked { read: true }), "{how:?}");
            assert!(fs::read(&own).expect("read") == bytes);
            assert_eq!(fs::metadata(&own).expect("stat").mode() & 0o777, 0o640);
            assert_ne!(fs::metadata(&own).expect("stat").ino(), fs::metadata(o.path_of(&digest)).expect("stat").ino());

            let linked = out.join("link").join(name);
            let (n, how) =
                o.restore_as(&digest, &linked, 0o640, Placement::Link, ReadBack::UnlessStamped).expect("link");
            assert_eq!((n, how), (bytes.len() as u64, Restored::Linked));
            assert_eq!(
                fs::metadata(&linked).expect("stat").ino(),
                fs::metadata(o.path_of(&digest)).expect("stat").ino()
            );
            assert!(fs::read(&linked).expect("read") == bytes);
        }

        // A damaged object: no placement puts it anywhere, and nothing is left beside dest.
        let digest = o.put_bytes(b"the real bytes").expect("put");
        let p = o.path_of(&digest);
        set_mode(&p, 0o644).expect("chmod");
        fs::write(&p, b"the fake bytes").expect("write");
        for placement in [Placement::Own, Placement::Link] {
            let dest = out.join("damaged").join(format!("{placement:?}"));
            assert!(matches!(
                o.restore_as(&digest, &dest, 0o644, placement, ReadBack::UnlessStamped),
                Err(StoreError::ObjectCorrupt(_))
            ));
            assert!(!dest.exists());
            let left: Vec<_> = fs::read_dir(out.join("damaged")).expect("ls").flatten().collect();
            assert!(left.is_empty(), "{left:?}");
        }
        let missing = Digest::of_bytes(b"never stored");
        for placement in [Placement::Own, Placement::Link] {
            let dest = out.join("missing");
            assert!(matches!(
                o.restore_as(&missing, &dest, 0o644, placement, ReadBack::UnlessStamped),
                Err(StoreError::ObjectMissing(_))
            ));
        }
    }

    #[test]
    fn a_stamp_spares_the_read_of_a_clone_and_an_object_changed_since_is_read_and_refused() {
        // On the file system with reflinks that scripts/test-all.sh mounts where it can, the
        // clone path; elsewhere the copy, which reads the object whatever its stamp says.
        let base = std::env::var_os("REPRO_TEST_REFLINK_DIR").map(PathBuf::from);
        let dir = match &base {
            Some(b) => tempfile::tempdir_in(b),
            None => tempfile::tempdir(),
        }
        .expect("tempdir");
        Objects::create(dir.path(), None).expect("create");
        let o = Objects::open(dir.path(), None).expect("open");
        let bytes: Vec<u8> = (0..(2 << 20) + 7).map(|i| (i % 251) as u8).collect();
        let digest = o.put_bytes(&bytes).expect("put");
        let stat = || FileStat::of(&fs::metadata(o.path_of(&digest)).expect("stat"));
        assert_eq!(o.verify(&digest).expect("verify"), Verified::Ok { bytes: bytes.len() as u64 });
        assert!(!o.stamps.vouch(&digest, &stat()), "an object written just now is not stamped");
        std::thread::sleep(std::time::Duration::from_millis(2100));
        assert_eq!(o.verify(&digest).expect("verify"), Verified::Ok { bytes: bytes.len() as u64 });
        assert!(o.stamps.vouch(&digest, &stat()), "hashed, and settled");
        assert!(Objects::open(dir.path(), None).expect("open").stamps.vouch(&digest, &stat()), "kept on disk");

        let probe = dir.path().join("probe");
        fs::write(&probe, b"p").expect("write");
        let reflinks = clone_file(
            &File::open(&probe).expect("open"),
            &File::create(dir.path().join("probe-clone")).expect("create"),
        )
        .is_ok();
        assert!(base.is_none() || reflinks, "REPRO_TEST_REFLINK_DIR has no reflinks");
        let out = dir.path().join("out");
        for (read, expected) in [
            (ReadBack::UnlessStamped, Restored::Reflinked { read: false }),
            (ReadBack::Always, Restored::Reflinked { read: true }),
        ] {
            let dest = out.join(format!("{read:?}"));
            let (n, how) = o.restore_as(&digest, &dest, 0o640, Placement::Own, read).expect("restore");
            assert_eq!((n, how), (bytes.len() as u64, if reflinks { expected } else { Restored::Copied }));
            assert!(fs::read(&dest).expect("read") == bytes);
        }

        // Changed in place: same inode, same size, a new ctime. The stamp no longer vouches, so
        // the clone (or copy) is read, found wrong and never put in place.
        set_mode(&o.path_of(&digest), 0o644).expect("chmod");
        let mut f = fs::OpenOptions::new().write(true).open(o.path_of(&digest)).expect("open");
        f.write_all(b"forged").expect("write");
        drop(f);
        assert!(!o.stamps.vouch(&digest, &stat()));
        let dest = out.join("after");
        let r = o.restore_as(&digest, &dest, 0o640, Placement::Own, ReadBack::UnlessStamped);
        assert!(matches!(r, Err(StoreError::ObjectCorrupt(_))), "{r:?}");
        assert!(!dest.exists());
        assert_eq!(o.verify(&digest).expect("verify"), Verified::Corrupt);
    }

    #[test]
    fn dropped_batch_leaves_nothing() {
        let (_d, o) = store();
        let digest = Digest::of_bytes(b"x");
        {
            let b = o.batch().expect("batch");
            b.add_bytes(&digest, b"x").expect("add");
        }
        assert!(!o.contains(&digest));
        assert_eq!(fs::read_dir(o.tmp_dir()).expect("ls").count(), 0);
    }
}
