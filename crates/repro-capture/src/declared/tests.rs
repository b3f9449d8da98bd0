//! Unit tests of the parsers; the fixture corpus with snapshots is in tests/declared_corpus.rs.

use std::path::Path;

use proptest::prelude::*;
use repro_core::record::{DeclaredRequirement, PinStatus};

use super::requirements::logical_lines;
use super::*;

fn reqs(text: &str) -> Result<Vec<DeclaredRequirement>> {
    let d = tempfile::tempdir().expect("tempdir");
    let p = d.path().join("requirements.txt");
    std::fs::write(&p, text).expect("write");
    read(&p, d.path()).map(|d| d.environment.requirements)
}

fn status_of(r: &[DeclaredRequirement]) -> Vec<(String, PinStatus)> {
    r.iter().map(|r| (r.name.clone(), r.status)).collect()
}

#[test]
fn requirements_pins() {
    let r = reqs("# comment\nnumpy==1.26.4\nscipy>=1.10  # loose\npandas\nscikit-learn[extra]==1.4.2 ; python_version >= '3.9' \\\n    --hash=sha256:abcd\nrequests===2.0\nflask==2.*\n").expect("parses");
    assert_eq!(
        status_of(&r),
        vec![
            ("numpy".into(), PinStatus::Pinned),
            ("scipy".into(), PinStatus::Loose),
            ("pandas".into(), PinStatus::Unpinned),
            ("scikit-learn".into(), PinStatus::Pinned),
            ("requests".into(), PinStatus::Pinned),
            ("flask".into(), PinStatus::Loose),
        ]
    );
    assert_eq!(r[1].origin, "requirements.txt:3");
}

#[test]
fn includes_constraints_and_urls() {
    let d = tempfile::tempdir().expect("tempdir");
    std::fs::write(d.path().join("base.txt"), "joblib==1.3.2\n").expect("write");
    std::fs::write(d.path().join("c.txt"), "numpy==1.26.4\n").expect("write");
    let p = d.path().join("requirements.txt");
    std::fs::write(&p, "-r base.txt\n-c c.txt\nnumpy\n-e git+https://github.com/x/y@0123456789abcdef0123456789abcdef01234567#egg=y\n--index-url https://pypi.org/simple\npkg @ https://files.example/pkg-1.0-py3-none-any.whl\n").expect("write");
    let d2 = read(&p, d.path()).expect("parses");
    let s = status_of(&d2.environment.requirements);
    assert_eq!(s[0], ("joblib".into(), PinStatus::Pinned));
    assert_eq!(s[1], ("numpy".into(), PinStatus::Pinned), "pinned by the constraints file");
    assert_eq!(s[2], ("y".into(), PinStatus::Pinned));
    assert_eq!(s[3], ("pkg".into(), PinStatus::Pinned));
    assert_eq!(d2.companion_files.len(), 2);
}

#[test]
fn requirement_errors_name_file_and_line() {
    for (text, line) in [
        ("numpy==1.0\nnumpy==\n", 2),
        ("ok==1\n\n!!!\n", 3),
        ("--frobnicate x\n", 1),
        ("x==1 --bogus\n", 1),
        ("-r missing.txt\n", 1),
    ] {
        let e = reqs(text).expect_err(text).to_string();
        assert!(e.contains(&format!("requirements.txt:{line}:")), "{e}");
        assert!(!e.contains('\n'), "{e}");
    }
}

#[test]
fn malformed_extras_are_errors_not_panics() {
    // Found by `cargo fuzz run declared`: pep508_rs 0.9.2 asserts on these.
    for text in ["UUO[H...\n", "x[a-]==1\n", "y[.b]\n", "AA7;''~=''~=\u{0}B]] 1]G[={.-@[@@] \u{feff}\n"] {
        let e = reqs(text).expect_err(text).to_string();
        assert!(e.contains("requirements.txt:1: cannot parse requirement"), "{e}");
    }
    let ok = reqs("x[a, b_c]==1\n").expect("valid extras");
    assert_eq!(ok[0].status, PinStatus::Pinned);
}

