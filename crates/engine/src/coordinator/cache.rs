//! The coordinator's side of the result cache: a batch of input rows is looked up in one call
//! before any of them is routed, a fresh entry comes out at once (`cached = true`, its
//! `verified_at`) with no DNS or SMTP work, and every verdict reached by probing is written
//! back in batches. A cache that fails is a warning, never a verdict: its rows are verified.
//!
//! What is fresh is the `CachePolicy`'s call (TTL per verdict class, `--max-age`,
//! `--refresh`), by the setup's `CacheClock`.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use rollcall_core::ports::{
    CacheClock, CacheEntry, CacheError, CachePolicy, ResultCache, StateStore, WorkQueue,
};
use rollcall_core::{EmailAddress, Status, SyntaxError};

use super::Run;

/// Entries written per `put_many`.
pub(super) const PUT_BATCH: usize = 1000;
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

impl<Q: WorkQueue, S: StateStore, P: Send> Run<'_, Q, S, P> {
    /// The entries of the addresses among `parsed` that this run has not seen yet, by cache
    /// key, in one call to the store (none without a cache).
    pub(super) async fn look_up(
        &mut self,
        parsed: &[Result<EmailAddress, SyntaxError>],
    ) -> HashMap<String, CacheEntry> {
        let Some(cache) = self.co.cache.clone() else {
            return HashMap::new();
        };
        let mut seen = HashSet::new();
        let keys: Vec<String> = parsed
            .iter()
            .flatten()
            .filter(|a| !self.dedupe.contains_key(&a.dedupe_key()))
            .map(EmailAddress::cache_key)
            .filter(|k| seen.insert(k.clone()))
            .collect();
        if keys.is_empty() {
            return HashMap::new();
        }
        match cache.store.get_many(&keys, cache.clock.now()).await {
            Ok(found) => found
                .into_iter()
                .flatten()
                .map(|e| (e.key.clone(), e))
                .collect(),
            Err(error) => {
                self.cache_failed("read", &error);
                HashMap::new()
            }
        }
    }

    /// Queues the verdict of a probed address for the cache; writes when a batch is full.
    pub(super) async fn remember(&mut self, key: String, verdict: &rollcall_core::Verdict) {
        let Some(cache) = &self.co.cache else { return };
        if let Some(entry) = cache.policy.entry_for(key, verdict, cache.clock.now()) {
            self.to_cache.push(entry);
        }
        if self.to_cache.len() >= PUT_BATCH {
            self.write_cache().await;
        }
    }

    /// Writes the queued entries.
    pub(super) async fn write_cache(&mut self) {
        let Some(cache) = self.co.cache.clone() else {
            return;
        };
        if self.to_cache.is_empty() {
            return;
        }
        let entries = std::mem::take(&mut self.to_cache);
        if let Err(error) = cache.store.put_many(&entries, cache.clock.now()).await {
            self.cache_failed("write", &error);
        }
    }

    fn cache_failed(&mut self, what: &str, error: &CacheError) {
        metrics::counter!("rollcall_cache_errors_total", "kind" => error.as_metric_label())
            .increment(1);
        if self.summary.cache_errors == 0 {
            tracing::warn!(%error, "cannot {what} the result cache; its rows are verified");
        }
        self.summary.cache_errors += 1;
    }

    /// The time a verdict reached now is stamped with.
    pub(super) fn now(&self) -> u64 {
        match &self.co.cache {
            Some(cache) => cache.clock.now(),
            None => CacheClock::System.now(),
        }
    }
}

/// Whether `entry` may stand for a probe now.
pub(super) fn fresh(cache: &CacheSetup, entry: &CacheEntry) -> bool {
    cache.policy.is_fresh(entry, cache.clock.now())
}
