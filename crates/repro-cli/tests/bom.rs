//! A model version as a supply-chain or risk team reads it: the CycloneDX 1.6 ML-BOM
//! (`repro model bom`), checked by cyclonedx-python-lib's strict validator (pinned by
//! fixtures/cyclonedx-tools.txt), and the Markdown model card (`repro model card`) rendered
//! from the same facts — signed, listed by `repro model attest`, carried in an audit bundle
//! and checked by `repro model verify` after import, a tampered BOM or card named. One real
//! scikit-learn training run serves the whole story (CI time is tight).

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::*;
use serde_json::Value;

/// cyclonedx-python-lib's interpreter, pinned by fixtures/cyclonedx-tools.txt.
fn cyclonedx_python() -> PathBuf {
    let ws = workspace();
    let venv = cached_venv(
        &ws.join("target/test-venv-cyclonedx"),
        &ws.join("crates/repro-cli/tests/fixtures/cyclonedx-tools.txt"),
    );
    venv.join("bin/python")
}

/// The strict JSON validator for CycloneDX 1.6: None (printed as "valid") when the BOM is.
fn validate(bom: &Path) {
    let script = "import sys\n\
        from cyclonedx.validation.json import JsonStrictValidator\n\
        from cyclonedx.schema import SchemaVersion\n\
        e = JsonStrictValidator(SchemaVersion.V1_6).validate_str(open(sys.argv[1]).read())\n\
        print('valid' if e is None else repr(e))\n";
    let out = Command::new(cyclonedx_python()).args(["-c", script]).arg(bom).output().expect("python");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "valid", "{}", bom.display());
}

fn sha256_hex(bytes: &[u8]) -> String {
    let out = Command::new("sha256sum").arg("-").stdin_bytes(bytes);
    out.split_whitespace().next().expect("a digest").to_string()
}

/// A tiny extension: `Command` fed `bytes` on stdin, its stdout as text.
trait StdinBytes {
    fn stdin_bytes(&mut self, bytes: &[u8]) -> String;
}

impl StdinBytes for Command {
    fn stdin_bytes(&mut self, bytes: &[u8]) -> String {
        use std::io::Write;
        let mut child =
            self.stdin(std::process::Stdio::piped()).stdout(std::process::Stdio::piped()).spawn().expect("spawn");
        child.stdin.take().expect("stdin").write_all(bytes).expect("write");
        let out = child.wait_with_output().expect("wait");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

fn digest_of(bytes: &[u8]) -> String {
    format!("blake3:{}", blake3::hash(bytes).to_hex())
}

/// Replaces the bundle's object named by the manifest's `field` (`bom`, `card`) with what
/// `edit` makes of it, and rewrites the manifest and its digest to match: a consistent
/// forgery of an unsigned bundle, which only `model verify`'s checks can catch.
fn forge(src: &Path, dest: &Path, field: &str, edit: &dyn Fn(Vec<u8>) -> Vec<u8>) {
    let mut entries: Vec<(String, Vec<u8>)> = Vec::new();
    let mut archive = tar::Archive::new(std::fs::File::open(src).expect("open bundle"));
    for entry in archive.entries().expect("entries") {
        let mut entry = entry.expect("entry");
        let name = entry.path().expect("path").to_string_lossy().into_owned();
        let mut bytes = Vec::new();
        std::io::Read::read_to_end(&mut entry, &mut bytes).expect("read");
        entries.push((name, bytes));
    }
    let mut manifest: Value = serde_json::from_slice(&entries[0].1).expect("manifest");
    let old = manifest[field].as_str().expect("the manifest names the document").to_string();
    let old_name = format!("objects/{}", old.trim_start_matches("blake3:"));
    let old_bytes = entries.iter().find(|(n, _)| *n == old_name).expect("the document's object").1.clone();
    let new_bytes = edit(old_bytes);
    let new = digest_of(&new_bytes);
    manifest[field] = new.clone().into();
    for o in manifest["objects"].as_array_mut().expect("objects") {
        if o["digest"] == old.as_str() {
            o["digest"] = new.clone().into();
            o["size"] = new_bytes.len().into();
        }
    }
    let manifest_bytes = serde_json::to_vec_pretty(&manifest).expect("json");
    let mut out = tar::Builder::new(std::fs::File::create(dest).expect("create"));
    for (name, bytes) in entries {
        let (name, bytes) = match name.as_str() {
            "repro-bundle.json" => (name, manifest_bytes.clone()),
            "repro-bundle.json.blake3" => (name, format!("{}\n", digest_of(&manifest_bytes)).into_bytes()),
            n if n == old_name => (format!("objects/{}", new.trim_start_matches("blake3:")), new_bytes.clone()),
            _ => (name, bytes),
        };
        let mut h = tar::Header::new_gnu();
        h.set_size(bytes.len() as u64);
        h.set_mode(0o644);
        h.set_entry_type(tar::EntryType::Regular);
        h.set_cksum();
        out.append_data(&mut h, &name, bytes.as_slice()).expect("append");
    }
    out.finish().expect("finish");
}

fn check<'a>(report: &'a Value, name: &str) -> &'a Value {
    report["checks"].as_array().and_then(|c| c.iter().find(|c| c["name"] == name)).unwrap_or(&Value::Null)
}

