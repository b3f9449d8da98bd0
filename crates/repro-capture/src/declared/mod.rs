//! Declared environments: the file a project says it needs (requirements.txt,
//! environment.yml, pyproject.toml, uv.lock, poetry.lock, Pipfile.lock, conda-lock.yml),
//! parsed into one normalized form (PEP 503 names, PEP 440 specifiers, markers, extras,
//! URLs, hashes, conda channel/version/build) well enough to tell each dependency pinned,
//! loose or unpinned, with errors that name the file and line.

mod conda;
mod locks;
mod pyproject;
mod requirements;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use pep508_rs::pep440_rs::Version;
use pep508_rs::MarkerTree;
use repro_core::record::{DeclaredEnvironment, DeclaredRequirement, FileEntry};
use repro_core::Digest;

use crate::python::normalize;
use crate::{CaptureError, Result};

pub use conda::conda_spec;
pub use requirements::parse_requirement_line;

/// A declared environment plus the files to store with it (absolute path, entry).
#[derive(Debug)]
pub struct Declared {
    pub environment: DeclaredEnvironment,
    pub main_file: PathBuf,
    pub companion_files: Vec<PathBuf>,
    /// The bytes to store instead of a file's own, for the files whose URLs held credentials
    /// (removed: `environment.redacted` says what and where). Keyed by the absolute path.
    pub redacted: BTreeMap<PathBuf, Vec<u8>>,
}

impl Declared {
    /// What to store for `path` (the main file or a companion): its redacted copy when it
    /// held credentials, else the file as it is on disk.
    pub fn bytes_to_store(&self, path: &Path) -> std::io::Result<Vec<u8>> {
        match self.redacted.get(path) {
            Some(bytes) => Ok(bytes.clone()),
            None => std::fs::read(path),
        }
    }
}

/// The file names `detect` looks for, in order of preference. The lock formats added last
/// come after the older names so that projects detected before keep the same file.
const DETECTED: [&str; 8] = [
    "environment.yml",
    "environment.yaml",
    "requirements.txt",
    "uv.lock",
    "poetry.lock",
    "pyproject.toml",
    "Pipfile.lock",
    "conda-lock.yml",
];

/// Looks for an environment file in `cwd` and each parent up to `root` (inclusive).
pub fn detect(cwd: &Path, root: Option<&Path>) -> Option<PathBuf> {
    for dir in cwd.ancestors() {
        for name in DETECTED {
            let p = dir.join(name);
            if p.is_file() {
                return Some(p);
            }
        }
        if Some(dir) == root || root.is_none() {
            break;
        }
    }
    None
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Format {
    Requirements,
    Conda,
    CondaLock,
    Pyproject,
    UvLock,
    PoetryLock,
    PipfileLock,
}

impl Format {
    /// Chosen by file name alone, so that a file always parses the same way wherever it is.
    fn of(path: &Path) -> Format {
        let name = path.file_name().map(|n| n.to_string_lossy().to_lowercase()).unwrap_or_default();
        let yaml = name.ends_with(".yml") || name.ends_with(".yaml");
        if yaml && (name.starts_with("conda-lock.") || name.contains(".conda-lock.")) {
            Format::CondaLock
        } else if yaml {
            Format::Conda
        } else if name == "uv.lock" {
            Format::UvLock
        } else if name == "poetry.lock" {
            Format::PoetryLock
        } else if name == "pipfile.lock" {
            Format::PipfileLock
        } else if name == "pyproject.toml" {
            Format::Pyproject
        } else {
            // Anything else (requirements-dev.txt, requirements.lock, constraints.in …).
            Format::Requirements
        }
    }

    /// What `DeclaredEnvironment::format` says.
    fn label(self) -> &'static str {
        match self {
            Format::Requirements => "requirements",
            Format::Conda => "conda",
            Format::CondaLock => "conda-lock",
            Format::Pyproject => "pyproject",
            Format::UvLock => "uv-lock",
            Format::PoetryLock => "poetry-lock",
            Format::PipfileLock => "pipfile-lock",
        }
    }
}

