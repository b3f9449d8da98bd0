#!/usr/bin/env bash
# repro performance benchmarks: six comparisons, one run, one summary.
#
#   bench/setup.sh            # once: hyperfine, b3sum, uv, dvc venv, the 105-package venv
#   bench/run.sh              # full data: one 2 GiB file + 20,000 x ~50 KiB files
#   BENCH_SMALL=1 bench/run.sh   # smoke run: 64 MiB + 2,000 files, fewer runs
#   BENCH_ONLY=env bench/run.sh  # comparison 4 only (env capture vs pip freeze vs uv pip freeze),
#                                # no data generated; needs only `BENCH_SETUP_ONLY=env bench/setup.sh`
#   BENCH_ONLY=server bench/run.sh   # tracking server: `repro serve` vs `mlflow server` (bench/server.py);
#                                    # needs only `BENCH_SETUP_ONLY=server bench/setup.sh`
#
# Everything generated lives under $BENCH_WORK (default /work/bench-work), never in the repo.
# repro is built in release mode with its own target dir ($BENCH_TARGET, default
# /work/bench-target) so the benchmark never contends for the repo's cargo lock.
# Results: $BENCH_WORK/results[-small]/ (hyperfine JSON + Markdown per comparison, summary.md).
#
# Knobs: BENCH_RUNS_BIG (runs for multi-second cases), BENCH_RUNS_FAST (runs for sub-second
# cases), BENCH_SKIP_BUILD=1 (use the existing binary), BENCH_ONLY=env (comparison 4 only;
# results in $BENCH_WORK/results-env/), BENCH_ONLY=server (the tracking-server comparison only;
# results in $BENCH_WORK/results-server/; BENCH_SERVER_ARGS: extra arguments to bench/server.py),
# BENCH_REV=<commit> (build repro from that commit, exported with `git archive` to
# $BENCH_WORK/src-<commit>, instead of from the checkout: uncommitted work is then not measured).
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/.." && pwd)"
BENCH_WORK="${BENCH_WORK:-/work/bench-work}"
BENCH_TOOLS="${BENCH_TOOLS:-/work/bench-tools}"
BENCH_TARGET="${BENCH_TARGET:-/work/bench-target}"
SMALL="${BENCH_SMALL:-0}"
ONLY="${BENCH_ONLY:-}"
case "$ONLY" in ""|env|server) ;; *) echo "error: BENCH_ONLY must be empty, 'env' or 'server'" >&2; exit 2 ;; esac

if [ "$SMALL" = 1 ]; then
    SIZE_A_MIB=64; B_TOP=20; B_SUB=10; B_FILES=10     # 2,000 files
    TAG=small; RUNS_BIG="${BENCH_RUNS_BIG:-3}"; RUNS_FAST="${BENCH_RUNS_FAST:-10}"
else
    SIZE_A_MIB=2048; B_TOP=20; B_SUB=10; B_FILES=100  # 20,000 files
    TAG=full; RUNS_BIG="${BENCH_RUNS_BIG:-3}"; RUNS_FAST="${BENCH_RUNS_FAST:-20}"
fi

DATA="$BENCH_WORK/data-$TAG"
A="$DATA/a/big.bin"
B="$DATA/b/tree"
RES="$BENCH_WORK/results"; [ "$SMALL" = 1 ] && RES="$BENCH_WORK/results-small"
if [ "$ONLY" = env ]; then   # its own results folder, so it never wipes a full run's results
    TAG=env; RES="$BENCH_WORK/results-env"; RUNS_FAST="${BENCH_RUNS_FAST:-40}"
fi
if [ "$ONLY" = server ]; then
    TAG=server; RES="$BENCH_WORK/results-server"
fi
SCR="$BENCH_WORK/scratch-$TAG"          # stores and dvc repos, recreated per iteration
R="$BENCH_TARGET/release/repro"
B3="$BENCH_TOOLS/bin/b3sum"
DVC="$BENCH_WORK/dvc-venv/bin/dvc"
V="$BENCH_WORK/pyenv-90"
UV="$BENCH_TOOLS/bin/uv"
MLV="$BENCH_TOOLS/mlflow-venv"
SYSPY=/usr/bin/python3; [ -x "$SYSPY" ] || SYSPY="$(command -v python3)"

