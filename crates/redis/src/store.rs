//! `RedisState`: the connection to Redis, the retry loop every operation goes through, and the
//! `StateStore` impl that turns replies into domain values. It owns neither the scripts
//! (`scripts.rs`) nor the key layout (`keys.rs`).
//!
//! Retries: a dropped connection, a timeout or a server that is loading or failing over is
//! retried with backoff (5 tries, about 3 s of waiting); the `ConnectionManager` reconnects in
//! the background meanwhile. A retried call must not do its work twice, so the calls are
//! idempotent: results by item id, leases by their token, greylist entries by their id, and
//! greylist takes and total increments by a request id. The only exceptions are `rate_take` and
//! `circuit_report`, where a repeated step errs on the polite side (one more cell taken, one
//! more failure counted).

use std::collections::HashMap;
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{ErrorKind, FromRedisValue, ServerErrorKind, Value};
use rollcall_core::ports::{
    BackoffPolicy, CampaignRecord, CircuitDecision, GreylistEntry, ItemResult, Lease, Progress,
    RateDecision, RateLimit, StateStore, StoreError, WebhookState, status_index,
};

use rollcall_core::{CampaignId, ItemId};

use crate::calls::{self, Call, RECORD_CHUNK, Recorded, STATUS_FIELDS};
use crate::error::{Error, is_transient};
use crate::keys::{Keys, validate_prefix};

/// The key prefix production uses.
pub const DEFAULT_PREFIX: &str = "rc";

const CONNECTION_TIMEOUT: Duration = Duration::from_secs(2);
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(2);
/// Reconnection attempts the manager makes before it fails the waiting commands.
const RECONNECT_RETRIES: usize = 3;
/// Tries per operation, and the wait before the second (doubling after): 0.2 + 0.4 + 0.8 +
/// 1.6 s, about 3 s in all.
const ATTEMPTS: u32 = 5;
const FIRST_BACKOFF: Duration = Duration::from_millis(200);

/// The fleet's shared state in Redis. Cloning is cheap and shares the connection.
#[derive(Clone)]
pub struct RedisState {
    con: ConnectionManager,
    keys: Keys,
}

impl std::fmt::Debug for RedisState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisState")
            .field("prefix", &self.keys.prefix())
            .finish_non_exhaustive()
    }
}

impl RedisState {
    /// Connects to `url` (`redis://HOST:PORT[/DB]`); every key starts with `prefix`
    /// (`DEFAULT_PREFIX` in production; tests use their own).
    pub async fn connect(url: &str, prefix: &str) -> Result<RedisState, Error> {
        if let Some(why) = validate_prefix(prefix) {
            return Err(Error::InvalidPrefix {
                prefix: prefix
                    .chars()
                    .filter(|c| !c.is_control())
                    .take(80)
                    .collect(),
                why,
            });
        }
        let client = redis::Client::open(url).map_err(Error::InvalidUrl)?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(CONNECTION_TIMEOUT))
            .set_response_timeout(Some(RESPONSE_TIMEOUT))
            .set_number_of_retries(RECONNECT_RETRIES);
        let con = ConnectionManager::new_with_config(client, config)
            .await
            .map_err(Error::Connect)?;
        Ok(RedisState {
            con,
            keys: Keys::new(prefix),
        })
    }

    /// The prefix every key of this store starts with.
    pub fn prefix(&self) -> &str {
        self.keys.prefix()
    }

    /// The result cache on this store's connection and prefix (`P:{r:ADDRESS}:v` keys).
    pub fn result_cache(&self) -> crate::RedisCache {
        crate::RedisCache::new(self.con.clone(), self.keys.clone())
    }

    /// The server's id of this store's current connection (`CLIENT ID`), as `CLIENT LIST`
    /// shows it. It changes when the connection is re-established.
    pub async fn connection_id(&self) -> Result<i64, Error> {
        let mut con = self.con.clone();
        redis::cmd("CLIENT")
            .arg("ID")
            .query_async(&mut con)
            .await
            .map_err(Error::Command)
    }

    /// Sends `call`, retrying transient failures, and returns the raw reply.
    async fn send(&self, call: &Call) -> Result<Value, StoreError> {
        let mut backoff = FIRST_BACKOFF;
        let mut attempt = 1;
        loop {
            let mut con = self.con.clone();
            let mut result = call.cmd.query_async::<Value>(&mut con).await;
            if let (Err(e), Some(script)) = (&result, call.script)
                && e.kind() == ErrorKind::Server(ServerErrorKind::NoScript)
            {
                // A restarted or failed-over server has an empty script cache.
                result = match script.prepare_invoke().load_async(&mut con).await {
                    Ok(_) => call.cmd.query_async::<Value>(&mut con).await,
                    Err(e) => Err(e),
                };
            }
            let err = match result {
                Ok(value) => return Ok(value),
                Err(err) => err,
            };
            if !is_transient(&err) {
                return Err(StoreError::Data(format!("{}: {err}", call.op)));
            }
            if attempt >= ATTEMPTS {
                return Err(StoreError::Transport(format!(
                    "{} failed after {attempt} tries: {err}",
                    call.op
                )));
            }
            tracing::warn!(op = call.op, keys = ?call.keys, attempt, error = %err, "redis call failed; retrying");
            tokio::time::sleep(backoff).await;
            backoff *= 2;
            attempt += 1;
        }
    }

    /// Sends `call` and converts its reply.
    async fn query<T: FromRedisValue>(&self, call: &Call) -> Result<T, StoreError> {
        let value = self.send(call).await?;
        T::from_redis_value(value)
            .map_err(|e| StoreError::Data(format!("{}: unexpected reply: {e}", call.op)))
    }
}

