//! `CoordinatorBackend`: the `CampaignBackend` the gRPC service calls, over one engine
//! `Coordinator`.
//!
//! Each submitted campaign gets three tasks: a feeder (submitted rows into the coordinator's
//! bounded input, so the coordinator's back-pressure never stalls the client's upload), the
//! coordinator run itself, and a collector (output rows into the campaign's record). `submit`
//! returns once the client's stream has ended and every entry is parsed and counted; it does
//! not wait for probing. Its accepted/duplicate/invalid counts come from parsing each entry and
//! deduplicating it the way the coordinator does (local part case-folded, RFC 5321 2.4), so
//! they agree with the output rows' `duplicate` flags and `invalid_syntax` verdicts.
//!
//! Memory: a campaign's submitted rows wait in the feeder's queue until the coordinator takes
//! them, and every output row is kept (about 100 bytes plus the verdict) until the campaign is
//! evicted, which happens only to finished campaigns beyond `Limits::keep_finished`. Nothing is
//! persisted: see the crate documentation.

use std::collections::{HashMap, HashSet, VecDeque};
use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use futures_util::StreamExt;
use rollcall_api::{
    AddressChunks, BackendError, CampaignBackend, CampaignState, ProgressSnapshot, ResultRecord,
    SubmitOptions, SubmitOutcome,
};
use rollcall_core::ports::{StateStore, WorkQueue};
use rollcall_core::{CampaignId, EmailAddress, Verdict};
use rollcall_engine::coordinator::{Coordinator, InputRow, OutputRow};
use tokio::sync::{mpsc, watch};

use crate::Error;
use crate::campaign::Campaign;

/// Bounds on what the backend keeps in memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Most entries in one submission; a longer list is refused (INVALID_ARGUMENT).
    pub max_rows: u64,
    /// Finished (done, cancelled, failed) campaigns kept for `progress` and `results_since`;
    /// the oldest beyond this are forgotten when a new campaign is submitted.
    pub keep_finished: usize,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            max_rows: 2_000_000,
            keep_finished: 64,
        }
    }
}

/// Runs campaigns with a `Coordinator` and keeps their output rows in memory.
pub struct CoordinatorBackend<Q, S> {
    coordinator: Coordinator<Q, S>,
    limits: Limits,
    campaigns: Mutex<Campaigns>,
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

    /// Stops `campaign` and forgets it, as if it had never been submitted.
    fn forget(&self, campaign: &Campaign) {
        campaign.stop.send_replace(true);
        let mut campaigns = self.campaigns();
        campaigns.by_id.remove(&campaign.id);
        campaigns.order.retain(|kept| *kept != campaign.id);
    }
}

/// Forgets a campaign whose submission did not complete: also when the call is dropped
/// mid-upload (the client went away), so a cut-off list never runs as if it were whole.
struct Unfinished<'a, Q, S> {
    backend: &'a CoordinatorBackend<Q, S>,
    campaign: Arc<Campaign>,
    complete: bool,
}

impl<Q, S> Drop for Unfinished<'_, Q, S> {
    fn drop(&mut self) {
        if !self.complete {
            self.backend.forget(&self.campaign);
        }
    }
}

impl<Q: WorkQueue, S: StateStore> CoordinatorBackend<Q, S> {
    /// A backend running campaigns on `coordinator`.
    pub fn new(coordinator: Coordinator<Q, S>, limits: Limits) -> Result<Self, Error> {
        if limits.max_rows == 0 {
            return Err(Error::InvalidLimit("max_rows must be at least 1"));
        }
        Ok(CoordinatorBackend {
            coordinator,
            limits,
            campaigns: Mutex::new(Campaigns::default()),
        })
    }

    /// Stops every campaign that is still running (on shutdown). Their state becomes
    /// `Cancelled` with `detail` saying why.
    pub fn stop_all(&self, detail: &str) {
        for campaign in self.campaigns().by_id.values() {
            campaign.settle(CampaignState::Cancelled, Some(detail.to_string()));
            campaign.stop.send_replace(true);
        }
    }

