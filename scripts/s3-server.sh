#!/usr/bin/env bash
# Starts (or reuses) a local S3-compatible server for repro's object-store tests: moto in
# server mode on 127.0.0.1:PORT, from a venv at target/s3-venv built from
# scripts/s3-server.txt. Idempotent: if something already answers on the port it is reused.
# Prints the variables the tests and `repro` read, ready for `eval "$(scripts/s3-server.sh)"`.
#
#   scripts/s3-server.sh [start] [PORT]   start or reuse (default port 9000)
#   scripts/s3-server.sh stop [PORT]      stop the server this script started on PORT
#
# moto keeps everything in memory: stopping it forgets every bucket.
set -euo pipefail
cd "$(dirname "$0")/.."

cmd=start
case "${1:-}" in
  start | stop) cmd="$1"; shift ;;
esac
port="${1:-9000}"
case "$port" in
  '' | *[!0-9]*) echo "s3-server.sh: '$port' is not a port number" >&2; exit 2 ;;
esac
venv="${REPRO_S3_VENV:-target/s3-venv}"
reqs=scripts/s3-server.txt
stamp="$venv/.repro-s3-stamp"
log="target/s3-server-$port.log"
pidfile="target/s3-server-$port.pid"
url="http://127.0.0.1:$port"

answers() {
  # Any HTTP answer counts (moto answers / with a bucket listing); only a refused or
  # hanging connection means nobody is there.
  python3 - "$url" <<'PY' >/dev/null 2>&1
import sys, urllib.request, urllib.error
try:
    urllib.request.urlopen(sys.argv[1] + "/", timeout=2)
except urllib.error.HTTPError:
    pass
PY
}

if [ "$cmd" = stop ]; then
  if [ -f "$pidfile" ]; then
    pid="$(cat "$pidfile")"
    # Only the process this script started, and only while it still is moto.
    if kill -0 "$pid" 2>/dev/null && grep -q moto "/proc/$pid/cmdline" 2>/dev/null; then
      kill "$pid"
      echo "stopped the S3 server on port $port (pid $pid)"
    fi
    rm -f "$pidfile"
  else
    echo "no S3 server started by this script on port $port"
  fi
  exit 0
fi

# The venv is built even when a server is reused: the tests also call S3 with its boto3.
if ! { [ -f "$stamp" ] && cmp -s "$stamp" "$reqs"; }; then
  rm -rf "$venv"
  mkdir -p "$(dirname "$venv")"
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q --disable-pip-version-check -r "$reqs" >&2
  cp "$reqs" "$stamp"
fi

if ! answers; then
  mkdir -p target
  nohup "$venv/bin/moto_server" -H 127.0.0.1 -p "$port" >"$log" 2>&1 </dev/null &
  echo $! >"$pidfile"
  for _ in $(seq 1 150); do
    answers && break
    if ! kill -0 "$(cat "$pidfile")" 2>/dev/null; then
      echo "s3-server.sh: moto_server exited; see $log:" >&2
      tail -n 20 "$log" >&2
      exit 1
    fi
    sleep 0.2
  done
  if ! answers; then
    echo "s3-server.sh: moto_server did not answer on $url within 30 s; see $log" >&2
    exit 1
  fi
  echo "# started moto on $url (pid $(cat "$pidfile"), log $log)" >&2
else
  echo "# reusing the S3 server already answering on $url" >&2
fi

cat <<VARS
export AWS_ENDPOINT_URL=$url
export AWS_ALLOW_HTTP=true
export AWS_REGION=us-east-1
export AWS_ACCESS_KEY_ID=test
export AWS_SECRET_ACCESS_KEY=test
export REPRO_TEST_S3_ENDPOINT=$url
VARS
