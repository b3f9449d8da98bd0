#!/usr/bin/env python3
"""Writes docs/json.md, the reference of every command's `--json`, from the snapshots that pin
it (crates/repro-cli/tests/snapshots/output__*.json.snap) and the meanings below.

    scripts/json-reference.py          rewrite docs/json.md
    scripts/json-reference.py --check  exit 1 if docs/json.md is not what the snapshots say

A key that is new in a snapshot and has no meaning here is written as "(undocumented)" and
`--check` names it: say what it means in MEANINGS before the change lands.
"""
import json
import pathlib
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent
SNAPS = ROOT / "crates/repro-cli/tests/snapshots"
DOC = ROOT / "docs/json.md"

# Objects whose keys are data (a variable's name, a parameter's name), not shape.
DATA_MAPS = {"variables", "values", "logged"}

# (heading, one-line purpose, snapshots that pin it), in the order a user meets them.
SECTIONS = [
    ("repro init", "The store that was created.", ["init.json.snap"]),
    ("repro run", "The run's id, how it ended, and its exit code (`repro show ID --json` has the whole record).", ["run.json.snap"]),
    ("repro runs", "An array of run records, newest first.", ["runs.json.snap"]),
    ("repro show", "Everything recorded about one run: its record.", ["show.json.snap"]),
    ("repro audit", "Whether a run has every ingredient an auditor asks for; exit 1 when not.", ["audit.json.snap"]),
    ("repro diff", "Two runs side by side, section by section, and the likely causes.", ["diff.json.snap"]),
    ("repro replay", "The rebuilt run, and the verdict on whether it matches the recorded one.", ["replay.json.snap"]),
    ("repro data snapshot", "The dataset version a file or folder was stored as.", ["data_snapshot.json.snap"]),
    ("repro data ls", "Datasets and their versions.", ["data_ls.json.snap"]),
    ("repro data show", "One dataset version and its files.", ["data_show.json.snap"]),
    ("repro data diff", "The files two dataset versions differ in, and how much of their manifests was read.", ["data_diff.json.snap"]),
    ("repro env check", "Each dependency of an environment file, classified.", ["env_check.json.snap"]),
    ("repro env register", "The registered environment version.", ["env_register.json.snap"]),
    ("repro env ls", "Registered environments.", ["env_ls.json.snap"]),
    ("repro env show", "One registered environment.", ["env_show.json.snap"]),
    ("repro env diff", "Two environments compared package by package.", ["env_diff.json.snap"]),
    ("repro env capture", "The installed set of a Python interpreter.", ["env_capture.json.snap"]),
    ("repro env parity", "A run's training environment against a serving one; exit 1 when they differ.", ["env_parity.json.snap"]),
    ("repro model register", "The new model version.", ["model_register.json.snap"]),
    ("repro model ls", "Models, their versions and stages.", ["model_ls.json.snap"]),
    ("repro model show", "A model with every version, or one version with its history.", ["model_show.json.snap", "model_show_version.json.snap", "model_show_after_archive.json.snap"]),
    ("repro model promote", "The outcome of a promotion: promoted, or refused with what is unmet (exit 1).", ["model_promote.json.snap", "model_promote_refused.json.snap"]),
    ("repro model sign", "The signatures written for a version.", ["model_sign.json.snap"]),
    ("repro model approve", "The signed approval recorded, and what the stage still needs.", ["model_approve.json.snap"]),
    ("repro model archive", "The archived version.", ["model_archive.json.snap"]),
    ("repro model bom", "With -o: where the CycloneDX BOM went, and with --sign the envelope recorded (without -o the BOM itself is the output).", ["model_bom.json.snap"]),
    ("repro model card", "With -o: where the model card went (without -o the Markdown itself is the output).", ["model_card.json.snap"]),
    ("repro model verify", "Every check on a version; exit 1 when any fails.", ["model_verify.json.snap"]),
    ("repro key generate", "The key pair written.", ["key_generate.json.snap"]),
    ("repro key show", "A public key's id and whether this store trusts it.", ["key_show.json.snap"]),
    ("repro key add", "The key now trusted.", ["key_add.json.snap"]),
    ("repro key ls", "The keys this store trusts, and your own.", ["key_ls.json.snap"]),
    ("repro bundle export", "The bundle written.", ["bundle_export.json.snap"]),
    ("repro bundle import", "What a bundle brought in, and who signed it.", ["bundle_import.json.snap"]),
    ("repro token create", "The new token: shown once, only its hash is stored.", ["token_create.json.snap"]),
    ("repro token ls", "Tokens: ids, roles, names; never the tokens.", ["token_ls.json.snap"]),
    ("repro fsck", "What the store check found; exit 1 when anything is damaged.", ["fsck.json.snap"]),
    ("repro man", "With --out: every manual page written, repro.1 first (without --out, repro(1) itself is the output; `repro completions SHELL` prints its script the same way).", ["man.json.snap"]),
]

