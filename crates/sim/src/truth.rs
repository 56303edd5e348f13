//! Ground truth: the verdict a perfect verifier gives each address of the list, spelled as
//! the verdict taxonomy spells it (`deliverable/accepted`, `risky/catch_all`, ...).
//! Owns the row type, its spelling and the scenario of a domain (`scenario_of`); the rule that
//! derives a row from a domain and a local part is `World::truth_row` (`world`), which holds
//! what it reads. It does not know how the fleet is built.

use serde::{Deserialize, Serialize};

use crate::spec::Behaviour;

/// The verdict status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// The mailbox accepts mail.
    Deliverable,
    /// Mail to it cannot arrive.
    Undeliverable,
    /// Accepted, but with a caveat.
    Risky,
    /// Could not be decided.
    Unknown,
}

/// The verdict reason (a subset of the full taxonomy: what the fleet can produce).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Reason {
    /// `250` at RCPT.
    Accepted,
    /// `550 5.1.1`.
    MailboxNotFound,
    /// `550 5.2.1`.
    MailboxDisabled,
    /// `452 4.2.2`.
    MailboxFull,
    /// The domain accepts any local part.
    CatchAll,
    /// Accepted, but the local part names a role (postmaster, info...), not a person.
    RoleAccount,
    /// `MX 0 .` (RFC 7505).
    NullMx,
    /// NXDOMAIN.
    NoSuchDomain,
    /// The name exists but has neither MX nor A.
    NoMailServer,
    /// The server rejects the prober by policy (5.7.1 about the client).
    Blocked,
    /// Every MX host of the domain is down.
    ConnectionFailed,
    /// A non-ASCII local part at a server without SMTPUTF8.
    Unverifiable,
    /// The provider accepts every recipient at RCPT and bounces unknown ones later (Yahoo,
    /// AOL): a 250 there says nothing about the mailbox (rollcall-core `Reason::AcceptsAll`).
    AcceptsAll,
}

/// What the domain of an address does, as the truth row reports it: the domain's
/// behaviour, except that a domain whose every MX is down is `mx_down` and a normal domain
/// whose preferred MX is down (but a backup works) is `mx_backup`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Scenario {
    /// See [`Behaviour::Normal`].
    Normal,
    /// See [`Behaviour::CatchAll`].
    CatchAll,
    /// See [`Behaviour::Greylist`].
    Greylist,
    /// See [`Behaviour::NullMx`].
    NullMx,
    /// See [`Behaviour::AOnly`].
    AOnly,
    /// See [`Behaviour::Nxdomain`].
    Nxdomain,
    /// See [`Behaviour::NoMx`].
    NoMx,
    /// See [`Behaviour::Blocked`].
    Blocked,
    /// Every MX host is down.
    MxDown,
    /// The preferred MX is down, a backup answers.
    MxBackup,
    /// See [`Behaviour::AcceptAll`].
    AcceptAll,
}

impl Scenario {
    /// Every scenario a fleet can show.
    pub const ALL: [Scenario; 11] = [
        Scenario::Normal,
        Scenario::CatchAll,
        Scenario::Greylist,
        Scenario::NullMx,
        Scenario::AOnly,
        Scenario::Nxdomain,
        Scenario::NoMx,
        Scenario::Blocked,
        Scenario::MxDown,
        Scenario::MxBackup,
        Scenario::AcceptAll,
    ];

    fn of(b: Behaviour) -> Scenario {
        match b {
            Behaviour::Normal => Scenario::Normal,
            Behaviour::CatchAll => Scenario::CatchAll,
            Behaviour::Greylist => Scenario::Greylist,
            Behaviour::NullMx => Scenario::NullMx,
            Behaviour::AOnly => Scenario::AOnly,
            Behaviour::Nxdomain => Scenario::Nxdomain,
            Behaviour::NoMx => Scenario::NoMx,
            Behaviour::Blocked => Scenario::Blocked,
            Behaviour::AcceptAll => Scenario::AcceptAll,
        }
    }
}

/// One line of ground truth.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TruthRow {
    /// The address exactly as it appears on the list.
    pub address: String,
    /// Expected status.
    pub status: Status,
    /// Expected reason.
    pub reason: Reason,
    /// False when random transient 4xx replies can make an honest verifier end elsewhere
    /// (usually `unknown/deferred`).
    pub deterministic: bool,
    /// What the domain does.
    pub behaviour: Scenario,
    /// True when the local part names a mailbox that takes mail (valid or full) at a domain
    /// served by SMTP hosts (up or down); false for an unknown local part (at catch-all and
    /// accept-all domains too), a disabled mailbox, and a domain without servers (nxdomain,
    /// null_mx, no_mx). A verdict `undeliverable` where this is true is a harmful false
    /// negative. Rows written before the field existed read as false.
    #[serde(default)]
    pub exists: bool,
}

pub(crate) fn scenario_of(behaviour: Behaviour, all_down: bool, first_down: bool) -> Scenario {
    if behaviour.has_servers() && all_down {
        Scenario::MxDown
    } else if behaviour == Behaviour::Normal && first_down {
        Scenario::MxBackup
    } else {
        Scenario::of(behaviour)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_serialise_with_taxonomy_spelling() {
        let row = TruthRow {
            address: "a@b.test".into(),
            status: Status::Undeliverable,
            reason: Reason::MailboxNotFound,
            deterministic: true,
            behaviour: Scenario::MxBackup,
            exists: false,
        };
        let json = serde_json::to_string(&row).unwrap();
        assert_eq!(
            json,
            r#"{"address":"a@b.test","status":"undeliverable","reason":"mailbox_not_found","deterministic":true,"behaviour":"mx_backup","exists":false}"#
        );
        let accepts_all = TruthRow {
            status: Status::Risky,
            reason: Reason::AcceptsAll,
            behaviour: Scenario::AcceptAll,
            exists: true,
            ..row
        };
        let json = serde_json::to_string(&accepts_all).unwrap();
        assert!(
            json.ends_with(
                r#""status":"risky","reason":"accepts_all","deterministic":true,"behaviour":"accept_all","exists":true}"#
            ),
            "{json}"
        );
    }

    #[test]
    fn rows_from_before_exists_still_parse() {
        let old = r#"{"address":"a@b.test","status":"deliverable","reason":"accepted","deterministic":true,"behaviour":"normal"}"#;
        let row: TruthRow = serde_json::from_str(old).unwrap();
        assert_eq!(row.reason, Reason::Accepted);
        assert!(!row.exists);
    }
}
