//! Single-question answers ([`Records`]) for the checks a prober's own names need (`rollcall
//! doctor`): the A/AAAA records of a name, the PTR names of an address, the MX records of a
//! domain, each as DNS gave them.
//!
//! Owns the outcome type and the mapping from one query's outcome to it. Unlike a
//! [`crate::Resolution`] these answers are not cached by this crate, not filtered by the
//! target policy and not ordered for delivery: they say what DNS holds, so a check can name
//! it. The queries themselves run in `lookup`, through the resolver's configured nameservers
//! and timeouts (`MxResolver::addresses`, `reverse`, `mx_records`).

use crate::lookup::Outcome;

/// What DNS answered to one question (A and AAAA of a name count as one question).
///
/// Like a [`crate::Resolution`], a failed lookup is a value, never an `Err`: a temporary
/// failure is [`Records::TempFail`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Records<T> {
    /// The records found, never empty.
    Found(Vec<T>),
    /// The name exists but has no record of this type (NODATA).
    NoData,
    /// The name does not exist (NXDOMAIN), or it cannot be a DNS name at all.
    NoSuchName,
    /// SERVFAIL, REFUSED, timeout or another transient failure, after the configured attempts.
    TempFail {
        /// What went wrong, for the operator.
        reason: String,
    },
}

impl<T> Records<T> {
    /// The records found; empty for every other outcome.
    pub fn found(&self) -> &[T] {
        match self {
            Records::Found(records) => records,
            _ => &[],
        }
    }

    /// A transient failure: the question may get an answer later.
    pub fn is_temporary(&self) -> bool {
        matches!(self, Records::TempFail { .. })
    }

    /// A bounded label for metrics and logs: `found`, `no_data`, `no_such_name`, `temp_fail`.
    pub fn as_label(&self) -> &'static str {
        match self {
            Records::Found(_) => "found",
            Records::NoData => "no_data",
            Records::NoSuchName => "no_such_name",
            Records::TempFail { .. } => "temp_fail",
        }
    }
}

impl<T> From<Outcome<Vec<T>>> for Records<T> {
    fn from(outcome: Outcome<Vec<T>>) -> Self {
        match outcome {
            Outcome::Found(records, _) if records.is_empty() => Records::NoData,
            Outcome::Found(records, _) => Records::Found(records),
            Outcome::NoData(_) => Records::NoData,
            Outcome::NxDomain(_) => Records::NoSuchName,
            Outcome::Failed(reason) => Records::TempFail { reason },
        }
    }
}

#[cfg(test)]
mod tests;
