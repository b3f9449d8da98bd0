"""Tracking-server benchmark: `repro serve` vs `mlflow server`, side by side, same client.

Run by `BENCH_ONLY=server bench/run.sh` with the Python of the MLflow venv that
`BENCH_SETUP_ONLY=server bench/setup.sh` made (mlflow 3.17.2, server and client).

For each server, in a fresh folder of its own (repro: `repro init`; MLflow: a new SQLite file):
start it on a free loopback port and time start-up to a healthy `GET /health`; sum the idle
RSS (and PSS) of its process tree from /proc. Then, with both servers up, set each one up and
run `--rounds` rounds of the client-side measurements, alternating which server goes first, so
that the machine's drift falls on both alike (the summary takes each figure's median over the
rounds and shows each round's ratio). The same `MlflowClient` measures:

* bare HTTP floor: `GET /health` on a `requests.Session` (p50), and, to split the time, a raw
  `POST runs/log-metric` of the same JSON the client sends, on a `requests.Session`;
* one-by-one `log_metric` (rate and per-call p50);
* `log_batch` of 1,000 metrics (metrics/s);
* `create_run` (runs/s);
* `search_runs` with `params.lr = '0.01' and metrics.acc > 0.5` over 2,000 runs (p50/p95);
* `get_metric_history` of a 10,000-point metric (p50);
* repro only: the same search over 20,000, 50,000 and 100,000 runs (grown in the same experiment,
  with raw requests so that the set-up takes minutes, not the client's hours), unless the
  projected set-up time passes the cap; then the largest size reached is reported.

Every request goes to 127.0.0.1 only; every loop is bounded. Prints a table, writes JSON.
"""

import argparse
import json
import os
import random
import shutil
import signal
import statistics
import subprocess
import sys
import threading
import time

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "600")

import requests  # noqa: E402
from mlflow.entities import Metric, Param, RunTag  # noqa: E402
from mlflow.tracking import MlflowClient  # noqa: E402
import mlflow  # noqa: E402

from benchlib import free_port, pct  # noqa: E402

FILTER = "params.lr = '0.01' and metrics.acc > 0.5"
LRS = ["0.1", "0.01", "0.001"]


# ---- helpers -----------------------------------------------------------------------------


def loadavg():
    with open("/proc/loadavg") as f:
        return " ".join(f.read().split()[:3])


def children_map():
    kids = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/stat") as f:
                s = f.read()
            ppid = int(s[s.rindex(")") + 2 :].split()[1])
        except (OSError, ValueError):
            continue
        kids.setdefault(ppid, []).append(int(d))
    return kids


