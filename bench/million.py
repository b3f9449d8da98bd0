#!/usr/bin/env python3
"""A million small files (issue 19): `repro data snapshot` of `--files` files of 1–8 KiB in nested
folders, against `find | xargs -P2 b3sum` (hashing) and, when `--dvc` is given, `dvc add` (copying,
cache.type copy) and `dvc status` (unchanged), in one run.

Each command runs under GNU time (wall seconds, peak RSS). The tree is read once before anything is
timed, so every side starts with it in the page cache (the issue excludes the cold cache). Workloads:

  hash     b3sum: find TREE -type f -print0 | xargs -0 -P2 -n 2000 b3sum --no-mmap --num-threads 1
           repro data snapshot TREE --reference   (a new store each time: no stat cache)
  copy     repro data snapshot TREE               (a new store: hashes, copies into .repro/objects, syncs)
           dvc add TREE                           (a new git + dvc repository, cache.type copy; --dvc)
  again    repro data snapshot TREE               (the copying store again: nothing changed)
           dvc status                             (--dvc)
  one      one file rewritten (new content, an hour-old mtime), then repro data snapshot TREE;
           the bytes the snapshot wrote (its manifest and the one object) are reported

Generate once and keep the tree between runs with `--keep` (generation takes minutes). Run:

    cargo build --release -p repro-cli
    python3 bench/million.py --repro target/release/repro --b3sum /work/bench-tools/bin/b3sum \\
        --files 1000000 --work /tmp/million
"""
import argparse
import json
import os
import random
import shutil
import statistics
import subprocess
import time

from benchlib import measured


def generate(tree, files):
    """`files` files of 1–8 KiB: 100 folders × 100 folders × up to 100 files, deterministic."""
    rng = random.Random(19)
    pool = rng.randbytes(8192 + 64)
    for i in range(files):
        d = os.path.join(tree, f"p{i // 10000:03}", f"q{(i // 100) % 100:02}")
        if i % 100 == 0:
            os.makedirs(d, exist_ok=True)
        size = 1024 + (i * 7919) % (7 * 1024 + 1)
        start = i % 64
        with open(os.path.join(d, f"f{i:07}.bin"), "wb") as f:
            f.write(i.to_bytes(8, "little") + pool[start:start + size - 8])
    past = time.time() - 3600
    for root, _, names in os.walk(tree):
        for n in names:
            os.utime(os.path.join(root, n), (past, past))


def warm(tree):
    subprocess.run(f"find '{tree}' -type f -print0 | xargs -0 cat > /dev/null", shell=True, check=True)


