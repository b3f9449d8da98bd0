//! Environments: pinning checks and training/serving parity, on real files and real venvs.

mod common;

use std::process::Command;

use common::TestContext;

#[test]
fn env_check_tells_pinned_from_loose_and_names_bad_lines() {
    let t = TestContext::sklearn_project();
    let ok = t.repro(&["env", "check", "requirements.txt", "--json"]).success().json();
    assert_eq!(ok["unpinned"], 0);
    assert_eq!(ok["loose"], 0);
    assert_eq!(ok["pinned"], 7);

    t.write("serving.txt", "scikit-learn>=1.0\nnumpy\njoblib==1.6.0\n");
    let r = t.repro(&["env", "check", "serving.txt", "--json"]).expect_code(1).json();
    let status = |name: &str| common::named(&r["requirements"], name)["status"].clone();
    assert_eq!(status("scikit-learn"), "loose");
    assert_eq!(status("numpy"), "unpinned");
    assert_eq!(status("joblib"), "pinned");
    assert!(t.repro(&["env", "check", "serving.txt"]).expect_code(1).stdout().contains("not fully pinned"));

    t.write("broken.txt", "numpy==1.26\nscikit-learn ==== 1.4\n");
    let e = t.repro(&["env", "check", "broken.txt"]).expect_code(2).error_line();
    assert!(e.contains("broken.txt:2"), "{e}");
    let e = t.repro(&["env", "check", "nope.txt"]).expect_code(2).error_line();
    assert!(e.contains("nope.txt does not exist"), "{e}");
}

#[test]
fn parity_fails_first_on_the_package_the_model_imports() {
    let t = TestContext::sklearn_project();
    let run = t.train(&["--json"]).success().json();
    let id = run["id"].as_str().expect("id");
    let py = t.python();

    // Served from the very environment it was trained in: pass.
    let same = t.repro(&["env", "parity", id, "--python", py.to_str().expect("utf-8"), "--json"]).success().json();
    assert_eq!(same["pass"], true, "{same:#}");
    assert_eq!(same["artifact_packages"], serde_json::json!(["scikit-learn", "numpy"]));

    // A serving venv with an older scikit-learn (a real install).
    let serving = t.private_venv();
    let serving_py = serving.join("bin/python");
    let out = Command::new(&serving_py)
        .args(["-m", "pip", "install", "-q", "--disable-pip-version-check", "--no-deps", "scikit-learn==1.2.2"])
        .output()
        .expect("pip");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let r = t.repro(&["env", "parity", id, "--python", serving_py.to_str().expect("utf-8")]).expect_code(1);
    let first = r.stdout().lines().find(|l| l.trim_start().starts_with("FAIL")).unwrap_or_default().to_string();
    assert!(first.contains("scikit-learn: trained with 1.9.1, serving with 1.2.2"), "{}", r.stdout());
    // The pickle records the scikit-learn that wrote it (`_sklearn_version`).
    assert!(first.contains("the artifact was written by scikit-learn 1.9.1; serving has 1.2.2"), "{first}");

    // The same through a manifest captured "inside the serving image".
    t.repro(&["env", "capture", "--python", serving_py.to_str().expect("utf-8"), "-o", "serving.json"]).success();
    let j = t.repro(&["env", "parity", id, "--against", "serving.json", "--json"]).expect_code(1).json();
    assert_eq!(j["differences"][0]["package"], "scikit-learn");
    assert_eq!(j["differences"][0]["kind"], "minor");
    assert_eq!(j["differences"][0]["critical"], true);
    // Ignoring it is the user's call.
    t.repro(&["env", "parity", id, "--against", "serving.json", "--ignore", "scikit-learn"]).success();

    // Garbage in: a manifest that is not one, a missing file, no comparison given.
    t.write("bad.json", "{\"packages\": 3}");
    let e = t.repro(&["env", "parity", id, "--against", "bad.json"]).expect_code(2).error_line();
    assert!(e.contains("bad.json") && e.contains("repro env capture"), "{e}");
    t.repro(&["env", "parity", id, "--against", "missing.json"]).expect_code(2);
    t.repro(&["env", "parity", id]).expect_code(2);
}

