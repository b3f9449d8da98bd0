#!/usr/bin/env bash
# Installs what bench/run.sh needs. Idempotent: every step is skipped when already done.
#
#   hyperfine, GNU time, strace    (Debian apt)
#   b3sum                           (crates.io, `cargo install`, into $BENCH_TOOLS/bin)
#   uv (pinned)                     (PyPI, in its own venv: $BENCH_TOOLS/uv-venv, linked as $BENCH_TOOLS/bin/uv)
#   DVC (pinned)                    (PyPI, in its own venv: $BENCH_WORK/dvc-venv)
#   MLflow (pinned, full server)    (PyPI, in its own venv: $BENCH_TOOLS/mlflow-venv; `mlflow server`
#                                    and the MlflowClient that bench/server.py drives both servers with)
#   a 105-package virtualenv        (PyPI, pinned in bench/requirements-bench.txt: $BENCH_WORK/pyenv-90;
#                                    rebuilt from scratch whenever that file changes)
#
# Environment (defaults in brackets):
#   BENCH_SETUP_ONLY [empty]           `env`: only what `BENCH_ONLY=env bench/run.sh` needs
#                                      (apt tools, uv, the package venv; no b3sum, no DVC, no MLflow)
#                                      `server`: only what `BENCH_ONLY=server bench/run.sh` needs
#                                      (apt tools, the MLflow venv)
#   BENCH_WORK   [/work/bench-work]     data, venvs, stores, results; never inside the repo
#   BENCH_TOOLS  [/work/bench-tools]    cargo install root for b3sum; uv's venv
#   BENCH_TARGET [/work/bench-target]   CARGO_TARGET_DIR for everything built here
#   BENCH_PYTHON [python3 on PATH, resolved to its real executable]
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
BENCH_WORK="${BENCH_WORK:-/work/bench-work}"
BENCH_TOOLS="${BENCH_TOOLS:-/work/bench-tools}"
BENCH_TARGET="${BENCH_TARGET:-/work/bench-target}"
DVC_VERSION="3.67.1"
B3SUM_VERSION="1.8.7"
UV_VERSION="0.13.8"
MLFLOW_VERSION="3.17.2"   # installs on CPython 3.11 (checked with 3.11.7)
ONLY="${BENCH_SETUP_ONLY:-}"
case "$ONLY" in ""|env|server) ;; *) echo "error: BENCH_SETUP_ONLY must be empty, 'env' or 'server'" >&2; exit 2 ;; esac

say() { printf '\n== %s\n' "$*"; }
mkdir -p "$BENCH_WORK" "$BENCH_TOOLS"

