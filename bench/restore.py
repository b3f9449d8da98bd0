#!/usr/bin/env python3
"""Replay's input restore of a large dataset against `cp` (issue 19: ≤ 1.2× `cp --reflink=auto`,
≤ 1.5× `cp` on a file system without reflinks).

Builds a git repository whose script only opens one large input, `data/big.bin` (deterministic
bytes, generated here, never committed), records it with `repro run --data data/big.bin` (the
snapshot copies it into the store), then runs, `--rounds` times (the order turning each round):

  cp --reflink=auto data/big.bin DEST          the anchor (a reflink where the file system has them)
  repro replay RUN                             restore (reflink or a copy hashed while written) + rerun
  repro replay RUN --link-data                 hard links to the store's objects (hashed once)

On a file system with reflinks, a replay does not read back a clone whose object's stamp says it
is unchanged since it was hashed (`unread_files` in its JSON, recorded per round here). The first
replay after the recording hashes the clone and stamps the object; a `--link-data` replay changes
the object's ctime (a hard link does), so the plain replay after it reads again. `--no-link`
leaves the linked variant out, to measure the stamped replay alone. `restore_s` is a replay's
time less the floor below: what the restore itself cost, to set beside `cp`.

A replay's time is the whole command: the restore plus checking out the commit, checking the
interpreter's packages and running the script (about a second, measured with a 1 MiB input
and reported as `replay_floor_s`). Page cache: the file is smaller than the machine's memory,
so the reads are warm for both sides. Each command is timed until its writes are on disk (`sync`
before, untimed, and after, timed): without it, one command's time depends on how much of the
previous one's 10 GiB the kernel still had to write back (cp measured 4.8 to 11.0 s). With `--cold`
(root) the page cache is dropped before each command too, so both sides read the whole input
from disk: otherwise `cp` reads `data/big.bin` and the replay reads the store's copy, and which of
the two the 24 GiB of memory still holds decides the round. Run:

    cargo build --release -p repro-cli
    python3 bench/restore.py --repro target/release/repro --gib 10 --work /tmp/restore-bench --cold
"""
import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time

from benchlib import generate_big

COLD = False  # --cold: the page cache is dropped before each command


def sh(*args, cwd=None, env=None):
    r = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True)
    if r.returncode != 0:
        raise SystemExit(f"{' '.join(map(str, args))} failed ({r.returncode}): {r.stderr.strip()[-800:]}")
    return r.stdout


def project(repro, work, size):
    if os.path.exists(work):
        shutil.rmtree(work)
    os.makedirs(os.path.join(work, "data"))
    with open(os.path.join(work, "train.py"), "w") as f:
        f.write("with open('data/big.bin', 'rb') as f:\n    f.read(1)\n")
    with open(os.path.join(work, ".gitignore"), "w") as f:
        f.write("data/\n")
    env = dict(os.environ, GIT_AUTHOR_NAME="bench", GIT_AUTHOR_EMAIL="b@x.invalid",
               GIT_COMMITTER_NAME="bench", GIT_COMMITTER_EMAIL="b@x.invalid")
    sh("git", "init", "-q", cwd=work)
    sh("git", "add", "-A", cwd=work)
    sh("git", "commit", "-qm", "bench", cwd=work, env=env)
    sh(repro, "init", cwd=work)
    t = time.perf_counter()
    generate_big(os.path.join(work, "data/big.bin"), size)
    gen = time.perf_counter() - t
    t = time.perf_counter()
    out = sh(repro, "run", "--json", "--seed", "1", "--data", "data/big.bin", "--", sys.executable, "train.py", cwd=work)
    snap = time.perf_counter() - t
    return json.loads(out)["id"], gen, snap


def timed(args, cwd, out=None):
    """Seconds until the command's writes are on disk: `sync` first (untimed, so no command pays
    for the one before it), then the command and `sync` (both sides write the whole input)."""
    subprocess.run(["sync"], check=True)
    if COLD:
        with open("/proc/sys/vm/drop_caches", "w") as f:
            f.write("1\n")
    t = time.perf_counter()
    stdout = sh(*args, cwd=cwd)
    subprocess.run(["sync"], check=True)
    took = time.perf_counter() - t
    if out is not None:
        out.append(stdout)
    return took


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--repro", default="target/release/repro")
    ap.add_argument("--gib", type=float, default=10)
    ap.add_argument("--rounds", type=int, default=6)
    ap.add_argument("--work", default="/tmp/restore-bench")
    ap.add_argument("--out", default="bench/results-restore.json")
    ap.add_argument("--cold", action="store_true",
                    help="drop the page cache before each command (root): every read comes from disk")
    ap.add_argument("--no-link", action="store_true", help="leave out the --link-data replay")
    args = ap.parse_args()
    global COLD
    COLD = args.cold
    repro = os.path.abspath(args.repro)
    size = int(args.gib * (1 << 30))

    floor_run, _, _ = project(repro, args.work + "-floor", 1 << 20)
    floor = statistics.median(timed([repro, "replay", floor_run], args.work + "-floor") for _ in range(3))
    shutil.rmtree(args.work + "-floor")

    run, gen, snap = project(repro, args.work, size)
    print(f"{args.gib:g} GiB generated in {gen:.1f} s, recorded (snapshot into the store) in {snap:.1f} s", flush=True)
    dest = os.path.join(args.work, "cp-dest.bin")
    times = {"cp --reflink=auto": [], "repro replay": []}
    if not args.no_link:
        times["repro replay --link-data"] = []
    unread = []
    def cp():
        times["cp --reflink=auto"].append(timed(["cp", "--reflink=auto", "data/big.bin", dest], args.work))
        os.remove(dest)

    def replay():
        out = []
        times["repro replay"].append(timed([repro, "replay", run, "--json"], args.work, out))
        unread.append(json.loads(out[0])["inputs"][0].get("unread_files", 0))

    def linked():
        times["repro replay --link-data"].append(timed([repro, "replay", run, "--link-data"], args.work))

    for i in range(args.rounds):
        # The order turns each round: the disk's speed drifts over minutes on this VM.
        order = [cp, replay] + ([] if args.no_link else [linked])
        for step in order[i % len(order):] + order[:i % len(order)]:
            step()
        print(f"  round {i + 1}: " + ", ".join(f"{k} {v[-1]:.2f} s" for k, v in times.items())
              + f" (replay's unread files: {unread[-1]})", flush=True)
    med = {k: statistics.median(v) for k, v in times.items()}
    anchor = med["cp --reflink=auto"]
    result = {"gib": args.gib, "replay_floor_s": floor, "generate_s": gen, "record_s": snap, "rounds": times,
              "median_s": med, "ratio_to_cp": {k: v / anchor for k, v in med.items()},
              "replay_unread_files": unread,
              "restore_s": {k: v - floor for k, v in med.items() if k.startswith("repro")}}
    for k, v in med.items():
        print(f"{k:<28} median {v:7.2f} s   {v / anchor:5.2f}× cp   {size / v / (1 << 30):6.2f} GiB/s")
    print(f"replay floor (1 MiB input): {floor:.2f} s; restore (median less the floor): "
          + ", ".join(f"{k} {v:.3f} s" for k, v in result["restore_s"].items()))
    with open(args.out, "w") as f:
        json.dump(result, f, indent=1)
    shutil.rmtree(args.work)


if __name__ == "__main__":
    main()
