#!/usr/bin/env python3
"""A store whose objects are in S3 (issue 19): a cold upload of many small files against
`aws s3 sync` to the same server, and re-snapshots of an unchanged or barely changed tree against
the same re-snapshots on a local store, with the requests each sends to the bucket.

Starts (or reuses) moto on `--port` with scripts/s3-server.sh — the server repro's own S3 tests
use, in memory, single process — and generates `--files` files of `--kib` KiB (deterministic bytes,
never committed) in 20 × 10 folders. Then:

  cold upload, `--rounds` times, the order turning each round, each to a fresh prefix:
    aws s3 sync TREE s3://BUCKET/sync-N          the anchor (10 requests in flight, its default)
    repro data snapshot TREE                     a new store with `--objects s3://BUCKET/repro-N`:
                                                 hashes, copies into .repro/objects, syncs, uploads
  re-snapshot of the unchanged tree, `--reps` times each, a local store against the S3 store;
  one file changed, then a re-snapshot (on both stores); and the same one-file change on the S3
  store without its memory of the bucket (`.repro/bucket-objects` removed first), which is what
  every re-snapshot cost before issue 19.

Requests are counted by repro itself (its `repro_store::remote` debug trace). Run:

    cargo build --release -p repro-cli
    python3 bench/s3.py --repro target/release/repro --files 20000 --kib 50 --work /tmp/s3-bench
"""
import argparse
import json
import os
import random
import shutil
import statistics
import subprocess
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)


def sh(*args, cwd=None, env=None):
    r = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True)
    if r.returncode != 0:
        raise SystemExit(f"{' '.join(map(str, args))} failed ({r.returncode}): {r.stderr.strip()[-800:]}")
    return r


def s3_env(port):
    out = sh("bash", os.path.join(REPO, "scripts/s3-server.sh"), "start", str(port)).stdout
    env = dict(os.environ)
    for line in out.splitlines():
        if line.startswith("export "):
            k, v = line[len("export "):].split("=", 1)
            env[k] = v
    return env


def generate(tree, files, kib):
    rng = random.Random(19)
    base = bytearray(rng.randbytes(kib * 1024))
    for i in range(files):
        d = os.path.join(tree, f"d{i % 20:02}", f"s{(i // 20) % 10}")
        os.makedirs(d, exist_ok=True)
        base[:8] = i.to_bytes(8, "little")  # every file differs
        with open(os.path.join(d, f"f{i:07}.bin"), "wb") as f:
            f.write(base)
    # Older than the stat cache's two-second window, as a dataset on disk is.
    past = time.time() - 3600
    for root, _, names in os.walk(tree):
        for n in names:
            os.utime(os.path.join(root, n), (past, past))


def snapshot(repro, store, tree, env):
    """(seconds, outcome, bucket requests) of one `repro data snapshot`."""
    env = dict(env, RUST_LOG="repro_store::remote=debug", NO_COLOR="1")
    t = time.perf_counter()
    r = sh(repro, "data", "snapshot", tree, "--json", cwd=store, env=env)
    s = time.perf_counter() - t
    requests = [int(line.split("requests=")[1].split()[0]) for line in r.stderr.splitlines() if "requests=" in line]
    # No trace at all: a local store, which sends nothing.
    return s, json.loads(r.stdout), (requests[-1] if requests else 0)


