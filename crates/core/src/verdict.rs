//! The verdict taxonomy: every address gets exactly one `Verdict`, with its evidence.
//!
//! Owns `Status`, `Reason` (each reason belongs to exactly one status, `Reason::status`),
//! `Evidence`, `ReplyText` and `Verdict`, with their serde spellings (snake_case, stable: they
//! are the output format), and the reason a syntax failure gets
//! (`SyntaxReason::verdict_reason`). It does not decide which reason applies to a reply
//! (`classify` and `decision` do).

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

use rollcall_smtp_proto::EnhancedCode;
use serde::{Deserialize, Serialize};

use crate::address::EmailAddress;
use crate::error::Error;
use crate::flags::Flags;
use crate::syntax::{SyntaxError, SyntaxReason, is_forbidden_char};

/// The columns of a verdict in CSV output, in this order: after the input's columns in the
/// CLI's output, after `address` in the HTTP API's downloads.
pub const VERDICT_COLUMNS: [&str; 19] = [
    "status",
    "reason",
    "normalized",
    "domain",
    "did_you_mean",
    "mx",
    "provider",
    "egress",
    "smtp_code",
    "enhanced_code",
    "flags",
    "is_disposable",
    "is_role",
    "is_free",
    "is_catch_all",
    "duplicate",
    "detail",
    "smtp_text",
    "row",
];

/// The four answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Deliverable,
    Undeliverable,
    Risky,
    Unknown,
}

impl Status {
    /// Every status.
    pub const ALL: [Status; 4] = [
        Status::Deliverable,
        Status::Undeliverable,
        Status::Risky,
        Status::Unknown,
    ];

    /// The stable snake_case name.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Deliverable => "deliverable",
            Status::Undeliverable => "undeliverable",
            Status::Risky => "risky",
            Status::Unknown => "unknown",
        }
    }
}

/// Why an address got its status, grouped below by the one status each belongs to
/// (`Reason::status`). Which replies lead to which reason: the table in `classify/rules.rs` and
/// `decision::verdict_for`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Reason {
    // deliverable
    Accepted,
    // undeliverable
    InvalidSyntax,
    NoSuchDomain,
    NullMx,
    NoMailServer,
    MailboxNotFound,
    MailboxDisabled,
    Rejected,
    // risky
    CatchAll,
    MailboxFull,
    Disposable,
    RoleAccount,
    /// The provider accepts every recipient at RCPT and bounces unknown ones later (Yahoo,
    /// AOL): an acceptance there proves nothing (its provider rule says so).
    AcceptsAll,
    // unknown
    Greylisted,
    Deferred,
    Blocked,
    Timeout,
    ConnectionFailed,
    TlsFailed,
    ProtocolError,
    Unverifiable,
    ForbiddenTarget,
}

impl Reason {
    /// Every reason, grouped by status.
    pub const ALL: [Reason; 22] = [
        Reason::Accepted,
        Reason::InvalidSyntax,
        Reason::NoSuchDomain,
        Reason::NullMx,
        Reason::NoMailServer,
        Reason::MailboxNotFound,
        Reason::MailboxDisabled,
        Reason::Rejected,
        Reason::CatchAll,
        Reason::MailboxFull,
        Reason::Disposable,
        Reason::RoleAccount,
        Reason::AcceptsAll,
        Reason::Greylisted,
        Reason::Deferred,
        Reason::Blocked,
        Reason::Timeout,
        Reason::ConnectionFailed,
        Reason::TlsFailed,
        Reason::ProtocolError,
        Reason::Unverifiable,
        Reason::ForbiddenTarget,
    ];

