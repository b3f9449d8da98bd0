//! Tests of the run diff.

use super::packages::classify_versions;
use super::*;
use crate::record::sample::{package, record};
use crate::record::*;
use proptest::prelude::*;

fn entry(path: &str, content: &[u8]) -> FileEntry {
    FileEntry { path: path.into(), size: content.len() as u64, mode: 0o644, digest: Digest::of_bytes(content) }
}

/// A record with every ingredient, and the manifests its snapshots name.
#[derive(Debug)]
struct Fixture {
    record: RunRecord,
    manifests: BTreeMap<Digest, Manifest>,
}

impl Fixture {
    fn new() -> Self {
        let mut fixture = Fixture { record: record(), manifests: BTreeMap::new() };
        fixture.set_input(&[("train.csv", b"x,y\n1,2\n")], "data/train.csv:1");
        fixture.set_output(b"model v1");
        fixture
    }

    fn set_input(&mut self, files: &[(&str, &[u8])], dataset: &str) {
        let manifest = Manifest::new(SnapshotKind::File, files.iter().map(|(p, c)| entry(p, c)).collect());
        let input = &mut self.record.inputs[0];
        input.snapshot = manifest.digest();
        input.dataset = Some(dataset.into());
        self.manifests.insert(manifest.digest(), manifest);
    }

    fn set_output(&mut self, content: &[u8]) {
        let manifest = Manifest::new(SnapshotKind::File, vec![entry("model.pkl", content)]);
        self.record.outputs[0].snapshot = Some(manifest.digest());
        self.manifests.insert(manifest.digest(), manifest);
    }
}

fn metrics(acc: f64) -> BTreeMap<String, f64> {
    BTreeMap::from([("acc".to_string(), acc)])
}

fn diff(a: &Fixture, b: &Fixture) -> RunDiff {
    diff_with_metrics(a, b, &metrics(0.9), &metrics(0.9))
}

fn diff_with_metrics(
    a: &Fixture,
    b: &Fixture,
    metrics_a: &BTreeMap<String, f64>,
    metrics_b: &BTreeMap<String, f64>,
) -> RunDiff {
    let mut manifests = a.manifests.clone();
    manifests.extend(b.manifests.clone());
    diff_runs(&DiffInput { a: &a.record, b: &b.record, metrics_a, metrics_b, manifests: &manifests })
}

fn kinds(d: &RunDiff) -> Vec<CauseKind> {
    d.causes.iter().map(|c| c.kind).collect()
}

/// A second run of the fixture: another id, time, host and user, nothing else.
fn rerun() -> Fixture {
    let mut b = Fixture::new();
    b.record.id = RunId::from_bytes([2; 16]);
    b.record.name = Some("second".into());
    b.record.started_at = "2026-02-01T00:00:00.000Z".into();
    b.record.ended_at = Some("2026-02-01T00:00:09.000Z".into());
    b.record.host = "other".into();
    b.record.user = "v".into();
    b.record.logs.stdout = Some(Digest::of_bytes(b"log"));
    b
}

#[test]
fn identical_ingredients_are_all_the_same() {
    let (a, b) = (Fixture::new(), rerun());
    let d = diff(&a, &b);
    assert_eq!(d.sections.iter().map(|s| s.name.as_ref()).collect::<Vec<_>>(), SECTIONS);
    for s in &d.sections {
        assert!(s.same && s.changes.is_empty(), "{s:?}");
    }
    assert!(!d.outputs_differ);
    assert!(d.causes.is_empty(), "{:?}", d.causes);
    assert!(d.captured_field_differences().is_empty());
    assert_eq!((d.a, d.b), (a.record.id.clone(), b.record.id.clone()));
}

