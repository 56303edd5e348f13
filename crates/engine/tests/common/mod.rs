//! A scripted SMTP world for the worker's tests (no network): a connector that records every
//! connection and transaction (with the egress it went through) and answers RCPTs from a
//! function, and helpers that run batches through a worker.
#![allow(dead_code)]

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use rollcall_core::ports::{
    Batch, BatchItem, ItemResult, MemoryQueue, MemoryState, MxHost, StateStore, WorkQueue,
};
use rollcall_core::{CampaignId, EnhancedCode, ItemId, Reason};
use rollcall_engine::WorkerMetrics;
use rollcall_engine::config::EngineConfig;
use rollcall_engine::egress::Egress;
use rollcall_engine::probe::{
    Connector, Mailbox, ProbeFailure, ProbeSession, RecipientOutcome, Reply, TransactionOutcome,
};
use rollcall_engine::worker::Worker;
use tokio::sync::watch;

pub type Answer = Arc<dyn Fn(&str, u32) -> (u16, &'static str, &'static str) + Send + Sync>;

/// What the scripted server saw.
#[derive(Default)]
pub struct Seen {
    /// RCPTs of each transaction, in order.
    pub transactions: Vec<Vec<String>>,
    /// When each transaction reached the server.
    pub at: Vec<Instant>,
    pub sessions: u32,
    /// Most rejected RCPTs any one session collected.
    pub max_rejected_per_session: u32,
    /// How often each address was asked.
    pub asked: HashMap<String, u32>,
    /// Every connection attempt: MX host and address.
    pub connects: Vec<(String, SocketAddr)>,
    /// The egress of each connection attempt, in order.
    pub connects_via: Vec<String>,
    /// The egress of each transaction (same order as `transactions`).
    pub via: Vec<String>,
    /// Every egress each address was asked through, in order.
    pub asked_via: HashMap<String, Vec<String>>,
    /// Sessions open now, and the most ever open at once, per egress.
    pub open_via: HashMap<String, u32>,
    pub max_open_via: HashMap<String, u32>,
    /// Sessions open now through any egress, and the most ever open at once.
    pub open_total: u32,
    pub max_open_total: u32,
}

pub struct Script {
    pub answer: Answer,
    pub refuse_connections: bool,
    /// RCPTs past this many in one transaction get `452 4.5.3` (RFC 5321 4.5.3.1.8).
    pub rcpt_cap: Option<usize>,
    /// Connections through these egresses are refused (a server that blocks one address).
    pub refuse_from: Vec<String>,
    /// RCPTs through these egresses get a policy block of the client address (the address
    /// is on a blocklist).
    pub block_from: Vec<String>,
    /// How long each transaction takes at the server (so that sessions overlap).
    pub txn_delay: Duration,
    pub seen: Mutex<Seen>,
}

pub struct ScriptConnector(pub Arc<Script>);

#[async_trait]
impl Connector for ScriptConnector {
    async fn connect(
        &self,
        egress: &Egress,
        host: &str,
        addr: SocketAddr,
    ) -> Result<Box<dyn ProbeSession>, ProbeFailure> {
        let mut seen = self.0.seen.lock().unwrap();
        seen.connects.push((host.to_string(), addr));
        seen.connects_via.push(egress.name.clone());
        if self.0.refuse_connections || self.0.refuse_from.contains(&egress.name) {
            return Err(ProbeFailure::ConnectionFailed(format!("{addr}: refused")));
        }
        seen.sessions += 1;
        let open = seen.open_via.entry(egress.name.clone()).or_default();
        *open += 1;
        let open = *open;
        let max = seen.max_open_via.entry(egress.name.clone()).or_default();
        *max = (*max).max(open);
        seen.open_total += 1;
        seen.max_open_total = seen.max_open_total.max(seen.open_total);
        Ok(Box::new(FakeSession {
            script: self.0.clone(),
            egress: egress.name.clone(),
            rejected: 0,
            transactions: 0,
        }))
    }
}

struct FakeSession {
    script: Arc<Script>,
    egress: String,
    rejected: u32,
    transactions: u32,
}

