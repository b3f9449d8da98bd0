#!/usr/bin/env bash
# Builds a virtualenv the integration tests use, exactly as `common::cached_venv` does
# (same folder, same stamp), so CI installs everything before the tests run and its output
# is visible. With no arguments: the main test venv (real scikit-learn, pinned in
# requirements-test.txt). With DIR REQUIREMENTS: that venv. Idempotent.
#
#   scripts/test-venv.sh
#   scripts/test-venv.sh target/test-venv-provenance crates/repro-cli/tests/fixtures/provenance-tools.txt
set -euo pipefail
cd "$(dirname "$0")/.."
venv="${1:-${REPRO_TEST_VENV:-target/test-venv}}"
reqs="${2:-requirements-test.txt}"
stamp="$venv/.repro-test-stamp"
if [ -f "$stamp" ] && cmp -s "$stamp" "$reqs"; then
  echo "test venv $venv is up to date"
  exit 0
fi
rm -rf "$venv"
mkdir -p "$(dirname "$venv")"
python3 -m venv "$venv"
"$venv/bin/pip" install -q --disable-pip-version-check -r "$reqs"
cp "$reqs" "$stamp"
echo "built test venv $venv from $reqs"
