//! OpenLineage 2-0-2 run events for a run record: what a data catalogue (Marquez, or any
//! OpenLineage consumer) is told when a run starts and ends. Pure: the caller gives the time
//! and delivers the event (`repro-exec`'s `openlineage` module).
//!
//! A run is one OpenLineage run of a job named after its script, in the namespace
//! `[openlineage] namespace` configures. Its inputs are its data snapshots and its outputs
//! its declared outputs, each a dataset named `file://HOST` + absolute path with the
//! snapshot's digest as the standard `version` facet and in the `repro_snapshot` facet.
//! Standard facets are used where they fit (`processing_engine`, `errorMessage`,
//! `sourceCodeLocation`, `jobType`, `version`); the rest is in `repro_*` facets, each with
//! the `_producer` and `_schemaURL` the spec's `BaseFacet` requires. docs/uris.md writes
//! down every field of the `repro_*` facets.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::record::{RunRecord, RunStatus, ScriptKind};
use crate::Digest;

/// The version of repro that writes the events.
pub const REPRO_VERSION: &str = env!("CARGO_PKG_VERSION");

/// `producer` and every facet's `_producer`: repro and its version. A URN, as every URI repro
/// defines (docs/uris.md): it names no host, so nothing has to be served for it to stay valid.
pub const PRODUCER: &str = concat!("urn:repro:openlineage:producer:", env!("CARGO_PKG_VERSION"));

/// The `schemaURL` of every event: the OpenLineage spec version the events follow.
pub const SCHEMA_URL: &str = "https://openlineage.io/spec/2-0-2/OpenLineage.json#/$defs/RunEvent";

/// The namespace of a job when `[openlineage] namespace` is not set.
pub const DEFAULT_NAMESPACE: &str = "repro";

const PROCESSING_ENGINE_SCHEMA: &str =
    "https://openlineage.io/spec/facets/1-1-1/ProcessingEngineRunFacet.json#/$defs/ProcessingEngineRunFacet";
const ERROR_MESSAGE_SCHEMA: &str =
    "https://openlineage.io/spec/facets/1-0-1/ErrorMessageRunFacet.json#/$defs/ErrorMessageRunFacet";
const SOURCE_CODE_LOCATION_SCHEMA: &str =
    "https://openlineage.io/spec/facets/1-1-0/SourceCodeLocationJobFacet.json#/$defs/SourceCodeLocationJobFacet";
const JOB_TYPE_SCHEMA: &str = "https://openlineage.io/spec/facets/2-0-4/JobTypeJobFacet.json#/$defs/JobTypeJobFacet";
const DATASET_VERSION_SCHEMA: &str =
    "https://openlineage.io/spec/facets/1-0-1/DatasetVersionDatasetFacet.json#/$defs/DatasetVersionDatasetFacet";

/// The `_schemaURL` of a `repro_*` facet: `urn:repro:openlineage:facet:NAME:v1`.
pub fn facet_schema(name: &str) -> String {
    format!("urn:repro:openlineage:facet:{name}:v1")
}

/// The state transition an event reports.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum EventType {
    Start,
    Running,
    Complete,
    Abort,
    Fail,
    Other,
}

impl EventType {
    /// The event that ends a run in this state: COMPLETE for a command that exited 0, FAIL for
    /// one that exited otherwise, ABORT for one ended by a signal or a repro that died.
    pub fn ending(status: RunStatus) -> EventType {
        match status {
            RunStatus::Finished => EventType::Complete,
            RunStatus::Failed => EventType::Fail,
            RunStatus::Killed | RunStatus::Interrupted => EventType::Abort,
            RunStatus::Running => EventType::Running,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            EventType::Start => "START",
            EventType::Running => "RUNNING",
            EventType::Complete => "COMPLETE",
            EventType::Abort => "ABORT",
            EventType::Fail => "FAIL",
            EventType::Other => "OTHER",
        }
    }
}

/// One OpenLineage `RunEvent`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RunEvent {
    #[serde(rename = "eventType")]
    pub event_type: EventType,
    /// RFC 3339, UTC.
    #[serde(rename = "eventTime")]
    pub event_time: String,
    pub producer: String,
    #[serde(rename = "schemaURL")]
    pub schema_url: String,
    pub run: Run,
    pub job: Job,
    pub inputs: Vec<Dataset>,
    pub outputs: Vec<Dataset>,
}

