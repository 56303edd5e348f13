//! Egress identities: the ways out to the Internet a worker probes from. An egress has a stable
//! name (a metrics label, the key its politeness budgets and greylist retries are pinned to), a
//! local source address or a SOCKS5 proxy, and its own HELO name and MAIL FROM.
//!
//! Receiving servers count per client address (Postfix anvil, provider reputation, greylisting
//! triplets), so politeness holds per (site, egress): [`Egress::key`] is how every fleet-wide
//! budget (session slots, RCPT and connection rates, server-address slots, circuits) is named.
//! Owns the type, its validation and the key scheme; opening connections through an egress is
//! the connector's job (`smtp_session`).

use std::collections::HashSet;
use std::net::IpAddr;

/// The name of the one egress a configuration without egress entries has.
pub const DEFAULT_EGRESS: &str = "default";

/// Most characters in an egress name (it is a metrics label and part of store keys).
const MAX_NAME: usize = 64;

/// One way out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Egress {
    /// Stable id: `[A-Za-z0-9._:-]`, at most 64 characters, unique in a worker's list.
    pub name: String,
    /// Local source address to bind before connecting.
    pub bind: Option<IpAddr>,
    /// A SOCKS5 proxy URL (`socks5://[user:pass@]IP:PORT`); exclusive with `bind`.
    pub proxy: Option<String>,
    /// The address the proxy's traffic leaves from, as declared (what servers see; checked by
    /// `rollcall doctor`).
    pub proxy_exit: Option<IpAddr>,
    /// EHLO name; should resolve to the address servers see, whose PTR points back.
    pub helo: String,
    /// Reverse path of every probe through this egress (greylisting keys on it).
    pub mail_from: String,
}

impl Egress {
    /// The default egress: the machine's own route, with the run's HELO name and sender.
    pub fn direct(helo: &str, mail_from: &str) -> Egress {
        Egress {
            name: DEFAULT_EGRESS.to_string(),
            bind: None,
            proxy: None,
            proxy_exit: None,
            helo: helo.to_string(),
            mail_from: mail_from.to_string(),
        }
    }

    /// An egress named by its source address (what `--egress IP` gives).
    pub fn bound(ip: IpAddr, helo: &str, mail_from: &str) -> Egress {
        Egress {
            name: ip.to_string(),
            bind: Some(ip),
            ..Egress::direct(helo, mail_from)
        }
    }

    /// The name of a fleet-wide budget `scope` (a site, `rcpt:SITE`, `ip:ADDR`, an MX host)
    /// held by this egress. Names never contain `@`, so `SCOPE@NAME` is unambiguous however
    /// the scope is spelled.
    pub fn key(&self, scope: &str) -> String {
        format!("{scope}@{}", self.name)
    }

    /// The address servers see this egress connect from, when known.
    pub fn visible_address(&self) -> Option<IpAddr> {
        self.bind.or(self.proxy_exit)
    }
}

/// Checks a worker's egress list: at least one, names valid and unique, `bind` and `proxy` not
/// both set. The error names the egress and the fix.
pub fn validate(egresses: &[Egress]) -> Result<(), String> {
    if egresses.is_empty() {
        return Err("no egress: give at least one (or none at all for the default)".into());
    }
    let mut seen = HashSet::new();
    for egress in egresses {
        check_name(&egress.name)?;
        if !seen.insert(egress.name.as_str()) {
            return Err(format!(
                "egress `{}` is named twice: names must be unique",
                egress.name
            ));
        }
        if egress.bind.is_some() && egress.proxy.is_some() {
            return Err(format!(
                "egress `{}` has both bind and proxy: a proxy chooses its own source address",
                egress.name
            ));
        }
        if egress.helo.trim().is_empty() {
            return Err(format!("egress `{}` has an empty helo name", egress.name));
        }
    }
    Ok(())
}

/// An egress name is a metrics label and part of store keys: short, printable, no `@`.
pub fn check_name(name: &str) -> Result<(), String> {
    let valid = !name.is_empty()
        && name.len() <= MAX_NAME
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | ':' | '-'));
    if valid {
        Ok(())
    } else {
        Err(format!(
            "egress name `{name}`: use 1 to {MAX_NAME} of A-Z a-z 0-9 . _ : -"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_keep_site_and_egress_apart() {
        let a = Egress::bound("127.0.1.1".parse().unwrap(), "a.test", "v@a.test");
        let b = Egress::bound("127.0.1.2".parse().unwrap(), "b.test", "v@b.test");
        assert_eq!(a.key("mx.example.test"), "mx.example.test@127.0.1.1");
        assert_ne!(a.key("rcpt:s"), b.key("rcpt:s"));
        assert_eq!(a.visible_address(), Some("127.0.1.1".parse().unwrap()));
    }

    #[test]
    fn lists_are_checked() {
        let a = Egress::direct("a.test", "v@a.test");
        assert!(validate(std::slice::from_ref(&a)).is_ok());
        assert!(validate(&[]).is_err());
        let twice = validate(&[a.clone(), a.clone()]).unwrap_err();
        assert!(twice.contains("named twice"), "{twice}");
        let both = Egress {
            bind: Some("127.0.0.1".parse().unwrap()),
            proxy: Some("socks5://127.0.0.1:1080".into()),
            ..a.clone()
        };
        assert!(
            validate(&[both])
                .unwrap_err()
                .contains("both bind and proxy")
        );
        for bad in ["", "a@b", "a b", &"x".repeat(65)] {
            assert!(check_name(bad).is_err(), "{bad:?} accepted");
        }
        for good in ["a", "p1", "127.0.1.1", "2001:db8::1", "eu-west_1"] {
            assert!(check_name(good).is_ok(), "{good:?} refused");
        }
    }
}
