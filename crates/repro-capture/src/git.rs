//! The git state of the code: commit, branch, remote, dirty flag, the uncommitted diff and
//! the untracked files — enough to rebuild the exact tree later.
//!
//! We drive the `git` command rather than a library: replay needs `git clone --shared` and
//! `git apply --binary` with the user's own configuration and credentials, the CLI is on
//! every machine that has a repository, and its porcelain formats are stable.

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::process::Command;

use repro_core::audit::human_bytes;
use repro_core::record::{CodeState, FileEntry, SkippedFile};
use repro_core::Digest;

use crate::{CaptureError, Result};

/// What `capture` saw, with the bytes that still have to be stored.
#[derive(Debug, Default)]
pub struct GitCapture {
    pub code: CodeState,
    /// The diff's bytes (its digest is `code.diff`).
    pub diff_bytes: Option<Vec<u8>>,
    /// Absolute paths of the untracked files listed in `code.untracked`.
    pub untracked_files: Vec<PathBuf>,
    /// Paths (relative to the root) with uncommitted changes.
    pub changed: BTreeSet<String>,
    pub untracked: BTreeSet<String>,
    /// Credentials removed from the remote URL before it was recorded: what, never the value.
    pub removed: Vec<String>,
}

fn git(dir: &Path) -> Command {
    let mut c = Command::new("git");
    c.arg("-C").arg(dir);
    // Never take the index lock: several runs may look at one repository at once.
    c.env("GIT_OPTIONAL_LOCKS", "0");
    c.env("LC_ALL", "C");
    c
}

fn run(mut cmd: Command, what: &str) -> Result<Vec<u8>> {
    let out = cmd.output().map_err(|e| CaptureError::Git { command: what.into(), message: e.to_string() })?;
    if !out.status.success() {
        let msg = String::from_utf8_lossy(&out.stderr);
        let first = msg.lines().find(|l| !l.trim().is_empty()).unwrap_or("failed").trim();
        return Err(CaptureError::Git { command: what.into(), message: first.to_string() });
    }
    Ok(out.stdout)
}

/// The repository's top-level folder, or `None` outside a repository.
pub fn toplevel(cwd: &Path) -> Option<PathBuf> {
    let out = git(cwd).args(["rev-parse", "--show-toplevel"]).output().ok()?;
    if !out.status.success() {
        return None;
    }
    let s = String::from_utf8_lossy(&out.stdout).trim_end_matches('\n').to_string();
    (!s.is_empty()).then(|| PathBuf::from(s))
}

/// Captures the state of the repository containing `cwd`. Untracked files under one of
/// `exclude` (absolute paths: the run's data and outputs) are not code and are skipped;
/// untracked files larger than `max_untracked` are listed as not stored.
pub fn capture(cwd: &Path, exclude: &[PathBuf], max_untracked: u64) -> GitCapture {
    let Some(root) = toplevel(cwd) else {
        return GitCapture {
            code: CodeState {
                error: Some(format!("{} is not inside a git repository", cwd.display())),
                ..Default::default()
            },
            ..Default::default()
        };
    };
    match capture_in(&root, exclude, max_untracked) {
        Ok(c) => c,
        Err(e) => GitCapture {
            code: CodeState {
                repo_root: Some(root.display().to_string()),
                error: Some(e.to_string()),
                ..Default::default()
            },
            ..Default::default()
        },
    }
}

