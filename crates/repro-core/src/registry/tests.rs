//! Tests of the registry fold, lookups and policies.

use super::state::utc_minute;
use super::*;
use crate::audit::{audit_run, ObjectCheck};
use crate::record::sample;
use proptest::prelude::*;

fn artifact() -> Artifact {
    Artifact {
        path: "model.pkl".into(),
        output: "model.pkl".into(),
        snapshot: Digest::of_bytes(b"manifest"),
        files: vec![ArtifactFile {
            path: "model.pkl".into(),
            size: 5,
            blake3: Digest::of_bytes(b"model"),
            sha256: "00".repeat(32),
        }],
    }
}

fn log(changes: &[(&str, u32, &str, Change)]) -> Vec<Event> {
    let mut events: Vec<Event> = Vec::new();
    for (i, (model, version, actor, change)) in changes.iter().enumerate() {
        let e = Event::next(events.last(), 1_000 + i as i64, actor, model, *version, change);
        events.push(e);
    }
    events
}

fn register(run: &RunId) -> Change {
    Change::Register {
        run: run.clone(),
        lineage: Some(Digest::of_bytes(b"lineage")),
        artifact: artifact(),
        model_id: None,
    }
}

fn promote(stage: &str) -> Change {
    Change::Promote { stage: stage.into(), from: None, replaced: None, checked: vec![], approvers: vec![] }
}

fn approve(stage: &str) -> Change {
    Change::Approve { stage: stage.into(), comment: None, signature: None }
}

#[test]
fn references_parse() {
    assert_eq!(ModelRef::parse("pricing@3"), Some(ModelRef { name: "pricing".into(), selector: Selector::Version(3) }));
    assert_eq!(
        ModelRef::parse("pricing@prod"),
        Some(ModelRef { name: "pricing".into(), selector: Selector::Stage("prod".into()) })
    );
    for bad in ["pricing", "@3", "pricing@", "pricing@0", "pricing@-1", "pri cing@3", "p@3x y", "a@99999999999"] {
        assert_eq!(ModelRef::parse(bad), None, "{bad}");
    }
}

#[test]
fn stages_move_and_history_stays() {
    let run = sample::record().id;
    let events = log(&[
        ("pricing", 1, "ada", register(&run)),
        ("pricing", 2, "ada", register(&run)),
        ("pricing", 1, "ada", promote("prod")),
        ("pricing", 2, "bob", promote("prod")),
        ("pricing", 1, "bob", Change::Archive { reason: "superseded".into() }),
    ]);
    assert!(verify_chain(&events, events.last().map(|e| (e.seq, &e.hash))).is_empty());
    let (reg, problems) = Registry::fold(&events);
    assert!(problems.is_empty(), "{problems:?}");
    let m = reg.model("pricing").expect("model");
    assert_eq!(m.in_stage("prod").map(|v| v.version), Some(2));
    let v1 = &m.versions[&1];
    assert!(v1.archived.is_some() && v1.stage.is_none());
    assert_eq!(v1.history.len(), 4, "{:?}", v1.history);
    assert_eq!(reg.next_version("pricing"), 3);
    assert_eq!(reg.next_version("other"), 1);
    assert_eq!(reg.versions_of_run(&run).len(), 2);
}

#[test]
fn lookups_name_what_exists() {
    let run = sample::record().id;
    let events = log(&[("pricing", 1, "ada", register(&run)), ("pricing", 1, "ada", promote("staging"))]);
    let (reg, _) = Registry::fold(&events);
    let err = |t: &str| reg.lookup(&ModelRef::parse(t).expect("parses")).expect_err(t).to_string();
    assert!(err("pricing@9").contains("versions: 1"), "{}", err("pricing@9"));
    assert!(err("nosuch@prod").contains("models: pricing"), "{}", err("nosuch@prod"));
    assert!(err("pricing@prod").contains("staging: pricing@1"), "{}", err("pricing@prod"));
    assert_eq!(reg.lookup(&ModelRef::parse("pricing@staging").expect("parses")).map(|v| v.version), Ok(1));
}

