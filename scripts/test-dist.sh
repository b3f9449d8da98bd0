#!/usr/bin/env bash
# repro as users install it, built once and tried the way they would. The wheel carries the
# static x86_64-unknown-linux-musl binary, tagged manylinux2014 and musllinux_1_2 (maturin
# allows both for a binary that links no libc), so one build is both deliverables:
#  1. the wheel (maturin, pinned in scripts/wheel-tools.txt), installed into a fresh venv by
#     a shell whose PATH has no Rust; the README's quick start (init, run, audit, replay,
#     diff) from that venv's `repro`; the helper's pytest suite against it; the manual pages
#     and completions where the venv keeps them; `uv tool install` of the same wheel;
#  2. the binary alone, taken out of the wheel: no dynamic section, `repro --version`, and the
#     quick start again from a clean folder with only it on PATH (and the libc it records is
#     the machine's, not its own).
#
#   scripts/test-dist.sh          build the wheel, then try it
#   scripts/test-dist.sh build    only build target/wheels/repro_ml-….whl
#   scripts/test-dist.sh test     only try the wheel already in target/wheels
#
# Built with --release, as .github/workflows/release.yml builds the published wheels
# (REPRO_DIST_PROFILE=NAME picks another cargo profile, for a quicker local try).
set -euo pipefail
cd "$(dirname "$0")/.."
REPO="$(pwd)"
profile="${REPRO_DIST_PROFILE:-release}"
phase="${1:-all}"
case "$phase" in all|build|test) ;; *) echo "error: unknown phase '$phase'; use build, test or nothing (both)" >&2; exit 2;; esac
py="$(python3 -c "import sys; print(sys.executable)")"
work="$(mktemp -d -t repro-dist.XXXXXX)"
trap 'rm -rf "$work"' EXIT
say() { printf '\n== %s\n' "$*"; }
# What a machine without Rust has: the system folders and this Python, nothing from ~/.cargo.
bare_path="$(dirname "$py"):/usr/local/bin:/usr/bin:/bin"
bare() { env -i HOME="$HOME" LANG=C.UTF-8 TERM=dumb PATH="$1" REPRO_TEST_REQUIRE_ALL="${REPRO_TEST_REQUIRE_ALL:-}" \
  GIT_AUTHOR_NAME="repro dist" GIT_AUTHOR_EMAIL=dist@example.invalid GIT_COMMITTER_NAME="repro dist" \
  GIT_COMMITTER_EMAIL=dist@example.invalid "${@:2}"; }
for tool in cargo rustc; do
  if PATH="$bare_path" command -v "$tool" >/dev/null; then
    echo "error: $tool is on $bare_path; the install step must run without Rust" >&2; exit 2
  fi
done

if [ "$phase" != test ]; then
  tools=target/wheel-tools
  scripts/test-venv.sh "$tools" scripts/wheel-tools.txt
  target=x86_64-unknown-linux-musl
  command -v musl-gcc >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq musl-tools; }
  rustup target list --installed | grep -qx "$target" || rustup target add "$target"
  say "build: maturin build --profile $profile --target $target"
  rm -rf target/wheels
  "$tools/bin/maturin" build --profile "$profile" --locked --target "$target" \
    --compatibility manylinux2014 musllinux_1_2 --out target/wheels
fi
wheel="$(ls target/wheels/repro_ml-*-py3-none-manylinux2014_x86_64.*musllinux_1_2_x86_64.whl)"
ls -l "$wheel"
[ "$phase" = build ] && exit 0

say "wheel: pip install into a fresh venv, no Rust on PATH"
bare "$bare_path" "$py" -m venv "$work/venv"
grep -v "^maturin" scripts/wheel-tools.txt > "$work/test-tools.txt"  # pytest, mypy, uv
bare "$bare_path" "$work/venv/bin/pip" install -q --disable-pip-version-check "$wheel" -r "$work/test-tools.txt"
venv_path="$work/venv/bin:$bare_path"
test "$(bare "$venv_path" sh -c 'command -v repro')" = "$work/venv/bin/repro"
bare "$venv_path" repro --version
for f in share/man/man1/repro.1 share/man/man1/repro-run.1 share/bash-completion/completions/repro \
         share/zsh/site-functions/_repro share/fish/vendor_completions.d/repro.fish; do
  test -s "$work/venv/$f" || { echo "error: the wheel did not install $f" >&2; exit 1; }
done
MANPAGER=cat MANWIDTH=80 man -l "$work/venv/share/man/man1/repro-run.1" | grep -q -- "--seed"

say "wheel: the helper's tests (pytest), \`import repro\` from the installed wheel"
origin="$(cd "$work" && bare "$venv_path" python -c 'import repro; print(repro.__file__)')"
case "$origin" in "$work/venv/"*) ;; *) echo "error: import repro found $origin, not the wheel's" >&2; exit 1;; esac
(cd "$work" && bare "$venv_path" python -m pytest -q -p no:cacheprovider --import-mode=importlib "$REPO/python/tests")
# What py.typed promises: the installed helper passes mypy --strict, as a user's checker sees it.
printf 'import repro\nx: int = repro.seed()\nrepro.log_metric("m", 1.0, step=x)\n' > "$work/typed.py"
(cd "$work" && bare "$venv_path" mypy --strict --no-incremental typed.py)

say "wheel: the quick start from the venv's repro"
bare "$venv_path" "$REPO/scripts/quickstart.sh" --installed "$work/quickstart-wheel"

say "wheel: uv tool install"
bare "$bare_path" env UV_TOOL_DIR="$work/uv-tools" UV_TOOL_BIN_DIR="$work/uv-bin" UV_PYTHON_DOWNLOADS=never \
  UV_CACHE_DIR="$work/uv-cache" "$work/venv/bin/uv" tool install --python "$py" "$wheel"
bare "$bare_path" "$work/uv-bin/repro" --version

say "static: the binary alone, out of the wheel"
mkdir -p "$work/static-bin"
"$py" - "$wheel" "$work/static-bin/repro" <<'PY'
import os, sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as z:
    name = next(n for n in z.namelist() if n.endswith(".data/scripts/repro"))
    with open(sys.argv[2], "wb") as f:
        f.write(z.read(name))
os.chmod(sys.argv[2], 0o755)
PY
ls -l "$work/static-bin/repro"
if readelf -d "$work/static-bin/repro" | grep -q NEEDED; then
  echo "error: the binary links shared libraries:" >&2; readelf -d "$work/static-bin/repro" >&2; exit 1
fi
bare "$work/static-bin:$bare_path" repro --version
bare "$work/static-bin:$bare_path" "$REPO/scripts/quickstart.sh" --installed "$work/quickstart-static"
# The libc recorded is the machine's (the training process's), not the binary's own musl.
want="$(getconf GNU_LIBC_VERSION)"
got="$(cd "$work/quickstart-static" && "$work/static-bin/repro" show baseline --json | "$py" -c 'import json,sys; print(json.load(sys.stdin)["environment"]["os"]["libc"])')"
[ "$got" = "$want" ] || { echo "error: the static binary recorded libc '$got', the machine has '$want'" >&2; exit 1; }
say "dist: ok"