fn capture_in(root: &Path, exclude: &[PathBuf], max_untracked: u64) -> Result<GitCapture> {
    let status = run(
        {
            let mut c = git(root);
            c.args(["status", "--porcelain=v2", "--branch", "-z", "--untracked-files=all"]);
            c
        },
        "git status",
    )?;
    let parsed = parse_status(&status);
    let mut cap = GitCapture::default();
    cap.code.repo_root = Some(root.display().to_string());
    cap.code.commit = parsed.commit.clone();
    cap.code.branch = parsed.branch.clone();
    // The recorded remote is the one replay clones from, with the user's own credential
    // helper; a token written into the URL must not become part of an immutable record.
    if let Some(url) = remote_url(root, parsed.upstream.as_deref()) {
        let (clean, found) = repro_core::secrets::strip_text(&url);
        cap.removed.extend(found.iter().map(|f| format!("the git remote (code.remote): {}", f.credential)));
        cap.code.remote = Some(clean.into_owned());
    }
    cap.changed = parsed.changed.iter().cloned().collect();

    if !parsed.changed.is_empty() && parsed.commit.is_some() {
        let diff = diff_head(root)?;
        if !diff.is_empty() {
            cap.code.diff = Some(Digest::of_bytes(&diff));
            cap.diff_bytes = Some(diff);
        }
        cap.code.diff_files = parsed.changed.clone();
    } else if !parsed.changed.is_empty() {
        // No commit yet: everything staged is effectively untracked content.
        cap.code.diff_files = parsed.changed.clone();
    }

    let mut env_dirs: HashMap<String, bool> = HashMap::new();
    let mut stored_bytes = 0u64;
    for rel in &parsed.untracked {
        let abs = root.join(rel);
        cap.untracked.insert(rel.clone());
        if exclude.iter().any(|x| abs.starts_with(x)) || is_generated(rel) || in_environment(root, rel, &mut env_dirs) {
            continue;
        }
        let meta = match std::fs::symlink_metadata(&abs) {
            Ok(m) => m,
            Err(_) => continue, // vanished between status and now
        };
        if !meta.is_file() {
            continue;
        }
        let too_big = if meta.len() > max_untracked {
            Some(format!("{}, over the {} limit per file", human_bytes(meta.len()), human_bytes(max_untracked)))
        } else if stored_bytes + meta.len() > MAX_UNTRACKED_TOTAL {
            Some(format!("over the {} limit for all untracked files", human_bytes(MAX_UNTRACKED_TOTAL)))
        } else {
            None
        };
        if let Some(reason) = too_big {
            cap.code.untracked_skipped.push(SkippedFile { path: rel.clone(), size: meta.len(), reason });
            continue;
        }
        let (digest, size) = repro_util::hash::hash_file(&abs).map_err(CaptureError::io("read", &abs))?;
        stored_bytes += size;
        cap.code.untracked.push(FileEntry { path: rel.clone(), size, mode: mode_of(&meta), digest });
        cap.untracked_files.push(abs);
    }
    cap.code.dirty =
        !parsed.changed.is_empty() || !cap.code.untracked.is_empty() || !cap.code.untracked_skipped.is_empty();
    Ok(cap)
}

/// Untracked files stored with a run, at most, all together.
const MAX_UNTRACKED_TOTAL: u64 = 100 * 1024 * 1024;

/// Byte-code caches are rebuilt by Python; they are not source.
fn is_generated(rel: &str) -> bool {
    rel.ends_with(".pyc") || rel.ends_with(".pyo") || rel.split('/').any(|c| c == "__pycache__")
}

/// Whether `rel` lies inside a virtualenv or conda env that git does not ignore: its
/// packages are captured as the installed set, not as code.
fn in_environment(root: &Path, rel: &str, cache: &mut HashMap<String, bool>) -> bool {
    let mut dir = String::new();
    let parts: Vec<&str> = rel.split('/').collect();
    for part in &parts[..parts.len().saturating_sub(1)] {
        if !dir.is_empty() {
            dir.push('/');
        }
        dir.push_str(part);
        let is_env = *cache.entry(dir.clone()).or_insert_with(|| {
            let d = root.join(&dir);
            d.join("pyvenv.cfg").is_file() || d.join("conda-meta").is_dir()
        });
        if is_env {
            return true;
        }
    }
    false
}