fn encode<T: serde::Serialize>(what: &str, value: &T) -> Result<String, StoreError> {
    serde_json::to_string(value).map_err(|e| StoreError::Data(format!("encoding {what}: {e}")))
}

fn duration_ms(ms: i64) -> Duration {
    Duration::from_millis(u64::try_from(ms).unwrap_or(0))
}

/// The sequence number N of a stream id `0-N`.
fn stream_seq(id: &str) -> Option<u64> {
    id.strip_prefix("0-")?.parse().ok()
}

#[async_trait]
impl StateStore for RedisState {
    async fn rate_take(
        &self,
        key: &str,
        limit: RateLimit,
        cells: u32,
    ) -> Result<RateDecision, StoreError> {
        limit.check_take(cells)?;
        let wait_us: i64 = self
            .query(&calls::rate_take(&self.keys, key, limit, cells))
            .await?;
        Ok(if wait_us <= 0 {
            RateDecision::Granted
        } else {
            RateDecision::Wait(Duration::from_micros(wait_us.unsigned_abs()))
        })
    }

    async fn lease_acquire(
        &self,
        site: &str,
        holder: &str,
        cap: u32,
        ttl: Duration,
    ) -> Result<Option<Lease>, StoreError> {
        let token = format!("{holder}:{}", calls::random_id());
        let taken: i64 = self
            .query(&calls::lease_acquire(&self.keys, site, &token, cap, ttl))
            .await?;
        Ok((taken == 1).then(|| Lease {
            site: site.to_string(),
            token,
        }))
    }

    async fn lease_renew(&self, lease: &Lease, ttl: Duration) -> Result<bool, StoreError> {
        let renewed: i64 = self
            .query(&calls::lease_renew(
                &self.keys,
                &lease.site,
                &lease.token,
                ttl,
            ))
            .await?;
        Ok(renewed == 1)
    }

    async fn lease_release(&self, lease: &Lease) -> Result<(), StoreError> {
        self.send(&calls::lease_release(&self.keys, &lease.site, &lease.token))
            .await
            .map(drop)
    }

    async fn lease_count(&self, site: &str) -> Result<u32, StoreError> {
        let live: u64 = self.query(&calls::lease_count(&self.keys, site)).await?;
        Ok(u32::try_from(live).unwrap_or(u32::MAX))
    }

