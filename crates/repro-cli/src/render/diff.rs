//! `repro diff`: the sections that differ and the likely causes, most likely first.

use std::io::Write;

use anyhow::Result;
use repro_core::diff::RunDiff;

use super::{json, out};

pub fn diff(d: &RunDiff, as_json: bool) -> Result<()> {
    if as_json {
        return json(d);
    }
    let mut o = out();
    writeln!(o, "a  {}", d.a)?;
    writeln!(o, "b  {}", d.b)?;
    for s in &d.sections {
        let shown: Vec<_> = s.changes.iter().collect();
        if s.same && shown.iter().all(|c| c.is_location_only()) {
            writeln!(o, "{:<12} same", s.name)?;
        } else {
            writeln!(o, "{:<12} differs", s.name)?;
        }
        for c in shown {
            writeln!(o, "  {}", c.describe())?;
        }
    }
    writeln!(o)?;
    if d.causes.is_empty() {
        if d.outputs_differ {
            writeln!(o, "no likely cause found")?;
        } else {
            writeln!(o, "the runs match: same outputs and no ingredient differs")?;
        }
        return Ok(());
    }
    if d.outputs_differ {
        writeln!(o, "likely causes, most likely first:")?;
    } else {
        writeln!(o, "outputs are the same; ingredient differences that did not change them:")?;
    }
    for (n, c) in d.causes.iter().enumerate() {
        writeln!(o, "  {}. {}", n + 1, c.summary)?;
        for e in &c.evidence {
            writeln!(o, "       {e}")?;
        }
    }
    Ok(())
}
