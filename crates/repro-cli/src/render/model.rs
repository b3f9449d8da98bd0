//! `repro model …`: versions, stages, approvals, signatures, verification.

use std::io::Write;

use anyhow::Result;
use repro_core::audit::human_bytes;
use repro_core::registry::ModelVersion;
use repro_exec::provenance::VerifyReport;
use repro_exec::registry::{ApproveOutcome, PromoteOutcome};
use repro_exec::views::{ModelShow, ModelView};

use super::{json, line, message, out};

/// A time for people: `2026-12-05 06:09` (UTC).
pub(crate) fn when(ms: i64) -> String {
    repro_util::clock::rfc3339(ms).replace('T', " ").chars().take(16).collect()
}

pub fn model_registered(v: &ModelVersion, as_json: bool) -> Result<()> {
    if as_json {
        return json(v);
    }
    let (Some(run), Some(artifact)) = (&v.run, &v.artifact) else {
        return line(&format!("registered {} as an external version", v.reference()));
    };
    let bytes: u64 = artifact.files.iter().map(|f| f.size).sum();
    line(&format!(
        "registered {}: run {}, artifact {} ({} file(s), {}), lineage {}",
        v.reference(),
        run.short(),
        artifact.path,
        artifact.files.len(),
        human_bytes(bytes),
        v.lineage.as_ref().map_or("not yet fixed".into(), |l| l.short())
    ))
}

pub fn adopted(a: &repro_exec::registry::AdoptOutcome, as_json: bool) -> Result<()> {
    if as_json {
        return json(a);
    }
    line(&format!(
        "adopted {}: {} file(s), {} from {}, pinned by BLAKE3 and SHA-256; it still has no run, so policies that need a run's evidence stay unmet",
        a.version.reference(),
        a.files,
        human_bytes(a.bytes),
        a.from
    ))
}

pub fn models(models: &[ModelView], as_json: bool) -> Result<()> {
    if as_json {
        return json(&models);
    }
    ls(models)
}

/// `model show`: one version, or a model's versions (with the store's stage names).
pub fn model_show(shown: &ModelShow, stages: &[String], as_json: bool) -> Result<()> {
    if as_json {
        return json(shown);
    }
    match shown {
        ModelShow::Version(v) => show_version(v),
        ModelShow::Model(m) => show_model(m, stages),
    }
}

pub fn promoted(outcome: &PromoteOutcome, as_json: bool) -> Result<()> {
    if as_json {
        return json(outcome);
    }
    let mut o = out();
    match outcome {
        PromoteOutcome::Promoted { version, stage, from, replaced } => {
            let from = from.as_ref().map(|f| format!(" (from {f})")).unwrap_or_default();
            let replaced =
                replaced.as_ref().map(|r| format!("; {}@{r} left {stage}", version.name)).unwrap_or_default();
            writeln!(o, "promoted {} to {stage}{from}{replaced}", version.reference())?;
        }
        PromoteOutcome::Already { version, stage } => {
            writeln!(o, "{} is already in {stage}; nothing changed", version.reference())?;
        }
        PromoteOutcome::Refused { reference, stage, unmet } => {
            writeln!(o, "refused: {reference} cannot enter {stage}; {} requirement(s) unmet:", unmet.len())?;
            for u in unmet {
                writeln!(o, "  ✗ {:<16} {}", u.requirement, u.reason)?;
                if !u.fix.is_empty() {
                    writeln!(o, "    {:<16} fix: {}", "", u.fix)?;
                }
            }
        }
    }
    Ok(())
}

/// `model approve`; `public_key` is where the approver's public key is, for the hint when
/// the store does not trust it yet.
pub fn approved(a: &ApproveOutcome, public_key: &std::path::Path, as_json: bool) -> Result<()> {
    if as_json {
        json(a)?;
    } else {
        let key = a.keyid.as_deref().map_or(String::new(), |k| {
            format!(", key {}{}", &k[..k.len().min(12)], if a.trusted { ", trusted" } else { ", not trusted" })
        });
        let counted = if a.repeated {
            format!("{} had already approved it for {}: counted once", a.by, a.stage)
        } else {
            format!("signed by {}{key}", a.by)
        };
        let needed = if a.signed_only { "signed approval(s) by trusted approvers" } else { "distinct approval(s)" };
        line(&format!(
            "{} for {}: {counted} ({} of {} {needed} needed)",
            a.version.reference(),
            a.stage,
            a.approvers,
            a.needed
        ))?;
    }
    if a.signed_only && !a.trusted {
        eprintln!(
            "repro: warning: key {} is not in [trust] approvers of this store, so this approval does not count for {} until it is (`repro key add {} --approver --name 'You <you@example.com>'` on the store)",
            a.keyid.as_deref().unwrap_or("?"),
            a.stage,
            public_key.display()
        );
    }
    Ok(())
}