    /// The one status this reason belongs to.
    pub fn status(self) -> Status {
        match self {
            Reason::Accepted => Status::Deliverable,
            Reason::InvalidSyntax
            | Reason::NoSuchDomain
            | Reason::NullMx
            | Reason::NoMailServer
            | Reason::MailboxNotFound
            | Reason::MailboxDisabled
            | Reason::Rejected => Status::Undeliverable,
            Reason::CatchAll
            | Reason::MailboxFull
            | Reason::Disposable
            | Reason::RoleAccount
            | Reason::AcceptsAll => Status::Risky,
            Reason::Greylisted
            | Reason::Deferred
            | Reason::Blocked
            | Reason::Timeout
            | Reason::ConnectionFailed
            | Reason::TlsFailed
            | Reason::ProtocolError
            | Reason::Unverifiable
            | Reason::ForbiddenTarget => Status::Unknown,
        }
    }

    /// The stable snake_case name.
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Accepted => "accepted",
            Reason::InvalidSyntax => "invalid_syntax",
            Reason::NoSuchDomain => "no_such_domain",
            Reason::NullMx => "null_mx",
            Reason::NoMailServer => "no_mail_server",
            Reason::MailboxNotFound => "mailbox_not_found",
            Reason::MailboxDisabled => "mailbox_disabled",
            Reason::Rejected => "rejected",
            Reason::CatchAll => "catch_all",
            Reason::MailboxFull => "mailbox_full",
            Reason::Disposable => "disposable",
            Reason::RoleAccount => "role_account",
            Reason::AcceptsAll => "accepts_all",
            Reason::Greylisted => "greylisted",
            Reason::Deferred => "deferred",
            Reason::Blocked => "blocked",
            Reason::Timeout => "timeout",
            Reason::ConnectionFailed => "connection_failed",
            Reason::TlsFailed => "tls_failed",
            Reason::ProtocolError => "protocol_error",
            Reason::Unverifiable => "unverifiable",
            Reason::ForbiddenTarget => "forbidden_target",
        }
    }
}

macro_rules! name_impls {
    ($ty:ty, $kind:literal) => {
        impl fmt::Display for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl FromStr for $ty {
            type Err = Error;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                <$ty>::ALL
                    .into_iter()
                    .find(|v| v.as_str() == s)
                    .ok_or_else(|| Error::UnknownName {
                        kind: $kind,
                        value: s.chars().filter(|c| !c.is_control()).take(64).collect(),
                    })
            }
        }
    };
}

name_impls!(Status, "status");
name_impls!(Reason, "reason");

/// Server text kept as evidence: control characters (CR, LF, ...) become spaces and the text is
/// cut to `ReplyText::MAX_CHARS` characters, so a hostile server cannot bloat results or break
/// a CSV line.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(from = "String", into = "String")]
pub struct ReplyText(String);

impl ReplyText {
    /// Longest kept text, in characters (an ellipsis marks a cut).
    pub const MAX_CHARS: usize = 200;

    /// Sanitises and bounds `text`.
    pub fn new(text: &str) -> ReplyText {
        let mut chars: Vec<char> = Vec::with_capacity(Self::MAX_CHARS + 1);
        let mut last_space = false;
        for c in text.trim().chars() {
            let c = if is_forbidden_char(c) || c.is_whitespace() {
                ' '
            } else {
                c
            };
            // Multi-line replies are joined; runs of white space collapse to one space.
            if c == ' ' && last_space {
                continue;
            }
            last_space = c == ' ';
            chars.push(c);
            if chars.len() > Self::MAX_CHARS {
                chars.truncate(Self::MAX_CHARS - 1);
                chars.push('…');
                break;
            }
        }
        ReplyText(chars.into_iter().collect())
    }

    /// The text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl From<String> for ReplyText {
    fn from(s: String) -> ReplyText {
        ReplyText::new(&s)
    }
}

impl From<ReplyText> for String {
    fn from(t: ReplyText) -> String {
        t.0
    }
}

