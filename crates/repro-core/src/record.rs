//! The run record: everything `repro run` captured, serialized as canonical JSON.
//! Its digest (the lineage digest) is what signatures, replays and bundles refer to.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::{Digest, RunId};

/// The record's schema version; bump when fields change meaning.
pub const RECORD_VERSION: u32 = 1;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RunStatus {
    /// The wrapper is alive and the command has not finished.
    Running,
    /// The command exited with status 0.
    Finished,
    /// The command exited with a non-zero status.
    Failed,
    /// The command was ended by a signal.
    Killed,
    /// repro itself died before it could record the end (e.g. `kill -9`).
    Interrupted,
}

impl RunStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            RunStatus::Running => "running",
            RunStatus::Finished => "finished",
            RunStatus::Failed => "failed",
            RunStatus::Killed => "killed",
            RunStatus::Interrupted => "interrupted",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "running" => RunStatus::Running,
            "finished" => RunStatus::Finished,
            "failed" => RunStatus::Failed,
            "killed" => RunStatus::Killed,
            "interrupted" => RunStatus::Interrupted,
            _ => return None,
        })
    }
}

/// What a replay concluded about the run it rebuilt.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    /// Every output bit-identical, metrics equal.
    Identical,
    /// Outputs differ in bytes, but a comparator or the metrics (within tolerance) vouch for them.
    Equivalent,
    /// Something differs that nothing vouches for.
    Differs,
}

impl Verdict {
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Identical => "identical",
            Verdict::Equivalent => "equivalent",
            Verdict::Differs => "differs",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "identical" => Verdict::Identical,
            "equivalent" => Verdict::Equivalent,
            "differs" => Verdict::Differs,
            _ => return None,
        })
    }

    /// Whether the replay reproduced the run.
    pub fn reproduced(self) -> bool {
        self != Verdict::Differs
    }
}

/// A replay of a run, as the audit sees it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReplaySummary {
    pub replay: RunId,
    pub verdict: Verdict,
    /// RFC 3339, UTC.
    pub at: String,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RunRecord {
    pub record_version: u32,
    pub id: RunId,
    pub name: Option<String>,
    pub status: RunStatus,
    pub exit_code: Option<i32>,
    /// The signal that ended the command, when it was killed.
    pub signal: Option<i32>,
    /// RFC 3339, UTC.
    pub started_at: String,
    pub ended_at: Option<String>,
    pub user: String,
    pub host: String,
    pub code: CodeState,
    pub script: ScriptInfo,
    pub environment: EnvironmentInfo,
    pub hardware: Hardware,
    pub inputs: Vec<DataRef>,
    pub params: Params,
    pub seed: Seed,
    pub outputs: Vec<OutputRef>,
    pub logs: Logs,
    /// Number of metric points stored with the run (the points live in the metadata store).
    pub metric_count: u64,
    /// Problems noticed while capturing that did not stop the run, for the audit and the user.
    pub notes: Vec<String>,
    /// The run this one replays (`repro replay`). Absent from the JSON of ordinary runs, so
    /// records written before the field existed keep their lineage digest.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replay_of: Option<RunId>,
    /// The head of the run's facts journal when its end was recorded (`repro-store`'s
    /// journal): every metric point, param, tag and input recorded until then, sealed by the
    /// lineage digest. Absent from records written before the journal.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub facts: Option<FactsHead>,
    /// What the in-process probe saw inside the command's Python processes. Absent from
    /// records written before the probe (and from tracking-only runs), so their lineage
    /// digest is unchanged.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub probe: Option<crate::probe::ProbeRecord>,
}

/// A run's journal head: its entry count and the last entry's hash.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FactsHead {
    pub seq: i64,
    pub hash: String,
}

