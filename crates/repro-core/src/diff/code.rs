//! The `code` and `script` sections: commit, diff, untracked files, the command.

use super::*;

pub(super) fn code_section(a: &RunRecord, b: &RunRecord, found: &mut Findings) -> Section {
    let (ca, cb) = (&a.code, &b.code);
    let mut changes = Vec::new();
    compare_location(&mut changes, "repo_root", ca.repo_root.clone(), cb.repo_root.clone());
    if compare(&mut changes, "commit", ca.commit.clone(), cb.commit.clone()) {
        let short = |c: &Option<String>| c.as_deref().map_or("none".into(), |c| c.chars().take(12).collect::<String>());
        found.code.push(format!("commit {} → {}", short(&ca.commit), short(&cb.commit)));
    }
    // The branch and remote are where a commit is kept, not what it contains.
    compare_location(&mut changes, "branch", ca.branch.clone(), cb.branch.clone());
    compare_location(&mut changes, "remote", ca.remote.clone(), cb.remote.clone());
    compare(&mut changes, "dirty", Some(ca.dirty.to_string()), Some(cb.dirty.to_string()));
    let short = |d: &Option<Digest>| d.as_ref().map(Digest::short);
    let resaved = same_notebook_code(a, b);
    if resaved && a.script.diff_elsewhere == b.script.diff_elsewhere && ca.diff != cb.diff {
        changes.push(Change::new("diff", short(&ca.diff), short(&cb.diff)).with_note(NOTEBOOK_ONLY));
    } else if compare(&mut changes, "diff", short(&ca.diff), short(&cb.diff)) {
        let files = |f: &[String]| if f.is_empty() { "none".to_string() } else { list(f, 4) };
        found.code.push(format!(
            "uncommitted changes differ (run a: {}; run b: {})",
            files(&ca.diff_files),
            files(&cb.diff_files)
        ));
    }
    let untracked = |c: &CodeState| -> BTreeMap<String, Digest> {
        c.untracked.iter().map(|f| (f.path.clone(), f.digest.clone())).collect()
    };
    let mut untracked_changes = map_changes("untracked.", &untracked(ca), &untracked(cb), Digest::short);
    let notebook = a.script.path.as_deref().filter(|_| resaved).map(|p| format!("untracked.{p}"));
    for c in untracked_changes.iter_mut().filter(|c| Some(&c.field) == notebook.as_ref()) {
        c.note = Some(NOTEBOOK_ONLY.into());
    }
    found.code.extend(
        untracked_changes.iter().filter(|c| c.note.is_none()).map(|c| format!("untracked file {}", c.describe())),
    );
    changes.extend(untracked_changes);
    let skipped = |c: &CodeState| -> BTreeMap<String, u64> {
        c.untracked_skipped.iter().map(|f| (f.path.clone(), f.size)).collect()
    };
    let skipped_changes =
        map_changes("untracked_not_stored.", &skipped(ca), &skipped(cb), |s| format!("{s} bytes, not stored"));
    found.code.extend(skipped_changes.iter().map(|c| format!("untracked file {}", c.describe())));
    changes.extend(skipped_changes);
    compare(&mut changes, "error", ca.error.clone(), cb.error.clone());
    section("code", changes)
}

/// The note of a notebook's own changes when its code cells are the same: outputs,
/// execution counts or metadata saved again, which change nothing the notebook computes.
const NOTEBOOK_ONLY: &str = "the notebook's outputs or metadata only; its code cells are the same";

/// Two runs of one notebook whose code cells are the same.
fn same_notebook_code(a: &RunRecord, b: &RunRecord) -> bool {
    let (sa, sb) = (&a.script, &b.script);
    sa.kind == ScriptKind::Notebook
        && sb.kind == ScriptKind::Notebook
        && sa.path == sb.path
        && sa.digest.is_some()
        && sa.digest == sb.digest
}

fn is_python(kind: ScriptKind) -> bool {
    matches!(kind, ScriptKind::PythonFile | ScriptKind::PythonModule | ScriptKind::PythonInline | ScriptKind::Notebook)
}

/// The command line as compared: for a Python kind the interpreter is reduced to its file
/// name, since another virtualenv's path to the same Python is not another program.
fn compared_argv(script: &ScriptInfo) -> Vec<String> {
    let mut argv = script.argv.clone();
    if is_python(script.kind) {
        if let Some(first) = argv.first_mut() {
            let name = first.rsplit(['/', '\\']).next().unwrap_or(first.as_str()).to_string();
            *first = name;
        }
    }
    argv
}

/// A command line as one readable line; arguments that would read ambiguously are quoted.
fn show_argv(argv: &[String]) -> String {
    argv.iter()
        .map(|arg| {
            let plain =
                !arg.is_empty() && !arg.chars().any(|c| c.is_whitespace() || c.is_control() || "'\"".contains(c));
            if plain {
                arg.clone()
            } else {
                format!("{arg:?}")
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

pub(super) fn script_section(sa: &ScriptInfo, sb: &ScriptInfo, found: &mut Findings) -> Section {
    let mut changes = Vec::new();
    let (argv_a, argv_b) = (compared_argv(sa), compared_argv(sb));
    if compare(&mut changes, "argv", Some(show_argv(&argv_a)), Some(show_argv(&argv_b))) {
        found.code.push(format!("command line {} → {}", show_argv(&argv_a), show_argv(&argv_b)));
    } else {
        compare_location(&mut changes, "argv", Some(show_argv(&sa.argv)), Some(show_argv(&sb.argv)));
    }
    if compare(&mut changes, "workdir", Some(sa.workdir.clone()), Some(sb.workdir.clone())) {
        found.code.push(format!("working directory {} → {}", sa.workdir, sb.workdir));
    }
    let kind = |s: &ScriptInfo| serde_json::to_value(s.kind).ok().and_then(|v| v.as_str().map(str::to_string));
    compare(&mut changes, "kind", kind(sa), kind(sb));
    if compare(&mut changes, "path", sa.path.clone(), sb.path.clone()) {
        found.code.push(format!("script {} → {}", or_unset(&sa.path), or_unset(&sb.path)));
    }
    let short = |d: &Option<Digest>| d.as_ref().map(Digest::short);
    if compare(&mut changes, "digest", short(&sa.digest), short(&sb.digest)) {
        let name = sb.path.as_deref().or(sa.path.as_deref()).unwrap_or("script");
        let side = |d: &Option<Digest>| d.as_ref().map_or("none".to_string(), Digest::short);
        let what = if sb.kind == ScriptKind::Notebook { "code cells differ" } else { "content differs" };
        found.code.push(format!("{name} {what} ({} → {})", side(&sa.digest), side(&sb.digest)));
    }
    if sa.file_digest != sb.file_digest && sa.kind == ScriptKind::Notebook && sa.digest == sb.digest {
        changes
            .push(Change::new("file_digest", short(&sa.file_digest), short(&sb.file_digest)).with_note(NOTEBOOK_ONLY));
    }
    compare(&mut changes, "launcher", sa.launcher.clone(), sb.launcher.clone());
    let flag = |v: Option<bool>| v.map(|v| v.to_string());
    compare(&mut changes, "tracked_unchanged", flag(sa.tracked_unchanged), flag(sb.tracked_unchanged));
    compare(&mut changes, "git_state", sa.git_state.clone(), sb.git_state.clone());
    section("script", changes)
}
