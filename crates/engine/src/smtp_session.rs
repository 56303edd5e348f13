//! `Connector` and `ProbeSession` over `rollcall-smtp`: the engine's port mapped onto the real
//! driver. Every byte on the wire goes through the driver's sans-IO session, which refuses any
//! command out of sequence; this module only translates outcomes into evidence.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use rollcall_core::EnhancedCode;
use rollcall_smtp::proto::{ClientName, Mailbox, Reply, ReversePath};
use rollcall_smtp::{ClientConfig, Error as SmtpError, NotProbed, RecipientOutcome, Session};

use crate::config::{EngineConfig, TlsMode};
use crate::egress::Egress;
use crate::probe::{Connector, ProbeFailure, ProbeSession, RcptOutcome, ReplyData, TxnOutcome};

/// Builds the driver's client settings for one egress from the engine's; an invalid HELO name,
/// sender or proxy is a configuration error, reported before any connection.
pub fn client_config(
    config: &EngineConfig,
    egress: &Egress,
) -> Result<(ClientConfig, ReversePath), String> {
    let name = ClientName::parse(&egress.helo)
        .map_err(|e| format!("egress `{}`: helo name `{}`: {e}", egress.name, egress.helo))?;
    let reverse = ReversePath::parse(&egress.mail_from).map_err(|e| {
        format!(
            "egress `{}`: mail from `{}`: {e}",
            egress.name, egress.mail_from
        )
    })?;
    let mut client = ClientConfig::new(name);
    client.connect_timeout = config.connect_timeout;
    client.greeting_timeout = config.greeting_timeout;
    client.command_timeout = config.command_timeout;
    client.local_addr = egress.bind;
    if let Some(url) = &egress.proxy {
        let proxy = rollcall_smtp::Socks5Proxy::parse(url)
            .map_err(|e| format!("egress `{}`: proxy: {e}", egress.name))?;
        client.proxy = Some(proxy);
    }
    client
        .validate()
        .map_err(|e| format!("egress `{}`: {e}", egress.name))?;
    client.transcript_lines = 0;
    client.tls = match config.tls {
        TlsMode::Opportunistic => rollcall_smtp::TlsMode::Opportunistic,
        TlsMode::Require => rollcall_smtp::TlsMode::Require,
        TlsMode::Never => rollcall_smtp::TlsMode::Never,
    };
    Ok((client, reverse))
}

/// The connector the engine uses against real (or simulated) MX hosts, with the client
/// settings of every egress of `config` built and checked up front.
pub fn connector(config: &EngineConfig) -> Result<Arc<dyn Connector>, String> {
    let egresses = config.egress_list();
    crate::egress::validate(&egresses)?;
    let mut ways = HashMap::with_capacity(egresses.len());
    for egress in &egresses {
        let (client, reverse) = client_config(config, egress)?;
        ways.insert(egress.name.clone(), (Arc::new(client), reverse));
    }
    Ok(Arc::new(SmtpConnector { ways }))
}

struct SmtpConnector {
    /// Client settings and sender per egress name.
    ways: HashMap<String, (Arc<ClientConfig>, ReversePath)>,
}

#[async_trait]
impl Connector for SmtpConnector {
    async fn connect(
        &self,
        egress: &Egress,
        host: &str,
        addr: SocketAddr,
    ) -> Result<Box<dyn ProbeSession>, ProbeFailure> {
        let Some((client, reverse)) = self.ways.get(&egress.name) else {
            return Err(ProbeFailure::ConnectionFailed(format!(
                "egress `{}` is not configured on this worker",
                egress.name
            )));
        };
        let session = Session::connect(addr, Some(host), client)
            .await
            .map_err(|e| failure(&e))?;
        Ok(Box::new(SmtpSession {
            session,
            reverse: reverse.clone(),
        }))
    }
}

struct SmtpSession {
    session: Session,
    reverse: ReversePath,
}

fn reply_data(reply: &Reply) -> ReplyData {
    ReplyData {
        code: reply.code,
        enhanced: reply
            .enhanced
            .and_then(|e| EnhancedCode::new(e.class, e.subject, e.detail)),
        text: reply.text(),
    }
}

