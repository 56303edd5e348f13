//! The port between the gRPC service and whatever runs campaigns (the coordinator).
//!
//! Owns `CampaignBackend` and the plain types it speaks: `SubmitOptions`, `SubmitOutcome`,
//! `CampaignState`, `ProgressSnapshot`, `ResultRecord` and `BackendError`. Nothing here knows
//! gRPC: the coordinator implements this trait without seeing a tonic type, and the service
//! (`service`, `watch`) builds every RPC, streaming included, on these five calls. Two more,
//! with defaults that keep nothing, let the HTTP API's webhooks survive a restart of a backend
//! that keeps its campaigns (`webhook_save`, `webhooks_to_resume`).

use std::pin::Pin;
use std::sync::Arc;

use async_trait::async_trait;
use futures_util::Stream;
use rollcall_core::ports::{Progress, WebhookState};
use rollcall_core::{CampaignId, Verdict};

/// The addresses of a submission, chunk by chunk, as the client streams them. An `Err` item
/// means the submission is broken (the client sent options twice, or its stream failed): the
/// backend should drop what it has and return that error.
pub type AddressChunks = Pin<Box<dyn Stream<Item = Result<Vec<String>, BackendError>> + Send>>;

/// What runs campaigns. Implemented by the coordinator (embedded or distributed); the gRPC
/// service only calls these methods.
#[async_trait]
pub trait CampaignBackend: Send + Sync + 'static {
    /// Creates a campaign from `options` and every address in `chunks`, in order (rows are
    /// numbered from 0 across chunks). Returns once the stream has ended and every address is
    /// accounted for.
    async fn submit(
        &self,
        options: SubmitOptions,
        chunks: AddressChunks,
    ) -> Result<SubmitOutcome, BackendError>;

    /// Where the campaign stands now. `NotFound` for an unknown campaign.
    async fn progress(&self, campaign: &CampaignId) -> Result<ProgressSnapshot, BackendError>;

    /// The results recorded after `cursor` (start at 0), at most `max`, in the order they were
    /// recorded, and the cursor to continue from. An empty page means "nothing more yet". The
    /// cursor is opaque to the caller; the same cursor gives the same results again.
    async fn results_since(
        &self,
        campaign: &CampaignId,
        cursor: u64,
        max: usize,
    ) -> Result<(Vec<ResultRecord>, u64), BackendError>;

    /// Cancels the campaign (no new address is probed) and returns its progress afterwards.
    /// Cancelling a finished campaign changes nothing and returns its final progress.
    async fn cancel(&self, campaign: &CampaignId) -> Result<ProgressSnapshot, BackendError>;

    /// Verifies one address now, outside any campaign. Input that is not an address gets its
    /// `invalid_syntax` verdict, not an error.
    async fn verify_one(&self, address: &str) -> Result<Verdict, BackendError>;

    /// Keeps `campaign`'s webhook state (settings and delivery progress) with the campaign,
    /// for `webhooks_to_resume` after a restart. The default keeps nothing: a backend whose
    /// campaigns do not outlive the process has nothing to resume.
    async fn webhook_save(
        &self,
        _campaign: &CampaignId,
        _state: &WebhookState,
    ) -> Result<(), BackendError> {
        Ok(())
    }

    /// The webhooks of the campaigns picked up at start whose deliveries were not finished
    /// (their completion event not yet delivered), each handed out once.
    async fn webhooks_to_resume(&self) -> Result<Vec<(CampaignId, WebhookState)>, BackendError> {
        Ok(Vec::new())
    }
}

/// How to run a campaign (validated by the service before the backend sees it). `None` means
/// "the server's configured value".
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SubmitOptions {
    /// A name for people; not unique. At most `SubmitOptions::MAX_NAME_CHARS` characters, no
    /// control characters.
    pub name: String,
    /// EHLO host name override (no control characters or spaces).
    pub helo: Option<String>,
    /// MAIL FROM reverse-path override; `Some("")` is the null reverse path `<>`.
    pub mail_from: Option<String>,
    /// Concurrent sessions per site, at least 1.
    pub max_sessions: Option<u32>,
    /// Sustained RCPT TO per minute per site, at least 1.
    pub rcpt_per_minute: Option<u32>,
    /// RCPT TO per transaction, at least 1.
    pub rcpt_per_transaction: Option<u32>,
    /// The longest an address waits for retries, counted from its first wait, in seconds;
    /// 0: no bound beyond the retry schedules; `None`: the fleet's setting.
    pub max_wait_secs: Option<u32>,
}

impl SubmitOptions {
    /// Longest accepted campaign name, in characters.
    pub const MAX_NAME_CHARS: usize = 200;
}

/// What the backend made of a submitted list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubmitOutcome {
    /// The new campaign.
    pub campaign_id: CampaignId,
    /// Addresses taken for verification.
    pub accepted: u64,
    /// Entries repeating an earlier address of the list (after normalisation).
    pub duplicate: u64,
    /// Entries that are not valid addresses.
    pub invalid: u64,
}

