//! Capture and audit, told as the user's story: real git repositories, the real binary,
//! real scikit-learn training.

mod common;

use std::process::Command;

use common::{item, status, TestContext};
use serde_json::Value;

#[test]
fn sklearn_run_in_a_clean_repo_audits_complete() {
    let t = TestContext::sklearn_project();
    let run = t.train(&["--name", "baseline"]).success();
    assert!(run.stdout().contains("rmse="), "the script's stdout passes through: {}", run.stdout());
    let last = run.stderr().lines().last().unwrap_or_default().to_string();
    assert!(last.contains("finished (exit 0)"), "last message names the run: {last}");

    let runs = t.runs();
    assert_eq!(runs.len(), 1);
    let id = runs[0]["id"].as_str().expect("id").to_string();
    assert!(last.contains(&id));

    let (report, code) = t.audit("baseline");
    assert_eq!(code, 0, "{report:#}");
    assert_eq!(report["complete"], true);
    assert_eq!(report["run"], id.as_str());
    for name in
        ["git_commit", "environment_file", "dataset_snapshot", "hyperparameters", "random_seed", "training_script"]
    {
        assert_eq!(status(&report, name), "ok", "{name}: {}", item(&report, name));
    }
    assert_eq!(status(&report, "registry_version"), "warn");
    for name in ["installed_packages", "hardware", "outputs", "objects_verified", "result"] {
        assert_eq!(status(&report, name), "ok", "{name}: {}", item(&report, name));
    }
    // Strict: the unregistered model is a warning, so strict is incomplete.
    t.repro(&["audit", "baseline", "--strict"]).expect_code(1);

    let show = t.repro(&["show", &id[..6], "--json"]).success().json();
    assert_eq!(show["seed"]["value"], 42);
    assert_eq!(show["params"]["values"]["model.n_estimators"], 50);
    assert_eq!(show["params"]["logged"]["n_train"], "4000");
    assert_eq!(show["code"]["remote"], "https://example.invalid/pricing.git");
    assert_eq!(show["code"]["branch"], "main");
    assert_eq!(show["code"]["dirty"], false);
    assert_eq!(show["script"]["path"], "train.py");
    assert_eq!(show["script"]["tracked_unchanged"], true);
    assert_eq!(show["environment"]["declared"]["path"], "requirements.txt");
    let sklearn = common::named(&show["environment"]["python"]["packages"], "scikit-learn");
    let pinned = std::fs::read_to_string(common::workspace().join("requirements-test.txt")).expect("reqs");
    assert!(pinned.contains(&format!("scikit-learn=={}", sklearn["version"].as_str().expect("v"))));
    assert_eq!(show["environment"]["variables"]["PYTHONHASHSEED"], "42");
    let cores = std::thread::available_parallelism().expect("cores").get().to_string();
    assert_eq!(show["environment"]["variables"]["OMP_NUM_THREADS"], cores.as_str());
    assert!(show["environment"]["set_by_repro"].as_array().expect("list").contains(&Value::from("OMP_NUM_THREADS")));
    assert!(show["hardware"]["usable_cores"].as_u64().expect("cores") >= 1);
    let metrics: Vec<&str> =
        show["metrics"].as_array().expect("metrics").iter().map(|m| m["key"].as_str().expect("k")).collect();
    assert!(metrics.contains(&"rmse") && metrics.contains(&"r2"), "{metrics:?}");
    assert_eq!(show["inputs"][0]["path"], "data/train.csv");
    assert_eq!(show["inputs"][0]["dataset"], "data/train.csv:1");
    assert_eq!(show["outputs"][0]["path"], "model.pkl");
    assert!(show["logs"]["stdout"].as_str().expect("stdout object").starts_with("blake3:"));
    assert!(show["lineage"].as_str().expect("lineage").starts_with("blake3:"));

    // `latest`, the name and the prefix all find the same run; human output works too.
    assert!(t.repro(&["show", "latest"]).success().stdout().contains(&id));
    assert!(t.repro(&["runs"]).success().stdout().contains("baseline"));
    assert!(t.repro(&["audit", "latest"]).success().stdout().contains("complete"));
    t.repro(&["fsck"]).success();
}

