//! Building verdicts from what the engine learned: DNS outcomes (no probe) and probe outcomes.
//! The mapping of a reply to a reason is `rollcall_core::classify`; this adds the evidence.

use rollcall_core::{EmailAddress, Evidence, Flags, Reason, Verdict};

/// The verdict for an address whose domain settled its fate before any probe (null MX, no
/// such domain, forbidden target, DNS failure...).
pub fn without_probe(address: &str, reason: Reason, detail: Option<String>) -> Verdict {
    let (evidence, flags) = match EmailAddress::parse(address) {
        Ok(parsed) => (Evidence::for_address(&parsed), Flags::for_address(&parsed)),
        Err(_) => (Evidence::for_input(address), Flags::default()),
    };
    let verdict = Verdict::new(reason, evidence).with_flags(flags);
    match detail {
        Some(detail) => verdict.with_detail(detail),
        None => verdict,
    }
}
