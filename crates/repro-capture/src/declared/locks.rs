//! Lock files of Python tools: uv.lock and poetry.lock (TOML), Pipfile.lock (JSON). Every
//! package in them is one exact version, with the hashes of its files.

use std::path::Path;

use repro_core::record::{DeclaredRequirement, PinStatus};
use serde_json::Value as Json;
use toml::de::{DeTable, DeValue};
use toml::Spanned;

use super::pyproject::Toml;
use super::{
    first_line, is_commit, normalize_extras, normalize_hash, normalize_marker, normalize_version, parse_err, push_hash,
    vcs_commit_pinned, wheel_name_version, LineFinder, Source,
};
use crate::python::normalize;
use crate::Result;

/// The `[[package]]` tables of a TOML lock, with the span of each.
fn packages<'v, 't>(t: &Toml<'t>, doc: &'v DeValue<'t>) -> Result<Vec<(&'v Spanned<DeValue<'t>>, &'v DeTable<'t>)>> {
    let Some(p) = doc.get("package") else { return Ok(Vec::new()) };
    let items = t.array(p, "`package`")?;
    items.iter().map(|item| Ok((item, t.table(item, "each [[package]]")?))).collect()
}

/// A locked package: its name (the line of which is the origin) and exact version.
fn locked(t: &Toml, source: &Source, item: &Spanned<DeValue>, table: &DeTable) -> Result<DeclaredRequirement> {
    let name = table
        .get("name")
        .ok_or_else(|| t.err(item, "a [[package]] has no `name`; the lock is damaged, regenerate it"))?;
    let name_str = t.str(name, "`name`")?;
    let version = t.opt_str(table, "version", &format!("package {name_str}"))?;
    let (spec, status) = match version {
        Some(v) => (format!("=={v}"), PinStatus::Pinned),
        None => (String::new(), PinStatus::Unpinned),
    };
    let mut r = DeclaredRequirement::new(normalize(name_str), spec, status, source.origin(t.path, t.line(name)));
    r.version = version.map(normalize_version);
    Ok(r)
}

/// A hash from a lock file, checked.
fn lock_hash(t: &Toml, at: &Spanned<DeValue>, name: &str) -> Result<String> {
    let raw = t.str(at, &format!("package {name}: a hash"))?;
    normalize_hash(raw).ok_or_else(|| t.err(at, format!("package {name}: hash '{raw}' is not ALGORITHM:HEX")))
}

// ---- uv.lock ----------------------------------------------------------------------------

pub(super) fn parse_uv(source: &mut Source, path: &Path, text: &str) -> Result<Vec<DeclaredRequirement>> {
    let (t, doc) = Toml::parse(path, text)?;
    let mut out = Vec::new();
    for (item, table) in packages(&t, &doc)? {
        let mut r = locked(&t, source, item, table)?;
        let what = format!("package {}", r.name);
        if let Some(src) = table.get("source") {
            let src = t.table(src, &format!("{what} `source`"))?;
            // The project itself (editable / virtual source) is the code, not a dependency.
            if src.contains_key("editable") || src.contains_key("virtual") {
                continue;
            }
            // `git` is `https://…?rev=v1#<commit>`; `url` a direct URL; `path`/`directory` local.
            for (key, prefix) in [("git", "git+"), ("url", ""), ("path", ""), ("directory", "")] {
                if let Some(u) = t.opt_str(src, key, &format!("{what} `source`"))? {
                    r.url = Some(format!("{prefix}{u}"));
                    break;
                }
            }
        }
        if let Some(sdist) = table.get("sdist") {
            if let Some(h) = t.table(sdist, &format!("{what} `sdist`"))?.get("hash") {
                push_hash(&mut r.hashes, lock_hash(&t, h, &r.name)?);
            }
        }
        if let Some(wheels) = table.get("wheels") {
            for w in t.array(wheels, &format!("{what} `wheels`"))? {
                if let Some(h) = t.table(w, &format!("{what}: each of `wheels`"))?.get("hash") {
                    push_hash(&mut r.hashes, lock_hash(&t, h, &r.name)?);
                }
            }
        }
        out.push(r);
    }
    Ok(out)
}

