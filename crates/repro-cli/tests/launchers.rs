//! Notebooks, distributed launchers and containers (issue 16), with real processes: a
//! notebook executed by nbclient in the frameworks virtualenv, torchrun with two gloo
//! workers on the CPU, and the image a run records.

mod common;

use std::process::Command;

use common::*;
use serde_json::Value;

/// A notebook of a few code cells: seeded numpy, a file written, a printed result.
fn notebook_json(outputs: Value, count: Value) -> String {
    let code = |id: &str, src: &str, outputs: Value, count: Value| {
        serde_json::json!({"cell_type": "code", "id": id, "metadata": {}, "execution_count": count,
                           "outputs": outputs, "source": src})
    };
    let nb = serde_json::json!({
        "nbformat": 4, "nbformat_minor": 5,
        "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}},
        "cells": [
            {"cell_type": "markdown", "id": "m1", "metadata": {}, "source": "# Pricing, by notebook"},
            code("c1", "import os\nimport numpy as np\nrng = np.random.default_rng(int(os.environ['REPRO_SEED']))", serde_json::json!([]), Value::Null),
            code("c2", "w = rng.normal(size=4)\nprint(np.round(w, 6).tolist())", outputs, count),
            code("c3", "with open('weights.txt', 'w') as f:\n    f.write(' '.join(f'{x:.6f}' for x in w))\nfloat(w.sum())", serde_json::json!([]), Value::Null),
        ],
    });
    serde_json::to_string_pretty(&nb).expect("json")
}

fn project() -> TestContext {
    let t = TestContext::new();
    t.git(&["init", "-q", "-b", "main"]);
    t.write("requirements.txt", "numpy==2.4.6\n");
    t.write(".gitignore", "weights.txt\n*.executed.ipynb\n*.nbconvert.ipynb\n");
    t.write("analysis.ipynb", &notebook_json(serde_json::json!([]), Value::Null));
    t.commit_all("a notebook");
    t.repro(&["init"]).success();
    t
}

#[test]
fn a_notebook_is_the_script_its_executed_copy_an_output_and_it_replays_identical() {
    let t = project();
    let first = t.in_frameworks_venv(&["run", "--seed", "7", "--output", "weights.txt", "analysis.ipynb"]).success();
    let a = t.show_json(&id_of(&first));
    let script = &a["script"];
    assert_eq!(script["kind"], "notebook", "{script}");
    assert_eq!(script["launcher"], "nbclient");
    assert_eq!(script["argv"], serde_json::json!(["analysis.ipynb"]), "the user's form is recorded");
    assert_eq!(script["path"], "analysis.ipynb");
    // The digest is of the code cells (stored, readable as a percent-format script); the
    // whole file is stored too.
    let code = t.read_object(script["digest"].as_str().expect("digest"));
    let code = String::from_utf8(code).expect("utf-8");
    assert!(code.starts_with("# %%\nimport os\n") && !code.contains("Pricing"), "{code}");
    let file = t.read_object(script["file_digest"].as_str().expect("file digest"));
    assert_eq!(file, std::fs::read(t.path("analysis.ipynb")).expect("read"));

    // The executed notebook is written beside it and recorded as an output.
    let executed: Value =
        serde_json::from_slice(&std::fs::read(t.path("analysis.executed.ipynb")).expect("executed copy"))
            .expect("json");
    let printed = executed["cells"][2]["outputs"][0]["text"].to_string();
    assert!(printed.contains('['), "the cell's output is in the executed copy: {printed}");
    assert!(!executed.to_string().contains("iopub"), "no execution timestamps");
    let outputs: Vec<&str> =
        a["outputs"].as_array().expect("outputs").iter().filter_map(|o| o["path"].as_str()).collect();
    assert!(outputs.contains(&"analysis.executed.ipynb") && outputs.contains(&"weights.txt"), "{outputs:?}");
    let (audit, _) = t.audit(&id_of(&first));
    assert_eq!(status(&audit, "training_script"), "ok", "{audit}");

    // Saved again from Jupyter with other outputs and counts: not a code change.
    t.write(
        "analysis.ipynb",
        &notebook_json(
            serde_json::json!([{"output_type": "stream", "name": "stdout", "text": "[1.0]\n"}]),
            Value::from(3),
        ),
    );
    let second = t.in_frameworks_venv(&["run", "--seed", "7", "--output", "weights.txt", "analysis.ipynb"]).success();
    let b = t.show_json(&id_of(&second));
    assert_eq!(b["script"]["digest"], script["digest"], "same code cells, same digest");
    assert_ne!(b["script"]["file_digest"], script["file_digest"]);
    let diff = t.repro(&["diff", &id_of(&first), &id_of(&second), "--json"]).success().json();
    let causes: Vec<&str> =
        diff["causes"].as_array().expect("causes").iter().filter_map(|c| c["kind"].as_str()).collect();
    assert!(!causes.iter().any(|c| c.contains("code")), "a re-saved notebook is no code change: {diff}");
    assert_eq!(diff["outputs_differ"], false, "{diff}");
    let text = t.repro(&["diff", &id_of(&first), &id_of(&second)]).success().stdout();
    assert!(!text.contains("code changed"), "{text}");

    // A changed code cell is one.
    t.write("analysis.ipynb", &notebook_json(serde_json::json!([]), Value::Null).replace("size=4", "size=5"));
    let third = t.in_frameworks_venv(&["run", "--seed", "7", "--output", "weights.txt", "analysis.ipynb"]).success();
    let diff = t.repro(&["diff", &id_of(&first), &id_of(&third), "--json"]).success().json();
    assert_eq!(diff["causes"][0]["kind"], "code_changed", "{diff}");

    // Replay re-executes the recorded notebook (from a fresh clone) and matches bit for bit.
    let replay = t.in_frameworks_venv(&["replay", &id_of(&first)]).success().json();
    assert_eq!(replay["verdict"], "identical", "{replay}");
}

