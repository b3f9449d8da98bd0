#!/usr/bin/env python3
"""The wheel and the static binary (issue 20): the wheel's size, installed size, and the
start-up time of `repro --version` from it, side by side with the anchor `uv --version` (a
Rust binary shipped the same way) in one hyperfine run. With --gnu, the glibc build of the
same commit too, and a 20,000-file `repro data snapshot --reference` with each binary, to see
what musl's allocator costs on a parallel workload.

    python3 bench/dist.py --wheel target/wheels-release/repro_ml-…whl --uv target/wheel-tools/bin/uv \
        [--gnu target/release/repro] [--out bench/results-dist.json]

Needs hyperfine. Standard library only.
"""

import argparse
import json
import os
import pathlib
import random
import shutil
import subprocess
import sys
import tempfile
import venv
import zipfile


def hyperfine(commands, runs, warmup, cwd, export):
    args = ["hyperfine", "-N", "--warmup", str(warmup), "--runs", str(runs), "--export-json", export]
    for name, cmd in commands:
        args += ["-n", name, cmd]
    subprocess.run(args, cwd=cwd, check=True)
    with open(export) as f:
        return {r["command"]: r for r in json.load(f)["results"]}


def tree_size(path):
    return sum(p.stat().st_size for p in pathlib.Path(path).rglob("*") if p.is_file() and not p.is_symlink())


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--wheel", required=True)
    ap.add_argument("--uv", required=True, help="the anchor: a uv binary")
    ap.add_argument("--gnu", help="a glibc build of repro to compare with")
    ap.add_argument("--files", type=int, default=20000)
    ap.add_argument("--out", default="bench/results-dist.json")
    a = ap.parse_args()
    a.uv = os.path.abspath(a.uv)
    a.gnu = a.gnu and os.path.abspath(a.gnu)
    work = pathlib.Path(tempfile.mkdtemp(prefix="repro-dist-bench."))
    try:
        wheel = pathlib.Path(a.wheel).resolve()
        with zipfile.ZipFile(wheel) as z:
            members = {i.filename: (i.file_size, i.compress_size) for i in z.infolist()}
        binary = next(n for n in members if n.endswith(".data/scripts/repro"))
        env_dir = work / "venv"
        venv.create(env_dir, with_pip=True)
        subprocess.run([env_dir / "bin/pip", "install", "-q", "--disable-pip-version-check", wheel], check=True)
        repro = env_dir / "bin/repro"
        result = {
            "wheel": wheel.name,
            "wheel_bytes": wheel.stat().st_size,
            "binary_bytes": members[binary][0],
            "binary_compressed_bytes": members[binary][1],
        }
        bare = work / "bare"
        venv.create(bare, with_pip=True)
        result["installed_bytes"] = tree_size(env_dir) - tree_size(bare)
        commands = [("repro --version (wheel, musl static)", f"{repro} --version"), ("uv --version", f"{a.uv} --version")]
        if a.gnu:
            commands.insert(1, ("repro --version (glibc)", f"{a.gnu} --version"))
        result["startup"] = {
            k: {"mean_ms": v["mean"] * 1000, "stddev_ms": v["stddev"] * 1000, "min_ms": v["min"] * 1000}
            for k, v in hyperfine(commands, 200, 20, work, str(work / "startup.json")).items()
        }
        if a.gnu:
            data = work / "data"
            rng = random.Random(20)
            for i in range(a.files):
                d = data / f"d{i % 100:03d}"
                d.mkdir(parents=True, exist_ok=True)
                (d / f"f{i:06d}.bin").write_bytes(rng.randbytes(4096))
            store = work / "store"
            # A fresh store before each run, so that every file is hashed (no stat cache).
            prepare = f"rm -rf {store} && mkdir {store} && cd {store} && git init -q && {repro} init >/dev/null"
            snap = lambda b: f"{b} --store {store} data snapshot --reference {data} --name d --json"
            args = ["hyperfine", "--warmup", "1", "--runs", "5", "--prepare", prepare,
                    "--export-json", str(work / "snapshot.json"),
                    "-n", "snapshot --reference (musl)", snap(repro), "-n", "snapshot --reference (glibc)", snap(a.gnu)]
            subprocess.run(args, cwd=work, check=True)
            runs = {r["command"]: r for r in json.loads((work / "snapshot.json").read_text())["results"]}
            result["snapshot_reference"] = {k: {"mean_s": v["mean"], "stddev_s": v["stddev"]} for k, v in runs.items()}
            result["snapshot_files"] = a.files
        print(json.dumps(result, indent=2))
        pathlib.Path(a.out).write_text(json.dumps(result, indent=2) + "\n")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
