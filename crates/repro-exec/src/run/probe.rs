//! The in-process probe: a `sitecustomize` put first on the command's PYTHONPATH, and the
//! judging of what it reported against what the run declared.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fs;
use std::path::{Path, PathBuf};

use repro_core::probe::{self, ProbeFile, ProbeRecord, ProbeStatus, RawFile, UndeclaredInput, UsedPackage};
use repro_core::record::RunRecord;

/// The probe's source, embedded so the binary is all there is to install.
const SITECUSTOMIZE: &str = include_str!("sitecustomize.py");

/// Files hashed as undeclared inputs: larger ones are named with their size only.
const HASH_LIMIT: u64 = 1 << 30;
/// How many reads and writes the record keeps (the count of all is kept too).
const MAX_LISTED: usize = 2000;

pub(super) struct Probe {
    /// Where the processes write their reports.
    pub(super) reports: PathBuf,
    /// The folder holding `sitecustomize.py`.
    code: PathBuf,
}

/// Puts the probe where the command's Python finds it: a folder per probe version under
/// the store's `probe/` (not `tmp/`, which fsck clears and a refused replay must leave
/// empty), so the interpreter's compiled copy is reused across runs (a compile per run
/// would cost milliseconds of every start-up).
pub(super) fn install(dir: &Path, work: &Path, python: Option<&Path>) -> std::io::Result<Probe> {
    // No `:` in the name: PYTHONPATH is split on it.
    let digest = repro_core::Digest::of_bytes(SITECUSTOMIZE.as_bytes()).short();
    let tag = digest.rsplit(':').next().unwrap_or("probe");
    let code = dir.join(tag);
    let file = code.join("sitecustomize.py");
    if fs::read(&file).ok().as_deref() != Some(SITECUSTOMIZE.as_bytes()) {
        fs::create_dir_all(&code)?;
        let part = code.join(format!(".sitecustomize.{}.tmp", std::process::id()));
        fs::write(&part, SITECUSTOMIZE)?;
        fs::rename(&part, &file)?;
    }
    // PYTHONDONTWRITEBYTECODE (common in containers) would make every run compile it again.
    let cached = fs::read_dir(code.join("__pycache__")).map(|d| d.count() > 0).unwrap_or(false);
    if let (false, Some(py)) = (cached, python) {
        let _ = std::process::Command::new(py)
            .args(["-I", "-S", "-c", "import py_compile, sys; py_compile.compile(sys.argv[1], doraise=True)"])
            .arg(&file)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status();
    }
    let reports = work.join("probe");
    fs::create_dir_all(&reports)?;
    Ok(Probe { reports, code })
}

impl Probe {
    /// What the command's environment gets: the report folder, and the probe first on
    /// PYTHONPATH (ahead of the user's own entries, which keep their order).
    pub(super) fn env(&self, vars: &BTreeMap<String, String>) -> Vec<(String, String)> {
        let mut path = self.code.display().to_string();
        if let Some(old) = vars.get("PYTHONPATH").filter(|v| !v.is_empty()) {
            path = format!("{path}:{old}");
        }
        vec![("REPRO_PROBE_DIR".into(), self.reports.display().to_string()), ("PYTHONPATH".into(), path)]
    }
}

/// What the run declared, for judging what the probe saw.
pub(super) struct Declared<'a> {
    pub(super) cwd: &'a Path,
    pub(super) inputs: Vec<PathBuf>,
    pub(super) outputs: Vec<PathBuf>,
    pub(super) params_files: Vec<PathBuf>,
    /// The `REPRO_PARAMS` file handed to the command.
    pub(super) params_json: &'a Path,
    /// The `--param` overrides given (keys).
    pub(super) overrides: Vec<String>,
    /// Files of repro's own for the run (the metrics file, logs): never the script's.
    pub(super) private: &'a Path,
}

