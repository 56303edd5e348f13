//! The behaviour every `StateStore` and every `ResultCache` must have, as plain async checks
//! that panic on a violation. `MemoryState`'s and `MemoryCache`'s tests run them, and so do
//! the tests of every other store (Redis, SQLite), so the wirings agree. Each check takes a
//! store and a fresh key prefix.

use std::time::{Duration, SystemTime};

use super::{
    BackoffPolicy, Batch, BatchItem, CacheEntry, CachePolicy, CampaignPhase, CampaignRecord,
    CircuitDecision, GREYLIST_LEASE, GreylistEntry, ItemResult, PendingDelivery, Progress,
    RateDecision, RateLimit, ResultCache, RowRanges, StateStore, WebhookState,
};
use crate::{CampaignId, EmailAddress, Evidence, Flags, ItemId, Reason, Verdict};

/// GCRA: the burst is granted at once, the next cell must wait about one interval, other keys
/// are independent.
pub async fn rate_limit<S: StateStore>(store: &S, prefix: &str) {
    let limit = RateLimit {
        per_minute: 60,
        burst: 3,
    };
    let key = format!("{prefix}rate");
    for _ in 0..3 {
        assert_eq!(
            store.rate_take(&key, limit, 1).await.unwrap(),
            RateDecision::Granted
        );
    }
    match store.rate_take(&key, limit, 1).await.unwrap() {
        RateDecision::Wait(wait) => assert!(
            wait > Duration::ZERO && wait <= Duration::from_millis(1100),
            "wait {wait:?}"
        ),
        RateDecision::Granted => panic!("a fourth cell inside the burst window was granted"),
    }
    let other = format!("{prefix}rate-other");
    assert_eq!(
        store.rate_take(&other, limit, 3).await.unwrap(),
        RateDecision::Granted
    );
    // More cells than the burst are refused, never granted as fewer: a caller that took 3
    // cells and sent 4 RCPTs would exceed its rate on the wire.
    let fresh = format!("{prefix}rate-over");
    assert!(
        store.rate_take(&fresh, limit, 4).await.is_err(),
        "a take of 4 cells at burst 3 was not refused"
    );
    assert!(store.rate_take(&fresh, limit, 0).await.is_err());
    assert_eq!(
        store.rate_take(&fresh, limit, 3).await.unwrap(),
        RateDecision::Granted,
        "a refused take must not have taken cells"
    );
}

/// Leases: at most `cap` at once; a released slot is free again; a lapsed one too.
pub async fn leases<S: StateStore>(store: &S, prefix: &str) {
    let site = format!("{prefix}site");
    let ttl = Duration::from_secs(30);
    let a = store.lease_acquire(&site, "w1", 2, ttl).await.unwrap();
    let b = store.lease_acquire(&site, "w2", 2, ttl).await.unwrap();
    assert!(a.is_some() && b.is_some());
    assert!(
        store
            .lease_acquire(&site, "w3", 2, ttl)
            .await
            .unwrap()
            .is_none()
    );
    assert_eq!(store.lease_count(&site).await.unwrap(), 2);
    let a = a.unwrap();
    assert!(store.lease_renew(&a, ttl).await.unwrap());
    store.lease_release(&a).await.unwrap();
    assert!(
        !store.lease_renew(&a, ttl).await.unwrap(),
        "a released lease cannot be renewed"
    );
    let c = store.lease_acquire(&site, "w3", 2, ttl).await.unwrap();
    assert!(c.is_some(), "the released slot is free again");

    let short = format!("{prefix}site-short");
    let lapsing = store
        .lease_acquire(&short, "w1", 1, Duration::from_millis(100))
        .await
        .unwrap();
    assert!(lapsing.is_some());
    assert!(
        store
            .lease_acquire(&short, "w2", 1, ttl)
            .await
            .unwrap()
            .is_none()
    );
    tokio::time::sleep(Duration::from_millis(250)).await;
    assert!(
        store
            .lease_acquire(&short, "w2", 1, ttl)
            .await
            .unwrap()
            .is_some(),
        "a dead worker's lease lapses"
    );
}

