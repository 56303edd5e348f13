//! The client session state machine: which command may be written now, and what a reply does.
//!
//! Owns command ordering (RFC 5321 4.1.4), pipelining discipline (RFC 2920), the STARTTLS reset
//! (RFC 3207 4.2) and reply-to-command matching. A command that does not fit is refused with a
//! `SequenceError` before any byte exists, which is how rollcall never earns a 503. Does not own
//! I/O, timeouts or TLS itself (the `rollcall-smtp` driver does), nor what a reply means for an
//! address (classification lives in the core crate).
//!
//! The state is *projected*: it is the state the server will be in once every outstanding
//! command has succeeded, so that MAIL and RCPTs can be written together under PIPELINING.
//! Replies correct the projection when a command fails (a rejected MAIL returns to `Ready`).

use std::collections::VecDeque;

use crate::capabilities::Capabilities;
use crate::command::{
    Command, CommandKind, Ehlo, Helo, MailFrom, Noop, Quit, RcptTo, Rset, StartTls,
};
use crate::path::{ClientName, Mailbox, ReversePath};
use crate::reply::Reply;

/// Most unanswered bytes allowed on the wire (Postfix's client uses the same bound so that a
/// server which reads lazily can never deadlock against a full socket buffer).
pub const MAX_IN_FLIGHT: usize = 4096;

/// Where the session stands (projected over the commands still awaiting a reply).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum State {
    /// Connected; the client must not speak before the last greeting line (postscreen pregreet).
    AwaitGreeting,
    /// Greeting received, or TLS just established: EHLO (or HELO) is needed.
    Greeted,
    /// The greeting was negative (RFC 5321 3.1: 554): only QUIT makes sense.
    Refused,
    /// EHLO/HELO answered; these are the capabilities of the current EHLO.
    Ready(Capabilities),
    /// MAIL FROM written (or accepted), `rcpts` RCPT TO written since.
    InTransaction {
        capabilities: Capabilities,
        rcpts: usize,
    },
    /// STARTTLS answered 220: the TLS handshake must run before any other byte.
    TlsHandshake,
    /// QUIT written.
    Quitting,
    /// 421, QUIT answered, connection lost or protocol error: nothing more may be written.
    Closed,
}

impl State {
    /// A short name for errors and logs.
    pub fn name(&self) -> &'static str {
        match self {
            Self::AwaitGreeting => "awaiting greeting",
            Self::Greeted => "greeted (EHLO needed)",
            Self::Refused => "service refused",
            Self::Ready(_) => "ready",
            Self::InTransaction { .. } => "in transaction",
            Self::TlsHandshake => "TLS handshake pending",
            Self::Quitting => "quitting",
            Self::Closed => "closed",
        }
    }

    /// Capabilities of the current EHLO, if any.
    pub fn capabilities(&self) -> Option<&Capabilities> {
        match self {
            Self::Ready(c)
            | Self::InTransaction {
                capabilities: c, ..
            } => Some(c),
            _ => None,
        }
    }
}

/// Why a command was refused (nothing was written).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SequenceError {
    /// The command does not fit the state (e.g. RCPT before MAIL, MAIL inside a transaction).
    #[error("{command} not allowed while {state}")]
    NotNow {
        command: CommandKind,
        state: &'static str,
    },
    /// A command that must be alone (EHLO, STARTTLS, QUIT, NOOP, the greeting) is unanswered,
    /// or such a command was asked for while others are unanswered (RFC 2920 3.1).
    #[error("{command} must wait for the reply to {pending}")]
    AwaitingReply {
        command: CommandKind,
        pending: CommandKind,
    },
    /// The current EHLO did not advertise PIPELINING: strict lockstep.
    #[error("{command} must wait for the outstanding reply (no PIPELINING)")]
    NoPipelining { command: CommandKind },
    /// More than [`MAX_IN_FLIGHT`] bytes would be unanswered: read replies first.
    #[error(
        "{len} more bytes would exceed the {MAX_IN_FLIGHT}-byte window ({in_flight} unanswered)"
    )]
    WindowFull { in_flight: usize, len: usize },
    /// The server did not advertise the extension the command needs.
    #[error("server did not advertise {0}")]
    NotAdvertised(&'static str),
    /// A UTF-8 recipient in a transaction whose MAIL FROM lacked SMTPUTF8 (RFC 6531 3.4).
    #[error("UTF-8 recipient needs MAIL FROM with SMTPUTF8")]
    Utf8NotDeclared,
    /// STARTTLS inside TLS (Postfix: `554 5.5.1 Error: TLS already active`).
    #[error("TLS already active")]
    AlreadyTls,
    /// `tls_established` without a STARTTLS 220.
    #[error("no TLS handshake pending")]
    NoHandshakePending,
    /// A reply arrived with no command outstanding (and it was not a 421).
    #[error("unsolicited reply {code}")]
    UnsolicitedReply { code: u16 },
    /// The session is closed.
    #[error("session closed")]
    Closed,
}

