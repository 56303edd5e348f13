//! The distributed wiring against a real Redis (127.0.0.1:6379) and RabbitMQ (127.0.0.1:5672):
//! batches for a small simulated fleet go straight onto the shard queues; two workers, each with
//! its own broker connection and sharing one Redis prefix, consume only the shards whose leases
//! they hold. Every item gets exactly one result, and no site ever sees more simultaneous
//! sessions from us than its cap.
//!
//! Start the services with `docker run -d -p 6379:6379 redis:7` and
//! `docker run -d -p 5672:5672 rabbitmq:3.13`, or `apt-get install redis-server rabbitmq-server`.
//! Without them the test is skipped (loudly), except under `CI`, where it fails.

use std::collections::HashSet;
use std::fmt::Write as _;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use rollcall_amqp::{AmqpConfig, AmqpQueue};
use rollcall_core::ports::{Batch, BatchItem, MxHost, Progress, StateStore, WorkQueue};
use rollcall_core::{CampaignId, ItemId};
use rollcall_engine::WorkerMetrics;
use rollcall_engine::config::EngineConfig;
use rollcall_engine::shards::{ShardLeaseConfig, ShardLeases};
use rollcall_engine::worker::Worker;
use rollcall_redis::RedisState;
use rollcall_sim::{FleetSpec, SimOptions};
use tokio::sync::watch;

const REDIS_URL: &str = "redis://127.0.0.1:6379";
const AMQP_URL: &str = "amqp://guest:guest@127.0.0.1:5672/%2f";
const SITES: u32 = 6;
const DOMAINS_PER_SITE: u32 = 4;
const MAILBOXES: u32 = 10;
const UNKNOWN: u32 = 3;
const SHARDS: u32 = 4;

/// True when both services answer; otherwise fails under `CI` and skips loudly elsewhere.
async fn services_up() -> bool {
    let mut missing = Vec::new();
    for (name, port) in [("Redis", 6379), ("RabbitMQ", 5672)] {
        let addr = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), port);
        let reachable =
            tokio::time::timeout(Duration::from_secs(2), tokio::net::TcpStream::connect(addr))
                .await
                .is_ok_and(|r| r.is_ok());
        if !reachable {
            missing.push(format!("{name} at {addr}"));
        }
    }
    if missing.is_empty() {
        return true;
    }
    let how = "start them with `docker run -d -p 6379:6379 redis:7` and \
               `docker run -d -p 5672:5672 rabbitmq:3.13` (or the distribution's \
               redis-server and rabbitmq-server)";
    if std::env::var_os("CI").is_some() {
        panic!("unreachable: {}; {how}", missing.join(", "));
    }
    eprintln!(
        "SKIPPED distributed_shards: unreachable: {}; {how}",
        missing.join(", ")
    );
    false
}

/// A fleet of `SITES` single-host sites, each serving `DOMAINS_PER_SITE` plain domains.
fn fleet_spec() -> String {
    let mut toml = String::from(
        "[fleet]\naddress_base = \"127.24.0.0\"\nseed = 3\n\n\
         [profiles.default]\npipelining = true\nstarttls = false\nlatency_ms = 1\n\
         max_conns_per_ip = 1000\nrcpt_limit = 1000\nerror_soft_limit = 1000\n\
         error_hard_limit = 2000\nerror_delay_ms = 0\n\n",
    );
    for s in 0..SITES {
        let _ = write!(
            toml,
            "[[host]]\nname = \"mx.s{s}.test\"\naddress = \"127.24.1.{}\"\n\n\
             [[site]]\nname = \"s{s}\"\nmx = [{{ host = \"mx.s{s}.test\", preference = 10 }}]\n\n",
            s + 1
        );
    }
    for s in 0..SITES {
        for d in 0..DOMAINS_PER_SITE {
            let boxes: Vec<String> = (0..MAILBOXES)
                .map(|m| format!("\"user{m}\" = \"valid\""))
                .collect();
            let unknown: Vec<String> = (0..UNKNOWN).map(|u| format!("\"ghost{u}\"")).collect();
            let _ = write!(
                toml,
                "[[domain]]\nname = \"d{d}.s{s}.test\"\nsite = \"s{s}\"\n\
                 mailboxes = {{ {} }}\nverify = [{}]\n\n",
                boxes.join(", "),
                unknown.join(", ")
            );
        }
    }
    toml
}

