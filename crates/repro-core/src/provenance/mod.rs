//! Signed provenance of a model version, in the formats other tools read: a DSSE envelope
//! (`payloadType`, base64 `payload`, `signatures[].keyid`/`sig`) around an in-toto
//! Statement v1 whose predicate is SLSA Provenance v1, signed with ed25519.
//!
//! Pure: the caller reads key files, artifact bytes and objects; this module only encodes,
//! hashes, signs and checks.
//!
//! # The build type ([`BUILD_TYPE`])
//!
//! A statement of ours describes one `repro run` whose outputs became a registered model
//! version. Its predicate holds:
//!
//! - `buildDefinition.externalParameters` (what the user chose): `command` (argv list),
//!   `workdir` (relative to the repository root), `params` (flattened `a.b` → value),
//!   `seed`, `seedGenerated`, and `environment`: `python` {`version`, `interpreter`,
//!   `kind`}, `declaredFile` {`path`, `format`, `digest`}, `registered` (`NAME:V`),
//!   `packages` (`name==version`, as installed), `variables` (the determinism-relevant
//!   environment variables the command saw).
//! - `buildDefinition.internalParameters` (what repro decided): `runId`, `runName`,
//!   `lineage` (the record's `blake3:` digest, which covers everything the record holds),
//!   `model`, `version`, `registryHead` {`seq`, `hash`} (the registry event log's last
//!   event when the statement was made), `replayOf`, `platform` {`os`, `kernel`, `arch`,
//!   `libc`}.
//! - `buildDefinition.resolvedDependencies`: resource descriptors, each with an
//!   `annotations.role`: `code` (the git commit, `digest.gitCommit`), `diff` (uncommitted
//!   changes), `untracked` (untracked files stored with the run), `script`, `environment`
//!   (the declared environment file and its companions), `params` (params files), `input`
//!   (each input data snapshot; named by its path, its digest is that of repro's snapshot
//!   manifest, which names every file by BLAKE3).
//! - `runDetails.builder` {`id`: [`BUILDER_ID`], `version.repro`}, `runDetails.metadata`
//!   {`invocationId`: the run id, `startedOn`, `finishedOn`}, `runDetails.byproducts`: the
//!   stdout and stderr logs.
//!
//! Digest sets use the in-toto algorithm names; `blake3` is bare hex (no `blake3:` prefix),
//! and a `sha256` next to it is always of the same bytes, never of something else.

use std::collections::BTreeMap;

use base64::alphabet;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig, STANDARD};
use base64::engine::DecodePaddingMode;
use base64::Engine as _;
use ed25519_dalek::Signer as _;
pub use ed25519_dalek::{SigningKey, VerifyingKey};
use serde_json::{json, Map, Value};
use sha2::Digest as _;

use crate::record::RunRecord;
use crate::{CoreError, Digest, RunId};

mod dsse;
mod statement;
#[cfg(test)]
mod tests;
mod verdict;

pub use dsse::{hex_sha256, pae, sign_envelope, sslib_keyid, verify_envelope, Envelope, Signature};
pub use statement::{
    open_statement, parse_statement, statement, statement_payload, ArtifactFile, StatementInput, StatementSummary,
    SubjectDigests,
};
pub use verdict::{
    open_verdict, parse_verdict, signed_replay_unmet, verdict_statement, verdict_word, VerdictCheck, VerdictInput,
    VerdictSummary, VERDICT_PREDICATE_TYPE,
};

/// The DSSE payload type of an in-toto statement.
pub const PAYLOAD_TYPE: &str = "application/vnd.in-toto+json";
/// The in-toto Statement version we write and read.
pub const STATEMENT_TYPE: &str = "https://in-toto.io/Statement/v1";
/// The predicate: SLSA Provenance v1.
pub const PREDICATE_TYPE: &str = "https://slsa.dev/provenance/v1";
/// What a repro-run statement's parameters mean (see the module documentation and
/// `docs/uris.md`). A URN names it without implying a page at some host; bump `v1` when a
/// field changes meaning.
pub const BUILD_TYPE: &str = "urn:repro:slsa:buildtype:run:v1";
/// The build type statements carried before [`BUILD_TYPE`]: same fields, same meaning, still
/// accepted so that signed statements in existing stores and bundles keep verifying.
pub const LEGACY_BUILD_TYPE: &str = "https://repro.invalid/buildtypes/run/v1";
/// The builder: repro on the user's own machine. Its trust is the trust in the key that
/// signed, not in a hosted build service, which this id says by being local.
pub const BUILDER_ID: &str = "urn:repro:slsa:builder:local:v1";
/// The builder id statements carried before [`BUILDER_ID`] (read, never written).
pub const LEGACY_BUILDER_ID: &str = "https://repro.invalid/builders/local/v1";
