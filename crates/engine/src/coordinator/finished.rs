//! What the coordinator keeps of a finished address, for the duplicates that come later:
//! `Compact` (24 bytes: a million finished addresses cost a few tens of MB), the `Interner`
//! of the strings that repeat across verdicts (MX names, fixed details), and `expand`, the
//! verdict a duplicate row gets back.

use std::collections::HashMap;
use std::sync::Arc;

use rollcall_core::{EmailAddress, EnhancedCode, Evidence, Flags, Reason, Verdict};

/// A finished address, kept small (24 bytes) for duplicates that come later: a million
/// finished addresses must not cost more than a few tens of MB.
#[derive(Debug, Clone, Copy)]
pub(super) struct Compact {
    reason: Reason,
    flags: Flags,
    /// The last SMTP code, 0 when none (no reply code is 0).
    code: u16,
    enhanced: Option<EnhancedCode>,
    /// Indexes into the interned MX names and details (`NONE` when absent or not interned).
    mx: u32,
    detail: u32,
    /// The provider's name: an index into the interned provider names (few: the table's).
    provider: u8,
}

const NONE: u32 = u32::MAX;

/// Strings that repeat across verdicts (MX host names, fixed details), stored once. Bounded:
/// past `MAX_INTERNED` distinct strings a new one is not kept (a later duplicate lacks it).
#[derive(Default)]
pub(super) struct Interner {
    index: HashMap<Arc<str>, u32>,
    values: Vec<Arc<str>>,
    /// Provider names, at most `u8::MAX` (the table has a few dozen).
    providers: Vec<Arc<str>>,
}

const MAX_INTERNED: usize = 100_000;

impl Interner {
    pub(super) fn intern(&mut self, text: Option<&str>) -> u32 {
        let Some(text) = text else { return NONE };
        if let Some(&i) = self.index.get(text) {
            return i;
        }
        if self.values.len() >= MAX_INTERNED {
            return NONE;
        }
        let shared: Arc<str> = Arc::from(text);
        let i = self.values.len() as u32;
        self.values.push(shared.clone());
        self.index.insert(shared, i);
        i
    }

    /// A provider name's index (`u8::MAX`: none, or past the bound).
    pub(super) fn intern_provider(&mut self, name: Option<&str>) -> u8 {
        let Some(name) = name else { return u8::MAX };
        if let Some(i) = self.providers.iter().position(|p| &**p == name) {
            return i as u8;
        }
        if self.providers.len() >= usize::from(u8::MAX) {
            return u8::MAX;
        }
        self.providers.push(Arc::from(name));
        (self.providers.len() - 1) as u8
    }

    pub(super) fn provider(&self, i: u8) -> Option<&str> {
        self.providers.get(usize::from(i)).map(|s| &**s)
    }

    pub(super) fn get(&self, i: u32) -> Option<&str> {
        self.values.get(i as usize).map(|s| &**s)
    }
}

impl Compact {
    /// `verdict`, kept small; its MX name and detail interned in `strings`.
    pub(super) fn of(verdict: &Verdict, strings: &mut Interner) -> Compact {
        Compact {
            reason: verdict.reason(),
            flags: verdict.flags,
            code: verdict.evidence.smtp_code.unwrap_or(0),
            enhanced: verdict.evidence.enhanced_code,
            mx: strings.intern(verdict.evidence.mx_host.as_deref()),
            detail: strings.intern(verdict.detail.as_deref()),
            provider: strings.intern_provider(verdict.evidence.provider.as_deref()),
        }
    }
}

pub(super) fn expand(compact: &Compact, strings: &Interner, address: &EmailAddress) -> Verdict {
    let mut evidence = Evidence::for_address(address);
    evidence.smtp_code = Some(compact.code).filter(|c| *c != 0);
    evidence.enhanced_code = compact.enhanced;
    evidence.mx_host = strings.get(compact.mx).map(str::to_string);
    evidence.provider = strings.provider(compact.provider).map(str::to_string);
    let mut verdict = Verdict::new(compact.reason, evidence).with_flags(compact.flags);
    if matches!(
        compact.reason,
        Reason::NoSuchDomain | Reason::NullMx | Reason::NoMailServer
    ) {
        // Recomputed rather than kept: it follows from the domain.
        verdict.did_you_mean =
            rollcall_core::did_you_mean(address.domain().as_str()).map(str::to_string);
    }
    match strings.get(compact.detail) {
        Some(detail) => verdict.with_detail(detail),
        None => verdict,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_finished_address_costs_little() {
        let size = std::mem::size_of::<Option<Compact>>();
        assert!(size <= 24, "{size}");
    }

    #[test]
    fn interner_shares_and_stays_bounded() {
        let mut strings = Interner::default();
        let a = strings.intern(Some("mx1.example.net"));
        assert_eq!(strings.intern(Some("mx1.example.net")), a);
        assert_eq!(strings.get(a), Some("mx1.example.net"));
        assert_eq!(strings.intern(None), NONE);
        assert_eq!(strings.get(NONE), None);
    }
}