/// A facet: its own fields, and the `_producer` and `_schemaURL` every facet carries.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Facet<T> {
    #[serde(rename = "_producer")]
    pub producer: String,
    #[serde(rename = "_schemaURL")]
    pub schema_url: String,
    #[serde(flatten)]
    pub fields: T,
}

impl<T> Facet<T> {
    fn standard(schema_url: &str, fields: T) -> Self {
        Facet { producer: PRODUCER.to_string(), schema_url: schema_url.to_string(), fields }
    }

    fn repro(name: &str, fields: T) -> Self {
        Facet { producer: PRODUCER.to_string(), schema_url: facet_schema(name), fields }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Run {
    /// The repro run id as a UUID (8-4-4-4-12): OpenLineage requires the `uuid` format.
    #[serde(rename = "runId")]
    pub run_id: String,
    pub facets: RunFacets,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct RunFacets {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub processing_engine: Option<Facet<ProcessingEngine>>,
    #[serde(rename = "errorMessage", default, skip_serializing_if = "Option::is_none")]
    pub error_message: Option<Facet<ErrorMessage>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub repro_run: Option<Facet<ReproRun>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub repro_source_code: Option<Facet<ReproSourceCode>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub repro_environment: Option<Facet<ReproEnvironment>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub repro_seed: Option<Facet<ReproSeed>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub repro_params: Option<Facet<ReproParams>>,
}

/// The standard `processing_engine` run facet.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ProcessingEngine {
    pub version: String,
    pub name: String,
    #[serde(rename = "openlineageAdapterVersion")]
    pub openlineage_adapter_version: String,
}

/// The standard `errorMessage` run facet (FAIL and ABORT events).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ErrorMessage {
    pub message: String,
    #[serde(rename = "programmingLanguage")]
    pub programming_language: String,
}

/// `repro_run`: the run as repro knows it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ReproRun {
    /// repro's own id (32 hex), what `repro show` takes.
    pub run_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    pub status: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signal: Option<i32>,
    pub user: String,
    pub host: String,
    /// The command line, credentials in URLs masked (`https://***@host`).
    pub command: Vec<String>,
    /// The lineage digest of the recorded run (end events only: the record is sealed then).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lineage: Option<String>,
    /// The run this one replays (`repro replay`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replay_of: Option<String>,
}

/// `repro_source_code`: the code the run ran.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ReproSourceCode {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub commit: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub branch: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remote: Option<String>,
    pub dirty: bool,
    /// The digest of the stored uncommitted diff (`git diff --binary HEAD`), when dirty.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub diff_digest: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub changed_files: Vec<String>,
    pub untracked_files: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub script_path: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub script_digest: Option<String>,
}

/// `repro_environment`: the interpreter, the packages, the declared file and the platform.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ReproEnvironment {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub python_version: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interpreter_kind: Option<String>,
    pub package_count: u64,
    /// BLAKE3 of the installed set as `name==version` lines, sorted: equal digests, equal sets.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub packages_digest: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub declared_file: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub declared_format: Option<String>,
    /// The digest of the declared environment file (the lock) as stored.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub declared_digest: Option<String>,
    /// A registered environment the run was tied to (`NAME:V`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub registered: Option<String>,
    pub os: String,
    pub kernel: String,
    pub arch: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub libc: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container_image: Option<String>,
}

/// `repro_seed`: the random seed the run was given.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ReproSeed {
    pub value: u64,
    /// True when repro generated it because none was given.
    pub generated: bool,
}

/// `repro_params`: the hyperparameters, flattened (`model.n_estimators`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ReproParams {
    pub values: BTreeMap<String, serde_json::Value>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Job {
    pub namespace: String,
    pub name: String,
    pub facets: JobFacets,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct JobFacets {
    #[serde(rename = "sourceCodeLocation", default, skip_serializing_if = "Option::is_none")]
    pub source_code_location: Option<Facet<SourceCodeLocation>>,
    #[serde(rename = "jobType", default, skip_serializing_if = "Option::is_none")]
    pub job_type: Option<Facet<JobType>>,
}

/// The standard `sourceCodeLocation` job facet: where the script lives in git.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SourceCodeLocation {
    #[serde(rename = "type")]
    pub kind: String,
    /// The remote as a URI (an scp-style `git@host:path` becomes `ssh://git@host/path`).
    pub url: String,
    pub repo_url: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub branch: Option<String>,
}

