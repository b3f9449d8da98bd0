//! `repro bundle export`: a version's run, objects, code and registry events into one file, signed unless `--unsigned`.

use super::*;

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
    let unreadable = |s: &Digest, e: repro_store::StoreError| {
        ExecError::Usage(format!("snapshot {s} of run {} is unreadable ({e})", rec.id.short()))
    };
    // Every manifest travels whole: a chunked one's chunks go with its root.
    for s in rec.inputs.iter().map(|i| &i.snapshot).chain(rec.outputs.iter().filter_map(|o| o.snapshot.as_ref())) {
        out.extend(store.objects.manifest_chunks(s).map_err(|e| unreadable(s, e))?);
    }
    let mut snaps: Vec<&Digest> = rec.outputs.iter().filter_map(|o| o.snapshot.as_ref()).collect();
    if data {
        snaps.extend(rec.inputs.iter().filter(|i| !i.reference).map(|i| &i.snapshot));
    }
    for s in snaps {
        let m = store.objects.manifest(s).map_err(|e| unreadable(s, e))?;
        out.extend(m.entries.into_iter().map(|e| e.digest));
    }
    Ok(())
}

/// Writes the git bundle of `commit` into `scratch`: from a code bundle this store already
/// has (an import), else from the recorded repository, the current folder's, or the remote.
fn code_bundle(store: &Store, rec: &RunRecord, commit: &str, scratch: &Path, cwd: &Path) -> Result<PathBuf> {
    if let Some(obj) = store.meta.models().code_bundle(commit)? {
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
    let events = store.meta.models().events()?;
    let (registry, _) = Registry::fold(&events);
    let version = lookup(&registry, reference)?;
    let (run, lineage) = crate::registry::pinned_run(store, &version)?;
    crate::integrity::vouch_for_version(store, &version, progress)?;
    let scratch = Scratch::new(store, "export")?;

    // Runs: the version's, and its replays (so the auditor's store knows it was replayed).
    let mut runs = vec![run.clone()];
    let mut replays = Vec::new();
    for r in store.meta.runs().replays_of(&run.record.id)? {
        let Ok(rr) = store.meta.runs().get(&r.replay) else { continue };
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
            metrics: store.meta.runs().metrics(&r.record.id)?,
        });
        let snaps = r
            .record
            .inputs
            .iter()
            .map(|i| (&i.snapshot, include_data && !i.reference))
            .chain(r.record.outputs.iter().filter_map(|o| Some((o.snapshot.as_ref()?, true))));
        for (digest, stored) in snaps {
            if let Some(row) = store.meta.datasets().snapshot(digest)? {
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
    // A signed verdict travels with its report: the envelope and key the report names.
    for r in &replays {
        if let Some(a) = crate::replay::verdict::attestation_in(&store.objects.read(&r.report)?) {
            objects.insert(a.envelope);
            objects.insert(a.public_key);
        }
    }
    for a in version.approvals.iter().filter_map(|a| a.signature.as_ref()) {
        objects.insert(a.envelope.clone());
        objects.insert(a.public_key.clone());
    }
    for s in &version.signatures {
        objects.insert(s.envelope.clone());
        objects.insert(s.public_key.clone());
    }
    for a in &version.attestations {
        objects.insert(a.envelope.clone());
        objects.insert(a.public_key.clone());
    }
    let (run_id, artifact) = crate::registry::evidence(&version)?;
    objects.extend(artifact.files.iter().map(|f| f.blake3.clone()));
    objects.insert(artifact.snapshot.clone());

    // Code: a git bundle of the commit, as one more object.
    let mut code = None;
    let mut extra_files: Vec<(Digest, PathBuf)> = Vec::new();
    if let Some(commit) = &run.record.code.commit {
        let path = code_bundle(store, &run.record, commit, &scratch.0, cwd)?;
        let (digest, _) = repro_util::hash::hash_file(&path).map_err(ExecError::io("read", &path))?;
        code = Some(BundleCode { commit: commit.clone(), object: digest.clone() });
        extra_files.push((digest, path));
    }

    // The BOM and the model card, as two more objects.
    let (bom, card) = crate::registry::facts::for_bundle(store, &version)?;
    let mut documents = Vec::new();
    for (name, bytes) in [("bom.cdx.json", bom), ("model-card.md", card)] {
        let path = scratch.0.join(name);
        fs::write(&path, &bytes).map_err(ExecError::io("write", &path))?;
        documents.push(Digest::of_bytes(&bytes));
        extra_files.push((Digest::of_bytes(&bytes), path));
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
        created_at: repro_util::clock::rfc3339(repro_util::clock::now_ms()),
        repro_version: env!("CARGO_PKG_VERSION").into(),
        model: version.name.clone(),
        version: version.version,
        run: run_id.clone(),
        lineage: lineage.clone(),
        include_data,
        events: repro_core::registry::events_of(&events, &version.name, version.version)
            .into_iter()
            .map(Into::into)
            .collect(),
        runs: bundle_runs,
        replays,
        snapshots: snapshots.into_values().collect(),
        code: code.clone(),
        objects: listed,
        bom: documents.first().cloned(),
        card: documents.get(1).cloned(),
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
