//! The ports of the engine: the `WorkQueue` that carries batches from the coordinator to the
//! workers, and the `StateStore` that holds what the whole fleet must agree on (rate limits,
//! session leases, circuits, catch-all verdicts, the greylist schedule, results and progress).
//!
//! Each port has an in-memory implementation here (the embedded wiring); the distributed wiring
//! implements the same traits over RabbitMQ and Redis. Nothing in this module does I/O.

mod batch;
pub mod contract;
mod memory_queue;
mod memory_state;
mod queue;
mod state;

pub use batch::{Batch, BatchItem, ItemResult, MAX_BATCH_HOST_ADDRS, MAX_BATCH_MX_HOSTS, MxHost};
pub use memory_queue::MemoryQueue;
pub use memory_state::MemoryState;
pub use queue::{Acker, Delivery, QueueDepths, QueueError, WorkQueue};
pub use state::{
    BackoffPolicy, CampaignPhase, CampaignRecord, CircuitDecision, GREYLIST_LEASE, GreylistEntry,
    Lease, Progress, RateDecision, RateLimit, StateStore, StoreError, status_index,
};
