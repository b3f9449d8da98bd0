//! `repro model adopt NAME@V [--from PATH]`: brings an external version's files into the
//! store. Each file is read once, hashed (BLAKE3 and SHA-256) and stored as an object; a
//! manifest of them is the version's snapshot; one `adopt` event pins them. From then on the
//! bytes are checked like any version's (fsck, verify, promotion), and the history says where
//! they were read from (an `s3://` source is downloaded with the shared tier's client first).
//! Adoption pins bytes, not training: the version still has no run, so policies that need a
//! run's evidence stay unmet.

use std::fs;
use std::path::{Path, PathBuf};

use repro_core::record::FileEntry;
use repro_core::snapshot::{Manifest, SnapshotKind};
use repro_store::objects::FileStat;

use super::*;
use crate::scratch::Scratch;

/// What an adoption pinned.
#[derive(Debug, Serialize)]
pub struct AdoptOutcome {
    pub version: ModelVersion,
    /// Where the bytes were read from.
    pub from: String,
    pub files: usize,
    pub bytes: u64,
}

/// The local folder or file to read an external source from: `--from`, else the source
/// itself when it is a `file://` URI or a path, else a copy of an `s3://` source downloaded
/// into `scratch`. Other schemes are named with what to do.
fn local_source(store: &Store, source: &str, from: Option<&Path>, scratch: &mut Option<Scratch>) -> Result<PathBuf> {
    if let Some(p) = from {
        return Ok(p.to_path_buf());
    }
    if source.starts_with("s3://") {
        let download = scratch.insert(Scratch::new(store, "adopt")?);
        return Ok(repro_store::fetch::copy_tree(source, &download.0)?);
    }
    if let Some(rest) = source.strip_prefix("file://") {
        // `file:///abs` and `file://localhost/abs`; any other host is another machine.
        let path = rest.strip_prefix("localhost").unwrap_or(rest);
        if path.starts_with('/') {
            return Ok(PathBuf::from(path));
        }
    } else if !source.contains("://") && !source.contains(":/") {
        return Ok(PathBuf::from(source));
    }
    Err(ExecError::Usage(format!(
        "repro cannot read {source} itself (it reads s3://, file:// and paths); copy the files here (e.g. `gsutil cp -r`) and pass --from PATH"
    )))
}

/// Every regular file under `root` (or `root` itself), sorted, as (path relative to root, full path).
fn walk(root: &Path) -> Result<Vec<(String, PathBuf)>> {
    let meta = fs::symlink_metadata(root).map_err(ExecError::io("read", root))?;
    if meta.is_file() {
        let name = root.file_name().map_or_else(|| "model".into(), |n| n.to_string_lossy().into_owned());
        return Ok(vec![(name, root.to_path_buf())]);
    }
    if !meta.is_dir() {
        return Err(ExecError::Usage(format!("{} is neither a file nor a folder", root.display())));
    }
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in fs::read_dir(&dir).map_err(ExecError::io("read", &dir))? {
            let entry = entry.map_err(ExecError::io("read", &dir))?;
            let path = entry.path();
            let kind = entry.file_type().map_err(ExecError::io("read", &path))?;
            if kind.is_dir() {
                stack.push(path);
            } else if kind.is_file() {
                let rel = path.strip_prefix(root).unwrap_or(&path).to_string_lossy().replace('\\', "/");
                out.push((rel, path));
            } else {
                // A link could point anywhere; what is pinned must be what is in the folder.
                return Err(ExecError::Usage(format!(
                    "{} is a symbolic link or a special file; adopt a folder of plain files (copy with links followed)",
                    path.display()
                )));
            }
        }
    }
    if out.is_empty() {
        return Err(ExecError::Usage(format!("{} holds no files to adopt", root.display())));
    }
    out.sort();
    Ok(out)
}

/// `repro model adopt NAME@V [--from PATH]`.
pub fn adopt(
    store: &mut Store,
    reference: &str,
    from: Option<&Path>,
    actor: &str,
    progress: &dyn crate::Progress,
) -> Result<AdoptOutcome> {
    let version = lookup(&store.meta.models().registry()?, reference)?;
    let Some(external) = &version.external else {
        return Err(ExecError::Usage(format!(
            "{} was registered from a run of this store; its files are pinned already (adopt is for external versions)",
            version.reference()
        )));
    };
    if version.artifact.is_some() {
        return Err(ExecError::Usage(format!(
            "{} already pins its files{}; register a new version for other bytes",
            version.reference(),
            external.adopted_from.as_ref().map_or(String::new(), |f| format!(" (adopted from {f})"))
        )));
    }
    let source = external.source.clone();
    let mut download = None;
    let root = local_source(store, &source, from, &mut download)?;
    let listed = walk(&root)?;
    let single = fs::symlink_metadata(&root).map_err(ExecError::io("read", &root))?.is_file();
    progress.start("adopting files", listed.len() as u64);
    let batch = store.objects.batch()?;
    let mut files = Vec::new();
    let mut entries = Vec::new();
    let mut total = 0u64;
    for (rel, path) in &listed {
        // Hashed in bounded chunks (a model may be gigabytes), then copied; the copy is
        // refused if the file changed between the two (`add_copy` compares size and mtime).
        let seen = FileStat::of(&fs::metadata(path).map_err(ExecError::io("read", path))?);
        let (blake3, sha256, size) =
            repro_util::hash::hash_file_with_sha256(path).map_err(ExecError::io("read", path))?;
        batch.add_copy(&blake3, path, &seen)?;
        total += size;
        let pinned_path = if single { source.clone() } else { format!("{}/{rel}", source.trim_end_matches('/')) };
        files.push(ArtifactFile { path: pinned_path, size, blake3: blake3.clone(), sha256 });
        entries.push(FileEntry { path: rel.clone(), size, mode: 0o644, digest: blake3 });
        progress.advance(1);
    }
    batch.commit()?;
    progress.finish();
    let kind = if single { SnapshotKind::File } else { SnapshotKind::Dir };
    let snapshot = store.objects.put_manifest(&Manifest::new(kind, entries))?;
    let read_from = match (&download, from) {
        (Some(_), None) => source.clone(),
        _ => root.canonicalize().unwrap_or(root).display().to_string(),
    };
    let artifact = Artifact { path: source.clone(), output: source, snapshot, files };
    let (name, number) = (version.name.clone(), version.version);
    store.meta.models().append(repro_util::clock::now_ms(), |reg| {
        // Checked again under the write lock: two adoptions of one version cannot both land.
        let now = lookup(reg, &format!("{name}@{number}"))?;
        if now.artifact.is_some() {
            return Err(ExecError::Usage(format!("{} was adopted meanwhile", now.reference())));
        }
        Ok(NewEvent {
            model: name.clone(),
            version: number,
            actor: actor.to_string(),
            change: Change::Adopt { artifact: artifact.clone(), from: read_from.clone() },
        })
    })?;
    let files = artifact.files.len();
    Ok(AdoptOutcome { version: found(store, &name, number)?, from: read_from, files, bytes: total })
}