# uv keeps its cache (interpreter metadata among it) under $BENCH_WORK, not in ~/.cache.
export UV_CACHE_DIR="$BENCH_WORK/uv-cache" UV_NO_PROGRESS=1
export DVC_NO_ANALYTICS=1 PIP_DISABLE_PIP_VERSION_CHECK=1 GIT_AUTHOR_NAME=bench GIT_AUTHOR_EMAIL=bench@invalid \
    GIT_COMMITTER_NAME=bench GIT_COMMITTER_EMAIL=bench@invalid

say() { printf '\n== %s\n' "$*"; }
die() { echo "error: $*" >&2; exit 1; }
load() {  # load average, compiler processes, and the two busiest processes right now (top's %CPU)
    echo "load $(cut -d' ' -f1-3 /proc/loadavg); rustc/cargo procs: $(ps -eo comm= | grep -cE '^(rustc|cargo|cc1|ld)' || true);" \
        "busiest: $(top -bn1 -w 200 | awk 'NR > 7 && $9 + 0 >= 5 && $12 != "top" {printf "%s %s%%, ", $12, $9}' | head -c 120)"
}

case "$ONLY" in
    server) need=(git "$MLV/bin/python" "$MLV/bin/mlflow") ;;
    env) need=(hyperfine "$UV" "$V/bin/python" git) ;;
    *) need=(hyperfine "$UV" "$V/bin/python" git "$B3" "$DVC" /usr/bin/time) ;;
esac
for t in "${need[@]}"; do
    command -v "$t" >/dev/null || [ -x "$t" ] || die "$t missing: run bench/setup.sh"
done

