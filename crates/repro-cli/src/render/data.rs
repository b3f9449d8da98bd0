//! `repro data snapshot|ls|show`.

use std::io::Write;

use anyhow::Result;
use repro_capture::snapshot::Outcome;
use repro_core::audit::human_bytes;
use repro_exec::views::{DatasetRow, DatasetShow};

use super::{json, out, short_time};

pub fn snapshot(s: &Outcome, as_json: bool) -> Result<()> {
    if as_json {
        return json(s);
    }
    let mut o = out();
    let name = s.dataset.as_ref().map(|d| format!("{}:{}", d.name, d.version)).unwrap_or_else(|| "(unnamed)".into());
    writeln!(
        o,
        "{name}  {}  {} file(s), {}{}",
        s.digest,
        s.files,
        human_bytes(s.bytes),
        if s.reference { "  (reference only: contents not stored)" } else { "" }
    )?;
    writeln!(
        o,
        "  hashed {} file(s) ({}), {} from the stat cache; {} new object(s), {}",
        s.hashed_files,
        human_bytes(s.hashed_bytes),
        s.files.saturating_sub(s.hashed_files),
        s.new_objects,
        human_bytes(s.new_bytes)
    )?;
    Ok(())
}

pub fn datasets(rows: &[DatasetRow], as_json: bool) -> Result<()> {
    if as_json {
        return json(&rows);
    }
    let mut o = out();
    if rows.is_empty() {
        writeln!(o, "no datasets yet; create one with: repro data snapshot PATH --name NAME")?;
        return Ok(());
    }
    writeln!(o, "{:<28} {:<22} {:>7} {:>10}  {:<20} SOURCE", "DATASET", "SNAPSHOT", "FILES", "SIZE", "CREATED (UTC)")?;
    for d in rows {
        let label = format!("{}:{}{}", d.name, d.version, if d.reference { " (ref)" } else { "" });
        writeln!(
            o,
            "{:<28} {:<22} {:>7} {:>10}  {:<20} {}",
            label,
            d.snapshot.short(),
            d.files.map(|f| f.to_string()).unwrap_or_default(),
            d.bytes.map(human_bytes).unwrap_or_default(),
            short_time(&d.created_at),
            d.source
        )?;
    }
    Ok(())
}

pub fn dataset(d: &DatasetShow, as_json: bool) -> Result<()> {
    if as_json {
        return json(d);
    }
    let mut o = out();
    writeln!(o, "dataset   {}:{}", d.name, d.version)?;
    writeln!(o, "snapshot  {}", d.snapshot)?;
    writeln!(o, "source    {}", d.source)?;
    writeln!(
        o,
        "contents  {}",
        if d.stored == Some(true) { "stored" } else { "reference only (digests recorded, contents not stored)" }
    )?;
    writeln!(o, "files     {} ({})", d.files, human_bytes(d.bytes))?;
    for e in d.entries.iter().take(50) {
        writeln!(o, "  {:o}  {:>10}  {}  {}", e.mode, human_bytes(e.size), e.digest.short(), e.path)?;
    }
    if d.entries.len() > 50 {
        writeln!(o, "  … and {} more (--json lists all)", d.entries.len() - 50)?;
    }
    Ok(())
}

pub fn dataset_diff(d: &repro_exec::diff::DatasetDiff, as_json: bool) -> Result<()> {
    if as_json {
        return json(d);
    }
    const SHOWN: usize = 50;
    let mut o = out();
    let name = |s: &repro_exec::diff::DatasetSide| format!("{}:{}", s.name, s.version);
    writeln!(o, "{} → {}", name(&d.a), name(&d.b))?;
    writeln!(o, "snapshot  {} → {}", d.a.snapshot.short(), d.b.snapshot.short())?;
    writeln!(o, "files     {} → {} ({} → {})", d.a.files, d.b.files, human_bytes(d.a.bytes), human_bytes(d.b.bytes))?;
    let mut summary = format!(
        "{} changed, {} added, {} removed, {} unchanged",
        d.changed.len(),
        d.added.len(),
        d.removed.len(),
        d.unchanged
    );
    if d.chunks.shared > 0 {
        summary.push_str(&format!(
            " ({} of {} chunks shared and not read)",
            d.chunks.shared,
            d.chunks.a.max(d.chunks.b)
        ));
    }
    writeln!(o, "{summary}")?;
    for c in d.changed.iter().take(SHOWN) {
        let what = if c.before.digest == c.after.digest {
            format!("mode {:o} → {:o}", c.before.mode, c.after.mode)
        } else {
            format!(
                "{} → {}  {} → {}",
                human_bytes(c.before.size),
                human_bytes(c.after.size),
                c.before.digest.short(),
                c.after.digest.short()
            )
        };
        writeln!(o, "  ~ {}  {what}", c.path)?;
    }
    for (sign, list) in [("+", &d.added), ("-", &d.removed)] {
        for e in list.iter().take(SHOWN) {
            writeln!(o, "  {sign} {}  {}  {}", e.path, human_bytes(e.size), e.digest.short())?;
        }
    }
    if [d.changed.len(), d.added.len(), d.removed.len()].iter().any(|&n| n > SHOWN) {
        writeln!(o, "  … the first {SHOWN} of each shown (--json lists all)")?;
    }
    Ok(())
}
