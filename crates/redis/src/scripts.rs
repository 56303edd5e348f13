//! The Lua scripts. Each runs atomically on one slot: every key it touches is passed in `KEYS`
//! and carries the same hash tag. Clocks that decide expiry come from the server's `TIME`, so
//! workers with skewed clocks still agree. Owns the scripts' text only; building their calls is
//! `calls.rs`.
//!
//! Numbers are written back with `string.format('%.0f', x)`: Lua 5.1 turns a number into text
//! with 14 significant digits, too few for a time in microseconds.

use std::sync::LazyLock;

use redis::Script;

/// GCRA exactly as `governor` computes it (`tau = T * (burst - 1)`): `burst` cells at once,
/// then one per interval T.
///
/// KEYS[1] the bucket's theoretical arrival time (TAT, µs). ARGV: T µs, burst, cells
/// (1..=burst). Returns 0 when granted, else the wait in µs (>= 1).
pub(crate) static RATE_TAKE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
local t = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local cells = tonumber(ARGV[3])
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000000 + tonumber(clock[2])
local tau = t * (burst - 1)
local weight = t * (cells - 1)
local tat = tonumber(redis.call('GET', KEYS[1])) or now
local earliest = tat + weight - tau
if now < earliest then
  return math.max(1, math.ceil(earliest - now))
end
local next_tat = math.max(tat, now) + t + weight
local ttl_ms = math.ceil((next_tat - now) / 1000) + 1
redis.call('SET', KEYS[1], string.format('%.0f', next_tat), 'PX', string.format('%.0f', ttl_ms))
return 0
"#,
    )
});

/// Take a session slot. KEYS[1] the site's lease set. ARGV: token, cap, ttl ms. Returns 1 when
/// taken (or already held: a retried request finds its own token), 0 when all slots are taken.
pub(crate) static LEASE_ACQUIRE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', string.format('%.0f', now))
if redis.call('ZSCORE', KEYS[1], ARGV[1]) then
  return 1
end
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[2]) then
  return 0
end
local expiry = now + tonumber(ARGV[3])
redis.call('ZADD', KEYS[1], string.format('%.0f', expiry), ARGV[1])
local last = redis.call('ZRANGE', KEYS[1], -1, -1, 'WITHSCORES')
redis.call('PEXPIREAT', KEYS[1], string.format('%.0f', tonumber(last[2]) + 1000))
return 1
"#,
    )
});

/// Extend a lease that is still held. KEYS[1] the site's lease set. ARGV: token, ttl ms.
/// Returns 1 when extended, 0 when it had lapsed or been released.
pub(crate) static LEASE_RENEW: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)
local score = tonumber(redis.call('ZSCORE', KEYS[1], ARGV[1]))
if not score or score <= now then
  return 0
end
local expiry = now + tonumber(ARGV[2])
redis.call('ZADD', KEYS[1], string.format('%.0f', expiry), ARGV[1])
local last = redis.call('ZRANGE', KEYS[1], -1, -1, 'WITHSCORES')
redis.call('PEXPIREAT', KEYS[1], string.format('%.0f', tonumber(last[2]) + 1000))
return 1
"#,
    )
});

/// May a worker talk to the host? KEYS[1] the host's circuit hash (f consecutive failures,
/// o openings, u open until ms, p probe granted at ms or 0). ARGV: how long a granted probe
/// may stay unanswered before another is let through (ms).
/// Returns {0} closed, {1} half-open probe (this caller), {2, ms} open for ms more.
pub(crate) static CIRCUIT_CHECK: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)
local until_ms = tonumber(redis.call('HGET', KEYS[1], 'u') or '0') or 0
if until_ms == 0 then
  return {0}
end
if until_ms > now then
  return {2, until_ms - now}
end
local probe = tonumber(redis.call('HGET', KEYS[1], 'p') or '0') or 0
local probe_ms = tonumber(ARGV[1])
if probe > 0 and probe + probe_ms > now then
  return {2, math.min(1000, probe + probe_ms - now)}
end
redis.call('HSET', KEYS[1], 'p', string.format('%.0f', now))
return {1}
"#,
    )
});

/// Report an outcome. KEYS[1] the host's circuit hash. ARGV: success (1/0), failures to open,
/// base ms, max ms, how long failure state is kept after the circuit would close (ms).
pub(crate) static CIRCUIT_REPORT: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
if ARGV[1] == '1' then
  redis.call('DEL', KEYS[1])
  return 0
end
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)
local failures = redis.call('HINCRBY', KEYS[1], 'f', 1)
local was_probe = (tonumber(redis.call('HGET', KEYS[1], 'p') or '0') or 0) > 0
redis.call('HSET', KEYS[1], 'p', '0')
local until_ms = tonumber(redis.call('HGET', KEYS[1], 'u') or '0') or 0
if was_probe or failures >= tonumber(ARGV[2]) then
  local openings = redis.call('HINCRBY', KEYS[1], 'o', 1)
  local open_for = math.min(tonumber(ARGV[3]) * 2 ^ (openings - 1), tonumber(ARGV[4]))
  until_ms = now + open_for
  redis.call('HSET', KEYS[1], 'u', string.format('%.0f', until_ms))
