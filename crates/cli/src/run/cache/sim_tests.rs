//! The result cache end to end: `verify`'s run loop against a simulated fleet (its counters
//! are the proof of what went on the wire), with a SQLite file in a temporary folder and a
//! manual clock, so TTLs are checked without sleeping.
//!
//! - a second run of the same list makes no SMTP connection at all and gives every address
//!   its first run's verdict, `cached` and stamped with the first run's time;
//! - past a TTL (and under `--max-age` or `--refresh`) an address is verified again, and a
//!   mailbox removed from the world between runs comes out `deliverable->undeliverable`;
//! - `--changes-only` keeps those rows alone.
//!
//! The first check runs twice: over SQLite (the embedded wiring's store) and over Redis (the
//! distributed wiring's, on its own key prefix, deleted afterwards).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rollcall_core::ports::{CacheClock, CachePolicy, ResultCache};
use rollcall_engine::WorkerMetrics;
use rollcall_engine::coordinator::{CacheSetup, InputRow, OutputRow};
use rollcall_engine::summary::Summary;
use rollcall_sim::{Fleet, FleetSpec, SimOptions};
use rollcall_sqlite::SqliteCache;
use tokio::sync::mpsc;

use crate::io::output::{ChangesOnly, RowSink};
use crate::io::progress::Progress;
use crate::run::embedded::{RowOrder, run_verification};
use crate::run::settings::Verifier;

const DAY: u64 = 86_400;
/// The manual clock's first reading: any fixed time will do.
const T0: u64 = 1_800_000_000;

/// `keep.test` (ann and bob valid) and `grey.test`; without `bob` when `bob_left`.
fn world(base: &str, bob_left: bool) -> String {
    let bob = if bob_left { "" } else { r#", "bob" = "valid""# };
    format!(
        r#"
[fleet]
address_base = "{base}"

[profiles.default]

[[host]]
name = "mx.keep.test"

[[site]]
name = "keep"
mx = [{{ host = "mx.keep.test", preference = 10 }}]

[[domain]]
name = "keep.test"
site = "keep"
mailboxes = {{ "ann" = "valid"{bob} }}
"#
    )
}

const LIST: [&str; 5] = [
    "ann@keep.test",
    "Bob@Keep.Test",
    "zed@keep.test",
    "not an address",
    "ann@keep.test",
];

async fn start(toml: &str) -> Fleet {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let spec = FleetSpec::from_toml(toml).unwrap();
    rollcall_sim::start(&spec, SimOptions::default())
        .await
        .unwrap()
}

fn verifier(fleet: &Fleet, cache: Option<CacheSetup>) -> Verifier {
    let (config, resolver) = crate::run::simulated::test_engine(fleet);
    let connector = rollcall_engine::connector(&config).unwrap();
    Verifier {
        engine: Arc::new(config),
        resolver,
        connector,
        metrics: Arc::new(WorkerMetrics::default()),
        cache,
    }
}

/// What a row came out as: status, reason, cached, verified_at, changed.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Seen {
    status: String,
    cached: bool,
    verified_at: Option<u64>,
    changed: Option<String>,
}

#[derive(Clone, Default)]
struct Rows(Arc<Mutex<BTreeMap<u64, Seen>>>);

impl RowSink<()> for Rows {
    fn write_row(&mut self, row: &OutputRow<()>) -> std::io::Result<()> {
        let seen = Seen {
            status: row.verdict.status().to_string(),
            cached: row.cache.cached,
            verified_at: row.cache.verified_at,
            changed: row.changed(),
        };
        assert!(
            self.0.lock().unwrap().insert(row.row, seen).is_none(),
            "row {} written twice",
            row.row
        );
        Ok(())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Rows {
    fn get(&self, row: u64) -> Seen {
        self.0.lock().unwrap()[&row].clone()
    }
    fn len(&self) -> usize {
        self.0.lock().unwrap().len()
    }
}

/// Verifies `LIST` against `fleet`; the rows, the summary and the SMTP connections and RCPTs
/// the fleet counted during the run.
async fn run(
    fleet: &Fleet,
    cache: Option<CacheSetup>,
    changes_only: bool,
) -> (Rows, Summary, u64, u64) {
    let before = fleet.counters().totals;
    let (tx, rx) = mpsc::channel(LIST.len());
    for (i, text) in LIST.iter().enumerate() {
        tx.send(InputRow {
            row: i as u64 + 1,
            text: (*text).to_string(),
            payload: (),
        })
        .await
        .unwrap();
    }
    drop(tx);
    let rows = Rows::default();
    let mut sink: Box<dyn RowSink<()>> = if changes_only {
        Box::new(ChangesOnly(rows.clone()))
    } else {
        Box::new(rows.clone())
    };
    let summary = tokio::time::timeout(
        Duration::from_secs(60),
        run_verification(
            verifier(fleet, cache),
            rx,
            sink.as_mut(),
            &mut Progress::hidden(),
            RowOrder::Input,
            std::future::pending(),
        ),
    )
    .await
    .expect("the run ends")
    .unwrap();
    let after = fleet.counters().totals;
    (
        rows,
        summary,
        after.connections - before.connections,
        after.rcpts - before.rcpts,
    )
}

fn scratch(test: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "rollcall-cache-{test}-{}-{:x}",
        std::process::id(),
        rand_suffix()
    ));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

fn rand_suffix() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos()
}

