#!/usr/bin/env python3
"""Many writers on one shared store: two `repro serve` on one PostgreSQL database + S3 bucket.

16 clients (threads, each with keep-alive connections) each create a run and log 1,000
batches through the MLflow REST API, alternating between the two servers batch by batch.
Every request's latency is kept; afterwards every run's metric history is read back through
the *other* server and the database's row count is checked, so nothing acknowledged may be
missing. For comparison the same load runs, in the same invocation, against one `repro serve`
on the embedded SQLite store.

    bench/shared.py --repro target/release/repro [--clients 16] [--batches 1000] [--points 10]

Needs a PostgreSQL server (--pg, default postgres://postgres@127.0.0.1:5432; a database is
created and dropped) and an S3 endpoint with a bucket (AWS_* variables, as for repro itself;
`eval "$(scripts/s3-server.sh)"` starts moto). Writes --out/shared.json and shared.md.
"""

import argparse
import http.client
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time

from benchlib import free_port, pct
import urllib.request
import uuid


def psql(url, sql):
    return subprocess.run(["psql", "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", url, "-c", sql],
                          check=True, capture_output=True, text=True).stdout.strip()


class Serve:
    def __init__(self, repro, folder):
        self.port = free_port()
        self.proc = subprocess.Popen([repro, "serve", "--port", str(self.port)], cwd=folder,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.time() + 60
        while time.time() < deadline:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{self.port}/health", timeout=1)
                return
            except Exception:
                time.sleep(0.05)
        raise SystemExit(f"repro serve in {folder} did not answer")

    def stop(self):
        self.proc.terminate()
        self.proc.wait(timeout=30)


class Conn:
    """One keep-alive connection per server, per client."""

    def __init__(self, port):
        self.c = http.client.HTTPConnection("127.0.0.1", port, timeout=60)

    def call(self, method, path, body=None):
        data = json.dumps(body).encode() if body is not None else None
        self.c.request(method, path, body=data, headers={"Content-Type": "application/json"})
        r = self.c.getresponse()
        text = r.read()
        if r.status != 200:
            raise RuntimeError(f"{method} {path}: {r.status} {text[:300]!r}")
        return json.loads(text or b"{}")


def load(ports, clients, batches, points):
    """Runs the load; returns (latencies in ms, run ids, wall seconds, errors)."""
    lat, ids, errors = [], [], []
    lock = threading.Lock()
    go = threading.Barrier(clients)

    def client(c):
        conns = [Conn(p) for p in ports]
        mine = []
        try:
            run = conns[c % len(conns)].call("POST", "/api/2.0/mlflow/runs/create", {"experiment_id": "0"})
            rid = run["run"]["info"]["run_id"]
            go.wait()
            for n in range(batches):
                metrics = [{"key": f"m{p}", "value": n * 0.5 + p, "timestamp": 1_700_000_000_000 + n, "step": n}
                           for p in range(points)]
                t0 = time.perf_counter()
                conns[(c + n) % len(conns)].call("POST", "/api/2.0/mlflow/runs/log-batch",
                                                 {"run_id": rid, "metrics": metrics})
                mine.append((time.perf_counter() - t0) * 1000)
            with lock:
                ids.append(rid)
        except Exception as e:  # counted, and the verification below will show what is missing
            with lock:
                errors.append(str(e))
        with lock:
            lat.extend(mine)

    threads = [threading.Thread(target=client, args=(c,)) for c in range(clients)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return lat, ids, time.perf_counter() - t0, errors


def verify(ports, ids, batches, points):
    """Every run's every metric has `batches` points, read through the other server."""
    bad = []
    for i, rid in enumerate(ids):
        conn = Conn(ports[(i + 1) % len(ports)])
        for p in range(points):
            h = conn.call("GET", f"/api/2.0/mlflow/metrics/get-history?run_id={rid}&metric_key=m{p}&max_results=25000")
            n = len(h.get("metrics", []))
            if n != batches:
                bad.append(f"{rid} m{p}: {n} of {batches}")
    return bad


def summary(name, lat, wall, clients, batches, points, ids, bad, errors, rows=None):
    expected = clients * batches
    return {
        "setup": name,
        "clients": clients,
        "batches_per_client": batches,
        "points_per_batch": points,
        "requests_ok": len(lat),
        "requests_expected": expected,
        "errors": errors[:5],
        "runs_complete": len(ids),
        "verify_problems": bad[:5],
        "rows_in_db": rows,
        "wall_s": round(wall, 2),
        "batches_per_s": round(len(lat) / wall, 1) if wall else None,
        "p50_ms": round(pct(lat, 50), 2),
        "p90_ms": round(pct(lat, 90), 2),
        "p99_ms": round(pct(lat, 99), 2),
        "max_ms": round(max(lat), 2) if lat else None,
        "mean_ms": round(statistics.fmean(lat), 2) if lat else None,
    }


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repro", required=True)
    ap.add_argument("--pg", default="postgres://postgres@127.0.0.1:5432")
    ap.add_argument("--bucket", default=os.environ.get("REPRO_BENCH_BUCKET", "repro-bench"))
    ap.add_argument("--clients", type=int, default=16)
    ap.add_argument("--batches", type=int, default=1000)
    ap.add_argument("--points", type=int, default=10)
    ap.add_argument("--out", default="/work/bench-work/results-shared")
    args = ap.parse_args()
    endpoint = os.environ.get("AWS_ENDPOINT_URL")
    if not endpoint:
        raise SystemExit("set the AWS_* variables (eval \"$(scripts/s3-server.sh)\")")
    urllib.request.urlopen(urllib.request.Request(f"{endpoint}/{args.bucket}", method="PUT")).read()
    os.makedirs(args.out, exist_ok=True)
    work = tempfile.mkdtemp(prefix="repro-shared-bench-")
    db = "bench_" + uuid.uuid4().hex
    psql(f"{args.pg}/postgres", f"CREATE DATABASE {db}")
    results = []
    try:
        # The shared store: two folders (two machines), one database, one bucket prefix.
        backend = ["--db", f"{args.pg}/{db}", "--objects", f"s3://{args.bucket}/{db}"]
        folders = [os.path.join(work, n) for n in ("a", "b")]
        for f in folders:
            os.makedirs(f)
            subprocess.run([args.repro, "init", *backend], cwd=f, check=True, capture_output=True)
        servers = [Serve(args.repro, f) for f in folders]
        ports = [s.port for s in servers]
        lat, ids, wall, errors = load(ports, args.clients, args.batches, args.points)
        bad = verify(ports, ids, args.batches, args.points)
        rows = int(psql(f"{args.pg}/{db}", "SELECT COUNT(*) FROM metrics"))
        for s in servers:
            s.stop()
        results.append(summary("2 × repro serve, PostgreSQL + S3", lat, wall, args.clients, args.batches,
                               args.points, ids, bad, errors, rows))
        # The same load on one server and the embedded store, for comparison.
        solo = os.path.join(work, "solo")
        os.makedirs(solo)
        subprocess.run([args.repro, "init"], cwd=solo, check=True, capture_output=True)
        server = Serve(args.repro, solo)
        lat, ids, wall, errors = load([server.port], args.clients, args.batches, args.points)
        bad = verify([server.port], ids, args.batches, args.points)
        server.stop()
        results.append(summary("1 × repro serve, SQLite (embedded)", lat, wall, args.clients, args.batches,
                               args.points, ids, bad, errors))
    finally:
        try:
            psql(f"{args.pg}/postgres", f"DROP DATABASE IF EXISTS {db} WITH (FORCE)")
        finally:
            shutil.rmtree(work, ignore_errors=True)
    with open(os.path.join(args.out, "shared.json"), "w") as f:
        json.dump(results, f, indent=2)
    lines = ["| setup | batches ok | lost | wall | batches/s | p50 | p90 | p99 | max |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in results:
        lost = len(r["verify_problems"]) + (r["requests_expected"] - r["requests_ok"])
        lines.append(f"| {r['setup']} | {r['requests_ok']:,} / {r['requests_expected']:,} | {lost} | {r['wall_s']} s "
                     f"| {r['batches_per_s']} | {r['p50_ms']} ms | {r['p90_ms']} ms | {r['p99_ms']} ms | {r['max_ms']} ms |")
    table = "\n".join(lines)
    with open(os.path.join(args.out, "shared.md"), "w") as f:
        f.write(table + "\n")
    print(table)
    print(json.dumps(results, indent=2))
    ok = all(r["requests_ok"] == r["requests_expected"] and not r["verify_problems"] for r in results)
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
