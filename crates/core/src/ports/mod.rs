//! The ports of the engine: the `WorkQueue` that carries batches from the coordinator to the
//! workers, the `StateStore` that holds what the whole fleet must agree on (rate limits,
//! session leases, circuits, catch-all verdicts, the greylist schedule, results and progress, campaigns and their webhooks' delivery state),
//! and the `ResultCache` that remembers verdicts between runs.
//!
//! Each port has an in-memory implementation here (the embedded wiring); the distributed wiring
//! implements the same traits over RabbitMQ and Redis. Nothing in this module does I/O.

mod batch;
mod cache;
pub mod contract;
mod memory_cache;
mod memory_queue;
mod memory_state;
mod queue;
mod state;
mod webhook;

pub use batch::{Batch, BatchItem, ItemResult, MAX_BATCH_HOST_ADDRS, MAX_BATCH_MX_HOSTS, MxHost};
pub use cache::{
    CacheClass, CacheClock, CacheEntry, CacheError, CachePolicy, ResultCache, cacheable, change,
    decode_entry, encode_entry, verdict_for_row,
};
pub use memory_cache::MemoryCache;
pub use memory_queue::MemoryQueue;
pub use memory_state::MemoryState;
pub use queue::{Acker, Delivery, QueueDepths, QueueError, WorkQueue};
pub use state::{
    BackoffPolicy, CampaignPhase, CampaignRecord, CircuitDecision, GREYLIST_LEASE, GreylistEntry,
    Lease, Progress, RateDecision, RateLimit, StateStore, StoreError, status_index,
};
pub use webhook::{PendingDelivery, RowRanges, WebhookState};
