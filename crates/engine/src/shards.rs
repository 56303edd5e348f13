//! Shard leases (DESIGN section 6): which shard queues this worker consumes. Each shard is a
//! lease of cap 1 on the site key `shard:<i>` in the `StateStore`, renewed every `renew_every`
//! and lapsing after `ttl`, so a dead worker's shards free themselves and a live worker takes
//! them over. The set held is published on a `watch` channel; the caller turns it into
//! consumers (`AmqpQueue::consume_shards`). This module does not touch the queue.
//!
//! Sharing: a worker takes any free shard while it holds fewer than `max_shards` (default: all
//! of them). The store offers no way to count live workers without a new operation, so the
//! spread is set by the operator: with `W` workers, `max_shards = ceil(shards / W)` spreads the
//! shards evenly, and the default lets a lone survivor take every shard of a dead fleet.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use rollcall_core::ports::{Lease, StateStore};
use tokio::sync::watch;
use tokio::time::{Instant, MissedTickBehavior};

/// Settings of a `ShardLeases` loop.
#[derive(Debug, Clone)]
pub struct ShardLeaseConfig {
    /// Number of shard queues (the queue's `shards`; every worker must agree).
    pub shards: u32,
    /// Who holds the leases (the worker id; shows in the store).
    pub holder: String,
    /// How long a lease lives without renewal: how soon a dead worker's shards are taken over.
    pub ttl: Duration,
    /// How often leases are renewed and free shards looked for. Well below `ttl`.
    pub renew_every: Duration,
    /// At most this many shards held at once; `None`: all of them.
    pub max_shards: Option<u32>,
}

impl ShardLeaseConfig {
    /// The defaults (TTL 15 s, renewal every 5 s, no cap) for `shards` shards.
    pub fn new(shards: u32, holder: impl Into<String>) -> Self {
        ShardLeaseConfig {
            shards,
            holder: holder.into(),
            ttl: Duration::from_secs(15),
            renew_every: Duration::from_secs(5),
            max_shards: None,
        }
    }
}

/// The store's site key of a shard's lease.
pub fn shard_lease_key(shard: u32) -> String {
    format!("shard:{shard}")
}

/// A held shard: its lease and when it was last confirmed.
struct Held {
    lease: Lease,
    confirmed: Instant,
}

/// The shard-lease loop of one worker.
pub struct ShardLeases<S> {
    state: Arc<S>,
    config: ShardLeaseConfig,
    held: BTreeMap<u32, Held>,
    /// Where the search for free shards starts, so workers do not all race for shard 0 first.
    offset: u32,
}

impl<S: StateStore> ShardLeases<S> {
    pub fn new(state: Arc<S>, config: ShardLeaseConfig) -> Self {
        let offset = if config.shards == 0 {
            0
        } else {
            rand::random_range(0..config.shards)
        };
        ShardLeases {
            state,
            config,
            held: BTreeMap::new(),
            offset,
        }
    }

    /// The shards held now, ascending.
    pub fn held(&self) -> Vec<u32> {
        self.held.keys().copied().collect()
    }

    /// Renews every lease, then takes free shards up to the cap. Returns the shards held.
    /// Store failures are logged, never fatal: a lease that could not be confirmed for a whole
    /// TTL is dropped, since another worker may have it by now.
    pub async fn tick(&mut self) -> Vec<u32> {
        let ttl = self.config.ttl;
        let mut lost = Vec::new();
        for (&shard, held) in &mut self.held {
            match self.state.lease_renew(&held.lease, ttl).await {
                Ok(true) => held.confirmed = Instant::now(),
                Ok(false) => lost.push(shard),
                Err(error) => {
                    tracing::warn!(%error, shard, "shard lease not renewed");
                    if held.confirmed.elapsed() >= ttl {
                        lost.push(shard);
                    }
                }
            }
        }
        for shard in lost {
            tracing::info!(shard, holder = %self.config.holder, "shard lease lost");
            self.held.remove(&shard);
        }

        let cap = self
            .config
            .max_shards
            .unwrap_or(self.config.shards)
            .min(self.config.shards);
        let shards = self.config.shards;
        for step in 0..shards {
            if self.held.len() >= cap as usize {
                break;
            }
            let shard = (self.offset + step) % shards;
            if self.held.contains_key(&shard) {
                continue;
            }
            let key = shard_lease_key(shard);
            match self
                .state
                .lease_acquire(&key, &self.config.holder, 1, ttl)
                .await
            {
                Ok(Some(lease)) => {
                    tracing::info!(shard, holder = %self.config.holder, "shard lease taken");
                    self.held.insert(
                        shard,
                        Held {
                            lease,
                            confirmed: Instant::now(),
                        },
                    );
                }
                Ok(None) => {}
                Err(error) => {
                    tracing::warn!(%error, shard, "shard lease not taken");
                    // The store is unreachable: do not hammer it with the other shards.
                    break;
                }
            }
        }
        self.held()
    }

    /// Releases every lease held (best effort: a lease not released lapses after its TTL).
    pub async fn release_all(&mut self) {
        for (shard, held) in std::mem::take(&mut self.held) {
            if let Err(error) = self.state.lease_release(&held.lease).await {
                tracing::warn!(%error, shard, "shard lease not released; it lapses by itself");
            }
        }
    }

