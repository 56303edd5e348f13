//! The worker's decisions, against scripted sessions (no network): transaction sizes under the
//! error budget, catch-all, greylisting, `452 4.5.3`, connection failures. The wire itself is
//! tested in `rollcall-smtp` and end to end against the simulated fleet.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use rollcall_core::ports::{
    MAX_BATCH_HOST_ADDRS, MAX_BATCH_MX_HOSTS, MemoryQueue, MemoryState, MxHost, StateStore,
    WorkQueue,
};
use rollcall_core::{CampaignId, Reason};
use rollcall_engine::WorkerMetrics;
use rollcall_engine::config::EngineConfig;
use rollcall_engine::probe::{Connector, ProbeFailure, ProbeSession};
use rollcall_engine::worker::Worker;
use tokio::sync::watch;

mod common;
use common::*;

#[tokio::test]
async fn transactions_never_risk_the_servers_error_limit() {
    // Every other address is unknown: a careless client would collect 25 errors in one session.
    let locals: Vec<String> = (0..50).map(|i| format!("user{i}")).collect();
    let s = script(Arc::new(|rcpt: &str, _| {
        let n: u32 = rcpt
            .trim_start_matches("user")
            .split('@')
            .next()
            .and_then(|n| n.parse().ok())
            .unwrap_or(1);
        if rcpt.starts_with("rc-") || n % 2 == 1 {
            (550, "5.1.1", "User unknown in virtual mailbox table")
        } else {
            (250, "2.1.5", "Ok")
        }
    }));
    let reasons = run(
        s.clone(),
        config(),
        batch(&CampaignId::random(), "example.test", &locals),
    )
    .await;
    for (i, local) in locals.iter().enumerate() {
        let expected = if i % 2 == 1 {
            Reason::MailboxNotFound
        } else {
            Reason::Accepted
        };
        assert_eq!(
            reasons[&format!("{local}@example.test")],
            expected,
            "{local}"
        );
    }
    let seen = s.seen.lock().unwrap();
    // Postfix answers the 21st error with 421: no session may ever reach 20 errors.
    assert!(
        seen.max_rejected_per_session < 20,
        "{}",
        seen.max_rejected_per_session
    );
    assert!(seen.transactions.iter().all(|t| t.len() <= 19));
    assert!(seen.sessions >= 2, "sessions retire after 8 rejected RCPTs");
}

#[tokio::test]
async fn catch_all_domain_makes_accepted_addresses_risky() {
    let locals: Vec<String> = (0..5).map(|i| format!("person{i}")).collect();
    let s = script(Arc::new(|_: &str, _| (250, "2.1.5", "Ok")));
    let reasons = run(
        s.clone(),
        config(),
        batch(&CampaignId::random(), "catchall.test", &locals),
    )
    .await;
    assert!(
        reasons.values().all(|r| *r == Reason::CatchAll),
        "{reasons:?}"
    );
    let seen = s.seen.lock().unwrap();
    // The probe rode in the same transaction as the real recipients.
    assert_eq!(seen.transactions.len(), 1);
    assert!(seen.transactions[0][0].starts_with("rc-"));
}

#[tokio::test]
async fn greylisted_addresses_are_retried_then_accepted() {
    let locals = vec!["alice".to_string(), "bob".to_string()];
    let s = script(Arc::new(|rcpt: &str, asked| {
        if rcpt.starts_with("rc-") {
            (550, "5.1.1", "User unknown")
        } else if asked == 1 {
            (450, "4.2.0", "Recipient address rejected: Greylisted")
        } else {
            (250, "2.1.5", "Ok")
        }
    }));
    let reasons = run(
        s.clone(),
        config(),
        batch(&CampaignId::random(), "grey.test", &locals),
    )
    .await;
    assert_eq!(reasons["alice@grey.test"], Reason::Accepted);
    assert_eq!(reasons["bob@grey.test"], Reason::Accepted);
    assert_eq!(s.seen.lock().unwrap().asked["alice@grey.test"], 2);
}

#[tokio::test]
async fn greylisting_that_never_ends_is_unknown_greylisted() {
    let s = script(Arc::new(|_: &str, _| {
        (450, "4.2.0", "Greylisted, try again later")
    }));
    let reasons = run(
        s.clone(),
        config(),
        batch(&CampaignId::random(), "grey.test", &["carol".to_string()]),
    )
    .await;
    assert_eq!(reasons["carol@grey.test"], Reason::Greylisted);
    // The first try and one per configured retry delay.
    assert_eq!(s.seen.lock().unwrap().asked["carol@grey.test"], 3);
}

