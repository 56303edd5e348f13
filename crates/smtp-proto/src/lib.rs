//! rollcall-smtp-proto: the SMTP client protocol without I/O.
//!
//! Pure functions over bytes and state: the caller owns the socket and the read buffer, feeds
//! received bytes to a [`ReplyParser`], replies to [`Session::on_reply`], and writes only the
//! bytes a `Session` method returned. Nothing here is async, nothing blocks, nothing panics on
//! what a server sends.
//!
//! Layout:
//! - `reply`: the incremental reply parser (`ReplyParser` resumes across reads), `Reply`,
//!   `EnhancedCode` (RFC 5321 4.2, RFC 3463). These and `CommandKind` are the one reply
//!   vocabulary of the workspace: the core crate classifies a `(CommandKind, &Reply)` and
//!   verdicts carry this `EnhancedCode` (feature `serde`: as its dotted string).
//! - `capabilities`: EHLO keywords (PIPELINING, STARTTLS, SIZE, SMTPUTF8, LIMITS, ...).
//! - `path`: checked mailboxes, reverse paths and the EHLO name (no control characters, ever).
//! - `command`: one type per command, each encoding its exact wire bytes; `CommandKind`, the
//!   command a reply answers; `escape_wire`.
//! - `session`: the state machine that refuses out-of-order commands before they are written.
//! - `planner`: turns a probe into pipelined groups (RFC 2920) or lockstep steps.
#![forbid(unsafe_code)]
#![warn(clippy::print_stdout, clippy::print_stderr)]

pub mod capabilities;
pub mod command;
pub mod path;
pub mod planner;
pub mod reply;
pub mod session;

pub use capabilities::Capabilities;
pub use command::{
    Command, CommandKind, Ehlo, Helo, MailFrom, Noop, Quit, RcptTo, Rset, StartTls, escape_wire,
};
pub use path::{ClientName, Mailbox, PathError, ReversePath};
pub use planner::{PlanError, PlannedCommand, TransactionPlan, Unplanned, plan_transaction};
pub use reply::{EnhancedCode, Reply, ReplyError, ReplyParser, parse_reply};
pub use session::{Event, MAX_IN_FLIGHT, SequenceError, Session, State};

/// Every error this crate reports, for callers that want one type.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    #[error(transparent)]
    Reply(#[from] ReplyError),
    #[error(transparent)]
    Sequence(#[from] SequenceError),
    #[error(transparent)]
    Path(#[from] PathError),
    #[error(transparent)]
    Plan(#[from] PlanError),
}

impl Error {
    /// A bounded label for metrics.
    pub fn as_metric_label(&self) -> &'static str {
        match self {
            Self::Reply(_) => "malformed_reply",
            Self::Sequence(_) => "sequence",
            Self::Path(_) => "invalid_path",
            Self::Plan(_) => "plan",
        }
    }
}
