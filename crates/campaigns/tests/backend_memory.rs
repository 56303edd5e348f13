//! `CoordinatorBackend` over the in-memory queue and state, without workers: the calls'
//! contracts (counts, result pages and cursors, unknown campaigns, cancel) on lists that need
//! no probing, or that cannot finish because DNS never answers; and what a backend started on
//! the same store after another one stopped picks up (`resume`).

use std::sync::Arc;
use std::time::Duration;

use futures_util::stream;
use rollcall_api::{AddressChunks, BackendError, CampaignBackend, CampaignState, SubmitOptions};
use rollcall_campaigns::{CoordinatorBackend, Limits};
use rollcall_core::CampaignId;
use rollcall_core::ports::{
    CampaignPhase, CampaignRecord, MemoryQueue, MemoryState, StateStore, WebhookState,
};
use rollcall_dns::{MxResolver, ResolverConfig};
use rollcall_engine::config::EngineConfig;
use rollcall_engine::coordinator::Coordinator;

/// A backend whose DNS is a loopback socket that never answers.
async fn backend(
    limits: Limits,
) -> (
    CoordinatorBackend<MemoryQueue, MemoryState>,
    tokio::net::UdpSocket,
) {
    backend_on(Arc::new(MemoryState::new()), limits).await
}

/// A backend on `state` (shared with the backends "restarted" after it).
async fn backend_on(
    state: Arc<MemoryState>,
    limits: Limits,
) -> (
    CoordinatorBackend<MemoryQueue, MemoryState>,
    tokio::net::UdpSocket,
) {
    let silent = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let resolver = MxResolver::new(ResolverConfig {
        nameservers: vec![silent.local_addr().unwrap()],
        allow_private_targets: true,
        timeout: Duration::from_secs(30),
        ..ResolverConfig::default()
    })
    .unwrap();
    let coordinator = Coordinator::new(
        Arc::new(MemoryQueue::new()),
        state,
        resolver,
        Arc::new(EngineConfig::default()),
    )
    .keeping_results();
    (
        CoordinatorBackend::new(coordinator, limits).unwrap(),
        silent,
    )
}

fn chunks(lists: &[&[&str]]) -> AddressChunks {
    let items: Vec<Result<Vec<String>, BackendError>> = lists
        .iter()
        .map(|l| Ok(l.iter().map(|s| s.to_string()).collect()))
        .collect();
    Box::pin(stream::iter(items))
}

