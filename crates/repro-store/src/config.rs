use std::collections::BTreeMap;
use std::path::Path;

use repro_core::registry::StagePolicy;

use serde::{Deserialize, Serialize};

use crate::{Result, StoreError};

pub const CONFIG_FILE: &str = "repro.toml";

/// `repro.toml`: the store's settings. Unknown keys are errors, so a typo never passes silently.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    #[serde(default)]
    pub store: StoreSection,
    #[serde(default)]
    pub capture: CaptureSection,
    #[serde(default, skip_serializing_if = "ReplaySection::is_unset")]
    pub replay: ReplaySection,
    /// `[stages.NAME]`: the registry's stages and what each demands. None configured means
    /// the defaults (`repro_core::registry::default_policies`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub stages: BTreeMap<String, StagePolicy>,
    /// `[trust]`: the public keys this store trusts (see [`TrustSection`]).
    #[serde(default, skip_serializing_if = "TrustSection::is_empty")]
    pub trust: TrustSection,
    /// `[openlineage]`: send OpenLineage run events for every run (see [`OpenLineageSection`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub openlineage: Option<OpenLineageSection>,
    /// `[model_card]`: what the model card and the CycloneDX BOM say about intended use and
    /// limits (see [`ModelCardSection`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model_card: Option<ModelCardSection>,
}

/// `[model_card]`: considerations for every model of this store, added to those of the
/// project's `model_card.md` (`repro model card`, `repro model bom`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelCardSection {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub users: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub use_cases: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub limitations: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tradeoffs: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ethical_considerations: Vec<String>,
}

/// `[openlineage]`: each run's START and COMPLETE/FAIL/ABORT events, as OpenLineage 2-0-2
/// `RunEvent`s, POSTed to `url` (a Marquez-compatible endpoint) and/or appended to `file`
/// (JSON lines). Delivery never fails a run: what the endpoint does not take is queued in
/// `.repro/openlineage/queue/` and sent first at the next event.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OpenLineageSection {
    /// The jobs' namespace (default `repro`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// `http(s)://HOST[:PORT][/PREFIX]`: where the OpenLineage HTTP API is (Marquez's
    /// `http://localhost:5000`). Events are POSTed to `{url}/{endpoint}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// The path under `url` (default `api/v1/lineage`, as the OpenLineage clients send).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,
    /// The name of the environment variable holding the API key, sent as
    /// `Authorization: Bearer KEY`. The key itself never goes in this file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_key_env: Option<String>,
    /// A file the events are appended to, one JSON line each; relative to the folder that
    /// holds `.repro`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file: Option<String>,
    /// Seconds an HTTP request may take (default 5, at most 60).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<u64>,
    /// Refused when present, with the way to give a key (a secret is never written here).
    #[serde(default, skip_serializing)]
    api_key: Option<toml::Value>,
}

impl OpenLineageSection {
    pub const DEFAULT_ENDPOINT: &'static str = "api/v1/lineage";
    pub const DEFAULT_TIMEOUT: u64 = 5;

    pub fn namespace(&self) -> &str {
        self.namespace.as_deref().unwrap_or(repro_core::openlineage::DEFAULT_NAMESPACE)
    }

    /// Where events are POSTed: `{url}/{endpoint}`, when a url is configured.
    pub fn post_url(&self) -> Option<String> {
        let url = self.url.as_deref()?;
        let endpoint = self.endpoint.as_deref().unwrap_or(Self::DEFAULT_ENDPOINT);
        Some(format!("{}/{}", url.trim_end_matches('/'), endpoint.trim_start_matches('/')))
    }

    pub fn timeout_secs(&self) -> u64 {
        self.timeout.unwrap_or(Self::DEFAULT_TIMEOUT)
    }

