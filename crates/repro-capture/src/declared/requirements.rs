//! requirements.txt: pip's requirement files, with requirement lines parsed by `pep508_rs`.

use std::collections::HashMap;
use std::path::Path;
use std::str::FromStr;

use pep508_rs::pep440_rs::Operator;
use pep508_rs::{Requirement, VerbatimUrl, VersionOrUrl};
use repro_core::record::{DeclaredRequirement, PinStatus};

use super::{
    file_name_of, normalize_extras, normalize_hash, parse_err, push_hash, read_text, vcs_commit_pinned,
    wheel_name_version, Source, MAX_INCLUDE_BYTES,
};
use crate::python::normalize;
use crate::{CaptureError, Result};

/// Requirements read so far from one file, and the pins its `-c` files add.
#[derive(Default)]
pub(super) struct Collected {
    pub reqs: Vec<DeclaredRequirement>,
    constraints: HashMap<String, DeclaredRequirement>,
}

impl Collected {
    /// The requirements, with those a constraints file pins marked pinned.
    pub fn finish(mut self) -> Vec<DeclaredRequirement> {
        for r in &mut self.reqs {
            if r.status == PinStatus::Pinned {
                continue;
            }
            if let Some(c) = self.constraints.get(&normalize(&r.name)) {
                r.status = PinStatus::Pinned;
                r.spec = format!("{} (constraint {})", r.spec, c.spec).trim().to_string();
                r.version.clone_from(&c.version);
                if r.hashes.is_empty() {
                    r.hashes.clone_from(&c.hashes);
                }
            }
        }
        self.reqs
    }
}

/// Parses one requirements file and the files it includes (`-r`, `-c`), recursively.
pub(super) fn parse_file(source: &mut Source, path: &Path, text: &str) -> Result<Vec<DeclaredRequirement>> {
    let mut out = Collected::default();
    for (line_no, line) in logical_lines(text) {
        entry(source, path, line_no, &line, &mut out)?;
    }
    Ok(out.finish())
}

/// One logical line of a requirements file: continuations joined, comments removed.
pub(super) fn logical_lines(text: &str) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    let mut buf = String::new();
    let mut start = 0;
    for (i, raw) in text.lines().enumerate() {
        if buf.is_empty() {
            start = i + 1;
        }
        let line = strip_comment(raw);
        if let Some(cont) = line.strip_suffix('\\') {
            buf.push_str(cont);
            buf.push(' ');
            continue;
        }
        buf.push_str(line);
        let l = buf.trim().to_string();
        if !l.is_empty() {
            out.push((start, l));
        }
        buf.clear();
    }
    let l = buf.trim().to_string();
    if !l.is_empty() {
        out.push((start, l));
    }
    out
}

fn strip_comment(line: &str) -> &str {
    if line.trim_start().starts_with('#') {
        return "";
    }
    match line.find(" #").or_else(|| line.find("\t#")) {
        Some(i) => &line[..i],
        None => line,
    }
}

/// Options that change where pip looks, not what it installs.
const IGNORED_OPTIONS: [&str; 17] = [
    "-i",
    "--index-url",
    "--extra-index-url",
    "--no-index",
    "-f",
    "--find-links",
    "--pre",
    "--trusted-host",
    "--prefer-binary",
    "--only-binary",
    "--no-binary",
    "--require-hashes",
    "--use-feature",
    "--config-settings",
    "--global-option",
    "--no-deps",
    "--use-pep517",
];

