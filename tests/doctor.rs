//! `rollcall doctor` (the binary) against a simulated fleet whose DNS serves a prober's names
//! (`[[record]]`): `a.prober.test` A 127.0.1.1 with the PTR of 127.0.1.1 pointing back at it,
//! and `b.prober.test` A 127.0.9.9 with no PTR for 127.0.1.2. Egress `a` (bind 127.0.1.1)
//! passes every check; egress `b` (bind 127.0.1.2) fails `helo_resolves` and `fcrdns`; a port
//! where nothing listens fails `smtp_connect`. Everything talks to loopback only: the fleet's
//! DNS server, its SMTP host, and a socket bound without listening.
#![forbid(unsafe_code)]

use std::net::SocketAddr;
use std::process::Command;

use rollcall_sim::{Fleet, FleetSpec, SimOptions};
use serde_json::Value;

const FLEET: &str = r#"
[fleet]
address_base = "127.33.0.0"

[[host]]
name = "mx.doctor.test"

[[site]]
name = "doctor"
mx = [{ host = "mx.doctor.test", preference = 10 }]

[[domain]]
name = "doctor.test"
site = "doctor"
mailboxes = { "postmaster" = "valid" }

[[record]]
name = "a.prober.test"
a = "127.0.1.1"
ptr = "127.0.1.1"

[[record]]
name = "b.prober.test"
a = ["127.0.9.9"]
"#;

/// Passes everything: its HELO name resolves to its address, whose PTR points back.
const EGRESS_A: &str = r#"
[[egress]]
name = "a"
bind = "127.0.1.1"
helo = "a.prober.test"
mail_from = "probe@doctor.test"
"#;

/// Its HELO name resolves elsewhere (127.0.9.9) and its address has no PTR.
const EGRESS_B: &str = r#"
[[egress]]
name = "b"
bind = "127.0.1.2"
helo = "b.prober.test"
mail_from = "probe@doctor.test"
"#;

struct Run {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

impl Run {
    /// `(status, egress, check)` of every check line, in order.
    fn checks(&self) -> Vec<(String, String, String)> {
        self.stdout
            .lines()
            .filter_map(|line| {
                let (status, rest) = line.split_once("  egress ")?;
                let (egress, rest) = rest.split_once("  ")?;
                let (check, _) = rest.split_once(": ")?;
                Some((status.to_string(), egress.to_string(), check.to_string()))
            })
            .collect()
    }

