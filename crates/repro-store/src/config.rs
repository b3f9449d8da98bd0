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
}

impl Default for StoreSection {
    fn default() -> Self {
        StoreSection { format: 1 }
    }
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
        format!(
            "# repro store settings (https://example.invalid/repro/docs/architecture.md)\n{}\n\
             # How `repro replay` judges an output whose bytes differ (exit 0 = equivalent):\n\
             # [replay]\n\
             # compare = \"python compare.py {{recorded}} {{replayed}}\"\n\n\
             # The model registry's stages and what a version needs to enter each\n\
             # (`repro model promote`). Requirements: git_clean, env_pinned, random_seed,\n\
             # dataset_snapshot, replay_verified, signed, audit_complete, or any audit item.\n\
             # `parity = \"serving\"` also demands parity with a registered environment.\n\
             {}",
            toml::to_string(&Config::default()).expect("the default config serializes"),
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
