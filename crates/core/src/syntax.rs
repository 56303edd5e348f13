//! Why an address or domain failed the syntax check.
//!
//! Owns `SyntaxError`, its closed set of machine reasons (`SyntaxReason`) and the characters
//! refused anywhere in an address (`is_forbidden_char`). It does not parse anything itself:
//! `address` and `domain` do, and report through these types. Which verdict reason a syntax
//! failure gets is `verdict`'s (`SyntaxReason::verdict_reason`).

use std::fmt;

/// The machine reason of a syntax failure: short, stable, snake_case (`as_str`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum SyntaxReason {
    /// Nothing left after trimming.
    Empty,
    /// CR, LF, NUL, any other C0 or C1 control, DEL, or an invisible/bidi control character.
    ControlCharacter,
    /// `Name <addr` or `addr>`: angle brackets that do not pair up.
    UnbalancedAngleBrackets,
    /// No `@` separating local part and domain.
    MissingAt,
    /// Nothing before the `@`.
    EmptyLocal,
    /// Local part over 64 octets (RFC 5321 4.5.3.1.1).
    LocalTooLong,
    /// A character that a dot-atom local part cannot hold (RFC 5322 3.2.3), e.g. a space or `@`.
    InvalidLocalCharacter,
    /// A leading, trailing or doubled dot in an unquoted local part (RFC 5322 3.4.1).
    InvalidLocalDots,
    /// A quoted local part that is not closed, or holds what qtextSMTP cannot (RFC 5321 4.1.2).
    InvalidQuotedLocal,
    /// Nothing after the `@`.
    EmptyDomain,
    /// A domain literal such as `[192.0.2.1]`: refused, see `address` for why.
    DomainLiteral,
    /// Domain over 255 octets (RFC 5321 4.5.3.1.2).
    DomainTooLong,
    /// The whole address over 254 octets (RFC 5321 4.5.3.1.3, path of 256 less the brackets).
    AddressTooLong,
    /// `a..b`, `.a` or `a.`: an empty label.
    EmptyLabel,
    /// A label over 63 octets (RFC 1035 2.3.4).
    LabelTooLong,
    /// A label that is not letters, digits and inner hyphens (RFC 5321 4.1.2 `sub-domain`).
    InvalidLabel,
    /// A Unicode domain that IDNA (UTS 46) refuses to map to A-labels.
    InvalidIdn,
    /// A single-label domain such as `localhost`: no public mail domain looks like that.
    DomainWithoutDot,
    /// An all-numeric top-level label, e.g. `user@192.0.2.1` (RFC 3696 2: TLDs are not numeric).
    NumericTld,
}

impl SyntaxReason {
    /// Every reason, in declaration order.
    pub const ALL: [SyntaxReason; 19] = [
        SyntaxReason::Empty,
        SyntaxReason::ControlCharacter,
        SyntaxReason::UnbalancedAngleBrackets,
        SyntaxReason::MissingAt,
        SyntaxReason::EmptyLocal,
        SyntaxReason::LocalTooLong,
        SyntaxReason::InvalidLocalCharacter,
        SyntaxReason::InvalidLocalDots,
        SyntaxReason::InvalidQuotedLocal,
        SyntaxReason::EmptyDomain,
        SyntaxReason::DomainLiteral,
        SyntaxReason::DomainTooLong,
        SyntaxReason::AddressTooLong,
        SyntaxReason::EmptyLabel,
        SyntaxReason::LabelTooLong,
        SyntaxReason::InvalidLabel,
        SyntaxReason::InvalidIdn,
        SyntaxReason::DomainWithoutDot,
        SyntaxReason::NumericTld,
    ];

    /// The stable snake_case name, e.g. `"missing_at"`.
    pub fn as_str(self) -> &'static str {
        match self {
            SyntaxReason::Empty => "empty",
            SyntaxReason::ControlCharacter => "control_character",
            SyntaxReason::UnbalancedAngleBrackets => "unbalanced_angle_brackets",
            SyntaxReason::MissingAt => "missing_at",
            SyntaxReason::EmptyLocal => "empty_local",
            SyntaxReason::LocalTooLong => "local_too_long",
            SyntaxReason::InvalidLocalCharacter => "invalid_local_character",
            SyntaxReason::InvalidLocalDots => "invalid_local_dots",
            SyntaxReason::InvalidQuotedLocal => "invalid_quoted_local",
            SyntaxReason::EmptyDomain => "empty_domain",
            SyntaxReason::DomainLiteral => "domain_literal",
            SyntaxReason::DomainTooLong => "domain_too_long",
            SyntaxReason::AddressTooLong => "address_too_long",
            SyntaxReason::EmptyLabel => "empty_label",
            SyntaxReason::LabelTooLong => "label_too_long",
            SyntaxReason::InvalidLabel => "invalid_label",
            SyntaxReason::InvalidIdn => "invalid_idn",
            SyntaxReason::DomainWithoutDot => "domain_without_dot",
            SyntaxReason::NumericTld => "numeric_tld",
        }
    }
}

impl fmt::Display for SyntaxReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A syntax failure: a machine reason and a human message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message} ({reason})")]
pub struct SyntaxError {
    reason: SyntaxReason,
    message: String,
}

impl SyntaxError {
    pub(crate) fn new(reason: SyntaxReason, message: impl Into<String>) -> Self {
        SyntaxError {
            reason,
            message: message.into(),
        }
    }

    /// The machine reason.
    pub fn reason(&self) -> SyntaxReason {
        self.reason
    }

    /// A one-line human explanation (never echoes control characters).
    pub fn message(&self) -> &str {
        &self.message
    }
}

/// Characters refused anywhere in an address: every Unicode `Cc` control (C0 including TAB, CR,
/// LF, NUL; DEL; C1), the line and paragraph separators, and the invisible formatting and bidi
/// controls that make a displayed address differ from the one probed.
pub(crate) fn is_forbidden_char(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{2028}'
                | '\u{2029}'
                | '\u{200B}'
                | '\u{200E}'
                | '\u{200F}'
                | '\u{202A}'..='\u{202E}'
                | '\u{2060}'..='\u{2064}'
                | '\u{2066}'..='\u{2069}'
                | '\u{FEFF}'
        )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reason_names_are_unique_snake_case() {
        let mut names: Vec<&str> = SyntaxReason::ALL.iter().map(|r| r.as_str()).collect();
        assert!(
            names
                .iter()
                .all(|n| n.chars().all(|c| c.is_ascii_lowercase() || c == '_'))
        );
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), SyntaxReason::ALL.len());
    }
}