pub fn archived(v: &ModelVersion, reason: &str, as_json: bool) -> Result<()> {
    if as_json {
        return json(v);
    }
    line(&format!("archived {}: {reason}", v.reference()))
}

pub fn renamed(m: &repro_core::registry::Model, old: &str, as_json: bool) -> Result<()> {
    if as_json {
        return json(&json!({"model": m.name, "renamed_from": old, "versions": m.versions.len()}));
    }
    line(&format!(
        "renamed {old} to {} ({} version(s) moved); '{old}' still resolves to it until a model takes that name",
        m.name,
        m.versions.len()
    ))
}

pub fn signed(s: &repro_exec::provenance::SignOutcome, as_json: bool) -> Result<()> {
    if as_json {
        return json(&json!({"model": s.version.reference(), "keyid": s.keyid, "envelope": s.envelope}));
    }
    line(&format!(
        "signed {} with key {} (envelope {}); `repro model attest {}` writes it out",
        s.version.reference(),
        s.keyid,
        s.envelope.short(),
        s.version.reference()
    ))
}

/// `model attest -o FILE`: what was written where.
pub fn attested(v: &ModelVersion, file: &std::path::Path, envelopes: usize, as_json: bool) -> Result<()> {
    if as_json {
        return json(&json!({"model": v.reference(), "file": file, "envelopes": envelopes}));
    }
    message(&format!("wrote {envelopes} envelope(s) of {} to {}", v.reference(), file.display()));
    Ok(())
}

/// `model bom -o FILE` / `model card -o FILE`: what was written where (and signed).
pub fn document_written(
    v: &ModelVersion,
    what: &str,
    file: &std::path::Path,
    signed: Option<&repro_exec::registry::facts::BomSigned>,
    as_json: bool,
) -> Result<()> {
    if as_json {
        let mut value = json!({"model": v.reference(), "file": file});
        if let Some(s) = signed {
            value["signed"] = json!({"keyid": s.keyid, "envelope": s.envelope});
        }
        return json(&value);
    }
    message(&format!("wrote the {what} of {} to {}", v.reference(), file.display()));
    if let Some(s) = signed {
        bom_signed(v, s);
    }
    Ok(())
}

/// `model bom --sign`: said on stderr, since stdout may be the BOM itself.
pub fn bom_signed(v: &ModelVersion, s: &repro_exec::registry::facts::BomSigned) {
    message(&format!(
        "signed the BOM of {} with key {} (envelope {}); `repro model attest {}` writes it out",
        v.reference(),
        s.keyid,
        s.envelope.short(),
        v.reference()
    ));
}

pub fn verified(r: &VerifyReport, as_json: bool) -> Result<()> {
    if as_json {
        return json(r);
    }
    let mut o = out();
    for c in &r.checks {
        writeln!(o, "  {:<4} {:<12} {}", if c.ok { "ok" } else { "FAIL" }, c.name, c.detail)?;
    }
    writeln!(o, "{}: {}", r.reference, if r.ok { "verified" } else { "VERIFICATION FAILED" })?;
    Ok(())
}

fn ls(models: &[ModelView]) -> Result<()> {
    let mut o = out();
    if models.is_empty() {
        writeln!(o, "no models yet; register one with: repro model register RUN --name NAME --artifact PATH")?;
        return Ok(());
    }
    writeln!(o, "{:<20} {:>8}  STAGES", "MODEL", "VERSIONS")?;
    for m in models {
        let stages: Vec<String> =
            m.versions.iter().filter_map(|v| Some(format!("{}: v{}", v.stage.as_deref()?, v.version))).collect();
        let stages = if stages.is_empty() { "-".to_string() } else { stages.join(", ") };
        writeln!(o, "{:<20} {:>8}  {stages}", m.name, m.versions.len())?;
    }
    Ok(())
}

fn status_of(v: &ModelVersion) -> String {
    match (&v.archived, &v.stage) {
        _ if v.deleted.is_some() => "deleted".into(),
        (Some(_), _) => "archived".into(),
        (None, Some(s)) => s.clone(),
        (None, None) => "-".into(),
    }
}

/// Approvals that count: one per person per stage.
fn distinct_approvals(v: &ModelVersion) -> usize {
    let stages: std::collections::BTreeSet<&str> = v.approvals.iter().map(|a| a.stage.as_str()).collect();
    stages.iter().map(|s| v.approvers(s).len()).sum()
}

