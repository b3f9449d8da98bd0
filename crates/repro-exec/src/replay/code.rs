//! Step 1 of a replay: where the code comes from, and the rebuilt tree at the recorded commit.

use super::*;

/// Whether `rec` is foreign (its record, or that of the run it replays, came from a bundle),
/// and if so whether its code may run: the bundle's signer is a key `[trust]` lists now, or
/// the caller passed `--trust-code`. Refused before anything is built.
///
/// The commit alone would not decide it: a foreign record names the command, params, diff,
/// untracked files and interpreter, so even a commit found in a local repository runs what
/// the bundle says. A replay of a foreign run copies its record, so it stays foreign.
pub(super) fn code_origin(store: &Store, rec: &RunRecord, trust_code: bool) -> Result<Option<CodeOrigin>> {
    // Which import brought each run (the first, if several name it).
    let mut imported: BTreeMap<RunId, (Digest, Option<BundleSigner>)> = BTreeMap::new();
    for e in store.meta.models().events()?.iter().filter(|e| e.kind == "import") {
        // An import that cannot be read might be the one that brought this run: stop.
        let Ok(Change::Import { run, bundle, signer, runs, .. }) = Change::from_payload(&e.kind, &e.payload) else {
            return Err(cannot(
                &rec.id,
                format!(
                    "registry event {} cannot be read, so where this run came from is unknown; run `repro fsck`",
                    e.describe()
                ),
            ));
        };
        for r in runs.unwrap_or_else(|| vec![run]) {
            imported.entry(r).or_insert_with(|| (bundle.clone(), signer.clone()));
        }
    }
    if imported.is_empty() {
        return Ok(None);
    }
    // Up the `replay_of` links (bounded: records are data, a cycle must not hang us).
    let mut at = rec.clone();
    let mut found = None;
    for _ in 0..64 {
        if let Some((bundle, signer)) = imported.get(&at.id) {
            found = Some((at.id.clone(), bundle.clone(), signer.clone()));
            break;
        }
        let Some(parent) = at.replay_of.clone() else { break };
        match store.meta.runs().get(&parent) {
            Ok(p) => at = p.record,
            Err(repro_store::StoreError::UnknownRun(_)) => break,
            Err(e) => return Err(e.into()),
        }
    }
    let Some((imported_run, bundle, signer)) = found else { return Ok(None) };
    let keyid = signer.as_ref().and_then(|s| s.keyid.clone());
    let trusted_now = match &keyid {
        Some(k) => crate::trust::Trust::of(store)?.contains(k),
        None => false,
    };
    let allowed_by = match (trusted_now, trust_code) {
        (true, _) => "trusted signer",
        (false, true) => "--trust-code",
        (false, false) => {
            let who = match (&signer, &keyid) {
                (None, _) => "imported before repro recorded who signed it".to_string(),
                (Some(_), None) => "which is unsigned".to_string(),
                (Some(_), Some(k)) => format!("signed by an untrusted key {k} (not in [trust] of .repro/repro.toml)"),
            };
            let argv = serde_json::to_string(&rec.script.argv).expect("strings serialize");
            let via =
                if imported_run == rec.id { String::new() } else { format!(" (through run {})", imported_run.short()) };
            return Err(cannot(
                &rec.id,
                format!(
                    "its record came from bundle {}{via}, {who}, so replaying it would run that bundle's code: {argv}; read the code, then pass --trust-code, or list the signer's key under [trust] signers",
                    bundle.short()
                ),
            ));
        }
    };
    Ok(Some(CodeOrigin { imported_run, bundle, signer, allowed_by }))
}
// ---- 1. code ---------------------------------------------------------------------------

