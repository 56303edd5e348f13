//! Call limits over gRPC: `Verify` calls beyond `max_concurrent_verify` and calls beyond
//! `requests_per_minute` for one token fail at once with RESOURCE_EXHAUSTED, without reaching
//! the backend.

mod common;

use std::num::{NonZeroU32, NonZeroUsize};

use common::{TestServer, within};
use rollcall_api::v1::{GetCampaignRequest, VerifyRequest};
use rollcall_api::{CallLimits, connect};

fn limits(verify: usize, per_minute: u32) -> CallLimits {
    CallLimits {
        max_concurrent_verify: NonZeroUsize::new(verify).unwrap(),
        requests_per_minute: NonZeroU32::new(per_minute).unwrap(),
    }
}

fn verify(address: &str) -> VerifyRequest {
    VerifyRequest {
        address: address.into(),
    }
}

#[tokio::test]
async fn verify_calls_beyond_the_limit_are_resource_exhausted() {
    let server = TestServer::start_with_limits(None, limits(1, 10_000)).await;
    server.fake.hold_verify(true);
    let mut first = connect(&server.url, None).await.unwrap();
    let held = tokio::spawn(async move { first.verify(verify("ok.a@example.com")).await });
    within(server.fake.verify_entered()).await;

    let mut second = connect(&server.url, None).await.unwrap();
    let refused = second.verify(verify("ok.b@example.com")).await.unwrap_err();
    assert_eq!(refused.code(), tonic::Code::ResourceExhausted);
    assert!(
        refused.message().contains("at most 1 Verify"),
        "{refused:?}"
    );
    assert_eq!(
        server.fake.verify_calls(),
        1,
        "the refused call reached the backend"
    );

    server.fake.hold_verify(false);
    server.fake.release_verify();
    within(held).await.unwrap().unwrap();
    // The slot is free again once the first call has its answer.
    second.verify(verify("ok.b@example.com")).await.unwrap();
    assert_eq!(server.fake.verify_calls(), 2);
}

#[tokio::test]
async fn calls_beyond_the_rate_of_a_token_are_resource_exhausted() {
    let server = TestServer::start_with_limits(Some("s3cret"), limits(16, 3)).await;
    // Refused for their token, not counted.
    let mut wrong = connect(&server.url, Some("wr0ng".into())).await.unwrap();
    for _ in 0..5 {
        let e = wrong.verify(verify("ok@example.com")).await.unwrap_err();
        assert_eq!(e.code(), tonic::Code::Unauthenticated);
    }

    let mut client = connect(&server.url, Some("s3cret".into())).await.unwrap();
    // Three calls of any kind fit (3 per minute, a minute's worth at once)...
    client.verify(verify("ok@example.com")).await.unwrap();
    for _ in 0..2 {
        let e = client
            .get_campaign(GetCampaignRequest {
                campaign_id: "nope".into(),
            })
            .await
            .unwrap_err();
        assert_eq!(e.code(), tonic::Code::NotFound);
    }
    // ...the fourth does not, and never reaches the backend.
    let refused = client.verify(verify("ok@example.com")).await.unwrap_err();
    assert_eq!(refused.code(), tonic::Code::ResourceExhausted);
    assert!(
        refused.message().contains("3 calls per minute"),
        "{refused:?}"
    );
    assert!(rollcall_api::Error::from(refused).is_transient());
    assert_eq!(server.fake.verify_calls(), 1);
}
