//! The `probe` section: what the two runs did inside their processes — the files they read
//! without declaring them, the seeds they set, the frameworks' settings — and, when one run's
//! command failed, why (the exception and the file it could not open), ranked first.

use super::*;
use crate::probe::{ProbeRecord, ProbeStatus, TorchState};

fn seeds(p: &ProbeRecord) -> Vec<String> {
    p.seeds.iter().map(|s| s.describe()).collect()
}

fn torch_flags(t: &TorchState) -> Vec<(&'static str, Option<String>)> {
    let b = |v: Option<bool>| v.map(|x| x.to_string());
    vec![
        ("torch.version", Some(t.version.clone())),
        ("torch.deterministic_algorithms", b(t.deterministic_algorithms)),
        ("torch.cudnn.benchmark", b(t.cudnn_benchmark)),
        ("torch.cudnn.deterministic", b(t.cudnn_deterministic)),
        ("torch.cuda.matmul.allow_tf32", b(t.matmul_allow_tf32)),
        ("torch.cudnn.allow_tf32", b(t.cudnn_allow_tf32)),
        ("torch.float32_matmul_precision", t.float32_matmul_precision.clone()),
        ("torch.num_threads", t.num_threads.map(|n| n.to_string())),
    ]
}

pub(super) fn probe_section(a: &RunRecord, b: &RunRecord, found: &mut Findings) -> Section {
    let mut changes = Vec::new();
    let (Some(pa), Some(pb)) = (
        a.probe.as_ref().filter(|p| p.status == ProbeStatus::Ran),
        b.probe.as_ref().filter(|p| p.status == ProbeStatus::Ran),
    ) else {
        failure(a, b, None, found);
        return section("probe", changes);
    };
    failure(a, b, Some((pa, pb)), found);

    // Undeclared inputs: the same path with other content, or read by one run only.
    let ua: BTreeMap<&str, _> = pa.undeclared_inputs.iter().map(|u| (u.path.as_str(), u)).collect();
    let ub: BTreeMap<&str, _> = pb.undeclared_inputs.iter().map(|u| (u.path.as_str(), u)).collect();
    let show = |u: Option<&&crate::probe::UndeclaredInput>| {
        u.map(|u| match (&u.digest, u.exists) {
            (_, false) => "missing".to_string(),
            (Some(d), true) => format!("{} ({})", d.short(), human_bytes(u.size)),
            (None, true) => human_bytes(u.size),
        })
    };
    for path in ua.keys().chain(ub.keys()).collect::<BTreeSet<_>>() {
        let (x, y) = (ua.get(path), ub.get(path));
        let same = matches!((x, y), (Some(x), Some(y)) if x.digest == y.digest && x.exists == y.exists);
        if same {
            continue;
        }
        let change = Change::new(format!("undeclared input {path}"), show(x), show(y));
        let summary = match (x, y) {
            (Some(_), Some(_)) => format!("{path} (read, not declared) differs: {}", change.describe()),
            (Some(_), None) => format!("{path} (read, not declared) was read by run a only"),
            _ => format!("{path} (read, not declared) was read by run b only"),
        };
        found.cause(CauseKind::UndeclaredInputChanged, summary, vec![change.describe()]);
        changes.push(change);
    }

    let (sa, sb) = (seeds(pa), seeds(pb));
    if sa != sb {
        let change = Change::new("seeds set", Some(sa.join(", ")), Some(sb.join(", ")));
        found.cause(
            CauseKind::SeedsSetChanged,
            format!("the script set other seeds: {}", change.describe()),
            vec![change.describe()],
        );
        changes.push(change);
    }

    let flags = |p: &ProbeRecord| p.frameworks.torch.as_ref().map(torch_flags).unwrap_or_default();
    let (fa, fb) = (flags(pa), flags(pb));
    let keys: BTreeSet<&str> = fa.iter().chain(&fb).map(|(k, _)| *k).collect();
    for key in keys {
        let get = |f: &[(&str, Option<String>)]| f.iter().find(|(k, _)| *k == key).and_then(|(_, v)| v.clone());
        let (x, y) = (get(&fa), get(&fb));
        if x != y {
            let change = Change::new(key, x, y);
            found.cause(
                CauseKind::DeterminismChanged,
                format!("a determinism setting differs: {}", change.describe()),
                vec![change.describe()],
            );
            changes.push(change);
        }
    }
    let pools = |p: &ProbeRecord| {
        p.frameworks.threadpools.iter().map(|t| format!("{}={}", t.api, t.num_threads.unwrap_or(0))).collect::<Vec<_>>()
    };
    if pools(pa) != pools(pb) {
        let change = Change::new("thread pools", Some(pools(pa).join(", ")), Some(pools(pb).join(", ")));
        found.threads.push(change.describe());
        changes.push(change);
    }
    if pa.ranks.len() != pb.ranks.len() {
        let change = Change::new("ranks", Some(pa.ranks.len().to_string()), Some(pb.ranks.len().to_string()));
        found.cause(
            CauseKind::DeterminismChanged,
            format!("the number of ranks differs: {}", change.describe()),
            vec![],
        );
        changes.push(change);
    }
    section("probe", changes)
}

/// When run b's command failed and run a's did not, the failure is the first thing to say:
/// the exception it raised and, when it could not open a file run a read, that file.
fn failure(a: &RunRecord, b: &RunRecord, probes: Option<(&ProbeRecord, &ProbeRecord)>, found: &mut Findings) {
    let failed = |r: &RunRecord| r.exit_code.is_some_and(|c| c != 0) || r.signal.is_some();
    if !failed(b) || failed(a) {
        return;
    }
    let exception = b.probe.as_ref().and_then(|p| p.exception.as_ref());
    // The result section's lines (status, exit code) come first.
    let mut evidence: Vec<String> = found.outputs.iter().filter(|o| o.starts_with("result ")).cloned().collect();
    let mut summary = match exception {
        Some(e) => format!("the command failed in run b: {}", e.describe()),
        None => {
            format!("the command failed in run b (exit {})", b.exit_code.map(|c| c.to_string()).unwrap_or("?".into()))
        }
    };
    if let Some((pa, pb)) = probes {
        let missing: Vec<&str> = pb.undeclared_inputs.iter().filter(|u| !u.exists).map(|u| u.path.as_str()).collect();
        evidence.extend(missing.iter().map(|m| format!("opened but absent in run b: {m}")));
        // What run a read without declaring it and run b did not read (a replay never
        // restores such files; a library may check that a file exists before it opens it).
        let read_by_b = |path: &str| pb.reads.iter().any(|r| r.path == path) && !missing.contains(&path);
        let named = |path: &str| {
            exception
                .is_some_and(|e| e.message.contains(path) || e.filename.as_deref().is_some_and(|f| f.ends_with(path)))
        };
        let unread: Vec<&str> =
            pa.undeclared_inputs.iter().filter(|u| u.exists && !read_by_b(&u.path)).map(|u| u.path.as_str()).collect();
        let culprit = unread.iter().find(|p| named(p) || missing.contains(p)).or(unread.first());
        if let Some(first) = culprit {
            let how = if named(first) || missing.contains(first) { "it could not open" } else { "it never read" };
            summary = format!("{summary} — {how} {first}, which run a read without declaring it (pass --data {first})");
            evidence.push(format!("run a read {first} without declaring it; run b did not read it"));
        }
    }
    if let Some(e) = exception.and_then(|e| e.filename.as_ref()) {
        evidence.push(format!("the exception names {e}"));
    }
    found.cause(CauseKind::CommandFailed, summary, evidence);
}
