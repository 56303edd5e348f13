//! One SMTP server session's state machine: what each command gets in each state, the error
//! budget, the MAIL and RCPT rates per client IP (asking the host's `anvil`), greylisting
//! and the recipient verdicts. Replies are appended to an output buffer;
//! reading, writing, latency, pipelining checks and TLS are `connection`'s job.
//!
//! RCPT, the longest command, is `rcpt` (a child module).
//!
//! States (RFC 5321 4.1.4, RFC 3207 4.2): `NeedHelo` (after the greeting and after TLS),
//! `Ready` (after EHLO/HELO or RSET), `Mail` (MAIL accepted).

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use rand::SeedableRng;
use rand::rngs::StdRng;

use crate::anvil::Event;
use crate::command::{Command, UNKNOWN};
use crate::counters::{ClientStats, HostStats, bump};
use crate::shared::Shared;
use crate::spec::Profile;
use crate::world::HostEntry;

mod rcpt;

/// What the connection does after a command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Step {
    Continue,
    /// Write what is buffered, then close.
    Close,
    /// Write what is buffered, then do the TLS handshake.
    StartTls,
    /// Close at once, writing nothing (`drop_after_commands`).
    Drop,
}

#[derive(Debug)]
enum Phase {
    NeedHelo,
    Ready,
    Mail {
        sender: String,
        smtputf8: bool,
        /// Recipients accepted (250) in this transaction (`rcpt_limit`).
        accepted: u32,
        /// RCPT commands in this transaction, whatever their reply
        /// (`max_rcpts_per_transaction`).
        rcpts: u32,
    },
}

pub(crate) struct Session {
    shared: Arc<Shared>,
    host: u32,
    stats: Arc<HostStats>,
    /// This client IP's counters at this host.
    client: Arc<ClientStats>,
    profile: Arc<Profile>,
    peer: IpAddr,
    phase: Phase,
    pipelining: bool,
    tls: bool,
    errors: u32,
    junk: u32,
    commands: u32,
    rng: StdRng,
}

impl Session {
    pub fn new(
        shared: Arc<Shared>,
        host: u32,
        peer: IpAddr,
        client: Arc<ClientStats>,
        connection_no: u64,
    ) -> Session {
        let stats = shared.stats[host as usize].clone();
        let profile = shared.world.hosts[host as usize].profile.clone();
        let seed = shared.world.seed
            ^ (u64::from(host) << 40)
            ^ connection_no.wrapping_mul(0x9e37_79b9_7f4a_7c15);
        Session {
            shared,
            host,
            stats,
            client,
            profile,
            peer,
            phase: Phase::NeedHelo,
            pipelining: false,
            tls: false,
            errors: 0,
            junk: 0,
            commands: 0,
            rng: StdRng::seed_from_u64(seed),
        }
    }

    fn entry(&self) -> &HostEntry {
        &self.shared.world.hosts[self.host as usize]
    }

    /// True when the current EHLO reply advertised PIPELINING.
    pub fn pipelining(&self) -> bool {
        self.pipelining
    }

    /// RFC 3207 4.2: after the handshake the server forgets everything learnt before it.
    pub fn tls_started(&mut self) {
        self.phase = Phase::NeedHelo;
        self.pipelining = false;
        self.tls = true;
        bump(&self.stats.tls_sessions);
    }

    /// Appends one reply line, applying the Postfix error budget: error replies past the
    /// soft limit wait `error_delay_ms` first (smtpd_error_sleep_time).
    async fn reply(&mut self, out: &mut Vec<u8>, line: &str) {
        let code = line.as_bytes().first().copied().unwrap_or(b'2');
        if (code == b'4' || code == b'5') && !line.starts_with("421") {
            if self.errors >= self.profile.error_soft_limit && self.profile.error_delay_ms > 0 {
                tokio::time::sleep(Duration::from_millis(self.profile.error_delay_ms)).await;
            }
            self.errors += 1;
        }
        if line.starts_with("503") {
            bump(&self.stats.replies_503);
        }
        out.extend_from_slice(line.as_bytes());
        out.extend_from_slice(b"\r\n");
    }

    fn junk(&mut self) {
        // Postfix smtpd_junk_command_limit: RSET/NOOP/EHLO/HELO are free up to the limit.
        self.junk += 1;
        if self.junk > self.profile.junk_command_limit {
            self.errors += 1;
        }
    }

    fn rate_limited(&self) {
        bump(&self.stats.rate_limited);
        bump(&self.client.rate_limited);
    }

    /// Counts a command line (called for every line, before any check).
    pub fn count_command(&self) {
        bump(&self.stats.commands);
    }

