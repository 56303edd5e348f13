//! `AmqpAcker`: settles one delivery (ack, or nack with requeue) on the channel it came from.
//! Owns the mapping of lapin's answers to `QueueError`; not the decoding of deliveries (`queue`).
//!
//! A delivery whose link died cannot be settled: lapin answers `false` (its channel is closed)
//! or an error. That is reported as a transport error and counted; the broker has requeued the
//! message already and delivers it again, flagged redelivered.

use std::sync::Arc;

use async_trait::async_trait;
use lapin::options::{BasicAckOptions, BasicNackOptions};
use rollcall_core::ports::{Acker, QueueError};

use crate::shared::{Shared, bump};

/// Settles a delivery on the channel it came from.
pub(crate) struct AmqpAcker {
    acker: lapin::Acker,
    shared: Arc<Shared>,
}

impl AmqpAcker {
    pub fn new(acker: lapin::Acker, shared: Arc<Shared>) -> AmqpAcker {
        AmqpAcker { acker, shared }
    }

    fn settled(&self, result: lapin::Result<bool>, what: &str) -> Result<(), QueueError> {
        let failure = match result {
            Ok(true) => return Ok(()),
            // lapin answers false when the channel is already closed (the link was lost).
            Ok(false) => "its channel is closed".to_owned(),
            Err(e) => e.to_string(),
        };
        bump(&self.shared.counters.ack_failures);
        tracing::warn!(
            what,
            failure,
            "settling a delivery failed; the broker will redeliver it"
        );
        Err(QueueError::Transport(format!(
            "{what} failed ({failure}); the broker will redeliver the batch"
        )))
    }
}

#[async_trait]
impl Acker for AmqpAcker {
    async fn ack(self: Box<Self>) -> Result<(), QueueError> {
        let result = self.acker.ack(BasicAckOptions::default()).await;
        self.settled(result, "ack")?;
        bump(&self.shared.counters.acked);
        Ok(())
    }

    async fn requeue(self: Box<Self>) -> Result<(), QueueError> {
        let options = BasicNackOptions {
            multiple: false,
            requeue: true,
        };
        let result = self.acker.nack(options).await;
        self.settled(result, "requeue")?;
        bump(&self.shared.counters.requeued);
        Ok(())
    }
}
