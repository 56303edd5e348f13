//! Mail domains: the part after the `@`, normalised.
//!
//! Owns `Domain` and its parser: lowercasing, IDN to A-labels (UTS 46 via `idna`), and the
//! RFC 5321/1035 length and label rules. It does not resolve anything (the dns crate does) and
//! does not know MX hosts (`site` does).

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::syntax::{SyntaxError, SyntaxReason, is_forbidden_char};

/// RFC 5321 4.5.3.1.2: a domain is at most 255 octets.
pub const MAX_DOMAIN_OCTETS: usize = 255;
/// RFC 1035 2.3.4: a label is at most 63 octets.
pub const MAX_LABEL_OCTETS: usize = 63;

/// A normalised mail domain: lowercase ASCII with IDN labels as A-labels (`xn--...`), which is
/// what goes on the wire and into DNS. The Unicode form is kept for display.
///
/// Equality, ordering and hashing follow the ASCII form.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Domain {
    ascii: String,
    /// The Unicode form when it differs (an internationalised domain); `None` for the many
    /// domains whose Unicode form is their ASCII form, which then cost one string, not two.
    unicode: Option<Box<str>>,
}

impl Domain {
    /// Parses and normalises a domain. Surrounding spaces and tabs are trimmed; domain literals
    /// (`[192.0.2.1]`), single-label names and numeric TLDs are refused.
    pub fn parse(input: &str) -> Result<Domain, SyntaxError> {
        let input = input.trim_matches([' ', '\t']);
        if input.is_empty() {
            return Err(SyntaxError::new(
                SyntaxReason::EmptyDomain,
                "the domain is empty",
            ));
        }
        if input.chars().any(is_forbidden_char) {
            return Err(SyntaxError::new(
                SyntaxReason::ControlCharacter,
                "the domain holds a control character",
            ));
        }
        if input.starts_with('[') {
            return Err(SyntaxError::new(
                SyntaxReason::DomainLiteral,
                "domain literals such as [192.0.2.1] are not probed",
            ));
        }
        // Cheap guard before IDNA work on absurd input; the exact check follows on the A-labels.
        if input.len() > 4 * MAX_DOMAIN_OCTETS {
            return Err(too_long(input.len()));
        }
        let ascii = if input.is_ascii() && !input.contains("xn--") && !input.contains("XN--") {
            input.to_ascii_lowercase()
        } else {
            // Empty labels first, so `a..例え.jp` says "empty label" rather than "invalid IDN".
            check_labels_present(input)?;
            idna::domain_to_ascii(input).map_err(|_| {
                SyntaxError::new(
                    SyntaxReason::InvalidIdn,
                    "the domain is not a valid internationalised domain name",
                )
            })?
        };
        validate_ascii(&ascii)?;
        let unicode = if ascii.contains("xn--") {
            Some(idna::domain_to_unicode(&ascii).0)
                .filter(|unicode| *unicode != ascii)
                .map(String::into_boxed_str)
        } else {
            None
        };
        Ok(Domain { ascii, unicode })
    }

    /// The normalised ASCII form (A-labels), e.g. `xn--bcher-kva.example`.
    pub fn as_str(&self) -> &str {
        &self.ascii
    }

    /// The Unicode form for display, e.g. `bücher.example`.
    pub fn unicode(&self) -> &str {
        self.unicode.as_deref().unwrap_or(&self.ascii)
    }

    /// True when some label is an A-label (the domain is internationalised).
    pub fn is_idn(&self) -> bool {
        self.unicode.is_some()
    }

    /// The labels, left to right.
    pub fn labels(&self) -> impl Iterator<Item = &str> {
        self.ascii.split('.')
    }

    /// This domain and each parent domain with at least two labels, longest first:
    /// `a.b.example.com` gives `a.b.example.com`, `b.example.com`, `example.com`.
    pub fn self_and_parents(&self) -> impl Iterator<Item = &str> {
        let ascii = self.ascii.as_str();
        std::iter::once(ascii)
            .chain(ascii.match_indices('.').map(move |(i, _)| &ascii[i + 1..]))
            .filter(|d| d.contains('.'))
    }

    /// True when `self` is `other` or a subdomain of it (`other` in ASCII form, lowercase).
    pub fn is_within(&self, other: &str) -> bool {
        self.ascii == other
            || (self.ascii.len() > other.len()
                && self.ascii.ends_with(other)
                && self.ascii.as_bytes()[self.ascii.len() - other.len() - 1] == b'.')
    }
}

fn too_long(len: usize) -> SyntaxError {
    SyntaxError::new(
        SyntaxReason::DomainTooLong,
        format!("the domain is {len} octets long; at most {MAX_DOMAIN_OCTETS} are allowed"),
    )
}

fn check_labels_present(domain: &str) -> Result<(), SyntaxError> {
    if domain.split('.').any(str::is_empty) {
        return Err(SyntaxError::new(
            SyntaxReason::EmptyLabel,
            "the domain has an empty label (a leading, trailing or doubled dot)",
        ));
    }
    Ok(())
}

