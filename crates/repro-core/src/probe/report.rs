//! The probe's per-process reports as it writes them (`<pid>.json` and `<pid>.files`),
//! parsed, and merged into one view of the run.

use std::collections::BTreeMap;

use serde::Deserialize;

use super::{DataLoaderInfo, Frameworks, ProbeException, SeedCall, ThreadPool, TorchState};

/// One line of `<pid>.files`: `first \t last \t r|w|rw \t /absolute/path`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RawFile {
    pub path: String,
    pub first: u64,
    pub last: u64,
    pub read: bool,
    pub write: bool,
    /// The first access wrote it: the script's own product, even when it read it back.
    pub written_first: bool,
}

/// Parses `<pid>.files`; malformed lines are counted, not fatal (the probe's own bug must
/// not lose the rest).
pub fn parse_files(text: &str) -> (Vec<RawFile>, usize) {
    let mut out = Vec::new();
    let mut bad = 0;
    for line in text.lines().filter(|l| !l.is_empty()) {
        let mut parts = line.splitn(4, '\t');
        let (Some(first), Some(last), Some(mode), Some(path)) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            bad += 1;
            continue;
        };
        let (Ok(first), Ok(last)) = (first.parse(), last.parse()) else {
            bad += 1;
            continue;
        };
        if !path.starts_with('/') || !mode.chars().all(|c| c == 'r' || c == 'w') || mode.is_empty() {
            bad += 1;
            continue;
        }
        out.push(RawFile {
            path: path.to_string(),
            first,
            last,
            read: mode.contains('r'),
            write: mode.contains('w'),
            written_first: mode.starts_with('w'),
        });
    }
    (out, bad)
}

/// Parses the fast form (`<pid>.paths` and `<pid>.modes`: every open in order, NUL-separated,
/// as the process saw them) into one entry per file; relative paths resolve against `cwd`.
pub fn parse_events(paths: &str, modes: &str, cwd: &str) -> Vec<RawFile> {
    let mut out: Vec<RawFile> = Vec::new();
    let mut index: std::collections::HashMap<&str, usize> = std::collections::HashMap::new();
    if paths.is_empty() {
        return out;
    }
    for (i, (path, mode)) in paths.split('\0').zip(modes.split('\0')).enumerate() {
        let order = i as u64 + 1;
        let write = mode.contains(['w', 'a', 'x', '+']);
        let read = mode.contains(['r', '+']) || !write;
        match index.get(path) {
            Some(&k) => {
                let e = &mut out[k];
                e.last = order;
                e.read |= read;
                e.write |= write;
            }
            None => {
                let abs = if path.starts_with('/') { normalize(path) } else { normalize(&format!("{cwd}/{path}")) };
                index.insert(path, out.len());
                out.push(RawFile {
                    path: abs,
                    first: order,
                    last: order,
                    read,
                    write,
                    written_first: write && !mode.contains('r'),
                });
            }
        }
    }
    out
}

