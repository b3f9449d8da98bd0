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
