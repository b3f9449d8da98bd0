//! `repro audit` and the refusal of `repro run --strict`: each ingredient, present or not.

use std::io::Write;

use anyhow::Result;
use repro_core::audit::{AuditItem, AuditReport, ItemStatus};

use super::{err, json, out};

fn items(o: &mut impl Write, items: &[AuditItem]) -> std::io::Result<()> {
    for i in items {
        let tag = match i.status {
            ItemStatus::Ok => "ok",
            ItemStatus::Warn => "WARN",
            ItemStatus::Missing => "MISSING",
        };
        writeln!(o, "  {tag:<8} {:<19} {}", i.name, i.detail)?;
        if let Some(f) = &i.fix {
            writeln!(o, "  {:<8} {:<19} fix: {f}", "", "")?;
        }
    }
    Ok(())
}

pub fn audit(r: &AuditReport, as_json: bool) -> Result<()> {
    if as_json {
        return json(r);
    }
    let mut o = out();
    let missing = r.items.iter().filter(|i| i.status == ItemStatus::Missing).count();
    let warn = r.items.iter().filter(|i| i.status == ItemStatus::Warn).count();
    let verdict = if r.complete {
        if warn > 0 {
            format!("complete, {warn} warning(s)")
        } else {
            "complete".into()
        }
    } else {
        format!(
            "INCOMPLETE: {missing} missing, {warn} warning(s){}",
            if r.strict { " (strict: warnings count)" } else { "" }
        )
    };
    writeln!(
        o,
        "audit of run {}{}: {verdict}",
        r.run.short(),
        r.name.as_ref().map(|n| format!(" ({n})")).unwrap_or_default()
    )?;
    items(&mut o, &r.items)?;
    Ok(())
}

pub fn refusal(list: &[AuditItem], as_json: bool) -> Result<()> {
    if as_json {
        json(&json!({"refused": true, "items": list}))?;
    }
    let mut e = err();
    writeln!(e, "repro: --strict: refusing to start; nothing was run or recorded. The pre-run audit found:")?;
    let bad: Vec<AuditItem> = list.iter().filter(|i| i.status != ItemStatus::Ok).cloned().collect();
    items(&mut e, &bad)?;
    Ok(())
}
