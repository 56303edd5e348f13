//! Building verdicts from what the engine learned: DNS outcomes (no probe) and probe outcomes.
//! The mapping of a reply to a reason is `rollcall_core::classify`; this adds the evidence.

use std::net::SocketAddr;
use std::time::Duration;

use rollcall_core::ports::BatchItem;
use rollcall_core::{
    CatchAll, Classification, DomainContext, EmailAddress, Evidence, Flags, Reason, RetryKind,
    Verdict, verdict_for,
};

use crate::probe::{ProbeFailure, Reply};

/// The verdict for an address whose domain settled its fate before any probe (null MX, no
/// such domain, forbidden target, DNS failure...). A domain that takes no mail gets the common
/// mail domain it is likely a typo of, when there is one (`did_you_mean`).
pub fn without_probe(address: &EmailAddress, reason: Reason, detail: Option<String>) -> Verdict {
    let mut verdict = Verdict::new(reason, Evidence::for_address(address))
        .with_flags(Flags::for_address(address));
    if matches!(
        reason,
        Reason::NoSuchDomain | Reason::NullMx | Reason::NoMailServer
    ) {
        verdict.did_you_mean =
            rollcall_core::did_you_mean(address.domain().as_str()).map(str::to_string);
    }
    match detail {
        Some(detail) => verdict.with_detail(detail),
        None => verdict,
    }
}

/// What a transaction tells about every item it carried: where it went, how, how long.
pub(crate) struct EvidenceBase<'a> {
    pub egress: &'a str,
    pub site: &'a str,
    pub host: &'a str,
    pub addr: SocketAddr,
    pub tls: bool,
    pub pipelined: bool,
    pub elapsed: Duration,
    /// Who runs the domain's mail, whose rows read the replies.
    pub provider: &'a rollcall_core::ProviderRules,
}

/// The verdict of a probed item: core's `verdict_for` over the evidence of this transaction.
pub(crate) fn probed(
    base: &EvidenceBase<'_>,
    item: &BatchItem,
    class: Classification,
    reply: Option<&Reply>,
    catch_all: Option<bool>,
) -> Verdict {
    let mut evidence = Evidence::for_address(&item.address);
    evidence.site = Some(base.site.to_string());
    evidence.mx_host = Some(base.host.to_string());
    evidence.ip = Some(base.addr.ip());
    evidence.egress = Some(base.egress.to_string());
    if let Some(reply) = reply {
        evidence.set_reply(reply.code, reply.enhanced, &reply.text());
    }
    evidence.attempts = item.attempts + item.greylist_round + 1;
    evidence.tls = base.tls;
    evidence.pipelined = base.pipelined;
    evidence.elapsed_ms = base.elapsed.as_millis() as u64;
    verdict_for(class, &context_for(&item.address, catch_all), evidence)
}

/// The verdict of an item whose probe failed (`failure`), with the reply that ended it.
pub(crate) fn failure(item: &BatchItem, failure: &ProbeFailure, reply: Option<&Reply>) -> Verdict {
    let mut evidence = Evidence::for_address(&item.address);
    if let Some(reply) = reply {
        evidence.set_reply(reply.code, reply.enhanced, &reply.text());
    }
    evidence.attempts = item.attempts;
    Verdict::new(failure.reason(), evidence)
        .with_flags(context_for(&item.address, None).flags)
        .with_detail(failure.detail().to_string())
}

/// The verdict once retries of `kind` are used up (`unknown/greylisted`, `unknown/deferred`).
pub(crate) fn exhausted(item: &BatchItem, kind: RetryKind, reply: Option<&Reply>) -> Verdict {
    let mut evidence = Evidence::for_address(&item.address);
    if let Some(reply) = reply {
        evidence.set_reply(reply.code, reply.enhanced, &reply.text());
    }
    evidence.attempts = item.attempts + item.greylist_round + 1;
    verdict_for(
        Classification::Retry(kind),
        &context_for(&item.address, None),
        evidence,
    )
}

/// An item that cannot be sent to the server at `host`: `unknown/unverifiable`, saying why.
pub(crate) fn unverifiable(
    address: &EmailAddress,
    host: &str,
    why: String,
    catch_all: Option<bool>,
) -> Verdict {
    let mut evidence = Evidence::for_address(address);
    evidence.mx_host = Some(host.to_string());
    Verdict::new(Reason::Unverifiable, evidence)
        .with_flags(context_for(address, catch_all).flags)
        .with_detail(why)
}

/// An item not probed because every address of its MX hosts is private (`why` names one).
pub(crate) fn forbidden_target(address: &EmailAddress, why: &str) -> Verdict {
    Verdict::new(Reason::ForbiddenTarget, Evidence::for_address(address))
        .with_flags(context_for(address, None).flags)
        .with_detail(format!("not probed: {why}, a private address"))
}

/// The verdict with `more` (why its retries stopped, a note the item carries) added to its
/// detail.
pub(crate) fn add_detail(verdict: Verdict, more: Option<String>) -> Verdict {
    match more {
        None => verdict,
        Some(stop) => {
            let detail = match verdict.detail.as_deref() {
                Some(detail) if !detail.is_empty() => format!("{detail}; {stop}"),
                _ => stop,
            };
            verdict.with_detail(detail)
        }
    }
}

fn context_for(address: &EmailAddress, catch_all: Option<bool>) -> DomainContext {
    let catch_all = match catch_all {
        Some(true) => CatchAll::Yes,
        Some(false) => CatchAll::No,
        None => CatchAll::Unknown,
    };
    DomainContext::for_address(address, catch_all)
}
