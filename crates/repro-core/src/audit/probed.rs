//! The items the in-process probe's record adds or sharpens: what the script read without
//! declaring it, the seeds it set itself, the overrides it never read, the determinism traps.

use super::*;
use crate::probe::{determinism_traps, ProbeRecord, ProbeStatus};

/// Why there is nothing to judge, when there is nothing.
fn unwatched(probe: Option<&ProbeRecord>) -> Option<(&'static str, &'static str)> {
    match probe.map(|p| p.status) {
        None => Some((
            "not checked: the run was recorded without repro's in-process probe",
            "run it again with this repro (the probe is on by default)",
        )),
        Some(ProbeStatus::Disabled) => Some((
            "not checked: recorded with --no-probe",
            "run without --no-probe so repro sees what the script read and set",
        )),
        Some(ProbeStatus::NoReport) => Some((
            "not checked: no Python process reported (the probe watches Python only; `python -S`/`-I`/`-E` or os._exit also silence it)",
            "nothing to do for a non-Python command; otherwise let the interpreter load sitecustomize",
        )),
        Some(ProbeStatus::Ran) => None,
    }
}

/// `undeclared_inputs`: files read inside the repository or a data folder that no `--data`
/// covers and git does not hold.
pub fn undeclared_inputs(probe: Option<&ProbeRecord>) -> AuditItem {
    const N: &str = "undeclared_inputs";
    let Some(p) = probe.filter(|_| unwatched(probe).is_none()) else {
        let (detail, fix) = unwatched(probe).unwrap_or_default();
        return item(N, ItemStatus::Warn, detail, Some(fix));
    };
    let present: Vec<String> = p
        .undeclared_inputs
        .iter()
        .filter(|u| u.exists)
        .map(|u| format!("{} ({})", u.path, human_bytes(u.size)))
        .collect();
    if !present.is_empty() {
        let paths: Vec<&str> = p.undeclared_inputs.iter().filter(|u| u.exists).map(|u| u.path.as_str()).collect();
        let fix = format!(
            "declare {}, or run with --auto-data to snapshot what the script reads",
            paths.iter().take(3).map(|p| format!("--data {p}")).collect::<Vec<_>>().join(" ")
        );
        return AuditItem {
            name: N.into(),
            status: ItemStatus::Missing,
            detail: format!("read by the script but not declared: {}", list(&present, 6)),
            fix: Some(fix),
        };
    }
    let mut detail = format!(
        "every file the script read in the repository or a data folder is declared or in git ({} read, {} opened in all)",
        count(p.reads.len() as u64, "file"),
        p.files_opened
    );
    if !p.auto_data.is_empty() {
        detail.push_str(&format!("; --auto-data snapshotted {}", list(&p.auto_data, 4)));
    }
    item(N, ItemStatus::Ok, detail, None)
}

/// The seed item, checked against the seeds the script set itself.
pub fn check_seed(mut it: AuditItem, seed: &Seed, probe: Option<&ProbeRecord>) -> AuditItem {
    let Some(p) = probe.filter(|p| p.status == ProbeStatus::Ran) else { return it };
    let set = p.seeded_values();
    let other: Vec<String> = set.iter().filter(|s| s.as_u64() != Some(seed.value)).map(|s| s.describe()).collect();
    if !other.is_empty() {
        it.status = ItemStatus::Missing;
        it.detail = format!("script set {}; recorded {}", list(&other, 3), seed.value);
        it.fix = Some(format!(
            "seed from the run's seed (int(os.environ['REPRO_SEED'])), or record the one used: --seed {}",
            set.iter().find_map(|s| s.as_u64()).map(|v| v.to_string()).unwrap_or_else(|| "N".into())
        ));
    } else if !set.is_empty() {
        let via: Vec<String> = set.iter().map(|s| s.via.clone()).collect();
        it.detail = format!("{}; the script seeded {} with it", it.detail, list(&via, 4));
    } else if it.status == ItemStatus::Ok {
        it.detail =
            format!("{}; the script called no seeding function (it may pass the seed as random_state)", it.detail);
    }
    it
}