#[test]
fn non_ascii_options_are_errors_not_panics() {
    // Found by `cargo fuzz run declared`: a glued short option split inside a character.
    let e = reqs("#-\u{420}W#\n-\u{420}W\n").expect_err("unknown option").to_string();
    assert!(e.contains("requirements.txt:2: unknown option"), "{e}");
}

#[test]
fn conda_pins() {
    let d = tempfile::tempdir().expect("tempdir");
    let p = d.path().join("environment.yml");
    std::fs::write(&p, "name: x\nchannels: [conda-forge]\ndependencies:\n  - python=3.11\n  - numpy=1.26.4\n  - scipy=1.11.4=py311h_0\n  - pandas>=2\n  - conda-forge::joblib==1.3.2\n  - tqdm\n  - pip:\n    - requests==2.31.0\n    - rich\n").expect("write");
    let r = read(&p, d.path()).expect("parses").environment.requirements;
    assert_eq!(
        status_of(&r),
        vec![
            ("python".into(), PinStatus::Loose),
            ("numpy".into(), PinStatus::Pinned),
            ("scipy".into(), PinStatus::Pinned),
            ("pandas".into(), PinStatus::Loose),
            ("joblib".into(), PinStatus::Pinned),
            ("tqdm".into(), PinStatus::Unpinned),
            ("requests".into(), PinStatus::Pinned),
            ("rich".into(), PinStatus::Unpinned),
        ]
    );
    assert_eq!(r[1].origin, "environment.yml:5");
}

#[test]
fn conda_garbage_names_the_file() {
    let d = tempfile::tempdir().expect("tempdir");
    let p = d.path().join("environment.yml");
    for text in [
        "dependencies: [\n",
        "dependencies: 3\n",
        "- a\n- b\n",
        "dependencies:\n  - '=1.0'\n",
        "dependencies:\n  - {conda: x}\n",
        "dependencies:\n  - pip: 3\n",
    ] {
        std::fs::write(&p, text).expect("write");
        let e = read(&p, d.path()).expect_err(text).to_string();
        assert!(e.contains("environment.yml"), "{e}");
        assert!(!e.contains('\n'), "{e}");
    }
}

#[test]
fn pyproject_and_locks() {
    let d = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        d.path().join("pyproject.toml"),
        "[project]\nname = \"x\"\ndependencies = [\"numpy>=1\", \"scipy==1.11.4\"]\n",
    )
    .expect("write");
    let r = read(&d.path().join("pyproject.toml"), d.path()).expect("parses").environment;
    assert_eq!(r.format, "pyproject");
    assert_eq!(
        status_of(&r.requirements),
        vec![("numpy".into(), PinStatus::Loose), ("scipy".into(), PinStatus::Pinned)]
    );
    std::fs::write(d.path().join("uv.lock"), "version = 1\n[[package]]\nname = \"x\"\nversion = \"0.1.0\"\nsource = { editable = \".\" }\n[[package]]\nname = \"numpy\"\nversion = \"1.26.4\"\n").expect("write");
    let r = read(&d.path().join("pyproject.toml"), d.path()).expect("parses").environment;
    assert_eq!(r.format, "uv-lock");
    assert_eq!(status_of(&r.requirements), vec![("numpy".into(), PinStatus::Pinned)]);
    assert_eq!(r.companions.len(), 1);
    std::fs::write(d.path().join("uv.lock"), "[[package]\n").expect("write");
    let e = read(&d.path().join("uv.lock"), d.path()).expect_err("bad toml").to_string();
    assert!(e.contains("uv.lock:1:"), "{e}");
}

fn parse(name: &str, text: &str) -> Result<Vec<DeclaredRequirement>> {
    parse_text(&Path::new("/nonexistent-test-dir").join(name), text)
}

/// Every error is one line naming the file and a line.
fn assert_one_line_naming(e: &CaptureError, name: &str) {
    let msg = e.to_string();
    assert!(!msg.contains('\n'), "{msg}");
    let at = msg.find(&format!("{name}:")).unwrap_or_else(|| panic!("no {name}: in {msg}"));
    let rest = &msg[at + name.len() + 1..];
    assert!(rest.starts_with(|c: char| c.is_ascii_digit() && c != '0'), "no line number: {msg}");
}

