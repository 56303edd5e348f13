//! `CoordinatorBackend`: the `CampaignBackend` the gRPC service calls, over one engine
//! `Coordinator`.
//!
//! Each submitted campaign gets three tasks: a feeder (submitted rows into the coordinator's
//! bounded input; it stops reading when the campaign is stopped), the coordinator run itself,
//! and a collector (output rows into the campaign's record). `submit` returns once the
//! client's stream has ended and every entry is parsed, counted, stored and taken by the run;
//! it does not wait for probing beyond the run's read-ahead (see "Memory" below). Its accepted/duplicate/invalid counts come from parsing each
//! entry and deduplicating it the way the coordinator does (local part case-folded, RFC 5321
//! 2.4), so they agree with the output rows' `duplicate` flags and `invalid_syntax` verdicts.
//!
//! Persistence (what survives a coordinator restart): every chunk of a submission is stored
//! in the `StateStore` before its rows reach the coordinator, with a `CampaignRecord` saying
//! where the campaign is (uploading, running, done, cancelled, failed); workers record every
//! result there. `resume` (at start) reads the records back: a running campaign is run again
//! from its stored input with `Resume::Continue` (recorded results come out without a new
//! probe, the rest is verified), a finished one is read back with `Resume::ReplayOnly`, and
//! one cut off while uploading is failed (its client saw the upload fail). A coordinator that
//! shuts down (SIGTERM) leaves its running campaigns "running" in the store, for the next one.
//! A campaign's webhook state (`webhook_save`) is stored beside its record; `resume` hands the
//! unfinished ones to the HTTP API (`webhooks_to_resume`), which goes on delivering them.
//!
//! Limits (`Limits`): a submission holds at most `max_rows` entries and `max_submission_bytes`
//! bytes of addresses, and at most `max_running_campaigns` campaigns are uploading or running at
//! once. A submission over a limit is refused with `ResourceExhausted` (`InvalidArgument` for
//! too many rows) and leaves nothing behind: its run is stopped and awaited, then its record
//! and input are deleted before the call returns.
//!
//! Memory: a campaign's submitted rows wait in a bounded queue (`UPLOAD_BUFFER`) until the
//! coordinator takes them; when it is full, the upload waits, so a client streams no faster
//! than the coordinator reads (back-pressure through HTTP/2 flow control). The coordinator
//! reads ahead up to `max_outstanding` rows in flight, so only a list longer than that is paced
//! by verification. Every output row is kept (about 100 bytes plus the verdict) until the campaign is
//! evicted, which happens only to finished campaigns beyond `Limits::keep_finished` (their
//! stored input and results are deleted then too).

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use futures_util::StreamExt;
use rollcall_api::{
    AddressChunks, BackendError, CampaignBackend, CampaignState, ProgressSnapshot, ResultRecord,
    SubmitOptions, SubmitOutcome,
};
use rollcall_core::ports::{CampaignPhase, StateStore, StoreError, WebhookState, WorkQueue};
use rollcall_core::{CampaignId, Verdict};
use rollcall_engine::coordinator::{Coordinator, InputRow, Resume};
use tokio::sync::{mpsc, watch};

mod rows;

use crate::Error;
use crate::campaign::{Campaign, final_phase, state_of};
use rows::{Entry, collect, count_entry, feed, feed_stored};

/// Submitted rows waiting for the coordinator to take them, per campaign being uploaded.
const UPLOAD_BUFFER: usize = 1024;

/// Bounds on what the backend keeps in memory and what clients can make the fleet do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Most entries in one submission; a longer list is refused (INVALID_ARGUMENT).
    pub max_rows: u64,
    /// Finished (done, cancelled, failed) campaigns kept for `progress` and `results_since`;
    /// the oldest beyond this are forgotten when a new campaign is submitted.
    pub keep_finished: usize,
    /// Most bytes of addresses (their UTF-8 text, summed) in one submission; a larger list is
    /// refused (RESOURCE_EXHAUSTED).
    pub max_submission_bytes: u64,
    /// Most campaigns uploading or running at once (resumed ones included); a submission
    /// beyond is refused (RESOURCE_EXHAUSTED) before anything is stored.
    pub max_running_campaigns: usize,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            max_rows: 2_000_000,
            keep_finished: 64,
            // 2,000,000 addresses of 64 bytes: `max_rows` is what a normal list meets first.
            max_submission_bytes: 128 * 1024 * 1024,
            max_running_campaigns: 8,
        }
    }
}