/// The hyperparameter item, warned when `--param` overrides were given to a script that
/// never read `REPRO_PARAMS`.
pub fn check_params(mut it: AuditItem, probe: Option<&ProbeRecord>) -> AuditItem {
    let Some(p) = probe.filter(|p| p.status == ProbeStatus::Ran) else { return it };
    if !p.params.unread_overrides.is_empty() && it.status == ItemStatus::Ok {
        it.status = ItemStatus::Warn;
        it.detail = format!(
            "--param {} given but the script never read REPRO_PARAMS{}: the override had no effect; {}",
            list(&p.params.unread_overrides, 4),
            if p.params.files_read.is_empty() {
                String::new()
            } else {
                format!(" (it read {} itself)", list(&p.params.files_read, 3))
            },
            it.detail
        );
        it.fix = Some(
            "read the params from the REPRO_PARAMS file (JSON, overrides applied) instead of the config file".into(),
        );
    }
    it
}

/// `determinism`: the frameworks' settings at exit and the known traps, with their fixes.
pub fn determinism(probe: Option<&ProbeRecord>, environment: &EnvironmentInfo) -> AuditItem {
    const N: &str = "determinism";
    let Some(p) = probe.filter(|_| unwatched(probe).is_none()) else {
        let (detail, fix) = unwatched(probe).unwrap_or_default();
        return item(N, ItemStatus::Warn, detail, Some(fix));
    };
    let mut facts = Vec::new();
    if !p.ranks.is_empty() {
        facts.push(format!(
            "{} ran{}",
            count(p.ranks.len() as u64, "rank"),
            p.world_size.map(|w| format!(" (world size {w})")).unwrap_or_default()
        ));
    }
    if let Some(t) = &p.frameworks.torch {
        let flag = |v: Option<bool>| match v {
            Some(true) => "on",
            Some(false) => "off",
            None => "?",
        };
        facts.push(format!(
            "torch {}{}: deterministic algorithms {}, cudnn.benchmark {}, cudnn.deterministic {}",
            t.version,
            t.cuda.as_deref().map(|c| format!(" (CUDA {c})")).unwrap_or_default(),
            flag(t.deterministic_algorithms),
            flag(t.cudnn_benchmark),
            flag(t.cudnn_deterministic)
        ));
    }
    if let Some(pool) = p.frameworks.threadpools.first() {
        facts.push(format!("{} threads: {}", pool.api, pool.num_threads.map(|n| n.to_string()).unwrap_or("?".into())));
    }
    let traps = determinism_traps(p, &environment.variables);
    if traps.is_empty() {
        let detail = if facts.is_empty() { "no known determinism trap".to_string() } else { facts.join("; ") };
        return item(N, ItemStatus::Ok, detail, None);
    }
    let what: Vec<String> = traps.iter().map(|t| t.what.clone()).collect();
    let fix: Vec<String> = traps.iter().map(|t| t.fix.clone()).collect();
    let mut detail = what.join("; ");
    if !facts.is_empty() {
        detail = format!("{detail} ({})", facts.join("; "));
    }
    AuditItem { name: N.into(), status: ItemStatus::Warn, detail, fix: Some(fix.join("; ")) }
}

/// The outputs item, warned about files the script wrote that no `--output` covers.
pub fn check_outputs(mut it: AuditItem, probe: Option<&ProbeRecord>) -> AuditItem {
    let Some(p) = probe.filter(|p| p.status == ProbeStatus::Ran && !p.probable_outputs.is_empty()) else { return it };
    let written = list(&p.probable_outputs, 5);
    if it.status == ItemStatus::Ok || it.detail == "no outputs declared" {
        it.status = ItemStatus::Warn;
        it.detail = format!("{}; written but not declared: {written}", it.detail);
        it.fix = Some(format!(
            "pass --output for what the run produces: {}",
            p.probable_outputs.iter().take(3).map(|o| format!("--output {o}")).collect::<Vec<_>>().join(" ")
        ));
    }
    it
}
