//! The engine's view of an SMTP session: connect to a host, run transactions (MAIL FROM, RCPTs of
//! one domain, RSET), quit. `rollcall-smtp` implements it (`smtp_session`); the worker's logic is
//! written against this small port so that what it decides is separate from how bytes move.
//!
//! A transaction's result is the driver's own `TransactionOutcome` (replies are smtp-proto's
//! `Reply`); this module adds what the engine reads from it: the kind of failure a verdict can
//! name (`ProbeFailure`) and the reply that closed the session.

use std::net::SocketAddr;
use std::time::Duration;

use async_trait::async_trait;
pub use rollcall_smtp::proto::{Mailbox, Reply};
pub use rollcall_smtp::{NotProbed, RecipientOutcome, TransactionOutcome};

use crate::egress::Egress;

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

/// The driver's error as the kind of failure a verdict can name.
impl From<&rollcall_smtp::Error> for ProbeFailure {
    fn from(error: &rollcall_smtp::Error) -> ProbeFailure {
        use rollcall_smtp::Error as SmtpError;
        let detail = error.to_string();
        match error {
            _ if error.is_timeout() => ProbeFailure::Timeout(detail),
            SmtpError::Tls(_) | SmtpError::TlsNotOffered | SmtpError::TlsRefused(_) => {
                ProbeFailure::TlsFailed(detail)
            }
            SmtpError::MalformedReply(_)
            | SmtpError::Sequence(_)
            | SmtpError::Unsolicited { .. } => ProbeFailure::Protocol(detail),
            // RFC 5321 3.1 / 4.2.5: a 554 greeting means "no SMTP service here" for this
            // client (in practice a policy block of the prober's address); 4xx is "try later".
            SmtpError::Refused { reply, .. } if reply.code >= 500 => ProbeFailure::Blocked(detail),
            SmtpError::Refused { .. } | SmtpError::ServiceClosing(_) => {
                ProbeFailure::Temporary(detail)
            }
            _ => ProbeFailure::ConnectionFailed(detail),
        }
    }
}

/// What broke the session during a transaction (timeout, EOF, protocol error), if anything;
/// a server closing it with 421 is not a failure but [`closed_by`].
pub fn failure(outcome: &TransactionOutcome) -> Option<ProbeFailure> {
    match &outcome.error {
        None | Some(rollcall_smtp::Error::ServiceClosing(_)) => None,
        Some(other) => Some(ProbeFailure::from(other)),
    }
}

/// The reply with which the server closed the session (RFC 5321 3.8: 421), if it did: the one
/// that ended the transaction, else the first RCPT answered with it.
pub fn closed_by(outcome: &TransactionOutcome) -> Option<&Reply> {
    if let Some(rollcall_smtp::Error::ServiceClosing(reply)) = &outcome.error {
        return Some(reply);
    }
    outcome
        .recipients
        .iter()
        .filter_map(RecipientOutcome::reply)
        .find(|reply| reply.is_closing())
}

/// A live session to one host.
#[async_trait]
pub trait ProbeSession: Send {
    /// MAIL FROM the session's sender (fixed when it was opened: greylisting keys on it), RCPT
    /// TO each of `rcpts` (one domain), then RSET. Never DATA. One recipient outcome per
    /// mailbox, in order; no mailboxes: an empty outcome, nothing written.
    async fn transaction(&mut self, rcpts: &[Mailbox]) -> TransactionOutcome;
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

#[cfg(test)]
mod tests {
    use super::*;
    use rollcall_core::Reason;
    use rollcall_smtp::{Error as SmtpError, Phase};

    fn failure(error: &SmtpError) -> ProbeFailure {
        ProbeFailure::from(error)
    }

    fn refused(code: u16, text: &str) -> SmtpError {
        SmtpError::Refused {
            phase: Phase::Greeting,
            reply: Reply::new(code, None, text),
        }
    }

    #[test]
    fn a_refused_greeting_is_blocked_or_temporary_never_a_connection_failure() {
        // RFC 5321 3.1: 554 instead of 220 is "no SMTP service here" for this client.
        let blocked = failure(&refused(554, "mx.example.test no service for you"));
        assert_eq!(blocked.reason(), Reason::Blocked);
        assert_eq!(
            blocked.max_retries(),
            Some(0),
            "a policy block is not retried"
        );
        let later = failure(&refused(421, "mx.example.test try again later"));
        assert_eq!(later.reason(), Reason::Deferred);
        assert_eq!(
            later.max_retries(),
            None,
            "a 4xx greeting follows the defer schedule"
        );
        let closing = failure(&SmtpError::ServiceClosing(Reply::new(421, None, "closing")));
        assert_eq!(closing.reason(), Reason::Deferred);
        let eof = failure(&SmtpError::Eof);
        assert_eq!(eof.reason(), Reason::ConnectionFailed);
    }
}
