//! The coordinator's side of the result cache (`RunCache`): a batch of input rows is looked up
//! in one call before any of them is routed, a fresh entry comes out at once (`cached = true`,
//! its `verified_at`) with no DNS or SMTP work, and every verdict reached by probing is
//! written back in batches. A cache that fails is a warning, never a verdict: its rows are
//! verified.
//!
//! What is fresh is the `CachePolicy`'s call (TTL per verdict class, `--max-age`,
//! `--refresh`), by the setup's `CacheClock`.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use rollcall_core::ports::{CacheClock, CacheEntry, CacheError, CachePolicy, ResultCache};
use rollcall_core::{EmailAddress, Status, Verdict};

/// Entries written per `put_many`.
const PUT_BATCH: usize = 1000;
/// Rows read (and looked up) at once, at most.
pub(super) const LOOKUP_BATCH: usize = 1000;

/// A run's result cache: the store, what is fresh, and the clock that decides it.
#[derive(Clone)]
pub struct CacheSetup {
    pub store: Arc<dyn ResultCache>,
    pub policy: CachePolicy,
    pub clock: CacheClock,
}

impl std::fmt::Debug for CacheSetup {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CacheSetup")
            .field("policy", &self.policy)
            .field("clock", &self.clock)
            .finish_non_exhaustive()
    }
}

/// What an output row owes to the cache.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CacheNote {
    /// The verdict came from the cache: nothing was probed for this row.
    pub cached: bool,
    /// When the verdict was reached (seconds since the Unix epoch); `None` for a result
    /// recorded by an earlier run of a resumed campaign.
    pub verified_at: Option<u64>,
    /// The status the cache held when the address was verified again (expired, `--refresh`,
    /// `--max-age`); `None` when nothing was cached.
    pub previous: Option<Status>,
}

/// One run's use of the cache: its setup, the entries waiting to be written, the failures.
pub(super) struct RunCache {
    setup: Option<Arc<CacheSetup>>,
    queued: Vec<CacheEntry>,
    /// Reads and writes that failed.
    pub(super) errors: u64,
}

impl RunCache {
    pub(super) fn new(setup: Option<Arc<CacheSetup>>) -> RunCache {
        RunCache {
            setup,
            queued: Vec::new(),
            errors: 0,
        }
    }

    /// Whether the run has a cache.
    pub(super) fn is_on(&self) -> bool {
        self.setup.is_some()
    }

    /// The entries of `addresses` (those the run has not seen yet), by cache key, in one call
    /// to the store; none without a cache.
    pub(super) async fn look_up<'a>(
        &mut self,
        addresses: impl Iterator<Item = &'a EmailAddress>,
    ) -> HashMap<String, CacheEntry> {
        let Some(setup) = self.setup.clone() else {
            return HashMap::new();
        };
        let mut seen = HashSet::new();
        let keys: Vec<String> = addresses
            .map(EmailAddress::cache_key)
            .filter(|k| seen.insert(k.clone()))
            .collect();
        if keys.is_empty() {
            return HashMap::new();
        }
        match setup.store.get_many(&keys, setup.clock.now()).await {
            Ok(found) => found
                .into_iter()
                .flatten()
                .map(|e| (e.key.clone(), e))
                .collect(),
            Err(error) => {
                self.failed("read", &error);
                HashMap::new()
            }
        }
    }

    /// Whether `entry` may stand for a probe now.
    pub(super) fn fresh(&self, entry: &CacheEntry) -> bool {
        self.setup
            .as_ref()
            .is_some_and(|s| s.policy.is_fresh(entry, s.clock.now()))
    }

    /// Queues the verdict of a probed address; writes when a batch is full.
    pub(super) async fn remember(&mut self, key: String, verdict: &Verdict) {
        let Some(setup) = &self.setup else { return };
        if let Some(entry) = setup.policy.entry_for(key, verdict, setup.clock.now()) {
            self.queued.push(entry);
        }
        if self.queued.len() >= PUT_BATCH {
            self.write().await;
        }
    }

    /// Writes the queued entries.
    pub(super) async fn write(&mut self) {
        let Some(setup) = self.setup.clone() else {
            return;
        };
        if self.queued.is_empty() {
            return;
        }
        let entries = std::mem::take(&mut self.queued);
        if let Err(error) = setup.store.put_many(&entries, setup.clock.now()).await {
            self.failed("write", &error);
        }
    }

    fn failed(&mut self, what: &str, error: &CacheError) {
        metrics::counter!("rollcall_cache_errors_total", "kind" => error.as_metric_label())
            .increment(1);
        if self.errors == 0 {
            tracing::warn!(%error, "cannot {what} the result cache; its rows are verified");
        }
        self.errors += 1;
    }

    /// The time a verdict reached now is stamped with.
    pub(super) fn now(&self) -> u64 {
        match &self.setup {
            Some(setup) => setup.clock.now(),
            None => CacheClock::System.now(),
        }
    }
}
