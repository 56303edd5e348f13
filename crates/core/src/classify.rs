//! Classification of one SMTP reply: what it means for the address (or session) it answers.
//!
//! Owns `SmtpCommandKind`, `RetryKind`, `Classification` and `classify`. A reply is data, never
//! an error: a 550 is evidence about a mailbox. The decision reads (command, basic code,
//! enhanced code) first, from the table in `classify/rules.rs`, and the text last, only in the
//! rows where servers are known to use one code for different things (Exchange Online's
//! `5.4.1` for a missing recipient, Yandex's `5.7.1 No such user!`, `4.7.1` for greylisting,
//! rate limits and relaying alike...). It does not combine replies into a verdict (`decision`
//! does) and does not parse the wire format (the smtp-proto crate does).

use std::fmt;
use std::str::FromStr;

use crate::enhanced_code::EnhancedCode;
use crate::error::Error;
use crate::verdict::Reason;

mod rules;

/// The command a reply answers. `Greeting` is the banner after connecting.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SmtpCommandKind {
    Greeting,
    Ehlo,
    StartTls,
    MailFrom,
    RcptTo,
    Rset,
    Quit,
}

impl SmtpCommandKind {
    /// Every command kind.
    pub const ALL: [SmtpCommandKind; 7] = [
        SmtpCommandKind::Greeting,
        SmtpCommandKind::Ehlo,
        SmtpCommandKind::StartTls,
        SmtpCommandKind::MailFrom,
        SmtpCommandKind::RcptTo,
        SmtpCommandKind::Rset,
        SmtpCommandKind::Quit,
    ];

    /// The stable name: `greeting`, `ehlo`, `starttls`, `mail_from`, `rcpt_to`, `rset`, `quit`.
    pub fn as_str(self) -> &'static str {
        match self {
            SmtpCommandKind::Greeting => "greeting",
            SmtpCommandKind::Ehlo => "ehlo",
            SmtpCommandKind::StartTls => "starttls",
            SmtpCommandKind::MailFrom => "mail_from",
            SmtpCommandKind::RcptTo => "rcpt_to",
            SmtpCommandKind::Rset => "rset",
            SmtpCommandKind::Quit => "quit",
        }
    }
}

impl fmt::Display for SmtpCommandKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for SmtpCommandKind {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        SmtpCommandKind::ALL
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| Error::UnknownName {
                kind: "smtp command",
                value: s.chars().filter(|c| !c.is_control()).take(32).collect(),
            })
    }
}

/// Why a temporary (4xx) reply asks to come back, which decides how to come back.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RetryKind {
    /// Greylisting: retry from the same egress address with the same MAIL FROM after the
    /// greylist delay. Exhausted: `unknown/greylisted`.
    Greylisted,
    /// A temporary failure about the recipient or the server. Retry with backoff.
    /// Exhausted: `unknown/deferred`.
    Deferred,
    /// The server is throttling us (too much mail, too many recipients from this IP, server
    /// busy): slow the whole site down (circuit). Exhausted: `unknown/deferred`.
    RateLimited,
    /// A temporary 4.7.x policy refusal of the prober (no PTR, sender domain unresolvable...).
    /// Back off like `RateLimited`. Exhausted: `unknown/deferred`.
    PolicyTemporary,
    /// `452 4.5.3`: the transaction holds too many recipients. Shrink the batch and resend the
    /// rest in a new transaction at once; this says nothing about the address.
    TooManyRecipients,
}

impl RetryKind {
    /// The stable snake_case name.
    pub fn as_str(self) -> &'static str {
        match self {
            RetryKind::Greylisted => "greylisted",
            RetryKind::Deferred => "deferred",
            RetryKind::RateLimited => "rate_limited",
            RetryKind::PolicyTemporary => "policy_temporary",
            RetryKind::TooManyRecipients => "too_many_recipients",
        }
    }

    /// The verdict reason when retries of this kind run out.
    pub fn exhausted_reason(self) -> Reason {
        match self {
            RetryKind::Greylisted => Reason::Greylisted,
            _ => Reason::Deferred,
        }
    }
}

/// What a reply means.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Classification {
    /// The command succeeded (2xx); at RCPT, the server takes mail for the address.
    Accepted,
    /// A permanent refusal of the address. Only `MailboxNotFound`, `MailboxDisabled` and
    /// `Rejected` are produced.
    Undeliverable(Reason),
    /// A refusal that says the mailbox exists but is impaired. Only `MailboxFull` is produced.
    Risky(Reason),
    /// A temporary reply (4xx is never undeliverable): come back later, in the way the kind
    /// says.
    Retry(RetryKind),
    /// A permanent policy refusal of the prober (blocklists, reputation, our IP or MAIL FROM):
    /// says nothing about the address. Verdict `unknown/blocked`.
    Blocked,
    /// `503` to a RCPT: the transaction was not open (its MAIL FROM failed inside a pipeline,
    /// RFC 2920 3.1), so the address was not probed. Retry it; never call it invalid.
    NotProbed,
    /// `421`: the server is closing the session (RFC 5321 3.8). Retire it; retry elsewhere.
    SessionClosing,
    /// A reply that makes no sense for the command, or a refusal of the command itself.
    ProtocolError,
}