/// The standard `jobType` job facet.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct JobType {
    pub processing_type: String,
    pub integration: String,
    pub job_type: String,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Dataset {
    /// `file://HOST`: the machine the files were read on.
    pub namespace: String,
    /// The absolute path.
    pub name: String,
    pub facets: DatasetFacets,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct DatasetFacets {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<Facet<DatasetVersion>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub repro_snapshot: Option<Facet<ReproSnapshot>>,
}

/// The standard `version` dataset facet: the snapshot's digest.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DatasetVersion {
    #[serde(rename = "datasetVersion")]
    pub dataset_version: String,
}

/// `repro_snapshot`: the snapshot repro took of a dataset.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ReproSnapshot {
    /// The snapshot manifest's digest, as `repro show` reports it.
    pub digest: String,
    pub files: u64,
    pub bytes: u64,
    /// The path as recorded: relative to the repository root when inside it.
    pub path: String,
    /// Whether the content is in the store (false: reference-only, digests recorded).
    pub stored: bool,
    /// `name:version` of the dataset the snapshot is a version of (inputs).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dataset: Option<String>,
}

/// An OpenLineage run id for a repro run id: its 32 hex digits as a UUID, 8-4-4-4-12.
pub fn run_uuid(run_id: &str) -> String {
    if run_id.len() != 32 || !run_id.is_ascii() {
        return run_id.to_string();
    }
    format!("{}-{}-{}-{}-{}", &run_id[..8], &run_id[8..12], &run_id[12..16], &run_id[16..20], &run_id[20..])
}

/// The job's name: the script (`train.py`, as recorded relative to the repository root), or
/// the program the command ran when there is no script file (`python -c`, a plain command).
pub fn job_name(record: &RunRecord) -> String {
    if let Some(p) = record.script.path.as_deref().filter(|p| !p.is_empty()) {
        return p.to_string();
    }
    let program = record.script.argv.first().map(String::as_str).unwrap_or("");
    let base = program.rsplit('/').next().unwrap_or(program);
    if base.is_empty() {
        "command".to_string()
    } else {
        base.to_string()
    }
}

/// The START event: sent once the inputs are recorded, before the command starts. `outputs`
/// are the declared outputs' recorded paths (not produced yet, so without versions).
pub fn start_event(record: &RunRecord, namespace: &str, event_time: &str, outputs: &[String]) -> RunEvent {
    let mut event = base_event(record, namespace, EventType::Start, event_time.to_string());
    event.outputs = outputs
        .iter()
        .map(|p| Dataset {
            namespace: dataset_namespace(record),
            name: absolute(record, p),
            facets: Default::default(),
        })
        .collect();
    event
}

/// The event that ends the run, from its final record: COMPLETE, FAIL or ABORT (see
/// [`EventType::ending`]), at the recorded end, with the outputs' digests.
pub fn end_event(record: &RunRecord, namespace: &str) -> RunEvent {
    let event_type = EventType::ending(record.status);
    let time = record.ended_at.clone().unwrap_or_else(|| record.started_at.clone());
    let mut event = base_event(record, namespace, event_type, time);
    if let Some(facet) = event.run.facets.repro_run.as_mut() {
        facet.fields.lineage = Some(record.lineage().to_string());
    }
    if matches!(event_type, EventType::Fail | EventType::Abort) {
        event.run.facets.error_message = Some(error_facet(record, &failure_message(record)));
    }
    event.outputs = record
        .outputs
        .iter()
        .filter(|o| !o.missing)
        .filter_map(|o| {
            let digest = o.snapshot.as_ref()?;
            Some(dataset(record, &o.path, digest, o.files, o.bytes, true, None))
        })
        .collect();
    event
}

/// A FAIL event for a run repro could not finish recording (`message` says why): the record
/// as it was when the run started.
pub fn failed_event(record: &RunRecord, namespace: &str, event_time: &str, message: &str) -> RunEvent {
    let mut event = base_event(record, namespace, EventType::Fail, event_time.to_string());
    event.run.facets.error_message = Some(error_facet(record, message));
    event
}

