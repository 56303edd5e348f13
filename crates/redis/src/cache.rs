//! `RedisCache`: the `ResultCache` of the distributed wiring. One string per address,
//! `P:{r:ADDRESS}:v`, holding the entry in the encoding every store shares
//! (`rollcall_core::ports::encode_entry`) with an `EX` of `keep_until - now`, so Redis forgets
//! lapsed entries by itself. A batch is one pipeline of single-key commands (one round trip;
//! each key has its own hash tag, so no command spans slots).
//!
//! Owns the calls and their retries; the key layout is `keys.rs`, freshness the caller's.

use std::time::Duration;

use async_trait::async_trait;
use redis::aio::ConnectionManager;
use rollcall_core::ports::{CacheEntry, CacheError, ResultCache, decode_entry, encode_entry};

use crate::error::is_transient;
use crate::keys::Keys;

/// Commands per pipeline: bounded so one reply stays a few hundred KB.
const PIPELINE: usize = 1000;
const ATTEMPTS: u32 = 3;
const FIRST_BACKOFF: Duration = Duration::from_millis(200);

/// Remembered verdicts in Redis. Cloning is cheap and shares the connection.
#[derive(Clone)]
pub struct RedisCache {
    con: ConnectionManager,
    keys: Keys,
}

impl std::fmt::Debug for RedisCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisCache")
            .field("prefix", &self.keys.prefix())
            .finish_non_exhaustive()
    }
}

impl RedisCache {
    pub(crate) fn new(con: ConnectionManager, keys: Keys) -> RedisCache {
        RedisCache { con, keys }
    }

    /// The Redis key of the entry with cache key `key` (for tests and `MEMORY USAGE`).
    pub fn redis_key(&self, key: &str) -> String {
        self.keys.cached_verdict(key)
    }

    /// Runs `pipe`, retrying transient failures (every command in it is idempotent).
    async fn run<T: redis::FromRedisValue>(
        &self,
        op: &'static str,
        pipe: &redis::Pipeline,
    ) -> Result<T, CacheError> {
        let mut backoff = FIRST_BACKOFF;
        let mut attempt = 1;
        loop {
            let mut con = self.con.clone();
            let err = match pipe.query_async::<T>(&mut con).await {
                Ok(value) => return Ok(value),
                Err(err) => err,
            };
            if !is_transient(&err) {
                return Err(CacheError::Data(format!("{op}: {err}")));
            }
            if attempt >= ATTEMPTS {
                return Err(CacheError::Transport(format!(
                    "{op} failed after {attempt} tries: {err}"
                )));
            }
            tracing::warn!(op, attempt, error = %err, "redis cache call failed; retrying");
            tokio::time::sleep(backoff).await;
            backoff *= 2;
            attempt += 1;
        }
    }
}

#[async_trait]
impl ResultCache for RedisCache {
    async fn get_many(
        &self,
        keys: &[String],
        now: u64,
    ) -> Result<Vec<Option<CacheEntry>>, CacheError> {
        let mut out = Vec::with_capacity(keys.len());
        for chunk in keys.chunks(PIPELINE) {
            let mut pipe = redis::pipe();
            for key in chunk {
                pipe.get(self.keys.cached_verdict(key));
            }
            let values: Vec<Option<String>> = self.run("cache_get", &pipe).await?;
            for (key, value) in chunk.iter().zip(values) {
                let entry = match value {
                    Some(value) => Some(decode_entry(key, &value)?),
                    None => None,
                };
                // Redis expires by its own clock; the caller's decides too, as in every store.
                out.push(entry.filter(|e| e.keep_until > now));
            }
        }
        Ok(out)
    }

    async fn put_many(&self, entries: &[CacheEntry], now: u64) -> Result<(), CacheError> {
        for chunk in entries.chunks(PIPELINE) {
            let mut pipe = redis::pipe();
            for entry in chunk {
                let key = self.keys.cached_verdict(&entry.key);
                match entry.keep_until.checked_sub(now).filter(|ttl| *ttl > 0) {
                    Some(ttl) => pipe.set_ex(key, encode_entry(entry), ttl).ignore(),
                    // Already lapsed: whatever was kept under the key is older still.
                    None => pipe.del(key).ignore(),
                };
            }
            self.run::<()>("cache_put", &pipe).await?;
        }
        Ok(())
    }
}
