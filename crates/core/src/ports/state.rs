//! `StateStore`: the state the whole fleet shares. Every operation is one atomic step (one Lua
//! script in Redis), so two workers never both take the last session slot of a site, never both
//! count a result, and all see the same circuit.

use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use super::{Batch, ItemResult, WebhookState};
use crate::{CampaignId, ItemId, Status};

/// Failures of the store transport.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    #[error("state store transport: {0}")]
    Transport(String),
    #[error("state store data: {0}")]
    Data(String),
}

impl StoreError {
    pub fn is_transient(&self) -> bool {
        matches!(self, StoreError::Transport(_))
    }

    pub fn as_metric_label(&self) -> &'static str {
        match self {
            StoreError::Transport(_) => "transport",
            StoreError::Data(_) => "data",
        }
    }
}

/// A GCRA rate: `per_minute` sustained with `burst` at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct RateLimit {
    pub per_minute: u32,
    pub burst: u32,
}

impl RateLimit {
    /// The largest number of cells one take may ask for (at least 1).
    pub fn max_take(&self) -> u32 {
        self.burst.max(1)
    }

    /// `cells` as a take this rate can grant, or why not: one take is 1 to `max_take` cells.
    pub fn check_take(&self, cells: u32) -> Result<(), StoreError> {
        if cells == 0 || cells > self.max_take() {
            return Err(StoreError::Data(format!(
                "a rate take asked for {cells} cells; one take is 1 to {} (the burst)",
                self.max_take()
            )));
        }
        Ok(())
    }

    /// The emission interval T of GCRA.
    pub fn interval(&self) -> Duration {
        Duration::from_secs_f64(60.0 / f64::from(self.per_minute.max(1)))
    }
}

/// The answer to a rate request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RateDecision {
    /// The cells were taken.
    Granted,
    /// Nothing was taken; ask again after this long.
    Wait(Duration),
}

/// A fleet-wide session slot at a site. Released explicitly, or lapses after its TTL (a dead
/// worker's leases free themselves).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    pub site: String,
    pub token: String,
}

/// Circuit policy per host: opens after `failures_to_open` consecutive failures, stays open
/// `base` doubling per reopening up to `max`, then lets one probe through (half-open).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BackoffPolicy {
    pub failures_to_open: u32,
    pub base: Duration,
    pub max: Duration,
}

impl Default for BackoffPolicy {
    fn default() -> Self {
        // Opens after 5 consecutive failures, 60 s doubling to 1 h (the defaults
        // docs/operations.md gives under RollcallCircuitsOpenLong).
        BackoffPolicy {
            failures_to_open: 5,
            base: Duration::from_secs(60),
            max: Duration::from_secs(3600),
        }
    }
}

impl BackoffPolicy {
    /// How long the circuit stays open after its `opened`-th opening (1-based).
    pub fn open_for(&self, opened: u32) -> Duration {
        let factor = 1u32
            .checked_shl(opened.saturating_sub(1))
            .unwrap_or(u32::MAX);
        self.base.saturating_mul(factor).min(self.max)
    }
}

/// May this worker talk to a host now?
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CircuitDecision {
    Closed,
    /// The open period is over: this caller is the one probe allowed through.
    HalfOpenProbe,
    Open {
        retry_after: Duration,
    },
}

/// A greylisted batch waiting for its retry time; the retry goes out through the same egress
/// with the same sender (greylisting keys on both), as the batch's pin (`Batch::egress`) says.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GreylistEntry {
    pub batch: Batch,
    /// The store's name for the entry, set on the entries `greylist_take_due` hands out (for
    /// `greylist_done`); not part of what is stored.
    #[serde(skip)]
    pub id: Option<String>,
}

impl GreylistEntry {
    /// An entry for `batch`, not yet in a store.
    pub fn new(batch: Batch) -> Self {
        GreylistEntry { batch, id: None }
    }
}

/// How long an entry handed out by `greylist_take_due` stays out of the schedule: its taker
/// publishes it and calls `greylist_done` well within this; a taker that dies first (kill -9
/// between the two) leaves it to come due again this much later, for another worker.
pub const GREYLIST_LEASE: Duration = Duration::from_secs(30);

/// Progress of a campaign, read from counters.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Progress {
    pub total: u64,
    pub done: u64,
    /// Counts indexed by `Status as usize` (deliverable, undeliverable, risky, unknown).
    pub by_status: [u64; 4],
}

/// Where a stored campaign stands. `Uploading` and `Running` are the phases a restarted
/// coordinator acts on: an upload it did not finish failed, a run it did not finish resumes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CampaignPhase {
    Uploading,
    Running,
    Done,
    Cancelled,
    Failed,
}

impl CampaignPhase {
    /// Done, cancelled or failed: nothing will change it any more.
    pub fn is_final(self) -> bool {
        matches!(
            self,
            CampaignPhase::Done | CampaignPhase::Cancelled | CampaignPhase::Failed
        )
    }
}

/// What the store keeps of a campaign besides its input rows and results: enough for a
/// restarted coordinator to list it and pick it up again.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CampaignRecord {
    pub id: CampaignId,
    pub name: String,
    pub phase: CampaignPhase,
    /// Why it was cancelled or failed.
    pub detail: Option<String>,
    /// Input rows stored so far (all of them once the upload is complete).
    pub rows: u64,
    /// When it was submitted, in milliseconds since the epoch (orders `campaign_list`).
    pub created_ms: u64,
    /// The campaign's own bound on retry waits, in ms (0: none); `None`: the workers'.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_wait_ms: Option<u64>,
}

