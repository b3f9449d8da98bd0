//! Copying files out of an S3-compatible bucket that is not the store's own: what `repro
//! model adopt` reads an external version's `s3://…` source with. The client is the shared
//! tier's (same AWS_* variables, timeouts and retries); the keys are the source's, not
//! content addresses, so nothing is trusted here: the caller hashes what lands.

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};

use futures_util::{StreamExt, TryStreamExt};
use object_store::path::Path as Key;
use object_store::{ObjectStore, ObjectStoreExt};

use crate::remote::Remote;
use crate::{Result, StoreError};

/// Copies the object `url` names, or every object under it as a folder, into `dest` (an
/// empty folder). Returns what to read: `dest` for a folder, the one file otherwise.
pub fn copy_tree(url: &str, dest: &Path) -> Result<PathBuf> {
    let (_, prefix) =
        crate::parse_objects_url(url).map_err(|m| StoreError::Config { path: PathBuf::from(url), message: m })?;
    let remote = Remote::connect(url)?;
    let base: Key = prefix.split('/').filter(|p| !p.is_empty()).collect();
    remote.block_on(async {
        let listed: Vec<object_store::ObjectMeta> = remote
            .store
            .list(Some(&base))
            .try_collect()
            .await
            .map_err(|e| remote.error("list the objects of".into(), &e))?;
        let mut wanted: Vec<(String, Key)> = Vec::new();
        for meta in listed {
            let rel: Vec<String> = match meta.location.prefix_match(&base) {
                Some(parts) => parts.map(|p| p.as_ref().to_string()).collect(),
                None => continue,
            };
            wanted.push((checked(url, &rel)?, meta.location));
        }
        let single = wanted.is_empty();
        if single {
            let name = base.parts().next_back().map(|p| p.as_ref().to_string()).unwrap_or_default();
            wanted.push((checked(url, &[name])?, base.clone()));
        }
        for (rel, key) in &wanted {
            let path = dest.join(rel);
            if let Some(dir) = path.parent() {
                std::fs::create_dir_all(dir).map_err(StoreError::io("create", dir))?;
            }
            let got = match remote.store.get(key).await {
                Ok(g) => g,
                Err(object_store::Error::NotFound { .. }) => {
                    return Err(StoreError::Missing(format!("{url} holds no object and no folder of objects")))
                }
                Err(e) => return Err(remote.error(format!("download {rel} from"), &e)),
            };
            let mut file = File::create_new(&path).map_err(StoreError::io("create", &path))?;
            let mut body = got.into_stream();
            while let Some(chunk) = body.next().await {
                let chunk = chunk.map_err(|e| remote.error(format!("download {rel} from"), &e))?;
                file.write_all(&chunk).map_err(StoreError::io("write", &path))?;
            }
        }
        Ok(if single { dest.join(&wanted[0].0) } else { dest.to_path_buf() })
    })
}

/// A key's path below the source as a relative file path, refused when it could leave
/// `dest` or name nothing (`..`, `.`, empty segments are not files a folder can hold).
fn checked(url: &str, parts: &[String]) -> Result<String> {
    if parts.is_empty() || parts.iter().any(|p| p.is_empty() || p == "." || p == ".." || p.contains('\\')) {
        return Err(StoreError::Missing(format!(
            "{url} has a key ({}) that is not a plain file path; copy the files yourself and pass --from",
            parts.join("/")
        )));
    }
    Ok(parts.join("/"))
}