/// What one reply meant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// The command answered; `None` for an unsolicited 421 (server idle timeout, shutdown).
    pub command: Option<CommandKind>,
    pub reply: Reply,
    /// A RCPT answered after its transaction's MAIL FROM was rejected: the address was not
    /// probed (the reply, usually 503, says nothing about the address).
    pub not_probed: bool,
    /// The session is closed after this reply (421, or the answer to QUIT).
    pub closed: bool,
    /// Commands that will never be answered because the session closed (in order).
    pub unanswered: Vec<CommandKind>,
}

#[derive(Debug, Clone, Copy)]
struct Outstanding {
    kind: CommandKind,
    len: usize,
    /// Written after a MAIL that was then rejected.
    orphaned: bool,
}

/// The sans-IO client session. Every byte the client writes comes from one of its methods.
#[derive(Debug, Clone)]
pub struct Session {
    state: State,
    outstanding: VecDeque<Outstanding>,
    in_flight: usize,
    tls: bool,
    ehlo_refused: bool,
    utf8_transaction: bool,
}

impl Default for Session {
    fn default() -> Self {
        Self::new()
    }
}

impl Session {
    /// A freshly connected session, awaiting the greeting.
    pub fn new() -> Self {
        let mut outstanding = VecDeque::new();
        outstanding.push_back(Outstanding {
            kind: CommandKind::Greeting,
            len: 0,
            orphaned: false,
        });
        Self {
            state: State::AwaitGreeting,
            outstanding,
            in_flight: 0,
            tls: false,
            ehlo_refused: false,
            utf8_transaction: false,
        }
    }

    pub fn state(&self) -> &State {
        &self.state
    }

    /// Capabilities of the current EHLO (none before EHLO, after HELO-less TLS reset, or closed).
    pub fn capabilities(&self) -> Option<&Capabilities> {
        self.state.capabilities()
    }

    /// True once TLS was established on this connection.
    pub fn is_tls(&self) -> bool {
        self.tls
    }

    pub fn is_closed(&self) -> bool {
        self.state == State::Closed
    }

    /// Commands written and not yet answered (the greeting counts until it arrives).
    pub fn outstanding(&self) -> usize {
        self.outstanding.len()
    }

    /// Unanswered bytes on the wire.
    pub fn in_flight(&self) -> usize {
        self.in_flight
    }

    /// The last EHLO got 500/502: the server does not speak ESMTP, fall back to HELO
    /// (RFC 5321 3.2).
    pub fn ehlo_refused(&self) -> bool {
        self.ehlo_refused
    }

    /// True when the current EHLO advertised PIPELINING.
    pub fn pipelining(&self) -> bool {
        self.capabilities().is_some_and(|c| c.pipelining)
    }

    pub fn ehlo(&mut self, name: &ClientName) -> Result<Vec<u8>, SequenceError> {
        self.allow_state(CommandKind::Ehlo, |s| {
            matches!(s, State::Greeted | State::Ready(_))
        })?;
        self.push(&Ehlo(name.clone()))
    }

    pub fn helo(&mut self, name: &ClientName) -> Result<Vec<u8>, SequenceError> {
        self.allow_state(CommandKind::Helo, |s| matches!(s, State::Greeted))?;
        self.push(&Helo(name.clone()))
    }

    /// STARTTLS, only when the current EHLO advertised it and TLS is not already up.
    pub fn starttls(&mut self) -> Result<Vec<u8>, SequenceError> {
        self.allow_state(CommandKind::StartTls, |s| matches!(s, State::Ready(_)))?;
        if self.tls {
            return Err(SequenceError::AlreadyTls);
        }
        if !self.capabilities().is_some_and(|c| c.starttls) {
            return Err(SequenceError::NotAdvertised("STARTTLS"));
        }
        self.push(&StartTls)
    }

