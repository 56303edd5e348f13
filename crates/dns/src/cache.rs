//! The resolution cache: one [`Resolution`] per domain until its expiry, bounded in size.
//!
//! Owns expiry and eviction only; the caller decides each entry's lifetime (record TTLs,
//! clamped; see `lookup`) and what is not cached at all (temporary failures). Time is passed
//! in, so the cache is pure and tested without sleeping.

use std::collections::{BTreeMap, HashMap};

use tokio::time::Instant;

use crate::resolution::Resolution;

struct Entry {
    value: Resolution,
    expires: Instant,
    seq: u64,
}

/// A bounded map from domain to resolution. When full, expired entries go first, then the
/// entry closest to its expiry (it would be the next to go anyway).
pub(crate) struct ResolutionCache {
    capacity: usize,
    entries: HashMap<String, Entry>,
    by_expiry: BTreeMap<(Instant, u64), String>,
    next_seq: u64,
}

impl ResolutionCache {
    pub(crate) fn new(capacity: usize) -> Self {
        Self {
            capacity,
            entries: HashMap::new(),
            by_expiry: BTreeMap::new(),
            next_seq: 0,
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }

    /// The cached resolution for `domain`, unless it has expired at `now` (then it is dropped).
    pub(crate) fn get(&mut self, domain: &str, now: Instant) -> Option<Resolution> {
        let expired = match self.entries.get(domain) {
            None => return None,
            Some(entry) if entry.expires > now => return Some(entry.value.clone()),
            Some(_) => true,
        };
        if expired {
            self.remove(domain);
        }
        None
    }

    /// Stores `value` for `domain` until `expires`, replacing any previous entry.
    pub(crate) fn insert(
        &mut self,
        domain: String,
        value: Resolution,
        expires: Instant,
        now: Instant,
    ) {
        if self.capacity == 0 || expires <= now {
            return;
        }
        self.remove(&domain);
        if self.entries.len() >= self.capacity {
            self.purge_expired(now);
        }
        while self.entries.len() >= self.capacity {
            let Some((_, victim)) = self.by_expiry.pop_first() else {
                break;
            };
            self.entries.remove(&victim);
        }
        let seq = self.next_seq;
        self.next_seq = self.next_seq.wrapping_add(1);
        self.by_expiry.insert((expires, seq), domain.clone());
        self.entries.insert(
            domain,
            Entry {
                value,
                expires,
                seq,
            },
        );
    }

    fn remove(&mut self, domain: &str) {
        if let Some(old) = self.entries.remove(domain) {
            self.by_expiry.remove(&(old.expires, old.seq));
        }
    }

    fn purge_expired(&mut self, now: Instant) {
        while let Some(entry) = self.by_expiry.first_entry() {
            if entry.key().0 > now {
                break;
            }
            let domain = entry.remove();
            self.entries.remove(&domain);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn secs(n: u64) -> Duration {
        Duration::from_secs(n)
    }

    #[test]
    fn entries_expire() {
        let t0 = Instant::now();
        let mut cache = ResolutionCache::new(10);
        cache.insert("a.test".into(), Resolution::NullMx, t0 + secs(60), t0);
        assert_eq!(cache.get("a.test", t0 + secs(59)), Some(Resolution::NullMx));
        assert_eq!(cache.get("a.test", t0 + secs(60)), None);
        assert_eq!(cache.len(), 0);
        assert_eq!(cache.get("b.test", t0), None);
    }

    #[test]
    fn replacing_an_entry_updates_its_expiry() {
        let t0 = Instant::now();
        let mut cache = ResolutionCache::new(10);
        cache.insert("a.test".into(), Resolution::NullMx, t0 + secs(10), t0);
        cache.insert(
            "a.test".into(),
            Resolution::NoMailServer,
            t0 + secs(100),
            t0,
        );
        assert_eq!(cache.len(), 1);
        assert_eq!(
            cache.get("a.test", t0 + secs(50)),
            Some(Resolution::NoMailServer)
        );
    }

    #[test]
    fn full_cache_evicts_expired_then_soonest_to_expire() {
        let t0 = Instant::now();
        let mut cache = ResolutionCache::new(3);
        cache.insert("short.test".into(), Resolution::NullMx, t0 + secs(5), t0);
        cache.insert("long.test".into(), Resolution::NullMx, t0 + secs(500), t0);
        cache.insert("mid.test".into(), Resolution::NullMx, t0 + secs(50), t0);
        // Full: "short" has expired at t0+10 and goes first.
        let t1 = t0 + secs(10);
        cache.insert(
            "new1.test".into(),
            Resolution::NoSuchDomain,
            t1 + secs(300),
            t1,
        );
        assert_eq!(cache.len(), 3);
        assert_eq!(cache.get("short.test", t1), None);
        // Full again, nothing expired: "mid" expires soonest and is evicted.
        cache.insert(
            "new2.test".into(),
            Resolution::NoSuchDomain,
            t1 + secs(300),
            t1,
        );
        assert_eq!(cache.len(), 3);
        assert_eq!(cache.get("mid.test", t1), None);
        assert!(cache.get("long.test", t1).is_some());
        assert!(cache.get("new1.test", t1).is_some());
        assert!(cache.get("new2.test", t1).is_some());
    }

    #[test]
    fn zero_capacity_or_zero_lifetime_caches_nothing() {
        let t0 = Instant::now();
        let mut off = ResolutionCache::new(0);
        off.insert("a.test".into(), Resolution::NullMx, t0 + secs(60), t0);
        assert_eq!(off.len(), 0);
        let mut on = ResolutionCache::new(4);
        on.insert("a.test".into(), Resolution::NullMx, t0, t0);
        assert_eq!(on.len(), 0);
    }
}