    fn find(&self, id: &CampaignId) -> Result<Arc<Campaign>, BackendError> {
        self.campaigns()
            .by_id
            .get(id)
            .cloned()
            .ok_or_else(|| BackendError::NotFound(format!("campaign {id}")))
    }

    fn register(&self, campaign: Arc<Campaign>) {
        let mut campaigns = self.campaigns();
        let finished: Vec<CampaignId> = campaigns
            .order
            .iter()
            .filter(|id| {
                campaigns
                    .by_id
                    .get(*id)
                    .is_some_and(|c| c.record().state.is_final())
            })
            .cloned()
            .collect();
        let excess = finished.len().saturating_sub(self.limits.keep_finished);
        for id in finished.into_iter().take(excess) {
            campaigns.by_id.remove(&id);
            campaigns.order.retain(|kept| *kept != id);
        }
        campaigns.order.push_back(campaign.id.clone());
        campaigns.by_id.insert(campaign.id.clone(), campaign);
    }

    /// Starts the coordinator run of `campaign` and its collector; returns where to send rows.
    fn start(&self, campaign: &Arc<Campaign>) -> mpsc::UnboundedSender<InputRow<()>> {
        let (rows_tx, rows_rx) = mpsc::unbounded_channel();
        let (in_tx, in_rx) = mpsc::channel(1024);
        let (out_tx, out_rx) = mpsc::channel(1024);
        tokio::spawn(feed(rows_rx, in_tx, campaign.stop.subscribe()));
        let coordinator = self.coordinator.clone();
        let id = campaign.id.clone();
        let stop = campaign.stop.subscribe();
        let run = tokio::spawn(async move { coordinator.run(id, in_rx, out_tx, stop).await });
        let collecting = campaign.clone();
        tokio::spawn(async move {
            collect(&collecting, out_rx).await;
            let (state, detail) = match run.await {
                Ok(Ok(summary)) if summary.interrupted => (
                    CampaignState::Cancelled,
                    Some("stopped before every address had its result".to_string()),
                ),
                Ok(Ok(_)) => (CampaignState::Done, None),
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
            collecting.settle(state, detail);
        });
        campaign.settle(CampaignState::Running, None);
        rows_tx
    }
}

/// Moves submitted rows into the coordinator's bounded input until they run out or the
/// campaign is stopped.
async fn feed(
    mut rows: mpsc::UnboundedReceiver<InputRow<()>>,
    input: mpsc::Sender<InputRow<()>>,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        let row = tokio::select! {
            row = rows.recv() => row,
            _ = stop.wait_for(|s| *s) => None,
        };
        let Some(row) = row else { return };
        tokio::select! {
            sent = input.send(row) => if sent.is_err() { return },
            _ = stop.wait_for(|s| *s) => return,
        }
    }
}

/// Records every output row of the run (rows are numbered from 1 on the way in).
async fn collect(campaign: &Campaign, mut output: mpsc::Receiver<OutputRow<()>>) {
    while let Some(row) = output.recv().await {
        campaign.push(row.row.saturating_sub(1), row.duplicate, row.verdict);
    }
}

/// How one submitted entry counts, and the dedupe key of the coordinator.
enum Entry {
    Accepted,
    Duplicate,
    Invalid,
}