    /// MAIL FROM, only in `Ready` (a second MAIL needs RSET first). `smtputf8` asks for the
    /// SMTPUTF8 parameter (needed when any recipient is non-ASCII); a non-ASCII reverse path
    /// implies it. Either requires the server to have advertised SMTPUTF8.
    pub fn mail_from(
        &mut self,
        path: &ReversePath,
        smtputf8: bool,
    ) -> Result<Vec<u8>, SequenceError> {
        self.allow_state(CommandKind::MailFrom, |s| matches!(s, State::Ready(_)))?;
        let smtputf8 = smtputf8 || !path.is_ascii();
        if smtputf8 && !self.capabilities().is_some_and(|c| c.smtputf8) {
            return Err(SequenceError::NotAdvertised("SMTPUTF8"));
        }
        let bytes = self.push(&MailFrom {
            path: path.clone(),
            smtputf8,
        })?;
        if let State::Ready(caps) = &self.state {
            self.state = State::InTransaction {
                capabilities: caps.clone(),
                rcpts: 0,
            };
        }
        self.utf8_transaction = smtputf8;
        Ok(bytes)
    }

    /// RCPT TO, only after MAIL FROM.
    pub fn rcpt_to(&mut self, path: &Mailbox) -> Result<Vec<u8>, SequenceError> {
        self.allow_state(CommandKind::RcptTo, |s| {
            matches!(s, State::InTransaction { .. })
        })?;
        if !path.is_ascii() && !self.utf8_transaction {
            return Err(SequenceError::Utf8NotDeclared);
        }
        let bytes = self.push(&RcptTo(path.clone()))?;
        if let State::InTransaction { rcpts, .. } = &mut self.state {
            *rcpts += 1;
        }
        Ok(bytes)
    }

    /// RSET: ends the transaction (RFC 5321 4.1.1.5), back to `Ready`.
    pub fn rset(&mut self) -> Result<Vec<u8>, SequenceError> {
        self.allow_state(CommandKind::Rset, |s| {
            matches!(s, State::Ready(_) | State::InTransaction { .. })
        })?;
        let bytes = self.push(&Rset)?;
        self.end_transaction();
        Ok(bytes)
    }

    pub fn noop(&mut self) -> Result<Vec<u8>, SequenceError> {
        self.allow_state(CommandKind::Noop, |s| {
            matches!(
                s,
                State::Greeted | State::Ready(_) | State::InTransaction { .. }
            )
        })?;
        self.push(&Noop)
    }

    /// QUIT, from any state where the client may speak.
    pub fn quit(&mut self) -> Result<Vec<u8>, SequenceError> {
        self.allow_state(CommandKind::Quit, |s| {
            matches!(
                s,
                State::Greeted | State::Refused | State::Ready(_) | State::InTransaction { .. }
            )
        })?;
        let bytes = self.push(&Quit)?;
        self.state = State::Quitting;
        Ok(bytes)
    }

    /// The TLS handshake after STARTTLS's 220 succeeded. RFC 3207 4.2: the client must discard
    /// what it knew and send EHLO again before anything else.
    pub fn tls_established(&mut self) -> Result<(), SequenceError> {
        if self.state != State::TlsHandshake {
            return Err(SequenceError::NoHandshakePending);
        }
        self.tls = true;
        self.ehlo_refused = false;
        self.state = State::Greeted;
        Ok(())
    }

    /// The connection is gone (EOF, I/O error, TLS failure, unparseable reply). Returns the
    /// commands that will never be answered.
    pub fn close(&mut self) -> Vec<CommandKind> {
        self.state = State::Closed;
        self.in_flight = 0;
        self.outstanding.drain(..).map(|o| o.kind).collect()
    }

