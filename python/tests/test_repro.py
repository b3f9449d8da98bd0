"""The helper on its own (outside a run, inside one by its variables) and under a real
`repro run` of the `repro` on PATH (the wheel's, in CI)."""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import sys
import threading
import warnings
from pathlib import Path

import pytest

import repro

VARIABLES = ("REPRO_METRICS", "REPRO_PARAMS", "REPRO_SEED")


@pytest.fixture(autouse=True)
def fresh(monkeypatch):
    """Each test starts outside any run, with the module's once-only state reset."""
    for name in VARIABLES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(repro, "_warned", False)
    monkeypatch.setattr(repro, "_params", None)


def lines(path: Path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_outside_a_run_everything_is_a_no_op_that_warns_once():
    assert not repro.in_run()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        repro.log_metric("loss", 0.5, step=1)
        repro.log_metric("loss", 0.4, step=2)
        repro.log_param("arch", "mlp")
        assert repro.seed() == 0
        assert repro.seed(1234) == 1234
        assert repro.params() == {}
    assert len(caught) == 1, [str(w.message) for w in caught]
    assert caught[0].category is RuntimeWarning
    assert "repro run" in str(caught[0].message)
    # The warning points at the caller's line, not at the helper.
    assert caught[0].filename == __file__
    for call in (lambda: repro.seed(), lambda: repro.params(), lambda: repro.log_param("a", 1)):
        repro._warned = False
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            call()
        assert [w.filename for w in caught] == [__file__]


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda: repro.log_metric("", 1.0), "non-empty string"),
        (lambda: repro.log_metric(3, 1.0), "non-empty string"),
        (lambda: repro.log_metric("loss", "0.5"), "real number"),
        (lambda: repro.log_metric("loss", None), "real number"),
        (lambda: repro.log_metric("loss", True), "real number"),
        (lambda: repro.log_metric("loss", 0.5, step=1.5), "step must be an integer"),
        (lambda: repro.log_metric("loss", 0.5, step=True), "step must be an integer"),
        (lambda: repro.log_param("", "x"), "non-empty string"),
        (lambda: repro.log_param("arch", ["a"]), "string, number or bool"),
        (lambda: repro.log_param("arch", None), "string, number or bool"),
    ],
)
def test_bad_arguments_raise_inside_and_outside_a_run(call, message, tmp_path, monkeypatch):
    with pytest.raises(TypeError, match=message):
        call()
    monkeypatch.setenv("REPRO_METRICS", str(tmp_path / "metrics.jsonl"))
    with pytest.raises(TypeError, match=message):
        call()
    assert not (tmp_path / "metrics.jsonl").exists(), "nothing is written for a bad call"


def test_inside_a_run_metrics_and_params_are_json_lines(tmp_path, monkeypatch):
    metrics = tmp_path / "metrics.jsonl"
    monkeypatch.setenv("REPRO_METRICS", str(metrics))
    assert repro.in_run()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        repro.log_metric("loss", 0.25)
        repro.log_metric("loss", 0.125, step=3)
        repro.log_metric("acc", 1)
        repro.log_metric("loss", float("nan"), step=4)
        repro.log_metric("loss", -math.inf, step=5)
        repro.log_param("arch", "mlp")
        repro.log_param("layers", 3)
        repro.log_param("dropout", 0.1)
        repro.log_param("bias", False)
    got = lines(metrics)
    assert [(r["metric"], r["value"], r["step"]) for r in got[:5]] == [
        ("loss", 0.25, 0),
        ("loss", 0.125, 3),
        ("acc", 1.0, 0),
        ("loss", "NaN", 4),
        ("loss", "-Infinity", 5),
    ]
    assert all(isinstance(r["timestamp"], int) and r["timestamp"] > 1_600_000_000_000 for r in got[:5])
    assert got[5:] == [
        {"param": "arch", "value": "mlp"},
        {"param": "layers", "value": 3},
        {"param": "dropout", "value": 0.1},
        {"param": "bias", "value": False},
    ]