    async fn circuit_check(&self, host: &str) -> Result<CircuitDecision, StoreError> {
        let reply: Vec<i64> = self.query(&calls::circuit_check(&self.keys, host)).await?;
        match reply.as_slice() {
            [0] => Ok(CircuitDecision::Closed),
            [1] => Ok(CircuitDecision::HalfOpenProbe),
            [2, ms] => Ok(CircuitDecision::Open {
                retry_after: duration_ms(*ms),
            }),
            other => Err(StoreError::Data(format!(
                "circuit_check: unexpected reply {other:?}"
            ))),
        }
    }

    async fn circuit_report(
        &self,
        host: &str,
        success: bool,
        policy: &BackoffPolicy,
    ) -> Result<(), StoreError> {
        self.send(&calls::circuit_report(&self.keys, host, success, policy))
            .await
            .map(drop)
    }

    async fn catch_all_get(&self, domain: &str) -> Result<Option<bool>, StoreError> {
        let value: Option<String> = self
            .query(&calls::catch_all_get(&self.keys, domain))
            .await?;
        match value.as_deref() {
            None => Ok(None),
            Some("1") => Ok(Some(true)),
            Some("0") => Ok(Some(false)),
            Some(other) => Err(StoreError::Data(format!(
                "catch_all_get: unexpected value {:?}",
                other.chars().take(40).collect::<String>()
            ))),
        }
    }

    async fn catch_all_put(
        &self,
        domain: &str,
        catch_all: bool,
        ttl: Duration,
    ) -> Result<(), StoreError> {
        self.send(&calls::catch_all_put(&self.keys, domain, catch_all, ttl))
            .await
            .map(drop)
    }

    async fn greylist_schedule(
        &self,
        entry: &GreylistEntry,
        due: SystemTime,
    ) -> Result<(), StoreError> {
        let json = encode("greylist entry", entry)?;
        // The id leads with the scheduling time so entries due in the same millisecond come out
        // in the order they were scheduled, as in `MemoryState`.
        let scheduled = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        let id = format!("{scheduled:039}-{}", calls::random_id());
        self.send(&calls::greylist_schedule(&self.keys, &id, due, &json))
            .await
            .map(drop)
    }

    async fn greylist_take_due(
        &self,
        now: SystemTime,
        max: usize,
    ) -> Result<Vec<GreylistEntry>, StoreError> {
        if max == 0 {
            return Ok(Vec::new());
        }
        let request = calls::random_id();
        let taken: Vec<String> = self
            .query(&calls::greylist_take_due(&self.keys, &request, now, max))
            .await?;
        let mut entries = Vec::with_capacity(taken.len() / 2);
        let mut undecodable = Vec::new();
        for pair in taken.chunks(2) {
            let [id, json] = pair else { break };
            // One that does not decode is reported and dropped rather than failing the good
            // ones with it.
            match serde_json::from_str::<GreylistEntry>(json) {
                Ok(mut entry) => {
                    entry.id = Some(id.clone());
                    entries.push(entry);
                }
                Err(e) => {
                    tracing::error!(error = %e, "dropping a greylist entry that does not decode");
                    undecodable.push(id.as_str());
                }
            }
        }
        if !undecodable.is_empty() {
            self.send(&calls::greylist_done(&self.keys, &undecodable))
                .await?;
        }
        Ok(entries)
    }

    async fn greylist_done(&self, entries: &[GreylistEntry]) -> Result<(), StoreError> {
        let ids: Vec<&str> = entries.iter().filter_map(|e| e.id.as_deref()).collect();
        if ids.is_empty() {
            return Ok(());
        }
        self.send(&calls::greylist_done(&self.keys, &ids))
            .await
            .map(drop)
    }

    async fn greylist_pending(&self) -> Result<u64, StoreError> {
        self.query(&calls::greylist_pending(&self.keys)).await
    }

    async fn campaign_add_total(&self, campaign: &CampaignId, n: u64) -> Result<(), StoreError> {
        if i64::try_from(n).is_err() {
            return Err(StoreError::Data(format!("campaign total {n} is too large")));
        }
        let request = calls::random_id();
        self.send(&calls::campaign_add_total(
            &self.keys, campaign, &request, n,
        ))
        .await
        .map(drop)
    }