/// RFC 5321 4.1.2 `Domain = sub-domain *("." sub-domain)`, `sub-domain = Let-dig [Ldh-str]`,
/// plus the RFC 1035 and 5321 length limits.
fn validate_ascii(ascii: &str) -> Result<(), SyntaxError> {
    if ascii.len() > MAX_DOMAIN_OCTETS {
        return Err(too_long(ascii.len()));
    }
    check_labels_present(ascii)?;
    for label in ascii.split('.') {
        if label.len() > MAX_LABEL_OCTETS {
            return Err(SyntaxError::new(
                SyntaxReason::LabelTooLong,
                format!(
                    "a domain label is {} octets long; at most {MAX_LABEL_OCTETS} are allowed",
                    label.len()
                ),
            ));
        }
        let ldh = label
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
        if !ldh || label.starts_with('-') || label.ends_with('-') {
            return Err(SyntaxError::new(
                SyntaxReason::InvalidLabel,
                format!("domain label {label:?} must be letters, digits and inner hyphens only"),
            ));
        }
    }
    let mut labels = ascii.rsplit('.');
    let tld = labels.next().unwrap_or_default();
    if labels.next().is_none() {
        return Err(SyntaxError::new(
            SyntaxReason::DomainWithoutDot,
            "the domain has a single label; mail domains have at least two",
        ));
    }
    if tld.bytes().all(|b| b.is_ascii_digit()) {
        return Err(SyntaxError::new(
            SyntaxReason::NumericTld,
            "the top-level label is numeric (an IP address is not a mail domain)",
        ));
    }
    Ok(())
}

impl fmt::Display for Domain {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.ascii)
    }
}

impl FromStr for Domain {
    type Err = SyntaxError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Domain::parse(s)
    }
}

impl TryFrom<String> for Domain {
    type Error = SyntaxError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        Domain::parse(&s)
    }
}

impl From<Domain> for String {
    fn from(d: Domain) -> String {
        d.ascii
    }
}

impl AsRef<str> for Domain {
    fn as_ref(&self) -> &str {
        &self.ascii
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reason(input: &str) -> SyntaxReason {
        match Domain::parse(input) {
            Ok(d) => panic!("{input:?} parsed as {d}"),
            Err(e) => e.reason(),
        }
    }

    #[test]
    fn lowercases_and_keeps_unicode_for_display() {
        let d = Domain::parse("Bücher.Example").unwrap();
        assert_eq!(d.as_str(), "xn--bcher-kva.example");
        assert_eq!(d.unicode(), "bücher.example");
        assert!(d.is_idn());
        let d = Domain::parse("EXAMPLE.COM").unwrap();
        assert_eq!(d.as_str(), "example.com");
        assert!(!d.is_idn());
    }

    #[test]
    fn a_labels_are_checked_and_displayed_in_unicode() {
        let d = Domain::parse("XN--BCHER-KVA.example").unwrap();
        assert_eq!(d.as_str(), "xn--bcher-kva.example");
        assert_eq!(d.unicode(), "bücher.example");
        assert_eq!(reason("xn--a-ecp.example"), SyntaxReason::InvalidIdn);
    }

    #[test]
    fn ideographic_full_stop_separates_labels() {
        let d = Domain::parse("例え。テスト").unwrap();
        assert_eq!(d.labels().count(), 2);
        assert!(d.as_str().starts_with("xn--"));
    }

    #[test]
    fn refusals() {
        assert_eq!(reason(""), SyntaxReason::EmptyDomain);
        assert_eq!(reason("[192.0.2.1]"), SyntaxReason::DomainLiteral);
        assert_eq!(reason("localhost"), SyntaxReason::DomainWithoutDot);
        assert_eq!(reason("192.0.2.1"), SyntaxReason::NumericTld);
        assert_eq!(reason("a..example"), SyntaxReason::EmptyLabel);
        assert_eq!(reason(".example.com"), SyntaxReason::EmptyLabel);
        assert_eq!(reason("example.com."), SyntaxReason::EmptyLabel);
        assert_eq!(reason("-a.example"), SyntaxReason::InvalidLabel);
        assert_eq!(reason("a-.example"), SyntaxReason::InvalidLabel);
        assert_eq!(reason("under_score.example"), SyntaxReason::InvalidLabel);
        assert_eq!(reason("a b.example"), SyntaxReason::InvalidLabel);
        assert_eq!(reason("ex\nample.com"), SyntaxReason::ControlCharacter);
        assert_eq!(
            reason(&format!("{}.com", "a".repeat(64))),
            SyntaxReason::LabelTooLong
        );
        let long = vec!["a".repeat(63); 5].join(".");
        assert_eq!(reason(&long), SyntaxReason::DomainTooLong);
    }

    #[test]
    fn boundaries_that_pass() {
        let label = "a".repeat(63);
        assert!(Domain::parse(&format!("{label}.com")).is_ok());
        // Four 63-octet labels and three dots: exactly 255 octets.
        let d = format!("{l}.{l}.{l}.{t}", l = label, t = "b".repeat(63));
        assert_eq!(d.len(), 255);
        assert!(Domain::parse(&d).is_ok());
        assert!(Domain::parse("1.example.com").is_ok());
        assert!(Domain::parse("xn--p1ai.xn--p1ai").is_ok());
    }

    #[test]
    fn parents_and_within() {
        let d = Domain::parse("a.b.example.com").unwrap();
        let parents: Vec<&str> = d.self_and_parents().collect();
        assert_eq!(parents, ["a.b.example.com", "b.example.com", "example.com"]);
        assert!(d.is_within("example.com"));
        assert!(d.is_within("a.b.example.com"));
        assert!(!d.is_within("ample.com"));
        assert!(!d.is_within("x.a.b.example.com"));
    }

    #[test]
    fn serde_is_the_ascii_string_and_validates() {
        let d = Domain::parse("Bücher.example").unwrap();
        let json = serde_json::to_string(&d).unwrap();
        assert_eq!(json, "\"xn--bcher-kva.example\"");
        let back: Domain = serde_json::from_str(&json).unwrap();
        assert_eq!(back, d);
        assert!(serde_json::from_str::<Domain>("\"localhost\"").is_err());
    }
}