fn base_event(record: &RunRecord, namespace: &str, event_type: EventType, event_time: String) -> RunEvent {
    RunEvent {
        event_type,
        event_time,
        producer: PRODUCER.to_string(),
        schema_url: SCHEMA_URL.to_string(),
        run: Run { run_id: run_uuid(record.id.as_str()), facets: run_facets(record) },
        job: Job { namespace: namespace.to_string(), name: job_name(record), facets: job_facets(record) },
        inputs: record
            .inputs
            .iter()
            .map(|i| dataset(record, &i.path, &i.snapshot, i.files, i.bytes, !i.reference, i.dataset.clone()))
            .collect(),
        outputs: Vec::new(),
    }
}

fn run_facets(record: &RunRecord) -> RunFacets {
    let code = &record.code;
    let env = &record.environment;
    let python = env.python.as_ref();
    let packages_digest = python.filter(|p| !p.packages.is_empty()).map(|p| {
        let mut lines: Vec<String> = p.packages.iter().map(|x| format!("{}=={}\n", x.name, x.version)).collect();
        lines.sort();
        Digest::of_bytes(lines.concat().as_bytes()).to_string()
    });
    RunFacets {
        processing_engine: Some(Facet::standard(
            PROCESSING_ENGINE_SCHEMA,
            ProcessingEngine {
                version: REPRO_VERSION.to_string(),
                name: "repro".to_string(),
                openlineage_adapter_version: REPRO_VERSION.to_string(),
            },
        )),
        error_message: None,
        repro_run: Some(Facet::repro(
            "repro_run",
            ReproRun {
                run_id: record.id.to_string(),
                name: record.name.clone(),
                status: record.status.as_str().to_string(),
                exit_code: record.exit_code,
                signal: record.signal,
                user: record.user.clone(),
                host: record.host.clone(),
                // A catalogue is read by more people than the store: URL credentials are masked.
                command: record.script.argv.iter().map(|a| crate::secrets::mask_text(a).into_owned()).collect(),
                lineage: None,
                replay_of: record.replay_of.as_ref().map(|r| r.to_string()),
            },
        )),
        repro_source_code: Some(Facet::repro(
            "repro_source_code",
            ReproSourceCode {
                commit: code.commit.clone(),
                branch: code.branch.clone(),
                remote: code.remote.clone(),
                dirty: code.dirty,
                diff_digest: code.diff.as_ref().map(|d| d.to_string()),
                changed_files: code.diff_files.clone(),
                untracked_files: code.untracked.len() as u64,
                script_path: record.script.path.clone(),
                script_digest: record.script.digest.as_ref().map(|d| d.to_string()),
            },
        )),
        repro_environment: Some(Facet::repro(
            "repro_environment",
            ReproEnvironment {
                python_version: python.and_then(|p| p.version.clone()),
                interpreter_kind: python.map(|p| p.kind.clone()),
                package_count: python.map_or(0, |p| p.packages.len() as u64),
                packages_digest,
                declared_file: env.declared.as_ref().map(|d| d.path.clone()),
                declared_format: env.declared.as_ref().map(|d| d.format.clone()),
                declared_digest: env.declared.as_ref().map(|d| d.digest.to_string()),
                registered: env.registered.clone(),
                os: env.os.name.clone(),
                kernel: env.os.kernel.clone(),
                arch: env.os.arch.clone(),
                libc: env.os.libc.clone(),
                container_image: env.container.as_ref().and_then(|c| c.image.clone()),
            },
        )),
        repro_seed: Some(Facet::repro(
            "repro_seed",
            ReproSeed { value: record.seed.value, generated: record.seed.generated },
        )),
        repro_params: (!record.params.values.is_empty())
            .then(|| Facet::repro("repro_params", ReproParams { values: record.params.values.clone() })),
    }
}

fn job_facets(record: &RunRecord) -> JobFacets {
    let code = &record.code;
    let source_code_location = match (&code.remote, &code.commit) {
        (Some(remote), Some(_)) => remote_uri(remote).map(|url| {
            Facet::standard(
                SOURCE_CODE_LOCATION_SCHEMA,
                SourceCodeLocation {
                    kind: "git".to_string(),
                    url: url.clone(),
                    repo_url: url,
                    path: record.script.path.clone(),
                    version: code.commit.clone(),
                    branch: code.branch.clone(),
                },
            )
        }),
        _ => None,
    };
    JobFacets {
        source_code_location,
        job_type: Some(Facet::standard(
            JOB_TYPE_SCHEMA,
            JobType {
                processing_type: "BATCH".to_string(),
                integration: "REPRO".to_string(),
                job_type: "JOB".to_string(),
            },
        )),
    }
}