# --- system tools ---------------------------------------------------------------------------
missing=()
command -v hyperfine >/dev/null || missing+=(hyperfine)
[ -x /usr/bin/time ] || missing+=(time)
command -v strace >/dev/null || missing+=(strace)
command -v git >/dev/null || missing+=(git)
if [ ${#missing[@]} -gt 0 ]; then
    say "apt-get install ${missing[*]}"
    SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}"
else
    say "hyperfine, time, strace, git: present"
fi

# --- b3sum ----------------------------------------------------------------------------------
if [ -n "$ONLY" ]; then
    say "b3sum: skipped (BENCH_SETUP_ONLY=$ONLY)"
elif [ -x "$BENCH_TOOLS/bin/b3sum" ] && "$BENCH_TOOLS/bin/b3sum" --version | grep -q "$B3SUM_VERSION"; then
    say "b3sum $B3SUM_VERSION: present"
else
    say "cargo install b3sum $B3SUM_VERSION"
    CARGO_TARGET_DIR="$BENCH_TARGET/b3sum" cargo install --locked b3sum --version "$B3SUM_VERSION" --root "$BENCH_TOOLS"
fi

# --- Python interpreter for the venvs ---------------------------------------------------------
PY="${BENCH_PYTHON:-$(python3 -c 'import sys; print(sys.executable)')}"
say "base interpreter: $PY ($("$PY" --version))"

# --- uv (compared with in the env-capture benchmark) ---------------------------------------------
UV_VENV="$BENCH_TOOLS/uv-venv"
if [ "$ONLY" = server ]; then
    say "uv: skipped (BENCH_SETUP_ONLY=server)"
elif [ -x "$BENCH_TOOLS/bin/uv" ] && [ "$("$BENCH_TOOLS/bin/uv" --version 2>/dev/null | cut -d' ' -f2)" = "$UV_VERSION" ]; then
    say "uv $UV_VERSION: present"
else
    say "uv $UV_VERSION into $UV_VENV"
    [ -x "$UV_VENV/bin/python" ] || "$PY" -m venv "$UV_VENV"
    "$UV_VENV/bin/pip" install -q --disable-pip-version-check "uv==$UV_VERSION"
    mkdir -p "$BENCH_TOOLS/bin"
    ln -sfn "$UV_VENV/bin/uv" "$BENCH_TOOLS/bin/uv"
    say "$("$BENCH_TOOLS/bin/uv" --version)"
fi

# --- DVC venv -------------------------------------------------------------------------------
DVC_VENV="$BENCH_WORK/dvc-venv"
if [ -n "$ONLY" ]; then
    say "dvc: skipped (BENCH_SETUP_ONLY=$ONLY)"
elif [ -x "$DVC_VENV/bin/dvc" ] && [ "$("$DVC_VENV/bin/dvc" --version 2>/dev/null)" = "$DVC_VERSION" ]; then
    say "dvc $DVC_VERSION: present"
else
    say "dvc $DVC_VERSION into $DVC_VENV"
    [ -x "$DVC_VENV/bin/python" ] || "$PY" -m venv "$DVC_VENV"
    "$DVC_VENV/bin/pip" install -q --disable-pip-version-check "dvc==$DVC_VERSION"
fi

# --- MLflow venv: the full tracking server and its client (BENCH_ONLY=server) ---------------------
MLFLOW_VENV="$BENCH_TOOLS/mlflow-venv"
if [ "$ONLY" = env ]; then
    say "mlflow: skipped (BENCH_SETUP_ONLY=env)"
elif [ -x "$MLFLOW_VENV/bin/mlflow" ] \
    && [ "$("$MLFLOW_VENV/bin/pip" show mlflow 2>/dev/null | awk '/^Version:/ {print $2}')" = "$MLFLOW_VERSION" ]; then
    say "mlflow $MLFLOW_VERSION: present"
else
    say "mlflow $MLFLOW_VERSION (full server) into $MLFLOW_VENV"
    [ -x "$MLFLOW_VENV/bin/python" ] || "$PY" -m venv "$MLFLOW_VENV"
    "$MLFLOW_VENV/bin/pip" install -q --disable-pip-version-check "mlflow==$MLFLOW_VERSION"
    "$MLFLOW_VENV/bin/pip" check --disable-pip-version-check
    say "$(MLFLOW_DISABLE_TELEMETRY=true "$MLFLOW_VENV/bin/mlflow" --version)"
fi

# --- the 105-package venv used by `env capture` and `run` ----------------------------------------
V="$BENCH_WORK/pyenv-90"
REQ="$HERE/requirements-bench.txt"
stamp="$V/.bench-requirements.sha256"
want="$(sha256sum "$REQ" | cut -d' ' -f1)"
if [ "$ONLY" = server ]; then
    say "package venv: skipped (BENCH_SETUP_ONLY=server)"
elif [ -x "$V/bin/python" ] && [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
    say "package venv: present ($("$V/bin/pip" freeze --disable-pip-version-check | wc -l) packages in pip freeze)"
else
    say "package venv into $V from $REQ"
    # From scratch, so that packages dropped from the list do not linger.
    rm -rf "$V"
    "$PY" -m venv "$V"
    # Fully pinned list (a pip freeze, dependencies included), so no resolver surprises: install
    # exactly these, then check that the venv holds exactly the list and that it is consistent.
    "$V/bin/pip" install -q --disable-pip-version-check --no-deps -r "$REQ"
    "$V/bin/pip" check --disable-pip-version-check
    if ! diff <(grep -v '^\s*\(#\|$\)' "$REQ" | sort -f) <("$V/bin/pip" freeze --disable-pip-version-check | sort -f); then
        echo "error: pip freeze of $V differs from $REQ (lines < only in the file, > only in the venv)" >&2
        exit 1
    fi
    echo "$want" > "$stamp"
    say "package venv: $("$V/bin/pip" freeze --disable-pip-version-check | wc -l) packages in pip freeze"
fi

say "setup done"
