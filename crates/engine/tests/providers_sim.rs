//! The embedded engine against the simulator's provider fleet (crates/sim/fleets/providers.toml):
//! hosts named like Yahoo's, Outlook.com's, Microsoft 365 tenants', Google's and iCloud's MX,
//! answering as those providers do. What the provider rules must give: no address the truth
//! says exists is called undeliverable, Yahoo-like domains are never `deliverable`, Outlook.com
//! is verified with one RCPT per transaction without a single `452 4.5.3`, the blocklisted
//! domain is `unknown/blocked`, every deterministic verdict is the truth's, and each row names
//! its provider.

mod sim_run;

use std::path::Path;
use std::time::Duration;

use rollcall_engine::config::EngineConfig;
use rollcall_sim::{FleetSpec, SimOptions};
use sim_run::verify_on_fleet;

fn name<T: serde::Serialize>(value: &T) -> String {
    serde_json::to_value(value)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn provider_rules_give_the_truth_at_the_simulated_providers() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../sim/fleets/providers.toml");
    let spec = FleetSpec::from_file(&path).expect("provider fleet parses");
    let fleet = rollcall_sim::start(&spec, SimOptions::default())
        .await
        .expect("fleet starts");
    // The defaults a user gets (provider shaping included), with the sim's port and a prompt
    // retry schedule.
    let config = EngineConfig {
        helo_name: "verifier.rollcall.test".into(),
        mail_from: "probe@rollcall.test".into(),
        smtp_port: fleet.smtp_port(),
        allow_private_targets: true,
        connect_timeout: Duration::from_secs(2),
        defer_retry: vec![Duration::from_millis(200), Duration::from_millis(400)],
        ..EngineConfig::default()
    };
    let rows: Vec<String> = fleet.addresses().to_vec();
    let (out, _) = verify_on_fleet(&fleet, config, rows.clone()).await;
    assert_eq!(out.len(), rows.len(), "every row comes out exactly once");

    let mut mismatches = Vec::new();
    let mut harmful = Vec::new();
    for (i, truth) in fleet.truth().iter().enumerate() {
        let got = &out[&(i as u64 + 1)].verdict;
        let domain = truth.address.rsplit_once('@').map_or("", |(_, d)| d);
        let (status, reason) = (got.status().as_str(), got.reason().as_str());
        if truth.exists && status == "undeliverable" {
            harmful.push(format!("{}: {status}/{reason}", truth.address));
        }
        if truth.deterministic && (status != name(&truth.status) || reason != name(&truth.reason)) {
            mismatches.push(format!(
                "{}: want {}/{}, got {status}/{reason} {:?} {:?}",
                truth.address,
                name(&truth.status),
                name(&truth.reason),
                got.evidence.smtp_text,
                got.detail
            ));
        }
        let provider = got.evidence.provider.as_deref();
        let expected = match domain {
            "yahoo-mail.test" | "aol-mail.test" => "yahoo",
            "outlook-mail.test" => "outlook_com",
            "tenant-a.test" | "tenant-b.test" => "microsoft365",
            "tenant-c.test" => "self_hosted",
            "workspace.test" | "workspace-catchall.test" => "google_workspace",
            "icloud-mail.test" => "icloud",
            other => panic!("a domain the test does not know: {other}"),
        };
        assert_eq!(provider, Some(expected), "{}", truth.address);
        if expected == "yahoo" {
            assert_ne!(status, "deliverable", "{}", truth.address);
        }
        if domain == "icloud-mail.test" {
            assert_eq!(
                (status, reason),
                ("unknown", "blocked"),
                "{}",
                truth.address
            );
        }
    }
    assert!(
        harmful.is_empty(),
        "addresses that exist called undeliverable:\n{}",
        harmful.join("\n")
    );
    assert!(
        mismatches.is_empty(),
        "verdicts differ from the truth:\n{}",
        mismatches.join("\n")
    );
    // The truth has both sides at each provider (the checks above could not pass vacuously).
    let truth = fleet.truth();
    assert!(truth.iter().any(|t| t.exists) && truth.iter().any(|t| !t.exists));

    let counters = fleet.counters();
    let outlook = &counters.hosts["outlook-com.olc.protection.outlook.com"];
    assert!(outlook.rcpts > 0, "Outlook.com was probed");
    assert_eq!(outlook.too_many_rcpts, 0, "no second RCPT in a transaction");
    assert_eq!(
        outlook.rcpts, outlook.transactions,
        "one RCPT per transaction, each address once (no retry storm)"
    );
    let yahoo_rcpts: u64 = counters
        .hosts
        .iter()
        .filter(|(h, _)| h.ends_with(".yahoodns.net"))
        .map(|(_, c)| c.rcpts)
        .sum();
    let yahoo_rows = truth
        .iter()
        .filter(|t| t.address.ends_with("yahoo-mail.test") || t.address.ends_with("aol-mail.test"))
        .count() as u64;
    assert_eq!(
        yahoo_rcpts, yahoo_rows,
        "no catch-all probe where a 250 proves nothing"
    );
    let t = &counters.totals;
    assert_eq!(t.replies_503, 0, "503 sent by the fleet");
    assert_eq!(t.pipelining_violations, 0);
    assert_eq!(t.data_commands, 0);
    fleet.shutdown().await;
}