/// One logical line: a global option, an include, an editable, or a requirement. Also what
/// a conda environment's `pip:` section holds, one item a line.
pub(super) fn entry(source: &mut Source, path: &Path, line_no: usize, line: &str, out: &mut Collected) -> Result<()> {
    if !line.starts_with('-') {
        let mut r = parse_requirement_line(path, line_no, line, "")?;
        r.origin = source.origin(path, line_no);
        out.reqs.push(r);
        return Ok(());
    }
    let (opt, value) = split_option(line);
    match opt.as_str() {
        "-r" | "--requirement" | "-c" | "--constraint" => {
            let value = value.ok_or_else(|| parse_err(path, line_no, format!("{opt} needs a file name")))?;
            let included = include(source, path, line_no, &value)?;
            if opt == "-c" || opt == "--constraint" {
                // A constraint restricts versions without asking for the package.
                for c in included.into_iter().filter(|r| r.status == PinStatus::Pinned) {
                    out.constraints.insert(normalize(&c.name), c);
                }
            } else {
                out.reqs.extend(included);
            }
        }
        "-e" | "--editable" => {
            let value = value.ok_or_else(|| parse_err(path, line_no, "-e needs a path or URL"))?;
            let mut r = bare_url(path, line_no, &value)?;
            r.spec = format!("-e {value}");
            // An editable install is the tree as it is on disk: only a VCS commit pins it.
            if !vcs_commit_pinned(&value) {
                r.status = PinStatus::Unpinned;
                r.version = None;
            }
            r.origin = source.origin(path, line_no);
            out.reqs.push(r);
        }
        o if IGNORED_OPTIONS.contains(&o) => {}
        o => {
            return Err(parse_err(
                path,
                line_no,
                format!("unknown option '{o}'; pip would refuse it too: fix or remove the line"),
            ))
        }
    }
    Ok(())
}

/// Reads an included file (relative to the including one) once; a second mention of the
/// same file is ignored, since includes may form a diamond or a loop.
fn include(source: &mut Source, path: &Path, line_no: usize, value: &str) -> Result<Vec<DeclaredRequirement>> {
    let inc = path.parent().unwrap_or(Path::new(".")).join(value);
    if source.seen.contains(&inc) {
        return Ok(Vec::new());
    }
    let cannot = |why: &str| parse_err(path, line_no, format!("cannot read included file {value}: {why}"));
    let meta = std::fs::metadata(&inc).map_err(|e| cannot(&e.to_string()))?;
    if !meta.is_file() {
        return Err(cannot("not a regular file"));
    }
    if meta.len() > MAX_INCLUDE_BYTES {
        return Err(cannot("larger than 16 MiB, which no requirements file is"));
    }
    let text = read_text(&inc).map_err(|e| cannot(&e.to_string()))?;
    let text = source.redact(&inc, text);
    source.seen.push(inc.clone());
    // An error inside the included file names that file and line, and says who included it.
    parse_file(source, &inc, &text).map_err(|e| match e {
        CaptureError::Parse { path: p, line, message } => CaptureError::Parse {
            path: p,
            line,
            message: format!("{message} (included from {})", source.origin(path, line_no)),
        },
        other => other,
    })
}

fn split_option(line: &str) -> (String, Option<String>) {
    if let Some((o, v)) = line.split_once('=').filter(|(o, _)| o.starts_with("--") && !o.contains(' ')) {
        return (o.to_string(), Some(v.trim().to_string()));
    }
    let mut parts = line.splitn(2, char::is_whitespace);
    let opt = parts.next().unwrap_or("").to_string();
    let value = parts.next().map(|v| v.trim().to_string()).filter(|v| !v.is_empty());
    // Short options may be glued to their value: -rbase.txt
    if value.is_none() && opt.len() > 2 && !opt.starts_with("--") && opt.is_char_boundary(2) {
        return (opt[..2].to_string(), Some(opt[2..].to_string()));
    }
    (opt, value)
}

/// `#egg=name` in a URL's fragment.
fn egg_name(url: &str) -> Option<String> {
    let fragment = url.split_once('#')?.1;
    let egg = fragment.split('&').find_map(|kv| kv.strip_prefix("egg="))?;
    let egg = egg.split('[').next().unwrap_or(egg);
    (!egg.is_empty()).then(|| normalize(egg))
}

/// Hashes in a URL's fragment (`#sha256=…`), as pip checks them.
fn fragment_hashes(url: &str, hashes: &mut Vec<String>) {
    if let Some((_, fragment)) = url.split_once('#') {
        for h in fragment.split('&').filter_map(normalize_hash) {
            push_hash(hashes, h);
        }
    }
}