/// Reads every process's report and judges it. Never fails: a report that cannot be read
/// is an error recorded in the probe's record.
pub(super) fn collect(probe: &Probe, record: &RunRecord, declared: &Declared) -> ProbeRecord {
    let mut reports = Vec::new();
    let mut errors = Vec::new();
    let mut names: Vec<PathBuf> = fs::read_dir(&probe.reports)
        .map(|d| d.flatten().map(|e| e.path()).filter(|p| p.extension().is_some_and(|x| x == "json")).collect())
        .unwrap_or_default();
    names.sort();
    for json in names {
        let files_text = fs::read_to_string(json.with_extension("files")).unwrap_or_default();
        let (files, bad) = probe::parse_files(&files_text);
        if bad > 0 {
            errors.push(format!("{}: {bad} unreadable file line(s)", json.display()));
        }
        match fs::read(&json).map_err(|e| e.to_string()).and_then(|b| probe::parse_report(&b, files)) {
            Ok(mut r) => {
                let paths = fs::read(json.with_extension("paths")).unwrap_or_default();
                let modes = fs::read_to_string(json.with_extension("modes")).unwrap_or_default();
                let paths = String::from_utf8_lossy(&paths);
                r.files.extend(probe::parse_events(&paths, &modes, &r.cwd));
                reports.push(r)
            }
            Err(e) => errors.push(e),
        }
    }
    if reports.is_empty() {
        let mut r = ProbeRecord::absent(ProbeStatus::NoReport);
        r.errors = errors;
        return r;
    }
    let merged = probe::merge(reports);
    let mut out = ProbeRecord {
        status: ProbeStatus::Ran,
        processes: merged.processes,
        ranks: merged.ranks.iter().map(|&(rank, local_rank)| probe::Rank { rank, local_rank, host: None }).collect(),
        world_size: merged.world_size,
        seeds: merged.seeds,
        frameworks: merged.frameworks,
        exception: merged.exception,
        ..Default::default()
    };
    out.errors = errors;
    out.errors.extend(merged.errors);

    let root = record.code.repo_root.as_deref().map(PathBuf::from);
    let canon = |p: &Path| fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf());
    let cwd = canon(declared.cwd);
    let inputs: Vec<PathBuf> = declared.inputs.iter().map(|p| canon(p)).collect();
    let data_dirs: Vec<&PathBuf> = inputs.iter().filter(|p| p.is_dir()).collect();
    let outputs: Vec<PathBuf> = declared.outputs.iter().map(|p| canon(p)).collect();
    let params_files: Vec<PathBuf> = declared.params_files.iter().map(|p| canon(p)).collect();
    let params_json = canon(declared.params_json);
    let private = canon(declared.private);
    let mut ignored: Vec<PathBuf> = merged.prefixes.iter().map(PathBuf::from).collect();
    if let Some(py) = &record.environment.python {
        ignored.extend(py.site_dirs.iter().map(PathBuf::from));
    }
    let script = record.script.path.as_ref().map(|p| root.as_deref().unwrap_or(&cwd).join(p));
    let env_files: Vec<PathBuf> = record
        .environment
        .declared
        .iter()
        .flat_map(|d| std::iter::once(d.path.clone()).chain(d.companions.iter().map(|c| c.path.clone())))
        .map(|p| root.as_deref().unwrap_or(&cwd).join(p))
        .collect();
    let recorded = |abs: &Path| super::prepare::recorded_path(abs, root.as_deref());
    let inside = |abs: &Path| {
        root.as_deref().is_some_and(|r| abs.starts_with(r))
            || abs.starts_with(&cwd)
            || data_dirs.iter().any(|d| abs.starts_with(d))
    };

    let mut candidates: Vec<(PathBuf, RawFile)> = Vec::new();
    let mut written: Vec<(PathBuf, RawFile)> = Vec::new();
    for f in merged.files {
        let raw_path = PathBuf::from(&f.path);
        let abs = canon(&raw_path);
        // The interpreter's and the installed packages' own files, compiled modules, and
        // what the kernel reads (/proc, /sys, /dev) are not the script's.
        let system = ["/proc/", "/sys/", "/dev/"].iter().any(|p| f.path.starts_with(p))
            || f.path.contains("/__pycache__/")
            || f.path.contains("/site-packages/")
            || f.path.contains("/dist-packages/");
        // REPRO_PARAMS lives in repro's private folder: ask about it before dropping that.
        if abs == params_json {
            out.params.repro_params_read |= f.read;
            continue;
        }
        if system || abs.starts_with(&private) || ignored.iter().any(|i| abs.starts_with(i)) {
            continue;
        }
        out.files_opened += 1;
        if params_files.contains(&abs) {
            if f.read && !out.params.files_read.contains(&recorded(&abs)) {
                out.params.files_read.push(recorded(&abs));
            }
            continue;
        }
        if !inside(&abs) || abs.components().any(|c| c.as_os_str() == ".git") {
            continue;
        }
        if f.read && out.reads.len() < MAX_LISTED {
            out.reads.push(ProbeFile { path: recorded(&abs), first: f.first, last: f.last });
        }
        if f.write && out.writes.len() < MAX_LISTED {
            out.writes.push(ProbeFile { path: recorded(&abs), first: f.first, last: f.last });
        }
        let covered = inputs.iter().any(|i| abs.starts_with(i))
            || script.as_deref() == Some(abs.as_path())
            || env_files.contains(&abs);
        if f.read && !f.written_first && !covered {
            candidates.push((abs.clone(), f.clone()));
        }
        if f.write && !outputs.iter().any(|o| abs.starts_with(o)) && !abs.starts_with(&params_json) {
            written.push((abs, f));
        }
    }
    if !declared.overrides.is_empty() && !out.params.repro_params_read {
        out.params.unread_overrides = declared.overrides.clone();
    }

    // Git holds what is tracked (its changes are in the stored diff) and the small untracked
    // files repro stored: those are code, not undeclared data.
    let in_git: BTreeSet<String> = match &root {
        Some(r) => {
            let rel: Vec<&Path> = candidates.iter().filter_map(|(a, _)| a.strip_prefix(r).ok()).collect();
            repro_capture::git::tracked_among(r, &rel)
        }
        None => BTreeSet::new(),
    };
    let untracked: BTreeSet<&str> = record.code.untracked.iter().map(|u| u.path.as_str()).collect();
    for (abs, _) in candidates {
        let rel = recorded(&abs);
        if in_git.contains(&rel) || untracked.contains(rel.as_str()) {
            continue;
        }
        let meta = fs::metadata(&abs).ok().filter(|m| m.is_file());
        let (digest, size) = match &meta {
            Some(m) if m.len() <= HASH_LIMIT => match repro_util::hash::hash_file(&abs) {
                Ok((d, n)) => (Some(d), n),
                Err(_) => (None, m.len()),
            },
            Some(m) => (None, m.len()),
            None => (None, 0),
        };
        out.undeclared_inputs.push(UndeclaredInput { path: rel, digest, size, exists: meta.is_some() });
    }
    for (abs, _) in written {
        let rel = recorded(&abs);
        let generated = rel.ends_with(".pyc") || rel.contains("__pycache__");
        if !generated && abs.is_file() && !out.probable_outputs.contains(&rel) {
            out.probable_outputs.push(rel);
        }
    }
    out.packages_used = packages_used(&merged.modules, record);
    out
}

