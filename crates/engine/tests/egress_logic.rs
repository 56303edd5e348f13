//! The worker with several egresses, against scripted sessions (no network): each egress has
//! its own session budget at a site, a greylisted address is retried through the egress that
//! was greylisted, an egress whose connections fail at a site leaves the work to the others,
//! and a pin this worker cannot honour is said in the verdict.

use std::sync::Arc;
use std::time::Duration;

use rollcall_core::ports::Batch;
use rollcall_core::{CampaignId, Reason};
use rollcall_engine::config::EngineConfig;
use rollcall_engine::egress::Egress;

mod common;
use common::*;

fn egresses(names: &[&str]) -> Vec<Egress> {
    names
        .iter()
        .enumerate()
        .map(|(i, name)| Egress {
            name: name.to_string(),
            bind: Some(format!("127.0.1.{}", i + 1).parse().unwrap()),
            ..Egress::direct(
                &format!("{name}.prober.test"),
                &format!("v@{name}.prober.test"),
            )
        })
        .collect()
}

/// Every address exists except the catch-all probe's: the domain is not catch-all.
fn known() -> Answer {
    Arc::new(|rcpt: &str, _| {
        if rcpt.starts_with("rc-") {
            (550, "5.1.1", "User unknown")
        } else {
            (250, "2.1.5", "Ok")
        }
    })
}

/// A scripted server answering `answer`, refusing connections through `refuse_from`, blocking
/// RCPTs through `block_from`, each transaction taking `delay`.
fn scripted(
    answer: Answer,
    refuse_from: &[&str],
    block_from: &[&str],
    delay: Duration,
) -> Arc<Script> {
    Arc::new(Script {
        answer,
        refuse_connections: false,
        rcpt_cap: None,
        refuse_from: refuse_from.iter().map(|e| e.to_string()).collect(),
        block_from: block_from.iter().map(|e| e.to_string()).collect(),
        txn_delay: delay,
        seen: std::sync::Mutex::new(Seen::default()),
    })
}

/// A server where every transaction takes 50 ms, so that batches overlap and sessions run
/// side by side.
fn slow(answer: Answer) -> Arc<Script> {
    scripted(answer, &[], &[], Duration::from_millis(50))
}

/// Every address is greylisted on its first ask and accepted after; the catch-all probe's
/// address does not exist.
fn greylisted_once() -> Answer {
    Arc::new(|rcpt: &str, count| {
        if rcpt.starts_with("rc-") {
            (550, "5.1.1", "User unknown")
        } else if count == 1 {
            (450, "4.2.0", "Recipient address rejected: Greylisted")
        } else {
            (250, "2.1.5", "Ok")
        }
    })
}

fn locals(n: usize) -> Vec<String> {
    (0..n).map(|i| format!("user{i}")).collect()
}

/// `count` batches of `size` distinct addresses each at `domain`.
fn batches(campaign: &CampaignId, domain: &str, count: u64, size: usize) -> Vec<Batch> {
    (0..count)
        .map(|i| {
            let mut b = batch(campaign, domain, &locals(size));
            for item in &mut b.items {
                item.item.0 += i * 100;
                item.address = format!("b{i}-{}", item.address).parse().unwrap();
            }
            b
        })
        .collect()
}

fn config_with(names: &[&str]) -> EngineConfig {
    let mut config = config();
    config.egresses = egresses(names);
    config
}

#[tokio::test]
async fn each_egress_has_its_own_session_budget_at_a_site() {
    // One session per (site, egress): with four egresses the site gets four sessions at once,
    // each egress never more than one.
    let mut config = config_with(&["a", "b", "c", "d"]);
    config.shaping.default.max_sessions = 1;
    config.shaping.default.rcpt_per_transaction = 5;
    let s = slow(known());
    // Slow enough that batches overlap: every transaction takes a while at the server.
    let batches = batches(&CampaignId::random(), "example.test", 8, 20);
    let results = run_batches(s.clone(), config, batches).await;
    assert!(
        results
            .iter()
            .all(|r| r.verdict.reason() == Reason::Accepted)
    );
    let seen = s.seen.lock().unwrap();
    for name in ["a", "b", "c", "d"] {
        assert_eq!(
            seen.max_open_via.get(name).copied(),
            Some(1),
            "egress {name}: one session at most, and used: {:?}",
            seen.max_open_via
        );
    }
    assert!(
        seen.transactions.iter().all(|t| t.len() <= 5),
        "a transaction carries at most rcpt_per_transaction"
    );
}