#[tokio::test]
async fn too_many_recipients_shrinks_the_transaction_and_loses_nothing() {
    let locals: Vec<String> = (0..12).map(|i| format!("u{i}")).collect();
    let s = Arc::new(Script {
        answer: Arc::new(|rcpt: &str, _| {
            if rcpt.starts_with("rc-") {
                (550, "5.1.1", "User unknown")
            } else {
                (250, "2.1.5", "Ok")
            }
        }),
        refuse_connections: false,
        rcpt_cap: Some(4),
        refuse_from: Vec::new(),
        block_from: Vec::new(),
        txn_delay: std::time::Duration::ZERO,
        seen: Mutex::new(Seen::default()),
    });
    let mut config = config();
    config.shaping.default.rcpt_per_transaction = 10;
    let reasons = run(
        s.clone(),
        config,
        batch(&CampaignId::random(), "small.test", &locals),
    )
    .await;
    assert!(
        reasons.values().all(|r| *r == Reason::Accepted),
        "{reasons:?}"
    );
    let seen = s.seen.lock().unwrap();
    assert!(
        seen.transactions[0].len() > 4,
        "the first transaction tried the site's limit"
    );
    // After the 452 the transactions carry at most what the server took.
    assert!(
        seen.transactions.iter().skip(1).all(|t| t.len() <= 4),
        "{:?}",
        seen.transactions
    );
}

#[tokio::test]
async fn unreachable_host_is_retried_then_connection_failed() {
    let s = Arc::new(Script {
        answer: Arc::new(|_: &str, _| (250, "2.1.5", "Ok")),
        refuse_connections: true,
        rcpt_cap: None,
        refuse_from: Vec::new(),
        block_from: Vec::new(),
        txn_delay: std::time::Duration::ZERO,
        seen: Mutex::new(Seen::default()),
    });
    let mut config = config();
    // Keep the circuit out of the way: this test is about the retry schedule.
    config.shaping.default.backoff.failures_to_open = 100;
    let reasons = run(
        s,
        config,
        batch(&CampaignId::random(), "down.test", &["dave".to_string()]),
    )
    .await;
    assert_eq!(reasons["dave@down.test"], Reason::ConnectionFailed);
}

#[tokio::test]
async fn a_batch_naming_hundreds_of_hosts_and_addresses_is_tried_within_bounds() {
    // A batch is read from a queue: whoever can write there can list 100 MX hosts of 50
    // addresses each. A worker tries at most 32 hosts and 16 addresses of each.
    let s = Arc::new(Script {
        answer: Arc::new(|_: &str, _| (250, "2.1.5", "Ok")),
        refuse_connections: true,
        rcpt_cap: None,
        refuse_from: Vec::new(),
        block_from: Vec::new(),
        txn_delay: std::time::Duration::ZERO,
        seen: Mutex::new(Seen::default()),
    });
    let mut config = config();
    config.shaping.default.backoff.failures_to_open = 100_000;
    let mut b = batch(&CampaignId::random(), "wide.test", &["erin".to_string()]);
    b.mx = (0..100u8)
        .map(|h| MxHost {
            name: format!("mx{h}.wide.test"),
            addrs: (0..50u8)
                .map(|a| IpAddr::V4(Ipv4Addr::new(127, 1, h, a + 1)))
                .collect(),
        })
        .collect();
    let reasons = run(s.clone(), config, b).await;
    assert_eq!(reasons["erin@wide.test"], Reason::ConnectionFailed);
    let seen = s.seen.lock().unwrap();
    let mut per_host: HashMap<&str, std::collections::HashSet<SocketAddr>> = HashMap::new();
    for (host, addr) in &seen.connects {
        per_host.entry(host).or_default().insert(*addr);
    }
    assert_eq!(per_host.len(), MAX_BATCH_MX_HOSTS);
    assert!(per_host.contains_key("mx0.wide.test") && !per_host.contains_key("mx32.wide.test"));
    for addrs in per_host.values() {
        assert_eq!(addrs.len(), MAX_BATCH_HOST_ADDRS);
    }
}

#[tokio::test]
async fn too_many_recipients_for_every_rcpt_ends_deferred_not_in_a_loop() {
    // A misbehaving server: `452 4.5.3` even for a single recipient.
    let s = Arc::new(Script {
        answer: Arc::new(|_: &str, _| (250, "2.1.5", "Ok")),
        refuse_connections: false,
        rcpt_cap: Some(0),
        refuse_from: Vec::new(),
        block_from: Vec::new(),
        txn_delay: std::time::Duration::ZERO,
        seen: Mutex::new(Seen::default()),
    });
    let reasons = run(
        s.clone(),
        config(),
        batch(&CampaignId::random(), "stingy.test", &["erin".to_string()]),
    )
    .await;
    assert_eq!(reasons["erin@stingy.test"], Reason::Deferred);
    // Shrinking stops at one RCPT per transaction; from there each try uses an attempt.
    let seen = s.seen.lock().unwrap();
    assert!(seen.transactions.len() <= 10, "{}", seen.transactions.len());
}