/// Runs campaigns with a `Coordinator`, keeps their output rows in memory and their records
/// and input in the store.
pub struct CoordinatorBackend<Q, S> {
    coordinator: Coordinator<Q, S>,
    state: Arc<S>,
    limits: Limits,
    campaigns: Mutex<Campaigns>,
    /// Webhooks of the campaigns `resume` picked up whose deliveries were not finished, until
    /// the HTTP API takes them (`webhooks_to_resume`).
    resumed_webhooks: Mutex<Vec<(CampaignId, WebhookState)>>,
    /// Set by `stop_all`: runs that end now were interrupted by the shutdown, not finished,
    /// and their stored phase stays "running".
    shutting_down: Arc<AtomicBool>,
}

#[derive(Default)]
struct Campaigns {
    by_id: HashMap<CampaignId, Arc<Campaign>>,
    /// Campaign ids, oldest first (for eviction).
    order: VecDeque<CampaignId>,
}

impl<Q, S> CoordinatorBackend<Q, S> {
    fn campaigns(&self) -> std::sync::MutexGuard<'_, Campaigns> {
        // A panic while holding this lock cannot leave the map half-updated (each section is
        // one insert or remove), so a poisoned lock is still usable.
        self.campaigns
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Stops `campaign` and takes it out of the campaigns served; what the store keeps of it
    /// is for the caller to delete (`erase`).
    fn unregister(&self, campaign: &Campaign) {
        campaign.stop.send_replace(true);
        let mut campaigns = self.campaigns();
        campaigns.by_id.remove(&campaign.id);
        campaigns.order.retain(|kept| *kept != campaign.id);
    }
}

/// Waits for the stopped run of `campaign` to end (`run`: its last task, which may still store
/// the run's end), then deletes what the store keeps of it: nothing is written after this.
async fn erase<S: StateStore>(
    state: &S,
    campaign: &CampaignId,
    run: Option<tokio::task::JoinHandle<()>>,
) {
    if let Some(run) = run
        && let Err(join) = run.await
    {
        tracing::warn!(%campaign, %join, "the campaign task failed while being discarded");
    }
    if let Err(error) = state.campaign_delete(campaign).await {
        tracing::warn!(%campaign, %error, "could not delete the stored campaign");
    }
}

/// Deletes what the store keeps of `campaign`, in the background (called where nothing can
/// wait: eviction, a dropped submission).
fn delete_stored<S: StateStore>(state: &Arc<S>, campaign: CampaignId) {
    let Ok(runtime) = tokio::runtime::Handle::try_current() else {
        return;
    };
    let state = state.clone();
    runtime.spawn(async move {
        if let Err(error) = state.campaign_delete(&campaign).await {
            tracing::warn!(%campaign, %error, "could not delete the stored campaign");
        }
    });
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

fn unavailable(error: StoreError) -> BackendError {
    BackendError::Unavailable(format!("the campaign store: {error}"))
}

/// Where a run's input comes from.
enum Source {
    /// Rows as a client uploads them (already stored).
    Upload(mpsc::Receiver<InputRow<()>>),
    /// The campaign's stored input, read back after a restart.
    Stored,
}

/// What a run is, and what happens when it ends.
enum Mode {
    /// A new campaign: its final phase is stored.
    New,
    /// A running campaign picked up again: its final phase is stored.
    Continue,
    /// A finished campaign read back: it ends in the phase it had.
    Replay(CampaignState, Option<String>),
}

/// Forgets a campaign whose submission did not complete: also when the call is dropped
/// mid-upload (the client went away), so a cut-off list never runs as if it were whole.
struct Unfinished<'a, Q, S: StateStore> {
    backend: &'a CoordinatorBackend<Q, S>,
    campaign: Arc<Campaign>,
    /// The run's last task, once started.
    run: Option<tokio::task::JoinHandle<()>>,
    /// Set once the submission completed or was discarded by `submit` itself.
    settled: bool,
}

