//! Email addresses as they appear in real lists, parsed into what goes on the wire.
//!
//! Owns `EmailAddress` and its parser. Accepted input forms:
//! - a bare addr-spec, `alice@example.com`, with surrounding spaces and tabs trimmed;
//! - an angle-addr, `<alice@example.com>`, and a name-addr, `Alice Doe <alice@example.com>` or
//!   `"Doe, Alice" <alice@example.com>` (RFC 5322 3.4): only the address between the brackets
//!   is kept, the display name is dropped;
//! - dot-atom local parts (RFC 5322 3.4.1, with RFC 6531's UTF-8 extension) and quoted local
//!   parts (RFC 5321 4.1.2 `Quoted-string`). A quoted local part that could be written as a
//!   dot-string is stored unquoted (RFC 5321 4.1.2 says it SHOULD be sent that way).
//!
//! Refused: control characters anywhere (CR, LF, NUL, every other C0 control, DEL, C1 controls,
//! U+2028/2029 and bidi/zero-width controls), so nothing parsed here can inject a command into
//! an SMTP session; comments and obsolete RFC 822 forms; domain literals (see
//! `SyntaxReason::verdict_reason` for why they are `unknown/unverifiable`); the RFC 5321 length
//! limits. Domain rules live in `domain`. This module does not decide anything about
//! deliverability.

use std::borrow::Cow;
use std::fmt;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::str::FromStr;
use std::sync::Arc;

use rollcall_smtp_proto::{Mailbox, PathError};
use serde::{Deserialize, Serialize};

use crate::domain::Domain;
use crate::syntax::{SyntaxError, SyntaxReason, is_forbidden_char};

#[cfg(test)]
mod tests;

/// RFC 5321 4.5.3.1.1: a local part is at most 64 octets.
pub const MAX_LOCAL_OCTETS: usize = 64;
/// RFC 5321 4.5.3.1.3 (path at most 256 octets with its angle brackets): 254 for the address.
pub const MAX_ADDRESS_OCTETS: usize = 254;

/// A syntactically valid, normalised email address.
///
/// The local part keeps its case (RFC 5321 2.4: only the receiving host may interpret it) and is
/// held in wire form: a dot-string, or a quoted string with `"` and `\` escaped. The domain is
/// normalised (`Domain`). `Display` gives `local@ascii-domain`, the form sent in `RCPT TO`.
///
/// Parsed once when its row comes in and shared from then on: a clone (a batch on the queue, a
/// delivery, the items of a transaction) copies a pointer, not the strings.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct EmailAddress(Arc<Parts>);

#[derive(Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
struct Parts {
    local: String,
    domain: Domain,
    quoted: bool,
}

impl EmailAddress {
    /// Parses an address from a list entry (see the module documentation for the forms).
    pub fn parse(input: &str) -> Result<EmailAddress, SyntaxError> {
        let trimmed = trim(input);
        if trimmed.is_empty() {
            return Err(SyntaxError::new(
                SyntaxReason::Empty,
                "the address is empty",
            ));
        }
        if trimmed.chars().any(is_forbidden_char) {
            return Err(SyntaxError::new(
                SyntaxReason::ControlCharacter,
                "the address holds a control character (CR, LF, NUL or similar)",
            ));
        }
        let spec = strip_angle_brackets(trimmed)?;
        if spec.is_empty() {
            return Err(SyntaxError::new(
                SyntaxReason::Empty,
                "the angle brackets hold no address",
            ));
        }
        let (local, quoted, domain) = split_local_domain(spec)?;
        if local.len() > MAX_LOCAL_OCTETS {
            return Err(SyntaxError::new(
                SyntaxReason::LocalTooLong,
                format!(
                    "the local part is {} octets long; at most {MAX_LOCAL_OCTETS} are allowed",
                    local.len()
                ),
            ));
        }
        let domain = Domain::parse(domain)?;
        let total = local.len() + 1 + domain.as_str().len();
        if total > MAX_ADDRESS_OCTETS {
            return Err(SyntaxError::new(
                SyntaxReason::AddressTooLong,
                format!(
                    "the address is {total} octets long; at most {MAX_ADDRESS_OCTETS} are allowed"
                ),
            ));
        }
        Ok(EmailAddress(Arc::new(Parts {
            local,
            domain,
            quoted,
        })))
    }

    /// The local part in wire form (quoted if it must be), case kept.
    pub fn local_part(&self) -> &str {
        &self.0.local
    }

