//! One probe transaction on a live session: MAIL FROM, the RCPTs (pipelined in groups when
//! advertised, lockstep otherwise), RSET. Never DATA.
//!
//! Owns turning the planner's groups into writes and the replies into a per-recipient outcome.
//! A failure half-way (421, EOF, timeout) is part of the outcome: the recipients that got no
//! answer are "not probed", never rejected.

use std::collections::VecDeque;

use rollcall_smtp_proto::{
    CommandKind, Mailbox, PlannedCommand, Reply, ReversePath, SequenceError, Unplanned,
    plan_transaction,
};
use tokio::time::Instant;

use crate::error::{Error, Phase};
use crate::session::Session;

/// Why a recipient has no reply of its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotProbed {
    /// MAIL FROM was rejected; the RCPT's reply (usually 503) says nothing about the address.
    MailRejected,
    /// The server closed the session with 421 before answering.
    SessionClosed,
    /// The connection failed (EOF, timeout, protocol error) before an answer.
    ConnectionLost,
    /// Non-ASCII address and no SMTPUTF8: not sent (unverifiable here).
    NeedsSmtpUtf8,
    /// Beyond RCPTMAX / the configured limit: probe it in another transaction.
    OverRcptLimit,
}

impl NotProbed {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::MailRejected => "mail_rejected",
            Self::SessionClosed => "session_closed",
            Self::ConnectionLost => "connection_lost",
            Self::NeedsSmtpUtf8 => "needs_smtputf8",
            Self::OverRcptLimit => "over_rcpt_limit",
        }
    }
}

/// What happened to one recipient.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RecipientOutcome {
    /// The server's answer to this RCPT.
    Replied(Reply),
    NotProbed(NotProbed),
}

impl RecipientOutcome {
    pub fn reply(&self) -> Option<&Reply> {
        match self {
            Self::Replied(r) => Some(r),
            Self::NotProbed(_) => None,
        }
    }
}

/// The result of [`Session::probe`].
#[derive(Debug)]
pub struct TransactionOutcome {
    /// The reply to MAIL FROM (`None` if it never came).
    pub mail: Option<Reply>,
    /// One per recipient, in the caller's order.
    pub recipients: Vec<RecipientOutcome>,
    /// MAIL and RCPTs were written in pipelined groups.
    pub pipelined: bool,
    /// What cut the transaction short, if anything. The session is then unusable.
    pub error: Option<Error>,
}

impl Session {
    /// Probes `recipients` (all of ONE domain) in one transaction, then RSET, leaving the
    /// session ready for the next probe. `Err` only when nothing could be attempted (session
    /// closed, recipients of several domains, no recipients).
    pub async fn probe(
        &mut self,
        reverse: &ReversePath,
        recipients: &[Mailbox],
    ) -> Result<TransactionOutcome, Error> {
        let caps = match self.proto.capabilities() {
            Some(c) if !self.proto.is_closed() => c.clone(),
            _ => return Err(Error::Closed),
        };
        let plan = plan_transaction(
            &caps,
            reverse,
            recipients,
            self.config.max_rcpts_per_transaction,
        )?;
        let mut outcome = TransactionOutcome {
            mail: None,
            recipients: vec![
                RecipientOutcome::NotProbed(NotProbed::ConnectionLost);
                recipients.len()
            ],
            pipelined: caps.pipelining,
            error: None,
        };
        for (i, why) in &plan.unplanned {
            outcome.recipients[*i] = RecipientOutcome::NotProbed(match why {
                Unplanned::NeedsSmtpUtf8 => NotProbed::NeedsSmtpUtf8,
                Unplanned::OverRcptLimit => NotProbed::OverRcptLimit,
            });
        }
        self.stats.transactions += 1;
        self.stats.last_used = Instant::now();

        let mut mail_rejected = false;
        for group in &plan.groups {
            let mut wire = Vec::new();
            // What each written command was (and which recipient), in reply order.
            let mut written: VecDeque<(CommandKind, Option<usize>)> = VecDeque::new();
            for cmd in group {
                let bytes = loop {
                    let (kind, index) = match cmd {
                        PlannedCommand::Mail(_) => (CommandKind::MailFrom, None),
                        PlannedCommand::Rcpt { index, .. } => (CommandKind::RcptTo, Some(*index)),
                        PlannedCommand::Rset => (CommandKind::Rset, None),
                    };
                    if let (Some(index), true) = (index, mail_rejected) {
                        // MAIL was refused: there is no transaction to add this RCPT to.
                        outcome.recipients[index] =
                            RecipientOutcome::NotProbed(NotProbed::MailRejected);
                        break None;
                    }
                    let attempt = match cmd {
                        PlannedCommand::Mail(m) => self.proto.mail_from(&m.path, m.smtputf8),
                        PlannedCommand::Rcpt { rcpt, .. } => self.proto.rcpt_to(&rcpt.0),
                        PlannedCommand::Rset => self.proto.rset(),
                    };
                    match attempt {
                        Ok(b) => break Some((b, kind, index)),
                        // The plan is advisory: when the state machine wants replies first
                        // (window full, lockstep), read them and ask again.
                        Err(
                            SequenceError::WindowFull { .. } | SequenceError::NoPipelining { .. },
                        ) if !written.is_empty() => {
                            if let Err(e) = self
                                .flush(&mut wire, &mut written, &mut outcome, &mut mail_rejected)
                                .await
                            {
                                return Ok(self.abandon(outcome, e));
                            }
                        }
                        Err(e) => {
                            let err = self.refused(e);
                            return Ok(self.abandon(outcome, err));
                        }
                    }
                };
                if let Some((b, kind, index)) = bytes {
                    wire.extend_from_slice(&b);
                    written.push_back((kind, index));
                }
            }
            if let Err(e) = self
                .flush(&mut wire, &mut written, &mut outcome, &mut mail_rejected)
                .await
            {
                return Ok(self.abandon(outcome, e));
            }
        }
        // Every reply of the transaction is in: anything already behind them answers nothing,
        // and may mean the replies above were one off (RFC 2920 3.1 matches by order only).
        if let Err(e) = self.ensure_quiet(None).await {
            return Ok(self.abandon(outcome, e));
        }
        self.stats.last_used = Instant::now();
        Ok(outcome)
    }

