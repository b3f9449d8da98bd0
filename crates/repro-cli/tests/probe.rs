//! The in-process probe (issue 16) with real libraries in real processes: LightGBM reading
//! a config and a data file nobody declared, PyTorch hard-coding its seed and turning on
//! cudnn.benchmark, a replay that fails for the file it could not open, torchrun's ranks.

mod common;

use common::*;

/// A LightGBM project as a new user writes it: the script reads `config.yaml` (seed and
/// num_leaves in it) and `data/train.csv` (ignored by git), never REPRO_PARAMS.
fn lightgbm_project() -> TestContext {
    let t = TestContext::new();
    t.git(&["init", "-q", "-b", "main"]);
    t.write(".gitignore", "data/\nout/\n");
    t.write("requirements.txt", "lightgbm==4.7.0\nnumpy==2.4.6\npyyaml==6.0.3\n");
    t.write("config.yaml", "seed: 7\nmodel:\n  num_leaves: 31\n");
    t.write(
        "train.py",
        r#"import os
import numpy as np
import yaml
import lightgbm as lgb

cfg = yaml.safe_load(open("config.yaml"))
np.random.seed(cfg["seed"])
data = np.loadtxt("data/train.csv", delimiter=",")
X, y = data[:, :-1], data[:, -1]
booster = lgb.train(
    {"objective": "regression", "num_leaves": cfg["model"]["num_leaves"], "seed": cfg["seed"],
     "deterministic": True, "verbose": -1, "num_threads": 1},
    lgb.Dataset(X, y), num_boost_round=5,
)
os.makedirs("out", exist_ok=True)
booster.save_model("out/model.txt")
"#,
    );
    std::fs::create_dir_all(t.path("data")).expect("mkdir");
    let rows: String =
        (0..200).map(|i| format!("{},{},{}\n", i % 17, (i * 7) % 13, (i % 17) as f64 * 2.0 + 1.0)).collect();
    t.write("data/train.csv", &rows);
    t.commit_all("lightgbm project");
    t.repro(&["init"]).success();
    t
}

#[test]
fn lightgbm_traps_are_named_seed_param_and_undeclared_input() {
    let t = lightgbm_project();
    let run = t
        .in_frameworks_venv(&[
            "run",
            "--seed",
            "42",
            "--param",
            "model.num_leaves=15",
            "--output",
            "out",
            "--",
            "python",
            "train.py",
        ])
        .success();
    let id = id_of(&run);
    let (report, _) = t.audit(&id);
    // The script seeded numpy with the config's 7, not the recorded 42.
    assert_eq!(status(&report, "random_seed"), "missing", "{report}");
    let seed = item(&report, "random_seed")["detail"].as_str().unwrap_or_default();
    assert!(seed.contains("numpy.random.seed 7") && seed.contains("recorded 42"), "{seed}");
    // The override was never read: the script opened config.yaml, not REPRO_PARAMS.
    assert_eq!(status(&report, "hyperparameters"), "warn", "{report}");
    let params = item(&report, "hyperparameters")["detail"].as_str().unwrap_or_default();
    assert!(params.contains("model.num_leaves") && params.contains("never read REPRO_PARAMS"), "{params}");
    // data/train.csv was read, is not in git, and nobody declared it.
    assert_eq!(status(&report, "undeclared_inputs"), "missing", "{report}");
    let undeclared = item(&report, "undeclared_inputs");
    assert!(undeclared["detail"].as_str().unwrap_or_default().contains("data/train.csv"), "{undeclared}");
    assert!(undeclared["fix"].as_str().unwrap_or_default().contains("--data data/train.csv"), "{undeclared}");

    let rec = t.show_json(&id);
    let probe = &rec["probe"];
    assert_eq!(probe["status"], "ran");
    let used: Vec<&str> =
        probe["packages_used"].as_array().expect("used").iter().filter_map(|p| p["name"].as_str()).collect();
    assert!(used.contains(&"lightgbm") && used.contains(&"numpy"), "{used:?}");
    // LightGBM imports scikit-learn, which imports threadpoolctl: what the process used.
    assert!(used.contains(&"scikit-learn"), "{used:?}");
    let reads: Vec<&str> =
        probe["reads"].as_array().expect("reads").iter().filter_map(|r| r["path"].as_str()).collect();
    assert!(reads.contains(&"config.yaml") && reads.contains(&"data/train.csv"), "{reads:?}");
    // config.yaml is tracked by git: read, but not an undeclared input.
    let undeclared: Vec<&str> =
        probe["undeclared_inputs"].as_array().expect("list").iter().filter_map(|u| u["path"].as_str()).collect();
    assert_eq!(undeclared, vec!["data/train.csv"]);
    assert_eq!(rec["environment"]["variables"]["CUBLAS_WORKSPACE_CONFIG"], ":4096:8");

    // A script that reads REPRO_PARAMS gets the override: no warning.
    t.write("reads_params.py", "import json, os\nprint(json.load(open(os.environ['REPRO_PARAMS'])))\n");
    let ok = t
        .in_frameworks_venv(&[
            "run",
            "--seed",
            "1",
            "--param",
            "model.num_leaves=15",
            "--",
            "python",
            "reads_params.py",
        ])
        .success();
    let rec = t.show_json(&id_of(&ok));
    assert_eq!(rec["probe"]["params"]["repro_params_read"], true, "{}", rec["probe"]);
    let (report, _) = t.audit(&id_of(&ok));
    assert_eq!(status(&report, "hyperparameters"), "ok", "{report}");

    // --auto-data snapshots what the script read; the seed given is the one it uses.
    let auto = t
        .in_frameworks_venv(&["run", "--seed", "7", "--auto-data", "--output", "out", "--", "python", "train.py"])
        .success();
    let (report, _) = t.audit(&id_of(&auto));
    assert_eq!(status(&report, "undeclared_inputs"), "ok", "{report}");
    assert_eq!(status(&report, "random_seed"), "ok", "{report}");
    assert_eq!(status(&report, "dataset_snapshot"), "ok", "{report}");
    let rec = t.show_json(&id_of(&auto));
    assert_eq!(rec["inputs"][0]["path"], "data/train.csv", "{}", rec["inputs"]);
}

