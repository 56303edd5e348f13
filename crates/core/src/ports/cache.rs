//! `ResultCache`: verdicts remembered between runs, keyed by the normalised address
//! (`EmailAddress::cache_key`), so a nightly run re-probes only what is new or old enough.
//!
//! Owns the port, what an entry holds (`CacheEntry`), its compact encoding (`encode_entry`,
//! `decode_entry`: one short JSON array, the same bytes in every store) and the freshness
//! policy (`CachePolicy`: a TTL per verdict class, `--max-age`). A store keeps an entry until
//! its `keep_until` and decides nothing else; whether an entry is fresh enough to skip the
//! probe is the policy's call, with the caller's clock (`CacheClock`), so the stores agree and
//! tests need no sleeps. The stores: `MemoryCache` here, SQLite in `rollcall-sqlite` (the
//! embedded wiring), Redis in `rollcall-redis` (the distributed wiring); every one passes
//! `contract::result_cache`.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::{EmailAddress, EnhancedCode, Evidence, Flags, Reason, ReplyText, Status, Verdict};

/// Failures of a cache store. A cache failure never changes a verdict: the caller verifies
/// the address as if nothing were cached.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CacheError {
    #[error("result cache transport: {0}")]
    Transport(String),
    #[error("result cache data: {0}")]
    Data(String),
}

impl CacheError {
    pub fn is_transient(&self) -> bool {
        matches!(self, CacheError::Transport(_))
    }

    pub fn as_metric_label(&self) -> &'static str {
        match self {
            CacheError::Transport(_) => "transport",
            CacheError::Data(_) => "data",
        }
    }
}

/// One remembered verdict.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CacheEntry {
    /// `EmailAddress::cache_key` of the address.
    pub key: String,
    /// When the verdict was reached, in seconds since the Unix epoch.
    pub verified_at: u64,
    /// Until when the store keeps the entry (seconds since the epoch); after it, the entry is
    /// gone for every reader. Past its TTL but before this, an entry is stale: not used for the
    /// verdict, only to tell what changed.
    pub keep_until: u64,
    /// The verdict as an output row needs it (`cacheable`): reason, flags, detail, and from the
    /// evidence the MX host, egress, SMTP code, enhanced code and reply text.
    pub verdict: Verdict,
}

/// The store of remembered verdicts. Batched: one call per many addresses, so a list of a
/// million rows costs a few thousand round trips, not a million.
#[async_trait]
pub trait ResultCache: Send + Sync + 'static {
    /// For each key, in order, its entry, or `None` when absent or kept no longer than `now`
    /// (`keep_until <= now`).
    async fn get_many(
        &self,
        keys: &[String],
        now: u64,
    ) -> Result<Vec<Option<CacheEntry>>, CacheError>;

    /// Writes `entries`, each replacing any entry of its key. `now` is the caller's clock:
    /// a store that expires keys itself (Redis) keeps each for `keep_until - now` seconds.
    async fn put_many(&self, entries: &[CacheEntry], now: u64) -> Result<(), CacheError>;
}

/// The verdict classes with a TTL of their own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheClass {
    Deliverable,
    Undeliverable,
    /// Every risky verdict: catch-all domains above all, mailbox full, disposable, role.
    Risky,
    Unknown,
}

impl CacheClass {
    pub fn of(verdict: &Verdict) -> CacheClass {
        match verdict.status() {
            Status::Deliverable => CacheClass::Deliverable,
            Status::Undeliverable => CacheClass::Undeliverable,
            Status::Risky => CacheClass::Risky,
            Status::Unknown => CacheClass::Unknown,
        }
    }
}