/// Whether a requirement is a bare URL or path (no name first): pip reads those as they are.
fn is_bare_url(s: &str) -> bool {
    // A PEP 508 name never contains `:`, so a scheme at the start means a URL.
    let scheme_end = s.find("://").or_else(|| s.strip_prefix("file:").map(|_| 4));
    let scheme = scheme_end.map(|i| &s[..i]);
    let is_scheme = scheme.is_some_and(|sc| {
        sc.starts_with(|c: char| c.is_ascii_alphabetic())
            && sc.chars().all(|c| c.is_ascii_alphanumeric() || "+.-".contains(c))
    });
    let archive = !s.contains(char::is_whitespace)
        && [".whl", ".tar.gz", ".zip", ".tar.bz2"].iter().any(|ext| file_name_of(s).ends_with(ext));
    s.starts_with(['.', '/', '~']) || is_scheme || archive
}

/// A bare URL, VCS reference or path. A wheel names one exact version; a VCS URL is pinned
/// by a commit.
fn bare_url(path: &Path, line_no: usize, text: &str) -> Result<DeclaredRequirement> {
    // Extras after a path: `.[dev,test]`.
    let (url, extras) = match text.strip_suffix(']').and_then(|t| t.rsplit_once('[')) {
        Some((u, e)) if !u.is_empty() && !u.contains('#') => (u, normalize_extras(e.split(','))),
        _ => (text, Vec::new()),
    };
    if url.chars().any(|c| c.is_control()) {
        return Err(parse_err(path, line_no, format!("'{}' is not a path or URL", text.escape_debug())));
    }
    let wheel = wheel_name_version(url);
    let pinned = wheel.is_some() || vcs_commit_pinned(url);
    let name = egg_name(url).or_else(|| wheel.as_ref().map(|w| w.0.clone())).unwrap_or_else(|| url.to_string());
    let mut r = DeclaredRequirement::new(name, url, if pinned { PinStatus::Pinned } else { PinStatus::Unpinned }, "");
    r.extras = extras;
    r.url = Some(url.to_string());
    r.version = wheel.map(|w| w.1);
    fragment_hashes(url, &mut r.hashes);
    Ok(r)
}

/// Per-requirement options pip accepts after a requirement; the values of those other than
/// `--hash` do not change what is installed.
const REQUIREMENT_OPTIONS: [&str; 4] = ["--hash", "--global-option", "--install-option", "--config-settings"];

/// Parses one requirement line, per-requirement options (`--hash`) included. `origin` is
/// what the requirement records as its origin.
pub fn parse_requirement_line(path: &Path, line_no: usize, line: &str, origin: &str) -> Result<DeclaredRequirement> {
    // Per-requirement options start at the first ` --`.
    let (req_text, opts) = match line.find(" --") {
        Some(i) => (line[..i].trim(), &line[i..]),
        None => (line.trim(), ""),
    };
    let mut hashes = Vec::new();
    let mut tokens = opts.split_whitespace();
    while let Some(tok) = tokens.next() {
        if !tok.starts_with("--") {
            continue; // the value of the option before it
        }
        let (name, value) = match tok.split_once('=') {
            Some((n, v)) => (n, Some(v)),
            None => (tok, None),
        };
        if !REQUIREMENT_OPTIONS.contains(&name) {
            return Err(parse_err(path, line_no, format!("unknown option '{name}' after the requirement; remove it")));
        }
        if name == "--hash" {
            let value = value.or_else(|| tokens.next()).unwrap_or("");
            let hash = normalize_hash(value)
                .filter(|h| h.starts_with("sha256:") || h.starts_with("sha384:") || h.starts_with("sha512:"))
                .ok_or_else(|| {
                    parse_err(
                        path,
                        line_no,
                        format!("--hash '{value}' is not ALGORITHM:HEX with sha256, sha384 or sha512 (as pip needs)"),
                    )
                })?;
            push_hash(&mut hashes, hash);
        }
    }
    let mut r =
        if is_bare_url(req_text) { bare_url(path, line_no, req_text)? } else { pep508(path, line_no, req_text)? };
    for h in hashes {
        push_hash(&mut r.hashes, h);
    }
    r.origin = origin.to_string();
    Ok(r)
}

