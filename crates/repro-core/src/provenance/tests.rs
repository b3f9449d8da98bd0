//! Tests of envelopes and statements.

use super::dsse::hex;
use super::dsse::is_hex64;
use proptest::prelude::*;

use super::*;
use crate::record::sample;
use crate::record::{DataRef, FileEntry};

/// A fixed key so signatures (deterministic in ed25519) can be compared byte for byte.
fn key7() -> SigningKey {
    SigningKey::from_bytes(&[7; 32])
}

fn artifact(name: &str, bytes: &[u8]) -> ArtifactFile {
    ArtifactFile {
        name: name.into(),
        sha256: hex_sha256(bytes),
        blake3: blake3::hash(bytes).to_hex().to_string(),
        size: bytes.len() as u64,
    }
}

fn sample_statement(record: &RunRecord, sha: &BTreeMap<Digest, String>) -> Value {
    let lineage = record.lineage();
    let head = Digest::of_bytes(b"event 9");
    let artifacts = [artifact("model.pkl", b"weights"), artifact("config.json", b"{}")];
    statement(&StatementInput {
        record,
        lineage: &lineage,
        model: "churn",
        version: 3,
        artifacts: &artifacts,
        object_sha256: sha,
        registry_head: Some((9, &head)),
        repro_version: "0.1.0",
        metrics: None,
    })
    .expect("statement")
}

#[test]
fn pae_matches_the_dsse_spec() {
    // The example from the DSSE protocol document.
    assert_eq!(
        pae("http://example.com/HelloWorld", b"hello world"),
        b"DSSEv1 29 http://example.com/HelloWorld 11 hello world"
    );
    assert_eq!(pae("", b""), b"DSSEv1 0  0 ");
    // Lengths count bytes, not characters.
    assert_eq!(pae("é", "ü".as_bytes()), "DSSEv1 2 é 2 ü".as_bytes());
}

#[test]
fn keyid_matches_securesystemslib() {
    // Expected values computed with securesystemslib 1.6.0 (cryptography 50.0.2):
    //   pub = Ed25519PrivateKey.from_private_bytes(SEED).public_key()
    //   SSlibKey.from_crypto(pub).keyid
    // with SEED = bytes([7] * 32) and bytes(range(32)). (securesystemslib 0.31's legacy
    // keys.format_metadata_to_key gives eab68a81… for the first: it hashes
    // keyid_hash_algorithms too; nothing current uses that id.)
    assert_eq!(
        sslib_keyid(&key7().verifying_key()),
        "bfe1a83869e5bf574e3ff3acbb83f840de84a990d10059f3096f0bf4f2b90c10"
    );
    let seed: [u8; 32] = std::array::from_fn(|i| i as u8);
    let key = SigningKey::from_bytes(&seed).verifying_key();
    assert_eq!(hex(key.as_bytes()), "03a107bff3ce10be1d70dd18e74bc09967e4d6309ba50d5f1ddc8664125531b8");
    assert_eq!(sslib_keyid(&key), "63d00ee3cf4f5c61ad94efa696c68f13b608fe56ecea13fb144a6fd18e9235b9");
}