/// The state of the source tree. `repo_root` is `None` outside a git repository.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct CodeState {
    pub repo_root: Option<String>,
    pub commit: Option<String>,
    pub branch: Option<String>,
    pub remote: Option<String>,
    pub dirty: bool,
    /// `git diff --binary HEAD` of tracked files, stored as an object.
    pub diff: Option<Digest>,
    pub diff_files: Vec<String>,
    /// Untracked, non-ignored files stored as objects.
    pub untracked: Vec<FileEntry>,
    /// Untracked files seen but not stored (too large), with the reason.
    pub untracked_skipped: Vec<SkippedFile>,
    /// Why the code state could not be captured, when it could not.
    pub error: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SkippedFile {
    pub path: String,
    pub size: u64,
    pub reason: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ScriptKind {
    PythonFile,
    PythonModule,
    PythonInline,
    Executable,
    Command,
    /// A Jupyter notebook (`repro run nb.ipynb`, `jupyter nbconvert --execute`): its
    /// `digest` is that of its code cells' sources, `file_digest` that of the whole file.
    Notebook,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ScriptInfo {
    pub argv: Vec<String>,
    /// Working directory relative to the repository root ("." at the root); absolute outside a repo.
    pub workdir: String,
    pub kind: ScriptKind,
    /// The script file, relative to the repository root when inside it.
    pub path: Option<String>,
    pub digest: Option<Digest>,
    /// Some(true): git tracks it and it is unchanged; Some(false): untracked or modified.
    pub tracked_unchanged: Option<bool>,
    pub git_state: Option<String>,
    /// The program that started the script (`torchrun`, `accelerate`, `deepspeed`,
    /// `torch.distributed.run`, `jupyter nbconvert`, `nbclient`), when it was not run directly.
    /// The fields below are left out of the JSON when empty, so records written before them
    /// keep their lineage digest.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub launcher: Option<String>,
    /// A notebook's whole `.ipynb` as stored (outputs, metadata and all); `digest` is of its
    /// code cells only, so re-saved outputs are not a code change.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file_digest: Option<Digest>,
    /// A notebook's uncommitted changes outside the notebook itself: the digest (not an
    /// object) of `git diff HEAD` without the notebook's file, absent when there are none.
    /// With it, a diff of two runs can tell a re-saved notebook from a changed repository.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub diff_elsewhere: Option<Digest>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct EnvironmentInfo {
    pub declared: Option<DeclaredEnvironment>,
    pub python: Option<PythonEnvironment>,
    pub os: OsInfo,
    /// Determinism-relevant variables as the command saw them (unset ones are absent).
    pub variables: BTreeMap<String, String>,
    /// Which of `variables` repro set because they were unset.
    pub set_by_repro: Vec<String>,
    /// The registered environment the run was tied to (`repro run --env NAME:V`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub registered: Option<String>,
    /// How the interpreter differed from the registered environment, when the run went
    /// ahead anyway (`--allow-env-drift`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub drift: Vec<String>,
    /// The container the run happened in, when repro found one or was told its image.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container: Option<crate::container::ContainerInfo>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PinStatus {
    Pinned,
    Loose,
    Unpinned,
}

impl DeclaredRequirement {
    pub fn status_str(&self) -> &'static str {
        match self.status {
            PinStatus::Pinned => "pinned",
            PinStatus::Loose => "loose",
            PinStatus::Unpinned => "unpinned",
        }
    }
}

/// One declared dependency in a normalized form, whatever file declared it.
///
/// The fields after `origin` were added later; each is left out of the JSON when empty, so
/// records written before them serialize to the same bytes and keep their lineage digest.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DeclaredRequirement {
    /// The PEP 503 normalized name (`scikit-learn`); a conda package's name as conda spells
    /// it, lowercased (conda does not treat `_` and `-` alike); for a bare path or URL whose
    /// name cannot be told, the path or URL as written.
    pub name: String,
    /// The version constraint as written (`==1.4.2`, `>=1.2`, `=1.26.4=py311_0`, empty when none).
    pub spec: String,
    pub status: PinStatus,
    /// Where it came from: `file:line`.
    pub origin: String,
    /// Extras asked for (`requests[socks]`), normalized and sorted.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub extras: Vec<String>,
    /// The PEP 508 environment marker, normalized (`python_full_version >= '3.9'`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub marker: Option<String>,
    /// A direct URL, local path or VCS reference (`git+https://…@<commit>`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// Allowed artifact hashes, `algorithm:hex` (`sha256:…`, conda's `md5:…`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub hashes: Vec<String>,
    /// The exact version, when pinned to one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// The conda channel (`conda-forge`), when the file names one for this package.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channel: Option<String>,
    /// The conda build string (`py311h64a7726_0`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub build: Option<String>,
    /// The group it belongs to: an optional-dependency or dependency group, `develop` in a
    /// Pipfile.lock, a lock file's category.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    /// `conda` or `pip`, in files that mix the two (environment.yml, conda-lock.yml).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub manager: Option<String>,
}

