//! The two server-streaming calls, built on `CampaignBackend` polling: WatchCampaign and
//! ListResults.
//!
//! Owns `WatchPacing` and the loops that feed each stream: WatchCampaign sends the current
//! progress first, then results as they land (by `results_since` with a cursor, from the first
//! result on) and progress at least every `progress_every`, and ends after the final progress
//! once the campaign is done, cancelled or failed. Each stream is fed by its own task through a
//! bounded channel, so a slow client slows its own polling and nothing else; the task ends when
//! the client goes away or the server shuts down. It does not know how the backend stores
//! results.

use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use futures_util::Stream;
use rollcall_core::CampaignId;
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;
use tokio_stream::wrappers::ReceiverStream;
use tonic::Status;

use crate::backend::{CampaignBackend, ProgressSnapshot};
use crate::v1;
use crate::v1::campaign_event::Event;

/// How often a watch polls the backend and reports progress.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WatchPacing {
    /// Longest gap between two progress events while the campaign runs.
    pub progress_every: Duration,
    /// How often the backend is asked for new results and the current state.
    pub poll_every: Duration,
    /// Most results asked for in one `results_since` call.
    pub page: usize,
    /// Events buffered per stream before polling waits for the client to read.
    pub buffer: usize,
}

impl Default for WatchPacing {
    fn default() -> WatchPacing {
        WatchPacing {
            progress_every: Duration::from_secs(1),
            poll_every: Duration::from_millis(200),
            page: 256,
            buffer: 64,
        }
    }
}

/// A boxed server stream, as the generated trait wants it.
pub(crate) type BoxStream<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send>>;

/// Set to `true` when the server begins to shut down; `None` outside `serve` (never closes).
pub(crate) type Closing = Option<watch::Receiver<bool>>;

/// The client went away; the feeding task stops.
struct Gone;

/// Resolves when the server shuts down (or is gone); never without a signal.
async fn shutdown_signalled(signal: &mut Closing) {
    match signal {
        // An error means the sender was dropped: the server is gone, so close too.
        Some(rx) => drop(rx.wait_for(|closing| *closing).await),
        None => std::future::pending().await,
    }
}

fn shutting_down() -> Status {
    Status::unavailable("server is shutting down; reconnect to resume")
}

/// One watch: everything the task needs.
pub(crate) struct Watch<B> {
    pub backend: Arc<B>,
    pub campaign: CampaignId,
    pub include_results: bool,
    pub pacing: WatchPacing,
    pub closing: Closing,
}

impl<B: CampaignBackend> Watch<B> {
    /// Starts feeding a stream whose first event is `first` (read by the caller, so that an
    /// unknown campaign fails the call itself rather than the stream).
    pub(crate) fn start(self, first: ProgressSnapshot) -> BoxStream<v1::CampaignEvent> {
        let (tx, rx) = mpsc::channel(self.pacing.buffer.max(1));
        tokio::spawn(async move {
            let campaign = self.campaign.clone();
            if self.run(first, &tx).await.is_err() {
                tracing::debug!(%campaign, "watcher went away");
            }
        });
        Box::pin(ReceiverStream::new(rx))
    }

    async fn run(
        mut self,
        first: ProgressSnapshot,
        tx: &mpsc::Sender<Result<v1::CampaignEvent, Status>>,
    ) -> Result<(), Gone> {
        let send = |event: Event| async move {
            tx.send(Ok(v1::CampaignEvent { event: Some(event) }))
                .await
                .map_err(|_| Gone)
        };
        let fail = |status: Status| async move { tx.send(Err(status)).await.map_err(|_| Gone) };

        send(Event::Progress((&first).into())).await?;
        if first.state.is_final() && !self.include_results {
            return Ok(());
        }
        let mut last_state = first.state;
        let mut next_progress = Instant::now() + self.pacing.progress_every;
        let mut cursor = 0;
        loop {
            if self.include_results
                && let Err(status) = self.drain(&mut cursor, tx).await?
            {
                return fail(status).await;
            }
            let snapshot = match self.backend.progress(&self.campaign).await {
                Ok(s) => s,
                Err(e) => return fail(e.into()).await,
            };
            if snapshot.state.is_final() {
                // Results recorded before the state turned final are all there now: drain
                // once more so the final progress is the last event.
                if self.include_results
                    && let Err(status) = self.drain(&mut cursor, tx).await?
                {
                    return fail(status).await;
                }
                return send(Event::Progress((&snapshot).into())).await;
            }
            if snapshot.state != last_state || Instant::now() >= next_progress {
                send(Event::Progress((&snapshot).into())).await?;
                last_state = snapshot.state;
                next_progress = Instant::now() + self.pacing.progress_every;
            }
            let wake = next_progress.min(Instant::now() + self.pacing.poll_every);
            tokio::select! {
                () = tokio::time::sleep_until(wake) => {}
                () = tx.closed() => return Err(Gone),
                () = shutdown_signalled(&mut self.closing) => return fail(shutting_down()).await,
            }
        }
    }

    /// Sends every result after `cursor` until the backend has no more; the inner `Err` is a
    /// backend failure to end the stream with.
    async fn drain(
        &self,
        cursor: &mut u64,
        tx: &mpsc::Sender<Result<v1::CampaignEvent, Status>>,
    ) -> Result<Result<(), Status>, Gone> {
        loop {
            let (records, next) = match self
                .backend
                .results_since(&self.campaign, *cursor, self.pacing.page)
                .await
            {
                Ok(page) => page,
                Err(e) => return Ok(Err(e.into())),
            };
            if records.is_empty() {
                return Ok(Ok(()));
            }
            *cursor = next;
            for record in &records {
                let event = Event::Result(record.into());
                tx.send(Ok(v1::CampaignEvent { event: Some(event) }))
                    .await
                    .map_err(|_| Gone)?;
            }
        }
    }
}

/// Streams every result recorded so far, then ends.
pub(crate) fn list_results<B: CampaignBackend>(
    backend: Arc<B>,
    campaign: CampaignId,
    pacing: WatchPacing,
    mut closing: Closing,
) -> BoxStream<v1::VerificationResult> {
    let (tx, rx) = mpsc::channel(pacing.buffer.max(1));
    tokio::spawn(async move {
        let mut cursor = 0;
        loop {
            let page = tokio::select! {
                page = backend.results_since(&campaign, cursor, pacing.page) => {
                    page.map_err(Status::from)
                }
                () = shutdown_signalled(&mut closing) => Err(shutting_down()),
            };
            let (records, next) = match page {
                Ok(page) => page,
                Err(status) => {
                    let _ = tx.send(Err(status)).await;
                    return;
                }
            };
            if records.is_empty() {
                return;
            }
            cursor = next;
            for record in &records {
                if tx.send(Ok(record.into())).await.is_err() {
                    return;
                }
            }
        }
    });
    Box::pin(ReceiverStream::new(rx))
}

#[cfg(test)]
mod tests;