impl<Q, S: StateStore> Unfinished<'_, Q, S> {
    /// Stops and forgets the campaign and deletes what the store keeps of it, before returning.
    async fn discard(&mut self) {
        self.settled = true;
        self.backend.unregister(&self.campaign);
        erase(&*self.backend.state, &self.campaign.id, self.run.take()).await;
    }
}

impl<Q, S: StateStore> Drop for Unfinished<'_, Q, S> {
    fn drop(&mut self) {
        if self.settled {
            return;
        }
        // The call was dropped: nothing can wait here, the store is cleaned in the background.
        self.backend.unregister(&self.campaign);
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let state = self.backend.state.clone();
        let (id, run) = (self.campaign.id.clone(), self.run.take());
        runtime.spawn(async move { erase(&*state, &id, run).await });
    }
}

impl<Q: WorkQueue, S: StateStore> CoordinatorBackend<Q, S> {
    /// A backend running campaigns on `coordinator`. The coordinator should keep results
    /// (`Coordinator::keeping_results`) so that campaigns can be read back after a restart.
    pub fn new(coordinator: Coordinator<Q, S>, limits: Limits) -> Result<Self, Error> {
        if limits.max_rows == 0 {
            return Err(Error::InvalidLimit("max_rows must be at least 1"));
        }
        if limits.max_submission_bytes == 0 {
            return Err(Error::InvalidLimit(
                "max_submission_bytes must be at least 1",
            ));
        }
        if limits.max_running_campaigns == 0 {
            return Err(Error::InvalidLimit(
                "max_running_campaigns must be at least 1",
            ));
        }
        Ok(CoordinatorBackend {
            state: coordinator.state().clone(),
            coordinator,
            limits,
            campaigns: Mutex::new(Campaigns::default()),
            resumed_webhooks: Mutex::new(Vec::new()),
            shutting_down: Arc::new(AtomicBool::new(false)),
        })
    }

    /// Stops every campaign run (on shutdown). In memory their state becomes `Cancelled` with
    /// `detail` saying why; in the store running campaigns stay running, so the next
    /// coordinator picks them up (`resume`).
    pub fn stop_all(&self, detail: &str) {
        self.shutting_down.store(true, Ordering::SeqCst);
        for campaign in self.campaigns().by_id.values() {
            campaign.settle(CampaignState::Cancelled, Some(detail.to_string()));
            campaign.stop.send_replace(true);
        }
    }