/// The driver's error as the kind of failure a verdict can name.
fn failure(error: &SmtpError) -> ProbeFailure {
    let detail = error.to_string();
    match error {
        _ if error.is_timeout() => ProbeFailure::Timeout(detail),
        SmtpError::Tls(_) | SmtpError::TlsNotOffered | SmtpError::TlsRefused(_) => {
            ProbeFailure::TlsFailed(detail)
        }
        SmtpError::MalformedReply(_) | SmtpError::Sequence(_) | SmtpError::Unsolicited { .. } => {
            ProbeFailure::Protocol(detail)
        }
        // RFC 5321 3.1 / 4.2.5: a 554 greeting means "no SMTP service here" for this client
        // (in practice a policy block of the prober's address); 4xx is "try later".
        SmtpError::Refused { reply, .. } if reply.code >= 500 => ProbeFailure::Blocked(detail),
        SmtpError::Refused { .. } | SmtpError::ServiceClosing(_) => ProbeFailure::Temporary(detail),
        _ => ProbeFailure::ConnectionFailed(detail),
    }
}

#[async_trait]
impl ProbeSession for SmtpSession {
    async fn transaction(&mut self, rcpts: &[String]) -> TxnOutcome {
        // Addresses the codec refuses never reach the wire; they are settled as unsendable.
        let mut sendable = Vec::with_capacity(rcpts.len());
        let mut slots: Vec<Result<usize, String>> = Vec::with_capacity(rcpts.len());
        for rcpt in rcpts {
            match Mailbox::parse(rcpt) {
                Ok(mailbox) => {
                    slots.push(Ok(sendable.len()));
                    sendable.push(mailbox);
                }
                Err(e) => slots.push(Err(format!("not sendable: {e}"))),
            }
        }
        let mut outcome = TxnOutcome {
            mail: None,
            rcpts: Vec::with_capacity(rcpts.len()),
            closed_by: None,
            failure: None,
            pipelined: false,
        };
        let replies = if sendable.is_empty() {
            Vec::new()
        } else {
            match self.session.probe(&self.reverse, &sendable).await {
                Ok(done) => {
                    outcome.mail = done.mail.as_ref().map(reply_data);
                    outcome.pipelined = done.pipelined;
                    if let Some(error) = &done.error {
                        match error {
                            SmtpError::ServiceClosing(reply) => {
                                outcome.closed_by = Some(reply_data(reply))
                            }
                            other => outcome.failure = Some(failure(other)),
                        }
                    }
                    done.recipients
                }
                Err(error) => {
                    outcome.failure = Some(failure(&error));
                    vec![RecipientOutcome::NotProbed(NotProbed::SessionClosed); sendable.len()]
                }
            }
        };
        for slot in slots {
            outcome.rcpts.push(match slot {
                Err(why) => RcptOutcome::Unsendable(why),
                Ok(index) => match replies.get(index) {
                    Some(RecipientOutcome::Replied(reply)) => {
                        if reply.is_closing() && outcome.closed_by.is_none() {
                            outcome.closed_by = Some(reply_data(reply));
                        }
                        RcptOutcome::Replied(reply_data(reply))
                    }
                    Some(RecipientOutcome::NotProbed(NotProbed::OverRcptLimit)) => {
                        RcptOutcome::OverLimit
                    }
                    Some(RecipientOutcome::NotProbed(NotProbed::NeedsSmtpUtf8)) => {
                        RcptOutcome::Unsendable(
                            "non-ASCII mailbox and the server does not offer SMTPUTF8".into(),
                        )
                    }
                    _ => RcptOutcome::NotProbed,
                },
            });
        }
        outcome
    }

    fn rejected_rcpts(&self) -> u32 {
        self.session.stats().rcpts_rejected
    }

    fn transactions(&self) -> u32 {
        self.session.stats().transactions
    }

    fn age(&self) -> Duration {
        self.session.age()
    }

    fn is_usable(&self) -> bool {
        self.session.is_usable()
    }

    fn tls(&self) -> bool {
        self.session.tls().is_some()
    }

    async fn quit(mut self: Box<Self>) {
        if self.session.is_usable() {
            let _ = self.session.quit().await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rollcall_core::Reason;
    use rollcall_smtp::Phase;

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
