//! The distributed wiring end to end on loopback: the simulated fleet, a worker over the real
//! RabbitMQ and Redis, and `CoordinatorBackend` behind the gRPC server. A client submits the
//! example fleet's list, watches with results until DONE, and every row comes back exactly once
//! with the fleet's ground truth (for deterministic rows) and counts that add up.
//!
//! Needs RabbitMQ on 127.0.0.1:5672 and Redis on 127.0.0.1:6379: without them the test fails
//! under `CI` (saying how to start them) and is skipped loudly otherwise. Every queue and key
//! it creates is under a random prefix and deleted at the end, also when it fails.

use std::collections::HashMap;
use std::io::Write as _;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpStream};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use rollcall_amqp::{AmqpConfig, AmqpQueue};
use rollcall_api::convert::{campaign_state_from_wire, reason_from_wire, status_from_wire};
use rollcall_api::v1;
use rollcall_api::{CampaignBackend, CampaignState};
use rollcall_campaigns::{CoordinatorBackend, Limits};
use rollcall_dns::{MxResolver, ResolverConfig};
use rollcall_engine::WorkerMetrics;
use rollcall_engine::config::EngineConfig;
use rollcall_engine::coordinator::Coordinator;
use rollcall_engine::worker::Worker;
use rollcall_redis::RedisState;
use rollcall_sim::{FleetSpec, SimOptions};
use tokio::sync::{oneshot, watch};

const BROKER: &str = "amqp://guest:guest@127.0.0.1:5672/%2f";
const REDIS: &str = "redis://127.0.0.1:6379";
const SHARDS: u32 = 2;
const TOKEN: &str = "test-token";

/// The wire name of a ground-truth status or reason (the fleet has its own enums).
fn status_reason<T: serde::Serialize>(value: &T) -> String {
    serde_json::to_value(value)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default()
}

/// True when both services listen; without them a failure under CI, a loud notice otherwise.
fn services_available() -> bool {
    let missing: Vec<&str> = [
        (
            5672,
            "RabbitMQ at 127.0.0.1:5672 (start it with `rabbitmq-server -detached`)",
        ),
        (
            6379,
            "Redis at 127.0.0.1:6379 (start it with `redis-server --daemonize yes \
             --bind 127.0.0.1 -::1 --port 6379 --save \"\" --appendonly no`)",
        ),
    ]
    .into_iter()
    .filter(|(port, _)| {
        let addr = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), *port);
        TcpStream::connect_timeout(&addr, Duration::from_secs(2)).is_err()
    })
    .map(|(_, what)| what)
    .collect();
    if missing.is_empty() {
        return true;
    }
    let how = format!("not reachable: {}", missing.join("; "));
    if std::env::var_os("CI").is_some() {
        panic!("{how}");
    }
    let _ = writeln!(std::io::stderr(), "\n!!! SKIPPED: {how}\n");
    false
}