    /// The local part's content: without the quotes and escapes of a quoted local part.
    pub fn local_unquoted(&self) -> Cow<'_, str> {
        if !self.0.quoted {
            return Cow::Borrowed(&self.0.local);
        }
        let inner = &self.0.local[1..self.0.local.len() - 1];
        let mut out = String::with_capacity(inner.len());
        let mut chars = inner.chars();
        while let Some(c) = chars.next() {
            if c == '\\' {
                if let Some(next) = chars.next() {
                    out.push(next);
                }
            } else {
                out.push(c);
            }
        }
        Cow::Owned(out)
    }

    /// True when the local part must be sent as a quoted string.
    pub fn is_quoted_local(&self) -> bool {
        self.0.quoted
    }

    /// The normalised domain.
    pub fn domain(&self) -> &Domain {
        &self.0.domain
    }

    /// The key a campaign dedupes its rows by: a 64-bit hash of the local part lowercased and
    /// the normalised domain. Local parts are case-sensitive in theory (RFC 5321 2.4) and never
    /// in practice; probing `John@` and `john@` twice would only cost the site's patience. The
    /// hash is stable within a build (`DefaultHasher::new`), which is as long as a key is kept.
    pub fn dedupe_key(&self) -> u64 {
        let mut hasher = DefaultHasher::new();
        self.0.local.to_lowercase().hash(&mut hasher);
        self.0.domain.as_str().hash(&mut hasher);
        hasher.finish()
    }

    /// The key a result cache keeps this address's verdict under, stable across builds and
    /// runs: the local part lowercased (as `dedupe_key` treats it), `@`, the normalised ASCII
    /// domain. `John@Example.COM` and `john@example.com` share one entry.
    pub fn cache_key(&self) -> String {
        format!("{}@{}", self.0.local.to_lowercase(), self.0.domain.as_str())
    }

    /// True when the local part is ASCII. When false, probing needs a server that advertises
    /// SMTPUTF8 (RFC 6531); without it the address is `unknown/unverifiable`.
    pub fn is_ascii_local(&self) -> bool {
        self.0.local.is_ascii()
    }

    /// The address as the protocol crate's `Mailbox`, what RCPT TO carries. That crate checks
    /// it once more for the wire (no control character, the RFC 5321 lengths), so nothing
    /// reaches a socket unchecked, whoever wrote the batch it came in.
    pub fn to_mailbox(&self) -> Result<Mailbox, PathError> {
        Mailbox::parse(&self.to_wire_string())
    }

    /// `local@ascii-domain` (what `Display` writes) built without the formatting machinery:
    /// every verdict's evidence holds one.
    pub fn to_wire_string(&self) -> String {
        let domain = self.0.domain.as_str();
        let mut out = String::with_capacity(self.0.local.len() + 1 + domain.len());
        out.push_str(&self.0.local);
        out.push('@');
        out.push_str(domain);
        out
    }

    /// The address for display: local part and the Unicode form of the domain.
    pub fn to_unicode_string(&self) -> String {
        format!("{}@{}", self.0.local, self.0.domain.unicode())
    }
}

/// Trims spaces, tabs and other (non-control) Unicode white space such as NBSP at both ends.
fn trim(input: &str) -> &str {
    input.trim_matches(|c: char| c == '\t' || (c.is_whitespace() && !is_forbidden_char(c)))
}

/// `<addr>` and `Display Name <addr>` give `addr`; anything else is returned as is.
fn strip_angle_brackets(s: &str) -> Result<&str, SyntaxError> {
    let unbalanced = || {
        SyntaxError::new(
            SyntaxReason::UnbalancedAngleBrackets,
            "the angle brackets around the address do not pair up",
        )
    };
    let Some(body) = s.strip_suffix('>') else {
        return if s.starts_with('<') {
            Err(unbalanced())
        } else {
            Ok(s)
        };
    };
    // The first `<` outside a quoted display name opens the angle-addr (RFC 5322 3.4).
    let mut in_quotes = false;
    let mut escaped = false;
    for (i, c) in body.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' if in_quotes => escaped = true,
            '"' => in_quotes = !in_quotes,
            '<' if !in_quotes => return Ok(trim(&body[i + 1..])),
            _ => {}
        }
    }
    Err(unbalanced())
}