    /// Handles one command.
    pub async fn handle(&mut self, command: Command, out: &mut Vec<u8>) -> Step {
        self.commands += 1;
        if let Some(n) = self.profile.drop_after_commands
            && self.commands > n
        {
            bump(&self.stats.dropped_connections);
            return Step::Drop;
        }
        // Postfix checks the hard limit before reading the next command.
        if self.errors >= self.profile.error_hard_limit {
            bump(&self.stats.error_budget_trips);
            let line = format!("421 4.7.0 {} Error: too many errors", self.entry().name);
            self.reply(out, &line).await;
            return Step::Close;
        }
        let need_helo = matches!(self.phase, Phase::NeedHelo) && self.profile.helo_required;
        match command {
            Command::Ehlo(_) => {
                self.junk();
                self.phase = Phase::Ready;
                self.pipelining = self.profile.pipelining;
                let mut lines = vec![self.entry().name.clone()];
                if self.profile.pipelining {
                    lines.push("PIPELINING".into());
                }
                lines.push("SIZE 10240000".into());
                if self.profile.starttls && !self.tls && self.shared.tls.is_some() {
                    lines.push("STARTTLS".into());
                }
                if let Some(n) = self.profile.limits_rcptmax {
                    lines.push(format!("LIMITS RCPTMAX={n}"));
                }
                lines.push("ENHANCEDSTATUSCODES".into());
                lines.push("8BITMIME".into());
                if self.profile.smtputf8 {
                    lines.push("SMTPUTF8".into());
                }
                let last = lines.len() - 1;
                for (i, l) in lines.iter().enumerate() {
                    let sep = if i == last { ' ' } else { '-' };
                    out.extend_from_slice(format!("250{sep}{l}\r\n").as_bytes());
                }
                Step::Continue
            }
            Command::Helo(_) => {
                self.junk();
                self.phase = Phase::Ready;
                self.pipelining = false;
                let line = format!("250 {}", self.entry().name);
                self.reply(out, &line).await;
                Step::Continue
            }
            Command::Mail { path, params } => {
                self.mail(out, need_helo, path, params).await;
                Step::Continue
            }
            Command::Rcpt { path, params } => {
                self.rcpt(out, need_helo, path, params).await;
                Step::Continue
            }
            Command::Rset => {
                self.junk();
                if !matches!(self.phase, Phase::NeedHelo) {
                    self.phase = Phase::Ready;
                }
                self.reply(out, "250 2.0.0 Ok").await;
                Step::Continue
            }
            Command::Noop => {
                self.junk();
                self.reply(out, "250 2.0.0 Ok").await;
                Step::Continue
            }
            Command::Quit => {
                self.reply(out, "221 2.0.0 Bye").await;
                Step::Close
            }
            Command::StartTls => {
                let line = if !self.profile.starttls || self.shared.tls.is_none() {
                    "502 5.5.1 Error: command not implemented"
                } else if self.tls {
                    "554 5.5.1 Error: TLS already active"
                } else if need_helo {
                    "503 5.5.1 Error: send HELO/EHLO first"
                } else if matches!(self.phase, Phase::Mail { .. }) {
                    "503 5.5.1 Error: MAIL transaction in progress"
                } else {
                    self.reply(out, "220 2.0.0 Ready to start TLS").await;
                    return Step::StartTls;
                };
                self.reply(out, line).await;
                Step::Continue
            }
            Command::Data => {
                bump(&self.stats.data_commands);
                let line = match &self.phase {
                    _ if need_helo => "503 5.5.1 Error: send HELO/EHLO first",
                    Phase::NeedHelo | Phase::Ready => "503 5.5.1 Error: need RCPT command",
                    Phase::Mail { accepted: 0, .. } => "554 5.5.1 Error: no valid recipients",
                    // Never take a message: a verifier must not get this far.
                    Phase::Mail { .. } => "554 5.7.0 Error: message data is refused here",
                };
                self.reply(out, line).await;
                Step::Continue
            }
            Command::Refused(line) | Command::Syntax(line) => {
                self.reply(out, line).await;
                Step::Continue
            }
            Command::Unknown => {
                self.reply(out, UNKNOWN).await;
                Step::Continue
            }
        }
    }

    async fn mail(
        &mut self,
        out: &mut Vec<u8>,
        need_helo: bool,
        path: String,
        params: Vec<String>,
    ) {
        if need_helo {
            return self
                .reply(out, "503 5.5.1 Error: send HELO/EHLO first")
                .await;
        }
        if matches!(self.phase, Phase::Mail { .. }) {
            return self
                .reply(out, "503 5.5.1 Error: nested MAIL command")
                .await;
        }
        // Postfix mail_cmd asks anvil right after the sequence checks, before looking at the
        // address and parameters: every MAIL in sequence counts, refused ones included.
        if self.shared.anvils[self.host as usize].over(self.peer, Event::Mail) {
            self.rate_limited();
            let line = format!("450 4.7.1 Error: too much mail from {}", self.peer);
            return self.reply(out, &line).await;
        }
        let mut smtputf8 = false;
        for p in &params {
            let (key, value) = p.split_once('=').unwrap_or((p.as_str(), ""));
            let ok = match key.to_ascii_uppercase().as_str() {
                "SIZE" => !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()),
                "BODY" => {
                    value.eq_ignore_ascii_case("7BIT") || value.eq_ignore_ascii_case("8BITMIME")
                }
                "SMTPUTF8" if value.is_empty() && self.profile.smtputf8 => {
                    smtputf8 = true;
                    true
                }
                _ => false,
            };
            if !ok {
                let line = format!("555 5.5.4 Unsupported option: {p}");
                return self.reply(out, &line).await;
            }
        }
        if !path.is_empty() && !path.contains('@') {
            let line = format!(
                "504 5.5.2 <{path}>: Sender address rejected: need fully-qualified address"
            );
            return self.reply(out, &line).await;
        }
        if !path.is_ascii() && !smtputf8 {
            return self
                .reply(
                    out,
                    "553 5.6.7 Must declare SMTPUTF8 to send unicode address",
                )
                .await;
        }
        if self.profile.reject_mail {
            // The transaction never starts: RCPTs that follow get `503 need MAIL command`,
            // as Postfix answers a pipelined group after a rejected MAIL.
            let line = format!("550 5.7.1 <{path}>: Sender address rejected: Access denied");
            return self.reply(out, &line).await;
        }
        self.phase = Phase::Mail {
            sender: path,
            smtputf8,
            accepted: 0,
            rcpts: 0,
        };
        bump(&self.stats.transactions);
        bump(&self.client.transactions);
        self.reply(out, "250 2.1.0 Ok").await;
    }
}