#[tokio::test]
async fn a_site_total_caps_all_egresses_together() {
    let mut config = config_with(&["a", "b", "c", "d"]);
    config.shaping.default.max_sessions = 2;
    config.shaping.default.site_max_sessions = Some(3);
    let s = slow(known());
    let batches = batches(&CampaignId::random(), "example.test", 12, 10);
    let results = run_batches(s.clone(), config, batches).await;
    assert_eq!(results.len(), 120);
    let seen = s.seen.lock().unwrap();
    assert!(
        seen.max_open_total <= 3,
        "{} sessions at once against a site total of 3",
        seen.max_open_total
    );
    assert!(
        seen.max_open_via.values().all(|&n| n <= 2),
        "{:?}",
        seen.max_open_via
    );
    assert!(
        seen.max_open_via.len() >= 2,
        "the work was spread over egresses"
    );
}

#[tokio::test]
async fn a_greylisted_address_is_retried_through_the_egress_that_was_greylisted() {
    // Every address is greylisted on its first ask and accepted after; four egresses share
    // the work, so a retry that went out through any free egress would often change address.
    let config = config_with(&["a", "b", "c", "d"]);
    let s = slow(greylisted_once());
    let batches = batches(&CampaignId::random(), "grey.test", 8, 10);
    let results = run_batches(s.clone(), config, batches).await;
    assert!(
        results
            .iter()
            .all(|r| r.verdict.reason() == Reason::Accepted),
        "every greylisted address passed on its retry"
    );
    let seen = s.seen.lock().unwrap();
    let used: std::collections::HashSet<&String> = seen.via.iter().collect();
    assert!(used.len() >= 2, "the work was spread: {used:?}");
    for result in &results {
        let via = &seen.asked_via[&result.address];
        assert_eq!(via.len(), 2, "{}: asked {via:?}", result.address);
        assert_eq!(
            via[0], via[1],
            "{} was retried through another egress",
            result.address
        );
    }
}

#[tokio::test]
async fn an_egress_refused_at_a_site_leaves_the_work_to_the_others() {
    // The server refuses connections from egress `a` only; its circuit there opens at the
    // first failure, and the work goes out through `b` without using up attempts.
    let mut config = config_with(&["a", "b"]);
    config.shaping.default.backoff.failures_to_open = 1;
    config.shaping.default.backoff.base = Duration::from_secs(60);
    let s = scripted(known(), &["a"], &[], Duration::ZERO);
    let batches = batches(&CampaignId::random(), "example.test", 6, 5);
    let results = run_batches(s.clone(), config, batches).await;
    assert!(
        results
            .iter()
            .all(|r| r.verdict.reason() == Reason::Accepted),
        "{:?}",
        results
            .iter()
            .map(|r| (r.address.clone(), r.verdict.reason()))
            .collect::<Vec<_>>()
    );
    let seen = s.seen.lock().unwrap();
    let tried_a = seen.connects_via.iter().filter(|e| *e == "a").count();
    assert!(
        tried_a <= 2,
        "egress a was tried {tried_a} times although its circuit was open"
    );
    assert!(seen.via.iter().all(|e| e == "b"));
}

#[tokio::test]
async fn a_pin_this_worker_cannot_honour_is_said_in_the_verdict() {
    // The retry was greylisted via `gone`, which this worker does not have: it goes out via
    // one of this worker's egresses, is greylisted anew there, and passes on the next retry;
    // the final verdict still says what happened.
    let config = config_with(&["a", "b"]);
    let s = script(greylisted_once());
    let mut pinned = batch(&CampaignId::random(), "example.test", &locals(3));
    pinned.egress = Some("gone".to_string());
    let results = run_batches(s.clone(), config, vec![pinned]).await;
    let seen = s.seen.lock().unwrap();
    for result in &results {
        assert_eq!(result.verdict.reason(), Reason::Accepted);
        assert_eq!(seen.asked_via[&result.address].len(), 2, "greylisted anew");
        let detail = result.verdict.detail.clone().unwrap_or_default();
        assert!(
            detail.contains("greylisted via egress `gone`, which this worker does not have"),
            "{detail}"
        );
    }
}

