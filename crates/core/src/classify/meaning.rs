//! The vocabulary of a classification: why a temporary reply asks to come back (`RetryKind`)
//! and what a reply means (`Classification`), with their stable names. Shared by `classify` and
//! its table (`rules`); it decides nothing. The command a reply answers is smtp-proto's
//! `CommandKind`.

use std::fmt;

use crate::verdict::Reason;

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
    /// Every kind.
    pub const ALL: [RetryKind; 5] = [
        RetryKind::Greylisted,
        RetryKind::Deferred,
        RetryKind::RateLimited,
        RetryKind::PolicyTemporary,
        RetryKind::TooManyRecipients,
    ];

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

    /// The classification a label names (`label`'s inverse); `None` for anything else.
    pub fn from_label(label: &str) -> Option<Classification> {
        let (head, tail) = match label.split_once(':') {
            Some((head, tail)) => (head, Some(tail)),
            None => (label, None),
        };
        let reason = || tail.and_then(|t| t.parse::<Reason>().ok());
        let class = match (head, tail) {
            ("accepted", None) => Classification::Accepted,
            ("blocked", None) => Classification::Blocked,
            ("not_probed", None) => Classification::NotProbed,
            ("session_closing", None) => Classification::SessionClosing,
            ("protocol_error", None) => Classification::ProtocolError,
            ("undeliverable", Some(_)) => Classification::Undeliverable(reason()?),
            ("risky", Some(_)) => Classification::Risky(reason()?),
            ("retry", Some(kind)) => {
                Classification::Retry(RetryKind::ALL.into_iter().find(|k| k.as_str() == kind)?)
            }
            _ => return None,
        };
        Some(class)
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

#[cfg(test)]
mod tests {
    use super::*;

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
    fn labels_read_back() {
        let mut all = vec![
            Classification::Accepted,
            Classification::Blocked,
            Classification::NotProbed,
            Classification::SessionClosing,
            Classification::ProtocolError,
            Classification::Undeliverable(Reason::MailboxNotFound),
            Classification::Risky(Reason::MailboxFull),
        ];
        all.extend(RetryKind::ALL.map(Classification::Retry));
        for class in all {
            assert_eq!(Classification::from_label(&class.label()), Some(class));
        }
        for bad in [
            "",
            "retry",
            "retry:soon",
            "undeliverable:nope",
            "accepted:x",
            "blocked:",
        ] {
            assert_eq!(Classification::from_label(bad), None, "{bad}");
        }
    }
}
