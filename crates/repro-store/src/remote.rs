//! The shared tier of the object store: an S3-compatible bucket (`s3://BUCKET[/PREFIX]`)
//! that the `.repro/objects/` cache of every machine writes through to and reads back from.
//!
//! An object's key mirrors the local layout: `PREFIX/objects/<2 hex>/<62 hex>`. Objects are
//! written once: a PUT carries `If-None-Match: *`, so a second writer of the same digest gets
//! "already exists", which is success (the bytes are the same by construction). Uploads larger
//! than [`SINGLE_PUT`] go in parts; the parts API offers no conditional create, so those are
//! checked with a HEAD first (a race between two writers then writes the same bytes twice).
//! Every byte uploaded is hashed on the way out and every byte downloaded on the way in:
//! nothing reaches the bucket, or the cache, under a name it does not hash to.
//!
//! `repro-store` is synchronous; the client is async. One small runtime, made on first use
//! and kept for the life of the process, runs every request through `block_on`. Callers must
//! not be async tasks themselves (the server calls the store from `spawn_blocking` threads).

use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::future::Future;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use futures_util::{StreamExt, TryStreamExt};
use object_store::aws::{AmazonS3, AmazonS3Builder, AmazonS3ConfigKey};
use object_store::path::Path as Key;
use object_store::{
    BackoffConfig, ClientConfigKey, ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload, RetryConfig,
};
use repro_core::Digest;

use crate::error::RemoteFailure;
use crate::{Result, StoreError};

/// What re-hashing one object found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verified {
    Ok { bytes: u64 },
    Missing,
    Corrupt,
}

/// Objects up to this size go up in one conditional PUT, read whole; larger ones in parts of
/// [`PART`] bytes, so a file of gigabytes never sits in memory.
const SINGLE_PUT: u64 = 16 * 1024 * 1024;
const PART: usize = 16 * 1024 * 1024;
/// Requests in flight at once for one batch: enough to hide latency, few enough that
/// `CONCURRENCY * SINGLE_PUT` bytes stay a modest amount of memory.
const CONCURRENCY: usize = 8;
/// Existence checks (HEAD, no body) in flight at once.
const LOOKUPS: usize = 32;
/// Digests remembered as present in the bucket (32 bytes each); past this the memory is
/// dropped, which only costs a HEAD per object again.
const REMEMBERED: usize = 1 << 23;
const ADVICE: &str = "check that the object store is reachable and AWS_* credentials are set";

/// One bucket and prefix, and the client that reaches it.
pub struct Remote {
    pub(crate) store: AmazonS3,
    bucket: String,
    /// `PREFIX/objects`: every object key starts with it.
    objects: Key,
    url: String,
    endpoint: String,
    /// Digests seen in the bucket (uploaded, found, or downloaded), by this process or, through
    /// the stores' `bucket-objects` files ([`crate::known`]), by earlier ones. Objects are never
    /// deleted by repro, so this saves asking again whether a cached object is uploaded.
    present: Mutex<HashSet<[u8; 32]>>,
    /// Remembered since the last save, and the files they are appended to.
    unsaved: Mutex<Vec<[u8; 32]>>,
    known_files: Mutex<Vec<PathBuf>>,
    /// Requests sent to the bucket by this process (the debug trace reports them).
    requests: AtomicU64,
}

impl std::fmt::Debug for Remote {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Remote({} at {})", self.url, self.endpoint)
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // The guarded data (a cache, a set of digests) is valid whatever a panicking holder did.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// The runtime every request runs on, made once: a store opened per server request must not
/// pay for threads each time, and a runtime dropped inside an async context would panic.
fn runtime() -> Result<&'static tokio::runtime::Runtime> {
    static RT: OnceLock<std::result::Result<tokio::runtime::Runtime, String>> = OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("repro-s3")
            .enable_all()
            .build()
            .map_err(|e| e.to_string())
    })
    .as_ref()
    .map_err(|e| {
        StoreError::Remote(Box::new(RemoteFailure {
            action: "start the client for".into(),
            url: "the object store".into(),
            endpoint: "-".into(),
            cause: e.clone(),
            advice: "the process could not start threads; free resources and retry",
        }))
    })
}

impl Remote {
    /// The remote at `url` (`s3://BUCKET[/PREFIX]`), configured from the AWS_* variables
    /// (AWS_ENDPOINT_URL, AWS_REGION, AWS_ALLOW_HTTP, credentials, …). Requests are path-style
    /// and the region defaults to us-east-1. Nothing is sent until the first operation; a
    /// process keeps one client per URL.
    pub fn connect(url: &str) -> Result<Arc<Remote>> {
        Remote::connect_with(url, &[])
    }