#[test]
fn an_unpinned_package_ranks_before_a_pinned_one() {
    let a = Fixture::new();
    let mut b = rerun();
    b.set_output(b"model v2");
    let python = b.record.environment.python.as_mut().expect("python");
    python.packages =
        vec![package("numpy", "2.0.0"), package("scikit-learn", "1.2.0"), package("threadpoolctl", "3.5.0")];
    let d = diff(&a, &b);
    assert!(d.outputs_differ);
    assert_eq!(kinds(&d), [CauseKind::UnpinnedPackageChanged, CauseKind::PackageChanged]);
    assert_eq!(
        d.causes[0].summary,
        "scikit-learn 1.4.2 → 1.2.0: not pinned in requirements.txt ('scikit-learn>=1.0'), so it resolved to \
         another version"
    );
    assert_eq!(d.causes[1].summary, "package numpy 1.26.4 → 2.0.0 (major)");
    assert!(d.causes[1].evidence.iter().any(|e| e.contains("'numpy==1.26.4' at requirements.txt:1")), "{d:?}");
    let packages = d.section("packages").expect("packages");
    assert!(!packages.same);
    assert_eq!(packages.changes[1].note.as_deref(), Some("minor"));
    assert_eq!(
        d.captured_field_differences(),
        ["packages.numpy: 1.26.4 → 2.0.0 (major)", "packages.scikit-learn: 1.4.2 → 1.2.0 (minor)"]
    );
}

#[test]
fn an_undeclared_package_counts_as_unpinned_when_a_file_is_declared() {
    let mut a = Fixture::new();
    let declared = a.record.environment.declared.as_mut().expect("declared");
    declared.requirements.retain(|r| r.name != "threadpoolctl");
    let mut b = rerun();
    b.record.environment.declared = a.record.environment.declared.clone();
    b.record.environment.python.as_mut().expect("python").packages[2].version = "3.8.0".into();
    let d = diff(&a, &b);
    assert_eq!(kinds(&d), [CauseKind::UnpinnedPackageChanged]);
    assert!(d.causes[0].summary.starts_with("threadpoolctl 3.5.0 → 3.8.0: not declared in requirements.txt"));
    // Without any declared file nothing says it was free to move: a plain package change.
    a.record.environment.declared = None;
    b.record.environment.declared = None;
    let d = diff(&a, &b);
    assert_eq!(kinds(&d), [CauseKind::PackageChanged]);
    assert_eq!(d.causes[0].summary, "package threadpoolctl 3.5.0 → 3.8.0 (minor)");
}

#[test]
fn changed_data_at_the_same_path_comes_first_and_names_the_file() {
    let a = Fixture::new();
    let mut b = rerun();
    b.set_input(&[("train.csv", b"x,y\n1,3\n")], "data/train.csv:2");
    b.set_output(b"model v2");
    b.record.environment.variables.insert("OMP_NUM_THREADS".into(), "4".into());
    let d = diff(&a, &b);
    assert_eq!(kinds(&d), [CauseKind::DataChanged, CauseKind::ThreadsChanged]);
    assert_eq!(
        d.causes[0].summary,
        "data/train.csv: same path, different content (dataset data/train.csv:1 → data/train.csv:2; 1 file \
         changed: train.csv)"
    );
    assert_eq!(d.causes[0].evidence.len(), 1);
    assert!(d.causes[0].evidence[0].starts_with("data/train.csv: file blake3:"), "{:?}", d.causes[0].evidence);
    let data = d.section("data").expect("data");
    assert_eq!(data.changes[0].note.as_deref(), Some("same path, different content"));
    let outputs = d.section("outputs").expect("outputs");
    assert_eq!(outputs.changes[0].note.as_deref(), Some("1 file changed: model.pkl"));
}

#[test]
fn a_manifest_that_could_not_be_read_is_a_note_not_a_failure() {
    let a = Fixture::new();
    let mut b = rerun();
    b.set_input(&[("train.csv", b"other")], "data/train.csv:2");
    let mut manifests = a.manifests.clone();
    manifests.remove(&b.record.inputs[0].snapshot);
    let (ma, mb) = (metrics(1.0), metrics(1.0));
    let d = diff_runs(&DiffInput { a: &a.record, b: &b.record, metrics_a: &ma, metrics_b: &mb, manifests: &manifests });
    assert_eq!(kinds(&d), [CauseKind::DataChanged]);
    assert!(d.causes[0].summary.contains("per-file detail unavailable"), "{}", d.causes[0].summary);
    let data = d.section("data").expect("data");
    assert_eq!(data.changes.len(), 1);
    assert!(data.changes[0].note.as_deref().is_some_and(|n| n.contains("of run b could not be read")));
}

