//! Declared environments: the file a project says it needs (requirements.txt,
//! environment.yml, pyproject.toml with uv.lock or poetry.lock), read well enough to tell
//! each dependency pinned, loose or unpinned, with errors that name the file and line.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use pep508_rs::pep440_rs::Operator;
use pep508_rs::{Requirement, VersionOrUrl};
use repro_core::record::{DeclaredEnvironment, DeclaredRequirement, FileEntry, PinStatus};
use repro_core::Digest;

use crate::python::normalize;
use crate::{CaptureError, Result};

/// A declared environment plus the files to store with it (absolute path, entry).
#[derive(Debug)]
pub struct Declared {
    pub environment: DeclaredEnvironment,
    pub main_file: PathBuf,
    pub companion_files: Vec<PathBuf>,
}

/// Looks for an environment file in `cwd` and each parent up to `root` (inclusive).
pub fn detect(cwd: &Path, root: Option<&Path>) -> Option<PathBuf> {
    for dir in cwd.ancestors() {
        for name in
            ["environment.yml", "environment.yaml", "requirements.txt", "uv.lock", "poetry.lock", "pyproject.toml"]
        {
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

/// Reads `path`. `display_base` is what recorded paths are made relative to (the repo root).
pub fn read(path: &Path, display_base: &Path) -> Result<Declared> {
    let name = path.file_name().map(|n| n.to_string_lossy().to_lowercase()).unwrap_or_default();
    let rel = |p: &Path| p.strip_prefix(display_base).unwrap_or(p).display().to_string();
    let text = read_text(path)?;
    let mut companions = Vec::new();
    let (format, requirements) = if name.ends_with(".yml") || name.ends_with(".yaml") {
        ("conda", parse_conda(path, &text)?)
    } else if name == "uv.lock" || name == "poetry.lock" {
        let format = if name == "uv.lock" { "uv-lock" } else { "poetry-lock" };
        let pyproject = path.with_file_name("pyproject.toml");
        if pyproject.is_file() {
            companions.push(pyproject);
        }
        (format, parse_lock(path, &text)?)
    } else if name == "pyproject.toml" {
        for lock in ["uv.lock", "poetry.lock"] {
            let l = path.with_file_name(lock);
            if l.is_file() {
                return read(&l, display_base);
            }
        }
        ("pyproject", parse_pyproject(path, &text)?)
    } else {
        let mut seen = vec![path.to_path_buf()];
        let reqs = parse_requirements_file(path, &text, &mut seen, &rel)?;
        companions.extend(seen.into_iter().skip(1));
        ("requirements", reqs)
    };
    let mut comp_entries = Vec::new();
    for c in &companions {
        comp_entries.push(file_entry(c, &rel(c))?);
    }
    Ok(Declared {
        environment: DeclaredEnvironment {
            path: rel(path),
            format: format.to_string(),
            digest: Digest::of_bytes(text.as_bytes()),
            companions: comp_entries,
            requirements,
        },
        main_file: path.to_path_buf(),
        companion_files: companions,
    })
}

fn read_text(path: &Path) -> Result<String> {
    let bytes = std::fs::read(path).map_err(CaptureError::io("read", path))?;
    String::from_utf8(bytes).map_err(|e| CaptureError::Invalid {
        path: path.to_path_buf(),
        message: format!("not UTF-8 text (byte {})", e.utf8_error().valid_up_to()),
    })
}

pub(crate) fn file_entry(path: &Path, rel: &str) -> Result<FileEntry> {
    let meta = std::fs::metadata(path).map_err(CaptureError::io("read", path))?;
    let (digest, size) = repro_store::objects::hash_file(path).map_err(CaptureError::io("read", path))?;
    Ok(FileEntry { path: rel.to_string(), size, mode: crate::git::mode_of(&meta), digest })
}

fn parse_err(path: &Path, line: usize, message: impl Into<String>) -> CaptureError {
    CaptureError::Parse { path: path.to_path_buf(), line, message: message.into() }
}

/// Parses the text of a declared-environment file, choosing the format by `path`'s name
/// (no includes are followed from here; an `-r` names a file that must exist beside `path`).
/// For fuzzing and for callers that already hold the text.
pub fn parse_text(path: &Path, text: &str) -> Result<Vec<DeclaredRequirement>> {
    let name = path.file_name().map(|n| n.to_string_lossy().to_lowercase()).unwrap_or_default();
    if name.ends_with(".yml") || name.ends_with(".yaml") {
        parse_conda(path, text)
    } else if name.ends_with(".lock") {
        parse_lock(path, text)
    } else if name == "pyproject.toml" {
        parse_pyproject(path, text)
    } else {
        let base = path.parent().unwrap_or(Path::new(".")).to_path_buf();
        let rel = move |p: &Path| p.strip_prefix(&base).unwrap_or(p).display().to_string();
        parse_requirements_file(path, text, &mut vec![path.to_path_buf()], &rel)
    }
}

// ---- requirements.txt -------------------------------------------------------------------

/// One logical line of a requirements file: continuations joined, comments removed.
fn logical_lines(text: &str) -> Vec<(usize, String)> {
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

const IGNORED_OPTIONS: [&str; 16] = [
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
];

/// Parses one requirements file and the files it includes (`-r`, `-c`), recursively.
fn parse_requirements_file(
    path: &Path,
    text: &str,
    seen: &mut Vec<PathBuf>,
    rel: &dyn Fn(&Path) -> String,
) -> Result<Vec<DeclaredRequirement>> {
    let mut reqs = Vec::new();
    let mut constraints: HashMap<String, String> = HashMap::new();
    let origin = |line: usize| format!("{}:{line}", rel(path));
    for (line_no, line) in logical_lines(text) {
        if line.starts_with('-') {
            let (opt, value) = split_option(&line);
            match opt.as_str() {
                "-r" | "--requirement" | "-c" | "--constraint" => {
                    let value = value.ok_or_else(|| parse_err(path, line_no, format!("{opt} needs a file name")))?;
                    let inc = path.parent().unwrap_or(Path::new(".")).join(&value);
                    if seen.contains(&inc) {
                        continue; // already read: includes may form a diamond or a loop
                    }
                    let inc_text = read_text(&inc)
                        .map_err(|_| parse_err(path, line_no, format!("cannot read included file {value}")))?;
                    seen.push(inc.clone());
                    let included = parse_requirements_file(&inc, &inc_text, seen, rel)?;
                    if opt.starts_with("-c") || opt == "--constraint" {
                        for r in included.into_iter().filter(|r| r.status == PinStatus::Pinned) {
                            constraints.insert(normalize(&r.name), r.spec);
                        }
                    } else {
                        reqs.extend(included);
                    }
                }
                "-e" | "--editable" => {
                    let value = value.ok_or_else(|| parse_err(path, line_no, "-e needs a path or URL"))?;
                    let pinned = vcs_commit_pinned(&value);
                    reqs.push(DeclaredRequirement {
                        name: egg_name(&value).unwrap_or_else(|| value.clone()),
                        spec: format!("-e {value}"),
                        status: if pinned { PinStatus::Pinned } else { PinStatus::Unpinned },
                        origin: origin(line_no),
                    });
                }
                o if IGNORED_OPTIONS.contains(&o) => {}
                o => return Err(parse_err(path, line_no, format!("unknown option '{o}'"))),
            }
            continue;
        }
        reqs.push(parse_requirement_line(path, line_no, &line, &origin(line_no))?);
    }
    for r in &mut reqs {
        if r.status != PinStatus::Pinned {
            if let Some(spec) = constraints.get(&normalize(&r.name)) {
                r.status = PinStatus::Pinned;
                r.spec = format!("{} (constraint {spec})", r.spec).trim().to_string();
            }
        }
    }
    Ok(reqs)
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

fn egg_name(url: &str) -> Option<String> {
    url.split("#egg=").nth(1).map(|s| s.split('&').next().unwrap_or(s).to_string())
}

fn vcs_commit_pinned(url: &str) -> bool {
    if !url.contains('+') || !url.contains("://") {
        return false;
    }
    let before_fragment = url.split('#').next().unwrap_or(url);
    let after_host = before_fragment.split("://").nth(1).unwrap_or("");
    match after_host.rsplit_once('@') {
        Some((_, rev)) => rev.len() >= 7 && rev.len() <= 40 && rev.bytes().all(|b| b.is_ascii_hexdigit()),
        None => false,
    }
}

/// Parses one requirement (with per-requirement options such as `--hash` removed).
pub fn parse_requirement_line(path: &Path, line_no: usize, line: &str, origin: &str) -> Result<DeclaredRequirement> {
    // Per-requirement options start at the first ` --`.
    let req_text = match line.find(" --") {
        Some(i) => {
            let opts = &line[i..];
            for o in opts.split_whitespace().filter(|o| o.starts_with("--")) {
                let name = o.split('=').next().unwrap_or(o);
                if !["--hash", "--global-option", "--install-option", "--config-settings"].contains(&name) {
                    return Err(parse_err(path, line_no, format!("unknown option '{name}' after the requirement")));
                }
            }
            line[..i].trim()
        }
        None => line.trim(),
    };
    // A bare path or URL (no name): pip accepts it; a wheel file names one exact version.
    if req_text.starts_with('.')
        || req_text.starts_with('/')
        || (req_text.contains("://") && !req_text.contains(" @ ") && !req_text.contains('@'))
    {
        let pinned = req_text.ends_with(".whl") || vcs_commit_pinned(req_text);
        return Ok(DeclaredRequirement {
            name: egg_name(req_text).unwrap_or_else(|| req_text.to_string()),
            spec: req_text.to_string(),
            status: if pinned { PinStatus::Pinned } else { PinStatus::Unpinned },
            origin: origin.to_string(),
        });
    }
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
    let parsed = std::panic::catch_unwind(|| Requirement::<pep508_rs::VerbatimUrl>::from_str(req_text))
        .map_err(|_| parse_err(path, line_no, format!("cannot parse requirement '{req_text}'")))?;
    let req = parsed
        .map_err(|e| parse_err(path, line_no, format!("cannot parse requirement '{req_text}': {}", e.message)))?;
    Ok(classify(&req, origin))
}

fn classify(req: &Requirement, origin: &str) -> DeclaredRequirement {
    let (spec, status) = match &req.version_or_url {
        None => (String::new(), PinStatus::Unpinned),
        Some(VersionOrUrl::VersionSpecifier(specs)) => {
            let exact = specs.iter().any(|s| matches!(s.operator(), Operator::Equal | Operator::ExactEqual));
            let status = if specs.is_empty() {
                PinStatus::Unpinned
            } else if exact {
                PinStatus::Pinned
            } else {
                PinStatus::Loose
            };
            (specs.to_string(), status)
        }
        Some(VersionOrUrl::Url(url)) => {
            let u = url.to_string();
            let pinned = u.ends_with(".whl") || vcs_commit_pinned(&u);
            (format!("@ {u}"), if pinned { PinStatus::Pinned } else { PinStatus::Loose })
        }
    };
    DeclaredRequirement { name: req.name.to_string(), spec, status, origin: origin.to_string() }
}

// ---- conda environment.yml --------------------------------------------------------------

fn parse_conda(path: &Path, text: &str) -> Result<Vec<DeclaredRequirement>> {
    let doc: serde_norway::Value = serde_norway::from_str(text).map_err(|e| {
        let line = e.location().map(|l| l.line()).unwrap_or(1);
        parse_err(path, line, format!("not valid YAML: {}", first_line(&e.to_string())))
    })?;
    let deps = match doc.get("dependencies") {
        Some(serde_norway::Value::Sequence(s)) => s,
        Some(serde_norway::Value::Null) | None => {
            if !matches!(doc, serde_norway::Value::Mapping(_)) {
                return Err(CaptureError::Invalid {
                    path: path.to_path_buf(),
                    message: "expected a mapping with a `dependencies:` list".into(),
                });
            }
            return Ok(Vec::new());
        }
        Some(_) => {
            return Err(CaptureError::Invalid {
                path: path.to_path_buf(),
                message: "`dependencies` must be a list".into(),
            })
        }
    };
    let line_of = |needle: &str| -> usize { text.lines().position(|l| l.contains(needle)).map(|i| i + 1).unwrap_or(0) };
    let mut out = Vec::new();
    for dep in deps {
        match dep {
            serde_norway::Value::String(s) => {
                let line = line_of(s);
                out.push(conda_spec(path, line, s)?);
            }
            serde_norway::Value::Number(n) => {
                return Err(parse_err(
                    path,
                    line_of(&n.to_string()),
                    format!("dependency {n} is a number, expected a package spec"),
                ));
            }
            serde_norway::Value::Mapping(m) => {
                for (k, v) in m {
                    if k.as_str() != Some("pip") {
                        return Err(parse_err(path, 0, "a mapping in `dependencies` may only be `pip:`"));
                    }
                    let serde_norway::Value::Sequence(pips) = v else {
                        return Err(parse_err(path, line_of("pip:"), "`pip:` must be a list of requirements"));
                    };
                    for p in pips {
                        let s = p.as_str().ok_or_else(|| {
                            parse_err(path, line_of("pip:"), "every pip requirement must be a string")
                        })?;
                        let line = line_of(s);
                        let origin =
                            format!("{}:{line}", path.file_name().map(|n| n.to_string_lossy()).unwrap_or_default());
                        if s.starts_with('-') {
                            continue; // pip options (--index-url …)
                        }
                        out.push(parse_requirement_line(path, line, s, &origin)?);
                    }
                }
            }
            other => return Err(parse_err(path, 0, format!("unexpected dependency entry {other:?}"))),
        }
    }
    Ok(out)
}

fn first_line(s: &str) -> String {
    s.lines().next().unwrap_or("").to_string()
}

/// A conda match spec: `numpy`, `numpy=1.26.4`, `numpy=1.26.4=py311h_0`, `numpy==1.26.4`,
/// `numpy>=1.2`, `conda-forge::numpy 1.26.4 py311_0`.
pub fn conda_spec(path: &Path, line: usize, raw: &str) -> Result<DeclaredRequirement> {
    let s = raw.trim();
    let s = s.rsplit_once("::").map(|(_, r)| r).unwrap_or(s);
    let end = s.find(|c: char| "=<>!~ [".contains(c)).unwrap_or(s.len());
    let name = &s[..end];
    if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c)) {
        return Err(parse_err(path, line, format!("cannot parse conda package spec '{raw}'")));
    }
    let spec = s[end..].trim().to_string();
    let full_version = |v: &str| {
        !v.is_empty() && !v.contains('*') && !v.contains(',') && !v.contains('|') && v.split('.').count() >= 3
    };
    let status = if spec.is_empty() {
        PinStatus::Unpinned
    } else if let Some(v) = spec.strip_prefix("==") {
        if v.is_empty() || v.contains('*') || v.contains(',') {
            PinStatus::Loose
        } else {
            PinStatus::Pinned
        }
    } else if let Some(v) = spec.strip_prefix('=') {
        let mut parts = v.split('=');
        let version = parts.next().unwrap_or("");
        let build = parts.next();
        if version.is_empty() {
            return Err(parse_err(path, line, format!("'{raw}': `=` needs a version")));
        }
        if full_version(version) || (build.is_some() && !version.contains('*')) {
            PinStatus::Pinned
        } else {
            PinStatus::Loose
        }
    } else if spec.starts_with(['<', '>', '!', '~']) {
        PinStatus::Loose
    } else {
        // Space-separated match spec: "numpy 1.26.4 [build]".
        let version = spec.split_whitespace().next().unwrap_or("");
        if full_version(version) {
            PinStatus::Pinned
        } else {
            PinStatus::Loose
        }
    };
    let file = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    Ok(DeclaredRequirement { name: name.to_string(), spec, status, origin: format!("{file}:{line}") })
}

// ---- pyproject.toml and lock files ------------------------------------------------------

fn parse_toml(path: &Path, text: &str) -> Result<toml::Table> {
    text.parse::<toml::Table>().map_err(|e| {
        let line = e.span().map(|s| text[..s.start.min(text.len())].lines().count().max(1)).unwrap_or(1);
        parse_err(path, line, format!("not valid TOML: {}", first_line(e.message())))
    })
}

fn parse_pyproject(path: &Path, text: &str) -> Result<Vec<DeclaredRequirement>> {
    let doc = parse_toml(path, text)?;
    let file = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let mut out = Vec::new();
    let mut strings: Vec<(String, String)> = Vec::new();
    if let Some(project) = doc.get("project").and_then(|p| p.as_table()) {
        if let Some(deps) = project.get("dependencies") {
            let arr = deps.as_array().ok_or_else(|| CaptureError::Invalid {
                path: path.to_path_buf(),
                message: "[project] dependencies must be a list of strings".into(),
            })?;
            for d in arr {
                let s = d.as_str().ok_or_else(|| CaptureError::Invalid {
                    path: path.to_path_buf(),
                    message: "[project] dependencies must be strings".into(),
                })?;
                strings.push((s.to_string(), "project.dependencies".into()));
            }
        }
        if let Some(opt) = project.get("optional-dependencies").and_then(|o| o.as_table()) {
            for (group, deps) in opt {
                for d in deps.as_array().into_iter().flatten().filter_map(|d| d.as_str()) {
                    strings.push((d.to_string(), format!("project.optional-dependencies.{group}")));
                }
            }
        }
    }
    for (s, section) in strings {
        let line = text.lines().position(|l| l.contains(&s)).map(|i| i + 1).unwrap_or(0);
        let mut r = parse_requirement_line(path, line, &s, &format!("{file}:{line}"))?;
        if section != "project.dependencies" {
            r.origin = format!("{} ({section})", r.origin);
        }
        out.push(r);
    }
    if let Some(poetry) =
        doc.get("tool").and_then(|t| t.get("poetry")).and_then(|p| p.get("dependencies")).and_then(|d| d.as_table())
    {
        for (name, v) in poetry {
            if name == "python" {
                continue;
            }
            let spec = match v {
                toml::Value::String(s) => s.clone(),
                toml::Value::Table(t) => t.get("version").and_then(|v| v.as_str()).unwrap_or("").to_string(),
                _ => String::new(),
            };
            let exact = !spec.is_empty()
                && (spec.starts_with("==") || spec.chars().next().is_some_and(|c| c.is_ascii_digit()))
                && !spec.contains('*')
                && !spec.contains(',');
            let status = if spec.is_empty() || spec == "*" {
                PinStatus::Unpinned
            } else if exact {
                PinStatus::Pinned
            } else {
                PinStatus::Loose
            };
            out.push(DeclaredRequirement {
                name: name.clone(),
                spec,
                status,
                origin: format!("{file} (tool.poetry.dependencies)"),
            });
        }
    }
    Ok(out)
}

fn parse_lock(path: &Path, text: &str) -> Result<Vec<DeclaredRequirement>> {
    let doc = parse_toml(path, text)?;
    let file = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let packages = match doc.get("package") {
        Some(toml::Value::Array(a)) => a,
        None => return Ok(Vec::new()),
        Some(_) => {
            return Err(CaptureError::Invalid {
                path: path.to_path_buf(),
                message: "`package` must be an array of tables".into(),
            })
        }
    };
    let mut out = Vec::new();
    for (i, p) in packages.iter().enumerate() {
        let t = p.as_table().ok_or_else(|| CaptureError::Invalid {
            path: path.to_path_buf(),
            message: format!("package #{} is not a table", i + 1),
        })?;
        let name = t.get("name").and_then(|n| n.as_str()).ok_or_else(|| CaptureError::Invalid {
            path: path.to_path_buf(),
            message: format!("package #{} has no name", i + 1),
        })?;
        // The project itself (editable / virtual source in uv.lock) is the code, not a dependency.
        if let Some(src) = t.get("source").and_then(|s| s.as_table()) {
            if src.contains_key("editable") || src.contains_key("virtual") {
                continue;
            }
        }
        let version = t.get("version").and_then(|v| v.as_str());
        let (spec, status) = match version {
            Some(v) => (format!("=={v}"), PinStatus::Pinned),
            None => (String::new(), PinStatus::Unpinned),
        };
        out.push(DeclaredRequirement {
            name: name.to_string(),
            spec,
            status,
            origin: format!("{file} (package {name})"),
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn reqs(text: &str) -> Result<Vec<DeclaredRequirement>> {
        let d = tempfile::tempdir().expect("tempdir");
        let p = d.path().join("requirements.txt");
        std::fs::write(&p, text).expect("write");
        read(&p, d.path()).map(|d| d.environment.requirements)
    }

    fn status_of(r: &[DeclaredRequirement]) -> Vec<(String, PinStatus)> {
        r.iter().map(|r| (r.name.clone(), r.status)).collect()
    }

    #[test]
    fn requirements_pins() {
        let r = reqs("# comment\nnumpy==1.26.4\nscipy>=1.10  # loose\npandas\nscikit-learn[extra]==1.4.2 ; python_version >= '3.9' \\\n    --hash=sha256:abcd\nrequests===2.0\nflask==2.*\n").expect("parses");
        assert_eq!(
            status_of(&r),
            vec![
                ("numpy".into(), PinStatus::Pinned),
                ("scipy".into(), PinStatus::Loose),
                ("pandas".into(), PinStatus::Unpinned),
                ("scikit-learn".into(), PinStatus::Pinned),
                ("requests".into(), PinStatus::Pinned),
                ("flask".into(), PinStatus::Loose),
            ]
        );
        assert_eq!(r[1].origin, "requirements.txt:3");
    }

    #[test]
    fn includes_constraints_and_urls() {
        let d = tempfile::tempdir().expect("tempdir");
        std::fs::write(d.path().join("base.txt"), "joblib==1.3.2\n").expect("write");
        std::fs::write(d.path().join("c.txt"), "numpy==1.26.4\n").expect("write");
        let p = d.path().join("requirements.txt");
        std::fs::write(&p, "-r base.txt\n-c c.txt\nnumpy\n-e git+https://github.com/x/y@0123456789abcdef0123456789abcdef01234567#egg=y\n--index-url https://pypi.org/simple\npkg @ https://files.example/pkg-1.0-py3-none-any.whl\n").expect("write");
        let d2 = read(&p, d.path()).expect("parses");
        let s = status_of(&d2.environment.requirements);
        assert_eq!(s[0], ("joblib".into(), PinStatus::Pinned));
        assert_eq!(s[1], ("numpy".into(), PinStatus::Pinned), "pinned by the constraints file");
        assert_eq!(s[2], ("y".into(), PinStatus::Pinned));
        assert_eq!(s[3], ("pkg".into(), PinStatus::Pinned));
        assert_eq!(d2.companion_files.len(), 2);
    }

    #[test]
    fn requirement_errors_name_file_and_line() {
        for (text, line) in [
            ("numpy==1.0\nnumpy==\n", 2),
            ("ok==1\n\n!!!\n", 3),
            ("--frobnicate x\n", 1),
            ("x==1 --bogus\n", 1),
            ("-r missing.txt\n", 1),
        ] {
            let e = reqs(text).expect_err(text).to_string();
            assert!(e.contains(&format!("requirements.txt:{line}:")), "{e}");
            assert!(!e.contains('\n'), "{e}");
        }
    }

    #[test]
    fn malformed_extras_are_errors_not_panics() {
        // Found by `cargo fuzz run declared`: pep508_rs 0.9.2 asserts on these.
        for text in ["UUO[H...\n", "x[a-]==1\n", "y[.b]\n", "AA7;''~=''~=\u{0}B]] 1]G[={.-@[@@] \u{feff}\n"] {
            let e = reqs(text).expect_err(text).to_string();
            assert!(e.contains("requirements.txt:1: cannot parse requirement"), "{e}");
        }
        let ok = reqs("x[a, b_c]==1\n").expect("valid extras");
        assert_eq!(ok[0].status, PinStatus::Pinned);
    }

    #[test]
    fn non_ascii_options_are_errors_not_panics() {
        // Found by `cargo fuzz run declared`: a glued short option split inside a character.
        let e = reqs("#-\u{420}W#\n-\u{420}W\n").expect_err("unknown option").to_string();
        assert!(e.contains("requirements.txt:2: unknown option"), "{e}");
    }

    #[test]
    fn conda_pins() {
        let d = tempfile::tempdir().expect("tempdir");
        let p = d.path().join("environment.yml");
        std::fs::write(&p, "name: x\nchannels: [conda-forge]\ndependencies:\n  - python=3.11\n  - numpy=1.26.4\n  - scipy=1.11.4=py311h_0\n  - pandas>=2\n  - conda-forge::joblib==1.3.2\n  - tqdm\n  - pip:\n    - requests==2.31.0\n    - rich\n").expect("write");
        let r = read(&p, d.path()).expect("parses").environment.requirements;
        assert_eq!(
            status_of(&r),
            vec![
                ("python".into(), PinStatus::Loose),
                ("numpy".into(), PinStatus::Pinned),
                ("scipy".into(), PinStatus::Pinned),
                ("pandas".into(), PinStatus::Loose),
                ("joblib".into(), PinStatus::Pinned),
                ("tqdm".into(), PinStatus::Unpinned),
                ("requests".into(), PinStatus::Pinned),
                ("rich".into(), PinStatus::Unpinned),
            ]
        );
        assert_eq!(r[1].origin, "environment.yml:5");
    }

    #[test]
    fn conda_garbage_names_the_file() {
        let d = tempfile::tempdir().expect("tempdir");
        let p = d.path().join("environment.yml");
        for text in [
            "dependencies: [\n",
            "dependencies: 3\n",
            "- a\n- b\n",
            "dependencies:\n  - '=1.0'\n",
            "dependencies:\n  - {conda: x}\n",
            "dependencies:\n  - pip: 3\n",
        ] {
            std::fs::write(&p, text).expect("write");
            let e = read(&p, d.path()).expect_err(text).to_string();
            assert!(e.contains("environment.yml"), "{e}");
            assert!(!e.contains('\n'), "{e}");
        }
    }

    #[test]
    fn pyproject_and_locks() {
        let d = tempfile::tempdir().expect("tempdir");
        std::fs::write(
            d.path().join("pyproject.toml"),
            "[project]\nname = \"x\"\ndependencies = [\"numpy>=1\", \"scipy==1.11.4\"]\n",
        )
        .expect("write");
        let r = read(&d.path().join("pyproject.toml"), d.path()).expect("parses").environment;
        assert_eq!(r.format, "pyproject");
        assert_eq!(
            status_of(&r.requirements),
            vec![("numpy".into(), PinStatus::Loose), ("scipy".into(), PinStatus::Pinned)]
        );
        std::fs::write(d.path().join("uv.lock"), "version = 1\n[[package]]\nname = \"x\"\nversion = \"0.1.0\"\nsource = { editable = \".\" }\n[[package]]\nname = \"numpy\"\nversion = \"1.26.4\"\n").expect("write");
        let r = read(&d.path().join("pyproject.toml"), d.path()).expect("parses").environment;
        assert_eq!(r.format, "uv-lock");
        assert_eq!(status_of(&r.requirements), vec![("numpy".into(), PinStatus::Pinned)]);
        assert_eq!(r.companions.len(), 1);
        std::fs::write(d.path().join("uv.lock"), "[[package]\n").expect("write");
        let e = read(&d.path().join("uv.lock"), d.path()).expect_err("bad toml").to_string();
        assert!(e.contains("uv.lock:1:"), "{e}");
    }

    proptest! {
        #[test]
        fn requirements_parser_never_panics(text in "(?s).{0,200}") {
            let _ = logical_lines(&text);
            for (n, l) in logical_lines(&text) {
                let _ = parse_requirement_line(Path::new("r.txt"), n, &l, "r.txt");
            }
        }

        #[test]
        fn conda_spec_never_panics(s in ".{0,60}") {
            let _ = conda_spec(Path::new("environment.yml"), 1, &s);
        }
    }
}
