//! `Shared`: the state one `AmqpQueue` shares with its clones and its `AmqpAcker`s: the current
//! link, the shards asked for, the delivery channel `next()` reads, the counters and the depth
//! cache; publishing one message until the broker confirms it, and where a batch goes. The
//! handle, the reconnect supervisor and the `WorkQueue` calls are `queue`'s.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, PoisonError};
use std::time::Duration;

use rollcall_core::ports::{Batch, QueueError};
use tokio::sync::{Mutex, mpsc, watch};
use tokio::time::{Instant, timeout_at};

use crate::link::{Incoming, Link, Settled};
use crate::{AmqpConfig, Error, Topology, shard_of_lane};

/// How often the supervisor looks at the link.
pub(crate) const HEALTH_INTERVAL: Duration = Duration::from_millis(200);
/// After a failure on link generation g, how long to wait for g+1 before trying the current
/// link again (the failure may have been the channel's alone).
const NEWER_LINK_WAIT: Duration = Duration::from_secs(1);

#[derive(Default)]
pub(crate) struct Counters {
    pub published: AtomicU64,
    pub delivered: AtomicU64,
    pub redelivered: AtomicU64,
    pub acked: AtomicU64,
    pub requeued: AtomicU64,
    pub ack_failures: AtomicU64,
    pub undecodable: AtomicU64,
    pub stale: AtomicU64,
    pub reconnects: AtomicU64,
}

pub(crate) fn bump(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}

#[derive(Default)]
pub(crate) struct DepthCache {
    /// Ready messages per counted queue (`Topology::counted_queues` order), and when counted.
    pub value: Option<(Vec<u64>, Instant)>,
    pub last_attempt: Option<Instant>,
    pub refreshing: bool,
}

pub(crate) struct Shared {
    pub config: AmqpConfig,
    pub topology: Topology,
    pub link: watch::Sender<Option<Arc<Link>>>,
    pub wanted: std::sync::Mutex<BTreeSet<u32>>,
    pub tx: mpsc::UnboundedSender<Incoming>,
    pub rx: Mutex<mpsc::UnboundedReceiver<Incoming>>,
    pub counters: Counters,
    pub depth: std::sync::Mutex<DepthCache>,
    pub closed: watch::Sender<bool>,
    pub next_generation: AtomicU64,
}

impl Shared {
    pub(crate) fn current(&self) -> Option<Arc<Link>> {
        self.link.borrow().clone()
    }

    pub(crate) fn is_closed(&self) -> bool {
        *self.closed.borrow()
    }

