//! Engine failures: only transport trouble with the queue or the store, or bad settings. A
//! verdict is never an error.

use rollcall_core::ports::{QueueError, StoreError};

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    #[error(transparent)]
    Queue(#[from] QueueError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("invalid setting `{setting}`: {reason}")]
    Config {
        setting: &'static str,
        reason: String,
    },
}

impl Error {
    pub fn is_transient(&self) -> bool {
        match self {
            Error::Queue(e) => e.is_transient(),
            Error::Store(e) => e.is_transient(),
            Error::Config { .. } => false,
        }
    }

    pub fn as_metric_label(&self) -> &'static str {
        match self {
            Error::Queue(e) => e.as_metric_label(),
            Error::Store(e) => e.as_metric_label(),
            Error::Config { .. } => "config",
        }
    }
}
