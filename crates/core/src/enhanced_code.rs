//! RFC 3463 enhanced status codes (`class.subject.detail`, e.g. `5.1.1`).
//!
//! Owns `EnhancedCode`: parsing from reply text and display. It does not interpret codes
//! (`classify` does).

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::error::Error;

/// An enhanced status code. RFC 3463 2: class is 2, 4 or 5; subject and detail are 0-999.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct EnhancedCode {
    pub class: u8,
    pub subject: u16,
    pub detail: u16,
}

impl EnhancedCode {
    /// Builds a code; `None` when a part is out of RFC 3463's range.
    pub fn new(class: u8, subject: u16, detail: u16) -> Option<EnhancedCode> {
        (matches!(class, 2 | 4 | 5) && subject <= 999 && detail <= 999).then_some(EnhancedCode {
            class,
            subject,
            detail,
        })
    }

    /// Parses a code at the start of `text` (as servers put it after the basic code, RFC 2034
    /// 4), followed by white space or the end. Returns the code and the rest of the text.
    pub fn parse_prefix(text: &str) -> Option<(EnhancedCode, &str)> {
        let end = text
            .find(|c: char| c.is_ascii_whitespace())
            .unwrap_or(text.len());
        let code = EnhancedCode::parse(&text[..end])?;
        Some((code, text[end..].trim_start()))
    }

    /// Finds qmail's trailing form, `... (#5.1.1)`, anywhere in the text.
    pub fn find_qmail_suffix(text: &str) -> Option<EnhancedCode> {
        let start = text.rfind("(#")? + 2;
        let end = start + text[start..].find(')')?;
        EnhancedCode::parse(&text[start..end])
    }

    /// Parses exactly `class.subject.detail`.
    pub fn parse(s: &str) -> Option<EnhancedCode> {
        let mut parts = s.split('.');
        let num = |p: Option<&str>, max_len: usize| -> Option<u16> {
            let p = p?;
            if p.is_empty() || p.len() > max_len || !p.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            p.parse().ok()
        };
        let class = num(parts.next(), 1)?;
        let subject = num(parts.next(), 3)?;
        let detail = num(parts.next(), 3)?;
        if parts.next().is_some() {
            return None;
        }
        EnhancedCode::new(u8::try_from(class).ok()?, subject, detail)
    }
}

impl fmt::Display for EnhancedCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.class, self.subject, self.detail)
    }
}

impl FromStr for EnhancedCode {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        EnhancedCode::parse(s).ok_or_else(|| Error::UnknownName {
            kind: "enhanced status code",
            value: s.chars().filter(|c| !c.is_control()).take(32).collect(),
        })
    }
}

impl TryFrom<String> for EnhancedCode {
    type Error = Error;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl From<EnhancedCode> for String {
    fn from(c: EnhancedCode) -> String {
        c.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_displays() {
        let c = EnhancedCode::parse("5.1.10").unwrap();
        assert_eq!((c.class, c.subject, c.detail), (5, 1, 10));
        assert_eq!(c.to_string(), "5.1.10");
        assert_eq!(EnhancedCode::parse("5.7.606").unwrap().detail, 606);
        for bad in [
            "", "5.1", "5.1.1.1", "3.1.1", "5..1", "5.1.x", "55.1.1", "5.1000.1",
        ] {
            assert_eq!(EnhancedCode::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn prefix_and_qmail_suffix() {
        let (c, rest) = EnhancedCode::parse_prefix("5.1.1 <a@b>: User unknown").unwrap();
        assert_eq!(c.to_string(), "5.1.1");
        assert_eq!(rest, "<a@b>: User unknown");
        assert!(EnhancedCode::parse_prefix("Ok").is_none());
        assert!(EnhancedCode::parse_prefix("5.1.1: x").is_none());
        let c = EnhancedCode::find_qmail_suffix("sorry, no mailbox here by that name. (#5.1.1)");
        assert_eq!(c.map(|c| c.to_string()).as_deref(), Some("5.1.1"));
        assert_eq!(EnhancedCode::find_qmail_suffix("(#oops)"), None);
    }

    #[test]
    fn serde_as_dotted_string() {
        let c = EnhancedCode::new(4, 7, 1).unwrap();
        assert_eq!(serde_json::to_string(&c).unwrap(), "\"4.7.1\"");
        assert_eq!(
            serde_json::from_str::<EnhancedCode>("\"4.7.1\"").unwrap(),
            c
        );
        assert!(serde_json::from_str::<EnhancedCode>("\"9.9.9\"").is_err());
    }
}
