//! `repro bundle export / import`: one tar file holding everything needed to audit and
//! replay a model version on a machine with no access to the original repository or store.
//!
//! Layout: `repro-bundle.json` (the manifest: the version's registry events, the runs with
//! their metrics, snapshot rows, replays, the code bundle, and the list of objects),
//! `repro-bundle.json.blake3` (the manifest's digest, so a damaged manifest is told apart
//! from a damaged object), and `objects/<hex>` for every object. Objects are
//! content-addressed, the run record hashes to the lineage the version pins, and the
//! signed statement names that lineage and the artifact's digests: import re-checks all of
//! it before writing anything.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::{self, File};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use repro_capture::git;
use repro_core::metrics::MetricPoint;
use repro_core::record::{RunRecord, Verdict};
use repro_core::registry::{BundleSigner, Change, Event, Registry};
use repro_core::snapshot::Manifest;
use repro_core::{Digest, RunId};
use repro_store::meta::{ReplayRow, SnapshotRow, StoredRun};
use repro_store::registry::{ImportRows, ImportRun, NewEvent};
use repro_store::Store;
use serde::{Deserialize, Serialize};

use crate::registry::lookup;
use crate::{keys, ExecError, Result};

pub const FORMAT: &str = "repro-bundle/1";
const MANIFEST: &str = "repro-bundle.json";
const MANIFEST_DIGEST: &str = "repro-bundle.json.blake3";
/// A DSSE envelope whose payload is the manifest, and the signer's public key (PEM).
const MANIFEST_SIGNATURE: &str = "repro-bundle.json.dsse";
const SIGNER_KEY: &str = "repro-bundle.pub";
pub const MANIFEST_PAYLOAD_TYPE: &str = "application/vnd.repro.bundle-manifest+json";
/// The manifest is read whole; a real one is kilobytes, so anything this large is not one.
const MAX_MANIFEST: u64 = 256 << 20;

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct BundleEvent {
    seq: u64,
    at_ms: i64,
    actor: String,
    model: String,
    version: u32,
    kind: String,
    payload: String,
    prev: Option<Digest>,
    hash: Digest,
}

impl From<&Event> for BundleEvent {
    fn from(e: &Event) -> Self {
        BundleEvent {
            seq: e.seq,
            at_ms: e.at_ms,
            actor: e.actor.clone(),
            model: e.model.clone(),
            version: e.version,
            kind: e.kind.clone(),
            payload: e.payload.clone(),
            prev: e.prev.clone(),
            hash: e.hash.clone(),
        }
    }
}

