//! The Redis call behind each store operation, built without I/O: the command (a script's
//! EVALSHA or a plain command), the script to load when the server does not know it yet, and
//! the keys it touches. Owns argument encoding (milliseconds, sequence ids, status counters);
//! it does not send anything or read replies (that is `store.rs`).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use redis::{Cmd, Script, ToRedisArgs};
use rollcall_core::CampaignId;
use rollcall_core::ports::{BackoffPolicy, GREYLIST_LEASE, RateLimit};

use crate::keys::Keys;
use crate::scripts;

/// How long a granted half-open probe may stay unanswered before the circuit lets another
/// through (a worker that died mid-probe must not keep the host closed for ever).
pub(crate) const PROBE_TIMEOUT: Duration = Duration::from_secs(300);
/// How long failure counts of a host are kept after its circuit would have closed.
pub(crate) const CIRCUIT_MEMORY: Duration = Duration::from_secs(24 * 3600);
/// How long a request's marker (or remembered answer) is kept for its retries.
pub(crate) const REQUEST_MEMORY: Duration = Duration::from_secs(600);
/// Results per `record_results` script run: bounds how long one script blocks the server.
pub(crate) const RECORD_CHUNK: usize = 500;
/// Most greylist entries one `greylist_take_due` hands out.
pub(crate) const TAKE_DUE_MAX: usize = 1000;

/// One Redis call, ready to send (and to send again on a transient failure).
#[derive(Debug, Clone)]
pub(crate) struct Call {
    pub(crate) op: &'static str,
    pub(crate) cmd: Cmd,
    /// The script behind an EVALSHA, loaded when the server answers NOSCRIPT.
    pub(crate) script: Option<&'static Script>,
    pub(crate) keys: Vec<String>,
}

impl Call {
    fn script(op: &'static str, script: &'static Script, keys: Vec<String>) -> Call {
        let mut cmd = redis::cmd("EVALSHA");
        cmd.arg(script.get_hash()).arg(keys.len()).arg(&keys);
        Call {
            op,
            cmd,
            script: Some(script),
            keys,
        }
    }

    fn command(op: &'static str, name: &str, key: String) -> Call {
        let mut cmd = redis::cmd(name);
        cmd.arg(&key);
        Call {
            op,
            cmd,
            script: None,
            keys: vec![key],
        }
    }

    fn arg<T: ToRedisArgs>(mut self, arg: T) -> Call {
        self.cmd.arg(arg);
        self
    }
}

/// Milliseconds, saturating.
pub(crate) fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// A TTL in milliseconds: at least 1 (Redis refuses 0) and at most what Redis accepts.
fn ttl_ms(d: Duration) -> u64 {
    millis(d).clamp(1, i64::MAX as u64 / 2)
}

/// Milliseconds since the epoch (0 for a time before it).
pub(crate) fn epoch_ms(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map(millis).unwrap_or(0)
}

/// A fresh random id for a request or a token suffix.
pub(crate) fn random_id() -> String {
    format!("{:032x}", rand::random::<u128>())
}

/// The counter field of a status in the progress hash, by `status_index`.
pub(crate) const STATUS_FIELDS: [&str; 4] = ["deliverable", "undeliverable", "risky", "unknown"];

pub(crate) fn rate_take(keys: &Keys, key: &str, limit: RateLimit, cells: u32) -> Call {
    let interval_us = u64::try_from(limit.interval().as_micros())
        .unwrap_or(u64::MAX)
        .max(1);
    // The caller checked `cells` against the burst (`RateLimit::check_take`).
    Call::script("rate_take", &scripts::RATE_TAKE, vec![keys.rate(key)])
        .arg(interval_us)
        .arg(limit.max_take())
        .arg(cells)
}

pub(crate) fn lease_acquire(keys: &Keys, site: &str, token: &str, cap: u32, ttl: Duration) -> Call {
    Call::script(
        "lease_acquire",
        &scripts::LEASE_ACQUIRE,
        vec![keys.leases(site)],
    )
    .arg(token)
    .arg(cap)
    .arg(ttl_ms(ttl))
}

pub(crate) fn lease_renew(keys: &Keys, site: &str, token: &str, ttl: Duration) -> Call {
    Call::script(
        "lease_renew",
        &scripts::LEASE_RENEW,
        vec![keys.leases(site)],
    )
    .arg(token)
    .arg(ttl_ms(ttl))
}

pub(crate) fn lease_release(keys: &Keys, site: &str, token: &str) -> Call {
    Call::command("lease_release", "ZREM", keys.leases(site)).arg(token)
}