/// Circuit: opens after the configured failures, lets exactly one probe through once the open
/// period is over, closes on success.
pub async fn circuit<S: StateStore>(store: &S, prefix: &str) {
    let host = format!("{prefix}mx.example.test");
    let policy = BackoffPolicy {
        failures_to_open: 2,
        base: Duration::from_millis(200),
        max: Duration::from_secs(1),
    };
    assert_eq!(
        store.circuit_check(&host).await.unwrap(),
        CircuitDecision::Closed
    );
    store.circuit_report(&host, false, &policy).await.unwrap();
    assert_eq!(
        store.circuit_check(&host).await.unwrap(),
        CircuitDecision::Closed
    );
    store.circuit_report(&host, false, &policy).await.unwrap();
    assert!(matches!(
        store.circuit_check(&host).await.unwrap(),
        CircuitDecision::Open { .. }
    ));
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        store.circuit_check(&host).await.unwrap(),
        CircuitDecision::HalfOpenProbe
    );
    assert!(
        matches!(
            store.circuit_check(&host).await.unwrap(),
            CircuitDecision::Open { .. }
        ),
        "only one probe while half-open"
    );
    store.circuit_report(&host, true, &policy).await.unwrap();
    assert_eq!(
        store.circuit_check(&host).await.unwrap(),
        CircuitDecision::Closed
    );
}

/// Catch-all verdicts are remembered per domain until their TTL.
pub async fn catch_all<S: StateStore>(store: &S, prefix: &str) {
    let domain = format!("{prefix}catchall.test");
    assert_eq!(store.catch_all_get(&domain).await.unwrap(), None);
    store
        .catch_all_put(&domain, true, Duration::from_millis(200))
        .await
        .unwrap();
    assert_eq!(store.catch_all_get(&domain).await.unwrap(), Some(true));
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(store.catch_all_get(&domain).await.unwrap(), None);
}

fn batch(campaign: &CampaignId, domain: &str, item: u64) -> Batch {
    Batch {
        campaign: campaign.clone(),
        site: "mx.example.test".into(),
        domain: domain.into(),
        mx: Vec::new(),
        items: vec![BatchItem {
            item: ItemId(item),
            address: format!("a{item}@{domain}")
                .parse()
                .expect("a valid address"),
            attempts: 0,
            greylist_round: 1,
            waiting_since_ms: None,
            note: None,
            blocked_via: Vec::new(),
        }],
        max_wait_ms: None,
        egress: None,
        lane: 0,
    }
}

/// The greylist schedule hands out due entries in due order, once while their lease runs, and
/// keeps the rest; an entry handed out and never done comes due again after the lease, one
/// done is gone.
pub async fn greylist<S: StateStore>(store: &S, campaign: &CampaignId) {
    let now = SystemTime::now();
    let entry = |item| GreylistEntry::new(batch(campaign, "grey.test", item));
    let before = store.greylist_pending().await.unwrap();
    store
        .greylist_schedule(&entry(2), now - Duration::from_secs(1))
        .await
        .unwrap();
    store
        .greylist_schedule(&entry(1), now - Duration::from_secs(2))
        .await
        .unwrap();
    store
        .greylist_schedule(&entry(3), now + Duration::from_secs(3600))
        .await
        .unwrap();
    assert_eq!(store.greylist_pending().await.unwrap(), before + 3);
    let due: Vec<GreylistEntry> = store
        .greylist_take_due(now, 100)
        .await
        .unwrap()
        .into_iter()
        .filter(|e| e.batch.campaign == *campaign)
        .collect();
    let items: Vec<u64> = due.iter().map(|e| e.batch.items[0].item.0).collect();
    assert_eq!(items, vec![1, 2]);
    assert_eq!(due[0].batch, entry(1).batch, "the entry comes back whole");
    assert!(
        due.iter().all(|e| e.id.is_some()),
        "handed out with their ids"
    );
    let mine = |taken: Vec<GreylistEntry>| -> Vec<GreylistEntry> {
        taken
            .into_iter()
            .filter(|e| e.batch.campaign == *campaign)
            .collect()
    };
    let again = mine(store.greylist_take_due(now, 100).await.unwrap());
    assert!(
        again.is_empty(),
        "a due entry is handed out once while its lease runs"
    );
    assert_eq!(
        store.greylist_pending().await.unwrap(),
        before + 3,
        "handed out is not forgotten"
    );
    // Entry 2 is published and done; entry 1's taker "died": it comes due again after the lease.
    store.greylist_done(&due[1..]).await.unwrap();
    store.greylist_done(&due[1..]).await.unwrap();
    assert_eq!(store.greylist_pending().await.unwrap(), before + 2);
    let later = now + GREYLIST_LEASE + Duration::from_secs(1);
    let back = mine(store.greylist_take_due(later, 100).await.unwrap());
    let items: Vec<u64> = back.iter().map(|e| e.batch.items[0].item.0).collect();
    assert_eq!(
        items,
        vec![1],
        "the undone entry is due again, the done one is gone"
    );
    store.greylist_done(&back).await.unwrap();
    assert_eq!(store.greylist_pending().await.unwrap(), before + 1);
}

