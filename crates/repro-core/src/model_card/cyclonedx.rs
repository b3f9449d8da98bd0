//! The CycloneDX 1.6 ML-BOM of a model version, and the checks `model verify` runs on one
//! that came back (from a bundle, or inside a signed statement).
//!
//! Layout: `metadata.component` is the model (`machine-learning-model`, its `modelCard`,
//! one `file` sub-component per artifact file with SHA-256 and BLAKE3, an external reference
//! to the model card by its SHA-256); `components` are the training data (`data`, named by
//! the snapshot manifest's BLAKE3) and every installed package (`library`, with its PURL);
//! `formulation` is the training run (command, commit, seed, params, environment);
//! `dependencies` say the model depends on all of them. bom-refs are derived from names
//! and paths only, so they are the same every time.

use serde_json::{json, Map, Value};

use super::{metric_text, ModelFacts};

/// The in-toto predicate type of a statement whose predicate is a CycloneDX BOM.
pub const PREDICATE_TYPE: &str = "https://cyclonedx.org/bom";
/// The file name the model card goes by inside the BOM and a bundle.
pub const CARD_NAME: &str = "model-card.md";

/// The model's bom-ref.
pub fn model_ref(f: &ModelFacts) -> String {
    format!("model:{}", f.reference())
}

fn data_ref(path: &str) -> String {
    format!("data:{path}")
}

/// `pkg:pypi/NAME@VERSION` (or `pkg:conda/…` for conda's own packages), the name
/// normalised as the PURL spec says for PyPI (lower case, `_` → `-`).
pub fn purl(p: &super::PackageFact) -> String {
    let (kind, name) = if p.installer.as_deref() == Some("conda") {
        ("conda", p.name.to_lowercase())
    } else {
        ("pypi", p.name.to_lowercase().replace(['_', '.'], "-"))
    };
    format!("pkg:{kind}/{}@{}", encode(&name), encode(&p.version))
}

/// Percent-encodes what a PURL segment may not hold as is.
fn encode(s: &str) -> String {
    let mut out = String::new();
    for c in s.chars() {
        if c.is_ascii_alphanumeric() || "-._~".contains(c) {
            out.push(c);
        } else {
            let mut buf = [0u8; 4];
            for b in c.encode_utf8(&mut buf).bytes() {
                out.push_str(&format!("%{b:02X}"));
            }
        }
    }
    out
}

fn property(name: &str, value: impl Into<String>) -> Value {
    json!({"name": name, "value": value.into()})
}

