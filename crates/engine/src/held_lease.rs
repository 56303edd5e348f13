//! Fleet-wide slots held while a session lives (its site slot, its server-address slot): short
//! leases, renewed by a heartbeat for as long as they are held, so a worker that dies (kill -9,
//! a lost machine) frees its slots within one TTL instead of holding its sites off until a
//! long TTL lapses. Given back explicitly when the holder is done.
//!
//! The caps hold at every moment: when the heartbeat cannot renew in time (the store is
//! unreachable, or the lease already lapsed and may be someone else's now), the lease is marked
//! lost and its holder stops using the slot before the next command.
//!
//! Owns the heartbeat; does not decide what a slot is for or how many there are.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use rollcall_core::ports::{Lease, StateStore};
use tokio::task::JoinHandle;

/// A lease kept alive by a heartbeat until it is released or dropped.
pub struct HeldLease {
    lease: Lease,
    lost: Arc<AtomicBool>,
    heartbeat: JoinHandle<()>,
}

impl HeldLease {
    /// Keeps `lease` (taken with `ttl`) alive: renewed every third of `ttl`.
    pub fn keep<S: StateStore>(state: Arc<S>, lease: Lease, ttl: Duration) -> HeldLease {
        let lost = Arc::new(AtomicBool::new(false));
        let heartbeat = tokio::spawn(heartbeat(state, lease.clone(), ttl, lost.clone()));
        HeldLease {
            lease,
            lost,
            heartbeat,
        }
    }

    /// False once the lease may have lapsed: the slot must not be used any more.
    pub fn is_held(&self) -> bool {
        !self.lost.load(Ordering::SeqCst)
    }

    /// Stops the heartbeat and gives the slot back (it lapses by itself if that fails).
    pub async fn release<S: StateStore>(self, state: &S) {
        self.heartbeat.abort();
        if let Err(error) = state.lease_release(&self.lease).await {
            tracing::warn!(site = %self.lease.site, %error, "lease not released; it will lapse");
        }
    }
}

impl Drop for HeldLease {
    fn drop(&mut self) {
        // Dropped without `release` (a task cancelled): the lease lapses within its TTL.
        self.heartbeat.abort();
    }
}

async fn heartbeat<S: StateStore>(
    state: Arc<S>,
    lease: Lease,
    ttl: Duration,
    lost: Arc<AtomicBool>,
) {
    let every = ttl / 3;
    let mut renewed_at = Instant::now();
    loop {
        tokio::time::sleep(every).await;
        match state.lease_renew(&lease, ttl).await {
            Ok(true) => renewed_at = Instant::now(),
            Ok(false) => {
                tracing::warn!(site = %lease.site, "a held lease had lapsed; its slot is given up");
                lost.store(true, Ordering::SeqCst);
                return;
            }
            // Not renewed this time: keep trying while the last renewal still covers the
            // next attempt, give the slot up before it could lapse under us.
            Err(error) if renewed_at.elapsed() + every < ttl => {
                tracing::debug!(site = %lease.site, %error, "lease renewal failed; retrying");
            }
            Err(error) => {
                tracing::warn!(site = %lease.site, %error, "lease not renewed in time; its slot is given up");
                lost.store(true, Ordering::SeqCst);
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rollcall_core::ports::MemoryState;

    #[tokio::test]
    async fn a_held_lease_outlives_its_ttl_and_a_dropped_one_lapses() {
        let state = Arc::new(MemoryState::new());
        // Renewed every third of the TTL: a loaded machine may delay a renewal by most of a
        // second without the lease lapsing.
        let ttl = Duration::from_millis(1500);
        let lease = state
            .lease_acquire("s", "a", 1, ttl)
            .await
            .unwrap()
            .unwrap();
        let held = HeldLease::keep(state.clone(), lease, ttl);
        tokio::time::sleep(ttl * 2).await;
        assert!(held.is_held());
        assert_eq!(
            state.lease_count("s").await.unwrap(),
            1,
            "renewed while held"
        );
        assert!(
            state
                .lease_acquire("s", "b", 1, ttl)
                .await
                .unwrap()
                .is_none()
        );
        drop(held);
        tokio::time::sleep(ttl + Duration::from_millis(200)).await;
        assert_eq!(
            state.lease_count("s").await.unwrap(),
            0,
            "lapsed once dropped"
        );
        assert!(
            state
                .lease_acquire("s", "b", 1, ttl)
                .await
                .unwrap()
                .is_some()
        );
    }

    #[tokio::test]
    async fn a_lapsed_lease_is_reported_lost() {
        let state = Arc::new(MemoryState::new());
        let ttl = Duration::from_millis(300);
        let lease = state
            .lease_acquire("s", "a", 1, ttl)
            .await
            .unwrap()
            .unwrap();
        // Someone releases it behind the holder's back (as a lapse would): the next renewal
        // finds it gone.
        state.lease_release(&lease).await.unwrap();
        let held = HeldLease::keep(state.clone(), lease, ttl);
        tokio::time::sleep(ttl * 3).await;
        assert!(!held.is_held());
    }

    #[tokio::test]
    async fn release_frees_the_slot_at_once() {
        let state = Arc::new(MemoryState::new());
        let ttl = Duration::from_secs(60);
        let lease = state
            .lease_acquire("s", "a", 1, ttl)
            .await
            .unwrap()
            .unwrap();
        HeldLease::keep(state.clone(), lease, ttl)
            .release(state.as_ref())
            .await;
        assert_eq!(state.lease_count("s").await.unwrap(), 0);
    }
}