    /// Picks up the campaigns a previous coordinator left in the store (call once, at start,
    /// before serving): running ones go on, finished ones are read back (the newest
    /// `Limits::keep_finished`; older ones are deleted), and one cut off while uploading is
    /// failed. Returns how many campaigns were picked up; their runs go on in the background.
    pub async fn resume(&self) -> Result<usize, StoreError> {
        let records = self.state.campaign_list().await?;
        let finished = records
            .iter()
            .filter(|r| r.phase.is_final() || r.phase == CampaignPhase::Uploading)
            .count();
        let mut drop_finished = finished.saturating_sub(self.limits.keep_finished);
        let mut picked = 0;
        for record in records {
            let campaign = Campaign::new(
                record.id.clone(),
                record.name.clone(),
                record.created_ms,
                record.max_wait_ms,
            );
            campaign.tally().total = record.rows;
            let mode = match record.phase {
                CampaignPhase::Running => Mode::Continue,
                CampaignPhase::Uploading => {
                    // Its client saw the upload fail: nothing of it is worth keeping but the
                    // record saying so.
                    let detail = "the coordinator stopped while the list was being uploaded; \
                                  submit it again";
                    self.state.campaign_delete(&record.id).await?;
                    campaign.tally().total = 0;
                    campaign
                        .persist(&*self.state, CampaignPhase::Failed, Some(detail.into()))
                        .await?;
                    Mode::Replay(CampaignState::Failed, Some(detail.into()))
                }
                phase => Mode::Replay(state_of(phase), record.detail.clone()),
            };
            if matches!(mode, Mode::Replay(..)) && drop_finished > 0 {
                drop_finished -= 1;
                self.state.campaign_delete(&record.id).await?;
                continue;
            }
            tracing::info!(campaign = %record.id, phase = ?record.phase, rows = record.rows,
                "campaign picked up from the store");
            // Its webhook goes on where it stopped: pending results and, once the campaign
            // is final, the completion event (finished campaigns included).
            if let Some(webhook) = self.state.webhook_load(&record.id).await?
                && !webhook.completed
            {
                self.resumed_webhooks
                    .lock()
                    .unwrap_or_else(|poisoned| poisoned.into_inner())
                    .push((record.id.clone(), webhook));
            }
            match &mode {
                Mode::Continue => campaign.settle(CampaignState::Running, None),
                _ => campaign.settle(
                    CampaignState::Pending,
                    Some("being read back after a coordinator restart".into()),
                ),
            }
            self.register(campaign.clone());
            // Runs on by itself; nothing waits for its end.
            drop(self.start(&campaign, Source::Stored, mode));
            picked += 1;
        }
        Ok(picked)
    }

    fn find(&self, id: &CampaignId) -> Result<Arc<Campaign>, BackendError> {
        self.campaigns()
            .by_id
            .get(id)
            .cloned()
            .ok_or_else(|| BackendError::NotFound(format!("campaign {id}")))
    }

    /// Registers a new submission unless `Limits::max_running_campaigns` are already
    /// uploading or running; checked and registered under one lock, so two submissions cannot
    /// both take the last place.
    fn admit(&self, campaign: Arc<Campaign>) -> Result<(), BackendError> {
        let mut campaigns = self.campaigns();
        let running = campaigns
            .by_id
            .values()
            .filter(|c| !c.tally().state.is_final())
            .count();
        if running >= self.limits.max_running_campaigns {
            return Err(BackendError::ResourceExhausted(format!(
                "{running} campaigns are running and this coordinator runs at most {} at once; \
                 wait for one to finish or cancel one",
                self.limits.max_running_campaigns
            )));
        }
        self.register_locked(&mut campaigns, campaign);
        Ok(())
    }

    fn register(&self, campaign: Arc<Campaign>) {
        let mut campaigns = self.campaigns();
        self.register_locked(&mut campaigns, campaign);
    }

    fn register_locked(&self, campaigns: &mut Campaigns, campaign: Arc<Campaign>) {
        let finished: Vec<CampaignId> = campaigns
            .order
            .iter()
            .filter(|id| {
                campaigns
                    .by_id
                    .get(*id)
                    .is_some_and(|c| c.tally().state.is_final())
            })
            .cloned()
            .collect();
        let excess = finished.len().saturating_sub(self.limits.keep_finished);
        for id in finished.into_iter().take(excess) {
            campaigns.by_id.remove(&id);
            campaigns.order.retain(|kept| *kept != id);
            delete_stored(&self.state, id);
        }
        campaigns.order.push_back(campaign.id.clone());
        campaigns.by_id.insert(campaign.id.clone(), campaign);
    }