MEANINGS = {
    "added": "files only the second version has: path, digest, size, mode",
    "removed": "files only the first version has",
    "changed": "files in both whose content or mode differs: path, and the file `before` and `after`",
    "before": "the file as the first version lists it: size, mode, digest",
    "after": "the file as the second version lists it",
    "unchanged": "files in both with the same content and mode",
    "chunks": "how the manifests were read: chunks of each (`a`, `b`; 0 for a manifest kept whole) and chunks both share, which were not read",
    "shared": "chunks both manifests name: they hold the same files, so they were not read",
    "attestations": "signed statements about the version other than its provenance (a CycloneDX BOM signed by `repro model bom --sign`): predicate type, key id, envelope and public key objects, who and when",
    "predicate_type": "the in-toto predicate type of the signed statement (`https://cyclonedx.org/bom`)",
    "signed": "the signature just recorded: key id and the envelope object",
    "probe": "what the in-process probe saw inside the command's Python processes (absent for runs recorded before it); `status` says whether it ran",
    "processes": "how many Python processes reported to the probe (a launcher and each rank count one)",
    "files_opened": "distinct files the processes opened, the interpreter's and installed packages' own left out",
    "reads": "files read inside the repository, the working directory or a data folder, with the order of first and last access",
    "writes": "files written there, with the order of first and last access",
    "first": "the order of the first access among everything the processes opened",
    "last": "the order of the last access",
    "undeclared_inputs": "files read that no --data covers and git does not hold: path, digest and size when the run ended, whether it still exists",
    "probable_outputs": "files the command wrote that no --output covers",
    "packages_used": "distributions the processes imported, with the installed version (local labels such as +cu132 kept)",
    "seeds": "seeding calls the script made (random.seed, numpy.random.seed, torch.manual_seed …): `via`, `value` (null: no seed), `rank`",
    "repro_params_read": "whether the command opened the REPRO_PARAMS file (the merged params with --param overrides applied)",
    "frameworks": "the frameworks' determinism state at exit: torch flags and versions, TensorFlow, JAX, BLAS thread pools, DataLoaders",
    "threadpools": "the BLAS/OpenMP thread pools threadpoolctl saw: `api`, `num_threads`, `version`",
    "num_threads": "threads the pool (or torch) uses",
    "api": "the threading library of a pool (openblas, mkl, openmp …)",
    "a": "the first side (run A, environment A)",
    "b": "the second side",
    "against": "what the run is compared with (a registered environment, a file, an interpreter)",
    "already": "true when nothing new was written because it was already there",
    "artifacts": "the run's output files that are models: file, format (pickle, joblib, torch-zip, lightgbm-text, lightgbm-json, xgboost-json, xgboost-ubjson, onnx, safetensors, keras, skops), the library that wrote it and, when the file records it, that library's version; format_version, imports and details where the file says",
    "approvals": "signed approvals: who, for which stage, when, with which key",
    "approvals_verified": "how many approval signatures verified",
    "approver_keyid": "the key id the approval was signed with",
    "approvers": "the keys trusted to approve",
    "archived": "null, or who archived the version, when and why",
    "argv": "the command line as run",
    "artifact": "the model file(s): the run output they came from, and their digests",
    "artifact_packages": "Python packages the artifact's pickles import",
    "at_ms": "when, in milliseconds since the Unix epoch",
    "bad_runs": "runs whose records fail their checks",
    "blake3": "BLAKE3 digest of the file",
    "branch": "the git branch",
    "broken_references": "records that name an object the store lacks",
    "build": "the wheel's build tag, when it has one",
    "by": "who did it (a person's name and email, from a key or a token)",
    "bytes": "size in bytes",
    "caches_rebuilt": "derived tables rebuilt from their sources",
    "captured_differences": "differences between the captured and the declared environment",
    "causes": "likely causes of the difference, most likely first",
    "changes": "what differs in this section",
    "checks": "each check: its name, whether it passed, and the detail",
    "clean": "true when nothing is wrong",
    "code": "the git state: commit, branch, remote, uncommitted diff, untracked files",
    "comment": "the approver's comment",
    "commit": "the git commit (40 hex digits)",
    "companions": "files the environment file includes (-r, -c)",
    "complete": "true when every required ingredient is present",
    "corrupt": "objects whose bytes no longer hash to their name",
    "created_at": "when it was created (RFC 3339, UTC)",
    "created_ms": "when it was created, in milliseconds since the Unix epoch",
    "created_with": "the tool that made the environment (pip, uv, conda …)",
    "dataset": "the named dataset and version this input is",
    "declared": "the environment file the project declares (requirements.txt …), parsed",
    "detail": "what was found, in words",
    "diff": "the uncommitted diff's object, or null when the tree was clean",
    "diff_applied": "true when the recorded diff was applied to the rebuilt tree",
    "diff_files": "files the uncommitted diff touches",
    "differences": "each difference found",
    "digest": "content digest (`blake3:…`)",
    "dirty": "true when the tree had uncommitted changes",
    "email": "the person's email",
    "ended_at": "when the run ended (RFC 3339, UTC)",
    "entries": "the files in the snapshot: path, digest, size, mode",
    "entry": "the `[trust]` entry in repro.toml",
    "attestation": "the signed verdict, when `repro replay` had a key: the objects of its DSSE envelope and public key, and the key id (absent when unsigned)",
    "envelope": "the DSSE envelope (payload type, base64 payload, signatures)",
    "environment": "the Python environment, OS and variables the run had",
    "error": "why the git state could not be read, or null",
    "evidence": "the facts behind a cause",
    "executable": "the Python interpreter's path",
    "exit_code": "the command's exit code (null when killed by a signal)",
    "facts": "the head of the run's fact journal: sequence number and hash (what signatures cover)",
    "field": "the field that differs",
    "file": "the file written or read",
    "written": "the files written, as paths the command was given",
    "imports": "the distributions a model file's pickles import when loaded, in order of first use",
    "library": "the distribution that wrote a model file (lightgbm, xgboost, torch, scikit-learn; for ONNX the converter: skl2onnx, torch)",
    "files": "files: count, or one entry per file",
    "fix": "what to do about it",
    "format": "the file's format",
    "found_by": "how the interpreter was found (the command, PATH, a venv)",
    "from": "where it came from",
    "generated": "true when repro chose the seed (none was given)",
    "launcher": "the program that started the script (torchrun, accelerate launch, deepspeed, jupyter nbconvert, nbclient); absent when run directly",
    "file_digest": "a notebook's whole .ipynb as stored (its `digest` is of the code cells only)",
    "diff_elsewhere": "a notebook run's uncommitted changes outside the notebook (a digest, not an object); absent when none",
    "container": "the container the run happened in (runtime, image, digest, image_id, source); absent outside one with no image named",
    "runtime": "the container runtime seen: docker, podman, kubernetes, containerd",
    "image": "the container image reference, as given (--image, REPRO_IMAGE) or as the runtime names it",
    "image_id": "the local image id a runtime reports (podman); not a registry digest",
    "git_state": "the script's state in git: tracked and unchanged, modified, untracked",
    "hardware": "CPU, memory and accelerators",
    "hash": "the journal head's hash",
    "hashed_bytes": "bytes re-hashed",
    "hashed_files": "files re-hashed",
    "history": "the registry events of this version, oldest first",
    "host": "the machine's name",
    "how": "how the replay got the input (restored from the store, found in place)",
    "id": "the identifier (a run id, a key id, a token id)",
    "ignored": "packages left out of the comparison (--ignore)",
    "imported": "what was imported",
    "imported_from": "null, or the bundle this version came from",
    "include_data": "true when the data is in the bundle",
    "inputs": "the data the run read: path, snapshot digest, size, dataset version",
    "installer": "the tool that installed the package",
    "interrupted": "runs that never finished (killed)",
    "items": "each audit item: name, status, detail, fix",
    "kept": "what was kept",
    "key": "the metric's name",
    "keyid": "the signing key's id (SHA-256 of the public key)",
    "kind": "what kind of thing it is",
    "latest": "the newest version",
    "logs": "the run's standard output and error: objects and sizes",
    "lineage": "the digest of the run record and everything it names",
    "loose": "dependencies with a range, not an exact pin",
    "manifest_signed_by": "who signed the bundle's manifest, and whether that key is trusted",
    "metric_count": "how many metric points were logged",
    "metrics": "metrics: recorded and replayed values, tolerance, within",
    "missing": "true when the output was not there after the run",
    "mode": "the file's mode bits",
    "model": "the model version (NAME@V)",
    "models": "the models",
    "name": "the name",
    "needed": "how many more are needed",
    "new": "what is new",
    "new_bytes": "bytes stored that were not already in the store",
    "new_objects": "objects stored that were not already in the store",
    "note": "an explanation of the change",
    "notes": "remarks about the capture; for env check, the requirements not pinned exactly that do not count (a Python series pin, installer tools), each with why",
    "objects": "objects in the store or the bundle",
    "objects_added": "objects the import added",
    "ok": "true when the check passed",
    "origin": "where the requirement came from (the file and line)",
    "original": "the run that was replayed",
    "os": "the operating system",
    "outcome": "what happened (promoted, refused …)",
    "output": "the run output the artifact is",
    "outputs": "the files the run wrote: path, digest, size",
    "outputs_differ": "true when an output's bytes differ",
    "own": "your own key (in ~/.config/repro), if you have one",
    "packages": "installed packages: name, version, installer, build, url",
    "params": "hyperparameters: the files given with --params, their values, and those the script logged",
    "pass": "the check's result",
    "path": "a path, relative to the project where it can be",
    "pinned": "dependencies with an exact pin",
    "predates_run": "true when the output file is older than the run (left from before)",
    "prefix": "the Python installation's prefix",
    "private": "the private key's path",
    "public": "the public key's path",
    "public_key": "the public key (PEM)",
    "python": "the Python interpreter and its installed packages",
    "python_critical": "true when a difference is in a package the model depends on",
    "reason": "why",
    "reasons": "why, one per line",
    "record_object": "the object holding the run record",
    "record_version": "the run record's format version",
    "recorded": "the value recorded by the original run",
    "recorded_exit_code": "the original run's exit code",
    "reference": "true when the data was recorded by reference (not stored)",
    "registered_at_ms": "when the version was registered, in milliseconds since the Unix epoch",
    "registered_by": "who registered it",
    "registry": "the registry's event chain check",
    "registry_calls": "MLflow registry calls the script made",
    "registry_events": "registry events checked",
    "remote": "the git remote's URL, credentials removed",
    "repeated": "approvals by a person who had already approved (counted once)",
    "replaced": "what was replaced",
    "replay": "the replay run",
    "replayed": "the value the replay produced",
    "replays": "replays of this run",
    "repo_root": "the repository's root folder",
    "report_object": "the object holding the replay report",
    "requirement": "the policy requirement",
    "requirements": "the environment file's requirements: name, spec, status, origin",
    "restored_from_store": "true when the code was rebuilt from the store (not the local repository)",
    "role": "the token's role: read, write or admin",
    "roles": "what the key is trusted for: approver, signer",
    "run": "the run id",
    "runs": "runs",
    "same": "true when this section is the same on both sides",
    "script": "the training script: path, digest, git state, argv",
    "sections": "each ingredient compared: same, or the changes",
    "seed": "the random seed and whether repro generated it",
    "seq": "the sequence number",
    "set_by_repro": "variables repro set for determinism (the seed, thread counts)",
    "sha256": "SHA-256 digest of the file (what in-toto and MLflow use)",
    "signal": "the signal that killed the command, or null",
    "signature": "the approval's DSSE envelope and key",
    "signatures": "signatures over the version's provenance",
    "signatures_verified": "how many signatures verified",
    "signed_by": "who signed, by key id and name",
    "signed_only": "true when only signed approvals count",
    "signer": "the key that signed",
    "site_dirs": "the interpreter's site-packages folders",
    "size": "size in bytes",
    "snapshot": "the snapshot's digest",
    "snapshots": "snapshots",
    "source": "where it came from",
    "spec": "the version specifier, or the environment's spec",
    "spec_object": "the object holding the environment spec",
    "stage": "the stage (dev, staging, prod, or one repro.toml names)",
    "stages": "which version holds each stage",
    "stale_temp_removed": "temporary files left by killed writers and removed",
    "started_at": "when the run started (RFC 3339, UTC)",
    "status": "the state (finished, failed, pinned, ok, missing …)",
    "stderr": "the object holding standard error",
    "stderr_bytes": "bytes written to standard error",
    "stdout": "the object holding standard output",
    "stdout_bytes": "bytes written to standard output",
    "step": "the metric's step",
    "store": "the store's folder",
    "stored": "true when the bytes are in the store",
    "stray": "objects no record names",
    "strict": "true with --strict",
    "subject": "the run or version checked",
    "summary": "the cause, in words",
    "tampered": "records or events changed behind repro's back",
    "timestamp_ms": "when the point was logged, in milliseconds since the Unix epoch",
    "token": "the token itself (shown once)",
    "tolerance": "the tolerance used (--tolerance)",
    "tracked_unchanged": "true when the script is committed and unchanged",
    "tree": "the folder tree's digest",
    "trusted": "the keys this store trusts ([trust]); or whether a key is trusted",
    "unmet": "requirements the version does not meet, with what to do",
    "unpinned": "dependencies with no version at all",
    "untracked": "untracked files recorded with the code",
    "untracked_restored": "untracked files restored from the store",
    "untracked_skipped": "untracked files too large to record",
    "updated_at_ms": "when the version last changed, in milliseconds since the Unix epoch",
    "url": "where the package came from (direct URL installs)",
    "user": "who ran it",
    "value": "the value",
    "values": "parameter values by name (keys are the parameters' names)",
    "logged": "parameters the script logged, by name",
    "variables": "environment variables that change results (keys are the variables' names)",
    "verdict": "identical, equivalent, within tolerance, or differs",
    "version": "a version (a number, or a package's version string), or the version object",
    "versions": "every version",
    "warnings": "warnings",
    "within": "true when the replayed value is within tolerance",
    "workdir": "the working folder, relative to the repository",
}