#[test]
fn requirement_fields() {
    let r = parse(
        "requirements.txt",
        "Scikit_Learn[Alldeps,docs]==1.4.2 ; python_version >= '3.9' --hash=sha256:ABCD --hash sha256:ef01\n\
         pkg @ https://files.example/pkg-1.0.2-py3-none-any.whl#sha256=00ff\n\
         git+https://github.com/o/lib.git@0123456789abcdef0123456789abcdef01234567#egg=Lib_X\n\
         ./vendor/tool-2.0-py3-none-any.whl\n",
    )
    .expect("parses");
    assert_eq!(r[0].name, "scikit-learn");
    assert_eq!(r[0].extras, ["alldeps", "docs"]);
    assert_eq!(r[0].marker.as_deref(), Some("python_full_version >= '3.9'"));
    assert_eq!(r[0].hashes, ["sha256:abcd", "sha256:ef01"]);
    assert_eq!(r[0].version.as_deref(), Some("1.4.2"));
    assert_eq!((r[1].name.as_str(), r[1].version.as_deref(), r[1].status), ("pkg", Some("1.0.2"), PinStatus::Pinned));
    assert_eq!(r[1].hashes, ["sha256:00ff"]);
    assert_eq!(r[2].name, "lib-x");
    assert_eq!(r[2].status, PinStatus::Pinned);
    assert!(r[2].url.as_deref().is_some_and(|u| u.contains("@0123456789abcdef")));
    assert_eq!((r[3].name.as_str(), r[3].version.as_deref()), ("tool", Some("2.0")));
}

#[test]
fn bad_hashes_are_errors() {
    for text in ["x==1 --hash=md5:abcd\n", "x==1 --hash=sha256:xyz\n", "x==1 --hash\n"] {
        let e = parse("requirements.txt", text).expect_err(text);
        assert_one_line_naming(&e, "requirements.txt");
    }
}

#[test]
fn errors_in_included_files_say_who_included_them() {
    let d = tempfile::tempdir().expect("tempdir");
    std::fs::write(d.path().join("base.txt"), "ok==1\nnot valid!\n").expect("write");
    let p = d.path().join("requirements.txt");
    std::fs::write(&p, "\n-r base.txt\n").expect("write");
    let e = read(&p, d.path()).expect_err("bad include").to_string();
    assert!(e.contains("base.txt:2: cannot parse requirement"), "{e}");
    assert!(e.contains("(included from requirements.txt:2)"), "{e}");
}

#[test]
fn conda_fields() {
    let r = parse(
        "environment.yml",
        "dependencies:\n  - conda-forge::NumPy=1.26.4=py311h64a7726_0\n  - python 3.11.8 h955ad1f_0_cpython\n  - _libgcc_mutex\n  - pip:\n    - Requests[socks]==2.31.0\n",
    )
    .expect("parses");
    assert_eq!(r[0].name, "numpy");
    assert_eq!(r[0].channel.as_deref(), Some("conda-forge"));
    assert_eq!((r[0].version.as_deref(), r[0].build.as_deref()), (Some("1.26.4"), Some("py311h64a7726_0")));
    assert_eq!((r[1].version.as_deref(), r[1].build.as_deref()), (Some("3.11.8"), Some("h955ad1f_0_cpython")));
    assert_eq!(r[2].name, "_libgcc_mutex", "conda names keep their underscores");
    assert_eq!(r[2].manager.as_deref(), Some("conda"));
    assert_eq!((r[3].name.as_str(), r[3].manager.as_deref()), ("requests", Some("pip")));
    assert_eq!(r[3].origin, "environment.yml:6");
}

