//! The final verdict of a probed address: an RCPT classification plus what is known about the
//! domain and the address.
//!
//! Owns `CatchAll`, `DomainContext` and `verdict_for`, a pure function. It does not probe,
//! retry or cache (the engine does): it is called once per address, with the last RCPT
//! classification, when the engine has stopped retrying.
//!
//! Precedence for an accepted address (the first that applies is the reason; every fact that
//! holds is still in the flags):
//! 1. `risky/disposable`: the address is throwaway whatever else is true, and disposable
//!    services are often catch-all too, so saying "catch_all" would hide the more useful fact.
//! 2. `risky/catch_all`: the server accepts any local part, so the acceptance says nothing
//!    about this mailbox; that doubt outweighs knowing the local part is a role.
//! 3. `risky/role_account`: the mailbox exists but reaches a function, not a person.
//! 4. `deliverable/accepted`.
//!
//! A refusal is believed whatever the flags say: a missing `postmaster@` is
//! `undeliverable/mailbox_not_found` (flagged `role_account`), and a domain known to be
//! catch-all that still refuses an address has told us something specific about it.

use crate::address::EmailAddress;
use crate::classify::Classification;
use crate::flags::Flags;
use crate::verdict::{Evidence, Reason, Status, Verdict};

/// What is known about whether a domain accepts every local part (decided per domain by probing
/// a stable random local part in the same transaction: ARCHITECTURE.md, "How a batch travels",
/// step 4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum CatchAll {
    /// The random local part was accepted.
    Yes,
    /// The random local part was refused permanently.
    No,
    /// Not probed, or the probe got a temporary reply (a 4xx is unknown, not catch-all).
    #[default]
    Unknown,
}

/// The context a verdict needs besides the reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct DomainContext {
    /// The domain's catch-all state.
    pub catch_all: CatchAll,
    /// The address's own flags (`Flags::for_address`); `catch_all_domain` is set from
    /// `catch_all` by `verdict_for`, whatever it holds here.
    pub flags: Flags,
}

impl DomainContext {
    /// The context of `address` at a domain whose catch-all state is `catch_all`.
    pub fn for_address(address: &EmailAddress, catch_all: CatchAll) -> DomainContext {
        DomainContext {
            catch_all,
            flags: Flags::for_address(address),
        }
    }
}

/// The verdict for an address whose last RCPT reply classified as `rcpt`.
///
/// `Retry`, `NotProbed` and `SessionClosing` mean the engine gave up retrying: greylisting
/// becomes `unknown/greylisted`, every other temporary outcome `unknown/deferred`.
pub fn verdict_for(rcpt: Classification, context: &DomainContext, evidence: Evidence) -> Verdict {
    let mut flags = context.flags;
    flags.catch_all_domain = context.catch_all == CatchAll::Yes;
    let (reason, detail): (Reason, Option<String>) = match rcpt {
        Classification::Accepted => accepted(context.catch_all, flags),
        Classification::Undeliverable(r) if r.status() == Status::Undeliverable => (r, None),
        Classification::Undeliverable(_) => (Reason::Rejected, None),
        Classification::Risky(r) if r.status() == Status::Risky => (r, None),
        Classification::Risky(_) => (Reason::MailboxFull, None),
        Classification::Retry(kind) => (
            kind.exhausted_reason(),
            Some(format!("retries exhausted ({})", kind.as_str())),
        ),
        Classification::Blocked => (
            Reason::Blocked,
            Some("the server refused the prober by policy; the address was not judged".into()),
        ),
        Classification::NotProbed => (
            Reason::Deferred,
            Some("never probed: the transaction's MAIL FROM kept failing".into()),
        ),
        Classification::SessionClosing => (
            Reason::Deferred,
            Some("the server kept closing the session (421)".into()),
        ),
        Classification::ProtocolError => (Reason::ProtocolError, None),
    };
    let verdict = Verdict::new(reason, evidence).with_flags(flags);
    match detail {
        Some(d) => verdict.with_detail(d),
        None => verdict,
    }
}