impl Classification {
    /// A short stable label: `accepted`, `undeliverable:mailbox_not_found`,
    /// `risky:mailbox_full`, `retry:greylisted`, `blocked`, `not_probed`, `session_closing`,
    /// `protocol_error`. Bounded, so usable as a metric label.
    pub fn label(self) -> String {
        match self {
            Classification::Accepted => "accepted".into(),
            Classification::Undeliverable(r) => format!("undeliverable:{r}"),
            Classification::Risky(r) => format!("risky:{r}"),
            Classification::Retry(k) => format!("retry:{}", k.as_str()),
            Classification::Blocked => "blocked".into(),
            Classification::NotProbed => "not_probed".into(),
            Classification::SessionClosing => "session_closing".into(),
            Classification::ProtocolError => "protocol_error".into(),
        }
    }

    /// True for a reply that settles the address (no retry can change it).
    pub fn is_final_for_address(self) -> bool {
        matches!(
            self,
            Classification::Accepted | Classification::Undeliverable(_) | Classification::Risky(_)
        )
    }
}

impl fmt::Display for Classification {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.label())
    }
}

/// Classifies one reply.
///
/// `enhanced` is the RFC 3463 code the reply parser found; when it is `None` the code is looked
/// for at the start of `text` and in qmail's trailing `(#5.1.1)` form. An enhanced code whose
/// class disagrees with the basic code is ignored (RFC 3463 2: the classes must match). `text`
/// is the reply text without the codes; for a multi-line reply, its lines joined by white
/// space. It is matched case-insensitively and only where the table says so.
pub fn classify(
    command: SmtpCommandKind,
    code: u16,
    enhanced: Option<EnhancedCode>,
    text: &str,
) -> Classification {
    if !(200..=599).contains(&code) {
        return Classification::ProtocolError;
    }
    let class = (code / 100) as u8;
    let enhanced = enhanced
        .or_else(|| EnhancedCode::parse_prefix(text.trim_start()).map(|(c, _)| c))
        .or_else(|| EnhancedCode::find_qmail_suffix(text))
        .filter(|e| e.class == class);
    let text = normalise_text(text);
    rules::decide(command, code, enhanced, &text)
}

/// Lowercase, with runs of white space (line breaks of a multi-line reply included) collapsed
/// to one space, so table phrases match however the server wrapped its lines.
fn normalise_text(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for word in text.split_whitespace() {
        if !out.is_empty() {
            out.push(' ');
        }
        out.extend(word.chars().flat_map(char::to_lowercase));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use SmtpCommandKind::*;

    fn c(command: SmtpCommandKind, code: u16, enhanced: &str, text: &str) -> String {
        classify(command, code, EnhancedCode::parse(enhanced), text).label()
    }

    #[test]
    fn four_hundreds_are_never_undeliverable() {
        for code in 400..=499 {
            for enhanced in ["", "4.1.1", "4.2.1", "4.5.3", "4.7.1", "4.2.2", "4.0.0"] {
                for text in ["User unknown", "No such user", "relay access denied", ""] {
                    let label = c(RcptTo, code, enhanced, text);
                    assert!(
                        !label.starts_with("undeliverable"),
                        "{code} {enhanced} {text}"
                    );
                    assert!(
                        label.starts_with("retry")
                            || label == "session_closing"
                            || label == "risky:mailbox_full",
                        "{code} {enhanced} {text}: {label}"
                    );
                }
            }
        }
    }

    #[test]
    fn code_outside_smtp_range_is_a_protocol_error() {
        assert_eq!(c(RcptTo, 199, "", ""), "protocol_error");
        assert_eq!(c(RcptTo, 600, "", ""), "protocol_error");
        assert_eq!(c(RcptTo, 0, "", ""), "protocol_error");
    }

    #[test]
    fn mismatched_enhanced_class_is_ignored() {
        // A 550 carrying 4.1.1 is read as a bare 550 (text decides), not as a 4xx.
        assert_eq!(
            c(RcptTo, 550, "4.1.1", "Requested action not taken"),
            "undeliverable:rejected"
        );
        assert_eq!(c(RcptTo, 450, "5.1.1", "x"), "retry:deferred");
    }

    #[test]
    fn enhanced_code_found_in_text_when_parser_gave_none() {
        assert_eq!(
            c(RcptTo, 550, "", "5.1.1 <a@b.example>: nope"),
            "undeliverable:mailbox_not_found"
        );
        assert_eq!(
            c(
                RcptTo,
                550,
                "",
                "sorry, no mailbox here by that name. (#5.1.1)"
            ),
            "undeliverable:mailbox_not_found"
        );
    }

    #[test]
    fn labels_are_distinct_per_outcome() {
        assert_eq!(
            Classification::Retry(RetryKind::TooManyRecipients).label(),
            "retry:too_many_recipients"
        );
        assert_eq!(RetryKind::Greylisted.exhausted_reason(), Reason::Greylisted);
        assert_eq!(RetryKind::RateLimited.exhausted_reason(), Reason::Deferred);
        assert!(Classification::Accepted.is_final_for_address());
        assert!(!Classification::NotProbed.is_final_for_address());
    }

    #[test]
    fn command_names_round_trip() {
        for k in SmtpCommandKind::ALL {
            assert_eq!(k.as_str().parse::<SmtpCommandKind>().unwrap(), k);
        }
    }

    #[test]
    fn text_normalisation() {
        assert_eq!(
            normalise_text("  User\r\n  UNKNOWN\tHere "),
            "user unknown here"
        );
    }
}
