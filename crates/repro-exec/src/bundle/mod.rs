//! `repro bundle export / import`: one tar file holding everything needed to audit and
//! replay a model version on a machine with no access to the original repository or store.
//!
//! Layout: `repro-bundle.json` (the manifest: the version's registry events, the runs with
//! their metrics, snapshot rows, replays, the code bundle, and the list of objects),
//! `repro-bundle.json.blake3` (the manifest's digest, so a damaged manifest is told apart
//! from a damaged object), and `objects/<hex>` for every object. Objects are
//! content-addressed, the run record hashes to the lineage the version pins, and the
//! signed statement names that lineage and the artifact's digests: import re-checks all of
//! it before writing anything.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::{self, File};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use repro_capture::git;
use repro_core::metrics::MetricPoint;
use repro_core::record::{RunRecord, Verdict};
use repro_core::registry::{BundleSigner, Change, Event, Registry};
use repro_core::snapshot::Manifest;
use repro_core::{Digest, RunId};
use repro_store::datasets::SnapshotRow;
use repro_store::meta::{ReplayRow, StoredRun};
use repro_store::registry::{ImportRows, ImportRun, NewEvent};
use repro_store::Store;
use serde::{Deserialize, Serialize};

use crate::registry::lookup;
use crate::scratch::Scratch;
use crate::{keys, ExecError, Result};

mod export;
mod import;

pub use export::{export, ExportReport};
pub use import::{import, ImportReport};

pub const FORMAT: &str = "repro-bundle/1";
const MANIFEST: &str = "repro-bundle.json";
const MANIFEST_DIGEST: &str = "repro-bundle.json.blake3";
/// A DSSE envelope whose payload is the manifest, and the signer's public key (PEM).
const MANIFEST_SIGNATURE: &str = "repro-bundle.json.dsse";
const SIGNER_KEY: &str = "repro-bundle.pub";
pub const MANIFEST_PAYLOAD_TYPE: &str = "application/vnd.repro.bundle-manifest+json";
/// The manifest is read whole; a real one is kilobytes, so anything this large is not one.
const MAX_MANIFEST: u64 = 256 << 20;

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct BundleEvent {
    seq: u64,
    at_ms: i64,
    actor: String,
    model: String,
    version: u32,
    kind: String,
    payload: String,
    prev: Option<Digest>,
    hash: Digest,
}

impl From<&Event> for BundleEvent {
    fn from(e: &Event) -> Self {
        BundleEvent {
            seq: e.seq,
            at_ms: e.at_ms,
            actor: e.actor.clone(),
            model: e.model.clone(),
            version: e.version,
            kind: e.kind.clone(),
            payload: e.payload.clone(),
            prev: e.prev.clone(),
            hash: e.hash.clone(),
        }
    }
}

impl BundleEvent {
    fn event(&self) -> Event {
        Event {
            seq: self.seq,
            at_ms: self.at_ms,
            actor: self.actor.clone(),
            model: self.model.clone(),
            version: self.version,
            kind: self.kind.clone(),
            payload: self.payload.clone(),
            prev: self.prev.clone(),
            hash: self.hash.clone(),
        }
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct BundleRun {
    id: RunId,
    /// The record object: the run's record, which hashes to `lineage`.
    record_object: Digest,
    lineage: Digest,
    metrics: Vec<MetricPoint>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct BundleReplay {
    replay: RunId,
    original: RunId,
    verdict: Verdict,
    report: Digest,
    created_ms: i64,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct BundleSnapshot {
    digest: Digest,
    kind: String,
    files: u64,
    bytes: u64,
    /// Whether the bundle carries the files' content.
    stored: bool,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct BundleCode {
    commit: String,
    /// A git bundle (`git bundle create`) holding the commit and its history.
    object: Digest,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct BundleObject {
    digest: Digest,
    size: u64,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct BundleManifest {
    format: String,
    created_at: String,
    repro_version: String,
    model: String,
    version: u32,
    run: RunId,
    lineage: Digest,
    include_data: bool,
    events: Vec<BundleEvent>,
    runs: Vec<BundleRun>,
    replays: Vec<BundleReplay>,
    snapshots: Vec<BundleSnapshot>,
    code: Option<BundleCode>,
    objects: Vec<BundleObject>,
    /// The version's CycloneDX BOM and model card, as objects (absent in older bundles).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    bom: Option<Digest>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    card: Option<Digest>,
}

fn started_ms(record: &RunRecord) -> i64 {
    let parse = |s: &str| {
        humantime::parse_rfc3339_weak(s.trim_end_matches('Z'))
            .or_else(|_| humantime::parse_rfc3339(s))
            .ok()
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map(|d| d.as_millis() as i64)
    };
    parse(&record.started_at).unwrap_or(0)
}

fn ended_ms(record: &RunRecord) -> i64 {
    record
        .ended_at
        .as_deref()
        .and_then(|s| humantime::parse_rfc3339(s).ok())
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map(|d| d.as_millis() as i64)
        .unwrap_or_else(|| started_ms(record))
}
