//! The coordinator behind the gRPC API: `CoordinatorBackend` runs every submitted campaign
//! with the engine's `Coordinator` (over whatever `WorkQueue` and `StateStore` it is given:
//! RabbitMQ and Redis in production) and answers the `CampaignBackend` calls from what those
//! runs produce.
//!
//! Layout:
//! - `backend`: `CoordinatorBackend`, `Limits`, the `CampaignBackend` implementation.
//! - `campaign`: one campaign's record (its output rows, counts, state and rate).
//!
//! What is kept where: the campaigns' output rows, counts and states live in this process's
//! memory only. A restarted coordinator has forgotten every campaign it ran (the batches it
//! published stay on the queue and the workers still record their results in the store, but
//! nothing reads them back). It does not probe (the workers do) and does not speak gRPC (the
//! `rollcall-api` crate does).
#![forbid(unsafe_code)]

mod backend;
mod campaign;

pub use backend::{CoordinatorBackend, Limits};

/// Why the service could not be set up.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A limit of zero would refuse every campaign.
    #[error("invalid limit: {0}")]
    InvalidLimit(&'static str),
}
