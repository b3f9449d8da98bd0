"""A/B of two repro builds on the tracking server's write paths, same machine, interleaved.

    bench/ab.py OLD_BINARY NEW_BINARY [ROUNDS]

Run with the MLflow venv bench/setup.sh makes (/work/bench-tools/mlflow-venv/bin/python).
Each round, each binary gets a fresh store and `repro serve`, and the same MlflowClient
makes 500 `log_metric` calls, 20 `log_batch` of 1,000 metrics and 200 `create_run`; the
order alternates between rounds. Used to tell a code change from the machine's drift when
bench/server.py's ratios move (BENCHMARKS.md, issue 15's re-run).
"""
import os, subprocess, sys, time, tempfile, socket, statistics
os.environ["MLFLOW_DISABLE_TELEMETRY"]="true"
import mlflow
from mlflow import MlflowClient
def free_port():
    s=socket.socket(); s.bind(("127.0.0.1",0)); p=s.getsockname()[1]; s.close(); return p
def measure(binary):
    d=tempfile.mkdtemp()
    subprocess.run([binary,"init"],cwd=d,check=True,capture_output=True)
    port=free_port()
    p=subprocess.Popen([binary,"serve","--port",str(port)],cwd=d,stdout=subprocess.DEVNULL,stderr=subprocess.DEVNULL)
    import urllib.request
    for _ in range(100):
        try: urllib.request.urlopen(f"http://127.0.0.1:{port}/health"); break
        except Exception: time.sleep(0.05)
    c=MlflowClient(f"http://127.0.0.1:{port}")
    e=c.create_experiment("ab")
    r=c.create_run(e)
    t=time.perf_counter()
    for i in range(500): c.log_metric(r.info.run_id,"m",float(i),step=i)
    lm=500/(time.perf_counter()-t)
    from mlflow.entities import Metric
    t=time.perf_counter()
    for b in range(20): c.log_batch(r.info.run_id, metrics=[Metric("b",float(i),0,b*1000+i) for i in range(1000)])
    lb=20000/(time.perf_counter()-t)
    t=time.perf_counter()
    for i in range(200): c.create_run(e)
    cr=200/(time.perf_counter()-t)
    p.terminate(); p.wait()
    return lm,lb,cr
BIN={"old": sys.argv[1], "new": sys.argv[2]}
ROUNDS=int(sys.argv[3]) if len(sys.argv) > 3 else 3
res={"old":[], "new":[]}
for rnd in range(ROUNDS):
    for k in (["old","new"] if rnd%2==0 else ["new","old"]):
        res[k].append(measure(BIN[k]))
        print(rnd,k,["%.0f"%x for x in res[k][-1]], os.getloadavg()[0], flush=True)
for k in res:
    print(k, "median log_metric/s %.0f  log_batch metrics/s %.0f  create_run/s %.0f" % tuple(statistics.median(x[i] for x in res[k]) for i in range(3)))
