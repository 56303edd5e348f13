//! One campaign as the backend remembers it: its output rows in the order they came out, its
//! counts by status, its state and a recent rate. Owns no task (the backend's tasks fill it);
//! what the store keeps of it (`CampaignRecord`) is written by the backend through `persist`.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use rollcall_api::{CampaignState, ProgressSnapshot, ResultRecord};
use rollcall_core::ports::{
    CampaignPhase, CampaignRecord, Progress, StateStore, StoreError, status_index,
};
use rollcall_core::{CampaignId, Verdict};
use tokio::sync::watch;

/// The rate is measured over this much recent time.
const RATE_WINDOW: Duration = Duration::from_secs(10);
/// Samples for the rate are taken at most this often.
const SAMPLE_EVERY: Duration = Duration::from_millis(250);

/// A campaign shared by the backend's calls and the tasks that run it.
pub(crate) struct Campaign {
    pub id: CampaignId,
    pub name: String,
    /// When it was submitted (ms since the epoch).
    pub created_ms: u64,
    /// Its own bound on retry waits in ms (0: none); `None`: the workers' setting.
    pub max_wait_ms: Option<u64>,
    /// Turning true stops the coordinator run (and the feeding of its input).
    pub stop: watch::Sender<bool>,
    tally: Mutex<Tally>,
    /// Serialises writes of the stored record; true once a final phase is stored (nothing
    /// overwrites it after that, so a late "running" never undoes "done" or "cancelled").
    stored_final: tokio::sync::Mutex<bool>,
}

/// What the campaign has come to so far: its state, counts and output rows.
pub(crate) struct Tally {
    pub state: CampaignState,
    pub detail: Option<String>,
    /// Rows submitted so far.
    pub total: u64,
    pub by_status: [u64; 4],
    /// Output rows in the order they came out; `results_since` cursors index this.
    pub rows: Vec<ResultRecord>,
    /// (when, rows out) samples within `RATE_WINDOW`, oldest first.
    samples: VecDeque<(Instant, u64)>,
}

impl Campaign {
    pub fn new(
        id: CampaignId,
        name: String,
        created_ms: u64,
        max_wait_ms: Option<u64>,
    ) -> Arc<Campaign> {
        Arc::new(Campaign {
            id,
            name,
            created_ms,
            max_wait_ms,
            stored_final: tokio::sync::Mutex::new(false),
            stop: watch::Sender::new(false),
            tally: Mutex::new(Tally {
                state: CampaignState::Pending,
                detail: None,
                total: 0,
                by_status: [0; 4],
                rows: Vec::new(),
                samples: VecDeque::new(),
            }),
        })
    }

    /// The record, even if a task panicked while holding it (its counts are still the best
    /// there is; nothing in it can be left half-written by the short sections below).
    pub fn tally(&self) -> MutexGuard<'_, Tally> {
        self.tally
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Records one output row (`row` is 0-based).
    pub fn push(&self, row: u64, duplicate: bool, verdict: Arc<Verdict>) {
        let mut record = self.tally();
        record.by_status[status_index(verdict.status())] += 1;
        record.rows.push(ResultRecord {
            row,
            duplicate,
            verdict,
        });
        let now = Instant::now();
        let out = record.rows.len() as u64;
        if record
            .samples
            .back()
            .is_none_or(|(at, _)| now.duration_since(*at) >= SAMPLE_EVERY)
        {
            record.samples.push_back((now, out));
        }
        while record
            .samples
            .front()
            .is_some_and(|(at, _)| now.duration_since(*at) > RATE_WINDOW)
        {
            record.samples.pop_front();
        }
    }

    /// Moves to `state` unless the campaign is already final (a cancel is not undone by the
    /// run returning afterwards).
    pub fn settle(&self, state: CampaignState, detail: Option<String>) {
        let mut record = self.tally();
        if !record.state.is_final() {
            record.state = state;
            record.detail = detail;
        }
    }

