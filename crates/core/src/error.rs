//! The crate's one error type.
//!
//! Owns `Error`: what a caller of this crate can get back when input does not parse (an address,
//! a verdict name, an id). It does not own verdicts: a rejected mailbox is a `Verdict`, never an
//! `Error`.

use crate::syntax::SyntaxError;

/// Everything that can go wrong in `rollcall-core`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// An email address (or domain) failed the syntax check.
    #[error("invalid address: {0}")]
    InvalidAddress(#[from] SyntaxError),
    /// A name that should be one of a closed set (a status, reason, flag...) is not.
    #[error("unknown {kind} {value:?}")]
    UnknownName {
        /// What was being parsed, e.g. `"reason"`.
        kind: &'static str,
        /// The offending input, as given.
        value: String,
    },
    /// An identifier (campaign id...) is malformed.
    #[error("invalid {kind} {value:?}: {why}")]
    InvalidId {
        /// What was being parsed, e.g. `"campaign id"`.
        kind: &'static str,
        /// The offending input, as given.
        value: String,
        /// Why it was refused.
        why: &'static str,
    },
}

impl Error {
    /// True when the error is an address that failed the syntax check.
    pub fn is_invalid_address(&self) -> bool {
        matches!(self, Error::InvalidAddress(_))
    }

    /// A short, bounded label for metrics.
    pub fn as_metric_label(&self) -> &'static str {
        match self {
            Error::InvalidAddress(_) => "invalid_address",
            Error::UnknownName { .. } => "unknown_name",
            Error::InvalidId { .. } => "invalid_id",
        }
    }
}
