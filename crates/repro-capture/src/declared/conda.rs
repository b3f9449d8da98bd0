//! conda: environment.yml (match specs, channels, a nested `pip:` section) and
//! conda-lock.yml (format version 1: one entry per package and platform).

use std::path::Path;

use repro_core::record::{DeclaredRequirement, PinStatus};
use serde_norway::Value;

use super::requirements::{self, Collected};
use super::{first_line, normalize_hash, normalize_version, parse_err, LineFinder, Source};
use crate::python::normalize;
use crate::Result;

fn parse_yaml(path: &Path, text: &str) -> Result<Value> {
    serde_norway::from_str(text).map_err(|e| {
        let line = e.location().map(|l| l.line()).unwrap_or(1);
        parse_err(path, line, format!("not valid YAML: {}", first_line(&e.to_string())))
    })
}

/// The line of a top-level `key:`.
fn key_line(lines: &mut LineFinder, key: &str) -> usize {
    let prefix = format!("{key}:");
    lines.find(|l| l.trim_start().trim_start_matches(['"', '\'']).starts_with(&prefix) || l.starts_with(key))
}

/// A scalar as text: YAML reads `1.10` as a number and `true` as a boolean.
fn scalar(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

// ---- environment.yml --------------------------------------------------------------------

pub(super) fn parse_environment(source: &mut Source, path: &Path, text: &str) -> Result<Vec<DeclaredRequirement>> {
    let doc = parse_yaml(path, text)?;
    let mut lines = LineFinder::new(text);
    let deps = match doc.get("dependencies") {
        Some(Value::Sequence(s)) => s,
        Some(Value::Null) | None => {
            if !matches!(doc, Value::Mapping(_) | Value::Null) {
                return Err(parse_err(
                    path,
                    1,
                    "expected a mapping with a `dependencies:` list (a conda environment file)",
                ));
            }
            return Ok(Vec::new());
        }
        Some(_) => {
            return Err(parse_err(
                path,
                key_line(&mut lines, "dependencies"),
                "`dependencies` must be a list of package specs",
            ))
        }
    };
    key_line(&mut lines, "dependencies");
    let mut out = Vec::new();
    for dep in deps {
        match dep {
            Value::String(s) => {
                let line = lines.find_str(s);
                let mut r = conda_spec(path, line, s)?;
                r.origin = source.origin(path, line);
                r.manager = Some("conda".into());
                out.push(r);
            }
            Value::Mapping(m) => {
                for (k, v) in m {
                    if k.as_str() != Some("pip") {
                        let key = scalar(k).unwrap_or_default();
                        let line = lines.find_str(&format!("{key}:"));
                        return Err(parse_err(
                            path,
                            line,
                            format!("a mapping in `dependencies` may only be `pip:`, not `{key}:`"),
                        ));
                    }
                    let pip_line = lines.find_str("pip:");
                    let Value::Sequence(pips) = v else {
                        return Err(parse_err(path, pip_line, "`pip:` must be a list of requirements"));
                    };
                    // The same reader as requirements.txt: `-r` files, `--hash`, URLs …
                    let mut collected = Collected::default();
                    for p in pips {
                        let s = p.as_str().ok_or_else(|| {
                            parse_err(path, lines.find(|_| false), "every pip requirement must be a string")
                        })?;
                        let line = lines.find_str(s);
                        let logical = s.trim();
                        if logical.is_empty() {
                            continue;
                        }
                        requirements::entry(source, path, line, logical, &mut collected)?;
                    }
                    out.extend(collected.finish().into_iter().map(|mut r| {
                        r.manager = Some("pip".into());
                        r
                    }));
                }
            }
            other => {
                let shown = scalar(other).unwrap_or_else(|| "a list".into());
                let line = lines.find_str(&shown);
                return Err(parse_err(
                    path,
                    line,
                    format!("dependency {shown} is not a package spec (write it as text)"),
                ));
            }
        }
    }
    Ok(out)
}

/// A conda match spec: `numpy`, `numpy=1.26.4`, `numpy=1.26.4=py311h_0`, `numpy==1.26.4`,
/// `numpy>=1.2`, `conda-forge::numpy 1.26.4 py311_0`. The origin is `file:line` by file name.
pub fn conda_spec(path: &Path, line: usize, raw: &str) -> Result<DeclaredRequirement> {
    let s = raw.trim();
    let (channel, s) = match s.rsplit_once("::") {
        Some((c, r)) => (Some(c.trim()).filter(|c| !c.is_empty()).map(str::to_string), r.trim()),
        None => (None, s),
    };
    let end = s.find(|c: char| "=<>!~ [".contains(c)).unwrap_or(s.len());
    let name = &s[..end];
    if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c)) {
        return Err(parse_err(path, line, format!("cannot parse conda package spec '{}'", raw.escape_debug())));
    }
    let spec = s[end..].trim().to_string();
    let full_version =
        |v: &str| !v.is_empty() && !v.contains(['*', ',', '|', '<', '>', '!', '~']) && v.split('.').count() >= 3;
    let mut version = None;
    let mut build = None;
    let status = if spec.is_empty() {
        PinStatus::Unpinned
    } else if let Some(v) = spec.strip_prefix("==") {
        if v.is_empty() || v.contains(['*', ',', '|', '<', '>']) {
            PinStatus::Loose
        } else {
            version = Some(v.trim().to_string());
            PinStatus::Pinned
        }
    } else if let Some(v) = spec.strip_prefix('=') {
        let mut parts = v.splitn(2, '=');
        let ver = parts.next().unwrap_or("").trim();
        build = parts.next().map(|b| b.trim().to_string()).filter(|b| !b.is_empty());
        if ver.is_empty() {
            return Err(parse_err(path, line, format!("'{raw}': `=` needs a version")));
        }
        // `=1.26` means 1.26.*; a full version, or any version with a build, is one package.
        if full_version(ver) || (build.is_some() && !ver.contains('*')) {
            version = Some(ver.to_string());
            PinStatus::Pinned
        } else {
            PinStatus::Loose
        }
    } else if spec.starts_with(['<', '>', '!', '~', '[']) {
        PinStatus::Loose
    } else {
        // Space-separated match spec: "numpy 1.26.4 [build]".
        let mut parts = spec.split_whitespace();
        let ver = parts.next().unwrap_or("");
        build = parts.next().map(str::to_string);
        if full_version(ver) || (build.is_some() && !ver.contains(['*', ',', '|', '<', '>'])) {
            version = Some(ver.trim_start_matches('=').to_string());
            PinStatus::Pinned
        } else {
            PinStatus::Loose
        }
    };
    let file = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    // Conda names are lowercase, and unlike PyPI's, `_` and `-` differ (`_libgcc_mutex`).
    let mut r = DeclaredRequirement::new(name.to_ascii_lowercase(), spec, status, format!("{file}:{}", line.max(1)));
    r.version = version;
    r.build = build;
    r.channel = channel;
    Ok(r)
}