/// A git remote as a URI: a URL as it is; scp-style `user@host:path` as `ssh://user@host/path`;
/// anything else (a local path) is not a location a catalogue can follow: `None`.
pub fn remote_uri(remote: &str) -> Option<String> {
    let remote = remote.trim();
    if let Some((scheme, rest)) = remote.split_once("://") {
        let scheme_ok = scheme.starts_with(|c: char| c.is_ascii_alphabetic())
            && scheme.chars().all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c));
        return (scheme_ok && !rest.is_empty() && !remote.contains(char::is_whitespace)).then(|| remote.to_string());
    }
    let (authority, path) = remote.split_once(':')?;
    let ok = !authority.is_empty()
        && !path.is_empty()
        && !authority.contains('/')
        && !remote.contains(char::is_whitespace)
        && !path.starts_with("//");
    ok.then(|| format!("ssh://{authority}/{}", path.trim_start_matches('/')))
}

fn error_facet(record: &RunRecord, message: &str) -> Facet<ErrorMessage> {
    let python = matches!(
        record.script.kind,
        ScriptKind::PythonFile | ScriptKind::PythonModule | ScriptKind::PythonInline | ScriptKind::Notebook
    ) || record.probe.as_ref().is_some_and(|p| p.exception.is_some());
    Facet::standard(
        ERROR_MESSAGE_SCHEMA,
        ErrorMessage {
            message: message.to_string(),
            programming_language: if python { "python" } else { "shell" }.to_string(),
        },
    )
}

/// What ended a run that did not finish: the exception the probe saw, else the exit.
fn failure_message(record: &RunRecord) -> String {
    let exit = match (record.signal, record.exit_code) {
        (Some(sig), _) => format!("the command was ended by signal {sig}"),
        (None, Some(code)) => format!("the command exited with status {code}"),
        (None, None) if record.status == RunStatus::Interrupted => {
            "repro stopped before recording the run's end (killed or crashed); repro fsck found it".to_string()
        }
        (None, None) => format!("the run ended {}", record.status.as_str()),
    };
    match record.probe.as_ref().and_then(|p| p.exception.as_ref()) {
        Some(e) => format!("{exit}: {}", e.describe()),
        None => exit,
    }
}

fn dataset_namespace(record: &RunRecord) -> String {
    format!("file://{}", record.host)
}

/// A recorded path made absolute with the repository root (already absolute outside it).
fn absolute(record: &RunRecord, path: &str) -> String {
    match record.code.repo_root.as_deref() {
        Some(root) if !path.starts_with('/') => {
            let rel = path.trim_start_matches("./");
            if rel.is_empty() || rel == "." {
                root.to_string()
            } else {
                format!("{}/{rel}", root.trim_end_matches('/'))
            }
        }
        _ => path.to_string(),
    }
}