impl DeclaredRequirement {
    /// A requirement with only the fields every format has; the others empty.
    pub fn new(name: impl Into<String>, spec: impl Into<String>, status: PinStatus, origin: impl Into<String>) -> Self {
        DeclaredRequirement {
            name: name.into(),
            spec: spec.into(),
            status,
            origin: origin.into(),
            extras: Vec::new(),
            marker: None,
            url: None,
            hashes: Vec::new(),
            version: None,
            channel: None,
            build: None,
            group: None,
            manager: None,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DeclaredEnvironment {
    /// Path relative to the repository root (or as given).
    pub path: String,
    /// requirements, conda, pyproject, uv-lock, poetry-lock, pipfile-lock, conda-lock.
    pub format: String,
    pub digest: Digest,
    /// Companion files read with it (an included requirements file, a lock next to pyproject.toml).
    pub companions: Vec<FileEntry>,
    pub requirements: Vec<DeclaredRequirement>,
    /// What was removed from the file(s) before they were stored (`file:line: a password in
    /// the URL's user info`): the stored copy, and `digest`, are of the redacted text. Left
    /// out of the JSON when empty, so records written before it keep their lineage digest.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub redacted: Vec<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct InstalledPackage {
    pub name: String,
    pub version: String,
    /// pip, conda, uv …, when the metadata says.
    pub installer: Option<String>,
    /// Conda build string.
    pub build: Option<String>,
    /// A direct URL or editable path (PEP 610), when installed from one.
    pub url: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PythonEnvironment {
    pub executable: String,
    /// venv, conda, system.
    pub kind: String,
    pub prefix: String,
    pub version: Option<String>,
    pub site_dirs: Vec<String>,
    pub packages: Vec<InstalledPackage>,
    /// How the interpreter was found (`command`, `VIRTUAL_ENV`, `CONDA_PREFIX`, `PATH`).
    pub found_by: String,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct OsInfo {
    pub name: String,
    pub kernel: String,
    pub arch: String,
    pub libc: Option<String>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Hardware {
    pub cpu_model: Option<String>,
    /// Cores this process may use (affinity-aware).
    pub usable_cores: u32,
    /// Logical CPUs the machine has.
    pub logical_cpus: u32,
    pub memory_bytes: Option<u64>,
    /// The CPU flags that change numeric code paths (SIMD width, FMA).
    pub cpu_flags: Vec<String>,
    pub gpus: Vec<Gpu>,
    /// `nvidia-smi` not found, failed, or found GPUs.
    pub gpu_probe: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Gpu {
    pub model: String,
    pub driver: Option<String>,
    pub cuda: Option<String>,
    pub memory: Option<String>,
}

/// One file in a manifest or in the list of untracked files.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct FileEntry {
    pub path: String,
    pub size: u64,
    pub mode: u32,
    pub digest: Digest,
}

/// An input of the run: one data snapshot.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DataRef {
    /// The path as it is relative to the repository root (absolute when outside it).
    pub path: String,
    pub snapshot: Digest,
    /// The manifest object (its digest equals `snapshot`).
    pub files: u64,
    pub bytes: u64,
    /// Contents not copied into the store: only digests were recorded.
    pub reference: bool,
    /// `name:version` of the dataset this snapshot is a version of.
    pub dataset: Option<String>,
}

/// A declared output: snapshotted after the run, or recorded missing.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct OutputRef {
    pub path: String,
    pub snapshot: Option<Digest>,
    pub files: u64,
    pub bytes: u64,
    pub missing: bool,
    /// A file that existed before the run and was not rewritten by it (a stale artifact).
    #[serde(default)]
    pub predates_run: bool,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Params {
    /// Flattened `a.b.c` → JSON value, after merging files then `--param` (later wins).
    pub values: BTreeMap<String, serde_json::Value>,
    /// Params files read, stored as objects.
    pub files: Vec<FileEntry>,
    /// Params the command logged itself (through `REPRO_METRICS`).
    pub logged: BTreeMap<String, String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Seed {
    pub value: u64,
    /// True when repro generated it because none was given.
    pub generated: bool,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Logs {
    pub stdout: Option<Digest>,
    pub stderr: Option<Digest>,
    pub stdout_bytes: u64,
    pub stderr_bytes: u64,
}

/// Why a run created through the MLflow tracking API has no capture.
pub const TRACKING_ONLY: &str =
    "created through the MLflow tracking API: repro captured nothing (run the script under `repro run` to capture it)";

impl RunRecord {
    /// A run that a tracking client created (`POST /runs/create`): params, metrics and tags
    /// arrive over HTTP, but no code, environment, data or seed was captured, and the
    /// audit says so.
    pub fn tracking_only(id: RunId, name: Option<String>, user: String, host: String, started_at: String) -> Self {
        RunRecord {
            record_version: RECORD_VERSION,
            id,
            name,
            status: RunStatus::Running,
            exit_code: None,
            signal: None,
            started_at,
            ended_at: None,
            user,
            host,
            code: CodeState { error: Some(TRACKING_ONLY.into()), ..Default::default() },
            script: ScriptInfo {
                argv: Vec::new(),
                workdir: String::new(),
                kind: ScriptKind::Command,
                path: None,
                digest: None,
                tracked_unchanged: None,
                git_state: None,
                launcher: None,
                file_digest: None,
                diff_elsewhere: None,
            },
            environment: EnvironmentInfo::default(),
            hardware: Hardware::default(),
            inputs: Vec::new(),
            params: Params::default(),
            seed: Seed { value: 0, generated: true },
            outputs: Vec::new(),
            logs: Logs::default(),
            metric_count: 0,
            notes: vec![TRACKING_ONLY.into()],
            replay_of: None,
            facts: None,
            probe: None,
        }
    }

    /// The canonical JSON of the record: keys sorted at every level, no whitespace.
    pub fn canonical_json(&self) -> Vec<u8> {
        // Going through `Value` sorts map keys (serde_json's Map is a BTreeMap here),
        // so the bytes do not depend on struct field order.
        let value = serde_json::to_value(self).expect("a run record always serializes");
        serde_json::to_vec(&value).expect("a JSON value always serializes")
    }

    /// The lineage digest: BLAKE3 of the canonical JSON.
    pub fn lineage(&self) -> Digest {
        Digest::of_bytes(&self.canonical_json())
    }

    /// Every object this record refers to directly (manifests count; their entries are
    /// listed by the store when it expands snapshots).
    pub fn referenced_objects(&self) -> Vec<Digest> {
        let mut out = Vec::new();
        out.extend(self.code.diff.clone());
        out.extend(self.code.untracked.iter().map(|f| f.digest.clone()));
        out.extend(self.script.digest.clone());
        out.extend(self.script.file_digest.clone());
        if let Some(d) = &self.environment.declared {
            out.push(d.digest.clone());
            out.extend(d.companions.iter().map(|f| f.digest.clone()));
        }
        out.extend(self.params.files.iter().map(|f| f.digest.clone()));
        out.extend(self.logs.stdout.clone());
        out.extend(self.logs.stderr.clone());
        out.extend(self.inputs.iter().map(|i| i.snapshot.clone()));
        out.extend(self.outputs.iter().filter_map(|o| o.snapshot.clone()));
        out.sort();
        out.dedup();
        out
    }
}

/// A run record with every ingredient, for the tests of the modules that read records.
#[cfg(test)]
pub(crate) mod sample {
    use std::collections::BTreeMap;

    use super::*;

    pub(crate) fn package(name: &str, version: &str) -> InstalledPackage {
        InstalledPackage { name: name.into(), version: version.into(), installer: None, build: None, url: None }
    }

    pub(crate) fn requirement(name: &str, spec: &str, status: PinStatus, line: u32) -> DeclaredRequirement {
        DeclaredRequirement::new(name, spec, status, format!("requirements.txt:{line}"))
    }

    pub(crate) fn record() -> RunRecord {
        let d = Digest::of_bytes(b"x");
        RunRecord {
            record_version: RECORD_VERSION,
            id: RunId::from_bytes([1; 16]),
            name: Some("r".into()),
            status: RunStatus::Finished,
            exit_code: Some(0),
            signal: None,
            started_at: "2026-01-01T00:00:00.000Z".into(),
            ended_at: Some("2026-01-01T00:00:01.000Z".into()),
            user: "u".into(),
            host: "h".into(),
            code: CodeState {
                repo_root: Some("/repo".into()),
                commit: Some("0123456789abcdef0123".into()),
                branch: Some("main".into()),
                ..Default::default()
            },
            script: ScriptInfo {
                argv: vec!["/v/bin/python".into(), "train.py".into()],
                workdir: ".".into(),
                kind: ScriptKind::PythonFile,
                path: Some("train.py".into()),
                digest: Some(Digest::of_bytes(b"print(1)")),
                tracked_unchanged: Some(true),
                git_state: Some("tracked and unchanged".into()),
                launcher: None,
                file_digest: None,
                diff_elsewhere: None,
            },
            environment: EnvironmentInfo {
                declared: Some(DeclaredEnvironment {
                    path: "requirements.txt".into(),
                    format: "requirements".into(),
                    digest: Digest::of_bytes(b"numpy==1.26.4\nscikit-learn>=1.0\n"),
                    companions: vec![],
                    requirements: vec![
                        requirement("numpy", "==1.26.4", PinStatus::Pinned, 1),
                        requirement("scikit-learn", ">=1.0", PinStatus::Loose, 2),
                        requirement("threadpoolctl", "==3.5.0", PinStatus::Pinned, 3),
                    ],
                    redacted: vec![],
                }),
                python: Some(PythonEnvironment {
                    executable: "/v/bin/python".into(),
                    kind: "venv".into(),
                    prefix: "/v".into(),
                    version: Some("3.11.7".into()),
                    site_dirs: vec!["/v/lib/python3.11/site-packages".into()],
                    packages: vec![
                        package("numpy", "1.26.4"),
                        package("scikit-learn", "1.4.2"),
                        package("threadpoolctl", "3.5.0"),
                    ],
                    found_by: "command".into(),
                }),
                os: OsInfo {
                    name: "Linux".into(),
                    kernel: "6.1".into(),
                    arch: "x86_64".into(),
                    libc: Some("glibc 2.36".into()),
                },
                variables: BTreeMap::from([
                    ("OMP_NUM_THREADS".to_string(), "2".to_string()),
                    ("PYTHONHASHSEED".to_string(), "42".to_string()),
                    ("VIRTUAL_ENV".to_string(), "/v".to_string()),
                ]),
                set_by_repro: vec!["OMP_NUM_THREADS".into()],
                ..Default::default()
            },
            hardware: Hardware {
                cpu_model: Some("cpu".into()),
                usable_cores: 2,
                logical_cpus: 2,
                memory_bytes: Some(8 << 30),
                cpu_flags: vec!["avx2".into(), "fma".into()],
                gpus: vec![],
                gpu_probe: "nvidia-smi not found".into(),
            },
            inputs: vec![DataRef {
                path: "data/train.csv".into(),
                snapshot: d.clone(),
                files: 1,
                bytes: 8,
                reference: false,
                dataset: None,
            }],
            params: Params {
                values: BTreeMap::from([("lr".to_string(), serde_json::json!(0.1))]),
                ..Default::default()
            },
            seed: Seed { value: 42, generated: false },
            outputs: vec![OutputRef {
                path: "model.pkl".into(),
                snapshot: Some(d),
                files: 1,
                bytes: 8,
                missing: false,
                predates_run: false,
            }],
            logs: Logs::default(),
            metric_count: 1,
            notes: vec![],
            replay_of: None,
            facts: None,
            probe: None,
        }
    }
}