fn result(item: u64, reason: Reason) -> ItemResult {
    let address = format!("user{item}@example.test");
    let evidence = Evidence {
        address: address.clone(),
        ..Evidence::default()
    };
    ItemResult {
        item: ItemId(item),
        address,
        verdict: Verdict::new(reason, evidence),
    }
}

/// Results: recorded once whatever the redeliveries, counted once, read back in order by cursor.
pub async fn results<S: StateStore>(store: &S, campaign: &CampaignId) {
    store.campaign_add_total(campaign, 3).await.unwrap();
    let first = [
        result(1, Reason::Accepted),
        result(2, Reason::MailboxNotFound),
    ];
    assert_eq!(
        store
            .record_results(campaign, first.to_vec())
            .await
            .unwrap(),
        2
    );
    // The same batch again (a redelivery) plus one new item.
    let again = [
        result(2, Reason::MailboxNotFound),
        result(1, Reason::Accepted),
        result(3, Reason::CatchAll),
    ];
    assert_eq!(
        store
            .record_results(campaign, again.to_vec())
            .await
            .unwrap(),
        1
    );
    let progress = store.progress(campaign).await.unwrap();
    assert_eq!(progress.total, 3);
    assert_eq!(progress.done, 3);
    assert_eq!(progress.by_status, [1, 1, 1, 0]);

    let (page, cursor) = store.results_since(campaign, 0, 2).await.unwrap();
    assert_eq!(
        page.iter().map(|r| r.item.0).collect::<Vec<_>>(),
        vec![1, 2]
    );
    let (rest, end) = store.results_since(campaign, cursor, 10).await.unwrap();
    assert_eq!(rest.iter().map(|r| r.item.0).collect::<Vec<_>>(), vec![3]);
    assert_eq!(rest[0].verdict.reason(), Reason::CatchAll);
    store.results_trim(campaign, end).await.unwrap();
    let (none, after) = store.results_since(campaign, end, 10).await.unwrap();
    assert!(none.is_empty());
    assert_eq!(after, end);
    // Trimming forgets the results, not which items have one.
    let asked = [ItemId(3), ItemId(4), ItemId(1), ItemId(64), ItemId(2)];
    assert_eq!(
        store.results_recorded(campaign, &asked).await.unwrap(),
        vec![true, false, true, false, true]
    );
    let other = CampaignId::random();
    assert_eq!(
        store.results_recorded(&other, &asked[..2]).await.unwrap(),
        vec![false, false]
    );
}