def load(snap):
    text = (SNAPS / f"output__{snap}").read_text(encoding="utf-8")
    body = text.split("---", 2)[2]
    lines = [l for l in body.splitlines() if not l.startswith("$ repro") and not l.startswith("[exit")]
    try:
        return json.loads("\n".join(lines))
    except ValueError:
        return None  # bad input: an error line, no JSON


def kind(v):
    return {dict: "object", list: "array", str: "string", bool: "boolean", type(None): "null"}.get(
        type(v), "number"
    )


def walk(v, path, tree):
    """tree: path tuple -> set of kinds."""
    if isinstance(v, dict):
        for k, x in v.items():
            p = path + (k,)
            tree.setdefault(p, set()).add(kind(x))
            if k in DATA_MAPS and isinstance(x, dict):
                continue
            walk(x, p, tree)
    elif isinstance(v, list):
        for x in v:
            walk(x, path, tree)


def render():
    out = [
        "# The JSON of each command",
        "",
        "Every command takes `--json` (before or after the subcommand) and then prints one JSON",
        "document on stdout; errors stay one line on stderr with exit code 2. This page lists, for",
        "each command, every key its JSON holds. It is generated by `scripts/json-reference.py` from",
        "the snapshots that pin the output (`crates/repro-cli/tests/snapshots/output__*.json.snap`),",
        "and `cargo test -p repro-cli --test output` fails when the two disagree. Keys are added, never",
        "renamed or removed, within a major version; times are RFC 3339 strings (`*_at`) or",
        "milliseconds since the Unix epoch (`*_ms`); digests are `blake3:<64 hex>` unless named `sha256`.",
        "",
    ]
    undocumented = set()
    named = set()
    for heading, purpose, snaps in SECTIONS:
        tree = {}
        shapes = set()
        for s in snaps:
            named.add(s)
            v = load(s)
            if v is None:
                continue
            shapes.add(kind(v))
            walk(v, (), tree)
        out += [f"## {heading}", "", purpose + (f" The document is an {' or '.join(sorted(shapes))}." if shapes else " (Bad input only: an error line.)"), "", "Pinned by: " + ", ".join(f"`{s}`" for s in snaps), ""]
        for path in sorted(tree):
            key = path[-1]
            meaning = MEANINGS.get(key)
            if meaning is None:
                undocumented.add(key)
                meaning = "(undocumented)"
            out.append(f"{'  ' * (len(path) - 1)}- `{key}` ({'/'.join(sorted(tree[path]))}): {meaning}")
        out.append("")
    unnamed = sorted(p.name[len("output__"):] for p in SNAPS.glob("output__*.json.snap") if p.name[len("output__"):] not in named)
    return "\n".join(out), undocumented, unnamed


def main():
    text, undocumented, unnamed = render()
    problems = [f"docs/json.md: no meaning for key `{k}`: add it to MEANINGS in scripts/json-reference.py" for k in sorted(undocumented)]
    problems += [f"docs/json.md: snapshot {s} belongs to no section: add it to SECTIONS in scripts/json-reference.py" for s in unnamed]
    if "--check" in sys.argv[1:]:
        current = DOC.read_text(encoding="utf-8") if DOC.exists() else ""
        if current != text:
            problems.append("docs/json.md is not what the snapshots say: run scripts/json-reference.py")
    else:
        DOC.write_text(text, encoding="utf-8")
    for p in problems:
        print(p)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