def new_store(repro, path, env, objects=None):
    if os.path.exists(path):
        shutil.rmtree(path)
    os.makedirs(path)
    sh(repro, "init", *(["--objects", objects] if objects else []), cwd=path, env=env)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--repro", default="target/release/repro")
    ap.add_argument("--aws", default=shutil.which("aws") or "aws")
    ap.add_argument("--files", type=int, default=20000)
    ap.add_argument("--kib", type=int, default=50)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--reps", type=int, default=10)
    ap.add_argument("--port", type=int, default=9100)
    ap.add_argument("--work", default="/tmp/s3-bench")
    ap.add_argument("--out", default="bench/results-s3.json")
    args = ap.parse_args()
    repro = os.path.abspath(args.repro)
    env = s3_env(args.port)
    endpoint = env["AWS_ENDPOINT_URL"]
    bucket = f"bench-{int(time.time())}"
    sh(args.aws, "s3", "mb", f"s3://{bucket}", "--endpoint-url", endpoint, env=env)
    if os.path.exists(args.work):
        shutil.rmtree(args.work)
    tree = os.path.join(args.work, "tree")
    t = time.perf_counter()
    generate(tree, args.files, args.kib)
    print(f"{args.files} × {args.kib} KiB generated in {time.perf_counter() - t:.1f} s", flush=True)
    result = {"files": args.files, "kib": args.kib, "aws": sh(args.aws, "--version").stdout.strip()
              or sh(args.aws, "--version").stderr.strip(), "cold": {"aws s3 sync": [], "repro data snapshot": []}}

    def aws(i):
        t = time.perf_counter()
        sh(args.aws, "s3", "sync", tree, f"s3://{bucket}/sync-{i}", "--endpoint-url", endpoint,
           "--only-show-errors", env=env)
        result["cold"]["aws s3 sync"].append(time.perf_counter() - t)

    def repro_cold(i):
        store = os.path.join(args.work, f"store-s3-{i}")
        new_store(repro, store, env, f"s3://{bucket}/repro-{i}")
        s, out, requests = snapshot(repro, store, tree, env)
        # Every file, and the manifest (a root and its chunks past 8,192 files).
        assert out["new_objects"] > args.files, out
        result["cold"]["repro data snapshot"].append(s)
        result.setdefault("cold_requests", requests)

    for i in range(args.rounds):
        for step in ([aws, repro_cold] if i % 2 == 0 else [repro_cold, aws]):
            step(i)
        print(f"  cold round {i + 1}: " + ", ".join(f"{k} {v[-1]:.2f} s" for k, v in result["cold"].items()),
              flush=True)

    # Re-snapshots: the last S3 store (its cache of the tree is warm) against a local store.
    s3_store = os.path.join(args.work, f"store-s3-{args.rounds - 1}")
    local = os.path.join(args.work, "store-local")
    new_store(repro, local, env)
    snapshot(repro, local, tree, env)
    warm = {"local": [], "s3": []}
    requests = {}
    for _ in range(args.reps):
        for name, store in (("local", local), ("s3", s3_store)):
            s, out, n = snapshot(repro, store, tree, env)
            assert out["hashed_files"] == 0, out
            warm[name].append(s)
            requests[f"unchanged {name}"] = n
    result["unchanged"] = warm
    victim = os.path.join(tree, "d00", "s0", "f0000000.bin")
    with open(victim, "ab") as f:
        f.write(b"changed")
    past = time.time() - 3600
    os.utime(victim, (past, past))
    one = {}
    for name, store in (("local", local), ("s3", s3_store)):
        s, out, n = snapshot(repro, store, tree, env)
        # The file and the manifest: one object, or a chunk and the root.
        assert out["hashed_files"] == 1 and out["new_objects"] in (2, 3), out
        one[name] = s
        requests[f"one changed {name}"] = n
    # The same change again, on the S3 store, without what it remembers of the bucket.
    with open(victim, "ab") as f:
        f.write(b"again")
    os.utime(victim, (past, past))
    os.remove(os.path.join(s3_store, ".repro", "bucket-objects"))
    s, out, n = snapshot(repro, s3_store, tree, env)
    one["s3, bucket-objects removed"] = s
    requests["one changed s3, bucket-objects removed"] = n
    result["one_changed"] = one
    result["requests"] = requests

    med = {k: statistics.median(v) for k, v in result["cold"].items()}
    print(f"cold upload of {args.files} × {args.kib} KiB (median of {args.rounds}):")
    for k, v in med.items():
        print(f"  {k:<22} {v:7.2f} s   {med['aws s3 sync'] / v:5.2f}× aws s3 sync's speed")
    wm = {k: statistics.median(v) for k, v in warm.items()}
    print(f"unchanged re-snapshot (median of {args.reps}): local {wm['local'] * 1000:.0f} ms, "
          f"S3 {wm['s3'] * 1000:.0f} ms ({wm['s3'] / wm['local']:.2f}× local)")
    print("one file changed: " + ", ".join(f"{k} {v * 1000:.0f} ms" for k, v in one.items()))
    print("bucket requests: " + ", ".join(f"{k} {v}" for k, v in requests.items()) + f", cold {result['cold_requests']}")
    result["median_s"] = {"cold": med, "unchanged": wm}
    with open(args.out, "w") as f:
        json.dump(result, f, indent=1)
    shutil.rmtree(args.work)


if __name__ == "__main__":
    main()
