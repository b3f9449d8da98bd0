//! What a run's output files are: each stored output read back from the store and handed to
//! `repro_core::models` (pure) to say its format and the library that wrote it. `repro env
//! parity` ranks on it and `repro show` prints it.

use std::io::{Read, Seek};

use repro_core::models::{self, ModelFile};
use repro_core::snapshot::SnapshotKind;
use repro_store::meta::StoredRun;
use repro_store::Store;
use serde::{Deserialize, Serialize};

/// A file is read whole up to this size; a larger one only its first `HEAD` bytes (enough
/// for a safetensors header, an ONNX model's producer, a pickle's first globals). A zip is
/// read through the open file at any size: only its directory and the small entries that
/// say what it is.
const WHOLE: u64 = 256 << 20;
const HEAD: u64 = 16 << 20;

/// Files looked at per run, at most: an output folder of 100,000 images is not 100,000 models.
const MAX_FILES: usize = 2000;

/// One output file that is a model format repro understands.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Artifact {
    /// The file as the run's outputs name it (`model.txt`, `models/booster.ubj`).
    pub file: String,
    #[serde(flatten)]
    pub model: ModelFile,
}

/// Every output file of `run` that is a model format, in the order of the outputs and their
/// manifests. A file the store cannot give back is left out (fsck reports those).
pub fn understand_outputs(store: &Store, run: &StoredRun) -> Vec<Artifact> {
    let mut out = Vec::new();
    let mut looked = 0usize;
    for o in &run.record.outputs {
        let Some(s) = &o.snapshot else { continue };
        let Some(m) = store.objects.manifest(s).ok() else { continue };
        for e in &m.entries {
            if looked >= MAX_FILES {
                return out;
            }
            looked += 1;
            let file = match m.kind {
                SnapshotKind::File => o.path.clone(),
                _ => format!("{}/{}", o.path.trim_end_matches('/'), e.path),
            };
            let Ok(path) = store.objects.fetch(&e.digest) else { continue };
            if let Some(model) = understand_file(&path, &file) {
                out.push(Artifact { file, model });
            }
        }
    }
    out
}

/// One file on disk (`name` for its extension).
pub fn understand_file(path: &std::path::Path, name: &str) -> Option<ModelFile> {
    let mut f = std::fs::File::open(path).ok()?;
    let size = f.metadata().ok()?.len();
    let mut head = [0u8; 4];
    let n = f.read(&mut head).ok()?;
    if models::is_zip(&head[..n]) {
        f.rewind().ok()?;
        return models::identify_archive(std::io::BufReader::new(f));
    }
    f.rewind().ok()?;
    let mut bytes = Vec::new();
    f.take(if size <= WHOLE { WHOLE } else { HEAD }).read_to_end(&mut bytes).ok()?;
    models::identify(name, &bytes)
}