mkdir -p "$RES" "$SCR"; [ -n "$ONLY" ] || mkdir -p "$DATA"
rm -f "$RES"/*.json "$RES"/*.md "$RES"/*.txt
LOG="$RES/context.txt"
{
    echo "date: $(date -Iseconds)"
    echo "host: $(uname -srm)"
    echo "nproc: $(nproc)"
    echo "cpu: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //')"
    echo "mem: $(free -g | awk '/Mem:/ {print $2 " GiB"}')"
    echo "fs of $BENCH_WORK: $(df -T "$BENCH_WORK" | awk 'NR==2 {print $1, $2}')"
    if [ "$ONLY" = server ]; then
    echo "python: $("$MLV/bin/python" --version) ($MLV)"
    echo "mlflow: $(MLFLOW_DISABLE_TELEMETRY=true "$MLV/bin/mlflow" --version)"
    echo "mlflow venv: $("$MLV/bin/pip" freeze | wc -l) distributions ($("$MLV/bin/pip" freeze | grep -iE '^(sqlalchemy|alembic|uvicorn|fastapi|flask|gunicorn|huey|requests)==' | tr '\n' ' '))"
    else
    echo "hyperfine: $(hyperfine --version)"
    [ "$ONLY" = env ] || echo "b3sum: $("$B3" --version)"
    [ "$ONLY" = env ] || echo "dvc: $("$DVC" --version)"
    echo "python: $("$V/bin/python" --version) ($V)"
    echo "pip: $("$V/bin/pip" --version | cut -d' ' -f1-2)"
    echo "uv: $("$UV" --version)"
    echo "pip freeze lines in $V: $("$V/bin/pip" freeze | wc -l)"
    echo "uv pip freeze lines in $V: $("$UV" pip freeze --python "$V/bin/python" 2>/dev/null | wc -l)"
    fi
    echo "mode: $TAG (RUNS_BIG=$RUNS_BIG RUNS_FAST=$RUNS_FAST)"
    echo "start: $(load)"
} > "$LOG"
cat "$LOG"

# --- build --------------------------------------------------------------------------------------
SRC="$REPO"
if [ -n "${BENCH_REV:-}" ]; then   # a clean export of one commit, outside the checkout
    REV="$(cd "$REPO" && git rev-parse --short "$BENCH_REV^{commit}")"
    SRC="$BENCH_WORK/src-$REV"
    if [ ! -f "$SRC/.exported" ]; then
        rm -rf "$SRC"; mkdir -p "$SRC"
        (cd "$REPO" && git archive "$REV") | tar -x -C "$SRC"
        touch "$SRC/.exported"
    fi
fi
if [ "${BENCH_SKIP_BUILD:-0}" != 1 ]; then
    say "build repro (release, CARGO_TARGET_DIR=$BENCH_TARGET, from $SRC)"
    (cd "$SRC" && CARGO_TARGET_DIR="$BENCH_TARGET" cargo build --release -q -p repro-cli)
fi
[ -x "$R" ] || die "$R missing"
if [ -n "${BENCH_REV:-}" ]; then
    echo "repro: $("$R" --version) ($REV, exported clean to $SRC)" | tee -a "$LOG"
else
    echo "repro: $("$R" --version) ($(cd "$REPO" && git rev-parse --short HEAD)$(cd "$REPO" && git diff --quiet HEAD -- crates Cargo.toml Cargo.lock || echo '+dirty'))" | tee -a "$LOG"
    (cd "$REPO" && git diff --stat HEAD -- crates Cargo.toml Cargo.lock) >> "$LOG"
fi

# --- tracking server: repro serve vs mlflow server (BENCH_ONLY=server) ----------------------------
if [ "$ONLY" = server ]; then
    say "server   ($(load))"
    # shellcheck disable=SC2086  # BENCH_SERVER_ARGS is split on purpose
    MLFLOW_DISABLE_TELEMETRY=true "$MLV/bin/python" "$HERE/server.py" --repro "$R" --mlflow "$MLV/bin/mlflow" \
        --work "$SCR" --out "$RES" ${BENCH_SERVER_ARGS:-} 2>&1 | tee "$RES/server.log"
    echo "end: $(load)" >> "$LOG"
    say "results in $RES"
    exit 0
fi

# --- data (idempotent) ---------------------------------------------------------------------------
BYTES_A=0 BYTES_B=0 FILES_B=0
if [ -z "$ONLY" ]; then
if [ ! -f "$DATA/a/.done" ]; then
    say "generate A: $SIZE_A_MIB MiB of random bytes"
    rm -rf "$DATA/a"; mkdir -p "$DATA/a"
    head -c "$((SIZE_A_MIB * 1024 * 1024))" /dev/urandom > "$A"
    touch "$DATA/a/.done"
fi
if [ ! -f "$DATA/b/.done" ]; then
    say "generate B: $B_TOP x $B_SUB x $B_FILES files of ~50 KiB"
    rm -rf "$DATA/b"; mkdir -p "$B"
    "$SYSPY" - "$B" "$B_TOP" "$B_SUB" "$B_FILES" <<'EOF'
import os, random, sys
root, top, sub, files = sys.argv[1], *map(int, sys.argv[2:])
rng = random.Random(42)
for t in range(top):
    for s in range(sub):
        d = os.path.join(root, f"d{t:02}", f"s{s:02}")
        os.makedirs(d, exist_ok=True)
        for f in range(files):
            with open(os.path.join(d, f"f{f:03}.bin"), "wb") as fh:
                fh.write(os.urandom(rng.randint(40 * 1024, 60 * 1024)))
EOF
    touch "$DATA/b/.done"
fi
sync
BYTES_A=$(stat -c %s "$A")
BYTES_B=$(find "$B" -type f -printf '%s\n' | awk '{s+=$1} END {print s}')
FILES_B=$(find "$B" -type f | wc -l)
echo "A: $BYTES_A bytes; B: $FILES_B files, $BYTES_B bytes" | tee -a "$LOG"
fi  # data

warm() {  # read the data sets so every timing starts from a warm page cache
    cat "$A" > /dev/null
    find "$B" -type f -print0 | xargs -0 cat > /dev/null
}
# Old stores and repos are renamed into $TRASH, not deleted, while timings run: this ext4 is
# mounted without a journal, and then ext4 skips inodes freed in the last 60 s (360 s while their
# inode-table block is dirty) when it allocates new ones (fs/ext4/ialloc.c, recently_deleted), one
# cached-block lookup per skipped inode. An `rm -rf` of 20,000 files right before a timed run
# made file creation quadratic and the timings grow run after run. $TRASH is emptied before and
# after the measurements, and timed runs that create many files start $SETTLE s after any mass
# deletion (dvc add itself unlinks and recreates every workspace file, so its repo gets the wait
# before each of its runs too).
SETTLE="${BENCH_SETTLE_S:-65}"
TRASH="$SCR/trash"
LAST_DELETE=0
discard() {  # shell snippet: move $1 out of the way, without deleting anything ($2 = rm: delete it)
    # Few-file stores (A) are deleted: keeping 2-4 GiB per run would fill the page cache and
    # make every later run pay for reclaim.
    if [ "${2:-}" = rm ]; then echo "rm -rf '$1'"; return; fi
    echo "mkdir -p '$TRASH' && { [ ! -e '$1' ] || mv '$1' '$TRASH/'\$(date +%s%N); }"
}
fresh_store() {  # shell snippet for --prepare: a new, empty store at $1 ($2 = rm: delete the old one)
    echo "$(discard "$1" "${2:-}") && mkdir -p '$1' && cd '$1' && '$R' init >/dev/null && sync"
}
fresh_dvc() {  # shell snippet for --prepare: a new git+dvc repo at $1 holding a hardlinked copy of $2 as $3
    # ($4 = settle: sleep $SETTLE s first, past the inodes the previous dvc add freed)
    local pre="" mode=rm; [ "${4:-}" = settle ] && pre="sync && sleep $SETTLE && " mode=""
    echo "$pre$(discard "$1" $mode) && mkdir -p '$1' && cd '$1' && git init -q && '$DVC' init -q && '$DVC' config core.analytics false \
&& '$DVC' config core.check_update false && '$DVC' config cache.type copy && cp -al '$2' '$3' && sync"
}
empty_trash() { rm -rf "$TRASH" "$SCR"/s[0-9] "$SCR"/dvc[0-9]; sync; LAST_DELETE=$(date +%s); }
settle() {  # wait until $SETTLE s have passed since the last mass deletion
    local left=$((LAST_DELETE + SETTLE - $(date +%s)))
    if [ "$left" -gt 0 ]; then echo "(waiting ${left}s for ext4's recently-deleted window)"; sleep "$left"; fi
}
hf() {  # hf NAME hyperfine-args... : runs hyperfine, exports JSON + Markdown as $RES/NAME.*
    local name=$1; shift
    say "$name   ($(load))"
    echo "$name: $(load)" >> "$LOG"
    hyperfine --style basic --export-json "$RES/$name.json" --export-markdown "$RES/$name.md" "$@"
}

if [ "$ONLY" != env ]; then
empty_trash
settle

# --- 1. hashing: repro --reference vs b3sum ------------------------------------------------------
warm
hf 1a-hash-file --warmup 1 --runs "$((RUNS_BIG + 2))" \
    --prepare "$(fresh_store "$SCR/s1" rm)" \
    -n "repro data snapshot --reference (A)" "'$R' data snapshot '$A' --reference --store '$SCR/s1'" \
    -n "b3sum (A)" "'$B3' '$A'"
hf 1b-hash-tree --warmup 1 --runs "$((RUNS_BIG + 2))" \
    --prepare "$(fresh_store "$SCR/s1" rm)" \
    -n "repro data snapshot --reference (B)" "'$R' data snapshot '$B' --reference --store '$SCR/s1'" \
    -n "b3sum, all files (B)" "find '$B' -type f -print0 | xargs -0 '$B3' > /dev/null" \
    -n "b3sum tuned: $(nproc) processes, 1 thread, no mmap (B)" \
    "find '$B' -type f -print0 | xargs -0 -P$(nproc) -n 1000 '$B3' --num-threads 1 --no-mmap > /dev/null"

# --- 2. copying snapshot vs dvc add --------------------------------------------------------------
warm
hf 2a-copy-file --warmup 1 --runs "$RUNS_BIG" \
    -n "repro data snapshot (A, fresh store)" --prepare "$(fresh_store "$SCR/s2" rm)" \
    "'$R' data snapshot '$A' --store '$SCR/s2'" \
    -n "dvc add (A, fresh repo)" --prepare "$(fresh_dvc "$SCR/dvc2" "$A" data.bin)" \
    "cd '$SCR/dvc2' && '$DVC' add -q data.bin"
settle
warm
hf 2b-copy-tree --warmup 1 --runs "$RUNS_BIG" \
    -n "repro data snapshot (B, fresh store)" --prepare "$(fresh_store "$SCR/s2")" \
    "'$R' data snapshot '$B' --store '$SCR/s2'" \
    -n "dvc add (B, fresh repo)" --prepare "$(fresh_dvc "$SCR/dvc2" "$B" tree settle)" \
    "cd '$SCR/dvc2' && '$DVC' add -q tree"

# --- 3. re-snapshot of the unchanged tree vs dvc status ------------------------------------------
eval "$(fresh_store "$SCR/s3")"; cd "$REPO"
"$R" data snapshot "$B" --store "$SCR/s3" >/dev/null           # the cold run: store now holds B
eval "$(fresh_dvc "$SCR/dvc3" "$B" tree)"
"$DVC" add -q tree                                              # dvc now tracks B
cd "$REPO"
warm
hf 3-resnapshot-tree --warmup 2 --runs "$RUNS_FAST" -N \
    -n "repro data snapshot (B, unchanged, same store)" "'$R' data snapshot '$B' --store '$SCR/s3'"
hf 3-dvc-status --warmup 1 --runs "$((RUNS_FAST / 2 > 3 ? RUNS_FAST / 2 : 3))" \
    -n "dvc status (B, unchanged)" "cd '$SCR/dvc3' && '$DVC' status -q"

fi  # groups 1-3

# --- 4. env capture vs pip freeze vs uv pip freeze ------------------------------------------------
# All three read the same venv; their output goes to a file (repro) or to /dev/null (hyperfine).
# uv starts the interpreter to learn its layout and caches that under $UV_CACHE_DIR; the warm-up
# runs fill that cache, as any earlier use of uv would.
PKGS=$("$V/bin/pip" freeze | wc -l)
hf 4-env-capture --warmup 5 --runs "$RUNS_FAST" -N \
    -n "repro env capture" "'$R' env capture --python '$V/bin/python' -o '$SCR/env.json'" \
    -n "pip freeze" "'$V/bin/pip' freeze" \
    -n "uv pip freeze" "'$UV' pip freeze --python '$V/bin/python'"
echo "packages: pip freeze $PKGS, uv pip freeze $("$UV" pip freeze --python "$V/bin/python" 2>/dev/null | wc -l)" | tee -a "$LOG"

if [ "$ONLY" != env ]; then

# --- 5. repro run overhead ---------------------------------------------------------------------
RUNREPO="$SCR/runrepo"
rm -rf "$RUNREPO"; mkdir -p "$RUNREPO"
(
    cd "$RUNREPO"
    git init -q && echo 'print("hi")' > train.py && git add train.py && git commit -qm init
    "$R" init >/dev/null
    git add -A >/dev/null 2>&1 && git commit -qm store >/dev/null 2>&1 || true   # store is git-ignored; commit whatever is not
    hf 5-run-overhead --warmup 3 --runs "$RUNS_FAST" -N \
        -n "repro run -- python -c pass" "'$R' run -- '$V/bin/python' -c pass" \
        -n "python -c pass" "'$V/bin/python' -c pass"
)

# --- 6. peak memory of a copying snapshot of A -----------------------------------------------------
say "6-peak-memory   ($(load))"
warm
eval "$(fresh_store "$SCR/s6" rm)"; cd "$REPO"
/usr/bin/time -v "$R" data snapshot "$A" --store "$SCR/s6" > /dev/null 2> "$RES/6-peak-memory.txt"
grep -E 'Maximum resident|Elapsed|Percent of CPU' "$RES/6-peak-memory.txt"

empty_trash
fi  # groups 5-6
echo "end: $(load)" >> "$LOG"

# --- summary --------------------------------------------------------------------------------------
"$SYSPY" - "$RES" "$BYTES_A" "$BYTES_B" "$FILES_B" "$TAG" "$PKGS" <<'EOF' | tee "$RES/summary.md"
import json, re, sys
res, bytes_a, bytes_b, files_b, tag = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
pkgs = int(sys.argv[6])

def means(name):
    with open(f"{res}/{name}.json") as f:
        return [(r["mean"], r["stddev"] or 0.0) for r in json.load(f)["results"]]

def t(m):
    v, sd = m
    return f"{v * 1000:.1f} ± {sd * 1000:.1f} ms" if v < 1 else f"{v:.2f} ± {sd:.2f} s"

def mbps(n, m):
    return f"{n / m[0] / 2**20:.0f} MiB/s"

rows, ok_all = [], True
def row(what, repro, other, ratio, target, ok):
    global ok_all
    ok_all &= ok
    rows.append((what, repro, other, ratio, target, "PASS" if ok else "FAIL"))

a = f"A ({bytes_a / 2**20:.0f} MiB file)"
b = f"B ({files_b} files, {bytes_b / 2**20:.0f} MiB)"
def groups_1_to_3():
    global cold
    r, o = means("1a-hash-file")
    row(f"1. hash {a}: `snapshot --reference` vs b3sum", f"{t(r)} ({mbps(bytes_a, r)})", f"{t(o)} ({mbps(bytes_a, o)})",
        f"{o[0] / r[0]:.2f}× b3sum throughput", "≥ 0.8×", o[0] / r[0] >= 0.8)
    r, o, _ = means("1b-hash-tree")
    row(f"1. hash {b}: `snapshot --reference` vs b3sum", f"{t(r)} ({mbps(bytes_b, r)})", f"{t(o)} ({mbps(bytes_b, o)})",
        f"{o[0] / r[0]:.2f}× b3sum throughput", "≥ 0.8×", o[0] / r[0] >= 0.8)
    r, o, tuned = means("1b-hash-tree")
    # Not a target: b3sum as fast as it goes on many small files (the form above is the brief's).
    info = f"{tuned[0] / r[0]:.2f}× tuned-b3sum throughput"
    rows.append((f"1. (info) hash {b} vs b3sum tuned (`xargs -P{__import__('os').cpu_count()} b3sum --num-threads 1 --no-mmap`)",
                 f"{t(r)} ({mbps(bytes_b, r)})", f"{t(tuned)} ({mbps(bytes_b, tuned)})", info, "(≥ 0.8×, not counted)",
                 "info: " + ("would pass" if tuned[0] / r[0] >= 0.8 else "would FAIL")))
    r, o = means("2a-copy-file")
    row(f"2. copy {a} into a fresh store vs `dvc add`", t(r), t(o), f"{o[0] / r[0]:.2f}× faster", "≥ 3×", o[0] / r[0] >= 3)
    r, o = means("2b-copy-tree")
    cold = r
    row(f"2. copy {b} into a fresh store vs `dvc add`", t(r), t(o), f"{o[0] / r[0]:.2f}× faster", "≥ 3×", o[0] / r[0] >= 3)
    (w,) = means("3-resnapshot-tree")
    row(f"3. re-snapshot {b} unchanged vs its cold snapshot", t(w), f"cold: {t(cold)}", f"{w[0] / cold[0] * 100:.1f} % of cold",
        "≤ 5 %", w[0] / cold[0] <= 0.05)
    (d,) = means("3-dvc-status")
    row(f"3. re-snapshot {b} unchanged vs `dvc status`", t(w), t(d), f"{d[0] / w[0]:.1f}× faster", "≥ 20×", d[0] / w[0] >= 20)

def group_4():
    r, o, u = means("4-env-capture")
    row(f"4. `env capture` vs `pip freeze` ({pkgs} packages)", t(r), t(o), f"{o[0] / r[0]:.1f}× faster", "≥ 10×",
        o[0] / r[0] >= 10)
    row(f"4. `env capture` vs `uv pip freeze` ({pkgs} packages)", t(r), t(u), f"{u[0] / r[0]:.1f}× faster",
        "faster (> 1×)", u[0] / r[0] > 1)

def groups_5_6():
    r, o = means("5-run-overhead")
    row("5. `repro run -- python -c pass` vs bare", t(r), t(o), f"+{(r[0] - o[0]) * 1000:.0f} ms", "≤ +150 ms",
        r[0] - o[0] <= 0.150)
    txt = open(f"{res}/6-peak-memory.txt").read()
    kib = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", txt).group(1))
    row(f"6. peak RSS, copying snapshot of {a}", f"{kib / 1024:.1f} MiB", "—", "—", "≤ 100 MiB", kib / 1024 <= 100)

if tag != "env":   # BENCH_ONLY=env: comparison 4 alone
    groups_1_to_3()
group_4()
if tag != "env":
    groups_5_6()

print("\n## Summary (comparison 4 only, BENCH_ONLY=env)\n" if tag == "env" else f"\n## Summary ({tag} data)\n")
print("| What | repro | Comparison | Ratio | Target | Result |")
print("|---|---|---|---|---|---|")
for x in rows:
    print("| " + " | ".join(x) + " |")
counted = [x for x in rows if x[5] in ("PASS", "FAIL")]
print(f"\n{sum(x[5] == 'PASS' for x in counted)}/{len(counted)} targets pass")
EOF
say "results in $RES"