    pub(crate) fn wanted_shards(&self) -> BTreeSet<u32> {
        self.wanted
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    pub(crate) async fn sync_consumers(&self, link: &Link) -> Result<(), Error> {
        link.sync_consumers(|| self.wanted_shards(), &self.topology, &self.tx)
            .await
    }

    /// A live link whose generation is above `after` (any live link when `after` is None),
    /// waiting until `until`. `Ok(None)` when none came in time.
    async fn wait_link(
        &self,
        after: Option<u64>,
        until: Instant,
    ) -> Result<Option<Arc<Link>>, QueueError> {
        let mut links = self.link.subscribe();
        let mut closed = self.closed.subscribe();
        let wait = async {
            loop {
                if *closed.borrow_and_update() {
                    return Err(QueueError::Closed);
                }
                if let Some(link) = links.borrow_and_update().clone()
                    && after.is_none_or(|g| link.generation > g)
                {
                    return Ok(link);
                }
                tokio::select! {
                    changed = links.changed() => {
                        if changed.is_err() {
                            return Err(QueueError::Closed);
                        }
                    }
                    _ = closed.changed() => {}
                }
            }
        };
        match timeout_at(until, wait).await {
            Ok(result) => result.map(Some),
            Err(_) => Ok(None),
        }
    }

    /// A link to publish on after a failure on generation `failed` (None: no failure yet):
    /// a newer one if it comes within a second, else whatever is live, until `deadline`.
    pub(crate) async fn link_for_publish(
        &self,
        failed: Option<u64>,
        deadline: Instant,
    ) -> Result<Arc<Link>, QueueError> {
        if failed.is_some() {
            let soon = (Instant::now() + NEWER_LINK_WAIT).min(deadline);
            if let Some(link) = self.wait_link(failed, soon).await? {
                return Ok(link);
            }
        }
        self.wait_link(None, deadline).await?.ok_or_else(|| {
            QueueError::Transport(format!(
                "no connection to RabbitMQ within {:?}",
                self.config.publish_timeout
            ))
        })
    }

    /// Completes once link `generation` is no longer the current one (the supervisor found it
    /// dead and dropped it). A publish or a confirm still pending on that link may never
    /// complete: lapin leaves a publish that raced the connection's end (its frames queued, or
    /// its confirm registered, after the connection dropped what was pending) unresolved. The
    /// caller publishes again on the next link instead of waiting out `publish_timeout`.
    pub(crate) async fn link_replaced(&self, generation: u64) {
        let mut links = self.link.subscribe();
        loop {
            if links
                .borrow_and_update()
                .as_ref()
                .is_none_or(|link| link.generation != generation)
            {
                return;
            }
            if links.changed().await.is_err() {
                return;
            }
        }
    }

    /// Publishes one message and returns once the broker confirmed it, retrying through
    /// reconnects until `publish_timeout`.
    pub(crate) async fn publish_confirmed(
        &self,
        exchange: &str,
        routing_key: &str,
        body: &[u8],
    ) -> Result<(), QueueError> {
        let deadline = Instant::now() + self.config.publish_timeout;
        let mut failed = None;
        loop {
            let link = self.link_for_publish(failed, deadline).await?;
            let attempt = async {
                let confirm = link.publish(exchange, routing_key, body).await?;
                confirm.await
            };
            let outcome = tokio::select! {
                outcome = timeout_at(deadline, attempt) => outcome,
                () = self.link_replaced(link.generation) => {
                    tracing::debug!(generation = link.generation, "link replaced before the confirm; publishing again");
                    failed = Some(link.generation);
                    continue;
                }
            };
            match outcome {
                Err(_) => {
                    return Err(QueueError::Transport(format!(
                        "no confirm from RabbitMQ within {:?}",
                        self.config.publish_timeout
                    )));
                }
                Ok(Ok(confirmation)) => match Settled::of(confirmation) {
                    Settled::Acked => {
                        bump(&self.counters.published);
                        return Ok(());
                    }
                    Settled::Returned(why) => {
                        return Err(unroutable(exchange, routing_key, &why));
                    }
                    Settled::Nacked => {
                        tracing::warn!(exchange, routing_key, "broker nacked a publish; retrying");
                        tokio::time::sleep_until((Instant::now() + HEALTH_INTERVAL).min(deadline))
                            .await;
                        failed = None;
                    }
                },
                Ok(Err(e)) => {
                    tracing::debug!(error = %e, generation = link.generation, "publish failed; retrying");
                    failed = Some(link.generation);
                }
            }
        }
    }

    pub(crate) async fn refresh_depth(&self) -> Result<u64, Error> {
        let link = self.current().ok_or(Error::Disconnected)?;
        let counts = link.message_counts(&self.topology.counted_queues()).await?;
        let total = counts.iter().sum();
        let mut cache = self.depth.lock().unwrap_or_else(PoisonError::into_inner);
        cache.value = Some((counts, Instant::now()));
        Ok(total)
    }
}

pub(crate) fn unroutable(exchange: &str, routing_key: &str, why: &str) -> QueueError {
    QueueError::Transport(format!(
        "RabbitMQ returned a publish to {exchange} with key {routing_key} ({why}): \
         is the topology deleted?"
    ))
}

/// Where a batch goes: (exchange, routing key).
pub(crate) fn destination(shared: &Shared, batch: &Batch, delay: Duration) -> (String, String) {
    let key = Topology::shard_key(shard_of_lane(&batch.site, batch.lane, shared.config.shards));
    match shared.topology.rung_for(delay) {
        None => (shared.topology.work_exchange(), key),
        Some(rung) => (shared.topology.delay_name(rung), key),
    }
}

pub(crate) fn encode(batch: &Batch) -> Result<Vec<u8>, QueueError> {
    serde_json::to_vec(batch).map_err(|e| QueueError::Encoding(e.to_string()))
}