/// A PEP 508 requirement (`name[extras] specifiers ; marker` or `name @ url ; marker`).
fn pep508(path: &Path, line_no: usize, req_text: &str) -> Result<DeclaredRequirement> {
    // PEP 508 requirements are ASCII; pep508_rs 0.9 slices by byte and panics inside
    // multi-byte characters, so anything else is refused here, by name.
    if let Some(c) = req_text.chars().find(|c| !c.is_ascii() || (c.is_ascii_control() && *c != '\t')) {
        return Err(parse_err(
            path,
            line_no,
            format!("cannot parse requirement '{}': unexpected character {c:?}", req_text.escape_debug()),
        ));
    }
    // pep508_rs 0.9 panics on a name ending in `-`, `_` or `.` followed by some non-ASCII
    // characters ("a-¡"); check the name ourselves first.
    let name_end = req_text.find(|c: char| !(c.is_ascii_alphanumeric() || "-_.".contains(c))).unwrap_or(req_text.len());
    let name = &req_text[..name_end];
    if name.is_empty()
        || !name.ends_with(|c: char| c.is_ascii_alphanumeric())
        || !name.starts_with(|c: char| c.is_ascii_alphanumeric())
    {
        return Err(parse_err(
            path,
            line_no,
            format!("cannot parse requirement '{req_text}': a package name must start and end with a letter or digit"),
        ));
    }
    // Likewise for extras ("x[H...]" panics in pep508_rs 0.9.2).
    let after = req_text[name_end..].trim_start();
    if let Some(rest) = after.strip_prefix('[') {
        let inner = rest.split(']').next().unwrap_or(rest);
        for extra in inner.split(',').map(str::trim).filter(|e| !e.is_empty()) {
            let valid = extra.starts_with(|c: char| c.is_ascii_alphanumeric())
                && extra.ends_with(|c: char| c.is_ascii_alphanumeric())
                && extra.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c));
            if !valid {
                return Err(parse_err(
                    path,
                    line_no,
                    format!("cannot parse requirement '{req_text}': invalid extra '{extra}'"),
                ));
            }
        }
    }
    // And should another input still trip an assertion inside the parser, it is a parse
    // error of this line, not a crash of repro.
    let parsed = std::panic::catch_unwind(|| Requirement::<VerbatimUrl>::from_str(req_text))
        .map_err(|_| parse_err(path, line_no, format!("cannot parse requirement '{req_text}'")))?;
    let req = parsed
        .map_err(|e| parse_err(path, line_no, format!("cannot parse requirement '{req_text}': {}", e.message)))?;
    Ok(classify(&req))
}

fn classify(req: &Requirement<VerbatimUrl>) -> DeclaredRequirement {
    let mut version = None;
    let mut url = None;
    let (spec, status) = match &req.version_or_url {
        None => (String::new(), PinStatus::Unpinned),
        Some(VersionOrUrl::VersionSpecifier(specs)) => {
            let exact = specs.iter().find(|s| matches!(s.operator(), Operator::Equal | Operator::ExactEqual));
            version = exact.map(|s| s.version().to_string());
            let status = if specs.is_empty() {
                PinStatus::Unpinned
            } else if exact.is_some() {
                PinStatus::Pinned
            } else {
                PinStatus::Loose
            };
            (specs.to_string(), status)
        }
        Some(VersionOrUrl::Url(u)) => {
            // As written: the parsed form of a relative path would hold the working directory.
            let written = u.given().map(str::to_string).unwrap_or_else(|| u.to_string());
            let wheel = wheel_name_version(&written);
            let pinned = wheel.is_some() || vcs_commit_pinned(&written);
            version = wheel.map(|w| w.1);
            url = Some(written.clone());
            (format!("@ {written}"), if pinned { PinStatus::Pinned } else { PinStatus::Loose })
        }
    };
    let mut r = DeclaredRequirement::new(req.name.to_string(), spec, status, "");
    r.extras = normalize_extras(req.extras.iter().map(|e| e.as_ref()));
    r.marker = req.marker.try_to_string();
    r.version = version;
    if let Some(u) = &url {
        fragment_hashes(u, &mut r.hashes);
    }
    r.url = url;
    r
}
