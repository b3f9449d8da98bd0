//! The output contract: every command's human text and `--json`, pinned by `insta` snapshots
//! (`tests/snapshots/output__*.snap`). A deliberate change to what a command prints shows up
//! as a snapshot diff; review it with `cargo insta review` (or re-bless with
//! `INSTA_UPDATE=always cargo test -p repro-cli --test output`) and update docs/json.md.
//!
//! What changes from run to run or machine to machine is replaced before comparing: the
//! project's and other temporary paths, run ids (by the order the runs were made), commits,
//! digests, key ids, tokens, signatures, times, durations, the host and the hardware.
//! The shared-backend pass skips these tests: the store's location is part of some outputs.

mod common;

use std::collections::BTreeMap;
use std::path::Path;

use common::*;
use serde_json::Value;

/// Object keys whose values are this machine's or this moment's, in any command's JSON (the
/// example script's log size varies with the time it prints).
const VOLATILE_KEYS: &[&str] = &[
    "stdout_bytes",
    "hardware",
    "os",
    "logical_cpus",
    "usable_cores",
    "memory_bytes",
    "duration_ms",
    "elapsed_ms",
    "wall_ms",
    "pid",
    "hostname",
    "kernel",
    "uptime",
    "seconds",
];

/// The things in outputs that differ between runs of this test, and what stands for them.
struct Scrub {
    literals: Vec<(String, String)>,
}

impl Scrub {
    fn new(t: &TestContext) -> Scrub {
        let mut s = Scrub { literals: Vec::new() };
        s.literal(t.dir.to_str().expect("utf-8"), "[project]");
        s.literal(t.tmp.path().to_str().expect("utf-8"), "[project]");
        s.literal(workspace().to_str().expect("utf-8"), "[workspace]");
        if let Some(home) = std::env::var_os("HOME") {
            s.literal(home.to_str().expect("utf-8"), "[home]");
        }
        s.literal(&repro_util::host::hostname(), "[host]");
        for key in ["user.name", "user.email"] {
            let out = std::process::Command::new("git").args(["config", key]).current_dir(&t.dir).output();
            if let Ok(out) = out {
                s.literal(String::from_utf8_lossy(&out.stdout).trim(), &format!("[git {key}]"));
            }
        }
        if let Ok(user) = std::env::var("USER") {
            s.literal(&format!("{user}@"), "[user]@");
        }
        s
    }

    fn literal(&mut self, from: &str, to: &str) {
        if !from.is_empty() && !self.literals.iter().any(|(f, _)| f == from) {
            self.literals.push((from.to_string(), to.to_string()));
            // Longest first, so that a path's parent never replaces part of the path.
            self.literals.sort_by_key(|(f, _)| std::cmp::Reverse(f.len()));
        }
    }

    /// A run id, full and as the 8 characters commands print, becomes `[run N]`.
    fn run(&mut self, id: &str, n: usize) {
        self.literal(id, &format!("[run {n}]"));
        self.literal(&id[..8.min(id.len())], &format!("[run {n}]"));
    }

