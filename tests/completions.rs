//! `rollcall completions` and `rollcall man`, as a packager would use them: the bash script
//! parses (`bash -n`), each shell gets a script that names every subcommand, and the man page
//! renders with `man -l` and documents the subcommands.
//!
//! `man` comes with Debian's man-db (`.ci/run` installs it when missing); without it the man
//! test fails under `CI` and is skipped loudly elsewhere.
#![forbid(unsafe_code)]

use std::process::Command;

const SUBCOMMANDS: [&str; 6] = [
    "verify",
    "demo",
    "doctor",
    "worker",
    "coordinator",
    "submit",
];

fn rollcall(args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_rollcall"))
        .args(args)
        .output()
        .expect("rollcall runs");
    assert!(out.status.success(), "rollcall {args:?}: {:?}", out.status);
    String::from_utf8(out.stdout).expect("UTF-8")
}

#[test]
fn completion_scripts_parse_and_name_every_subcommand() {
    let dir = std::env::temp_dir().join(format!("rollcall-completions-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    for shell in ["bash", "zsh", "fish", "elvish", "powershell"] {
        let script = rollcall(&["completions", shell]);
        for sub in SUBCOMMANDS {
            assert!(script.contains(sub), "{shell} completion lacks `{sub}`");
        }
        if shell == "bash" {
            let path = dir.join("rollcall.bash");
            std::fs::write(&path, &script).unwrap();
            let status = Command::new("bash")
                .arg("-n")
                .arg(&path)
                .status()
                .expect("bash runs");
            assert!(status.success(), "bash -n rejects the completion script");
        }
    }
    let bad = Command::new(env!("CARGO_BIN_EXE_rollcall"))
        .args(["completions", "tcsh"])
        .output()
        .expect("rollcall runs");
    assert_eq!(
        bad.status.code(),
        Some(64),
        "an unknown shell is a usage error"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn the_man_page_renders_and_documents_the_subcommands() {
    let page = rollcall(&["man"]);
    assert!(page.contains(".TH rollcall 1"), "roff with a title header");
    let has_man = Command::new("sh")
        .args(["-c", "command -v man"])
        .status()
        .is_ok_and(|s| s.success());
    if !has_man {
        if std::env::var_os("CI").is_some() {
            panic!("`man` is missing; install it: apt-get install -y man-db");
        }
        eprintln!(
            "\n!!!!!!!! SKIPPED rendering the man page: no `man` (apt-get install -y man-db)\n"
        );
        return;
    }
    let path = std::env::temp_dir().join(format!("rollcall-{}.1", std::process::id()));
    std::fs::write(&path, &page).unwrap();
    let out = Command::new("man")
        .arg("-l")
        .arg(&path)
        .env("MANWIDTH", "100")
        .env("MANPAGER", "cat")
        .env("PAGER", "cat")
        .output()
        .expect("man runs");
    let _ = std::fs::remove_file(&path);
    assert!(out.status.success(), "man -l failed: {:?}", out.status);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("SYNOPSIS"), "{text}");
    for sub in SUBCOMMANDS {
        assert!(
            text.contains(sub),
            "the rendered page lacks `{sub}`:\n{text}"
        );
    }
}