    async fn record_results(
        &self,
        campaign: &CampaignId,
        results: Vec<ItemResult>,
    ) -> Result<usize, StoreError> {
        let mut new = 0;
        for chunk in results.chunks(RECORD_CHUNK) {
            let jsons = chunk
                .iter()
                .map(|r| encode("item result", r))
                .collect::<Result<Vec<_>, _>>()?;
            let recorded: Vec<Recorded<'_>> = chunk
                .iter()
                .zip(&jsons)
                .map(|(r, json)| Recorded {
                    item: r.item.get(),
                    status_field: STATUS_FIELDS[status_index(r.verdict.status())],
                    json,
                })
                .collect();
            let n: u64 = self
                .query(&calls::record_results(
                    &self.keys,
                    campaign,
                    rand::random(),
                    &recorded,
                ))
                .await?;
            new += usize::try_from(n).unwrap_or(usize::MAX);
        }
        Ok(new)
    }

    async fn results_since(
        &self,
        campaign: &CampaignId,
        cursor: u64,
        max: usize,
    ) -> Result<(Vec<ItemResult>, u64), StoreError> {
        if max == 0 {
            return Ok((Vec::new(), cursor));
        }
        let entries: Vec<(String, Vec<String>)> = self
            .query(&calls::results_since(&self.keys, campaign, cursor, max))
            .await?;
        let mut results = Vec::with_capacity(entries.len());
        let mut next = cursor;
        for (id, fields) in entries {
            let seq = stream_seq(&id).ok_or_else(|| {
                StoreError::Data(format!("results_since: unexpected stream id {id:?}"))
            })?;
            let json = fields
                .chunks(2)
                .find(|pair| pair.first().map(String::as_str) == Some("r"))
                .and_then(|pair| pair.get(1))
                .ok_or_else(|| {
                    StoreError::Data(format!("results_since: entry {id} has no result"))
                })?;
            let result = serde_json::from_str(json).map_err(|e| {
                StoreError::Data(format!("results_since: entry {id} does not decode: {e}"))
            })?;
            results.push(result);
            next = next.max(seq);
        }
        Ok((results, next))
    }

    async fn results_trim(&self, campaign: &CampaignId, cursor: u64) -> Result<(), StoreError> {
        self.send(&calls::results_trim(&self.keys, campaign, cursor))
            .await
            .map(drop)
    }

    async fn progress(&self, campaign: &CampaignId) -> Result<Progress, StoreError> {
        let counters: HashMap<String, String> =
            self.query(&calls::progress(&self.keys, campaign)).await?;
        let read = |field: &str| -> Result<u64, StoreError> {
            counters.get(field).map_or(Ok(0), |v| {
                v.parse().map_err(|_| {
                    StoreError::Data(format!("progress: counter {field} is not a number"))
                })
            })
        };
        let mut by_status = [0; 4];
        for (count, field) in by_status.iter_mut().zip(STATUS_FIELDS) {
            *count = read(field)?;
        }
        Ok(Progress {
            total: read("total")?,
            done: read("done")?,
            by_status,
        })
    }

    async fn results_recorded(
        &self,
        campaign: &CampaignId,
        items: &[ItemId],
    ) -> Result<Vec<bool>, StoreError> {
        let mut recorded = Vec::with_capacity(items.len());
        for chunk in items.chunks(RECORD_CHUNK) {
            let ids: Vec<u64> = chunk.iter().map(|item| item.get()).collect();
            let marks: Vec<Option<String>> = self
                .query(&calls::results_recorded(&self.keys, campaign, &ids))
                .await?;
            if marks.len() != ids.len() {
                return Err(StoreError::Data(format!(
                    "results_recorded: {} answers for {} items",
                    marks.len(),
                    ids.len()
                )));
            }
            recorded.extend(marks.iter().map(Option::is_some));
        }
        Ok(recorded)
    }