/// The fleet's shared state.
#[async_trait]
pub trait StateStore: Send + Sync + 'static {
    /// Take `cells` from the GCRA bucket `key`, or say how long to wait. `cells` must be in
    /// `1..=burst`: more could never be granted at once, and a store that took fewer than asked
    /// would let the caller send more than its rate, so anything else is `StoreError::Data`.
    async fn rate_take(
        &self,
        key: &str,
        limit: RateLimit,
        cells: u32,
    ) -> Result<RateDecision, StoreError>;

    /// Take one of `cap` session slots at `site` for `ttl`, or `None` when all are taken.
    async fn lease_acquire(
        &self,
        site: &str,
        holder: &str,
        cap: u32,
        ttl: Duration,
    ) -> Result<Option<Lease>, StoreError>;
    /// Extend a lease; false when it had lapsed (and may now be someone else's slot).
    async fn lease_renew(&self, lease: &Lease, ttl: Duration) -> Result<bool, StoreError>;
    async fn lease_release(&self, lease: &Lease) -> Result<(), StoreError>;
    /// Live (unexpired) leases at `site`.
    async fn lease_count(&self, site: &str) -> Result<u32, StoreError>;

    async fn circuit_check(&self, host: &str) -> Result<CircuitDecision, StoreError>;
    /// Report the outcome of talking to `host` (success closes the circuit).
    async fn circuit_report(
        &self,
        host: &str,
        success: bool,
        policy: &BackoffPolicy,
    ) -> Result<(), StoreError>;

    /// Is `domain` catch-all? `None` when not known (or expired).
    async fn catch_all_get(&self, domain: &str) -> Result<Option<bool>, StoreError>;
    async fn catch_all_put(
        &self,
        domain: &str,
        catch_all: bool,
        ttl: Duration,
    ) -> Result<(), StoreError>;

    /// Schedule a greylist retry at `due`.
    async fn greylist_schedule(
        &self,
        entry: &GreylistEntry,
        due: SystemTime,
    ) -> Result<(), StoreError>;
    /// Hand out up to `max` entries due at `now`, in due order, each with its `id`. They stay in
    /// the schedule, due again `GREYLIST_LEASE` after `now`, until `greylist_done` forgets
    /// them: a retry whose taker dies before publishing it is not lost (at least once; a
    /// worker skips items already recorded).
    async fn greylist_take_due(
        &self,
        now: SystemTime,
        max: usize,
    ) -> Result<Vec<GreylistEntry>, StoreError>;
    /// Forget entries handed out by `greylist_take_due` (their retries are published).
    /// Entries already forgotten are skipped.
    async fn greylist_done(&self, entries: &[GreylistEntry]) -> Result<(), StoreError>;
    /// Entries waiting in the schedule.
    async fn greylist_pending(&self) -> Result<u64, StoreError>;

    /// Register a campaign's total (may be raised while input is still streaming).
    async fn campaign_add_total(&self, campaign: &CampaignId, n: u64) -> Result<(), StoreError>;
    /// Record results idempotently: an item already recorded is skipped and not counted again.
    /// Returns how many were new. Taken by value: the in-memory store keeps them as they are.
    async fn record_results(
        &self,
        campaign: &CampaignId,
        results: Vec<ItemResult>,
    ) -> Result<usize, StoreError>;
    /// Recorded results after `cursor`, at most `max`, and the cursor to continue from.
    async fn results_since(
        &self,
        campaign: &CampaignId,
        cursor: u64,
        max: usize,
    ) -> Result<(Vec<ItemResult>, u64), StoreError>;
    /// The reader is done with everything up to `cursor`; the store may forget it.
    async fn results_trim(&self, campaign: &CampaignId, cursor: u64) -> Result<(), StoreError>;
    async fn progress(&self, campaign: &CampaignId) -> Result<Progress, StoreError>;
    /// For each of `items`, whether a result is recorded for it (in the same order).
    async fn results_recorded(
        &self,
        campaign: &CampaignId,
        items: &[ItemId],
    ) -> Result<Vec<bool>, StoreError>;

    /// Creates or replaces a campaign's record.
    async fn campaign_save(&self, record: &CampaignRecord) -> Result<(), StoreError>;
    /// Every stored campaign, oldest first.
    async fn campaign_list(&self) -> Result<Vec<CampaignRecord>, StoreError>;
    /// Stores input rows `first..first + rows.len()` (0-based). Idempotent: rows already
    /// stored are not stored twice; a gap (`first` past the rows stored) is an error.
    async fn campaign_append_input(
        &self,
        campaign: &CampaignId,
        first: u64,
        rows: &[String],
    ) -> Result<(), StoreError>;
    /// Up to `max` stored input rows from `from` (0-based).
    async fn campaign_input(
        &self,
        campaign: &CampaignId,
        from: u64,
        max: usize,
    ) -> Result<Vec<String>, StoreError>;
    /// Creates or replaces a campaign's webhook state (its settings and delivery progress).
    async fn webhook_save(
        &self,
        campaign: &CampaignId,
        state: &WebhookState,
    ) -> Result<(), StoreError>;
    /// The campaign's webhook state, if it has one.
    async fn webhook_load(&self, campaign: &CampaignId)
    -> Result<Option<WebhookState>, StoreError>;
    /// Forgets a campaign: its record, input, results, progress and webhook state.
    async fn campaign_delete(&self, campaign: &CampaignId) -> Result<(), StoreError>;
}

/// Index of a status in `Progress::by_status`.
pub fn status_index(status: Status) -> usize {
    match status {
        Status::Deliverable => 0,
        Status::Undeliverable => 1,
        Status::Risky => 2,
        Status::Unknown => 3,
    }
}
