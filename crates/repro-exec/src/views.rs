//! What `repro … --json` prints and what `repro serve`'s native API (`/api/v1/…`) answers:
//! one function per command gathers it from the store, so both doors show the same thing,
//! and the CLI renders its human text from that same shape, whether it was read from a
//! local store or fetched from a server (`--server URL`).
//!
//! Shapes built as `serde_json::Value` keep sorted keys; typed shapes list their fields
//! alphabetically where they replace such a value, so the bytes did not change.

use std::collections::BTreeMap;

use repro_core::audit::{AuditReport, RegistryMention};
use repro_core::diff::RunDiff;
use repro_core::environment::EnvironmentSpec;
use repro_core::metrics::MetricPoint;
use repro_core::record::{FileEntry, ReplaySummary, RunRecord};
use repro_core::registry::{Model, ModelVersion, StagePolicy};
use repro_core::snapshot::SnapshotKind;
use repro_core::Digest;
use repro_store::environments::EnvironmentRow;
use repro_store::meta::StoredRun;
use repro_store::Store;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::{ExecError, Result};

/// A run as JSON: its record, plus the lineage digest and the record's object. `name` is
/// the run's name now; a run renamed since it was recorded (MLflow `runs/update`) also
/// carries `recorded_name`, the name its lineage digest covers.
pub fn run_json(r: &StoredRun) -> Value {
    let mut v = serde_json::to_value(&r.record).unwrap_or(Value::Null);
    if let Value::Object(m) = &mut v {
        m.insert("lineage".into(), json!(r.lineage));
        m.insert("record_object".into(), json!(r.record_object));
        if r.name != r.record.name {
            m.insert("recorded_name".into(), json!(r.record.name));
            m.insert("name".into(), json!(r.name));
        }
    }
    v
}

/// `repro runs [--limit N]`: newest first.
pub fn runs(store: &Store, limit: Option<usize>) -> Result<Value> {
    Ok(Value::Array(store.meta.runs().list(limit)?.iter().map(run_json).collect()))
}

/// `repro show RUN`: the run, its metrics, replays and the model versions that pin it.
pub fn show(store: &Store, spec: &str) -> Result<Value> {
    let id = store.meta.resolve_run(spec)?;
    let stored = store.meta.runs().get(&id)?;
    let metrics = store.meta.runs().metrics(&id)?;
    let replays = crate::audit::replay_summaries(store, &id)?;
    let models = crate::audit::registry_mentions(store, &stored)?;
    // Tags a tracking client set (`mlflow.set_tag`), and MLflow's own `mlflow.*` ones.
    let tags = match store.meta.tracking().get_tracked_run(id.as_str()) {
        Ok(tracked) => tracked.tags,
        Err(repro_store::StoreError::Missing(_)) => BTreeMap::new(),
        Err(e) => return Err(e.into()),
    };
    let mut v = run_json(&stored);
    if let Value::Object(m) = &mut v {
        m.insert("tags".into(), json!(tags));
        m.insert("metrics".into(), json!(metrics));
        m.insert("replays".into(), json!(replays));
        m.insert("models".into(), json!(models));
        // What each output file that is a model says about itself (format, writer, version).
        m.insert("artifacts".into(), json!(crate::artifacts::understand_outputs(store, &stored)));
    }
    Ok(v)
}

/// A run read back from its JSON (`runs` or `show`); what `show` adds is empty for `runs`.
pub struct RunParts {
    pub run: StoredRun,
    pub tags: BTreeMap<String, String>,
    pub metrics: Vec<MetricPoint>,
    pub replays: Vec<ReplaySummary>,
    pub models: Vec<RegistryMention>,
    pub artifacts: Vec<crate::artifacts::Artifact>,
}

