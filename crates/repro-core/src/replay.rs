//! The replay verdict: from what a replay already read (the recorded and replayed outputs,
//! file by file, and the metrics), whether the result is identical, equivalent (the differing
//! bytes are vouched for by a comparator or by metrics within tolerance) or differs. Pure:
//! `repro-exec` rebuilds, runs, reads the objects and asks the comparator; this decides.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use crate::record::Verdict;
use crate::Digest;

/// One file of an output snapshot whose bytes changed between the run and its replay.
#[derive(Debug, Serialize)]
pub struct FileComparison {
    pub path: String,
    /// `changed` (same path, other bytes), `added` or `removed`.
    pub change: &'static str,
    /// What the configured comparator said, when it was asked.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub comparator: Option<String>,
}

/// One output path of the run, compared with the same path after the replay.
#[derive(Debug, Serialize)]
pub struct OutputComparison {
    pub path: String,
    pub verdict: Verdict,
    pub recorded: Option<Digest>,
    pub replayed: Option<Digest>,
    pub files: Vec<FileComparison>,
}

/// One metric's last value in the run and in the replay.
#[derive(Debug, Serialize)]
pub struct MetricComparison {
    pub key: String,
    pub recorded: Option<f64>,
    pub replayed: Option<f64>,
    pub tolerance: f64,
    pub within: bool,
}

/// Compares the last value of every metric either side logged; a metric only one side has
/// is never within tolerance.
pub fn compare_metrics(
    recorded: &BTreeMap<String, f64>,
    replayed: &BTreeMap<String, f64>,
    tolerances: &BTreeMap<String, f64>,
) -> Vec<MetricComparison> {
    let keys: BTreeSet<&String> = recorded.keys().chain(replayed.keys()).collect();
    keys.into_iter()
        .map(|k| {
            let (a, b) = (recorded.get(k).copied(), replayed.get(k).copied());
            let tolerance = tolerances.get(k).copied().unwrap_or(0.0);
            let within = match (a, b) {
                (Some(a), Some(b)) => a == b || (a.is_nan() && b.is_nan()) || (a - b).abs() <= tolerance,
                _ => false,
            };
            MetricComparison { key: k.clone(), recorded: a, replayed: b, tolerance, within }
        })
        .collect()
}