    /// Ticks every `renew_every` and publishes the held set on `held_tx` whenever it changes,
    /// until `stop` turns true (or its sender is gone); then releases every lease and publishes
    /// the empty set. Stop consuming before stopping this loop, or another worker may take a
    /// shard while this one still consumes it.
    pub async fn run(mut self, held_tx: watch::Sender<Vec<u32>>, mut stop: watch::Receiver<bool>) {
        let mut tick = tokio::time::interval(self.config.renew_every);
        tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = stop.wait_for(|s| *s) => break,
            }
            let held = self.tick().await;
            held_tx.send_if_modified(|current| {
                if *current == held {
                    false
                } else {
                    *current = held;
                    true
                }
            });
        }
        self.release_all().await;
        held_tx.send_replace(Vec::new());
    }
}

#[cfg(test)]
mod tests {
    use rollcall_core::ports::MemoryState;

    use super::*;

    fn config(holder: &str, shards: u32) -> ShardLeaseConfig {
        ShardLeaseConfig {
            shards,
            holder: holder.to_string(),
            ttl: Duration::from_secs(1),
            renew_every: Duration::from_millis(50),
            max_shards: None,
        }
    }

    /// Waits (bounded) until `check` holds for both held sets.
    async fn until(
        a: &mut watch::Receiver<Vec<u32>>,
        b: &mut watch::Receiver<Vec<u32>>,
        check: impl Fn(&[u32], &[u32]) -> bool,
    ) -> (Vec<u32>, Vec<u32>) {
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        loop {
            let (x, y) = (a.borrow().clone(), b.borrow().clone());
            if check(&x, &y) || std::time::Instant::now() > deadline {
                return (x, y);
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    fn disjoint_cover(a: &[u32], b: &[u32], shards: u32) -> bool {
        let mut all: Vec<u32> = a.iter().chain(b).copied().collect();
        all.sort_unstable();
        all == (0..shards).collect::<Vec<_>>()
    }

    #[tokio::test]
    async fn every_shard_has_one_holder_and_a_dead_workers_shards_move() {
        let state = Arc::new(MemoryState::new());
        let shards = 8;
        let (a_tx, mut a_rx) = watch::channel(Vec::new());
        let (b_tx, mut b_rx) = watch::channel(Vec::new());
        let (a_stop, a_stop_rx) = watch::channel(false);
        let (_b_stop, b_stop_rx) = watch::channel(false);
        let mut a_cfg = config("a", shards);
        // Worker a takes at most half, so both hold some.
        a_cfg.max_shards = Some(4);
        let a = tokio::spawn(ShardLeases::new(state.clone(), a_cfg).run(a_tx, a_stop_rx));
        let b =
            tokio::spawn(ShardLeases::new(state.clone(), config("b", shards)).run(b_tx, b_stop_rx));

        let (x, y) = until(&mut a_rx, &mut b_rx, |x, y| disjoint_cover(x, y, shards)).await;
        assert!(disjoint_cover(&x, &y, shards), "a={x:?} b={y:?}");
        assert!(x.len() <= 4, "a exceeded its cap: {x:?}");

        // Worker a dies without releasing: its leases lapse after the TTL and b takes them.
        a.abort();
        let _ = a.await;
        drop(a_stop);
        let (_, y) = until(&mut a_rx, &mut b_rx, |_, y| y.len() == shards as usize).await;
        assert_eq!(y, (0..shards).collect::<Vec<_>>());
        b.abort();
    }

    #[tokio::test]
    async fn stopping_releases_every_shard_at_once() {
        let state = Arc::new(MemoryState::new());
        let mut cfg = config("a", 4);
        // A TTL far longer than the test: only the release can free the shards.
        cfg.ttl = Duration::from_secs(3600);
        let (tx, mut rx) = watch::channel(Vec::new());
        let (stop, stop_rx) = watch::channel(false);
        let a = tokio::spawn(ShardLeases::new(state.clone(), cfg).run(tx, stop_rx));
        rx.wait_for(|h| h.len() == 4).await.unwrap();
        stop.send_replace(true);
        a.await.unwrap();
        assert!(rx.borrow().is_empty());

        let mut other = ShardLeases::new(state, config("b", 4));
        assert_eq!(other.tick().await, vec![0, 1, 2, 3]);
    }

    #[tokio::test]
    async fn a_lapsed_lease_is_dropped_on_renewal() {
        let state = Arc::new(MemoryState::new());
        let mut a = ShardLeases::new(state.clone(), config("a", 2));
        assert_eq!(a.tick().await, vec![0, 1]);
        // Someone else's view: nothing free while a holds them.
        let mut b = ShardLeases::new(state.clone(), config("b", 2));
        assert!(b.tick().await.is_empty());
        tokio::time::sleep(Duration::from_millis(1200)).await;
        assert_eq!(b.tick().await, vec![0, 1]);
        // a's renewals fail now, and it cannot take them back.
        assert!(a.tick().await.is_empty());
    }
}