/// One batch per domain (the coordinator's job, done by hand), items numbered from 1.
fn batches(campaign: &CampaignId, fleet: &rollcall_sim::Fleet) -> Vec<Batch> {
    let mut next_item = 0;
    let mut out = Vec::new();
    for s in 0..SITES {
        let host = format!("mx.s{s}.test");
        let addr = fleet.host_addr(&host).expect("host exists").ip();
        for d in 0..DOMAINS_PER_SITE {
            let domain = format!("d{d}.s{s}.test");
            let locals = (0..MAILBOXES)
                .map(|m| format!("user{m}"))
                .chain((0..UNKNOWN).map(|u| format!("ghost{u}")));
            let items = locals
                .map(|local| {
                    next_item += 1;
                    BatchItem {
                        item: ItemId(next_item),
                        address: format!("{local}@{domain}").parse().unwrap(),
                        attempts: 0,
                        greylist_round: 0,
                        waiting_since_ms: None,
                        note: None,
                        blocked_via: Vec::new(),
                    }
                })
                .collect();
            out.push(Batch {
                campaign: campaign.clone(),
                site: host.clone(),
                domain,
                mx: vec![MxHost {
                    name: host.clone(),
                    addrs: vec![addr],
                }],
                items,
                max_wait_ms: None,
                egress: None,
                lane: 0,
            });
        }
    }
    out
}

fn engine_config(smtp_port: u16) -> EngineConfig {
    let mut config = EngineConfig {
        helo_name: "verifier.rollcall.test".into(),
        mail_from: "probe@rollcall.test".into(),
        smtp_port,
        allow_private_targets: true,
        connect_timeout: Duration::from_secs(2),
        defer_retry: vec![Duration::from_millis(200), Duration::from_millis(400)],
        // Small batches of work per session turn, so both workers and both slots get used.
        worker_prefetch: 16,
        ..EngineConfig::default()
    };
    config.shaping.default.rcpt_rate.per_minute = 600_000;
    config.shaping.default.rcpt_rate.burst = 1_000;
    config.shaping.default.connect_rate.per_minute = 600_000;
    config.shaping.default.connect_rate.burst = 100;
    config.shaping.default.session_idle = Duration::from_millis(300);
    config
}

/// One worker process in miniature: its own broker connection, shard leases in the shared
/// Redis prefix, consuming exactly the shards it holds (what `rollcall worker` wires).
struct TestWorker {
    queue: AmqpQueue,
    stop: watch::Sender<bool>,
    leases_stop: watch::Sender<bool>,
    run: tokio::task::JoinHandle<()>,
    follow: tokio::task::JoinHandle<()>,
    lease_loop: tokio::task::JoinHandle<()>,
    held: watch::Receiver<Vec<u32>>,
}

impl TestWorker {
    /// The graceful stop of `rollcall worker`: finish the batches in hand, stop consuming,
    /// release the leases, close. Returns how many deliveries this worker acked.
    async fn stop(self) -> u64 {
        self.stop.send_replace(true);
        self.run.await.expect("worker runs");
        self.follow.abort();
        self.queue
            .consume_shards(&[])
            .await
            .expect("stop consuming");
        self.leases_stop.send_replace(true);
        self.lease_loop.await.expect("lease loop");
        let acked = self.queue.stats().acked;
        self.queue.close().await;
        acked
    }

    /// A crash: nothing is released; the broker requeues what was unacked, the leases lapse.
    async fn kill(self) {
        self.run.abort();
        self.follow.abort();
        self.lease_loop.abort();
        let _ = self.run.await;
        let _ = self.lease_loop.await;
        self.queue.close().await;
    }
}