fn dataset(
    record: &RunRecord,
    path: &str,
    digest: &Digest,
    files: u64,
    bytes: u64,
    stored: bool,
    name: Option<String>,
) -> Dataset {
    Dataset {
        namespace: dataset_namespace(record),
        name: absolute(record, path),
        facets: DatasetFacets {
            version: Some(Facet::standard(
                DATASET_VERSION_SCHEMA,
                DatasetVersion { dataset_version: digest.to_string() },
            )),
            repro_snapshot: Some(Facet::repro(
                "repro_snapshot",
                ReproSnapshot {
                    digest: digest.to_string(),
                    files,
                    bytes,
                    path: path.to_string(),
                    stored,
                    dataset: name,
                },
            )),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::sample;

    #[test]
    fn run_ids_are_uuids() {
        let id = "0123456789abcdef0123456789abcdef";
        assert_eq!(run_uuid(id), "01234567-89ab-cdef-0123-456789abcdef");
        assert_eq!(run_uuid(id).replace('-', ""), id);
    }

    #[test]
    fn a_finished_run_completes_with_its_datasets_and_facets() {
        let r = sample::record();
        let start = start_event(&r, "ml", "2026-01-01T00:00:00.000Z", &["model.pkl".to_string()]);
        assert_eq!(start.event_type, EventType::Start);
        assert_eq!(start.job.name, "train.py");
        assert_eq!(start.job.namespace, "ml");
        assert_eq!(start.inputs[0].name, "/repo/data/train.csv");
        assert_eq!(start.inputs[0].namespace, "file://h");
        assert_eq!(start.outputs[0].name, "/repo/model.pkl");
        assert!(start.outputs[0].facets.version.is_none());
        assert!(start.run.facets.repro_run.as_ref().is_some_and(|f| f.fields.lineage.is_none()));

        let end = end_event(&r, "ml");
        assert_eq!(end.event_type, EventType::Complete);
        assert_eq!(end.event_time, "2026-01-01T00:00:01.000Z");
        assert_eq!(end.run.run_id, start.run.run_id);
        let digest = r.inputs[0].snapshot.to_string();
        let v = serde_json::to_value(&end).expect("serializes");
        assert_eq!(v["inputs"][0]["facets"]["version"]["datasetVersion"], digest.as_str());
        assert_eq!(v["inputs"][0]["facets"]["repro_snapshot"]["digest"], digest.as_str());
        assert_eq!(v["outputs"][0]["facets"]["repro_snapshot"]["path"], "model.pkl");
        assert_eq!(v["run"]["facets"]["repro_run"]["lineage"], r.lineage().to_string().as_str());
        assert_eq!(v["run"]["facets"]["repro_seed"]["value"], 42);
        assert_eq!(v["run"]["facets"]["repro_source_code"]["commit"], "0123456789abcdef0123");
        assert_eq!(v["run"]["facets"]["repro_environment"]["pythonVersion"], "3.11.7");
        assert_eq!(v["run"]["facets"]["processing_engine"]["name"], "repro");
        assert!(v["run"]["facets"].get("errorMessage").is_none());
        // Every facet carries _producer and _schemaURL, wherever it sits.
        let mut facets = 0;
        for group in [&v["run"]["facets"], &v["job"]["facets"], &v["inputs"][0]["facets"], &v["outputs"][0]["facets"]] {
            for (name, f) in group.as_object().expect("facets") {
                facets += 1;
                assert_eq!(f["_producer"], PRODUCER, "{name}");
                assert!(f["_schemaURL"].as_str().is_some_and(|s| s.contains(':')), "{name}");
            }
        }
        assert!(facets >= 9, "{v:#}");
        // The event reads back as it was written.
        let back: RunEvent = serde_json::from_value(v).expect("reads back");
        assert_eq!(back, end);
    }

    #[test]
    fn failed_and_killed_runs_say_why() {
        let mut r = sample::record();
        r.status = RunStatus::Failed;
        r.exit_code = Some(3);
        let end = end_event(&r, "ml");
        assert_eq!(end.event_type, EventType::Fail);
        let e = end.run.facets.error_message.expect("errorMessage");
        assert_eq!(e.fields.message, "the command exited with status 3");
        assert_eq!(e.fields.programming_language, "python");
        r.status = RunStatus::Killed;
        r.signal = Some(15);
        let end = end_event(&r, "ml");
        assert_eq!(end.event_type, EventType::Abort);
        assert!(end.run.facets.error_message.is_some_and(|e| e.fields.message.contains("signal 15")));
        r.script.argv.push("--from=https://user:hunter2@data.example/x".into());
        let v = serde_json::to_value(end_event(&r, "ml")).expect("serializes");
        assert!(!v.to_string().contains("hunter2"), "{v}");
        let failed = failed_event(&r, "ml", "2026-01-01T00:00:02.000Z", "disk full");
        assert_eq!(failed.event_type, EventType::Fail);
        assert!(failed.outputs.is_empty());
    }

    #[test]
    fn job_names_and_remotes() {
        let mut r = sample::record();
        r.script.path = None;
        r.script.argv = vec!["/usr/bin/sh".into(), "-c".into(), "exit 1".into()];
        assert_eq!(job_name(&r), "sh");
        assert_eq!(
            remote_uri("https://example.invalid/pricing.git").as_deref(),
            Some("https://example.invalid/pricing.git")
        );
        assert_eq!(remote_uri("git@github.com:org/repo.git").as_deref(), Some("ssh://git@github.com/org/repo.git"));
        assert_eq!(remote_uri("/srv/git/repo"), None);
        r.code.remote = Some("/srv/git/repo".into());
        assert!(job_facets(&r).source_code_location.is_none());
        r.code.remote = Some("git@github.com:org/repo.git".into());
        let loc = job_facets(&r).source_code_location.expect("location");
        assert_eq!(loc.fields.version.as_deref(), Some("0123456789abcdef0123"));
    }
}