    /// Like [`Remote::connect`], with `settings` (object_store's S3 configuration keys, such
    /// as `aws_endpoint`) applied over the environment: tests point at a given server this way.
    pub(crate) fn connect_with(url: &str, settings: &[(&str, &str)]) -> Result<Arc<Remote>> {
        static REMOTES: OnceLock<Mutex<HashMap<String, Arc<Remote>>>> = OnceLock::new();
        let cache = REMOTES.get_or_init(Default::default);
        let cache_key = format!("{url}\n{settings:?}");
        if let Some(r) = lock(cache).get(&cache_key) {
            return Ok(r.clone());
        }
        let remote = Arc::new(Remote::build(url, settings)?);
        Ok(lock(cache).entry(cache_key).or_insert(remote).clone())
    }

    fn build(url: &str, settings: &[(&str, &str)]) -> Result<Remote> {
        let unusable = |cause: String, endpoint: &str| {
            StoreError::Remote(Box::new(RemoteFailure {
                action: "use".into(),
                url: url.to_string(),
                endpoint: endpoint.to_string(),
                cause,
                advice: "fix [store] objects in repro.toml or the AWS_* variables",
            }))
        };
        let (bucket, prefix) = crate::parse_objects_url(url).map_err(|m| unusable(m, "-"))?;
        let mut builder = AmazonS3Builder::from_env();
        for (name, value) in settings {
            let key: AmazonS3ConfigKey = name.parse().map_err(|e: object_store::Error| unusable(e.to_string(), "-"))?;
            builder = builder.with_config(key, *value);
        }
        builder = builder.with_bucket_name(&bucket).with_virtual_hosted_style_request(false);
        let region = builder.get_config_value(&AmazonS3ConfigKey::Region).unwrap_or_else(|| "us-east-1".into());
        builder = builder.with_region(&region);
        // object_store's default 30 s covers a whole request, body included: a large object
        // downloaded over a slow link would never finish. Bound stalls instead, unless the
        // environment chose (AWS_TIMEOUT, AWS_READ_TIMEOUT).
        for (key, value) in [(ClientConfigKey::Timeout, "1h"), (ClientConfigKey::ReadTimeout, "60s")] {
            let key = AmazonS3ConfigKey::Client(key);
            if builder.get_config_value(&key).is_none() {
                builder = builder.with_config(key, value);
            }
        }
        // A few quick retries ride over a blip; the default (10 retries, up to 3 minutes)
        // would leave a user with an unreachable endpoint staring at a silent terminal.
        builder = builder.with_retry(RetryConfig {
            backoff: BackoffConfig {
                init_backoff: Duration::from_millis(100),
                max_backoff: Duration::from_secs(2),
                base: 2.0,
            },
            max_retries: 4,
            retry_timeout: Duration::from_secs(60),
        });
        let endpoint = builder
            .get_config_value(&AmazonS3ConfigKey::Endpoint)
            .unwrap_or_else(|| format!("https://s3.{region}.amazonaws.com"));
        let store = builder.build().map_err(|e| unusable(one_line(&e.to_string()), &endpoint))?;
        let objects: Key = prefix.split('/').filter(|p| !p.is_empty()).chain(["objects"]).collect();
        let url = if prefix.is_empty() { format!("s3://{bucket}") } else { format!("s3://{bucket}/{prefix}") };
        Ok(Remote {
            store,
            bucket,
            objects,
            url,
            endpoint,
            present: Mutex::new(HashSet::new()),
            unsaved: Mutex::new(Vec::new()),
            known_files: Mutex::new(Vec::new()),
            requests: AtomicU64::new(0),
        })
    }