/// The BOM as JSON. `card_sha256` is the SHA-256 of the card rendered from the same facts.
pub fn bom(f: &ModelFacts, card_sha256: &str) -> Value {
    let model = model_ref(f);
    let files: Vec<Value> = f
        .files
        .iter()
        .map(|file| {
            json!({
                "type": "file",
                "bom-ref": format!("{model}/{}", file.path),
                "name": file.path,
                "hashes": [{"alg": "SHA-256", "content": file.sha256}, {"alg": "BLAKE3", "content": file.blake3}],
                "properties": [property("repro:size", file.size.to_string())],
            })
        })
        .collect();
    let c = &f.considerations;
    let mut considerations = Map::new();
    for (key, items) in [
        ("users", &c.users),
        ("useCases", &c.use_cases),
        ("technicalLimitations", &c.limitations),
        ("performanceTradeoffs", &c.tradeoffs),
    ] {
        if !items.is_empty() {
            considerations.insert(key.into(), json!(items));
        }
    }
    if !c.ethical.is_empty() {
        considerations
            .insert("ethicalConsiderations".into(), c.ethical.iter().map(|e| json!({"name": e})).collect::<Value>());
    }
    let mut card = json!({
        "bom-ref": format!("{model}/model-card"),
        "modelParameters": {
            "datasets": f.datasets.iter().map(|d| json!({"ref": data_ref(&d.path)})).collect::<Vec<_>>(),
        },
        "quantitativeAnalysis": {
            "performanceMetrics": f.metrics.iter()
                .map(|(k, v)| json!({"type": k, "value": metric_text(*v)}))
                .collect::<Vec<_>>(),
        },
    });
    if !considerations.is_empty() {
        card["considerations"] = Value::Object(considerations);
    }
    let mut component = json!({
        "type": "machine-learning-model",
        "bom-ref": model,
        "name": f.name,
        "version": f.version.to_string(),
        "modelCard": card,
        "components": files,
        "externalReferences": [{
            "type": "model-card",
            "url": CARD_NAME,
            "comment": "the Markdown model card rendered from the same facts (`repro model card`)",
            "hashes": [{"alg": "SHA-256", "content": card_sha256}],
        }],
        "properties": [
            property("repro:run", f.run.clone()),
            property("repro:lineage", f.lineage.as_str()),
            property("repro:artifact.snapshot", f.artifact_snapshot.as_str()),
            property("repro:registered_by", f.registered_by.clone()),
        ],
    });
    if let [only] = f.files.as_slice() {
        component["hashes"] =
            json!([{"alg": "SHA-256", "content": only.sha256}, {"alg": "BLAKE3", "content": only.blake3}]);
    }
    if let Some(d) = &f.description {
        component["description"] = json!(d);
    }

    let mut components = Vec::new();
    let mut depends = Vec::new();
    for d in &f.datasets {
        let r = data_ref(&d.path);
        let mut props = vec![
            property("repro:snapshot", d.snapshot.as_str()),
            property("repro:files", d.files.to_string()),
            property("repro:bytes", d.bytes.to_string()),
        ];
        if let Some(name) = &d.dataset {
            props.push(property("repro:dataset", name.clone()));
        }
        components.push(json!({
            "type": "data",
            "bom-ref": r,
            "name": d.path,
            "hashes": [{"alg": "BLAKE3", "content": d.snapshot.hex()}],
            "data": [{"type": "dataset", "name": d.path,
                      "description": "a repro snapshot: the hash is of its manifest, which names every file by BLAKE3"}],
            "properties": props,
        }));
        depends.push(r);
    }
    let mut seen = std::collections::BTreeSet::new();
    for p in &f.packages {
        let purl = purl(p);
        if !seen.insert(purl.clone()) {
            continue;
        }
        components.push(json!({
            "type": "library",
            "bom-ref": purl,
            "name": p.name,
            "version": p.version,
            "purl": purl,
        }));
        depends.push(purl);
    }

    let t = &f.training;
    let mut props = vec![
        property("repro:workdir", t.workdir.clone()),
        property("repro:seed", t.seed.to_string()),
        property("repro:seed.generated", t.seed_generated.to_string()),
        property("repro:os", t.os.clone()),
        property("repro:arch", t.arch.clone()),
    ];
    if let Some(c) = &t.commit {
        props.push(property("repro:git.commit", c.clone()));
        props.push(property("repro:git.dirty", t.dirty.to_string()));
    }
    if let Some(p) = &t.python {
        props.push(property("repro:python.version", p.clone()));
    }
    if let Some(e) = &t.registered_environment {
        props.push(property("repro:environment.registered", e.clone()));
    }
    if let Some((path, digest)) = &t.declared_file {
        props.push(property("repro:environment.file", path.clone()));
        props.push(property("repro:environment.file.digest", digest.as_str()));
    }
    for (k, v) in &t.params {
        props.push(property(&format!("repro:param.{k}"), v.clone()));
    }
    let mut workflow = json!({
        "bom-ref": format!("workflow:{}", f.run),
        "uid": f.run,
        "name": f.run_name.clone().unwrap_or_else(|| "repro run".into()),
        "description": "the training run `repro run` recorded",
        "taskTypes": ["build"],
        "timeStart": t.started_at,
        "steps": [{"name": "command", "commands": [{"executed": shell_words(&t.command)}]}],
        "outputs": [{"type": "artifact", "resource": {"ref": model_ref(f)}}],
        "properties": props,
    });
    if let Some(end) = &t.ended_at {
        workflow["timeEnd"] = json!(end);
    }
    if !f.datasets.is_empty() {
        workflow["inputs"] =
            f.datasets.iter().map(|d| json!({"resource": {"ref": data_ref(&d.path)}})).collect::<Value>();
    }
    json!({
        "bomFormat": "CycloneDX",
        "specVersion": "1.6",
        "serialNumber": f.serial_number(),
        "version": 1,
        "metadata": {
            "timestamp": f.registered_at,
            "tools": {"components": [{"type": "application", "name": "repro", "version": env!("CARGO_PKG_VERSION")}]},
            "component": component,
        },
        "components": components,
        "formulation": [{"bom-ref": format!("formula:{}", f.run), "workflows": [workflow]}],
        "dependencies": [{"ref": model_ref(f), "dependsOn": depends}],
    })
}

/// The BOM's bytes: pretty JSON and a final newline, the same for the same facts.
pub fn bom_bytes(f: &ModelFacts, card_sha256: &str) -> Vec<u8> {
    let mut b = serde_json::to_vec_pretty(&bom(f, card_sha256)).expect("a BOM serializes");
    b.push(b'\n');
    b
}

