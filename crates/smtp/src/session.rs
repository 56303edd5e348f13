//! One SMTP session with one MX host: connect, greeting, EHLO (HELO fallback), STARTTLS, EHLO
//! again, then any number of probe transactions (`transaction` module), then QUIT.
//!
//! Owns the I/O around the sans-IO `rollcall_smtp_proto::Session`: every byte written comes
//! from that state machine, every reply goes through its `on_reply`. Owns the per-phase
//! timeouts and what the session learned (capabilities, TLS, counters for retirement). Does not
//! own pooling policy (`pool`) or what replies mean for an address (core's `classify`).

use std::net::SocketAddr;
use std::time::Duration;

use rollcall_smtp_proto::{self as proto, Capabilities, CommandKind, Event, Reply};
use tokio::time::Instant;

use crate::config::{ClientConfig, TlsMode};
use crate::connection::Connection;
use crate::error::{Error, Phase};
use crate::tls::{self, TlsInfo};
use crate::transcript::Transcript;

/// Counters and facts the pool's retirement rules read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionStats {
    pub opened: Instant,
    pub last_used: Instant,
    /// MAIL FROM transactions started.
    pub transactions: u32,
    /// RCPT TO commands answered.
    pub rcpts_answered: u32,
    /// 5xx replies to RCPT (Postfix's error budget is per session).
    pub rcpts_rejected: u32,
    /// Every 4xx/5xx reply in this session (Postfix counts both toward its error limits).
    pub error_replies: u32,
    /// The server said 421 (RFC 5321 3.8).
    pub closed_by_421: bool,
    /// RFC 9422 LIMITS MAILMAX from the current EHLO.
    pub mail_max: Option<u32>,
}

/// A live session. Dropping it closes the socket without QUIT; call [`Session::quit`] first.
pub struct Session {
    pub(crate) peer: SocketAddr,
    server_name: Option<String>,
    pub(crate) config: ClientConfig,
    pub(crate) conn: Connection,
    pub(crate) proto: proto::Session,
    greeting: Option<Reply>,
    ehlo: Option<Reply>,
    /// Capabilities of the last successful EHLO; kept after QUIT for reporting.
    caps: Option<Capabilities>,
    tls: Option<TlsInfo>,
    pub(crate) transcript: Option<Transcript>,
    pub(crate) stats: SessionStats,
    failure: Option<String>,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("peer", &self.peer)
            .field("state", &self.proto.state().name())
            .field("tls", &self.tls)
            .field("stats", &self.stats)
            .finish_non_exhaustive()
    }
}

impl Session {
    /// Connects and runs the opening: greeting, EHLO/HELO, STARTTLS per `config.tls`, EHLO.
    /// `server_name` is the MX host name (SNI and certificate check); `None` uses the IP.
    pub async fn connect(
        peer: SocketAddr,
        server_name: Option<&str>,
        config: &ClientConfig,
    ) -> Result<Self, Error> {
        let mut session = Self::open(peer, server_name, config).await?;
        session.handshake().await?;
        Ok(session)
    }

    /// TCP connect only (with the connect timeout), directly or through `config.proxy`: with a
    /// proxy the timeout covers reaching it, its handshake and its connect to `peer`. Use
    /// [`Session::handshake`] next; split so that a caller keeps the transcript of a session
    /// whose opening failed.
    pub async fn open(
        peer: SocketAddr,
        server_name: Option<&str>,
        config: &ClientConfig,
    ) -> Result<Self, Error> {
        config.validate()?;
        let conn = tokio::time::timeout(
            config.connect_timeout,
            Connection::connect(peer, config.local_addr, config.proxy.as_ref()),
        )
        .await
        .map_err(|_| Error::Timeout(Phase::Connect))??;
        let now = Instant::now();
        let mut transcript =
            (config.transcript_lines > 0).then(|| Transcript::new(config.transcript_lines));
        if let Some(t) = &mut transcript {
            let from = conn.local_addr().map(|a| a.to_string());
            let from = from.as_deref().unwrap_or("an unknown address");
            match &config.proxy {
                Some(proxy) => t.note(&format!(
                    "connected to {peer} through the SOCKS5 proxy {} (from {from})",
                    proxy.addr
                )),
                None => t.note(&format!("connected to {peer} from {from}")),
            }
        }
        Ok(Self {
            peer,
            server_name: server_name.map(str::to_owned),
            config: config.clone(),
            conn,
            proto: proto::Session::new(),
            greeting: None,
            ehlo: None,
            caps: None,
            tls: None,
            transcript,
            stats: SessionStats {
                opened: now,
                last_used: now,
                transactions: 0,
                rcpts_answered: 0,
                rcpts_rejected: 0,
                error_replies: 0,
                closed_by_421: false,
                mail_max: None,
            },
            failure: None,
        })
    }

