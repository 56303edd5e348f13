//! An optional 0-100 score per verdict, for users who filter by a threshold.
//!
//! Owns `score`, the built-in base per reason (`base_score`) and the weights a `[score]` config
//! section can override (`ScoreWeights`, `FlagWeights`). The formula and every default are
//! documented for users in docs/scoring.md (a test keeps its table equal to `base_score`). It
//! does not decide verdicts (`decision` does) and reads no config file (the caller deserialises
//! `ScoreWeights` and calls `validate`).
//!
//! score = clamp(base(reason) + flag adjustments + provider adjustment, 0, 100), where a flag
//! that repeats the reason (`role_account` on a `role_account` verdict, `disposable` on
//! `disposable`, `catch_all_domain` on `catch_all`) is not counted twice.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::error::Error;
use crate::flags::{Flag, Flags};
use crate::providers::ProviderTable;
use crate::verdict::{Reason, Verdict};

/// The `providers` key for a verdict whose MX no known provider runs (`provider` is `None`).
pub use crate::providers::SELF_HOSTED;

/// The built-in base score of a reason, 0-100: how likely a message to the address arrives
/// and is read by someone. Exhaustive, so every reason has one.
pub const fn base_score(reason: Reason) -> i32 {
    match reason {
        // deliverable: the mailbox accepted RCPT; 95, not 100, as a later bounce is possible.
        Reason::Accepted => 95,
        // undeliverable: proven not to work; `rejected` (a policy refusal of this recipient)
        // and the softer "no server" cases keep a sliver.
        Reason::InvalidSyntax | Reason::NoSuchDomain | Reason::NullMx | Reason::MailboxNotFound => {
            0
        }
        Reason::NoMailServer | Reason::MailboxDisabled => 2,
        Reason::Rejected => 5,
        // risky: probably delivered, with a catch.
        Reason::RoleAccount => 75,
        Reason::CatchAll => 55,
        Reason::AcceptsAll => 50,
        Reason::MailboxFull => 40,
        // Delivered, but to a throwaway inbox nobody reads for long: on purpose below unknowns.
        Reason::Disposable => 15,
        // unknown: nothing proven; ordered by how often such an address turns out fine.
        Reason::Greylisted => 45,
        Reason::Deferred => 40,
        Reason::Timeout | Reason::TlsFailed | Reason::Unverifiable | Reason::Blocked => 35,
        Reason::ConnectionFailed | Reason::ProtocolError => 30,
        // The MX points at a private or forbidden address: mail from outside cannot get there.
        Reason::ForbiddenTarget => 10,
    }
}

/// How a score is computed: overrides of the built-in bases, flag and provider adjustments.
/// The `[score]` config section; empty means the built-in defaults.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ScoreWeights {
    /// Base score per reason name, replacing `base_score` for that reason. Names are checked
    /// by `validate`.
    pub reasons: BTreeMap<String, i32>,
    /// Added per flag set on the verdict.
    pub flags: FlagWeights,
    /// Added per provider name (provider table's, or `self_hosted` when no known provider
    /// runs the MX). None by default: the reasons already carry what a provider's behaviour
    /// means (Yahoo's `accepts_all`). Names are checked by `validate`.
    pub providers: BTreeMap<String, i32>,
}

/// The adjustment per flag (negative lowers the score).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FlagWeights {
    /// A role address (`info@`) reaches a team or nobody. Default -5.
    pub role_account: i32,
    /// A throwaway domain. Default -15.
    pub disposable: i32,
    /// A free provider: anyone can open a mailbox, nothing more. Default 0.
    pub free_provider: i32,
    /// The domain accepts any local part, so acceptance proves less. Default -10.
    pub catch_all_domain: i32,
}

impl Default for FlagWeights {
    fn default() -> FlagWeights {
        FlagWeights {
            role_account: -5,
            disposable: -15,
            free_provider: 0,
            catch_all_domain: -10,
        }
    }
}

impl FlagWeights {
    /// The adjustment for one flag.
    pub fn get(&self, flag: Flag) -> i32 {
        match flag {
            Flag::RoleAccount => self.role_account,
            Flag::Disposable => self.disposable,
            Flag::FreeProvider => self.free_provider,
            Flag::CatchAllDomain => self.catch_all_domain,
        }
    }
}

impl ScoreWeights {
    /// Refuses a `reasons` key that is not a reason name, or a `providers` key that is neither
    /// a provider name nor `self_hosted`: a misspelt key would otherwise silently do nothing.
    pub fn validate(&self) -> Result<(), Error> {
        self.validate_for(&ProviderTable::builtin())
    }