    /// Writes what the store keeps of this campaign: `phase`, `detail` and the rows submitted
    /// so far. A final phase, once stored, is never overwritten.
    pub async fn persist<S: StateStore + ?Sized>(
        &self,
        state: &S,
        phase: CampaignPhase,
        detail: Option<String>,
    ) -> Result<(), StoreError> {
        let mut stored_final = self.stored_final.lock().await;
        if *stored_final {
            return Ok(());
        }
        let rows = self.tally().total;
        state
            .campaign_save(&CampaignRecord {
                id: self.id.clone(),
                name: self.name.clone(),
                phase,
                detail,
                rows,
                created_ms: self.created_ms,
                max_wait_ms: self.max_wait_ms,
            })
            .await?;
        *stored_final = phase.is_final();
        Ok(())
    }

    pub fn snapshot(&self) -> ProgressSnapshot {
        let record = self.tally();
        let done = record.rows.len() as u64;
        ProgressSnapshot {
            campaign_id: self.id.clone(),
            state: record.state,
            counts: Progress {
                total: record.total,
                done,
                by_status: record.by_status,
            },
            rate_per_s: if record.state.is_final() {
                0.0
            } else {
                record.rate(done)
            },
            detail: record.detail.clone(),
        }
    }
}

impl Tally {
    /// Rows per second over the recent window (0 when nothing moved in it).
    fn rate(&self, done: u64) -> f64 {
        let Some(&(since, at_start)) = self.samples.front() else {
            return 0.0;
        };
        let elapsed = since.elapsed();
        if elapsed > RATE_WINDOW || elapsed < SAMPLE_EVERY {
            return 0.0;
        }
        done.saturating_sub(at_start) as f64 / elapsed.as_secs_f64()
    }
}

/// The API's state of a stored phase.
pub(crate) fn state_of(phase: CampaignPhase) -> CampaignState {
    match phase {
        CampaignPhase::Uploading => CampaignState::Pending,
        CampaignPhase::Running => CampaignState::Running,
        CampaignPhase::Done => CampaignState::Done,
        CampaignPhase::Cancelled => CampaignState::Cancelled,
        CampaignPhase::Failed => CampaignState::Failed,
    }
}

/// The stored phase of a final API state (`None` for a state that is not final).
pub(crate) fn final_phase(state: CampaignState) -> Option<CampaignPhase> {
    match state {
        CampaignState::Done => Some(CampaignPhase::Done),
        CampaignState::Cancelled => Some(CampaignPhase::Cancelled),
        CampaignState::Failed => Some(CampaignPhase::Failed),
        CampaignState::Pending | CampaignState::Running => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rollcall_core::Reason;

    fn verdict() -> Arc<Verdict> {
        let error = match rollcall_core::EmailAddress::parse("nope") {
            Err(error) => error,
            Ok(_) => panic!("`nope` parsed"),
        };
        Arc::new(Verdict::for_syntax_error("nope", &error))
    }

    #[test]
    fn rows_count_by_status_and_a_cancel_sticks() {
        let campaign = Campaign::new(CampaignId::random(), "test".into(), 0, None);
        campaign.tally().total = 2;
        campaign.settle(CampaignState::Running, None);
        campaign.push(0, false, verdict());
        campaign.push(1, true, verdict());
        let snap = campaign.snapshot();
        assert_eq!(snap.counts.done, 2);
        assert_eq!(snap.counts.by_status.iter().sum::<u64>(), 2);
        assert_eq!(snap.state, CampaignState::Running);
        assert_eq!(verdict().reason(), Reason::InvalidSyntax);

        campaign.settle(CampaignState::Cancelled, Some("by request".into()));
        campaign.settle(CampaignState::Done, None);
        let snap = campaign.snapshot();
        assert_eq!(snap.state, CampaignState::Cancelled);
        assert_eq!(snap.detail.as_deref(), Some("by request"));
        assert_eq!(snap.rate_per_s, 0.0);
    }
}