    /// `s3://BUCKET[/PREFIX]`.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The server requests go to, for messages.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    fn key(&self, digest: &Digest) -> Key {
        let hex = digest.hex();
        self.objects.clone().join(&hex[..2]).join(&hex[2..])
    }

    pub(crate) fn error(&self, action: String, e: &object_store::Error) -> StoreError {
        StoreError::Remote(Box::new(RemoteFailure {
            action,
            url: self.url.clone(),
            endpoint: self.endpoint.clone(),
            cause: cause(e),
            advice: ADVICE,
        }))
    }

    fn remember(&self, digest: &Digest) {
        let raw = digest.raw();
        let mut present = lock(&self.present);
        if present.len() >= REMEMBERED {
            present.clear();
        }
        if present.insert(raw) {
            lock(&self.unsaved).push(raw);
        }
    }

    pub(crate) fn remembered(&self, digest: &Digest) -> bool {
        lock(&self.present).contains(&digest.raw())
    }

    /// The bucket said it does not hold `digest`: if it was remembered, what was remembered is
    /// wrong (someone deleted objects), so every store's file of it is dropped.
    fn forget(&self, digest: &Digest) {
        if lock(&self.present).remove(&digest.raw()) {
            // Not a warning of its own: the caller reports the missing object in one line.
            tracing::debug!(%digest, "an object remembered as in the bucket is gone; asking the bucket again from now on");
            lock(&self.unsaved).clear();
            for f in lock(&self.known_files).iter() {
                crate::known::drop_file(f);
            }
        }
    }

    /// Trusts and keeps up to date the store's file of the objects known to be in the bucket.
    /// Read once per process and file: a server opens its store per request.
    pub(crate) fn attach_known(&self, file: PathBuf) {
        let mut files = lock(&self.known_files);
        if !files.contains(&file) {
            lock(&self.present).extend(crate::known::load(&file, &self.url));
            files.push(file);
        }
    }

    /// Makes the remembered set exactly `digests` (fsck's verified listing), in memory and on disk.
    pub(crate) fn set_known(&self, digests: &HashSet<Digest>) -> Result<()> {
        let raw: HashSet<[u8; 32]> = digests.iter().map(Digest::raw).collect();
        lock(&self.unsaved).clear();
        for f in lock(&self.known_files).iter() {
            crate::known::replace(f, &self.url, raw.iter()).map_err(StoreError::io("write", f))?;
        }
        *lock(&self.present) = raw;
        Ok(())
    }

    /// Appends what was remembered since the last save to the stores' files. A failure only
    /// costs HEADs in a later process, so it is logged, not returned.
    fn save_known(&self) {
        let unsaved = std::mem::take(&mut *lock(&self.unsaved));
        for f in lock(&self.known_files).iter() {
            if let Err(e) = crate::known::append(f, &self.url, &unsaved) {
                tracing::debug!(file = %f.display(), error = %e, "cannot remember the objects known to be in the bucket");
            }
        }
    }

    fn sent(&self) {
        self.requests.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn block_on<T>(&self, f: impl Future<Output = Result<T>>) -> Result<T> {
        let out = runtime()?.block_on(f);
        self.save_known();
        tracing::debug!(requests = self.requests.load(Ordering::Relaxed), "bucket requests so far");
        out
    }

    /// Checks that the bucket exists and answers (a listing of the prefix); a missing bucket
    /// is an error of its own, since repro never creates buckets.
    pub fn check(&self) -> Result<()> {
        self.block_on(async {
            match self.store.list_with_delimiter(Some(&self.objects)).await {
                Ok(_) => Ok(()),
                Err(e) if names_missing_bucket(&e) => {
                    Err(StoreError::NoBucket { bucket: self.bucket.clone(), endpoint: self.endpoint.clone() })
                }
                Err(e) => Err(self.error("reach".into(), &e)),
            }
        })
    }

    /// Whether the bucket holds `digest` (a HEAD, unless this process already saw it there).
    pub fn exists(&self, digest: &Digest) -> Result<bool> {
        self.block_on(self.head(digest))
    }

    /// `exists` for many digests, the lookups running side by side (a snapshot checks every
    /// file of a dataset).
    pub fn exists_many(&self, digests: &[Digest]) -> Result<Vec<bool>> {
        self.block_on(futures_util::stream::iter(digests.iter().map(|d| self.head(d))).buffered(LOOKUPS).try_collect())
    }

    /// A HEAD, unless this process already saw the object in the bucket (nothing is deleted there).
    async fn head(&self, digest: &Digest) -> Result<bool> {
        if self.remembered(digest) {
            return Ok(true);
        }
        self.sent();
        match self.store.head(&self.key(digest)).await {
            Ok(_) => {
                self.remember(digest);
                Ok(true)
            }
            Err(object_store::Error::NotFound { .. }) => Ok(false),
            Err(e) => Err(self.error(format!("look up object {digest} in"), &e)),
        }
    }

    /// Uploads the file at `path` as `digest` unless the bucket already holds it; true when
    /// it was uploaded. The bytes are hashed on the way out: a file that does not hash to
    /// `digest` is refused (`ObjectCorrupt`) and nothing becomes visible in the bucket.
    pub fn upload(&self, digest: &Digest, path: &Path) -> Result<bool> {
        self.block_on(self.ensure(digest, path, true))
    }

    /// [`Remote::upload`] for many objects, a few at a time; returns how many were uploaded.
    pub fn upload_all(&self, objects: &[(Digest, PathBuf)]) -> Result<usize> {
        self.push(&[], objects)
    }

    /// Makes the bucket hold every object: `new` ones (just written to the cache) are sent
    /// with a conditional create straight away, `cached` ones are looked up first.
    pub(crate) fn push(&self, new: &[(Digest, PathBuf)], cached: &[(Digest, PathBuf)]) -> Result<usize> {
        let work = new.iter().map(|(d, p)| (d, p, false)).chain(cached.iter().map(|(d, p)| (d, p, true)));
        self.block_on(async {
            futures_util::stream::iter(work.map(|(d, p, look_first)| self.ensure(d, p, look_first)))
                .buffer_unordered(CONCURRENCY)
                .try_fold(0usize, |n, uploaded| async move { Ok(n + usize::from(uploaded)) })
                .await
        })
    }

    async fn ensure(&self, digest: &Digest, path: &Path, look_first: bool) -> Result<bool> {
        if self.remembered(digest) {
            return Ok(false);
        }
        let len = std::fs::metadata(path).map_err(StoreError::io("read", path))?.len();
        // The parts API cannot create conditionally, so large objects are always looked up.
        if (look_first || len > SINGLE_PUT) && self.head(digest).await? {
            return Ok(false);
        }
        let uploaded =
            if len <= SINGLE_PUT { self.put_whole(digest, path).await? } else { self.put_parts(digest, path).await? };
        self.remember(digest);
        Ok(uploaded)
    }

    async fn put_whole(&self, digest: &Digest, path: &Path) -> Result<bool> {
        let bytes = std::fs::read(path).map_err(StoreError::io("read", path))?;
        if Digest::of_bytes(&bytes) != *digest {
            return Err(StoreError::ObjectCorrupt(digest.clone()));
        }
        let create = PutOptions { mode: PutMode::Create, ..Default::default() };
        self.sent();
        match self.store.put_opts(&self.key(digest), PutPayload::from(bytes), create).await {
            Ok(_) => Ok(true),
            Err(object_store::Error::AlreadyExists { .. }) => Ok(false),
            Err(e) => Err(self.error(format!("upload object {digest} to"), &e)),
        }
    }

    async fn put_parts(&self, digest: &Digest, path: &Path) -> Result<bool> {
        let mut file = File::open(path).map_err(StoreError::io("read", path))?;
        let mut upload = self
            .store
            .put_multipart(&self.key(digest))
            .await
            .map_err(|e| self.error(format!("upload object {digest} to"), &e))?;
        let sent: Result<()> = async {
            let mut hasher = blake3::Hasher::new();
            loop {
                let mut part = vec![0u8; PART];
                let n = read_full(&mut file, &mut part).map_err(StoreError::io("read", path))?;
                if n == 0 {
                    break;
                }
                part.truncate(n);
                hasher.update(&part);
                self.sent();
                upload
                    .put_part(PutPayload::from(part))
                    .await
                    .map_err(|e| self.error(format!("upload object {digest} to"), &e))?;
                if n < PART {
                    break;
                }
            }
            if Digest::from_hash(hasher.finalize()) != *digest {
                return Err(StoreError::ObjectCorrupt(digest.clone()));
            }
            Ok(())
        }
        .await;
        match sent {
            Ok(()) => {
                upload.complete().await.map_err(|e| self.error(format!("upload object {digest} to"), &e))?;
                Ok(true)
            }
            Err(e) => {
                // The parts never become an object; aborting frees the space they hold.
                let _ = upload.abort().await;
                Err(e)
            }
        }
    }

    /// Re-hashes what the bucket holds as `digest`, streaming it (nothing is kept).
    pub fn verify(&self, digest: &Digest) -> Result<Verified> {
        self.block_on(self.stream(digest, None))
    }

    /// Downloads `digest` into a new file at `dest`, hashing it on the way in. Only when the
    /// answer is `Verified::Ok` is `dest` left behind (complete and synced); otherwise it is
    /// removed. Callers download to a temp name and rename it into place.
    pub fn download(&self, digest: &Digest, dest: &Path) -> Result<Verified> {
        let mut file = File::create_new(dest).map_err(StoreError::io("create", dest))?;
        let got = self.block_on(self.stream(digest, Some((&mut file, dest))));
        let synced = match got {
            Ok(Verified::Ok { .. }) => file.sync_all().map_err(StoreError::io("sync", dest)),
            _ => Ok(()),
        };
        drop(file);
        if !matches!(got, Ok(Verified::Ok { .. })) || synced.is_err() {
            let _ = std::fs::remove_file(dest);
        }
        synced?;
        got
    }

    async fn stream(&self, digest: &Digest, mut sink: Option<(&mut File, &Path)>) -> Result<Verified> {
        self.sent();
        let got = match self.store.get(&self.key(digest)).await {
            Ok(g) => g,
            Err(object_store::Error::NotFound { .. }) => {
                self.forget(digest);
                return Ok(Verified::Missing);
            }
            Err(e) => return Err(self.error(format!("download object {digest} from"), &e)),
        };
        let mut body = got.into_stream();
        let mut hasher = blake3::Hasher::new();
        let mut bytes = 0u64;
        while let Some(chunk) = body.next().await {
            let chunk = chunk.map_err(|e| self.error(format!("download object {digest} from"), &e))?;
            hasher.update(&chunk);
            bytes += chunk.len() as u64;
            if let Some((file, path)) = sink.as_mut() {
                file.write_all(&chunk).map_err(StoreError::io("write", *path))?;
            }
        }
        if Digest::from_hash(hasher.finalize()) != *digest {
            return Ok(Verified::Corrupt);
        }
        self.remember(digest);
        Ok(Verified::Ok { bytes })
    }

    /// Every object in the bucket under the prefix, by the name it claims; keys that are
    /// not objects come back as `Err(s3://…)`.
    pub fn list(&self) -> Result<Vec<std::result::Result<Digest, String>>> {
        self.block_on(async {
            self.sent();
            let listed: Vec<object_store::ObjectMeta> = self
                .store
                .list(Some(&self.objects))
                .try_collect()
                .await
                .map_err(|e| self.error("list the objects in".into(), &e))?;
            Ok(listed
                .into_iter()
                .map(|meta| {
                    let name = meta
                        .location
                        .prefix_match(&self.objects)
                        .map(|parts| parts.map(|p| p.as_ref().to_string()).collect::<Vec<_>>());
                    match name.as_deref() {
                        Some([shard, rest]) => Digest::parse(&format!("{}{shard}{rest}", Digest::PREFIX))
                            .map_err(|_| format!("s3://{}/{}", self.bucket, meta.location)),
                        _ => Err(format!("s3://{}/{}", self.bucket, meta.location)),
                    }
                })
                .collect())
        })
    }

    /// Overwrites an object's bytes, bypassing every check: tests damage the bucket with it.
    #[cfg(test)]
    pub(crate) fn overwrite_for_test(&self, digest: &Digest, bytes: &[u8]) -> Result<()> {
        self.block_on(async {
            self.store
                .put(&self.key(digest), PutPayload::from(bytes.to_vec()))
                .await
                .map(|_| ())
                .map_err(|e| self.error("overwrite".into(), &e))
        })
    }
}