/// Reads `path`. `display_base` is what recorded paths are made relative to (the repo root).
pub fn read(path: &Path, display_base: &Path) -> Result<Declared> {
    let format = Format::of(path);
    if format == Format::Pyproject {
        // The lock says exactly what was resolved from pyproject's ranges: prefer it.
        for lock in ["uv.lock", "poetry.lock"] {
            let l = path.with_file_name(lock);
            if l.is_file() {
                return read(&l, display_base);
            }
        }
    }
    let rel = |p: &Path| p.strip_prefix(display_base).unwrap_or(p).display().to_string();
    let mut source = Source::new(path, &rel);
    let text = source.redact(path, read_text(path)?);
    let requirements = parse_format(format, path, &text, &mut source)?;
    // Files the requirements included (`-r`, `-c`, also from a conda `pip:` section).
    let mut companions: Vec<PathBuf> = source.seen.iter().skip(1).cloned().collect();
    let beside = match format {
        Format::UvLock | Format::PoetryLock => Some("pyproject.toml"),
        Format::PipfileLock => Some("Pipfile"),
        _ => None,
    };
    if let Some(b) = beside.map(|b| path.with_file_name(b)).filter(|b| b.is_file()) {
        // Not parsed, but stored: a Pipfile's `[[source]]` or pyproject's index URLs may
        // hold credentials too. A file that is not text is stored as it is.
        if let Ok(text) = read_text(&b) {
            source.redact(&b, text);
        }
        companions.push(b);
    }
    let mut comp_entries = Vec::new();
    for c in &companions {
        let entry = match source.redacted.get(c) {
            Some(bytes) => {
                let meta = std::fs::metadata(c).map_err(CaptureError::io("read", c))?;
                FileEntry {
                    path: rel(c),
                    size: bytes.len() as u64,
                    mode: crate::git::mode_of(&meta),
                    digest: Digest::of_bytes(bytes),
                }
            }
            None => file_entry(c, &rel(c))?,
        };
        comp_entries.push(entry);
    }
    Ok(Declared {
        environment: DeclaredEnvironment {
            path: rel(path),
            format: format.label().to_string(),
            digest: Digest::of_bytes(text.as_bytes()),
            companions: comp_entries,
            requirements,
            redacted: source.removed,
        },
        main_file: path.to_path_buf(),
        companion_files: companions,
        redacted: source.redacted,
    })
}

/// Parses the text of a declared-environment file, choosing the format by `path`'s name
/// (an `-r`/`-c` include names a file that must exist beside `path`).
/// For fuzzing and for callers that already hold the text.
pub fn parse_text(path: &Path, text: &str) -> Result<Vec<DeclaredRequirement>> {
    let base = path.parent().unwrap_or(Path::new(".")).to_path_buf();
    let rel = move |p: &Path| p.strip_prefix(&base).unwrap_or(p).display().to_string();
    let mut source = Source::new(path, &rel);
    let text = source.redact(path, text.to_string());
    parse_format(Format::of(path), path, &text, &mut source)
}

fn parse_format(format: Format, path: &Path, text: &str, source: &mut Source) -> Result<Vec<DeclaredRequirement>> {
    match format {
        Format::Requirements => requirements::parse_file(source, path, text),
        Format::Conda => conda::parse_environment(source, path, text),
        Format::CondaLock => conda::parse_lock(source, path, text),
        Format::Pyproject => pyproject::parse(source, path, text),
        Format::UvLock => locks::parse_uv(source, path, text),
        Format::PoetryLock => locks::parse_poetry(source, path, text),
        Format::PipfileLock => locks::parse_pipfile(source, path, text),
    }
}

/// Where requirements are read from: the files read so far (the first is the main file)
/// and how a path is shown in an origin.
struct Source<'a> {
    seen: Vec<PathBuf>,
    rel: &'a dyn Fn(&Path) -> String,
    /// The redacted text of each file read whose URLs held credentials.
    redacted: BTreeMap<PathBuf, Vec<u8>>,
    /// What was removed, one `file:line: what` each (never the credential itself).
    removed: Vec<String>,
}

impl<'a> Source<'a> {
    fn new(main: &Path, rel: &'a dyn Fn(&Path) -> String) -> Self {
        Source { seen: vec![main.to_path_buf()], rel, redacted: BTreeMap::new(), removed: Vec::new() }
    }

