//! The completions and manual pages: made from the clap definitions by the real binary, and
//! the copies the wheel ships (python/wheel-data/data/share) exactly what it makes now.
//! `REPRO_UPDATE_SHELL_FILES=1 cargo test -p repro-cli --test shell_files` rewrites them.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::TestContext;

/// Where each shell's completion script goes under `share/`, as the shells look for them.
const COMPLETIONS: [(&str, &str); 3] = [
    ("bash", "bash-completion/completions/repro"),
    ("zsh", "zsh/site-functions/_repro"),
    ("fish", "fish/vendor_completions.d/repro.fish"),
];

fn share() -> PathBuf {
    repro_test::workspace().join("python/wheel-data/data/share")
}

/// Every file under `dir`, by its path relative to it.
fn tree(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut files = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else { continue };
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else {
                let rel = p.strip_prefix(dir).expect("under").to_string_lossy().into_owned();
                files.insert(rel, std::fs::read(&p).expect("read"));
            }
        }
    }
    files
}

#[test]
fn the_wheels_completions_and_manual_pages_are_what_the_binary_makes() {
    let t = TestContext::new();
    let made = t.path("share");
    t.repro(&["man", "--out", made.join("man/man1").to_str().expect("utf-8")]).success();
    for (shell, rel) in COMPLETIONS {
        let script = t.repro(&["completions", shell]).success().stdout();
        let path = made.join(rel);
        std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        std::fs::write(path, script).expect("write");
    }
    let (want, have) = (tree(&made), tree(&share()));
    if want == have {
        return;
    }
    if std::env::var_os("REPRO_UPDATE_SHELL_FILES").is_some() {
        let _ = std::fs::remove_dir_all(share());
        for (rel, bytes) in &want {
            let path = share().join(rel);
            std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
            std::fs::write(path, bytes).expect("write");
        }
        return;
    }
    let differ: Vec<&String> = want.keys().chain(have.keys()).filter(|k| want.get(*k) != have.get(*k)).collect();
    panic!(
        "python/wheel-data is stale ({} files differ: {:?}…); rewrite it with \
         `REPRO_UPDATE_SHELL_FILES=1 cargo test -p repro-cli --test shell_files`",
        differ.len(),
        &differ[..differ.len().min(5)]
    );
}

#[test]
fn every_command_has_a_manual_page_that_man_renders() {
    let t = TestContext::new();
    let out = t.path("man1");
    let written = t.repro(&["--json", "man", "--out", out.to_str().expect("utf-8")]).success().json();
    let written: Vec<String> =
        written["written"].as_array().expect("written").iter().map(|p| p.as_str().expect("path").to_string()).collect();
    let names: Vec<String> = tree(&out).into_keys().collect();
    assert_eq!(written.len(), names.len());
    for page in ["repro.1", "repro-run.1", "repro-data-diff.1", "repro-model-promote.1", "repro-completions.1"] {
        assert!(names.iter().any(|n| n == page), "{page} missing from {names:?}");
    }
    assert!(!names.iter().any(|n| n.contains("help")), "no page for `help`: {names:?}");
    // Without --out: repro(1) itself, the same bytes as the page written.
    let top = t.repro(&["man"]).success().stdout();
    assert_eq!(top.as_bytes(), std::fs::read(out.join("repro.1")).expect("repro.1"));
    if !repro_test::have_tool(Command::new("man").arg("--version").output().is_ok(), "man", "apt-get install man-db") {
        return;
    }
    let rendered = Command::new("man")
        .args(["--warnings", "-l"])
        .arg(out.join("repro-model-promote.1"))
        .env("MANWIDTH", "100")
        .env("MANPAGER", "cat")
        .output()
        .expect("man");
    let text = String::from_utf8_lossy(&rendered.stdout);
    assert!(rendered.status.success(), "{}", String::from_utf8_lossy(&rendered.stderr));
    assert!(text.contains("repro model promote"), "{text}");
    assert!(text.contains("--to"), "the options are listed: {text}");
}

#[test]
fn completions_name_nested_commands_and_bash_parses_its_script() {
    let t = TestContext::new();
    for shell in ["bash", "zsh", "fish", "powershell", "elvish"] {
        let script = t.repro(&["completions", shell]).success().stdout();
        for word in ["promote", "snapshot", "seed", "completions"] {
            assert!(script.contains(word), "{shell} completes {word}");
        }
    }
    let script = t.path("repro.bash");
    std::fs::write(&script, t.repro(&["completions", "bash"]).success().stdout()).expect("write");
    let checked = Command::new("bash").arg("-n").arg(&script).output().expect("bash");
    assert!(checked.status.success(), "{}", String::from_utf8_lossy(&checked.stderr));
    // Sourced, bash completes `repro mo` to `model`.
    let probe = format!(
        "source {}; COMP_WORDS=(repro mo); COMP_CWORD=1; COMP_LINE='repro mo'; COMP_POINT=8; _repro repro mo repro; echo \"${{COMPREPLY[@]}}\"",
        script.display()
    );
    let done = Command::new("bash").arg("-c").arg(probe).output().expect("bash");
    assert_eq!(String::from_utf8_lossy(&done.stdout).trim(), "model", "{}", String::from_utf8_lossy(&done.stderr));
}

#[test]
fn an_unknown_shell_or_an_unwritable_folder_is_one_line_and_exit_2() {
    let t = TestContext::new();
    let r = t.repro(&["completions", "tcsh"]).expect_code(2);
    let line = r.error_line();
    assert!(line.contains("tcsh") && line.contains("bash"), "{line}");
    t.write("file", "x");
    let r = t.repro(&["man", "--out", t.path("file/man1").to_str().expect("utf-8")]).expect_code(2);
    assert!(r.error_line().contains("file/man1"), "{}", r.error_line());
    assert!(r.stdout().is_empty());
}