#[test]
fn inputs_in_one_run_only_and_folder_files() {
    let mut a = Fixture::new();
    let mut b = rerun();
    let folder =
        |files: &[(&str, &[u8])]| Manifest::new(SnapshotKind::Dir, files.iter().map(|(p, c)| entry(p, c)).collect());
    let (ma, mb) = (folder(&[("a.csv", b"1"), ("b.csv", b"2")]), folder(&[("b.csv", b"3"), ("c.csv", b"4")]));
    for (fixture, m) in [(&mut a, ma), (&mut b, mb)] {
        let mut input = fixture.record.inputs[0].clone();
        input.path = "data/images".into();
        input.snapshot = m.digest();
        input.dataset = None;
        fixture.record.inputs.push(input);
        fixture.manifests.insert(m.digest(), m);
    }
    b.record.inputs.remove(0);
    let d = diff(&a, &b);
    assert_eq!(kinds(&d), [CauseKind::DataChanged, CauseKind::InputsChanged]);
    assert!(
        d.causes[0].summary.ends_with("1 file changed: b.csv; 1 file added: c.csv; 1 file removed: a.csv)"),
        "{}",
        d.causes[0].summary
    );
    assert!(d.causes[1].summary.starts_with("input data/train.csv only in run a"));
    let fields: Vec<&str> = d.section("data").expect("data").changes.iter().map(|c| c.field.as_str()).collect();
    assert_eq!(
        fields,
        ["data/images", "data/images/a.csv", "data/images/b.csv", "data/images/c.csv", "data/train.csv"]
    );
}

#[test]
fn same_ingredients_with_other_outputs_is_uncontrolled_randomness() {
    let a = Fixture::new();
    let mut b = rerun();
    b.set_output(b"model v2");
    let d = diff(&a, &b);
    assert!(d.outputs_differ);
    assert_eq!(kinds(&d), [CauseKind::UncontrolledRandomness]);
    assert!(d.causes[0].summary.contains("REPRO_SEED"));
    assert!(d.causes[0].evidence[0].starts_with("output model.pkl: snapshot blake3:"), "{:?}", d.causes[0].evidence);
}

#[test]
fn a_thread_count_ranks_before_uncontrolled_randomness() {
    let a = Fixture::new();
    let mut b = rerun();
    b.set_output(b"model v2");
    b.record.environment.variables.insert("OMP_NUM_THREADS".into(), "8".into());
    b.record.environment.set_by_repro.clear();
    let d = diff(&a, &b);
    assert_eq!(kinds(&d), [CauseKind::ThreadsChanged, CauseKind::UncontrolledRandomness]);
    assert_eq!(d.causes[0].summary, "thread counts differ: OMP_NUM_THREADS 2 → 8");
    // The same difference with the same outputs is still reported, without randomness.
    let mut c = rerun();
    c.record.hardware.usable_cores = 8;
    c.record.environment.variables.insert("OMP_NUM_THREADS".into(), "8".into());
    let d = diff(&a, &c);
    assert!(!d.outputs_differ);
    assert_eq!(kinds(&d), [CauseKind::ThreadsChanged]);
    assert_eq!(d.causes[0].summary, "thread counts differ: usable cores 2 → 8; OMP_NUM_THREADS 2 → 8");
    assert!(d.captured_field_differences().contains(&"hardware.usable_cores: 2 → 8".to_string()));
}