impl fmt::Display for ReplyText {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// What a verdict rests on. Fields that did not apply (no MX reached, no reply) are `None`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct Evidence {
    /// The normalised address; for a syntax failure, the input (sanitised and bounded).
    pub address: String,
    /// The normalised ASCII domain.
    pub domain: Option<String>,
    /// The site id (`Site::id`).
    pub site: Option<String>,
    /// The MX host the last reply came from.
    pub mx_host: Option<String>,
    /// Who runs the domain's mail (`google`, `outlook_com`, `self_hosted`...: the provider
    /// table's name), when the address was probed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub provider: Option<String>,
    /// The IP address connected to.
    pub ip: Option<IpAddr>,
    /// The egress the last session went out through (its name).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub egress: Option<String>,
    /// The last basic SMTP reply code.
    pub smtp_code: Option<u16>,
    /// The last enhanced status code.
    pub enhanced_code: Option<EnhancedCode>,
    /// The last reply text, bounded.
    pub smtp_text: Option<ReplyText>,
    /// Probe attempts made (retries included).
    pub attempts: u32,
    /// Whether the last session used STARTTLS.
    pub tls: bool,
    /// Whether the last transaction was pipelined (RFC 2920).
    pub pipelined: bool,
    /// Wall time from first attempt to verdict, in milliseconds.
    pub elapsed_ms: u64,
}

impl Evidence {
    /// Evidence for a parsed address: address and domain filled in.
    pub fn for_address(address: &EmailAddress) -> Evidence {
        Evidence {
            address: address.to_wire_string(),
            domain: Some(address.domain().as_str().to_owned()),
            ..Evidence::default()
        }
    }

    /// Evidence for input that did not parse: the input, sanitised and bounded.
    pub fn for_input(input: &str) -> Evidence {
        Evidence {
            address: ReplyText::new(input).0,
            ..Evidence::default()
        }
    }

    /// Records the last reply (text sanitised and bounded).
    pub fn set_reply(&mut self, code: u16, enhanced: Option<EnhancedCode>, text: &str) {
        self.smtp_code = Some(code);
        self.enhanced_code = enhanced;
        self.smtp_text = Some(ReplyText::new(text));
    }
}

/// The one answer for one address. Status always agrees with reason (`Reason::status`): both
/// are set together by `Verdict::new`, and deserialising refuses a mismatch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "VerdictRepr")]
pub struct Verdict {
    status: Status,
    reason: Reason,
    /// A short human explanation, when there is more to say than the reason.
    pub detail: Option<String>,
    pub flags: Flags,
    pub evidence: Evidence,
    /// A common mail domain one or two edits from the address's domain, when that domain has
    /// no mail server (`gmial.com` -> `gmail.com`): a hint for whoever fixes the list; the
    /// verdict stays what it is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub did_you_mean: Option<String>,
}

impl Verdict {
    /// A verdict with `reason` (and its status), no detail and no flags.
    pub fn new(reason: Reason, evidence: Evidence) -> Verdict {
        Verdict {
            status: reason.status(),
            reason,
            detail: None,
            flags: Flags::default(),
            evidence,
            did_you_mean: None,
        }
    }

    /// The verdict for input that failed the syntax check: `undeliverable/invalid_syntax`, or
    /// `unknown/unverifiable` for a domain literal (see `SyntaxReason::verdict_reason`).
    pub fn for_syntax_error(input: &str, error: &SyntaxError) -> Verdict {
        Verdict::new(error.verdict_reason(), Evidence::for_input(input)).with_detail(format!(
            "{}: {}",
            error.reason().as_str(),
            error.message()
        ))
    }

    /// Sets the detail.
    pub fn with_detail(mut self, detail: impl Into<String>) -> Verdict {
        self.detail = Some(detail.into());
        self
    }

    /// Sets the flags.
    pub fn with_flags(mut self, flags: Flags) -> Verdict {
        self.flags = flags;
        self
    }

    /// The status.
    pub fn status(&self) -> Status {
        self.status
    }

    /// The reason.
    pub fn reason(&self) -> Reason {
        self.reason
    }
}

