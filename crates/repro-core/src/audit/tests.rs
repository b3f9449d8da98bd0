//! Tests of the audit rules.

use super::*;
use crate::record::*;

/// The sample record, with every declared requirement pinned (the sample's loose pin
/// is for the diff's tests), watched by the probe, which saw nothing amiss.
fn record() -> RunRecord {
    let mut r = crate::record::sample::record();
    r.probe = Some(crate::probe::ProbeRecord { processes: 1, ..Default::default() });
    if let Some(d) = r.environment.declared.as_mut() {
        d.requirements.retain(|q| q.status == PinStatus::Pinned);
    }
    r
}

fn status_of(r: &AuditReport, name: &str) -> ItemStatus {
    r.items.iter().find(|i| i.name == name).map(|i| i.status).expect("item present")
}

#[test]
fn the_item_list_is_the_report() {
    let r = audit_run(&record(), &ObjectCheck::default(), &[], &[], false);
    let names: Vec<&str> = r.items.iter().map(|i| i.name.as_str()).collect();
    assert_eq!(names, all_items().collect::<Vec<_>>());
}

#[test]
fn a_complete_record_is_complete_but_not_strictly() {
    let r = audit_run(&record(), &ObjectCheck::default(), &[], &[], false);
    assert!(r.complete, "{r:#?}");
    for name in AUDITOR_ITEMS.iter().take(6) {
        assert_eq!(status_of(&r, name), ItemStatus::Ok, "{name}");
    }
    assert_eq!(status_of(&r, "registry_version"), ItemStatus::Warn);
    assert!(!audit_run(&record(), &ObjectCheck::default(), &[], &[], true).complete);
    let replayed = [ReplaySummary {
        replay: RunId::parse("0123456789abcdef0123456789abcdef").expect("id"),
        verdict: crate::record::Verdict::Identical,
        at: "2026-01-01T00:00:00Z".into(),
    }];
    assert!(!audit_run(&record(), &ObjectCheck::default(), &[RegistryMention::new("pricing@3")], &[], true).complete);
    assert!(
        audit_run(&record(), &ObjectCheck::default(), &[RegistryMention::new("pricing@3")], &replayed, true).complete
    );
    let differs = [ReplaySummary { verdict: crate::record::Verdict::Differs, ..replayed[0].clone() }];
    let r = audit_run(&record(), &ObjectCheck::default(), &[RegistryMention::new("pricing@3")], &differs, false);
    assert!(!r.complete);
    assert!(r.items.iter().any(|i| i.name == "replay_verified" && i.status == ItemStatus::Missing));
    let names: Vec<&str> = r.items.iter().map(|i| i.name.as_str()).collect();
    assert_eq!(&names[..7], &AUDITOR_ITEMS[..]);
}

#[test]
fn each_gap_is_named() {
    let mut rec = record();
    rec.code.dirty = true;
    rec.code.diff = Some(Digest::of_bytes(b"diff"));
    rec.code.diff_files = vec!["train.py".into()];
    rec.seed.generated = true;
    rec.environment.declared.as_mut().expect("declared").requirements[0].status = PinStatus::Unpinned;
    rec.inputs[0].reference = true;
    rec.script.tracked_unchanged = Some(false);
    rec.script.git_state = Some("modified since the last commit".into());
    let r = audit_run(&rec, &ObjectCheck::default(), &[], &[], false);
    assert!(r.complete, "warnings only");
    for name in ["git_commit", "environment_file", "dataset_snapshot", "random_seed", "training_script"] {
        assert_eq!(status_of(&r, name), ItemStatus::Warn, "{name}");
    }
    rec.params = Params::default();
    rec.inputs.clear();
    rec.environment.declared = None;
    rec.code.commit = None;
    rec.outputs[0].missing = true;
    rec.status = RunStatus::Interrupted;
    let bad = ObjectCheck { checked: 3, missing: vec![Digest::of_bytes(b"m")], ..Default::default() };
    let r = audit_run(&rec, &bad, &[], &[], false);
    assert!(!r.complete);
    for name in [
        "git_commit",
        "environment_file",
        "dataset_snapshot",
        "hyperparameters",
        "outputs",
        "objects_verified",
        "result",
    ] {
        assert_eq!(status_of(&r, name), ItemStatus::Missing, "{name}");
        assert!(
            r.items.iter().find(|i| i.name == name).and_then(|i| i.fix.as_ref()).is_some(),
            "{name} says what to do"
        );
    }
}