    /// The line of the first check named `check`, and the line after it.
    fn line(&self, check: &str) -> (&str, &str) {
        let lines: Vec<&str> = self.stdout.lines().collect();
        let i = lines
            .iter()
            .position(|l| l.contains(&format!("  {check}: ")))
            .unwrap_or_else(|| panic!("no {check} line in:\n{}", self.stdout));
        (lines[i], lines.get(i + 1).copied().unwrap_or(""))
    }
}

async fn fleet() -> Fleet {
    let spec = FleetSpec::from_toml(FLEET).expect("fleet parses");
    rollcall_sim::start(&spec, SimOptions::default())
        .await
        .expect("fleet starts")
}

/// Runs `rollcall doctor` with `config` (the egress tables; none when empty) against the
/// fleet's DNS, with `args` after the common flags.
async fn doctor(fleet: &Fleet, test: &str, config: &str, args: &[&str]) -> Run {
    let dir = std::env::temp_dir().join(format!("rollcall-doctor-{}-{test}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("rollcall.toml");
    std::fs::write(&path, config).unwrap();
    let mut command = Command::new(env!("CARGO_BIN_EXE_rollcall"));
    command
        .arg("doctor")
        .arg("--config")
        .arg(&path)
        .args(["--dns", &fleet.dns_addr().to_string()])
        .args(["--connect-timeout", "5s", "--command-timeout", "10s"])
        .args(["--greeting-timeout", "10s"])
        .args(args)
        .env_remove("ROLLCALL_CONFIG")
        .env_remove("ROLLCALL_EGRESS")
        .env_remove("ROLLCALL_HELO")
        .env_remove("ROLLCALL_MAIL_FROM")
        .env_remove("ROLLCALL_ALLOW_PRIVATE");
    let out = tokio::task::spawn_blocking(move || command.output())
        .await
        .unwrap()
        .expect("rollcall runs");
    let _ = std::fs::remove_dir_all(&dir);
    Run {
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

fn smtp_host(fleet: &Fleet) -> String {
    fleet
        .host_addr("mx.doctor.test")
        .expect("the fleet's host")
        .to_string()
}

/// A loopback port where nothing listens: bound without listening, so connections are refused
/// and no other test can take it while the socket lives.
fn closed_port() -> (tokio::net::TcpSocket, SocketAddr) {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let addr = socket.local_addr().unwrap();
    (socket, addr)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_passing_egress_passes_every_check() {
    let fleet = fleet().await;
    let host = smtp_host(&fleet);
    let run = doctor(
        &fleet,
        "pass",
        EGRESS_A,
        &["--target", &host, "--allow-private"],
    )
    .await;
    assert_eq!(run.code, Some(0), "{}\n{}", run.stdout, run.stderr);
    let expected: Vec<(String, String, String)> = [
        "helo_resolves",
        "fcrdns",
        "mail_from_domain",
        "smtp_connect",
    ]
    .iter()
    .map(|c| ("PASS".to_string(), "a".to_string(), c.to_string()))
    .collect();
    assert_eq!(run.checks(), expected, "{}", run.stdout);
    let (helo, _) = run.line("helo_resolves");
    assert!(
        helo.contains("a.prober.test resolves to 127.0.1.1"),
        "{helo}"
    );
    let (fcrdns, _) = run.line("fcrdns");
    assert!(
        fcrdns.contains("127.0.1.1 -> PTR a.prober.test -> 127.0.1.1")
            && fcrdns.contains("the PTR name is the HELO name"),
        "{fcrdns}"
    );
    let (mail_from, _) = run.line("mail_from_domain");
    assert!(
        mail_from.contains("doctor.test has MX mx.doctor.test (10)"),
        "{mail_from}"
    );
    let (smtp, _) = run.line("smtp_connect");
    assert!(
        smtp.contains(&host) && smtp.contains("from 127.0.1.1") && smtp.contains("greeting 220"),
        "{smtp}"
    );
    // The real session ran STARTTLS (the fleet offers it) and quit cleanly.
    assert!(smtp.contains("STARTTLS TLS"), "{smtp}");
    assert!(!run.stdout.contains("fix:"), "{}", run.stdout);
    assert!(
        run.stdout
            .contains("doctor: 4 passed, 0 failed, 0 skipped (1 egress)"),
        "{}",
        run.stdout
    );
    // The server saw the session come from the egress's address.
    let counters = fleet.counters();
    let client = counters.clients.get("127.0.1.1");
    assert_eq!(client.map(|c| c.connections), Some(1), "{counters:?}");
    assert_eq!(counters.totals.tls_sessions, 1);
    assert_eq!(counters.totals.transactions, 0, "doctor never sends MAIL");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_egress_names_what_dns_says_and_how_to_fix_it() {
    let fleet = fleet().await;
    let host = smtp_host(&fleet);
    let run = doctor(
        &fleet,
        "fail",
        EGRESS_B,
        &["--target", &host, "--allow-private"],
    )
    .await;
    assert_eq!(run.code, Some(1), "{}\n{}", run.stdout, run.stderr);
    let statuses: Vec<(String, String)> = run
        .checks()
        .into_iter()
        .map(|(status, _, check)| (status, check))
        .collect();
    assert_eq!(
        statuses,
        [
            ("FAIL".to_string(), "helo_resolves".to_string()),
            ("FAIL".into(), "fcrdns".into()),
            ("PASS".into(), "mail_from_domain".into()),
            ("PASS".into(), "smtp_connect".into()),
        ],
        "{}",
        run.stdout
    );
    let (helo, fix) = run.line("helo_resolves");
    assert!(
        helo.starts_with("FAIL  egress b  helo_resolves: ")
            && helo.contains("resolves to 127.0.9.9, not to this egress's address 127.0.1.2"),
        "{helo}"
    );
    assert!(
        fix.starts_with("      fix: ") && fix.contains("A b.prober.test -> 127.0.1.2"),
        "{fix}"
    );
    let (fcrdns, fix) = run.line("fcrdns");
    assert!(
        fcrdns.contains("127.0.1.2 has no PTR record (NXDOMAIN)"),
        "{fcrdns}"
    );
    assert!(
        fix.starts_with("      fix: ") && fix.contains("PTR record to b.prober.test"),
        "{fix}"
    );
    assert!(
        run.stdout
            .contains("doctor: 2 passed, 2 failed, 0 skipped (1 egress)"),
        "{}",
        run.stdout
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_closed_port_fails_smtp_connect_with_a_fix() {
    let fleet = fleet().await;
    let (_socket, closed) = closed_port();
    let run = doctor(
        &fleet,
        "closed",
        EGRESS_A,
        &["--target", &closed.to_string(), "--allow-private"],
    )
    .await;
    assert_eq!(run.code, Some(1), "{}\n{}", run.stdout, run.stderr);
    let (smtp, fix) = run.line("smtp_connect");
    assert!(
        smtp.starts_with("FAIL  egress a  smtp_connect: ") && smtp.contains(&closed.to_string()),
        "{smtp}"
    );
    assert!(smtp.to_lowercase().contains("refused"), "{smtp}");
    assert!(
        fix.starts_with("      fix: ") && fix.contains("outbound port 25 is blocked"),
        "{fix}"
    );
    // The DNS checks of this egress still pass: only the session failed.
    let failed: Vec<String> = run
        .checks()
        .into_iter()
        .filter(|(status, ..)| status == "FAIL")
        .map(|(.., check)| check)
        .collect();
    assert_eq!(failed, ["smtp_connect"], "{}", run.stdout);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_holds_the_same_statuses_as_the_lines() {
    let fleet = fleet().await;
    let host = smtp_host(&fleet);
    let (_socket, closed) = closed_port();
    let config = format!("{EGRESS_A}{EGRESS_B}");
    let args = [
        "--target",
        &host,
        "--target",
        &closed.to_string(),
        "--allow-private",
    ];
    let text = doctor(&fleet, "json-text", &config, &args).await;
    let mut json_args = args.to_vec();
    json_args.push("--json");
    let json = doctor(&fleet, "json", &config, &json_args).await;
    assert_eq!(text.code, Some(1), "{}\n{}", text.stdout, text.stderr);
    assert_eq!(json.code, Some(1), "{}\n{}", json.stdout, json.stderr);

    let doc: Value = serde_json::from_str(&json.stdout)
        .unwrap_or_else(|e| panic!("stdout is one JSON document ({e}):\n{}", json.stdout));
    let checks = doc.as_array().expect("an array of checks");
    let from_json: Vec<(String, String, String)> = checks
        .iter()
        .map(|c| {
            let field = |k: &str| c[k].as_str().unwrap_or_default().to_string();
            (
                field("status").to_uppercase(),
                field("egress"),
                field("check"),
            )
        })
        .collect();
    assert_eq!(from_json, text.checks());
    // Two egresses, three DNS checks and two targets each.
    assert_eq!(checks.len(), 10, "{}", json.stdout);
    for c in checks {
        assert!(c["detail"].is_string(), "{c}");
        match c["status"].as_str() {
            Some("fail") => assert!(c["fix"].is_string(), "a FAIL has a fix: {c}"),
            Some("pass") => assert!(c["fix"].is_null(), "{c}"),
            other => panic!("unexpected status {other:?}: {c}"),
        }
    }
    let closed_check = checks
        .iter()
        .find(|c| c["egress"] == "a" && c["target"] == closed.to_string())
        .expect("the closed target's check");
    assert_eq!(closed_check["check"], "smtp_connect");
    assert_eq!(closed_check["status"], "fail");
    assert!(
        json.stderr
            .contains("doctor: 6 passed, 4 failed, 0 skipped (2 egresses)")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_target_or_an_address_checks_are_skipped_with_how_to_ask() {
    let fleet = fleet().await;
    let run = doctor(&fleet, "skip", EGRESS_A, &[]).await;
    assert_eq!(run.code, Some(0), "a SKIP is not a failure: {}", run.stdout);
    let (smtp, fix) = run.line("smtp_connect");
    assert!(smtp.starts_with("SKIP  egress a  smtp_connect: "), "{smtp}");
    assert!(
        fix.contains("--target HOST[:PORT]") && fix.contains("--target-domain"),
        "{fix}"
    );

    // The default egress has no source address: the address checks cannot be made.
    let run = doctor(
        &fleet,
        "default",
        "",
        &[
            "--helo",
            "a.prober.test",
            "--mail-from",
            "probe@doctor.test",
        ],
    )
    .await;
    assert_eq!(run.code, Some(0), "{}\n{}", run.stdout, run.stderr);
    for check in ["helo_resolves", "fcrdns"] {
        let (line, fix) = run.line(check);
        assert!(
            line.starts_with(&format!("SKIP  egress default  {check}: ")),
            "{line}"
        );
        assert!(fix.contains("--egress IP"), "{fix}");
    }
    assert!(
        run.line("helo_resolves")
            .0
            .contains("resolves to 127.0.1.1")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_loopback_target_is_refused_without_allow_private() {
    let fleet = fleet().await;
    let host = smtp_host(&fleet);
    let run = doctor(&fleet, "policy", EGRESS_A, &["--target", &host]).await;
    assert_eq!(run.code, Some(1), "{}\n{}", run.stdout, run.stderr);
    let (smtp, fix) = run.line("smtp_connect");
    assert!(
        smtp.contains("refused") && smtp.contains("loopback"),
        "{smtp}"
    );
    assert!(fix.contains("--allow-private"), "{fix}");
    assert_eq!(
        fleet.counters().totals.connections,
        0,
        "no connection was made"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_flags_and_config_exit_64() {
    let fleet = fleet().await;
    let run = doctor(
        &fleet,
        "bad-target",
        EGRESS_A,
        &["--target", "mx.test:notaport"],
    )
    .await;
    assert_eq!(run.code, Some(64), "{}\n{}", run.stdout, run.stderr);
    assert!(run.stderr.contains("--target"), "{}", run.stderr);
    assert!(run.stdout.is_empty(), "{}", run.stdout);

    let bad_proxy = r#"
[[egress]]
name = "p"
proxy = "http://127.0.0.1:1080"
helo = "a.prober.test"
"#;
    let run = doctor(&fleet, "bad-proxy", bad_proxy, &[]).await;
    assert_eq!(run.code, Some(64), "{}\n{}", run.stdout, run.stderr);
    assert!(
        run.stderr.contains("egress.proxy") && run.stderr.contains("socks5://"),
        "{}",
        run.stderr
    );
}
