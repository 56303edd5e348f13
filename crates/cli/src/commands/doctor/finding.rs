//! What one check of `rollcall doctor` found (`Finding`: its `Status`, detail and fix), before
//! the report attributes it to an egress. Shared by the checks (`names`, `outbound`) and the
//! report (`doctor`); runs no check itself.

use serde::Serialize;

/// How a check came out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Status {
    Pass,
    Fail,
    Skip,
}

impl Status {
    pub fn label(self) -> &'static str {
        match self {
            Status::Pass => "PASS",
            Status::Fail => "FAIL",
            Status::Skip => "SKIP",
        }
    }
}

/// What one check found, before it is attributed to an egress.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Finding {
    pub status: Status,
    pub detail: String,
    /// What to do about a FAIL (or a SKIP that the operator can lift).
    pub fix: Option<String>,
}

impl Finding {
    pub fn pass(detail: impl Into<String>) -> Finding {
        Finding {
            status: Status::Pass,
            detail: detail.into(),
            fix: None,
        }
    }

    pub fn fail(detail: impl Into<String>, fix: impl Into<String>) -> Finding {
        Finding {
            status: Status::Fail,
            detail: detail.into(),
            fix: Some(fix.into()),
        }
    }

    pub fn skip(detail: impl Into<String>, fix: Option<String>) -> Finding {
        Finding {
            status: Status::Skip,
            detail: detail.into(),
            fix,
        }
    }
}
