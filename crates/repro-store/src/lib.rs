//! Keeping things: the content-addressed object store (`objects/`), the metadata
//! database (`repro.db`, SQLite in WAL mode), the store's configuration (`repro.toml`)
//! and `fsck`.
//!
//! The metadata database is reached through [`Metadata`], which hands out one repository
//! per table group, each borrowing the connection: [`Metadata::runs`], [`Metadata::tracking`]
//! (with logged models), [`Metadata::models`] (the registry), [`Metadata::datasets`],
//! [`Metadata::environments`], [`Metadata::tokens`] and [`Metadata::verdicts`] (fsck's).
//! Every table and its history is in `schema.rs`. What spans groups (finishing a run,
//! resolving a run spec) is on `Metadata` itself.
//!
//! Depends on `repro-core` and `repro-util` only. Nothing here modifies an object in place:
//! objects are written once (temp file → durable → rename) and every read re-checks the digest.

pub mod config;
mod conn;
pub mod datasets;
pub mod db;
pub mod environments;
mod error;
pub mod fetch;
pub mod fsck;
pub mod journal;
mod known;
pub mod logged;
mod manifests;
pub mod meta;
pub mod migrate;
pub mod objects;
pub mod process;
mod records;
pub mod registry;
pub mod remote;
pub mod runs;
mod schema;
pub mod search;
mod stamps;
pub mod tokens;
pub mod tracking;
mod tree_cache;
pub mod verdicts;

use std::path::{Path, PathBuf};

pub use config::{check_db_url, parse_objects_url, Config, StoreSection};
pub use error::{RemoteFailure, StoreError};
pub use meta::Metadata;
pub use objects::{Batch, Objects, Placement, ReadBack, Restored};
pub use remote::Remote;
// Re-exported: most crates read the clock through the store, which records its times.
pub use repro_util::clock::{now_ms, rfc3339};

/// The folder name of a store inside a project.
pub const STORE_DIR: &str = ".repro";

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// Where a new store keeps its metadata and objects: `None` is the embedded default
/// (`repro.db` and `objects/`).
#[derive(Clone, Debug, Default)]
pub struct Backends {
    /// `postgres://USER@HOST[:PORT]/DB`.
    pub db: Option<String>,
    /// `s3://BUCKET[/PREFIX]`.
    pub objects: Option<String>,
}

impl Backends {
    /// `--db` / `--objects` with `migrate-store --to URL`s added: a `s3://` URL names the
    /// objects' place, anything else the database; naming either twice is refused.
    pub fn with_targets(db: Option<String>, objects: Option<String>, to: &[String]) -> Result<Backends> {
        let mut backends = Backends { db, objects };
        for url in to {
            let is_objects = url.starts_with("s3://");
            let slot = if is_objects { &mut backends.objects } else { &mut backends.db };
            if slot.replace(url.clone()).is_some() {
                return Err(StoreError::Invalid(format!(
                    "--to {url}: the store's {} is named twice; give one postgres:// and/or one s3:// URL",
                    if is_objects { "objects' place" } else { "database" }
                )));
            }
        }
        Ok(backends)
    }
}

/// An open store: configuration, objects and metadata.
pub struct Store {
    root: PathBuf,
    pub config: Config,
    pub objects: Objects,
    pub meta: Metadata,
}

impl Store {
    /// Creates `.repro/` inside `dir`, with the embedded backends.
    pub fn init(dir: &Path) -> Result<Store> {
        Store::init_with(dir, &Backends::default())
    }