async fn start_worker(
    id: &str,
    amqp: &AmqpConfig,
    state: Arc<RedisState>,
    engine: Arc<EngineConfig>,
    max_shards: Option<u32>,
) -> TestWorker {
    let queue = AmqpQueue::connect(amqp.clone()).await.expect("broker");
    let (stop, stop_rx) = watch::channel(false);
    let (held_tx, held) = watch::channel(Vec::new());
    let mut leases = ShardLeaseConfig::new(SHARDS, id);
    leases.ttl = Duration::from_secs(2);
    leases.renew_every = Duration::from_millis(200);
    leases.max_shards = max_shards;
    let worker = Worker {
        id: id.to_string(),
        queue: Arc::new(queue.clone()),
        state: state.clone(),
        connector: rollcall_engine::connector(&engine).expect("identity"),
        config: engine,
        metrics: Arc::new(WorkerMetrics::default()),
    };
    let (leases_stop, leases_stop_rx) = watch::channel(false);
    let lease_loop = tokio::spawn(ShardLeases::new(state, leases).run(held_tx, leases_stop_rx));
    let follow_queue = queue.clone();
    let mut follow_rx = held.clone();
    let follow = tokio::spawn(async move {
        while follow_rx.changed().await.is_ok() {
            let held = follow_rx.borrow_and_update().clone();
            follow_queue.consume_shards(&held).await.expect("consume");
        }
    });
    let run = tokio::spawn(async move { worker.run(stop_rx).await.expect("worker runs") });
    TestWorker {
        queue,
        stop,
        leases_stop,
        run,
        follow,
        lease_loop,
        held,
    }
}