fn setup(store: &Arc<dyn ResultCache>, clock: &CacheClock, policy: CachePolicy) -> CacheSetup {
    CacheSetup {
        store: store.clone(),
        policy,
        clock: clock.clone(),
    }
}

#[tokio::test]
async fn a_second_run_probes_nothing_and_a_changed_world_is_reported() {
    let dir = scratch("twice");
    let sqlite = Arc::new(SqliteCache::open(&dir.join("results.sqlite")).unwrap());
    twice_then_changed(sqlite.clone(), ["127.44.0.0", "127.44.1.0"]).await;
    // Three addresses (ann, bob, zed): the duplicate and the non-address are not entries.
    assert_eq!(sqlite.count().await.unwrap(), 3);
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test]
async fn the_same_over_redis() {
    const URL: &str = "redis://127.0.0.1:6379";
    let prefix = format!("rctest-cache-{:016x}", rand::random::<u64>());
    let state = match rollcall_redis::RedisState::connect(URL, &prefix).await {
        Ok(state) => state,
        Err(e) => {
            let hint = "start it with: redis-server --daemonize yes --bind 127.0.0.1 -::1 \
                        --port 6379 --save \"\" --appendonly no";
            if std::env::var_os("CI").is_some() {
                panic!("Redis is not reachable at {URL} ({e}); {hint}");
            }
            use std::io::Write as _;
            let _ = writeln!(
                std::io::stderr(),
                "\n*** SKIPPED: Redis is not reachable at {URL} ({e}).\n*** {hint}\n"
            );
            return;
        }
    };
    let cache = Arc::new(state.result_cache());
    twice_then_changed(cache.clone(), ["127.44.3.0", "127.44.4.0"]).await;
    // Every entry is one key of the prefix, with a TTL; then they are deleted.
    let client = redis::Client::open(URL).unwrap();
    let mut con = client.get_multiplexed_async_connection().await.unwrap();
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{prefix}:*"))
        .query_async(&mut con)
        .await
        .unwrap();
    let _: () = redis::cmd("DEL")
        .arg(&keys)
        .query_async(&mut con)
        .await
        .unwrap();
    assert_eq!(keys.len(), 3, "{keys:?}");
    assert!(keys.contains(&cache.redis_key("bob@keep.test")), "{keys:?}");
}