#[test]
fn envelope_is_byte_identical_to_securesystemslib() {
    // securesystemslib 1.6.0: Envelope(b'{"hello":"world"}', PAYLOAD_TYPE, {}).sign(
    //   CryptoSigner(Ed25519PrivateKey.from_private_bytes(bytes([7] * 32)))), then
    // json.dumps(env.to_dict(), separators=(",", ":")).
    let expected = concat!(
        r#"{"payload":"eyJoZWxsbyI6IndvcmxkIn0=","payloadType":"application/vnd.in-toto+json","#,
        r#""signatures":[{"keyid":"bfe1a83869e5bf574e3ff3acbb83f840de84a990d10059f3096f0bf4f2b90c10","#,
        r#""sig":"FQNnoeu0UNR5ZgHHOQ0mfYI1VzNq3iOISppniUaLJmS3FI6KPM5ReFQ0MG2neIcudfsBCSlKeU6UNWvUO+N/Ag=="}]}"#
    );
    let env = sign_envelope(&key7(), PAYLOAD_TYPE, br#"{"hello":"world"}"#);
    assert_eq!(env.to_json_line(), expected);
    let parsed = Envelope::parse(expected).expect("parse");
    assert_eq!(parsed, env);
    verify_envelope(&parsed, &key7().verifying_key()).expect("verifies");
}

#[test]
fn verify_says_which_check_failed() {
    let key = key7();
    let env = sign_envelope(&key, PAYLOAD_TYPE, b"{}");
    verify_envelope(&env, &key.verifying_key()).expect("verifies");

    let mut tampered = env.clone();
    tampered.payload = b"{ }".to_vec();
    let e = verify_envelope(&tampered, &key.verifying_key()).expect_err("tampered payload").to_string();
    assert!(e.contains("does not verify") && e.contains("changed after signing"), "{e}");

    // The payload type is signed too.
    let mut retyped = env.clone();
    retyped.payload_type = "application/json".into();
    assert!(verify_envelope(&retyped, &key.verifying_key()).is_err());

    let other = SigningKey::from_bytes(&[8; 32]).verifying_key();
    let e = verify_envelope(&env, &other).expect_err("other key").to_string();
    assert!(e.contains("no signature by key") && e.contains(&sslib_keyid(&key.verifying_key())), "{e}");

    let mut short = env.clone();
    short.signatures[0].sig.truncate(10);
    let e = verify_envelope(&short, &key.verifying_key()).expect_err("short").to_string();
    assert!(e.contains("not a 64-byte"), "{e}");

    let unsigned = Envelope { signatures: vec![], ..env.clone() };
    let e = verify_envelope(&unsigned, &key.verifying_key()).expect_err("unsigned").to_string();
    assert!(e.contains("no signatures"), "{e}");

    // A bad signature under our keyid does not hide a good one under it.
    let mut two = env.clone();
    two.signatures.insert(0, Signature { keyid: env.signatures[0].keyid.clone(), sig: vec![0; 64] });
    verify_envelope(&two, &key.verifying_key()).expect("the second signature verifies");
}

#[test]
fn verify_is_strict() {
    // A small-order public key (here the identity point) with R = identity and s = 0
    // "signs" every message under the lax ed25519 equation; strict verification refuses.
    let mut identity = [0u8; 32];
    identity[0] = 1;
    let weak = VerifyingKey::from_bytes(&identity).expect("decodes");
    let mut sig = [0u8; 64];
    sig[..32].copy_from_slice(&identity);
    let env = Envelope {
        payload_type: PAYLOAD_TYPE.into(),
        payload: b"anything at all".to_vec(),
        signatures: vec![Signature { keyid: sslib_keyid(&weak), sig: sig.to_vec() }],
    };
    use ed25519_dalek::Verifier as _;
    let lax = weak.verify(&pae(&env.payload_type, &env.payload), &ed25519_dalek::Signature::from_bytes(&sig));
    assert!(lax.is_ok(), "the lax check accepts the forgery");
    assert!(verify_envelope(&env, &weak).is_err());
}

#[test]
fn parse_accepts_what_dsse_allows() {
    // URL-safe alphabet and missing padding.
    let env = Envelope::parse(r#"{"payload":"-_8","payloadType":"t","signatures":[{"sig":"AA"}]}"#).expect("lenient");
    assert_eq!(env.payload, vec![0xfb, 0xff]);
    assert_eq!(env.signatures, vec![Signature { keyid: String::new(), sig: vec![0] }]);
    let env = Envelope::parse("  {\"payload\":\"\",\"payloadType\":\"t\",\"signatures\":[],\"x\":1}\n").expect("ws");
    assert!(env.payload.is_empty() && env.signatures.is_empty());
}

#[test]
fn parse_rejects_garbage_clearly() {
    let cases = [
        ("", "not JSON"),
        ("{", "not JSON"),
        ("[]", "expected a JSON object"),
        (r#"{"payloadType":"t","signatures":[]}"#, "`payload` is missing"),
        (r#"{"payload":"","signatures":[]}"#, "`payloadType` is missing"),
        (r#"{"payload":"","payloadType":"t"}"#, "`signatures` is missing"),
        (r#"{"payload":5,"payloadType":"t","signatures":[]}"#, "`payload` must be a string"),
        (r#"{"payload":"","payloadType":null,"signatures":[]}"#, "`payloadType` must be a string"),
        (r#"{"payload":"!!","payloadType":"t","signatures":[]}"#, "`payload` is not base64"),
        (r#"{"payload":"","payloadType":"t","signatures":{}}"#, "`signatures` must be a list"),
        (r#"{"payload":"","payloadType":"t","signatures":[1]}"#, "`signatures[0]` must be an object"),
        (r#"{"payload":"","payloadType":"t","signatures":[{"keyid":"k"}]}"#, "`signatures[0].sig` is missing"),
        (r#"{"payload":"","payloadType":"t","signatures":[{"sig":"*"}]}"#, "`signatures[0].sig` is not base64"),
        (r#"{"payload":"","payloadType":"t","signatures":[{"sig":"","keyid":7}]}"#, "`signatures[0].keyid` must be"),
    ];
    for (text, want) in cases {
        let e = Envelope::parse(text).expect_err(text).to_string();
        assert!(e.starts_with("invalid DSSE envelope: ") && e.contains(want), "{text}: {e}");
        assert!(!e.contains('\n'), "one line: {e}");
    }
}

#[test]
fn statement_has_the_in_toto_and_slsa_shape() {
    let mut record = sample::record();
    record.code.remote = Some("https://user:token@example.com/org/repo.git".into());
    record.code.diff = Some(Digest::of_bytes(b"diff"));
    record.code.diff_files = vec!["train.py".into()];
    record.code.dirty = true;
    record.inputs.push(DataRef {
        path: "data/big".into(),
        snapshot: Digest::of_bytes(b"manifest"),
        files: 20,
        bytes: 1 << 30,
        reference: true,
        dataset: Some("big:2".into()),
    });
    record.params.files =
        vec![FileEntry { path: "params.yaml".into(), size: 3, mode: 0o644, digest: Digest::of_bytes(b"lr: 1") }];
    record.environment.registered = Some("train-env:1".into());
    record.logs.stdout = Some(Digest::of_bytes(b"out"));
    let script = record.script.digest.clone().expect("sample script digest");
    let sha = BTreeMap::from([(script.clone(), hex_sha256(b"print(1)"))]);
    let s = sample_statement(&record, &sha);

    assert_eq!(s["_type"], STATEMENT_TYPE);
    assert_eq!(s["predicateType"], PREDICATE_TYPE);
    let names: Vec<&str> = s["subject"].as_array().expect("list").iter().filter_map(|x| x["name"].as_str()).collect();
    assert_eq!(names, ["config.json", "model.pkl"], "sorted by name");
    assert_eq!(s["subject"][1]["digest"]["sha256"], hex_sha256(b"weights"));
    assert_eq!(s["subject"][1]["digest"]["blake3"], blake3::hash(b"weights").to_hex().as_str());

    let bd = &s["predicate"]["buildDefinition"];
    assert_eq!(bd["buildType"], BUILD_TYPE);
    let ext = &bd["externalParameters"];
    assert_eq!(ext["command"], json!(["/v/bin/python", "train.py"]));
    assert_eq!(ext["params"], json!({"lr": 0.1}));
    assert_eq!(ext["seed"], 42);
    assert_eq!(ext["seedGenerated"], false);
    assert_eq!(ext["workdir"], ".");
    let env = &ext["environment"];
    assert_eq!(env["python"]["version"], "3.11.7");
    assert_eq!(env["python"]["interpreter"], "/v/bin/python");
    assert_eq!(env["packages"], json!(["numpy==1.26.4", "scikit-learn==1.4.2", "threadpoolctl==3.5.0"]));
    assert_eq!(env["declaredFile"]["path"], "requirements.txt");
    assert_eq!(env["registered"], "train-env:1");
    assert_eq!(env["variables"]["PYTHONHASHSEED"], "42");

    let int = &bd["internalParameters"];
    assert_eq!(int["runId"], record.id.as_str());
    assert_eq!(int["lineage"], record.lineage().as_str());
    assert_eq!(int["model"], "churn");
    assert_eq!(int["version"], 3);
    assert_eq!(int["registryHead"]["seq"], 9);

    let deps = bd["resolvedDependencies"].as_array().expect("list");
    let role = |r: &str| deps.iter().filter(|d| d["annotations"]["role"] == r).collect::<Vec<_>>();
    let code = role("code");
    assert_eq!(code.len(), 1);
    assert_eq!(code[0]["uri"], "git+https://example.com/org/repo.git@0123456789abcdef0123", "no credentials");
    assert_eq!(code[0]["digest"], json!({"gitCommit": "0123456789abcdef0123"}));
    assert_eq!(code[0]["annotations"]["dirty"], true);
    assert_eq!(role("diff")[0]["digest"]["blake3"], Digest::of_bytes(b"diff").hex());
    let script_dep = role("script");
    assert_eq!(script_dep[0]["name"], "train.py");
    assert_eq!(script_dep[0]["digest"], json!({"blake3": script.hex(), "sha256": hex_sha256(b"print(1)")}));
    assert_eq!(role("environment")[0]["name"], "requirements.txt");
    assert_eq!(role("params")[0]["name"], "params.yaml");
    let inputs = role("input");
    assert_eq!(inputs.len(), 2, "every input");
    assert_eq!(inputs[0]["name"], "data/train.csv");
    assert_eq!(inputs[0]["digest"], json!({"blake3": Digest::of_bytes(b"x").hex()}), "no sha256 not given");
    assert_eq!(inputs[1]["annotations"]["referenceOnly"], true);
    assert_eq!(inputs[1]["annotations"]["dataset"], "big:2");
    assert_eq!(inputs[1]["annotations"]["files"], 20);
    for d in deps {
        for (alg, h) in d["digest"].as_object().expect("digest set") {
            assert!(alg == "gitCommit" || is_hex64(h.as_str().unwrap_or("")), "{alg}: {h}");
        }
    }

    let rd = &s["predicate"]["runDetails"];
    assert_eq!(rd["builder"]["id"], BUILDER_ID);
    assert_eq!(rd["builder"]["version"]["repro"], "0.1.0");
    assert_eq!(rd["metadata"]["invocationId"], record.id.as_str());
    assert_eq!(rd["metadata"]["startedOn"], "2026-01-01T00:00:00.000Z");
    assert_eq!(rd["metadata"]["finishedOn"], "2026-01-01T00:00:01.000Z");
    assert_eq!(rd["byproducts"][0]["name"], "stdout");
}

#[test]
fn statement_outside_git_and_unfinished() {
    let mut record = sample::record();
    record.code = Default::default();
    record.ended_at = None;
    record.environment.python = None;
    record.environment.declared = None;
    record.script.digest = None;
    let s = sample_statement(&record, &BTreeMap::new());
    let deps = s["predicate"]["buildDefinition"]["resolvedDependencies"].as_array().expect("list");
    assert_eq!(deps.len(), 1, "only the input: {deps:?}");
    assert!(s["predicate"]["runDetails"]["metadata"].get("finishedOn").is_none());
    assert!(s["predicate"]["runDetails"].get("byproducts").is_none());
    assert_eq!(parse_statement(&statement_payload(&s)).expect("parse").git_commit, None);

    // A repository without a remote names its folder.
    let mut record = sample::record();
    record.code.remote = None;
    let s = sample_statement(&record, &BTreeMap::new());
    assert_eq!(
        s["predicate"]["buildDefinition"]["resolvedDependencies"][0]["uri"],
        "git+file:///repo@0123456789abcdef0123"
    );
}

#[test]
fn statement_rejects_bad_artifacts() {
    let record = sample::record();
    let lineage = record.lineage();
    let sha = BTreeMap::new();
    let make = |artifacts: &[ArtifactFile]| {
        statement(&StatementInput {
            record: &record,
            lineage: &lineage,
            model: "m",
            version: 1,
            artifacts,
            object_sha256: &sha,
            registry_head: None,
            repro_version: "0",
            metrics: None,
        })
    };
    assert!(make(&[]).expect_err("empty").to_string().contains("at least one artifact"));
    let a = artifact("m.pkl", b"1");
    assert!(make(&[a.clone(), a.clone()]).expect_err("twice").to_string().contains("listed twice"));
    let mut bad = a.clone();
    bad.blake3 = format!("blake3:{}", a.blake3);
    assert!(make(&[bad]).expect_err("prefixed").to_string().contains("64 lowercase hex"));
    let mut bad = a;
    bad.name = String::new();
    assert!(make(&[bad]).expect_err("no name").to_string().contains("empty name"));
}

#[test]
fn statement_round_trips_through_sign_open() {
    let record = sample::record();
    let s = sample_statement(&record, &BTreeMap::new());
    let key = key7();
    let env = sign_envelope(&key, PAYLOAD_TYPE, &statement_payload(&s));
    let line = env.to_json_line();
    assert!(!line.contains('\n'));
    let summary = open_statement(&Envelope::parse(&line).expect("parse"), &key.verifying_key()).expect("open");
    assert_eq!(summary.run_id, record.id);
    assert_eq!(summary.lineage, record.lineage());
    assert_eq!(summary.model, "churn");
    assert_eq!(summary.version, 3);
    assert_eq!(summary.registry_head, Some((9, Digest::of_bytes(b"event 9"))));
    assert_eq!(summary.git_commit.as_deref(), Some("0123456789abcdef0123"));
    assert_eq!(summary.builder_id, BUILDER_ID);
    assert_eq!(summary.subjects.len(), 2);
    assert_eq!(summary.subjects["model.pkl"].sha256, hex_sha256(b"weights"));
    assert_eq!(summary.subjects["model.pkl"].blake3, blake3::hash(b"weights").to_hex().as_str());

    let retyped = Envelope { payload_type: "text/plain".into(), ..env };
    let e = open_statement(&retyped, &key.verifying_key()).expect_err("type").to_string();
    assert!(e.contains("payloadType is 'text/plain'"), "{e}");
}

#[test]
fn statements_signed_with_the_legacy_uris_still_open() {
    let record = sample::record();
    let mut s = sample_statement(&record, &BTreeMap::new());
    assert_eq!(s["predicate"]["buildDefinition"]["buildType"], "urn:repro:slsa:buildtype:run:v1");
    assert_eq!(s["predicate"]["runDetails"]["builder"]["id"], "urn:repro:slsa:builder:local:v1");
    s["predicate"]["buildDefinition"]["buildType"] = json!(LEGACY_BUILD_TYPE);
    s["predicate"]["runDetails"]["builder"]["id"] = json!(LEGACY_BUILDER_ID);
    let key = key7();
    let env = sign_envelope(&key, PAYLOAD_TYPE, &statement_payload(&s));
    let summary = open_statement(&env, &key.verifying_key()).expect("a legacy statement opens");
    assert_eq!(summary.run_id, record.id);
    assert_eq!(summary.builder_id, LEGACY_BUILDER_ID);
}

#[test]
fn parse_statement_rejects_what_is_not_ours() {
    let s = sample_statement(&sample::record(), &BTreeMap::new());
    let with = |pointer: &str, value: Value| {
        let mut s = s.clone();
        *s.pointer_mut(pointer).expect(pointer) = value;
        parse_statement(&statement_payload(&s)).expect_err(pointer).to_string()
    };
    assert!(with("/_type", json!("https://in-toto.io/Statement/v0.1"))
        .contains("`_type` is 'https://in-toto.io/Statement/v0.1'"));
    assert!(with("/predicateType", json!("https://slsa.dev/provenance/v0.2"))
        .contains("expected 'https://slsa.dev/provenance/v1'"));
    assert!(with("/predicate/buildDefinition/buildType", json!("x")).contains("buildType"));
    assert!(with("/subject", json!([])).contains("attests no artifact"));
    assert!(with("/subject/0/digest", json!({"sha256": "ab"})).contains("sha256 digest"));
    assert!(with("/subject/1/name", s["subject"][0]["name"].clone()).contains("listed twice"));
    assert!(with("/predicate/buildDefinition/internalParameters/runId", json!("nope")).contains("invalid run id"));
    assert!(with("/predicate/buildDefinition/internalParameters/version", json!(-1)).contains("version number"));
    assert!(with("/predicate/buildDefinition/internalParameters/lineage", json!(1))
        .contains("`lineage` must be a string in `internalParameters`"));
    assert!(with("/predicate/buildDefinition/internalParameters/registryHead", json!({"seq": 1}))
        .contains("registryHead.hash"));
    assert!(parse_statement(b"[]").expect_err("array").to_string().contains("expected a JSON object"));
    assert!(parse_statement(b"\xff").expect_err("bytes").to_string().contains("not JSON"));
}

/// Writes two envelopes over sample statements (`envelopes.jsonl`) and the public key
/// (`repro.pub`) into `$REPRO_PROVENANCE_OUT`, for the check with the real Python tools:
/// `crates/repro-cli/tests/fixtures/verify_provenance.py envelopes.jsonl repro.pub`.
#[test]
#[ignore = "writes files for a manual interop check with Python"]
fn write_interop_envelopes() {
    use ed25519_dalek::pkcs8::spki::der::pem::LineEnding;
    use ed25519_dalek::pkcs8::EncodePublicKey as _;

    let out = std::path::PathBuf::from(std::env::var_os("REPRO_PROVENANCE_OUT").expect("REPRO_PROVENANCE_OUT"));
    let key = key7();
    let mut record = sample::record();
    record.code.remote = Some("https://example.com/org/repo.git".into());
    record.code.diff = Some(Digest::of_bytes(b"diff"));
    record.environment.registered = Some("train-env:1".into());
    let script = record.script.digest.clone().expect("script digest");
    let sha = BTreeMap::from([(script, hex_sha256(b"print(1)"))]);
    let first = sample_statement(&record, &sha);
    let mut second = first.clone();
    second["predicate"]["buildDefinition"]["internalParameters"]["version"] = json!(4);
    let mut lines = String::new();
    for s in [&first, &second] {
        lines.push_str(&sign_envelope(&key, PAYLOAD_TYPE, &statement_payload(s)).to_json_line());
        lines.push('\n');
    }
    std::fs::write(out.join("envelopes.jsonl"), lines).expect("write envelopes");
    let pem = key.verifying_key().to_public_key_pem(LineEnding::LF).expect("pem");
    std::fs::write(out.join("repro.pub"), pem).expect("write pub");
    std::fs::write(out.join("statement.json"), serde_json::to_string_pretty(&first).expect("json")).expect("write");
}

fn envelope_strategy() -> impl Strategy<Value = Envelope> {
    (
        ".{0,20}",
        prop::collection::vec(any::<u8>(), 0..200),
        prop::collection::vec((".{0,20}", prop::collection::vec(any::<u8>(), 0..80)), 0..4),
    )
        .prop_map(|(payload_type, payload, sigs)| Envelope {
            payload_type,
            payload,
            signatures: sigs.into_iter().map(|(keyid, sig)| Signature { keyid, sig }).collect(),
        })
}

proptest! {
    #[test]
    fn envelope_round_trips(env in envelope_strategy()) {
        let line = env.to_json_line();
        prop_assert!(!line.contains('\n'));
        prop_assert_eq!(Envelope::parse(&line).expect("round trip"), env);
    }

    #[test]
    fn parse_never_panics(s in ".*") {
        let _ = Envelope::parse(&s);
        let _ = parse_statement(s.as_bytes());
    }

    #[test]
    fn parse_of_a_damaged_envelope_never_panics(
        env in envelope_strategy(),
        cuts in prop::collection::vec((any::<prop::sample::Index>(), any::<char>()), 1..4),
    ) {
        let mut chars: Vec<char> = env.to_json_line().chars().collect();
        for (at, c) in cuts {
            let i = at.index(chars.len());
            chars[i] = c;
        }
        let _ = Envelope::parse(&chars.into_iter().collect::<String>());
    }

    #[test]
    fn any_change_to_the_payload_breaks_the_signature(
        payload in prop::collection::vec(any::<u8>(), 1..100),
        at in any::<prop::sample::Index>(),
        bit in 0u8..8,
    ) {
        let key = key7();
        let mut env = sign_envelope(&key, PAYLOAD_TYPE, &payload);
        prop_assert!(verify_envelope(&env, &key.verifying_key()).is_ok());
        let i = at.index(env.payload.len());
        env.payload[i] ^= 1 << bit;
        prop_assert!(verify_envelope(&env, &key.verifying_key()).is_err());
    }
}

#[test]
fn metrics_digest_is_a_byproduct_and_reads_back() {
    let record = sample::record();
    let lineage = record.lineage();
    let artifacts =
        [ArtifactFile { name: "model.pkl".into(), sha256: "ab".repeat(32), blake3: "cd".repeat(32), size: 1 }];
    let points = [crate::metrics::MetricPoint { key: "rmse".into(), value: 1.5, step: 0, timestamp_ms: Some(1) }];
    let digest = crate::metrics::metrics_digest(&points);
    let sha = BTreeMap::new();
    let v = statement(&StatementInput {
        record: &record,
        lineage: &lineage,
        model: "m",
        version: 1,
        artifacts: &artifacts,
        object_sha256: &sha,
        registry_head: None,
        repro_version: "0",
        metrics: Some((&digest, points.len())),
    })
    .expect("statement");
    let summary = parse_statement(&statement_payload(&v)).expect("parses");
    assert_eq!(summary.metrics, Some(digest));
    let mut other = points.clone();
    other[0].value = 1.25;
    assert_ne!(crate::metrics::metrics_digest(&other), summary.metrics.expect("metrics"));
}

#[test]
fn a_signed_verdict_opens_with_its_key_only_and_says_what_was_compared() {
    use crate::record::Verdict;
    use crate::replay::OutputComparison;
    let original = sample::record();
    let mut replay = sample::record();
    replay.id = crate::RunId::from_bytes([9; 16]);
    replay.replay_of = Some(original.id.clone());
    let lineage = original.lineage();
    let manifest = Digest::of_bytes(b"manifest");
    let outputs = [OutputComparison {
        path: "model.pkl".into(),
        verdict: Verdict::Identical,
        recorded: Some(manifest.clone()),
        replayed: Some(manifest.clone()),
        files: vec![],
    }];
    let subjects = [artifact("model.pkl", b"weights")];
    let reasons = ["1 output bit-identical, 0 metrics equal".to_string()];
    let input = VerdictInput {
        original: &original,
        original_lineage: &lineage,
        replay: &replay,
        replay_lineage: None,
        verdict: Verdict::Identical,
        reasons: &reasons,
        outputs: &outputs,
        subjects: &subjects,
        judged_at: "2026-12-05T10:00:00Z",
        repro_version: "0.1.0",
    };
    let statement = verdict_statement(&input).expect("statement");
    assert_eq!(statement["predicateType"], VERDICT_PREDICATE_TYPE);
    assert_eq!(statement["predicate"]["outputs"][0]["original"]["blake3"], manifest.hex());
    let payload = serde_json::to_vec(&statement).expect("json");
    let envelope = sign_envelope(&key7(), PAYLOAD_TYPE, &payload);
    let summary = open_verdict(&envelope, &key7().verifying_key()).expect("opens");
    assert_eq!((summary.original_run, summary.replay_run.clone()), (original.id.clone(), replay.id.clone()));
    assert_eq!(summary.original_lineage, lineage);
    assert_eq!((summary.verdict.as_str(), summary.reproduced), ("identical", true));
    assert_eq!(summary.subjects["model.pkl"].sha256, hex_sha256(b"weights"));
    // Another key, or one changed byte of the payload, does not open it.
    let other = SigningKey::from_bytes(&[8; 32]);
    assert!(open_verdict(&envelope, &other.verifying_key()).is_err());
    let mut forged = envelope.clone();
    forged.payload = String::from_utf8(forged.payload).expect("utf-8").replace("identical", "equivalent").into_bytes();
    assert!(open_verdict(&forged, &key7().verifying_key()).is_err());
    // A provenance statement is not a verdict, even when signed by the same key.
    let provenance = statement_payload(&sample_statement(&original, &BTreeMap::new()));
    let err = parse_verdict(&provenance).expect_err("not a verdict");
    assert!(err.to_string().contains("predicateType"), "{err}");
    // A replay whose command failed where the original succeeded says so.
    assert_eq!(verdict_word(Verdict::Differs, Some(0), Some(1)), "failed");
    assert_eq!(verdict_word(Verdict::Differs, Some(0), Some(0)), "differs");
}
