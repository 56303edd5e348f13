//! The engine's view of an SMTP session: connect to a host, run transactions (MAIL FROM, RCPTs of
//! one domain, RSET), quit. `rollcall-smtp` implements it (`smtp_session`); the worker's logic is
//! written against this small port so that what it decides is separate from how bytes move.

use std::net::SocketAddr;
use std::time::Duration;

use async_trait::async_trait;
use rollcall_core::EnhancedCode;

use crate::egress::Egress;

/// One SMTP reply, as evidence.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplyData {
    pub code: u16,
    pub enhanced: Option<EnhancedCode>,
    pub text: String,
}

/// What became of one RCPT.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RcptOutcome {
    Replied(ReplyData),
    /// Never answered for this address (MAIL failed in the group, the session closed, ...).
    NotProbed,
    /// Past the server's advertised RCPTMAX (RFC 9422): send it in the next transaction.
    OverLimit,
    /// Cannot be sent to this server at all (a non-ASCII mailbox without SMTPUTF8).
    Unsendable(String),
}

/// Why a session could not be had or went away.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProbeFailure {
    Timeout(String),
    ConnectionFailed(String),
    TlsFailed(String),
    /// The server's bytes are not SMTP, or came when nothing was asked: retried once at most,
    /// since a server that speaks garbage rarely starts making sense.
    Protocol(String),
    /// The server refused to talk to us at all (a 5xx greeting, EHLO and HELO both refused):
    /// about the prober, not the address; not retried.
    Blocked(String),
    /// The server is temporarily unavailable (a 4xx greeting, `421` at any point, RFC 5321
    /// 3.8): retried on the defer schedule.
    Temporary(String),
}

impl ProbeFailure {
    pub fn reason(&self) -> rollcall_core::Reason {
        use rollcall_core::Reason;
        match self {
            ProbeFailure::Timeout(_) => Reason::Timeout,
            ProbeFailure::ConnectionFailed(_) => Reason::ConnectionFailed,
            ProbeFailure::TlsFailed(_) => Reason::TlsFailed,
            ProbeFailure::Protocol(_) => Reason::ProtocolError,
            ProbeFailure::Blocked(_) => Reason::Blocked,
            ProbeFailure::Temporary(_) => Reason::Deferred,
        }
    }

    /// How many retries this kind of failure deserves at most, whatever the defer schedule:
    /// retry only what can change.
    pub fn max_retries(&self) -> Option<usize> {
        match self {
            ProbeFailure::Blocked(_) => Some(0),
            ProbeFailure::Protocol(_) => Some(1),
            _ => None,
        }
    }

    pub fn detail(&self) -> &str {
        match self {
            ProbeFailure::Timeout(d)
            | ProbeFailure::ConnectionFailed(d)
            | ProbeFailure::TlsFailed(d)
            | ProbeFailure::Protocol(d)
            | ProbeFailure::Blocked(d)
            | ProbeFailure::Temporary(d) => d,
        }
    }
}

/// The result of one transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TxnOutcome {
    /// The reply to MAIL FROM, if one came.
    pub mail: Option<ReplyData>,
    /// One entry per recipient, in order.
    pub rcpts: Vec<RcptOutcome>,
    /// The server closed the session (421) with this reply.
    pub closed_by: Option<ReplyData>,
    /// The session broke (timeout, EOF, protocol error) during the transaction.
    pub failure: Option<ProbeFailure>,
    /// The RCPTs went out pipelined (RFC 2920).
    pub pipelined: bool,
}

/// A live session to one host.
#[async_trait]
pub trait ProbeSession: Send {
    /// MAIL FROM the session's sender (fixed when it was opened: greylisting keys on it), RCPT
    /// TO each of `rcpts` (one domain), then RSET. Never DATA.
    async fn transaction(&mut self, rcpts: &[String]) -> TxnOutcome;
    /// RCPTs rejected with 5xx on this session so far (the server's error count grows with them).
    fn rejected_rcpts(&self) -> u32;
    fn transactions(&self) -> u32;
    fn age(&self) -> Duration;
    /// False once closed by the server, broken, or in an unknown state.
    fn is_usable(&self) -> bool;
    fn tls(&self) -> bool;
    async fn quit(self: Box<Self>);
}

/// Opens sessions.
#[async_trait]
pub trait Connector: Send + Sync + 'static {
    /// Opens a session through `egress` (its source address or proxy, HELO name and sender) to
    /// `host` (the MX name, for SNI) at `addr`: greeting, EHLO, STARTTLS per the TLS mode,
    /// EHLO again.
    async fn connect(
        &self,
        egress: &Egress,
        host: &str,
        addr: SocketAddr,
    ) -> Result<Box<dyn ProbeSession>, ProbeFailure>;
}