pub(crate) fn circuit_check(keys: &Keys, host: &str) -> Call {
    Call::script(
        "circuit_check",
        &scripts::CIRCUIT_CHECK,
        vec![keys.circuit(host)],
    )
    .arg(millis(PROBE_TIMEOUT))
}

pub(crate) fn circuit_report(
    keys: &Keys,
    host: &str,
    success: bool,
    policy: &BackoffPolicy,
) -> Call {
    Call::script(
        "circuit_report",
        &scripts::CIRCUIT_REPORT,
        vec![keys.circuit(host)],
    )
    .arg(if success { "1" } else { "0" })
    .arg(policy.failures_to_open.max(1))
    .arg(millis(policy.base))
    .arg(millis(policy.max))
    .arg(millis(CIRCUIT_MEMORY))
}

pub(crate) fn catch_all_get(keys: &Keys, domain: &str) -> Call {
    Call::command("catch_all_get", "GET", keys.catch_all(domain))
}

pub(crate) fn catch_all_put(keys: &Keys, domain: &str, catch_all: bool, ttl: Duration) -> Call {
    Call::command("catch_all_put", "SET", keys.catch_all(domain))
        .arg(if catch_all { "1" } else { "0" })
        .arg("PX")
        .arg(ttl_ms(ttl))
}

/// `id` orders entries due in the same millisecond and makes a retried request idempotent.
pub(crate) fn greylist_schedule(keys: &Keys, id: &str, due: SystemTime, json: &str) -> Call {
    Call::script(
        "greylist_schedule",
        &scripts::GREYLIST_SCHEDULE,
        vec![keys.greylist(), keys.greylist_entries()],
    )
    .arg(id)
    .arg(epoch_ms(due))
    .arg(json)
}

pub(crate) fn greylist_take_due(keys: &Keys, request: &str, now: SystemTime, max: usize) -> Call {
    Call::script(
        "greylist_take_due",
        &scripts::GREYLIST_TAKE_DUE,
        vec![
            keys.greylist(),
            keys.greylist_entries(),
            keys.greylist_taken(request),
        ],
    )
    .arg(epoch_ms(now))
    .arg(max.min(TAKE_DUE_MAX))
    .arg(millis(REQUEST_MEMORY))
    .arg(epoch_ms(now + GREYLIST_LEASE))
}

pub(crate) fn greylist_done(keys: &Keys, ids: &[&str]) -> Call {
    let mut call = Call::script(
        "greylist_done",
        &scripts::GREYLIST_DONE,
        vec![keys.greylist(), keys.greylist_entries()],
    );
    for id in ids {
        call = call.arg(*id);
    }
    call
}

pub(crate) fn greylist_pending(keys: &Keys) -> Call {
    Call::command("greylist_pending", "ZCARD", keys.greylist())
}

pub(crate) fn campaign_add_total(
    keys: &Keys,
    campaign: &CampaignId,
    request: &str,
    n: u64,
) -> Call {
    Call::script(
        "campaign_add_total",
        &scripts::CAMPAIGN_ADD_TOTAL,
        vec![
            keys.progress(campaign),
            keys.total_request(campaign, request),
        ],
    )
    .arg(n)
    .arg(millis(REQUEST_MEMORY))
}

/// One result to record: item id, status counter field, result JSON.
pub(crate) struct Recorded<'a> {
    pub(crate) item: u64,
    pub(crate) status_field: &'static str,
    pub(crate) json: &'a str,
}

/// How long a `record_results` reply is kept for a retry of the same call: far longer than the
/// store's retries take.
const RECORD_REPLY_KEEP: Duration = Duration::from_secs(300);

