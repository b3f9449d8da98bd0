//! Audit rules: which of the ingredients an auditor asks for a run has, and why not.
//!
//! The seven an auditor asks for come first (`git_commit` … `registry_version`), then the
//! supporting evidence. Missing means the run cannot be rebuilt; warn means it can, with a
//! caveat the auditor should read.

use serde::{Deserialize, Serialize};

use crate::record::{
    CodeState, DeclaredEnvironment, EnvironmentInfo, Hardware, OutputRef, Params, PinStatus, PythonEnvironment,
    ReplaySummary, RunRecord, RunStatus, ScriptInfo, ScriptKind, Seed,
};
use crate::{Digest, RunId};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ItemStatus {
    Ok,
    Warn,
    Missing,
}

impl ItemStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            ItemStatus::Ok => "ok",
            ItemStatus::Warn => "warn",
            ItemStatus::Missing => "missing",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AuditItem {
    pub name: String,
    pub status: ItemStatus,
    pub detail: String,
    /// What to do about it; absent when the item is ok.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fix: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AuditReport {
    pub run: RunId,
    /// The run's name, when it has one (so the report reads alone, e.g. from a server).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    pub complete: bool,
    pub strict: bool,
    pub items: Vec<AuditItem>,
}

/// What re-hashing the run's objects found.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ObjectCheck {
    pub checked: usize,
    pub bytes: u64,
    pub missing: Vec<Digest>,
    pub corrupt: Vec<Digest>,
    /// Recorded facts of the run (metric points, params, tags, …) that its journal says
    /// were changed behind repro's back, one line each.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tampered: Vec<String>,
    /// The input data files among `missing`, by name, so the audit can say which data is
    /// absent rather than which digest.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub missing_data: Vec<MissingDataFile>,
    /// The model version (`pricing@1`) the run was imported with, from a bundle exported
    /// without its input data, when that is why data is missing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub imported_without_data: Option<String>,
}

/// A file of a run's input whose content the store does not hold.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MissingDataFile {
    pub digest: Digest,
    /// The file as the run saw it: the input's path, or a path inside the input folder.
    pub file: String,
    /// The input (`--data` path) it belongs to.
    pub input: String,
    /// The dataset version the input is (`data/train.csv:1`).
    pub dataset: Option<String>,
}

/// An input as known before the run starts (for `repro run --strict`).
#[derive(Clone, Debug)]
pub struct PlannedInput {
    pub path: String,
    pub reference: bool,
}

/// The seven ingredients, in the order an auditor reads them.
pub const AUDITOR_ITEMS: [&str; 7] = [
    "git_commit",
    "environment_file",
    "dataset_snapshot",
    "hyperparameters",
    "random_seed",
    "training_script",
    "registry_version",
];

/// The supporting evidence that follows the seven in a run's audit.
pub const SUPPORTING_ITEMS: [&str; 6] =
    ["installed_packages", "hardware", "outputs", "objects_verified", "result", "replay_verified"];

/// Every item of a run's audit, in report order (what a stage policy may `require`).
pub fn all_items() -> impl Iterator<Item = &'static str> {
    AUDITOR_ITEMS.iter().chain(SUPPORTING_ITEMS.iter()).copied()
}

fn item(name: &str, status: ItemStatus, detail: impl Into<String>, fix: Option<&str>) -> AuditItem {
    AuditItem { name: name.to_string(), status, detail: detail.into(), fix: fix.map(str::to_string) }
}

/// Whether a set of items makes a complete audit.
pub fn is_complete(items: &[AuditItem], strict: bool) -> bool {
    items.iter().all(|i| match i.status {
        ItemStatus::Ok => true,
        ItemStatus::Warn => !strict,
        ItemStatus::Missing => false,
    })
}