#[test]
fn export_writes_the_exact_lock_that_parity_and_check_accept() {
    let t = TestContext::sklearn_project();
    let id = common::id_of(&t.train(&["--json"]).success());

    t.repro(&["env", "export", &id, "-o", "serving.lock.txt"]).success();
    let lock = std::fs::read_to_string(t.path("serving.lock.txt")).expect("lock");
    assert!(lock.contains("scikit-learn==1.9.1") && lock.contains("numpy==2.4.6"), "{lock}");
    let check = t.repro(&["env", "check", "serving.lock.txt", "--json"]).success().json();
    assert_eq!(check["pinned"], 7, "every installed package but pip and setuptools, pinned: {check:#}");
    let parity = t.repro(&["env", "parity", &id, "--against", "serving.lock.txt", "--json"]).success().json();
    assert_eq!(parity["pass"], true, "{parity:#}");

    t.repro(&["env", "export", &id, "--format", "conda", "-o", "environment.yml"]).success();
    let conda = t.repro(&["env", "check", "environment.yml", "--json"]).success().json();
    assert_eq!(conda["unpinned"], 0, "{conda:#}");

    // -o into a folder that does not exist yet makes it (README's own example).
    assert!(!t.path("serving").exists());
    t.repro(&["env", "export", &id, "--format", "dockerfile", "-o", "serving/Dockerfile"]).success();
    // Where a folder cannot be made, the error names the user's path, and nothing is left.
    t.write("notafolder", "a file\n");
    let r = t.repro(&["env", "export", &id, "--format", "dockerfile", "-o", "notafolder/Dockerfile"]).expect_code(2);
    let err = r.stderr();
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("notafolder/Dockerfile") && !err.contains(".tmp"), "{err}");
    assert_eq!(std::fs::read_to_string(t.path("notafolder")).expect("still a file"), "a file\n");
    let docker = std::fs::read_to_string(t.path("serving/Dockerfile")).expect("Dockerfile");
    let python = t.repro(&["show", &id, "--json"]).success().json()["environment"]["python"]["version"]
        .as_str()
        .expect("version")
        .to_string();
    assert!(docker.contains(&format!("FROM python:{python}-slim")), "{docker}");
    assert!(docker.contains("pip install --no-cache-dir --no-deps -r /tmp/requirements.lock"));
    let beside = std::fs::read_to_string(t.path("serving/requirements.lock")).expect("lock beside");
    assert!(beside.contains("scikit-learn==1.9.1"));
    t.repro(&["env", "export", "nosuchrun"]).expect_code(2);
}

#[test]
fn registered_environments_are_immutable_versions_that_diff_and_parity_use() {
    let t = TestContext::sklearn_project();
    let r = t.repro(&["env", "register", "requirements.txt", "--name", "training", "--json"]).success().json();
    assert_eq!((r["version"].as_u64(), r["new"].as_bool()), (Some(1), Some(true)));
    // Same content (even from another path) → the same version.
    std::fs::copy(t.path("requirements.txt"), t.path("copy.txt")).expect("copy");
    let again = t.repro(&["env", "register", "copy.txt", "--name", "training", "--json"]).success().json();
    assert_eq!((again["version"].as_u64(), again["new"].as_bool()), (Some(1), Some(false)));
    // Changed content → the next version; the first is unchanged.
    let reqs = std::fs::read_to_string(t.path("requirements.txt")).expect("reqs");
    t.write("requirements.txt", &reqs.replace("scikit-learn==1.9.1", "scikit-learn==1.8.0"));
    let two = t.repro(&["env", "register", "requirements.txt", "--name", "training", "--json"]).success().json();
    assert_eq!(two["version"], 2);
    let one = t.repro(&["env", "show", "training:1", "--json"]).success().json();
    assert_eq!(common::named(&one["spec"]["declared"]["requirements"], "scikit-learn")["spec"], "==1.9.1");
    assert!(t.repro(&["env", "show", "training"]).success().stdout().contains("training:2"));
    let ls = t.repro(&["env", "ls"]).success().stdout();
    assert!(ls.contains("training:1") && ls.contains("training:2"), "{ls}");

    let d = t.repro(&["env", "diff", "training:1", "training:2", "--json"]).success().json();
    assert_eq!(d["changes"].as_array().expect("changes").len(), 1, "{d:#}");
    assert_eq!(d["changes"][0]["name"], "scikit-learn");
    assert_eq!(d["changes"][0]["kind"], "minor");

    // An installed set, captured from a real interpreter, registered and compared.
    let py = t.python();
    t.repro(&["env", "capture", "--python", py.to_str().expect("utf-8"), "-o", "serving.json"]).success();
    t.repro(&["env", "register", "serving.json", "--name", "serving"]).success();
    let id = common::id_of(&t.train(&["--json"]).success());
    t.repro(&["env", "parity", &id, "--against", "serving:1"]).success();
    let fail = t.repro(&["env", "parity", "training:2", "--against", "serving:1", "--json"]).expect_code(1).json();
    assert_eq!(fail["differences"][0]["package"], "scikit-learn", "{fail:#}");
    // A run diffs against a registered environment too.
    let rd = t.repro(&["env", "diff", &id, "serving:1", "--json"]).success().json();
    assert_eq!(rd["changes"].as_array().expect("changes").len(), 0, "{rd:#}");

    // Bad input: unknown names, invalid names, files that are not environments.
    assert!(t.repro(&["env", "show", "nosuch:1"]).expect_code(2).error_line().contains("repro env ls"));
    t.repro(&["env", "register", "requirements.txt", "--name", "bad name"]).expect_code(2);
    t.write("garbage.json", "{ not json");
    let e = t.repro(&["env", "register", "garbage.json", "--name", "x"]).expect_code(2).error_line();
    assert!(e.contains("garbage.json"), "{e}");
    t.repro(&["env", "diff", "training:1", "nosuch:9"]).expect_code(2);
    t.repro(&["fsck"]).success();
}