/// The verdict: identical when every output is bit-identical and every metric equal;
/// equivalent when what differs is vouched for (by the comparator for outputs, or — with no
/// comparator configured — by metrics that all agree within tolerance); else differs.
pub fn judge(
    outputs: &[OutputComparison],
    metrics: &[MetricComparison],
    recorded_exit: Option<i32>,
    exit: i32,
    has_comparator: bool,
) -> (Verdict, Vec<String>) {
    let mut reasons = Vec::new();
    let mut differs = false;
    if recorded_exit != Some(exit) {
        differs = true;
        reasons.push(format!(
            "the command exited {exit}; the run exited {}",
            recorded_exit.map(|c| c.to_string()).unwrap_or_else(|| "without a code".into())
        ));
    }
    for m in metrics.iter().filter(|m| !m.within) {
        differs = true;
        let show = |v: Option<f64>| v.map(|v| v.to_string()).unwrap_or_else(|| "absent".into());
        reasons.push(format!(
            "metric {}: {} → {} (tolerance {})",
            m.key,
            show(m.recorded),
            show(m.replayed),
            m.tolerance
        ));
    }
    let inexact: Vec<&MetricComparison> = metrics
        .iter()
        .filter(|m| m.within && m.recorded != m.replayed && !(m.recorded.is_some_and(f64::is_nan)))
        .collect();
    for m in &inexact {
        reasons.push(format!(
            "metric {}: {} → {}, within the tolerance {}",
            m.key,
            m.recorded.unwrap_or_default(),
            m.replayed.unwrap_or_default(),
            m.tolerance
        ));
    }
    let mut bytes_differ = false;
    for o in outputs.iter().filter(|o| o.verdict != Verdict::Identical) {
        bytes_differ = true;
        let files: Vec<String> = o
            .files
            .iter()
            .map(|f| match &f.comparator {
                Some(c) => format!("{} {} ({c})", f.path, f.change),
                None => format!("{} {}", f.path, f.change),
            })
            .collect();
        let detail = if files.is_empty() { String::new() } else { format!(": {}", files.join(", ")) };
        let missing = if o.recorded.is_none() || o.replayed.is_none() {
            format!(
                " (recorded {}, replayed {})",
                if o.recorded.is_some() { "present" } else { "absent" },
                if o.replayed.is_some() { "present" } else { "absent" }
            )
        } else {
            String::new()
        };
        reasons.push(format!("output {} differs in bytes{missing}{detail}", o.path));
        // A comparator's judgment (the output's verdict) decides; without one, only changed
        // bytes can be vouched for (by the metrics, below) — never a file added or removed.
        let structural = o.recorded.is_none() || o.replayed.is_none() || o.files.iter().any(|f| f.change != "changed");
        if structural || (has_comparator && o.verdict == Verdict::Differs) {
            differs = true;
        }
    }
    if bytes_differ && !has_comparator && !differs {
        // Nothing configured to judge the bytes: only agreeing metrics can vouch for them.
        if metrics.is_empty() {
            differs = true;
            reasons.push(
                "no metrics were recorded and no [replay] compare is configured, so nothing vouches for the differing bytes"
                    .into(),
            );
        } else {
            reasons.push("every metric agrees within tolerance, which vouches for the differing bytes".into());
        }
    }
    let verdict = if differs {
        Verdict::Differs
    } else if bytes_differ || !inexact.is_empty() {
        Verdict::Equivalent
    } else {
        Verdict::Identical
    };
    if verdict == Verdict::Identical {
        reasons.push(format!(
            "{} bit-identical, {} equal",
            crate::audit::count(outputs.len() as u64, "output"),
            crate::audit::count(metrics.len() as u64, "metric")
        ));
    }
    (verdict, reasons)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn output(path: &str, verdict: Verdict, change: &'static str) -> OutputComparison {
        let d = Digest::of_bytes(path.as_bytes());
        OutputComparison {
            path: path.into(),
            verdict,
            recorded: Some(d.clone()),
            replayed: Some(d),
            files: if verdict == Verdict::Identical {
                vec![]
            } else {
                vec![FileComparison { path: path.into(), change, comparator: None }]
            },
        }
    }

    fn metric(key: &str, a: f64, b: f64, tol: f64) -> MetricComparison {
        let within = a == b || (a - b).abs() <= tol;
        MetricComparison { key: key.into(), recorded: Some(a), replayed: Some(b), tolerance: tol, within }
    }

    #[test]
    fn verdicts() {
        let same = [output("m.pkl", Verdict::Identical, "changed")];
        let (v, _) = judge(&same, &[metric("rmse", 1.0, 1.0, 0.0)], Some(0), 0, false);
        assert_eq!(v, Verdict::Identical);
        // Bytes differ, metrics equal, no comparator: the metrics vouch.
        let bytes = [output("m.pkl", Verdict::Differs, "changed")];
        let (v, r) = judge(&bytes, &[metric("rmse", 1.0, 1.0, 0.0)], Some(0), 0, false);
        assert_eq!(v, Verdict::Equivalent, "{r:?}");
        // … but not without metrics.
        assert_eq!(judge(&bytes, &[], Some(0), 0, false).0, Verdict::Differs);
        // A metric out of tolerance differs; within tolerance is equivalent.
        assert_eq!(judge(&bytes, &[metric("rmse", 1.0, 1.2, 0.0)], Some(0), 0, false).0, Verdict::Differs);
        assert_eq!(judge(&same, &[metric("rmse", 1.0, 1.05, 0.1)], Some(0), 0, false).0, Verdict::Equivalent);
        // With a comparator, its judgment decides the bytes.
        assert_eq!(judge(&bytes, &[metric("rmse", 1.0, 1.0, 0.0)], Some(0), 0, true).0, Verdict::Differs);
        let vouched = [output("m.pkl", Verdict::Equivalent, "changed")];
        assert_eq!(judge(&vouched, &[], Some(0), 0, true).0, Verdict::Equivalent);
        // A different exit code always differs.
        assert_eq!(judge(&same, &[], Some(0), 1, false).0, Verdict::Differs);
        // Added or removed files are never vouched for by metrics.
        let added = [output("out/", Verdict::Differs, "added")];
        assert_eq!(judge(&added, &[metric("rmse", 1.0, 1.0, 0.0)], Some(0), 0, false).0, Verdict::Differs);
    }

    #[test]
    fn metrics_compare_by_tolerance_and_presence() {
        let a = BTreeMap::from([("rmse".to_string(), 1.0), ("r2".to_string(), 0.5)]);
        let b = BTreeMap::from([("rmse".to_string(), 1.01), ("acc".to_string(), 0.9)]);
        let tol = BTreeMap::from([("rmse".to_string(), 0.02)]);
        let m = compare_metrics(&a, &b, &tol);
        let get = |k: &str| m.iter().find(|x| x.key == k).expect("present");
        assert!(get("rmse").within);
        assert!(!get("r2").within, "absent after the replay");
        assert!(!get("acc").within, "absent before");
        assert_eq!(m.iter().map(|x| x.key.as_str()).collect::<Vec<_>>(), ["acc", "r2", "rmse"]);
    }
}