    /// Greeting (never speaking before its last line), EHLO with HELO fallback, STARTTLS
    /// according to the TLS mode, and EHLO again inside TLS (RFC 3207 4.2).
    pub async fn handshake(&mut self) -> Result<(), Error> {
        let greeting = self
            .recv(Phase::Greeting, self.config.greeting_timeout)
            .await?;
        self.greeting = Some(greeting.reply.clone());
        if greeting.closed {
            return Err(self.fail(Error::ServiceClosing(greeting.reply)));
        }
        if !greeting.reply.is_positive() {
            // RFC 5321 3.1: a 554 greeting still expects QUIT.
            let _ = self.quit().await;
            return Err(Error::Refused {
                phase: Phase::Greeting,
                reply: greeting.reply,
            });
        }
        self.hello().await?;

        let offered = self.proto.capabilities().is_some_and(|c| c.starttls);
        match (self.config.tls, offered) {
            (TlsMode::Never, _) | (TlsMode::Opportunistic, false) => return Ok(()),
            (TlsMode::Require, false) => {
                let _ = self.quit().await;
                return Err(Error::TlsNotOffered);
            }
            (TlsMode::Opportunistic | TlsMode::Require, true) => {}
        }
        let bytes = self.proto.starttls()?;
        let ev = self.command(&bytes, CommandKind::StartTls).await?;
        if !ev.reply.is_positive() {
            if self.config.tls == TlsMode::Require {
                let _ = self.quit().await;
                return Err(Error::TlsRefused(ev.reply));
            }
            // 454 TLS not available: carry on in plaintext (opportunistic).
            return Ok(());
        }
        let name = tls::server_name(self.server_name.as_deref(), self.peer.ip());
        let upgraded =
            tokio::time::timeout(self.config.tls_handshake_timeout, self.conn.start_tls(name))
                .await;
        let info = match upgraded {
            Ok(Ok(info)) => info,
            Ok(Err(e)) => return Err(self.fail(e)),
            Err(_) => return Err(self.fail(Error::Timeout(Phase::TlsHandshake))),
        };
        if let Some(t) = &mut self.transcript {
            let verified = if info.verified {
                "verified"
            } else {
                "not verified"
            };
            t.note(&format!(
                "TLS {} {} ({verified})",
                info.version, info.cipher
            ));
        }
        self.tls = Some(info);
        // RFC 3207 4.2: what the plaintext EHLO said no longer holds.
        self.caps = None;
        self.ehlo = None;
        self.proto.tls_established()?;
        self.hello().await
    }

    /// EHLO, falling back to HELO when EHLO is not recognised (RFC 5321 3.2).
    async fn hello(&mut self) -> Result<(), Error> {
        let bytes = self.proto.ehlo(&self.config.helo_name)?;
        let ev = self.command(&bytes, CommandKind::Ehlo).await?;
        if ev.reply.is_positive() {
            self.caps = self.proto.capabilities().cloned();
            self.stats.mail_max = self.caps.as_ref().and_then(|c| c.mail_max);
            self.ehlo = Some(ev.reply);
            return Ok(());
        }
        if !self.proto.ehlo_refused() {
            let _ = self.quit().await;
            return Err(Error::Refused {
                phase: Phase::Command(CommandKind::Ehlo),
                reply: ev.reply,
            });
        }
        let bytes = self.proto.helo(&self.config.helo_name)?;
        let ev = self.command(&bytes, CommandKind::Helo).await?;
        if ev.reply.is_positive() {
            self.caps = self.proto.capabilities().cloned();
            self.ehlo = Some(ev.reply);
            return Ok(());
        }
        let _ = self.quit().await;
        Err(Error::Refused {
            phase: Phase::Command(CommandKind::Helo),
            reply: ev.reply,
        })
    }

