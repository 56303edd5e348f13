//! `Publisher`: bulk publishing with a window of unconfirmed messages.
//!
//! Owns the in-flight window of one producer; the link and the retry deadline come from the
//! queue. Up to `confirm_window` publishes are on the wire at once; when the window is full,
//! `send` waits for the oldest confirm. `flush` waits for all of them. A publish whose confirm is
//! lost (the link died) is published again on the next link, so every batch is confirmed at
//! least once; one the broker already had may then arrive twice (results are idempotent). A publish
//! or confirm still pending when its link is replaced is not waited for: it may never complete.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use lapin::PublisherConfirm;
use rollcall_core::ports::{Batch, QueueError};
use tokio::time::{Instant, timeout_at};

use crate::link::{Link, Settled};
use crate::shared::{Shared, destination, encode, unroutable};

struct InFlight {
    exchange: String,
    routing_key: String,
    body: Vec<u8>,
    /// None: not (or no longer) on the wire; it must be published again.
    confirm: Option<PublisherConfirm>,
    /// The link generation it was last published on.
    generation: u64,
}

/// A windowed publisher (see the module docs). Call `flush` before dropping it: publishes
/// still in flight at drop time may or may not have reached the broker.
pub struct Publisher {
    shared: Arc<Shared>,
    window: usize,
    in_flight: VecDeque<InFlight>,
    confirmed: u64,
}

impl std::fmt::Debug for Publisher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Publisher")
            .field("window", &self.window)
            .field("in_flight", &self.in_flight.len())
            .field("confirmed", &self.confirmed)
            .finish_non_exhaustive()
    }
}

impl Publisher {
    pub(crate) fn new(shared: Arc<Shared>) -> Publisher {
        let window = shared.config.confirm_window;
        Publisher {
            shared,
            window,
            in_flight: VecDeque::with_capacity(window),
            confirmed: 0,
        }
    }

    /// Publishes `batch` for immediate work. Returns once it is on the wire (not confirmed);
    /// waits for the oldest confirm first when the window is full.
    pub async fn send(&mut self, batch: &Batch) -> Result<(), QueueError> {
        self.send_after(batch, Duration::ZERO).await
    }

    /// Like `send`, through the retry ladder (the delay is rounded up to a rung).
    pub async fn send_after(&mut self, batch: &Batch, delay: Duration) -> Result<(), QueueError> {
        let body = encode(batch)?;
        let (exchange, routing_key) = destination(&self.shared, batch, delay);
        while self.in_flight.len() >= self.window {
            self.settle_oldest().await?;
        }
        let mut entry = InFlight {
            exchange,
            routing_key,
            body,
            confirm: None,
            generation: 0,
        };
        // Without a link the entry waits unpublished; settling it will wait for the link.
        if let Some(link) = self.shared_link() {
            transmit(&self.shared, &link, &mut entry).await;
        }
        self.in_flight.push_back(entry);
        Ok(())
    }

    /// Waits until the broker confirmed every publish so far.
    pub async fn flush(&mut self) -> Result<(), QueueError> {
        while !self.in_flight.is_empty() {
            self.settle_oldest().await?;
        }
        Ok(())
    }

    /// Publishes sent and not yet confirmed.
    pub fn in_flight(&self) -> usize {
        self.in_flight.len()
    }

    /// Publishes the broker confirmed through this publisher.
    pub fn confirmed(&self) -> u64 {
        self.confirmed
    }

    fn shared_link(&self) -> Option<Arc<Link>> {
        self.shared.current_link()
    }

    /// Waits for the oldest publish to be confirmed, publishing it (and everything that was on
    /// a dead link) again as needed, until `publish_timeout`.
    async fn settle_oldest(&mut self) -> Result<(), QueueError> {
        let deadline = Instant::now() + self.shared.config.publish_timeout;
        loop {
            let Some(front) = self.in_flight.front_mut() else {
                return Ok(());
            };
            let generation = front.generation;
            let settled = match front.confirm.take() {
                None => None,
                Some(confirm) => match tokio::select! {
                    outcome = timeout_at(deadline, confirm) => outcome,
                    // Its link is gone: the confirm may never come (`Shared::link_replaced`).
                    () = self.shared.link_replaced(generation) => Ok(Err(link_gone())),
                } {
                    Err(_) => {
                        return Err(QueueError::Transport(format!(
                            "no confirm from RabbitMQ within {:?}",
                            self.shared.config.publish_timeout
                        )));
                    }
                    Ok(Ok(confirmation)) => Some(Settled::of(confirmation)),
                    Ok(Err(e)) => {
                        tracing::debug!(error = %e, "confirm lost; publishing again");
                        None
                    }
                },
            };
            match settled {
                Some(Settled::Acked) => {
                    self.in_flight.pop_front();
                    self.confirmed += 1;
                    self.shared
                        .counters
                        .published
                        .fetch_add(1, Ordering::Relaxed);
                    return Ok(());
                }
                Some(Settled::Returned(why)) => {
                    let entry = self.in_flight.pop_front();
                    let (exchange, key) = entry
                        .as_ref()
                        .map(|e| (e.exchange.as_str(), e.routing_key.as_str()))
                        .unwrap_or_default();
                    return Err(unroutable(exchange, key, &why));
                }
                Some(Settled::Nacked) => {
                    tracing::warn!("broker nacked a publish; publishing it again");
                    // The link is fine; only this one goes again.
                    if let Some(link) = self.shared_link()
                        && let Some(front) = self.in_flight.front_mut()
                    {
                        transmit(&self.shared, &link, front).await;
                    }
                    if Instant::now() >= deadline {
                        return Err(QueueError::Transport("publish nacked by RabbitMQ".into()));
                    }
                }
                None => {
                    let failed = self.in_flight.front().map(|e| e.generation);
                    self.republish(failed, deadline).await?;
                }
            }
        }
    }

    /// Puts every entry that is not on the current link back on the wire.
    async fn republish(
        &mut self,
        failed: Option<u64>,
        deadline: Instant,
    ) -> Result<(), QueueError> {
        let mut failed = failed;
        loop {
            let link = self.shared.link_for_publish(failed, deadline).await?;
            let mut all_sent = true;
            for entry in self.in_flight.iter_mut() {
                if entry.confirm.is_none() || entry.generation != link.generation {
                    transmit(&self.shared, &link, entry).await;
                    if entry.confirm.is_none() {
                        all_sent = false;
                        break;
                    }
                }
            }
            if all_sent {
                return Ok(());
            }
            failed = Some(link.generation);
        }
    }
}

/// Publishes `entry` on `link`; on failure leaves it without a confirm. A publish that never
/// completes is given up when its link is replaced (`Shared::link_replaced`).
async fn transmit(shared: &Shared, link: &Link, entry: &mut InFlight) {
    let published = tokio::select! {
        published = link.publish(&entry.exchange, &entry.routing_key, &entry.body) => published,
        () = shared.link_replaced(link.generation) => Err(link_gone()),
    };
    match published {
        Ok(confirm) => {
            entry.confirm = Some(confirm);
            entry.generation = link.generation;
        }
        Err(e) => {
            tracing::debug!(error = %e, "publish failed; it will be sent again");
            entry.confirm = None;
        }
    }
}

/// What a publish or confirm abandoned on a replaced link counts as.
fn link_gone() -> lapin::Error {
    lapin::ErrorKind::InvalidConnectionState(lapin::ConnectionState::Closed).into()
}