/// The full audit of a recorded run.
pub fn audit_run(
    record: &RunRecord,
    objects: &ObjectCheck,
    registry_versions: &[RegistryMention],
    replays: &[ReplaySummary],
    strict: bool,
) -> AuditReport {
    let inputs: Vec<PlannedInput> =
        record.inputs.iter().map(|i| PlannedInput { path: describe_input(i), reference: i.reference }).collect();
    let mut items = vec![
        git_commit(&record.code),
        environment_item(&record.environment),
        dataset_snapshot(&inputs),
        hyperparameters(&record.params, true),
        random_seed(&record.seed),
        training_script(&record.script),
        registry(registry_versions),
        installed_packages(record.environment.python.as_ref(), &record.script),
        hardware(&record.hardware),
        outputs(&record.outputs),
        objects_verified(objects),
        result(record),
        replay_verified(replays),
    ];
    items.iter_mut().for_each(|i| i.detail = i.detail.trim().to_string());
    AuditReport {
        run: record.id.clone(),
        name: record.name.clone(),
        complete: is_complete(&items, strict),
        strict,
        items,
    }
}

/// The part of the audit that can be judged before the command runs: what
/// `repro run --strict` checks before it starts anything.
pub fn pre_run_items(
    code: &CodeState,
    environment: &EnvironmentInfo,
    inputs: &[PlannedInput],
    params: &Params,
    seed: &Seed,
    script: &ScriptInfo,
) -> Vec<AuditItem> {
    vec![
        git_commit(code),
        environment_item(environment),
        dataset_snapshot(inputs),
        hyperparameters(params, false),
        random_seed(seed),
        training_script(script),
    ]
}

fn describe_input(i: &crate::record::DataRef) -> String {
    let name = i.dataset.as_deref().map(|d| format!(" = {d}")).unwrap_or_default();
    format!("{}{} ({}, {}, {})", i.path, name, i.snapshot.short(), count(i.files, "file"), human_bytes(i.bytes))
}

pub fn git_commit(code: &CodeState) -> AuditItem {
    const N: &str = "git_commit";
    if code.repo_root.is_none() {
        let why = code.error.clone().unwrap_or_else(|| "the command did not run inside a git repository".into());
        return item(
            N,
            ItemStatus::Missing,
            why,
            Some("run from a git repository with the code committed (git init; git add -A; git commit)"),
        );
    }
    let Some(commit) = &code.commit else {
        return item(
            N,
            ItemStatus::Missing,
            "the repository has no commit yet",
            Some("commit the code (git add -A; git commit), then run again"),
        );
    };
    let short = &commit[..commit.len().min(12)];
    // A run recorded before capture stripped credentials may still hold one in its remote.
    let remote = code.remote.as_deref().map(crate::secrets::mask_text);
    let place = match (&code.branch, &remote) {
        (Some(b), Some(r)) => format!(" on {b} ({r})"),
        (Some(b), None) => format!(" on {b} (no remote)"),
        (None, Some(r)) => format!(" (detached, {r})"),
        (None, None) => " (detached, no remote)".into(),
    };
    if !code.dirty {
        return item(N, ItemStatus::Ok, format!("commit {short}{place}, clean tree"), None);
    }
    let mut parts = Vec::new();
    if code.diff.is_some() {
        parts.push(format!("uncommitted changes to {} stored as a diff", list(&code.diff_files, 4)));
    }
    if !code.untracked.is_empty() {
        let names: Vec<String> = code.untracked.iter().map(|f| f.path.clone()).collect();
        parts.push(format!("untracked {} stored", list(&names, 4)));
    }
    if !code.untracked_skipped.is_empty() {
        let names: Vec<String> = code.untracked_skipped.iter().map(|f| format!("{} ({})", f.path, f.reason)).collect();
        parts.push(format!("NOT stored: {}", list(&names, 4)));
    }
    item(
        N,
        ItemStatus::Warn,
        format!("commit {short}{place}, dirty tree: {}", parts.join("; ")),
        Some("commit (or ignore) your changes before the run, so the commit alone rebuilds the code"),
    )
}