#[tokio::test]
async fn rcpts_on_the_wire_never_exceed_the_configured_rate() {
    // 20 RCPTs per transaction against a rate of 600/min with a burst of 5: a transaction that
    // paid 5 cells for 20 RCPTs sent 4x the rate (the wire-rate bug).
    let mut config = config();
    config.shaping.default.rcpt_rate.per_minute = 600;
    config.shaping.default.rcpt_rate.burst = 5;
    config.shaping.default.rcpt_per_transaction = 20;
    let locals: Vec<String> = (0..40).map(|i| format!("user{i}")).collect();
    let s = script(Arc::new(|rcpt: &str, _| {
        if rcpt.starts_with("rc-") {
            (550, "5.1.1", "User unknown")
        } else {
            (250, "2.1.5", "Ok")
        }
    }));
    let reasons = run(
        s.clone(),
        config,
        batch(&CampaignId::random(), "example.test", &locals),
    )
    .await;
    assert!(
        reasons.values().all(|r| *r == Reason::Accepted),
        "{reasons:?}"
    );
    let seen = s.seen.lock().unwrap();
    let sizes: Vec<usize> = seen.transactions.iter().map(Vec::len).collect();
    assert!(
        sizes.iter().all(|n| *n <= 5),
        "a transaction carried more RCPTs than the burst: {sizes:?}"
    );
    assert_eq!(
        sizes.iter().sum::<usize>(),
        41,
        "40 addresses and the probe"
    );
    // GCRA: in any window of length W at most burst + W / T cells (T = 100 ms); one cell of
    // slack for the time between the grant and the fake's clock reading.
    let window = Duration::from_secs(1);
    let cap = 5 + 10 + 1;
    for (i, start) in seen.at.iter().enumerate() {
        let in_window: usize = seen.at[i..]
            .iter()
            .zip(&sizes[i..])
            .take_while(|(at, _)| at.duration_since(*start) < window)
            .map(|(_, n)| n)
            .sum();
        assert!(
            in_window <= cap,
            "{in_window} RCPTs within 1 s from transaction {i} (cap {cap}): {sizes:?}"
        );
    }
}

/// A connector whose every connection fails with `failure`, counting the attempts.
struct FailingConnector {
    failure: ProbeFailure,
    attempts: Arc<Mutex<u32>>,
}

#[async_trait]
impl Connector for FailingConnector {
    async fn connect(
        &self,
        _egress: &rollcall_engine::egress::Egress,
        _host: &str,
        _addr: SocketAddr,
    ) -> Result<Box<dyn ProbeSession>, ProbeFailure> {
        *self.attempts.lock().unwrap() += 1;
        Err(self.failure.clone())
    }
}

/// Runs one single-address batch against a connector that always fails; the verdict, its
/// detail and how many connections were tried.
async fn run_failing(failure: ProbeFailure, config: EngineConfig) -> (Reason, String, u32) {
    run_failing_batch(failure, config, None).await
}