    async fn campaign_save(&self, record: &CampaignRecord) -> Result<(), StoreError> {
        let json = encode("campaign record", record)?;
        // The record first: a listed id always has a record, except for a moment while it is
        // being deleted (and `campaign_list` skips such ids).
        self.send(&calls::campaign_put_meta(&self.keys, &record.id, &json))
            .await?;
        self.send(&calls::campaign_index_add(
            &self.keys,
            &record.id,
            record.created_ms,
        ))
        .await
        .map(drop)
    }

    async fn campaign_list(&self) -> Result<Vec<CampaignRecord>, StoreError> {
        let ids: Vec<String> = self.query(&calls::campaign_index(&self.keys)).await?;
        let mut records = Vec::with_capacity(ids.len());
        for id in ids {
            let Ok(campaign) = CampaignId::new(id.as_str()) else {
                tracing::error!(id = %id.escape_debug(), "skipping a listed campaign with an invalid id");
                continue;
            };
            let json: Option<String> = self
                .query(&calls::campaign_get_meta(&self.keys, &campaign))
                .await?;
            let Some(json) = json else { continue };
            match serde_json::from_str::<CampaignRecord>(&json) {
                Ok(record) => records.push(record),
                Err(e) => {
                    tracing::error!(campaign = %campaign, error = %e, "skipping a campaign record that does not decode")
                }
            }
        }
        // The index orders by creation time; equal times by id, as `MemoryState` does.
        records.sort_by(|a, b| (a.created_ms, &a.id).cmp(&(b.created_ms, &b.id)));
        Ok(records)
    }

    async fn campaign_append_input(
        &self,
        campaign: &CampaignId,
        first: u64,
        rows: &[String],
    ) -> Result<(), StoreError> {
        let stored: i64 = self
            .query(&calls::campaign_append_input(
                &self.keys, campaign, first, rows,
            ))
            .await?;
        if stored < 0 {
            return Err(StoreError::Data(format!(
                "campaign_append_input: rows from {first} would leave a gap"
            )));
        }
        Ok(())
    }

    async fn campaign_input(
        &self,
        campaign: &CampaignId,
        from: u64,
        max: usize,
    ) -> Result<Vec<String>, StoreError> {
        if max == 0 {
            return Ok(Vec::new());
        }
        self.query(&calls::campaign_input(&self.keys, campaign, from, max))
            .await
    }

    async fn webhook_save(
        &self,
        campaign: &CampaignId,
        state: &WebhookState,
    ) -> Result<(), StoreError> {
        let json = encode("webhook state", state)?;
        self.send(&calls::webhook_put(&self.keys, campaign, &json))
            .await
            .map(drop)
    }

    async fn webhook_load(
        &self,
        campaign: &CampaignId,
    ) -> Result<Option<WebhookState>, StoreError> {
        let json: Option<String> = self
            .query(&calls::webhook_get(&self.keys, campaign))
            .await?;
        json.map(|json| {
            serde_json::from_str(&json)
                .map_err(|e| StoreError::Data(format!("webhook state of {campaign}: {e}")))
        })
        .transpose()
    }

    async fn campaign_delete(&self, campaign: &CampaignId) -> Result<(), StoreError> {
        self.send(&calls::campaign_index_remove(&self.keys, campaign))
            .await?;
        self.send(&calls::campaign_delete_keys(&self.keys, campaign))
            .await
            .map(drop)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stream_ids_give_their_sequence() {
        assert_eq!(stream_seq("0-17"), Some(17));
        assert_eq!(stream_seq("1700000000000-0"), None);
        assert_eq!(stream_seq("0-x"), None);
    }

    #[tokio::test]
    async fn bad_prefixes_and_urls_are_refused_before_connecting() {
        let err = RedisState::connect("redis://127.0.0.1:6379", "a{b")
            .await
            .unwrap_err();
        assert!(matches!(err, Error::InvalidPrefix { .. }), "{err}");
        let err = RedisState::connect("nonsense://x", "rc").await.unwrap_err();
        assert!(matches!(err, Error::InvalidUrl(_)), "{err}");
        assert!(!err.is_transient());
    }
}

/// A request sent twice (its reply lost the first time) must not do its work twice. These talk
/// to the real Redis like the integration tests, and skip the same way when it is not running.
#[cfg(test)]
mod retry_tests {
    use super::*;
    use rollcall_core::ports::{Batch, GreylistEntry};