/// The environment item of a run: its declared file, or the registered environment it was
/// tied to; a run that went ahead despite drift from that environment is flagged.
pub fn environment_item(env: &EnvironmentInfo) -> AuditItem {
    let mut it = match (&env.declared, &env.registered) {
        (None, Some(r)) => item(
            "environment_file",
            ItemStatus::Ok,
            format!("registered environment {r} (an installed set, every version exact)"),
            None,
        ),
        (declared, registered) => {
            let mut it = environment_file(declared.as_ref());
            if let Some(r) = registered {
                it.detail = format!("{} — registered as {r}", it.detail);
            }
            it
        }
    };
    if !env.drift.is_empty() {
        it.status = ItemStatus::Warn;
        it.detail = format!(
            "the interpreter differed from {} ({}): {}",
            env.registered.as_deref().unwrap_or("the registered environment"),
            count(env.drift.len() as u64, "difference"),
            list(&env.drift, 4)
        );
        it.fix = Some(
            "rebuild the environment from the registered version (repro env export), or register the new one".into(),
        );
    }
    it
}

pub fn environment_file(declared: Option<&DeclaredEnvironment>) -> AuditItem {
    const N: &str = "environment_file";
    let Some(d) = declared else {
        return item(
            N,
            ItemStatus::Missing,
            "no environment file: none given with --env, and no environment.yml, requirements.txt, pyproject.toml + uv.lock or poetry.lock in the repository",
            Some("add a pinned requirements.txt (pip freeze > requirements.txt) or pass --env FILE"),
        );
    };
    if d.requirements.is_empty() {
        return item(
            N,
            ItemStatus::Warn,
            format!("{} ({}) declares no requirements", d.path, d.format),
            Some("list every dependency with an exact version (name==x.y.z)"),
        );
    }
    let loose: Vec<String> = d
        .requirements
        .iter()
        .filter(|r| r.status != PinStatus::Pinned)
        .map(|r| match r.status {
            PinStatus::Unpinned => format!("{} (unpinned, {})", r.name, r.origin),
            _ => format!("{} {} (loose, {})", r.name, r.spec, r.origin),
        })
        .collect();
    if loose.is_empty() {
        item(
            N,
            ItemStatus::Ok,
            format!("{} ({}): {} requirements, all pinned", d.path, d.format, d.requirements.len()),
            None,
        )
    } else {
        item(
            N,
            ItemStatus::Warn,
            format!("{}: {} of {} requirements not pinned: {}", d.path, loose.len(), d.requirements.len(), list(&loose, 6)),
            Some("pin each with an exact version (==x.y.z for pip, =x.y.z for conda); `pip freeze` shows what is installed"),
        )
    }
}

pub fn dataset_snapshot(inputs: &[PlannedInput]) -> AuditItem {
    const N: &str = "dataset_snapshot";
    if inputs.is_empty() {
        return item(
            N,
            ItemStatus::Missing,
            "no input data recorded",
            Some("pass each input file or folder with --data PATH"),
        );
    }
    let refs: Vec<String> = inputs.iter().filter(|i| i.reference).map(|i| i.path.clone()).collect();
    let all: Vec<String> = inputs.iter().map(|i| i.path.clone()).collect();
    if refs.is_empty() {
        item(N, ItemStatus::Ok, list(&all, 6), None)
    } else {
        item(
            N,
            ItemStatus::Warn,
            format!("reference-only (digests recorded, contents not stored): {}", list(&refs, 6)),
            Some("snapshot without --reference so the store keeps the bytes"),
        )
    }
}

pub fn hyperparameters(params: &Params, after_run: bool) -> AuditItem {
    const N: &str = "hyperparameters";
    let n = params.values.len() + params.logged.len();
    if n == 0 {
        let detail = if after_run {
            "no hyperparameters recorded: none given with --params/--param, none logged"
        } else {
            "no hyperparameters given with --params/--param"
        };
        return item(
            N,
            ItemStatus::Missing,
            detail,
            Some("pass --params params.yaml or --param key=value (values hard-coded in the script cannot be audited)"),
        );
    }
    let mut sources: Vec<String> = params.files.iter().map(|f| f.path.clone()).collect();
    if !params.logged.is_empty() {
        sources.push(format!("{} logged", params.logged.len()));
    }
    let keys: Vec<String> = params
        .values
        .iter()
        .map(|(k, v)| format!("{k}={}", crate::params::display_value(v)))
        .chain(params.logged.iter().map(|(k, v)| format!("{k}={v}")))
        .collect();
    let from = if sources.is_empty() { String::new() } else { format!(" from {}", sources.join(", ")) };
    item(N, ItemStatus::Ok, format!("{n} params{from}: {}", list(&keys, 5)), None)
}

