//! What a run adds up to: rows in and out, counts by status and reason.

use std::collections::BTreeMap;
use std::time::Duration;

use rollcall_core::ports::status_index;
use rollcall_core::{Status, Verdict};
use serde::Serialize;

/// Counts over the output rows of a run.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Summary {
    /// Input rows read.
    pub rows: u64,
    /// Output rows written (equals `rows` when the run finished).
    pub out: u64,
    pub duplicates: u64,
    /// Batches published to the queue.
    pub batches: u64,
    /// Output rows by status: deliverable, undeliverable, risky, unknown.
    pub by_status: [u64; 4],
    pub by_reason: BTreeMap<&'static str, u64>,
    pub interrupted: bool,
    /// With a result cache: rows whose verdict came from it (nothing probed).
    pub cached: u64,
    /// With a result cache: rows of an address it had no fresh verdict for (verified).
    pub cache_misses: u64,
    /// Rows whose status differs from the one the cache held (`changed` column).
    pub changed: u64,
    /// Cache reads or writes that failed (their rows were verified all the same).
    pub cache_errors: u64,
    /// Addresses that ended unknown for a temporary reason and were tried once more.
    pub second_pass: u64,
    /// Unknown rows by provider (`self_hosted`, or `none` when the address was not probed)
    /// and reason: where the unknowns are.
    pub unknown_by: BTreeMap<String, BTreeMap<&'static str, u64>>,
    #[serde(skip)]
    pub elapsed: Duration,
}

impl Summary {
    pub fn count(&mut self, verdict: &Verdict, duplicate: bool) {
        self.out += 1;
        if duplicate {
            self.duplicates += 1;
        }
        self.by_status[status_index(verdict.status())] += 1;
        *self.by_reason.entry(verdict.reason().as_str()).or_default() += 1;
        if verdict.status() == Status::Unknown {
            let provider = verdict.evidence.provider.as_deref().unwrap_or("none");
            let reasons = match self.unknown_by.get_mut(provider) {
                Some(reasons) => reasons,
                None => self.unknown_by.entry(provider.to_string()).or_default(),
            };
            *reasons.entry(verdict.reason().as_str()).or_default() += 1;
        }
    }

    /// Counts a row of a run with a result cache.
    pub fn count_cache(&mut self, note: &crate::coordinator::CacheNote, status: Status) {
        if note.cached {
            self.cached += 1;
        } else {
            self.cache_misses += 1;
        }
        if note.previous.is_some_and(|before| before != status) {
            self.changed += 1;
        }
    }

    /// Status names in `by_status` order.
    pub const STATUS_NAMES: [&'static str; 4] =
        ["deliverable", "undeliverable", "risky", "unknown"];
}