/// How long a verdict of each class stays fresh (zero: never cached), how long a stale entry
/// is kept to tell what changed, and the run's own bounds (`--max-age`, `--refresh`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CachePolicy {
    pub deliverable: Duration,
    pub undeliverable: Duration,
    /// Risky verdicts (catch-all above all: a domain's catch-all state changes with its setup).
    pub risky: Duration,
    /// Unknown verdicts (timeouts, blocks, deferrals) say nothing lasting: zero by default.
    pub unknown: Duration,
    /// How long an entry is kept past its TTL, so the next run can say what changed.
    pub keep_expired: Duration,
    /// `--max-age`: entries verified longer ago than this are verified again, whatever the TTL.
    pub max_age: Option<Duration>,
    /// `--refresh`: nothing is read from the cache (results are still written).
    pub refresh: bool,
}

const DAY: u64 = 24 * 3600;

impl Default for CachePolicy {
    fn default() -> Self {
        CachePolicy {
            deliverable: Duration::from_secs(30 * DAY),
            undeliverable: Duration::from_secs(90 * DAY),
            risky: Duration::from_secs(7 * DAY),
            unknown: Duration::ZERO,
            keep_expired: Duration::from_secs(30 * DAY),
            max_age: None,
            refresh: false,
        }
    }
}

impl CachePolicy {
    /// The TTL of `class` (zero: not cached).
    pub fn ttl(&self, class: CacheClass) -> Duration {
        match class {
            CacheClass::Deliverable => self.deliverable,
            CacheClass::Undeliverable => self.undeliverable,
            CacheClass::Risky => self.risky,
            CacheClass::Unknown => self.unknown,
        }
    }

    /// Whether `entry` may stand for a probe at `now`: within its class's TTL and `max_age`,
    /// and not `--refresh`. An entry from the future (a clock set back) is not fresh.
    pub fn is_fresh(&self, entry: &CacheEntry, now: u64) -> bool {
        if self.refresh || entry.verified_at > now {
            return false;
        }
        let age = now - entry.verified_at;
        let ttl = self.ttl(CacheClass::of(&entry.verdict)).as_secs();
        age < ttl && self.max_age.is_none_or(|max| age <= max.as_secs())
    }

    /// The entry to write under `key` (`EmailAddress::cache_key`) for `verdict`, verified at
    /// `now`; `None` when its class is not cached (or it is not an address's verdict).
    pub fn entry_for(&self, key: String, verdict: &Verdict, now: u64) -> Option<CacheEntry> {
        let ttl = self.ttl(CacheClass::of(verdict)).as_secs();
        if ttl == 0 || verdict.evidence.domain.is_none() {
            return None;
        }
        Some(CacheEntry {
            key,
            verified_at: now,
            keep_until: now
                .saturating_add(ttl)
                .saturating_add(self.keep_expired.as_secs()),
            verdict: cacheable(verdict),
        })
    }
}

/// The part of a verdict the cache keeps: what an output row shows, without the probe's
/// timing, attempts or the address (a reader fills in its own row's address).
pub fn cacheable(verdict: &Verdict) -> Verdict {
    let e = &verdict.evidence;
    let evidence = Evidence {
        mx_host: e.mx_host.clone(),
        egress: e.egress.clone(),
        smtp_code: e.smtp_code,
        enhanced_code: e.enhanced_code,
        smtp_text: e.smtp_text.clone(),
        ..Evidence::default()
    };
    let kept = Verdict::new(verdict.reason(), evidence).with_flags(verdict.flags);
    match &verdict.detail {
        Some(detail) => kept.with_detail(detail.clone()),
        None => kept,
    }
}

/// A cached verdict as the row of `address` shows it: its own normalised address and domain.
pub fn verdict_for_row(cached: &Verdict, address: &EmailAddress) -> Verdict {
    let mut verdict = cached.clone();
    let own = Evidence::for_address(address);
    verdict.evidence.address = own.address;
    verdict.evidence.domain = own.domain;
    verdict
}

/// The stored form: `[1,verified_at,keep_until,"reason",flags,code,"enhanced","mx","egress",
/// "detail","text"]`, absent values `null`. Flags are bits: 1 catch-all, 2 role, 4
/// disposable, 8 free provider. Version 1; a reader refuses any other.
#[derive(Serialize, Deserialize)]
struct Wire(
    u8,
    u64,
    u64,
    Reason,
    u8,
    Option<u16>,
    Option<EnhancedCode>,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<String>,
);

