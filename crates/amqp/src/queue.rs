//! `AmqpQueue`: the `WorkQueue` over RabbitMQ. Owns the handle, the supervisor that replaces
//! the link after a failure, the shards this process is asked to consume and the `WorkQueue`
//! calls. What the handle's clones and ackers share (the current link, the delivery channel
//! that `next()` reads, the depth cache, the counters, confirmed publishing) lives in `shared`;
//! names and declares in `topology`. Each publish waits for its own confirm; a caller with many
//! batches keeps several publishes in flight (the engine's coordinator keeps a window of them).
//!
//! Failure model: the supervisor checks the link every 200 ms; when the connection or one of
//! its channels is gone it reconnects with exponential backoff, declares the topology again and
//! starts consumers for the same shards. A publish waits for a link and retries until the broker
//! confirms it or `publish_timeout` passes; it never reports success without a confirm (so a
//! batch may be published twice across an outage: results are idempotent upstream). A publish
//! still unconfirmed when its link is replaced is sent again on the new link at once: its
//! confirm may never come (`Shared::link_replaced`). Deliveries
//! received on a dead link cannot be acked; the broker redelivers them.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, PoisonError, Weak};
use std::time::Duration;

use async_trait::async_trait;
use lapin::options::BasicNackOptions;
use rollcall_core::ports::{Batch, Delivery, QueueDepths, QueueError, WorkQueue};
use tokio::sync::{Mutex, mpsc, watch};
use tokio::time::{Instant, sleep};

use crate::acker::AmqpAcker;
use crate::link::{Incoming, Link};
use crate::shared::{Counters, DepthCache, HEALTH_INTERVAL, Shared, bump, destination, encode};
use crate::{AmqpConfig, Error, Topology, shard_of};

/// The depth is refreshed at most this often.
const DEPTH_REFRESH: Duration = Duration::from_secs(1);
/// A depth older than this is reported as unknown.
const DEPTH_STALE: Duration = Duration::from_secs(10);

/// Counters of one `AmqpQueue` handle (shared by its clones), for metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct QueueStats {
    /// Publishes the broker confirmed.
    pub published: u64,
    /// Deliveries handed to `next()` callers.
    pub delivered: u64,
    /// Of those, deliveries the broker flagged as redelivered
    /// (`rollcall_queue_redelivered_total`).
    pub redelivered: u64,
    pub acked: u64,
    pub requeued: u64,
    /// Acks or requeues that failed (their channel was gone; the broker redelivers).
    pub ack_failures: u64,
    /// Bodies that were not a `Batch`; they were rejected to the dead-letter queue.
    pub undecodable: u64,
    /// Deliveries from a dead link dropped before reaching a caller.
    pub stale: u64,
    /// Links re-established after a failure.
    pub reconnects: u64,
}

/// A `WorkQueue` over RabbitMQ. Cloning shares the connection, the consumers and the counters.
#[derive(Clone)]
pub struct AmqpQueue {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for AmqpQueue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AmqpQueue")
            .field("prefix", &self.shared.config.prefix)
            .field("shards", &self.shared.config.shards)
            .field("connected", &self.is_connected())
            .finish_non_exhaustive()
    }
}

impl AmqpQueue {
    /// Connects, declares the topology (idempotently) and starts the reconnect supervisor.
    /// Consumes nothing until `consume_shards` is called. Must run inside a tokio runtime.
    pub async fn connect(config: AmqpConfig) -> Result<AmqpQueue, Error> {
        config.validate()?;
        let topology = Topology::new(&config);
        let link = tokio::time::timeout(
            config.connect_timeout,
            Link::establish(&config, &topology, 1),
        )
        .await
        .map_err(|_| Error::Disconnected)??;
        let (tx, rx) = mpsc::unbounded_channel();
        let shared = Arc::new(Shared {
            config,
            topology,
            link: watch::Sender::new(Some(Arc::new(link))),
            wanted: std::sync::Mutex::new(BTreeSet::new()),
            tx,
            rx: Mutex::new(rx),
            counters: Counters::default(),
            depth: std::sync::Mutex::new(DepthCache::default()),
            closed: watch::Sender::new(false),
            next_generation: AtomicU64::new(2),
        });
        tokio::spawn(supervise(Arc::downgrade(&shared)));
        let queue = AmqpQueue { shared };
        // Prime the depth cache so the first `depth()` is known; a failure only leaves it None.
        let _ = queue.refresh_depth().await;
        Ok(queue)
    }

    /// The settings this queue was connected with.
    pub fn config(&self) -> &AmqpConfig {
        &self.shared.config
    }

    /// The topology this queue declared.
    pub fn topology(&self) -> &Topology {
        &self.shared.topology
    }

    /// The shard of a site under this queue's shard count.
    pub fn shard_of(&self, site: &str) -> u32 {
        shard_of(site, self.shared.config.shards)
    }

