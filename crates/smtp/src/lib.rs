//! rollcall-smtp: the tokio SMTP client that probes recipients without sending mail.
//!
//! Every byte written comes from the sans-IO state machine in `rollcall-smtp-proto`; this crate
//! adds the socket (direct, or through a SOCKS5 proxy), STARTTLS (tokio-rustls, ring), per-phase
//! timeouts and transcripts. Which warm session to reuse and when to retire it is the engine's
//! (`rollcall-engine`'s site runner), not this crate's.
//!
//! Layout:
//! - `config`: `ClientConfig` (EHLO name, timeouts, TLS mode, egress address or SOCKS5 proxy)
//!   and `TlsMode`.
//! - `connection`: socket (direct or tunnelled), read buffer, reply framing, in-place TLS
//!   upgrade.
//! - `proxy`: `Socks5Proxy` (`socks5://[user:pass@]IP:port`, password never printed) and the
//!   SOCKS5 handshake (tokio-socks) whose tunnel carries SMTP and STARTTLS unchanged.
//! - `session`: `Session`: opening (greeting, EHLO/HELO, STARTTLS, EHLO), QUIT, what it learned.
//! - `transaction`: `Session::probe`: MAIL, RCPTs (pipelined or lockstep), RSET; the outcome.
//! - `tls`: rustls configuration and the recorded certificate check.
//! - `transcript`: bounded `C:`/`S:` transcript.
//! - `error`: `Error` and `Phase`.
#![forbid(unsafe_code)]
#![warn(clippy::print_stdout, clippy::print_stderr)]

mod config;
mod connection;
mod error;
mod proxy;
mod session;
mod tls;
mod transaction;
mod transcript;

pub use config::{ClientConfig, TlsMode};
pub use error::{Error, Phase};
pub use proxy::Socks5Proxy;
pub use session::{Session, SessionStats};
pub use tls::TlsInfo;
pub use transaction::{NotProbed, RecipientOutcome, TransactionOutcome};
pub use transcript::Transcript;

/// The protocol crate, re-exported so callers name one version of `Reply`, `Mailbox`, ...
pub use rollcall_smtp_proto as proto;