pub(super) fn rebuild_code(
    store: &Store,
    rec: &RunRecord,
    commit: &str,
    tree: &Path,
    scratch: &Path,
    cwd: &Path,
) -> Result<CodeReport> {
    let id = &rec.id;
    let root = rec.code.repo_root.as_deref().map(PathBuf::from);
    let mut tried: Vec<String> = Vec::new();
    let mut source = None;
    // A local repository holding the commit: the recorded one, else the one we stand in.
    let here = git::toplevel(cwd);
    for (repo, label) in [(root.clone(), "the original repository"), (here, "the repository of the current folder")] {
        let Some(repo) = repo else { continue };
        if source.is_some() || tried.iter().any(|t| t.contains(&repo.display().to_string())) {
            continue;
        }
        if !repo.join(".git").exists() {
            tried.push(format!("{} is gone", repo.display()));
            continue;
        }
        if !git::has_commit(&repo, commit) {
            tried.push(format!("{} does not hold it", repo.display()));
            continue;
        }
        reset_dir(tree)?;
        match git::clone_into(&repo.display().to_string(), tree, true) {
            Ok(()) => source = Some(format!("{label} {}", repo.display())),
            Err(e) => tried.push(format!("cloning {} failed ({e})", repo.display())),
        }
    }
    // A code bundle imported with the run (`repro bundle import`): local and verified.
    if source.is_none() {
        if let Some(obj) = store.meta.models().code_bundle(commit)? {
            match store.objects.verify(&obj)? {
                repro_store::objects::Verified::Ok { .. } => {
                    reset_dir(tree)?;
                    let path = store.objects.fetch(&obj)?;
                    match git::clone_into(&path.display().to_string(), tree, false) {
                        Ok(()) if git::has_commit(tree, commit) => {
                            source = Some(format!("the code bundle {} imported with the run", obj.short()))
                        }
                        Ok(()) => tried.push(format!("the code bundle {} does not hold it", obj.short())),
                        Err(e) => tried.push(format!("the code bundle {} could not be cloned ({e})", obj.short())),
                    }
                }
                _ => tried.push(format!("the code bundle {} is missing or corrupt", obj.short())),
            }
        }
    }
    // The recorded remote.
    if source.is_none() {
        match rec.code.remote.as_deref() {
            Some(url) => {
                reset_dir(tree)?;
                match git::clone_into(url, tree, false) {
                    Ok(()) if git::has_commit(tree, commit) || git::fetch_commit(tree, commit) => {
                        source = Some(format!("the remote {url}"))
                    }
                    Ok(()) => tried.push(format!("the remote {url} does not have it")),
                    Err(e) => tried.push(format!("the remote {url} could not be cloned ({e})")),
                }
            }
            None => tried.push("no remote was recorded".into()),
        }
    }
    let Some(source) = source else {
        return Err(cannot(
            id,
            format!(
                "commit {} is not reachable: {}; fetch or push that commit somewhere repro can reach, then replay from that checkout",
                &commit[..commit.len().min(12)],
                tried.join("; ")
            ),
        ));
    };
    git::checkout(tree, commit, rec.code.branch.as_deref())?;
    git::set_origin(tree, rec.code.remote.as_deref())?;

    let mut report = CodeReport {
        source,
        commit: commit.to_string(),
        branch: rec.code.branch.clone(),
        diff_applied: false,
        untracked_restored: 0,
        restored_from_store: Vec::new(),
        origin: None,
    };
    if let Some(diff) = &rec.code.diff {
        let patch = scratch.join("code.patch");
        store.objects.restore(diff, &patch, 0o600)?;
        let applied = git::apply_patch(tree, &patch);
        let _ = fs::remove_file(&patch);
        applied.map_err(|e| cannot(id, format!("the recorded diff does not apply to commit {commit}: {e}")))?;
        report.diff_applied = true;
    }
    for f in &rec.code.untracked {
        let dest = inside(tree, &f.path)
            .ok_or_else(|| cannot(id, format!("untracked file path {} leaves the tree", f.path)))?;
        store.objects.restore(&f.digest, &dest, f.mode)?;
        report.untracked_restored += 1;
    }
    // Files git ignores were not in the diff: the script and environment file come from
    // the store when the tree lacks them.
    let mut extra: Vec<(&str, &Digest)> = Vec::new();
    // A notebook's `digest` is of its code cells; the file itself is `file_digest`.
    let script_file = rec.script.file_digest.as_ref().or(rec.script.digest.as_ref());
    if let (Some(p), Some(d)) = (&rec.script.path, script_file) {
        extra.push((p, d));
    }
    if let Some(decl) = &rec.environment.declared {
        extra.push((&decl.path, &decl.digest));
    }
    for (path, digest) in extra {
        let Some(dest) = inside(tree, path) else { continue };
        if !dest.exists() {
            store.objects.restore(digest, &dest, 0o644)?;
            report.restored_from_store.push(path.to_string());
        }
    }

    // Verify: the tree reproduces the recorded diff, and the script is the recorded one.
    let now = git::diff_head(tree)?;
    let now = (!now.is_empty()).then(|| Digest::of_bytes(&now));
    if now != rec.code.diff {
        return Err(cannot(
            id,
            format!(
                "the rebuilt tree does not match the record: `git diff HEAD` gives {}, the run recorded {}",
                now.map(|d| d.short().to_string()).unwrap_or_else(|| "no changes".into()),
                rec.code.diff.as_ref().map(|d| d.short().to_string()).unwrap_or_else(|| "no changes".into())
            ),
        ));
    }
    if let (Some(p), Some(d)) = (&rec.script.path, script_file) {
        if let Some(file) = inside(tree, p) {
            let (got, _) = repro_util::hash::hash_file(&file).map_err(ExecError::io("read", &file))?;
            if got != *d {
                return Err(cannot(
                    id,
                    format!("the rebuilt script {p} hashes to {}, the run recorded {}", got.short(), d.short()),
                ));
            }
        }
    }
    Ok(report)
}

fn reset_dir(dir: &Path) -> Result<()> {
    if dir.exists() {
        for e in fs::read_dir(dir).map_err(ExecError::io("read", dir))?.flatten() {
            let p = e.path();
            let r = if p.is_dir() && !p.is_symlink() { fs::remove_dir_all(&p) } else { fs::remove_file(&p) };
            r.map_err(ExecError::io("remove", &p))?;
        }
    }
    Ok(())
}
