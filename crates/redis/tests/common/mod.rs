//! Shared setup of the Redis tests: the real server on 127.0.0.1:6379, a random key prefix per
//! test, and cleanup of that prefix's keys when the test ends (also when it panics).

#![allow(dead_code)]

use std::io::Write as _;

use rollcall_redis::RedisState;

pub const URL: &str = "redis://127.0.0.1:6379";

const START_HINT: &str = "start it with: redis-server --daemonize yes --bind 127.0.0.1 -::1 \
                          --port 6379 --save \"\" --appendonly no";

/// A store on its own prefix, and a second (admin) connection for checks. Deletes the prefix's
/// keys on drop.
pub struct Fixture {
    pub store: RedisState,
    pub prefix: String,
    pub admin: redis::aio::MultiplexedConnection,
}

impl Fixture {
    /// `None` (after a loud notice) when Redis is not running here and `CI` is not set; in CI a
    /// missing Redis fails the test.
    pub async fn new() -> Option<Fixture> {
        let prefix = format!("rctest-{:016x}", rand::random::<u64>());
        let client = redis::Client::open(URL).unwrap();
        let admin = match client.get_multiplexed_async_connection().await {
            Ok(admin) => admin,
            Err(e) => {
                if std::env::var_os("CI").is_some() {
                    panic!("Redis is not reachable at {URL} ({e}); {START_HINT}");
                }
                // Written to the real stderr: the test harness captures eprintln!.
                let _ = writeln!(
                    std::io::stderr(),
                    "\n*** SKIPPED: Redis is not reachable at {URL} ({e}).\n*** {START_HINT}\n"
                );
                return None;
            }
        };
        let store = RedisState::connect(URL, &prefix).await.unwrap();
        Some(Fixture {
            store,
            prefix,
            admin,
        })
    }

    /// Every key of this test's prefix.
    pub async fn keys(&self) -> Vec<String> {
        let mut admin = self.admin.clone();
        let mut keys = Vec::new();
        let mut cursor: u64 = 0;
        loop {
            let (next, batch): (u64, Vec<String>) = redis::cmd("SCAN")
                .arg(cursor)
                .arg("MATCH")
                .arg(format!("{}:*", self.prefix))
                .arg("COUNT")
                .arg(1000)
                .query_async(&mut admin)
                .await
                .unwrap();
            keys.extend(batch);
            if next == 0 {
                return keys;
            }
            cursor = next;
        }
    }
}

impl Drop for Fixture {
    fn drop(&mut self) {
        // Drop cannot await: clean up over a short blocking connection.
        let Ok(client) = redis::Client::open(URL) else {
            return;
        };
        let Ok(mut con) = client.get_connection() else {
            return;
        };
        let mut cursor: u64 = 0;
        loop {
            let Ok((next, keys)): redis::RedisResult<(u64, Vec<String>)> = redis::cmd("SCAN")
                .arg(cursor)
                .arg("MATCH")
                .arg(format!("{}:*", self.prefix))
                .arg("COUNT")
                .arg(1000)
                .query(&mut con)
            else {
                return;
            };
            if !keys.is_empty() {
                let _: redis::RedisResult<i64> = redis::cmd("DEL").arg(&keys).query(&mut con);
            }
            if next == 0 {
                return;
            }
            cursor = next;
        }
    }
}
