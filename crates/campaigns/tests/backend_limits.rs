//! What a client cannot make `CoordinatorBackend` do: store a list larger than
//! `max_submission_bytes` (refused, and nothing of it left in Redis), run more than
//! `max_running_campaigns` at once, or push rows faster than the coordinator takes them.
//!
//! The "nothing left" test needs Redis on 127.0.0.1:6379 (its own key prefix); the others run
//! over the in-memory store. DNS is a loopback socket that never answers, so no row finishes.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use futures_util::{StreamExt, stream};
use rollcall_api::{AddressChunks, BackendError, CampaignBackend, SubmitOptions};
use rollcall_campaigns::{CoordinatorBackend, Limits};
use rollcall_core::ports::{MemoryQueue, MemoryState, StateStore};
use rollcall_dns::{MxResolver, ResolverConfig};
use rollcall_engine::config::EngineConfig;
use rollcall_engine::coordinator::Coordinator;
use rollcall_redis::RedisState;

const REDIS: &str = "redis://127.0.0.1:6379";

/// A backend over `state` whose DNS never answers (the socket is returned to keep it open).
async fn backend_on<S: StateStore>(
    state: Arc<S>,
    limits: Limits,
    engine: EngineConfig,
) -> (CoordinatorBackend<MemoryQueue, S>, tokio::net::UdpSocket) {
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
        Arc::new(engine),
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

/// Every key under `prefix` in the test Redis.
fn redis_keys(prefix: &str) -> Vec<String> {
    let client = redis::Client::open(REDIS).unwrap();
    let mut con = client.get_connection().unwrap();
    redis::cmd("KEYS")
        .arg(format!("{prefix}*"))
        .query(&mut con)
        .unwrap()
}

#[tokio::test]
async fn an_oversized_submission_is_refused_and_leaves_nothing_in_redis() {
    let prefix = format!("rcsvclimits-{:016x}", rand::random::<u64>());
    let state = Arc::new(
        RedisState::connect(REDIS, &prefix)
            .await
            .expect("Redis on 127.0.0.1:6379"),
    );
    let limits = Limits {
        // The first chunk (26 bytes) fits, the second crosses the limit.
        max_submission_bytes: 30,
        ..Limits::default()
    };
    let (backend, _dns) = backend_on(state.clone(), limits, EngineConfig::default()).await;
    let refused = backend
        .submit(
            SubmitOptions::default(),
            chunks(&[&["a@example.com", "b@example.com"], &["c@example.com"]]),
        )
        .await;
    match refused {
        Err(BackendError::ResourceExhausted(why)) => assert!(why.contains("30 bytes"), "{why}"),
        other => panic!("expected RESOURCE_EXHAUSTED, got {other:?}"),
    }
    // Deleted before the call returned: no record, no input, nothing else.
    assert!(state.campaign_list().await.unwrap().is_empty());
    assert_eq!(redis_keys(&prefix), Vec::<String>::new());

    // A list within the limit is taken.
    let taken = backend
        .submit(SubmitOptions::default(), chunks(&[&["a@example.com"]]))
        .await
        .unwrap();
    assert_eq!(taken.accepted, 1);
    assert_eq!(
        state
            .campaign_input(&taken.campaign_id, 0, 10)
            .await
            .unwrap(),
        vec!["a@example.com"]
    );
    backend.cancel(&taken.campaign_id).await.unwrap();
    backend.stop_all("the test is over");
    state.campaign_delete(&taken.campaign_id).await.unwrap();
}

#[tokio::test]
async fn submissions_beyond_the_running_limit_are_refused_before_anything_is_stored() {
    let state = Arc::new(MemoryState::new());
    let limits = Limits {
        max_running_campaigns: 1,
        ..Limits::default()
    };
    let (backend, _dns) = backend_on(state.clone(), limits, EngineConfig::default()).await;
    // Cannot finish: its DNS never answers.
    let running = backend
        .submit(SubmitOptions::default(), chunks(&[&["a@example.com"]]))
        .await
        .unwrap()
        .campaign_id;

    let refused = backend
        .submit(SubmitOptions::default(), chunks(&[&["b@example.com"]]))
        .await;
    match refused {
        Err(BackendError::ResourceExhausted(why)) => {
            assert!(why.contains("at most 1 at once"), "{why}")
        }
        other => panic!("expected RESOURCE_EXHAUSTED, got {other:?}"),
    }
    let stored: Vec<_> = state
        .campaign_list()
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.id)
        .collect();
    assert_eq!(stored, vec![running.clone()]);

    // Once it is cancelled, there is room again.
    backend.cancel(&running).await.unwrap();
    backend
        .submit(SubmitOptions::default(), chunks(&[&["b@example.com"]]))
        .await
        .unwrap();
}

#[tokio::test]
async fn the_upload_waits_for_the_coordinator_instead_of_queueing_the_list() {
    let state = Arc::new(MemoryState::new());
    let limits = Limits {
        max_rows: u64::MAX,
        max_submission_bytes: u64::MAX,
        ..Limits::default()
    };
    // The coordinator takes one row and, its DNS never answering, waits on it.
    let engine = EngineConfig {
        max_outstanding: 1,
        ..EngineConfig::default()
    };
    let (backend, _dns) = backend_on(state, limits, engine).await;
    // An endless list, 100 distinct addresses a chunk, counting the chunks pulled from it.
    let pulled = Arc::new(AtomicUsize::new(0));
    let counter = pulled.clone();
    let endless: AddressChunks = Box::pin(stream::iter(0u64..).map(move |chunk| {
        counter.fetch_add(1, Ordering::SeqCst);
        Ok((0..100)
            .map(|i| format!("u{i}@d{chunk}.example"))
            .collect::<Vec<_>>())
    }));
    let submit = backend.submit(SubmitOptions::default(), endless);
    // Cannot complete (the list never ends); the window only gives an unbounded queue time to
    // swallow far more than the bound below.
    let cut = tokio::time::timeout(Duration::from_secs(2), submit).await;
    assert!(cut.is_err(), "an endless submission cannot complete");
    // Upload buffer, coordinator input and the rows in hand: about 2,050 rows, 21 chunks.
    let pulled = pulled.load(Ordering::SeqCst);
    assert!(
        pulled <= 30,
        "{pulled} chunks of 100 pulled from the client"
    );
}
