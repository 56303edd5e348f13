//! `[[egress]]` tables and `--egress IP`: the ways out a worker probes from, resolved into the
//! engine's `Egress` list. Flags win over the file; without either, `identity.egress` (one
//! source address) or the one direct egress.

use std::net::IpAddr;

use rollcall_engine::egress::{self, Egress};
use serde::Deserialize;

use super::error::{ConfigError, invalid};
use super::identity::{check_helo, check_mail_from};

/// One `[[egress]]` table, as written.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EgressSection {
    /// Stable id: metrics label, greylist pinning (`[A-Za-z0-9._:-]`, at most 64).
    pub name: String,
    /// Local source address.
    pub bind: Option<IpAddr>,
    /// `socks5://[user:pass@]IP:PORT`.
    pub proxy: Option<String>,
    /// The address the proxy's traffic leaves from (what servers see; `rollcall doctor`).
    pub proxy_exit: Option<IpAddr>,
    /// EHLO name for this egress (default: the run's HELO name).
    pub helo: Option<String>,
    /// MAIL FROM for this egress (default: the run's).
    pub mail_from: Option<String>,
}

/// The egress list: one per `--egress IP` when given, else the file's `[[egress]]` tables,
/// else `identity.egress`, else none (the engine's one direct egress).
pub(super) fn resolve(
    flags: &[IpAddr],
    tables: &[EgressSection],
    identity_bind: Option<IpAddr>,
    helo: &str,
    mail_from: &str,
) -> Result<Vec<Egress>, ConfigError> {
    let list: Vec<Egress> = if !flags.is_empty() {
        flags
            .iter()
            .map(|ip| Egress::bound(*ip, helo, mail_from))
            .collect()
    } else if !tables.is_empty() {
        tables
            .iter()
            .map(|t| table(t, helo, mail_from))
            .collect::<Result<_, _>>()?
    } else if let Some(ip) = identity_bind {
        vec![Egress::bound(ip, helo, mail_from)]
    } else {
        return Ok(Vec::new());
    };
    egress::validate(&list).map_err(|reason| {
        invalid(
            "egress",
            &reason,
            "give each [[egress]] a unique name and either bind or proxy",
        )
    })?;
    Ok(list)
}

fn table(t: &EgressSection, helo: &str, mail_from: &str) -> Result<Egress, ConfigError> {
    egress::check_name(&t.name).map_err(|reason| {
        invalid(
            "egress.name",
            &reason,
            "name each egress with letters, digits, . _ : -",
        )
    })?;
    let helo = match &t.helo {
        Some(name) => {
            check_helo(name)?;
            name.clone()
        }
        None => helo.to_string(),
    };
    let mail_from = match &t.mail_from {
        Some(from) => check_mail_from(from)?,
        None => mail_from.to_string(),
    };
    if let Some(url) = &t.proxy {
        rollcall_smtp::Socks5Proxy::parse(url).map_err(|reason| {
            invalid(
                "egress.proxy",
                &format!("egress `{}`: {reason}", t.name),
                "write socks5://IP:PORT or socks5://user:pass@IP:PORT",
            )
        })?;
    }
    Ok(Egress {
        name: t.name.clone(),
        bind: t.bind,
        proxy: t.proxy.clone(),
        proxy_exit: t.proxy_exit,
        helo,
        mail_from,
    })
}
