//! Step 2 of a replay: each input restored from the store and re-hashed.

use repro_store::datasets::{CachedFile, TreeCache};
use repro_store::objects::FileStat;

use super::*;

/// What a replay restored: one report per input, and for each input restored from the store,
/// its absolute path with the stats and digests the restore verified (for the run's snapshot).
type Restore = (Vec<InputReport>, Vec<(PathBuf, TreeCache)>);

// ---- 2. data ---------------------------------------------------------------------------

pub(super) fn restore_inputs(
    store: &Store,
    rec: &RunRecord,
    tree: &Path,
    link_data: bool,
    verify_data: bool,
    reporter: &dyn Reporter,
) -> Result<Restore> {
    let placement = if link_data { repro_store::Placement::Link } else { repro_store::Placement::Own };
    let read = if verify_data { repro_store::ReadBack::Always } else { repro_store::ReadBack::UnlessStamped };
    let mut out = Vec::new();
    let mut restored = Vec::new();
    for input in &rec.inputs {
        let mut unread_files = 0u64;
        let manifest = read_manifest(store, &input.snapshot, &rec.id)?;
        let relative = inside(tree, &input.path);
        // Where the recorded content is read from: the store, or (reference-only and
        // outside-the-repository inputs) the original location, verified.
        let original_location = match (&relative, &rec.code.repo_root) {
            (Some(_), Some(root)) => Path::new(root).join(&input.path),
            _ => PathBuf::from(&input.path),
        };
        let files_at = |base: &Path, e: &repro_core::record::FileEntry| match manifest.kind {
            SnapshotKind::File => base.to_path_buf(),
            SnapshotKind::Dir => base.join(&e.path),
        };
        let how = match (&relative, input.reference) {
            (Some(dest), false) => {
                reporter.message(&format!(
                    "restoring input {} ({})",
                    input.path,
                    repro_core::audit::count(manifest.entries.len() as u64, "file")
                ));
                if fs::symlink_metadata(dest).is_ok() {
                    // Committed data: the snapshot, not the commit, is what the run read.
                    let r = if dest.is_dir() { fs::remove_dir_all(dest) } else { fs::remove_file(dest) };
                    r.map_err(ExecError::io("replace", dest))?;
                }
                let mut linked = 0usize;
                let mut reflinked = 0usize;
                let mut verified = Vec::with_capacity(manifest.entries.len());
                let mut same_modes = true;
                for e in &manifest.entries {
                    let target = files_at(dest, e);
                    let (_, how) =
                        store.objects.restore_as(&e.digest, &target, e.mode, placement, read).map_err(|err| {
                            cannot(
                                &rec.id,
                                format!("file {} of input {} cannot be restored: {err}", e.path, input.path),
                            )
                        })?;
                    // The file as it stands after the rename (which changes its ctime).
                    let stat = fs::symlink_metadata(&target)
                        .map(|m| FileStat::of(&m))
                        .map_err(ExecError::io("read", &target))?;
                    same_modes &= stat.mode == e.mode;
                    verified.push(CachedFile { rel: &e.path, stat, blake3: e.digest.raw() });
                    match how {
                        repro_store::Restored::Linked => linked += 1,
                        repro_store::Restored::Reflinked { read } => {
                            reflinked += 1;
                            unread_files += u64::from(!read);
                        }
                        repro_store::Restored::Copied => {}
                    }
                }
                verified.sort_unstable_by(|a, b| a.rel.cmp(b.rel));
                // Linked files keep the objects' read-only mode: the digests still answer, but
                // the manifest (which records modes) is made anew.
                let abs = fs::canonicalize(dest).map_err(ExecError::io("read", dest))?;
                restored.push((abs, TreeCache::new(same_modes.then(|| input.snapshot.clone()), verified)));
                if reflinked > 0 {
                    reporter.message(&format!(
                        "{} of {} reflinked (no bytes copied){}",
                        repro_core::audit::count(reflinked as u64, "file"),
                        input.path,
                        match unread_files {
                            0 => String::new(),
                            n => format!(
                                "; {n} not read back: the store's stamps vouch they are unchanged since they were hashed (--verify-data reads them)"
                            ),
                        }
                    ));
                }
                match (link_data, linked == manifest.entries.len()) {
                    (true, true) => "linked to the store's objects",
                    // --link-data across file systems: what could not be linked got a file.
                    (true, false) => "restored from the store (some files could not be linked: another file system)",
                    (false, _) => "restored from the store",
                }
            }
            (dest, _) => {
                reporter.message(&format!("verifying input {} in place", input.path));
                let mut changed = Vec::new();
                for e in &manifest.entries {
                    let f = files_at(&original_location, e);
                    match repro_util::hash::hash_file(&f) {
                        Ok((d, _)) if d == e.digest => {}
                        Ok(_) => changed.push(format!("{} (changed)", f.display())),
                        Err(_) => changed.push(format!("{} (gone)", f.display())),
                    }
                }
                if !changed.is_empty() {
                    let n = changed.len();
                    changed.truncate(5);
                    return Err(cannot(
                        &rec.id,
                        format!(
                            "input {} was recorded by reference and its content changed since: {}{}; restore those files or snapshot the data with its contents",
                            input.path,
                            changed.join(", "),
                            if n > 5 { format!(" and {} more", n - 5) } else { String::new() }
                        ),
                    ));
                }
                if let Some(dest) = dest {
                    // Verified in place; copy into the tree so the command finds it where it did.
                    for e in &manifest.entries {
                        let (src, target) = (files_at(&original_location, e), files_at(dest, e));
                        if let Some(parent) = target.parent() {
                            fs::create_dir_all(parent).map_err(ExecError::io("create", parent))?;
                        }
                        fs::copy(&src, &target).map_err(ExecError::io("copy", &src))?;
                    }
                }
                "verified in place"
            }
        };
        out.push(InputReport {
            path: input.path.clone(),
            dataset: input.dataset.clone(),
            files: input.files,
            bytes: input.bytes,
            how,
            unread_files,
        });
    }
    Ok((out, restored))
}