#[test]
fn dirty_tree_loose_pins_no_seed_and_untracked_script_are_each_flagged_by_name() {
    let t = TestContext::sklearn_project();
    t.write("requirements.txt", "scikit-learn>=1.0\nnumpy\njoblib==1.6.0\n");
    t.append("params.yaml", "# tweaked\n");
    t.write("helpers.py", "X = 1\n");
    std::fs::copy(t.path("train.py"), t.path("train2.py")).expect("copy");
    let py = t.python();
    let r = t
        .repro(&[
            "run",
            "--data",
            "data/train.csv",
            "--params",
            "params.yaml",
            "--output",
            "model.pkl",
            "--",
            py.to_str().expect("p"),
            "train2.py",
        ])
        .success();
    let (report, code) = t.audit("latest");
    assert_eq!(code, 0, "warnings only: still complete\n{report:#}\n{}", r.stderr());

    let git = item(&report, "git_commit");
    assert_eq!(git["status"], "warn");
    let d = git["detail"].as_str().expect("detail");
    assert!(d.contains("requirements.txt") && d.contains("params.yaml"), "changed files named: {d}");
    assert!(d.contains("helpers.py") && d.contains("train2.py"), "untracked files named: {d}");

    let env = item(&report, "environment_file");
    assert_eq!(env["status"], "warn");
    let d = env["detail"].as_str().expect("detail");
    assert!(d.contains("scikit-learn >=1.0") && d.contains("numpy (unpinned"), "{d}");
    assert!(!d.contains("joblib"), "pinned packages are not flagged: {d}");

    let seed = item(&report, "random_seed");
    assert_eq!(seed["status"], "warn");
    assert!(seed["detail"].as_str().expect("d").contains("generated, not chosen"));

    let script = item(&report, "training_script");
    assert_eq!(script["status"], "warn");
    assert!(script["detail"].as_str().expect("d").contains("train2.py is untracked"), "{script}");

    // The diff and the untracked files are stored, so the exact tree can be rebuilt.
    let show = t.repro(&["show", "latest", "--json"]).success().json();
    assert!(show["code"]["diff"].as_str().expect("diff").starts_with("blake3:"));
    let untracked: Vec<&str> =
        show["code"]["untracked"].as_array().expect("u").iter().map(|f| f["path"].as_str().expect("p")).collect();
    assert!(untracked.contains(&"helpers.py") && untracked.contains(&"train2.py"), "{untracked:?}");
    assert!(
        !untracked.iter().any(|p| p.starts_with("data/") || *p == "model.pkl"),
        "data and outputs are not code: {untracked:?}"
    );
    assert_eq!(show["seed"]["generated"], true);

    // --strict: the same run is refused before it starts.
    t.repro(&["audit", "latest", "--strict"]).expect_code(1);
}

#[test]
fn strict_run_refuses_before_starting_and_records_nothing() {
    let t = TestContext::sklearn_project();
    let py = t.python();
    let marker = t.path("ran.txt");
    let code = format!("open('{}', 'w').write('x')", marker.display());
    // No seed: a warning, which --strict counts as missing.
    let r = t
        .repro(&[
            "run",
            "--strict",
            "--data",
            "data/train.csv",
            "--params",
            "params.yaml",
            "--",
            py.to_str().expect("p"),
            "-c",
            &code,
        ])
        .expect_code(1);
    assert!(r.stderr().contains("random_seed"), "{}", r.stderr());
    assert!(r.stderr().contains("nothing was run"), "{}", r.stderr());
    assert!(!marker.exists(), "the command must not run");
    assert!(t.runs().is_empty(), "nothing recorded");
    t.repro(&["data", "ls", "--json"]).success();
    assert_eq!(t.repro(&["data", "ls", "--json"]).json(), Value::Array(vec![]), "no dataset recorded either");

    // With every ingredient in order, --strict runs.
    t.train(&["--strict"]).success();
    assert_eq!(t.runs().len(), 1);
}