pub fn random_seed(seed: &Seed) -> AuditItem {
    const N: &str = "random_seed";
    if seed.generated {
        item(
            N,
            ItemStatus::Warn,
            format!("seed {} was generated, not chosen", seed.value),
            Some("pass --seed N so the seed is a decision, not an accident"),
        )
    } else {
        item(
            N,
            ItemStatus::Ok,
            format!("seed {} (given with --seed), exported as REPRO_SEED and PYTHONHASHSEED", seed.value),
            None,
        )
    }
}

pub fn training_script(script: &ScriptInfo) -> AuditItem {
    const N: &str = "training_script";
    let argv = script.argv.join(" ");
    match script.kind {
        ScriptKind::PythonInline => {
            return item(
                N,
                ItemStatus::Warn,
                format!("inline code (`{}`): only the command line is recorded", truncate(&argv, 60)),
                Some("put the training code in a file tracked by git"),
            );
        }
        ScriptKind::PythonModule if script.path.is_none() => {
            return item(N, ItemStatus::Warn, format!("`{}` runs a module of an installed package, not a file of the repository; its version is in installed_packages", truncate(&argv, 60)), Some("run a module or script file that lives in the repository"));
        }
        ScriptKind::Command if script.path.is_none() => {
            return item(
                N,
                ItemStatus::Warn,
                format!(
                    "`{}` runs no script file of the repository: only the command line is recorded",
                    truncate(&argv, 60)
                ),
                Some("run a script file tracked by git (python train.py, ./train.sh)"),
            );
        }
        _ => {}
    }
    let Some(path) = &script.path else {
        return item(
            N,
            ItemStatus::Missing,
            format!("could not tell which script `{}` runs", truncate(&argv, 60)),
            Some("run the script by its path (python train.py)"),
        );
    };
    let Some(digest) = &script.digest else {
        return item(
            N,
            ItemStatus::Missing,
            format!("{path} was not found when the run started"),
            Some("check the script path"),
        );
    };
    match script.tracked_unchanged {
        Some(true) => item(N, ItemStatus::Ok, format!("{path} ({}), tracked by git, unchanged", digest.short()), None),
        Some(false) => {
            let state = script.git_state.as_deref().unwrap_or("not committed");
            item(
                N,
                ItemStatus::Warn,
                format!("{path} is {state}; its content is stored as {}", digest.short()),
                Some("commit the script (git add; git commit) before the run"),
            )
        }
        None => item(
            N,
            ItemStatus::Warn,
            format!("{path} is outside git; its content is stored as {}", digest.short()),
            Some("keep the script in the git repository"),
        ),
    }
}

/// A model version that pins a run, as the audit of that run sees it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RegistryMention {
    /// `pricing@3`.
    pub reference: String,
    pub stage: Option<String>,
    pub archived: bool,
    /// Whether the lineage the version pins is the run's lineage.
    pub lineage_matches: bool,
}

impl RegistryMention {
    pub fn new(reference: impl Into<String>) -> Self {
        RegistryMention { reference: reference.into(), stage: None, archived: false, lineage_matches: true }
    }
}

pub fn registry(versions: &[RegistryMention]) -> AuditItem {
    const N: &str = "registry_version";
    if versions.is_empty() {
        return item(
            N,
            ItemStatus::Warn,
            "no model version refers to this run",
            Some("register the artifact: repro model register RUN --name NAME --artifact PATH"),
        );
    }
    let broken: Vec<&RegistryMention> = versions.iter().filter(|v| !v.lineage_matches).collect();
    if !broken.is_empty() {
        let names: Vec<String> = broken.iter().map(|v| v.reference.clone()).collect();
        return item(
            N,
            ItemStatus::Missing,
            format!(
                "{} pin(s) a lineage this run no longer has: the record or the registry was changed",
                list(&names, 4)
            ),
            Some("run `repro fsck` and `repro model verify NAME@V`"),
        );
    }
    let names: Vec<String> = versions
        .iter()
        .map(|v| match (&v.stage, v.archived) {
            (_, true) => format!("{} (archived)", v.reference),
            (Some(s), false) => format!("{} ({s})", v.reference),
            (None, false) => v.reference.clone(),
        })
        .collect();
    item(N, ItemStatus::Ok, format!("registered as {}", list(&names, 4)), None)
}

