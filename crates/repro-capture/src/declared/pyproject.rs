//! pyproject.toml: `[project]` dependencies and optional dependencies, PEP 735
//! `[dependency-groups]`, and Poetry's `[tool.poetry]` dependencies and groups. Also the
//! TOML reading the lock files share: every value keeps its span, so errors and origins
//! name the line a value is on.

use std::path::Path;

use repro_core::record::{DeclaredRequirement, PinStatus};
use toml::de::{DeTable, DeValue};
use toml::Spanned;

use super::requirements::parse_requirement_line;
use super::{
    first_line, is_commit, line_of_offset, normalize_extras, normalize_marker, normalize_version, parse_err,
    vcs_commit_pinned, wheel_name_version, Source,
};
use crate::python::normalize;
use crate::{CaptureError, Result};

/// A TOML document being read, for errors and lines.
pub(super) struct Toml<'t> {
    pub path: &'t Path,
    pub text: &'t str,
}

impl<'t> Toml<'t> {
    pub fn parse(path: &'t Path, text: &'t str) -> Result<(Self, DeValue<'t>)> {
        let root = DeTable::parse(text).map_err(|e| {
            let line = e.span().map(|s| line_of_offset(text, s.start)).unwrap_or(1);
            parse_err(path, line, format!("not valid TOML: {}", first_line(e.message())))
        })?;
        Ok((Toml { path, text }, DeValue::Table(root.into_inner())))
    }

    pub fn line<T>(&self, v: &Spanned<T>) -> usize {
        line_of_offset(self.text, v.span().start)
    }

    pub fn err<T>(&self, at: &Spanned<T>, message: impl Into<String>) -> CaptureError {
        parse_err(self.path, self.line(at), message)
    }

    pub fn table<'v>(&self, v: &'v Spanned<DeValue<'t>>, what: &str) -> Result<&'v DeTable<'t>> {
        v.get_ref()
            .as_table()
            .ok_or_else(|| self.err(v, format!("{what} must be a table, not {}", v.get_ref().type_str())))
    }

    pub fn array<'v>(&self, v: &'v Spanned<DeValue<'t>>, what: &str) -> Result<&'v [Spanned<DeValue<'t>>]> {
        match v.get_ref() {
            DeValue::Array(a) => Ok(a),
            other => Err(self.err(v, format!("{what} must be a list, not {}", other.type_str()))),
        }
    }

    pub fn str<'v>(&self, v: &'v Spanned<DeValue<'t>>, what: &str) -> Result<&'v str> {
        v.get_ref()
            .as_str()
            .ok_or_else(|| self.err(v, format!("{what} must be a string, not {}", v.get_ref().type_str())))
    }

    /// An optional string field of a table.
    pub fn opt_str<'v>(&self, t: &'v DeTable<'t>, key: &str, what: &str) -> Result<Option<&'v str>> {
        t.get(key).map(|v| self.str(v, &format!("{what} `{key}`"))).transpose()
    }
}

/// A requirement with the byte offset it was declared at, to list them in file order.
type Placed = (usize, DeclaredRequirement);

pub(super) fn parse(source: &mut Source, path: &Path, text: &str) -> Result<Vec<DeclaredRequirement>> {
    let (t, doc) = Toml::parse(path, text)?;
    let mut out: Vec<Placed> = Vec::new();
    if let Some(project) = doc.get("project") {
        let project = t.table(project, "[project]")?;
        if let Some(deps) = project.get("dependencies") {
            pep508_list(&t, source, deps, "[project] dependencies", None, &mut out)?;
        }
        if let Some(opt) = project.get("optional-dependencies") {
            for (group, deps) in t.table(opt, "[project.optional-dependencies]")? {
                let what = format!("[project.optional-dependencies] {}", group.get_ref());
                pep508_list(&t, source, deps, &what, Some(group.get_ref()), &mut out)?;
            }
        }
    }
    if let Some(groups) = doc.get("dependency-groups") {
        for (group, items) in t.table(groups, "[dependency-groups]")? {
            let what = format!("[dependency-groups] {}", group.get_ref());
            for item in t.array(items, &what)? {
                match item.get_ref() {
                    DeValue::String(s) => out.push(pep508_item(&t, source, item, s, Some(group.get_ref()))?),
                    // `{include-group = "test"}`: those are listed under their own group.
                    DeValue::Table(inc) if inc.contains_key("include-group") => {}
                    other => {
                        return Err(t.err(
                            item,
                            format!(
                                "{what}: expected a requirement string or {{include-group = …}}, not {}",
                                other.type_str()
                            ),
                        ))
                    }
                }
            }
        }
    }
    if let Some(poetry) = doc.get("tool").and_then(|tool| tool.get_ref().get("poetry")) {
        let poetry = t.table(poetry, "[tool.poetry]")?;
        if let Some(deps) = poetry.get("dependencies") {
            poetry_deps(&t, source, deps, "[tool.poetry.dependencies]", None, &mut out)?;
        }
        if let Some(deps) = poetry.get("dev-dependencies") {
            poetry_deps(&t, source, deps, "[tool.poetry.dev-dependencies]", Some("dev"), &mut out)?;
        }
        if let Some(groups) = poetry.get("group") {
            for (name, group) in t.table(groups, "[tool.poetry.group]")? {
                let what = format!("[tool.poetry.group.{}]", name.get_ref());
                if let Some(deps) = t.table(group, &what)?.get("dependencies") {
                    poetry_deps(&t, source, deps, &format!("{what} dependencies"), Some(name.get_ref()), &mut out)?;
                }
            }
        }
    }
    // TOML tables come back sorted by key; the file's own order reads better.
    out.sort_by_key(|(at, _)| *at);
    Ok(out.into_iter().map(|(_, r)| r).collect())
}

