#!/usr/bin/env python3
"""One large file: `repro data snapshot --reference` against `b3sum` (issue 19: ≥ 0.9× b3sum's
throughput, ≤ 100 MiB resident memory).

Generates one file of `--gib` GiB (deterministic bytes, never committed), then alternates, `--rounds`
times, each under GNU time (wall seconds and peak RSS):

  b3sum FILE                                       the anchor (memory-mapped, every core)
  repro data snapshot FILE --reference --json     a new store each round, so no stat cache answers

The file is larger than the page cache can keep beside everything else on a 24 GiB machine, so both
sides read most of it from disk; they alternate, so neither always follows the other. Run:

    cargo build --release -p repro-cli
    python3 bench/bigfile.py --repro target/release/repro --b3sum /work/bench-tools/bin/b3sum \\
        --gib 20 --work /tmp/bigfile-bench
"""
import argparse
import json
import os
import shutil
import statistics
import subprocess
import time

from benchlib import generate_big, measured


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--repro", default="target/release/repro")
    ap.add_argument("--b3sum", default="/work/bench-tools/bin/b3sum")
    ap.add_argument("--gib", type=float, default=20)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--work", default="/tmp/bigfile-bench")
    ap.add_argument("--out", default="bench/results-bigfile.json")
    args = ap.parse_args()
    repro, b3sum = os.path.abspath(args.repro), os.path.abspath(args.b3sum)
    size = int(args.gib * (1 << 30))
    if os.path.exists(args.work):
        shutil.rmtree(args.work)
    os.makedirs(args.work)
    big = os.path.join(args.work, "big.bin")
    t = time.perf_counter()
    generate_big(big, size)
    print(f"{args.gib:g} GiB generated in {time.perf_counter() - t:.1f} s", flush=True)

    rounds = {"b3sum": [], "repro --reference": []}
    for i in range(args.rounds):
        wall, rss, out = measured([b3sum, big], args.work)
        rounds["b3sum"].append({"s": wall, "rss_mib": rss})
        b3 = out.split()[0]
        store = os.path.join(args.work, f"store{i}")
        os.makedirs(store)
        subprocess.run([repro, "init"], cwd=store, check=True, capture_output=True)
        wall, rss, out = measured([repro, "data", "snapshot", big, "--reference", "--json"], store)
        rounds["repro --reference"].append({"s": wall, "rss_mib": rss})
        assert json.loads(out)["files"] == 1
        # The same work on both sides: the file's digest in the manifest is b3sum's.
        shown = subprocess.run([repro, "data", "show", "big.bin", "--json"], cwd=store, check=True,
                               capture_output=True, text=True).stdout
        digest = json.loads(shown)["entries"][0]["digest"]
        assert digest == f"blake3:{b3}", (digest, b3)
        shutil.rmtree(store)
        print(f"  round {i + 1}: " + ", ".join(f"{k} {v[-1]['s']:.2f} s ({v[-1]['rss_mib']:.0f} MiB)"
                                              for k, v in rounds.items()), flush=True)
    med = {k: statistics.median(r["s"] for r in v) for k, v in rounds.items()}
    rss = {k: max(r["rss_mib"] for r in v) for k, v in rounds.items()}
    anchor = med["b3sum"]
    result = {"gib": args.gib, "rounds": rounds, "median_s": med, "peak_rss_mib": rss,
              "throughput_vs_b3sum": {k: anchor / v for k, v in med.items()}}
    for k, v in med.items():
        print(f"{k:<20} median {v:7.2f} s   {size / v / (1 << 30):6.2f} GiB/s   {anchor / v:5.2f}× b3sum's"
              f" throughput   peak RSS {rss[k]:.0f} MiB")
    with open(args.out, "w") as f:
        json.dump(result, f, indent=1)
    shutil.rmtree(args.work)


if __name__ == "__main__":
    main()