#[test]
fn another_location_alone_is_no_difference() {
    let a = Fixture::new();
    let mut b = rerun();
    let python = b.record.environment.python.as_mut().expect("python");
    python.executable = "/w/bin/python".into();
    python.prefix = "/w".into();
    python.site_dirs = vec!["/w/lib/python3.11/site-packages".into()];
    python.found_by = "VIRTUAL_ENV".into();
    b.record.environment.variables.insert("VIRTUAL_ENV".into(), "/w".into());
    b.record.script.argv[0] = "/w/bin/python".into();
    b.record.code.repo_root = Some("/home/v/repo".into());
    b.record.code.branch = Some("release".into());
    let d = diff(&a, &b);
    assert!(!d.outputs_differ);
    assert!(d.causes.is_empty(), "{:?}", d.causes);
    assert!(d.sections.iter().all(|s| s.same), "{:?}", d.sections);
    let located: Vec<&str> =
        d.sections.iter().flat_map(|s| &s.changes).filter(|c| c.is_location_only()).map(|c| c.field.as_str()).collect();
    assert_eq!(located, ["repo_root", "branch", "argv", "python.executable", "python.prefix", "VIRTUAL_ENV"]);
    assert!(d.captured_field_differences().is_empty());
}

#[test]
fn a_metric_alone_makes_the_outputs_differ() {
    let (a, b) = (Fixture::new(), rerun());
    let d = diff_with_metrics(&a, &b, &metrics(0.9), &metrics(0.9000000000000001));
    assert!(d.outputs_differ);
    assert_eq!(kinds(&d), [CauseKind::UncontrolledRandomness]);
    let change = &d.section("metrics").expect("metrics").changes[0];
    assert_eq!((change.a.as_deref(), change.b.as_deref()), (Some("0.9"), Some("0.9000000000000001")));
    let d = diff_with_metrics(&a, &b, &metrics(f64::NAN), &metrics(f64::NAN));
    assert!(!d.outputs_differ, "NaN twice is the same result");
    let d = diff_with_metrics(&a, &b, &metrics(1.0), &BTreeMap::new());
    assert!(d.outputs_differ, "a metric logged by one run only");
}

#[test]
fn a_failed_rerun_differs_in_its_result() {
    let a = Fixture::new();
    let mut b = rerun();
    b.record.status = RunStatus::Failed;
    b.record.exit_code = Some(1);
    let d = diff(&a, &b);
    assert!(d.outputs_differ);
    assert!(!d.section("result").expect("result").same);
    assert_eq!(d.causes[0].evidence, ["result status: finished → failed", "result exit_code: 0 → 1"]);
}

#[test]
fn code_params_and_seed_are_causes() {
    let a = Fixture::new();
    let mut b = rerun();
    b.set_output(b"model v2");
    b.record.code.commit = Some("fedcba9876543210fedc".into());
    b.record.script.digest = Some(Digest::of_bytes(b"print(2)"));
    b.record.script.argv.push("--fast".into());
    b.record.params.values.insert("lr".into(), serde_json::json!(0.2));
    b.record.params.logged.insert("depth".into(), "3".into());
    b.record.seed = Seed { value: 7, generated: true };
    b.record.environment.variables.insert("PYTHONHASHSEED".into(), "7".into());
    let d = diff(&a, &b);
    assert_eq!(
        kinds(&d),
        [
            CauseKind::CodeChanged,
            CauseKind::ParamsChanged,
            CauseKind::ParamsChanged,
            CauseKind::SeedChanged,
            CauseKind::VariablesChanged
        ]
    );
    assert_eq!(d.causes[0].summary, "code changed: commit 0123456789ab → fedcba987654 (and 2 more differences)");
    assert_eq!(d.causes[0].evidence[1], "command line python train.py → python train.py --fast");
    assert_eq!(d.causes[1].summary, "logged param depth: unset → 3");
    assert_eq!(d.causes[2].summary, "param lr: 0.1 → 0.2");
    assert_eq!(d.causes[3].summary, "seed 42 → 7");
    assert_eq!(d.causes[3].evidence, ["generated by repro in run b, not given with --seed"]);
    assert_eq!(d.causes[4].summary, "variable PYTHONHASHSEED 42 → 7");
    // Only whether repro generated the seed differs: not a difference.
    let mut c = rerun();
    c.record.seed.generated = true;
    assert!(diff(&a, &c).causes.is_empty());
}