#[tokio::test]
async fn a_greylist_retry_is_scheduled_pinned_to_the_egress_that_was_greylisted() {
    use rollcall_core::ports::{MemoryQueue, MemoryState, StateStore, WorkQueue};
    use rollcall_engine::WorkerMetrics;
    use rollcall_engine::worker::Worker;
    use std::time::SystemTime;

    // The server greylists everything; the retry is ten minutes away, so every batch sits in
    // the schedule, where its pin can be read.
    let mut config = config_with(&["a", "b", "c", "d"]);
    config.greylist_retry = vec![Duration::from_secs(600)];
    config.max_wait = None;
    let s = slow(Arc::new(|rcpt: &str, _| {
        if rcpt.starts_with("rc-") {
            (550, "5.1.1", "User unknown")
        } else {
            (450, "4.2.0", "Recipient address rejected: Greylisted")
        }
    }));
    let queue = Arc::new(MemoryQueue::new());
    let state = Arc::new(MemoryState::new());
    let campaign = CampaignId::random();
    for i in 0..8u64 {
        let mut b = batch(&campaign, "grey.test", &locals(5));
        for item in &mut b.items {
            item.item.0 += i * 100;
            item.address = format!("b{i}-{}", item.address).parse().unwrap();
        }
        queue.publish(&b).await.unwrap();
    }
    let worker = Worker {
        id: "test".into(),
        queue: queue.clone(),
        state: state.clone(),
        connector: Arc::new(ScriptConnector(s.clone())),
        config: Arc::new(config),
        metrics: Arc::new(WorkerMetrics::default()),
    };
    let (stop_tx, stop) = tokio::sync::watch::channel(false);
    let task = tokio::spawn(async move { worker.run(stop).await });
    for _ in 0..2_000 {
        if state.greylist_pending().await.unwrap() == 8 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    stop_tx.send(true).unwrap();
    task.await.unwrap().unwrap();
    let due = state
        .greylist_take_due(SystemTime::now() + Duration::from_secs(601), 100)
        .await
        .unwrap();
    assert_eq!(due.len(), 8, "every batch waits for its retry");
    let seen = s.seen.lock().unwrap();
    let pins: std::collections::HashSet<String> =
        due.iter().filter_map(|e| e.batch.egress.clone()).collect();
    assert!(pins.len() >= 2, "the first tries were spread: {pins:?}");
    for entry in &due {
        let pin = entry.batch.egress.as_deref().expect("the retry is pinned");
        for item in &entry.batch.items {
            assert_eq!(
                seen.asked_via[&item.address.to_string()],
                vec![pin.to_string()],
                "{} was greylisted via another egress than its pin",
                item.address
            );
        }
    }
}

#[tokio::test]
async fn a_pinned_batch_goes_out_only_through_its_egress() {
    // The retry pinned to `d` is first in the queue; new sessions start at `a`, so without
    // the pin it would go out through `a`.
    let config = config_with(&["a", "b", "c", "d"]);
    let s = slow(known());
    let campaign = CampaignId::random();
    let mut pinned = batch(&campaign, "example.test", &locals(5));
    pinned.egress = Some("d".to_string());
    let mut batches = vec![pinned];
    for i in 1..6u64 {
        let mut b = batch(&campaign, "example.test", &locals(5));
        for item in &mut b.items {
            item.item.0 += i * 100;
            item.address = format!("b{i}-{}", item.address).parse().unwrap();
        }
        batches.push(b);
    }
    let results = run_batches(s.clone(), config, batches).await;
    assert!(
        results
            .iter()
            .all(|r| r.verdict.reason() == Reason::Accepted)
    );
    let seen = s.seen.lock().unwrap();
    for local in locals(5) {
        let address = format!("{local}@example.test");
        assert_eq!(seen.asked_via[&address], vec!["d".to_string()], "{address}");
    }
    assert!(
        results.iter().all(|r| r.verdict.detail.is_none()),
        "an honoured pin adds nothing to the verdict"
    );
}

#[tokio::test]
async fn the_mail_rate_paces_transactions_per_egress() {
    // Postfix's anvil counts MAIL commands per client address (`too much mail from`): with a
    // MAIL rate of 120/min (burst 1) per egress, no second of any egress holds more than
    // burst + rate + 1 transactions, although two RCPTs per transaction would otherwise let
    // every transaction out at once.
    let mut config = config_with(&["a", "b"]);
    config.shaping.default.rcpt_per_transaction = 2;
    config.shaping.default.mail_rate = Some(rollcall_core::ports::RateLimit {
        per_minute: 120,
        burst: 1,
    });
    let s = script(known());
    let results = run_batches(
        s.clone(),
        config,
        batches(&CampaignId::random(), "example.test", 2, 12),
    )
    .await;
    assert!(
        results
            .iter()
            .all(|r| r.verdict.reason() == Reason::Accepted)
    );
    let seen = s.seen.lock().unwrap();
    assert!(seen.transactions.len() >= 12, "{}", seen.transactions.len());
    for egress in ["a", "b"] {
        let at: Vec<_> = seen
            .at
            .iter()
            .zip(&seen.via)
            .filter(|(_, via)| *via == egress)
            .map(|(at, _)| *at)
            .collect();
        for (i, start) in at.iter().enumerate() {
            let in_window = at[i..]
                .iter()
                .filter(|t| t.duration_since(*start) < Duration::from_secs(1))
                .count();
            assert!(
                in_window <= 4,
                "egress {egress}: {in_window} transactions within 1 s"
            );
        }
    }
}

#[tokio::test]
async fn a_block_of_one_egress_is_no_verdict_another_egress_tries() {
    // The server has egress `a`'s address on a blocklist (554 5.7.1 ... blocked using ...):
    // that says nothing about the mailboxes, so the addresses are tried through `b`, which
    // gets the real answers; `a` is held off at the site.
    let mut config = config_with(&["a", "b"]);
    config.shaping.default.max_sessions = 1;
    let s = scripted(known(), &[], &["a"], Duration::ZERO);
    let results = run_batches(
        s.clone(),
        config,
        batches(&CampaignId::random(), "example.test", 4, 5),
    )
    .await;
    assert!(
        results
            .iter()
            .all(|r| r.verdict.reason() == Reason::Accepted),
        "{:?}",
        results
            .iter()
            .map(|r| (r.address.clone(), r.verdict.reason()))
            .collect::<Vec<_>>()
    );
    assert!(
        results
            .iter()
            .all(|r| r.verdict.evidence.egress.as_deref() == Some("b"))
    );
}

#[tokio::test]
async fn an_address_blocked_through_every_egress_is_unknown_blocked_and_says_where() {
    let config = config_with(&["a", "b"]);
    let s = scripted(known(), &[], &["a", "b"], Duration::ZERO);
    let results = run_batches(
        s.clone(),
        config,
        batches(&CampaignId::random(), "example.test", 1, 3),
    )
    .await;
    let seen = s.seen.lock().unwrap();
    for result in &results {
        assert_eq!(result.verdict.reason(), Reason::Blocked);
        let detail = result.verdict.detail.clone().unwrap_or_default();
        assert!(detail.contains("also blocked via egress"), "{detail}");
        let mut via = seen.asked_via[&result.address].clone();
        via.sort();
        via.dedup();
        assert_eq!(via, ["a", "b"], "tried through both, then settled");
    }
}

#[tokio::test]
async fn a_retry_pinned_to_a_blocked_egress_moves_to_another() {
    // A greylist retry pinned to `a`, whose address the server now blocks: the pin does not
    // hold it there; `b` gets the real answer.
    let config = config_with(&["a", "b"]);
    let s = scripted(known(), &[], &["a"], Duration::ZERO);
    let mut pinned = batch(&CampaignId::random(), "example.test", &locals(3));
    pinned.egress = Some("a".to_string());
    let results = run_batches(s.clone(), config, vec![pinned]).await;
    for result in &results {
        assert_eq!(result.verdict.reason(), Reason::Accepted, "{result:?}");
        assert_eq!(result.verdict.evidence.egress.as_deref(), Some("b"));
    }
}
