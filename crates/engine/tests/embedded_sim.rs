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
    use rollcall_core::CampaignId;
    use rollcall_core::ports::{MemoryQueue, MemoryState};
    use rollcall_engine::coordinator::Coordinator;

    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../sim/fleets/example.toml");
    let spec = FleetSpec::from_file(&path).expect("example fleet parses");
    let fleet = rollcall_sim::start(&spec, SimOptions::default())
        .await
        .expect("fleet starts");
    let resolver = MxResolver::new(ResolverConfig {
        nameservers: vec![fleet.dns_addr()],
        allow_private_targets: true,
        timeout: Duration::from_secs(1),
        ..ResolverConfig::default()
    })
    .expect("resolver");
    let queue = Arc::new(MemoryQueue::new());
    let coordinator = Coordinator::new(
        queue.clone(),
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
    (fleet, queue, run)
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