// ---- poetry.lock ------------------------------------------------------------------------

pub(super) fn parse_poetry(source: &mut Source, path: &Path, text: &str) -> Result<Vec<DeclaredRequirement>> {
    let (t, doc) = Toml::parse(path, text)?;
    // Lock files before format 2.0 kept the hashes apart, under [metadata.files].
    let old_files = doc.get("metadata").and_then(|m| m.get_ref().get("files")).and_then(|f| f.get_ref().as_table());
    let mut out = Vec::new();
    for (item, table) in packages(&t, &doc)? {
        let mut r = locked(&t, source, item, table)?;
        let what = format!("package {}", r.name);
        let files = table.get("files").or_else(|| {
            let name = table.get("name").and_then(|n| n.get_ref().as_str())?;
            old_files?.get(name)
        });
        if let Some(files) = files {
            for f in t.array(files, &format!("{what} `files`"))? {
                if let Some(h) = t.table(f, &format!("{what}: each of `files`"))?.get("hash") {
                    push_hash(&mut r.hashes, lock_hash(&t, h, &r.name)?);
                }
            }
        }
        if let Some(src) = table.get("source") {
            let src = t.table(src, &format!("{what} `source`"))?;
            let kind = t.opt_str(src, "type", &format!("{what} `source`"))?.unwrap_or("");
            let url = t.opt_str(src, "url", &format!("{what} `source`"))?;
            match (kind, url) {
                ("git", Some(u)) => {
                    let rev = ["resolved_reference", "reference"]
                        .iter()
                        .find_map(|k| src.get(*k).and_then(|v| v.get_ref().as_str()))
                        .filter(|rev| !rev.is_empty());
                    let base = if u.starts_with("git+") { u.to_string() } else { format!("git+{u}") };
                    r.url = Some(match rev {
                        Some(rev) => format!("{base}@{rev}"),
                        None => base,
                    });
                }
                ("url" | "file" | "directory", Some(u)) => r.url = Some(u.to_string()),
                // `legacy`: a package index other than PyPI, not a direct reference.
                _ => {}
            }
        }
        // Poetry 1 wrote one `category`; Poetry 2 writes the `groups` a package is in.
        if let Some(groups) = table.get("groups") {
            let mut names = Vec::new();
            for g in t.array(groups, &format!("{what} `groups`"))? {
                names.push(t.str(g, &format!("{what} `groups`"))?);
            }
            r.group = Some(names.join(",")).filter(|g| !g.is_empty());
        } else {
            r.group = t.opt_str(table, "category", &what)?.map(str::to_string);
        }
        // A per-group table of markers has no single marker to record.
        if let Some(m) = table.get("markers").and_then(|m| m.get_ref().as_str()) {
            r.marker = normalize_marker(path, t.line(item), m)?;
        }
        out.push(r);
    }
    Ok(out)
}

// ---- Pipfile.lock -----------------------------------------------------------------------