/// `a/./b/../c` → `a/c`, lexically (the file may be gone; symlinks are resolved later).
fn normalize(path: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for c in path.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            c => parts.push(c),
        }
    }
    format!("/{}", parts.join("/"))
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct RawFrameworks {
    torch: Option<TorchState>,
    tensorflow: Option<serde_json::Value>,
    jax: Option<serde_json::Value>,
    threadpools: Vec<RawPool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct RawPool {
    api: Option<String>,
    num_threads: Option<u64>,
    version: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct RawReport {
    pid: u32,
    program: String,
    rank: Option<String>,
    local_rank: Option<String>,
    world_size: Option<String>,
    cwd: String,
    prefixes: Vec<String>,
    seeds: Vec<(String, serde_json::Value)>,
    dataloaders: Vec<DataLoaderInfo>,
    frameworks: RawFrameworks,
    modules: BTreeMap<String, String>,
    exception: Option<ProbeException>,
    skipped_paths: u64,
    errors: Vec<String>,
}

/// One process's report.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ProcessReport {
    pub pid: u32,
    pub program: String,
    pub rank: Option<u32>,
    pub local_rank: Option<u32>,
    pub world_size: Option<u32>,
    pub cwd: String,
    /// `sys.prefix` and friends: where the interpreter's own files live.
    pub prefixes: Vec<String>,
    pub seeds: Vec<SeedCall>,
    pub frameworks: Frameworks,
    /// Top-level module → the file it came from (site-packages only).
    pub modules: BTreeMap<String, String>,
    pub exception: Option<ProbeException>,
    pub files: Vec<RawFile>,
    pub errors: Vec<String>,
}

/// Parses `<pid>.json` (and the already parsed `<pid>.files`).
pub fn parse_report(json: &[u8], files: Vec<RawFile>) -> Result<ProcessReport, String> {
    let raw: RawReport = serde_json::from_slice(json).map_err(|e| format!("unreadable probe report: {e}"))?;
    let num = |s: &Option<String>| s.as_deref().and_then(|v| v.trim().parse::<u32>().ok());
    let rank = num(&raw.rank);
    let mut errors = raw.errors;
    if raw.skipped_paths > 0 {
        errors.push(format!("{} path(s) with a tab or newline in their name were not recorded", raw.skipped_paths));
    }
    Ok(ProcessReport {
        pid: raw.pid,
        program: raw.program,
        rank,
        local_rank: num(&raw.local_rank),
        world_size: num(&raw.world_size),
        cwd: raw.cwd,
        prefixes: raw.prefixes,
        seeds: raw.seeds.into_iter().map(|(via, value)| SeedCall { via, value, rank }).collect(),
        frameworks: Frameworks {
            torch: raw.frameworks.torch,
            tensorflow: raw.frameworks.tensorflow,
            jax: raw.frameworks.jax,
            threadpools: {
                let mut pools: Vec<ThreadPool> = raw
                    .frameworks
                    .threadpools
                    .into_iter()
                    .filter_map(|p| Some(ThreadPool { api: p.api?, num_threads: p.num_threads, version: p.version }))
                    .collect();
                pools.sort();
                pools
            },
            dataloaders: raw.dataloaders,
        },
        modules: raw.modules,
        exception: raw.exception,
        files,
        errors,
    })
}

/// Several processes' reports as one: files by path (earliest first access, latest last,
/// read/write either), seeds in order without repeats, the first framework state seen (rank
/// 0's, when ranks ran), the exception of the process that failed first in report order.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Merged {
    pub processes: u32,
    pub ranks: Vec<(u32, Option<u32>)>,
    pub world_size: Option<u32>,
    pub files: Vec<RawFile>,
    pub prefixes: Vec<String>,
    pub seeds: Vec<SeedCall>,
    pub frameworks: Frameworks,
    pub modules: BTreeMap<String, String>,
    pub exception: Option<ProbeException>,
    pub errors: Vec<String>,
}

pub fn merge(mut reports: Vec<ProcessReport>) -> Merged {
    // Rank 0 first, then the other ranks, then processes without a rank (the launcher).
    reports.sort_by_key(|r| (r.rank.is_none(), r.rank, r.pid));
    let mut m = Merged { processes: reports.len() as u32, ..Default::default() };
    let mut files: BTreeMap<String, RawFile> = BTreeMap::new();
    for r in reports {
        if let Some(rank) = r.rank {
            m.ranks.push((rank, r.local_rank));
        }
        m.world_size = m.world_size.or(r.world_size);
        for f in r.files {
            files
                .entry(f.path.clone())
                .and_modify(|e| {
                    if f.first < e.first {
                        e.written_first = f.written_first;
                    }
                    e.first = e.first.min(f.first);
                    e.last = e.last.max(f.last);
                    e.read |= f.read;
                    e.write |= f.write;
                })
                .or_insert(f);
        }
        for p in r.prefixes {
            if !m.prefixes.contains(&p) {
                m.prefixes.push(p);
            }
        }
        for s in r.seeds {
            if !m.seeds.iter().any(|x| x.via == s.via && x.value == s.value) {
                m.seeds.push(s);
            }
        }
        let fw = &mut m.frameworks;
        if fw.torch.is_none() {
            fw.torch = r.frameworks.torch;
        }
        if fw.tensorflow.is_none() {
            fw.tensorflow = r.frameworks.tensorflow;
        }
        if fw.jax.is_none() {
            fw.jax = r.frameworks.jax;
        }
        if fw.threadpools.is_empty() {
            fw.threadpools = r.frameworks.threadpools;
        }
        for d in r.frameworks.dataloaders {
            if !fw.dataloaders.contains(&d) {
                fw.dataloaders.push(d);
            }
        }
        for (k, v) in r.modules {
            m.modules.entry(k).or_insert(v);
        }
        if m.exception.is_none() {
            m.exception = r.exception;
        }
        let who = match r.rank {
            Some(rank) => format!("rank {rank}"),
            None => format!("process {}", r.pid),
        };
        m.errors.extend(r.errors.into_iter().map(|e| format!("{who}: {e}")));
    }
    m.files = files.into_values().collect();
    m.files.sort_by_key(|f| f.first);
    m
}