    /// The only transition driven by the server: matches `reply` to the oldest outstanding
    /// command (RFC 2920 3.1: replies come in command order).
    pub fn on_reply(&mut self, reply: Reply) -> Result<Event, SequenceError> {
        if self.state == State::Closed {
            return Err(SequenceError::Closed);
        }
        let Some(cmd) = self.outstanding.pop_front() else {
            if reply.is_closing() {
                // RFC 5321 3.8: a server may send 421 unprompted before closing.
                self.close();
                return Ok(Event {
                    command: None,
                    reply,
                    not_probed: false,
                    closed: true,
                    unanswered: Vec::new(),
                });
            }
            return Err(SequenceError::UnsolicitedReply { code: reply.code });
        };
        self.in_flight = self.in_flight.saturating_sub(cmd.len);
        let mut event = Event {
            command: Some(cmd.kind),
            not_probed: cmd.orphaned,
            closed: false,
            unanswered: Vec::new(),
            reply,
        };
        // RFC 5321 3.8: 421 to anything means the channel is closing.
        if event.reply.is_closing() || cmd.kind == CommandKind::Quit {
            event.unanswered = self.close();
            event.closed = true;
            if cmd.kind == CommandKind::RcptTo {
                event.not_probed = true;
            }
            return Ok(event);
        }
        let ok = event.reply.is_positive();
        match cmd.kind {
            CommandKind::Greeting => {
                self.state = if ok { State::Greeted } else { State::Refused };
            }
            CommandKind::Ehlo => {
                if ok {
                    self.state = State::Ready(Capabilities::from_ehlo(&event.reply));
                    self.ehlo_refused = false;
                } else {
                    self.ehlo_refused = matches!(event.reply.code, 500 | 502);
                }
            }
            CommandKind::Helo => {
                if ok {
                    self.state = State::Ready(Capabilities::default());
                }
            }
            CommandKind::StartTls => {
                if ok {
                    self.state = State::TlsHandshake;
                }
            }
            CommandKind::MailFrom => {
                if !ok {
                    self.mail_rejected();
                }
            }
            CommandKind::RcptTo | CommandKind::Rset | CommandKind::Noop | CommandKind::Quit => {}
        }
        Ok(event)
    }

    /// A MAIL was rejected: the RCPTs written after it were not probed, and unless an RSET was
    /// already written after them the session is back in `Ready` (no transaction open).
    fn mail_rejected(&mut self) {
        let mut reset_follows = false;
        for o in self.outstanding.iter_mut() {
            match o.kind {
                CommandKind::RcptTo => o.orphaned = true,
                _ => {
                    reset_follows = true;
                    break;
                }
            }
        }
        if !reset_follows {
            self.end_transaction();
        }
    }

    fn end_transaction(&mut self) {
        if let State::InTransaction { capabilities, .. } = &self.state {
            self.state = State::Ready(capabilities.clone());
        }
        self.utf8_transaction = false;
    }

    fn allow_state(
        &self,
        command: CommandKind,
        ok: impl Fn(&State) -> bool,
    ) -> Result<(), SequenceError> {
        if self.state == State::Closed {
            return Err(SequenceError::Closed);
        }
        // The greeting is pending exactly in AwaitGreeting; report it as such.
        if let Some(last) = self.outstanding.back()
            && !last.kind.is_groupable()
        {
            return Err(SequenceError::AwaitingReply {
                command,
                pending: last.kind,
            });
        }
        if !ok(&self.state) {
            return Err(SequenceError::NotNow {
                command,
                state: self.state.name(),
            });
        }
        Ok(())
    }

    /// Pipelining discipline, then records the command as outstanding.
    fn push<C: Command>(&mut self, cmd: &C) -> Result<Vec<u8>, SequenceError> {
        let bytes = cmd.to_bytes();
        let kind = C::KIND;
        if let Some(last) = self.outstanding.back() {
            // RFC 2920 3.1: EHLO, STARTTLS, QUIT (and NOOP) end a group; here they also start
            // one, so they are only written when nothing is outstanding.
            if !kind.is_groupable() {
                return Err(SequenceError::AwaitingReply {
                    command: kind,
                    pending: last.kind,
                });
            }
            if !self.pipelining() {
                return Err(SequenceError::NoPipelining { command: kind });
            }
            if self.in_flight + bytes.len() > MAX_IN_FLIGHT {
                return Err(SequenceError::WindowFull {
                    in_flight: self.in_flight,
                    len: bytes.len(),
                });
            }
        }
        self.in_flight += bytes.len();
        self.outstanding.push_back(Outstanding {
            kind,
            len: bytes.len(),
            orphaned: false,
        });
        Ok(bytes)
    }
}

#[cfg(test)]
mod tests;