fn classify(text: &str, seen: &mut HashSet<u64>) -> Entry {
    let Ok(address) = EmailAddress::parse(text) else {
        return Entry::Invalid;
    };
    let mut hasher = DefaultHasher::new();
    address.local_part().to_lowercase().hash(&mut hasher);
    address.domain().as_str().hash(&mut hasher);
    if seen.insert(hasher.finish()) {
        Entry::Accepted
    } else {
        Entry::Duplicate
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
        mut chunks: AddressChunks,
    ) -> Result<SubmitOutcome, BackendError> {
        refuse_overrides(&options)?;
        let campaign = Campaign::new(CampaignId::random());
        tracing::info!(campaign = %campaign.id, name = %options.name, "campaign submitted");
        self.register(campaign.clone());
        let rows = self.start(&campaign);
        // Declared after `rows`, so dropped first: the campaign is stopped before its input
        // ends.
        let mut unfinished = Unfinished {
            backend: self,
            campaign: campaign.clone(),
            complete: false,
        };
        let mut seen = HashSet::new();
        let (mut accepted, mut duplicate, mut invalid) = (0u64, 0u64, 0u64);
        let mut next_row = 0u64;
        while let Some(chunk) = chunks.next().await {
            let chunk = match chunk {
                Ok(chunk) => chunk,
                Err(error) => return Err(error),
            };
            if next_row.saturating_add(chunk.len() as u64) > self.limits.max_rows {
                return Err(BackendError::InvalidArgument(format!(
                    "a campaign holds at most {} entries",
                    self.limits.max_rows
                )));
            }
            campaign.record().total += chunk.len() as u64;
            for text in chunk {
                match classify(&text, &mut seen) {
                    Entry::Accepted => accepted += 1,
                    Entry::Duplicate => duplicate += 1,
                    Entry::Invalid => invalid += 1,
                }
                next_row += 1;
                // The feeder only goes away once the campaign is stopped (cancelled while
                // still uploading): the rest of the list is not needed.
                let _ = rows.send(InputRow {
                    row: next_row,
                    text,
                    payload: (),
                });
            }
        }
        unfinished.complete = true;
        Ok(SubmitOutcome {
            campaign_id: campaign.id.clone(),
            accepted,
            duplicate,
            invalid,
        })
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
        let record = campaign.record();
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
        Ok(campaign.snapshot())
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
        let run = tokio::spawn(async move {
            coordinator
                .run(CampaignId::random(), in_rx, out_tx, stop)
                .await
        });
        let out = out_rx.recv().await;
        match run.await {
            Ok(Ok(_)) => {}
            Ok(Err(error)) => return Err(BackendError::Unavailable(error.to_string())),
            Err(join) => return Err(BackendError::Internal(join.to_string())),
        }
        out.map(|row| Verdict::clone(&row.verdict))
            .ok_or_else(|| BackendError::Internal("the coordinator gave no verdict".into()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_count_like_the_coordinator_dedupes() {
        let mut seen = HashSet::new();
        assert!(matches!(
            classify("a@example.com", &mut seen),
            Entry::Accepted
        ));
        assert!(matches!(
            classify("A@Example.COM", &mut seen),
            Entry::Duplicate
        ));
        assert!(matches!(
            classify("b@example.com", &mut seen),
            Entry::Accepted
        ));
        assert!(matches!(
            classify("not an address", &mut seen),
            Entry::Invalid
        ));
    }

    #[tokio::test]
    async fn a_submission_cut_off_mid_upload_is_forgotten() {
        use rollcall_core::ports::{MemoryQueue, MemoryState};
        let resolver = rollcall_dns::MxResolver::new(rollcall_dns::ResolverConfig {
            nameservers: vec![([127, 0, 0, 1], 9).into()],
            ..rollcall_dns::ResolverConfig::default()
        })
        .unwrap();
        let coordinator = Coordinator::new(
            Arc::new(MemoryQueue::new()),
            Arc::new(MemoryState::new()),
            resolver,
            Arc::new(rollcall_engine::config::EngineConfig::default()),
        );
        let backend = CoordinatorBackend::new(coordinator, Limits::default()).unwrap();
        // One chunk, then the client goes quiet: the call is dropped before the end.
        let first: Result<Vec<String>, BackendError> = Ok(vec!["a@example.com".into()]);
        let chunks: AddressChunks =
            Box::pin(futures_util::stream::iter([first]).chain(futures_util::stream::pending()));
        let submit = backend.submit(SubmitOptions::default(), chunks);
        let cut = tokio::time::timeout(std::time::Duration::from_millis(50), submit).await;
        assert!(cut.is_err(), "the submission cannot complete");
        assert!(backend.campaigns().by_id.is_empty());
        assert!(backend.campaigns().order.is_empty());
    }

    #[test]
    fn overrides_are_refused_by_name() {
        assert!(refuse_overrides(&SubmitOptions::default()).is_ok());
        let options = SubmitOptions {
            helo: Some("x.example".into()),
            ..SubmitOptions::default()
        };
        match refuse_overrides(&options) {
            Err(BackendError::InvalidArgument(why)) => assert!(why.contains("helo")),
            other => panic!("unexpected {other:?}"),
        }
    }
}