#[test]
fn run_with_a_registered_environment_checks_the_interpreter_first() {
    let t = TestContext::sklearn_project();
    t.repro(&["env", "register", "requirements.txt", "--name", "training"]).success();
    let id = common::id_of(&t.train(&["--env", "training:1", "--json"]).success());
    let shown = t.repro(&["show", &id, "--json"]).success().json();
    assert_eq!(shown["environment"]["registered"], "training:1");
    let (audit, _) = t.audit(&id);
    assert_eq!(common::status(&audit, "environment_file"), "ok", "{audit:#}");
    assert!(common::item(&audit, "environment_file")["detail"].as_str().expect("d").contains("training:1"));

    // A version the interpreter does not match: refused, nothing recorded.
    let reqs = std::fs::read_to_string(t.path("requirements.txt")).expect("reqs");
    t.write(
        "next.txt",
        &reqs.replace("scikit-learn==1.9.1", "scikit-learn==1.8.0").replace("joblib==1.6.0", "joblib>=9"),
    );
    t.repro(&["env", "register", "next.txt", "--name", "training"]).success();
    let before = t.runs().len();
    let r = t.train(&["--env", "training:2"]).expect_code(1);
    let out = r.stdout();
    assert!(out.contains("does not match training:2"), "{out}");
    assert!(out.contains("scikit-learn: ==1.8.0 declared") && out.contains("1.9.1 installed"), "{out}");
    assert!(out.contains("joblib: >=9 declared"), "{out}");
    assert_eq!(t.runs().len(), before, "nothing recorded");

    // --allow-env-drift runs and records the drift; the audit flags it.
    let id2 = common::id_of(&t.train(&["--env", "training:2", "--allow-env-drift", "--json"]).success());
    let shown = t.repro(&["show", &id2, "--json"]).success().json();
    assert_eq!(shown["environment"]["drift"].as_array().expect("drift").len(), 2, "{shown:#}");
    let (audit, _) = t.audit(&id2);
    assert_eq!(common::status(&audit, "environment_file"), "warn");

    // An installed set registered from a capture of the very interpreter: it matches.
    let py = t.python();
    t.repro(&["env", "capture", "--python", py.to_str().expect("utf-8"), "-o", "venv.json"]).success();
    t.repro(&["env", "register", "venv.json", "--name", "venv"]).success();
    let id3 = common::id_of(&t.train(&["--env", "venv:1", "--json"]).success());
    let (audit, _) = t.audit(&id3);
    assert_eq!(common::status(&audit, "environment_file"), "ok", "{audit:#}");

    // An unknown registered environment is bad input.
    let e = t.train(&["--env", "nosuch:3"]).expect_code(2).error_line();
    assert!(e.contains("nosuch:3") && e.contains("repro env ls"), "{e}");
}