    /// NOOP: checks that an idle session is still alive.
    pub async fn noop(&mut self) -> Result<Reply, Error> {
        let bytes = self.proto.noop().map_err(|e| self.refused(e))?;
        let ev = self.command(&bytes, CommandKind::Noop).await?;
        if ev.closed {
            return Err(Error::ServiceClosing(ev.reply));
        }
        Ok(ev.reply)
    }

    /// QUIT and close. Harmless on a session that is already closed.
    pub async fn quit(&mut self) -> Result<(), Error> {
        if self.proto.is_closed() {
            return Ok(());
        }
        let result = match self.proto.quit() {
            Ok(bytes) => {
                // A short wait: the answer to QUIT carries no information we need.
                let wait = self.config.command_timeout.min(Duration::from_secs(5));
                match self.send(&bytes, CommandKind::Quit).await {
                    Ok(()) => self
                        .recv(Phase::Command(CommandKind::Quit), wait)
                        .await
                        .map(|_| ()),
                    Err(e) => Err(e),
                }
            }
            Err(e) => Err(Error::Sequence(e)),
        };
        self.proto.close();
        if result.is_ok() {
            let wait = self.config.command_timeout.min(Duration::from_secs(2));
            let _ = tokio::time::timeout(wait, self.conn.await_close()).await;
        }
        let wait = self.config.command_timeout.min(Duration::from_secs(2));
        let _ = self.conn.shutdown(wait).await;
        result
    }

    /// Writes bytes the proto session produced, then reads and matches one reply.
    pub(crate) async fn command(
        &mut self,
        bytes: &[u8],
        kind: CommandKind,
    ) -> Result<Event, Error> {
        self.send(bytes, kind).await?;
        let timeout = self.config.command_timeout;
        let ev = self.recv(Phase::Command(kind), timeout).await?;
        if ev.closed && ev.reply.is_closing() && kind != CommandKind::Quit {
            return Err(self.fail(Error::ServiceClosing(ev.reply)));
        }
        Ok(ev)
    }

