//! Building verdicts from what the engine learned: DNS outcomes (no probe) and probe outcomes.
//! The mapping of a reply to a reason is `rollcall_core::classify`; this adds the evidence.

use rollcall_core::{EmailAddress, Evidence, Flags, Reason, Verdict};

/// The verdict for an address whose domain settled its fate before any probe (null MX, no
/// such domain, forbidden target, DNS failure...).
pub fn without_probe(address: &EmailAddress, reason: Reason, detail: Option<String>) -> Verdict {
    let verdict = Verdict::new(reason, Evidence::for_address(address))
        .with_flags(Flags::for_address(address));
    match detail {
        Some(detail) => verdict.with_detail(detail),
        None => verdict,
    }
}