/// Where a campaign is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CampaignState {
    /// Accepted, not yet probing.
    Pending,
    /// Probing.
    Running,
    /// Every address has its result.
    Done,
    /// Cancelled by a client.
    Cancelled,
    /// Stopped by an error.
    Failed,
}

impl CampaignState {
    /// Every state.
    pub const ALL: [CampaignState; 5] = [
        CampaignState::Pending,
        CampaignState::Running,
        CampaignState::Done,
        CampaignState::Cancelled,
        CampaignState::Failed,
    ];

    /// True once nothing will change any more (done, cancelled or failed).
    pub fn is_final(self) -> bool {
        matches!(
            self,
            CampaignState::Done | CampaignState::Cancelled | CampaignState::Failed
        )
    }
}

/// A campaign's progress at one moment.
#[derive(Debug, Clone, PartialEq)]
pub struct ProgressSnapshot {
    /// The campaign.
    pub campaign_id: CampaignId,
    /// Where it is in its life.
    pub state: CampaignState,
    /// Total, done and counts by status, as the `StateStore` keeps them.
    pub counts: Progress,
    /// Recent results per second (0 when nothing is moving).
    pub rate_per_s: f64,
    /// Why it failed or was cancelled, when there is something to say.
    pub detail: Option<String>,
}

impl ProgressSnapshot {
    /// Estimated seconds until done: 0 once final, `None` while there is no rate to go by.
    pub fn eta_s(&self) -> Option<f64> {
        if self.state.is_final() {
            return Some(0.0);
        }
        let remaining = self.counts.total.saturating_sub(self.counts.done);
        if remaining == 0 {
            return Some(0.0);
        }
        (self.rate_per_s.is_finite() && self.rate_per_s > 0.0)
            .then(|| remaining as f64 / self.rate_per_s)
    }
}

/// One recorded result of a campaign.
#[derive(Debug, Clone, PartialEq)]
pub struct ResultRecord {
    /// 0-based position of the entry in the submitted list.
    pub row: u64,
    /// True when the entry repeats an earlier address; `verdict` is then the earlier one's
    /// (hence the `Arc`: duplicates share it).
    pub duplicate: bool,
    /// The verdict.
    pub verdict: Arc<Verdict>,
}

/// Why a backend call failed. Each variant becomes one gRPC status code (in `error`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BackendError {
    /// No such campaign (`NOT_FOUND`).
    #[error("not found: {0}")]
    NotFound(String),
    /// The request cannot be served as given (`INVALID_ARGUMENT`).
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    /// A dependency (store, queue) is unreachable; retry later (`UNAVAILABLE`).
    #[error("unavailable: {0}")]
    Unavailable(String),
    /// A limit of the server is reached (a submission too large, too many campaigns running);
    /// nothing of the request was kept (`RESOURCE_EXHAUSTED`).
    #[error("resource exhausted: {0}")]
    ResourceExhausted(String),
    /// A bug or broken invariant (`INTERNAL`).
    #[error("internal: {0}")]
    Internal(String),
}

impl BackendError {
    /// True for failures worth retrying later.
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            BackendError::Unavailable(_) | BackendError::ResourceExhausted(_)
        )
    }

    /// A short, bounded label for metrics.
    pub fn as_metric_label(&self) -> &'static str {
        match self {
            BackendError::NotFound(_) => "not_found",
            BackendError::InvalidArgument(_) => "invalid_argument",
            BackendError::Unavailable(_) => "unavailable",
            BackendError::ResourceExhausted(_) => "resource_exhausted",
            BackendError::Internal(_) => "internal",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn snapshot(state: CampaignState, total: u64, done: u64, rate: f64) -> ProgressSnapshot {
        ProgressSnapshot {
            campaign_id: CampaignId::new("c1").unwrap(),
            state,
            counts: Progress {
                total,
                done,
                by_status: [done, 0, 0, 0],
            },
            rate_per_s: rate,
            detail: None,
        }
    }

    #[test]
    fn eta_follows_rate_and_state() {
        assert_eq!(
            snapshot(CampaignState::Running, 100, 40, 6.0).eta_s(),
            Some(10.0)
        );
        assert_eq!(snapshot(CampaignState::Running, 100, 40, 0.0).eta_s(), None);
        assert_eq!(
            snapshot(CampaignState::Running, 100, 40, f64::NAN).eta_s(),
            None
        );
        assert_eq!(
            snapshot(CampaignState::Cancelled, 100, 40, 0.0).eta_s(),
            Some(0.0)
        );
        assert_eq!(
            snapshot(CampaignState::Running, 100, 100, 0.0).eta_s(),
            Some(0.0)
        );
    }

    #[test]
    fn only_done_cancelled_failed_are_final() {
        let finals: Vec<_> = CampaignState::ALL
            .into_iter()
            .filter(|s| s.is_final())
            .collect();
        assert_eq!(
            finals,
            [
                CampaignState::Done,
                CampaignState::Cancelled,
                CampaignState::Failed
            ]
        );
    }
}