    /// The text of `path` as it may be recorded: credentials in its URLs removed (and noted)
    /// before anything parses it, so no requirement, origin or error message can hold one.
    fn redact(&mut self, path: &Path, text: String) -> String {
        let (clean, found) = repro_core::secrets::strip_text(&text);
        if found.is_empty() {
            return text;
        }
        for f in &found {
            let at = self.origin(path, f.line);
            self.removed.push(format!("{at}: {}", f.credential));
        }
        let clean = clean.into_owned();
        self.redacted.insert(path.to_path_buf(), clean.clone().into_bytes());
        clean
    }

    fn origin(&self, path: &Path, line: usize) -> String {
        format!("{}:{}", (self.rel)(path), line.max(1))
    }
}

/// Included files larger than this are refused: a requirements file is small, and an
/// include of a device or `/proc` file must not read without end.
const MAX_INCLUDE_BYTES: u64 = 16 << 20;

fn read_text(path: &Path) -> Result<String> {
    let bytes = std::fs::read(path).map_err(CaptureError::io("read", path))?;
    String::from_utf8(bytes).map_err(|e| CaptureError::Invalid {
        path: path.to_path_buf(),
        message: format!("not UTF-8 text (byte {}); save it as UTF-8", e.utf8_error().valid_up_to()),
    })
}

pub(crate) fn file_entry(path: &Path, rel: &str) -> Result<FileEntry> {
    let meta = std::fs::metadata(path).map_err(CaptureError::io("read", path))?;
    let (digest, size) = repro_util::hash::hash_file(path).map_err(CaptureError::io("read", path))?;
    Ok(FileEntry { path: rel.to_string(), size, mode: crate::git::mode_of(&meta), digest })
}

/// A parse error at `line` (1-based; a line number is always given, 1 when none fits better).
/// Control characters in the message (a quoted value may hold a newline: JSON's `\n`, a
/// folded YAML string) are escaped, so that every error stays on one line.
fn parse_err(path: &Path, line: usize, message: impl Into<String>) -> CaptureError {
    let message: String = message.into();
    let message = if message.contains(char::is_control) {
        message.chars().map(|c| if c.is_control() { c.escape_debug().to_string() } else { c.to_string() }).collect()
    } else {
        message
    };
    CaptureError::Parse { path: path.to_path_buf(), line: line.max(1), message }
}

/// The first line of a message from a parser, so that every error stays on one line.
fn first_line(s: &str) -> String {
    s.lines().next().unwrap_or("").to_string()
}

/// Finds the line a value came from in formats whose parsers give no positions for values
/// (YAML, JSON): searching forward from the last match keeps repeated names apart, and
/// wrapping to the top covers maps whose order the parser changed.
struct LineFinder<'t> {
    lines: Vec<&'t str>,
    next: usize,
}

impl<'t> LineFinder<'t> {
    fn new(text: &'t str) -> Self {
        LineFinder { lines: text.lines().collect(), next: 0 }
    }

    /// The 1-based line of the next line matching `pred`, or the last line found when none does.
    fn find(&mut self, pred: impl Fn(&str) -> bool) -> usize {
        let n = self.lines.len();
        let start = self.next.min(n);
        let hit = (start..n).chain(0..start).find(|&i| pred(self.lines[i]));
        match hit {
            Some(i) => {
                self.next = i + 1;
                i + 1
            }
            None => self.next.max(1),
        }
    }

    /// The first line after `line` (1-based; 0 for the top) matching `pred`.
    fn find_after(&mut self, line: usize, pred: impl Fn(&str) -> bool) -> usize {
        self.next = line;
        self.find(pred)
    }

    /// The line of the next occurrence of `needle`.
    fn find_str(&mut self, needle: &str) -> usize {
        self.find(|l| l.contains(needle))
    }
}

/// The 1-based line of a byte offset.
fn line_of_offset(text: &str, offset: usize) -> usize {
    let end = offset.min(text.len());
    text.as_bytes()[..end].iter().filter(|&&b| b == b'\n').count() + 1
}