#[test]
fn nbconvert_is_recorded_as_the_notebook_it_executes() {
    let t = project();
    // The frameworks venv has nbclient but not nbconvert: a stand-in `jupyter-nbconvert`
    // (which `jupyter nbconvert` finds on PATH) executes with nbclient and writes what
    // nbconvert writes, <stem>.nbconvert.ipynb.
    let bin = t.tmp.path().join("bin");
    std::fs::create_dir_all(&bin).expect("mkdir");
    let python = repro_test::frameworks_venv().join("bin/python3");
    let stand_in = format!(
        "#!{}\nimport sys, nbformat\nfrom nbclient import NotebookClient\nsrc = [a for a in sys.argv[1:] if a.endswith('.ipynb')][0]\nnb = nbformat.read(src, as_version=4)\nNotebookClient(nb, record_timing=False).execute()\nnbformat.write(nb, src[:-6] + '.nbconvert.ipynb')\n",
        python.display()
    );
    let path = bin.join("jupyter-nbconvert");
    std::fs::write(&path, stand_in).expect("write");
    assert!(Command::new("chmod").arg("+x").arg(&path).status().expect("chmod").success());
    let venv_bin = repro_test::frameworks_venv().join("bin");
    let mut c = t.cmd();
    c.args([
        "--json",
        "run",
        "--seed",
        "1",
        "--",
        "jupyter",
        "nbconvert",
        "--execute",
        "--to",
        "notebook",
        "analysis.ipynb",
    ]);
    c.env("PATH", format!("{}:{}:{}", bin.display(), venv_bin.display(), std::env::var("PATH").unwrap_or_default()));
    let run = Run { args: vec!["run".into(), "nbconvert".into()], out: c.output().expect("run") }.success();
    let rec = t.show_json(&id_of(&run));
    assert_eq!(rec["script"]["kind"], "notebook", "{}", rec["script"]);
    assert_eq!(rec["script"]["launcher"], "jupyter nbconvert");
    assert_eq!(rec["script"]["path"], "analysis.ipynb");
    assert!(rec["script"]["file_digest"].is_string());
    let out = &rec["outputs"][0];
    assert_eq!(out["path"], "analysis.nbconvert.ipynb", "the file nbconvert writes: {}", rec["outputs"]);
    assert_eq!(out["missing"], false);
}

#[test]
fn a_notebook_without_nbclient_is_refused_before_anything_is_recorded() {
    let t = project();
    // The shared test venv (scikit-learn) has no nbclient.
    let bin = t.python().parent().expect("bin").to_path_buf();
    let mut c = t.cmd();
    c.args(["run", "analysis.ipynb"])
        .env("PATH", format!("{}:{}", bin.display(), std::env::var("PATH").unwrap_or_default()));
    let run = Run { args: vec!["run".into(), "analysis.ipynb".into()], out: c.output().expect("run") }.expect_code(2);
    let line = run.error_line();
    assert!(line.contains("nbclient is not installed in") && line.contains("analysis.ipynb"), "{line}");
    assert!(t.runs().is_empty(), "nothing recorded");
    // Not a notebook, without --: a usage error naming the fix.
    let line = t.repro(&["run", "train.py"]).expect_code(2).stderr();
    assert!(line.contains("repro run -- python train.py"), "{line}");
}