    /// Checks every key; the message names the key and what to write instead.
    pub fn validate(&self) -> std::result::Result<(), String> {
        let one_line = |v: &str| !v.trim().is_empty() && !v.chars().any(char::is_control);
        if self.api_key.is_some() {
            return Err("[openlineage] api_key: a secret never goes in repro.toml; put the key in an environment \
                        variable and name it: api_key_env = \"OPENLINEAGE_API_KEY\""
                .into());
        }
        if self.url.is_none() && self.file.is_none() {
            return Err("[openlineage]: set url (an OpenLineage endpoint such as Marquez's, http://HOST:5000) \
                        and/or file (a JSON lines file), or remove the section"
                .into());
        }
        if let Some(n) = &self.namespace {
            if !one_line(n) || n.len() > 200 {
                return Err(format!("[openlineage] namespace: '{n}' must be one line of text (200 characters at most), such as \"ml-training\""));
            }
        }
        if let Some(url) = &self.url {
            check_lineage_url(url).map_err(|m| format!("[openlineage] url: {m}"))?;
        }
        if let Some(e) = &self.endpoint {
            if !one_line(e) || e.contains(char::is_whitespace) || e.contains("://") || e.contains(['?', '#']) {
                return Err(format!(
                    "[openlineage] endpoint: '{e}' is not a path; write a path such as \"api/v1/lineage\""
                ));
            }
        }
        if let Some(v) = &self.api_key_env {
            let valid = !v.is_empty()
                && v.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
                && v.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
            if !valid {
                // Not echoed: a value that is no name may be the key itself.
                return Err("[openlineage] api_key_env: not an environment variable's name (letters, digits, _); \
                            write the variable's name, such as \"OPENLINEAGE_API_KEY\", never the key"
                    .into());
            }
        }
        if let Some(f) = &self.file {
            if !one_line(f) {
                return Err("[openlineage] file: give a file path, such as \"lineage/events.jsonl\"".into());
            }
        }
        if let Some(t) = self.timeout {
            if !(1..=60).contains(&t) {
                return Err(format!("[openlineage] timeout: {t} is not between 1 and 60 (seconds)"));
            }
        }
        Ok(())
    }
}

/// Checks `[openlineage] url`: `http(s)://HOST…`, without credentials, a query or a fragment.
fn check_lineage_url(url: &str) -> std::result::Result<(), String> {
    let rest = url.strip_prefix("http://").or_else(|| url.strip_prefix("https://")).ok_or_else(|| {
        format!("'{url}' is not an http:// or https:// URL; write where the OpenLineage API is, such as \"http://localhost:5000\"")
    })?;
    let authority = rest.split('/').next().unwrap_or("");
    if authority.contains('@') {
        return Err(
            "the URL carries credentials; put the API key in an environment variable and name it in api_key_env".into(),
        );
    }
    if authority.is_empty() || url.contains(char::is_whitespace) || url.chars().any(char::is_control) {
        return Err(format!("'{url}' names no host; write http://HOST[:PORT]"));
    }
    if url.contains(['?', '#']) {
        return Err(format!("'{url}' has a query or fragment; give the base URL, and the path in endpoint"));
    }
    Ok(())
}

/// `[trust]`: whose keys count. Signatures by other keys still verify (integrity) but carry
/// no authority: an approval by an unlisted key does not count towards a stage that needs
/// signed approvals, and a bundle signed by one is "signed by an unknown key".
///
/// Each entry is a public key: the path of a PEM file (relative to the `.repro` folder, as
/// `repro key add` writes `keys/<keyid>.pub`), or a key id (the 64-hex securesystemslib id a
/// signature carries), optionally with the person's name: `{ key = "keys/ab.pub", name = "Ada <ada@corp.example>" }`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrustSection {
    /// Keys whose approvals count (`repro model approve`; `signed_approvals` stages).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub approvers: Vec<TrustedKey>,
    /// Keys whose bundles, provenance signatures and replay verdicts are trusted.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub signers: Vec<TrustedKey>,
}

impl TrustSection {
    pub fn is_empty(&self) -> bool {
        self.approvers.is_empty() && self.signers.is_empty()
    }
}

/// One `[trust]` entry: a key (file or key id), and optionally whose it is.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum TrustedKey {
    Plain(String),
    Named {
        key: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        name: Option<String>,
    },
}

impl TrustedKey {
    /// The file path or key id.
    pub fn key(&self) -> &str {
        match self {
            TrustedKey::Plain(k) | TrustedKey::Named { key: k, .. } => k,
        }
    }

    pub fn name(&self) -> Option<&str> {
        match self {
            TrustedKey::Plain(_) => None,
            TrustedKey::Named { name, .. } => name.as_deref(),
        }
    }

