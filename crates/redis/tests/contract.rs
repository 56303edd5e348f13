//! The shared `StateStore` contract, and a few checks beyond it, against the real Redis.

mod common;

use std::time::{Duration, SystemTime};

use common::Fixture;
use rollcall_core::ports::ItemResult;
use rollcall_core::ports::{RateDecision, RateLimit, StateStore, contract};
use rollcall_core::{CampaignId, Evidence, ItemId, Reason, Verdict};

#[tokio::test]
async fn redis_state_keeps_the_contract() {
    let Some(fx) = Fixture::new().await else {
        return;
    };
    contract::all(&fx.store, &format!("{}-", fx.prefix)).await;
    let keys = fx.keys().await;
    assert!(!keys.is_empty(), "the contract wrote keys under the prefix");
    assert!(
        keys.iter()
            .all(|k| k.starts_with(&format!("{}:{{", fx.prefix))),
        "{keys:?}"
    );
}

#[tokio::test]
async fn several_cells_wait_for_the_missing_ones() {
    let Some(fx) = Fixture::new().await else {
        return;
    };
    let limit = RateLimit {
        per_minute: 60,
        burst: 5,
    };
    let s = &fx.store;
    assert_eq!(
        s.rate_take("k", limit, 3).await.unwrap(),
        RateDecision::Granted
    );
    // Two cells are left; three need one more interval (1 s).
    match s.rate_take("k", limit, 3).await.unwrap() {
        RateDecision::Wait(w) => assert!(
            w > Duration::from_millis(500) && w <= Duration::from_secs(1),
            "{w:?}"
        ),
        RateDecision::Granted => panic!("granted beyond the burst"),
    }
    assert_eq!(
        s.rate_take("k", limit, 2).await.unwrap(),
        RateDecision::Granted
    );
    // Asking for more than the burst is refused and takes nothing, as in the memory store: a
    // take cut down to the burst let a transaction send more RCPTs than it paid for.
    assert!(s.rate_take("fresh", limit, 50).await.is_err());
    for _ in 0..5 {
        assert_eq!(
            s.rate_take("fresh", limit, 1).await.unwrap(),
            RateDecision::Granted
        );
    }
    assert!(matches!(
        s.rate_take("fresh", limit, 1).await.unwrap(),
        RateDecision::Wait(_)
    ));
    let ttl: i64 = redis::cmd("PTTL")
        .arg(format!("{}:{{h:k}}:rate", fx.prefix))
        .query_async(&mut fx.admin.clone())
        .await
        .unwrap();
    assert!(
        ttl > 0,
        "the bucket expires once it is full again: pttl {ttl}"
    );
}

fn result(item: u64, reason: Reason) -> ItemResult {
    let address = format!("user{item}@example.test");
    ItemResult {
        item: ItemId(item),
        address: address.clone(),
        verdict: Verdict::new(
            reason,
            Evidence {
                address,
                ..Evidence::default()
            },
        ),
    }
}

#[tokio::test]
async fn trimmed_results_are_gone_and_the_rest_stay() {
    let Some(fx) = Fixture::new().await else {
        return;
    };
    let s = &fx.store;
    let c = CampaignId::random();
    let all: Vec<ItemResult> = (0..10).map(|i| result(i, Reason::Accepted)).collect();
    assert_eq!(s.record_results(&c, all.clone()).await.unwrap(), 10);
    let (first, cursor) = s.results_since(&c, 0, 4).await.unwrap();
    assert_eq!(first.len(), 4);
    assert_eq!(cursor, 4);
    s.results_trim(&c, cursor).await.unwrap();
    // A reader that starts over sees only what was not trimmed.
    let (rest, end) = s.results_since(&c, 0, 100).await.unwrap();
    assert_eq!(
        rest.iter().map(|r| r.item.0).collect::<Vec<_>>(),
        (4..10).collect::<Vec<_>>()
    );
    assert_eq!(end, 10);
    assert_eq!(rest[0], all[4], "the result comes back whole");
    let progress = s.progress(&c).await.unwrap();
    assert_eq!((progress.done, progress.by_status), (10, [10, 0, 0, 0]));
    // An unknown campaign has no progress and no results.
    let other = CampaignId::random();
    assert_eq!(s.progress(&other).await.unwrap().done, 0);
    assert_eq!(
        s.results_since(&other, 7, 10).await.unwrap(),
        (Vec::new(), 7)
    );
}

#[tokio::test]
async fn greylist_takes_nothing_when_asked_for_nothing() {
    let Some(fx) = Fixture::new().await else {
        return;
    };
    let s = &fx.store;
    assert!(
        s.greylist_take_due(SystemTime::now(), 0)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(s.greylist_pending().await.unwrap(), 0);
}

#[tokio::test]
async fn redis_cache_keeps_the_contract() {
    let Some(fx) = Fixture::new().await else {
        return;
    };
    let cache = fx.store.result_cache();
    rollcall_core::ports::contract::result_cache(&cache, "").await;
    let keys = fx.keys().await;
    assert!(
        keys.iter()
            .all(|k| k.starts_with(&format!("{}:{{r:", fx.prefix)) && k.ends_with(":v")),
        "{keys:?}"
    );
    // Redis expires them by itself: every one carries a TTL.
    let mut admin = fx.admin.clone();
    let ttl: i64 = redis::cmd("TTL")
        .arg(cache.redis_key("ann@cache.example"))
        .query_async(&mut admin)
        .await
        .unwrap();
    assert!(ttl > 0, "{ttl}");
}