fn accepted(catch_all: CatchAll, flags: Flags) -> (Reason, Option<String>) {
    if flags.disposable {
        (
            Reason::Disposable,
            Some("accepted, but the domain is a disposable-mail service".into()),
        )
    } else if catch_all == CatchAll::Yes {
        (
            Reason::CatchAll,
            Some("accepted, but the domain accepts any address".into()),
        )
    } else if flags.role_account {
        (
            Reason::RoleAccount,
            Some("accepted; the local part names a role, not a person".into()),
        )
    } else if catch_all == CatchAll::Unknown {
        (
            Reason::Accepted,
            Some("accepted; whether the domain accepts any address is not known".into()),
        )
    } else {
        (Reason::Accepted, None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::classify::RetryKind;

    fn ctx(catch_all: CatchAll, role: bool, disposable: bool) -> DomainContext {
        DomainContext {
            catch_all,
            flags: Flags {
                role_account: role,
                disposable,
                ..Flags::default()
            },
        }
    }

    fn reason(c: Classification, context: DomainContext) -> (Status, Reason) {
        let v = verdict_for(c, &context, Evidence::default());
        (v.status(), v.reason())
    }

    #[test]
    fn accepted_precedence() {
        use CatchAll::*;
        let a = Classification::Accepted;
        assert_eq!(
            reason(a, ctx(No, false, false)),
            (Status::Deliverable, Reason::Accepted)
        );
        assert_eq!(
            reason(a, ctx(Unknown, false, false)),
            (Status::Deliverable, Reason::Accepted)
        );
        assert_eq!(
            reason(a, ctx(Yes, false, false)),
            (Status::Risky, Reason::CatchAll)
        );
        assert_eq!(
            reason(a, ctx(No, true, false)),
            (Status::Risky, Reason::RoleAccount)
        );
        assert_eq!(
            reason(a, ctx(Yes, true, false)),
            (Status::Risky, Reason::CatchAll)
        );
        assert_eq!(
            reason(a, ctx(No, false, true)),
            (Status::Risky, Reason::Disposable)
        );
        assert_eq!(
            reason(a, ctx(Yes, true, true)),
            (Status::Risky, Reason::Disposable)
        );
    }

    #[test]
    fn flags_keep_every_fact() {
        let v = verdict_for(
            Classification::Accepted,
            &ctx(CatchAll::Yes, true, true),
            Evidence::default(),
        );
        assert_eq!(
            v.flags.names(),
            ["catch_all_domain", "role_account", "disposable"]
        );
        // catch_all_domain follows the context's catch-all state, not the incoming flags.
        let mut c = ctx(CatchAll::No, false, false);
        c.flags.catch_all_domain = true;
        let v = verdict_for(Classification::Accepted, &c, Evidence::default());
        assert!(!v.flags.catch_all_domain);
    }

    #[test]
    fn refusals_are_believed_even_for_roles_and_catch_all() {
        let nf = Classification::Undeliverable(Reason::MailboxNotFound);
        let v = verdict_for(nf, &ctx(CatchAll::Yes, true, false), Evidence::default());
        assert_eq!(
            (v.status(), v.reason()),
            (Status::Undeliverable, Reason::MailboxNotFound)
        );
        assert!(v.flags.role_account);
        assert_eq!(
            reason(
                Classification::Risky(Reason::MailboxFull),
                ctx(CatchAll::No, true, false)
            ),
            (Status::Risky, Reason::MailboxFull)
        );
    }

    #[test]
    fn exhausted_retries_and_unknowns() {
        let c = ctx(CatchAll::Unknown, false, false);
        let cases = [
            (
                Classification::Retry(RetryKind::Greylisted),
                Reason::Greylisted,
            ),
            (Classification::Retry(RetryKind::Deferred), Reason::Deferred),
            (
                Classification::Retry(RetryKind::RateLimited),
                Reason::Deferred,
            ),
            (
                Classification::Retry(RetryKind::PolicyTemporary),
                Reason::Deferred,
            ),
            (
                Classification::Retry(RetryKind::TooManyRecipients),
                Reason::Deferred,
            ),
            (Classification::Blocked, Reason::Blocked),
            (Classification::NotProbed, Reason::Deferred),
            (Classification::SessionClosing, Reason::Deferred),
            (Classification::ProtocolError, Reason::ProtocolError),
        ];
        for (classification, expected) in cases {
            assert_eq!(
                reason(classification, c),
                (Status::Unknown, expected),
                "{classification}"
            );
        }
    }

    #[test]
    fn misused_classification_reasons_stay_in_their_status() {
        let c = ctx(CatchAll::No, false, false);
        assert_eq!(
            reason(Classification::Undeliverable(Reason::Accepted), c),
            (Status::Undeliverable, Reason::Rejected)
        );
        assert_eq!(
            reason(Classification::Risky(Reason::Timeout), c),
            (Status::Risky, Reason::MailboxFull)
        );
    }
}