fn read_full(file: &mut File, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match file.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

/// S3 answers a request on a missing bucket with 404 NoSuchBucket.
fn names_missing_bucket(e: &object_store::Error) -> bool {
    matches!(e, object_store::Error::NotFound { .. }) || chain(e).iter().any(|m| m.contains("NoSuchBucket"))
}

fn chain(e: &(dyn std::error::Error + 'static)) -> Vec<String> {
    let mut out = vec![e.to_string()];
    let mut cur = e.source();
    while let Some(s) = cur {
        out.push(s.to_string());
        cur = s.source();
    }
    out
}

/// What went wrong, in a few words: the innermost cause (say "Connection refused"), with
/// the kind of refusal where S3 said one.
fn cause(e: &object_store::Error) -> String {
    let messages = chain(e);
    let innermost = messages.iter().rev().find(|m| !m.trim().is_empty()).cloned().unwrap_or_default();
    let innermost = one_line(&innermost);
    match e {
        object_store::Error::PermissionDenied { .. } | object_store::Error::Unauthenticated { .. } => {
            format!("access denied ({innermost})")
        }
        _ => innermost,
    }
}

/// Collapses whitespace and caps the length, so an error stays one readable line.
fn one_line(s: &str) -> String {
    let mut line = s.split_whitespace().collect::<Vec<_>>().join(" ");
    if line.chars().count() > 300 {
        line = line.chars().take(300).collect::<String>() + "…";
    }
    line
}

/// Against a real S3-compatible server: moto, started by `scripts/s3-server.sh` when
/// REPRO_TEST_S3_ENDPOINT names a local port nothing answers on. Without that variable the
/// tests say so and pass; CI sets it.
#[cfg(test)]
mod tests {
    use std::sync::OnceLock;

    use super::*;
    use crate::objects::{FileStat, Objects};

    fn endpoint() -> Option<String> {
        let Ok(endpoint) = std::env::var("REPRO_TEST_S3_ENDPOINT") else {
            eprintln!(
                "skipped: set REPRO_TEST_S3_ENDPOINT=http://127.0.0.1:9000 to run the S3 tests \
                 (scripts/s3-server.sh starts moto there)"
            );
            return None;
        };
        static STARTED: OnceLock<std::result::Result<(), String>> = OnceLock::new();
        let started = STARTED.get_or_init(|| {
            let addr = endpoint.trim_start_matches("http://").trim_end_matches('/').to_string();
            if std::net::TcpStream::connect(&addr).is_ok() {
                return Ok(());
            }
            let port = addr.strip_prefix("127.0.0.1:").ok_or(format!("nothing answers at {endpoint}"))?;
            let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/s3-server.sh");
            let out = std::process::Command::new("bash")
                .arg(&script)
                .arg(port)
                .output()
                .map_err(|e| format!("cannot run {}: {e}", script.display()))?;
            if out.status.success() {
                Ok(())
            } else {
                Err(format!("{} failed: {}", script.display(), String::from_utf8_lossy(&out.stderr)))
            }
        });
        if let Err(e) = started {
            panic!("REPRO_TEST_S3_ENDPOINT is set but no S3 server could be had: {e}");
        }
        Some(endpoint)
    }

    fn settings(endpoint: &str) -> Vec<(&str, &str)> {
        vec![
            ("aws_endpoint", endpoint),
            ("aws_access_key_id", "test"),
            ("aws_secret_access_key", "test"),
            ("aws_region", "us-east-1"),
            ("aws_allow_http", "true"),
        ]
    }

    /// A bucket of its own for each test (moto takes an unsigned PUT /BUCKET).
    fn fresh_bucket(endpoint: &str) -> String {
        let name = format!("repro-test-{}", &uuid::Uuid::new_v4().simple().to_string()[..16]);
        ureq::put(&format!("{endpoint}/{name}")).send_empty().expect("create bucket");
        name
    }

    /// One machine: its own `.repro` folder, sharing the bucket.
    fn machine(url: &str, settings: &[(&str, &str)]) -> (tempfile::TempDir, Objects) {
        let dir = tempfile::tempdir().expect("tempdir");
        let remote = Remote::connect_with(url, settings).expect("connect");
        Objects::create_with(dir.path(), Some(&remote)).expect("create");
        let objects = Objects::open_with(dir.path(), Some(remote)).expect("open");
        (dir, objects)
    }

    fn tmp_is_empty(o: &Objects) -> bool {
        fs_count(o.tmp_dir()) == 0
    }

    fn fs_count(dir: &Path) -> usize {
        std::fs::read_dir(dir).map(|d| d.count()).unwrap_or(0)
    }

    #[test]
    fn two_machines_share_objects_through_the_bucket() {
        let Some(ep) = endpoint() else { return };
        let url = format!("s3://{}/team/proj", fresh_bucket(&ep));
        let (_a_dir, a) = machine(&url, &settings(&ep));
        let (_b_dir, b) = machine(&url, &settings(&ep));

        let hello = a.put_bytes(b"hello").expect("put");
        let file = tempfile::NamedTempFile::new().expect("file");
        std::fs::write(file.path(), b"a file's bytes").expect("write");
        let copied = Digest::of_bytes(b"a file's bytes");
        let stat = FileStat::of(&std::fs::metadata(file.path()).expect("stat"));
        let batch = a.batch().expect("batch");
        assert!(batch.add_copy(&copied, file.path(), &stat).expect("add"));
        assert_eq!(batch.commit().expect("commit"), 1);

        // B's cache is empty: every read goes to the bucket, and fills the cache.
        assert!(!b.path_of(&hello).exists());
        assert!(b.contains(&hello));
        assert_eq!(b.read(&hello).expect("read"), b"hello");
        assert!(b.path_of(&hello).is_file());
        assert_eq!(b.verify(&copied).expect("verify"), Verified::Ok { bytes: 14 });
        let dest = _b_dir.path().join("out/restored");
        assert_eq!(b.restore(&copied, &dest, 0o640).expect("restore"), 14);
        assert_eq!(std::fs::read(&dest).expect("read"), b"a file's bytes");
        let missing = Digest::of_bytes(b"never written");
        assert!(!b.contains(&missing));
        // Many at once, in order, looked up side by side.
        let many: Vec<Digest> = (0..40).map(|i| if i % 2 == 0 { hello.clone() } else { missing.clone() }).collect();
        let held = b.contains_many(&many);
        assert_eq!(held, (0..40).map(|i| i % 2 == 0).collect::<Vec<_>>());
        assert_eq!(b.verify(&missing).expect("verify"), Verified::Missing);
        assert!(matches!(b.read(&missing), Err(StoreError::ObjectMissing(_))));
        assert!(matches!(b.fetch(&missing), Err(StoreError::ObjectMissing(_))));

        let mut listed: Vec<Digest> = b.list().expect("list").into_iter().map(|o| o.expect("digest")).collect();
        listed.sort();
        let mut want = vec![hello.clone(), copied.clone()];
        want.sort();
        assert_eq!(listed, want);
        assert_eq!(b.verify_durable(&hello).expect("verify"), Verified::Ok { bytes: 5 });
        assert!(tmp_is_empty(&b));
    }

    #[test]
    fn commit_uploads_what_the_cache_already_had() {
        let Some(ep) = endpoint() else { return };
        let url = format!("s3://{}", fresh_bucket(&ep));
        let dir = tempfile::tempdir().expect("tempdir");
        // Written while the store had no remote: cached, never uploaded.
        Objects::create_with(dir.path(), None).expect("create");
        let local = Objects::open_with(dir.path(), None).expect("open");
        let one = local.put_bytes(b"cached before the remote").expect("put");
        let two = local.put_bytes(b"also cached").expect("put");

        let remote = Remote::connect_with(&url, &settings(&ep)).expect("connect");
        let a = Objects::open_with(dir.path(), Some(remote)).expect("open");
        assert!(!a.contains(&one), "the cache is no proof of upload");
        let batch = a.batch().expect("batch");
        assert!(!batch.add_bytes(&one, b"cached before the remote").expect("add"));
        assert_eq!(batch.commit().expect("commit"), 0, "nothing new locally");
        assert_eq!(a.put_bytes(b"also cached").expect("put"), two);

        let (_b_dir, b) = machine(&url, &settings(&ep));
        assert_eq!(b.read(&one).expect("read"), b"cached before the remote");
        assert_eq!(b.read(&two).expect("read"), b"also cached");
    }

    #[test]
    fn objects_are_written_once() {
        let Some(ep) = endpoint() else { return };
        let url = format!("s3://{}/p", fresh_bucket(&ep));
        let (_a_dir, a) = machine(&url, &settings(&ep));
        let d = a.put_bytes(b"the one true content").expect("put");
        assert_eq!(a.put_bytes(b"the one true content").expect("put again"), d);

        // Another machine, with a client that has not seen the object: the conditional
        // create answers "already exists", which is success.
        let mut other = settings(&ep);
        other.push(("aws_default_region", "us-east-1"));
        let (b_dir, b) = machine(&url, &other);
        let remote = b.remote().expect("remote");
        // Bytes that do not hash to the name are never sent.
        let bad = b_dir.path().join("bad");
        std::fs::write(&bad, b"something else entirely").expect("write");
        assert!(matches!(remote.push(&[(d.clone(), bad)], &[]), Err(StoreError::ObjectCorrupt(_))));
        let good = b_dir.path().join("good");
        std::fs::write(&good, b"the one true content").expect("write");
        assert_eq!(remote.push(&[(d.clone(), good)], &[]).expect("push"), 0);

        // A damaged cache on B does not reach the bucket either: the bucket has the object,
        // so a commit that finds it cached only looks it up.
        b.read(&d).expect("cache it");
        let cached = b.path_of(&d);
        crate::objects::set_mode(&cached, 0o644).expect("chmod");
        std::fs::write(&cached, b"damaged cache").expect("damage");
        let batch = b.batch().expect("batch");
        batch.add_bytes(&d, b"the one true content").expect("add");
        batch.commit().expect("commit");
        // And B's next read notices its copy is bad and downloads the good one.
        assert_eq!(b.read(&d).expect("read"), b"the one true content");

        let (_c_dir, c) = machine(&url, &settings(&ep));
        assert_eq!(c.read(&d).expect("read"), b"the one true content");
    }

    #[test]
    fn a_corrupt_object_in_the_bucket_is_detected() {
        let Some(ep) = endpoint() else { return };
        let url = format!("s3://{}", fresh_bucket(&ep));
        let (_a_dir, a) = machine(&url, &settings(&ep));
        let d = a.put_bytes(b"payload").expect("put");
        a.remote().expect("remote").overwrite_for_test(&d, b"tampered").expect("overwrite");

        let (_b_dir, b) = machine(&url, &settings(&ep));
        let err = b.read(&d).expect_err("a corrupt object is never returned");
        assert!(matches!(err, StoreError::ObjectCorrupt(_)), "{err}");
        assert!(err.to_string().contains(d.as_str()), "{err}");
        assert_eq!(b.verify(&d).expect("verify"), Verified::Corrupt);
        assert!(matches!(b.fetch(&d), Err(StoreError::ObjectCorrupt(_))));
        let dest = _b_dir.path().join("restored");
        assert!(matches!(b.restore(&d, &dest, 0o644), Err(StoreError::ObjectCorrupt(_))));
        assert!(!dest.exists());
        assert!(!b.path_of(&d).exists(), "nothing corrupt enters the cache");
        assert!(tmp_is_empty(&b));
        // A's cached copy is intact, but what other machines read is not: fsck's check says so.
        assert_eq!(a.verify(&d).expect("verify"), Verified::Ok { bytes: 7 });
        assert_eq!(a.verify_durable(&d).expect("verify"), Verified::Corrupt);
    }

    #[test]
    fn an_unreachable_server_fails_the_commit_in_one_line() {
        let Some(ep) = endpoint() else { return };
        let bucket = fresh_bucket(&ep);
        let url = format!("s3://{bucket}/x");
        let closed = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
            format!("http://127.0.0.1:{}", l.local_addr().expect("addr").port())
        };
        let dir = tempfile::tempdir().expect("tempdir");
        Objects::create_with(dir.path(), None).expect("create");
        let remote = Remote::connect_with(&url, &settings(&closed)).expect("connect");
        let o = Objects::open_with(dir.path(), Some(remote.clone())).expect("open never contacts the server");

        let err = o.put_bytes(b"will not get there").expect_err("upload must fail");
        let msg = err.to_string();
        eprintln!("{msg}");
        assert!(!msg.contains('\n'), "{msg}");
        assert!(msg.starts_with("cannot upload object blake3:"), "{msg}");
        assert!(msg.contains(&format!("s3://{bucket}/x ({closed})")), "{msg}");
        assert!(msg.to_lowercase().contains("connection refused"), "{msg}");
        assert!(msg.ends_with("check that the object store is reachable and AWS_* credentials are set"), "{msg}");

        let batch = o.batch().expect("batch");
        batch.add_bytes(&Digest::of_bytes(b"b"), b"b").expect("add");
        assert!(matches!(batch.commit(), Err(StoreError::Remote(_))));

        let err = Objects::create_with(tempfile::tempdir().expect("tempdir").path(), Some(&remote))
            .expect_err("create checks the bucket");
        assert!(err.to_string().starts_with("cannot reach s3://"), "{err}");
    }

    #[test]
    fn a_missing_bucket_fails_create() {
        let Some(ep) = endpoint() else { return };
        let url = "s3://repro-no-such-bucket-here/p";
        let remote = Remote::connect_with(url, &settings(&ep)).expect("connect");
        let dir = tempfile::tempdir().expect("tempdir");
        let err = Objects::create_with(dir.path(), Some(&remote)).expect_err("no bucket");
        assert_eq!(
            err.to_string(),
            format!(
                "bucket 'repro-no-such-bucket-here' does not exist at {ep}; create it first (repro never creates buckets)"
            )
        );
        assert!(!dir.path().join("objects").exists());
    }

    /// The whole path a user takes: `repro init --objects s3://…` configured by the AWS_*
    /// variables alone. Runs only where they point at the test server (as the lines
    /// scripts/s3-server.sh prints set them).
    #[test]
    fn a_store_on_a_bucket_is_configured_by_the_aws_variables() {
        let Some(ep) = endpoint() else { return };
        if std::env::var("AWS_ENDPOINT_URL").ok().as_deref() != Some(ep.as_str()) {
            eprintln!("skipped: AWS_ENDPOINT_URL is not {ep}; eval \"$(scripts/s3-server.sh)\" sets it");
            return;
        }
        let url = format!("s3://{}/shared", fresh_bucket(&ep));
        let backends = crate::Backends { db: None, objects: Some(url) };
        let a = tempfile::tempdir().expect("tempdir");
        let d = crate::Store::init_with(a.path(), &backends)
            .expect("init")
            .objects
            .put_bytes(b"via the store")
            .expect("put");
        // A second machine joins the same bucket with a store of its own.
        let b = tempfile::tempdir().expect("tempdir");
        let store = crate::Store::init_with(b.path(), &backends).expect("join");
        assert_eq!(store.objects.read(&d).expect("read"), b"via the store");

        let c = tempfile::tempdir().expect("tempdir");
        let nowhere = crate::Backends { db: None, objects: Some("s3://repro-no-such-bucket-here".into()) };
        let err = crate::Store::init_with(c.path(), &nowhere).err().expect("no bucket");
        assert!(matches!(err, StoreError::NoBucket { .. }), "{err}");
        assert!(!c.path().join(crate::STORE_DIR).exists(), "nothing half-made");
    }

    #[test]
    fn large_objects_go_up_in_parts() {
        let Some(ep) = endpoint() else { return };
        let url = format!("s3://{}", fresh_bucket(&ep));
        let (a_dir, a) = machine(&url, &settings(&ep));
        let big = a_dir.path().join("big");
        let data: Vec<u8> = (0..(2 * PART + 12345)).map(|i| (i % 251) as u8).collect();
        std::fs::write(&big, &data).expect("write");
        let (d, _) = crate::objects::hash_file(&big).expect("hash");
        let batch = a.batch().expect("batch");
        batch.add_copy(&d, &big, &FileStat::of(&std::fs::metadata(&big).expect("stat"))).expect("add");
        batch.commit().expect("commit");

        let (b_dir, b) = machine(&url, &settings(&ep));
        assert_eq!(b.verify_durable(&d).expect("verify"), Verified::Ok { bytes: data.len() as u64 });
        let dest = b_dir.path().join("restored");
        assert_eq!(b.restore(&d, &dest, 0o644).expect("restore"), data.len() as u64);
        assert_eq!(crate::objects::hash_file(&dest).expect("hash").0, d);
    }
}
