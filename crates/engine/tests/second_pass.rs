//! The second pass against a throttling server: a host that answers `451 4.7.500 Server busy`
//! past a few RCPTs per window leaves addresses `unknown/deferred` once their retries are used
//! up; trying them once more later in the run, after the server's window, leaves fewer unknown.
//! Every row still comes out exactly once.

mod sim_run;

use std::collections::HashMap;
use std::time::Duration;

use rollcall_engine::config::EngineConfig;
use rollcall_engine::coordinator::OutputRow;
use rollcall_engine::summary::Summary;
use rollcall_sim::{FleetSpec, SimOptions};
use sim_run::verify_on_fleet;

fn fleet_spec() -> FleetSpec {
    let mut text = String::from(
        r#"
[fleet]
address_base = "127.26.0.0"

[profiles.busy]
rcpt_rate_per_ip = 6
rate_window_ms = 1500
rate_reply = "451 4.7.500 Server busy. Please try again later from [{ip}]. (S77714) [{host}]"

[[host]]
name = "mx.busy.test"
profile = "busy"

[[site]]
name = "busy"
mx = [{ host = "mx.busy.test", preference = 0 }]

[[domain]]
name = "busy.test"
site = "busy"
[domain.mailboxes]
"#,
    );
    for i in 0..40 {
        text.push_str(&format!("\"user{i:02}\" = \"valid\"\n"));
    }
    FleetSpec::from_toml(&text).expect("fleet parses")
}

/// Verifies the fleet's list with `second_pass`; the rows by row number and the summary.
async fn verify(second_pass: Option<Duration>) -> (HashMap<u64, OutputRow<()>>, Summary, usize) {
    let fleet = rollcall_sim::start(&fleet_spec(), SimOptions::default())
        .await
        .expect("fleet starts");
    let mut config = EngineConfig {
        helo_name: "verifier.rollcall.test".into(),
        mail_from: "probe@rollcall.test".into(),
        smtp_port: fleet.smtp_port(),
        allow_private_targets: true,
        defer_retry: vec![Duration::from_millis(100)],
        max_wait: Some(Duration::from_millis(300)),
        second_pass,
        ..EngineConfig::default()
    };
    // Faster than the server allows, so it throttles.
    config.shaping.default.rcpt_rate.per_minute = 60_000;
    config.shaping.default.rcpt_rate.burst = 50;
    config.shaping.default.backoff.base = Duration::from_millis(50);
    config.shaping.default.backoff.max = Duration::from_millis(100);
    let mut rows: Vec<String> = fleet.addresses().to_vec();
    // The last address twice: the duplicate comes out once, with its first row's verdict.
    rows.push(rows[rows.len() - 1].clone());
    let listed = rows.len();
    let (out, summary) = verify_on_fleet(&fleet, config, rows).await;
    assert!(
        fleet.counters().totals.rate_limited > 0,
        "the server throttled"
    );
    fleet.shutdown().await;
    (out, summary, listed)
}

fn unknown(out: &HashMap<u64, OutputRow<()>>) -> usize {
    out.values()
        .filter(|r| r.verdict.status().as_str() == "unknown")
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_pass_leaves_fewer_unknown_after_a_throttle() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let (once, summary_once, listed) = verify(None).await;
    assert_eq!(once.len(), listed, "every row once");
    assert_eq!(summary_once.duplicates, 1);
    assert_eq!(summary_once.second_pass, 0);
    let before = unknown(&once);
    assert!(before > 0, "the throttle left addresses unknown");
    assert_eq!(
        summary_once.unknown_by["self_hosted"]
            .get("deferred")
            .copied(),
        Some(before as u64),
        "the summary puts the unknowns at their provider and reason"
    );

    let (twice, summary_twice, _) = verify(Some(Duration::from_millis(1600))).await;
    assert_eq!(
        twice.len(),
        listed,
        "every row once, the second tries included"
    );
    assert_eq!(summary_twice.duplicates, 1);
    let (last, duplicate) = (&twice[&(listed as u64 - 1)], &twice[&(listed as u64)]);
    assert!(duplicate.duplicate);
    assert_eq!(duplicate.verdict.reason(), last.verdict.reason());
    assert!(summary_twice.second_pass > 0);
    let after = unknown(&twice);
    assert!(
        after < before,
        "the second pass left {after} unknown of {listed}, without it {before}"
    );
    // Whatever the verdicts, each is the mailbox's or an honest unknown: never undeliverable.
    assert!(
        twice
            .values()
            .all(|r| r.verdict.status().as_str() != "undeliverable")
    );
}