    /// Starts the coordinator run of `campaign`, its feeder and its collector; returns the
    /// collector's task, the last to end (after storing how the run ended).
    fn start(
        &self,
        campaign: &Arc<Campaign>,
        source: Source,
        mode: Mode,
    ) -> tokio::task::JoinHandle<()> {
        let (in_tx, in_rx) = mpsc::channel(1024);
        let (out_tx, out_rx) = mpsc::channel(1024);
        let feeder = match source {
            Source::Upload(rows) => {
                let stop = campaign.stop.subscribe();
                tokio::spawn(async move {
                    feed(rows, in_tx, stop).await;
                    Ok(())
                })
            }
            Source::Stored => {
                let state = self.state.clone();
                let id = campaign.id.clone();
                let stop = campaign.stop.subscribe();
                tokio::spawn(async move { feed_stored(&*state, &id, in_tx, stop).await })
            }
        };
        let coordinator = self
            .coordinator
            .clone()
            .with_max_wait(campaign.max_wait_ms.map(std::time::Duration::from_millis));
        let id = campaign.id.clone();
        let stop = campaign.stop.subscribe();
        let resume = match &mode {
            Mode::New => None,
            Mode::Continue => Some(Resume::Continue),
            Mode::Replay(..) => Some(Resume::ReplayOnly),
        };
        let run = tokio::spawn(async move {
            match resume {
                None => coordinator.run(id, in_rx, out_tx, stop).await,
                Some(resume) => coordinator.resume(id, in_rx, out_tx, stop, resume).await,
            }
        });
        let collecting = campaign.clone();
        let state = self.state.clone();
        let shutting_down = self.shutting_down.clone();
        tokio::spawn(async move {
            collect(&collecting, out_rx).await;
            let fed = feeder.await;
            let (end, detail) = match run.await {
                Ok(Ok(summary)) if summary.interrupted => (
                    CampaignState::Cancelled,
                    Some("stopped before every address had its result".to_string()),
                ),
                Ok(Ok(_)) => match fed {
                    Ok(Ok(())) => (CampaignState::Done, None),
                    Ok(Err(error)) => {
                        tracing::error!(campaign = %collecting.id, %error, "reading the stored input failed");
                        (
                            CampaignState::Failed,
                            Some(format!("reading the stored input failed: {error}")),
                        )
                    }
                    Err(join) => (
                        CampaignState::Failed,
                        Some(format!("the feeder failed: {join}")),
                    ),
                },
                Ok(Err(error)) => {
                    tracing::error!(campaign = %collecting.id, %error, "campaign failed");
                    (CampaignState::Failed, Some(error.to_string()))
                }
                Err(join) => {
                    tracing::error!(campaign = %collecting.id, %join, "campaign task failed");
                    (
                        CampaignState::Failed,
                        Some("the campaign task failed".into()),
                    )
                }
            };
            if let Mode::Replay(stored, stored_detail) = mode {
                // Read back as it was: nothing to store.
                collecting.settle(stored, stored_detail);
                return;
            }
            collecting.settle(end, detail);
            if shutting_down.load(Ordering::SeqCst) {
                // Interrupted by the shutdown: stays "running" in the store for the next
                // coordinator.
                return;
            }
            let (now, why) = {
                let record = collecting.tally();
                (record.state, record.detail.clone())
            };
            if let Some(phase) = final_phase(now)
                && let Err(error) = collecting.persist(&*state, phase, why).await
            {
                tracing::error!(campaign = %collecting.id, %error, "could not store the campaign's end");
            }
        })
    }
}