fn pep508_list(
    t: &Toml,
    source: &Source,
    deps: &Spanned<DeValue>,
    what: &str,
    group: Option<&str>,
    out: &mut Vec<Placed>,
) -> Result<()> {
    for d in t.array(deps, what)? {
        let s = t.str(d, &format!("each of {what}"))?;
        out.push(pep508_item(t, source, d, s, group)?);
    }
    Ok(())
}

fn pep508_item(t: &Toml, source: &Source, at: &Spanned<DeValue>, s: &str, group: Option<&str>) -> Result<Placed> {
    let line = t.line(at);
    let mut r = parse_requirement_line(t.path, line, s, &source.origin(t.path, line))?;
    r.group = group.map(str::to_string);
    Ok((at.span().start, r))
}

fn poetry_deps(
    t: &Toml,
    source: &Source,
    deps: &Spanned<DeValue>,
    what: &str,
    group: Option<&str>,
    out: &mut Vec<Placed>,
) -> Result<()> {
    for (name, v) in t.table(deps, what)? {
        if name.get_ref() == "python" {
            continue; // the interpreter, not a package
        }
        let origin = source.origin(t.path, t.line(name));
        let mut push = |at: usize, mut r: DeclaredRequirement| {
            r.group = group.map(str::to_string);
            out.push((at, r));
        };
        match v.get_ref() {
            DeValue::String(spec) => push(name.span().start, poetry_version(name.get_ref(), spec, &origin)),
            DeValue::Table(table) => push(name.span().start, poetry_table(t, name.get_ref(), table, &origin, v)?),
            // Several constraints, each for other markers or Pythons, each on its own line.
            DeValue::Array(items) => {
                for item in items.iter() {
                    let table = t.table(item, &format!("{what} {}", name.get_ref()))?;
                    let origin = source.origin(t.path, t.line(item));
                    push(item.span().start, poetry_table(t, name.get_ref(), table, &origin, item)?);
                }
            }
            other => {
                return Err(t.err(
                    v,
                    format!(
                        "{what} {}: expected a version string, a table or a list of tables, not {}",
                        name.get_ref(),
                        other.type_str()
                    ),
                ))
            }
        }
    }
    Ok(())
}

/// A Poetry version constraint: `1.2.3` and `==1.2.3` are exact; `^`, `~`, ranges and
/// wildcards are not.
fn poetry_version(name: &str, spec: &str, origin: &str) -> DeclaredRequirement {
    let spec = spec.trim();
    let bare = spec.strip_prefix("==").unwrap_or(spec).trim();
    let exact =
        bare.starts_with(|c: char| c.is_ascii_digit()) && !bare.contains(['*', ',', '|', '<', '>', '!', '~', '^', ' ']);
    let status = if spec.is_empty() || spec == "*" {
        PinStatus::Unpinned
    } else if exact {
        PinStatus::Pinned
    } else {
        PinStatus::Loose
    };
    let mut r = DeclaredRequirement::new(normalize(name), spec, status, origin);
    if exact {
        r.version = Some(normalize_version(bare));
    }
    r
}

/// `{ version = "…", extras = […], markers = "…" }`, or a git, URL or path source.
fn poetry_table(
    t: &Toml,
    name: &str,
    table: &DeTable,
    origin: &str,
    at: &Spanned<DeValue>,
) -> Result<DeclaredRequirement> {
    let what = format!("dependency {name}");
    let mut r = match t.opt_str(table, "version", &what)? {
        Some(v) => poetry_version(name, v, origin),
        None => DeclaredRequirement::new(normalize(name), "", PinStatus::Unpinned, origin),
    };
    if let Some(git) = t.opt_str(table, "git", &what)? {
        let rev = ["rev", "tag", "branch"].iter().find_map(|k| table.get(*k).and_then(|v| v.get_ref().as_str()));
        let base = if git.starts_with("git+") { git.to_string() } else { format!("git+{git}") };
        let url = match rev {
            Some(rev) => format!("{base}@{rev}"),
            None => base,
        };
        let pinned = rev.is_some_and(is_commit) || vcs_commit_pinned(&url);
        r.spec = format!("@ {url}");
        r.status = if pinned { PinStatus::Pinned } else { PinStatus::Loose };
        r.url = Some(url);
    } else if let Some(url) = t.opt_str(table, "url", &what)? {
        let wheel = wheel_name_version(url);
        r.spec = format!("@ {url}");
        r.status = if wheel.is_some() { PinStatus::Pinned } else { PinStatus::Loose };
        r.version = wheel.map(|w| w.1);
        r.url = Some(url.to_string());
    } else if let Some(p) = t.opt_str(table, "path", &what)? {
        // A local tree or archive: whatever is on disk.
        r.status = PinStatus::Unpinned;
        r.url = Some(p.to_string());
    }
    if let Some(extras) = table.get("extras") {
        let mut names = Vec::new();
        for e in t.array(extras, &format!("{what} extras"))? {
            names.push(t.str(e, &format!("{what} extras"))?);
        }
        r.extras = normalize_extras(names);
    }
    if let Some(m) = t.opt_str(table, "markers", &what)? {
        r.marker = normalize_marker(t.path, t.line(at), m)?;
    }
    Ok(r)
}