#[test]
fn pyproject_groups_and_poetry() {
    let r = parse(
        "pyproject.toml",
        r#"[project]
name = "x"
dependencies = ["numpy>=1.26"]
[project.optional-dependencies]
plot = ["matplotlib==3.8.4"]
[dependency-groups]
test = ["pytest>=8", {include-group = "plot"}]
[tool.poetry.dependencies]
python = "^3.11"
Pandas = {version = "2.2.2", extras = ["Performance"], markers = "sys_platform == 'linux'"}
torch = [{version = "2.3.0", markers = "sys_platform == 'linux'"}, {version = "2.2.2", markers = "sys_platform == 'darwin'"}]
[tool.poetry.group.dev.dependencies]
black = "^24.4"
"#,
    )
    .expect("parses");
    let names: Vec<_> = r.iter().map(|r| (r.name.as_str(), r.group.as_deref(), r.status)).collect();
    assert_eq!(
        names,
        [
            ("numpy", None, PinStatus::Loose),
            ("matplotlib", Some("plot"), PinStatus::Pinned),
            ("pytest", Some("test"), PinStatus::Loose),
            ("pandas", None, PinStatus::Pinned),
            ("torch", None, PinStatus::Pinned),
            ("torch", None, PinStatus::Pinned),
            ("black", Some("dev"), PinStatus::Loose),
        ]
    );
    assert_eq!(r[3].extras, ["performance"]);
    assert_eq!(r[3].marker.as_deref(), Some("sys_platform == 'linux'"));
    assert_eq!(r[3].origin, "pyproject.toml:10");
    assert_eq!(r[6].origin, "pyproject.toml:13");
}

#[test]
fn toml_errors_name_the_line_of_the_value() {
    for (name, text, line) in [
        ("pyproject.toml", "[project]\nname = \"x\"\ndependencies = [\n  \"ok\",\n  3,\n]\n", 5),
        ("pyproject.toml", "[project]\ndependencies = [\"numpy>=\"]\n", 2),
        ("pyproject.toml", "[tool.poetry.dependencies]\nx = 3\n", 2),
        ("uv.lock", "version = 1\n\n[[package]]\nname = \"a\"\nversion = \"1\"\nsdist = { hash = \"nohash\" }\n", 6),
        ("poetry.lock", "[[package]]\nname = \"a\"\nversion = \"1\"\nfiles = \"x\"\n", 4),
        ("uv.lock", "[[package]]\nversion = \"1\"\n", 1),
    ] {
        let e = parse(name, text).expect_err(text);
        assert_one_line_naming(&e, name);
        assert!(e.to_string().contains(&format!("{name}:{line}:")), "{e} (expected line {line})");
    }
}

#[test]
fn pipfile_lock_fields() {
    let r = parse(
        "Pipfile.lock",
        r#"{
    "_meta": {"pipfile-spec": 6},
    "default": {
        "numpy": {"hashes": ["sha256:AA", "sha256:bb"], "index": "pypi", "markers": "python_version >= '3.9'", "version": "==1.26.4"},
        "mylib": {"git": "https://github.com/o/mylib.git", "ref": "0123456789abcdef0123456789abcdef01234567"}
    },
    "develop": {
        "pytest": {"version": "==8.2.0", "extras": ["Testing"]}
    }
}"#,
    )
    .expect("parses");
    // In the file's order, not serde_json's sorted one.
    assert_eq!((r[1].name.as_str(), r[1].origin.as_str()), ("mylib", "Pipfile.lock:5"));
    assert_eq!(r[1].status, PinStatus::Pinned);
    assert_eq!(r[0].hashes, ["sha256:aa", "sha256:bb"]);
    assert_eq!(r[0].group.as_deref(), Some("default"));
    assert_eq!(r[0].origin, "Pipfile.lock:4");
    assert_eq!((r[2].group.as_deref(), r[2].extras.as_slice()), (Some("develop"), ["testing".to_string()].as_slice()));
    let e = parse("Pipfile.lock", "{\n\"default\": {\n\"x\": {\"hashes\": 3}\n}\n}").expect_err("bad hashes");
    assert!(e.to_string().contains("Pipfile.lock:3: package x"), "{e}");
}