// ---- conda-lock.yml ---------------------------------------------------------------------

/// conda-lock's lock file. Packages are listed once per platform; one platform is kept,
/// the first of `metadata.platforms` (all when none is listed), and named in each `group`
/// as `category (platform)`.
pub(super) fn parse_lock(source: &mut Source, path: &Path, text: &str) -> Result<Vec<DeclaredRequirement>> {
    let doc = parse_yaml(path, text)?;
    let mut lines = LineFinder::new(text);
    if !matches!(doc, Value::Mapping(_)) {
        return Err(parse_err(
            path,
            1,
            "expected a conda-lock file: a mapping with `version:`, `metadata:` and `package:`",
        ));
    }
    if let Some(v) = doc.get("version") {
        // Version 2 (conda-lock's next format) drops `optional` and keeps the rest.
        if !matches!(v.as_u64(), Some(1 | 2)) {
            let shown = scalar(v).unwrap_or_else(|| "a non-number".into());
            return Err(parse_err(
                path,
                key_line(&mut lines, "version"),
                format!("conda-lock file version {shown} is not supported (1 or 2); regenerate it with conda-lock"),
            ));
        }
    }
    let platform = match doc.get("metadata").and_then(|m| m.get("platforms")) {
        None | Some(Value::Null) => None,
        Some(Value::Sequence(p)) => p.first().and_then(scalar),
        Some(_) => {
            return Err(parse_err(path, key_line(&mut lines, "  platforms"), "`metadata.platforms` must be a list"));
        }
    };
    let packages = match doc.get("package") {
        Some(Value::Sequence(p)) => p,
        None | Some(Value::Null) => return Ok(Vec::new()),
        Some(_) => {
            return Err(parse_err(path, key_line(&mut lines, "package"), "`package` must be a list of packages"))
        }
    };
    key_line(&mut lines, "package");
    let mut out = Vec::new();
    for (i, p) in packages.iter().enumerate() {
        let Value::Mapping(_) = p else {
            return Err(parse_err(path, lines.find(|_| false), format!("package #{} is not a mapping", i + 1)));
        };
        let field = |key: &str| p.get(key).and_then(scalar);
        let Some(name) = field("name").filter(|n| !n.is_empty()) else {
            return Err(parse_err(path, lines.find(|_| false), format!("package #{} has no `name`", i + 1)));
        };
        let line = lines.find(|l| {
            let l = l.trim_start().trim_start_matches('-').trim();
            l.strip_prefix("name:").is_some_and(|v| v.trim().trim_matches(['"', '\'']) == name)
        });
        let pkg_platform = field("platform");
        if platform.is_some() && pkg_platform != platform {
            continue;
        }
        let manager = field("manager").unwrap_or_else(|| "conda".into());
        let version = field("version");
        let (spec, status) = match &version {
            Some(v) => (format!("=={v}"), PinStatus::Pinned),
            None => (String::new(), PinStatus::Unpinned),
        };
        let name = if manager == "pip" { normalize(&name) } else { name.to_ascii_lowercase() };
        let mut r = DeclaredRequirement::new(name.clone(), spec, status, source.origin(path, line));
        r.version = version.map(|v| if manager == "pip" { normalize_version(&v) } else { v });
        if let Some(url) = field("url") {
            if manager == "conda" {
                let (channel, build) = conda_url_parts(&url);
                r.channel = channel;
                r.build = field("build").or(build);
            }
            r.url = Some(url);
        }
        match p.get("hash") {
            None | Some(Value::Null) => {}
            Some(Value::Mapping(h)) => {
                for (algo, hex) in h {
                    let (Some(algo), Some(hex)) = (scalar(algo), scalar(hex)) else { continue };
                    let hash = normalize_hash(&format!("{algo}:{hex}")).ok_or_else(|| {
                        parse_err(path, line, format!("package {name}: hash {algo}: '{hex}' is not hex"))
                    })?;
                    r.hashes.push(hash);
                }
            }
            Some(_) => return Err(parse_err(path, line, format!("package {name}: `hash` must map md5/sha256 to hex"))),
        }
        // md5 before sha256 whatever the order in the file, for stable records.
        r.hashes.sort();
        let category = field("category").unwrap_or_else(|| "main".into());
        r.group = Some(match &pkg_platform {
            Some(pl) => format!("{category} ({pl})"),
            None => category,
        });
        r.manager = Some(manager);
        out.push(r);
    }
    Ok(out)
}

/// The channel and build string a conda package URL names:
/// `https://conda.anaconda.org/conda-forge/linux-64/numpy-1.26.4-py311h64a7726_0.conda`
/// is channel `conda-forge`, build `py311h64a7726_0`.
fn conda_url_parts(url: &str) -> (Option<String>, Option<String>) {
    let Some((dir, file)) = url.rsplit_once('/') else { return (None, None) };
    let stem = file.strip_suffix(".conda").or_else(|| file.strip_suffix(".tar.bz2"));
    // `name-version-build`: neither version nor build holds a `-`.
    let build = stem.and_then(|s| s.rsplit_once('-')).map(|(_, b)| b.to_string()).filter(|b| !b.is_empty());
    let channel = dir.rsplit_once('/').map(|(c, _subdir)| c).map(|c| {
        // The channels anaconda hosts go by their short names, as conda shows them.
        ["https://conda.anaconda.org/", "https://repo.anaconda.com/", "http://conda.anaconda.org/"]
            .iter()
            .find_map(|host| c.strip_prefix(host))
            .unwrap_or(c)
            .to_string()
    });
    (channel.filter(|c| !c.is_empty()), build)
}
