//! `WorkQueue`: how batches travel from the coordinator to the workers, and back for retries.
//!
//! A delivery is acknowledged only after its results are recorded; an unacknowledged delivery
//! comes back (to this or another worker). A worker never holds a delivery while it waits for a
//! delay: it publishes a delayed copy and acknowledges the original.

use std::time::Duration;

use async_trait::async_trait;

use super::Batch;

/// Failures of the queue transport (never of the work itself).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum QueueError {
    #[error("queue closed")]
    Closed,
    #[error("queue transport: {0}")]
    Transport(String),
    #[error("batch encoding: {0}")]
    Encoding(String),
}

impl QueueError {
    /// Worth retrying (the transport may come back).
    pub fn is_transient(&self) -> bool {
        matches!(self, QueueError::Transport(_))
    }

    /// A bounded label for metrics.
    pub fn as_metric_label(&self) -> &'static str {
        match self {
            QueueError::Closed => "closed",
            QueueError::Transport(_) => "transport",
            QueueError::Encoding(_) => "encoding",
        }
    }
}

/// Settles one delivery.
#[async_trait]
pub trait Acker: Send + Sync {
    /// The work is done and recorded.
    async fn ack(self: Box<Self>) -> Result<(), QueueError>;
    /// Give the delivery back to the queue untouched (e.g. on shutdown).
    async fn requeue(self: Box<Self>) -> Result<(), QueueError>;
}

/// One batch handed to a worker.
pub struct Delivery {
    pub batch: Batch,
    /// True when the broker delivered this batch before (a worker died holding it).
    pub redelivered: bool,
    acker: Box<dyn Acker>,
}

impl std::fmt::Debug for Delivery {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Delivery")
            .field("batch", &self.batch)
            .field("redelivered", &self.redelivered)
            .finish_non_exhaustive()
    }
}

impl Delivery {
    pub fn new(batch: Batch, redelivered: bool, acker: Box<dyn Acker>) -> Self {
        Delivery {
            batch,
            redelivered,
            acker,
        }
    }

    pub async fn ack(self) -> Result<(), QueueError> {
        self.acker.ack().await
    }

    pub async fn requeue(self) -> Result<(), QueueError> {
        self.acker.requeue().await
    }
}

/// The queue between coordinator and workers.
#[async_trait]
pub trait WorkQueue: Send + Sync + 'static {
    /// Publish a batch for immediate work. Returns once the queue has it (confirmed).
    async fn publish(&self, batch: &Batch) -> Result<(), QueueError>;
    /// Publish a batch that becomes visible after `delay` (retries, backoff).
    async fn publish_after(&self, batch: &Batch, delay: Duration) -> Result<(), QueueError>;
    /// The next delivery for this worker; `None` once the queue is closed and drained.
    async fn next(&self) -> Result<Option<Delivery>, QueueError>;
    /// Batches published and not yet acknowledged (including delayed ones), if known.
    fn depth(&self) -> Option<u64>;
    /// How many shards sites are spread over (1 for a queue without shards): the most lanes
    /// a hot site's batches can usefully take (`Batch::lane`).
    fn shards(&self) -> u32 {
        1
    }
    /// The same, split by shard, if known. A queue without shards is one shard.
    fn depths(&self) -> Option<QueueDepths> {
        self.depth().map(|waiting| QueueDepths {
            shards: vec![waiting],
            delayed: None,
        })
    }
}

/// Batches waiting, by where they wait.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueDepths {
    /// Per shard, indexed by shard number.
    pub shards: Vec<u64>,
    /// In the delay (retry) queues, for a queue that has them apart from the shards.
    pub delayed: Option<u64>,
}

impl QueueDepths {
    pub fn total(&self) -> u64 {
        self.shards.iter().sum::<u64>() + self.delayed.unwrap_or(0)
    }
}