impl BundleEvent {
    fn event(&self) -> Event {
        Event {
            seq: self.seq,
            at_ms: self.at_ms,
            actor: self.actor.clone(),
            model: self.model.clone(),
            version: self.version,
            kind: self.kind.clone(),
            payload: self.payload.clone(),
            prev: self.prev.clone(),
            hash: self.hash.clone(),
        }
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct BundleRun {
    id: RunId,
    /// The record object: the run's record, which hashes to `lineage`.
    record_object: Digest,
    lineage: Digest,
    metrics: Vec<MetricPoint>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct BundleReplay {
    replay: RunId,
    original: RunId,
    verdict: Verdict,
    report: Digest,
    created_ms: i64,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct BundleSnapshot {
    digest: Digest,
    kind: String,
    files: u64,
    bytes: u64,
    /// Whether the bundle carries the files' content.
    stored: bool,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct BundleCode {
    commit: String,
    /// A git bundle (`git bundle create`) holding the commit and its history.
    object: Digest,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct BundleObject {
    digest: Digest,
    size: u64,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct BundleManifest {
    format: String,
    created_at: String,
    repro_version: String,
    model: String,
    version: u32,
    run: RunId,
    lineage: Digest,
    include_data: bool,
    events: Vec<BundleEvent>,
    runs: Vec<BundleRun>,
    replays: Vec<BundleReplay>,
    snapshots: Vec<BundleSnapshot>,
    code: Option<BundleCode>,
    objects: Vec<BundleObject>,
}

/// A private folder under `.repro/tmp`, removed on every way out (fsck removes it after a crash).
struct Scratch(PathBuf);

impl Scratch {
    fn new(store: &Store, what: &str) -> Result<Scratch> {
        static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let dir = store.root().join("tmp").join(format!("{}-{what}-{n}", std::process::id()));
        fs::create_dir_all(&dir).map_err(ExecError::io("create", &dir))?;
        Ok(Scratch(dir))
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

fn started_ms(record: &RunRecord) -> i64 {
    let parse = |s: &str| {
        humantime::parse_rfc3339_weak(s.trim_end_matches('Z'))
            .or_else(|_| humantime::parse_rfc3339(s))
            .ok()
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map(|d| d.as_millis() as i64)
    };
    parse(&record.started_at).unwrap_or(0)
}

fn ended_ms(record: &RunRecord) -> i64 {
    record
        .ended_at
        .as_deref()
        .and_then(|s| humantime::parse_rfc3339(s).ok())
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map(|d| d.as_millis() as i64)
        .unwrap_or_else(|| started_ms(record))
}

/// What `export` wrote.
#[derive(Debug, Serialize)]
pub struct ExportReport {
    pub model: String,
    pub file: PathBuf,
    pub bytes: u64,
    pub objects: usize,
    pub runs: usize,
    pub include_data: bool,
    pub code: Option<String>,
    pub signatures: usize,
    /// The key that signed the bundle's manifest, if one did.
    pub signed_by: Option<String>,
}

/// The objects a run needs in a bundle: its record, the objects it names, the files of its
/// outputs, and (with `data`) the files of its stored inputs.
fn run_objects(store: &Store, run: &StoredRun, data: bool, out: &mut BTreeSet<Digest>) -> Result<()> {
    let rec = &run.record;
    out.extend(run.record_object.clone());
    out.extend(rec.referenced_objects());
    let mut snaps: Vec<&Digest> = rec.outputs.iter().filter_map(|o| o.snapshot.as_ref()).collect();
    if data {
        snaps.extend(rec.inputs.iter().filter(|i| !i.reference).map(|i| &i.snapshot));
    }
    for s in snaps {
        let m = Manifest::from_bytes(&store.objects.read(s)?).map_err(|e| {
            ExecError::Usage(format!("snapshot {s} of run {} is unreadable ({e}); run `repro fsck`", rec.id.short()))
        })?;
        out.extend(m.entries.into_iter().map(|e| e.digest));
    }
    Ok(())
}

/// Writes the git bundle of `commit` into `scratch`: from a code bundle this store already
/// has (an import), else from the recorded repository, the current folder's, or the remote.
fn code_bundle(store: &Store, rec: &RunRecord, commit: &str, scratch: &Path, cwd: &Path) -> Result<PathBuf> {
    if let Some(obj) = store.meta.code_bundle(commit)? {
        // A damaged or missing bundle object falls through to the other sources.
        if let repro_store::objects::Verified::Ok { .. } = store.objects.verify(&obj)? {
            return Ok(store.objects.fetch(&obj)?);
        }
    }
    let dest = scratch.join("code.bundle");
    let mut tried = Vec::new();
    let mut candidates: Vec<PathBuf> = rec.code.repo_root.iter().map(PathBuf::from).collect();
    candidates.extend(git::toplevel(cwd).filter(|here| !candidates.contains(here)));
    for repo in candidates {
        if !repo.join(".git").exists() || !git::has_commit(&repo, commit) {
            tried.push(format!("{} does not hold it", repo.display()));
            continue;
        }
        let work = scratch.join(format!("clone-{}", tried.len()));
        match git::bundle_commit(&repo, commit, &work, &dest) {
            Ok(()) => return Ok(dest),
            Err(e) => tried.push(format!("{}: {e}", repo.display())),
        }
    }
    if let Some(url) = &rec.code.remote {
        let clone = scratch.join("remote");
        if git::clone_into(url, &clone, false).is_ok()
            && (git::has_commit(&clone, commit) || git::fetch_commit(&clone, commit))
        {
            let work = scratch.join("clone-remote");
            git::bundle_commit(&clone, commit, &work, &dest)?;
            return Ok(dest);
        }
        tried.push(format!("the remote {url} does not have it"));
    }
    Err(ExecError::Usage(format!(
        "cannot bundle the code: commit {} is not reachable ({}); export from a checkout that has it",
        &commit[..commit.len().min(12)],
        if tried.is_empty() { "no repository was recorded".to_string() } else { tried.join("; ") }
    )))
}

/// `repro bundle export NAME@V -o FILE [--include-data]`.
pub fn export(
    store: &Store,
    reference: &str,
    out: &Path,
    include_data: bool,
    signer: Option<&repro_core::provenance::SigningKey>,
    cwd: &Path,
    progress: &dyn crate::Progress,
) -> Result<ExportReport> {
    let events = store.meta.registry_events()?;
    let (registry, _) = Registry::fold(&events);
    let version = lookup(&registry, reference)?;
    let (run, lineage) = crate::registry::pinned_run(store, &version)?;
    crate::integrity::vouch_for_version(store, &version, progress)?;
    let scratch = Scratch::new(store, "export")?;

    // Runs: the version's, and its replays (so the auditor's store knows it was replayed).
    let mut runs = vec![run.clone()];
    let mut replays = Vec::new();
    for r in store.meta.replays_of(&run.record.id)? {
        let Ok(rr) = store.meta.get_run(&r.replay) else { continue };
        if rr.lineage.is_none() || rr.record_object.is_none() {
            continue;
        }
        replays.push(BundleReplay {
            replay: r.replay,
            original: r.original,
            verdict: r.verdict,
            report: r.report,
            created_ms: r.created_ms,
        });
        runs.push(rr);
    }
    let mut objects = BTreeSet::new();
    let mut bundle_runs = Vec::new();
    let mut snapshots = BTreeMap::new();
    for r in &runs {
        run_objects(store, r, include_data, &mut objects)?;
        let (Some(lineage), Some(record_object)) = (r.lineage.clone(), r.record_object.clone()) else { continue };
        bundle_runs.push(BundleRun {
            id: r.record.id.clone(),
            record_object,
            lineage,
            metrics: store.meta.metrics(&r.record.id)?,
        });
        let snaps = r
            .record
            .inputs
            .iter()
            .map(|i| (&i.snapshot, include_data && !i.reference))
            .chain(r.record.outputs.iter().filter_map(|o| Some((o.snapshot.as_ref()?, true))));
        for (digest, stored) in snaps {
            if let Some(row) = store.meta.get_snapshot(digest)? {
                let e = snapshots.entry(digest.clone()).or_insert(BundleSnapshot {
                    digest: digest.clone(),
                    kind: row.kind,
                    files: row.files,
                    bytes: row.bytes,
                    stored: false,
                });
                e.stored |= stored && row.stored;
            }
        }
    }
    objects.extend(replays.iter().map(|r| r.report.clone()));
    for a in version.approvals.iter().filter_map(|a| a.signature.as_ref()) {
        objects.insert(a.envelope.clone());
        objects.insert(a.public_key.clone());
    }
    for s in &version.signatures {
        objects.insert(s.envelope.clone());
        objects.insert(s.public_key.clone());
    }
    objects.extend(version.artifact.files.iter().map(|f| f.blake3.clone()));
    objects.insert(version.artifact.snapshot.clone());

    // Code: a git bundle of the commit, as one more object.
    let mut code = None;
    let mut extra_files: Vec<(Digest, PathBuf)> = Vec::new();
    if let Some(commit) = &run.record.code.commit {
        let path = code_bundle(store, &run.record, commit, &scratch.0, cwd)?;
        let (digest, _) = repro_store::objects::hash_file(&path).map_err(ExecError::io("read", &path))?;
        code = Some(BundleCode { commit: commit.clone(), object: digest.clone() });
        extra_files.push((digest, path));
    }

    // Every object must be here and intact before anything is written.
    let mut listed = Vec::new();
    let mut sources: Vec<(Digest, PathBuf)> = Vec::new();
    progress.start("verifying objects", objects.len() as u64);
    for d in &objects {
        match store.objects.verify(d)? {
            repro_store::objects::Verified::Ok { bytes } => {
                listed.push(BundleObject { digest: d.clone(), size: bytes });
                sources.push((d.clone(), store.objects.fetch(d)?));
            }
            repro_store::objects::Verified::Missing => {
                return Err(ExecError::Usage(format!("object {d} is missing from the store; run `repro fsck`")))
            }
            repro_store::objects::Verified::Corrupt => {
                return Err(ExecError::Usage(format!("object {d} is corrupt; run `repro fsck`")))
            }
        }
        progress.advance(1);
    }
    progress.finish();
    for (d, path) in extra_files {
        if !objects.contains(&d) {
            let size = fs::metadata(&path).map_err(ExecError::io("read", &path))?.len();
            listed.push(BundleObject { digest: d.clone(), size });
            sources.push((d, path));
        }
    }
    let manifest = BundleManifest {
        format: FORMAT.into(),
        created_at: repro_store::rfc3339(repro_store::now_ms()),
        repro_version: env!("CARGO_PKG_VERSION").into(),
        model: version.name.clone(),
        version: version.version,
        run: version.run.clone(),
        lineage: lineage.clone(),
        include_data,
        events: events
            .iter()
            .filter(|e| e.model == version.name && e.version == version.version)
            .map(Into::into)
            .collect(),
        runs: bundle_runs,
        replays,
        snapshots: snapshots.into_values().collect(),
        code: code.clone(),
        objects: listed,
    };
    let manifest_bytes = serde_json::to_vec_pretty(&manifest).expect("bundle manifests serialize");
    let manifest_digest = Digest::of_bytes(&manifest_bytes);

    // The tar goes to a temp file beside the destination, renamed into place when complete.
    let dir = out.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let name = out.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| "bundle".into());
    let tmp = dir.join(format!(".{name}.tmp-{}", std::process::id()));
    let result = (|| -> std::io::Result<u64> {
        let file = File::create(&tmp)?;
        let mut tar = tar::Builder::new(std::io::BufWriter::new(file));
        tar.mode(tar::HeaderMode::Deterministic);
        let add = |path: &str, bytes: &[u8], tar: &mut tar::Builder<_>| {
            let mut h = tar::Header::new_gnu();
            h.set_size(bytes.len() as u64);
            h.set_mode(0o644);
            h.set_mtime(0);
            h.set_cksum();
            tar.append_data(&mut h, path, bytes)
        };
        add(MANIFEST, &manifest_bytes, &mut tar)?;
        add(MANIFEST_DIGEST, format!("{manifest_digest}\n").as_bytes(), &mut tar)?;
        if let Some(k) = signer {
            let env = repro_core::provenance::sign_envelope(k, MANIFEST_PAYLOAD_TYPE, &manifest_bytes);
            add(MANIFEST_SIGNATURE, format!("{}\n", env.to_json_line()).as_bytes(), &mut tar)?;
            add(SIGNER_KEY, keys::public_pem(&k.verifying_key()).as_bytes(), &mut tar)?;
        }
        progress.start("writing bundle", sources.len() as u64);
        for (d, path) in &sources {
            let mut f = File::open(path)?;
            tar.append_file(format!("objects/{}", d.hex()), &mut f)?;
            progress.advance(1);
        }
        progress.finish();
        let mut w = tar.into_inner()?;
        w.flush()?;
        let file = w.into_inner().map_err(|e| e.into_error())?;
        file.sync_all()?;
        Ok(file.metadata()?.len())
    })();
    let bytes = match result {
        Ok(b) => b,
        Err(e) => {
            let _ = fs::remove_file(&tmp);
            return Err(ExecError::Io { action: "write", path: out.to_path_buf(), source: e });
        }
    };
    fs::rename(&tmp, out).map_err(|e| {
        let _ = fs::remove_file(&tmp);
        ExecError::Io { action: "write", path: out.to_path_buf(), source: e }
    })?;
    Ok(ExportReport {
        model: version.reference(),
        file: out.to_path_buf(),
        bytes,
        objects: manifest.objects.len(),
        runs: manifest.runs.len(),
        include_data,
        code: code.map(|c| c.commit),
        signatures: version.signatures.len(),
        signed_by: signer.map(|k| repro_core::provenance::sslib_keyid(&k.verifying_key())),
    })
}

/// What `import` did.
#[derive(Debug, Serialize)]
pub struct ImportReport {
    pub model: String,
    pub run: RunId,
    /// False when the store already had this exact version: nothing was written.
    pub imported: bool,
    pub objects_added: usize,
    pub runs: usize,
    pub signatures_verified: Vec<String>,
    /// Key ids of the approvals whose signatures verified.
    #[serde(default)]
    pub approvals_verified: Vec<String>,
    pub include_data: bool,
    pub stage: Option<String>,
    /// The key that signed the bundle's manifest.
    pub manifest_signed_by: Option<String>,
    /// Whether that key counts here: the `--key` given or one `[trust]` lists (trusted), any
    /// other (unknown: integrity only, not authority), or no signature (unsigned).
    pub signer: BundleSigner,
    pub warnings: Vec<String>,
}

fn refuse(file: &Path, why: impl std::fmt::Display) -> ExecError {
    ExecError::Usage(format!("bundle {} refused, nothing imported: {why}", file.display()))
}

/// Reads the tar into `dir`: the manifest into memory, objects as files named by digest.
/// Any other entry, a link, or a path that is not exactly one of those is refused.
/// A bundle read into a folder: the manifest's bytes, the digest beside it, object files by hex.
struct Unpacked {
    manifest: Vec<u8>,
    digest: Option<String>,
    signature: Option<String>,
    signer: Option<String>,
    objects: BTreeMap<String, PathBuf>,
}

fn unpack(file: &Path, dir: &Path) -> Result<Unpacked> {
    let f = File::open(file).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => ExecError::Usage(format!("bundle {}: no such file", file.display())),
        _ => ExecError::Io { action: "read", path: file.to_path_buf(), source: e },
    })?;
    let mut archive = tar::Archive::new(std::io::BufReader::new(f));
    let mut manifest = None;
    let mut manifest_digest = None;
    let mut signature = None;
    let mut signer = None;
    let mut objects = BTreeMap::new();
    let bad = |e: std::io::Error| refuse(file, format!("it is truncated or not a repro bundle ({e})"));
    for entry in archive.entries().map_err(bad)? {
        let mut entry = entry.map_err(bad)?;
        let path = entry.path().map_err(bad)?.to_string_lossy().into_owned();
        if !entry.header().entry_type().is_file() {
            return Err(refuse(file, format!("entry '{path}' is not a plain file")));
        }
        let size = entry.header().size().map_err(bad)?;
        match path.as_str() {
            MANIFEST => {
                if size > MAX_MANIFEST {
                    return Err(refuse(file, "its manifest is implausibly large"));
                }
                let mut buf = Vec::with_capacity(size as usize);
                entry.read_to_end(&mut buf).map_err(bad)?;
                if buf.len() as u64 != size {
                    return Err(refuse(file, "it is truncated (the manifest is cut short)"));
                }
                manifest = Some(buf);
            }
            MANIFEST_DIGEST => {
                let mut s = String::new();
                entry.take(200).read_to_string(&mut s).map_err(bad)?;
                manifest_digest = Some(s.trim().to_string());
            }
            MANIFEST_SIGNATURE | SIGNER_KEY => {
                let mut s = String::new();
                entry.take(MAX_MANIFEST * 2).read_to_string(&mut s).map_err(bad)?;
                if path == MANIFEST_SIGNATURE {
                    signature = Some(s);
                } else {
                    signer = Some(s);
                }
            }
            p => {
                let hex =
                    p.strip_prefix("objects/").filter(|h| h.len() == 64 && h.bytes().all(|b| b.is_ascii_hexdigit()));
                let Some(hex) = hex else {
                    return Err(refuse(
                        file,
                        format!("unexpected entry '{p}' (a bundle holds only its manifest and objects/<digest>)"),
                    ));
                };
                let dest = dir.join(hex.to_ascii_lowercase());
                let mut out = File::create(&dest).map_err(ExecError::io("write", &dest))?;
                let copied = std::io::copy(&mut entry, &mut out).map_err(bad)?;
                if copied != size {
                    return Err(refuse(file, format!("it is truncated (object {hex} is cut short)")));
                }
                objects.insert(hex.to_ascii_lowercase(), dest);
            }
        }
    }
    let manifest = manifest.ok_or_else(|| refuse(file, "it has no repro-bundle.json (is it a repro bundle?)"))?;
    Ok(Unpacked { manifest, digest: manifest_digest, signature, signer, objects })
}

/// `repro bundle import FILE [--key PUBFILE]`: verify everything, then write it all at once.
pub fn import(
    store: &mut Store,
    file: &Path,
    key: Option<&Path>,
    actor: &str,
    progress: &dyn crate::Progress,
) -> Result<ImportReport> {
    let trusted = key.map(keys::load_public_key).transpose()?;
    // Read before anything else: a broken [trust] is an error, never "trusts nobody".
    let trust = crate::trust::Trust::of(store)?;
    let scratch = Scratch::new(store, "import")?;
    let Unpacked { manifest: manifest_bytes, digest: manifest_digest, signature, signer, objects: files } =
        unpack(file, &scratch.0)?;
    match manifest_digest {
        Some(d) if d == Digest::of_bytes(&manifest_bytes).as_str() => {}
        Some(_) => return Err(refuse(file, "its manifest was altered (it no longer hashes to the digest beside it)")),
        None => return Err(refuse(file, "it has no manifest digest (repro-bundle.json.blake3)")),
    }
    // The manifest's signature, when the exporter had a key: it covers every row the
    // manifest carries (events, metrics, replays), which digests alone do not.
    let manifest_signed_by = match (&signature, &signer) {
        (None, None) => None,
        (Some(sig), Some(pem)) => {
            let env = repro_core::provenance::Envelope::parse(sig)
                .map_err(|e| refuse(file, format!("its manifest signature is unreadable ({e})")))?;
            if env.payload_type != MANIFEST_PAYLOAD_TYPE || env.payload != manifest_bytes {
                return Err(refuse(file, "its manifest signature is not over its manifest"));
            }
            let bundled =
                <repro_core::provenance::VerifyingKey as ed25519_dalek::pkcs8::DecodePublicKey>::from_public_key_pem(
                    pem,
                )
                .map_err(|e| refuse(file, format!("its signer key is unreadable ({e})")))?;
            let key = trusted.as_ref().unwrap_or(&bundled);
            repro_core::provenance::verify_envelope(&env, key)
                .map_err(|e| refuse(file, format!("its manifest signature does not verify: {e}")))?;
            Some(repro_core::provenance::sslib_keyid(key))
        }
        _ => return Err(refuse(file, "it has a manifest signature without its key, or a key without a signature")),
    };
    let m: BundleManifest = serde_json::from_slice(&manifest_bytes)
        .map_err(|e| refuse(file, format!("its manifest is not a {FORMAT} manifest ({e})")))?;
    if m.format != FORMAT {
        return Err(refuse(file, format!("format '{}' is not known to this repro (it reads {FORMAT})", m.format)));
    }

    // 1. Every object listed is present, of its size, and hashes to its name.
    progress.start("verifying objects", m.objects.len() as u64);
    let mut path_of: BTreeMap<Digest, PathBuf> = BTreeMap::new();
    for o in &m.objects {
        let path = files
            .get(o.digest.hex())
            .ok_or_else(|| refuse(file, format!("object {} is missing (the bundle is truncated?)", o.digest)))?;
        let (digest, size) = repro_store::objects::hash_file(path).map_err(ExecError::io("read", path))?;
        if digest != o.digest || size != o.size {
            return Err(refuse(
                file,
                format!("object {} was altered (its content no longer hashes to its name)", o.digest),
            ));
        }
        path_of.insert(o.digest.clone(), path.clone());
        progress.advance(1);
    }
    progress.finish();
    if files.len() != path_of.len() {
        return Err(refuse(file, "it holds objects its manifest does not list"));
    }
    let read = |d: &Digest| -> Result<Vec<u8>> {
        match path_of.get(d) {
            Some(p) => fs::read(p).map_err(ExecError::io("read", p)),
            None => Err(refuse(file, format!("object {d} is not in the bundle"))),
        }
    };

    // 2. The registry events: each hashes to its recorded hash; they make the version.
    let events: Vec<Event> = m.events.iter().map(BundleEvent::event).collect();
    for e in &events {
        if e.computed_hash() != e.hash {
            return Err(refuse(file, format!("registry event {} was altered", e.describe())));
        }
        if e.model != m.model || e.version != m.version {
            return Err(refuse(
                file,
                format!("registry event {} is not about {}@{}", e.describe(), m.model, m.version),
            ));
        }
    }
    let (registry, problems) = Registry::fold(&events);
    if let Some(p) = problems.first() {
        return Err(refuse(file, &p.message));
    }
    let version = registry
        .models
        .get(&m.model)
        .and_then(|model| model.versions.get(&m.version))
        .cloned()
        .ok_or_else(|| refuse(file, format!("it holds no registration of {}@{}", m.model, m.version)))?;
    if version.run != m.run || version.lineage.as_ref().is_some_and(|l| *l != m.lineage) {
        return Err(refuse(file, "its manifest and its registry events disagree about the run"));
    }

    // 3. The runs: each record object hashes to its lineage; the version's is the one pinned.
    // Only the version's run and its listed replays: a run's record is a command this store
    // may one day replay, so nothing rides along unannounced.
    let mut import_runs = Vec::new();
    for r in &m.runs {
        if r.id != m.run && !m.replays.iter().any(|x| x.replay == r.id) {
            return Err(refuse(
                file,
                format!("run {} is neither {}@{}'s run nor a replay of it", r.id, m.model, m.version),
            ));
        }
        let record: RunRecord = serde_json::from_slice(&read(&r.record_object)?)
            .map_err(|e| refuse(file, format!("the record of run {} is unreadable ({e})", r.id)))?;
        if record.id != r.id || record.lineage() != r.lineage {
            return Err(refuse(file, format!("the record of run {} does not hash to its lineage", r.id)));
        }
        if r.id == m.run && r.lineage != m.lineage {
            return Err(refuse(file, format!("run {} is not the lineage {}@{} pins", r.id, m.model, m.version)));
        }
        if record.metric_count != r.metrics.len() as u64 {
            return Err(refuse(file, format!("the metrics of run {} do not match the count its record holds", r.id)));
        }
        import_runs.push(ImportRun {
            started_ms: started_ms(&record),
            ended_ms: ended_ms(&record),
            record,
            lineage: r.lineage.clone(),
            record_object: r.record_object.clone(),
            metrics: r.metrics.clone(),
        });
    }
    let main = import_runs
        .iter()
        .find(|r| r.record.id == m.run)
        .ok_or_else(|| refuse(file, format!("it does not hold run {}", m.run)))?;
    let stored_inputs = main.record.inputs.iter().any(|i| !i.reference);
    let main_metrics = main.metrics.clone();
    let commit = main.record.code.commit.clone();

    // Replays: each verdict is the one its (content-addressed) report states, about runs here.
    for r in &m.replays {
        #[derive(Deserialize)]
        struct Report {
            original: RunId,
            replay: RunId,
            verdict: Verdict,
        }
        let report: Report = serde_json::from_slice(&read(&r.report)?)
            .map_err(|e| refuse(file, format!("the report of replay {} is unreadable ({e})", r.replay)))?;
        if report.original != r.original || report.replay != r.replay || report.verdict != r.verdict {
            return Err(refuse(
                file,
                format!("replay {} is listed as {} but its report says otherwise", r.replay, r.verdict.as_str()),
            ));
        }
        if !import_runs.iter().any(|x| x.record.id == r.replay) || r.original != m.run {
            return Err(refuse(file, format!("replay {} is not of run {} or is not in the bundle", r.replay, m.run)));
        }
    }
    // Snapshot rows: counts from their manifests; content claimed only where every file is here.
    for s in &m.snapshots {
        let manifest = Manifest::from_bytes(&read(&s.digest)?)
            .map_err(|e| refuse(file, format!("snapshot {} is not a manifest ({e})", s.digest)))?;
        if manifest.entries.len() as u64 != s.files || manifest.total_bytes() != s.bytes {
            return Err(refuse(file, format!("snapshot {} is listed with the wrong size", s.digest)));
        }
        if s.stored && !manifest.entries.iter().all(|e| path_of.contains_key(&e.digest)) {
            return Err(refuse(
                file,
                format!("snapshot {} is listed as stored but its files are not all here", s.digest),
            ));
        }
    }

    // 4. The artifact: each file's SHA-256 as pinned.
    for f in &version.artifact.files {
        if repro_core::provenance::hex_sha256(&read(&f.blake3)?) != f.sha256 {
            return Err(refuse(file, format!("artifact file {}: sha256 differs from the one pinned", f.path)));
        }
    }

    // 5. Signatures: every one verifies with its key; with --key, one must be by that key.
    let mut verified = Vec::new();
    for s in &version.signatures {
        let envelope = read(&s.envelope)?;
        let public = read(&s.public_key)?;
        if let Err(e) = crate::registry::provenance::check_signature_bytes(
            &envelope,
            &public,
            &version,
            s,
            None,
            Some(&main_metrics),
        ) {
            return Err(refuse(file, format!("the signature by key {} does not verify: {e}", s.keyid)));
        }
        verified.push(s.keyid.clone());
    }
    // Signed approvals: each verifies and approves exactly this version. Whether their keys
    // count is this store's [trust], checked when a stage is entered and by `model verify`.
    let mut approvals_verified = Vec::new();
    for a in &version.approvals {
        let Some(sig) = &a.signature else { continue };
        if let Err(e) =
            crate::registry::approval::check_approval_bytes(&read(&sig.envelope)?, &read(&sig.public_key)?, &version, a)
        {
            return Err(refuse(file, format!("the approval for {} by {} does not verify: {e}", a.stage, a.by)));
        }
        approvals_verified.push(sig.keyid.clone());
    }
    let mut warnings = Vec::new();
    if let (Some(t), Some(path)) = (&trusted, key) {
        let want = repro_core::provenance::sslib_keyid(t);
        if manifest_signed_by.is_none() && !verified.contains(&want) {
            return Err(refuse(file, format!("it is not signed by the key in {} (keyid {want})", path.display())));
        }
    }
    let signer = trust
        .judge(manifest_signed_by.as_deref(), trusted.as_ref().map(repro_core::provenance::sslib_keyid).as_deref());
    if manifest_signed_by.is_none() {
        warnings.push(
            "the bundle's manifest is unsigned: its registry history and metrics rest on digests alone (export with --key)"
                .into(),
        );
    }
    if version.signatures.is_empty() {
        warnings.push(format!("{} is not signed: its provenance rests on digests alone", version.reference()));
    }

    // 6. The code: a git bundle that holds the commit.
    if let Some(code) = &m.code {
        let path = path_of.get(&code.object).ok_or_else(|| refuse(file, "its code bundle object is missing"))?;
        if commit.as_deref() != Some(code.commit.as_str()) {
            return Err(refuse(file, "its code bundle is not of the run's commit"));
        }
        if !git::bundle_has(path, &code.commit, &scratch.0) {
            return Err(refuse(file, format!("its code bundle does not hold commit {}", code.commit)));
        }
    }

    // 7. This store: the same version may already be here; a different one by that name may not.
    let here = store.meta.registry()?;
    if let Some(existing) = here.models.get(&m.model).and_then(|model| model.versions.get(&m.version)) {
        if existing.lineage == version.lineage && existing.artifact == version.artifact {
            return Ok(ImportReport {
                model: version.reference(),
                run: m.run.clone(),
                imported: false,
                objects_added: 0,
                runs: 0,
                signatures_verified: verified,
                approvals_verified,
                include_data: m.include_data,
                stage: existing.stage.clone(),
                manifest_signed_by,
                signer,
                warnings: vec![format!("{} is already in this store; nothing imported", version.reference())],
            });
        }
        return Err(refuse(
            file,
            format!(
                "this store already has a different {} (run {}); import it into another store",
                version.reference(),
                existing.run.short()
            ),
        ));
    }
    // The runs this import adds (one already here with the same record stays this store's own).
    let mut added_runs = Vec::new();
    for r in &import_runs {
        match store.meta.get_run(&r.record.id) {
            Ok(existing) if existing.lineage.as_ref() != Some(&r.lineage) => {
                return Err(refuse(
                    file,
                    format!("this store has another run {} with a different record", r.record.id),
                ));
            }
            Ok(_) => {}
            Err(repro_store::StoreError::UnknownRun(_)) => added_runs.push(r.record.id.clone()),
            Err(e) => return Err(e.into()),
        }
    }

    // Write: objects first (content-addressed, harmless if the rest fails), then every row
    // and the registry event in one transaction.
    let batch = store.objects.batch()?;
    let mut added = 0;
    for (d, p) in &path_of {
        if store.objects.contains(d) {
            continue;
        }
        let meta = fs::metadata(p).map_err(ExecError::io("read", p))?;
        if batch.add_copy(d, p, &repro_store::objects::FileStat::of(&meta))? {
            added += 1;
        }
    }
    batch.commit()?;
    let bundle_digest = repro_store::objects::hash_file(file).map_err(ExecError::io("read", file))?.0;
    let rows = ImportRows {
        runs: import_runs,
        snapshots: m
            .snapshots
            .iter()
            .map(|s| SnapshotRow {
                digest: s.digest.clone(),
                kind: s.kind.clone(),
                files: s.files,
                bytes: s.bytes,
                stored: s.stored,
                created_ms: repro_store::now_ms(),
            })
            .collect(),
        replays: m
            .replays
            .iter()
            .map(|r| ReplayRow {
                replay: r.replay.clone(),
                original: r.original.clone(),
                verdict: r.verdict,
                report: r.report.clone(),
                created_ms: r.created_ms,
            })
            .collect(),
        code_bundles: m.code.iter().map(|c| (c.commit.clone(), c.object.clone())).collect(),
    };
    let runs = rows.runs.len();
    store.meta.import_bundle(&rows, repro_store::now_ms(), |reg| {
        if reg.models.get(&m.model).is_some_and(|model| model.versions.contains_key(&m.version)) {
            return Err(refuse(file, format!("{} was registered here meanwhile", version.reference())));
        }
        Ok(NewEvent {
            model: m.model.clone(),
            version: m.version,
            actor: actor.to_string(),
            change: Change::Import {
                run: version.run.clone(),
                lineage: m.lineage.clone(),
                artifact: version.artifact.clone(),
                stage: version.stage.clone(),
                approvals: version.approvals.clone(),
                signatures: version.signatures.clone(),
                archived: version.archived.clone(),
                source_events: events.iter().map(|e| e.hash.clone()).collect(),
                history: version.history.clone(),
                bundle: bundle_digest.clone(),
                signer: Some(signer.clone()),
                runs: Some(added_runs.clone()),
            },
        })
    })?;
    if !m.include_data && stored_inputs {
        warnings.push("exported without --include-data: the input data's content is not in this store".into());
    }
    Ok(ImportReport {
        model: version.reference(),
        run: m.run.clone(),
        imported: true,
        objects_added: added,
        runs,
        signatures_verified: verified,
        approvals_verified,
        include_data: m.include_data,
        stage: version.stage.clone(),
        manifest_signed_by,
        signer,
        warnings,
    })
}
