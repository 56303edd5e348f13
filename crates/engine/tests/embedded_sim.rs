//! The embedded engine against the simulated fleet, end to end on loopback: every address of
//! the example fleet (one domain of each behaviour) gets the verdict of the fleet's ground
//! truth, and the fleet saw no command out of sequence, no pipelining it did not offer, no
//! DATA, no error-budget trip and never more sessions than the site cap. A campaign's own max
//! wait rides on every batch its coordinator publishes.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use rollcall_dns::{MxResolver, ResolverConfig};
use rollcall_engine::WorkerMetrics;
use rollcall_engine::config::EngineConfig;
use rollcall_engine::coordinator::{InputRow, OutputRow};
use rollcall_sim::{FleetSpec, SimOptions};
use tokio::sync::{mpsc, watch};

fn status_reason<T: serde::Serialize>(value: &T) -> String {
    serde_json::to_value(value)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn example_fleet_matches_ground_truth_and_stays_polite() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../sim/fleets/example.toml");
    let spec = FleetSpec::from_file(&path).expect("example fleet parses");
    let fleet = rollcall_sim::start(
        &spec,
        SimOptions {
            greylist_delay: Some(Duration::from_millis(400)),
            ..SimOptions::default()
        },
    )
    .await
    .expect("fleet starts");

    let mut config = EngineConfig {
        helo_name: "verifier.rollcall.test".into(),
        mail_from: "probe@rollcall.test".into(),
        smtp_port: fleet.smtp_port(),
        allow_private_targets: true,
        connect_timeout: Duration::from_secs(2),
        greylist_retry: vec![
            Duration::from_millis(600),
            Duration::from_secs(1),
            Duration::from_secs(2),
        ],
        defer_retry: vec![Duration::from_millis(200), Duration::from_millis(400)],
        ..EngineConfig::default()
    };
    config.shaping.default.rcpt_rate.per_minute = 60_000;
    config.shaping.default.rcpt_rate.burst = 200;
    config.shaping.default.connect_rate.per_minute = 60_000;
    config.shaping.default.connect_rate.burst = 50;
    config.shaping.default.session_idle = Duration::from_millis(500);
    let max_sessions = config.shaping.default.max_sessions;
    let connector = rollcall_engine::connector(&config).expect("identity is valid");
    let resolver = MxResolver::new(ResolverConfig {
        nameservers: vec![fleet.dns_addr()],
        allow_private_targets: true,
        timeout: Duration::from_secs(1),
        ..ResolverConfig::default()
    })
    .expect("resolver");

    let mut rows: Vec<String> = fleet.addresses().to_vec();
    let listed = rows.len();
    // Bad rows and a duplicate: each still comes out exactly once.
    rows.push("not an address".into());
    rows.push("evil@example.test\r\nDATA".into());
    rows.push(rows[0].clone());
    let (in_tx, in_rx) = mpsc::channel(64);
    let (out_tx, mut out_rx) = mpsc::channel::<OutputRow<()>>(64);
    let (_stop_tx, stop) = watch::channel(false);
    let feeder = {
        let rows = rows.clone();
        tokio::spawn(async move {
            for (i, text) in rows.into_iter().enumerate() {
                let row = InputRow {
                    row: i as u64 + 1,
                    text,
                    payload: (),
                };
                if in_tx.send(row).await.is_err() {
                    return;
                }
            }
        })
    };
    let engine = tokio::spawn(rollcall_engine::embedded::run(
        Arc::new(config),
        resolver,
        connector,
        Arc::new(WorkerMetrics::default()),
        in_rx,
        out_tx,
        stop,
        None,
    ));
    let mut out: HashMap<u64, OutputRow<()>> = HashMap::new();
    while let Some(row) = out_rx.recv().await {
        assert!(out.insert(row.row, row).is_none(), "a row came out twice");
    }
    feeder.await.unwrap();
    let summary = tokio::time::timeout(Duration::from_secs(5), engine)
        .await
        .expect("engine finished")
        .unwrap()
        .expect("engine ran");
    assert_eq!(out.len(), rows.len(), "every row comes out exactly once");
    assert_eq!(summary.rows, rows.len() as u64);
    assert_eq!(summary.duplicates, 1);

    let mut mismatches = Vec::new();
    for (i, truth) in fleet.truth().iter().enumerate() {
        let got = &out[&(i as u64 + 1)].verdict;
        let (want_status, want_reason) =
            (status_reason(&truth.status), status_reason(&truth.reason));
        if truth.deterministic
            && (got.status().as_str() != want_status || got.reason().as_str() != want_reason)
        {
            mismatches.push(format!(
                "{}: want {want_status}/{want_reason} ({:?}), got {}/{} {:?} {:?}",
                truth.address,
                truth.behaviour,
                got.status(),
                got.reason(),
                got.evidence.smtp_code,
                got.detail
            ));
        }
    }
    assert!(
        mismatches.is_empty(),
        "verdicts differ from the truth:\n{}",
        mismatches.join("\n")
    );
    assert_eq!(
        out[&(listed as u64 + 1)].verdict.reason().as_str(),
        "invalid_syntax"
    );
    assert_eq!(
        out[&(listed as u64 + 2)].verdict.reason().as_str(),
        "invalid_syntax"
    );
    assert!(out[&(listed as u64 + 3)].duplicate);

    let counters = fleet.counters();
    let t = &counters.totals;
    assert_eq!(t.replies_503, 0, "503 sent by the fleet");
    assert_eq!(t.pipelining_violations, 0);
    assert_eq!(t.pregreet_violations, 0);
    assert_eq!(t.data_commands, 0);
    assert_eq!(t.error_budget_trips, 0);
    for (host, c) in &counters.hosts {
        assert!(
            c.max_concurrent_per_ip <= u64::from(max_sessions),
            "{host}: {} sessions at once",
            c.max_concurrent_per_ip
        );
    }
    assert!(t.connections < listed as u64, "sessions are reused");
    fleet.shutdown().await;
}

