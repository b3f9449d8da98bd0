//! The supporting evidence that follows the seven items.

use super::*;

pub fn installed_packages(python: Option<&PythonEnvironment>, script: &ScriptInfo) -> AuditItem {
    const N: &str = "installed_packages";
    match python {
        Some(p) => item(
            N,
            ItemStatus::Ok,
            format!(
                "Python {} ({} at {}): {} distributions",
                p.version.as_deref().unwrap_or("?"),
                p.kind,
                p.prefix,
                p.packages.len()
            ),
            None,
        ),
        None if matches!(script.kind, ScriptKind::PythonFile | ScriptKind::PythonModule | ScriptKind::PythonInline) => {
            item(
                N,
                ItemStatus::Missing,
                "the Python interpreter's installed packages could not be read",
                Some("run with an interpreter from a virtualenv, conda env or PATH"),
            )
        }
        None => item(
            N,
            ItemStatus::Warn,
            "no Python interpreter found for this command",
            Some("activate the environment the command uses (VIRTUAL_ENV / CONDA_PREFIX)"),
        ),
    }
}

pub fn hardware(h: &Hardware) -> AuditItem {
    const N: &str = "hardware";
    let gpus = if h.gpus.is_empty() {
        format!("no GPU ({})", h.gpu_probe)
    } else {
        h.gpus.iter().map(|g| g.model.clone()).collect::<Vec<_>>().join(", ")
    };
    let mem = h.memory_bytes.map(human_bytes).unwrap_or_else(|| "? memory".into());
    let detail = format!(
        "{}, {} usable cores of {}, {mem}, {gpus}",
        h.cpu_model.as_deref().unwrap_or("unknown CPU"),
        h.usable_cores,
        h.logical_cpus
    );
    if h.cpu_model.is_none() {
        item(N, ItemStatus::Warn, detail, Some("hardware could not be read on this platform"))
    } else {
        item(N, ItemStatus::Ok, detail, None)
    }
}

pub fn outputs(outputs: &[OutputRef]) -> AuditItem {
    const N: &str = "outputs";
    if outputs.is_empty() {
        return item(
            N,
            ItemStatus::Warn,
            "no outputs declared",
            Some("pass --output PATH for each artifact (the model file) so it is stored and can be compared on replay"),
        );
    }
    let missing: Vec<String> = outputs.iter().filter(|o| o.missing).map(|o| o.path.clone()).collect();
    if !missing.is_empty() {
        return item(
            N,
            ItemStatus::Missing,
            format!("declared but not produced: {}", list(&missing, 6)),
            Some("check the --output paths and that the command wrote them"),
        );
    }
    let stale: Vec<String> = outputs.iter().filter(|o| o.predates_run).map(|o| o.path.clone()).collect();
    if !stale.is_empty() {
        return item(
            N,
            ItemStatus::Warn,
            format!("not rewritten by the run (left from before it): {}", list(&stale, 6)),
            Some("check that the command writes its outputs; delete stale artifacts before the run"),
        );
    }
    let all: Vec<String> = outputs
        .iter()
        .map(|o| match &o.snapshot {
            Some(s) => format!("{} ({}, {})", o.path, s.short(), human_bytes(o.bytes)),
            None => o.path.clone(),
        })
        .collect();
    item(N, ItemStatus::Ok, list(&all, 6), None)
}

