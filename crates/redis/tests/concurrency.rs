//! Many tasks against one Redis: caps hold, entries and results are handed out and counted
//! exactly once.

mod common;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, SystemTime};

use common::Fixture;
use rollcall_core::ports::{Batch, BatchItem, GreylistEntry, ItemResult, StateStore};
use rollcall_core::{CampaignId, Evidence, ItemId, Reason, Verdict};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_lease_acquisition_never_exceeds_the_cap() {
    let Some(fx) = Fixture::new().await else {
        return;
    };
    const CAP: u32 = 3;
    let ttl = Duration::from_secs(30);

    // One round: 40 tasks race for 3 slots; exactly 3 win.
    let mut tasks = Vec::new();
    for i in 0..40 {
        let store = fx.store.clone();
        tasks.push(tokio::spawn(async move {
            store
                .lease_acquire("race.site", &format!("w{i}"), CAP, ttl)
                .await
                .unwrap()
        }));
    }
    let mut won = Vec::new();
    for t in tasks {
        won.extend(t.await.unwrap());
    }
    assert_eq!(won.len(), CAP as usize);
    let tokens: BTreeSet<_> = won.iter().map(|l| l.token.clone()).collect();
    assert_eq!(tokens.len(), CAP as usize, "tokens are unique");

    // Churn: tasks take, hold briefly and release; the holders never exceed the cap.
    let holding = Arc::new(AtomicUsize::new(0));
    let peak = Arc::new(AtomicUsize::new(0));
    let granted = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for i in 0..16 {
        let store = fx.store.clone();
        let (holding, peak, granted) = (holding.clone(), peak.clone(), granted.clone());
        tasks.push(tokio::spawn(async move {
            for _ in 0..25 {
                if let Some(lease) = store
                    .lease_acquire("churn.site", &format!("w{i}"), CAP, ttl)
                    .await
                    .unwrap()
                {
                    let now = holding.fetch_add(1, Ordering::SeqCst) + 1;
                    peak.fetch_max(now, Ordering::SeqCst);
                    granted.fetch_add(1, Ordering::SeqCst);
                    tokio::task::yield_now().await;
                    holding.fetch_sub(1, Ordering::SeqCst);
                    store.lease_release(&lease).await.unwrap();
                }
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    assert!(
        peak.load(Ordering::SeqCst) <= CAP as usize,
        "peak {}",
        peak.load(Ordering::SeqCst)
    );
    assert!(
        granted.load(Ordering::SeqCst) > CAP as usize,
        "slots were reused"
    );
    let held: u64 = redis::cmd("ZCARD")
        .arg(format!("{}:{{h:churn.site}}:leases", fx.prefix))
        .query_async(&mut fx.admin.clone())
        .await
        .unwrap();
    assert_eq!(held, 0, "every lease was released");
}

fn entry(campaign: &CampaignId, item: u64) -> GreylistEntry {
    GreylistEntry {
        batch: Batch {
            campaign: campaign.clone(),
            site: "mx.grey.test".into(),
            domain: "grey.test".into(),
            mx: Vec::new(),
            items: vec![BatchItem {
                item: ItemId(item),
                address: format!("a{item}@grey.test").parse().unwrap(),
                attempts: 0,
                greylist_round: 1,
                waiting_since_ms: None,
                note: None,
                blocked_via: Vec::new(),
            }],
            max_wait_ms: None,
            egress: None,
            lane: 0,
        },
        id: None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_takes_hand_each_greylist_entry_out_once() {
    let Some(fx) = Fixture::new().await else {
        return;
    };
    let campaign = CampaignId::random();
    let now = SystemTime::now();
    const N: u64 = 300;
    for i in 0..N {
        fx.store
            .greylist_schedule(&entry(&campaign, i), now - Duration::from_millis(N - i))
            .await
            .unwrap();
    }
    // Not due yet: must stay.
    fx.store
        .greylist_schedule(&entry(&campaign, 9999), now + Duration::from_secs(3600))
        .await
        .unwrap();

    let mut tasks = Vec::new();
    for _ in 0..8 {
        let store = fx.store.clone();
        tasks.push(tokio::spawn(async move {
            let mut mine = Vec::new();
            loop {
                let taken = store.greylist_take_due(now, 7).await.unwrap();
                if taken.is_empty() {
                    return mine;
                }
                // Each take is in due order.
                let items: Vec<u64> = taken.iter().map(|e| e.batch.items[0].item.0).collect();
                assert!(items.windows(2).all(|w| w[0] < w[1]), "{items:?}");
                mine.extend(items);
                store.greylist_done(&taken).await.unwrap();
            }
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    all.sort_unstable();
    assert_eq!(
        all,
        (0..N).collect::<Vec<_>>(),
        "every due entry exactly once"
    );
    assert_eq!(fx.store.greylist_pending().await.unwrap(), 1);
}

fn result(item: u64) -> ItemResult {
    let reason = match item % 4 {
        0 => Reason::Accepted,
        1 => Reason::MailboxNotFound,
        2 => Reason::CatchAll,
        _ => Reason::Timeout,
    };
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

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_redeliveries_count_each_result_once() {
    let Some(fx) = Fixture::new().await else {
        return;
    };
    let campaign = CampaignId::random();
    const N: u64 = 400;
    let results: Arc<Vec<ItemResult>> = Arc::new((0..N).map(result).collect());
    fx.store.campaign_add_total(&campaign, N).await.unwrap();

    let mut tasks = Vec::new();
    for t in 0..6usize {
        let (store, results, campaign) = (fx.store.clone(), results.clone(), campaign.clone());
        tasks.push(tokio::spawn(async move {
            // Each task records every result, in batches of a different size and order.
            let size = 10 + t * 7;
            let mut batches: Vec<&[ItemResult]> = results.chunks(size).collect();
            if t % 2 == 1 {
                batches.reverse();
            }
            let mut new = 0;
            for batch in batches {
                new += store
                    .record_results(&campaign, batch.to_vec())
                    .await
                    .unwrap();
            }
            new
        }));
    }
    let mut new = 0;
    for t in tasks {
        new += t.await.unwrap();
    }
    assert_eq!(new, N as usize, "each result counted as new once");
    let progress = fx.store.progress(&campaign).await.unwrap();
    assert_eq!(progress.total, N);
    assert_eq!(progress.done, N);
    assert_eq!(progress.by_status, [N / 4; 4]);

    let (read, cursor) = fx.store.results_since(&campaign, 0, 10_000).await.unwrap();
    assert_eq!(cursor, N);
    let items: BTreeSet<u64> = read.iter().map(|r| r.item.0).collect();
    assert_eq!(read.len(), N as usize, "the stream holds each result once");
    assert_eq!(items, (0..N).collect());
}