end
local keep = math.max(until_ms - now, 0) + tonumber(ARGV[5])
redis.call('PEXPIRE', KEYS[1], string.format('%.0f', keep))
return 1
"#,
    )
});

/// Schedule a greylist retry. KEYS[1] schedule, KEYS[2] entries. ARGV: entry id, due ms, JSON.
/// The id comes from the caller, so a retried request rewrites the same entry.
pub(crate) static GREYLIST_SCHEDULE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
redis.call('HSET', KEYS[2], ARGV[1], ARGV[3])
redis.call('ZADD', KEYS[1], ARGV[2], ARGV[1])
return 1
"#,
    )
});

/// Hand out due entries. KEYS[1] schedule, KEYS[2] entries, KEYS[3] this request's remembered
/// answer. ARGV: now ms, max, how long the answer is remembered (ms), the lease's end (ms).
/// Returns id, JSON, id, JSON... in due order; each entry handed out stays in the schedule, due
/// again at the lease's end, until `GREYLIST_DONE` forgets it. A retried request (same KEYS[3])
/// gets the same answer instead of nothing.
pub(crate) static GREYLIST_TAKE_DUE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
if redis.call('EXISTS', KEYS[3]) == 1 then
  return redis.call('LRANGE', KEYS[3], 1, -1)
end
local ids = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[2]))
local out = {}
for _, id in ipairs(ids) do
  local json = redis.call('HGET', KEYS[2], id)
  if json then
    redis.call('ZADD', KEYS[1], ARGV[4], id)
    out[#out + 1] = id
    out[#out + 1] = json
  else
    redis.call('ZREM', KEYS[1], id)
  end
end
-- The first element marks the answer as present even when it is empty.
redis.call('RPUSH', KEYS[3], '')
for _, v in ipairs(out) do redis.call('RPUSH', KEYS[3], v) end
redis.call('PEXPIRE', KEYS[3], ARGV[3])
return out
"#,
    )
});

/// Forget handed-out greylist entries. KEYS[1] schedule, KEYS[2] entries. ARGV: their ids.
pub(crate) static GREYLIST_DONE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
for _, id in ipairs(ARGV) do
  redis.call('ZREM', KEYS[1], id)
  redis.call('HDEL', KEYS[2], id)
end
return #ARGV
"#,
    )
});

/// Raise a campaign's total once per request. KEYS[1] progress hash, KEYS[2] request marker.
/// ARGV: n, how long the marker is kept (ms).
pub(crate) static CAMPAIGN_ADD_TOTAL: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
if redis.call('SET', KEYS[2], '1', 'NX', 'PX', ARGV[2]) then
  redis.call('HINCRBY', KEYS[1], 'total', ARGV[1])
  return 1
end
return 0
"#,
    )
});

/// Record results idempotently. KEYS[1] recorded hash, KEYS[2] progress hash, KEYS[3] results
/// stream, KEYS[4] this call's reply key. ARGV[1] how long to keep the reply (ms), then triples
/// (item id, status counter, result JSON). A new item increments `done`, whose new value N is
/// its sequence number: the stream entry is `0-N`, so a reader's cursor is N. Returns how many
/// items were new; a retry of the same call (its reply was lost with the connection) returns
/// the first attempt's count instead of 0, so callers' counts stay exact.
pub(crate) static RECORD_RESULTS: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
local prior = redis.call('GET', KEYS[4])
if prior then
  return tonumber(prior)
end
local new = 0
for i = 2, #ARGV, 3 do
  if redis.call('HSETNX', KEYS[1], ARGV[i], '1') == 1 then
    local seq = redis.call('HINCRBY', KEYS[2], 'done', 1)
    redis.call('HINCRBY', KEYS[2], ARGV[i + 1], 1)
    redis.call('XADD', KEYS[3], '0-' .. seq, 'r', ARGV[i + 2])
    new = new + 1
  end
end
redis.call('SET', KEYS[4], new, 'PX', ARGV[1])
return new
"#,
    )
});

/// Count the live leases of a site. KEYS[1] the site's lease set. Drops the lapsed ones first
/// (the server's clock decides), then returns how many are left.
pub(crate) static LEASE_COUNT: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', string.format('%.0f', now))
return redis.call('ZCARD', KEYS[1])
"#,
    )
});

/// Append input rows idempotently. KEYS[1] the input list. ARGV[1] the 0-based index of the
/// first row, ARGV[2..] the rows. Rows already stored (a retried append) are skipped; returns
/// the list's length after, or -1 when `first` is past the end (a gap: nothing is stored).
pub(crate) static APPEND_INPUT: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
local first = tonumber(ARGV[1])
local stored = redis.call('LLEN', KEYS[1])
if first > stored then
  return -1
end
local from = stored - first + 2
for i = from, #ARGV, 1000 do
  redis.call('RPUSH', KEYS[1], unpack(ARGV, i, math.min(i + 999, #ARGV)))
end
return redis.call('LLEN', KEYS[1])
"#,
    )
});
