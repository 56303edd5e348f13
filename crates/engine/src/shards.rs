//! Shard leases (distributed wiring, ARCHITECTURE.md): which shard queues this worker consumes. Each shard is a
//! lease of cap 1 on the site key `shard:<i>` in the `StateStore`, renewed every `renew_every`
//! and lapsing after `ttl`, so a dead worker's shards free themselves and a live worker takes
//! them over. The set held is published on a `watch` channel; the caller turns it into
//! consumers (`AmqpQueue::consume_shards`). This module does not touch the queue.
//!
//! Sharing: every worker also holds a membership lease on `workers` (same TTL, renewed with
//! its shards), so `lease_count("workers")` is the number of live workers `W`. A worker holds
//! at most its fair share `ceil(shards / W)` (and at most `max_shards` when set): it gives back
//! shards beyond that when a worker joins and takes free ones up to it when a worker's leases
//! lapse, so the shards spread evenly and a lone survivor ends up with every shard. A shard
//! given back is consumed by its old holder until the consumer follows the new set; the
//! queues are single-active-consumer and site sessions are capped by their own fleet-wide
//! leases, so that moment costs neither order nor politeness.

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

/// The store's site key of the workers' membership leases.
pub const MEMBERS_KEY: &str = "workers";
/// Cap of the membership leases: far above any real fleet (a worker that cannot join still
/// works, with the share of a lone worker).
const MEMBERS_CAP: u32 = 100_000;

/// `ceil(shards / workers)`, at least 1 while there are shards.
pub fn fair_share(shards: u32, workers: u32) -> u32 {
    shards.div_ceil(workers.max(1))
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
    /// This worker's membership lease, once taken.
    member: Option<Lease>,
    /// Live workers last counted (1 until counted).
    workers: u32,
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
            member: None,
            workers: 1,
        }
    }

    /// Live workers as last counted (this one included).
    pub fn workers(&self) -> u32 {
        self.workers
    }

    /// Renews (or takes) the membership lease and counts the live workers. On a store failure
    /// the last count stands.
    async fn count_members(&mut self) {
        let ttl = self.config.ttl;
        let renewed = match &self.member {
            Some(lease) => self.state.lease_renew(lease, ttl).await.unwrap_or(false),
            None => false,
        };
        if !renewed {
            self.member = match self
                .state
                .lease_acquire(MEMBERS_KEY, &self.config.holder, MEMBERS_CAP, ttl)
                .await
            {
                Ok(lease) => lease,
                Err(error) => {
                    tracing::warn!(%error, "worker membership not renewed");
                    None
                }
            };
        }
        match self.state.lease_count(MEMBERS_KEY).await {
            Ok(live) => self.workers = live.max(1),
            Err(error) => tracing::warn!(%error, "live workers not counted"),
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

        self.count_members().await;
        let cap = self
            .config
            .max_shards
            .unwrap_or(self.config.shards)
            .min(fair_share(self.config.shards, self.workers));
        // Beyond the share (a worker joined): give the excess back for the newcomer.
        while self.held.len() > cap as usize {
            let Some((shard, held)) = self.held.pop_last() else {
                break;
            };
            tracing::info!(shard, holder = %self.config.holder, workers = self.workers, "shard given back");
            if let Err(error) = self.state.lease_release(&held.lease).await {
                tracing::warn!(%error, shard, "shard lease not released; it lapses by itself");
            }
        }
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
        if let Some(member) = self.member.take()
            && let Err(error) = self.state.lease_release(&member).await
        {
            tracing::warn!(%error, "membership lease not released; it lapses by itself");
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
    async fn workers_take_fair_shares_and_give_back_when_one_joins() {
        let state = Arc::new(MemoryState::new());
        let mut a = ShardLeases::new(state.clone(), config("a", 8));
        // Alone, a takes every shard.
        assert_eq!(a.tick().await.len(), 8);
        let mut b = ShardLeases::new(state.clone(), config("b", 8));
        // b joins: nothing is free yet, but a now counts two workers and gives half back.
        assert!(b.tick().await.is_empty());
        assert_eq!(a.tick().await.len(), 4);
        let b_held = b.tick().await;
        assert_eq!(b_held.len(), 4);
        assert!(disjoint_cover(&a.held(), &b_held, 8));
        // A third: shares of ceil(8 / 3) = 3 each, every shard still held once.
        let mut c = ShardLeases::new(state.clone(), config("c", 8));
        c.tick().await;
        a.tick().await;
        b.tick().await;
        let c_held = c.tick().await;
        assert_eq!((a.held().len(), b.held().len()), (3, 3));
        assert_eq!(c_held.len(), 2);
        assert_eq!(c.workers(), 3);
        let mut all: Vec<u32> = [a.held(), b.held(), c_held].concat();
        all.sort_unstable();
        assert_eq!(all, (0..8).collect::<Vec<_>>());
    }

    #[test]
    fn fair_share_rounds_up() {
        assert_eq!(fair_share(16, 1), 16);
        assert_eq!(fair_share(16, 3), 6);
        assert_eq!(fair_share(16, 0), 16);
        assert_eq!(fair_share(2, 5), 1);
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