#[test]
fn values_with_newlines_keep_errors_on_one_line() {
    // Found by `cargo fuzz run pipfile_lock`: a JSON string's `\n` quoted in the message.
    let e = parse("Pipfile.lock", r#"{"default": {"certifi": {"hashes": ["sha\niiconk\niic256:85d0"]}}}"#)
        .expect_err("bad hash");
    assert_one_line_naming(&e, "Pipfile.lock");
    assert!(e.to_string().contains(r"hash 'sha\niiconk"), "{e}");
    let e = parse("environment.yml", "dependencies:\n  - \"a\\nb\"\n").expect_err("bad spec");
    assert_one_line_naming(&e, "environment.yml");
}

#[test]
fn conda_lock_keeps_the_first_platform() {
    let text = concat!(
        "version: 1\n",
        "metadata:\n",
        "  platforms:\n",
        "  - linux-64\n",
        "  - osx-arm64\n",
        "package:\n",
        "- name: numpy\n",
        "  version: 1.26.4\n",
        "  manager: conda\n",
        "  platform: osx-arm64\n",
        "  url: https://conda.anaconda.org/conda-forge/osx-arm64/numpy-1.26.4-py311h7125741_0.conda\n",
        "  hash:\n",
        "    md5: ab\n",
        "  category: main\n",
        "  optional: false\n",
        "- name: numpy\n",
        "  version: 1.26.4\n",
        "  manager: conda\n",
        "  platform: linux-64\n",
        "  url: https://conda.anaconda.org/conda-forge/linux-64/numpy-1.26.4-py311h64a7726_0.conda\n",
        "  hash:\n",
        "    sha256: CD\n",
        "    md5: ef\n",
        "  category: main\n",
        "  optional: false\n",
    );
    let r = parse("conda-lock.yml", text).expect("parses");
    assert_eq!(r.len(), 1);
    assert_eq!(r[0].origin, "conda-lock.yml:16");
    assert_eq!(r[0].group.as_deref(), Some("main (linux-64)"));
    assert_eq!((r[0].channel.as_deref(), r[0].build.as_deref()), (Some("conda-forge"), Some("py311h64a7726_0")));
    assert_eq!(r[0].hashes, ["md5:ef", "sha256:cd"]);
    let all = text.replace("  platforms:\n  - linux-64\n  - osx-arm64\n", "");
    let r = parse("conda-lock.yml", &all).expect("parses");
    let groups: Vec<_> = r.iter().map(|r| r.group.as_deref().unwrap_or("")).collect();
    assert_eq!(groups, ["main (osx-arm64)", "main (linux-64)"], "every platform when none is listed");
    let e = parse("conda-lock.yml", "version: 7\npackage: []\n").expect_err("version");
    assert!(e.to_string().contains("conda-lock.yml:1: conda-lock file version 7"), "{e}");
}

#[test]
fn formats_by_file_name() {
    for (name, format) in [
        ("requirements-dev.txt", "requirements"),
        ("requirements.lock", "requirements"),
        ("environment.yml", "conda"),
        ("conda-lock.yml", "conda-lock"),
        ("ci.conda-lock.yml", "conda-lock"),
        ("uv.lock", "uv-lock"),
        ("poetry.lock", "poetry-lock"),
        ("Pipfile.lock", "pipfile-lock"),
        ("pyproject.toml", "pyproject"),
    ] {
        assert_eq!(Format::of(Path::new(name)).label(), format, "{name}");
    }
}

#[test]
fn detects_the_new_lock_files_after_the_old_names() {
    let d = tempfile::tempdir().expect("tempdir");
    std::fs::write(d.path().join("Pipfile.lock"), "{}").expect("write");
    assert_eq!(detect(d.path(), Some(d.path())), Some(d.path().join("Pipfile.lock")));
    std::fs::write(d.path().join("requirements.txt"), "").expect("write");
    assert_eq!(detect(d.path(), Some(d.path())), Some(d.path().join("requirements.txt")));
}

#[test]
fn includes_of_devices_are_refused() {
    let e = parse("requirements.txt", "-r /dev/zero\n").expect_err("device");
    assert!(e.to_string().contains("not a regular file"), "{e}");
}

/// Every format's URLs, each with a credential: `read` records none of them, says where
/// each was, and stores a redacted copy whose digest is the recorded one.
#[test]
fn credentials_in_urls_are_removed_before_anything_is_recorded() {
    const SECRET: &str = "S3cretT0ken";
    let files: [(&str, String); 7] = [
        (
            "requirements.txt",
            format!(
                "--index-url https://oauth2:{SECRET}@pypi.corp.example/simple\n\
                 --extra-index-url https://user:{SECRET}@extra.example/simple\n\
                 -i https://${{PYPI_USER}}:${{PYPI_TOKEN}}@pypi.corp.example/simple\n\
                 --find-links https://files.example/wheels?token={SECRET}\n\
                 pkg @ https://u:{SECRET}@files.example/pkg-1.0-py3-none-any.whl\n\
                 -e git+https://ghp_{SECRET}abcdef@github.com/o/y@0123456789abcdef0123456789abcdef01234567#egg=y\n\
                 -r more.txt\n"
            ),
        ),
        ("more.txt", format!("lib @ https://files.example/lib-1.0-py3-none-any.whl?X-Amz-Signature={SECRET}\n")),
        (
            "environment.yml",
            format!(
                "channels:\n  - https://conda.anaconda.org/t/ab-{SECRET}/private\ndependencies:\n  - numpy=1.26.4\n  - pip:\n    - --extra-index-url https://u:{SECRET}@pypi.corp.example/simple\n    - torch==2.3.0\n"
            ),
        ),
        (
            "uv.lock",
            format!(
                "version = 1\n[[package]]\nname = \"torch\"\nversion = \"2.3.0\"\nsource = {{ registry = \"https://u:{SECRET}@pypi.corp.example/simple\" }}\n"
            ),
        ),
        (
            "poetry.lock",
            format!(
                "[[package]]\nname = \"torch\"\nversion = \"2.3.0\"\n[package.source]\ntype = \"legacy\"\nurl = \"https://u:{SECRET}@pypi.corp.example/simple\"\nreference = \"corp\"\n"
            ),
        ),
        (
            "Pipfile.lock",
            format!(
                "{{\"_meta\": {{\"sources\": [{{\"name\": \"corp\", \"url\": \"https://u:{SECRET}@pypi.corp.example/simple\", \"verify_ssl\": true}}]}}, \"default\": {{\"torch\": {{\"version\": \"==2.3.0\", \"file\": \"https://files.example/torch-2.3.0-cp311-none-any.whl?access_token={SECRET}\"}}}}}}"
            ),
        ),
        ("Pipfile", format!("[[source]]\nurl = \"https://u:{SECRET}@pypi.corp.example/simple\"\nname = \"corp\"\n")),
    ];
    let d = tempfile::tempdir().expect("tempdir");
    for (name, text) in &files {
        std::fs::write(d.path().join(name), text).expect("write");
    }
    for (main, expect) in
        [("requirements.txt", 6), ("environment.yml", 2), ("uv.lock", 1), ("poetry.lock", 1), ("Pipfile.lock", 3)]
    {
        let got = read(&d.path().join(main), d.path()).expect(main);
        let recorded = serde_json::to_string(&got.environment).expect("json");
        assert!(!recorded.contains(SECRET), "{main}: {recorded}");
        assert_eq!(got.environment.redacted.len(), expect, "{main}: {:?}", got.environment.redacted);
        assert!(got.environment.redacted.iter().all(|r| !r.contains(SECRET)));
        let stored = got.bytes_to_store(&got.main_file).expect("bytes");
        assert!(!String::from_utf8_lossy(&stored).contains(SECRET), "{main}");
        assert_eq!(Digest::of_bytes(&stored), got.environment.digest, "{main}: the digest is of the stored copy");
        for (path, entry) in got.companion_files.iter().zip(&got.environment.companions) {
            let bytes = got.bytes_to_store(path).expect("companion");
            assert!(!String::from_utf8_lossy(&bytes).contains(SECRET), "{}", path.display());
            assert_eq!(Digest::of_bytes(&bytes), entry.digest);
        }
    }
    let r = read(&d.path().join("requirements.txt"), d.path()).expect("reads");
    assert_eq!(r.environment.redacted[0], "requirements.txt:1: a password in the URL's user info");
    assert!(r
        .environment
        .redacted
        .iter()
        .any(|x| x.starts_with("more.txt:1: the credential parameter `x-amz-signature`")));
    // The placeholder line is kept as written.
    let kept = String::from_utf8(r.bytes_to_store(&r.main_file).expect("bytes")).expect("utf-8");
    assert!(kept.contains("-i https://${PYPI_USER}:${PYPI_TOKEN}@pypi.corp.example/simple"), "{kept}");
    let pkg = r.environment.requirements.iter().find(|q| q.name == "pkg").expect("pkg");
    assert_eq!(pkg.url.as_deref(), Some("https://files.example/pkg-1.0-py3-none-any.whl"));
    assert_eq!(pkg.status, PinStatus::Pinned);
    // Without credentials nothing is redacted and the file is stored as it is.
    std::fs::write(d.path().join("clean.txt"), "numpy==1.26.4\n").expect("write");
    let c = read(&d.path().join("clean.txt"), d.path()).expect("reads");
    assert!(c.environment.redacted.is_empty() && c.redacted.is_empty());
}

proptest! {
    #[test]
    fn requirements_parser_never_panics(text in "(?s).{0,200}") {
        let _ = logical_lines(&text);
        for (n, l) in logical_lines(&text) {
            let _ = parse_requirement_line(Path::new("r.txt"), n, &l, "r.txt");
        }
    }

    #[test]
    fn conda_spec_never_panics(s in ".{0,60}") {
        let _ = conda_spec(Path::new("environment.yml"), 1, &s);
    }

    #[test]
    fn pyproject_never_panics(text in "(?s).{0,300}") {
        if let Err(e) = parse("pyproject.toml", &text) { assert_one_line_naming(&e, "pyproject.toml"); }
    }

    #[test]
    fn pyproject_values_never_panic(dep in ".{0,40}", group in "[a-z\\-]{1,8}") {
        let text = format!(
            "[project]\ndependencies = [{dep:?}]\n[project.optional-dependencies]\n{group} = [{dep:?}]\n\
             [tool.poetry.dependencies]\nx = {{version = {dep:?}, markers = {dep:?}, git = {dep:?}}}\n"
        );
        if let Err(e) = parse("pyproject.toml", &text) { assert_one_line_naming(&e, "pyproject.toml"); }
    }

    #[test]
    fn uv_lock_never_panics(text in "(?s).{0,300}", v in ".{0,30}") {
        if let Err(e) = parse("uv.lock", &text) { assert_one_line_naming(&e, "uv.lock"); }
        let lock = format!("version = 1\n[[package]]\nname = {v:?}\nversion = {v:?}\nsource = {{ git = {v:?} }}\nsdist = {{ hash = {v:?} }}\n");
        if let Err(e) = parse("uv.lock", &lock) { assert_one_line_naming(&e, "uv.lock"); }
    }

    #[test]
    fn poetry_lock_never_panics(text in "(?s).{0,300}", v in ".{0,30}") {
        if let Err(e) = parse("poetry.lock", &text) { assert_one_line_naming(&e, "poetry.lock"); }
        let lock = format!("[[package]]\nname = {v:?}\nversion = {v:?}\nmarkers = {v:?}\nfiles = [{{file = {v:?}, hash = {v:?}}}]\n");
        if let Err(e) = parse("poetry.lock", &lock) { assert_one_line_naming(&e, "poetry.lock"); }
    }

    #[test]
    fn pipfile_lock_never_panics(text in "(?s).{0,300}", v in ".{0,30}") {
        if let Err(e) = parse("Pipfile.lock", &text) { assert_one_line_naming(&e, "Pipfile.lock"); }
        let lock = serde_json::json!({"default": {v.clone(): {"version": v, "markers": v, "hashes": [v], "git": v, "ref": v}}});
        if let Err(e) = parse("Pipfile.lock", &lock.to_string()) { assert_one_line_naming(&e, "Pipfile.lock"); }
    }

    #[test]
    fn conda_lock_never_panics(text in "(?s).{0,300}", v in "[^\\n]{0,30}") {
        if let Err(e) = parse("conda-lock.yml", &text) { assert_one_line_naming(&e, "conda-lock.yml"); }
        let lock = format!("version: 1\npackage:\n- name: {v:?}\n  version: {v:?}\n  manager: {v:?}\n  url: {v:?}\n  hash:\n    md5: {v:?}\n");
        if let Err(e) = parse("conda-lock.yml", &lock) { assert_one_line_naming(&e, "conda-lock.yml"); }
    }

    #[test]
    fn environment_yml_never_panics(text in "(?s).{0,300}") {
        if let Err(e) = parse("environment.yml", &text) { assert_one_line_naming(&e, "environment.yml"); }
    }
}