/// Imports `bundle` into a fresh store and returns `model verify pricing@1 --json` and its exit code.
fn import_and_verify(bundle: &Path) -> (Value, i32) {
    let auditor = TestContext::new();
    auditor.repro(&["init"]).success();
    auditor.repro(&["bundle", "import", bundle.to_str().expect("utf-8")]).success();
    let r = auditor.repro(&["model", "verify", "pricing@1", "--json"]);
    (r.json(), r.code())
}

#[test]
fn a_versions_bom_and_card_agree_validate_are_signed_and_travel_in_bundles() {
    let t = TestContext::sklearn_project();
    t.git(&["config", "user.name", "Ada Auditor"]);
    t.git(&["config", "user.email", "ada@example.invalid"]);
    let run = id_of(&t.train(&["--json"]).success());
    t.repro(&["model", "register", &run, "--name", "pricing", "--artifact", "model.pkl"]).success();
    // What the team wrote about the model: a card of their own and a repro.toml table.
    t.write(
        "model_card.md",
        "# Pricing\n\nPredicts a house's price from its size.\n\n## Intended use\n\n- quoting list prices\n\n\
         ## Limitations\n\n- trained on synthetic data only\n\n## Contact\n\npricing-team@example.invalid\n",
    );
    t.append(".repro/repro.toml", "\n[model_card]\nusers = [\"pricing analysts\"]\n");

    // The BOM validates with CycloneDX's own strict validator.
    let bom_text = t.repro(&["model", "bom", "pricing@1"]).success().stdout();
    let bom_file = t.path("pricing-1.cdx.json");
    t.repro(&["model", "bom", "pricing@1", "-o", bom_file.to_str().expect("utf-8")]).success();
    assert_eq!(std::fs::read_to_string(&bom_file).expect("bom"), bom_text, "-o writes the same bytes");
    validate(&bom_file);
    let bom: Value = serde_json::from_str(&bom_text).expect("JSON");

    // The same version gives the same bytes (its timestamp is the registration's).
    assert_eq!(t.repro(&["model", "bom", "pricing@1"]).success().stdout(), bom_text);
    assert!(bom["serialNumber"].as_str().is_some_and(|s| s.starts_with("urn:uuid:")));

    // What it says: the model with its card, the data, the packages, the training run.
    let shown = t.show_json(&run);
    let model = &bom["metadata"]["component"];
    assert_eq!(model["type"], "machine-learning-model");
    assert_eq!(model["name"], "pricing");
    let card_json = &model["modelCard"];
    assert_eq!(card_json["considerations"]["users"][0], "pricing analysts");
    assert_eq!(card_json["considerations"]["useCases"][0], "quoting list prices");
    assert_eq!(card_json["considerations"]["technicalLimitations"][0], "trained on synthetic data only");
    let data: Vec<&Value> =
        bom["components"].as_array().expect("components").iter().filter(|c| c["type"] == "data").collect();
    assert_eq!(data.len(), 1);
    let snapshot = shown["inputs"][0]["snapshot"].as_str().expect("snapshot");
    assert_eq!(data[0]["hashes"][0]["content"], snapshot.trim_start_matches("blake3:"));
    assert_eq!(card_json["modelParameters"]["datasets"][0]["ref"], data[0]["bom-ref"]);
    let purls: Vec<&str> = bom["components"]
        .as_array()
        .expect("components")
        .iter()
        .filter(|c| c["type"] == "library")
        .filter_map(|c| c["purl"].as_str())
        .collect();
    assert!(purls.iter().any(|p| p.starts_with("pkg:pypi/scikit-learn@")), "{purls:?}");
    let workflow = &bom["formulation"][0]["workflows"][0];
    assert_eq!(workflow["uid"], run.as_str());
    let props = workflow["properties"].as_array().expect("properties");
    let prop = |n: &str| props.iter().find(|p| p["name"] == n).map(|p| p["value"].clone());
    assert_eq!(prop("repro:seed"), Some("42".into()));
    assert_eq!(prop("repro:git.commit"), Some(shown["code"]["commit"].clone()));

    // The card says what the BOM says, and the BOM names the card by its SHA-256.
    let card = t.repro(&["model", "card", "pricing@1"]).success().stdout();
    let metrics = card_json["quantitativeAnalysis"]["performanceMetrics"].as_array().expect("metrics");
    assert!(!metrics.is_empty(), "the run's metrics: {bom:#}");
    for m in metrics {
        let row = format!("| {} | {} |", m["type"].as_str().expect("type"), m["value"].as_str().expect("value"));
        assert!(card.contains(&row), "{row} not in the card:\n{card}");
    }
    assert!(card.contains(snapshot), "{card}");
    assert!(card.contains("- quoting list prices") && card.contains("## Contact"), "{card}");
    assert!(card.contains(bom["serialNumber"].as_str().expect("serial")), "{card}");
    let refs = model["externalReferences"].as_array().expect("references");
    let card_ref = refs.iter().find(|r| r["type"] == "model-card").expect("a model-card reference");
    assert_eq!(card_ref["hashes"][0]["content"], sha256_hex(card.as_bytes()).as_str());

    // Signed: a DSSE envelope over an in-toto statement whose predicate is the BOM,
    // listed by `model attest` with the provenance, and checked by `model verify`.
    t.repro(&["key", "generate", "--out", "keys"]).success();
    t.repro(&["model", "sign", "pricing@1", "--key", "keys/repro.key"]).success();
    let signed =
        t.repro(&["model", "bom", "pricing@1", "--sign", "--key", "keys/repro.key", "-o", "signed.json", "--json"]);
    assert!(signed.json()["signed"]["keyid"].is_string(), "{}", signed.stdout());
    let attest = t.repro(&["model", "attest", "pricing@1"]).success().stdout();
    let lines: Vec<Value> = attest.lines().map(|l| serde_json::from_str(l).expect("an envelope")).collect();
    assert_eq!(lines.len(), 2, "provenance and the BOM: {attest}");
    let payload =
        Command::new("base64").arg("-d").stdin_bytes(lines[1]["payload"].as_str().expect("payload").as_bytes());
    let statement: Value = serde_json::from_str(&payload).expect("a statement");
    assert_eq!(statement["predicateType"], "https://cyclonedx.org/bom");
    assert_eq!(statement["predicate"], bom);
    assert_eq!(statement["subject"][0]["name"], "model.pkl");
    let verify = t.repro(&["model", "verify", "pricing@1", "--json"]).success().json();
    assert_eq!(check(&verify, "bom")["ok"], true, "{verify:#}");

    // Bundled: the BOM and the card travel; after import, verify checks them.
    let bundle = t.tmp.path().join("pricing.tar");
    t.repro(&["bundle", "export", "pricing@1", "-o", bundle.to_str().expect("utf-8"), "--unsigned", "--include-data"])
        .success();
    let (report, code) = import_and_verify(&bundle);
    assert_eq!(code, 0, "{report:#}");
    let bom_check = check(&report, "bom");
    assert_eq!(bom_check["ok"], true, "{report:#}");
    assert!(bom_check["detail"].as_str().is_some_and(|d| d.contains("the bundle's BOM")), "{report:#}");

    // A BOM forged in the bundle (another metric value, manifest rewritten to match).
    let forged = t.tmp.path().join("forged-bom.tar");
    forge(&bundle, &forged, "bom", &|b| {
        let mut v: Value = serde_json::from_slice(&b).expect("bom");
        v["metadata"]["component"]["modelCard"]["quantitativeAnalysis"]["performanceMetrics"][0]["value"] =
            "0.0001".into();
        serde_json::to_vec_pretty(&v).expect("json")
    });
    let (report, code) = import_and_verify(&forged);
    assert_eq!(code, 1, "{report:#}");
    let detail = check(&report, "bom")["detail"].as_str().unwrap_or("").to_string();
    assert!(detail.contains("performance metrics"), "{report:#}");

    // A card forged in the bundle: no longer the one the BOM names.
    let forged = t.tmp.path().join("forged-card.tar");
    forge(&bundle, &forged, "card", &|b| [b, b"\nAlso great for rentals.\n".to_vec()].concat());
    let (report, code) = import_and_verify(&forged);
    assert_eq!(code, 1, "{report:#}");
    assert!(check(&report, "bom")["detail"].as_str().is_some_and(|d| d.contains("model card")), "{report:#}");

    // Bad input: one line, exit 2.
    for args in [["model", "bom", "nope"], ["model", "card", "pricing@9"]] {
        let r = t.repro(&args).expect_code(2);
        assert!(!r.stderr().trim().contains('\n'), "one line: {}", r.stderr());
    }
}