pub fn installed_packages(python: Option<&PythonEnvironment>, script: &ScriptInfo) -> AuditItem {
    const N: &str = "installed_packages";
    match python {
        Some(p) => item(
            N,
            ItemStatus::Ok,
            format!(
                "Python {} ({} at {}): {} distributions",
                p.version.as_deref().unwrap_or("?"),
                p.kind,
                p.prefix,
                p.packages.len()
            ),
            None,
        ),
        None if matches!(script.kind, ScriptKind::PythonFile | ScriptKind::PythonModule | ScriptKind::PythonInline) => {
            item(
                N,
                ItemStatus::Missing,
                "the Python interpreter's installed packages could not be read",
                Some("run with an interpreter from a virtualenv, conda env or PATH"),
            )
        }
        None => item(
            N,
            ItemStatus::Warn,
            "no Python interpreter found for this command",
            Some("activate the environment the command uses (VIRTUAL_ENV / CONDA_PREFIX)"),
        ),
    }
}

pub fn hardware(h: &Hardware) -> AuditItem {
    const N: &str = "hardware";
    let gpus = if h.gpus.is_empty() {
        format!("no GPU ({})", h.gpu_probe)
    } else {
        h.gpus.iter().map(|g| g.model.clone()).collect::<Vec<_>>().join(", ")
    };
    let mem = h.memory_bytes.map(human_bytes).unwrap_or_else(|| "? memory".into());
    let detail = format!(
        "{}, {} usable cores of {}, {mem}, {gpus}",
        h.cpu_model.as_deref().unwrap_or("unknown CPU"),
        h.usable_cores,
        h.logical_cpus
    );
    if h.cpu_model.is_none() {
        item(N, ItemStatus::Warn, detail, Some("hardware could not be read on this platform"))
    } else {
        item(N, ItemStatus::Ok, detail, None)
    }
}

pub fn outputs(outputs: &[OutputRef]) -> AuditItem {
    const N: &str = "outputs";
    if outputs.is_empty() {
        return item(
            N,
            ItemStatus::Warn,
            "no outputs declared",
            Some("pass --output PATH for each artifact (the model file) so it is stored and can be compared on replay"),
        );
    }
    let missing: Vec<String> = outputs.iter().filter(|o| o.missing).map(|o| o.path.clone()).collect();
    if !missing.is_empty() {
        return item(
            N,
            ItemStatus::Missing,
            format!("declared but not produced: {}", list(&missing, 6)),
            Some("check the --output paths and that the command wrote them"),
        );
    }
    let stale: Vec<String> = outputs.iter().filter(|o| o.predates_run).map(|o| o.path.clone()).collect();
    if !stale.is_empty() {
        return item(
            N,
            ItemStatus::Warn,
            format!("not rewritten by the run (left from before it): {}", list(&stale, 6)),
            Some("check that the command writes its outputs; delete stale artifacts before the run"),
        );
    }
    let all: Vec<String> = outputs
        .iter()
        .map(|o| match &o.snapshot {
            Some(s) => format!("{} ({}, {})", o.path, s.short(), human_bytes(o.bytes)),
            None => o.path.clone(),
        })
        .collect();
    item(N, ItemStatus::Ok, list(&all, 6), None)
}