#[test]
fn an_archived_stage_says_who_emptied_it() {
    let run = sample::record().id;
    let events = log(&[
        ("pricing", 1, "ada", register(&run)),
        ("pricing", 1, "ada", promote("prod")),
        ("pricing", 1, "bob", Change::Archive { reason: "superseded".into() }),
    ]);
    let (reg, _) = Registry::fold(&events);
    let err = reg.lookup(&ModelRef::parse("pricing@prod").expect("parses")).expect_err("empty").to_string();
    assert!(
        err.starts_with(
            "'pricing' has no version in prod (pricing@1 was there until bob archived it on 1970-01-01 00:00 UTC: superseded)"
        ),
        "{err}"
    );
    // The archive is not part of the version's JSON: the stage it left is folded, not stored.
    let json = serde_json::to_value(&reg.models["pricing"].versions[&1]).expect("json");
    assert!(json["archived"].get("left_stage").is_none(), "{json}");
    assert_eq!(utc_minute(1_764_915_000_000), "2025-12-05 06:10 UTC");
}

#[test]
fn each_kind_of_tampering_is_named() {
    let run = sample::record().id;
    let events = log(&[
        ("pricing", 1, "ada", register(&run)),
        ("pricing", 1, "ada", promote("staging")),
        ("pricing", 1, "bob", approve("prod")),
    ]);
    let anchor = events.last().map(|e| (e.seq, e.hash.clone()));
    let anchor = anchor.as_ref().map(|(s, h)| (*s, h));

    let mut edited = events.clone();
    edited[1].payload = edited[1].payload.replace("staging", "prod");
    let p = verify_chain(&edited, anchor);
    assert_eq!(p.len(), 1, "{p:?}");
    assert!(p[0].message.contains("#2 promote pricing@1 was changed"), "{p:?}");

    let mut removed = events.clone();
    removed.remove(1);
    assert!(verify_chain(&removed, anchor).iter().any(|p| p.message.contains("#2 is gone")));

    let truncated = events[..2].to_vec();
    let p = verify_chain(&truncated, anchor);
    assert!(p.iter().any(|p| p.message.contains("#3 (the last one repro wrote) is gone")), "{p:?}");

    let mut actor = events.clone();
    actor[2].actor = "mallory".into();
    assert!(verify_chain(&actor, anchor).iter().any(|p| p.message.contains("was changed")));

    let mut garbage = events.clone();
    garbage[0].payload = "{not json".into();
    garbage[0].hash = garbage[0].computed_hash();
    assert!(verify_chain(&garbage, None).iter().any(|p| p.message.contains("unreadable")));
}

#[test]
fn one_persons_approvals_count_once() {
    let run = sample::record().id;
    let events = log(&[
        ("pricing", 1, "Ada <ada@example.com>", register(&run)),
        ("pricing", 1, "Ada <ada@example.com>", approve("prod")),
        ("pricing", 1, "ada lovelace <ADA@example.com>", approve("prod")),
        ("pricing", 1, "Bob <bob@example.com>", approve("staging")),
    ]);
    let (reg, _) = Registry::fold(&events);
    let v = &reg.models["pricing"].versions[&1];
    assert_eq!(v.approvers("prod").len(), 1);
    assert_eq!(v.approvers("staging").len(), 1);
    assert_eq!(identity_key(" Bob "), "bob");
}

#[test]
fn policy_lists_every_unmet_requirement() {
    let mut record = sample::record();
    record.code.dirty = true;
    record.code.diff_files = vec!["train.py".into()];
    record.seed.generated = true;
    let audit = audit_run(&record, &ObjectCheck::default(), &[], &[], false);
    let events = log(&[("pricing", 1, "ada", register(&record.id)), ("pricing", 1, "ada", approve("prod"))]);
    let (reg, _) = Registry::fold(&events);
    let v = &reg.models["pricing"].versions[&1];
    let policy = &default_policies()["prod"];
    let facts = PromotionFacts {
        record: &record,
        audit: &audit,
        valid_signatures: 0,
        signature_problems: vec![],
        parity: Some(Ok(vec!["numpy 1.26.4 → 2.0.0".into()])),
        approvals: vec![super::approval::ApprovalCheck {
            stage: "prod".into(),
            by: "ada".into(),
            keyid: None,
            valid: false,
            trusted: false,
            person: "ada".into(),
            problem: None,
        }],
        replay_verdicts: vec![],
    };
    let unmet = evaluate(v, "prod", policy, &facts);
    let names: Vec<&str> = unmet.iter().map(|u| u.requirement.as_str()).collect();
    for expected in ["from", "git_clean", "random_seed", "replay_verified", "signed", "parity", "approvals"] {
        assert!(names.contains(&expected), "{expected} missing from {names:?}");
    }
    let approvals = unmet.iter().find(|u| u.requirement == "approvals").expect("approvals");
    assert!(
        approvals.reason.contains("needs 2 approvals signed by distinct trusted approvers")
            && approvals.reason.contains("has 0 (none yet); not counted: ada (unsigned)"),
        "{}",
        approvals.reason
    );
    // A policy that does not ask for signatures counts the names, as stores before did.
    let legacy = StagePolicy { signed_approvals: false, ..policy.clone() };
    let unmet = evaluate(v, "prod", &legacy, &facts);
    let approvals = unmet.iter().find(|u| u.requirement == "approvals").expect("approvals");
    assert!(approvals.reason.contains("needs 2 distinct approvals") && approvals.reason.contains("has 1 (ada)"));
    assert!(unmet.iter().all(|u| !u.reason.is_empty()));

    let dev = evaluate(v, "dev", &default_policies()["dev"], &facts);
    assert_eq!(dev.iter().filter(|u| u.requirement != "parity").count(), 0);
}