#[test]
fn torchrun_records_the_script_it_starts_and_the_run_finishes() {
    let t = TestContext::new();
    t.git(&["init", "-q", "-b", "main"]);
    t.write(
        "train.py",
        "import os\nimport torch\nimport torch.distributed as dist\n\n\
         dist.init_process_group(\"gloo\")\n\
         rank = dist.get_rank()\n\
         torch.manual_seed(int(os.environ['REPRO_SEED']))\n\
         x = torch.tensor([float(rank + 1)])\n\
         dist.all_reduce(x)\n\
         if rank == 0:\n    with open('total.txt', 'w') as f:\n        f.write(f'{x.item():.1f} from {dist.get_world_size()} workers\\n')\n\
         dist.destroy_process_group()\n",
    );
    t.write(".gitignore", "total.txt\n");
    t.commit_all("a distributed script");
    t.repro(&["init"]).success();
    let run = t.in_frameworks_venv(&[
        "run",
        "--seed",
        "3",
        "--output",
        "total.txt",
        "--",
        "torchrun",
        // One node, a free port of its own: no rendezvous to configure.
        "--standalone",
        "--nproc_per_node=2",
        "train.py",
    ]);
    let run = run.success();
    assert_eq!(std::fs::read_to_string(t.path("total.txt")).expect("output"), "3.0 from 2 workers\n");
    let rec = t.show_json(&id_of(&run));
    let script = &rec["script"];
    assert_eq!(script["kind"], "python_file", "{script}");
    assert_eq!(script["path"], "train.py");
    assert_eq!(script["launcher"], "torchrun");
    assert_eq!(script["tracked_unchanged"], true);
    let on_disk = t.read_object(script["digest"].as_str().expect("digest"));
    assert_eq!(on_disk, std::fs::read(t.path("train.py")).expect("read"));
    // The interpreter is torchrun's shebang Python: the frameworks venv's.
    let python = rec["environment"]["python"]["executable"].as_str().expect("python");
    assert!(python.starts_with(&repro_test::frameworks_venv().display().to_string()), "{python}");
    assert_eq!(rec["outputs"][0]["missing"], false);
}

#[test]
fn the_image_is_recorded_and_a_tag_alone_is_a_warning() {
    let t = TestContext::sklearn_project();
    let digest = format!("sha256:{}", "ab".repeat(32));
    let image = format!("ghcr.io/acme/train@{digest}");
    let run = t.train(&["--json", "--image", &image]).success();
    let rec = t.show_json(&id_of(&run));
    let c = &rec["environment"]["container"];
    assert_eq!(
        (c["image"].as_str(), c["digest"].as_str(), c["source"].as_str()),
        (Some(image.as_str()), Some(digest.as_str()), Some("--image")),
        "{c}"
    );
    assert!(c.get("runtime").is_none(), "the test hides the machine's container: {c}");
    let (audit, _) = t.audit(&id_of(&run));
    assert!(!item(&audit, "environment_file")["detail"].as_str().unwrap_or("").contains("image"), "{audit}");
    let text = t.repro(&["show", &id_of(&run)]).success().stdout();
    assert!(text.contains(&format!("container (runtime not seen) {image}, from --image")), "{text}");

    // A tag only, inside a (pretend) docker container: recorded, and the audit warns.
    let root = t.tmp.path().join("docker-root");
    std::fs::create_dir_all(&root).expect("mkdir");
    std::fs::write(root.join(".dockerenv"), "").expect("write");
    let mut c = t.cmd();
    c.args([
        "--json",
        "run",
        "--seed",
        "42",
        "--data",
        "data/train.csv",
        "--params",
        "params.yaml",
        "--output",
        "model.pkl",
        "--",
    ])
    .arg(t.python())
    .arg("train.py")
    .env("REPRO_CONTAINER_ROOT", &root)
    .env("REPRO_IMAGE", "python:3.11");
    let run = Run { args: vec!["run".into()], out: c.output().expect("run") }.success();
    let rec = t.show_json(&id_of(&run));
    let c = &rec["environment"]["container"];
    assert_eq!(
        (c["runtime"].as_str(), c["image"].as_str(), c["source"].as_str()),
        (Some("docker"), Some("python:3.11"), Some("REPRO_IMAGE")),
        "{c}"
    );
    assert!(c.get("digest").is_none());
    let (audit, _) = t.audit(&id_of(&run));
    let env = item(&audit, "environment_file");
    assert_eq!(env["status"], "warn", "{env}");
    assert!(
        env["detail"]
            .as_str()
            .unwrap_or("")
            .contains("image python:3.11 is a tag, not a digest: pass --image NAME@sha256:…"),
        "{env}"
    );

    // Not in a container, nothing named: nothing recorded, nothing said.
    let plain = t.train(&["--json"]).success();
    assert!(t.show_json(&id_of(&plain))["environment"].get("container").is_none());

    // A malformed reference: one line, exit 2, nothing recorded.
    let before = t.runs().len();
    for (bad, source) in [("Python:3.11", "--image"), ("python@sha256:abc", "--image")] {
        let line = t.train(&["--image", bad]).expect_code(2).error_line();
        assert!(line.contains(&format!("{source} \"{bad}\" is not an image reference")), "{line}");
    }
    let mut c = t.cmd();
    c.args(["run", "--", "true"]).env("REPRO_IMAGE", "not an image");
    let line = Run { args: vec!["run".into()], out: c.output().expect("run") }.expect_code(2).error_line();
    assert!(line.contains("REPRO_IMAGE \"not an image\" is not an image reference"), "{line}");
    assert_eq!(t.runs().len(), before, "nothing recorded");
}
