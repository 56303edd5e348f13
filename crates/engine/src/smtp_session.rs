//! `Connector` and `ProbeSession` over `rollcall-smtp`: the engine's port mapped onto the real
//! driver. Every byte on the wire goes through the driver's sans-IO session, which refuses any
//! command out of sequence; this module only maps the engine's settings onto the driver's.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use rollcall_smtp::proto::{ClientName, Mailbox, ReversePath};
use rollcall_smtp::{ClientConfig, NotProbed, RecipientOutcome, Session, TransactionOutcome};

use crate::config::{EngineConfig, TlsMode};
use crate::egress::Egress;
use crate::probe::{Connector, ProbeFailure, ProbeSession};

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
            .map_err(|e| ProbeFailure::from(&e))?;
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

#[async_trait]
impl ProbeSession for SmtpSession {
    async fn transaction(&mut self, rcpts: &[Mailbox]) -> TransactionOutcome {
        if rcpts.is_empty() {
            return TransactionOutcome {
                mail: None,
                recipients: Vec::new(),
                pipelined: false,
                error: None,
            };
        }
        match self.session.probe(&self.reverse, rcpts).await {
            Ok(done) => done,
            // Nothing could be attempted: every recipient is unanswered.
            Err(error) => TransactionOutcome {
                mail: None,
                recipients: vec![
                    RecipientOutcome::NotProbed(NotProbed::SessionClosed);
                    rcpts.len()
                ],
                pipelined: false,
                error: Some(error),
            },
        }
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
