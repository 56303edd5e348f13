//! The Verifier service end to end over loopback, against the fake coordinator in `common`.

mod common;

use std::collections::BTreeSet;

use common::{TestServer, within};
use rollcall_api::v1::campaign_event::Event;
use rollcall_api::v1::submit_campaign_request::Payload;
use rollcall_api::v1::{
    AddressChunk, CampaignOptions, CampaignState, CancelCampaignRequest, GetCampaignRequest,
    ListResultsRequest, Progress, Reason, Status, SubmitCampaignRequest, VerificationResult,
    VerifyRequest, WatchCampaignRequest,
};
use rollcall_api::{Client, connect};

fn options(name: &str) -> SubmitCampaignRequest {
    SubmitCampaignRequest {
        payload: Some(Payload::Options(CampaignOptions {
            name: name.into(),
            helo: Some("probe.example.net".into()),
            max_sessions: Some(3),
            ..CampaignOptions::default()
        })),
    }
}

fn chunk(addresses: &[&str]) -> SubmitCampaignRequest {
    SubmitCampaignRequest {
        payload: Some(Payload::Chunk(AddressChunk {
            addresses: addresses.iter().map(|a| (*a).to_owned()).collect(),
        })),
    }
}

/// Six rows in three chunks: four distinct addresses, one duplicate (case differs in the
/// domain), one that is not an address.
fn three_chunks(name: &str) -> Vec<SubmitCampaignRequest> {
    vec![
        options(name),
        chunk(&["ok1@example.com", "nobody@example.com"]),
        chunk(&["ok1@EXAMPLE.com", "not-an-address"]),
        chunk(&["catchall@example.org", "grey@example.net"]),
    ]
}

async fn submit(client: &mut Client, messages: Vec<SubmitCampaignRequest>) -> String {
    let response = within(client.submit_campaign(tokio_stream::iter(messages)))
        .await
        .unwrap()
        .into_inner();
    response.campaign_id
}

fn watch_request(id: &str, include_results: bool) -> WatchCampaignRequest {
    WatchCampaignRequest {
        campaign_id: id.into(),
        include_results,
    }
}

/// Reads the rest of a watch stream.
async fn collect_events(
    stream: &mut tonic::Streaming<rollcall_api::v1::CampaignEvent>,
) -> Vec<Event> {
    let mut events = Vec::new();
    while let Some(event) = within(stream.message()).await.unwrap() {
        events.push(event.event.unwrap());
    }
    events
}

fn progress(event: &Event) -> Option<&Progress> {
    match event {
        Event::Progress(p) => Some(p),
        Event::Result(_) => None,
    }
}

fn rows(results: &[&VerificationResult]) -> BTreeSet<u64> {
    results.iter().map(|r| r.row).collect()
}

#[tokio::test]
async fn submit_in_three_chunks_counts_accepted_duplicate_invalid() {
    let server = TestServer::start(None).await;
    let mut client = connect(&server.url, None).await.unwrap();
    let response = within(client.submit_campaign(tokio_stream::iter(three_chunks("nightly"))))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        (response.accepted, response.duplicate, response.invalid),
        (4, 1, 1)
    );
    assert!(!response.campaign_id.is_empty());
    let options = server.fake.options(&response.campaign_id);
    assert_eq!(options.name, "nightly");
    assert_eq!(options.helo.as_deref(), Some("probe.example.net"));
    assert_eq!(options.max_sessions, Some(3));
    assert_eq!(options.rcpt_per_minute, None);
}

