//! The shared `ResultCache` contract against a real SQLite file, and what a file adds: entries
//! outlive the process that wrote them, lapsed ones are pruned, the folder is created.

use std::path::PathBuf;

use rollcall_core::ports::{CachePolicy, ResultCache, contract};
use rollcall_core::{EmailAddress, Evidence, Reason, Verdict};
use rollcall_sqlite::SqliteCache;

/// A fresh folder under the system's temporary one (never the user's cache folder).
fn scratch(test: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "rollcall-sqlite-{test}-{}-{:x}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    ));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

#[tokio::test]
async fn sqlite_cache_keeps_the_contract() {
    let dir = scratch("contract");
    let cache = SqliteCache::open(&dir.join("nested/results.sqlite")).unwrap();
    contract::result_cache(&cache, "").await;
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test]
async fn entries_outlive_the_connection_and_lapsed_ones_are_pruned() {
    let dir = scratch("reopen");
    let path = dir.join("results.sqlite");
    let policy = CachePolicy::default();
    let now = 1_800_000_000;
    let address = EmailAddress::parse("Ann@Example.com").unwrap();
    let verdict = Verdict::new(Reason::Accepted, Evidence::for_address(&address));
    let entry = policy
        .entry_for(address.cache_key(), &verdict, now)
        .unwrap();
    {
        let cache = SqliteCache::open(&path).unwrap();
        cache
            .put_many(std::slice::from_ref(&entry), now)
            .await
            .unwrap();
    }
    let cache = SqliteCache::open(&path).unwrap();
    let key = vec!["ann@example.com".to_string()];
    assert_eq!(
        cache.get_many(&key, now + 1).await.unwrap(),
        vec![Some(entry.clone())]
    );
    assert_eq!(cache.prune(entry.keep_until - 1).await.unwrap(), 0);
    assert_eq!(cache.prune(entry.keep_until).await.unwrap(), 1);
    assert_eq!(cache.count().await.unwrap(), 0);
    assert_eq!(cache.get_many(&key, now).await.unwrap(), vec![None]);
    // WAL mode: the write-ahead log stands beside the file while a connection is open.
    assert!(dir.join("results.sqlite-wal").exists());
    let _ = std::fs::remove_dir_all(dir);
}

/// Runs started together on a new cache file (a cron job and a manual run, or tests in
/// parallel) all open it: none is refused with `database is locked`.
#[test]
fn runs_opening_a_new_file_at_once_all_get_it() {
    for round in 0..20 {
        let dir = std::env::temp_dir().join(format!(
            "rollcall-sqlite-race-{}-{round}",
            std::process::id()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        let path = dir.join("results.sqlite");
        let barrier = std::sync::Arc::new(std::sync::Barrier::new(8));
        let opened: Vec<_> = (0..8)
            .map(|_| {
                let (path, barrier) = (path.clone(), barrier.clone());
                std::thread::spawn(move || {
                    barrier.wait();
                    rollcall_sqlite::SqliteCache::open(&path).map(|_| ())
                })
            })
            .collect();
        for handle in opened {
            let result = handle.join().unwrap();
            assert!(result.is_ok(), "round {round}: {:?}", result.err());
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
