//! `rollcall verify` against the real interop Postfix: DNS for `example.test` comes from a
//! simulated fleet whose only host is external (the Postfix listener on 127.0.0.25:2525), and
//! every row's verdict must equal that fleet's truth, which lists the mailboxes Postfix knows
//! (tests/interop/postfix.sh: alice, bob, carol).
//!
//! The second test runs the same against the anvil listener (127.0.0.27: 30 RCPTs and 10
//! connections per client IP per 10 s), with a site rule whose burst is smaller than its RCPTs
//! per transaction: Postfix's anvil is the judge of the rate on the wire.
//!
//! The egress tests run four source addresses against the anvil listener (each address must
//! stay under anvil's limits on its own, and all four must be used), and one SOCKS5 egress
//! (Debian's microsocks, `scripts/socks.sh`) against the first listener: Postfix sees the
//! proxy's outgoing address, STARTTLS works through it, and the verdicts are the truth's.
//!
//! If Postfix is not answering, the tests fail under CI (`CI` set) and are skipped, loudly,
//! everywhere else.
#![forbid(unsafe_code)]

use std::collections::HashMap;
use std::io::{Read, Seek, SeekFrom};
use std::net::{SocketAddr, TcpStream};
use std::process::Command;
use std::time::{Duration, Instant};

use rollcall_sim::{FleetSpec, SimOptions};
use serde_json::Value;

const POSTFIX: &str = "127.0.0.25:2525";

const FLEET: &str = r#"
[fleet]
address_base = "127.29.0.0"

[[host]]
name = "mx.example.test"
address = "127.0.0.25"
external = true

[[site]]
name = "interop"
mx = [{ host = "mx.example.test", preference = 10 }]

[[domain]]
name = "example.test"
site = "interop"
mailboxes = { "alice" = "valid", "bob" = "valid", "carol" = "valid" }
verify = ["nobody", "ghost"]
"#;

fn postfix_answers(listener: &str) -> bool {
    let Ok(addr) = listener.parse::<SocketAddr>() else {
        return false;
    };
    TcpStream::connect_timeout(&addr, Duration::from_secs(2)).is_ok()
}

/// False (after a loud notice) when the listener is not answering outside CI; a failure in CI.
fn postfix_or_skip(listener: &str, test: &str) -> bool {
    if postfix_answers(listener) {
        return true;
    }
    if std::env::var_os("CI").is_some() {
        panic!(
            "Postfix interop listener {listener} is not answering; run: bash tests/interop/postfix.sh up"
        );
    }
    eprintln!(
        "\n!!!!!!!! SKIPPED {test}: Postfix is not answering on {listener}.\n\
         !!!!!!!! run: bash tests/interop/postfix.sh up   (under CI this is a failure)\n"
    );
    false
}

