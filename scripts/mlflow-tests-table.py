#!/usr/bin/env python3
"""docs/mlflow-tests.md from a run of MLflow's own server tests against `repro serve`.

The harness (crates/repro-cli/tests/mlflow_suite.rs) runs the tests with a JUnit report;
this turns the report into the table of what passes, what is an open gap and what does not
apply (with the reasons in crates/repro-cli/tests/mlflow_suite/applicability.py).

    scripts/mlflow-tests-table.py --junit target/mlflow-suite/junit.xml --write
    scripts/mlflow-tests-table.py --junit target/mlflow-suite/junit.xml --check

--check exits 1 when the docs say something else than the run: a test that started or
stopped passing is a change to the docs, made on purpose.
"""

import argparse
import collections
import pathlib
import sys
import xml.etree.ElementTree as ET

ROOT = pathlib.Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "mlflow-tests.md"
# MLflow's own fixture skips its retired FileStore variant of every test: not a repro matter.
FILE_STORE = "FileStore is no longer supported."

HEAD = """# MLflow's own server tests against `repro serve`

MLflow's tracking-server tests — `tests/tracking/test_rest_tracking.py`,
`tests/tracking/test_model_registry.py` and `tests/tracking/test_mlflow_artifacts.py`, as
shipped in `../shared/mlflow-tests` (MLflow 3.11.2.dev0's files) — run unchanged against
`repro serve` with the MLflow client the project pins (3.17.2). Only the server launchers
are replaced (`crates/repro-cli/tests/mlflow_suite/repro_launcher.py`, a pytest plugin):
each test gets a `repro serve` over a fresh store where MLflow would start its own server.

`cargo test -p repro-cli --test mlflow_suite` runs them (CI does, in the SQLite pass) and
checks this page against the run; `scripts/mlflow-tests-table.py --write` remakes it.

- **passes**: the test passes against `repro serve`.
- **gap**: the test applies and fails today; it runs as a strict xfail, so the run fails
  the day it passes until it is moved to *passes*.
- **MLflow's own xfail**: MLflow marks the test as expected to fail; it runs, and its
  result is not counted either way.
- **not applicable**: skipped, with the reason. Outside repro's scope (GenAI traces,
  the AI gateway …), refused by design, tied to MLflow's own server internals, or failing
  against a real `mlflow server --workers 1` 3.17.2 too (checked with
  `REPRO_MLFLOW_BASELINE=1`, which keeps MLflow's own launchers).

Each test also has a `[file]` variant that MLflow's fixture itself skips ("FileStore is no
longer supported"); those are not listed.

MLflow's stages have no gates and its tests move any version to any stage, so the suite's
store declares repro's stages with nothing required (as a team migrating from MLflow starts
out); the gates themselves are tested by repro's own tests. Versions the tests register from
sources repro does not hold (`runs:/run_id/model`) are external versions.
"""


def outcome(case):
    for kind in ("failure", "error"):
        if case.find(kind) is not None:
            return "FAILED", (case.find(kind).get("message") or "").splitlines()[0][:200]
    skipped = case.find("skipped")
    if skipped is None:
        return "passes", ""
    message = skipped.get("message") or ""
    if message.startswith("gap: "):
        return "gap", message.removeprefix("gap: ")
    if skipped.get("type") == "pytest.xfail":
        return "MLflow's own xfail", message
    if FILE_STORE in message:
        return None, ""
    return "not applicable", message.split("not applicable: ", 1)[-1]


def render(junit):
    rows = collections.defaultdict(list)
    counts = collections.Counter()
    failed = []
    for case in ET.parse(junit).iter("testcase"):
        status, why = outcome(case)
        # MLflow's fixture skips every FileStore variant; one listed for a reason of ours
        # (the reason is the same as its SQL variant's) is not counted twice.
        if status is None or (status != "FAILED" and "[file" in case.get("name", "")):
            continue
        module = case.get("classname", "").rsplit(".", 1)[-1]
        name = case.get("name", "").replace("[sqlalchemy]", "").replace("[sqlalchemy-", "[")
        if status == "FAILED":
            failed.append(f"{module}::{name}: {why}")
            continue
        counts[status] += 1
        rows[module].append((name, status, why))
    out = [HEAD, "", "## In numbers", "", "| result | tests |", "|---|---:|"]
    for status in ("passes", "gap", "not applicable", "MLflow's own xfail"):
        out.append(f"| {status} | {counts[status]} |")
    for module in sorted(rows):
        out += ["", f"## `{module}.py`", "", "| test | result | why |", "|---|---|---|"]
        for name, status, why in rows[module]:
            name, why = name.replace("|", "\\|"), why.replace("|", "\\|")
            out.append(f"| `{name}` | {status} | {why} |")
    return "\n".join(out) + "\n", failed


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--junit", required=True, help="the JUnit XML report of a harness run")
    mode = ap.add_mutually_exclusive_group(required=True)
    mode.add_argument("--write", action="store_true", help="write docs/mlflow-tests.md")
    mode.add_argument("--check", action="store_true", help="fail when docs/mlflow-tests.md differs")
    args = ap.parse_args()
    text, failed = render(args.junit)
    if failed:
        print("tests failed, so there is no table to make:\n  " + "\n  ".join(failed), file=sys.stderr)
        return 1
    if args.write:
        DOC.write_text(text)
        return 0
    if not DOC.exists() or DOC.read_text() != text:
        print(
            f"{DOC.relative_to(ROOT)} does not match this run of MLflow's tests: "
            f"run scripts/mlflow-tests-table.py --junit {args.junit} --write and commit it",
            file=sys.stderr,
        )
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
