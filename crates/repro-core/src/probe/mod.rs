//! What the in-process probe saw inside the command's Python processes: the files they
//! opened, the seeds they set, the packages they imported, the frameworks' determinism
//! settings at exit. `repro-exec` collects the per-process reports (`report`), judges them
//! against what was declared, and stores the result in the run record; the audit, the diff
//! and parity read it from there.

use serde::{Deserialize, Serialize};

use crate::Digest;

mod lint;
mod report;
#[cfg(test)]
mod tests;

pub use lint::{determinism_traps, Trap};
pub use report::{merge, parse_events, parse_files, parse_report, ProcessReport, RawFile};

/// Whether the probe ran, and if not, why.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProbeStatus {
    /// At least one Python process reported.
    #[default]
    Ran,
    /// `repro run --no-probe`.
    Disabled,
    /// No Python process ran (or none reported: `python -S`/`-I`/`-E`, `os._exit`, a kill).
    NoReport,
}

/// One rank of a distributed launch (`torchrun` sets `RANK`/`LOCAL_RANK`/`WORLD_SIZE`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rank {
    pub rank: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub local_rank: Option<u32>,
    /// The host the rank ran on (another machine's `repro run --join`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
}

/// A file the command opened, relative to the repository root when inside it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProbeFile {
    pub path: String,
    /// Order of first and last access among everything the processes opened.
    pub first: u64,
    pub last: u64,
}

/// A file read inside the repository or a declared data folder that no `--data` covers
/// and git does not hold.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct UndeclaredInput {
    pub path: String,
    /// Its content when the run ended (absent when it was gone or too large to hash).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub digest: Option<Digest>,
    pub size: u64,
    /// Whether it exists now (a replay's missing file is named by this).
    pub exists: bool,
}

/// A distribution the training imported.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct UsedPackage {
    pub name: String,
    pub version: String,
}

/// A seeding call the script made (`numpy.random.seed(7)`); `value` is null for an
/// unseeded generator (`numpy.random.default_rng()`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SeedCall {
    pub via: String,
    pub value: serde_json::Value,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rank: Option<u32>,
}

impl SeedCall {
    /// The value as a seed repro could have given, when it is one.
    pub fn as_u64(&self) -> Option<u64> {
        match &self.value {
            serde_json::Value::Number(n) => n.as_u64(),
            serde_json::Value::String(s) => s.parse().ok(),
            _ => None,
        }
    }

    pub fn describe(&self) -> String {
        let v = match &self.value {
            serde_json::Value::Null => "no seed".to_string(),
            serde_json::Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        let rank = self.rank.map(|r| format!(" (rank {r})")).unwrap_or_default();
        format!("{} {v}{rank}", self.via)
    }
}

/// How the script used the hyperparameters repro handed it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ParamsUse {
    /// Whether it opened the `REPRO_PARAMS` file (the merged params, overrides applied).
    pub repro_params_read: bool,
    /// The `--params` files it opened itself.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub files_read: Vec<String>,
    /// `--param` overrides nobody could have read: the script opened neither `REPRO_PARAMS`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub unread_overrides: Vec<String>,
}

/// PyTorch's settings at exit, as `torch` reported them.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct TorchState {
    pub version: String,
    pub cuda: Option<String>,
    pub cudnn: Option<u64>,
    pub cuda_available: Option<bool>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub devices: Vec<String>,
    pub deterministic_algorithms: Option<bool>,
    pub deterministic_warn_only: Option<bool>,
    pub cudnn_deterministic: Option<bool>,
    pub cudnn_benchmark: Option<bool>,
    pub matmul_allow_tf32: Option<bool>,
    pub cudnn_allow_tf32: Option<bool>,
    pub float32_matmul_precision: Option<String>,
    pub num_threads: Option<u64>,
    pub num_interop_threads: Option<u64>,
    pub initial_seed: Option<serde_json::Value>,
}

/// A BLAS/OpenMP pool as threadpoolctl saw it. Kept sorted (api, threads, version), because
/// threadpoolctl lists pools in the order the libraries were loaded, which varies between
/// runs of the same script.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct ThreadPool {
    pub api: String,
    pub num_threads: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
}

/// A `torch.utils.data.DataLoader` the script built.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DataLoaderInfo {
    pub num_workers: u64,
    pub worker_init_fn: bool,
    pub generator: bool,
}

/// The frameworks' determinism state at exit (the first process that imported each).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Frameworks {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub torch: Option<TorchState>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tensorflow: Option<serde_json::Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jax: Option<serde_json::Value>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub threadpools: Vec<ThreadPool>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dataloaders: Vec<DataLoaderInfo>,
}

/// The exception that ended a process, as its traceback's last line says it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProbeException {
    #[serde(rename = "type")]
    pub kind: String,
    pub message: String,
    /// The file an `OSError` names (a `FileNotFoundError`'s path).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filename: Option<String>,
}

impl ProbeException {
    pub fn describe(&self) -> String {
        if self.message.is_empty() {
            self.kind.clone()
        } else {
            format!("{}: {}", self.kind, self.message)
        }
    }
}

/// What the probe saw, judged against what was declared: part of the run record.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ProbeRecord {
    pub status: ProbeStatus,
    /// Python processes that reported (a launcher and its ranks count one each).
    pub processes: u32,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ranks: Vec<Rank>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub world_size: Option<u32>,
    /// Files read inside the repository, the working directory or a data folder.
    pub reads: Vec<ProbeFile>,
    /// Files written there.
    pub writes: Vec<ProbeFile>,
    /// How many distinct files the processes opened, the interpreter's own left out.
    pub files_opened: u64,
    pub undeclared_inputs: Vec<UndeclaredInput>,
    /// Undeclared inputs `--auto-data` snapshotted as inputs of the run.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub auto_data: Vec<String>,
    /// Files written that no `--output` covers.
    pub probable_outputs: Vec<String>,
    /// Distributions the processes imported, in name order.
    pub packages_used: Vec<UsedPackage>,
    pub seeds: Vec<SeedCall>,
    pub params: ParamsUse,
    pub frameworks: Frameworks,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exception: Option<ProbeException>,
    /// The probe's own problems (never shown to the script).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<String>,
}

impl ProbeRecord {
    /// The record of a run the probe did not watch.
    pub fn absent(status: ProbeStatus) -> Self {
        ProbeRecord { status, ..Default::default() }
    }

    /// The seeding calls that gave a seed (not an unseeded generator), in the order first seen.
    pub fn seeded_values(&self) -> Vec<&SeedCall> {
        self.seeds.iter().filter(|s| !s.value.is_null()).collect()
    }
}