#[tokio::test]
async fn submit_out_of_order_is_invalid_argument() {
    let server = TestServer::start(None).await;
    let mut client = connect(&server.url, None).await.unwrap();

    let chunk_first = vec![chunk(&["ok@example.com"]), options("x")];
    let e = client
        .submit_campaign(tokio_stream::iter(chunk_first))
        .await
        .unwrap_err();
    assert_eq!(e.code(), tonic::Code::InvalidArgument);
    assert!(e.message().contains("first message"), "{}", e.message());

    let options_twice = vec![options("x"), chunk(&["ok@example.com"]), options("y")];
    let e = client
        .submit_campaign(tokio_stream::iter(options_twice))
        .await
        .unwrap_err();
    assert_eq!(e.code(), tonic::Code::InvalidArgument);
    assert!(
        e.message().contains("options sent twice"),
        "{}",
        e.message()
    );

    let zero_sessions = vec![SubmitCampaignRequest {
        payload: Some(Payload::Options(CampaignOptions {
            max_sessions: Some(0),
            ..CampaignOptions::default()
        })),
    }];
    let e = client
        .submit_campaign(tokio_stream::iter(zero_sessions))
        .await
        .unwrap_err();
    assert_eq!(e.code(), tonic::Code::InvalidArgument);

    let e = client
        .submit_campaign(tokio_stream::iter(Vec::new()))
        .await
        .unwrap_err();
    assert_eq!(e.code(), tonic::Code::InvalidArgument);
}

#[tokio::test]
async fn watch_gives_progress_first_then_results_as_they_land_then_final_progress() {
    let server = TestServer::start(None).await;
    let mut client = connect(&server.url, None).await.unwrap();
    let id = submit(&mut client, three_chunks("watched")).await;

    let mut stream = within(client.watch_campaign(watch_request(&id, true)))
        .await
        .unwrap()
        .into_inner();

    // The current state first: running, the invalid entry already has its result.
    let first = within(stream.message())
        .await
        .unwrap()
        .unwrap()
        .event
        .unwrap();
    let first = progress(&first)
        .expect("the first event is progress")
        .clone();
    assert_eq!(first.campaign_id, id);
    assert_eq!(first.state(), CampaignState::Running);
    assert_eq!((first.total, first.done), (6, 1));
    assert_eq!(first.undeliverable, 1);
    assert_eq!(first.eta_s, Some(1.0));

    // The result already recorded (row 3, invalid) comes next, before anything else lands.
    let mut seen = Vec::new();
    while seen.is_empty() {
        match within(stream.message())
            .await
            .unwrap()
            .unwrap()
            .event
            .unwrap()
        {
            Event::Result(r) => seen.push(r),
            Event::Progress(p) => assert_eq!(p.state(), CampaignState::Running),
        }
    }
    assert_eq!(seen[0].row, 3);
    assert_eq!(seen[0].reason(), Reason::InvalidSyntax);

    // Two more land while the campaign runs: they arrive on the open stream.
    server.fake.land(&id, 2);
    while seen.len() < 3 {
        match within(stream.message())
            .await
            .unwrap()
            .unwrap()
            .event
            .unwrap()
        {
            Event::Result(r) => seen.push(r),
            Event::Progress(p) => assert_eq!(p.state(), CampaignState::Running),
        }
    }
    assert_eq!(seen[1].row, 0);
    assert_eq!(seen[1].status(), Status::Deliverable);
    assert_eq!(seen[2].row, 1);
    assert_eq!(seen[2].reason(), Reason::MailboxNotFound);
    assert_eq!(
        (seen[2].smtp_code, seen[2].enhanced_code.as_str()),
        (550, "5.1.1")
    );

    // The rest lands and the campaign is done: remaining results, then the final progress,
    // then the end of the stream.
    server.fake.land(&id, 10);
    let rest = collect_events(&mut stream).await;
    let last = progress(rest.last().unwrap()).expect("the last event is progress");
    assert_eq!(last.state(), CampaignState::Done);
    assert_eq!((last.total, last.done), (6, 6));
    assert_eq!(
        (
            last.deliverable,
            last.undeliverable,
            last.risky,
            last.unknown
        ),
        (2, 2, 1, 1)
    );
    assert_eq!(last.eta_s, Some(0.0));
    for event in &rest[..rest.len() - 1] {
        if let Some(p) = progress(event) {
            assert_ne!(p.state(), CampaignState::Done, "final progress sent twice");
        }
    }
    seen.extend(rest.into_iter().filter_map(|e| match e {
        Event::Result(r) => Some(r),
        Event::Progress(_) => None,
    }));
    // Every row exactly once.
    assert_eq!(seen.len(), 6);
    assert_eq!(rows(&seen.iter().collect::<Vec<_>>()), (0..6).collect());
    let duplicate: Vec<_> = seen.iter().filter(|r| r.duplicate).collect();
    assert_eq!(duplicate.len(), 1);
    assert_eq!(duplicate[0].row, 2);
    assert_eq!(duplicate[0].address, "ok1@example.com");
}