const WIRE_VERSION: u8 = 1;

fn flag_bits(flags: Flags) -> u8 {
    u8::from(flags.catch_all_domain)
        | u8::from(flags.role_account) << 1
        | u8::from(flags.disposable) << 2
        | u8::from(flags.free_provider) << 3
}

fn bits_flags(bits: u8) -> Flags {
    Flags {
        catch_all_domain: bits & 1 != 0,
        role_account: bits & 2 != 0,
        disposable: bits & 4 != 0,
        free_provider: bits & 8 != 0,
    }
}

/// The value a store keeps for `entry` (its key is kept apart).
pub fn encode_entry(entry: &CacheEntry) -> String {
    let v = &entry.verdict;
    let e = &v.evidence;
    let wire = Wire(
        WIRE_VERSION,
        entry.verified_at,
        entry.keep_until,
        v.reason(),
        flag_bits(v.flags),
        e.smtp_code,
        e.enhanced_code,
        e.mx_host.clone(),
        e.egress.clone(),
        v.detail.clone(),
        e.smtp_text.as_ref().map(|t| t.as_str().to_string()),
    );
    // A tuple of plain values always serialises.
    serde_json::to_string(&wire).unwrap_or_default()
}

/// The entry of `key` from its stored value.
pub fn decode_entry(key: &str, value: &str) -> Result<CacheEntry, CacheError> {
    let wire: Wire = serde_json::from_str(value)
        .map_err(|e| CacheError::Data(format!("cached verdict of {key}: {e}")))?;
    let Wire(
        version,
        verified_at,
        keep_until,
        reason,
        flags,
        code,
        enhanced,
        mx,
        egress,
        detail,
        text,
    ) = wire;
    if version != WIRE_VERSION {
        return Err(CacheError::Data(format!(
            "cached verdict of {key}: version {version}, this build reads {WIRE_VERSION}"
        )));
    }
    let evidence = Evidence {
        mx_host: mx,
        egress,
        smtp_code: code,
        enhanced_code: enhanced,
        smtp_text: text.map(|t| ReplyText::new(&t)),
        ..Evidence::default()
    };
    let mut verdict = Verdict::new(reason, evidence).with_flags(bits_flags(flags));
    verdict.detail = detail;
    Ok(CacheEntry {
        key: key.to_string(),
        verified_at,
        keep_until,
        verdict,
    })
}

/// The clock cache decisions are made by, in seconds since the Unix epoch: the system's, or a
/// set one that tests move by hand (TTLs checked without sleeping).
#[derive(Debug, Clone, Default)]
pub enum CacheClock {
    #[default]
    System,
    Manual(Arc<AtomicU64>),
}

impl CacheClock {
    /// A clock standing at `now` until `set` or `advance`.
    pub fn manual(now: u64) -> CacheClock {
        CacheClock::Manual(Arc::new(AtomicU64::new(now)))
    }

    pub fn now(&self) -> u64 {
        match self {
            CacheClock::System => SystemTime::now()
                .duration_since(SystemTime::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs()),
            CacheClock::Manual(now) => now.load(Ordering::Relaxed),
        }
    }

    /// Sets a manual clock to `now` (the system clock is left alone).
    pub fn set(&self, now: u64) {
        if let CacheClock::Manual(at) = self {
            at.store(now, Ordering::Relaxed);
        }
    }

    /// Moves a manual clock forward (the system clock moves by itself).
    pub fn advance(&self, by: Duration) {
        if let CacheClock::Manual(now) = self {
            now.fetch_add(by.as_secs(), Ordering::Relaxed);
        }
    }
}