#[test]
fn a_replay_that_fails_for_an_undeclared_file_says_so_before_randomness() {
    let t = lightgbm_project();
    let run = t.in_frameworks_venv(&["run", "--seed", "7", "--output", "out", "--", "python", "train.py"]).success();
    let id = id_of(&run);
    // The replay rebuilds the tree from git: data/ (ignored, undeclared) is not there.
    let replay = t.in_frameworks_venv(&["replay", &id]);
    let report = replay.json();
    assert_eq!(report["verdict"], "differs", "{report}");
    let first = report["reasons"][0].as_str().unwrap_or_default();
    assert!(first.contains("FileNotFoundError") && first.contains("data/train.csv"), "{first}");
    let diff = t.repro(&["diff", &id, report["replay"].as_str().expect("replay id"), "--json"]).json();
    let causes = diff["causes"].as_array().expect("causes");
    assert_eq!(causes[0]["kind"], "command_failed", "{diff}");
    assert!(causes[0]["summary"].as_str().unwrap_or_default().contains("--data data/train.csv"), "{diff}");
    assert!(!causes.iter().any(|c| c["kind"] == "uncontrolled_randomness"), "{diff}");
}

const TORCH_SCRIPT: &str = r#"import os, sys
import torch
torch.manual_seed(123)
torch.use_deterministic_algorithms(True)
torch.backends.cudnn.benchmark = sys.argv[1] == "fast"
model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 1))
opt = torch.optim.SGD(model.parameters(), lr=0.1)
x, y = torch.randn(64, 4), torch.randn(64, 1)
for _ in range(3):
    opt.zero_grad()
    loss = torch.nn.functional.mse_loss(model(x), y)
    loss.backward()
    opt.step()
os.makedirs("out", exist_ok=True)
torch.save(model.state_dict(), "out/model.pt")
"#;

#[test]
fn pytorch_seeds_and_determinism_flags_are_recorded_audited_and_diffed() {
    let t = TestContext::new();
    t.git(&["init", "-q", "-b", "main"]);
    t.write(".gitignore", "out/\n");
    t.write("train.py", TORCH_SCRIPT);
    t.commit_all("torch");
    t.repro(&["init"]).success();
    let a =
        t.in_frameworks_venv(&["run", "--seed", "42", "--output", "out", "--", "python", "train.py", "fast"]).success();
    let (report, _) = t.audit(&id_of(&a));
    let seed = item(&report, "random_seed")["detail"].as_str().unwrap_or_default();
    assert_eq!(status(&report, "random_seed"), "missing", "{report}");
    assert!(seed.contains("torch.manual_seed 123"), "{seed}");
    assert_eq!(status(&report, "determinism"), "warn", "{report}");
    assert!(
        item(&report, "determinism")["detail"].as_str().unwrap_or_default().contains("cudnn.benchmark"),
        "{report}"
    );
    let rec = t.show_json(&id_of(&a));
    let torch = &rec["probe"]["frameworks"]["torch"];
    assert_eq!(torch["version"], "2.15.0+cu132", "local version labels are kept: {torch}");
    assert_eq!(torch["deterministic_algorithms"], true, "{torch}");
    assert_eq!(torch["cudnn_benchmark"], true, "{torch}");
    assert_eq!(torch["initial_seed"], 123, "{torch}");
    // The probe's own reading of the TF32 flags must not warn on the user's stderr.
    assert!(!a.stderr().contains("allow_tf32"), "{}", a.stderr());

    let b =
        t.in_frameworks_venv(&["run", "--seed", "42", "--output", "out", "--", "python", "train.py", "slow"]).success();
    let diff = t.repro(&["diff", &id_of(&a), &id_of(&b), "--json"]).json();
    let causes: Vec<String> = diff["causes"]
        .as_array()
        .expect("causes")
        .iter()
        .map(|c| c["summary"].as_str().unwrap_or_default().to_string())
        .collect();
    assert!(causes.iter().any(|c| c.contains("torch.cudnn.benchmark: true → false")), "{causes:?}");
}