    /// Consume exactly these shards from now on (an empty slice stops consuming). Called by
    /// whoever holds the shard leases. The set is remembered even when this returns an error,
    /// and it is applied again after every reconnect. Deliveries already received from a shard
    /// that is dropped here still reach `next()` and can be acked.
    pub async fn consume_shards(&self, shards: &[u32]) -> Result<(), Error> {
        let total = self.shared.config.shards;
        if let Some(&shard) = shards.iter().find(|&&s| s >= total) {
            return Err(Error::UnknownShard {
                shard,
                shards: total,
            });
        }
        *self
            .shared
            .wanted
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = shards.iter().copied().collect();
        match self.shared.current() {
            Some(link) => self.shared.sync_consumers(&link).await,
            // Applied by the supervisor once the link is back.
            None => Err(Error::Disconnected),
        }
    }

    /// The shards this queue is asked to consume.
    pub fn consumed_shards(&self) -> Vec<u32> {
        self.shared.wanted_shards().into_iter().collect()
    }

    /// Counts messages waiting in the shard queues and the retry ladder now (not cached), and
    /// updates the cache `depth()` reads.
    pub async fn refresh_depth(&self) -> Result<u64, Error> {
        self.shared.refresh_depth().await
    }

    /// Messages in the dead-letter queue (batches delivered more than `delivery_limit` times,
    /// or that were not a `Batch`).
    pub async fn dead_letters(&self) -> Result<u64, Error> {
        let link = self.shared.current().ok_or(Error::Disconnected)?;
        let counts = link
            .message_counts(&[self.shared.topology.dead_queue()])
            .await?;
        Ok(counts.iter().sum())
    }

    /// A snapshot of the counters.
    pub fn stats(&self) -> QueueStats {
        let c = &self.shared.counters;
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        QueueStats {
            published: get(&c.published),
            delivered: get(&c.delivered),
            redelivered: get(&c.redelivered),
            acked: get(&c.acked),
            requeued: get(&c.requeued),
            ack_failures: get(&c.ack_failures),
            undecodable: get(&c.undecodable),
            stale: get(&c.stale),
            reconnects: get(&c.reconnects),
        }
    }

    /// A link to the broker is up right now.
    pub fn is_connected(&self) -> bool {
        self.shared.current().is_some_and(|link| link.healthy())
    }

    /// Stops consuming, then deletes every queue and exchange of the topology with their
    /// messages. For tests and decommissioning only.
    pub async fn delete_topology(&self) -> Result<(), Error> {
        // Stop consuming first, or the supervisor would restart the consumers and, when that
        // fails on the deleted queues, reconnect and declare everything again.
        self.consume_shards(&[]).await?;
        let link = self.shared.current().ok_or(Error::Disconnected)?;
        let channel = link.admin_channel().await?;
        self.shared.topology.delete(&channel).await?;
        let _ = channel.close(200, "OK".into()).await;
        Ok(())
    }

    /// Stops the supervisor and closes the connection: `next()` returns `None`, publishes fail
    /// with `Closed`, and the broker requeues every delivery not yet acked. For a clean stop,
    /// `consume_shards(&[])` first and settle what is in hand.
    pub async fn close(&self) {
        self.shared.closed.send_replace(true);
        if let Some(link) = self.shared.link.send_replace(None) {
            link.close().await;
        }
    }
}

/// How long closing a lost link may take before the supervisor goes on without it.
const LINK_CLOSE_TIMEOUT: Duration = Duration::from_secs(2);

/// Replaces the link whenever it fails, until the queue is closed or dropped.
async fn supervise(shared: Weak<Shared>) {
    let mut failures: u32 = 0;
    loop {
        let Some(queue) = shared.upgrade() else {
            return;
        };
        if queue.is_closed() {
            return;
        }
        let link = queue.current();
        let wait = match link {
            Some(link) if link.healthy() => {
                if link.consumers_drift(&queue.wanted_shards())
                    && let Err(e) = queue.sync_consumers(&link).await
                {
                    tracing::warn!(error = %e, "restarting shard consumers failed");
                }
                HEALTH_INTERVAL
            }
            Some(link) => {
                tracing::warn!(
                    generation = link.generation,
                    "RabbitMQ link lost; reconnecting"
                );
                queue.link.send_replace(None);
                // One channel failing leaves the connection (and its other channel) open: its
                // consumers would stay each shard's single active consumer, holding their
                // unacked batches, and the new link's consumers would wait behind them for as
                // long as anything keeps the old link alive. Closing the connection makes the
                // broker requeue those batches and hand the shards to the new consumers.
                if tokio::time::timeout(LINK_CLOSE_TIMEOUT, link.close())
                    .await
                    .is_err()
                {
                    tracing::debug!(
                        generation = link.generation,
                        "closing the lost link timed out"
                    );
                }
                Duration::ZERO
            }
            None => {
                let generation = queue.next_generation.fetch_add(1, Ordering::Relaxed);
                let attempt = tokio::time::timeout(
                    queue.config.connect_timeout,
                    Link::establish(&queue.config, &queue.topology, generation),
                )
                .await
                .unwrap_or(Err(Error::Disconnected));
                match attempt {
                    Ok(link) if !queue.is_closed() => {
                        let link = Arc::new(link);
                        // Published first, then consumers: a concurrent `consume_shards` either
                        // sees this link or has already updated the wanted set we read.
                        queue.link.send_replace(Some(link.clone()));
                        if let Err(e) = queue.sync_consumers(&link).await {
                            tracing::warn!(error = %e, "resuming shard consumers failed");
                        }
                        bump(&queue.counters.reconnects);
                        tracing::info!(generation, "RabbitMQ link re-established");
                        failures = 0;
                        HEALTH_INTERVAL
                    }
                    Ok(link) => {
                        link.close().await;
                        return;
                    }
                    Err(e) => {
                        failures = failures.saturating_add(1);
                        let backoff = Duration::from_millis(100)
                            .saturating_mul(1 << failures.min(10))
                            .min(queue.config.reconnect_max_backoff);
                        tracing::warn!(error = %e, ?backoff, "reconnecting to RabbitMQ failed");
                        backoff
                    }
                }
            }
        };
        // Never hold the queue alive while sleeping: dropping every handle ends the loop.
        drop(queue);
        sleep(wait).await;
    }
}