#[test]
fn python_declared_file_and_hardware() {
    let a = Fixture::new();
    let mut b = rerun();
    b.record.environment.python.as_mut().expect("python").version = Some("3.12.1".into());
    let declared = b.record.environment.declared.as_mut().expect("declared");
    declared.digest = Digest::of_bytes(b"other");
    declared.requirements[1].spec = ">=1.3".into();
    b.record.hardware.cpu_flags = vec!["avx2".into(), "avx512f".into()];
    b.record.hardware.gpus = vec![Gpu { model: "H100".into(), driver: Some("550".into()), cuda: None, memory: None }];
    b.record.environment.os.libc = Some("glibc 2.39".into());
    let d = diff(&a, &b);
    assert_eq!(
        kinds(&d),
        [
            CauseKind::PythonChanged,
            CauseKind::DeclaredEnvironmentChanged,
            CauseKind::HardwareChanged,
            CauseKind::HardwareChanged,
            CauseKind::HardwareChanged
        ]
    );
    assert_eq!(d.causes[0].summary, "Python 3.11.7 → 3.12.1");
    assert_eq!(
        d.causes[1].summary,
        "declared environment requirements.txt changed: scikit-learn>=1.0 → scikit-learn>=1.3"
    );
    let hardware: Vec<&str> = d.causes[2..].iter().map(|c| c.summary.as_str()).collect();
    assert_eq!(
        hardware,
        [
            "CPU flags differ: fma only in run a; avx512f only in run b",
            "GPUs differ: no GPU → H100 (driver 550)",
            "platform differs: os.libc glibc 2.36 → glibc 2.39"
        ]
    );
    let captured = d.captured_field_differences();
    assert!(captured.contains(&"hardware.cpu_flags.fma: present → absent".to_string()), "{captured:?}");
    assert!(captured.contains(&"environment.python.version: 3.11.7 → 3.12.1".to_string()), "{captured:?}");
    // The declared change that the installed set followed is told by the package cause alone.
    b.record.environment.python.as_mut().expect("python").version = Some("3.11.7".into());
    b.record.environment.python.as_mut().expect("python").packages[1].version = "1.5.0".into();
    b.record.hardware = a.record.hardware.clone();
    b.record.environment.os = a.record.environment.os.clone();
    assert_eq!(kinds(&diff(&a, &b)), [CauseKind::UnpinnedPackageChanged]);
}

#[test]
fn an_interpreter_found_in_one_run_only() {
    let a = Fixture::new();
    let mut b = rerun();
    b.record.environment.python = None;
    let d = diff(&a, &b);
    assert_eq!(kinds(&d), [CauseKind::PythonChanged]);
    assert_eq!(d.causes[0].summary, "Python 3.11.7 (venv at /v) → no Python found");
    let packages = d.section("packages").expect("packages");
    assert_eq!(packages.changes, [Change::new("installed", Some("3 packages".into()), None)]);
}

#[test]
fn every_string_is_one_line() {
    let a = Fixture::new();
    let mut b = rerun();
    b.record.environment.variables.insert("LANG".into(), "C\nUTF-8".into());
    b.record.script.argv.push("a b\nc".into());
    let d = diff(&a, &b);
    fn strings(v: &serde_json::Value, out: &mut Vec<String>) {
        match v {
            serde_json::Value::String(s) => out.push(s.clone()),
            serde_json::Value::Array(items) => items.iter().for_each(|i| strings(i, out)),
            serde_json::Value::Object(map) => map.values().for_each(|i| strings(i, out)),
            _ => {}
        }
    }
    let mut all = Vec::new();
    strings(&serde_json::to_value(&d).expect("serializes"), &mut all);
    assert!(all.len() > 10 && all.iter().all(|s| !s.chars().any(char::is_control)), "{all:?}");
    assert!(d.causes.iter().any(|c| c.summary == "variable LANG unset → C\\nUTF-8"), "{:?}", d.causes);
}