fn show_model(m: &ModelView, stages: &[String]) -> Result<()> {
    let mut o = out();
    writeln!(o, "model {} ({} version(s); stages: {})", m.name, m.versions.len(), stages.join(", "))?;
    writeln!(
        o,
        "{:>4}  {:<10} {:<10} {:>9} {:>6}  {:<16} BY",
        "V", "RUN", "STAGE", "APPROVALS", "SIGNED", "REGISTERED (UTC)"
    )?;
    for v in &m.versions {
        writeln!(
            o,
            "{:>4}  {:<10} {:<10} {:>9} {:>6}  {:<16} {}",
            v.version,
            v.run.as_ref().map_or("external", |r| r.short()),
            status_of(v),
            distinct_approvals(v),
            v.signatures.len(),
            when(v.registered_at_ms),
            v.registered_by
        )?;
    }
    Ok(())
}

fn show_version(v: &ModelVersion) -> Result<()> {
    let mut o = out();
    writeln!(o, "{} ({})", v.reference(), status_of(v))?;
    match (&v.run, &v.lineage, &v.external) {
        (Some(run), Some(l), _) => writeln!(o, "  run       {run} (lineage {l})")?,
        (Some(run), None, _) => {
            writeln!(o, "  run       {run} (still running: the lineage is fixed when it finishes)")?
        }
        (None, _, Some(x)) => {
            writeln!(o, "  EXTERNAL  source {}", x.source)?;
            let claimed = x.claimed_run.as_deref().map(|r| {
                format!(" (the client named run '{r}', unchecked: repro does not vouch that it made these files)")
            });
            writeln!(
                o,
                "  run       none{}: no lineage, nothing repro recorded vouches for how it was made",
                claimed.unwrap_or_default()
            )?;
        }
        (None, _, None) => writeln!(o, "  run       none")?,
    }
    match (&v.artifact, &v.external) {
        (Some(a), x) => {
            let adopted = x.as_ref().and_then(|x| x.adopted_from.as_ref()).map(|f| format!(", adopted from {f}"));
            writeln!(
                o,
                "  artifact  {} (output {}, snapshot {}{})",
                a.path,
                a.output,
                a.snapshot.short(),
                adopted.unwrap_or_default()
            )?;
            for f in &a.files {
                writeln!(o, "    {} {} sha256:{}", f.path, f.blake3, f.sha256)?;
            }
        }
        (None, _) => writeln!(
            o,
            "  artifact  NOT HELD: repro has no bytes of it; `repro model adopt {}` fetches and pins them",
            v.reference()
        )?,
    }
    if let Some(src) = &v.imported_from {
        match &v.import_signer {
            Some(s) => writeln!(o, "  imported  from bundle {src}, signed by {} (as judged at import)", s.describe())?,
            None => writeln!(o, "  imported  from bundle {src}")?,
        }
    }
    if let Some(id) = &v.model_id {
        writeln!(o, "  logged    MLflow logged model {id}")?;
    }
    if !v.aliases.is_empty() {
        writeln!(o, "  aliases   {}", v.aliases.join(", "))?;
    }
    if let Some(d) = &v.description {
        writeln!(o, "  about     {d}")?;
    }
    for (k, val) in &v.tags {
        writeln!(o, "  tag       {k} = {val}")?;
    }
    if let Some(d) = &v.deleted {
        writeln!(o, "  deleted   {} by {}", when(d.at_ms), d.by)?;
    }
    if let Some(a) = &v.archived {
        writeln!(o, "  archived  {} ({} by {})", a.reason, when(a.at_ms), a.by)?;
    }
    for a in &v.approvals {
        let c = a.comment.as_deref().map(|c| format!(": {c}")).unwrap_or_default();
        let how = a
            .signature
            .as_ref()
            .map_or("unsigned".to_string(), |s| format!("signed, key {}", &s.keyid[..s.keyid.len().min(12)]));
        writeln!(o, "  approval  for {} by {} at {} ({how}){c}", a.stage, a.by, when(a.at_ms))?;
    }
    for s in &v.signatures {
        writeln!(o, "  signature key {} by {} at {} (envelope {})", s.keyid, s.by, when(s.at_ms), s.envelope.short())?;
    }
    writeln!(o, "  history")?;
    for h in &v.history {
        writeln!(o, "    #{:<4} {}  {:<9} {}  ({})", h.seq, when(h.at_ms), h.kind, h.detail, h.by)?;
    }
    Ok(())
}

/// `repro report -o FILE`: which report was written where.
pub fn report_written(model: &str, file: &std::path::Path, bytes: usize, as_json: bool) -> Result<()> {
    if as_json {
        return json(&json!({"model": model, "file": file, "bytes": bytes}));
    }
    message(&format!(
        "wrote the audit report of {model} to {} ({}); open it in a browser, or print it to PDF",
        file.display(),
        repro_core::audit::human_bytes(bytes as u64)
    ));
    Ok(())
}