/// `token` names this call (random per call, the same across its retries).
pub(crate) fn record_results(
    keys: &Keys,
    campaign: &CampaignId,
    token: u64,
    results: &[Recorded<'_>],
) -> Call {
    let mut call = Call::script(
        "record_results",
        &scripts::RECORD_RESULTS,
        vec![
            keys.recorded(campaign),
            keys.progress(campaign),
            keys.results(campaign),
            keys.record_reply(campaign, token),
        ],
    );
    call.cmd.arg(millis(RECORD_REPLY_KEEP));
    for r in results {
        call.cmd.arg(r.item).arg(r.status_field).arg(r.json);
    }
    call
}

/// Stream ids are `0-N` with N the result's sequence number (see `RECORD_RESULTS`).
pub(crate) fn results_since(keys: &Keys, campaign: &CampaignId, cursor: u64, max: usize) -> Call {
    Call::command("results_since", "XRANGE", keys.results(campaign))
        .arg(format!("0-{}", cursor.saturating_add(1)))
        .arg("+")
        .arg("COUNT")
        .arg(max)
}

pub(crate) fn results_trim(keys: &Keys, campaign: &CampaignId, cursor: u64) -> Call {
    // Redis 6.2+: MINID drops every entry below the id.
    Call::command("results_trim", "XTRIM", keys.results(campaign))
        .arg("MINID")
        .arg(format!("0-{}", cursor.saturating_add(1)))
}

pub(crate) fn progress(keys: &Keys, campaign: &CampaignId) -> Call {
    Call::command("progress", "HGETALL", keys.progress(campaign))
}

pub(crate) fn lease_count(keys: &Keys, site: &str) -> Call {
    Call::script(
        "lease_count",
        &scripts::LEASE_COUNT,
        vec![keys.leases(site)],
    )
}

pub(crate) fn results_recorded(keys: &Keys, campaign: &CampaignId, items: &[u64]) -> Call {
    let mut call = Call::command("results_recorded", "HMGET", keys.recorded(campaign));
    for item in items {
        call.cmd.arg(*item);
    }
    call
}

pub(crate) fn campaign_put_meta(keys: &Keys, campaign: &CampaignId, json: &str) -> Call {
    Call::command("campaign_save", "SET", keys.meta(campaign)).arg(json)
}

pub(crate) fn campaign_index_add(keys: &Keys, campaign: &CampaignId, created_ms: u64) -> Call {
    Call::command("campaign_index_add", "ZADD", keys.campaign_index())
        .arg(created_ms)
        .arg(campaign.as_str())
}

pub(crate) fn campaign_index(keys: &Keys) -> Call {
    Call::command("campaign_index", "ZRANGE", keys.campaign_index())
        .arg(0)
        .arg(-1)
}

pub(crate) fn campaign_get_meta(keys: &Keys, campaign: &CampaignId) -> Call {
    Call::command("campaign_list", "GET", keys.meta(campaign))
}

pub(crate) fn webhook_put(keys: &Keys, campaign: &CampaignId, json: &str) -> Call {
    Call::command("webhook_save", "SET", keys.webhook(campaign)).arg(json)
}

pub(crate) fn webhook_get(keys: &Keys, campaign: &CampaignId) -> Call {
    Call::command("webhook_load", "GET", keys.webhook(campaign))
}

pub(crate) fn campaign_append_input(
    keys: &Keys,
    campaign: &CampaignId,
    first: u64,
    rows: &[String],
) -> Call {
    let mut call = Call::script(
        "campaign_append_input",
        &scripts::APPEND_INPUT,
        vec![keys.input(campaign)],
    )
    .arg(first);
    for row in rows {
        call.cmd.arg(row.as_str());
    }
    call
}

pub(crate) fn campaign_input(keys: &Keys, campaign: &CampaignId, from: u64, max: usize) -> Call {
    let last = from.saturating_add(max as u64).saturating_sub(1);
    Call::command("campaign_input", "LRANGE", keys.input(campaign))
        .arg(from)
        .arg(last)
}

pub(crate) fn campaign_index_remove(keys: &Keys, campaign: &CampaignId) -> Call {
    Call::command("campaign_index_remove", "ZREM", keys.campaign_index()).arg(campaign.as_str())
}

/// Deletes every key of a campaign but the short-lived request markers (they expire).
pub(crate) fn campaign_delete_keys(keys: &Keys, campaign: &CampaignId) -> Call {
    let all = vec![
        keys.meta(campaign),
        keys.input(campaign),
        keys.progress(campaign),
        keys.recorded(campaign),
        keys.results(campaign),
        keys.webhook(campaign),
    ];
    let mut cmd = redis::cmd("DEL");
    cmd.arg(&all);
    Call {
        op: "campaign_delete",
        cmd,
        script: None,
        keys: all,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The hash tag Redis Cluster would hash (first `{` to the next `}`).
    fn tag(key: &str) -> &str {
        let open = key.find('{').expect("every key is tagged");
        let close = key[open..].find('}').expect("tag is closed") + open;
        &key[open + 1..close]
    }

    fn all_calls(keys: &Keys) -> Vec<Call> {
        let c = CampaignId::new("camp").unwrap();
        let now = SystemTime::now();
        let limit = RateLimit {
            per_minute: 60,
            burst: 20,
        };
        let r = Recorded {
            item: 7,
            status_field: STATUS_FIELDS[0],
            json: "{}",
        };
        vec![
            rate_take(keys, "mx.test", limit, 1),
            lease_acquire(keys, "site{x}", "t", 2, Duration::from_secs(1)),
            lease_renew(keys, "site", "t", Duration::from_secs(1)),
            lease_release(keys, "site", "t"),
            circuit_check(keys, "mx.test"),
            circuit_report(keys, "mx.test", false, &BackoffPolicy::default()),
            catch_all_get(keys, "d.test"),
            catch_all_put(keys, "d.test", true, Duration::from_secs(1)),
            greylist_schedule(keys, "id", now, "{}"),
            greylist_take_due(keys, "req", now, 10),
            greylist_pending(keys),
            campaign_add_total(keys, &c, "req", 3),
            record_results(keys, &c, 1, &[r]),
            results_since(keys, &c, 0, 10),
            results_trim(keys, &c, 5),
            progress(keys, &c),
            lease_count(keys, "site"),
            results_recorded(keys, &c, &[1, 2]),
            campaign_put_meta(keys, &c, "{}"),
            campaign_get_meta(keys, &c),
            campaign_append_input(keys, &c, 0, &["a@b.test".to_string()]),
            campaign_input(keys, &c, 0, 10),
            campaign_delete_keys(keys, &c),
            campaign_index(keys),
            campaign_index_add(keys, &c, 1),
            campaign_index_remove(keys, &c),
        ]
    }

    #[test]
    fn every_call_touches_one_hash_tag() {
        let keys = Keys::new("rc");
        for call in all_calls(&keys) {
            let first = tag(&call.keys[0]).to_string();
            for key in &call.keys {
                assert!(key.starts_with("rc:{"), "{}: {key}", call.op);
                assert_eq!(tag(key), first, "{}: {:?}", call.op, call.keys);
            }
        }
    }

    #[test]
    fn tags_name_the_kind_of_state() {
        let keys = Keys::new("rc");
        let tags: Vec<(&str, String)> = all_calls(&keys)
            .iter()
            .map(|c| (c.op, tag(&c.keys[0]).to_string()))
            .collect();
        for (op, tag) in &tags {
            let want = match *op {
                "catch_all_get" | "catch_all_put" => "d:d.test",
                op if op.starts_with("greylist") => "g",
                op if op.starts_with("rate") || op.starts_with("circuit") => "h:mx.test",
                "lease_acquire" => "h:site%7Bx%7D",
                op if op.starts_with("lease") => "h:site",
                op if op.starts_with("campaign_index") => "campaigns",
                _ => "c:camp",
            };
            assert_eq!(tag, want, "{op}");
        }
    }

    #[test]
    fn script_calls_carry_their_keys_in_keys() {
        let keys = Keys::new("rc");
        for call in all_calls(&keys) {
            let packed = String::from_utf8_lossy(&call.cmd.get_packed_command()).into_owned();
            if let Some(script) = call.script {
                assert!(packed.contains("EVALSHA"), "{}", call.op);
                assert!(packed.contains(script.get_hash()), "{}", call.op);
                let n = call.keys.len().to_string();
                assert!(packed.contains(&format!("\r\n{n}\r\n")), "{}", call.op);
            }
            for key in &call.keys {
                assert!(packed.contains(key.as_str()), "{}: {key}", call.op);
            }
        }
    }

    #[test]
    fn rate_take_sends_the_cells_asked_for() {
        let keys = Keys::new("rc");
        let limit = RateLimit {
            per_minute: 60,
            burst: 3,
        };
        let packed = rate_take(&keys, "k", limit, 2).cmd.get_packed_command();
        let text = String::from_utf8_lossy(&packed);
        // interval 1 s = 1000000 µs, burst 3, 2 cells: never cut down (the store refuses a
        // take beyond the burst before it is sent).
        assert!(
            text.ends_with("$7\r\n1000000\r\n$1\r\n3\r\n$1\r\n2\r\n"),
            "{text:?}"
        );
    }

    #[test]
    fn times_before_the_epoch_are_zero() {
        assert_eq!(epoch_ms(UNIX_EPOCH - Duration::from_secs(5)), 0);
        assert_eq!(epoch_ms(UNIX_EPOCH + Duration::from_millis(1500)), 1500);
        assert_eq!(ttl_ms(Duration::ZERO), 1);
    }
}