#[test]
fn package_classification() {
    let expected = [
        package("numpy", "1.26.4"),
        package("Scikit_Learn", "1.4.2"),
        package("scipy", "1.11.0"),
        package("torch", "2.1.0"),
        package("rich", "13.0"),
        package("pip", "24.0"),
        InstalledPackage { build: Some("py311_0".into()), ..package("mkl", "2023.1") },
        InstalledPackage { url: Some("file:///w/a.whl".into()), ..package("mylib", "0.1") },
        package("tzdata", "2024a"),
        package("pyyaml", "6.0"),
    ];
    let actual = [
        package("numpy", "2.0.0"),
        package("scikit-learn", "1.2.0"),
        package("scipy", "1.11.4"),
        package("torch", "2.1.0+cu121"),
        package("PIP", "23.0"),
        InstalledPackage { build: Some("py311_1".into()), ..package("mkl", "2023.1") },
        package("mylib", "0.1"),
        package("tzdata", "2024b"),
        package("PyYAML", "6.0"),
        package("wheel", "0.42"),
    ];
    let changes = compare_packages(&expected, &actual, &INSTALLER_TOOLING);
    let got: Vec<(&str, PackageChangeKind)> = changes.iter().map(|c| (c.name.as_str(), c.kind)).collect();
    use PackageChangeKind::*;
    assert_eq!(
        got,
        [
            ("mkl", Build),
            ("mylib", Source),
            ("numpy", Major),
            ("rich", Missing),
            ("Scikit_Learn", Minor),
            ("scipy", Patch),
            ("torch", Other),
            ("tzdata", Other),
        ]
    );
    assert_eq!(changes[0].expected.as_deref(), Some("2023.1=py311_0"));
    assert_eq!(changes[0].actual.as_deref(), Some("2023.1=py311_1"));
    assert_eq!(changes[1].describe(), "mylib 0.1 @ file:///w/a.whl → 0.1 (source)");
    assert_eq!(changes[3].describe(), "rich 13.0 missing");
    assert_eq!(changes[4].describe(), "Scikit_Learn 1.4.2 → 1.2.0 (minor)");
    let extra = compare_packages(&[], &[package("rich", "13.0")], &[]);
    assert_eq!(extra[0].describe(), "rich 13.0 extra");
    assert_eq!(
        compare_packages(&expected, &actual, &[]).iter().filter(|c| c.name.eq_ignore_ascii_case("pip")).count(),
        1
    );
    assert!(compare_packages(&expected, &expected, &[]).is_empty());
}

#[test]
fn version_classes() {
    use PackageChangeKind::*;
    for (x, y, kind) in [
        ("1.0", "2.0", Major),
        ("v1.2", "1.3", Minor),
        ("1.2.3", "1.2.4", Patch),
        ("1.2.3.4", "1.2.3.5", Patch),
        ("1.0", "1.0.post1", Other),
        ("1.0", "1.0.0", Other),
        ("1.0rc1", "1.0", Other),
        ("1.0rc1", "1.1rc1", Minor),
        ("2.0rc1", "1.0", Major),
        ("1.01", "1.1", Other),
        ("abc", "def", Other),
        ("1.0", "dev", Other),
        ("99999999999999999999999.1", "99999999999999999999998.1", Major),
    ] {
        assert_eq!(classify_versions(x, y), kind, "{x} vs {y}");
        assert_eq!(classify_versions(y, x), kind, "{y} vs {x}");
    }
}

#[test]
fn names_normalize_as_pep_503_says() {
    assert_eq!(normalize_package_name("Scikit_Learn"), "scikit-learn");
    assert_eq!(normalize_package_name("zope.interface"), "zope-interface");
    assert_eq!(normalize_package_name("A-_.b"), "a-b");
}

