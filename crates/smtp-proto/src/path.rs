//! Envelope paths and the client's EHLO name, checked before they can reach the wire.
//!
//! Owns the RFC 5321 4.1.2 / 4.5.3.1 syntax and length checks (and the RFC 6531 UTF-8
//! extension). The rule that matters most: no CR, LF, NUL or other control character is ever
//! accepted, so no address can smuggle a second command onto the socket. Does not own address
//! normalisation or DNS (the core and dns crates do).

use std::fmt;

/// RFC 5321 4.5.3.1.1.
pub const MAX_LOCAL_PART: usize = 64;
/// RFC 5321 4.5.3.1.2.
pub const MAX_DOMAIN: usize = 255;
/// RFC 5321 4.5.3.1.3 (including the angle brackets).
pub const MAX_PATH: usize = 256;

/// Why an address or name cannot be sent.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PathError {
    #[error("empty address")]
    Empty,
    #[error("control character in address (CR, LF, NUL and the like are never sent)")]
    ControlCharacter,
    #[error("address has no '@'")]
    MissingAt,
    #[error("local part longer than {MAX_LOCAL_PART} octets")]
    LocalPartTooLong,
    #[error("domain longer than {MAX_DOMAIN} octets")]
    DomainTooLong,
    #[error("path longer than {MAX_PATH} octets")]
    PathTooLong,
    #[error("invalid local part")]
    InvalidLocalPart,
    #[error("invalid domain")]
    InvalidDomain,
    #[error("invalid EHLO/HELO name")]
    InvalidClientName,
}

/// A checked `local@domain` mailbox (RFC 5321 4.1.2 `Mailbox`, RFC 6531 UTF-8 allowed).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Mailbox {
    address: String,
    at: usize,
}

impl Mailbox {
    /// Checks an address given without angle brackets.
    pub fn parse(s: &str) -> Result<Self, PathError> {
        if s.is_empty() {
            return Err(PathError::Empty);
        }
        if s.chars().any(char::is_control) {
            return Err(PathError::ControlCharacter);
        }
        let at = s.rfind('@').ok_or(PathError::MissingAt)?;
        let (local, domain) = (&s[..at], &s[at + 1..]);
        if local.len() > MAX_LOCAL_PART {
            return Err(PathError::LocalPartTooLong);
        }
        if domain.len() > MAX_DOMAIN {
            return Err(PathError::DomainTooLong);
        }
        if s.len() + 2 > MAX_PATH {
            return Err(PathError::PathTooLong);
        }
        check_local_part(local)?;
        check_domain(domain, true).map_err(|_| PathError::InvalidDomain)?;
        Ok(Self {
            address: s.to_owned(),
            at,
        })
    }

    pub fn as_str(&self) -> &str {
        &self.address
    }

    pub fn local_part(&self) -> &str {
        &self.address[..self.at]
    }

    pub fn domain(&self) -> &str {
        &self.address[self.at + 1..]
    }

    /// False when the address needs SMTPUTF8 (RFC 6531 3.4).
    pub fn is_ascii(&self) -> bool {
        self.address.is_ascii()
    }
}

impl fmt::Display for Mailbox {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.address)
    }
}

/// MAIL FROM's path: a mailbox or the null reverse path `<>` (RFC 5321 4.5.5).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ReversePath {
    Null,
    Mailbox(Mailbox),
}

impl ReversePath {
    /// `""` or `"<>"` is the null path; anything else must be a mailbox.
    pub fn parse(s: &str) -> Result<Self, PathError> {
        match s {
            "" | "<>" => Ok(Self::Null),
            _ => Mailbox::parse(s).map(Self::Mailbox),
        }
    }

    pub fn is_ascii(&self) -> bool {
        match self {
            Self::Null => true,
            Self::Mailbox(m) => m.is_ascii(),
        }
    }
}

impl fmt::Display for ReversePath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Null => Ok(()),
            Self::Mailbox(m) => m.fmt(f),
        }
    }
}

/// The name the client gives in EHLO/HELO (RFC 5321 4.1.1.1): a domain or an address literal.
/// ASCII only: there is no SMTPUTF8 before EHLO is answered.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ClientName(String);

