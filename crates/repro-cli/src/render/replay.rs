//! `repro replay`: the verdict and what differed, or why the environment stopped it.

use std::io::Write;

use anyhow::Result;
use repro_core::audit::{count, human_bytes};
use repro_core::diff::PackageChange;
use repro_exec::replay::ReplayReport;

use super::{json, out};

pub fn environment_differs(
    python: &str,
    created: bool,
    differences: &[String],
    changes: &[PackageChange],
    as_json: bool,
) -> Result<()> {
    if as_json {
        return json(&json!({
            "verdict": null,
            "environment_differs": true,
            "python": python,
            "created": created,
            "differences": differences,
            "packages": changes,
        }));
    }
    let mut o = out();
    if created {
        writeln!(o, "the environment built at {python} does not match the recorded packages:")?;
    } else {
        writeln!(o, "{python} does not match the recorded environment; nothing was run:")?;
    }
    for d in differences {
        writeln!(o, "  {d}")?;
    }
    if !created {
        writeln!(o, "fix: pass --create-env to build a virtualenv with the recorded versions, or --python PATH")?;
    }
    Ok(())
}

pub fn replay(r: &ReplayReport, as_json: bool) -> Result<()> {
    if as_json {
        return json(r);
    }
    let mut o = out();
    writeln!(o, "replay    {} of run {}", r.replay, r.original)?;
    let c = &r.code;
    writeln!(
        o,
        "code      {} from {}{}{}",
        &c.commit[..c.commit.len().min(12)],
        c.source,
        if c.diff_applied { ", recorded diff applied" } else { "" },
        if c.untracked_restored > 0 { format!(", {} untracked restored", c.untracked_restored) } else { String::new() }
    )?;
    if let Some(origin) = &c.origin {
        writeln!(
            o,
            "origin    bundle {} signed by {}; allowed by {}",
            origin.bundle.short(),
            origin.signer.as_ref().map(|s| s.describe()).unwrap_or_else(|| "an unrecorded signer".into()),
            origin.allowed_by
        )?;
    }
    for i in &r.inputs {
        writeln!(o, "input     {}  {}, {}  {}", i.path, count(i.files, "file"), human_bytes(i.bytes), i.how)?;
    }
    if let Some(e) = &r.environment {
        writeln!(
            o,
            "python    {} {} ({} packages{})",
            e.python,
            e.version.as_deref().unwrap_or("?"),
            e.packages,
            e.created_with.as_ref().map(|t| format!(", built with {t}")).unwrap_or_default()
        )?;
    }
    for x in &r.outputs {
        writeln!(
            o,
            "output    {}  {}  {} → {}",
            x.path,
            x.verdict.as_str(),
            x.recorded.as_ref().map(|d| d.short()).unwrap_or_else(|| "absent".into()),
            x.replayed.as_ref().map(|d| d.short()).unwrap_or_else(|| "absent".into())
        )?;
    }
    for m in &r.metrics {
        let show = |v: Option<f64>| v.map(|v| v.to_string()).unwrap_or_else(|| "absent".into());
        writeln!(
            o,
            "metric    {} {} → {}{}",
            m.key,
            show(m.recorded),
            show(m.replayed),
            if m.within { "" } else { "  (outside tolerance)" }
        )?;
    }
    if !r.registry_calls.is_empty() {
        writeln!(o, "registry calls answered, not written (a replay never changes the registry):")?;
        for call in &r.registry_calls {
            writeln!(o, "  {}  {}", call.call, call.detail)?;
        }
    }
    if !r.captured_differences.is_empty() {
        writeln!(o, "captured fields that differ:")?;
        for d in &r.captured_differences {
            writeln!(o, "  {d}")?;
        }
    }
    writeln!(o, "verdict   {}", r.verdict.as_str().to_uppercase())?;
    for reason in &r.reasons {
        writeln!(o, "  {reason}")?;
    }
    // Said only when signed: an unsigned replay reads as it always did.
    if let Some(a) = &r.attestation {
        writeln!(
            o,
            "signed    by key {} (envelope {}); `repro model attest` lists it with the version's attestations",
            a.keyid,
            a.envelope.short()
        )?;
    }
    if r.kept {
        writeln!(o, "tree      {} (kept)", r.tree)?;
    }
    if !r.verdict.reproduced() {
        writeln!(o, "next: repro diff {} {} explains the likely causes", r.original.short(), r.replay.short())?;
    }
    Ok(())
}