prop_compose! {
    fn variant()(
        seed in 0u64..3,
        lr in 0u8..3,
        threads in 1u8..3,
        sklearn in 0u8..3,
        data in 0u8..3,
        output in 0u8..3,
        cores in 1u32..3,
        flag in any::<bool>(),
    ) -> Fixture {
        let mut f = Fixture::new();
        f.record.seed.value = seed;
        f.record.params.values.insert("lr".into(), serde_json::json!(lr));
        f.record.environment.variables.insert("OMP_NUM_THREADS".into(), threads.to_string());
        f.record.environment.python.as_mut().expect("python").packages[1].version = format!("1.{sklearn}.0");
        f.set_input(&[("train.csv", &[data])], &format!("data/train.csv:{data}"));
        f.set_output(&[output]);
        f.record.hardware.usable_cores = cores;
        if flag {
            f.record.hardware.cpu_flags.push("avx512f".into());
        }
        f
    }
}

proptest! {
    #[test]
    fn a_run_never_differs_from_itself(
        x in variant(),
        m in prop::collection::btree_map("[a-z]{1,4}", any::<f64>(), 0..4),
    ) {
        let d = diff_with_metrics(&x, &x, &m, &m);
        prop_assert!(d.causes.is_empty(), "{:?}", d.causes);
        prop_assert!(!d.outputs_differ);
        prop_assert!(d.sections.iter().all(|s| s.same && s.changes.is_empty()));
    }

    #[test]
    fn swapping_the_runs_gives_the_same_cause_kinds(
        x in variant(),
        y in variant(),
        mx in prop::collection::btree_map("[ab]", 0u8..2, 0..3),
        my in prop::collection::btree_map("[ab]", 0u8..2, 0..3),
    ) {
        let to_f64 = |m: &BTreeMap<String, u8>| m.iter().map(|(k, v)| (k.clone(), f64::from(*v))).collect();
        let (mx, my): (BTreeMap<String, f64>, BTreeMap<String, f64>) = (to_f64(&mx), to_f64(&my));
        let forward = diff_with_metrics(&x, &y, &mx, &my);
        let backward = diff_with_metrics(&y, &x, &my, &mx);
        prop_assert_eq!(kinds(&forward), kinds(&backward));
        prop_assert_eq!(forward.outputs_differ, backward.outputs_differ);
    }
}

/// A notebook run as a fixture: its code cells `code`, the whole file `file`.
fn notebook(mut f: Fixture, code: &[u8], file: &[u8]) -> Fixture {
    let s = &mut f.record.script;
    s.kind = ScriptKind::Notebook;
    s.argv = vec!["nb.ipynb".into()];
    s.path = Some("nb.ipynb".into());
    s.digest = Some(Digest::of_bytes(code));
    s.file_digest = Some(Digest::of_bytes(file));
    s.launcher = Some("nbclient".into());
    f
}

#[test]
fn a_resaved_notebook_is_not_a_code_change() {
    let a = notebook(Fixture::new(), b"# %%\nx = 1\n", b"{outputs: 1}");
    let mut b = notebook(rerun(), b"# %%\nx = 1\n", b"{outputs: 2}");
    // Saved again with other outputs: the tree is dirty with the notebook's own changes.
    b.record.code.dirty = true;
    b.record.code.diff = Some(Digest::of_bytes(b"diff of nb.ipynb"));
    b.record.code.diff_files = vec!["nb.ipynb".into()];
    b.record.script.tracked_unchanged = Some(false);
    let d = diff(&a, &b);
    assert!(!kinds(&d).contains(&CauseKind::CodeChanged), "{:?}", d.causes);
    let script = d.section("script").expect("script");
    assert!(script.changes.iter().any(|c| c.field == "file_digest" && c.note.is_some()), "{script:?}");

    // Another file changed too: that is a code change.
    b.record.script.diff_elsewhere = Some(Digest::of_bytes(b"diff of train.py"));
    assert!(kinds(&diff(&a, &b)).contains(&CauseKind::CodeChanged));

    // The code cells changed: a code change, named as such.
    let c = notebook(rerun(), b"# %%\nx = 2\n", b"{outputs: 1}");
    let d = diff(&a, &c);
    assert_eq!(kinds(&d).first(), Some(&CauseKind::CodeChanged));
    assert!(d.causes[0].summary.contains("nb.ipynb code cells differ"), "{}", d.causes[0].summary);
}
