//! Step 5 of a replay: outputs compared file by file, and the configured comparator.

use super::*;

// ---- 5. compare ----------------------------------------------------------------------------

pub(super) fn compare_outputs(
    store: &Store,
    rec: &RunRecord,
    replay: &RunRecord,
    area: &WorkArea,
    comparator: Option<&str>,
    vars: &BTreeMap<String, String>,
) -> Result<Vec<OutputComparison>> {
    let mut out = Vec::new();
    for o in &rec.outputs {
        let r = replay.outputs.iter().find(|x| x.path == o.path);
        let replayed = r.and_then(|x| x.snapshot.clone());
        let mut cmp = OutputComparison {
            path: o.path.clone(),
            verdict: Verdict::Identical,
            recorded: o.snapshot.clone(),
            replayed: replayed.clone(),
            files: Vec::new(),
        };
        match (&o.snapshot, &replayed) {
            (a, b) if a == b => {}
            (Some(a), Some(b)) => {
                let ma = read_manifest(store, a, &rec.id)?;
                let mb = read_manifest(store, b, &replay.id)?;
                let before: BTreeMap<&str, &repro_core::record::FileEntry> =
                    ma.entries.iter().map(|e| (e.path.as_str(), e)).collect();
                let after: BTreeMap<&str, &repro_core::record::FileEntry> =
                    mb.entries.iter().map(|e| (e.path.as_str(), e)).collect();
                let mut all_vouched = comparator.is_some();
                for (p, e) in &before {
                    match after.get(p) {
                        Some(x) if x.digest == e.digest => {}
                        Some(_) => {
                            let verdict = match comparator {
                                Some(c) => {
                                    let file_of = |base: &Path| match ma.kind {
                                        SnapshotKind::File => base.to_path_buf(),
                                        SnapshotKind::Dir => base.join(p),
                                    };
                                    let recorded_copy = file_of(&area.dir.join("recorded").join(&o.path));
                                    store.objects.restore(&e.digest, &recorded_copy, 0o444)?;
                                    let replayed_file =
                                        file_of(&inside(&area.tree, &o.path).unwrap_or_else(|| PathBuf::from(&o.path)));
                                    let (ok, said) =
                                        run_comparator(c, &recorded_copy, &replayed_file, &area.tree, vars);
                                    all_vouched &= ok;
                                    Some(said)
                                }
                                None => None,
                            };
                            cmp.files.push(FileComparison {
                                path: p.to_string(),
                                change: "changed",
                                comparator: verdict,
                            });
                        }
                        None => {
                            all_vouched = false;
                            cmp.files.push(FileComparison { path: p.to_string(), change: "removed", comparator: None });
                        }
                    }
                }
                for p in after.keys().filter(|p| !before.contains_key(*p)) {
                    all_vouched = false;
                    cmp.files.push(FileComparison { path: p.to_string(), change: "added", comparator: None });
                }
                cmp.verdict = if all_vouched { Verdict::Equivalent } else { Verdict::Differs };
            }
            _ => cmp.verdict = Verdict::Differs,
        }
        out.push(cmp);
    }
    Ok(out)
}

/// Runs the `[replay] compare` command on one pair of files; exit 0 means equivalent.
fn run_comparator(
    template: &str,
    recorded: &Path,
    replayed: &Path,
    cwd: &Path,
    vars: &BTreeMap<String, String>,
) -> (bool, String) {
    let quote = |p: &Path| format!("'{}'", p.display().to_string().replace('\'', r"'\''"));
    let cmd = template.replace("{recorded}", &quote(recorded)).replace("{replayed}", &quote(replayed));
    match Command::new("sh").arg("-c").arg(&cmd).current_dir(cwd).env_clear().envs(vars).output() {
        Ok(o) if o.status.success() => (true, "equivalent (comparator exit 0)".into()),
        Ok(o) => {
            let err = String::from_utf8_lossy(&o.stderr);
            let out = String::from_utf8_lossy(&o.stdout);
            let last = err.lines().chain(out.lines()).map(str::trim).rfind(|l| !l.is_empty()).unwrap_or("");
            let code = o.status.code().map(|c| format!("exit {c}")).unwrap_or_else(|| "killed".into());
            (
                false,
                format!(
                    "differs (comparator {code}{})",
                    if last.is_empty() { String::new() } else { format!(": {last}") }
                ),
            )
        }
        Err(e) => (false, format!("the comparator could not start: {e}")),
    }
}
