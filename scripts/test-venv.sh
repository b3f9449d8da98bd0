#!/usr/bin/env bash
# Builds the virtualenv the integration tests use (real scikit-learn, pinned in
# requirements-test.txt). The tests build it themselves on first use; this script does
# the same ahead of time so its output is visible. Idempotent.
set -euo pipefail
cd "$(dirname "$0")/.."
venv="${REPRO_TEST_VENV:-target/test-venv}"
stamp="$venv/.repro-test-stamp"
if [ -f "$stamp" ] && cmp -s "$stamp" requirements-test.txt; then
  echo "test venv $venv is up to date"
  exit 0
fi
rm -rf "$venv"
mkdir -p "$(dirname "$venv")"
python3 -m venv "$venv"
"$venv/bin/pip" install -q --disable-pip-version-check -r requirements-test.txt
cp requirements-test.txt "$stamp"
echo "built test venv $venv: $("$venv/bin/python" -c 'import sklearn, numpy; print("scikit-learn", sklearn.__version__, "numpy", numpy.__version__)')"