pub fn run_parts(v: &Value) -> Result<RunParts> {
    fn field<T: serde::de::DeserializeOwned + Default>(v: &Value, key: &str) -> Result<T> {
        match v.get(key) {
            None | Some(Value::Null) => Ok(T::default()),
            Some(x) => T::deserialize(x).map_err(|e| unreadable(&format!("its {key}"), &e)),
        }
    }
    let mut record = RunRecord::deserialize(v).map_err(|e| unreadable("a run", &e))?;
    let name = record.name.clone();
    if let Some(recorded) = v.get("recorded_name") {
        record.name = Option::<String>::deserialize(recorded).map_err(|e| unreadable("its recorded_name", &e))?;
    }
    Ok(RunParts {
        run: StoredRun {
            record,
            name,
            lineage: field(v, "lineage")?,
            record_object: field(v, "record_object")?,
            pid: None,
            pid_start: None,
        },
        tags: field(v, "tags")?,
        metrics: field(v, "metrics")?,
        replays: field(v, "replays")?,
        models: field(v, "models")?,
        artifacts: field(v, "artifacts")?,
    })
}

fn unreadable(what: &str, e: &dyn std::fmt::Display) -> ExecError {
    ExecError::Usage(format!(
        "{what} in the answer is not in the shape this repro reads ({e}); is the server another version?"
    ))
}

/// `repro audit RUN [--strict]`.
pub fn audit(store: &Store, spec: &str, strict: bool, progress: &dyn crate::Progress) -> Result<AuditReport> {
    let run = store.meta.runs().get(&store.meta.resolve_run(spec)?)?;
    crate::audit::audit_run(store, &run, strict, progress)
}

/// `repro diff RUN_A RUN_B`.
pub fn diff(store: &Store, a: &str, b: &str) -> Result<RunDiff> {
    let a = store.meta.runs().get(&store.meta.resolve_run(a)?)?;
    let b = store.meta.runs().get(&store.meta.resolve_run(b)?)?;
    crate::diff::diff_runs(store, &a, &b)
}

/// One row of `repro data ls`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DatasetRow {
    pub bytes: Option<u64>,
    pub created_at: String,
    pub files: Option<u64>,
    pub name: String,
    pub reference: bool,
    pub snapshot: Digest,
    pub source: String,
    pub version: u32,
}

/// `repro data ls`.
pub fn datasets(store: &Store) -> Result<Vec<DatasetRow>> {
    let mut rows = Vec::new();
    for d in store.meta.datasets().list()? {
        let snap = store.meta.datasets().snapshot(&d.snapshot)?;
        rows.push(DatasetRow {
            bytes: snap.as_ref().map(|s| s.bytes),
            created_at: repro_util::clock::rfc3339(d.created_ms),
            files: snap.as_ref().map(|s| s.files),
            name: d.name,
            reference: d.reference,
            snapshot: d.snapshot,
            source: d.source,
            version: d.version,
        });
    }
    Ok(rows)
}

/// `repro data show NAME[:VERSION]`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DatasetShow {
    pub bytes: u64,
    pub created_at: String,
    pub entries: Vec<FileEntry>,
    pub files: usize,
    pub kind: SnapshotKind,
    pub name: String,
    pub reference: bool,
    pub snapshot: Digest,
    pub source: String,
    pub stored: Option<bool>,
    pub version: u32,
}

pub fn dataset(store: &Store, spec: &str) -> Result<DatasetShow> {
    let d = store.meta.datasets().get(spec)?;
    let snap = store.meta.datasets().snapshot(&d.snapshot)?;
    let m = repro_capture::snapshot::manifest(store, &d.snapshot)?;
    Ok(DatasetShow {
        bytes: m.total_bytes(),
        created_at: repro_util::clock::rfc3339(d.created_ms),
        files: m.entries.len(),
        kind: m.kind,
        entries: m.entries,
        name: d.name,
        reference: d.reference,
        snapshot: d.snapshot,
        source: d.source,
        stored: snap.map(|s| s.stored),
        version: d.version,
    })
}

/// `repro env ls`.
pub fn environments(store: &Store) -> Result<Vec<EnvironmentRow>> {
    Ok(store.meta.environments().list()?)
}

/// `repro env show NAME[:V]`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EnvironmentShow {
    pub name: String,
    pub source: String,
    pub spec: EnvironmentSpec,
    pub spec_object: Digest,
    pub version: u32,
}

pub fn environment(store: &Store, spec: &str) -> Result<EnvironmentShow> {
    let (row, spec) = crate::env::get_registered(store, spec)?;
    Ok(EnvironmentShow { name: row.name, source: row.source, spec, spec_object: row.spec, version: row.version })
}