#[test]
fn signed_replay_needs_a_reproducing_verdict_by_a_trusted_key() {
    use crate::provenance::VerdictCheck;
    use crate::record::Verdict;
    let record = sample::record();
    let audit = audit_run(&record, &ObjectCheck::default(), &[], &[], false);
    let (reg, _) = Registry::fold(&log(&[("pricing", 1, "ada", register(&record.id))]));
    let v = &reg.models["pricing"].versions[&1];
    let policy = StagePolicy { signed_replay: true, ..Default::default() };
    let check = |n: u8, verdict: Verdict, keyid: Option<&str>, valid: bool, trusted: bool| VerdictCheck {
        replay: RunId::from_bytes([n; 16]),
        verdict,
        created_ms: i64::from(n),
        keyid: keyid.map(str::to_string),
        valid,
        trusted,
        name: None,
        problem: (!valid && keyid.is_some()).then(|| "the signature does not verify".into()),
    };
    let judge = |verdicts: Vec<VerdictCheck>| {
        let facts = PromotionFacts {
            record: &record,
            audit: &audit,
            valid_signatures: 0,
            signature_problems: vec![],
            parity: None,
            approvals: vec![],
            replay_verdicts: verdicts,
        };
        evaluate(v, "prod", &policy, &facts).into_iter().find(|u| u.requirement == "signed_replay").map(|u| u.reason)
    };
    assert_eq!(judge(vec![]).as_deref(), Some("the run has not been replayed"));
    let unsigned = judge(vec![check(1, Verdict::Identical, None, false, false)]).expect("unmet");
    assert!(unsigned.contains("is unsigned"), "{unsigned}");
    let untrusted = judge(vec![check(1, Verdict::Identical, Some("ab12"), true, false)]).expect("unmet");
    assert!(untrusted.contains("[trust] signers does not list"), "{untrusted}");
    let forged = judge(vec![
        check(1, Verdict::Identical, None, false, false),
        check(2, Verdict::Identical, Some("ab12"), false, false),
    ])
    .expect("unmet");
    assert!(forged.contains("does not verify"), "a forged signature is the reason given first: {forged}");
    assert_eq!(judge(vec![check(1, Verdict::Identical, Some("ab12"), true, true)]), None);
    // The newest trusted verdict decides, whatever came before or unsigned after.
    let newer_differs = judge(vec![
        check(1, Verdict::Identical, Some("ab12"), true, true),
        check(2, Verdict::Differs, Some("ab12"), true, true),
        check(3, Verdict::Identical, None, false, false),
    ])
    .expect("unmet");
    assert!(newer_differs.contains("says differs"), "{newer_differs}");
    // Policies that do not ask for it (every existing one) are not judged on it.
    assert!(default_policies().values().all(|p| !p.signed_replay));
}