pub fn objects_verified(check: &ObjectCheck) -> AuditItem {
    const N: &str = "objects_verified";
    if !check.tampered.is_empty() {
        let shown: Vec<&str> = check.tampered.iter().take(3).map(String::as_str).collect();
        let more = check.tampered.len().saturating_sub(shown.len());
        return item(
            N,
            ItemStatus::Missing,
            format!(
                "{} recorded fact(s) changed behind repro's back: {}{}",
                check.tampered.len(),
                shown.join("; "),
                if more > 0 { format!("; and {more} more") } else { String::new() }
            ),
            Some("run `repro fsck` for the whole list, and restore .repro from a backup"),
        );
    }
    if check.missing.is_empty() && check.corrupt.is_empty() {
        return item(
            N,
            ItemStatus::Ok,
            format!("{} objects present and re-hashed ({})", check.checked, human_bytes(check.bytes)),
            None,
        );
    }
    let data: Vec<&MissingDataFile> = check.missing_data.iter().filter(|f| check.missing.contains(&f.digest)).collect();
    let mut bad: Vec<String> = check
        .missing
        .iter()
        .filter(|d| !data.iter().any(|f| &f.digest == *d))
        .map(|d| format!("{} missing", d.short()))
        .collect();
    bad.extend(check.corrupt.iter().map(|d| format!("{} corrupt", d.short())));
    let failed = bad.len() + data.len();
    if data.is_empty() {
        return item(
            N,
            ItemStatus::Missing,
            format!("{failed} of {} objects failed: {}", check.checked, list(&bad, 6)),
            Some("run `repro fsck` to see the damage; restore the store from a backup"),
        );
    }
    let files: Vec<String> = data
        .iter()
        .map(|f| {
            let of = match &f.dataset {
                Some(d) => format!(" of dataset {d}"),
                None if f.file != f.input => format!(" of input {}", f.input),
                None => String::new(),
            };
            format!("{}{of} ({})", f.file, f.digest.short())
        })
        .collect();
    let why = match &check.imported_without_data {
        Some(version) => format!(
            "the run came with {version} from a bundle exported without --include-data, so this store has its data's digests but not its content"
        ),
        None => "this store has their digests but not their content".to_string(),
    };
    let mut detail = format!(
        "{failed} of {} objects failed: the input data {} {} not in this store: {why}",
        check.checked,
        list(&files, 4),
        if files.len() == 1 { "is" } else { "are" }
    );
    if !bad.is_empty() {
        detail.push_str(&format!("; also {}", list(&bad, 6)));
    }
    let inputs: Vec<String> = {
        let mut v: Vec<String> = data.iter().map(|f| f.input.clone()).collect();
        v.dedup();
        v
    };
    let fix = match &check.imported_without_data {
        Some(version) => format!(
            "in the store it came from, export it with its data (`repro bundle export {version} -o FILE --include-data`) and import that into a fresh store; or, holding the same data, add it here with `repro data snapshot {}`",
            inputs.join(" ")
        ),
        None => format!(
            "restore the store from a backup (`repro fsck` lists the damage); or, holding the same data, add it back with `repro data snapshot {}`",
            inputs.join(" ")
        ),
    };
    AuditItem { name: N.to_string(), status: ItemStatus::Missing, detail, fix: Some(fix) }
}

/// Whether a replay rebuilt the run and got the same result. The latest replay decides:
/// a run that replayed identical once but differs now has stopped being reproducible.
pub fn replay_verified(replays: &[ReplaySummary]) -> AuditItem {
    const N: &str = "replay_verified";
    let Some(last) = replays.last() else {
        return item(
            N,
            ItemStatus::Warn,
            "never replayed: nobody has rebuilt this run and compared the result",
            Some("run `repro replay RUN` to rebuild it from the store and compare the outputs"),
        );
    };
    let earlier = match replays.len() {
        1 => String::new(),
        n => format!(" (latest of {n} replays)"),
    };
    if last.verdict.reproduced() {
        item(
            N,
            ItemStatus::Ok,
            format!("replay {} at {} was {}{earlier}", last.replay.short(), last.at, last.verdict.as_str()),
            None,
        )
    } else {
        item(
            N,
            ItemStatus::Missing,
            format!("replay {} at {} differs from this run{earlier}", last.replay.short(), last.at),
            Some("`repro diff RUN REPLAY` shows what differs and the likely causes"),
        )
    }
}