/// Deletes the test's queues and keys when dropped (also on panic), from a thread of its own
/// since the test's runtime may be unwinding.
struct Cleanup {
    amqp: AmqpConfig,
    redis_prefix: String,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        let amqp = self.amqp.clone();
        let prefix = self.redis_prefix.clone();
        let _ = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async {
                if let Ok(queue) = AmqpQueue::connect(amqp).await {
                    let _ = queue.delete_topology().await;
                    queue.close().await;
                }
            });
            let Ok(client) = redis::Client::open(REDIS) else {
                return;
            };
            let Ok(mut con) = client.get_connection() else {
                return;
            };
            let mut cursor: u64 = 0;
            loop {
                let Ok((next, keys)): redis::RedisResult<(u64, Vec<String>)> = redis::cmd("SCAN")
                    .arg(cursor)
                    .arg("MATCH")
                    .arg(format!("{prefix}:*"))
                    .arg("COUNT")
                    .arg(1000)
                    .query(&mut con)
                else {
                    return;
                };
                if !keys.is_empty() {
                    let _: redis::RedisResult<i64> = redis::cmd("DEL").arg(&keys).query(&mut con);
                }
                if next == 0 {
                    return;
                }
                cursor = next;
            }
        })
        .join();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn submitted_fleet_list_comes_back_with_the_truth_over_grpc() {
    if !services_available() {
        return;
    }
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
    let config = Arc::new(config);
    let connector = rollcall_engine::connector(&config).expect("identity is valid");
    let resolver = MxResolver::new(ResolverConfig {
        nameservers: vec![fleet.dns_addr()],
        allow_private_targets: true,
        timeout: Duration::from_secs(1),
        ..ResolverConfig::default()
    })
    .expect("resolver");

    let tag: u64 = rand::random();
    let amqp = AmqpConfig {
        prefix: format!("rollcall-svc-test-{tag:016x}"),
        shards: SHARDS,
        // The retry ladder must reach the short greylist and defer delays above.
        delays: vec![
            Duration::from_millis(200),
            Duration::from_millis(600),
            Duration::from_secs(1),
            Duration::from_secs(2),
        ],
        ..AmqpConfig::new(BROKER)
    };
    let redis_prefix = format!("rcsvctest-{tag:016x}");
    let _cleanup = Cleanup {
        amqp: amqp.clone(),
        redis_prefix: redis_prefix.clone(),
    };
    let queue = Arc::new(AmqpQueue::connect(amqp).await.expect("broker"));
    let state = Arc::new(
        RedisState::connect(REDIS, &redis_prefix)
            .await
            .expect("redis"),
    );

    // The worker: its own consumer of every shard.
    queue
        .consume_shards(&(0..SHARDS).collect::<Vec<_>>())
        .await
        .expect("consume");
    let (worker_stop_tx, worker_stop) = watch::channel(false);
    let worker = Worker {
        id: "svc-test".into(),
        queue: queue.clone(),
        state: state.clone(),
        connector,
        config: config.clone(),
        metrics: Arc::new(WorkerMetrics::default()),
    };
    let worker_task = tokio::spawn(async move { worker.run(worker_stop).await });

    // The coordinator behind the gRPC server.
    let coordinator = Coordinator::new(queue.clone(), state.clone(), resolver, config);
    let backend = Arc::new(CoordinatorBackend::new(coordinator, Limits::default()).unwrap());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let (shutdown_tx, shutdown_rx) = oneshot::channel::<()>();
    let server = tokio::spawn(rollcall_api::serve(
        listener,
        backend.clone(),
        Some(TOKEN.into()),
        async move {
            let _ = shutdown_rx.await;
        },
    ));

    let mut rows: Vec<String> = fleet.addresses().to_vec();
    let listed = rows.len();
    rows.push("not an address".into());
    rows.push(rows[0].clone());

    let mut client = rollcall_api::connect(&url, Some(TOKEN.into()))
        .await
        .expect("client connects");
    let mut requests = vec![v1::SubmitCampaignRequest {
        payload: Some(v1::submit_campaign_request::Payload::Options(
            v1::CampaignOptions {
                name: "sim".into(),
                ..Default::default()
            },
        )),
    }];
    // Several chunks, as a real client streams a file.
    for chunk in rows.chunks(7) {
        requests.push(v1::SubmitCampaignRequest {
            payload: Some(v1::submit_campaign_request::Payload::Chunk(
                v1::AddressChunk {
                    addresses: chunk.to_vec(),
                },
            )),
        });
    }
    let submitted = client
        .submit_campaign(tokio_stream::iter(requests))
        .await
        .expect("submit")
        .into_inner();
    assert_eq!(submitted.accepted, listed as u64);
    assert_eq!(submitted.duplicate, 1);
    assert_eq!(submitted.invalid, 1);

    let mut events = client
        .watch_campaign(v1::WatchCampaignRequest {
            campaign_id: submitted.campaign_id.clone(),
            include_results: true,
        })
        .await
        .expect("watch")
        .into_inner();
    let mut results: HashMap<u64, v1::VerificationResult> = HashMap::new();
    let mut last = None;
    let watching = async {
        while let Some(event) = events.message().await.expect("watch stream") {
            match event.event {
                Some(v1::campaign_event::Event::Result(result)) => {
                    let row = result.row;
                    assert!(results.insert(row, result).is_none(), "row {row} twice");
                }
                Some(v1::campaign_event::Event::Progress(progress)) => last = Some(progress),
                None => {}
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(60), watching)
        .await
        .expect("the campaign finishes");
    let last = last.expect("a final progress");
    assert_eq!(
        campaign_state_from_wire(last.state).unwrap(),
        CampaignState::Done
    );
    assert_eq!(last.total, rows.len() as u64);
    assert_eq!(last.done, rows.len() as u64);
    assert_eq!(
        last.deliverable + last.undeliverable + last.risky + last.unknown,
        last.done
    );
    assert_eq!(
        results.len(),
        rows.len(),
        "every row has exactly one result"
    );

    let mut mismatches = Vec::new();
    for (i, truth) in fleet.truth().iter().enumerate() {
        let got = &results[&(i as u64)];
        assert_eq!(got.address, truth.address);
        let status = status_from_wire(got.status).unwrap().as_str();
        let reason = reason_from_wire(got.reason).unwrap().as_str();
        let (want_status, want_reason) =
            (status_reason(&truth.status), status_reason(&truth.reason));
        if truth.deterministic && (status != want_status || reason != want_reason) {
            mismatches.push(format!(
                "{}: want {want_status}/{want_reason} ({:?}), got {status}/{reason} {:?}",
                truth.address, truth.behaviour, got.detail
            ));
        }
    }
    assert!(
        mismatches.is_empty(),
        "verdicts differ from the truth:\n{}",
        mismatches.join("\n")
    );
    let invalid = &results[&(listed as u64)];
    assert_eq!(
        reason_from_wire(invalid.reason).unwrap(),
        rollcall_core::Reason::InvalidSyntax
    );
    let repeated = &results[&(listed as u64 + 1)];
    assert!(repeated.duplicate);
    assert_eq!(repeated.status, results[&0].status);

    // The same progress through the backend directly, and a one-off verify.
    let id = rollcall_core::CampaignId::new(submitted.campaign_id).unwrap();
    let progress = backend.progress(&id).await.unwrap();
    assert_eq!(progress.state, CampaignState::Done);
    let one = client
        .verify(v1::VerifyRequest {
            address: "nope".into(),
        })
        .await
        .expect("verify")
        .into_inner();
    assert_eq!(
        reason_from_wire(one.reason).unwrap(),
        rollcall_core::Reason::InvalidSyntax
    );

    let _ = shutdown_tx.send(());
    server.await.unwrap().expect("server ran");
    worker_stop_tx.send_replace(true);
    tokio::time::timeout(Duration::from_secs(10), worker_task)
        .await
        .expect("worker stops")
        .unwrap()
        .expect("worker ran");
    queue.close().await;
    fleet.shutdown().await;
}