#[test]
fn mlflow_door_events_fold() {
    let run = RunId::from_bytes([7; 16]);
    let mut unpinned = register(&run);
    if let Change::Register { lineage, model_id, .. } = &mut unpinned {
        *lineage = None;
        *model_id = Some("m-1".into());
    }
    let tags = BTreeMap::from([("team".to_string(), "a".to_string())]);
    let events = log(&[
        ("sk", 0, "ada", Change::Create { description: Some("first".into()), tags }),
        ("sk", 1, "ada", unpinned),
        ("sk", 1, "ada", Change::Alias { alias: "champion".into() }),
        ("sk", 1, "ada", Change::Tag { key: "k".into(), value: Some("v".into()) }),
        ("sk", 0, "ada", Change::Describe { description: "second".into() }),
        ("sk", 1, "repro", Change::Pin { lineage: Digest::of_bytes(b"lineage") }),
        ("sk", 2, "ada", register(&run)),
    ]);
    let (reg, problems) = Registry::fold(&events);
    assert!(problems.is_empty(), "{problems:?}");
    let m = reg.model("sk").expect("model");
    assert_eq!(m.description.as_deref(), Some("second"));
    assert_eq!(m.tags["team"], "a");
    let champion = reg.lookup(&ModelRef::parse("sk@champion").expect("ref")).expect("alias resolves");
    assert_eq!(champion.version, 1);
    assert_eq!(champion.aliases, vec!["champion".to_string()]);
    assert_eq!(champion.tags["k"], "v");
    assert_eq!(champion.model_id.as_deref(), Some("m-1"));
    assert_eq!(champion.lineage, Some(Digest::of_bytes(b"lineage")));

    // Deleting version 1 takes its alias with it; the number is never reused.
    let mut more = events.clone();
    more.push(Event::next(more.last(), 5_000, "ada", "sk", 1, &Change::Delete {}));
    let (reg, problems) = Registry::fold(&more);
    assert!(problems.is_empty(), "{problems:?}");
    let err = reg.lookup(&ModelRef::parse("sk@1").expect("ref")).expect_err("deleted");
    assert!(err.to_string().contains("sk@1 was deleted by ada"), "{err}");
    assert!(reg.lookup(&ModelRef::parse("sk@champion").expect("ref")).is_err());
    assert_eq!(reg.next_version("sk"), 3);
    assert_eq!(reg.model("sk").expect("model").latest().map(|v| v.version), Some(2));

    // Deleting the model hides it; creating the name again brings it back, numbering on.
    more.push(Event::next(more.last(), 6_000, "ada", "sk", 0, &Change::Delete {}));
    let (reg, _) = Registry::fold(&more);
    assert!(reg.model("sk").expect_err("deleted").to_string().contains("model 'sk' was deleted"));
    more.push(Event::next(
        more.last(),
        7_000,
        "ada",
        "sk",
        0,
        &Change::Create { description: None, tags: BTreeMap::new() },
    ));
    let (reg, problems) = Registry::fold(&more);
    assert!(problems.is_empty(), "{problems:?}");
    assert!(reg.model("sk").expect("back").latest().is_none());
    assert_eq!(reg.next_version("sk"), 3);
    assert_eq!(reg.model("sk").expect("back").created_at_ms, 7_000, "a re-created model is created anew");

    // A second create of a live model, or an alias on a deleted version, cannot apply.
    more.push(Event::next(
        more.last(),
        8_000,
        "ada",
        "sk",
        0,
        &Change::Create { description: None, tags: BTreeMap::new() },
    ));
    more.push(Event::next(more.last(), 9_000, "ada", "sk", 1, &Change::Alias { alias: "x".into() }));
    let (_, problems) = Registry::fold(&more);
    assert_eq!(problems.len(), 2, "{problems:?}");
}

#[test]
fn register_payloads_keep_their_old_shape() {
    let run = RunId::from_bytes([7; 16]);
    let payload = register(&run).payload();
    assert!(payload.starts_with("{\"artifact\"") || payload.contains("\"lineage\":\""), "{payload}");
    assert!(!payload.contains("model_id"), "{payload}");
    let back = Change::from_payload("register", &payload).expect("parses");
    assert_eq!(back, register(&run));
}

#[test]
fn policies_are_validated() {
    assert!(validate_policies(&default_policies()).is_ok());
    let mut p = default_policies();
    p.get_mut("prod").expect("prod").require.push("git_cleen".into());
    assert!(validate_policies(&p).expect_err("typo").contains("unknown requirement 'git_cleen'"));
    let mut p = default_policies();
    p.get_mut("prod").expect("prod").from = Some("qa".into());
    assert!(validate_policies(&p).expect_err("no qa").contains("no stage 'qa'"));
}