/// The story the environments work exists for: a model trained with scikit-learn 1.4.2 is
/// about to be served from an image with scikit-learn 1.2.2. Parity catches it, names that
/// package first, and the exported lock rebuilds a serving environment that passes.
#[test]
fn trained_with_sklearn_1_4_served_with_1_2_fails_parity_first_on_scikit_learn() {
    let t = TestContext::sklearn_project();
    let ws = common::workspace();
    let train_venv = common::cached_venv(
        &ws.join("target/test-venv-sklearn-1.4"),
        &ws.join("crates/repro-cli/tests/fixtures/sklearn-1.4.txt"),
    );
    let train_py = train_venv.join("bin/python");
    let id = common::id_of(&t.train_with(&train_py, &["--json"]).success());
    let shown = t.repro(&["show", &id, "--json"]).success().json();
    assert_eq!(common::named(&shown["environment"]["python"]["packages"], "scikit-learn")["version"], "1.4.2");

    // The serving image: the same stack with scikit-learn 1.2.2 (a real install).
    let serving = t.dir.join("serving-venv");
    let ok = Command::new("cp").arg("-a").arg(&train_venv).arg(&serving).status().expect("cp").success();
    assert!(ok);
    let serving_py = serving.join("bin/python");
    let out = Command::new(&serving_py)
        .args(["-m", "pip", "install", "-q", "--disable-pip-version-check", "--no-deps", "scikit-learn==1.2.2"])
        .output()
        .expect("pip");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));

    let r = t.repro(&["env", "parity", &id, "--python", serving_py.to_str().expect("utf-8")]).expect_code(1);
    let first = r.stdout().lines().find(|l| l.trim_start().starts_with("FAIL")).unwrap_or_default().to_string();
    assert!(
        first.contains("scikit-learn: trained with 1.4.2, serving with 1.2.2 (minor difference)"),
        "{}",
        r.stdout()
    );
    // It is a real problem: scikit-learn 1.2.2 itself warns that the model is from 1.4.2.
    let load = Command::new(&serving_py)
        .args(["-W", "error", "-c", "import pickle; pickle.load(open('model.pkl', 'rb'))"])
        .current_dir(&t.dir)
        .output()
        .expect("load");
    assert!(!load.status.success(), "scikit-learn 1.2.2 loaded a 1.4.2 model without complaint");
    assert!(String::from_utf8_lossy(&load.stderr).contains("1.4.2"), "{}", String::from_utf8_lossy(&load.stderr));

    // The fix: serve from the exported lock; parity then passes.
    t.repro(&["env", "export", &id, "-o", "serving.lock"]).success();
    let fixed = t.dir.join("fixed-venv");
    let ok = Command::new("python3").args(["-m", "venv"]).arg(&fixed).status().expect("venv").success();
    assert!(ok);
    let out = Command::new(fixed.join("bin/pip"))
        .args(["install", "-q", "--disable-pip-version-check", "--no-deps", "-r", "serving.lock"])
        .current_dir(&t.dir)
        .output()
        .expect("pip");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    t.repro(&["env", "parity", &id, "--python", fixed.join("bin/python").to_str().expect("utf-8")]).success();
}

#[test]
fn export_writes_hashes_only_when_every_package_has_them() {
    let t = TestContext::sklearn_project();
    let reqs = std::fs::read_to_string(t.path("requirements.txt")).expect("reqs");
    let hashed: String = reqs
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .enumerate()
        .map(|(i, l)| {
            format!("{l} --hash=sha256:{}\n", format!("{i:x}").repeat(64).chars().take(64).collect::<String>())
        })
        .collect();
    t.write("requirements.txt", &hashed);
    t.commit_all("hash-pinned requirements");
    let id = common::id_of(&t.train(&["--json"]).success());
    let lock = t.repro(&["env", "export", &id]).success().stdout();
    assert_eq!(lock.matches("--hash=sha256:").count(), 7, "{lock}");
    assert!(lock.contains("scikit-learn==1.9.1 \\\n    --hash=sha256:"), "{lock}");

    // One package without a hash: pip would refuse a partly hashed file, so none are written.
    let partial: String = hashed
        .lines()
        .map(|l| if l.starts_with("numpy") { "numpy==2.4.6\n".to_string() } else { format!("{l}\n") })
        .collect();
    t.write("requirements.txt", &partial);
    t.commit_all("one hash dropped");
    let id = common::id_of(&t.train(&["--json"]).success());
    let lock = t.repro(&["env", "export", &id]).success().stdout();
    assert_eq!(lock.matches("--hash=").count(), 0, "{lock}");
    assert!(lock.contains("Hashes are known for 6 of 7 packages"), "{lock}");
}