impl<Q: WorkQueue, S: StateStore> CoordinatorBackend<Q, S> {
    /// Stores the campaign's record and every chunk of `chunks`, passing each row to the run
    /// (started here) through `rows`; `Err` at the first limit crossed or broken chunk.
    async fn upload(
        &self,
        unfinished: &mut Unfinished<'_, Q, S>,
        rows_rx: mpsc::Receiver<InputRow<()>>,
        rows: &mpsc::Sender<InputRow<()>>,
        mut chunks: AddressChunks,
    ) -> Result<SubmitOutcome, BackendError> {
        let campaign = unfinished.campaign.clone();
        campaign
            .persist(&*self.state, CampaignPhase::Uploading, None)
            .await
            .map_err(unavailable)?;
        unfinished.run = Some(self.start(&campaign, Source::Upload(rows_rx), Mode::New));
        campaign.settle(CampaignState::Running, None);
        let mut seen = HashSet::new();
        let (mut accepted, mut duplicate, mut invalid) = (0u64, 0u64, 0u64);
        let mut next_row = 0u64;
        let mut bytes = 0u64;
        while let Some(chunk) = chunks.next().await {
            let chunk = chunk?;
            if next_row.saturating_add(chunk.len() as u64) > self.limits.max_rows {
                return Err(BackendError::InvalidArgument(format!(
                    "a campaign holds at most {} entries",
                    self.limits.max_rows
                )));
            }
            bytes = chunk
                .iter()
                .fold(bytes, |sum, text| sum.saturating_add(text.len() as u64));
            if bytes > self.limits.max_submission_bytes {
                return Err(BackendError::ResourceExhausted(format!(
                    "a submission holds at most {} bytes of addresses; split the list",
                    self.limits.max_submission_bytes
                )));
            }
            // Stored before the coordinator sees a row of it: whatever it publishes can be
            // run again from the store after a restart.
            self.state
                .campaign_append_input(&campaign.id, next_row, &chunk)
                .await
                .map_err(unavailable)?;
            campaign.tally().total += chunk.len() as u64;
            for text in chunk {
                match count_entry(&text, &mut seen) {
                    Entry::Accepted => accepted += 1,
                    Entry::Duplicate => duplicate += 1,
                    Entry::Invalid => invalid += 1,
                }
                next_row += 1;
                // Waits while the run is behind (back-pressure to the client). The feeder only
                // goes away once the campaign is stopped (cancelled while still uploading):
                // the rest of the list is not needed.
                let _ = rows
                    .send(InputRow {
                        row: next_row,
                        text,
                        payload: (),
                    })
                    .await;
            }
        }
        // Stored while `rows` is still open, so the run cannot have ended (and stored its
        // end) before this; a cancel during the upload has stored its own final phase, which
        // this does not overwrite.
        campaign
            .persist(&*self.state, CampaignPhase::Running, None)
            .await
            .map_err(unavailable)?;
        Ok(SubmitOutcome {
            campaign_id: campaign.id.clone(),
            accepted,
            duplicate,
            invalid,
        })
    }
}

fn refuse_overrides(options: &SubmitOptions) -> Result<(), BackendError> {
    let overridden = [
        ("helo", options.helo.is_some()),
        ("mail_from", options.mail_from.is_some()),
        ("max_sessions", options.max_sessions.is_some()),
        ("rcpt_per_minute", options.rcpt_per_minute.is_some()),
        (
            "rcpt_per_transaction",
            options.rcpt_per_transaction.is_some(),
        ),
    ];
    let named: Vec<&str> = overridden
        .iter()
        .filter(|(_, set)| *set)
        .map(|(name, _)| *name)
        .collect();
    if named.is_empty() {
        return Ok(());
    }
    // The workers apply the fleet's settings to every batch; a per-campaign value would be
    // silently ignored, which is worse than a clear refusal.
    Err(BackendError::InvalidArgument(format!(
        "per-campaign overrides are not supported by this coordinator ({}); \
         configure them on the fleet",
        named.join(", ")
    )))
}

#[async_trait]
impl<Q: WorkQueue, S: StateStore> CampaignBackend for CoordinatorBackend<Q, S> {
    async fn submit(
        &self,
        options: SubmitOptions,
        chunks: AddressChunks,
    ) -> Result<SubmitOutcome, BackendError> {
        refuse_overrides(&options)?;
        let max_wait_ms = options.max_wait_secs.map(|s| u64::from(s) * 1000);
        let campaign = Campaign::new(
            CampaignId::random(),
            options.name.clone(),
            now_ms(),
            max_wait_ms,
        );
        // Nothing is stored before this: a refusal here leaves no trace.
        self.admit(campaign.clone())?;
        tracing::info!(campaign = %campaign.id, name = %options.name, "campaign submitted");
        let (rows, rows_rx) = mpsc::channel(UPLOAD_BUFFER);
        // Declared after `rows`, so dropped before it: on an early return the campaign is
        // stopped and forgotten before its input ends (never run as if it were whole).
        let mut unfinished = Unfinished {
            backend: self,
            campaign: campaign.clone(),
            run: None,
            settled: false,
        };
        let uploaded = self.upload(&mut unfinished, rows_rx, &rows, chunks).await;
        match uploaded {
            Ok(outcome) => {
                unfinished.settled = true;
                drop(rows);
                Ok(outcome)
            }
            Err(error) => {
                // Stopped, awaited and deleted while `rows` is still open: the run ends as
                // interrupted, never as done.
                unfinished.discard().await;
                drop(rows);
                Err(error)
            }
        }
    }