#[derive(Deserialize)]
struct VerdictRepr {
    status: Status,
    reason: Reason,
    #[serde(default)]
    detail: Option<String>,
    #[serde(default)]
    flags: Flags,
    #[serde(default)]
    evidence: Evidence,
    #[serde(default)]
    did_you_mean: Option<String>,
}

impl TryFrom<VerdictRepr> for Verdict {
    type Error = String;
    fn try_from(r: VerdictRepr) -> Result<Self, Self::Error> {
        if r.reason.status() != r.status {
            return Err(format!(
                "reason {} belongs to status {}, not {}",
                r.reason,
                r.reason.status(),
                r.status
            ));
        }
        Ok(Verdict {
            status: r.status,
            reason: r.reason,
            detail: r.detail,
            flags: r.flags,
            evidence: r.evidence,
            did_you_mean: r.did_you_mean,
        })
    }
}

impl SyntaxReason {
    /// The verdict reason an address failing this way gets.
    ///
    /// Everything is `invalid_syntax` except a domain literal: `user@[192.0.2.1]` is valid
    /// RFC 5321 syntax, so calling it invalid would be false; but it names a host directly,
    /// bypassing MX, which makes probing it a way to aim the verifier at arbitrary (private)
    /// addresses. rollcall refuses to probe it and reports `unknown/unverifiable`.
    pub fn verdict_reason(self) -> Reason {
        match self {
            SyntaxReason::DomainLiteral => Reason::Unverifiable,
            _ => Reason::InvalidSyntax,
        }
    }
}