impl ClientName {
    pub fn parse(s: &str) -> Result<Self, PathError> {
        if s.is_empty() || !s.is_ascii() || s.len() > MAX_DOMAIN {
            return Err(PathError::InvalidClientName);
        }
        check_domain(s, false).map_err(|_| PathError::InvalidClientName)?;
        Ok(Self(s.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ClientName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// RFC 5321 4.1.2 `Local-part = Dot-string / Quoted-string`, with RFC 6531's UTF-8 added to
/// `atext` and `qtextSMTP`.
fn check_local_part(local: &str) -> Result<(), PathError> {
    if local.is_empty() {
        return Err(PathError::InvalidLocalPart);
    }
    if let Some(inner) = local.strip_prefix('"').and_then(|l| l.strip_suffix('"')) {
        let mut escaped = false;
        for c in inner.chars() {
            if escaped {
                // quoted-pairSMTP = %d92 %d32-126
                if !(' '..='~').contains(&c) {
                    return Err(PathError::InvalidLocalPart);
                }
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == '"' || !(c == ' ' || c.is_ascii_graphic() || !c.is_ascii()) {
                return Err(PathError::InvalidLocalPart);
            }
        }
        return if escaped {
            Err(PathError::InvalidLocalPart)
        } else {
            Ok(())
        };
    }
    for atom in local.split('.') {
        if atom.is_empty() || !atom.chars().all(is_atext) {
            return Err(PathError::InvalidLocalPart);
        }
    }
    Ok(())
}

/// RFC 5322 3.2.3 `atext`, plus any non-ASCII (RFC 6531 3.3).
fn is_atext(c: char) -> bool {
    c.is_ascii_alphanumeric() || "!#$%&'*+-/=?^_`{|}~".contains(c) || !c.is_ascii()
}

/// A domain of letters/digits/hyphens (or U-labels when `utf8`), or an address literal.
fn check_domain(domain: &str, utf8: bool) -> Result<(), ()> {
    if domain.is_empty() {
        return Err(());
    }
    if let Some(lit) = domain.strip_prefix('[').and_then(|d| d.strip_suffix(']')) {
        // RFC 5321 4.1.3 address literals.
        if let Some(v6) = lit.strip_prefix("IPv6:") {
            return v6.parse::<std::net::Ipv6Addr>().map(|_| ()).map_err(|_| ());
        }
        return lit
            .parse::<std::net::Ipv4Addr>()
            .map(|_| ())
            .map_err(|_| ());
    }
    let domain = domain.strip_suffix('.').unwrap_or(domain);
    for label in domain.split('.') {
        let ok_char = |c: char| c.is_ascii_alphanumeric() || c == '-' || (utf8 && !c.is_ascii());
        if label.is_empty()
            || label.len() > 63
            || label.starts_with('-')
            || label.ends_with('-')
            || !label.chars().all(ok_char)
        {
            return Err(());
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_ordinary_addresses() {
        for a in [
            "alice@example.test",
            "alice+tag@example.test",
            "a.b.c@sub.example.test",
            "\"john doe\"@example.test",
            "user@[192.0.2.1]",
            "user@[IPv6:2001:db8::1]",
            "pelé@exemple.test",
            "user@bücher.example",
        ] {
            assert!(Mailbox::parse(a).is_ok(), "{a}");
        }
        let m = Mailbox::parse("alice@Example.Test").unwrap();
        assert_eq!((m.local_part(), m.domain()), ("alice", "Example.Test"));
        assert!(!Mailbox::parse("pelé@exemple.test").unwrap().is_ascii());
    }

    #[test]
    fn refuses_injection_and_garbage() {
        let cases = [
            ("alice@example.test\r\nRSET", PathError::ControlCharacter),
            ("alice@example.test\nDATA", PathError::ControlCharacter),
            ("al\0ice@example.test", PathError::ControlCharacter),
            ("al\u{85}ice@example.test", PathError::ControlCharacter),
            ("", PathError::Empty),
            ("alice", PathError::MissingAt),
            ("a>b@example.test", PathError::InvalidLocalPart),
            ("a b@example.test", PathError::InvalidLocalPart),
            (".a@example.test", PathError::InvalidLocalPart),
            ("a..b@example.test", PathError::InvalidLocalPart),
            ("@example.test", PathError::InvalidLocalPart),
            ("a@", PathError::InvalidDomain),
            ("a@-x.test", PathError::InvalidDomain),
            ("a@x..test", PathError::InvalidDomain),
            ("a@x>.test", PathError::InvalidDomain),
            ("a@[300.1.1.1]", PathError::InvalidDomain),
            ("\"a\"b\"@example.test", PathError::InvalidLocalPart),
        ];
        for (a, e) in cases {
            assert_eq!(Mailbox::parse(a), Err(e), "{a:?}");
        }
    }

    #[test]
    fn lengths() {
        let local = "a".repeat(64);
        assert!(Mailbox::parse(&format!("{local}@example.test")).is_ok());
        assert_eq!(
            Mailbox::parse(&format!("{local}a@example.test")),
            Err(PathError::LocalPartTooLong)
        );
        let label = "b".repeat(63);
        let domain = [label.as_str(); 4].join("."); // 255
        assert_eq!(domain.len(), 255);
        assert_eq!(
            Mailbox::parse(&format!("a@{domain}")),
            Err(PathError::PathTooLong)
        );
        assert_eq!(
            Mailbox::parse(&format!("a@{domain}x")),
            Err(PathError::DomainTooLong)
        );
    }

    #[test]
    fn reverse_path_and_client_name() {
        assert_eq!(ReversePath::parse("<>"), Ok(ReversePath::Null));
        assert_eq!(ReversePath::parse(""), Ok(ReversePath::Null));
        assert!(ClientName::parse("probe.example.test").is_ok());
        assert!(ClientName::parse("[127.0.0.1]").is_ok());
        assert!(ClientName::parse("bad name").is_err());
        assert!(ClientName::parse("x\r\nMAIL").is_err());
        assert!(ClientName::parse("bücher.example").is_err());
        assert!(ClientName::parse("").is_err());
    }
}