def tree(pid):
    kids, out, todo = children_map(), [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(kids.get(p, []))
    return out


def memory(pid):
    """RSS and PSS (KiB) summed over the process tree under pid, and the processes."""
    rss = pss = 0
    procs = []
    for p in tree(pid):
        try:
            with open(f"/proc/{p}/status") as f:
                st = dict(line.split(":", 1) for line in f if ":" in line)
            r = int(st.get("VmRSS", "0 kB").split()[0])
            ps = 0
            with open(f"/proc/{p}/smaps_rollup") as f:
                for line in f:
                    if line.startswith("Pss:"):
                        ps = int(line.split()[1])
            with open(f"/proc/{p}/cmdline", "rb") as f:
                cmd = f.read().replace(b"\0", b" ").decode(errors="replace").strip()
        except OSError:
            continue
        rss += r
        pss += ps
        procs.append({"pid": p, "rss_kib": r, "pss_kib": ps, "cmd": cmd[:160]})
    return rss, pss, procs


# ---- the servers ---------------------------------------------------------------------------


class Server:
    """One server process (its own session, so its whole tree can be stopped), in `folder`."""

    def __init__(self, kind, folder, repro_bin, mlflow_bin):
        self.kind, self.folder = kind, folder
        self.repro_bin, self.mlflow_bin = repro_bin, mlflow_bin
        self.proc = None
        self.port = None
        self.init_s = 0.0

    @property
    def url(self):
        return f"http://127.0.0.1:{self.port}"

    def prepare(self):
        """Creates the fresh store (repro init; MLflow creates its SQLite file when it starts)."""
        os.makedirs(self.folder)
        if self.kind == "repro":
            t = time.perf_counter()
            subprocess.run([self.repro_bin, "init"], cwd=self.folder, check=True, stdout=subprocess.DEVNULL)
            self.init_s = time.perf_counter() - t

    def start(self, timeout=120):
        """Starts the server; returns seconds from spawn to the first 200 from /health."""
        self.port = free_port()
        if self.kind == "repro":
            cmd = [self.repro_bin, "serve", "--host", "127.0.0.1", "--port", str(self.port)]
        else:
            cmd = [
                self.mlflow_bin, "server",
                "--backend-store-uri", f"sqlite:///{self.folder}/mlflow.db",
                "--default-artifact-root", f"{self.folder}/artifacts",
                "--host", "127.0.0.1", "--port", str(self.port), "--workers", "1",
            ]
        log = open(os.path.join(self.folder, "server.log"), "wb")
        s = requests.Session()
        t0 = time.perf_counter()
        self.proc = subprocess.Popen(cmd, cwd=self.folder, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.kind} exited with {self.proc.returncode}; see {self.folder}/server.log")
            try:
                if s.get(self.url + "/health", timeout=2).status_code == 200:
                    return time.perf_counter() - t0
            except requests.RequestException:
                pass
            if time.perf_counter() - t0 > timeout:
                raise RuntimeError(f"{self.kind} not healthy after {timeout} s")
            time.sleep(0.005)

    def stop(self):
        if self.proc is None:
            return
        try:
            os.killpg(self.proc.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
        # Workers that outlived the parent (same session): end them too.
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.proc = None


# ---- the measurements ----------------------------------------------------------------------


def timed(f, n):
    """Calls f(i) n times; returns total seconds and each call's seconds."""
    each = []
    t0 = time.perf_counter()
    for i in range(n):
        t = time.perf_counter()
        f(i)
        each.append(time.perf_counter() - t)
    return time.perf_counter() - t0, each


def ms(x):
    return x * 1000.0


def seed_runs(client, exp_id, n, rng, offset=0):
    """n runs, each created with create_run and filled with one log_batch (3 params, 3 metrics)."""
    ts = int(time.time() * 1000)
    for i in range(offset, offset + n):
        run = client.create_run(exp_id, run_name=f"r{i}")
        client.log_batch(
            run.info.run_id,
            metrics=[Metric("acc", rng.random(), ts, 0), Metric("loss", rng.random(), ts, 0),
                     Metric("epoch", float(i % 10), ts, 0)],
            params=[Param("lr", LRS[i % 3]), Param("batch_size", str(32 << (i % 3))),
                    Param("seed", str(i))],
            tags=[RunTag("bench", "search")],
        )


def seed_runs_raw(url, exp_id, n, rng, offset=0, threads=2):
    """Same runs as seed_runs, through raw requests (the bulk set-up for the 100,000-run search)."""
    api = url + "/api/2.0/mlflow"
    ts = int(time.time() * 1000)
    vals = [(i, rng.random(), rng.random()) for i in range(offset, offset + n)]
    errors = []

    def work(part):
        s = requests.Session()
        for i, acc, loss in part:
            r = s.post(api + "/runs/create", json={"experiment_id": exp_id, "run_name": f"r{i}", "start_time": ts + i})
            r.raise_for_status()
            rid = r.json()["run"]["info"]["run_id"]
            body = {
                "run_id": rid,
                "metrics": [{"key": "acc", "value": acc, "timestamp": ts, "step": 0},
                            {"key": "loss", "value": loss, "timestamp": ts, "step": 0},
                            {"key": "epoch", "value": float(i % 10), "timestamp": ts, "step": 0}],
                "params": [{"key": "lr", "value": LRS[i % 3]}, {"key": "batch_size", "value": str(32 << (i % 3))},
                           {"key": "seed", "value": str(i)}],
                "tags": [{"key": "bench", "value": "search"}],
            }
            r = s.post(api + "/runs/log-batch", json=body)
            if r.status_code != 200:
                errors.append(r.text)
                return

    parts = [vals[k::threads] for k in range(threads)]
    ths = [threading.Thread(target=work, args=(p,)) for p in parts]
    for t in ths:
        t.start()
    for t in ths:
        t.join()
    if errors:
        raise RuntimeError(f"seeding failed: {errors[0][:300]}")


def search_p(client, url, exp_id, n, warm=2):
    for _ in range(warm):
        client.search_runs([exp_id], FILTER)
    found = []

    def one(_):
        found.append(len(client.search_runs([exp_id], FILTER)))

    _, each = timed(one, n)
    out = {"p50_ms": ms(pct(each, 50)), "p95_ms": ms(pct(each, 95)), "min_ms": ms(min(each)),
           "n": n, "matches_returned": found[-1]}
    # The same request raw (the client's default max_results, 1,000): the server's share.
    s = requests.Session()
    body = {"experiment_ids": [exp_id], "filter": FILTER, "run_view_type": "ACTIVE_ONLY", "max_results": 1000}
    s.post(url + "/api/2.0/mlflow/runs/search", json=body).raise_for_status()
    _, each = timed(lambda i: s.post(url + "/api/2.0/mlflow/runs/search", json=body).raise_for_status(), n)
    out["raw_p50_ms"] = ms(pct(each, 50))
    out["raw_bytes"] = len(s.post(url + "/api/2.0/mlflow/runs/search", json=body).content)
    # max_results 1: filtering and ordering without building and sending the 1,000-run page.
    one = dict(body, max_results=1)
    _, each = timed(lambda i: s.post(url + "/api/2.0/mlflow/runs/search", json=one).raise_for_status(), n)
    out["raw_max1_p50_ms"] = ms(pct(each, 50))
    return out


def start_server(kind, args, base):
    """One untimed start, then args.starts fresh starts (each in a new folder); the last stays up."""
    res = {"server": kind}
    print(f"\n== start-up and idle memory: {kind}   (load {loadavg()})", flush=True)
    starts, inits = [], []
    srv = None
    for k in range(args.starts + 1):
        if srv is not None:
            srv.stop()
        srv = Server(kind, os.path.join(base, f"{kind}-{k}"), args.repro, args.mlflow)
        srv.prepare()
        t = srv.start()
        if k > 0:
            starts.append(t)
            inits.append(srv.init_s)
        print(f"  start-up {'(warm-up) ' if k == 0 else ''}{t * 1000:.0f} ms"
              + (f" (+ repro init {srv.init_s * 1000:.0f} ms)" if kind == "repro" else ""), flush=True)
    res["startup_s"] = {"median": statistics.median(starts), "all": starts}
    if kind == "repro":
        res["repro_init_s"] = {"median": statistics.median(inits), "all": inits}
    time.sleep(args.idle_s)
    rss, pss, procs = memory(srv.proc.pid)
    res["idle"] = {"after_s": args.idle_s, "rss_kib": rss, "pss_kib": pss, "processes": len(procs), "procs": procs}
    print(f"  idle after {args.idle_s} s: RSS {rss / 1024:.1f} MiB, PSS {pss / 1024:.1f} MiB, {len(procs)} processes",
          flush=True)
    return srv, res


class Bench:
    """The client-side measurements against one running server."""

    def __init__(self, srv, args):
        self.srv, self.args = srv, args
        self.url = srv.url
        self.api = srv.url + "/api/2.0/mlflow"
        self.client = MlflowClient(tracking_uri=srv.url)
        self.s = requests.Session()

    def setup(self, res):
        c, a = self.client, self.args
        self.exp = c.create_experiment("bench")
        self.exp_create = c.create_experiment("bench-create")
        for _ in range(5):
            c.create_run(self.exp_create)
        self.raw_run = c.create_run(self.exp).info.run_id
        self.lm_run = c.create_run(self.exp).info.run_id
        for i in range(20):
            c.log_metric(self.lm_run, "warm", float(i), step=i)
        self.ts = int(time.time() * 1000)
        # get_metric_history: a 10,000-point metric (10 batches of 1,000).
        self.hist_run = c.create_run(self.exp).info.run_id
        for b in range(10):
            c.log_batch(self.hist_run, metrics=[Metric("curve", random.random(), self.ts + b * 1000 + j, b * 1000 + j)
                                                for j in range(1000)])
        got = len(c.get_metric_history(self.hist_run, "curve"))
        assert got == 10000, f"history has {got} points"
        # search_runs: 2,000 runs, each made by create_run + one log_batch.
        self.exp_search = c.create_experiment("bench-search")
        t = time.perf_counter()
        seed_runs(c, self.exp_search, a.search_runs, random.Random(7))
        res["search_setup_s"] = time.perf_counter() - t
        print(f"  {self.srv.kind}: {a.search_runs} runs for the search set up in {res['search_setup_s']:.0f} s", flush=True)

    def round(self, k):
        """One round of every client-side measurement; returns its figures."""
        c, a, s, api = self.client, self.args, self.s, self.api
        r = {"load": loadavg()}
        # Bare HTTP round trip: the floor under any one call the client makes.
        for _ in range(20):
            s.get(self.url + "/health")
        _, each = timed(lambda i: s.get(self.url + "/health").raise_for_status(), a.floor_n)
        r["health_get_p50_ms"] = ms(pct(each, 50))
        # The same JSON log_metric sends, posted raw: the server's own share of a call.
        rid = self.raw_run
        body = lambda i: {"run_id": rid, "run_uuid": rid, "key": f"raw{k}", "value": float(i),  # noqa: E731
                          "timestamp": int(time.time() * 1000), "step": i}
        for i in range(20):
            s.post(api + "/runs/log-metric", json=body(i)).raise_for_status()
        _, each = timed(lambda i: s.post(api + "/runs/log-metric", json=body(i)).raise_for_status(), a.floor_n)
        r["raw_log_metric_p50_ms"] = ms(pct(each, 50))
        # One-by-one log_metric.
        total, each = timed(lambda i: c.log_metric(self.lm_run, f"loss{k}", 1.0 / (i + 1), step=i), a.log_metric_n)
        r["log_metric"] = {"n": a.log_metric_n, "total_s": total, "per_s": a.log_metric_n / total,
                           "p50_ms": ms(pct(each, 50)), "p95_ms": ms(pct(each, 95))}
        # log_batch of 1,000 metrics, into a run of this round's own.
        brun = c.create_run(self.exp).info.run_id
        batches = [[Metric(f"m{j % 10}", random.random(), self.ts, b * 100 + j // 10) for j in range(1000)]
                   for b in range(a.batch_n + 1)]
        c.log_batch(brun, metrics=batches[-1])  # warm-up (its steps repeat none of the timed ones)
        total, each = timed(lambda b: c.log_batch(brun, metrics=batches[b]), a.batch_n)
        r["log_batch"] = {"batches": a.batch_n, "size": 1000, "total_s": total,
                          "metrics_per_s": a.batch_n * 1000 / total, "p50_ms": ms(pct(each, 50))}
        # Run creation.
        total, each = timed(lambda i: c.create_run(self.exp_create), a.create_n)
        r["create_run"] = {"n": a.create_n, "total_s": total, "per_s": a.create_n / total, "p50_ms": ms(pct(each, 50))}
        # get_metric_history of 10,000 points; then the same request raw (the server's share: the
        # client then builds 10,000 Metric objects from the JSON).
        c.get_metric_history(self.hist_run, "curve")
        _, each = timed(lambda i: c.get_metric_history(self.hist_run, "curve"), a.history_n)
        h = {"points": 10000, "n": a.history_n, "p50_ms": ms(pct(each, 50)), "min_ms": ms(min(each)),
             "max_ms": ms(max(each))}
        q = {"run_id": self.hist_run, "run_uuid": self.hist_run, "metric_key": "curve", "max_results": 25000}
        _, each = timed(lambda i: s.get(api + "/metrics/get-history", params=q).raise_for_status(), a.history_n)
        h["raw_p50_ms"] = ms(pct(each, 50))
        h["raw_bytes"] = len(s.get(api + "/metrics/get-history", params=q).content)
        r["metric_history"] = h
        # search_runs over 2,000 runs.
        r["search"] = search_p(c, self.url, self.exp_search, a.search_n)
        r["search"]["runs"] = a.search_runs
        lm, lb, cr, sr = r["log_metric"], r["log_batch"], r["create_run"], r["search"]
        print(f"  round {k} {self.srv.kind:6} (load {r['load'].split()[0]}): GET /health {r['health_get_p50_ms']:.2f} ms, "
              f"raw log-metric {r['raw_log_metric_p50_ms']:.2f} ms | log_metric {lm['per_s']:.0f}/s "
              f"(p50 {lm['p50_ms']:.2f} ms) | log_batch {lb['metrics_per_s']:,.0f} metrics/s | create_run "
              f"{cr['per_s']:.0f}/s | history {h['p50_ms']:.0f} ms (raw {h['raw_p50_ms']:.0f}) | search "
              f"{sr['p50_ms']:.1f} ms (raw {sr['raw_p50_ms']:.1f}, max_results=1 {sr['raw_max1_p50_ms']:.1f}; "
              f"{sr['matches_returned']} runs)", flush=True)
        return r


# Figures of a round, as (path, higher is better); the summary takes each one's median over rounds.
FIGURES = [("health_get_p50_ms",), ("raw_log_metric_p50_ms",), ("log_metric", "per_s"), ("log_metric", "p50_ms"),
           ("log_metric", "p95_ms"), ("log_batch", "metrics_per_s"), ("log_batch", "p50_ms"), ("create_run", "per_s"),
           ("create_run", "p50_ms"), ("metric_history", "p50_ms"), ("metric_history", "raw_p50_ms"),
           ("metric_history", "raw_bytes"), ("search", "p50_ms"), ("search", "p95_ms"), ("search", "raw_p50_ms"),
           ("search", "raw_bytes"), ("search", "raw_max1_p50_ms"), ("search", "matches_returned"), ("search", "runs")]


def get(d, path):
    for k in path:
        d = d[k]
    return d


def put(d, path, v):
    for k in path[:-1]:
        d = d.setdefault(k, {})
    d[path[-1]] = v


def summarize(res):
    """Each figure's median over the rounds, into res (same layout as one round)."""
    for path in FIGURES:
        xs = [get(r, path) for r in res["rounds"]]
        put(res, path, statistics.median_low(xs) if all(isinstance(x, int) for x in xs) else statistics.median(xs))
    res["search"] = [res["search"]]


def grow_search(b, res, args):
    """repro only: grow the search experiment, searching at each size, within the time cap."""
    have, spent, rng = args.search_runs, 0.0, random.Random(8)
    res["search_big_setup"] = []
    print(f"\n== repro: search_runs over more runs   (load {loadavg()})", flush=True)
    for target in [x for x in (20_000, 50_000, args.big_runs) if have < x <= args.big_runs]:
        add = target - have
        rate = have / res["search_setup_s"] if spent == 0 else (have - args.search_runs) / spent
        if spent + add / rate > args.setup_cap_s:
            res["search_big_skipped"] = (f"{target} runs: {add} more would take ~{add / rate:.0f} s at "
                                         f"{rate:.0f} runs/s, past the {args.setup_cap_s} s cap")
            print("  skipped:", res["search_big_skipped"], flush=True)
            break
        t = time.perf_counter()
        seed_runs_raw(b.url, b.exp_search, add, rng, offset=have)
        dt = time.perf_counter() - t
        spent += dt
        have = target
        res["search_big_setup"].append({"runs": target, "added": add, "s": dt, "runs_per_s": add / dt})
        r = search_p(b.client, b.url, b.exp_search, args.search_n)
        r["runs"] = target
        r["load"] = loadavg()
        res["search"].append(r)
        print(f"  search_runs over {target} runs (+{add} in {dt:.0f} s, {add / dt:.0f} runs/s): "
              f"p50 {r['p50_ms']:.1f} ms, p95 {r['p95_ms']:.1f} ms, {r['matches_returned']} returned "
              f"(raw POST: p50 {r['raw_p50_ms']:.1f} ms; max_results=1: {r['raw_max1_p50_ms']:.1f} ms)", flush=True)


def store_bytes(folder):
    return sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(folder) for f in fs)


# ---- report --------------------------------------------------------------------------------


def spread(r, m, path, invert=False):
    """The ratio repro/MLflow (or MLflow/repro) in each round: 'lo–hi'."""
    xs = []
    for a, b in zip(r["rounds"], m["rounds"]):
        x, y = get(a, path), get(b, path)
        xs.append(y / x if invert else x / y)
    return xs


def table(r, m):
    rows = []

    def row(what, rv, mv, ratio, target, ok):
        rows.append((what, rv, mv, ratio, target, ("PASS" if ok else "FAIL") if ok is not None else "info"))

    def rng(xs, fmt="{:.1f} ×", scale=1.0):
        return f" (rounds: {', '.join(fmt.format(x * scale) for x in xs)})"

    f = r["health_get_p50_ms"]
    row("bare HTTP round trip, `GET /health` p50 (the floor)", f"{f:.2f} ms", f"{m['health_get_p50_ms']:.2f} ms",
        "—", "—", None)
    row("(info) raw `POST runs/log-metric` (requests.Session) p50", f"{r['raw_log_metric_p50_ms']:.2f} ms",
        f"{m['raw_log_metric_p50_ms']:.2f} ms",
        f"{m['raw_log_metric_p50_ms'] / r['raw_log_metric_p50_ms']:.1f} × faster", "—", None)
    a, b = r["log_metric"], m["log_metric"]
    row("one-by-one `log_metric`, calls/s (p50 a call)", f"{a['per_s']:.0f}/s ({a['p50_ms']:.2f} ms)",
        f"{b['per_s']:.0f}/s ({b['p50_ms']:.2f} ms)",
        f"{a['per_s'] / b['per_s']:.1f} ×" + rng(spread(r, m, ("log_metric", "per_s"))), "≥ 4 ×",
        a["per_s"] / b["per_s"] >= 4)
    per_call = 1000.0 / a["per_s"]
    row("one-by-one `log_metric`, mean ms a call vs the bare round trip", f"{per_call:.2f} ms", f"floor {f:.2f} ms",
        f"{per_call / f:.2f} × the floor", "≤ 1.5 ×", per_call / f <= 1.5)
    raw = r["raw_log_metric_p50_ms"]
    row("(info) the server's share: raw `POST runs/log-metric` p50 vs the bare round trip", f"{raw:.2f} ms",
        f"floor {f:.2f} ms", f"{raw / f:.2f} × the floor", "(≤ 1.5 ×)", None)
    a, b = r["log_batch"], m["log_batch"]
    row("`log_batch` of 1,000 metrics, metrics/s", f"{a['metrics_per_s']:,.0f}/s", f"{b['metrics_per_s']:,.0f}/s",
        f"{a['metrics_per_s'] / b['metrics_per_s']:.1f} ×" + rng(spread(r, m, ("log_batch", "metrics_per_s"))),
        "≥ 5 ×", a["metrics_per_s"] / b["metrics_per_s"] >= 5)
    a, b = r["create_run"], m["create_run"]
    row("`create_run`, runs/s", f"{a['per_s']:.0f}/s", f"{b['per_s']:.0f}/s",
        f"{a['per_s'] / b['per_s']:.1f} ×" + rng(spread(r, m, ("create_run", "per_s"))), "≥ 5 ×",
        a["per_s"] / b["per_s"] >= 5)
    a, b = r["search"][0], m["search"][0]
    row(f"`search_runs` (`{FILTER}`) over {a['runs']:,} runs, p50 (p95)",
        f"{a['p50_ms']:.1f} ms ({a['p95_ms']:.1f})", f"{b['p50_ms']:.1f} ms ({b['p95_ms']:.1f})",
        f"{a['p50_ms'] / b['p50_ms'] * 100:.0f} % of MLflow's"
        + rng(spread(r, m, ("search", "p50_ms")), "{:.0f} %", 100), "≤ 10 %", a["p50_ms"] <= b["p50_ms"] / 10)
    row(f"(info) raw `POST runs/search`, same filter, {a['runs']:,} runs, p50 (bytes)",
        f"{a['raw_p50_ms']:.1f} ms ({a['raw_bytes']:,.0f} B)", f"{b['raw_p50_ms']:.1f} ms ({b['raw_bytes']:,.0f} B)",
        f"{a['raw_p50_ms'] / b['raw_p50_ms'] * 100:.0f} %", "(≤ 10 %)", None)
    row(f"(info) raw `POST runs/search`, same filter, `max_results` 1, {a['runs']:,} runs, p50",
        f"{a['raw_max1_p50_ms']:.1f} ms", f"{b['raw_max1_p50_ms']:.1f} ms",
        f"{a['raw_max1_p50_ms'] / b['raw_max1_p50_ms'] * 100:.0f} %", "—", None)
    for s in r["search"][1:]:
        last = s is r["search"][-1]
        row(f"`search_runs`, same filter, over {s['runs']:,} runs (repro only), p50 (p95)",
            f"{s['p50_ms']:.1f} ms ({s['p95_ms']:.1f}); raw POST {s['raw_p50_ms']:.1f} ms, "
            f"`max_results` 1: {s['raw_max1_p50_ms']:.1f} ms", "—", "—",
            "≤ 50 ms at 100,000" if last else "(trend)",
            (s["p50_ms"] <= 50 if s["runs"] >= 100_000 else None) if last else None)
    a, b = r["metric_history"], m["metric_history"]
    row("`get_metric_history`, 10,000 points, p50", f"{a['p50_ms']:.1f} ms", f"{b['p50_ms']:.1f} ms",
        f"{a['p50_ms'] / b['p50_ms'] * 100:.0f} % of MLflow's"
        + rng(spread(r, m, ("metric_history", "p50_ms")), "{:.0f} %", 100), "≤ 20 %", a["p50_ms"] <= b["p50_ms"] / 5)
    row("(info) raw `GET metrics/get-history`, 10,000 points, p50 (bytes)",
        f"{a['raw_p50_ms']:.1f} ms ({a['raw_bytes']:,.0f} B)", f"{b['raw_p50_ms']:.1f} ms ({b['raw_bytes']:,.0f} B)",
        f"{a['raw_p50_ms'] / b['raw_p50_ms'] * 100:.0f} %", "(≤ 20 %)", None)
    a, b = r["idle"], m["idle"]
    row("idle RSS, whole process tree (processes)", f"{a['rss_kib'] / 1024:.1f} MiB ({a['processes']})",
        f"{b['rss_kib'] / 1024:.1f} MiB ({b['processes']})", f"1/{b['rss_kib'] / a['rss_kib']:.0f}", "≤ 1/50",
        a["rss_kib"] <= b["rss_kib"] / 50)
    row("(info) idle PSS, whole process tree", f"{a['pss_kib'] / 1024:.1f} MiB", f"{b['pss_kib'] / 1024:.1f} MiB",
        f"1/{b['pss_kib'] / a['pss_kib']:.0f}", "—", None)
    a, b = r["startup_s"]["median"], m["startup_s"]["median"]
    row("start-up to healthy `/health` (median of fresh starts)", f"{a * 1000:.0f} ms", f"{b * 1000:.0f} ms",
        f"1/{b / a:.0f}", "≤ 1/50", a <= b / 50)
    ri = r["repro_init_s"]["median"]
    row("(info) `repro init` + start-up, against MLflow's start-up (which creates its DB)",
        f"{(a + ri) * 1000:.0f} ms", f"{b * 1000:.0f} ms", f"1/{b / (a + ri):.0f}", "(≤ 1/50)", None)
    return rows


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repro", required=True, help="the repro release binary")
    ap.add_argument("--mlflow", required=True, help="the mlflow executable of the MLflow venv")
    ap.add_argument("--work", required=True, help="scratch folder (emptied)")
    ap.add_argument("--out", required=True, help="results folder (server.json, server.md)")
    ap.add_argument("--rounds", type=int, default=3, help="rounds of the client-side measurements, "
                    "alternating the servers (repro first in odd rounds, MLflow first in even ones)")
    ap.add_argument("--starts", type=int, default=3)
    ap.add_argument("--idle-s", type=float, default=5.0)
    ap.add_argument("--floor-n", type=int, default=300)
    ap.add_argument("--log-metric-n", type=int, default=500)
    ap.add_argument("--batch-n", type=int, default=20)
    ap.add_argument("--create-n", type=int, default=200)
    ap.add_argument("--history-n", type=int, default=5)
    ap.add_argument("--search-runs", type=int, default=2000)
    ap.add_argument("--search-n", type=int, default=20)
    ap.add_argument("--big-runs", type=int, default=100_000, help="repro only; 0: skip")
    ap.add_argument("--setup-cap-s", type=float, default=900.0)
    args = ap.parse_args()

    shutil.rmtree(args.work, ignore_errors=True)
    os.makedirs(args.work)
    os.makedirs(args.out, exist_ok=True)
    out = {
        "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "nproc": os.cpu_count(),
        "mlflow_client": mlflow.__version__,
        "python": sys.version.split()[0],
        "repro": subprocess.run([args.repro, "--version"], capture_output=True, text=True).stdout.strip(),
        "mlflow_server": subprocess.run([args.mlflow, "--version"], capture_output=True, text=True).stdout.strip(),
        "args": vars(args),
        "results": {},
    }
    kinds = ["repro", "mlflow"]
    servers, res, benches = {}, out["results"], {}

    def save():
        with open(os.path.join(args.out, "server.json"), "w") as f:
            json.dump(out, f, indent=1)

    try:
        # Start-up and idle memory, one server at a time (the other is not running yet).
        for kind in kinds:
            servers[kind], res[kind] = start_server(kind, args, args.work)
        # Both are up from here on: set-up, then the rounds, alternating the servers so that a
        # drift in the machine's speed (a shared 2-core VM) falls on both alike.
        print(f"\n== set-up   (load {loadavg()})", flush=True)
        for kind in kinds:
            benches[kind] = Bench(servers[kind], args)
            benches[kind].setup(res[kind])
            res[kind]["rounds"] = []
        save()
        for k in range(1, args.rounds + 1):
            print(f"\n== round {k}/{args.rounds}", flush=True)
            for kind in (kinds if k % 2 else kinds[::-1]):
                res[kind]["rounds"].append(benches[kind].round(k))
            save()
        for kind in kinds:
            summarize(res[kind])
            rss, _, _ = memory(servers[kind].proc.pid)
            res[kind]["rss_after_kib"] = rss
        servers["mlflow"].stop()
        res["mlflow"]["store_bytes"] = store_bytes(servers["mlflow"].folder)
        # repro alone: the same search over a growing experiment.
        if args.big_runs > args.search_runs:
            grow_search(benches["repro"], res["repro"], args)
        rss, _, _ = memory(servers["repro"].proc.pid)
        res["repro"]["rss_after_big_kib"] = rss
        res["repro"]["store_bytes"] = store_bytes(servers["repro"].folder)
        save()
    finally:
        for srv in servers.values():
            srv.stop()
    shutil.rmtree(args.work, ignore_errors=True)
    rows = table(res["repro"], res["mlflow"])
    out["table"] = rows
    out["end_load"] = loadavg()
    save()
    lines = [f"\n## Tracking server: repro serve vs mlflow server ({out['mlflow_server']}, SQLite, 1 worker)\n",
             f"Client-side figures: median over {args.rounds} alternating rounds.\n",
             "| What | repro serve | mlflow server | Ratio | Target | Result |", "|---|---|---|---|---|---|"]
    lines += ["| " + " | ".join(x) + " |" for x in rows]
    counted = [x for x in rows if x[5] in ("PASS", "FAIL")]
    lines.append(f"\n{sum(x[5] == 'PASS' for x in counted)}/{len(counted)} targets pass")
    text = "\n".join(lines)
    print(text)
    with open(os.path.join(args.out, "server.md"), "w") as f:
        f.write(text + "\n")


if __name__ == "__main__":
    main()
