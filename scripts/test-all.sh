#!/usr/bin/env bash
# Everything the tests need, installed on a fresh Debian machine, then every test: the
# format and lint checks, the structure checks, pass 1 (SQLite and a local object folder) and
# pass 2 (PostgreSQL on 127.0.0.1:5432 and S3 on a local moto). CI runs exactly this
# (.ci/run calls it), so a green run here is a green run there.
#
#   scripts/test-all.sh
#
# Installs (each step skipped when already done): git, sqlite3, python3-venv, Chromium,
# Node.js/npm, the PostgreSQL client and server binaries (apt); the pinned test virtualenvs
# (PyPI, the frameworks one with PyTorch included); playwright-core (npm, no browser download); moto (PyPI); cargo-machete (crates.io);
# for the wheel and the static binary, maturin, pytest and uv (PyPI), musl-tools (apt) and
# rustup's x86_64-unknown-linux-musl target.
# xfsprogs (apt), for a small XFS image with reflinks (scripts/reflink-fs.sh), where the machine may mount one.
# Under REPRO_TEST_REQUIRE_ALL=1 (set here) a test that would skip for a missing tool fails.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TERM_COLOR=never
export REPRO_TEST_REQUIRE_ALL=1

need_apt=()
command -v git >/dev/null || need_apt+=(git)
command -v sqlite3 >/dev/null || need_apt+=(sqlite3)
python3 -c 'import venv, ensurepip' 2>/dev/null || need_apt+=(python3-venv)
# The web UI test drives Debian's headless Chromium with playwright-core (Node.js).
command -v chromium >/dev/null || need_apt+=(chromium)
command -v npm >/dev/null || need_apt+=(nodejs npm)
# The static binary (scripts/test-dist.sh) links with musl's C library; `man` reads its pages.
command -v musl-gcc >/dev/null || need_apt+=(musl-tools)
command -v man >/dev/null || need_apt+=(man-db)
# The shared-backend pass: psql/pg_dump (edits and backups behind repro's back) and the
# PostgreSQL server binaries (a private cluster the fault test starts and restarts).
command -v psql >/dev/null || need_apt+=(postgresql-client)
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || need_apt+=(postgresql)
if [ ${#need_apt[@]} -gt 0 ]; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_apt[@]}"
fi
# Tests make git commits; give git an identity if the machine has none.
git config --global user.email >/dev/null || git config --global user.email ci@example.invalid
git config --global user.name >/dev/null || git config --global user.name "repro CI"

echo "== the wheel (scripts/test-dist.sh build), in the background while the virtualenvs install"
# pip is mostly downloading and unpacking on one core; the release build takes the rest.
# The build holds cargo's lock, so the lints below wait for it.
mkdir -p target
scripts/test-dist.sh build > target/ci-dist-build.log 2>&1 &
dist_build=$!

echo "== test virtualenvs (pinned: scikit-learn; scikit-learn 1.4 for parity; securesystemslib + in-toto-attestation; the OpenLineage client; the MLflow 3.x and newest 2.x clients; the frameworks)"
scripts/test-venv.sh
scripts/test-venv.sh target/test-venv-sklearn-1.4 crates/repro-cli/tests/fixtures/sklearn-1.4.txt
scripts/test-venv.sh target/test-venv-provenance crates/repro-cli/tests/fixtures/provenance-tools.txt
scripts/test-venv.sh target/test-venv-openlineage crates/repro-cli/tests/fixtures/openlineage-tools.txt
scripts/test-venv.sh target/test-venv-cyclonedx crates/repro-cli/tests/fixtures/cyclonedx-tools.txt
scripts/test-venv.sh target/test-venv-mlflow crates/repro-cli/tests/fixtures/mlflow-client.txt
scripts/test-venv.sh target/test-venv-mlflow2 crates/repro-cli/tests/fixtures/mlflow2-client.txt
echo "== MLflow's own server tests' virtualenv (the full mlflow package, pytest; pinned in crates/repro-cli/tests/fixtures/mlflow-server-tests.txt)"
scripts/test-venv.sh target/test-venv-mlflow-server crates/repro-cli/tests/fixtures/mlflow-server-tests.txt
echo "== frameworks virtualenv (pinned in requirements-frameworks.txt: LightGBM, XGBoost, PyTorch from PyPI — its CUDA build, run on the CPU —, ONNX, nbclient; about 4 GB, 3-6 minutes)"
scripts/test-venv.sh target/test-venv-frameworks requirements-frameworks.txt


echo "== browser driver for the web UI test (playwright-core, pinned; no browser download)"
(cd crates/repro-cli/tests/browser && PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --no-audit --no-fund)

echo "== S3-compatible server for the shared-backend pass (moto, pinned in scripts/s3-server.txt)"
scripts/s3-server.sh start 9000 >/dev/null

echo "== waiting for the wheel's build"
if ! wait "$dist_build"; then
  cat target/ci-dist-build.log
  echo "error: building the wheel failed (target/ci-dist-build.log)" >&2
  exit 1
fi
tail -n 3 target/ci-dist-build.log

echo "== format and lints"
cargo fmt --all -- --check
cargo clippy --workspace --all-targets --locked -- -D warnings

echo "== structure: no module cycle inside a crate, no source file over 800 lines outside tests"
python3 scripts/check-structure.py
echo "== unused dependencies (cargo machete)"
command -v cargo-machete >/dev/null || cargo install --locked cargo-machete@0.9.2
cargo machete
echo "== docs/json.md describes exactly the pinned JSON"
python3 scripts/json-reference.py --check

echo "== a file system with reflinks for the reflinked-restore tests (XFS on a loop device, where the machine allows it)"
REPRO_TEST_REFLINK_DIR=$(scripts/reflink-fs.sh mount)
if [ -n "$REPRO_TEST_REFLINK_DIR" ]; then
  export REPRO_TEST_REFLINK_DIR
  trap 'scripts/reflink-fs.sh unmount' EXIT
  echo "mounted at $REPRO_TEST_REFLINK_DIR"
else
  unset REPRO_TEST_REFLINK_DIR
  echo "none here: those tests check the copying restore only"
fi

mkdir -p target
set +e
echo "== tests, pass 1: SQLite and a local object folder"
cargo test --workspace --locked --no-fail-fast 2>&1 | tee target/ci-test.log
status=${PIPESTATUS[0]}
echo "== tests, pass 2: PostgreSQL (127.0.0.1:5432) and S3 (moto on 127.0.0.1:9000)"
scripts/test-shared.sh --no-fail-fast 2>&1 | tee target/ci-test-shared.log
shared=${PIPESTATUS[0]}
set -e
for log in target/ci-test.log target/ci-test-shared.log; do
  passed=$(awk '/^test result:/ {s += $4} END {print s + 0}' "$log")
  failed=$(awk '/^test result:/ {s += $6} END {print s + 0}' "$log")
  echo "tests ($log): $passed passed, $failed failed"
done
echo "== the wheel and the static binary, as users install them (scripts/test-dist.sh)"
set +e
scripts/test-dist.sh test 2>&1 | tee target/ci-dist.log
dist=${PIPESTATUS[0]}
set -e
[ "$status" -eq 0 ] && [ "$shared" -eq 0 ] && [ "$dist" -eq 0 ]
