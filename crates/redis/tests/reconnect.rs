//! The store survives its connection being killed by the server: the next operations succeed,
//! and operations in flight are retried without losing or double-counting a result.

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use common::Fixture;
use rollcall_core::ports::{ItemResult, StateStore};
use rollcall_core::{CampaignId, Evidence, ItemId, Reason, Verdict};
use rollcall_redis::RedisState;

fn result(item: u64) -> ItemResult {
    let address = format!("user{item}@example.test");
    ItemResult {
        item: ItemId(item),
        address: address.clone(),
        verdict: Verdict::new(
            Reason::Accepted,
            Evidence {
                address,
                ..Evidence::default()
            },
        ),
    }
}

/// Kills the store's current connection from the admin connection; true when one was killed.
async fn kill_connection_of(fx: &Fixture, store: &RedisState) -> bool {
    let Ok(id) = store.connection_id().await else {
        return false;
    };
    let mut admin = fx.admin.clone();
    let list: String = redis::cmd("CLIENT")
        .arg("LIST")
        .query_async(&mut admin)
        .await
        .unwrap();
    assert!(
        list.lines().any(|l| l.starts_with(&format!("id={id} "))),
        "CLIENT LIST shows the store's connection {id}"
    );
    let killed: i64 = redis::cmd("CLIENT")
        .arg("KILL")
        .arg("ID")
        .arg(id)
        .query_async(&mut admin)
        .await
        .unwrap();
    killed == 1
}

#[tokio::test]
async fn the_next_operations_succeed_after_the_connection_is_killed() {
    let Some(fx) = Fixture::new().await else {
        return;
    };
    let s = &fx.store;
    let c = CampaignId::random();
    assert_eq!(s.record_results(&c, vec![result(1)]).await.unwrap(), 1);
    let before = s.connection_id().await.unwrap();

    assert!(kill_connection_of(&fx, s).await);

    assert_eq!(
        s.record_results(&c, vec![result(1), result(2)])
            .await
            .unwrap(),
        1
    );
    assert_eq!(s.progress(&c).await.unwrap().done, 2);
    s.catch_all_put("d.test", true, Duration::from_secs(60))
        .await
        .unwrap();
    assert_eq!(s.catch_all_get("d.test").await.unwrap(), Some(true));
    let after = s.connection_id().await.unwrap();
    assert_ne!(before, after, "the store reconnected");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn results_in_flight_survive_repeated_kills_counted_once() {
    let Some(fx) = Fixture::new().await else {
        return;
    };
    let c = CampaignId::random();
    const TASKS: u64 = 4;
    const PER_TASK: u64 = 60;
    let mut tasks = Vec::new();
    for t in 0..TASKS {
        let (store, c) = (fx.store.clone(), c.clone());
        tasks.push(tokio::spawn(async move {
            let mut new = 0;
            for i in 0..PER_TASK {
                let item = t * PER_TASK + i;
                // Redeliver the previous item alongside the new one.
                let batch = [result(item), result(item.saturating_sub(1))];
                new += store.record_results(&c, batch.to_vec()).await.unwrap();
                tokio::task::yield_now().await;
            }
            new
        }));
    }
    let mut kills = 0;
    for _ in 0..3 {
        tokio::time::sleep(Duration::from_millis(30)).await;
        if kill_connection_of(&fx, &fx.store).await {
            kills += 1;
        }
    }
    let mut new = 0;
    for t in tasks {
        new += t.await.unwrap();
    }
    assert!(kills >= 1, "at least one connection was killed");
    let total = TASKS * PER_TASK;
    assert_eq!(new, total as usize, "nothing counted twice, nothing lost");
    let progress = fx.store.progress(&c).await.unwrap();
    assert_eq!(progress.done, total);
    let (read, _) = fx.store.results_since(&c, 0, 10_000).await.unwrap();
    let items: BTreeSet<u64> = read.iter().map(|r| r.item.0).collect();
    assert_eq!(read.len() as u64, total);
    assert_eq!(items, (0..total).collect());
}
