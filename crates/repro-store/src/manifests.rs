//! Snapshot manifests through the object store: read whole or chunked (every object
//! verified), and written with their chunks.

use repro_core::snapshot::{self, Manifest, ManifestObject};
use repro_core::{CoreError, Digest};

use crate::objects::Objects;
use crate::{Result, StoreError};

impl Objects {
    /// Reads a snapshot's manifest, its chunks too when it has them; every object is
    /// verified and every chunk checked against what the root says of it.
    pub fn manifest(&self, digest: &Digest) -> Result<Manifest> {
        let bad = |e: CoreError| StoreError::NotAManifest { digest: digest.clone(), problem: e.to_string() };
        match snapshot::parse(&self.read(digest)?).map_err(bad)? {
            ManifestObject::Whole(m) => Ok(m),
            ManifestObject::Chunked(root) => Manifest::assemble(root, |r| self.read(&r.digest), bad),
        }
    }

    /// The chunk objects a manifest names (none for a whole one): what has to travel with
    /// its root wherever the snapshot goes.
    pub fn manifest_chunks(&self, digest: &Digest) -> Result<Vec<Digest>> {
        let bad = |e: CoreError| StoreError::NotAManifest { digest: digest.clone(), problem: e.to_string() };
        Ok(match snapshot::parse(&self.read(digest)?).map_err(bad)? {
            ManifestObject::Whole(_) => Vec::new(),
            ManifestObject::Chunked(root) => root.chunks.into_iter().map(|c| c.digest).collect(),
        })
    }

    /// Stores a manifest durably (chunks and root in one batch) and returns the digest
    /// that names the snapshot.
    pub fn put_manifest(&self, manifest: &Manifest) -> Result<Digest> {
        let enc = manifest.encode();
        if enc.chunks.is_empty() {
            return self.put_bytes(&enc.root);
        }
        let batch = self.batch()?;
        for (d, bytes) in &enc.chunks {
            batch.add_bytes(d, bytes)?;
        }
        batch.add_bytes(&enc.digest, &enc.root)?;
        batch.commit()?;
        Ok(enc.digest)
    }
}