proptest! {
    /// Any sequence of registry operations folds without problems, keeps each stage
    /// held by at most one version of a model, and verifies as a chain.
    #[test]
    fn any_history_folds_to_a_consistent_registry(ops in proptest::collection::vec((0u8..5, 0u8..2, 1u32..4, 0u8..3), 0..40)) {
        let run = sample::record().id;
        let stages = ["dev", "staging", "prod"];
        let mut events: Vec<Event> = Vec::new();
        for (op, model, version, stage) in ops {
            let model = ["a", "b"][model as usize];
            let (reg, _) = Registry::fold(&events);
            let exists = reg.models.get(model).is_some_and(|m| m.versions.contains_key(&version));
            let change = match op {
                0 => {
                    let v = reg.next_version(model);
                    let e = Event::next(events.last(), 1, "ada", model, v, &register(&run));
                    events.push(e);
                    continue;
                }
                _ if !exists => continue,
                1 => promote(stages[stage as usize]),
                2 => approve(stages[stage as usize]),
                3 => Change::Archive { reason: "old".into() },
                _ => Change::Sign { keyid: "k".into(), envelope: Digest::of_bytes(b"e"), public_key: Digest::of_bytes(b"p") },
            };
            let e = Event::next(events.last(), 1, "bob", model, version, &change);
            events.push(e);
        }
        let (reg, problems) = Registry::fold(&events);
        prop_assert!(problems.is_empty(), "{:?}", problems);
        prop_assert!(verify_chain(&events, events.last().map(|e| (e.seq, &e.hash))).is_empty());
        for m in reg.models.values() {
            for s in stages {
                prop_assert!(m.versions.values().filter(|v| v.stage.as_deref() == Some(s)).count() <= 1);
            }
        }
    }

    #[test]
    fn garbage_payloads_never_panic(kind in "[a-z]{0,8}", payload in ".{0,64}") {
        let _ = Change::from_payload(&kind, &payload);
    }

    #[test]
    fn references_never_panic(text in ".{0,40}") {
        if let Some(r) = ModelRef::parse(&text) {
            prop_assert_eq!(ModelRef::parse(&r.to_string()), Some(r));
        }
    }
}

#[test]
fn a_rename_moves_the_model_and_the_old_name_redirects_until_it_is_taken() {
    let run = RunId::from_bytes([1; 16]);
    let rename = |to: &str| Change::Rename { to: to.into() };
    let mut changes = vec![
        ("a", 1, "ada", register(&run)),
        ("a", 1, "ada", promote("staging")),
        ("a", 0, "ada", rename("b")),
        ("b", 1, "ada", approve("prod")),
        ("b", 0, "ada", rename("c")),
    ];
    let (reg, problems) = Registry::fold(&log(&changes));
    assert_eq!(problems, []);
    assert_eq!(reg.models.keys().collect::<Vec<_>>(), ["c"]);
    let v = &reg.models["c"].versions[&1];
    assert_eq!((v.name.as_str(), v.former_names.clone()), ("c", vec!["a".to_string(), "b".to_string()]));
    assert_eq!(v.stage.as_deref(), Some("staging"));
    assert_eq!(v.approvals.len(), 1);
    assert!(v.known_as("a") && v.known_as("b") && !v.known_as("d"));
    // Old names resolve to the model now called c, through each step.
    for old in ["a", "b", "c"] {
        assert_eq!(reg.lookup(&ModelRef::parse(&format!("{old}@1")).expect("ref")).expect("found").name, "c");
    }
    assert_eq!(reg.model("a").map(|m| m.name.clone()).ok(), None, "model() itself is strict, as MLflow is");
    // The events of c@1 are the version's own under each name, and the renames between.
    let events = log(&changes);
    let kinds: Vec<&str> = events_of(&events, "c", 1).iter().map(|e| e.kind.as_str()).collect();
    assert_eq!(kinds, ["register", "promote", "rename", "approve", "rename"]);

    // A new model named a: the redirect ends there, and its events are not c's.
    changes.push(("a", 1, "bob", register(&run)));
    let events = log(&changes);
    let (reg, problems) = Registry::fold(&events);
    assert_eq!(problems, []);
    assert_eq!(reg.lookup(&ModelRef::parse("a@1").expect("ref")).expect("found").name, "a");
    assert_eq!(reg.lookup(&ModelRef::parse("b@1").expect("ref")).expect("found").name, "c");
    assert_eq!(events_of(&events, "c", 1).len(), 5);
    assert_eq!(events_of(&events, "a", 1).len(), 1);

    // Renames that cannot apply: onto a name in use, from a model that is not there, on a version.
    for (model, version, to) in [("a", 0, "c"), ("zz", 0, "y"), ("c", 1, "y"), ("c", 0, "no space")] {
        let mut bad = changes.clone();
        bad.push((model, version, "eve", rename(to)));
        let (_, problems) = Registry::fold(&log(&bad));
        assert_eq!(problems.len(), 1, "{model}@{version} → {to}");
    }
}
