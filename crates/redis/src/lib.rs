//! `rollcall-redis`: the `StateStore` and the `ResultCache` of the distributed wiring, over
//! Redis. Every operation is
//! one atomic step (a Lua script or a single command) on keys that share one hash tag, so it
//! runs unchanged on a single server or on Redis Cluster. The in-memory `MemoryState` in
//! `rollcall-core` is the reference for the semantics; the shared contract
//! (`rollcall_core::ports::contract`) checks both.
//!
//! This crate does not decide policy (limits, TTLs, backoff come from the caller) and does not
//! touch the work queue.
//!
//! # Layout
//!
//! - `store.rs`: `RedisState`, the connection, retries and the `StateStore` impl.
//! - `cache.rs`: `RedisCache` (`RedisState::result_cache`), the `ResultCache` impl.
//! - `calls.rs`: the Redis call behind each operation, built without I/O.
//! - `scripts.rs`: the Lua scripts.
//! - `keys.rs`: key names and hash tags.
//! - `error.rs`: `Error`.
//!
//! # Keys
//!
//! `P` is the store's prefix (`rc` in production). Names inside a tag escape `{`, `}` and `%`
//! as `%7B`, `%7D`, `%25`.
//!
//! | key | type | holds |
//! |---|---|---|
//! | `P:{h:KEY}:rate` | string | GCRA theoretical arrival time (µs since the epoch, server clock), PEXPIRE when it passes |
//! | `P:{h:SITE}:leases` | sorted set | session leases: member `holder:random`, score expiry (ms, server clock) |
//! | `P:{h:HOST}:circuit` | hash | `f` consecutive failures, `o` openings, `u` open until (ms), `p` probe granted at (ms, 0 = none) |
//! | `P:{d:DOMAIN}:catchall` | string | `1` or `0`, with PX TTL |
//! | `P:{g}:greylist` | sorted set | greylist schedule: member entry id, score due (ms since the epoch) |
//! | `P:{g}:greylist:entries` | hash | entry id -> `GreylistEntry` JSON |
//! | `P:{g}:greylist:taken:REQ` | list | one take request's answer, kept 10 min so a retry gets it again |
//! | `P:{c:CAMPAIGN}:progress` | hash | `total`, `done`, `deliverable`, `undeliverable`, `risky`, `unknown` |
//! | `P:{c:CAMPAIGN}:recorded` | hash | item id -> 1 for every recorded item (the idempotency set) |
//! | `P:{c:CAMPAIGN}:results` | stream | recorded results: entry `0-N` is the N-th, field `r` the `ItemResult` JSON |
//! | `P:{c:CAMPAIGN}:total-req:REQ` | string | marker of one applied `campaign_add_total`, kept 10 min |
//! | `P:{c:CAMPAIGN}:meta` | string | the `CampaignRecord` JSON (name, phase, rows, created) |
//! | `P:{c:CAMPAIGN}:input` | list | the campaign's input rows, in order (a restarted coordinator reads them back) |
//! | `P:{campaigns}:index` | sorted set | every stored campaign id, score its creation time (ms) |
//! | `P:{r:ADDRESS}:v` | string | a remembered verdict (`ResultCache`), the shared compact encoding, EX until its `keep_until` |
//!
//! A results cursor is N, the sequence number of the last result read (`done` at the time it
//! was recorded), so it is a plain u64 that orders exactly like the stream.
//!
//! Campaign keys do not expire: a campaign survives restarts until it is deleted
//! (`campaign_delete`; the coordinator deletes the finished campaigns it no longer keeps).

#![forbid(unsafe_code)]
#![warn(clippy::print_stdout, clippy::print_stderr)]

mod cache;
mod calls;
mod error;
mod keys;
mod scripts;
mod store;

pub use cache::RedisCache;
pub use error::{Error, redact_url};
pub use store::{DEFAULT_PREFIX, RedisState};
