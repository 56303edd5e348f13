//! Shared setup for the tests against the real RabbitMQ on 127.0.0.1:5672: a random topology
//! prefix per test, batches to publish, and a bounded receive.

#![allow(dead_code)]

use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpStream};
use std::time::Duration;

use rand::Rng;
use rollcall_amqp::{AmqpConfig, AmqpQueue};
use rollcall_core::ports::{Batch, BatchItem, Delivery, MxHost, QueueError, WorkQueue};
use rollcall_core::{CampaignId, ItemId};

pub const BROKER: &str = "amqp://guest:guest@127.0.0.1:5672/%2f";

/// True when the broker listens. Without it: a failure under CI, a loud notice otherwise.
pub fn broker_available() -> bool {
    let addr = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 5672);
    if TcpStream::connect_timeout(&addr, Duration::from_secs(2)).is_ok() {
        return true;
    }
    let how = "RabbitMQ is not reachable at 127.0.0.1:5672. Start it with \
               `rabbitmq-server -detached` (Debian: `apt-get install rabbitmq-server`), \
               then run the tests again.";
    if std::env::var_os("CI").is_some() {
        panic!("{how}");
    }
    eprintln!("\n!!!!!!!!!!\n!!! SKIPPED: {how}\n!!!!!!!!!!\n");
    false
}

/// A configuration with a fresh random prefix, so tests never share queues.
pub fn config(shards: u32) -> AmqpConfig {
    let tag: u64 = rand::rng().random();
    AmqpConfig {
        prefix: format!("rollcall-test-{tag:016x}"),
        shards,
        ..AmqpConfig::new(BROKER)
    }
}

/// A queue for one test. If the test panics, its topology is deleted anyway (from a thread
/// of its own, since the test's runtime is unwinding).
pub struct TestQueue {
    queue: AmqpQueue,
    config: AmqpConfig,
}

impl std::ops::Deref for TestQueue {
    type Target = AmqpQueue;
    fn deref(&self) -> &AmqpQueue {
        &self.queue
    }
}

impl Drop for TestQueue {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            return;
        }
        let config = self.config.clone();
        let _ = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async {
                if let Ok(queue) = AmqpQueue::connect(config).await {
                    let _ = queue.delete_topology().await;
                    queue.close().await;
                }
            });
        })
        .join();
    }
}

/// Connects with `config`, or `None` when the broker is absent outside CI.
pub async fn connect(config: AmqpConfig) -> Option<TestQueue> {
    if !broker_available() {
        return None;
    }
    Some(TestQueue {
        queue: AmqpQueue::connect(config.clone()).await.unwrap(),
        config,
    })
}

/// A batch of `n` addresses of one domain at `site`, items numbered from `first`.
pub fn batch(site: &str, first: u64, n: u64) -> Batch {
    let domain = format!("d{first}.example.test");
    Batch {
        campaign: CampaignId::new("amqp-test").unwrap(),
        site: site.to_owned(),
        domain: domain.clone(),
        mx: vec![MxHost {
            name: site.to_owned(),
            addrs: vec![
                IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2)),
                "::1".parse().unwrap(),
            ],
        }],
        items: (first..first + n)
            .map(|i| BatchItem {
                item: ItemId(i),
                address: format!("user{i}@{domain}").parse().unwrap(),
                attempts: (i % 3) as u32,
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

/// Publishes `batches` (through the ladder when `delay` is not zero) with up to `WINDOW`
/// publishes awaiting their confirm at once, as the engine's coordinator does; returns once the
/// broker confirmed every one.
pub async fn publish_all(
    queue: &AmqpQueue,
    batches: impl IntoIterator<Item = Batch>,
    delay: Duration,
) -> Result<(), QueueError> {
    const WINDOW: usize = 256;
    let mut in_flight = tokio::task::JoinSet::new();
    for batch in batches {
        while in_flight.len() >= WINDOW {
            settle(in_flight.join_next().await)?;
        }
        let queue = queue.clone();
        in_flight.spawn(async move {
            if delay.is_zero() {
                queue.publish(&batch).await
            } else {
                queue.publish_after(&batch, delay).await
            }
        });
    }
    while let Some(published) = in_flight.join_next().await {
        settle(Some(published))?;
    }
    Ok(())
}

fn settle(
    published: Option<Result<Result<(), QueueError>, tokio::task::JoinError>>,
) -> Result<(), QueueError> {
    match published {
        Some(Ok(outcome)) => outcome,
        Some(Err(join)) => Err(QueueError::Transport(format!(
            "a publish task failed: {join}"
        ))),
        None => Ok(()),
    }
}

/// The next delivery within `wait`, or `None`.
pub async fn recv(queue: &AmqpQueue, wait: Duration) -> Option<Delivery> {
    match tokio::time::timeout(wait, queue.next()).await {
        Ok(delivery) => delivery.unwrap(),
        Err(_) => None,
    }
}

/// Deletes the test's topology and closes the connection.
pub async fn cleanup(queue: &AmqpQueue) {
    queue.delete_topology().await.unwrap();
    queue.close().await;
}

/// The dead-letter count once it is non-zero (quorum queues dead-letter asynchronously), or 0
/// after about five seconds.
pub async fn dead_letters_settled(queue: &AmqpQueue) -> u64 {
    for _ in 0..50 {
        let dead = queue.dead_letters().await.unwrap();
        if dead > 0 {
            return dead;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    0
}