def test_seed_and_params_come_from_the_run(tmp_path, monkeypatch):
    monkeypatch.setenv("REPRO_SEED", "42")
    assert repro.seed(7) == 42
    monkeypatch.setenv("REPRO_SEED", "forty-two")
    with pytest.raises(ValueError, match="REPRO_SEED must be an integer"):
        repro.seed()
    path = tmp_path / "params.json"
    path.write_text(json.dumps({"model.depth": 4, "optim.lr": 0.01}))
    monkeypatch.setenv("REPRO_PARAMS", str(path))
    got = repro.params()
    assert got == {"model.depth": 4, "optim.lr": 0.01}
    got["model.depth"] = 99
    assert repro.params()["model.depth"] == 4, "each call gives a fresh copy"


@pytest.mark.parametrize("content", ["not json", "[1, 2]"])
def test_an_unreadable_params_file_is_named(content, tmp_path, monkeypatch):
    path = tmp_path / "params.json"
    path.write_text(content)
    monkeypatch.setenv("REPRO_PARAMS", str(path))
    with pytest.raises(RuntimeError, match="REPRO_PARAMS="):
        repro.params()


def test_lines_from_many_threads_never_interleave(tmp_path, monkeypatch):
    metrics = tmp_path / "metrics.jsonl"
    monkeypatch.setenv("REPRO_METRICS", str(metrics))

    def work(worker: int) -> None:
        for step in range(300):
            repro.log_metric(f"worker{worker}", step / 7, step=step)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    got = lines(metrics)
    assert len(got) == 8 * 300
    for worker in range(8):
        steps = [r["step"] for r in got if r["metric"] == f"worker{worker}"]
        assert steps == list(range(300))


SCRIPT = """
import random, repro
random.seed(repro.seed())
p = repro.params()
repro.log_param("arch", "mlp")
for step in range(3):
    repro.log_metric("loss", p["optim.lr"] / (step + 1), step=step)
repro.log_metric("diverged", float("inf"))
print("seed", repro.seed(), "depth", p["model.depth"])
"""


def repro_binary():
    found = shutil.which("repro")
    if found is None:
        if os.environ.get("REPRO_TEST_REQUIRE_ALL") == "1":
            pytest.fail("no `repro` on PATH: install the wheel into this environment first")
        pytest.skip("no `repro` on PATH")
    return found


def test_a_real_repro_run_records_what_the_helper_logged(tmp_path):
    binary = repro_binary()
    env = {k: v for k, v in os.environ.items() if k not in VARIABLES}
    env.update(GIT_AUTHOR_NAME="t", GIT_AUTHOR_EMAIL="t@example.invalid", GIT_COMMITTER_NAME="t",
               GIT_COMMITTER_EMAIL="t@example.invalid")

    def run(*args: str) -> subprocess.CompletedProcess:
        done = subprocess.run(args, cwd=tmp_path, env=env, capture_output=True, text=True)
        assert done.returncode == 0, f"{args}: {done.stdout}\n{done.stderr}"
        return done

    (tmp_path / "train.py").write_text(SCRIPT)
    run("git", "init", "-q")
    run("git", "add", "train.py")
    run("git", "commit", "-qm", "train")
    run(binary, "init")
    done = run(binary, "run", "--seed", "5", "--param", "optim.lr=0.5", "--param", "model.depth=3",
               "--", sys.executable, "train.py")
    assert "seed 5 depth 3" in done.stdout
    assert "RuntimeWarning" not in done.stderr
    show = json.loads(run(binary, "show", "latest", "--json").stdout)
    assert show["status"] == "finished", show["status"]
    assert show["params"]["logged"] == {"arch": "mlp"}
    loss = [(m["step"], m["value"]) for m in show["metrics"] if m["key"] == "loss"]
    assert sorted(loss) == [(0, 0.5), (1, 0.25), (2, 0.5 / 3)]
    diverged = [m["value"] for m in show["metrics"] if m["key"] == "diverged"]
    assert diverged == ["Infinity"]