    /// `validate`, with the provider names of `providers` (a config's table, its own entries
    /// included).
    pub fn validate_for(&self, providers: &ProviderTable) -> Result<(), Error> {
        for name in self.reasons.keys() {
            name.parse::<Reason>()
                .map_err(|_| unknown("score.reasons key", name))?;
        }
        let provider_known = |name: &str| name == SELF_HOSTED || providers.get(name).is_some();
        match self.providers.keys().find(|n| !provider_known(n)) {
            Some(name) => Err(unknown("score.providers key", name)),
            None => Ok(()),
        }
    }

    /// The base for a reason: the override if any, else `base_score`.
    pub fn base(&self, reason: Reason) -> i32 {
        self.reasons
            .get(reason.as_str())
            .copied()
            .unwrap_or(base_score(reason))
    }
}

fn unknown(kind: &'static str, value: &str) -> Error {
    Error::UnknownName {
        kind,
        value: value.chars().filter(|c| !c.is_control()).take(64).collect(),
    }
}

/// Whether a flag says what the reason already says (counted once, in the base).
fn repeats_reason(flag: Flag, reason: Reason) -> bool {
    matches!(
        (flag, reason),
        (Flag::RoleAccount, Reason::RoleAccount)
            | (Flag::Disposable, Reason::Disposable)
            | (Flag::CatchAllDomain, Reason::CatchAll)
    )
}

/// The verdict's score, 0-100 (formula in the module docs and docs/scoring.md). `provider` is
/// the provider table's name running the MX, `None` for `self_hosted`. Weights are expected
/// to have passed `validate`; unknown keys in them are simply never looked up.
pub fn score(verdict: &Verdict, provider: Option<&str>, weights: &ScoreWeights) -> u8 {
    let reason = verdict.reason();
    let flags: &Flags = &verdict.flags;
    let mut total = i64::from(weights.base(reason));
    for flag in flags.iter().filter(|f| !repeats_reason(*f, reason)) {
        total += i64::from(weights.flags.get(flag));
    }
    let provider = provider.unwrap_or(SELF_HOSTED);
    total += i64::from(weights.providers.get(provider).copied().unwrap_or(0));
    // Lossless: clamped into 0..=100 first.
    total.clamp(0, 100) as u8
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::verdict::{Evidence, Status};

    fn verdict(reason: Reason, flags: Flags) -> Verdict {
        Verdict::new(reason, Evidence::default()).with_flags(flags)
    }

    #[test]
    fn every_base_is_a_score() {
        for r in Reason::ALL {
            assert!((0..=100).contains(&base_score(r)), "{r}");
        }
    }

    #[test]
    fn a_flag_repeating_the_reason_counts_once() {
        let w = ScoreWeights::default();
        let role = Flags {
            role_account: true,
            ..Flags::default()
        };
        assert_eq!(score(&verdict(Reason::RoleAccount, role), None, &w), 75);
        assert_eq!(score(&verdict(Reason::Accepted, role), None, &w), 90);
        let catch_all = Flags {
            catch_all_domain: true,
            ..Flags::default()
        };
        assert_eq!(score(&verdict(Reason::CatchAll, catch_all), None, &w), 55);
        assert_eq!(score(&verdict(Reason::Greylisted, catch_all), None, &w), 35);
    }

    #[test]
    fn statuses_order_with_default_weights() {
        let w = ScoreWeights::default();
        let range = |s: Status| {
            let scores: Vec<u8> = Reason::ALL
                .into_iter()
                .filter(|r| r.status() == s)
                .map(|r| score(&verdict(r, Flags::default()), None, &w))
                .collect();
            (*scores.iter().min().unwrap(), *scores.iter().max().unwrap())
        };
        let deliverable = range(Status::Deliverable);
        let risky = range(Status::Risky);
        let unknown = range(Status::Unknown);
        let undeliverable = range(Status::Undeliverable);
        assert!(deliverable.0 > risky.1, "{deliverable:?} {risky:?}");
        assert!(risky.1 > unknown.1, "{risky:?} {unknown:?}");
        assert!(unknown.0 > undeliverable.1, "{unknown:?} {undeliverable:?}");
        let s = |r| score(&verdict(r, Flags::default()), None, &w);
        assert!(s(Reason::Greylisted) > s(Reason::Blocked));
        assert!(s(Reason::CatchAll) > s(Reason::Greylisted));
    }
}