pub fn result(record: &RunRecord) -> AuditItem {
    const N: &str = "result";
    let code = record.exit_code.map(|c| format!(" (exit {c})")).unwrap_or_default();
    match record.status {
        RunStatus::Finished => item(N, ItemStatus::Ok, format!("finished{code}"), None),
        RunStatus::Running => item(N, ItemStatus::Warn, "still running", Some("audit again when the run has ended")),
        RunStatus::Failed => item(
            N,
            ItemStatus::Missing,
            format!("the command failed{code}"),
            Some("a failed run produced no result to reproduce; fix it and run again"),
        ),
        RunStatus::Killed => item(
            N,
            ItemStatus::Missing,
            format!("the command was killed (signal {})", record.signal.unwrap_or(0)),
            Some("run again to completion"),
        ),
        RunStatus::Interrupted => item(
            N,
            ItemStatus::Missing,
            "repro was interrupted before the run ended; nothing after the start was recorded",
            Some("run again to completion"),
        ),
    }
}

fn list(items: &[String], max: usize) -> String {
    if items.len() <= max {
        items.join(", ")
    } else {
        format!("{} and {} more", items[..max].join(", "), items.len() - max)
    }
}

fn truncate(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        s.to_string()
    } else {
        format!("{}…", s.chars().take(max).collect::<String>())
    }
}

/// "1 file", "3 files".
pub fn count(n: u64, noun: &str) -> String {
    if n == 1 {
        format!("1 {noun}")
    } else {
        format!("{n} {noun}s")
    }
}