    /// `text` with everything volatile replaced. Hex runs only count as ids or digests when
    /// they hold a letter, so that a metric's digits are never taken for one.
    fn apply(&self, text: &str) -> String {
        let mut out = text.to_string();
        for (from, to) in &self.literals {
            out = out.replace(from.as_str(), to.as_str());
        }
        for (re, to) in [
            (r"repro_[A-Za-z0-9_-]{20,}", "[token]"),
            (r"(blake3|sha256):[0-9a-f]{12,64}", "$1:[digest]"),
            (r"\b\d{4}-\d\d-\d\d[T ]\d\d:\d\d(:\d\d(\.\d+)?)?(Z|[+-]\d\d:?\d\d)?", "[time]"),
            (r"\b\d+(\.\d+)?\s?(ms|µs|s)\b", "[duration]"),
            (r"\b\d+ (second|minute|hour|day)s? ago\b", "[ago]"),
            (r"Linux \d+\.\d+[^ /\n\x22]*", "Linux [kernel]"),
            (r"(?m)^(\s*)\S.*usable of .*CPUs\).*$", "$1[hardware]"),
            (r"(hardware\s+)[^\n\x22]*usable cores?[^\n\x22]*", "$1[hardware]"),
            (r"\x22[^\n\x22]*usable cores? of[^\n\x22]*\x22", "\x22[hardware]\x22"),
            // Trained models and their metrics differ in the last bits from one CPU to another
            // (BLAS picks its kernels by instruction set): sizes and long floats are volatile.
            (r"\b\d+(\.\d+)? (B|KiB|MiB|GiB)\b", "[size]"),
            (r"-?\b\d+\.\d{6,}(e-?\d+)?\b", "[float]"),
            (r"(LANG|LC_ALL)=[^ \n\x22]*", "$1=[locale]"),
            (r"\b127\.0\.0\.1:\d+", "127.0.0.1:[port]"),
            (r"\.repro/tmp/\d+-", ".repro/tmp/[pid]-"),
            (r"stdout \d+ B", "stdout [n] B"),
            // A short commit is all digits one time in 300: name it by where it stands.
            (r"code at [0-9a-f]{12}\b", "code at [hex12]"),
            (r"[A-Za-z0-9_.-]+@\[host\]", "[user]@[host]"),
        ] {
            out = regex::Regex::new(re).expect("filter").replace_all(&out, to).into_owned();
        }
        let hex = regex::Regex::new(r"\b[0-9a-f]{12,64}\b").expect("filter");
        out = hex
            .replace_all(&out, |c: &regex::Captures| {
                let m = &c[0];
                if !m.bytes().any(|b| b.is_ascii_alphabetic()) {
                    return m.to_string();
                }
                match m.len() {
                    64 => "[hex64]".to_string(),
                    40 => "[commit]".to_string(),
                    32 => "[id]".to_string(),
                    16 => "[keyid]".to_string(),
                    12 => "[hex12]".to_string(),
                    _ => "[hex]".to_string(),
                }
            })
            .into_owned();
        regex::Regex::new(r"[A-Za-z0-9+/_-]{43,}={0,2}").expect("filter").replace_all(&out, "[base64]").into_owned()
    }

    fn settings(&self) -> insta::Settings {
        let mut settings = insta::Settings::clone_current();
        settings.set_prepend_module_to_snapshot(true);
        settings
    }
}

/// One command's result as a snapshot reads it: the command line, its exit status when not 0,
/// stdout, and stderr when there is any.
fn transcript(run: &Run) -> String {
    let mut s = format!("$ repro {}\n", run.args.join(" "));
    if run.code() != 0 {
        s.push_str(&format!("[exit {}]\n", run.code()));
    }
    s.push_str(&run.stdout());
    let err = run.stderr();
    if !err.trim().is_empty() {
        s.push_str("--- stderr\n");
        s.push_str(&err);
    }
    s
}