/// Waits until `id` has `done` rows out.
async fn until_done(
    backend: &CoordinatorBackend<MemoryQueue, MemoryState>,
    id: &CampaignId,
    done: u64,
) -> rollcall_api::ProgressSnapshot {
    for _ in 0..200 {
        let progress = backend.progress(id).await.unwrap();
        if progress.counts.done >= done {
            return progress;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("the campaign did not get {done} rows out");
}

async fn stored_phases(state: &MemoryState) -> Vec<(CampaignId, CampaignPhase)> {
    state
        .campaign_list()
        .await
        .unwrap()
        .into_iter()
        .map(|r| (r.id, r.phase))
        .collect()
}

async fn until_final(
    backend: &CoordinatorBackend<MemoryQueue, MemoryState>,
    id: &CampaignId,
) -> rollcall_api::ProgressSnapshot {
    for _ in 0..200 {
        let progress = backend.progress(id).await.unwrap();
        if progress.state.is_final() {
            return progress;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("the campaign did not finish");
}

#[tokio::test]
async fn invalid_rows_finish_and_page_by_cursor() {
    let (backend, _dns) = backend(Limits::default()).await;
    let outcome = backend
        .submit(
            SubmitOptions::default(),
            chunks(&[&["nope", "a b"], &["nope@", "@x"], &["still no"]]),
        )
        .await
        .unwrap();
    assert_eq!(
        (outcome.accepted, outcome.duplicate, outcome.invalid),
        (0, 0, 5)
    );
    let id = outcome.campaign_id;
    let progress = until_final(&backend, &id).await;
    assert_eq!(progress.state, CampaignState::Done);
    assert_eq!((progress.counts.total, progress.counts.done), (5, 5));
    assert_eq!(progress.counts.by_status.iter().sum::<u64>(), 5);

    let (first, cursor) = backend.results_since(&id, 0, 2).await.unwrap();
    assert_eq!((first.len(), cursor), (2, 2));
    let (again, same) = backend.results_since(&id, 0, 2).await.unwrap();
    assert_eq!((again, same), (first.clone(), 2));
    let (rest, end) = backend.results_since(&id, cursor, 100).await.unwrap();
    assert_eq!((rest.len(), end), (3, 5));
    let (none, still) = backend.results_since(&id, end, 100).await.unwrap();
    assert!(none.is_empty());
    assert_eq!(still, 5);
    let mut rows: Vec<u64> = first.iter().chain(&rest).map(|r| r.row).collect();
    rows.sort();
    assert_eq!(
        rows,
        vec![0, 1, 2, 3, 4],
        "rows are 0-based submission positions"
    );
    assert!(matches!(
        backend.results_since(&id, 6, 1).await,
        Err(BackendError::InvalidArgument(_))
    ));
}

#[tokio::test]
async fn unknown_campaigns_are_not_found() {
    let (backend, _dns) = backend(Limits::default()).await;
    let id = CampaignId::random();
    assert!(matches!(
        backend.progress(&id).await,
        Err(BackendError::NotFound(_))
    ));
    assert!(matches!(
        backend.results_since(&id, 0, 10).await,
        Err(BackendError::NotFound(_))
    ));
    assert!(matches!(
        backend.cancel(&id).await,
        Err(BackendError::NotFound(_))
    ));
}

#[tokio::test]
async fn cancel_stops_a_stuck_campaign_and_stays_cancelled() {
    let (backend, _dns) = backend(Limits::default()).await;
    let outcome = backend
        .submit(
            SubmitOptions::default(),
            chunks(&[&["a@slow.example", "A@slow.example", "b@slow.example"]]),
        )
        .await
        .unwrap();
    assert_eq!(
        (outcome.accepted, outcome.duplicate, outcome.invalid),
        (2, 1, 0)
    );
    let id = outcome.campaign_id;
    assert_eq!(
        backend.progress(&id).await.unwrap().state,
        CampaignState::Running
    );
    let cancelled = backend.cancel(&id).await.unwrap();
    assert_eq!(cancelled.state, CampaignState::Cancelled);
    let progress = until_final(&backend, &id).await;
    // The run returning afterwards does not turn it into Done.
    tokio::time::sleep(Duration::from_millis(100)).await;
    let progress_later = backend.progress(&id).await.unwrap();
    assert_eq!(progress.state, CampaignState::Cancelled);
    assert_eq!(progress_later.state, CampaignState::Cancelled);
    assert!(progress_later.counts.done < 3);
}

#[tokio::test]
async fn bad_submissions_are_refused_and_old_campaigns_evicted() {
    let (backend, _dns) = backend(Limits {
        max_rows: 2,
        keep_finished: 1,
        ..Limits::default()
    })
    .await;
    let refused = backend
        .submit(SubmitOptions::default(), chunks(&[&["x", "y"], &["z"]]))
        .await;
    assert!(matches!(refused, Err(BackendError::InvalidArgument(_))));

    let broken: AddressChunks = Box::pin(stream::iter(vec![
        Ok(vec!["x".to_string()]),
        Err(BackendError::InvalidArgument("options sent twice".into())),
    ]));
    let result = backend.submit(SubmitOptions::default(), broken).await;
    assert_eq!(
        result,
        Err(BackendError::InvalidArgument("options sent twice".into()))
    );

    let overrides = SubmitOptions {
        max_sessions: Some(3),
        ..SubmitOptions::default()
    };
    assert!(matches!(
        backend.submit(overrides, chunks(&[&["x"]])).await,
        Err(BackendError::InvalidArgument(_))
    ));

    // Only finished campaigns beyond `keep_finished` are forgotten, oldest first.
    let first = backend
        .submit(SubmitOptions::default(), chunks(&[&["x"]]))
        .await
        .unwrap()
        .campaign_id;
    until_final(&backend, &first).await;
    let second = backend
        .submit(SubmitOptions::default(), chunks(&[&["y"]]))
        .await
        .unwrap()
        .campaign_id;
    until_final(&backend, &second).await;
    let _third = backend
        .submit(SubmitOptions::default(), chunks(&[&["z"]]))
        .await
        .unwrap();
    assert!(matches!(
        backend.progress(&first).await,
        Err(BackendError::NotFound(_))
    ));
    assert!(backend.progress(&second).await.is_ok());
}

#[tokio::test]
async fn a_restarted_backend_goes_on_with_running_campaigns_and_reads_back_finished_ones() {
    let state = Arc::new(MemoryState::new());
    // Two rows wait for DNS that never answers; two are invalid and come out at once.
    let (first, _dns) = backend_on(state.clone(), Limits::default()).await;
    let running = first
        .submit(
            SubmitOptions::default(),
            chunks(&[&["a@slow.example", "nope"], &["b@slow.example", "no pe"]]),
        )
        .await
        .unwrap()
        .campaign_id;
    let finished = first
        .submit(SubmitOptions::default(), chunks(&[&["x", "y"]]))
        .await
        .unwrap()
        .campaign_id;
    until_final(&first, &finished).await;
    until_done(&first, &running, 2).await;
    // A shutdown interrupts the run but leaves it running in the store.
    first.stop_all("the coordinator shut down");
    tokio::time::sleep(Duration::from_millis(100)).await;
    let mut phases = stored_phases(&state).await;
    phases.sort_by_key(|(_, phase)| *phase != CampaignPhase::Running);
    assert_eq!(
        phases,
        vec![
            (running.clone(), CampaignPhase::Running),
            (finished.clone(), CampaignPhase::Done),
        ]
    );
    drop(first);

    let (second, _dns2) = backend_on(state.clone(), Limits::default()).await;
    assert_eq!(second.resume().await.unwrap(), 2);
    let progress = until_done(&second, &running, 2).await;
    assert_eq!(progress.state, CampaignState::Running);
    assert_eq!(progress.counts.total, 4);
    let done = until_final(&second, &finished).await;
    assert_eq!(done.state, CampaignState::Done);
    assert_eq!((done.counts.total, done.counts.done), (2, 2));
    let (rows, _) = second.results_since(&finished, 0, 10).await.unwrap();
    let mut positions: Vec<u64> = rows.iter().map(|r| r.row).collect();
    positions.sort_unstable();
    assert_eq!(positions, vec![0, 1]);

    // Cancelled on the second: a third reads it back cancelled, with the rows it had.
    second.cancel(&running).await.unwrap();
    until_final(&second, &running).await;
    drop(second);
    let (third, _dns3) = backend_on(state.clone(), Limits::default()).await;
    assert_eq!(third.resume().await.unwrap(), 2);
    let cancelled = until_final(&third, &running).await;
    assert_eq!(cancelled.state, CampaignState::Cancelled);
    assert_eq!(cancelled.detail.as_deref(), Some("cancelled by a client"));
    assert_eq!(
        (cancelled.counts.total, cancelled.counts.done),
        (4, 2),
        "the two invalid rows, read back; nothing else was verified"
    );
}

#[tokio::test]
async fn a_campaign_cut_off_while_uploading_fails_after_a_restart() {
    let state = Arc::new(MemoryState::new());
    let id = CampaignId::random();
    state
        .campaign_save(&CampaignRecord {
            id: id.clone(),
            name: "cut off".into(),
            phase: CampaignPhase::Uploading,
            detail: None,
            rows: 0,
            created_ms: 1,
            max_wait_ms: None,
        })
        .await
        .unwrap();
    state
        .campaign_append_input(&id, 0, &["nope".to_string()])
        .await
        .unwrap();
    let (backend, _dns) = backend_on(state.clone(), Limits::default()).await;
    assert_eq!(backend.resume().await.unwrap(), 1);
    let progress = until_final(&backend, &id).await;
    assert_eq!(progress.state, CampaignState::Failed);
    assert!(progress.detail.unwrap().contains("uploaded"));
    assert_eq!((progress.counts.total, progress.counts.done), (0, 0));
    assert_eq!(
        stored_phases(&state).await,
        vec![(id.clone(), CampaignPhase::Failed)]
    );
    assert!(
        state.campaign_input(&id, 0, 10).await.unwrap().is_empty(),
        "the partial upload is deleted"
    );
}

#[tokio::test]
async fn forgotten_campaigns_leave_nothing_in_the_store() {
    let state = Arc::new(MemoryState::new());
    let (backend, _dns) = backend_on(
        state.clone(),
        Limits {
            max_rows: 10,
            keep_finished: 1,
            ..Limits::default()
        },
    )
    .await;
    // Refused mid-upload: forgotten.
    let refused = backend
        .submit(SubmitOptions::default(), chunks(&[&["x"], &["y"; 10]]))
        .await;
    assert!(matches!(refused, Err(BackendError::InvalidArgument(_))));
    let mut ids = Vec::new();
    for _ in 0..3 {
        let id = backend
            .submit(SubmitOptions::default(), chunks(&[&["x"]]))
            .await
            .unwrap()
            .campaign_id;
        until_final(&backend, &id).await;
        ids.push(id);
    }
    // Submitting the third evicted the first (one finished campaign is kept besides).
    tokio::time::sleep(Duration::from_millis(100)).await;
    let stored: Vec<CampaignId> = stored_phases(&state)
        .await
        .into_iter()
        .map(|(id, _)| id)
        .collect();
    assert_eq!(stored, ids[1..].to_vec());
    assert!(
        state
            .campaign_input(&ids[0], 0, 10)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        state.campaign_input(&ids[2], 0, 10).await.unwrap(),
        vec!["x"]
    );

    // A restarted backend keeps the newest finished one only.
    let (again, _dns2) = backend_on(
        state.clone(),
        Limits {
            max_rows: 10,
            keep_finished: 1,
            ..Limits::default()
        },
    )
    .await;
    assert_eq!(again.resume().await.unwrap(), 1);
    assert!(again.progress(&ids[2]).await.is_ok());
    assert!(matches!(
        again.progress(&ids[1]).await,
        Err(BackendError::NotFound(_))
    ));
    assert_eq!(stored_phases(&state).await.len(), 1);
}

#[tokio::test]
async fn a_campaigns_max_wait_is_taken_and_stored_for_a_restart() {
    let state = Arc::new(MemoryState::new());
    let (backend, _dns) = backend_on(state.clone(), Limits::default()).await;
    let options = SubmitOptions {
        max_wait_secs: Some(90),
        ..SubmitOptions::default()
    };
    let id = backend
        .submit(options, chunks(&[&["x@example.test"]]))
        .await
        .expect("a max wait is an option the fleet applies, not a refused override")
        .campaign_id;
    let stored = state.campaign_list().await.unwrap();
    let record = stored.iter().find(|r| r.id == id).expect("stored");
    assert_eq!(record.max_wait_ms, Some(90_000));
}

#[tokio::test]
async fn a_restarted_backend_hands_back_the_unfinished_webhooks_once() {
    let state = Arc::new(MemoryState::new());
    let (first, _dns) = backend_on(state.clone(), Limits::default()).await;
    let submit =
        |rows: &'static [&'static str]| first.submit(SubmitOptions::default(), chunks(&[rows]));
    let open = submit(&["nope", "no pe"]).await.unwrap().campaign_id;
    let through = submit(&["x"]).await.unwrap().campaign_id;
    let unknown = CampaignId::random();
    let mut hook = WebhookState::new("http://127.0.0.1:9/".into(), "k".into(), None);
    hook.delivered = [0u64].into_iter().collect();
    first.webhook_save(&open, &hook).await.unwrap();
    let done = WebhookState {
        completed: true,
        ..hook.clone()
    };
    first.webhook_save(&through, &done).await.unwrap();
    assert!(
        matches!(
            first.webhook_save(&unknown, &hook).await,
            Err(BackendError::NotFound(_))
        ),
        "no webhook state for a campaign not served"
    );
    assert!(first.webhooks_to_resume().await.unwrap().is_empty());
    until_final(&first, &open).await;
    until_final(&first, &through).await;
    drop(first);

    let (second, _dns2) = backend_on(state.clone(), Limits::default()).await;
    assert_eq!(second.resume().await.unwrap(), 2);
    assert_eq!(
        second.webhooks_to_resume().await.unwrap(),
        vec![(open.clone(), hook)],
        "the finished campaign whose completion is not delivered, not the delivered one"
    );
    assert!(second.webhooks_to_resume().await.unwrap().is_empty());
    assert!(state.webhook_load(&unknown).await.unwrap().is_none());
}