    /// A key id rather than a file: 64 lowercase hex digits.
    pub fn is_keyid(&self) -> bool {
        let k = self.key();
        k.len() == 64 && k.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    }
}

/// `[replay]`: how `repro replay` judges outputs whose bytes differ.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReplaySection {
    /// A command deciding whether a recorded and a replayed output file are equivalent
    /// (exit 0 = equivalent), e.g. `python compare.py {recorded} {replayed}`. Runs with
    /// `sh -c` in the rebuilt tree; the placeholders are replaced by quoted paths.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compare: Option<String>,
}

impl ReplaySection {
    fn is_unset(&self) -> bool {
        self.compare.is_none()
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StoreSection {
    /// The on-disk format of the store.
    pub format: u32,
    /// The metadata database when it is not the embedded `repro.db`:
    /// `postgres://USER@HOST[:PORT]/DB`. Never holds a password (PGPASSWORD does).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub db: Option<String>,
    /// Where objects live when not only in `objects/`: `s3://BUCKET[/PREFIX]`. The endpoint
    /// and credentials come from the standard AWS_* variables, never from this file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub objects: Option<String>,
}

impl Default for StoreSection {
    fn default() -> Self {
        StoreSection { format: 1, db: None, objects: None }
    }
}

/// Checks a `--db` / `store.db` value: a PostgreSQL URL without a password.
pub fn check_db_url(url: &str) -> std::result::Result<(), String> {
    let rest = url.strip_prefix("postgres://").or_else(|| url.strip_prefix("postgresql://")).ok_or_else(|| {
        format!("'{url}' is not a postgres://USER@HOST/DB URL (the embedded SQLite store needs no --db)")
    })?;
    let authority = rest.split(['/', '?']).next().unwrap_or("");
    if let Some((user, _)) = authority.rsplit_once('@') {
        if user.contains(':') {
            return Err("the database URL holds a password; pass it in PGPASSWORD instead, so it is never written into repro.toml".into());
        }
    }
    let host = authority.rsplit_once('@').map(|(_, h)| h).unwrap_or(authority);
    let db = rest.split_once('/').map(|(_, d)| d.split('?').next().unwrap_or("")).unwrap_or("");
    if host.is_empty() || db.is_empty() {
        return Err(format!("'{url}' names no host or no database; write postgres://USER@HOST[:PORT]/DB"));
    }
    Ok(())
}

/// Checks an `--objects` / `store.objects` value: `s3://BUCKET[/PREFIX]`. Returns (bucket, prefix).
pub fn parse_objects_url(url: &str) -> std::result::Result<(String, String), String> {
    let rest = url.strip_prefix("s3://").ok_or_else(|| format!("'{url}' is not an s3://BUCKET[/PREFIX] URL"))?;
    let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
    let valid_bucket = (3..=63).contains(&bucket.len())
        && bucket.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.');
    if !valid_bucket {
        return Err(format!("'{bucket}' is not an S3 bucket name (3 to 63 characters: a-z, 0-9, '-', '.')"));
    }
    if bucket.contains('@') || url.contains('?') {
        return Err(format!("'{url}' carries credentials or options; give them in the AWS_* variables"));
    }
    Ok((bucket.to_string(), prefix.trim_matches('/').to_string()))
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CaptureSection {
    /// Untracked files larger than this are listed but not stored with the code.
    #[serde(default = "default_max_untracked")]
    pub max_untracked_file_bytes: u64,
}

fn default_max_untracked() -> u64 {
    10 * 1024 * 1024
}

impl Default for CaptureSection {
    fn default() -> Self {
        CaptureSection { max_untracked_file_bytes: default_max_untracked() }
    }
}

impl Config {
    pub fn default_file() -> String {
        Config::file_for(&StoreSection::default())
    }

    /// The commented `repro.toml` of a new store with this `[store]` section.
    pub fn file_for(store: &StoreSection) -> String {
        format!(
            "# repro store settings: every section below is explained in the comments above it;\n\
             # `repro init --help` says how to share a store, `repro key --help` what [trust] holds.\n{}\n\
             # How `repro replay` judges an output whose bytes differ (exit 0 = equivalent):\n\
             # [replay]\n\
             # compare = \"python compare.py {{recorded}} {{replayed}}\"\n\n\
             # The model registry's stages and what a version needs to enter each\n\
             # (`repro model promote`). Requirements: git_clean, env_pinned, random_seed,\n\
             # dataset_snapshot, replay_verified, signed, audit_complete, or any audit item.\n\
             # `parity = \"serving\"` also demands parity with a registered environment;\n\
             # `signed_replay = true` a replay verdict signed by a key in [trust] signers.\n\
             {}\n\
             # OpenLineage run events (START, then COMPLETE/FAIL/ABORT) for every run, to a\n\
             # Marquez-compatible endpoint (POST {{url}}/api/v1/lineage) and/or a JSON lines file:\n\
             # [openlineage]\n\
             # namespace = \"repro\"\n\
             # url = \"http://localhost:5000\"\n\
             # api_key_env = \"OPENLINEAGE_API_KEY\"   # the variable holding the key, never the key\n\
             # file = \"lineage/events.jsonl\"\n",
            toml::to_string(&Config { store: store.clone(), ..Config::default() })
                .expect("the default config serializes"),
            toml::to_string(&Config { stages: repro_core::registry::default_policies(), ..Config::default() })
                .expect("the default stages serialize")
                .split_once("[stages.")
                .map(|(_, rest)| format!("[stages.{rest}"))
                .unwrap_or_default()
        )
    }

    /// The stages and their policies: those configured, else the defaults.
    pub fn stage_policies(&self) -> BTreeMap<String, StagePolicy> {
        if self.stages.is_empty() {
            repro_core::registry::default_policies()
        } else {
            self.stages.clone()
        }
    }

    pub fn load(path: &Path) -> Result<Config> {
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(StoreError::NotAStore(path.parent().unwrap_or(path).to_path_buf()))
            }
            Err(e) => return Err(StoreError::Io { action: "read", path: path.to_path_buf(), source: e }),
        };
        let config: Config = toml::from_str(&text)
            .map_err(|e| StoreError::Config { path: path.to_path_buf(), message: one_line(&e.to_string(), &text) })?;
        if config.store.format != 1 {
            return Err(StoreError::Config {
                path: path.to_path_buf(),
                message: format!("store format {} is not known to this repro (it knows 1)", config.store.format),
            });
        }
        repro_core::registry::validate_policies(&config.stage_policies())
            .map_err(|message| StoreError::Config { path: path.to_path_buf(), message })?;
        let bad = |message: String| StoreError::Config { path: path.to_path_buf(), message };
        if let Some(url) = &config.store.db {
            check_db_url(url).map_err(bad)?;
        }
        if let Some(url) = &config.store.objects {
            parse_objects_url(url).map_err(bad)?;
        }
        if let Some(section) = &config.openlineage {
            section.validate().map_err(bad)?;
        }
        for (list, entries) in [("approvers", &config.trust.approvers), ("signers", &config.trust.signers)] {
            for t in entries {
                let k = t.key();
                if k.trim().is_empty() || k.chars().any(char::is_control) {
                    return Err(bad(format!("[trust] {list}: an entry names no key file or key id")));
                }
                if let Some(n) = t.name() {
                    if n.trim().is_empty() || n.chars().any(char::is_control) || n.len() > 200 {
                        return Err(bad(format!("[trust] {list}: the name of '{k}' must be one line of text")));
                    }
                }
            }
        }
        Ok(config)
    }
}

/// toml's errors span several lines with a caret drawing; keep the first line and the
/// line number so the message stays one line.
fn one_line(message: &str, _text: &str) -> String {
    let mut lines = message.lines().filter(|l| !l.trim().is_empty());
    let first = lines.next().unwrap_or("invalid TOML").trim().to_string();
    let last = message
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty() && !l.trim_start().starts_with('|') && !l.contains('^'))
        .unwrap_or("")
        .trim();
    if last.is_empty() || last == first {
        first
    } else {
        format!("{first}: {last}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_round_trips() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join(CONFIG_FILE);
        std::fs::write(&p, Config::default_file()).expect("write");
        let c = Config::load(&p).expect("loads");
        assert_eq!(c.store.format, 1);
    }

    #[test]
    fn replay_comparator_is_read() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join(CONFIG_FILE);
        std::fs::write(&p, "[store]\nformat = 1\n[replay]\ncompare = \"python compare.py {recorded} {replayed}\"\n")
            .expect("write");
        let c = Config::load(&p).expect("loads");
        assert_eq!(c.replay.compare.as_deref(), Some("python compare.py {recorded} {replayed}"));
        std::fs::write(&p, "[replay]\ncomparator = \"x\"\n").expect("write");
        assert!(Config::load(&p).expect_err("unknown key").to_string().contains("comparator"));
    }