/// A PEP 508 environment marker in pep508_rs's normalized form (None when always true).
fn normalize_marker(path: &Path, line: usize, raw: &str) -> Result<Option<String>> {
    if raw.trim().is_empty() {
        return Ok(None);
    }
    // As with requirements: pep508_rs slices by byte, so non-ASCII text is refused first,
    // and a panic inside it is this line's parse error.
    if let Some(c) = raw.chars().find(|c| !c.is_ascii() || (c.is_ascii_control() && *c != '\t')) {
        return Err(parse_err(
            path,
            line,
            format!("cannot parse marker '{}': unexpected character {c:?}", raw.escape_debug()),
        ));
    }
    let parsed = std::panic::catch_unwind(|| MarkerTree::from_str(raw))
        .map_err(|_| parse_err(path, line, format!("cannot parse marker '{raw}'")))?;
    let tree = parsed.map_err(|e| parse_err(path, line, format!("cannot parse marker '{raw}': {}", e.message)))?;
    Ok(tree.try_to_string())
}

/// A PEP 440 version in its normalized form; as written when it is not one (a lock file
/// may hold a local or legacy version that only its tool understands).
fn normalize_version(raw: &str) -> String {
    let raw = raw.trim();
    if !raw.is_ascii() {
        return raw.to_string();
    }
    match std::panic::catch_unwind(|| Version::from_str(raw)) {
        Ok(Ok(v)) => v.to_string(),
        _ => raw.to_string(),
    }
}

/// Extras normalized like names (PEP 685), sorted, without repeats.
fn normalize_extras<'s>(extras: impl IntoIterator<Item = &'s str>) -> Vec<String> {
    let mut out: Vec<String> = extras.into_iter().map(str::trim).filter(|e| !e.is_empty()).map(normalize).collect();
    out.sort();
    out.dedup();
    out
}

/// Checks a hash (`sha256:…`, or `sha256=…` as a URL fragment writes it) and gives it as
/// `algorithm:hex`, lowercase.
fn normalize_hash(raw: &str) -> Option<String> {
    let (algo, hex) = raw.trim().split_once([':', '='])?;
    let algo = algo.to_ascii_lowercase();
    let known = ["md5", "sha1", "sha224", "sha256", "sha384", "sha512"].contains(&algo.as_str());
    (known && !hex.is_empty() && hex.bytes().all(|b| b.is_ascii_hexdigit()))
        .then(|| format!("{algo}:{}", hex.to_ascii_lowercase()))
}

/// Adds `hash` unless it is already there (an sdist and a wheel never share one, but a lock
/// may repeat a file).
fn push_hash(hashes: &mut Vec<String>, hash: String) {
    if !hashes.contains(&hash) {
        hashes.push(hash);
    }
}

/// The last path segment of a URL or path, without query or fragment.
fn file_name_of(url: &str) -> &str {
    let end = url.find(['#', '?']).unwrap_or(url.len());
    let before = &url[..end];
    before.rsplit(['/', '\\']).next().unwrap_or(before)
}

/// A wheel's file name says its distribution and exact version: `{name}-{version}(-{build})?-{py}-{abi}-{plat}.whl`.
fn wheel_name_version(url: &str) -> Option<(String, String)> {
    // URLs escape the `+` of a local version: torch-2.3.0%2Bcpu-….whl
    let stem = percent_decode(file_name_of(url).strip_suffix(".whl")?);
    let parts: Vec<&str> = stem.split('-').collect();
    if parts.len() < 5 || parts[0].is_empty() || parts[1].is_empty() {
        return None;
    }
    Some((normalize(parts[0]), normalize_version(parts[1])))
}

/// `%XX` escapes decoded (others left as they are).
fn percent_decode(s: &str) -> String {
    percent_encoding::percent_decode_str(s).decode_utf8_lossy().into_owned()
}

/// A VCS URL (`git+https://…@<rev>`) whose revision is a commit hash.
fn vcs_commit_pinned(url: &str) -> bool {
    if !url.contains('+') || !url.contains("://") {
        return false;
    }
    let before_fragment = url.split('#').next().unwrap_or(url);
    let after_host = before_fragment.split("://").nth(1).unwrap_or("");
    match after_host.rsplit_once('@') {
        Some((_, rev)) => is_commit(rev),
        None => false,
    }
}

/// A (possibly abbreviated) commit hash.
fn is_commit(rev: &str) -> bool {
    rev.len() >= 7 && rev.len() <= 64 && rev.bytes().all(|b| b.is_ascii_hexdigit())
}

#[cfg(test)]
mod tests;