#[test]
fn run_outside_git_flags_the_commit_missing_and_audit_exits_1() {
    let t = TestContext::new();
    t.repro(&["init"]).success();
    t.write("params.json", r#"{"lr": 0.1}"#);
    t.write("data.txt", "1\n");
    t.repro(&["run", "--seed", "1", "--params", "params.json", "--data", "data.txt", "--", "sh", "-c", "echo hi"])
        .success();
    let (report, code) = t.audit("latest");
    assert_eq!(code, 1);
    assert_eq!(report["complete"], false);
    assert_eq!(status(&report, "git_commit"), "missing");
    assert!(item(&report, "git_commit")["detail"].as_str().expect("d").contains("not inside a git repository"));
    assert_eq!(status(&report, "environment_file"), "missing");
    assert!(item(&report, "environment_file")["fix"].as_str().expect("fix").contains("--env"));
}

#[test]
fn exit_code_stdout_stderr_and_metrics_pass_through_and_are_stored() {
    let t = TestContext::new();
    t.git(&["init", "-q"]);
    t.repro(&["init"]).success();
    let script = r#"echo out-line; echo err-line >&2; echo "seed=$REPRO_SEED hash=$PYTHONHASHSEED"; cat "$REPRO_PARAMS";
printf '{"metric": "acc", "value": 0.5, "step": 1}\n{"metric": "acc", "value": 0.75, "step": 2}\nnot json\n{"param": "layers", "value": 3}\n' >> "$REPRO_METRICS"; exit 3"#;
    let r = t
        .repro(&["run", "--seed", "7", "--param", "lr=0.01", "--param", "model.depth=4", "--", "sh", "-c", script])
        .expect_code(3);
    assert!(r.stdout().contains("out-line"));
    assert!(r.stdout().contains("seed=7 hash=7"));
    assert!(r.stdout().contains("\"model.depth\": 4"), "REPRO_PARAMS is flat JSON: {}", r.stdout());
    assert!(r.stderr().contains("err-line"));
    assert!(r.stderr().contains("1 malformed line"), "{}", r.stderr());
    let show = t.repro(&["show", "latest", "--json"]).success().json();
    assert_eq!(show["status"], "failed");
    assert_eq!(show["exit_code"], 3);
    assert_eq!(show["params"]["values"]["lr"], 0.01);
    assert_eq!(show["params"]["logged"]["layers"], "3");
    let acc: Vec<f64> =
        show["metrics"].as_array().expect("m").iter().map(|m| m["value"].as_f64().expect("v")).collect();
    assert_eq!(acc, vec![0.5, 0.75]);
    assert!(show["notes"][0].as_str().expect("note").contains("line 3"), "{}", show["notes"]);
    assert_eq!(show["logs"]["stdout_bytes"].as_u64().expect("n") as usize, r.stdout().len());
    assert_eq!(show["script"]["kind"], "command");
    let (report, code) = t.audit("latest");
    assert_eq!(code, 1, "a failed run is not a result to reproduce");
    assert_eq!(status(&report, "result"), "missing");
}

#[test]
fn python_module_and_executable_scripts_are_identified() {
    let t = TestContext::new();
    t.write("pkg/__init__.py", "");
    t.write("pkg/train.py", "print('module ran')\n");
    t.write("train.sh", "#!/bin/sh\necho shell ran\n");
    Command::new("chmod").args(["+x", "train.sh"]).current_dir(&t.dir).status().expect("chmod");
    t.git(&["init", "-q"]);
    t.commit_all("code");
    t.repro(&["init"]).success();
    let py = t.python();
    let r = t.repro(&["run", "--seed", "1", "--", py.to_str().expect("p"), "-m", "pkg.train"]).success();
    assert!(r.stdout().contains("module ran"));
    let show = t.repro(&["show", "latest", "--json"]).success().json();
    assert_eq!(show["script"]["kind"], "python_module");
    assert_eq!(show["script"]["path"], "pkg/train.py");
    assert_eq!(show["script"]["tracked_unchanged"], true);
    assert_eq!(show["environment"]["python"]["kind"], "venv");

    t.repro(&["run", "--seed", "1", "--", "./train.sh"]).success();
    let show = t.repro(&["show", "latest", "--json"]).success().json();
    assert_eq!(show["script"]["kind"], "executable");
    assert_eq!(show["script"]["path"], "train.sh");
    let (report, _) = t.audit("latest");
    assert_eq!(status(&report, "training_script"), "ok", "{report:#}");
}

#[test]
fn conda_environment_file_is_detected_and_pins_read() {
    let t = TestContext::new();
    t.write(
        "environment.yml",
        "name: x\ndependencies:\n  - python=3.11\n  - numpy=1.26.4\n  - pip:\n    - scikit-learn==1.4.2\n",
    );
    t.write("train.py", "print('ok')\n");
    t.git(&["init", "-q"]);
    t.commit_all("code");
    t.repro(&["init"]).success();
    let py = t.python();
    t.repro(&["run", "--seed", "1", "--", py.to_str().expect("p"), "train.py"]).success();
    let (report, _) = t.audit("latest");
    // A Python series pin is enough (each run records the exact interpreter): a note, not
    // a warning — as `repro env check` judges the same file.
    let env = item(&report, "environment_file");
    assert_eq!(env["status"], "ok", "{env}");
    assert!(env["detail"].as_str().expect("d").contains("python =3.11 (a Python series pin"), "{env}");
    t.repro(&["env", "check", "environment.yml"]).success();

    t.write(
        "environment.yml",
        "name: x\ndependencies:\n  - python=3.11\n  - numpy>=1.26\n  - pip:\n    - scikit-learn==1.4.2\n",
    );
    t.commit_all("loose numpy");
    t.repro(&["run", "--seed", "1", "--", py.to_str().expect("p"), "train.py"]).success();
    let (report, _) = t.audit("latest");
    let env = item(&report, "environment_file");
    assert_eq!(env["status"], "warn", "{env}");
    assert!(env["detail"].as_str().expect("d").contains("numpy >=1.26 (loose, environment.yml:4)"), "{env}");
    t.repro(&["env", "check", "environment.yml"]).expect_code(1);
}

/// No GPU on the test machines: a stand-in `nvidia-smi` that prints what the real one
/// prints for an H100 checks the parsing; its absence is checked by every other test.
#[test]
fn gpu_model_driver_and_cuda_are_read_from_nvidia_smi() {
    let t = TestContext::new();
    t.git(&["init", "-q"]);
    t.repro(&["init"]).success();
    t.write(
        "fakebin/nvidia-smi",
        r#"#!/bin/sh
if [ "$1" = "--query-gpu=name,driver_version,memory.total" ]; then
  echo "NVIDIA H100 80GB HBM3, 550.54.15, 81559 MiB"
  exit 0
fi
cat <<'BANNER'
+-----------------------------------------------------------------------------------------+
| NVIDIA-SMI 550.54.15              Driver Version: 550.54.15      CUDA Version: 12.4     |
+-----------------------------------------------------------------------------------------+
BANNER
"#,
    );
    Command::new("chmod").args(["+x", "fakebin/nvidia-smi"]).current_dir(&t.dir).status().expect("chmod");
    let path = format!("{}:{}", t.path("fakebin").display(), std::env::var("PATH").expect("PATH"));
    let out = t.cmd().args(["run", "--seed", "1", "--", "true"]).env("PATH", path).output().expect("run");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let show = t.repro(&["show", "latest", "--json"]).success().json();
    let gpu = &show["hardware"]["gpus"][0];
    assert_eq!(gpu["model"], "NVIDIA H100 80GB HBM3");
    assert_eq!(gpu["driver"], "550.54.15");
    assert_eq!(gpu["cuda"], "12.4");
    assert_eq!(gpu["memory"], "81559 MiB");
    assert!(t.repro(&["audit", "latest"]).stdout().contains("NVIDIA H100 80GB HBM3"));
}

#[test]
fn an_output_left_from_before_the_run_is_flagged_and_a_missing_one_is_missing() {
    let t = TestContext::new();
    t.git(&["init", "-q"]);
    t.repro(&["init"]).success();
    t.write("model.pkl", "stale model from yesterday");
    let r = t.repro(&["run", "--seed", "1", "--output", "model.pkl", "--", "true"]).success();
    assert!(r.stderr().contains("model.pkl was not rewritten by the run"), "{}", r.stderr());
    let (report, _) = t.audit("latest");
    assert_eq!(status(&report, "outputs"), "warn");
    assert!(item(&report, "outputs")["detail"].as_str().expect("d").contains("model.pkl"));

    t.repro(&["run", "--seed", "1", "--output", "model.pkl", "--", "sh", "-c", "echo fresh > model.pkl"]).success();
    let (report, _) = t.audit("latest");
    assert_eq!(status(&report, "outputs"), "ok", "{report:#}");

    t.repro(&["run", "--seed", "1", "--output", "never.bin", "--", "true"]).success();
    let (report, code) = t.audit("latest");
    assert_eq!(code, 1);
    assert_eq!(status(&report, "outputs"), "missing");
    assert!(item(&report, "outputs")["detail"].as_str().expect("d").contains("never.bin"));
}