/// `run_failing` with the campaign's own max wait on the batch.
async fn run_failing_batch(
    failure: ProbeFailure,
    config: EngineConfig,
    max_wait_ms: Option<u64>,
) -> (Reason, String, u32) {
    let queue = Arc::new(MemoryQueue::new());
    let state = Arc::new(MemoryState::new());
    let campaign = CampaignId::random();
    let mut batch = batch(&campaign, "broken.test", &["alice".to_string()]);
    batch.max_wait_ms = max_wait_ms;
    state.campaign_add_total(&campaign, 1).await.unwrap();
    queue.publish(&batch).await.unwrap();
    let attempts = Arc::new(Mutex::new(0));
    let worker = Worker {
        id: "test".into(),
        queue: queue.clone(),
        state: state.clone(),
        connector: Arc::new(FailingConnector {
            failure,
            attempts: attempts.clone(),
        }),
        config: Arc::new(config),
        metrics: Arc::new(WorkerMetrics::default()),
    };
    let (_stop_tx, stop) = watch::channel(false);
    let task = tokio::spawn(async move { worker.run(stop).await });
    for _ in 0..2_000 {
        if state.progress(&campaign).await.unwrap().done == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    queue.close();
    task.await.unwrap().unwrap();
    let (results, _) = state.results_since(&campaign, 0, 10).await.unwrap();
    let result = results.first().expect("the address has its verdict");
    let attempts = *attempts.lock().unwrap();
    (
        result.verdict.reason(),
        result.verdict.detail.clone().unwrap_or_default(),
        attempts,
    )
}

#[tokio::test]
async fn a_retry_past_the_max_wait_is_not_made_and_the_verdict_says_why() {
    // The shipped defer schedule (1m, 5m, 15m) with a max wait of 1 s: the first retry would
    // come after it, so the address ends at once, with the reason it was waiting for.
    let mut config = config();
    config.defer_retry = EngineConfig::default().defer_retry;
    config.max_wait = Some(Duration::from_secs(1));
    let (reason, detail, attempts) = run_failing(
        ProbeFailure::ConnectionFailed("127.0.0.1:25: refused".into()),
        config,
    )
    .await;
    assert_eq!(reason, Reason::ConnectionFailed);
    assert_eq!(attempts, 1, "no retry was made");
    assert!(
        detail.contains("max wait (1s)") && detail.contains("in 1m"),
        "{detail}"
    );
}

#[tokio::test]
async fn retries_follow_the_schedule_within_the_max_wait() {
    let mut config = config();
    config.defer_retry = vec![Duration::from_millis(20); 3];
    config.max_wait = Some(Duration::from_secs(600));
    let (reason, detail, attempts) =
        run_failing(ProbeFailure::ConnectionFailed("refused".into()), config).await;
    assert_eq!(reason, Reason::ConnectionFailed);
    assert_eq!(attempts, 4, "the first try and three retries");
    assert!(!detail.contains("max wait"), "{detail}");
}

#[tokio::test]
async fn only_what_can_change_is_retried() {
    let mut config = config();
    config.defer_retry = vec![Duration::from_millis(20); 3];
    // A server that speaks garbage: one more try, not the whole schedule.
    let (reason, _, attempts) = run_failing(
        ProbeFailure::Protocol("malformed reply".into()),
        config.clone(),
    )
    .await;
    assert_eq!((reason, attempts), (Reason::ProtocolError, 2));
    // A 554 greeting (a block of the prober): no retry, and never "connection failed".
    let (reason, _, attempts) = run_failing(
        ProbeFailure::Blocked("greeting refused: 554 no service".into()),
        config.clone(),
    )
    .await;
    assert_eq!((reason, attempts), (Reason::Blocked, 1));
    // A 421 greeting: temporary, the whole schedule, then `deferred`.
    let (reason, _, attempts) = run_failing(
        ProbeFailure::Temporary("greeting refused: 421 try later".into()),
        config,
    )
    .await;
    assert_eq!((reason, attempts), (Reason::Deferred, 4));
}

#[tokio::test]
async fn a_batch_aimed_at_a_private_address_is_refused_before_any_connection() {
    // A batch written into the queue by someone else, naming an RFC 1918 MX address: the
    // worker checks the target policy itself (SSRF), whatever the coordinator did.
    let mut config = config();
    config.allow_private_targets = false;
    let s = script(Arc::new(|_: &str, _| (250, "2.1.5", "Ok")));
    let mut b = batch(
        &CampaignId::random(),
        "example.test",
        &["alice".to_string()],
    );
    b.mx[0].addrs = vec![IpAddr::V4(Ipv4Addr::new(10, 0, 0, 7))];
    let reasons = run(s.clone(), config, b).await;
    assert_eq!(reasons["alice@example.test"], Reason::ForbiddenTarget);
    assert_eq!(s.seen.lock().unwrap().sessions, 0, "no connection was made");
}

#[tokio::test]
async fn a_campaigns_own_max_wait_wins_over_the_workers() {
    let refused = || ProbeFailure::ConnectionFailed("refused".into());
    // The worker allows 10 minutes; the campaign 1 s: the 1-minute retry is not made.
    let mut patient = config();
    patient.defer_retry = EngineConfig::default().defer_retry;
    patient.max_wait = Some(Duration::from_secs(600));
    let (_, detail, attempts) = run_failing_batch(refused(), patient, Some(1_000)).await;
    assert_eq!(attempts, 1);
    assert!(detail.contains("max wait (1s)"), "{detail}");
    // The worker allows 1 ms; the campaign none (0): the whole short schedule runs.
    let mut hasty = config();
    hasty.defer_retry = vec![Duration::from_millis(20); 3];
    hasty.max_wait = Some(Duration::from_millis(1));
    let (_, detail, attempts) = run_failing_batch(refused(), hasty, Some(0)).await;
    assert_eq!(attempts, 4, "{detail}");
}