#[tokio::test]
async fn watch_without_results_sends_only_progress() {
    let server = TestServer::start(None).await;
    let mut client = connect(&server.url, None).await.unwrap();
    let id = submit(&mut client, three_chunks("quiet")).await;
    let mut stream = client
        .watch_campaign(watch_request(&id, false))
        .await
        .unwrap()
        .into_inner();
    let first = within(stream.message())
        .await
        .unwrap()
        .unwrap()
        .event
        .unwrap();
    assert_eq!(progress(&first).unwrap().state(), CampaignState::Running);
    server.fake.land(&id, 10);
    let rest = collect_events(&mut stream).await;
    assert!(rest.iter().all(|e| progress(e).is_some()));
    assert_eq!(
        progress(rest.last().unwrap()).unwrap().state(),
        CampaignState::Done
    );
}

#[tokio::test]
async fn late_watcher_after_done_gets_the_final_state_and_the_stream_ends() {
    let server = TestServer::start(None).await;
    let mut client = connect(&server.url, None).await.unwrap();
    let id = submit(&mut client, three_chunks("late")).await;
    server.fake.land(&id, 10);

    let mut stream = client
        .watch_campaign(watch_request(&id, false))
        .await
        .unwrap()
        .into_inner();
    let events = collect_events(&mut stream).await;
    assert_eq!(events.len(), 1, "{events:?}");
    let p = progress(&events[0]).unwrap();
    assert_eq!((p.state(), p.done), (CampaignState::Done, 6));

    // With results: the state, every result, the final state again, the end.
    let mut stream = client
        .watch_campaign(watch_request(&id, true))
        .await
        .unwrap()
        .into_inner();
    let events = collect_events(&mut stream).await;
    assert_eq!(events.len(), 8, "{events:?}");
    assert_eq!(progress(&events[0]).unwrap().state(), CampaignState::Done);
    assert_eq!(progress(&events[7]).unwrap().state(), CampaignState::Done);
    assert!(events[1..7].iter().all(|e| matches!(e, Event::Result(_))));
}