    async fn progress(&self, campaign: &CampaignId) -> Result<ProgressSnapshot, BackendError> {
        Ok(self.find(campaign)?.snapshot())
    }

    async fn results_since(
        &self,
        campaign: &CampaignId,
        cursor: u64,
        max: usize,
    ) -> Result<(Vec<ResultRecord>, u64), BackendError> {
        let campaign = self.find(campaign)?;
        let record = campaign.tally();
        let start = usize::try_from(cursor)
            .ok()
            .filter(|start| *start <= record.rows.len())
            .ok_or_else(|| {
                BackendError::InvalidArgument(format!("cursor {cursor} is past the results"))
            })?;
        let end = start.saturating_add(max).min(record.rows.len());
        let page = record.rows[start..end].to_vec();
        Ok((page, end as u64))
    }

    async fn cancel(&self, campaign: &CampaignId) -> Result<ProgressSnapshot, BackendError> {
        let campaign = self.find(campaign)?;
        campaign.settle(
            CampaignState::Cancelled,
            Some("cancelled by a client".into()),
        );
        campaign.stop.send_replace(true);
        let (now, why) = {
            let record = campaign.tally();
            (record.state, record.detail.clone())
        };
        if let Some(phase) = final_phase(now) {
            campaign
                .persist(&*self.state, phase, why)
                .await
                .map_err(unavailable)?;
        }
        Ok(campaign.snapshot())
    }

    async fn webhook_save(
        &self,
        campaign: &CampaignId,
        state: &WebhookState,
    ) -> Result<(), BackendError> {
        // Only for a campaign still served: an evicted one's store is deleted, and saving
        // would bring a stray key back.
        self.find(campaign)?;
        self.state
            .webhook_save(campaign, state)
            .await
            .map_err(unavailable)
    }

    async fn webhooks_to_resume(&self) -> Result<Vec<(CampaignId, WebhookState)>, BackendError> {
        Ok(std::mem::take(
            &mut *self
                .resumed_webhooks
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner()),
        ))
    }

    async fn verify_one(&self, address: &str) -> Result<Verdict, BackendError> {
        let (in_tx, in_rx) = mpsc::channel(1);
        let (out_tx, mut out_rx) = mpsc::channel(1);
        let (_stop_tx, stop) = watch::channel(false);
        let row = InputRow {
            row: 1,
            text: address.to_string(),
            payload: (),
        };
        in_tx
            .send(row)
            .await
            .map_err(|_| BackendError::Internal("the coordinator input closed".into()))?;
        drop(in_tx);
        let coordinator = self.coordinator.clone();
        let id = CampaignId::random();
        let run_id = id.clone();
        let run = tokio::spawn(async move { coordinator.run(run_id, in_rx, out_tx, stop).await });
        let out = out_rx.recv().await;
        let ran = run.await;
        // One address is not a campaign: nothing of it stays in the store.
        delete_stored(&self.state, id);
        match ran {
            Ok(Ok(_)) => {}
            Ok(Err(error)) => return Err(BackendError::Unavailable(error.to_string())),
            Err(join) => return Err(BackendError::Internal(join.to_string())),
        }
        out.map(|row| Verdict::clone(&row.verdict))
            .ok_or_else(|| BackendError::Internal("the coordinator gave no verdict".into()))
    }
}

#[cfg(test)]
mod tests;