/// Whether git tracks `rel` (relative to `root`).
pub fn is_tracked(root: &Path, rel: &str) -> bool {
    git(root)
        .args(["ls-files", "--error-unmatch", "--", rel])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

/// Which of `paths` (relative to `root`) git tracks: one `git ls-files` per 500 paths,
/// where [`is_tracked`] would start a process per path.
pub fn tracked_among(root: &Path, paths: &[&Path]) -> std::collections::BTreeSet<String> {
    let mut out = std::collections::BTreeSet::new();
    for chunk in paths.chunks(500) {
        let Ok(o) = git(root).args(["ls-files", "-z", "--"]).args(chunk).output() else { continue };
        out.extend(
            o.stdout.split(|b| *b == 0).filter(|s| !s.is_empty()).map(|s| String::from_utf8_lossy(s).into_owned()),
        );
    }
    out
}

fn remote_url(root: &Path, upstream: Option<&str>) -> Option<String> {
    let out = git(root).args(["config", "--get-regexp", r"^remote\..*\.url$"]).output().ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    let remotes: Vec<(String, String)> = text
        .lines()
        .filter_map(|l| {
            let (key, url) = l.split_once(' ')?;
            let name = key.strip_prefix("remote.")?.strip_suffix(".url")?;
            Some((name.to_string(), url.to_string()))
        })
        .collect();
    let wanted = upstream.and_then(|u| u.split_once('/')).map(|(r, _)| r.to_string());
    remotes
        .iter()
        .find(|(n, _)| Some(n) == wanted.as_ref())
        .or_else(|| remotes.iter().find(|(n, _)| n == "origin"))
        .or_else(|| remotes.first())
        .map(|(_, u)| u.clone())
}

// ---- rebuilding a recorded tree (`repro replay`) ---------------------------------------

/// The arguments `capture` diffs with, so a rebuilt tree can be compared byte for byte.
const DIFF_ARGS: [&str; 8] =
    ["diff", "--binary", "--no-ext-diff", "--no-textconv", "--no-color", "--full-index", "HEAD", "--"];

/// A command that must never stop to ask for credentials: replay runs unattended.
fn git_batch(dir: &Path) -> Command {
    let mut c = git(dir);
    c.env("GIT_TERMINAL_PROMPT", "0").env("GIT_ASKPASS", "true").stdin(std::process::Stdio::null());
    c
}

/// Whether `repo` holds `commit` (as a commit object).
pub fn has_commit(repo: &Path, commit: &str) -> bool {
    git(repo)
        .args(["cat-file", "-e", &format!("{commit}^{{commit}}")])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

/// Clones without checking out. A local repository is cloned `--shared`: nothing is copied
/// and every object it holds, reachable from a branch or not, is available.
pub fn clone_into(source: &str, dest: &Path, local: bool) -> Result<()> {
    let parent = dest.parent().unwrap_or(Path::new("."));
    let mut c = git_batch(parent);
    c.args(["clone", "--quiet", "--no-checkout"]);
    if local {
        c.arg("--shared");
    }
    c.arg("--").arg(source).arg(dest);
    run(c, "git clone").map(|_| ())
}

/// Asks the clone's origin for one commit (servers that allow fetching any reachable commit).
pub fn fetch_commit(repo: &Path, commit: &str) -> bool {
    let mut c = git_batch(repo);
    c.args(["fetch", "--quiet", "origin", commit]);
    run(c, "git fetch").is_ok() && has_commit(repo, commit)
}

/// Checks out `commit`, on a branch of the recorded name when there was one (so the
/// replay's own capture reads the same branch).
pub fn checkout(repo: &Path, commit: &str, branch: Option<&str>) -> Result<()> {
    let mut c = git(repo);
    c.args(["-c", "advice.detachedHead=false", "checkout", "--quiet"]);
    match branch.filter(|b| !b.is_empty() && !b.starts_with('(')) {
        Some(b) => c.args(["-B", b, commit]),
        None => c.args(["--detach", commit]),
    };
    run(c, "git checkout").map(|_| ())
}

/// Points `origin` at the recorded remote (or removes it), so the rebuilt tree names the
/// same remote as the run it rebuilds rather than the folder it was cloned from.
pub fn set_origin(repo: &Path, url: Option<&str>) -> Result<()> {
    let mut c = git(repo);
    match url {
        Some(u) => c.args(["remote", "set-url", "origin", u]),
        None => c.args(["remote", "remove", "origin"]),
    };
    run(c, "git remote").map(|_| ())
}

/// Applies a stored `git diff --binary` to the working tree.
pub fn apply_patch(repo: &Path, patch: &Path) -> Result<()> {
    let mut c = git(repo);
    c.args(["apply", "--binary", "--whitespace=nowarn"]).arg(patch);
    run(c, "git apply").map(|_| ())
}

/// `git diff --binary HEAD` of a tree, as `capture` takes it.
pub fn diff_head(repo: &Path) -> Result<Vec<u8>> {
    let mut c = git(repo);
    c.args(DIFF_ARGS);
    run(c, "git diff HEAD")
}

/// `git diff --binary HEAD` of a tree without one file (`rel`, relative to the root): what
/// else is uncommitted besides a notebook.
pub fn diff_head_excluding(repo: &Path, rel: &str) -> Result<Vec<u8>> {
    let mut c = git(repo);
    c.args(DIFF_ARGS).arg(format!(":(exclude,literal){rel}"));
    run(c, "git diff HEAD")
}

/// Who git says the user is: `Name <email>`, or whichever of the two is set.
pub fn identity(cwd: &Path) -> Option<String> {
    let get = |key: &str| {
        let mut c = git(cwd);
        c.args(["config", "--get", key]);
        run(c, "git config").ok().map(|o| String::from_utf8_lossy(&o).trim().to_string()).filter(|s| !s.is_empty())
    };
    match (get("user.name"), get("user.email")) {
        (Some(n), Some(e)) => Some(format!("{n} <{e}>")),
        (Some(n), None) => Some(n),
        (None, Some(e)) => Some(format!("<{e}>")),
        (None, None) => None,
    }
}

/// Writes a git bundle holding `commit` and its history to `dest`. The bundle needs a ref,
/// so a `--shared` clone of `repo` (nothing copied) gets a branch at the commit; the user's
/// repository is never touched.
pub fn bundle_commit(repo: &Path, commit: &str, work: &Path, dest: &Path) -> Result<()> {
    std::fs::create_dir_all(work)
        .map_err(|e| CaptureError::Git { command: "git bundle".into(), message: format!("{}: {e}", work.display()) })?;
    let clone = work.join("bundle-clone");
    clone_into(&repo.to_string_lossy(), &clone, true)?;
    if !has_commit(&clone, commit) && !fetch_commit(&clone, commit) {
        return Err(CaptureError::Git {
            command: "git bundle".into(),
            message: format!("{} does not have commit {commit}", repo.display()),
        });
    }
    let mut c = git(&clone);
    c.args(["branch", "--force", "repro-bundle", commit]);
    run(c, "git branch")?;
    let mut c = git_batch(&clone);
    c.args(["bundle", "create", "--quiet"]).arg(dest).arg("repro-bundle");
    run(c, "git bundle create").map(|_| ())
}

/// Checks that a git bundle file is complete and holds `commit`.
pub fn bundle_has(bundle: &Path, commit: &str, cwd: &Path) -> bool {
    let mut c = git_batch(cwd);
    c.args(["bundle", "list-heads"]).arg(bundle);
    run(c, "git bundle list-heads").is_ok_and(|o| String::from_utf8_lossy(&o).split_whitespace().any(|w| w == commit))
}

#[derive(Debug, Default, PartialEq)]
pub struct Status {
    pub commit: Option<String>,
    pub branch: Option<String>,
    pub upstream: Option<String>,
    pub changed: Vec<String>,
    pub untracked: Vec<String>,
}

/// Parses `git status --porcelain=v2 --branch -z`.
pub fn parse_status(bytes: &[u8]) -> Status {
    let mut st = Status::default();
    let mut fields = bytes.split(|&b| b == 0).map(|f| String::from_utf8_lossy(f).into_owned());
    while let Some(rec) = fields.next() {
        if let Some(h) = rec.strip_prefix("# ") {
            let (key, value) = h.split_once(' ').unwrap_or((h, ""));
            match key {
                "branch.oid" if value != "(initial)" => st.commit = Some(value.to_string()),
                "branch.head" if value != "(detached)" => st.branch = Some(value.to_string()),
                "branch.upstream" => st.upstream = Some(value.to_string()),
                _ => {}
            }
        } else if let Some(p) = rec.strip_prefix("? ") {
            st.untracked.push(p.to_string());
        } else if rec.starts_with("1 ") {
            if let Some(p) = rec.splitn(9, ' ').nth(8) {
                st.changed.push(p.to_string());
            }
        } else if rec.starts_with("2 ") {
            if let Some(p) = rec.splitn(10, ' ').nth(9) {
                st.changed.push(p.to_string());
            }
            // The original path follows as its own NUL-terminated field.
            if let Some(orig) = fields.next() {
                st.changed.push(orig);
            }
        } else if rec.starts_with("u ") {
            if let Some(p) = rec.splitn(11, ' ').nth(10) {
                st.changed.push(p.to_string());
            }
        }
    }
    st.changed.sort();
    st.changed.dedup();
    st
}

pub(crate) fn mode_of(meta: &std::fs::Metadata) -> u32 {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        meta.permissions().mode() & 0o7777
    }
    #[cfg(not(unix))]
    {
        let _ = meta;
        0o644
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_porcelain_v2() {
        let raw = b"# branch.oid 1234abcd\0# branch.head main\0# branch.upstream origin/main\0\
1 .M N... 100644 100644 100644 aaaa bbbb train.py\0\
2 R. N... 100644 100644 100644 aaaa bbbb R100 new name.py\0old.py\0\
? notes with space.txt\0";
        let st = parse_status(raw);
        assert_eq!(st.commit.as_deref(), Some("1234abcd"));
        assert_eq!(st.branch.as_deref(), Some("main"));
        assert_eq!(st.upstream.as_deref(), Some("origin/main"));
        assert_eq!(st.changed, vec!["new name.py", "old.py", "train.py"]);
        assert_eq!(st.untracked, vec!["notes with space.txt"]);
    }

    #[test]
    fn initial_and_detached() {
        let st = parse_status(b"# branch.oid (initial)\0# branch.head (detached)\0");
        assert_eq!(st.commit, None);
        assert_eq!(st.branch, None);
    }

    #[test]
    fn environments_and_byte_code_are_not_code() {
        let d = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir_all(d.path().join("sub/.venv/lib")).expect("mkdir");
        std::fs::write(d.path().join("sub/.venv/pyvenv.cfg"), "home = /usr\n").expect("write");
        let mut cache = HashMap::new();
        assert!(in_environment(d.path(), "sub/.venv/lib/x.py", &mut cache));
        assert!(!in_environment(d.path(), "sub/train.py", &mut cache));
        assert!(is_generated("pkg/__pycache__/m.cpython-311.pyc"));
        assert!(!is_generated("pkg/m.py"));
    }

    #[test]
    fn garbage_does_not_panic() {
        for raw in [&b"\xff\xfe\0\0"[..], b"1 \0", b"2 x\0", b"# \0", b"u\0"] {
            let _ = parse_status(raw);
        }
    }
}