/// Pipenv's lock: JSON with a `default` and a `develop` section of packages.
pub(super) fn parse_pipfile(source: &mut Source, path: &Path, text: &str) -> Result<Vec<DeclaredRequirement>> {
    let doc: Json = serde_json::from_str(text)
        .map_err(|e| parse_err(path, e.line(), format!("not valid JSON: {}", first_line(&e.to_string()))))?;
    let Some(doc) = doc.as_object() else {
        return Err(parse_err(path, 1, "expected a Pipfile.lock: a JSON object with `default` and `develop`"));
    };
    let mut lines = LineFinder::new(text);
    let mut out = Vec::new();
    for section in ["default", "develop"] {
        let Some(packages) = doc.get(section) else { continue };
        let section_line = lines.find_str(&format!("\"{section}\""));
        let Some(packages) = packages.as_object() else {
            return Err(parse_err(path, section_line, format!("`{section}` must be an object of packages")));
        };
        let mut section_out = Vec::new();
        for (name, entry) in packages {
            // The key, not the same text as a value (a package named like another's extra).
            let key = format!("\"{name}\":");
            let line = lines.find_after(section_line, |l| l.contains(&key));
            let err = |message: String| parse_err(path, line, format!("package {name}: {message}"));
            let Some(entry) = entry.as_object() else {
                return Err(err("expected an object with `version` and `hashes`".into()));
            };
            let text_field = |key: &str| -> Result<Option<&str>> {
                match entry.get(key) {
                    None | Some(Json::Null) => Ok(None),
                    Some(Json::String(s)) => Ok(Some(s.as_str())),
                    Some(_) => Err(err(format!("`{key}` must be a string"))),
                }
            };
            let version = text_field("version")?.map(str::trim).filter(|v| !v.is_empty() && *v != "*");
            let mut r = DeclaredRequirement::new(normalize(name), "", PinStatus::Unpinned, source.origin(path, line));
            if let Some(v) = version {
                let exact = v.strip_prefix("===").or_else(|| v.strip_prefix("=="));
                r.spec = v.to_string();
                match exact {
                    Some(e) if !e.contains(['*', ',']) => {
                        r.status = PinStatus::Pinned;
                        r.version = Some(normalize_version(e));
                    }
                    _ => r.status = PinStatus::Loose,
                }
            }
            if let Some(git) = text_field("git")? {
                let base = if git.starts_with("git+") { git.to_string() } else { format!("git+{git}") };
                let url = match text_field("ref")? {
                    Some(rev) => format!("{base}@{rev}"),
                    None => base,
                };
                if r.status != PinStatus::Pinned {
                    let pinned = vcs_commit_pinned(&url) || text_field("ref")?.is_some_and(is_commit);
                    r.status = if pinned { PinStatus::Pinned } else { PinStatus::Loose };
                    r.spec = format!("@ {url}");
                }
                r.url = Some(url);
            } else if let Some(file) = text_field("file")? {
                if r.status != PinStatus::Pinned {
                    let wheel = wheel_name_version(file);
                    r.status = if wheel.is_some() { PinStatus::Pinned } else { PinStatus::Loose };
                    r.version = wheel.map(|w| w.1);
                    r.spec = format!("@ {file}");
                }
                r.url = Some(file.to_string());
            } else if let Some(p) = text_field("path")? {
                r.url = Some(p.to_string());
            }
            match entry.get("hashes") {
                None | Some(Json::Null) => {}
                Some(Json::Array(hashes)) => {
                    for h in hashes {
                        let raw = h.as_str().ok_or_else(|| err("each of `hashes` must be a string".into()))?;
                        let hash =
                            normalize_hash(raw).ok_or_else(|| err(format!("hash '{raw}' is not ALGORITHM:HEX")))?;
                        push_hash(&mut r.hashes, hash);
                    }
                }
                Some(_) => return Err(err("`hashes` must be a list".into())),
            }
            match entry.get("extras") {
                None | Some(Json::Null) => {}
                Some(Json::Array(extras)) => {
                    let names: Option<Vec<&str>> = extras.iter().map(Json::as_str).collect();
                    r.extras = normalize_extras(names.ok_or_else(|| err("each of `extras` must be a string".into()))?);
                }
                Some(_) => return Err(err("`extras` must be a list".into())),
            }
            if let Some(m) = text_field("markers")? {
                r.marker = normalize_marker(path, line, m)?;
            }
            r.group = Some(section.to_string());
            section_out.push((line, r));
        }
        // serde_json's map is sorted by key (uppercase first); list them in the file's order.
        section_out.sort_by_key(|(line, _)| *line);
        out.extend(section_out.into_iter().map(|(_, r)| r));
        lines.find_after(section_line, |_| false);
    }
    Ok(out)
}