/// Campaign records and input: saved, listed oldest first, input appended idempotently and
/// read back in pages, deleted with everything else of the campaign.
pub async fn campaigns<S: StateStore>(store: &S) {
    let older = CampaignRecord {
        id: CampaignId::random(),
        name: "nightly".into(),
        phase: CampaignPhase::Uploading,
        detail: None,
        rows: 0,
        created_ms: 1_000,
        max_wait_ms: None,
    };
    let newer = CampaignRecord {
        id: CampaignId::random(),
        name: "other".into(),
        phase: CampaignPhase::Done,
        detail: None,
        rows: 0,
        created_ms: 2_000,
        max_wait_ms: None,
    };
    store.campaign_save(&newer).await.unwrap();
    store.campaign_save(&older).await.unwrap();
    let rows: Vec<String> = (0..5).map(|i| format!("user{i}@example.test")).collect();
    store
        .campaign_append_input(&older.id, 0, &rows[..3])
        .await
        .unwrap();
    // A retried append of rows already stored, overlapping new ones: each stored once.
    store
        .campaign_append_input(&older.id, 2, &rows[2..])
        .await
        .unwrap();
    store
        .campaign_append_input(&older.id, 0, &rows[..1])
        .await
        .unwrap();
    assert!(
        store
            .campaign_append_input(&older.id, 9, &rows[..1])
            .await
            .is_err(),
        "a gap in the input is refused"
    );
    let running = CampaignRecord {
        phase: CampaignPhase::Running,
        rows: 5,
        ..older.clone()
    };
    store.campaign_save(&running).await.unwrap();
    assert_eq!(
        store.campaign_list().await.unwrap(),
        vec![running.clone(), newer.clone()]
    );
    assert_eq!(
        store.campaign_input(&older.id, 0, 2).await.unwrap(),
        rows[..2].to_vec()
    );
    assert_eq!(
        store.campaign_input(&older.id, 2, 10).await.unwrap(),
        rows[2..].to_vec()
    );
    assert!(
        store
            .campaign_input(&older.id, 5, 10)
            .await
            .unwrap()
            .is_empty()
    );

    store
        .record_results(&older.id, vec![result(1, Reason::Accepted)])
        .await
        .unwrap();
    store.campaign_delete(&older.id).await.unwrap();
    assert_eq!(store.campaign_list().await.unwrap(), vec![newer.clone()]);
    assert!(
        store
            .campaign_input(&older.id, 0, 10)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        store
            .results_recorded(&older.id, &[ItemId(1)])
            .await
            .unwrap(),
        vec![false]
    );
    assert_eq!(
        store.progress(&older.id).await.unwrap(),
        Progress::default()
    );
    store.campaign_delete(&newer.id).await.unwrap();
    assert!(store.campaign_list().await.unwrap().is_empty());
}

/// Runs every check.
pub async fn all<S: StateStore>(store: &S, prefix: &str) {
    rate_limit(store, prefix).await;
    leases(store, prefix).await;
    circuit(store, prefix).await;
    catch_all(store, prefix).await;
    let campaign = CampaignId::random();
    greylist(store, &campaign).await;
    results(store, &campaign).await;
    campaigns(store).await;
    webhooks(store).await;
}