/// The distributions the processes imported, from the modules' files and each site folder's
/// `top_level.txt`/`RECORD`, with the versions the run recorded as installed.
fn packages_used(modules: &BTreeMap<String, String>, record: &RunRecord) -> Vec<UsedPackage> {
    let Some(py) = &record.environment.python else { return Vec::new() };
    let mut owners: HashMap<String, String> = HashMap::new();
    let mut seen_dirs: BTreeSet<PathBuf> = BTreeSet::new();
    for file in modules.values() {
        let path = Path::new(file);
        let Some(site) =
            path.ancestors().find(|a| a.file_name().is_some_and(|n| n == "site-packages" || n == "dist-packages"))
        else {
            continue;
        };
        if seen_dirs.insert(site.to_path_buf()) {
            for (top, dist) in repro_capture::python::module_owners(site) {
                owners.entry(top).or_insert(dist);
            }
        }
    }
    let norm = repro_core::diff::normalize_package_name;
    let mut used: BTreeMap<String, UsedPackage> = BTreeMap::new();
    for top in modules.keys() {
        let Some(dist) = owners.get(top) else { continue };
        let Some(p) = py.packages.iter().find(|p| norm(&p.name) == norm(dist)) else { continue };
        used.entry(norm(&p.name)).or_insert(UsedPackage { name: p.name.clone(), version: p.version.clone() });
    }
    used.into_values().collect()
}
