//! `repro migrate-store` and `repro fsck`.

use std::io::Write;

use anyhow::Result;
use repro_core::audit::human_bytes;
use repro_store::fsck::FsckReport;

use super::{json, line, out};

pub fn migration(r: &repro_store::migrate::MigrationReport, as_json: bool) -> Result<()> {
    if as_json {
        return json(r);
    }
    let mut o = out();
    if let Some(db) = &r.db {
        let rows: u64 = r.tables.iter().map(|t| t.rows).sum();
        writeln!(
            o,
            "metadata: {rows} rows in {} tables copied to {db}; every count and digest matches",
            r.tables.len()
        )?;
    }
    if let Some(objects) = &r.objects {
        writeln!(
            o,
            "objects: {} uploaded to {objects}, {} read back and verified",
            r.objects_copied, r.objects_verified
        )?;
    }
    writeln!(o, "the store now uses the new backends (.repro/repro.toml)")?;
    if let Some(old) = &r.retired_db {
        writeln!(o, "the embedded database {} is no longer used; keep it as a backup or remove it", old.display())?;
    }
    Ok(())
}

pub fn fsck(r: &FsckReport, as_json: bool) -> Result<()> {
    if as_json {
        return json(r);
    }
    let mut o = out();
    writeln!(
        o,
        "fsck: {} objects ({}), {} runs, {} snapshots, {} registry events: {}",
        r.objects,
        human_bytes(r.bytes),
        r.runs,
        r.snapshots,
        r.registry_events,
        if r.clean { "clean" } else { "DAMAGED" }
    )?;
    for d in &r.corrupt {
        writeln!(o, "  corrupt object {d}")?;
    }
    for s in &r.stray {
        writeln!(o, "  stray file in the object store: {s}")?;
    }
    for b in &r.broken_references {
        writeln!(o, "  {} refers to {} object {}", b.referrer, b.problem, b.object)?;
    }
    for b in &r.bad_runs {
        writeln!(o, "  {}: {}", b.run, b.problem)?;
    }
    for p in &r.registry {
        writeln!(o, "  {p}")?;
    }
    for i in &r.interrupted {
        writeln!(o, "  run {} was interrupted (repro died before it ended); marked interrupted", i.short())?;
    }
    if r.stale_temp_removed > 0 {
        writeln!(o, "  removed {} temp folder(s) left by interrupted writers", r.stale_temp_removed)?;
    }
    for t in &r.tampered {
        writeln!(o, "  {t}")?;
    }
    for c in &r.caches_rebuilt {
        writeln!(o, "  {c}")?;
    }
    for w in &r.warnings {
        writeln!(o, "  warning: {w}")?;
    }
    Ok(())
}

/// `repro init`.
pub fn initialized(root: &std::path::Path, as_json: bool) -> Result<()> {
    if as_json {
        return json(&json!({"store": root}));
    }
    line(&format!("initialized an empty repro store in {}", root.display()))
}

pub fn lineage_flushed(url: &str, d: &repro_exec::openlineage::Delivery, as_json: bool) -> Result<()> {
    if as_json {
        return json(&serde_json::json!({"endpoint": url, "delivery": d}));
    }
    let mut said = vec![format!("OpenLineage: {} queued event(s) delivered to {url}", d.sent_from_queue)];
    for r in &d.rejected {
        said.push(format!("refused by the endpoint ({r}); kept in .repro/openlineage/rejected/"));
    }
    if d.dropped > 0 {
        said.push(format!("{} oldest event(s) dropped: the queue was full", d.dropped));
    }
    match &d.unreachable {
        Some(why) => said.push(format!(
            "{} event(s) still queued: the endpoint did not take them ({why}); run `repro lineage flush` again when it is up",
            d.queued
        )),
        None if d.queued == 0 => said.push("nothing left in the queue".into()),
        None => said.push(format!("{} event(s) still queued", d.queued)),
    }
    for s in said {
        line(&s)?;
    }
    Ok(())
}
