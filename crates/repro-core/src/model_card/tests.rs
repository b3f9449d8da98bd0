use super::*;

fn facts() -> ModelFacts {
    ModelFacts {
        name: "pricing".into(),
        version: 3,
        registered_at: "2026-01-02T03:04:05.000Z".into(),
        registered_by: "Ada <ada@example.com>".into(),
        description: None,
        run: "0123456789abcdef0123456789abcdef".into(),
        run_name: None,
        lineage: Digest::of_bytes(b"record"),
        artifact_snapshot: Digest::of_bytes(b"manifest"),
        files: vec![FileFact { path: "model.pkl".into(), size: 3, sha256: "ab".repeat(32), blake3: "cd".repeat(32) }],
        datasets: vec![DatasetFact {
            path: "data/train.csv".into(),
            snapshot: Digest::of_bytes(b"data"),
            files: 1,
            bytes: 10,
            dataset: None,
        }],
        metrics: [("rmse".to_string(), 0.25)].into_iter().collect(),
        packages: vec![PackageFact { name: "scikit_learn".into(), version: "1.4.2+local".into(), installer: None }],
        training: TrainingFacts { command: vec!["python".into(), "train.py".into()], seed: 42, ..Default::default() },
        considerations: Considerations::default(),
        user: UserCard::default(),
    }
}

#[test]
fn the_serial_number_is_a_version_5_uuid_fixed_by_the_version() {
    let f = facts();
    let s = f.serial_number();
    assert_eq!(s, facts().serial_number());
    assert_eq!(s.len(), "urn:uuid:".len() + 36);
    assert_eq!(&s[23..24], "5");
    assert!("89ab".contains(&s[28..29]), "{s}");
    let mut other = facts();
    other.version = 4;
    assert_ne!(other.serial_number(), s);
}

#[test]
fn purls_follow_the_pypi_normalisation() {
    let p = &facts().packages[0];
    assert_eq!(cyclonedx::purl(p), "pkg:pypi/scikit-learn@1.4.2%2Blocal");
}

#[test]
fn the_check_finds_a_changed_hash_and_a_changed_metric() {
    let f = facts();
    let good = cyclonedx::bom(&f, &"00".repeat(32));
    assert_eq!(cyclonedx::check(&good, &f), Vec::<String>::new());
    let mut bad = good.clone();
    bad["metadata"]["component"]["components"][0]["hashes"][0]["content"] = "ee".repeat(32).into();
    bad["metadata"]["component"]["modelCard"]["quantitativeAnalysis"]["performanceMetrics"][0]["value"] = "0.1".into();
    let problems = cyclonedx::check(&bad, &f);
    assert!(problems.iter().any(|p| p.contains("model.pkl")), "{problems:?}");
    assert!(problems.iter().any(|p| p.contains("metrics")), "{problems:?}");
    assert_eq!(cyclonedx::card_sha256(&good), Some("00".repeat(32).as_str()));
}

#[test]
fn a_users_card_gives_considerations_and_keeps_other_sections() {
    let u = parse_user_card(
        "# Pricing\n\nPredicts prices.\n\n## Intended use\n\n- quoting\n- what-if\n  analysis\n\n## Limitations\n\nNot for rentals.\n\n## Contact\n\nteam@example.com\n",
    );
    assert_eq!(u.overview.as_deref(), Some("Predicts prices."));
    assert_eq!(u.considerations.use_cases, ["quoting", "what-if analysis"]);
    assert_eq!(u.considerations.limitations, ["Not for rentals."]);
    assert_eq!(u.sections, [("Contact".to_string(), "team@example.com".to_string())]);
    let mut f = facts();
    f.considerations = u.considerations.clone();
    f.user = u;
    let card = card::render(&f);
    assert!(card.contains("| rmse | 0.25 |"), "{card}");
    assert!(card.contains("- what-if analysis"), "{card}");
    assert!(card.contains("## Contact\n\nteam@example.com"), "{card}");
    let bom = cyclonedx::bom(&f, "x");
    assert_eq!(
        bom["metadata"]["component"]["modelCard"]["considerations"]["technicalLimitations"][0],
        "Not for rentals."
    );
}