/// Bytes for people: 1.5 KiB, 2.0 GiB.
pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u < UNITS.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::*;

    /// The sample record, with every declared requirement pinned (the sample's loose pin
    /// is for the diff's tests).
    fn record() -> RunRecord {
        let mut r = crate::record::sample::record();
        if let Some(d) = r.environment.declared.as_mut() {
            d.requirements.retain(|q| q.status == PinStatus::Pinned);
        }
        r
    }

    fn status_of(r: &AuditReport, name: &str) -> ItemStatus {
        r.items.iter().find(|i| i.name == name).map(|i| i.status).expect("item present")
    }

    #[test]
    fn the_item_list_is_the_report() {
        let r = audit_run(&record(), &ObjectCheck::default(), &[], &[], false);
        let names: Vec<&str> = r.items.iter().map(|i| i.name.as_str()).collect();
        assert_eq!(names, all_items().collect::<Vec<_>>());
    }

    #[test]
    fn a_complete_record_is_complete_but_not_strictly() {
        let r = audit_run(&record(), &ObjectCheck::default(), &[], &[], false);
        assert!(r.complete, "{r:#?}");
        for name in AUDITOR_ITEMS.iter().take(6) {
            assert_eq!(status_of(&r, name), ItemStatus::Ok, "{name}");
        }
        assert_eq!(status_of(&r, "registry_version"), ItemStatus::Warn);
        assert!(!audit_run(&record(), &ObjectCheck::default(), &[], &[], true).complete);
        let replayed = [ReplaySummary {
            replay: RunId::parse("0123456789abcdef0123456789abcdef").expect("id"),
            verdict: crate::record::Verdict::Identical,
            at: "2026-01-01T00:00:00Z".into(),
        }];
        assert!(
            !audit_run(&record(), &ObjectCheck::default(), &[RegistryMention::new("pricing@3")], &[], true).complete
        );
        assert!(
            audit_run(&record(), &ObjectCheck::default(), &[RegistryMention::new("pricing@3")], &replayed, true)
                .complete
        );
        let differs = [ReplaySummary { verdict: crate::record::Verdict::Differs, ..replayed[0].clone() }];
        let r = audit_run(&record(), &ObjectCheck::default(), &[RegistryMention::new("pricing@3")], &differs, false);
        assert!(!r.complete);
        assert!(r.items.iter().any(|i| i.name == "replay_verified" && i.status == ItemStatus::Missing));
        let names: Vec<&str> = r.items.iter().map(|i| i.name.as_str()).collect();
        assert_eq!(&names[..7], &AUDITOR_ITEMS[..]);
    }

    #[test]
    fn each_gap_is_named() {
        let mut rec = record();
        rec.code.dirty = true;
        rec.code.diff = Some(Digest::of_bytes(b"diff"));
        rec.code.diff_files = vec!["train.py".into()];
        rec.seed.generated = true;
        rec.environment.declared.as_mut().expect("declared").requirements[0].status = PinStatus::Unpinned;
        rec.inputs[0].reference = true;
        rec.script.tracked_unchanged = Some(false);
        rec.script.git_state = Some("modified since the last commit".into());
        let r = audit_run(&rec, &ObjectCheck::default(), &[], &[], false);
        assert!(r.complete, "warnings only");
        for name in ["git_commit", "environment_file", "dataset_snapshot", "random_seed", "training_script"] {
            assert_eq!(status_of(&r, name), ItemStatus::Warn, "{name}");
        }
        rec.params = Params::default();
        rec.inputs.clear();
        rec.environment.declared = None;
        rec.code.commit = None;
        rec.outputs[0].missing = true;
        rec.status = RunStatus::Interrupted;
        let bad = ObjectCheck { checked: 3, missing: vec![Digest::of_bytes(b"m")], ..Default::default() };
        let r = audit_run(&rec, &bad, &[], &[], false);
        assert!(!r.complete);
        for name in [
            "git_commit",
            "environment_file",
            "dataset_snapshot",
            "hyperparameters",
            "outputs",
            "objects_verified",
            "result",
        ] {
            assert_eq!(status_of(&r, name), ItemStatus::Missing, "{name}");
            assert!(
                r.items.iter().find(|i| i.name == name).and_then(|i| i.fix.as_ref()).is_some(),
                "{name} says what to do"
            );
        }
    }

    #[test]
    fn missing_input_data_is_named_with_its_dataset_and_where_to_get_it() {
        let d = Digest::of_bytes(b"data");
        let other = Digest::of_bytes(b"other");
        let file = MissingDataFile {
            digest: d.clone(),
            file: "data/train.csv".into(),
            input: "data/train.csv".into(),
            dataset: Some("data/train.csv:1".into()),
        };
        let mut check = ObjectCheck {
            checked: 14,
            missing: vec![d.clone()],
            missing_data: vec![file],
            imported_without_data: Some("pricing@1".into()),
            ..Default::default()
        };
        let it = objects_verified(&check);
        assert_eq!(it.status, ItemStatus::Missing);
        assert!(
            it.detail.starts_with(&format!(
                "1 of 14 objects failed: the input data data/train.csv of dataset data/train.csv:1 ({}) is not in this store: the run came with pricing@1 from a bundle exported without --include-data",
                d.short()
            )),
            "{}",
            it.detail
        );
        let fix = it.fix.expect("fix");
        assert!(fix.contains("repro bundle export pricing@1 -o FILE --include-data"), "{fix}");
        assert!(fix.contains("repro data snapshot data/train.csv"), "{fix}");
        assert!(!fix.contains("backup"), "{fix}");
        // Other damage is still listed, and data lost from a store of its own points at backups.
        check.imported_without_data = None;
        check.corrupt = vec![other.clone()];
        let it = objects_verified(&check);
        assert!(it.detail.contains(&format!("also {} corrupt", other.short())), "{}", it.detail);
        assert!(it.fix.expect("fix").contains("restore the store from a backup"));
    }

    #[test]
    fn a_remote_with_a_credential_is_masked() {
        let mut rec = record();
        rec.code.remote = Some("https://oauth2:TOKEN@host/r.git".into());
        let it = git_commit(&rec.code);
        assert!(it.detail.contains("(https://***@host/r.git)"), "{}", it.detail);
        assert!(!it.detail.contains("TOKEN"));
    }

    #[test]
    fn lineage_changes_with_any_field() {
        let a = record();
        let mut b = record();
        assert_eq!(a.lineage(), b.lineage());
        b.seed.value = 43;
        assert_ne!(a.lineage(), b.lineage());
        assert!(!a.canonical_json().contains(&b'\n'));
    }

    #[test]
    fn human_bytes_reads_well() {
        assert_eq!(human_bytes(5), "5 B");
        assert_eq!(human_bytes(2048), "2.0 KiB");
        assert_eq!(human_bytes(3 << 30), "3.0 GiB");
    }
}
