//! What this worker's items are waiting for, and until when: the retries it scheduled
//! (greylisting, deferrals) and its own pacing, so a progress display can say why the last
//! rows of a run are not done yet ("1 waiting: connection_failed (...), next try in 4m12s")
//! and a rate can leave idle waits out.
//!
//! Off until a display asks for it (`enable`: `rollcall verify` does; a distributed worker,
//! whose waits nobody reads, keeps nothing), and bounded to `MAX_TRACKED` items.
//!
//! Owns the bookkeeping only; the schedules themselves live in the queue and the state store.
//! An item leaves when a batch holding it starts again. In the distributed wiring another
//! worker may take the retry, so entries long past their due time are dropped.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use rollcall_core::{CampaignId, ItemId};

/// How long past its due time an entry is kept before it is taken as served elsewhere.
const STALE_AFTER: Duration = Duration::from_secs(600);
/// Inserts between two sweeps of stale entries.
const SWEEP_EVERY: u64 = 1024;
/// The longest reason text shown.
const WHY_MAX: usize = 100;
/// Items tracked at most; beyond, new waits are not tracked (the display undercounts).
const MAX_TRACKED: usize = 200_000;

#[derive(Debug)]
struct Wait {
    why: String,
    due: Instant,
}

#[derive(Debug, Default)]
struct Inner {
    enabled: bool,
    /// By campaign, then item: a batch's items are looked up without copying its campaign id.
    items: HashMap<CampaignId, HashMap<ItemId, Wait>>,
    /// Items across campaigns.
    len: usize,
    inserts: u64,
}

/// The items waiting for a retry or for pacing, with why and until when.
#[derive(Debug, Default)]
pub struct WaitingItems {
    inner: Mutex<Inner>,
}

/// What is waiting, for a display.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct WaitingSummary {
    /// Items waiting.
    pub count: u64,
    /// Items by kind of wait (`greylisted`, `connection_failed`, `pacing`...), most first.
    pub by_kind: Vec<(String, u64)>,
    /// The reason of one item of the largest kind, with its detail.
    pub example: Option<String>,
    /// Time until the earliest next try.
    pub next_in: Option<Duration>,
}

impl WaitingItems {
    /// Starts keeping track (a display will read `summary`).
    pub fn enable(&self) {
        self.inner.lock().unwrap_or_else(|p| p.into_inner()).enabled = true;
    }

    /// `item` comes back in `delay` because of `why` (`kind (detail)`).
    pub fn wait(&self, campaign: &CampaignId, item: ItemId, why: &str, delay: Duration) {
        let now = Instant::now();
        let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        if !inner.enabled {
            return;
        }
        inner.inserts += 1;
        if inner.inserts.is_multiple_of(SWEEP_EVERY) {
            for waits in inner.items.values_mut() {
                waits.retain(|_, w| w.due + STALE_AFTER > now);
            }
            inner.items.retain(|_, waits| !waits.is_empty());
            inner.len = inner.items.values().map(HashMap::len).sum();
        }
        if inner.len >= MAX_TRACKED {
            return;
        }
        let why: String = why.chars().take(WHY_MAX).collect();
        let wait = Wait {
            why,
            due: now + delay,
        };
        if !inner.items.contains_key(campaign) {
            inner.items.insert(campaign.clone(), HashMap::new());
        }
        let added = inner
            .items
            .get_mut(campaign)
            .is_some_and(|waits| waits.insert(item, wait).is_none());
        inner.len += usize::from(added);
    }

    /// `items` are being worked on again (or were never waiting).
    pub fn done(&self, campaign: &CampaignId, items: &[ItemId]) {
        let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let Some(waits) = inner.items.get_mut(campaign) else {
            return;
        };
        let before = waits.len();
        for item in items {
            waits.remove(item);
        }
        let removed = before - waits.len();
        if waits.is_empty() {
            inner.items.remove(campaign);
        }
        inner.len -= removed;
    }

    pub fn summary(&self) -> WaitingSummary {
        let now = Instant::now();
        let inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let mut by_kind: HashMap<&str, (u64, &str)> = HashMap::new();
        let mut next: Option<Instant> = None;
        for wait in inner.items.values().flat_map(HashMap::values) {
            let kind = wait.why.split(" (").next().unwrap_or_default();
            by_kind.entry(kind).or_insert((0, &wait.why)).0 += 1;
            next = Some(next.map_or(wait.due, |n| n.min(wait.due)));
        }
        let mut kinds: Vec<(String, u64, String)> = by_kind
            .into_iter()
            .map(|(kind, (n, why))| (kind.to_string(), n, why.to_string()))
            .collect();
        kinds.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        WaitingSummary {
            count: inner.len as u64,
            example: kinds.first().map(|k| k.2.clone()),
            by_kind: kinds.into_iter().map(|(kind, n, _)| (kind, n)).collect(),
            next_in: next.map(|due| due.saturating_duration_since(now)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn items_wait_until_their_batch_starts_again() {
        let waiting = WaitingItems::default();
        let c = CampaignId::random();
        waiting.wait(&c, ItemId(9), "greylisted", Duration::from_secs(60));
        assert_eq!(waiting.summary().count, 0, "nothing is kept until enabled");
        waiting.enable();
        let refused = "connection_failed (cannot connect to 127.0.0.28:25: refused)";
        waiting.wait(&c, ItemId(1), refused, Duration::from_secs(60));
        waiting.wait(&c, ItemId(2), "greylisted", Duration::from_secs(300));
        waiting.wait(&c, ItemId(3), "greylisted", Duration::from_secs(400));
        let s = waiting.summary();
        assert_eq!(s.count, 3);
        assert_eq!(
            s.by_kind,
            vec![
                ("greylisted".to_string(), 2),
                ("connection_failed".to_string(), 1)
            ]
        );
        assert_eq!(s.example.as_deref(), Some("greylisted"));
        let next = s.next_in.expect("a next try");
        assert!(next <= Duration::from_secs(60) && next > Duration::from_secs(50));
        waiting.done(&c, &[ItemId(1), ItemId(2)]);
        let s = waiting.summary();
        assert_eq!(s.count, 1);
        assert!(s.next_in.expect("a next try") > Duration::from_secs(300));
        waiting.done(&c, &[ItemId(3)]);
        assert_eq!(waiting.summary(), WaitingSummary::default());
    }
}