impl SyntaxError {
    /// Shorthand for `self.reason().verdict_reason()`.
    pub fn verdict_reason(&self) -> Reason {
        self.reason().verdict_reason()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reasons_partition_into_the_designed_statuses() {
        let of = |s: Status| -> Vec<&str> {
            Reason::ALL
                .iter()
                .filter(|r| r.status() == s)
                .map(|r| r.as_str())
                .collect()
        };
        assert_eq!(of(Status::Deliverable), ["accepted"]);
        assert_eq!(
            of(Status::Undeliverable),
            [
                "invalid_syntax",
                "no_such_domain",
                "null_mx",
                "no_mail_server",
                "mailbox_not_found",
                "mailbox_disabled",
                "rejected"
            ]
        );
        assert_eq!(
            of(Status::Risky),
            [
                "catch_all",
                "mailbox_full",
                "disposable",
                "role_account",
                "accepts_all"
            ]
        );
        assert_eq!(
            of(Status::Unknown),
            [
                "greylisted",
                "deferred",
                "blocked",
                "timeout",
                "connection_failed",
                "tls_failed",
                "protocol_error",
                "unverifiable",
                "forbidden_target"
            ]
        );
    }

    #[test]
    fn serde_spelling_matches_as_str_and_from_str() {
        for r in Reason::ALL {
            let json = serde_json::to_string(&r).unwrap();
            assert_eq!(json, format!("\"{}\"", r.as_str()));
            assert_eq!(serde_json::from_str::<Reason>(&json).unwrap(), r);
            assert_eq!(r.as_str().parse::<Reason>().unwrap(), r);
            assert_eq!(r.to_string(), r.as_str());
        }
        for s in Status::ALL {
            let json = serde_json::to_string(&s).unwrap();
            assert_eq!(json, format!("\"{}\"", s.as_str()));
            assert_eq!(s.as_str().parse::<Status>().unwrap(), s);
        }
        assert!("MailboxNotFound".parse::<Reason>().is_err());
        assert!("".parse::<Status>().is_err());
    }

    #[test]
    fn enhanced_code_serde_as_dotted_string() {
        let c = EnhancedCode::new(4, 7, 1);
        assert_eq!(serde_json::to_string(&c).unwrap(), "\"4.7.1\"");
        assert_eq!(
            serde_json::from_str::<EnhancedCode>("\"4.7.1\"").unwrap(),
            c
        );
        assert!(serde_json::from_str::<EnhancedCode>("\"9.9.9\"").is_err());
    }

    #[test]
    fn verdict_json_shape_and_round_trip() {
        let address = EmailAddress::parse("alice@example.com").unwrap();
        let mut evidence = Evidence::for_address(&address);
        evidence.set_reply(
            550,
            EnhancedCode::parse("5.1.1"),
            "<alice@example.com>: Recipient address rejected:\r\n User unknown",
        );
        evidence.mx_host = Some("mx.example.com".into());
        evidence.ip = Some("127.0.0.1".parse().unwrap());
        let v = Verdict::new(Reason::MailboxNotFound, evidence).with_flags(Flags {
            role_account: true,
            ..Flags::default()
        });
        let json = serde_json::to_value(&v).unwrap();
        assert_eq!(json["status"], "undeliverable");
        assert_eq!(json["reason"], "mailbox_not_found");
        assert_eq!(json["flags"], serde_json::json!(["role_account"]));
        assert_eq!(json["evidence"]["enhanced_code"], "5.1.1");
        assert_eq!(json["evidence"]["ip"], "127.0.0.1");
        assert_eq!(
            json["evidence"]["smtp_text"],
            "<alice@example.com>: Recipient address rejected: User unknown"
        );
        let back: Verdict = serde_json::from_value(json).unwrap();
        assert_eq!(back, v);
    }

    #[test]
    fn mismatched_status_is_refused() {
        let bad = r#"{"status":"deliverable","reason":"mailbox_not_found"}"#;
        let err = serde_json::from_str::<Verdict>(bad).unwrap_err();
        assert!(err.to_string().contains("belongs to status undeliverable"));
        let ok = r#"{"status":"risky","reason":"catch_all"}"#;
        assert_eq!(
            serde_json::from_str::<Verdict>(ok).unwrap().reason(),
            Reason::CatchAll
        );
    }

    #[test]
    fn reply_text_is_bounded_and_clean() {
        let long = "x".repeat(1000);
        let t = ReplyText::new(&long);
        assert_eq!(t.as_str().chars().count(), ReplyText::MAX_CHARS);
        assert!(t.as_str().ends_with('…'));
        let t = ReplyText::new("a\r\nb\0c\u{1b}[31m");
        assert_eq!(t.as_str(), "a b c [31m");
        let exact = "y".repeat(ReplyText::MAX_CHARS);
        assert_eq!(ReplyText::new(&exact).as_str(), exact);
        let short = "User unknown";
        assert_eq!(ReplyText::new(short).as_str(), short);
        // Deserialising bounds too.
        let t: ReplyText = serde_json::from_str(&format!("\"{long}\"")).unwrap();
        assert_eq!(t.as_str().chars().count(), ReplyText::MAX_CHARS);
    }

    #[test]
    fn syntax_error_verdicts() {
        let input = "bob@[192.0.2.1]";
        let e = EmailAddress::parse(input).unwrap_err();
        let v = Verdict::for_syntax_error(input, &e);
        assert_eq!(
            (v.status(), v.reason()),
            (Status::Unknown, Reason::Unverifiable)
        );
        let input = "bob\r\n@example.com";
        let e = EmailAddress::parse(input).unwrap_err();
        let v = Verdict::for_syntax_error(input, &e);
        assert_eq!(v.reason(), Reason::InvalidSyntax);
        assert_eq!(v.evidence.address, "bob @example.com");
        assert!(v.detail.unwrap().starts_with("control_character: "));
    }

    #[test]
    fn only_domain_literal_is_unverifiable() {
        for r in SyntaxReason::ALL {
            let expected = if r == SyntaxReason::DomainLiteral {
                Reason::Unverifiable
            } else {
                Reason::InvalidSyntax
            };
            assert_eq!(r.verdict_reason(), expected, "{r}");
        }
    }
}
