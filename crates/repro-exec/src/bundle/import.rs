//! `repro bundle import`: unpack, check the signature and every object, then record.

use super::*;

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
        let (digest, size) = repro_util::hash::hash_file(path).map_err(ExecError::io("read", path))?;
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
    }
    // Exactly the events that make the version: its own (under the names the model had) and
    // the renames that led to its name now.
    let about = repro_core::registry::events_of(&events, &m.model, m.version);
    if let Some(e) = events.iter().find(|e| !about.iter().any(|a| a.hash == e.hash)) {
        return Err(refuse(file, format!("registry event {} is not about {}@{}", e.describe(), m.model, m.version)));
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
    if version.run.as_ref() != Some(&m.run) || version.lineage.as_ref().is_some_and(|l| *l != m.lineage) {
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
            #[serde(default)]
            attestation: Option<crate::replay::verdict::VerdictAttestation>,
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
        // A signed verdict must verify and be about this version, whoever signed it.
        if let Some(a) = report.attestation {
            let row = ReplayRow {
                replay: r.replay.clone(),
                original: r.original.clone(),
                verdict: r.verdict,
                report: r.report.clone(),
                created_ms: r.created_ms,
            };
            crate::replay::verdict::check_verdict_bytes(&read(&a.envelope)?, &read(&a.public_key)?, &a, &row, &version)
                .map_err(|e| {
                    refuse(
                        file,
                        format!("the signed verdict of replay {} (key {}) does not hold: {e}", r.replay, a.keyid),
                    )
                })?;
        }
    }
    // Snapshot rows: counts from their manifests; content claimed only where every file is here.
    for s in &m.snapshots {
        let not_manifest =
            |e: repro_core::CoreError| refuse(file, format!("snapshot {} is not a manifest ({e})", s.digest));
        let manifest = match repro_core::snapshot::parse(&read(&s.digest)?).map_err(not_manifest)? {
            repro_core::snapshot::ManifestObject::Whole(m) => m,
            repro_core::snapshot::ManifestObject::Chunked(root) => {
                Manifest::assemble(root, |c| read(&c.digest), not_manifest)?
            }
        };
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
    let artifact = version.files().map_err(|e| refuse(file, e))?;
    for f in &artifact.files {
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
    // Signed BOMs: each verifies with its key and names exactly this version's files. (Whether
    // the BOM agrees with the run is `model verify`'s `bom` check, on the imported rows.)
    for a in &version.attestations {
        let text = read(&a.envelope)?;
        let ok = std::str::from_utf8(&text)
            .ok()
            .and_then(|t| repro_core::provenance::Envelope::parse(t).ok())
            .zip(
                std::str::from_utf8(&read(&a.public_key)?)
                    .ok()
                    .and_then(|p| <repro_core::provenance::VerifyingKey as ed25519_dalek::pkcs8::DecodePublicKey>::from_public_key_pem(p).ok()),
            )
            .is_some_and(|(env, k)| {
                repro_core::provenance::sslib_keyid(&k) == a.keyid
                    && repro_core::provenance::verify_envelope(&env, &k).is_ok()
            });
        if !ok {
            return Err(refuse(file, format!("the signed {} by key {} does not verify", a.predicate_type, a.keyid)));
        }
    }
    // The BOM and card travel as objects (their hashes were checked with the others).
    for d in m.bom.iter().chain(&m.card) {
        read(d)?;
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
    let here = store.meta.models().registry()?;
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
                existing.run_text().unwrap_or("none")
            ),
        ));
    }
    // The runs this import adds (one already here with the same record stays this store's own).
    let mut added_runs = Vec::new();
    for r in &import_runs {
        match store.meta.runs().get(&r.record.id) {
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
    let bundle_digest = repro_util::hash::hash_file(file).map_err(ExecError::io("read", file))?.0;
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
                created_ms: repro_util::clock::now_ms(),
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
    store.meta.models().import_bundle(&rows, repro_util::clock::now_ms(), |reg| {
        if reg.models.get(&m.model).is_some_and(|model| model.versions.contains_key(&m.version)) {
            return Err(refuse(file, format!("{} was registered here meanwhile", version.reference())));
        }
        Ok(NewEvent {
            model: m.model.clone(),
            version: m.version,
            actor: actor.to_string(),
            change: Change::Import {
                run: m.run.clone(),
                lineage: m.lineage.clone(),
                artifact: artifact.clone(),
                stage: version.stage.clone(),
                approvals: version.approvals.clone(),
                signatures: version.signatures.clone(),
                archived: version.archived.clone(),
                source_events: events.iter().map(|e| e.hash.clone()).collect(),
                history: version.history.clone(),
                bundle: bundle_digest.clone(),
                signer: Some(signer.clone()),
                runs: Some(added_runs.clone()),
                attestations: version.attestations.clone(),
                bom: m.bom.clone(),
                card: m.card.clone(),
                former_names: version.former_names.clone(),
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