    /// Writes the pending bytes as one write (one TCP segment when small: RFC 2920 3.2) and
    /// reads one reply per command written.
    async fn flush(
        &mut self,
        wire: &mut Vec<u8>,
        written: &mut VecDeque<(CommandKind, Option<usize>)>,
        outcome: &mut TransactionOutcome,
        mail_rejected: &mut bool,
    ) -> Result<(), Error> {
        if wire.is_empty() {
            return Ok(());
        }
        let first = written.front().map_or(CommandKind::MailFrom, |w| w.0);
        self.send(wire, first).await?;
        wire.clear();
        while let Some((kind, slot)) = written.pop_front() {
            let timeout = self.config.command_timeout;
            let ev = self.recv(Phase::Command(kind), timeout).await?;
            match (ev.command, slot) {
                (Some(CommandKind::RcptTo), Some(index)) => {
                    self.stats.rcpts_answered += 1;
                    outcome.recipients[index] = if ev.not_probed {
                        RecipientOutcome::NotProbed(if ev.reply.is_closing() {
                            NotProbed::SessionClosed
                        } else {
                            NotProbed::MailRejected
                        })
                    } else {
                        if ev.reply.is_permanent() {
                            self.stats.rcpts_rejected += 1;
                        }
                        RecipientOutcome::Replied(ev.reply.clone())
                    };
                }
                (Some(CommandKind::MailFrom), None) => {
                    if !ev.reply.is_positive() {
                        *mail_rejected = true;
                    }
                    outcome.mail = Some(ev.reply.clone());
                }
                _ => {}
            }
            if ev.closed {
                for index in written.drain(..).filter_map(|w| w.1) {
                    outcome.recipients[index] =
                        RecipientOutcome::NotProbed(NotProbed::SessionClosed);
                }
                return Err(self.fail(Error::ServiceClosing(ev.reply)));
            }
        }
        Ok(())
    }

    /// Ends the transaction early: every recipient still without an answer stays "not probed"
    /// (`SessionClosed` after a 421, `ConnectionLost` otherwise).
    ///
    /// After bytes nobody asked for, no reply of the transaction is trusted: they are matched
    /// by order, and the order is broken. Every recipient that was sent becomes "not probed"
    /// (`ConnectionLost`, a protocol error), even those that had a reply.
    fn abandon(&mut self, mut outcome: TransactionOutcome, err: Error) -> TransactionOutcome {
        let err = self.fail(err);
        if matches!(err, Error::Unsolicited { .. }) {
            outcome.mail = None;
            for r in &mut outcome.recipients {
                // What the client decided itself (not sent) stays as it is.
                if !matches!(
                    r,
                    RecipientOutcome::NotProbed(
                        NotProbed::NeedsSmtpUtf8 | NotProbed::OverRcptLimit
                    )
                ) {
                    *r = RecipientOutcome::NotProbed(NotProbed::ConnectionLost);
                }
            }
        }
        if matches!(err, Error::ServiceClosing(_)) {
            for r in &mut outcome.recipients {
                if *r == RecipientOutcome::NotProbed(NotProbed::ConnectionLost) {
                    *r = RecipientOutcome::NotProbed(NotProbed::SessionClosed);
                }
            }
        }
        outcome.error = Some(err);
        outcome
    }
}
