//! The seven items an auditor asks for, in the order they are read.

use super::*;

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
    // The image is the rest of the environment (system libraries, CUDA): a tag can be
    // re-pushed, so only a digest names it. Outside a container there is nothing to say.
    if let Some(w) = env.container.as_ref().and_then(|c| c.tag_only_warning()) {
        if it.status == ItemStatus::Ok {
            it.status = ItemStatus::Warn;
            it.fix = Some("docker inspect --format '{{index .RepoDigests 0}}' IMAGE gives the digest".into());
        }
        it.detail = format!("{} — {w}", it.detail);
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
    // A Python series pin and installer tools are noted, not counted against the file (the
    // same rule as `repro env check` without --strict).
    let notes: Vec<String> = d
        .requirements
        .iter()
        .filter_map(|r| {
            crate::environment::pin_note(r).map(|n| format!("{} {} ({n})", r.name, r.spec).replace("  ", " "))
        })
        .collect();
    let loose: Vec<String> = d
        .requirements
        .iter()
        .filter(|r| r.status != PinStatus::Pinned && crate::environment::pin_note(r).is_none())
        .map(|r| match r.status {
            PinStatus::Unpinned => format!("{} (unpinned, {})", r.name, r.origin),
            _ => format!("{} {} (loose, {})", r.name, r.spec, r.origin),
        })
        .collect();
    if loose.is_empty() {
        item(
            N,
            ItemStatus::Ok,
            if notes.is_empty() {
                format!("{} ({}): {} requirements, all pinned", d.path, d.format, d.requirements.len())
            } else {
                format!(
                    "{} ({}): {} requirements, pinned where it matters; {}",
                    d.path,
                    d.format,
                    d.requirements.len(),
                    list(&notes, 4)
                )
            },
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
    // Each source says how many it gave: the params given to repro (files merged with
    // --param) and the ones the script logged itself, never one sum of the two.
    let mut sources = Vec::new();
    if !params.values.is_empty() {
        let given = params.values.len();
        if params.files.is_empty() {
            sources.push(count(given as u64, "param"));
        } else {
            let files: Vec<&str> = params.files.iter().map(|f| f.path.as_str()).collect();
            sources.push(format!("{given} from {}", files.join(", ")));
        }
    }
    if !params.logged.is_empty() {
        sources.push(format!("{} logged by the script", params.logged.len()));
    }
    let keys: Vec<String> = params
        .values
        .iter()
        .map(|(k, v)| format!("{k}={}", crate::params::display_value(v)))
        .chain(params.logged.iter().map(|(k, v)| format!("{k}={v}")))
        .collect();
    item(N, ItemStatus::Ok, format!("{}: {}", sources.join(", "), list(&keys, 5)), None)
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