/// A command line as one string a shell would split back the same way.
pub(crate) fn shell_words(argv: &[String]) -> String {
    argv.iter()
        .map(|a| {
            if !a.is_empty() && a.chars().all(|c| c.is_ascii_alphanumeric() || "-_./=:,@+%".contains(c)) {
                a.clone()
            } else {
                format!("'{}'", a.replace('\'', "'\\''"))
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

fn hash_of<'a>(hashes: &'a Value, alg: &str) -> Option<&'a str> {
    hashes.as_array()?.iter().find(|h| h["alg"] == alg)?.get("content")?.as_str()
}

fn property_of<'a>(component: &'a Value, name: &str) -> Option<&'a str> {
    component["properties"].as_array()?.iter().find(|p| p["name"] == name)?.get("value")?.as_str()
}

/// What is wrong with `bom` as the BOM of the version `f` describes: its serial number, the
/// model's name, version, run and lineage, every artifact file's digests, every dataset's
/// digest and every metric. Empty when it agrees. (What the user wrote and the timestamp are
/// not facts the store holds, so they are not compared.)
pub fn check(bom: &Value, f: &ModelFacts) -> Vec<String> {
    let mut problems = Vec::new();
    if bom["bomFormat"] != "CycloneDX" || bom["specVersion"] != "1.6" {
        problems.push("it is not a CycloneDX 1.6 BOM".to_string());
        return problems;
    }
    if bom["serialNumber"].as_str() != Some(f.serial_number().as_str()) {
        problems.push(format!("its serial number is not {}'s", f.reference()));
    }
    let m = &bom["metadata"]["component"];
    if m["type"] != "machine-learning-model"
        || m["name"] != f.name.as_str()
        || m["version"].as_str() != Some(f.version.to_string().as_str())
    {
        problems.push(format!("its model is not {}", f.reference()));
    }
    if property_of(m, "repro:run") != Some(f.run.as_str()) {
        problems.push(format!("it names another run than {}", f.run));
    }
    if property_of(m, "repro:lineage") != Some(f.lineage.as_str()) {
        problems.push(format!("it names another lineage than {}", f.lineage.short()));
    }
    let listed: Vec<&Value> = m["components"].as_array().map(|a| a.iter().collect()).unwrap_or_default();
    for file in &f.files {
        match listed.iter().find(|c| c["name"] == file.path.as_str()) {
            None => problems.push(format!("artifact file {} is missing from it", file.path)),
            Some(c) => {
                if hash_of(&c["hashes"], "SHA-256") != Some(file.sha256.as_str())
                    || hash_of(&c["hashes"], "BLAKE3") != Some(file.blake3.as_str())
                {
                    problems.push(format!("artifact file {}: its hashes are not the ones pinned", file.path));
                }
            }
        }
    }
    if listed.len() != f.files.len() {
        problems.push(format!("it lists {} artifact file(s), {} pins {}", listed.len(), f.reference(), f.files.len()));
    }
    let components: Vec<&Value> = bom["components"].as_array().map(|a| a.iter().collect()).unwrap_or_default();
    let data: Vec<&&Value> = components.iter().filter(|c| c["type"] == "data").collect();
    for d in &f.datasets {
        match data.iter().find(|c| c["name"] == d.path.as_str()) {
            None => problems.push(format!("dataset {} is missing from it", d.path)),
            Some(c) if hash_of(&c["hashes"], "BLAKE3") != Some(d.snapshot.hex()) => {
                problems.push(format!("dataset {}: its hash is not snapshot {}", d.path, d.snapshot.short()))
            }
            Some(_) => {}
        }
    }
    if data.len() != f.datasets.len() {
        problems.push(format!("it lists {} dataset(s), the run read {}", data.len(), f.datasets.len()));
    }
    let metrics: std::collections::BTreeMap<String, String> = m["modelCard"]["quantitativeAnalysis"]
        ["performanceMetrics"]
        .as_array()
        .map(|a| {
            a.iter().filter_map(|p| Some((p["type"].as_str()?.to_string(), p["value"].as_str()?.to_string()))).collect()
        })
        .unwrap_or_default();
    let want: std::collections::BTreeMap<String, String> =
        f.metrics.iter().map(|(k, v)| (k.clone(), metric_text(*v))).collect();
    if metrics != want {
        problems.push("its performance metrics are not the run's".to_string());
    }
    problems
}

/// The SHA-256 the BOM gives for the model card, if it names one.
pub fn card_sha256(bom: &Value) -> Option<&str> {
    let refs = bom["metadata"]["component"]["externalReferences"].as_array()?;
    hash_of(&refs.iter().find(|r| r["type"] == "model-card")?["hashes"], "SHA-256")
}