pub fn objects_verified(check: &ObjectCheck) -> AuditItem {
    const N: &str = "objects_verified";
    if !check.tampered.is_empty() {
        let shown: Vec<&str> = check.tampered.iter().take(3).map(String::as_str).collect();
        let more = check.tampered.len().saturating_sub(shown.len());
        return item(
            N,
            ItemStatus::Missing,
            format!(
                "{} recorded fact(s) changed behind repro's back: {}{}",
                check.tampered.len(),
                shown.join("; "),
                if more > 0 { format!("; and {more} more") } else { String::new() }
            ),
            Some("run `repro fsck` for the whole list, and restore .repro from a backup"),
        );
    }
    if check.missing.is_empty() && check.corrupt.is_empty() {
        return item(
            N,
            ItemStatus::Ok,
            format!("{} objects present and re-hashed ({})", check.checked, human_bytes(check.bytes)),
            None,
        );
    }
    let data: Vec<&MissingDataFile> = check.missing_data.iter().filter(|f| check.missing.contains(&f.digest)).collect();
    let mut bad: Vec<String> = check
        .missing
        .iter()
        .filter(|d| !data.iter().any(|f| &f.digest == *d))
        .map(|d| format!("{} missing", d.short()))
        .collect();
    bad.extend(check.corrupt.iter().map(|d| format!("{} corrupt", d.short())));
    let failed = bad.len() + data.len();
    if data.is_empty() {
        return item(
            N,
            ItemStatus::Missing,
            format!("{failed} of {} objects failed: {}", check.checked, list(&bad, 6)),
            Some("run `repro fsck` to see the damage; restore the store from a backup"),
        );
    }
    let files: Vec<String> = data
        .iter()
        .map(|f| {
            let of = match &f.dataset {
                Some(d) => format!(" of dataset {d}"),
                None if f.file != f.input => format!(" of input {}", f.input),
                None => String::new(),
            };
            format!("{}{of} ({})", f.file, f.digest.short())
        })
        .collect();
    let why = match &check.imported_without_data {
        Some(version) => format!(
            "the run came with {version} from a bundle exported without --include-data, so this store has its data's digests but not its content"
        ),
        None => "this store has their digests but not their content".to_string(),
    };
    let mut detail = format!(
        "{failed} of {} objects failed: the input data {} {} not in this store: {why}",
        check.checked,
        list(&files, 4),
        if files.len() == 1 { "is" } else { "are" }
    );
    if !bad.is_empty() {
        detail.push_str(&format!("; also {}", list(&bad, 6)));
    }
    let inputs: Vec<String> = {
        let mut v: Vec<String> = data.iter().map(|f| f.input.clone()).collect();
        v.dedup();
        v
    };
    let fix = match &check.imported_without_data {
        Some(version) => format!(
            "in the store it came from, export it with its data (`repro bundle export {version} -o FILE --include-data`) and import that into a fresh store; or, holding the same data, add it here with `repro data snapshot {}`",
            inputs.join(" ")
        ),
        None => format!(
            "restore the store from a backup (`repro fsck` lists the damage); or, holding the same data, add it back with `repro data snapshot {}`",
            inputs.join(" ")
        ),
    };
    AuditItem { name: N.to_string(), status: ItemStatus::Missing, detail, fix: Some(fix) }
}

/// Whether a replay rebuilt the run and got the same result. The latest replay decides:
/// a run that replayed identical once but differs now has stopped being reproducible.
pub fn replay_verified(replays: &[ReplaySummary]) -> AuditItem {
    const N: &str = "replay_verified";
    let Some(last) = replays.last() else {
        return item(
            N,
            ItemStatus::Warn,
            "never replayed: nobody has rebuilt this run and compared the result",
            Some("run `repro replay RUN` to rebuild it from the store and compare the outputs"),
        );
    };
    let earlier = match replays.len() {
        1 => String::new(),
        n => format!(" (latest of {n} replays)"),
    };
    if last.verdict.reproduced() {
        item(
            N,
            ItemStatus::Ok,
            format!("replay {} at {} was {}{earlier}", last.replay.short(), last.at, last.verdict.as_str()),
            None,
        )
    } else {
        item(
            N,
            ItemStatus::Missing,
            format!("replay {} at {} differs from this run{earlier}", last.replay.short(), last.at),
            Some("`repro diff RUN REPLAY` shows what differs and the likely causes"),
        )
    }
}

pub fn result(record: &RunRecord) -> AuditItem {
    const N: &str = "result";
    let code = record.exit_code.map(|c| format!(" (exit {c})")).unwrap_or_default();
    match record.status {
        RunStatus::Finished => item(N, ItemStatus::Ok, format!("finished{code}"), None),
        RunStatus::Running => item(N, ItemStatus::Warn, "still running", Some("audit again when the run has ended")),
        RunStatus::Failed => item(
            N,
            ItemStatus::Missing,
            format!("the command failed{code}"),
            Some("a failed run produced no result to reproduce; fix it and run again"),
        ),
        RunStatus::Killed => item(
            N,
            ItemStatus::Missing,
            format!("the command was killed (signal {})", record.signal.unwrap_or(0)),
            Some("run again to completion"),
        ),
        RunStatus::Interrupted => item(
            N,
            ItemStatus::Missing,
            "repro was interrupted before the run ended; nothing after the start was recorded",
            Some("run again to completion"),
        ),
    }
}