    #[test]
    fn stages_default_and_are_validated() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join(CONFIG_FILE);
        std::fs::write(&p, Config::default_file()).expect("write");
        let c = Config::load(&p).expect("loads");
        assert_eq!(c.stage_policies(), repro_core::registry::default_policies());
        assert_eq!(c.stages["prod"].approvals, 2);
        std::fs::write(&p, "[stages.canary]\nrequire = [\"random_seed\"]\n").expect("write");
        let c = Config::load(&p).expect("loads");
        assert_eq!(c.stage_policies().keys().collect::<Vec<_>>(), ["canary"]);
        for (text, needle) in [
            ("[stages.prod]\nrequire = [\"signd\"]\n", "unknown requirement 'signd'"),
            ("[stages.prod]\nfrom = \"qa\"\n", "no stage 'qa'"),
            ("[stages.prod]\napprovals = -1\n", "line 2"),
            ("[stages.prod]\nquorum = 2\n", "quorum"),
            ("[stages.\"9\"]\n", "stage name '9'"),
        ] {
            std::fs::write(&p, text).expect("write");
            let e = Config::load(&p).expect_err(text).to_string();
            assert!(e.contains(needle) && !e.contains('\n'), "{text}: {e}");
        }
    }

    #[test]
    fn trust_lists_files_and_key_ids() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join(CONFIG_FILE);
        let id = "a".repeat(64);
        std::fs::write(
            &p,
            format!(
                "[trust]\napprovers = [\"keys/ada.pub\", {{ key = \"{id}\", name = \"Bob <bob@corp.example>\" }}]\nsigners = [\"{id}\"]\n"
            ),
        )
        .expect("write");
        let c = Config::load(&p).expect("loads");
        assert_eq!(c.trust.approvers.len(), 2);
        assert!(!c.trust.approvers[0].is_keyid() && c.trust.approvers[1].is_keyid());
        assert_eq!(c.trust.approvers[1].name(), Some("Bob <bob@corp.example>"));
        assert!(c.trust.signers[0].is_keyid());
        for (text, needle) in [
            ("[trust]\napprovers = [\"\"]\n", "names no key"),
            ("[trust]\napprovers = [{ key = \"k\", name = \"\" }]\n", "one line"),
            ("[trust]\nreaders = []\n", "readers"),
        ] {
            std::fs::write(&p, text).expect("write");
            let e = Config::load(&p).expect_err(text).to_string();
            assert!(e.contains(needle) && !e.contains('\n'), "{text}: {e}");
        }
    }

    #[test]
    fn openlineage_is_read_and_checked() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join(CONFIG_FILE);
        std::fs::write(&p, Config::default_file()).expect("write");
        assert!(Config::load(&p).expect("loads").openlineage.is_none(), "off unless configured");
        std::fs::write(
            &p,
            "[openlineage]\nurl = \"http://localhost:5000/\"\napi_key_env = \"OL_KEY\"\nfile = \"events.jsonl\"\n",
        )
        .expect("write");
        let c = Config::load(&p).expect("loads").openlineage.expect("section");
        assert_eq!(c.namespace(), "repro");
        assert_eq!(c.post_url().as_deref(), Some("http://localhost:5000/api/v1/lineage"));
        assert_eq!(c.timeout_secs(), 5);
        std::fs::write(&p, "[openlineage]\nnamespace = \"ml\"\nurl = \"https://h/x\"\nendpoint = \"/v2/events\"\n")
            .expect("write");
        let c = Config::load(&p).expect("loads").openlineage.expect("section");
        assert_eq!((c.namespace(), c.post_url().as_deref()), ("ml", Some("https://h/x/v2/events")));
        for (text, needle) in [
            ("[openlineage]\nnamespace = \"ml\"\n", "set url"),
            ("[openlineage]\nurl = \"localhost:5000\"\n", "[openlineage] url"),
            ("[openlineage]\nurl = \"http://u:secret@h\"\n", "credentials"),
            ("[openlineage]\nurl = \"http://h?token=x\"\n", "query"),
            ("[openlineage]\nurl = \"http://h\"\napi_key = \"s3cret\"\n", "api_key_env"),
            ("[openlineage]\nurl = \"http://h\"\napi_key_env = \"sk-123 abc\"\n", "[openlineage] api_key_env"),
            ("[openlineage]\nurl = \"http://h\"\ntimeout = 0\n", "[openlineage] timeout"),
            ("[openlineage]\nurl = \"http://h\"\nendpoint = \"http://x/y\"\n", "[openlineage] endpoint"),
            ("[openlineage]\nfile = \"\"\n", "[openlineage] file"),
            ("[openlineage]\nurl = \"http://h\"\nnamespace = \"\"\n", "[openlineage] namespace"),
            ("[openlineage]\nurl = \"http://h\"\ntransport = \"kafka\"\n", "transport"),
        ] {
            std::fs::write(&p, text).expect("write");
            let e = Config::load(&p).expect_err(text).to_string();
            assert!(e.contains(needle) && !e.contains('\n') && !e.contains("s3cret"), "{text}: {e}");
        }
    }

    #[test]
    fn backend_urls_are_checked() {
        assert!(check_db_url("postgres://repro@127.0.0.1:5432/team").is_ok());
        assert!(check_db_url("postgresql://db.example/team").is_ok());
        for bad in ["mysql://x/y", "postgres://u:secret@h/db", "postgres://h", "postgres:///db", ""] {
            let e = check_db_url(bad).expect_err(bad);
            assert!(!e.contains('\n') && !e.contains("secret"), "{e}");
        }
        assert_eq!(parse_objects_url("s3://repro-team/ml/store"), Ok(("repro-team".into(), "ml/store".into())));
        assert_eq!(parse_objects_url("s3://bucket"), Ok(("bucket".into(), String::new())));
        for bad in ["gs://b/p", "s3://", "s3://B/x", "s3://a/x", "s3://key:secret@bucket/x", "/tmp/x"] {
            assert!(parse_objects_url(bad).is_err(), "{bad}");
        }
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join(CONFIG_FILE);
        std::fs::write(&p, "[store]\nformat = 1\ndb = \"postgres://u:pw@h/d\"\n").expect("write");
        assert!(Config::load(&p).expect_err("password").to_string().contains("PGPASSWORD"));
        std::fs::write(&p, "[store]\nformat = 1\ndb = \"postgres://u@h/d\"\nobjects = \"s3://bkt/p\"\n")
            .expect("write");
        let c = Config::load(&p).expect("loads");
        assert_eq!(c.store.objects.as_deref(), Some("s3://bkt/p"));
    }

    proptest::proptest! {
        /// Any text: no panic, one-line errors, and nothing with a password or credentials passes.
        #[test]
        fn backend_urls_never_panic_or_pass_secrets(url in "(postgres(ql)?://|s3://)?[a-z0-9:@/?.%_-]{0,40}") {
            if let Err(e) = check_db_url(&url) {
                proptest::prop_assert!(!e.contains('\n'));
            } else {
                let authority = url.split("://").nth(1).unwrap_or("").split(['/', '?']).next().unwrap_or("");
                proptest::prop_assert!(!authority.rsplit_once('@').is_some_and(|(u, _)| u.contains(':')), "{url}");
            }
            if let Ok((bucket, prefix)) = parse_objects_url(&url) {
                proptest::prop_assert!(!bucket.contains('@') && !url.contains('?'), "{url}");
                proptest::prop_assert!(!prefix.starts_with('/') && !prefix.ends_with('/'));
            }
        }
    }

    #[test]
    fn unknown_keys_and_garbage_are_one_line_errors() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join(CONFIG_FILE);
        for text in ["[store]\nformat = 1\ncolour = 3\n", "[[[", "[store]\nformat = \"x\"\n", "[store]\nformat = 9\n"] {
            std::fs::write(&p, text).expect("write");
            let e = Config::load(&p).expect_err(text).to_string();
            assert!(!e.contains('\n'), "{e}");
            assert!(e.contains("repro.toml"), "{e}");
        }
    }
}
