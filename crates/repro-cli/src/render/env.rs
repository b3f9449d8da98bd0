//! `repro env …`: check, parity, register, ls, show, diff, and the drift refusal of `repro run`.

use std::io::Write;

use anyhow::Result;
use repro_core::audit::count;
use repro_core::environment::EnvironmentSpec;
use repro_exec::env::{CheckReport, EnvDiff};
use repro_exec::parity::ParityReport;
use repro_exec::views::EnvironmentShow;
use repro_store::environments::EnvironmentRow;

use super::{json, line, out, short_time};

pub fn env_check(r: &CheckReport, as_json: bool) -> Result<()> {
    if as_json {
        return json(r);
    }
    let mut o = out();
    for q in &r.requirements {
        let spec = if q.spec.is_empty() { "(no version)" } else { q.spec.as_str() };
        writeln!(o, "  {:<9} {:<28} {:<24} {}", q.status_str(), q.name, spec, q.origin)?;
    }
    for n in &r.notes {
        let spec = if n.spec.is_empty() { "(no version)" } else { n.spec.as_str() };
        writeln!(o, "  note      {} {spec}: {} ({})", n.name, n.note, n.origin)?;
    }
    let verdict = match (r.all_pinned(), r.passes()) {
        (true, _) => "every dependency pinned",
        (false, true) => "pinned where it matters",
        (false, false) if !r.strict => "not fully pinned",
        (false, false) => "not fully pinned (--strict)",
    };
    writeln!(
        o,
        "{} ({}): {} pinned, {} loose, {} unpinned — {verdict}",
        r.path, r.format, r.pinned, r.loose, r.unpinned
    )?;
    Ok(())
}

pub fn parity(r: &ParityReport, as_json: bool) -> Result<()> {
    if as_json {
        return json(r);
    }
    let mut o = out();
    let verdict = if r.pass { "PASS" } else { "FAIL" };
    writeln!(o, "parity of {} against {}: {verdict}", r.subject, r.against)?;
    for a in &r.artifacts {
        writeln!(o, "  the artifact {} is {}", a.file, a.model.describe())?;
    }
    if !r.artifact_packages.is_empty() {
        writeln!(o, "  the artifact imports: {}", r.artifact_packages.join(", "))?;
    }
    if let Some((a, b)) = &r.python {
        let tag = if r.python_critical { "FAIL" } else { "warn" };
        writeln!(o, "  {tag:<5} Python: trained with {a}, serving with {b}")?;
    }
    for d in &r.differences {
        let tag = if d.critical { "FAIL" } else { "warn" };
        writeln!(o, "  {tag:<5} {}", d.describe())?;
    }
    if r.differences.is_empty() && r.python.is_none() {
        writeln!(o, "  same packages, same Python")?;
    }
    Ok(())
}

pub fn env_registered(row: &EnvironmentRow, spec: &EnvironmentSpec, new: bool, as_json: bool) -> Result<()> {
    if as_json {
        return json(
            &json!({"name": row.name, "version": row.version, "new": new, "kind": row.kind, "spec": row.spec, "entries": spec.len()}),
        );
    }
    let what = if new { "registered" } else { "already registered (same content)" };
    line(&format!(
        "{}:{} {what}: {} {} from {}",
        row.name,
        row.version,
        count(spec.len() as u64, if row.kind == "declared" { "requirement" } else { "package" }),
        row.kind,
        row.source
    ))
}

pub fn env_list(rows: &[EnvironmentRow], as_json: bool) -> Result<()> {
    if as_json {
        return json(&rows);
    }
    let mut o = out();
    if rows.is_empty() {
        writeln!(o, "no registered environments; add one with: repro env register requirements.txt --name training")?;
        return Ok(());
    }
    writeln!(o, "{:<28} {:<10} {:<20} SOURCE", "ENVIRONMENT", "KIND", "REGISTERED (UTC)")?;
    for r in rows {
        writeln!(
            o,
            "{:<28} {:<10} {:<20} {}",
            format!("{}:{}", r.name, r.version),
            r.kind,
            short_time(&repro_util::clock::rfc3339(r.created_ms)),
            r.source
        )?;
    }
    Ok(())
}

pub fn env_show(e: &EnvironmentShow, as_json: bool) -> Result<()> {
    if as_json {
        return json(e);
    }
    let mut o = out();
    let kind = match e.spec {
        EnvironmentSpec::Declared { .. } => "declared",
        EnvironmentSpec::Installed { .. } => "installed",
    };
    writeln!(o, "{}:{}  {kind} from {}", e.name, e.version, e.source)?;
    match &e.spec {
        EnvironmentSpec::Declared { declared } => {
            writeln!(o, "  {} ({}), {}", declared.path, declared.format, declared.digest.short())?;
            for q in &declared.requirements {
                let spec = if q.spec.is_empty() { "(no version)" } else { q.spec.as_str() };
                writeln!(o, "  {:<9} {:<28} {}", q.status_str(), q.name, spec)?;
            }
        }
        EnvironmentSpec::Installed { python_version, packages } => {
            writeln!(o, "  Python {}", python_version.as_deref().unwrap_or("?"))?;
            for p in packages {
                writeln!(o, "  {:<28} {}", p.name, p.version)?;
            }
        }
    }
    Ok(())
}

pub fn env_diff(d: &EnvDiff, as_json: bool) -> Result<()> {
    if as_json {
        return json(d);
    }
    let mut o = out();
    writeln!(o, "a  {}", d.a)?;
    writeln!(o, "b  {}", d.b)?;
    if let Some((a, b)) = &d.python {
        writeln!(o, "  Python {a} → {b}")?;
    }
    for c in &d.changes {
        writeln!(o, "  {}", c.describe())?;
    }
    if d.python.is_none() && d.changes.is_empty() {
        writeln!(o, "  same packages")?;
    }
    Ok(())
}

pub fn env_drift(env: &str, differences: &[String], as_json: bool) -> Result<()> {
    if as_json {
        return json(&json!({"refused": true, "environment": env, "differences": differences}));
    }
    let mut o = out();
    writeln!(o, "the interpreter does not match {env}; nothing was run:")?;
    for d in differences {
        writeln!(o, "  {d}")?;
    }
    writeln!(o, "fix: install the registered versions (repro env export), or pass --allow-env-drift to run and record the drift")?;
    Ok(())
}