#[async_trait]
impl WorkQueue for AmqpQueue {
    async fn publish(&self, batch: &Batch) -> Result<(), QueueError> {
        let body = encode(batch)?;
        let (exchange, key) = destination(&self.shared, batch, Duration::ZERO);
        self.shared.publish_confirmed(&exchange, &key, &body).await
    }

    /// The delay is rounded UP to the next rung of the ladder (`AmqpConfig::delays`), and down
    /// to the longest rung when it is beyond the ladder.
    async fn publish_after(&self, batch: &Batch, delay: Duration) -> Result<(), QueueError> {
        let body = encode(batch)?;
        let (exchange, key) = destination(&self.shared, batch, delay);
        self.shared.publish_confirmed(&exchange, &key, &body).await
    }

    async fn next(&self) -> Result<Option<Delivery>, QueueError> {
        let shared = &self.shared;
        let mut closed = shared.closed.subscribe();
        let mut rx = shared.rx.lock().await;
        loop {
            let incoming = tokio::select! {
                biased;
                _ = closed.wait_for(|closed| *closed) => return Ok(None),
                incoming = rx.recv() => incoming,
            };
            // The sender lives in `shared`, so the channel cannot end while we hold it.
            let Some(Incoming {
                generation,
                delivery,
            }) = incoming
            else {
                return Ok(None);
            };
            if shared
                .current()
                .is_none_or(|link| link.generation != generation)
            {
                // Received on a dead link: it cannot be acked and the broker redelivers it.
                bump(&shared.counters.stale);
                continue;
            }
            let batch = match serde_json::from_slice::<Batch>(&delivery.data) {
                Ok(batch) => batch,
                Err(e) => {
                    // A body that is not a Batch never will be: dead-letter it, do not loop.
                    tracing::warn!(error = %e, routing_key = %delivery.routing_key, "undecodable batch rejected to the dead-letter queue");
                    bump(&shared.counters.undecodable);
                    let reject = BasicNackOptions {
                        multiple: false,
                        requeue: false,
                    };
                    if let Err(e) = delivery.acker.nack(reject).await {
                        tracing::warn!(error = %e, "rejecting an undecodable batch failed");
                    }
                    continue;
                }
            };
            bump(&shared.counters.delivered);
            if delivery.redelivered {
                bump(&shared.counters.redelivered);
            }
            let acker = AmqpAcker::new(delivery.acker, shared.clone());
            return Ok(Some(Delivery::new(
                batch,
                delivery.redelivered,
                Box::new(acker),
            )));
        }
    }

    /// Messages waiting in the shard queues and the retry ladder (ready ones: deliveries held
    /// unacked by workers are not counted), from a cache refreshed in the background at most
    /// once a second. `None` before the first count or when the last one is over 10 s old.
    fn depth(&self) -> Option<u64> {
        self.depths().map(|depths| depths.total())
    }

    fn shards(&self) -> u32 {
        self.shared.config.shards
    }

    /// `depth()` by shard queue, the retry ladder's rungs together as `delayed`.
    fn depths(&self) -> Option<QueueDepths> {
        let shared = &self.shared;
        let mut cache = shared.depth.lock().unwrap_or_else(PoisonError::into_inner);
        let due = !cache.refreshing
            && cache
                .last_attempt
                .is_none_or(|at| at.elapsed() >= DEPTH_REFRESH);
        if due && let Ok(runtime) = tokio::runtime::Handle::try_current() {
            cache.refreshing = true;
            cache.last_attempt = Some(Instant::now());
            let shared = shared.clone();
            runtime.spawn(async move {
                if let Err(e) = shared.refresh_depth().await {
                    tracing::debug!(error = %e, "refreshing the queue depth failed");
                }
                shared
                    .depth
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .refreshing = false;
            });
        }
        let shards = shared.topology.shards() as usize;
        cache
            .value
            .as_ref()
            .filter(|(_, at)| at.elapsed() < DEPTH_STALE)
            .map(|(counts, _)| QueueDepths {
                shards: counts.iter().take(shards).copied().collect(),
                delayed: Some(counts.iter().skip(shards).sum()),
            })
    }
}
