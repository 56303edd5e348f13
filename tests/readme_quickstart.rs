//! The README's "Try it on a simulated mail world" commands, run as written: the first `sh`
//! block of that section starts `rollcall sim` (left running, as in a first terminal), the
//! second runs `rollcall verify` against it. `rollcall` is this build's binary, first on `PATH`;
//! the working folder is a fresh temporary one in which `crates` leads to the repo's, so the
//! README's relative paths hold and nothing is written into the checkout.
//!
//! Checked: the sim prints the very verify command the README gives; verify exits 0; every
//! address the sim wrote comes out once; known mailboxes get their verdicts (a plain valid
//! one, and a greylisted one that the `--lab` retries get past), unknown ones are undeliverable.
//!
//! The sim listens on its default ports (DNS 127.0.0.1:5353, SMTP 2525 on 127.20.0.x), as the
//! README's commands expect; this file holds this one test so nothing else in its process uses
//! them.

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// A bound on the whole verify run (greylist delay 5 s, retries after 7 s: about 10 s here).
const VERIFY_BOUND: Duration = Duration::from_secs(180);

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// The `sh` blocks of the README section whose heading starts with `heading`.
fn section_blocks(readme: &str, heading: &str) -> Vec<String> {
    let start = readme
        .find(&format!("\n## {heading}"))
        .unwrap_or_else(|| panic!("the README has a section `## {heading}`"));
    let rest = &readme[start + 4..];
    let section = &rest[..rest.find("\n## ").unwrap_or(rest.len())];
    section
        .split("```sh\n")
        .skip(1)
        .map(|block| {
            block[..block.find("```").expect("a closed block")]
                .trim()
                .to_string()
        })
        .collect()
}

/// Kills the sim when the test ends, however it ends.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn shell(line: &str, dir: &Path) -> Command {
    let bin = PathBuf::from(env!("CARGO_BIN_EXE_rollcall"));
    let path = format!(
        "{}:{}",
        bin.parent().expect("the binary's folder").display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let mut command = Command::new("bash");
    command
        .arg("-c")
        .arg(format!("exec {line}"))
        .current_dir(dir)
        .env("PATH", path)
        // The README's `verify` keeps its result cache here, not in the user's cache folder.
        .env("XDG_CACHE_HOME", dir.join("cache"))
        .env_remove("ROLLCALL_CONFIG");
    command
}

#[test]
fn the_readme_quick_start_runs_as_written() {
    let readme = std::fs::read_to_string(repo().join("README.md")).expect("README.md");
    let blocks = section_blocks(&readme, "Try it on a simulated mail world");
    assert_eq!(blocks.len(), 2, "two commands: {blocks:?}");
    let (sim_line, verify_line) = (&blocks[0], &blocks[1]);
    assert!(sim_line.starts_with("rollcall sim "), "{sim_line}");
    assert!(verify_line.starts_with("rollcall verify "), "{verify_line}");

    let dir = std::env::temp_dir().join(format!("rollcall-quickstart-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("a temporary folder");
    std::os::unix::fs::symlink(repo().join("crates"), dir.join("crates")).expect("a link");

    let mut sim = shell(sim_line, &dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("the sim starts");
    let stdout = sim.stdout.take().expect("its stdout");
    let sim = Running(sim);
    let (lines_tx, lines) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = lines_tx.send(line);
        }
    });
    let printed = loop {
        let line = lines
            .recv_timeout(Duration::from_secs(60))
            .expect("the sim prints a verify command within a minute");
        if let Some(command) = line.strip_prefix("verify") {
            break command.trim().to_string();
        }
    };
    assert_eq!(
        &printed, verify_line,
        "the sim prints the README's verify command"
    );

    let started = Instant::now();
    let mut verify = shell(verify_line, &dir).spawn().expect("verify starts");
    let status = loop {
        if let Some(status) = verify.try_wait().expect("verify's status") {
            break status;
        }
        if started.elapsed() > VERIFY_BOUND {
            let _ = verify.kill();
            panic!("verify did not end within {VERIFY_BOUND:?}");
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(status.success(), "verify exits 0: {status}");
    drop(sim);

    let list = std::fs::read_to_string(dir.join("list.txt")).expect("the sim wrote list.txt");
    let addresses: Vec<&str> = list.lines().filter(|l| !l.is_empty()).collect();
    assert!(addresses.len() > 10, "{addresses:?}");
    let mut reader = csv::Reader::from_path(dir.join("results.csv")).expect("results.csv");
    let header = reader.headers().expect("a header").clone();
    let column = |name: &str| {
        header
            .iter()
            .position(|h| h == name)
            .unwrap_or_else(|| panic!("a `{name}` column in {header:?}"))
    };
    let (address, status) = (column("address"), column("status"));
    let mut verdicts: HashMap<String, String> = HashMap::new();
    for record in reader.records() {
        let record = record.expect("a CSV record");
        let previous = verdicts.insert(record[address].to_string(), record[status].to_string());
        assert!(previous.is_none(), "{} comes out once", &record[address]);
    }
    assert_eq!(verdicts.len(), addresses.len(), "every address comes out");
    for a in &addresses {
        assert!(verdicts.contains_key(*a), "{a} has a row");
    }
    let verdict = |a: &str| verdicts.get(a).map(String::as_str);
    assert_eq!(verdict("alice.smith@normal.test"), Some("deliverable"));
    assert_eq!(
        verdict("frank.black@greylist.test"),
        Some("deliverable"),
        "the lab retries get past a 5 s greylist delay"
    );
    assert!(
        verdicts.values().any(|s| s == "undeliverable"),
        "unknown mailboxes are undeliverable: {verdicts:?}"
    );
    std::fs::remove_dir_all(&dir).expect("the temporary folder goes");
}