/// The example fleet and a coordinator publishing its whole list with `config` (and the
/// campaign's max wait) onto an in-memory queue that no worker reads: the batches stay there
/// for the test to read.
async fn publish_only(
    config: EngineConfig,
    max_wait: Option<Duration>,
) -> (
    rollcall_sim::Fleet,
    Arc<rollcall_core::ports::MemoryQueue>,
    tokio::task::JoinHandle<Result<rollcall_engine::summary::Summary, rollcall_engine::Error>>,
) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../sim/fleets/example.toml");
    let spec = FleetSpec::from_file(&path).expect("example fleet parses");
    let queue = Arc::new(rollcall_core::ports::MemoryQueue::new());
    let (fleet, run) = publish_to(&spec, queue.clone(), config, max_wait).await;
    (fleet, queue, run)
}

/// Runs a coordinator over the whole list of `spec`'s fleet, publishing to `queue`; nothing
/// takes the batches but the test.
async fn publish_to<Q: rollcall_core::ports::WorkQueue>(
    spec: &FleetSpec,
    queue: Arc<Q>,
    config: EngineConfig,
    max_wait: Option<Duration>,
) -> (
    rollcall_sim::Fleet,
    tokio::task::JoinHandle<Result<rollcall_engine::summary::Summary, rollcall_engine::Error>>,
) {
    use rollcall_core::CampaignId;
    use rollcall_core::ports::MemoryState;
    use rollcall_engine::coordinator::Coordinator;

    let fleet = rollcall_sim::start(spec, SimOptions::default())
        .await
        .expect("fleet starts");
    let resolver = MxResolver::new(ResolverConfig {
        nameservers: vec![fleet.dns_addr()],
        allow_private_targets: true,
        timeout: Duration::from_secs(1),
        ..ResolverConfig::default()
    })
    .expect("resolver");
    let coordinator = Coordinator::new(
        queue,
        Arc::new(MemoryState::new()),
        resolver,
        Arc::new(config),
    )
    .with_max_wait(max_wait);
    let (in_tx, in_rx) = mpsc::channel(64);
    let (out_tx, out_rx) = mpsc::channel::<OutputRow<()>>(1024);
    let (stop_tx, stop) = watch::channel(false);
    let run = tokio::spawn(async move {
        let _keep = (out_rx, stop_tx);
        coordinator
            .run(CampaignId::random(), in_rx, out_tx, stop)
            .await
    });
    for (i, text) in fleet.addresses().iter().cloned().enumerate() {
        let row = InputRow {
            row: i as u64 + 1,
            text,
            payload: (),
        };
        in_tx.send(row).await.unwrap();
    }
    drop(in_tx);
    (fleet, run)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_campaigns_max_wait_rides_on_every_batch_it_publishes() {
    use rollcall_core::ports::WorkQueue;
    let config = EngineConfig {
        allow_private_targets: true,
        ..EngineConfig::default()
    };
    let (fleet, queue, run) = publish_only(config, Some(Duration::from_secs(90))).await;
    let first = tokio::time::timeout(Duration::from_secs(30), queue.next())
        .await
        .expect("a batch is published")
        .unwrap()
        .expect("a batch");
    assert_eq!(first.batch.max_wait_ms, Some(90_000));
    run.abort();
    fleet.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_site_spread_over_shards_sends_its_batches_down_its_lanes_in_turn() {
    use rollcall_core::ports::WorkQueue;
    use rollcall_engine::shaping::{ShapingOverride, ShapingTable, SiteRule};
    // One address per batch, and the alpha site spread over 3 shards: its batches ride lanes
    // 0, 1, 2, 0, ... (each lane routed to its own shard); every other site stays on lane 0.
    let config = EngineConfig {
        allow_private_targets: true,
        batch_size: 1,
        shaping: ShapingTable::with_overrides(
            &ShapingOverride::default(),
            vec![SiteRule {
                pattern: "*.alpha.test".into(),
                shaping: ShapingOverride {
                    shards: Some(3),
                    ..ShapingOverride::default()
                },
            }],
        ),
        ..EngineConfig::default()
    };
    let (fleet, queue, run) = publish_only(config, None).await;
    let mut lanes: std::collections::BTreeMap<String, Vec<u32>> = Default::default();
    while let Ok(Ok(Some(delivery))) =
        tokio::time::timeout(Duration::from_secs(3), queue.next()).await
    {
        let batch = &delivery.batch;
        lanes
            .entry(batch.site.clone())
            .or_default()
            .push(batch.lane);
    }
    let alpha = lanes
        .iter()
        .find(|(site, _)| site.contains("alpha.test"))
        .map(|(_, lanes)| lanes.clone())
        .expect("the alpha site has batches");
    assert!(alpha.len() >= 3, "{alpha:?}");
    let mut sorted = alpha.clone();
    sorted.sort_unstable();
    sorted.dedup();
    assert_eq!(sorted, vec![0, 1, 2], "every lane is used: {alpha:?}");
    let per_lane = |l: u32| alpha.iter().filter(|x| **x == l).count();
    assert!(per_lane(0).abs_diff(per_lane(2)) <= 1, "in turn: {alpha:?}");
    for (site, site_lanes) in &lanes {
        if !site.contains("alpha.test") {
            assert!(site_lanes.iter().all(|l| *l == 0), "{site}: {site_lanes:?}");
        }
    }
    run.abort();
    fleet.shutdown().await;
}

/// A `MemoryQueue` that says it spreads sites over 4 shards, as an AMQP queue with
/// `--shards 4` does.
struct FourShards(rollcall_core::ports::MemoryQueue);

#[async_trait::async_trait]
impl rollcall_core::ports::WorkQueue for FourShards {
    async fn publish(
        &self,
        batch: &rollcall_core::ports::Batch,
    ) -> Result<(), rollcall_core::ports::QueueError> {
        self.0.publish(batch).await
    }
    async fn publish_after(
        &self,
        batch: &rollcall_core::ports::Batch,
        delay: Duration,
    ) -> Result<(), rollcall_core::ports::QueueError> {
        self.0.publish_after(batch, delay).await
    }
    async fn next(
        &self,
    ) -> Result<Option<rollcall_core::ports::Delivery>, rollcall_core::ports::QueueError> {
        self.0.next().await
    }
    fn depth(&self) -> Option<u64> {
        self.0.depth()
    }
    fn shards(&self) -> u32 {
        4
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_site_holding_more_than_a_shards_share_is_spread_over_every_shard_unasked() {
    use rollcall_core::ports::WorkQueue;
    // 4,000 addresses, Zipf-sized over 8 sites, batches of 20, and no site rule: the biggest
    // site (well over a quarter of the list) grows to all 4 lanes on its own; a site with
    // fewer rows than one batch per shard (80) never leaves its own shard.
    let spec = FleetSpec::from_toml(
        r#"
[fleet]
address_base = "127.36.0.0"
seed = 3

[generate]
seed = 4
domains = 200
addresses = 4000
sites = 8
hosts_per_site = 1
zipf_exponent = 1.3
unknown_fraction = 0.2
full_fraction = 0.0
disabled_fraction = 0.0
"#,
    )
    .expect("fleet parses");
    let config = EngineConfig {
        allow_private_targets: true,
        batch_size: 20,
        ..EngineConfig::default()
    };
    let queue = Arc::new(FourShards(rollcall_core::ports::MemoryQueue::new()));
    let (fleet, run) = publish_to(&spec, queue.clone(), config, None).await;
    let mut sites: HashMap<String, (usize, Vec<u32>)> = HashMap::new();
    while let Ok(Ok(Some(delivery))) =
        tokio::time::timeout(Duration::from_secs(3), queue.next()).await
    {
        let batch = &delivery.batch;
        let site = sites.entry(batch.site.clone()).or_default();
        site.0 += batch.items.len();
        site.1.push(batch.lane);
    }
    let total: usize = sites.values().map(|(rows, _)| rows).sum();
    let (hot, (hot_rows, hot_lanes)) = sites
        .iter()
        .max_by_key(|(_, (rows, _))| *rows)
        .expect("sites");
    assert!(
        hot_rows * 4 > total,
        "the fleet has a hot site: {hot} holds {hot_rows} of {total}"
    );
    let mut used = hot_lanes.clone();
    used.sort_unstable();
    used.dedup();
    assert_eq!(
        used,
        vec![0, 1, 2, 3],
        "{hot} rides every lane: {hot_lanes:?}"
    );
    let small: Vec<_> = sites.iter().filter(|(_, (rows, _))| *rows < 80).collect();
    assert!(!small.is_empty(), "the fleet has small sites: {sites:?}");
    for (site, (_, lanes)) in small {
        assert!(
            lanes.iter().all(|l| *l == 0),
            "{site} stays on its shard: {lanes:?}"
        );
    }
    run.abort();
    fleet.shutdown().await;
}
