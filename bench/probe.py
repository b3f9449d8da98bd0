#!/usr/bin/env python3
"""The in-process probe's cost (issue 16), side by side in one run: each workload with and
without the probe, runs alternating so drift hits both sides alike; medians and spreads.

    bench/probe.py --python VENV/bin/python [--repro target/release/repro] [--runs 30]

1. `python -c pass`: start-up cost of the probe            target <= +15 ms
2. a script opening 20,000 small files (read each)         target <= +3 %
3. `repro run -- python -c pass` against the bare command  target <= +30 ms   (needs --repro)
4. a PyTorch script: import torch, 1 epoch of a small MLP  target <= +5 %     (needs torch)

The probe is the very file `repro run` installs (crates/repro-exec/src/run/sitecustomize.py),
put in a folder and compiled once, as repro does.
"""
import argparse
import os
import py_compile
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

FILES_SCRIPT = """
import os
root = os.environ["BENCH_FILES"]
n = 0
for d in sorted(os.listdir(root)):
    for f in sorted(os.listdir(os.path.join(root, d))):
        with open(os.path.join(root, d, f), "rb") as fh:
            n += len(fh.read())
print(n)
"""

TORCH_SCRIPT = """
import torch
torch.manual_seed(0)
x, y = torch.randn(4096, 32), torch.randn(4096, 1)
model = torch.nn.Sequential(torch.nn.Linear(32, 64), torch.nn.ReLU(), torch.nn.Linear(64, 1))
opt = torch.optim.SGD(model.parameters(), lr=0.01)
for i in range(0, 4096, 64):
    opt.zero_grad()
    torch.nn.functional.mse_loss(model(x[i:i+64]), y[i:i+64]).backward()
    opt.step()
"""


def timed(cmd, env, cwd):
    start = time.perf_counter()
    subprocess.run(cmd, env=env, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
    return (time.perf_counter() - start) * 1000


def compare(name, a_cmd, a_env, b_cmd, b_env, runs, cwd, warmup=2):
    for _ in range(warmup):
        timed(a_cmd, a_env, cwd)
        timed(b_cmd, b_env, cwd)
    a, b = [], []
    for _ in range(runs):
        a.append(timed(a_cmd, a_env, cwd))
        b.append(timed(b_cmd, b_env, cwd))
    ma, mb = statistics.median(a), statistics.median(b)
    sa, sb = statistics.pstdev(a), statistics.pstdev(b)
    return {"name": name, "without": ma, "without_sd": sa, "with": mb, "with_sd": sb,
            "delta_ms": mb - ma, "delta_pct": (mb - ma) / ma * 100}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--python", required=True)
    ap.add_argument("--repro")
    ap.add_argument("--runs", type=int, default=30)
    ap.add_argument("--torch-runs", type=int, default=8)
    args = ap.parse_args()

    work = top = tempfile.mkdtemp(prefix="bench-probe-")
    try:
        probe = os.path.join(work, "probe")
        os.makedirs(probe)
        shutil.copy(os.path.join(ROOT, "crates/repro-exec/src/run/sitecustomize.py"), probe)
        subprocess.run([args.python, "-c", "import py_compile, sys; py_compile.compile(sys.argv[1], doraise=True)",
                        os.path.join(probe, "sitecustomize.py")], check=True)
        reports = os.path.join(work, "reports")
        os.makedirs(reports)
        base = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "REPRO_PROBE_DIR")}
        base["PYTHONDONTWRITEBYTECODE"] = "1"
        probed = dict(base, PYTHONPATH=probe, REPRO_PROBE_DIR=reports)

        files = os.path.join(work, "files")
        for d in range(100):
            os.makedirs(os.path.join(files, "d%03d" % d))
            for f in range(200):
                with open(os.path.join(files, "d%03d" % d, "f%03d.bin" % f), "wb") as fh:
                    fh.write(os.urandom(1024 + (f * 37) % 7168))
        with open(os.path.join(work, "files.py"), "w") as fh:
            fh.write(FILES_SCRIPT)
        with open(os.path.join(work, "torch_mlp.py"), "w") as fh:
            fh.write(TORCH_SCRIPT)
        base["BENCH_FILES"] = probed["BENCH_FILES"] = files

        results = []
        py = [args.python]
        results.append(compare("python -c pass", py + ["-c", "pass"], base, py + ["-c", "pass"], probed, args.runs, work))
        results.append(compare("20,000 small files read", py + ["files.py"], base, py + ["files.py"], probed,
                               max(5, args.runs // 3), work))
        if args.repro:
            # A repository of its own: the 20,000 files above would be untracked files of it.
            repo = os.path.join(work, "repo")
            os.makedirs(repo)
            subprocess.run(["git", "init", "-q"], cwd=repo, check=True)
            subprocess.run([args.repro, "init"], cwd=repo, check=True, stdout=subprocess.DEVNULL)
            work = repo
            results.append(compare("repro run -- python -c pass (vs bare)", py + ["-c", "pass"], base,
                                   [args.repro, "run", "--seed", "1", "--", args.python, "-c", "pass"], base,
                                   args.runs, work))
            results.append(compare("repro run --no-probe -- python -c pass (vs bare)", py + ["-c", "pass"], base,
                                   [args.repro, "run", "--no-probe", "--seed", "1", "--", args.python, "-c", "pass"],
                                   base, args.runs, work))
        has_torch = subprocess.run(py + ["-c", "import torch"], env=base, capture_output=True).returncode == 0
        if has_torch and args.torch_runs > 0:
            results.append(compare("PyTorch: import, 1 epoch of an MLP", py + ["torch_mlp.py"], base,
                                   py + ["torch_mlp.py"], probed, args.torch_runs, top))
        print("| workload | without probe | with probe | difference |")
        print("|---|---|---|---|")
        for r in results:
            print("| %s | %.1f ± %.1f ms | %.1f ± %.1f ms | %+.1f ms (%+.1f %%) |" % (
                r["name"], r["without"], r["without_sd"], r["with"], r["with_sd"], r["delta_ms"], r["delta_pct"]))
    finally:
        shutil.rmtree(top, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