#[test]
fn the_probe_stays_out_of_the_way_and_its_absence_is_said() {
    let t = TestContext::new();
    t.git(&["init", "-q", "-b", "main"]);
    // The environment's own sitecustomize still runs (chained), and the script's sys.path
    // does not hold the probe's folder.
    t.write("site/sitecustomize.py", "import os\nos.environ['FROM_USER_SITECUSTOMIZE'] = 'yes'\n");
    t.write(
        "check.py",
        "import os, sys\nassert os.environ.get('FROM_USER_SITECUSTOMIZE') == 'yes'\nassert not any('/probe/' in p for p in sys.path), sys.path\nprint('ok')\n",
    );
    t.commit_all("check");
    t.repro(&["init"]).success();
    let venv = repro_test::frameworks_venv();
    let site = t.path("site");
    let run = t
        .cmd()
        .args(["--json", "run", "--seed", "1", "--", venv.join("bin/python").to_str().expect("utf-8"), "check.py"])
        .env("PYTHONPATH", &site)
        .output()
        .expect("run");
    assert!(run.status.success(), "{}", String::from_utf8_lossy(&run.stderr));
    assert!(String::from_utf8_lossy(&run.stderr).contains("ok"));

    let sh = t.repro(&["--json", "run", "--seed", "1", "--", "sh", "-c", "true"]).success();
    let (report, _) = t.audit(&id_of(&sh));
    assert_eq!(status(&report, "undeclared_inputs"), "warn");
    assert!(item(&report, "undeclared_inputs")["detail"].as_str().unwrap_or_default().contains("no Python process"));
    let off = t.in_frameworks_venv(&["run", "--no-probe", "--seed", "1", "--", "python", "check.py"]);
    // --no-probe: the user's sitecustomize is found as usual and the audit says why nothing was checked.
    let (report, _) = t.audit(&id_of(&off));
    assert!(item(&report, "undeclared_inputs")["detail"].as_str().unwrap_or_default().contains("--no-probe"));
    assert_eq!(t.repro(&["run", "--no-probe", "--auto-data", "--", "true"]).code(), 2);
}

#[test]
fn torchrun_is_one_run_with_a_probe_in_every_rank() {
    let t = TestContext::new();
    t.git(&["init", "-q", "-b", "main"]);
    t.write(
        "ddp.py",
        r#"import os
import torch
import torch.distributed as dist
dist.init_process_group("gloo")
rank = dist.get_rank()
torch.manual_seed(int(os.environ["REPRO_SEED"]) + rank)
t = torch.ones(2) * (rank + 1)
dist.all_reduce(t)
if rank == 0:
    with open("sum.txt", "w") as f:
        f.write(str(t.tolist()))
dist.destroy_process_group()
"#,
    );
    t.write(".gitignore", "sum.txt\n");
    t.commit_all("ddp");
    t.repro(&["init"]).success();
    let run = t
        .in_frameworks_venv(&[
            "run",
            "--seed",
            "5",
            "--output",
            "sum.txt",
            "--",
            "torchrun",
            "--nproc_per_node=2",
            "--master_port=29517",
            "ddp.py",
        ])
        .success();
    let rec = t.show_json(&id_of(&run));
    let probe = &rec["probe"];
    let ranks: Vec<u64> = probe["ranks"].as_array().expect("ranks").iter().filter_map(|r| r["rank"].as_u64()).collect();
    assert_eq!(ranks, vec![0, 1], "{probe}");
    assert_eq!(probe["world_size"], 2);
    let seeds: Vec<String> = probe["seeds"]
        .as_array()
        .expect("seeds")
        .iter()
        .map(|s| format!("{}={}@{}", s["via"], s["value"], s["rank"]))
        .collect();
    assert!(seeds.contains(&"\"torch.manual_seed\"=5@0".to_string()), "{seeds:?}");
    assert!(seeds.contains(&"\"torch.manual_seed\"=6@1".to_string()), "{seeds:?}");
    let (report, _) = t.audit(&id_of(&run));
    assert!(item(&report, "determinism")["detail"].as_str().unwrap_or_default().contains("2 ranks"), "{report}");
    // Rank 1 seeded with 6: the seed check names it.
    assert!(item(&report, "random_seed")["detail"].as_str().unwrap_or_default().contains("6 (rank 1)"), "{report}");
}
