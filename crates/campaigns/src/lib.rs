//! The coordinator behind the gRPC API: `CoordinatorBackend` runs every submitted campaign
//! with the engine's `Coordinator` (over whatever `WorkQueue` and `StateStore` it is given:
//! RabbitMQ and Redis in production) and answers the `CampaignBackend` calls from what those
//! runs produce.
//!
//! Layout:
//! - `backend`: `CoordinatorBackend`, `Limits`, the `CampaignBackend` implementation
//!   (`backend/rows`: a campaign's rows fed in, recorded out and counted at submission).
//! - `campaign`: one campaign's record (its output rows, counts, state and rate).
//!
//! What is kept where: each campaign's record (name, phase, row count), its input rows and
//! its results are in the `StateStore` (Redis in production), so a restarted coordinator
//! picks up running campaigns where they were and reads finished ones back
//! (`CoordinatorBackend::resume`). Output rows, counts and the rate are also kept in this
//! process's memory for the API's calls. It does not probe (the workers do) and does not
//! speak gRPC (the `rollcall-api` crate does).
#![forbid(unsafe_code)]
#![warn(clippy::print_stdout, clippy::print_stderr)]

mod backend;
mod campaign;

pub use backend::{CoordinatorBackend, Limits};

/// Why the coordinator backend could not be set up.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A limit of zero would refuse every campaign.
    #[error("invalid limit: {0}")]
    InvalidLimit(&'static str),
}
