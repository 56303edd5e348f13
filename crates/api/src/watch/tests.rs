//! The watch loop on virtual time (`tokio::time::pause`): cadence, failure and shutdown.

use std::sync::Mutex;

use async_trait::async_trait;
use futures_util::StreamExt;
use rollcall_core::Verdict;
use rollcall_core::ports::Progress;

use super::*;
use crate::backend::{
    AddressChunks, BackendError, CampaignState, ResultRecord, SubmitOptions, SubmitOutcome,
};

/// A campaign that runs forever; `progress` fails once `fail_after` calls have been made.
struct Endless {
    calls: Mutex<u32>,
    fail_after: u32,
}

#[async_trait]
impl CampaignBackend for Endless {
    async fn submit(
        &self,
        _: SubmitOptions,
        _: AddressChunks,
    ) -> Result<SubmitOutcome, BackendError> {
        Err(BackendError::Internal("not used".into()))
    }

    async fn progress(&self, campaign: &CampaignId) -> Result<ProgressSnapshot, BackendError> {
        let mut calls = self.calls.lock().unwrap();
        *calls += 1;
        if *calls > self.fail_after {
            return Err(BackendError::Unavailable("store unreachable".into()));
        }
        Ok(snapshot(campaign, u64::from(*calls)))
    }

    async fn results_since(
        &self,
        _: &CampaignId,
        cursor: u64,
        _: usize,
    ) -> Result<(Vec<ResultRecord>, u64), BackendError> {
        Ok((Vec::new(), cursor))
    }

    async fn cancel(&self, campaign: &CampaignId) -> Result<ProgressSnapshot, BackendError> {
        Ok(snapshot(campaign, 0))
    }

    async fn verify_one(&self, _: &str) -> Result<Verdict, BackendError> {
        Err(BackendError::Internal("not used".into()))
    }
}

fn snapshot(campaign: &CampaignId, done: u64) -> ProgressSnapshot {
    ProgressSnapshot {
        campaign_id: campaign.clone(),
        state: CampaignState::Running,
        counts: Progress {
            total: 1_000_000,
            done,
            by_status: [done, 0, 0, 0],
        },
        rate_per_s: 1.0,
        detail: None,
    }
}

fn start(fail_after: u32, closing: Closing) -> BoxStream<v1::CampaignEvent> {
    let backend = Arc::new(Endless {
        calls: Mutex::new(0),
        fail_after,
    });
    let campaign = CampaignId::new("c1").unwrap();
    let watch = Watch {
        backend,
        campaign: campaign.clone(),
        include_results: true,
        pacing: WatchPacing::default(),
        closing,
    };
    watch.start(snapshot(&campaign, 0))
}

#[tokio::test(start_paused = true)]
async fn progress_comes_at_least_once_a_second_while_running() {
    let mut stream = start(u32::MAX, None);
    let mut last = Instant::now();
    for _ in 0..10 {
        let event = stream.next().await.unwrap().unwrap();
        assert!(matches!(event.event, Some(Event::Progress(_))));
        let now = Instant::now();
        assert!(
            now - last <= WatchPacing::default().progress_every,
            "gap of {:?}",
            now - last
        );
        last = now;
    }
}

#[tokio::test(start_paused = true)]
async fn a_backend_failure_ends_the_stream_with_its_status() {
    let mut stream = start(3, None);
    let mut progress = 0;
    let status = loop {
        match stream.next().await.unwrap() {
            Ok(_) => progress += 1,
            Err(status) => break status,
        }
    };
    assert_eq!(status.code(), tonic::Code::Unavailable);
    assert!(status.message().contains("store unreachable"));
    // The first event (given) plus the ones sent from the three good polls, at most.
    assert!((1..=4).contains(&progress), "{progress}");
    assert!(stream.next().await.is_none());
}

#[tokio::test(start_paused = true)]
async fn server_shutdown_ends_the_stream_with_unavailable() {
    let (tx, rx) = tokio::sync::watch::channel(false);
    let mut stream = start(u32::MAX, Some(rx));
    assert!(stream.next().await.unwrap().is_ok());
    tx.send(true).unwrap();
    let status = loop {
        match stream.next().await.unwrap() {
            Ok(_) => continue,
            Err(status) => break status,
        }
    };
    assert_eq!(status.code(), tonic::Code::Unavailable);
    assert!(stream.next().await.is_none());
}