/// A verdict change worth a column: `deliverable->undeliverable`; `None` when the status is
/// the same.
pub fn change(before: Status, after: Status) -> Option<String> {
    (before != after).then(|| format!("{before}->{after}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn address(text: &str) -> EmailAddress {
        EmailAddress::parse(text).unwrap()
    }

    fn verdict(reason: Reason) -> Verdict {
        let mut evidence = Evidence::for_address(&address("Ann@Example.COM"));
        evidence.set_reply(
            250,
            crate::EnhancedCode::parse("2.1.5"),
            "2.1.5 Ok, \"quoted\" text",
        );
        evidence.mx_host = Some("mx1.example.com".into());
        evidence.attempts = 3;
        evidence.elapsed_ms = 1234;
        Verdict::new(reason, evidence)
            .with_flags(Flags {
                free_provider: true,
                role_account: true,
                ..Flags::default()
            })
            .with_detail("a detail, with [brackets]")
    }

    #[test]
    fn an_entry_survives_its_encoding() {
        let policy = CachePolicy::default();
        let a = address("Ann@Example.COM");
        let entry = policy
            .entry_for(a.cache_key(), &verdict(Reason::Accepted), 1_000)
            .unwrap();
        assert_eq!(entry.key, "ann@example.com");
        assert_eq!(entry.keep_until, 1_000 + 60 * DAY);
        let text = encode_entry(&entry);
        assert!(text.len() < 140, "{text}");
        assert_eq!(decode_entry(&entry.key, &text).unwrap(), entry);
        // What a row shows comes back whole; timing and attempts are not kept.
        let row = verdict_for_row(&entry.verdict, &a);
        assert_eq!(row.evidence.address, "Ann@example.com");
        assert_eq!(row.evidence.domain.as_deref(), Some("example.com"));
        assert_eq!(row.evidence.smtp_code, Some(250));
        assert_eq!(row.evidence.attempts, 0);
        assert!(decode_entry("k", "[2,1,2,\"accepted\",0,null,null,null,null,null,null]").is_err());
        assert!(decode_entry("k", "not json").is_err());
    }

    #[test]
    fn freshness_follows_the_class_ttl_max_age_and_refresh() {
        let mut policy = CachePolicy::default();
        let a = address("ann@example.com");
        let day = DAY;
        let good = policy
            .entry_for(a.cache_key(), &verdict(Reason::Accepted), 0)
            .unwrap();
        assert!(policy.is_fresh(&good, 29 * day));
        assert!(!policy.is_fresh(&good, 30 * day));
        let bad = policy
            .entry_for(a.cache_key(), &verdict(Reason::MailboxNotFound), 0)
            .unwrap();
        assert!(policy.is_fresh(&bad, 89 * day));
        let risky = policy
            .entry_for(a.cache_key(), &verdict(Reason::CatchAll), 0)
            .unwrap();
        assert!(!policy.is_fresh(&risky, 7 * day));
        assert!(
            policy
                .entry_for(a.cache_key(), &verdict(Reason::Timeout), 0)
                .is_none(),
            "unknown is never cached"
        );
        let later = policy
            .entry_for(a.cache_key(), &verdict(Reason::Accepted), day)
            .unwrap();
        assert!(
            !policy.is_fresh(&later, 0),
            "an entry from the future is not fresh"
        );
        policy.max_age = Some(Duration::from_secs(day));
        assert!(policy.is_fresh(&good, day));
        assert!(!policy.is_fresh(&good, day + 1));
        policy.max_age = None;
        policy.refresh = true;
        assert!(!policy.is_fresh(&good, 1));
    }

    #[test]
    fn a_manual_clock_moves_only_when_told() {
        let clock = CacheClock::manual(100);
        assert_eq!(clock.now(), 100);
        clock.advance(Duration::from_secs(50));
        assert_eq!(clock.clone().now(), 150);
        assert!(CacheClock::System.now() > 1_700_000_000);
    }

    #[test]
    fn a_change_names_both_statuses() {
        assert_eq!(
            change(Status::Deliverable, Status::Undeliverable).as_deref(),
            Some("deliverable->undeliverable")
        );
        assert_eq!(change(Status::Risky, Status::Risky), None);
    }
}