    /// Creates `.repro/` inside `dir`, its metadata and objects where `backends` says. A
    /// shared backend that already holds a store is joined, not wiped: that is how a second
    /// machine (or server) works on the same store.
    pub fn init_with(dir: &Path, backends: &Backends) -> Result<Store> {
        let root = dir.join(STORE_DIR);
        let config_path = root.join(config::CONFIG_FILE);
        if config_path.exists() {
            return Err(StoreError::AlreadyExists(root));
        }
        let bad = |message: String| StoreError::Config { path: config_path.clone(), message };
        if let Some(url) = &backends.db {
            config::check_db_url(url).map_err(bad)?;
        }
        if let Some(url) = &backends.objects {
            config::parse_objects_url(url).map_err(bad)?;
        }
        let section = config::StoreSection { db: backends.db.clone(), objects: backends.objects.clone(), format: 1 };
        std::fs::create_dir_all(&root).map_err(StoreError::io("create", &root))?;
        // Keep the store out of git without touching the user's .gitignore.
        write_new(&root.join(".gitignore"), b"# repro's store; managed by repro\n*\n")?;
        let made = (|| {
            Objects::create(&root, backends.objects.as_deref())?;
            Metadata::connect(&root, backends.db.as_deref())?.models().join_anchor()
        })();
        if let Err(e) = made {
            // Nothing half-made: a store whose backend could not be reached is not a store.
            let _ = std::fs::remove_dir_all(&root);
            return Err(e);
        }
        // repro.toml last: its presence is what marks a finished store.
        write_new(&config_path, Config::file_for(&section).as_bytes())?;
        Store::open(&root)
    }

    /// Opens the store whose folder (the `.repro` folder) is `root`.
    pub fn open(root: &Path) -> Result<Store> {
        let config = Config::load(&root.join(config::CONFIG_FILE))?;
        let objects = Objects::open(root, config.store.objects.as_deref())?;
        let meta = Metadata::connect(root, config.store.db.as_deref())?;
        Ok(Store { root: root.to_path_buf(), config, objects, meta })
    }

    /// Opens the store at `root` around a database connection already open (a server keeps
    /// a pool of them). `repro.toml` is read anew, so an edited stage policy applies at once.
    pub fn open_with(root: &Path, meta: Metadata) -> Result<Store> {
        let config = Config::load(&root.join(config::CONFIG_FILE))?;
        let objects = Objects::open(root, config.store.objects.as_deref())?;
        Ok(Store { root: root.to_path_buf(), config, objects, meta })
    }

    /// A new connection to this store's metadata database (a server's pool grows with these).
    pub fn connect_meta(root: &Path) -> Result<Metadata> {
        let config = Config::load(&root.join(config::CONFIG_FILE))?;
        Metadata::connect(root, config.store.db.as_deref())
    }

    /// The `.repro` folder.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The folder that holds `.repro/` (the project the store belongs to).
    pub fn project_dir(&self) -> &Path {
        self.root.parent().unwrap_or(&self.root)
    }
}

/// Finds the store for `start`: `start/.repro`, then each parent's, the way git finds `.git`.
pub fn discover(start: &Path) -> Result<PathBuf> {
    for dir in start.ancestors() {
        let candidate = dir.join(STORE_DIR);
        if candidate.join(config::CONFIG_FILE).is_file() {
            return Ok(candidate);
        }
    }
    Err(StoreError::NotFound(start.to_path_buf()))
}

/// The folder `repro init` makes its `.repro` in, asked for `dir`: `--store X/.repro` means
/// `X`, not `X/.repro/.repro`.
pub fn init_parent(dir: &Path) -> PathBuf {
    if dir.file_name().is_some_and(|n| n == STORE_DIR) {
        dir.parent().map(Path::to_path_buf).unwrap_or_else(|| dir.to_path_buf())
    } else {
        dir.to_path_buf()
    }
}

/// Resolves an explicit `--store DIR` / `REPRO_STORE`: the `.repro` folder itself or the folder holding it.
pub fn explicit(dir: &Path) -> Result<PathBuf> {
    if dir.join(config::CONFIG_FILE).is_file() {
        return Ok(dir.to_path_buf());
    }
    let inner = dir.join(STORE_DIR);
    if inner.join(config::CONFIG_FILE).is_file() {
        return Ok(inner);
    }
    Err(StoreError::NotAStore(dir.to_path_buf()))
}

fn write_new(path: &Path, bytes: &[u8]) -> Result<()> {
    objects::write_durably(path, bytes).map_err(StoreError::io("write", path))
}