#[tokio::test]
async fn list_results_streams_all_recorded_results() {
    let server = TestServer::start(None).await;
    let mut client = connect(&server.url, None).await.unwrap();
    let id = submit(&mut client, three_chunks("listed")).await;
    server.fake.land(&id, 10);

    let mut stream = client
        .list_results(ListResultsRequest {
            campaign_id: id.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    let mut results = Vec::new();
    while let Some(r) = within(stream.message()).await.unwrap() {
        results.push(r);
    }
    // The pacing's page is 2: six results take several pages.
    assert_eq!(results.len(), 6);
    assert_eq!(rows(&results.iter().collect::<Vec<_>>()), (0..6).collect());
    let catch_all = results.iter().find(|r| r.row == 4).unwrap();
    assert_eq!(
        (catch_all.status(), catch_all.reason()),
        (Status::Risky, Reason::CatchAll)
    );
    assert_eq!(catch_all.mx_host, "mx.example.org");
}

#[tokio::test]
async fn get_and_cancel_campaign() {
    let server = TestServer::start(None).await;
    let mut client = connect(&server.url, None).await.unwrap();
    let id = submit(&mut client, three_chunks("to-cancel")).await;
    server.fake.land(&id, 1);

    let p = client
        .get_campaign(GetCampaignRequest {
            campaign_id: id.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!((p.state(), p.total, p.done), (CampaignState::Running, 6, 2));

    let p = client
        .cancel_campaign(CancelCampaignRequest {
            campaign_id: id.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(p.state(), CampaignState::Cancelled);
    assert_eq!(p.done, 2);
    assert_eq!(p.detail, "cancelled by a client");

    // A watcher after the cancel sees the final state only.
    let mut stream = client
        .watch_campaign(watch_request(&id, false))
        .await
        .unwrap()
        .into_inner();
    let events = collect_events(&mut stream).await;
    assert_eq!(events.len(), 1);
    assert_eq!(
        progress(&events[0]).unwrap().state(),
        CampaignState::Cancelled
    );

    // Unknown and malformed ids.
    let e = client
        .get_campaign(GetCampaignRequest {
            campaign_id: "c999".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), tonic::Code::NotFound);
    let e = client
        .watch_campaign(watch_request("c999", true))
        .await
        .unwrap_err();
    assert_eq!(e.code(), tonic::Code::NotFound);
    let e = client
        .list_results(ListResultsRequest {
            campaign_id: "c999".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), tonic::Code::NotFound);
    let e = client
        .cancel_campaign(CancelCampaignRequest {
            campaign_id: "no such}id".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), tonic::Code::InvalidArgument);
}

#[tokio::test]
async fn verify_one_address() {
    let server = TestServer::start(None).await;
    let mut client = connect(&server.url, None).await.unwrap();
    let r = client
        .verify(VerifyRequest {
            address: "ok.alice@example.com".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        (r.status(), r.reason(), r.smtp_code),
        (Status::Deliverable, Reason::Accepted, 250)
    );
    assert_eq!((r.row, r.duplicate), (0, false));
    let verdict = rollcall_core::Verdict::try_from(&r).unwrap();
    assert_eq!(verdict.reason(), rollcall_core::Reason::Accepted);

    let r = client
        .verify(VerifyRequest {
            address: "no at sign".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        (r.status(), r.reason()),
        (Status::Undeliverable, Reason::InvalidSyntax)
    );
    assert!(!r.detail.is_empty());
}

#[tokio::test]
async fn token_is_required_when_configured() {
    let server = TestServer::start(Some("s3cret")).await;
    let verify = VerifyRequest {
        address: "ok@example.com".into(),
    };

    let mut anonymous = connect(&server.url, None).await.unwrap();
    let e = anonymous.verify(verify.clone()).await.unwrap_err();
    assert_eq!(e.code(), tonic::Code::Unauthenticated);
    assert!(rollcall_api::Error::from(e).is_unauthenticated());
    let e = anonymous
        .submit_campaign(tokio_stream::iter(three_chunks("x")))
        .await
        .unwrap_err();
    assert_eq!(e.code(), tonic::Code::Unauthenticated);

    let mut wrong = connect(&server.url, Some("s3cre7".into())).await.unwrap();
    let e = wrong.verify(verify.clone()).await.unwrap_err();
    assert_eq!(e.code(), tonic::Code::Unauthenticated);

    let mut right = connect(&server.url, Some("s3cret".into())).await.unwrap();
    let r = right.verify(verify).await.unwrap().into_inner();
    assert_eq!(r.status(), Status::Deliverable);
    let id = submit(&mut right, three_chunks("authed")).await;
    assert!(!id.is_empty());
}

#[tokio::test]
async fn bad_url_and_token_fail_before_connecting() {
    let e = connect("not a url", None).await.unwrap_err();
    assert!(matches!(e, rollcall_api::Error::InvalidUrl { .. }), "{e}");
    let e = connect("http://127.0.0.1:9", Some("two words".into()))
        .await
        .unwrap_err();
    assert!(matches!(e, rollcall_api::Error::InvalidToken), "{e}");
}

#[tokio::test]
async fn empty_server_token_is_refused() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let backend = std::sync::Arc::new(common::FakeCoordinator::default());
    let e = rollcall_api::serve(listener, backend, Some(" ".into()), std::future::pending())
        .await
        .unwrap_err();
    assert!(matches!(e, rollcall_api::Error::InvalidToken));
}

#[tokio::test]
async fn shutdown_ends_open_watches_with_unavailable() {
    let mut server = TestServer::start(None).await;
    let mut client = connect(&server.url, None).await.unwrap();
    let id = submit(&mut client, three_chunks("shutdown")).await;
    let mut stream = client
        .watch_campaign(watch_request(&id, true))
        .await
        .unwrap()
        .into_inner();
    within(stream.message()).await.unwrap().unwrap();

    server.stop();
    let end = within(async {
        loop {
            match stream.message().await {
                Ok(Some(_)) => continue,
                other => return other,
            }
        }
    })
    .await;
    let status = end.unwrap_err();
    assert_eq!(status.code(), tonic::Code::Unavailable);
    within(&mut server.task).await.unwrap().unwrap();
}
