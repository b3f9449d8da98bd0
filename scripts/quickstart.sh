#!/usr/bin/env bash
# README's quick start, on a fresh machine: installs repro (cargo install, into ~/.cargo/bin)
# and runs the example end to end in a new folder — capture, audit, replay, diff.
#
#   scripts/quickstart.sh [DIR]              (default: a new temporary folder; it is kept)
#   scripts/quickstart.sh --installed [DIR]  the `repro` already on PATH (a wheel's, the
#                                            static binary): no cargo, no install
#
# Needs git and Python 3 with venv, and Rust (cargo) unless --installed; the example's
# packages come from PyPI.
set -euo pipefail
REPO="$(cd "$(dirname "$0")/.." && pwd)"
installed=0
if [ "${1:-}" = "--installed" ]; then installed=1; shift; fi
DIR="${1:-$(mktemp -d -t repro-quickstart.XXXXXX)}"
say() { printf '\n== %s\n' "$*"; }

tools=(git python3)
[ "$installed" = 1 ] && tools+=(repro) || tools+=(cargo)
for tool in "${tools[@]}"; do
  command -v "$tool" >/dev/null || { echo "error: $tool is missing; install it first (Rust from rustup.rs, repro with pip install repro-ml)" >&2; exit 2; }
done
python3 -c 'import venv, ensurepip' 2>/dev/null \
  || { echo "error: python3 cannot make virtualenvs; install python3-venv" >&2; exit 2; }

if [ "$installed" = 1 ]; then
  say "repro from PATH: $(command -v repro)"
else
  say "install repro (cargo install --locked --path crates/repro-cli)"
  # Its own target folder, so a second run only rebuilds what changed.
  cargo install --locked --quiet --path "$REPO/crates/repro-cli" --target-dir "$REPO/target/install"
  export PATH="$HOME/.cargo/bin:$PATH"
fi
repro --version

say "the example project in $DIR"
mkdir -p "$DIR" && cp -r "$REPO/examples/sklearn-pricing/." "$DIR/" && cd "$DIR"
git init -q && echo data/ >> .gitignore && echo .venv/ >> .gitignore && git add -A
git -c user.name="${GIT_AUTHOR_NAME:-repro quickstart}" -c user.email="${GIT_AUTHOR_EMAIL:-quickstart@example.invalid}" \
  commit -qm "pricing model"
python3 -m venv .venv && .venv/bin/pip install -q --disable-pip-version-check -r requirements.txt
.venv/bin/python generate_data.py

say "capture: repro run"
repro init
repro run --name baseline --seed 42 --data data/train.csv --params params.yaml \
  --output model.pkl -- .venv/bin/python train.py
say "audit: is every ingredient there?"
repro audit baseline
say "replay: rebuild it from the store and compare"
repro replay baseline
say "diff: a second run with another seed, and why it differs"
repro run --name seed7 --seed 7 --data data/train.csv --params params.yaml \
  --output model.pkl -- .venv/bin/python train.py
repro diff baseline seed7
say "done: the project and its store are in $DIR (repro runs, repro show baseline, repro --help)"