/// The mission's environment.yml: a Python series pin, a bare pip, exact pins under `pip:`.
/// Pinned where it matters (exit 0, two notes); `--strict` wants every line exact (exit 1);
/// the audit's `environment_file` item judges the same file the same way.
#[test]
fn env_check_notes_a_python_series_pin_and_installer_tools() {
    let t = TestContext::new();
    t.write(
        "environment.yml",
        "name: pricing\nchannels: [conda-forge]\ndependencies:\n  - python=3.11\n  - pip\n  - pip:\n    - scikit-learn==1.9.1\n    - numpy==2.4.6\n",
    );
    let r = t.repro(&["env", "check", "environment.yml", "--json"]).success().json();
    let notes: Vec<&str> =
        r["notes"].as_array().expect("notes").iter().map(|n| n["name"].as_str().expect("name")).collect();
    assert_eq!(notes, ["python", "pip"], "{r:#}");
    let text = t.repro(&["env", "check", "environment.yml"]).success().stdout();
    assert!(text.contains("pinned where it matters"), "{text}");
    assert!(text.contains("note      python =3.11: a Python series pin"), "{text}");
    let strict = t.repro(&["env", "check", "environment.yml", "--strict"]).expect_code(1).stdout();
    assert!(strict.contains("not fully pinned (--strict)"), "{strict}");

    // A real loose pin still fails, notes or not.
    t.write("loose.yml", "dependencies:\n  - python=3.11\n  - pip\n  - pip:\n    - scikit-learn>=1.4\n");
    t.repro(&["env", "check", "loose.yml"]).expect_code(1);
}

/// A frameworks project: one run trains LightGBM (text model), XGBoost (JSON), a
/// scikit-learn model converted to ONNX by skl2onnx, and a PyTorch module (`torch.save`),
/// in the pinned frameworks venv.
fn frameworks_run(t: &TestContext) -> (String, std::path::PathBuf) {
    let py = repro_test::frameworks_venv().join("bin/python");
    t.write(
        "train.py",
        r#"import numpy as np
rng = np.random.default_rng(0)
X = rng.normal(size=(200, 4)).astype(np.float32)
y = (X @ np.array([1.0, -2.0, 0.5, 0.0], dtype=np.float32) + rng.normal(size=200).astype(np.float32) * 0.1)
import lightgbm as lgb
lgb.train({"verbose": -1, "num_leaves": 7, "seed": 1, "deterministic": True}, lgb.Dataset(X, y), 5).save_model("model.txt")
import xgboost as xgb
xgb.train({"max_depth": 3, "seed": 1}, xgb.DMatrix(X, y), 5).save_model("model.json")
from sklearn.linear_model import Ridge
from skl2onnx import to_onnx
open("model.onnx", "wb").write(to_onnx(Ridge().fit(X, y), X[:1]).SerializeToString())
import torch
torch.manual_seed(1)
torch.save(torch.nn.Linear(4, 1).state_dict(), "model.pt")
"#,
    );
    t.write(".gitignore", "model.*\n");
    t.git(&["init", "-q", "-b", "main"]);
    t.commit_all("train");
    t.repro(&["init"]).success();
    let mut args = vec!["run", "--seed", "1", "--json"];
    for o in ["model.txt", "model.json", "model.onnx", "model.pt"] {
        args.extend_from_slice(&["--output", o]);
    }
    args.extend_from_slice(&["--", py.to_str().expect("utf-8"), "train.py"]);
    let id = common::id_of(&t.repro(&args).success());
    (id, py)
}