fn name<T: serde::Serialize>(v: &T) -> String {
    serde_json::to_value(v)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_against_postfix_matches_truth() {
    if !postfix_or_skip(POSTFIX, "verify_against_postfix_matches_truth") {
        return;
    }
    let spec = FleetSpec::from_toml(FLEET).expect("fleet parses");
    let fleet = rollcall_sim::start(
        &spec,
        SimOptions {
            smtp_port: Some(2525),
            ..SimOptions::default()
        },
    )
    .await
    .expect("fleet (DNS only) starts");
    let dir = std::env::temp_dir().join(format!("rollcall-interop-verify-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let list = dir.join("list.txt");
    let out = dir.join("out.jsonl");
    std::fs::write(&list, fleet.addresses().join("\n")).unwrap();

    let dns = fleet.dns_addr().to_string();
    let (list_arg, out_arg) = (list.clone(), out.clone());
    let status = tokio::task::spawn_blocking(move || {
        Command::new(env!("CARGO_BIN_EXE_rollcall"))
            .arg("verify")
            .arg("--no-cache")
            .arg(&list_arg)
            .args(["-o"])
            .arg(&out_arg)
            .args(["--format", "jsonl", "--progress", "off", "--allow-private"])
            .args(["--dns", &dns, "--smtp-port", "2525"])
            .args([
                "--helo",
                "interop.rollcall.test",
                "--mail-from",
                "probe@rollcall.test",
            ])
            .args(["--connect-timeout", "5s", "--command-timeout", "20s"])
            .status()
    })
    .await
    .unwrap()
    .expect("rollcall runs");
    assert!(status.success(), "rollcall verify exited with {status}");

    let text = std::fs::read_to_string(&out).unwrap();
    let rows: HashMap<String, Value> = text
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .map(|v| (v["address"].as_str().unwrap_or_default().to_string(), v))
        .collect();
    assert_eq!(
        rows.len(),
        fleet.truth().len(),
        "one row per address:\n{text}"
    );
    for truth in fleet.truth() {
        let row = &rows[&truth.address];
        assert_eq!(
            row["status"],
            name(&truth.status),
            "{}: {row}",
            truth.address
        );
        assert_eq!(
            row["reason"],
            name(&truth.reason),
            "{}: {row}",
            truth.address
        );
        assert_eq!(row["mx"], "mx.example.test", "{row}");
    }
    assert_eq!(rows["alice@example.test"]["smtp_code"], 250);
    assert_eq!(rows["nobody@example.test"]["enhanced_code"], "5.1.1");
    fleet.shutdown().await;
    let _ = std::fs::remove_dir_all(&dir);
}

const ANVIL: &str = "127.0.0.27:2525";
/// tests/interop/postfix.sh: the anvil listener's limits, per client IP per window.
const ANVIL_RCPTS_PER_WINDOW: usize = 30;
const ANVIL_WINDOW_SECS: u64 = 10;
/// The site rule under test: 120 RCPT/min (one every 0.5 s), burst 5, 20 RCPTs per
/// transaction. Honest GCRA allows at most 5 + 10 s / 0.5 s = 25 RCPTs in any 10 s.
const RULE_PER_MINUTE: u64 = 120;
const RULE_BURST: u64 = 5;
const ADDRESSES: usize = 40;
/// Honest pacing takes (41 - 5) x 0.5 s = 18 s; anvil rejections would defer rows for minutes.
const VERIFY_BOUND: Duration = Duration::from_secs(150);

const LOG: &str = "/var/log/postfix-interop.log";

/// Seconds of the day of a log line (`Dec 04 17:56:57 mx ...`).
fn log_second(line: &str) -> Option<u64> {
    let clock = line.split_whitespace().nth(2)?;
    let mut parts = clock.split(':').map(|p| p.parse::<u64>().ok());
    Some(parts.next()?? * 3600 + parts.next()?? * 60 + parts.next()??)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_rate_on_the_wire_is_the_configured_rate_by_postfix_anvil() {
    if !postfix_or_skip(
        ANVIL,
        "the_rate_on_the_wire_is_the_configured_rate_by_postfix_anvil",
    ) {
        return;
    }
    // Sub-addresses of known mailboxes: Postfix accepts every one (recipient_delimiter +).
    let addresses: Vec<String> = (0..ADDRESSES)
        .map(|i| format!("{}+{i}@example.test", ["alice", "bob", "carol"][i % 3]))
        .collect();
    let AnvilRun { log, rows } = verify_against_anvil("anvil", &addresses, &[]).await;

    // Every RCPT the listener saw, by second: no 10 s window holds more than the rule allows
    // (burst + 10 s of rate, one more for the log's whole seconds).
    // Only this test's client address: the egress test runs beside it from 127.0.1.x.
    let rcpt_seconds: Vec<u64> = log
        .lines()
        .filter(|l| l.contains("[127.0.0.1]: RCPT TO:<"))
        .filter_map(log_second)
        .collect();
    assert_eq!(
        rcpt_seconds.len(),
        ADDRESSES + 1,
        "one RCPT per address and the catch-all probe:\n{log}"
    );
    let cap = (RULE_BURST + ANVIL_WINDOW_SECS * RULE_PER_MINUTE / 60 + 2) as usize;
    assert!(
        cap < ANVIL_RCPTS_PER_WINDOW,
        "the rule must be under anvil's limit"
    );
    for start in &rcpt_seconds {
        let in_window = rcpt_seconds
            .iter()
            .filter(|s| **s >= *start && **s < start + ANVIL_WINDOW_SECS)
            .count();
        assert!(
            in_window <= cap,
            "{in_window} RCPTs in the 10 s from second {start} (rule allows {cap})"
        );
    }

    assert_eq!(rows.len(), ADDRESSES, "one row per address");
    for row in &rows {
        assert_eq!(row["status"], "deliverable", "{row}");
    }
}

/// `rollcall verify` arguments for a run against the interop Postfix: `list` to `out` (JSONL)
/// with `config`, DNS from the sim at `dns`, and `extra` flags.
fn verify_args(
    list: &std::path::Path,
    out: &std::path::Path,
    config: &std::path::Path,
    dns: &str,
    extra: &[&str],
) -> Vec<String> {
    let paths = [list, out, config].map(|p| p.display().to_string());
    let [list, out, config] = paths;
    let mut args = vec![list, "-o".into(), out, "--config".into(), config];
    for a in [
        "--dns",
        dns,
        "--format",
        "jsonl",
        "--progress",
        "off",
        "--allow-private",
        "--smtp-port",
        "2525",
        "--helo",
        "interop.rollcall.test",
        "--mail-from",
        "probe@rollcall.test",
        "--connect-timeout",
        "5s",
        "--command-timeout",
        "20s",
    ]
    .iter()
    .chain(extra)
    {
        args.push(a.to_string());
    }
    args
}

/// Runs `rollcall verify` with `args` and waits at most `VERIFY_BOUND`; `None` when it did not
/// end in time (it is killed).
async fn verify_within_bound(args: Vec<String>) -> Option<std::process::ExitStatus> {
    let mut child = Command::new(env!("CARGO_BIN_EXE_rollcall"))
        .arg("verify")
        .arg("--no-cache")
        .args(&args)
        .spawn()
        .expect("rollcall runs");
    let started = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return Some(status);
        }
        if started.elapsed() > VERIFY_BOUND {
            let _ = child.kill();
            let _ = child.wait();
            return None;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The log lines of `listener` (a syslog name) written after `start`.
fn listener_log_since(listener: &str, start: u64) -> String {
    let mut file = std::fs::File::open(LOG).expect("the Postfix log exists");
    file.seek(SeekFrom::Start(start)).unwrap();
    let mut text = String::new();
    file.read_to_string(&mut text).unwrap();
    let tag = format!("postfix/{listener}/");
    text.lines()
        .filter(|l| l.contains(&tag))
        .map(|l| format!("{l}\n"))
        .collect()
}

/// What one `rollcall verify` run against the anvil listener left: the listener's log lines
/// of the run and the output rows.
struct AnvilRun {
    log: String,
    rows: Vec<Value>,
}

/// Verifies `addresses` (of example.test) against the anvil listener with the site rule
/// under test and `extra` flags; asserts that it ended within `VERIFY_BOUND`, successfully,
/// and that anvil rejected nothing (RCPT rate, connection rate, MAIL rate, concurrency).
async fn verify_against_anvil(tag: &str, addresses: &[String], extra: &[&str]) -> AnvilRun {
    let fleet_spec = FLEET.replace("127.0.0.25", "127.0.0.27");
    let spec = FleetSpec::from_toml(&fleet_spec).expect("fleet parses");
    let fleet = rollcall_sim::start(
        &spec,
        SimOptions {
            smtp_port: Some(2525),
            ..SimOptions::default()
        },
    )
    .await
    .expect("fleet (DNS only) starts");
    let dir = std::env::temp_dir().join(format!("rollcall-interop-{tag}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (list, out, config) = (
        dir.join("list.txt"),
        dir.join("out.jsonl"),
        dir.join("c.toml"),
    );
    std::fs::write(&list, addresses.join("\n")).unwrap();
    std::fs::write(
        &config,
        format!(
            "[[shaping.site]]\npattern = \"mx.example.test\"\nrcpt_per_minute = {RULE_PER_MINUTE}\n\
             rcpt_burst = {RULE_BURST}\nrcpt_per_transaction = 20\n"
        ),
    )
    .unwrap();
    let log_start = std::fs::metadata(LOG).map(|m| m.len()).unwrap_or(0);
    let args = verify_args(&list, &out, &config, &fleet.dns_addr().to_string(), extra);
    let started = Instant::now();
    let status = verify_within_bound(args).await;
    eprintln!(
        "{tag}: {} addresses in {:.1}s",
        addresses.len(),
        started.elapsed().as_secs_f64()
    );
    // Postfix writes its log through postlogd: give the last lines a moment.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let log = listener_log_since("interop-anvil", log_start);
    let rejections: Vec<&str> = log
        .lines()
        .filter(|l| {
            l.contains("rate limit exceeded")
                || l.contains("Error: too many")
                || l.contains("Error: too much mail")
        })
        .collect();
    assert!(
        rejections.is_empty(),
        "Postfix's anvil rejected the prober ({} lines), first: {}",
        rejections.len(),
        rejections.first().unwrap_or(&"")
    );
    let status = status.unwrap_or_else(|| {
        panic!("rollcall verify did not end within {VERIFY_BOUND:?}; anvil log:\n{log}")
    });
    assert!(status.success(), "rollcall verify exited with {status}");
    let rows = std::fs::read_to_string(&out)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .collect();
    fleet.shutdown().await;
    let _ = std::fs::remove_dir_all(&dir);
    AnvilRun { log, rows }
}

/// Source addresses of the egress test (all of 127.0.0.0/8 is local on Linux).
const EGRESS_IPS: [&str; 4] = ["127.0.1.1", "127.0.1.2", "127.0.1.3", "127.0.1.4"];
const EGRESS_ADDRESSES: usize = 120;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn four_egress_addresses_each_stay_under_postfix_anvil_and_all_are_used() {
    if !postfix_or_skip(
        ANVIL,
        "four_egress_addresses_each_stay_under_postfix_anvil_and_all_are_used",
    ) {
        return;
    }
    let addresses: Vec<String> = (0..EGRESS_ADDRESSES)
        .map(|i| format!("{}+e{i}@example.test", ["alice", "bob", "carol"][i % 3]))
        .collect();
    let egresses = EGRESS_IPS.join(",");
    // Batches of 20: a 120-address list of one domain makes 6 batches, enough for every
    // egress to have work at once (a real list has thousands of batches per provider).
    let extra = ["--batch-size", "20", "--egress", egresses.as_str()];
    let AnvilRun { log, rows } = verify_against_anvil("egress", &addresses, &extra).await;

    let cap = (RULE_BURST + ANVIL_WINDOW_SECS * RULE_PER_MINUTE / 60 + 2) as usize;
    let mut total = 0;
    for ip in EGRESS_IPS {
        assert!(
            log.contains(&format!("connect from unknown[{ip}]")),
            "Postfix saw no connection from egress {ip}:\n{log}"
        );
        let seconds: Vec<u64> = log
            .lines()
            .filter(|l| l.contains(&format!("[{ip}]: RCPT TO:<")))
            .filter_map(log_second)
            .collect();
        assert!(!seconds.is_empty(), "egress {ip} sent no RCPT");
        total += seconds.len();
        for start in &seconds {
            let in_window = seconds
                .iter()
                .filter(|s| **s >= *start && **s < start + ANVIL_WINDOW_SECS)
                .count();
            assert!(
                in_window <= cap,
                "egress {ip}: {in_window} RCPTs in the 10 s from second {start} (rule allows {cap})"
            );
        }
    }
    assert!(
        total > EGRESS_ADDRESSES,
        "every address and at least one catch-all probe went out: {total}"
    );
    assert_eq!(rows.len(), EGRESS_ADDRESSES, "one row per address");
    for row in &rows {
        assert_eq!(row["status"], "deliverable", "{row}");
    }
}

/// The SOCKS5 proxy of the proxy test: its own port, connecting out from 127.0.0.9.
const SOCKS_PORT: &str = "10805";
const SOCKS_EXIT: &str = "127.0.0.9";

/// Starts Debian's microsocks through the repo's script; false (after a loud notice) when it
/// cannot be had outside CI, a failure in CI.
fn socks_or_skip(test: &str) -> bool {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/socks.sh");
    let ok = Command::new("bash")
        .args([script, "up", SOCKS_PORT, SOCKS_EXIT])
        .status()
        .is_ok_and(|s| s.success());
    if ok {
        return true;
    }
    if std::env::var_os("CI").is_some() {
        panic!("no SOCKS5 proxy on 127.0.0.1:{SOCKS_PORT}; run: bash scripts/socks.sh up");
    }
    eprintln!(
        "\n!!!!!!!! SKIPPED {test}: microsocks could not be started (bash scripts/socks.sh up)\n"
    );
    false
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_socks5_egress_is_what_postfix_sees_with_starttls_and_the_truths_verdicts() {
    let test = "a_socks5_egress_is_what_postfix_sees_with_starttls_and_the_truths_verdicts";
    if !postfix_or_skip(POSTFIX, test) || !socks_or_skip(test) {
        return;
    }
    let spec = FleetSpec::from_toml(FLEET).expect("fleet parses");
    let fleet = rollcall_sim::start(
        &spec,
        SimOptions {
            smtp_port: Some(2525),
            ..SimOptions::default()
        },
    )
    .await
    .expect("fleet (DNS only) starts");
    let dir = std::env::temp_dir().join(format!("rollcall-interop-socks-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (list, out, config) = (
        dir.join("list.txt"),
        dir.join("out.jsonl"),
        dir.join("c.toml"),
    );
    std::fs::write(&list, fleet.addresses().join("\n")).unwrap();
    std::fs::write(
        &config,
        format!(
            "[[egress]]\nname = \"p1\"\nproxy = \"socks5://127.0.0.1:{SOCKS_PORT}\"\n\
             proxy_exit = \"{SOCKS_EXIT}\"\nhelo = \"p1.rollcall.test\"\n"
        ),
    )
    .unwrap();
    let log_start = std::fs::metadata(LOG).map(|m| m.len()).unwrap_or(0);
    let dns = fleet.dns_addr().to_string();
    // The egress's own HELO name wins over the run's --helo.
    let args = verify_args(&list, &out, &config, &dns, &["--tls", "require"]);
    let status = verify_within_bound(args)
        .await
        .expect("rollcall verify ends within its bound");
    assert!(status.success(), "rollcall verify exited with {status}");
    tokio::time::sleep(Duration::from_millis(500)).await;
    let log = listener_log_since("interop-pipelining", log_start);
    assert!(
        log.contains(&format!("connect from unknown[{SOCKS_EXIT}]")),
        "Postfix saw no connection from the proxy's address:\n{log}"
    );
    assert!(
        log.contains(&format!(
            "TLS connection established from unknown[{SOCKS_EXIT}]"
        )),
        "no STARTTLS through the proxy:\n{log}"
    );
    assert!(
        log.contains(&format!("[{SOCKS_EXIT}]: EHLO p1.rollcall.test")),
        "the egress's own HELO name:\n{log}"
    );

    let text = std::fs::read_to_string(&out).unwrap();
    let rows: HashMap<String, Value> = text
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .map(|v| (v["address"].as_str().unwrap_or_default().to_string(), v))
        .collect();
    assert_eq!(rows.len(), fleet.truth().len(), "one row per address");
    for truth in fleet.truth() {
        let row = &rows[&truth.address];
        assert_eq!(
            row["status"],
            name(&truth.status),
            "{}: {row}",
            truth.address
        );
        assert_eq!(
            row["reason"],
            name(&truth.reason),
            "{}: {row}",
            truth.address
        );
    }
    fleet.shutdown().await;
    let _ = std::fs::remove_dir_all(&dir);
}