    async fn store() -> Option<RedisState> {
        let prefix = format!("rctest-{:016x}", rand::random::<u64>());
        match RedisState::connect("redis://127.0.0.1:6379", &prefix).await {
            Ok(store) => Some(store),
            Err(e) if std::env::var_os("CI").is_none() => {
                // Written to the real stderr: the test harness captures eprintln!.
                use std::io::Write as _;
                let _ = writeln!(
                    std::io::stderr(),
                    "\n*** SKIPPED: Redis is not reachable at 127.0.0.1:6379 ({e})\n"
                );
                None
            }
            Err(e) => panic!(
                "Redis is not reachable at 127.0.0.1:6379 ({e}); start it with: redis-server \
                 --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save \"\" --appendonly no"
            ),
        }
    }

    /// Deletes every key of the store's prefix.
    async fn forget(store: &RedisState) {
        let mut con = store.con.clone();
        let mut cursor: u64 = 0;
        loop {
            let (next, keys): (u64, Vec<String>) = redis::cmd("SCAN")
                .arg(cursor)
                .arg("MATCH")
                .arg(format!("{}:*", store.prefix()))
                .query_async(&mut con)
                .await
                .unwrap();
            if !keys.is_empty() {
                let _: i64 = redis::cmd("DEL")
                    .arg(&keys)
                    .query_async(&mut con)
                    .await
                    .unwrap();
            }
            if next == 0 {
                return;
            }
            cursor = next;
        }
    }

    #[tokio::test]
    async fn a_repeated_take_gets_the_same_entries() {
        let Some(s) = store().await else {
            return;
        };
        let campaign = CampaignId::random();
        let entry = GreylistEntry {
            batch: Batch {
                campaign,
                site: "s".into(),
                domain: "d.test".into(),
                mx: Vec::new(),
                items: Vec::new(),
                max_wait_ms: None,
                egress: None,
                lane: 0,
            },
            id: None,
        };
        let now = SystemTime::now();
        s.greylist_schedule(&entry, now - Duration::from_secs(1))
            .await
            .unwrap();
        let call = calls::greylist_take_due(&s.keys, "req-1", now, 10);
        let first: Vec<String> = s.query(&call).await.unwrap();
        let again: Vec<String> = s.query(&call).await.unwrap();
        assert_eq!(first.len(), 2, "one entry: its id and its JSON");
        assert_eq!(first, again, "the retry gets the remembered answer");
        let other = calls::greylist_take_due(&s.keys, "req-2", now, 10);
        assert!(s.query::<Vec<String>>(&other).await.unwrap().is_empty());
        forget(&s).await;
    }

    #[tokio::test]
    async fn a_repeated_total_is_added_once() {
        let Some(s) = store().await else {
            return;
        };
        let c = CampaignId::random();
        let call = calls::campaign_add_total(&s.keys, &c, "req-1", 5);
        s.send(&call).await.unwrap();
        s.send(&call).await.unwrap();
        s.campaign_add_total(&c, 2).await.unwrap();
        assert_eq!(s.progress(&c).await.unwrap().total, 7);
        forget(&s).await;
    }

    #[tokio::test]
    async fn a_repeated_lease_request_holds_one_slot() {
        let Some(s) = store().await else {
            return;
        };
        let call = calls::lease_acquire(&s.keys, "site", "w1:t", 2, Duration::from_secs(30));
        assert_eq!(s.query::<i64>(&call).await.unwrap(), 1);
        assert_eq!(s.query::<i64>(&call).await.unwrap(), 1);
        let other = s
            .lease_acquire("site", "w2", 2, Duration::from_secs(30))
            .await
            .unwrap();
        assert!(other.is_some(), "the retry did not take a second slot");
        forget(&s).await;
    }
}