def new_store(repro, path):
    if os.path.exists(path):
        shutil.rmtree(path)
    os.makedirs(path)
    subprocess.run([repro, "init"], cwd=path, check=True, capture_output=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--repro", default="target/release/repro")
    ap.add_argument("--b3sum", default="/work/bench-tools/bin/b3sum")
    ap.add_argument("--dvc", default=None, help="the dvc executable (dvc add and dvc status are skipped without it)")
    ap.add_argument("--dvc-limit", type=int, default=1800, help="seconds dvc add may take before it is stopped")
    ap.add_argument("--files", type=int, default=1_000_000)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--work", default="/tmp/million")
    ap.add_argument("--keep", action="store_true", help="keep the generated tree for the next run")
    ap.add_argument("--out", default="bench/results-million.json")
    args = ap.parse_args()
    repro, b3sum = os.path.abspath(args.repro), os.path.abspath(args.b3sum)
    tree = os.path.join(args.work, "tree")
    marker = os.path.join(args.work, f"generated-{args.files}")
    if not os.path.exists(marker):
        shutil.rmtree(args.work, ignore_errors=True)
        t = time.perf_counter()
        generate(tree, args.files)
        open(marker, "w").close()
        print(f"{args.files} files generated in {time.perf_counter() - t:.0f} s", flush=True)
    dvc_repo = os.path.join(args.work, "dvc")
    if args.dvc:
        # A copy of its own, made before anything is timed: sharing inodes by hard links,
        # `dvc add` changed every file's ctime (and a hard link alone changes it too), so
        # repro's next snapshot of the tree hashed it all again (42 s in the run of 2026-12-07).
        shutil.rmtree(dvc_repo, ignore_errors=True)
        os.makedirs(dvc_repo)
        subprocess.run(["git", "init", "-q"], cwd=dvc_repo, check=True)
        subprocess.run([args.dvc, "init", "-q"], cwd=dvc_repo, check=True)
        subprocess.run([args.dvc, "config", "cache.type", "copy"], cwd=dvc_repo, check=True)
        subprocess.run(["cp", "-a", tree, os.path.join(dvc_repo, "tree")], check=True)
    tree_bytes = int(subprocess.run(["du", "-sb", tree], capture_output=True, text=True).stdout.split()[0])
    warm(tree)
    res = {"files": args.files, "tree_bytes": tree_bytes, "runs": {}}

    def record(name, wall, rss, extra=None):
        res["runs"].setdefault(name, []).append(dict({"s": wall, "rss_mib": rss}, **(extra or {})))
        print(f"  {name:<34} {wall:7.2f} s  {rss:6.0f} MiB" + (f"  {extra}" if extra else ""), flush=True)

    b3 = (f"find '{tree}' -type f -print0 | xargs -0 -P2 -n 2000 '{b3sum}' --no-mmap --num-threads 1 > /dev/null")
    ref_store = os.path.join(args.work, "store-ref")
    for _ in range(args.reps):
        record("b3sum (find | xargs -P2)", *measured(b3, args.work, shell=True)[:2])
        new_store(repro, ref_store)
        wall, rss, out = measured([repro, "data", "snapshot", tree, "--reference", "--json"], ref_store)
        record("repro --reference", wall, rss, {"hashed": json.loads(out)["hashed_files"]})
    shutil.rmtree(ref_store)

    store = os.path.join(args.work, "store")
    new_store(repro, store)
    wall, rss, out = measured([repro, "data", "snapshot", tree, "--json"], store)
    record("repro copying snapshot", wall, rss, {"new_objects": json.loads(out)["new_objects"]})
    dvc_added = False
    if args.dvc:
        # Bounded: at a million files `dvc add` can run for hours; past the limit the run says
        # so (a lower bound) and leaves `dvc status` out.
        try:
            wall, rss, _ = measured(["timeout", str(args.dvc_limit), args.dvc, "add", "-q", "tree"], dvc_repo)
            record("dvc add (cache.type copy)", wall, rss)
            dvc_added = True
        except SystemExit:
            res["dvc_add_unfinished_after_s"] = args.dvc_limit
            print(f"  dvc add (cache.type copy)          did not finish in {args.dvc_limit} s", flush=True)
    for _ in range(args.reps):
        wall, rss, out = measured([repro, "data", "snapshot", tree, "--json"], store)
        record("repro unchanged re-snapshot", wall, rss, {"hashed": json.loads(out)["hashed_files"]})
        if dvc_added:
            record("dvc status", *measured([args.dvc, "status", "-q"], dvc_repo)[:2])
    for i in range(args.reps):
        n = args.files // 2 + i * 17
        victim = os.path.join(tree, f"p{n // 10000:03}", f"q{(n // 100) % 100:02}", f"f{n:07}.bin")
        assert os.path.isfile(victim), victim
        with open(victim, "ab") as f:
            f.write(f"changed {time.time()}".encode())
        past = time.time() - 3600
        os.utime(victim, (past, past))
        wall, rss, out = measured([repro, "data", "snapshot", tree, "--json"], store)
        o = json.loads(out)
        record("repro one file changed", wall, rss, {"hashed": o["hashed_files"], "new_bytes": o["new_bytes"]})
    res["median_s"] = {k: statistics.median(r["s"] for r in v) for k, v in res["runs"].items()}
    res["peak_rss_mib"] = {k: max(r["rss_mib"] for r in v) for k, v in res["runs"].items()}
    with open(args.out, "w") as f:
        json.dump(res, f, indent=1)
    for k, v in res["median_s"].items():
        print(f"{k:<34} median {v:7.2f} s   peak RSS {res['peak_rss_mib'][k]:6.0f} MiB")
    shutil.rmtree(store)
    if not args.keep:
        shutil.rmtree(args.work)


if __name__ == "__main__":
    main()
