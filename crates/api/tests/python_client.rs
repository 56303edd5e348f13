//! Interop: a Python client generated from the .proto by grpc_tools (another gRPC stack, no
//! shared code) submits and watches a campaign against this server.
//!
//! Needs grpcio-tools: `bash crates/api/tests/python/setup.sh` installs it into a venv under
//! the target directory. Under `CI` the test runs that script itself when the venv is missing
//! and fails if it cannot; elsewhere it skips, loudly, naming the command.

mod common;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use common::{TestServer, within};

const SETUP: &str = "bash crates/api/tests/python/setup.sh";

fn manifest_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The interpreter setup.sh installs into (same rule as the script).
fn venv_python() -> PathBuf {
    let venv = match (
        std::env::var_os("ROLLCALL_PY_VENV"),
        std::env::var_os("CARGO_TARGET_DIR"),
    ) {
        (Some(venv), _) => PathBuf::from(venv),
        (None, Some(target)) => PathBuf::from(target).join("python-grpc"),
        (None, None) => manifest_dir().join("../../target/python-grpc"),
    };
    venv.join("bin/python")
}

fn has_grpc_tools(python: &Path) -> bool {
    std::process::Command::new(python)
        .args(["-c", "import grpc, grpc_tools"])
        .output()
        .is_ok_and(|o| o.status.success())
}

/// The interpreter to use, or `None` to skip. One test at a time checks and installs.
fn python() -> Option<PathBuf> {
    static SETUP_LOCK: Mutex<()> = Mutex::new(());
    let _guard = SETUP_LOCK
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    let python = venv_python();
    if has_grpc_tools(&python) {
        return Some(python);
    }
    if std::env::var_os("CI").is_none() {
        eprintln!(
            "\n*** SKIPPED python_client: grpcio-tools is not installed at {}.\n*** Run `{SETUP}` to enable this interop test.\n",
            python.display()
        );
        return None;
    }
    let setup = std::process::Command::new("bash")
        .arg(manifest_dir().join("tests/python/setup.sh"))
        .output()
        .expect("bash runs");
    assert!(
        setup.status.success() && has_grpc_tools(&python),
        "CI needs the Python gRPC toolchain: `{SETUP}` failed:\n{}{}",
        String::from_utf8_lossy(&setup.stdout),
        String::from_utf8_lossy(&setup.stderr)
    );
    Some(python)
}

#[tokio::test]
async fn python_client_submits_and_watches_a_campaign() {
    let Some(python) = python() else { return };
    let server = TestServer::start(Some("py-t0ken")).await;
    server.fake.set_auto_land(true);
    let address = server.url.trim_start_matches("http://").to_owned();

    let output = within(
        tokio::process::Command::new(&python)
            .arg(manifest_dir().join("tests/python/client.py"))
            .arg(&address)
            .args(["--token", "py-t0ken"])
            .kill_on_drop(true)
            .output(),
    )
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "client.py failed:\n{stdout}\n{stderr}"
    );

    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(
        lines[0], "submitted c1 accepted=4 duplicate=1 invalid=1",
        "{stdout}"
    );
    assert!(
        lines[1].starts_with("progress CAMPAIGN_STATE_RUNNING "),
        "{stdout}"
    );

    let results: Vec<&str> = lines
        .iter()
        .copied()
        .filter(|l| l.starts_with("result "))
        .collect();
    let rows: BTreeSet<u64> = results
        .iter()
        .map(|l| {
            l["result row=".len()..]
                .split(' ')
                .next()
                .unwrap()
                .parse()
                .unwrap()
        })
        .collect();
    assert_eq!(results.len(), 6, "{stdout}");
    assert_eq!(rows, (0..6).collect(), "{stdout}");
    assert!(
        results.contains(
            &"result row=2 STATUS_DELIVERABLE REASON_ACCEPTED duplicate=true ok1@example.com"
        ),
        "{stdout}"
    );
    assert!(results.contains(&"result row=3 STATUS_UNDELIVERABLE REASON_INVALID_SYNTAX duplicate=false not-an-address"), "{stdout}");
    assert!(
        results.contains(
            &"result row=4 STATUS_RISKY REASON_CATCH_ALL duplicate=false catchall@example.org"
        ),
        "{stdout}"
    );

    let n = lines.len();
    assert!(
        lines[n - 2].starts_with("progress CAMPAIGN_STATE_DONE done=6 "),
        "{stdout}"
    );
    assert_eq!(
        lines[n - 1],
        "end CAMPAIGN_STATE_DONE done=6 deliverable=2 undeliverable=2 risky=1 unknown=1",
        "{stdout}"
    );
}

#[tokio::test]
async fn python_client_without_the_token_is_refused() {
    let Some(python) = python() else { return };
    let server = TestServer::start(Some("py-t0ken")).await;
    let address = server.url.trim_start_matches("http://").to_owned();
    let output = within(
        tokio::process::Command::new(&python)
            .arg(manifest_dir().join("tests/python/client.py"))
            .arg(&address)
            .kill_on_drop(true)
            .output(),
    )
    .await
    .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("UNAUTHENTICATED"), "{stderr}");
}
