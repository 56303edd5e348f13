//! The coordinator backend: submissions, limits, campaigns and their results.

use super::*;

#[test]
fn entries_count_like_the_coordinator_dedupes() {
    let mut seen = HashSet::new();
    assert!(matches!(
        count_entry("a@example.com", &mut seen),
        Entry::Accepted
    ));
    assert!(matches!(
        count_entry("A@Example.COM", &mut seen),
        Entry::Duplicate
    ));
    assert!(matches!(
        count_entry("b@example.com", &mut seen),
        Entry::Accepted
    ));
    assert!(matches!(
        count_entry("not an address", &mut seen),
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
