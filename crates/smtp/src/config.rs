//! Client configuration: the EHLO name, per-phase timeouts, TLS mode, the way out (egress
//! address or SOCKS5 proxy).
//!
//! Owns the defaults and why they are what they are, and which settings exclude each other
//! ([`ClientConfig::validate`]). Does not own when a warm session is retired (the engine's
//! `Shaping`) or the proxy URL syntax (`proxy::Socks5Proxy`).

use std::net::IpAddr;
use std::time::Duration;

use rollcall_smtp_proto::ClientName;

use crate::error::Error;
use crate::proxy::Socks5Proxy;

/// What to do with STARTTLS.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TlsMode {
    /// Use STARTTLS when advertised; do not verify the certificate (most MX certificates do
    /// not match or are self-signed, and refusing them would only push us to plaintext), but
    /// record whether it would have verified against the webpki roots.
    #[default]
    Opportunistic,
    /// Fail the session if STARTTLS is not advertised or the handshake fails. The certificate
    /// is still only recorded, not enforced.
    Require,
    /// Never send STARTTLS.
    Never,
}

/// How a session connects and how long it waits.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// The EHLO/HELO name. It should resolve back to the egress address (many MTAs check).
    pub helo_name: ClientName,
    /// TCP connect. 10 s: a reachable MX answers SYN in well under a second; a dead one
    /// should not hold a connection slot.
    pub connect_timeout: Duration,
    /// Until the last line of the greeting. RFC 5321 4.5.3.2.1 allows servers 5 minutes; we
    /// wait 60 s: well above postscreen's greet wait (6 s) and the 20-30 s greeting delays of
    /// tarpitting servers, while a host silent for a minute is treated as a timeout instead
    /// of tying up a worker for five.
    pub greeting_timeout: Duration,
    /// Each command, from write to its reply. 30 s (RFC 5321 4.5.3.2 suggests 5 min for MAIL
    /// and RCPT; real MX hosts answer in milliseconds unless they run recipient callouts,
    /// which finish within 30 s by default in Exim).
    pub command_timeout: Duration,
    /// The TLS handshake after STARTTLS's 220.
    pub tls_handshake_timeout: Duration,
    pub tls: TlsMode,
    /// Egress address to bind before connecting (must match the family of the target).
    /// Exclusive with `proxy`: through a proxy the proxy's own address is the egress.
    pub local_addr: Option<IpAddr>,
    /// Connect through this SOCKS5 proxy instead of directly (`Socks5Proxy::parse` reads a
    /// `socks5://` URL). The connect timeout covers reaching the proxy, the handshake and the
    /// proxy's connect to the MX host. SMTP and STARTTLS are unchanged over the tunnel.
    pub proxy: Option<Socks5Proxy>,
    /// Keep a transcript of at most this many lines (0: none).
    pub transcript_lines: usize,
    /// Our own cap on RCPTs per transaction (the server's LIMITS RCPTMAX wins when lower).
    pub max_rcpts_per_transaction: Option<usize>,
}

impl ClientConfig {
    /// Defaults with the given EHLO name.
    pub fn new(helo_name: ClientName) -> Self {
        Self {
            helo_name,
            connect_timeout: Duration::from_secs(10),
            greeting_timeout: Duration::from_secs(60),
            command_timeout: Duration::from_secs(30),
            tls_handshake_timeout: Duration::from_secs(30),
            tls: TlsMode::Opportunistic,
            local_addr: None,
            proxy: None,
            transcript_lines: 0,
            max_rcpts_per_transaction: None,
        }
    }

    /// Refuses settings that exclude each other: `local_addr` with `proxy` (the proxy chooses
    /// the egress address; binding ours would only pick the address we reach the proxy from,
    /// which is not what an egress setting promises). Every connect checks this and fails with
    /// [`Error::Config`] before any socket is opened; call it at startup to refuse the
    /// configuration early.
    pub fn validate(&self) -> Result<(), Error> {
        if self.local_addr.is_some() && self.proxy.is_some() {
            return Err(Error::Config(
                "local_addr (egress address) and proxy exclude each other: through a SOCKS5 \
                 proxy the proxy's address is the egress; set one of them",
            ));
        }
        Ok(())
    }
}