/// A campaign's webhook state: absent until saved, read back whole (settings, rows delivered,
/// the delivery begun, the completion), replaced whole, deleted with the campaign.
pub async fn webhooks<S: StateStore>(store: &S) {
    let record = CampaignRecord {
        id: CampaignId::random(),
        name: "hooked".into(),
        phase: CampaignPhase::Running,
        detail: None,
        rows: 4,
        created_ms: 3_000,
        max_wait_ms: None,
    };
    let other = CampaignId::random();
    store.campaign_save(&record).await.unwrap();
    assert_eq!(store.webhook_load(&record.id).await.unwrap(), None);
    let mut state = WebhookState::new(
        "https://hooks.example/in?x=1".into(),
        "s3cret".into(),
        Some(r#"{"tenant":7}"#.into()),
    );
    store.webhook_save(&record.id, &state).await.unwrap();
    assert_eq!(
        store.webhook_load(&record.id).await.unwrap(),
        Some(state.clone())
    );
    state.batches = 2;
    state.delivered = [0u64, 1, 3].into_iter().collect::<RowRanges>();
    state.pending = Some(PendingDelivery {
        id: "c-results-1".into(),
        rows: [2u64].into_iter().collect(),
    });
    state.completion_id = Some("c-completed".into());
    store.webhook_save(&record.id, &state).await.unwrap();
    let back = store.webhook_load(&record.id).await.unwrap().unwrap();
    assert_eq!(back, state);
    assert!(back.delivered.contains(3) && !back.delivered.contains(2));
    assert_eq!(store.webhook_load(&other).await.unwrap(), None);
    // Saving a webhook does not change the campaign's record.
    assert!(store.campaign_list().await.unwrap().contains(&record));
    store.campaign_delete(&record.id).await.unwrap();
    assert_eq!(store.webhook_load(&record.id).await.unwrap(), None);
}

/// A result cache: what was put comes back whole, in the order asked, absent keys are `None`;
/// a later put replaces; an entry is gone once `now` reaches its `keep_until`; a batch of
/// thousands goes in one call each way. Keys are `prefix` plus an address.
pub async fn result_cache<C: ResultCache>(cache: &C, prefix: &str) {
    let policy = CachePolicy::default();
    let now = 1_800_000_000;
    let entry = |local: &str, reason: Reason, at: u64| -> CacheEntry {
        let address = EmailAddress::parse(&format!("{local}@cache.example")).unwrap();
        let mut evidence = Evidence::for_address(&address);
        evidence.set_reply(
            550,
            crate::EnhancedCode::parse("5.1.1"),
            "5.1.1 <x>: \"no\" such user; ok",
        );
        evidence.mx_host = Some("mx1.cache.example".into());
        evidence.egress = Some("eu-1".into());
        let verdict = Verdict::new(reason, evidence)
            .with_flags(Flags {
                catch_all_domain: reason == Reason::CatchAll,
                free_provider: true,
                ..Flags::default()
            })
            .with_detail("after 2 tries, égal");
        let key = format!("{prefix}{}", address.cache_key());
        policy.entry_for(key, &verdict, at).unwrap()
    };
    let a = entry("ann", Reason::Accepted, now);
    let b = entry("bob", Reason::MailboxNotFound, now - 10);
    let c = entry("cy", Reason::CatchAll, now);
    cache
        .put_many(&[a.clone(), b.clone(), c.clone()], now)
        .await
        .unwrap();
    let missing = format!("{prefix}nobody@cache.example");
    let got = cache
        .get_many(&[b.key.clone(), missing.clone(), a.key.clone()], now)
        .await
        .unwrap();
    assert_eq!(got, vec![Some(b.clone()), None, Some(a.clone())]);
    assert!(cache.get_many(&[], now).await.unwrap().is_empty());

    // A later verdict replaces the earlier one.
    let a2 = entry("ann", Reason::MailboxDisabled, now + 5);
    cache
        .put_many(std::slice::from_ref(&a2), now + 5)
        .await
        .unwrap();
    let got = cache
        .get_many(std::slice::from_ref(&a.key), now + 5)
        .await
        .unwrap();
    assert_eq!(got, vec![Some(a2.clone())]);

    // Kept until `keep_until`, gone from then on (the catch-all one lapses first).
    let got = cache
        .get_many(&[c.key.clone(), a2.key.clone()], c.keep_until - 1)
        .await
        .unwrap();
    assert_eq!(got, vec![Some(c.clone()), Some(a2.clone())]);
    let got = cache
        .get_many(&[c.key.clone(), a2.key.clone()], c.keep_until)
        .await
        .unwrap();
    assert_eq!(got, vec![None, Some(a2.clone())]);

    // Thousands at once.
    let many: Vec<CacheEntry> = (0..3000)
        .map(|i| entry(&format!("m{i}"), Reason::Accepted, now))
        .collect();
    cache.put_many(&many, now).await.unwrap();
    let keys: Vec<String> = many.iter().map(|e| e.key.clone()).collect();
    let got = cache.get_many(&keys, now).await.unwrap();
    assert_eq!(got.len(), 3000);
    assert!(got.iter().zip(&many).all(|(g, e)| g.as_ref() == Some(e)));
}

#[cfg(test)]
mod tests {
    use super::super::{MemoryCache, MemoryState};

    #[tokio::test]
    async fn memory_state_keeps_the_contract() {
        super::all(&MemoryState::new(), "test:").await;
    }

    #[tokio::test]
    async fn memory_cache_keeps_the_contract() {
        super::result_cache(&MemoryCache::new(), "test:").await;
    }
}
