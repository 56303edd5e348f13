//! The coordinator's limits on what clients can make the fleet do: bytes per submission,
//! campaigns running at once, concurrent `Verify` calls and calls per minute per token.
//! Flattened into `rollcall coordinator`; the limits themselves are enforced by
//! `rollcall_campaigns::Limits` (what a campaign may hold, how many run) and
//! `rollcall_api::CallLimits` (per call). Over a limit a client gets RESOURCE_EXHAUSTED.

use std::num::{NonZeroU32, NonZeroU64, NonZeroUsize};

use rollcall_api::CallLimits;
use rollcall_campaigns::Limits;

/// Flags of the API limits.
#[derive(Debug, Clone, clap::Args)]
pub struct ApiLimitFlags {
    /// Most bytes of addresses one submission may hold; a larger list is refused with
    /// RESOURCE_EXHAUSTED and nothing of it is kept.
    #[arg(
        long,
        value_name = "BYTES",
        env = "ROLLCALL_MAX_SUBMISSION_BYTES",
        default_value_t = nonzero_u64(Limits::default().max_submission_bytes)
    )]
    pub max_submission_bytes: NonZeroU64,

    /// Most campaigns uploading or running at once; another submission is refused with
    /// RESOURCE_EXHAUSTED until one finishes or is cancelled.
    #[arg(
        long,
        value_name = "N",
        env = "ROLLCALL_MAX_RUNNING_CAMPAIGNS",
        default_value_t = nonzero_usize(Limits::default().max_running_campaigns)
    )]
    pub max_running_campaigns: NonZeroUsize,

    /// Most Verify calls (one address, probed now) running at once; another is refused with
    /// RESOURCE_EXHAUSTED.
    #[arg(
        long,
        value_name = "N",
        env = "ROLLCALL_MAX_CONCURRENT_VERIFY",
        default_value_t = CallLimits::default().max_concurrent_verify
    )]
    pub max_concurrent_verify: NonZeroUsize,

    /// API calls per minute per token (all callers together without a token), sustained, with
    /// bursts of up to a minute's worth; beyond, calls fail with RESOURCE_EXHAUSTED.
    #[arg(
        long,
        value_name = "N",
        env = "ROLLCALL_REQUESTS_PER_MINUTE",
        default_value_t = CallLimits::default().requests_per_minute
    )]
    pub requests_per_minute: NonZeroU32,
}

impl ApiLimitFlags {
    /// The backend's limits, with the row and retention limits given by their own flags.
    pub(crate) fn backend(&self, max_rows: u64, keep_finished: usize) -> Limits {
        Limits {
            max_rows,
            keep_finished,
            max_submission_bytes: self.max_submission_bytes.get(),
            max_running_campaigns: self.max_running_campaigns.get(),
        }
    }

    /// The per-call limits.
    pub(crate) fn calls(&self) -> CallLimits {
        CallLimits {
            max_concurrent_verify: self.max_concurrent_verify,
            requests_per_minute: self.requests_per_minute,
        }
    }
}

fn nonzero_u64(n: u64) -> NonZeroU64 {
    NonZeroU64::new(n).unwrap_or(NonZeroU64::MIN)
}

fn nonzero_usize(n: usize) -> NonZeroUsize {
    NonZeroUsize::new(n).unwrap_or(NonZeroUsize::MIN)
}