    pub(crate) async fn send(&mut self, bytes: &[u8], kind: CommandKind) -> Result<(), Error> {
        // Every command written so far has had its reply (lockstep, or the whole pipelined
        // group was read): nothing may be waiting. QUIT is exempt; its reply is not used.
        if kind != CommandKind::Quit {
            self.ensure_quiet(Some(kind)).await?;
        }
        if let Some(t) = &mut self.transcript {
            t.client(bytes);
        }
        tracing::trace!(peer = %self.peer, "C: {}", proto::escape_wire(bytes));
        match tokio::time::timeout(self.config.command_timeout, self.conn.write(bytes)).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(self.fail(e)),
            Err(_) => Err(self.fail(Error::Timeout(Phase::Command(kind)))),
        }
    }

    /// Fails the session when the server has sent bytes that no command asked for.
    ///
    /// Replies are matched to commands by order alone (RFC 5321 4.2, RFC 2920 3.1), so one
    /// reply out of turn shifts every later match: an extra line after the greeting would
    /// answer EHLO, the real EHLO reply MAIL, and MAIL's 250 the RCPT of an unknown user. Such
    /// bytes are never discarded and skipped (how much to skip cannot be known, and the rest of
    /// the session is suspect); the session ends as a protocol error. The one exception is a
    /// 421: RFC 5321 3.8 lets a server send it unprompted before closing (idle timeout), and it
    /// is left for the next read, which treats it as the channel closing, as always.
    ///
    /// Only bytes that have already arrived are seen: a server that waits before talking out
    /// of turn is caught by the next call (the next command or the end of the transaction).
    pub(crate) async fn ensure_quiet(&mut self, before: Option<CommandKind>) -> Result<(), Error> {
        let waiting = self.conn.read_ahead().await;
        if waiting.is_empty() {
            return Ok(());
        }
        let closing = waiting.starts_with(b"421") || b"421".starts_with(waiting);
        if closing {
            return Ok(());
        }
        let bytes = waiting.len();
        if let Some(t) = &mut self.transcript {
            t.note("unsolicited:");
            t.server(waiting);
        }
        tracing::debug!(peer = %self.peer, bytes, "server sent bytes nobody asked for");
        Err(self.fail(Error::Unsolicited { before, bytes }))
    }

    /// Reads one reply within `timeout` and passes it to the state machine.
    pub(crate) async fn recv(&mut self, phase: Phase, timeout: Duration) -> Result<Event, Error> {
        let read = tokio::time::timeout(timeout, self.conn.read_reply(self.transcript.as_mut()));
        let reply = match read.await {
            Ok(Ok(reply)) => reply,
            Ok(Err(e)) => return Err(self.fail(e)),
            Err(_) => return Err(self.fail(Error::Timeout(phase))),
        };
        tracing::trace!(peer = %self.peer, "S: {}", proto::escape_wire(reply.to_wire().as_bytes()));
        if reply.is_transient() || reply.is_permanent() {
            self.stats.error_replies += 1;
        }
        if reply.is_closing() {
            self.stats.closed_by_421 = true;
        }
        match self.proto.on_reply(reply) {
            Ok(ev) => Ok(ev),
            Err(e) => Err(self.fail(Error::Sequence(e))),
        }
    }

    /// The connection is unusable from here on; returns `err` for the caller to propagate.
    pub(crate) fn fail(&mut self, err: Error) -> Error {
        self.proto.close();
        if self.failure.is_none() {
            self.failure = Some(err.to_string());
        }
        err
    }

    /// A refusal by the state machine (nothing written): a closed session reads as `Closed`.
    pub(crate) fn refused(&self, e: proto::SequenceError) -> Error {
        if self.proto.is_closed() {
            Error::Closed
        } else {
            Error::Sequence(e)
        }
    }

    /// This end of the connection (to the proxy, when there is one).
    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.conn.local_addr()
    }

    pub fn peer(&self) -> SocketAddr {
        self.peer
    }

    /// The greeting (its last line decides the code).
    pub fn greeting(&self) -> Option<&Reply> {
        self.greeting.as_ref()
    }

    /// The reply to the last successful EHLO (or HELO).
    pub fn ehlo_reply(&self) -> Option<&Reply> {
        self.ehlo.as_ref()
    }

    /// Capabilities of the last successful EHLO (still readable after QUIT or a failure).
    pub fn capabilities(&self) -> Option<&Capabilities> {
        self.caps.as_ref()
    }

    /// True when transactions are pipelined (the last EHLO advertised PIPELINING).
    pub fn pipelining(&self) -> bool {
        self.caps.as_ref().is_some_and(|c| c.pipelining)
    }

    pub fn tls(&self) -> Option<&TlsInfo> {
        self.tls.as_ref()
    }

    pub fn stats(&self) -> &SessionStats {
        &self.stats
    }

    pub fn age(&self) -> Duration {
        self.stats.opened.elapsed()
    }

    pub fn idle(&self) -> Duration {
        self.stats.last_used.elapsed()
    }

    /// False after 421, EOF, a timeout, a protocol error or QUIT: never reuse it.
    pub fn is_usable(&self) -> bool {
        !self.proto.is_closed() && self.proto.capabilities().is_some()
    }

    /// Why the session became unusable, if it did through an error.
    pub fn failure(&self) -> Option<&str> {
        self.failure.as_deref()
    }

    pub fn transcript(&self) -> Option<&Transcript> {
        self.transcript.as_ref()
    }

    /// Takes the transcript (e.g. per probe), leaving an empty one of the same bound.
    pub fn take_transcript(&mut self) -> Option<Transcript> {
        let fresh = self
            .transcript
            .as_ref()
            .map(|_| Transcript::new(self.config.transcript_lines));
        std::mem::replace(&mut self.transcript, fresh)
    }
}
