#!/usr/bin/env bash
# The integration suite's second pass: every store the tests make keeps its metadata in a
# PostgreSQL database of its own (created and dropped by the test) and its objects under a
# prefix of its own in an S3 bucket on a local S3-compatible server (moto, started here).
#
#   scripts/test-shared.sh [cargo test arguments…]
#
# REPRO_TEST_PG: the PostgreSQL server, without a database (default: the machine's own on
# 127.0.0.1:5432 as user postgres, trust auth). The tests connect to its `postgres` database
# to create and drop theirs.
set -euo pipefail
cd "$(dirname "$0")/.."
eval "$(scripts/s3-server.sh start 9000)"
export REPRO_TEST_PG="${REPRO_TEST_PG:-postgres://postgres@127.0.0.1:5432}"
export REPRO_TEST_S3_BUCKET="${REPRO_TEST_S3_BUCKET:-repro-test}"
# moto answers 200 for a bucket that exists already; anything else is a server problem.
python3 - "$AWS_ENDPOINT_URL/$REPRO_TEST_S3_BUCKET" <<'PY'
import sys, urllib.request
urllib.request.urlopen(urllib.request.Request(sys.argv[1], method="PUT"), timeout=10).read()
PY
exec cargo test --workspace --locked "$@"