#[test]
fn missing_input_data_is_named_with_its_dataset_and_where_to_get_it() {
    let d = Digest::of_bytes(b"data");
    let other = Digest::of_bytes(b"other");
    let file = MissingDataFile {
        digest: d.clone(),
        file: "data/train.csv".into(),
        input: "data/train.csv".into(),
        dataset: Some("data/train.csv:1".into()),
    };
    let mut check = ObjectCheck {
        checked: 14,
        missing: vec![d.clone()],
        missing_data: vec![file],
        imported_without_data: Some("pricing@1".into()),
        ..Default::default()
    };
    let it = objects_verified(&check);
    assert_eq!(it.status, ItemStatus::Missing);
    assert!(
        it.detail.starts_with(&format!(
            "1 of 14 objects failed: the input data data/train.csv of dataset data/train.csv:1 ({}) is not in this store: the run came with pricing@1 from a bundle exported without --include-data",
            d.short()
        )),
        "{}",
        it.detail
    );
    let fix = it.fix.expect("fix");
    assert!(fix.contains("repro bundle export pricing@1 -o FILE --include-data"), "{fix}");
    assert!(fix.contains("repro data snapshot data/train.csv"), "{fix}");
    assert!(!fix.contains("backup"), "{fix}");
    // Other damage is still listed, and data lost from a store of its own points at backups.
    check.imported_without_data = None;
    check.corrupt = vec![other.clone()];
    let it = objects_verified(&check);
    assert!(it.detail.contains(&format!("also {} corrupt", other.short())), "{}", it.detail);
    assert!(it.fix.expect("fix").contains("restore the store from a backup"));
}

#[test]
fn a_remote_with_a_credential_is_masked() {
    let mut rec = record();
    rec.code.remote = Some("https://oauth2:TOKEN@host/r.git".into());
    let it = git_commit(&rec.code);
    assert!(it.detail.contains("(https://***@host/r.git)"), "{}", it.detail);
    assert!(!it.detail.contains("TOKEN"));
}

#[test]
fn lineage_changes_with_any_field() {
    let a = record();
    let mut b = record();
    assert_eq!(a.lineage(), b.lineage());
    b.seed.value = 43;
    assert_ne!(a.lineage(), b.lineage());
    assert!(!a.canonical_json().contains(&b'\n'));
}

#[test]
fn human_bytes_reads_well() {
    assert_eq!(human_bytes(5), "5 B");
    assert_eq!(human_bytes(2048), "2.0 KiB");
    assert_eq!(human_bytes(3 << 30), "3.0 GiB");
}

#[test]
fn hyperparameters_count_each_source_apart() {
    let file = FileEntry { path: "params.yaml".into(), size: 40, mode: 0o644, digest: Digest::of_bytes(b"p") };
    let values = (1..=4).map(|i| (format!("k{i}"), serde_json::json!(i))).collect();
    let logged = (1..=3).map(|i| (format!("l{i}"), i.to_string())).collect();
    let both = Params { values, files: vec![file], logged };
    let detail = hyperparameters(&both, true).detail;
    assert!(detail.starts_with("4 from params.yaml, 3 logged by the script: "), "{detail}");
    let only_logged = Params { logged: both.logged.clone(), ..Params::default() };
    assert!(hyperparameters(&only_logged, true).detail.starts_with("3 logged by the script: "));
    let one_flag = Params { values: both.values.clone().into_iter().take(1).collect(), ..Params::default() };
    assert!(hyperparameters(&one_flag, false).detail.starts_with("1 param: "));
}

#[test]
fn what_the_probe_saw_becomes_items() {
    use crate::probe::{ProbeRecord, ProbeStatus, SeedCall, UndeclaredInput};
    let mut r = record();
    let mut p = ProbeRecord { processes: 1, ..Default::default() };
    p.seeds.push(SeedCall { via: "numpy.random.seed".into(), value: serde_json::json!(7), rank: None });
    p.undeclared_inputs.push(UndeclaredInput { path: "data/extra.csv".into(), digest: None, size: 10, exists: true });
    p.params.unread_overrides.push("model.num_leaves".into());
    r.probe = Some(p);
    let a = audit_run(&r, &ObjectCheck::default(), &[], &[], false);
    let get = |n: &str| a.items.iter().find(|i| i.name == n).expect("item").clone();
    assert_eq!(get("random_seed").status, ItemStatus::Missing);
    assert!(get("random_seed").detail.contains("numpy.random.seed 7"), "{:?}", get("random_seed"));
    assert_eq!(get("undeclared_inputs").status, ItemStatus::Missing);
    assert!(get("undeclared_inputs").fix.unwrap_or_default().contains("--data data/extra.csv"));
    assert_eq!(get("hyperparameters").status, ItemStatus::Warn);
    // Not watched: said, as a warning, never an error.
    r.probe = Some(ProbeRecord::absent(ProbeStatus::NoReport));
    let a = audit_run(&r, &ObjectCheck::default(), &[], &[], false);
    let u = a.items.iter().find(|i| i.name == "undeclared_inputs").expect("item");
    assert_eq!(u.status, ItemStatus::Warn);
    assert!(u.detail.contains("no Python process"), "{u:?}");
}