#[async_trait]
impl ProbeSession for FakeSession {
    async fn transaction(&mut self, rcpts: &[Mailbox]) -> TransactionOutcome {
        let rcpts: Vec<String> = rcpts.iter().map(Mailbox::to_string).collect();
        self.transactions += 1;
        if !self.script.txn_delay.is_zero() {
            tokio::time::sleep(self.script.txn_delay).await;
        }
        let mut seen = self.script.seen.lock().unwrap();
        seen.transactions.push(rcpts.clone());
        seen.via.push(self.egress.clone());
        seen.at.push(Instant::now());
        let mut outcomes = Vec::new();
        for (index, rcpt) in rcpts.iter().enumerate() {
            if self.script.rcpt_cap.is_some_and(|cap| index >= cap) {
                outcomes.push(RecipientOutcome::Replied(Reply::new(
                    452,
                    EnhancedCode::parse("4.5.3"),
                    "Error: too many recipients",
                )));
                continue;
            }
            let count = {
                let n = seen.asked.entry(rcpt.clone()).or_default();
                *n += 1;
                *n
            };
            let egress = self.egress.clone();
            seen.asked_via.entry(rcpt.clone()).or_default().push(egress);
            let (code, enhanced, text) = if self.script.block_from.contains(&self.egress) {
                (
                    554,
                    "5.7.1",
                    "Service unavailable; Client host [127.0.1.1] blocked using zen.spamhaus.org",
                )
            } else {
                (self.script.answer)(rcpt, count)
            };
            if code >= 500 {
                self.rejected += 1;
            }
            outcomes.push(RecipientOutcome::Replied(Reply::new(
                code,
                EnhancedCode::parse(enhanced),
                text,
            )));
        }
        seen.max_rejected_per_session = seen.max_rejected_per_session.max(self.rejected);
        TransactionOutcome {
            mail: Some(Reply::new(250, EnhancedCode::parse("2.1.0"), "Ok")),
            recipients: outcomes,
            pipelined: true,
            error: None,
        }
    }
    fn rejected_rcpts(&self) -> u32 {
        self.rejected
    }
    fn transactions(&self) -> u32 {
        self.transactions
    }
    fn age(&self) -> Duration {
        Duration::ZERO
    }
    fn is_usable(&self) -> bool {
        true
    }
    fn tls(&self) -> bool {
        false
    }
    async fn quit(self: Box<Self>) {
        let mut seen = self.script.seen.lock().unwrap();
        if let Some(open) = seen.open_via.get_mut(&self.egress) {
            *open -= 1;
        }
        seen.open_total -= 1;
    }
}

pub fn config() -> EngineConfig {
    let mut config = EngineConfig {
        greylist_retry: vec![Duration::from_millis(50), Duration::from_millis(50)],
        defer_retry: vec![Duration::from_millis(20), Duration::from_millis(20)],
        ..EngineConfig::default()
    };
    // The scripted servers sit on loopback.
    config.allow_private_targets = true;
    // Generous rates so that the test is about decisions, not waiting.
    config.shaping.default.rcpt_rate.per_minute = 1_000_000;
    config.shaping.default.rcpt_rate.burst = 1_000;
    config.shaping.default.connect_rate.per_minute = 1_000_000;
    config.shaping.default.connect_rate.burst = 1_000;
    config
}

pub fn batch(campaign: &CampaignId, domain: &str, locals: &[String]) -> Batch {
    Batch {
        campaign: campaign.clone(),
        site: format!("mx.{domain}"),
        domain: domain.to_string(),
        mx: vec![MxHost {
            name: format!("mx.{domain}"),
            addrs: vec![IpAddr::V4(Ipv4Addr::new(127, 0, 0, 1))],
        }],
        items: locals
            .iter()
            .enumerate()
            .map(|(i, local)| BatchItem {
                item: ItemId(i as u64 + 1),
                address: format!("{local}@{domain}").parse().unwrap(),
                attempts: 0,
                greylist_round: 0,
                waiting_since_ms: None,
                note: None,
                blocked_via: Vec::new(),
            })
            .collect(),
        max_wait_ms: None,
        egress: None,
        lane: 0,
    }
}

/// Runs one batch through a worker and returns the reason per address.
pub async fn run(
    script: Arc<Script>,
    config: EngineConfig,
    batch: Batch,
) -> HashMap<String, Reason> {
    run_batches(script, config, vec![batch])
        .await
        .into_iter()
        .map(|r| (r.address, r.verdict.reason()))
        .collect()
}

/// Runs batches (of one campaign) through a worker and returns every result, checking that
/// each item has exactly one.
pub async fn run_batches(
    script: Arc<Script>,
    config: EngineConfig,
    batches: Vec<Batch>,
) -> Vec<ItemResult> {
    let queue = Arc::new(MemoryQueue::new());
    let state = Arc::new(MemoryState::new());
    let campaign = batches[0].campaign.clone();
    let total: u64 = batches.iter().map(|b| b.items.len() as u64).sum();
    state.campaign_add_total(&campaign, total).await.unwrap();
    for batch in &batches {
        queue.publish(batch).await.unwrap();
    }
    let worker = Worker {
        id: "test".into(),
        queue: queue.clone(),
        state: state.clone(),
        connector: Arc::new(ScriptConnector(script)),
        config: Arc::new(config),
        metrics: Arc::new(WorkerMetrics::default()),
    };
    let (_stop_tx, stop) = watch::channel(false);
    let task = tokio::spawn(async move { worker.run(stop).await });
    for _ in 0..2_000 {
        if state.progress(&campaign).await.unwrap().done == total {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    queue.close();
    task.await.unwrap().unwrap();
    let (results, _) = state.results_since(&campaign, 0, 100_000).await.unwrap();
    assert_eq!(
        results.len() as u64,
        total,
        "every item has exactly one result"
    );
    results
}

pub fn script(answer: Answer) -> Arc<Script> {
    Arc::new(Script {
        answer,
        refuse_connections: false,
        rcpt_cap: None,
        refuse_from: Vec::new(),
        block_from: Vec::new(),
        txn_delay: Duration::ZERO,
        seen: Mutex::new(Seen::default()),
    })
}
