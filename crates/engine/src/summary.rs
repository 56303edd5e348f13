//! What a run adds up to: rows in and out, counts by status and reason.

use std::collections::BTreeMap;
use std::time::Duration;

use rollcall_core::Verdict;
use rollcall_core::ports::status_index;
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
    }

    /// Status names in `by_status` order.
    pub const STATUS_NAMES: [&'static str; 4] =
        ["deliverable", "undeliverable", "risky", "unknown"];
}
