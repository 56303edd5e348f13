//! The driver's error type: why a session could not be opened or went away.
//!
//! Owns the mapping of failures to the engine's verdict reasons (`timeout`, `connection_failed`,
//! `tls_failed`, `protocol_error`, ...) through `as_metric_label`. A negative reply to RCPT is
//! never an error: it is data in a `TransactionOutcome`.

use std::fmt;
use std::io;
use std::net::SocketAddr;

use rollcall_smtp_proto::{CommandKind, PlanError, Reply, ReplyError, SequenceError};

/// What the client was waiting for when time ran out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    Connect,
    Greeting,
    TlsHandshake,
    /// Writing a command or waiting for its reply.
    Command(CommandKind),
}

impl fmt::Display for Phase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Connect => f.write_str("connect"),
            Self::Greeting => f.write_str("greeting"),
            Self::TlsHandshake => f.write_str("TLS handshake"),
            Self::Command(c) => write!(f, "{c}"),
        }
    }
}

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// TCP connect (or binding the egress address) failed.
    #[error("cannot connect to {addr}: {source}")]
    Connect {
        addr: SocketAddr,
        #[source]
        source: io::Error,
    },
    /// Connecting through the SOCKS5 proxy failed: the proxy could not be reached, refused us
    /// (authentication, its rules) or could not reach `target`. The source's kind says which:
    /// `PermissionDenied`, `InvalidData`, `Unsupported` and `InvalidInput` are the proxy's
    /// configuration (not transient); the others (refused, unreachable, reset) are.
    #[error("cannot connect to {target} via SOCKS5 proxy {proxy}: {source}")]
    Proxy {
        proxy: SocketAddr,
        target: SocketAddr,
        #[source]
        source: io::Error,
    },
    /// The client configuration cannot work (settings that exclude each other); nothing was
    /// sent. See `ClientConfig::validate`.
    #[error("invalid client config: {0}")]
    Config(&'static str),
    /// A per-phase timeout fired.
    #[error("timed out waiting for {0}")]
    Timeout(Phase),
    /// The socket failed after connecting.
    #[error("connection lost: {0}")]
    Io(#[from] io::Error),
    /// The server closed the connection without a 421.
    #[error("connection closed by the server")]
    Eof,
    /// The TLS handshake failed.
    #[error("TLS handshake failed: {0}")]
    Tls(String),
    /// `TlsMode::Require` and the server did not advertise STARTTLS.
    #[error("STARTTLS required but not advertised by the server")]
    TlsNotOffered,
    /// `TlsMode::Require` and STARTTLS got a negative reply.
    #[error("STARTTLS refused: {0}")]
    TlsRefused(Reply),
    /// The server's bytes are not SMTP.
    #[error("malformed reply: {0}")]
    MalformedReply(#[from] ReplyError),
    /// A reply that fits no command (unsolicited), or a command the state machine refused.
    #[error("protocol sequence: {0}")]
    Sequence(#[from] SequenceError),
    /// The server sent bytes no command asked for (a second reply, lines after the greeting,
    /// replies beyond a pipelined group). Replies are matched to commands by order only
    /// (RFC 2920 3.1), so from here on no reply on this session can be trusted.
    #[error("server sent {bytes} bytes nobody asked for{}", before.map(|k| format!(" (before {k})")).unwrap_or_default())]
    Unsolicited {
        /// The command about to be written when they were found (`None`: after the last reply
        /// of a transaction).
        before: Option<CommandKind>,
        bytes: usize,
    },
    /// The server refused the session (negative greeting, or both EHLO and HELO rejected).
    #[error("{phase} refused: {reply}")]
    Refused { phase: Phase, reply: Reply },
    /// 421: the server is closing the channel (RFC 5321 3.8); try later.
    #[error("service not available: {0}")]
    ServiceClosing(Reply),
    /// The session is no longer usable (closed earlier).
    #[error("session closed")]
    Closed,
    /// The probe could not be planned (mixed domains, no recipients, ...).
    #[error("cannot plan transaction: {0}")]
    Plan(#[from] PlanError),
}

impl Error {
    pub fn is_timeout(&self) -> bool {
        matches!(self, Self::Timeout(_))
    }

    /// Worth retrying later (another session, another time).
    pub fn is_transient(&self) -> bool {
        match self {
            Self::Connect { .. }
            | Self::Timeout(_)
            | Self::Io(_)
            | Self::Eof
            | Self::ServiceClosing(_)
            | Self::Closed => true,
            Self::Proxy { source, .. } => !matches!(
                source.kind(),
                io::ErrorKind::PermissionDenied
                    | io::ErrorKind::InvalidData
                    | io::ErrorKind::Unsupported
                    | io::ErrorKind::InvalidInput
            ),
            Self::Refused { reply, .. } => reply.is_transient(),
            Self::TlsRefused(reply) => reply.is_transient(),
            Self::Tls(_)
            | Self::TlsNotOffered
            | Self::MalformedReply(_)
            | Self::Sequence(_)
            | Self::Unsolicited { .. }
            | Self::Plan(_)
            | Self::Config(_) => false,
        }
    }

    /// A bounded label for metrics; also the verdict reason the engine records.
    pub fn as_metric_label(&self) -> &'static str {
        match self {
            Self::Timeout(_) => "timeout",
            // Through a proxy or not, the MX host was not reached: the same verdict reason (the
            // text says it was the proxy).
            Self::Connect { .. } | Self::Proxy { .. } | Self::Io(_) | Self::Eof | Self::Closed => {
                "connection_failed"
            }
            Self::Tls(_) | Self::TlsNotOffered | Self::TlsRefused(_) => "tls_failed",
            Self::MalformedReply(_) | Self::Sequence(_) | Self::Unsolicited { .. } => {
                "protocol_error"
            }
            Self::Refused { .. } => "refused",
            Self::ServiceClosing(_) => "service_unavailable",
            Self::Plan(_) => "invalid_request",
            Self::Config(_) => "invalid_config",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_and_predicates() {
        let t = Error::Timeout(Phase::Greeting);
        assert!(t.is_timeout() && t.is_transient());
        assert_eq!(t.as_metric_label(), "timeout");
        assert_eq!(t.to_string(), "timed out waiting for greeting");
        let tls = Error::Tls("bad".into());
        assert!(!tls.is_timeout() && !tls.is_transient());
        assert_eq!(tls.as_metric_label(), "tls_failed");
        assert_eq!(Error::Eof.as_metric_label(), "connection_failed");
        let refused = Error::Refused {
            phase: Phase::Greeting,
            reply: Reply::new(554, None, "no"),
        };
        assert!(!refused.is_transient());
        assert_eq!(
            Error::MalformedReply(ReplyError::BadCode).as_metric_label(),
            "protocol_error"
        );
        assert_eq!(
            Error::Timeout(Phase::Command(CommandKind::RcptTo)).to_string(),
            "timed out waiting for RCPT"
        );
    }

    #[test]
    fn proxy_failures_say_it_was_the_proxy() {
        let proxy: SocketAddr = "127.0.0.1:1080".parse().unwrap();
        let target: SocketAddr = "127.0.0.25:25".parse().unwrap();
        let refused = Error::Proxy {
            proxy,
            target,
            source: io::Error::new(io::ErrorKind::ConnectionRefused, "cannot reach the proxy"),
        };
        assert_eq!(
            refused.to_string(),
            "cannot connect to 127.0.0.25:25 via SOCKS5 proxy 127.0.0.1:1080: cannot reach the proxy"
        );
        assert!(refused.is_transient() && !refused.is_timeout());
        assert_eq!(refused.as_metric_label(), "connection_failed");
        let auth = Error::Proxy {
            proxy,
            target,
            source: io::Error::new(io::ErrorKind::PermissionDenied, "rejected"),
        };
        assert!(!auth.is_transient());
        assert_eq!(auth.as_metric_label(), "connection_failed");
        let config = Error::Config("x");
        assert!(!config.is_transient());
        assert_eq!(config.as_metric_label(), "invalid_config");
    }
}