/// A captured manifest of the training venv with one package's version changed: a serving
/// image that differs in exactly that package.
fn serving_with(t: &TestContext, captured: &str, package: &str, version: &str) -> String {
    let mut m: serde_json::Value = serde_json::from_str(captured).expect("manifest");
    let p = m["packages"]
        .as_array_mut()
        .expect("packages")
        .iter_mut()
        .find(|p| p["name"].as_str().is_some_and(|n| n.eq_ignore_ascii_case(package)))
        .unwrap_or_else(|| panic!("{package} is not in the frameworks venv"));
    p["version"] = serde_json::json!(version);
    let file = format!("serving-{package}.json");
    t.write(&file, &m.to_string());
    file
}

#[test]
fn parity_names_the_library_that_wrote_the_model_first() {
    let t = TestContext::new();
    let (id, py) = frameworks_run(&t);

    // What each output is, as `show` tells it.
    let shown = t.repro(&["show", &id, "--json"]).success().json();
    let formats: Vec<(&str, &str, &str)> = shown["artifacts"]
        .as_array()
        .expect("artifacts")
        .iter()
        .map(|a| {
            (a["file"].as_str().unwrap_or(""), a["format"].as_str().unwrap_or(""), a["library"].as_str().unwrap_or(""))
        })
        .collect();
    assert_eq!(
        formats,
        [
            ("model.txt", "lightgbm-text", "lightgbm"),
            ("model.json", "xgboost-json", "xgboost"),
            ("model.onnx", "onnx", "skl2onnx"),
            ("model.pt", "torch-zip", "torch")
        ],
        "{shown:#}"
    );
    assert_eq!(shown["artifacts"][1]["version"], "3.2.0");
    assert_eq!(shown["artifacts"][2]["version"], "1.20.0");
    let text = t.repro(&["show", &id]).success().stdout();
    assert!(text.contains("model.txt  is a LightGBM text model (format v4), written by lightgbm"), "{text}");
    assert!(text.contains("model.json  is an XGBoost JSON model, written by xgboost 3.2.0"), "{text}");

    // Served from the very venv: pass, and the artifacts are in the report.
    let same = t.repro(&["env", "parity", &id, "--python", py.to_str().expect("utf-8"), "--json"]).success().json();
    assert_eq!(same["artifacts"].as_array().map(Vec::len), Some(4), "{same:#}");

    t.repro(&["env", "capture", "--python", py.to_str().expect("utf-8"), "-o", "training.json"]).success();
    let captured = std::fs::read_to_string(t.path("training.json")).expect("manifest");
    for (package, version, why) in [
        ("lightgbm", "4.6.0", "the artifact was written by lightgbm (the file does not say which version; training had 4.7.0); serving has 4.6.0"),
        ("xgboost", "3.1.0", "the artifact was written by xgboost 3.2.0; serving has 3.1.0"),
        ("skl2onnx", "1.19.0", "the artifact was written by skl2onnx 1.20.0; serving has 1.19.0"),
        ("torch", "2.14.0", "the artifact was written by torch (the file does not say which version; training had 2.15.0); serving has 2.14.0"),
    ] {
        let serving = serving_with(&t, &captured, package, version);
        let r = t.repro(&["env", "parity", &id, "--against", &serving]).expect_code(1);
        let out = r.stdout();
        let first = out.lines().find(|l| l.trim_start().starts_with("FAIL")).unwrap_or_default();
        assert!(first.contains(why), "{package}: {out}");
        assert!(out.contains("the artifact model.txt is a LightGBM text model"), "{out}");
        let j = t.repro(&["env", "parity", &id, "--against", &serving, "--json"]).expect_code(1).json();
        assert_eq!(j["differences"][0]["package"].as_str().map(str::to_lowercase).as_deref(), Some(package), "{j:#}");
        assert_eq!(j["differences"][0]["critical"], true);
        assert_eq!(j["differences"][0]["why"], why);
        // The user's call: ignoring it passes (and `--ignore a,b` takes several).
        t.repro(&["env", "parity", &id, "--against", &serving, "--ignore", &format!("{package},gunicorn")]).success();
        t.repro(&["env", "parity", &id, "--against", &serving, "--ignore", "gunicorn", "--ignore", package]).success();
    }
}