fn redact(v: &mut Value) {
    match v {
        Value::Object(map) => {
            for (k, x) in map.iter_mut() {
                if VOLATILE_KEYS.contains(&k.as_str()) {
                    *x = Value::String("[varies]".into());
                } else if x.is_number() && (k.ends_with("_ms") || k.ends_with("_at") || k == "at") {
                    *x = Value::String("[time]".into());
                } else {
                    redact(x);
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(redact),
        _ => {}
    }
}

struct Contract<'a> {
    t: &'a TestContext,
    scrub: Scrub,
    runs: usize,
    /// Keys redacted in the next JSON only (a store's size, which varies with the times in it).
    volatile: &'static [&'static str],
}

impl<'a> Contract<'a> {
    fn new(t: &'a TestContext) -> Contract<'a> {
        Contract { t, scrub: Scrub::new(t), runs: 0, volatile: &[] }
    }

    /// Runs `repro ARGS`, expects `code`, and pins its text as snapshot `name`.
    fn text(&mut self, name: &str, args: &[&str], code: i32) -> Run {
        let run = self.t.repro(args).expect_code(code);
        self.learn(&run);
        self.scrub.settings().bind(|| insta::assert_snapshot!(name, self.scrub.apply(&transcript(&run))));
        run
    }

    /// Runs `repro ARGS --json`, expects `code`, and pins the JSON as snapshot `name`
    /// (keys sorted, machine facts redacted).
    fn json(&mut self, name: &str, args: &[&str], code: i32) -> Value {
        // Before the subcommand, so that it never lands after a `--`.
        let mut full: Vec<&str> = vec!["--json"];
        full.extend_from_slice(args);
        let run = self.t.repro(&full).expect_code(code);
        self.learn(&run);
        if code == 2 && run.stdout().trim().is_empty() {
            // Bad input has no JSON: the error line on stderr is the contract.
            self.scrub.settings().bind(|| insta::assert_snapshot!(name, self.scrub.apply(&transcript(&run))));
            return Value::Null;
        }
        let value = run.json();
        let mut shown = value.clone();
        redact(&mut shown);
        if let Value::Object(map) = &mut shown {
            for k in std::mem::take(&mut self.volatile) {
                if let Some(x) = map.get_mut(*k) {
                    *x = Value::String("[varies]".into());
                }
            }
        }
        let pretty = format!(
            "$ repro {}{}\n{}",
            full.join(" "),
            if code != 0 { format!("\n[exit {code}]") } else { String::new() },
            serde_json::to_string_pretty(&shown).expect("JSON")
        );
        self.scrub.settings().bind(|| insta::assert_snapshot!(name, self.scrub.apply(&pretty)));
        value
    }

    /// Both: the text of `repro ARGS`, then its `--json` (for commands that change nothing).
    fn both(&mut self, name: &str, args: &[&str], code: i32) -> Value {
        self.text(name, args, code);
        self.json(&format!("{name}.json"), args, code)
    }

    /// Learns the ids a command created (runs), so that later snapshots name them by order.
    fn learn(&mut self, run: &Run) {
        if run.args.iter().any(|a| a == "token") {
            self.learn_tokens();
        }
        let text = format!("{}\n{}", run.stdout(), run.stderr());
        for word in text.split(|c: char| !c.is_ascii_hexdigit()) {
            if word.len() == 32
                && word.chars().all(|c| c.is_ascii_digit() || ('a'..='f').contains(&c))
                && !self.scrub.literals.iter().any(|(f, _)| f == word)
                && self.t.path(".repro").exists()
                && self.is_run(word)
            {
                self.runs += 1;
                let n = self.runs;
                self.scrub.run(word, n);
            }
        }
    }

    /// Token ids (8 hex digits, random) become `[token N]` by the order `token ls` lists them.
    fn learn_tokens(&mut self) {
        let list = self.t.repro(&["token", "ls", "--json"]).success().json();
        for (n, tok) in list.as_array().into_iter().flatten().enumerate() {
            if let Some(id) = tok["id"].as_str() {
                self.scrub.literal(id, &format!("[token {}]", n + 1));
            }
        }
    }

    fn is_run(&self, id: &str) -> bool {
        self.t.repro(&["show", id, "--json"]).code() == 0
    }

    fn path(&mut self, dir: &Path, name: &str) {
        self.scrub.literal(dir.to_str().expect("utf-8"), name);
    }
}

fn skip_on_shared_backends() -> bool {
    if shared_backends() {
        eprintln!("output contract: skipped on shared backends (pinned for SQLite and a local folder)");
        return true;
    }
    false
}

/// Capture, inspection, replay and diff of the example's real training run.
#[test]
fn capture_inspect_replay_and_diff() {
    if skip_on_shared_backends() {
        return;
    }
    let t = TestContext::sklearn_repo();
    let mut c = Contract::new(&t);
    c.scrub.literal(venv().to_str().expect("utf-8"), "[venv]");
    c.text("init", &["init"], 0);
    // The stat cache trusts a file only when its mtime is safely older than the snapshot
    // (the racy-git rule); an old mtime makes "hashed" vs "from the stat cache" stable.
    for f in ["data/train.csv", "params.yaml"] {
        let ok = std::process::Command::new("touch")
            .args(["-d", "2024-01-01 00:00:00", f])
            .current_dir(&t.dir)
            .status()
            .expect("touch");
        assert!(ok.success(), "touch {f}");
    }
    let py = t.python();
    let py = py.to_str().expect("utf-8");
    let train = ["--data", "data/train.csv", "--params", "params.yaml", "--output", "model.pkl", "--", py, "train.py"];
    let mut first = vec!["run", "--name", "baseline", "--seed", "42"];
    first.extend_from_slice(&train);
    c.text("run", &first, 0);
    let mut second = vec!["run", "--name", "seed7", "--seed", "7"];
    second.extend_from_slice(&train);
    c.json("run.json", &second, 0);

    c.both("runs", &["runs"], 0);
    c.both("show", &["show", "baseline"], 0);
    c.both("audit", &["audit", "baseline"], 0);
    c.both("diff", &["diff", "baseline", "seed7"], 0);
    c.text("replay", &["replay", "baseline"], 0);
    c.json("replay.json", &["replay", "seed7"], 0);

    c.text("data_snapshot", &["data", "snapshot", "data/train.csv", "--name", "train"], 0);
    c.json("data_snapshot.json", &["data", "snapshot", "params.yaml", "--name", "params"], 0);
    c.both("data_ls", &["data", "ls"], 0);
    c.both("data_show", &["data", "show", "train"], 0);
    c.both("data_diff", &["data", "diff", "train", "params"], 0);

    c.both("env_check", &["env", "check", "requirements.txt"], 0);
    c.text("env_register", &["env", "register", "--name", "baseline", "requirements.txt"], 0);
    c.json("env_register.json", &["env", "register", "--name", "pinned", "requirements.txt"], 0);
    c.both("env_ls", &["env", "ls"], 0);
    c.both("env_show", &["env", "show", "baseline"], 0);
    c.both("env_diff", &["env", "diff", "baseline", "baseline"], 0);
    c.both("env_capture", &["env", "capture", "--python", py], 0);
    c.both("env_parity", &["env", "parity", "baseline", "--python", py], 0);
    c.text("env_export", &["env", "export", "baseline"], 0);
    c.text("env_export_dockerfile", &["env", "export", "baseline", "--format", "dockerfile"], 0);
    c.volatile = &["bytes"];
    c.both("fsck", &["fsck"], 0);
}

/// The registry's life of a version: register, promote, keys, signatures, approvals, tokens,
/// bundles, archive. The model is a run's output made by `sh` (no Python needed).
#[test]
fn a_model_version_from_register_to_archive() {
    if skip_on_shared_backends() {
        return;
    }
    let t = TestContext::new();
    t.git(&["init", "-q", "-b", "main"]);
    t.write("data.csv", "x,y\n1,2\n");
    t.write(".gitignore", "out.txt\n");
    t.commit_all("initial");
    let mut c = Contract::new(&t);
    c.json("init.json", &["init"], 0);
    // A policy a `sh` run can meet: staging needs nothing, prod a signature and one approval.
    let toml = std::fs::read_to_string(t.path(".repro/repro.toml")).expect("repro.toml");
    let head = &toml[..toml.find("[stages.").expect("a [stages] table")];
    t.write(
        ".repro/repro.toml",
        &format!(
            "{head}[stages.staging]\nrequire = []\napprovals = 0\n\n[stages.prod]\nfrom = \"staging\"\n\
             require = [\"signed\"]\napprovals = 1\nsigned_approvals = true\n"
        ),
    );
    for (name, seed) in [("tiny", "1"), ("tiny-again", "2")] {
        let run = t.repro(&[
            "run",
            "--name",
            name,
            "--seed",
            seed,
            "--data",
            "data.csv",
            "--output",
            "out.txt",
            "--",
            "sh",
            "-c",
            "echo hi > out.txt",
        ]);
        c.learn(&run.success());
    }

    c.text("model_register", &["model", "register", "tiny", "--name", "tiny", "--artifact", "out.txt"], 0);
    c.json("model_register.json", &["model", "register", "tiny-again", "--name", "tiny", "--artifact", "out.txt"], 0);
    c.both("model_ls", &["model", "ls"], 0);
    c.both("model_show", &["model", "show", "tiny"], 0);
    c.both("model_show_version", &["model", "show", "tiny@1"], 0);
    c.text("model_promote", &["model", "promote", "tiny@1", "--to", "staging"], 0);
    c.both("model_promote_refused", &["model", "promote", "tiny@1", "--to", "prod"], 1);

    let keys = tempfile::tempdir().expect("tempdir");
    c.path(keys.path(), "[keys]");
    let dir = |d: &str| keys.path().join(d).to_str().expect("utf-8").to_string();
    c.text("key_generate", &["key", "generate", "--out", &dir("signer")], 0);
    c.json("key_generate.json", &["key", "generate", "--out", &dir("alice")], 0);
    let signer_pub = format!("{}/repro.pub", dir("signer"));
    c.both("key_show", &["key", "show", &signer_pub], 0);
    c.text("key_add", &["key", "add", &signer_pub, "--signer", "--name", "CI signer"], 0);
    let alice_pub = format!("{}/repro.pub", dir("alice"));
    c.json("key_add.json", &["key", "add", &alice_pub, "--approver", "--name", "Alice <alice@example.com>"], 0);
    c.both("key_ls", &["key", "ls"], 0);

    let signer_key = format!("{}/repro.key", dir("signer"));
    c.text("model_sign", &["model", "sign", "tiny@1", "--key", &signer_key], 0);
    c.json("model_sign.json", &["model", "sign", "tiny@2", "--key", &signer_key], 0);
    let alice_key = format!("{}/repro.key", dir("alice"));
    c.text(
        "model_approve",
        &["model", "approve", "tiny@1", "--stage", "prod", "--key", &alice_key, "--comment", "checked"],
        0,
    );
    c.json(
        "model_approve.json",
        &["model", "approve", "tiny@2", "--stage", "prod", "--key", &alice_key, "--comment", "checked"],
        0,
    );
    c.text("model_promote_prod", &["model", "promote", "tiny@1", "--to", "prod"], 0);
    c.json("model_promote.json", &["model", "promote", "tiny@2", "--to", "staging"], 0);
    c.both("model_verify", &["model", "verify", "tiny@prod", "--key", &signer_pub], 0);
    c.text("model_attest", &["model", "attest", "tiny@1"], 0);

    let bundle = keys.path().join("tiny.tar");
    let bundle = bundle.to_str().expect("utf-8");
    c.text("bundle_export", &["bundle", "export", "tiny@prod", "-o", bundle, "--key", &signer_key], 0);
    let unsigned = keys.path().join("tiny-unsigned.tar");
    let unsigned = unsigned.to_str().expect("utf-8");
    c.json("bundle_export.json", &["bundle", "export", "tiny@2", "-o", unsigned, "--unsigned"], 0);
    {
        let auditor = TestContext::new();
        auditor.repro(&["init"]).success();
        let mut a = Contract::new(&auditor);
        a.scrub = Scrub::new(&auditor);
        a.path(keys.path(), "[keys]");
        for (from, to) in &c.scrub.literals {
            a.scrub.literal(from, to);
        }
        a.text("bundle_import", &["bundle", "import", bundle, "--key", &signer_pub], 0);
        a.json("bundle_import.json", &["bundle", "import", unsigned], 0);
    }

    c.text("token_create", &["token", "create", "--role", "read", "--name", "dashboard"], 0);
    let created = c.json("token_create.json", &["token", "create", "--role", "write", "--name", "ci"], 0);
    c.both("token_ls", &["token", "ls"], 0);
    let id = created["id"].as_str().expect("token id").to_string();
    c.text("token_revoke", &["token", "revoke", &id], 0);

    c.text("model_bom", &["model", "bom", "tiny@1", "-o", "tiny-1.cdx.json"], 0);
    c.json("model_bom.json", &["model", "bom", "tiny@2", "-o", "tiny-2.cdx.json", "--sign", "--key", &signer_key], 0);
    c.text("model_card", &["model", "card", "tiny@1", "-o", "tiny-1.md"], 0);
    c.json("model_card.json", &["model", "card", "tiny@2", "-o", "tiny-2.md"], 0);

    c.text("model_archive", &["model", "archive", "tiny@1", "--reason", "superseded"], 0);
    c.json("model_archive.json", &["model", "archive", "tiny@2", "--reason", "superseded"], 0);
    c.both("model_show_after_archive", &["model", "show", "tiny@prod"], 2);
}

/// Bad input: one line naming the thing and what to do, exit 2 (or 1 for a failed check).
#[test]
fn bad_input_is_one_line() {
    if skip_on_shared_backends() {
        return;
    }
    let (t, _) = TestContext::tiny_registered();
    let mut c = Contract::new(&t);
    let cases: BTreeMap<&str, (Vec<&str>, i32)> = BTreeMap::from([
        ("error_unknown_run", (vec!["show", "nosuchrun"], 2)),
        ("error_unknown_model", (vec!["model", "show", "nosuch@1"], 2)),
        ("error_negative_seed", (vec!["run", "--seed", "-5", "--", "true"], 2)),
        ("error_bad_tolerance", (vec!["replay", "tiny", "--tolerance", "auc"], 2)),
        ("error_unknown_command", (vec!["frobnicate"], 2)),
        ("error_missing_env_file", (vec!["env", "check", "missing.txt"], 2)),
        ("error_migrate_nowhere", (vec!["migrate-store"], 2)),
        ("error_server_for_run", (vec!["--server", "http://127.0.0.1:9", "run", "--", "true"], 2)),
    ]);
    for (name, (args, code)) in cases {
        let run = c.text(name, &args, code);
        run.error_line();
    }
}

/// docs/json.md describes each command's JSON: it is what `scripts/json-reference.py` makes of
/// the pinned snapshots, every key with a meaning, every snapshot in a section.
#[test]
fn docs_json_md_describes_exactly_the_pinned_json() {
    let out = std::process::Command::new("python3")
        .arg(workspace().join("scripts/json-reference.py"))
        .arg("--check")
        .output()
        .expect("python3 scripts/json-reference.py --check");
    assert!(
        out.status.success(),
        "docs/json.md disagrees with the snapshots:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `repro man --out`: every page it wrote, in the order `--help` lists the commands.
#[test]
fn manual_pages() {
    if skip_on_shared_backends() {
        return;
    }
    let t = TestContext::new();
    let mut c = Contract::new(&t);
    c.text("man", &["man", "--out", "man1"], 0);
    c.json("man.json", &["man", "--out", "man1"], 0);
}