/// A model in `repro model ls` and `repro model show NAME`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ModelView {
    pub latest: Option<u32>,
    pub name: String,
    /// Stage → the version holding it.
    pub stages: BTreeMap<String, u32>,
    /// Alias → the version it points at (set through the MLflow API).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub aliases: BTreeMap<String, u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub tags: BTreeMap<String, String>,
    /// The versions not deleted (a deleted one stays in the registry's log and history).
    pub versions: Vec<ModelVersion>,
}

impl ModelView {
    pub fn of(m: &Model) -> ModelView {
        ModelView {
            latest: m.latest().map(|v| v.version),
            name: m.name.clone(),
            stages: m.live().filter_map(|v| Some((v.stage.clone()?, v.version))).collect(),
            aliases: m.aliases.clone(),
            description: m.description.clone(),
            tags: m.tags.clone(),
            versions: m.live().cloned().collect(),
        }
    }
}

/// `repro model ls`: the models not deleted.
pub fn models(store: &Store) -> Result<Vec<ModelView>> {
    Ok(store.meta.models().registry()?.models.values().filter(|m| m.deleted.is_none()).map(ModelView::of).collect())
}

/// `repro model show NAME` (the model) or `NAME@V` / `NAME@STAGE` (one version).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum ModelShow {
    Version(Box<ModelVersion>),
    Model(ModelView),
}

pub fn model(store: &Store, spec: &str) -> Result<ModelShow> {
    let registry = store.meta.models().registry()?;
    if spec.contains('@') {
        return Ok(ModelShow::Version(Box::new(crate::registry::lookup(&registry, spec)?)));
    }
    let m = registry.model(spec).map_err(|e| repro_store::StoreError::UnknownModel(e.to_string()))?;
    Ok(ModelShow::Model(ModelView::of(m)))
}

/// The stages of the registry and what each demands (`[stages.NAME]` of repro.toml, else
/// the defaults).
pub fn stages(store: &Store) -> BTreeMap<String, StagePolicy> {
    store.config.stage_policies()
}

/// One approval, with the version it is for.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ApprovalRow {
    pub at: String,
    pub by: String,
    pub comment: Option<String>,
    /// Whether it counts: one person's approvals of a version for a stage count once, and a
    /// stage with `signed_approvals` counts only valid signatures by trusted approvers.
    pub counted: bool,
    /// The key that signed it (absent: an unsigned approval of an older store).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keyid: Option<String>,
    /// Whether the signature verifies and the key is a trusted approver.
    #[serde(default)]
    pub trusted: bool,
    pub model: String,
    pub stage: String,
    pub version: u32,
}

/// Every approval in the registry (of one model, when `model` is given), oldest first.
pub fn approvals(store: &Store, model: Option<&str>) -> Result<Vec<ApprovalRow>> {
    let registry = store.meta.models().registry()?;
    if let Some(name) = model {
        registry.model(name).map_err(|e| repro_store::StoreError::UnknownModel(e.to_string()))?;
    }
    let mut rows = Vec::new();
    let policies = store.config.stage_policies();
    let trust = crate::trust::Trust::of(store)?;
    for m in registry.models.values().filter(|m| model.is_none_or(|n| n == m.name)) {
        for v in m.versions.values() {
            let checks = crate::registry::approval::check_approvals(store, v, &trust, &[]);
            let mut persons = std::collections::BTreeSet::new();
            for (a, check) in v.approvals.iter().zip(&checks) {
                let signed_only = policies.get(&a.stage).is_some_and(|p| p.signed_approvals);
                let counted = if signed_only {
                    check.not_counted().is_none()
                        && persons.insert((a.stage.clone(), repro_core::registry::identity_key(&check.person)))
                } else {
                    v.approvers(&a.stage).iter().any(|first| std::ptr::eq(*first, a))
                };
                rows.push(ApprovalRow {
                    at: repro_util::clock::rfc3339(a.at_ms),
                    by: a.by.clone(),
                    comment: a.comment.clone(),
                    counted,
                    keyid: check.keyid.clone(),
                    trusted: check.valid && check.trusted,
                    model: v.name.clone(),
                    stage: a.stage.clone(),
                    version: v.version,
                });
            }
        }
    }
    rows.sort_by(|a, b| a.at.cmp(&b.at));
    Ok(rows)
}
