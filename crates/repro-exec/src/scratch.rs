//! A private folder under `.repro/tmp` for work in progress (a bundle being packed or
//! unpacked, a source being downloaded for adoption), removed on every way out; after a
//! crash, fsck removes what is left in `tmp/`.

use std::fs;
use std::path::PathBuf;

use repro_store::Store;

use crate::{ExecError, Result};

pub(crate) struct Scratch(pub(crate) PathBuf);

impl Scratch {
    pub(crate) fn new(store: &Store, what: &str) -> Result<Scratch> {
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