/// Polls progress until `total` items are done or a minute passes.
async fn wait_done(state: &RedisState, campaign: &CampaignId, total: u64) -> Progress {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let progress = state.progress(campaign).await.unwrap();
        if progress.done >= total || tokio::time::Instant::now() >= deadline {
            return progress;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Every item has exactly one recorded result (read before the keys are deleted).
struct Recorded {
    progress: Progress,
    items: Vec<u64>,
}

async fn recorded(state: &RedisState, campaign: &CampaignId) -> Recorded {
    let progress = state.progress(campaign).await.unwrap();
    let (results, _) = state.results_since(campaign, 0, 100_000).await.unwrap();
    Recorded {
        progress,
        items: results.iter().map(|r| r.item.0).collect(),
    }
}

fn assert_one_result_each(recorded: &Recorded, total: u64) {
    let progress = &recorded.progress;
    assert_eq!(progress.total, total);
    assert_eq!(progress.done, total, "every item finished: {progress:?}");
    assert_eq!(progress.by_status.iter().sum::<u64>(), total);
    assert_eq!(recorded.items.len() as u64, total, "one result per item");
    let items: HashSet<u64> = recorded.items.iter().copied().collect();
    assert_eq!(items, (1..=total).collect::<HashSet<_>>());
}

/// Everything one test needs: a fresh prefix, the fleet, a publisher, the store.
struct Setup {
    prefix: String,
    fleet: rollcall_sim::Fleet,
    engine: Arc<EngineConfig>,
    amqp: AmqpConfig,
    state: Arc<RedisState>,
    publisher: AmqpQueue,
}

async fn setup() -> Setup {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let prefix = format!("rc-test-{:016x}", rand::random::<u64>());
    let spec = FleetSpec::from_toml(&fleet_spec()).expect("fleet spec");
    let fleet = rollcall_sim::start(&spec, SimOptions::default())
        .await
        .expect("fleet starts");
    let engine = Arc::new(engine_config(fleet.smtp_port()));
    let amqp = AmqpConfig {
        uri: AMQP_URL.to_string(),
        prefix: prefix.clone(),
        shards: SHARDS,
        delays: vec![Duration::from_millis(200), Duration::from_secs(1)],
        ..AmqpConfig::default()
    };
    let state = Arc::new(
        RedisState::connect(REDIS_URL, &prefix)
            .await
            .expect("redis"),
    );
    let publisher = AmqpQueue::connect(amqp.clone()).await.expect("broker");
    Setup {
        prefix,
        fleet,
        engine,
        amqp,
        state,
        publisher,
    }
}

impl Setup {
    /// Publishes the fleet's batches for a new campaign; returns it and its item count.
    async fn publish(&self) -> (CampaignId, u64, usize) {
        let campaign = CampaignId::random();
        let batches = batches(&campaign, &self.fleet);
        let total: u64 = batches.iter().map(|b| b.items.len() as u64).sum();
        self.state
            .campaign_add_total(&campaign, total)
            .await
            .unwrap();
        for batch in &batches {
            self.publisher.publish(batch).await.expect("published");
        }
        (campaign, total, batches.len())
    }

    /// Deletes the topology and the keys, stops the fleet; returns the fleet's counters.
    async fn teardown(self) -> rollcall_sim::Counters {
        let counters = self.fleet.counters();
        self.publisher
            .delete_topology()
            .await
            .expect("topology deleted");
        self.publisher.close().await;
        delete_keys(&self.prefix).await;
        self.fleet.shutdown().await;
        counters
    }
}

fn assert_polite(counters: &rollcall_sim::Counters, max_sessions: u32) {
    for (host, c) in &counters.hosts {
        assert!(
            c.max_concurrent_per_ip <= u64::from(max_sessions),
            "{host}: {} sessions at once, cap {max_sessions}",
            c.max_concurrent_per_ip
        );
    }
    assert_eq!(counters.totals.data_commands, 0);
}

fn all_shards(a: &[u32], b: &[u32]) -> bool {
    let mut held: Vec<u32> = a.iter().chain(b).copied().collect();
    held.sort_unstable();
    held == (0..SHARDS).collect::<Vec<_>>()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_workers_share_the_shards_and_every_item_gets_one_result() {
    if !services_up().await {
        return;
    }
    let setup = setup().await;
    let max_sessions = setup.engine.shaping.default.max_sessions;
    let (campaign, total, batches) = setup.publish().await;
    // Half the shards each, so both workers work.
    let half = Some(SHARDS / 2);
    let a = start_worker(
        "worker-a",
        &setup.amqp,
        setup.state.clone(),
        setup.engine.clone(),
        half,
    )
    .await;
    let b = start_worker(
        "worker-b",
        &setup.amqp,
        setup.state.clone(),
        setup.engine.clone(),
        half,
    )
    .await;
    wait_done(&setup.state, &campaign, total).await;
    let held_a = a.held.borrow().clone();
    let held_b = b.held.borrow().clone();
    let acked = [a.stop().await, b.stop().await];
    let recorded = recorded(&setup.state, &campaign).await;
    let counters = setup.teardown().await;

    assert_one_result_each(&recorded, total);
    eprintln!("acked per worker: {acked:?}; shards a={held_a:?} b={held_b:?}");
    // Every batch was settled by one of the two workers (a deferral acks a copy too).
    assert!(
        acked.iter().sum::<u64>() >= batches as u64,
        "acked {acked:?} of {batches} batches"
    );
    assert!(all_shards(&held_a, &held_b), "a={held_a:?} b={held_b:?}");
    assert_polite(&counters, max_sessions);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_workers_shards_are_taken_over() {
    if !services_up().await {
        return;
    }
    let setup = setup().await;
    let max_sessions = setup.engine.shaping.default.max_sessions;
    let a = start_worker(
        "worker-a",
        &setup.amqp,
        setup.state.clone(),
        setup.engine.clone(),
        Some(SHARDS / 2),
    )
    .await;
    let mut a_held = a.held.clone();
    a_held
        .wait_for(|h| h.len() == (SHARDS / 2) as usize)
        .await
        .unwrap();
    let b = start_worker(
        "worker-b",
        &setup.amqp,
        setup.state.clone(),
        setup.engine.clone(),
        None,
    )
    .await;
    let mut b_held = b.held.clone();
    b_held.wait_for(|h| !h.is_empty()).await.unwrap();
    let held_a = a_held.borrow().clone();
    let held_b = b_held.borrow().clone();
    assert!(all_shards(&held_a, &held_b), "a={held_a:?} b={held_b:?}");

    // a dies holding half the shards; the work for them waits on the broker until a's leases
    // lapse and b takes them over.
    a.kill().await;
    let (campaign, total, _) = setup.publish().await;
    // The guard `wait_for` returns is a read lock on the watch: dropped here, or the lease
    // loop's next publish would block on it.
    let taken = tokio::time::timeout(
        Duration::from_secs(30),
        b_held.wait_for(|h| h.len() == SHARDS as usize),
    )
    .await
    .is_ok_and(|held| held.is_ok());
    let progress = wait_done(&setup.state, &campaign, total).await;
    b.stop().await;
    let recorded = recorded(&setup.state, &campaign).await;
    let counters = setup.teardown().await;

    assert!(taken, "b never took a's shards over");
    assert_eq!(progress.done, total);
    assert_one_result_each(&recorded, total);
    assert_polite(&counters, max_sessions);
}

/// Deletes every key of the test's prefix.
async fn delete_keys(prefix: &str) {
    let client = redis::Client::open(REDIS_URL).expect("url");
    let mut con = client
        .get_multiplexed_async_connection()
        .await
        .expect("redis");
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{prefix}:*"))
        .query_async(&mut con)
        .await
        .expect("keys");
    for key in keys {
        let _: () = redis::cmd("DEL")
            .arg(key)
            .query_async(&mut con)
            .await
            .expect("del");
    }
}
