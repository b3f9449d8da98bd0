use std::collections::BTreeMap;

use super::*;

#[test]
fn files_lines_parse_and_bad_lines_are_counted() {
    let (files, bad) =
        parse_files("1\t2\tr\t/repo/data.csv\n3\t3\tw\t/repo/out/model.txt\nnonsense\n4\t4\tr\trelative\n");
    assert_eq!(bad, 2);
    assert_eq!(files.len(), 2);
    assert!(files[0].read && !files[0].write);
    assert!(files[1].write && !files[1].read);
}

#[test]
fn reports_merge_by_path_and_rank() {
    let json = |rank: &str| {
        format!(
            r#"{{"pid": 7, "rank": {rank}, "world_size": "2", "cwd": "/repo", "prefixes": ["/venv"],
               "seeds": [["torch.manual_seed", 42], ["numpy.random.default_rng", null]],
               "frameworks": {{"torch": {{"version": "2.15.0", "cudnn_benchmark": true}}}}, "modules": {{"torch": "/venv/lib/python3.11/site-packages/torch/__init__.py"}}}}"#
        )
    };
    let a = parse_report(json("\"0\"").as_bytes(), parse_files("1\t5\tr\t/repo/a.csv\n").0).expect("parse");
    let b = parse_report(json("\"1\"").as_bytes(), parse_files("2\t9\trw\t/repo/a.csv\n").0).expect("parse");
    let m = merge(vec![b, a]);
    assert_eq!(m.processes, 2);
    assert_eq!(m.ranks.iter().map(|r| r.0).collect::<Vec<_>>(), vec![0, 1]);
    assert_eq!(m.world_size, Some(2));
    assert_eq!(m.files.len(), 1);
    assert_eq!((m.files[0].first, m.files[0].last, m.files[0].write), (1, 9, true));
    // The same seed call in two ranks is two calls: each rank's seeds matter.
    assert_eq!(m.seeds.iter().filter(|s| s.via == "torch.manual_seed").count(), 1);
    assert!(parse_report(b"{not json", Vec::new()).is_err());
}

#[test]
fn thread_pools_are_recorded_in_one_order_whatever_the_load_order() {
    // threadpoolctl lists pools in library load order, which differs between two runs of
    // one script; the record (and so its digest and snapshots) must not.
    let report = |pools: &str| {
        let json = format!(r#"{{"pid": 1, "frameworks": {{"threadpools": {pools}}}}}"#);
        parse_report(json.as_bytes(), Vec::new()).expect("parse").frameworks.threadpools
    };
    let a = report(
        r#"[{"api": "openmp", "num_threads": 2}, {"api": "openblas", "num_threads": 2, "version": "0.3.30"}, {"api": "openblas", "num_threads": 2, "version": "0.3.31"}]"#,
    );
    let b = report(
        r#"[{"api": "openblas", "num_threads": 2, "version": "0.3.31"}, {"api": "openmp", "num_threads": 2}, {"api": "openblas", "num_threads": 2, "version": "0.3.30"}]"#,
    );
    assert_eq!(a, b);
    assert_eq!(a.iter().map(|p| p.api.as_str()).collect::<Vec<_>>(), ["openblas", "openblas", "openmp"]);
}

#[test]
fn the_lint_names_each_trap_with_its_fix() {
    let mut p = ProbeRecord::default();
    p.frameworks.torch = Some(TorchState {
        version: "2.15.0".into(),
        cuda_available: Some(true),
        deterministic_algorithms: Some(true),
        cudnn_benchmark: Some(true),
        matmul_allow_tf32: Some(false),
        initial_seed: Some(serde_json::json!(42)),
        ..Default::default()
    });
    p.seeds.push(SeedCall { via: "torch.manual_seed".into(), value: serde_json::json!(42), rank: None });
    p.seeds.push(SeedCall { via: "numpy.random.default_rng".into(), value: serde_json::Value::Null, rank: None });
    let traps = determinism_traps(&p, &BTreeMap::new());
    let text: Vec<&str> = traps.iter().map(|t| t.what.as_str()).collect();
    assert!(text.iter().any(|t| t.contains("CUBLAS_WORKSPACE_CONFIG")), "{text:?}");
    assert!(text.iter().any(|t| t.contains("cudnn.benchmark")), "{text:?}");
    assert!(text.iter().any(|t| t.contains("default_rng was called without a seed")), "{text:?}");
    assert!(!text.iter().any(|t| t.contains("TF32")), "{text:?}");
    let mut vars = BTreeMap::new();
    vars.insert("CUBLAS_WORKSPACE_CONFIG".to_string(), ":4096:8".to_string());
    assert!(!determinism_traps(&p, &vars).iter().any(|t| t.what.contains("CUBLAS")));
}

#[test]
fn events_fold_per_path_and_resolve_against_the_cwd() {
    let files = parse_events("data.csv\0/repo/./out/m.txt\0data.csv\0sub/../cfg.yaml", "rb\0w\0r+\0r", "/repo");
    let by: BTreeMap<&str, &RawFile> = files.iter().map(|f| (f.path.as_str(), f)).collect();
    assert_eq!(by.len(), 3, "{files:?}");
    let data = by["/repo/data.csv"];
    assert_eq!((data.first, data.last, data.read, data.write, data.written_first), (1, 3, true, true, false));
    assert!(by["/repo/out/m.txt"].written_first);
    assert!(by.contains_key("/repo/cfg.yaml"));
    assert!(parse_events("", "", "/repo").is_empty());
}

proptest::proptest! {
    /// Whatever the process wrote into its report files, parsing never panics and every
    /// path comes out absolute.
    #[test]
    fn report_parsers_never_panic(text in "\\PC*", bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..256)) {
        let (files, _) = parse_files(&text);
        let events = parse_events(&text, &text, "/w");
        proptest::prop_assert!(files.iter().chain(&events).all(|f| f.path.starts_with('/')));
        let _ = parse_report(&bytes, files);
        let _ = parse_report(text.as_bytes(), Vec::new());
    }
}
