//! `MemoryQueue`: the embedded wiring's `WorkQueue`, an in-process channel. A requeued delivery
//! goes to the back of the line; delayed publishes wait in a timer task, not in the channel.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::{Mutex, mpsc, watch};

use super::{Acker, Batch, Delivery, QueueError, WorkQueue};

/// An in-process work queue. Cloning shares the queue.
#[derive(Clone)]
pub struct MemoryQueue {
    inner: Arc<Inner>,
}

struct Inner {
    tx: mpsc::UnboundedSender<(Batch, bool)>,
    rx: Mutex<mpsc::UnboundedReceiver<(Batch, bool)>>,
    /// Published (immediately or delayed) and not yet acknowledged.
    depth: AtomicU64,
    closed: watch::Sender<bool>,
}

impl Default for MemoryQueue {
    fn default() -> Self {
        Self::new()
    }
}

impl MemoryQueue {
    pub fn new() -> Self {
        let (tx, rx) = mpsc::unbounded_channel();
        MemoryQueue {
            inner: Arc::new(Inner {
                tx,
                rx: Mutex::new(rx),
                depth: AtomicU64::new(0),
                closed: watch::Sender::new(false),
            }),
        }
    }

    /// Wake every waiting consumer with `None`: no more work will come.
    pub fn close(&self) {
        self.inner.closed.send_replace(true);
    }
}

struct MemoryAcker {
    inner: Arc<Inner>,
    batch: Option<Batch>,
}

#[async_trait]
impl Acker for MemoryAcker {
    async fn ack(self: Box<Self>) -> Result<(), QueueError> {
        self.inner.depth.fetch_sub(1, Ordering::Relaxed);
        Ok(())
    }

    async fn requeue(mut self: Box<Self>) -> Result<(), QueueError> {
        let batch = self.batch.take().ok_or(QueueError::Closed)?;
        self.inner
            .tx
            .send((batch, true))
            .map_err(|_| QueueError::Closed)
    }
}

#[async_trait]
impl WorkQueue for MemoryQueue {
    async fn publish(&self, batch: &Batch) -> Result<(), QueueError> {
        self.inner.depth.fetch_add(1, Ordering::Relaxed);
        self.inner
            .tx
            .send((batch.clone(), false))
            .map_err(|_| QueueError::Closed)
    }

    async fn publish_after(&self, batch: &Batch, delay: Duration) -> Result<(), QueueError> {
        self.inner.depth.fetch_add(1, Ordering::Relaxed);
        let tx = self.inner.tx.clone();
        let batch = batch.clone();
        tokio::spawn(async move {
            tokio::time::sleep(delay).await;
            // A closed queue means the run is over; the batch has nowhere to go.
            let _ = tx.send((batch, false));
        });
        Ok(())
    }

    async fn next(&self) -> Result<Option<Delivery>, QueueError> {
        let mut closed = self.inner.closed.subscribe();
        let mut rx = self.inner.rx.lock().await;
        let received = tokio::select! {
            biased;
            received = rx.recv() => received,
            // Closed: hand out what is already queued, then `None` to every consumer.
            _ = closed.wait_for(|closed| *closed) => rx.try_recv().ok(),
        };
        drop(rx);
        Ok(received.map(|(batch, redelivered)| {
            let acker = MemoryAcker {
                inner: self.inner.clone(),
                batch: Some(batch.clone()),
            };
            Delivery::new(batch, redelivered, Box::new(acker))
        }))
    }

    fn depth(&self) -> Option<u64> {
        Some(self.inner.depth.load(Ordering::Relaxed))
    }
}