/// Splits an addr-spec into (local part in wire form, quoted?, domain text).
fn split_local_domain(spec: &str) -> Result<(String, bool, &str), SyntaxError> {
    if let Some(rest) = spec.strip_prefix('"') {
        let (content, after) = parse_quoted(rest)?;
        let Some(domain) = after.strip_prefix('@') else {
            return Err(if after.is_empty() {
                missing_at()
            } else {
                SyntaxError::new(
                    SyntaxReason::InvalidQuotedLocal,
                    "text follows the closing quote of the local part",
                )
            });
        };
        if content.is_empty() {
            return Err(empty_local());
        }
        if check_dot_string(&content).is_ok() {
            // RFC 5321 4.1.2: a quoted string that could be a dot-string is sent as one.
            return Ok((content, false, domain));
        }
        let mut wire = String::with_capacity(content.len() + 2);
        wire.push('"');
        for c in content.chars() {
            if c == '"' || c == '\\' {
                wire.push('\\');
            }
            wire.push(c);
        }
        wire.push('"');
        return Ok((wire, true, domain));
    }
    let Some(at) = spec.rfind('@') else {
        return Err(missing_at());
    };
    let (local, domain) = (&spec[..at], &spec[at + 1..]);
    if local.is_empty() {
        return Err(empty_local());
    }
    check_dot_string(local)?;
    if domain.is_empty() {
        return Err(SyntaxError::new(
            SyntaxReason::EmptyDomain,
            "nothing follows the @",
        ));
    }
    Ok((local.to_owned(), false, domain))
}

fn missing_at() -> SyntaxError {
    SyntaxError::new(
        SyntaxReason::MissingAt,
        "there is no @ between local part and domain",
    )
}

fn empty_local() -> SyntaxError {
    SyntaxError::new(SyntaxReason::EmptyLocal, "nothing precedes the @")
}

/// Parses the body of a quoted string after its opening quote: returns the unescaped content
/// and what follows the closing quote. RFC 5321 4.1.2: `qtextSMTP = %d32-33 / %d35-91 /
/// %d93-126`, `quoted-pairSMTP = %d92 %d32-126`; RFC 6531 3.3 adds UTF-8 to qtextSMTP.
fn parse_quoted(rest: &str) -> Result<(String, &str), SyntaxError> {
    let mut content = String::new();
    let mut chars = rest.char_indices();
    while let Some((i, c)) = chars.next() {
        match c {
            '"' => return Ok((content, &rest[i + 1..])),
            '\\' => match chars.next() {
                Some((_, e)) if (' '..='~').contains(&e) => content.push(e),
                _ => {
                    return Err(SyntaxError::new(
                        SyntaxReason::InvalidQuotedLocal,
                        "a backslash in the quoted local part escapes nothing printable",
                    ));
                }
            },
            c if c == ' ' || c == '!' || ('#'..='~').contains(&c) || !c.is_ascii() => {
                content.push(c)
            }
            _ => {
                return Err(SyntaxError::new(
                    SyntaxReason::InvalidQuotedLocal,
                    "the quoted local part holds a character it cannot",
                ));
            }
        }
    }
    Err(SyntaxError::new(
        SyntaxReason::InvalidQuotedLocal,
        "the quoted local part has no closing quote",
    ))
}

/// RFC 5322 3.2.3 `atext` (RFC 6531 3.3 adds non-ASCII UTF-8, less white space).
fn is_atext(c: char) -> bool {
    c.is_ascii_alphanumeric()
        || "!#$%&'*+-/=?^_`{|}~".contains(c)
        || (!c.is_ascii() && !c.is_whitespace())
}

/// RFC 5321 4.1.2 `Dot-string = Atom *("." Atom)`.
fn check_dot_string(local: &str) -> Result<(), SyntaxError> {
    if let Some(bad) = local.chars().find(|&c| c != '.' && !is_atext(c)) {
        let message = if bad == '@' {
            "an @ may appear in a local part only inside quotes".to_owned()
        } else {
            format!("the local part holds {bad:?}, which only a quoted local part may hold")
        };
        return Err(SyntaxError::new(
            SyntaxReason::InvalidLocalCharacter,
            message,
        ));
    }
    if local.starts_with('.') || local.ends_with('.') || local.contains("..") {
        return Err(SyntaxError::new(
            SyntaxReason::InvalidLocalDots,
            "the local part starts or ends with a dot, or has two in a row",
        ));
    }
    Ok(())
}

impl fmt::Display for EmailAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}@{}", self.0.local, self.0.domain)
    }
}

impl FromStr for EmailAddress {
    type Err = SyntaxError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        EmailAddress::parse(s)
    }
}

impl TryFrom<String> for EmailAddress {
    type Error = SyntaxError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        EmailAddress::parse(&s)
    }
}

impl From<EmailAddress> for String {
    fn from(a: EmailAddress) -> String {
        a.to_wire_string()
    }
}