/// Runs the list four times over `store` with a manual clock: cold, warm a day later (no
/// SMTP traffic), 31 days later against a world where bob left (`changed`), then with
/// `--changes-only` and `--refresh`.
async fn twice_then_changed(store: Arc<dyn ResultCache>, bases: [&str; 2]) {
    let clock = CacheClock::manual(T0);
    let policy = CachePolicy::default();
    let fleet = start(&world(bases[0], false)).await;

    // First run: everything is probed and remembered.
    let (rows, summary, connections, rcpts) =
        run(&fleet, Some(setup(&store, &clock, policy)), false).await;
    assert_eq!(rows.len(), 5);
    assert!(connections > 0 && rcpts >= 3, "{connections} {rcpts}");
    assert_eq!(rows.get(1).status, "deliverable");
    assert_eq!(rows.get(2).status, "deliverable");
    assert_eq!(rows.get(3).status, "undeliverable");
    for row in 1..=5 {
        assert!(!rows.get(row).cached, "row {row}");
    }
    assert_eq!(rows.get(1).verified_at, Some(T0));
    assert_eq!((summary.cached, summary.cache_misses), (0, 4));

    // Second run, a day later: no connection at all, every verdict from the cache.
    clock.advance(Duration::from_secs(DAY));
    let (again, summary, connections, rcpts) =
        run(&fleet, Some(setup(&store, &clock, policy)), false).await;
    assert_eq!(
        (connections, rcpts),
        (0, 0),
        "cached rows made SMTP traffic"
    );
    assert_eq!(again.len(), 5);
    for row in [1, 2, 3, 5] {
        let seen = again.get(row);
        assert!(seen.cached, "row {row}: {seen:?}");
        assert_eq!(seen.verified_at, Some(T0), "row {row}");
        assert_eq!(seen.status, rows.get(row).status, "row {row}");
        assert_eq!(seen.changed, None);
    }
    assert!(!again.get(4).cached, "a non-address is never cached");
    assert_eq!((summary.cached, summary.cache_misses), (4, 0));
    fleet.shutdown().await;

    // Bob leaves; 31 days after the first run the deliverable verdicts have expired (30d),
    // the undeliverable one (90d) has not.
    let changed_world = start(&world(bases[1], true)).await;
    clock.set(T0 + 31 * DAY);
    let (third, summary, connections, _) =
        run(&changed_world, Some(setup(&store, &clock, policy)), false).await;
    assert!(connections > 0);
    let bob = third.get(2);
    assert_eq!(bob.status, "undeliverable");
    assert!(!bob.cached);
    assert_eq!(bob.changed.as_deref(), Some("deliverable->undeliverable"));
    assert_eq!(bob.verified_at, Some(T0 + 31 * DAY));
    let ann = third.get(1);
    assert_eq!((ann.cached, ann.changed.clone()), (false, None), "{ann:?}");
    let zed = third.get(3);
    assert!(zed.cached && zed.verified_at == Some(T0), "{zed:?}");
    assert_eq!(
        (summary.cached, summary.cache_misses, summary.changed),
        (1, 3, 1)
    );

    // The same world again the next day with --changes-only: nothing changed since, nothing
    // is written; with --refresh everything is probed, and only rows that changed come out.
    clock.advance(Duration::from_secs(DAY));
    let (quiet, summary, connections, _) =
        run(&changed_world, Some(setup(&store, &clock, policy)), true).await;
    assert_eq!(quiet.len(), 0);
    assert_eq!((summary.out, summary.cached, connections), (5, 4, 0));
    let refresh = CachePolicy {
        refresh: true,
        ..policy
    };
    let (all, summary, connections, _) =
        run(&changed_world, Some(setup(&store, &clock, refresh)), false).await;
    assert!(connections > 0);
    assert_eq!(summary.cached, 0);
    assert!((1..=5).all(|r| !all.get(r).cached));
    changed_world.shutdown().await;
}

#[tokio::test]
async fn max_age_and_class_ttls_decide_what_is_verified_again() {
    let store: Arc<dyn ResultCache> = Arc::new(rollcall_core::ports::MemoryCache::new());
    let clock = CacheClock::manual(T0);
    let fleet = start(&world("127.44.2.0", false)).await;
    let setup = |policy: CachePolicy| setup(&store, &clock, policy);
    let policy = CachePolicy {
        deliverable: Duration::from_secs(10 * DAY),
        undeliverable: Duration::from_secs(2 * DAY),
        ..CachePolicy::default()
    };
    run(&fleet, Some(setup(policy)), false).await;

    // Day 3: zed (undeliverable, 2d) is due again; ann and bob (deliverable, 10d) are not.
    clock.advance(Duration::from_secs(3 * DAY));
    let (rows, _, _, rcpts) = run(&fleet, Some(setup(policy)), false).await;
    assert!(rows.get(1).cached && rows.get(2).cached);
    assert!(!rows.get(3).cached);
    assert!(rcpts >= 1);

    // --max-age 1d: everything older than a day is verified again, whatever its TTL.
    clock.advance(Duration::from_secs(2 * DAY));
    let aged = CachePolicy {
        max_age: Some(Duration::from_secs(DAY)),
        ..policy
    };
    let (rows, summary, connections, _) = run(&fleet, Some(setup(aged)), false).await;
    assert!(connections > 0);
    assert_eq!(summary.cached, 0, "{:?}", rows.get(1));

    // No cache at all: nothing is stamped as cached, every row is probed.
    let (rows, summary, connections, _) = run(&fleet, None, false).await;
    assert!(connections > 0);
    assert!((1..=5).all(|r| !rows.get(r).cached));
    assert_eq!((summary.cached, summary.cache_misses), (0, 0));
    fleet.shutdown().await;
}
