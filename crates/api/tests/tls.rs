//! The Verifier service over TLS (rustls, ring) with a CA generated for the test (rcgen):
//! a client that trusts the CA is served; one that does not, or speaks plaintext, is not; with
//! mutual TLS, only a client presenting a certificate of the client CA gets through.

mod common;

use common::pki::Ca;
use common::{TestServer, within};
use rollcall_api::v1::submit_campaign_request::Payload;
use rollcall_api::v1::{AddressChunk, CampaignOptions, SubmitCampaignRequest};
use rollcall_api::{Client, ClientTls, Error, ServerTls, connect, connect_with_tls};

fn server_tls(ca: &Ca) -> ServerTls {
    let leaf = ca.server();
    ServerTls::from_pem(leaf.cert.as_bytes(), leaf.key.as_bytes()).unwrap()
}

fn mtls(ca: &Ca, client_ca: &Ca) -> ServerTls {
    server_tls(ca)
        .require_client_certs(client_ca.pem.as_bytes())
        .unwrap()
}

fn trusting(ca: &Ca) -> ClientTls {
    ClientTls::trusting(ca.pem.as_bytes()).unwrap()
}

/// Submits two addresses; the counts the server answers, or the error of connect or call.
async fn submit(client: Result<Client, Error>) -> Result<(u64, u64), String> {
    let mut client = client.map_err(|e| format!("connect: {e:?}"))?;
    let messages = vec![
        SubmitCampaignRequest {
            payload: Some(Payload::Options(CampaignOptions {
                name: "over-tls".into(),
                ..CampaignOptions::default()
            })),
        },
        SubmitCampaignRequest {
            payload: Some(Payload::Chunk(AddressChunk {
                addresses: vec!["ok1@example.com".into(), "not-an-address".into()],
            })),
        },
    ];
    let response = within(client.submit_campaign(tokio_stream::iter(messages)))
        .await
        .map_err(|s| format!("call: {s:?}"))?
        .into_inner();
    Ok((response.accepted, response.invalid))
}

#[tokio::test]
async fn a_client_trusting_the_ca_is_served_over_tls() {
    let ca = Ca::new("rollcall test CA");
    let server = TestServer::start_tls(Some("t0ken"), server_tls(&ca)).await;
    assert!(
        server.url.starts_with("https://127.0.0.1:"),
        "{}",
        server.url
    );
    let client = connect_with_tls(&server.url, Some("t0ken".into()), Some(&trusting(&ca))).await;
    assert_eq!(submit(client).await, Ok((1, 1)));
}

#[tokio::test]
async fn a_client_without_the_ca_is_refused() {
    let ca = Ca::new("rollcall test CA");
    let server = TestServer::start_tls(None, server_tls(&ca)).await;
    // The public roots (the default for https://) do not know the test CA.
    let public = submit(connect(&server.url, None).await).await;
    let e = public.unwrap_err();
    assert!(e.contains("UnknownIssuer"), "{e}");
    // Nor does another private CA.
    let other = Ca::new("another CA");
    let e = submit(connect_with_tls(&server.url, None, Some(&trusting(&other))).await)
        .await
        .unwrap_err();
    assert!(e.contains("UnknownIssuer"), "{e}");
}

#[tokio::test]
async fn a_plaintext_client_gets_nothing_from_a_tls_server() {
    let ca = Ca::new("rollcall test CA");
    let server = TestServer::start_tls(None, server_tls(&ca)).await;
    let plain = server.url.replacen("https://", "http://", 1);
    let answered = submit(connect(&plain, None).await).await;
    assert!(answered.is_err(), "{answered:?}");
    assert_eq!(server.fake.campaign_count(), 0);
}

#[tokio::test]
async fn tls_settings_with_an_http_url_are_refused_before_connecting() {
    let ca = Ca::new("rollcall test CA");
    let server = TestServer::start(None).await;
    let e = connect_with_tls(&server.url, None, Some(&trusting(&ca)))
        .await
        .err()
        .unwrap();
    assert!(matches!(e, Error::TlsNeedsHttps { .. }), "{e}");
}

#[tokio::test]
async fn mtls_refuses_a_client_without_a_certificate() {
    let ca = Ca::new("rollcall test CA");
    let clients = Ca::new("rollcall client CA");
    let server = TestServer::start_tls(None, mtls(&ca, &clients)).await;
    let answered = submit(connect_with_tls(&server.url, None, Some(&trusting(&ca))).await).await;
    assert!(answered.is_err(), "{answered:?}");
    assert_eq!(server.fake.campaign_count(), 0);
}

#[tokio::test]
async fn mtls_refuses_a_client_certificate_of_another_ca() {
    let ca = Ca::new("rollcall test CA");
    let clients = Ca::new("rollcall client CA");
    let server = TestServer::start_tls(None, mtls(&ca, &clients)).await;
    // Signed by the server's CA, which is not the client CA.
    let stranger = ca.client("stranger");
    let tls = trusting(&ca)
        .with_client_cert(stranger.cert.as_bytes(), stranger.key.as_bytes())
        .unwrap();
    let answered = submit(connect_with_tls(&server.url, None, Some(&tls)).await).await;
    assert!(answered.is_err(), "{answered:?}");
    assert_eq!(server.fake.campaign_count(), 0);
}

#[tokio::test]
async fn mtls_serves_a_client_with_a_certificate_of_the_client_ca() {
    let ca = Ca::new("rollcall test CA");
    let clients = Ca::new("rollcall client CA");
    let server = TestServer::start_tls(Some("t0ken"), mtls(&ca, &clients)).await;
    let worker = clients.client("submitter-1");
    let tls = trusting(&ca)
        .with_client_cert(worker.cert.as_bytes(), worker.key.as_bytes())
        .unwrap();
    let answered =
        submit(connect_with_tls(&server.url, Some("t0ken".into()), Some(&tls)).await).await;
    assert_eq!(answered, Ok((1, 1)));
    assert_eq!(server.fake.campaign_count(), 1);
}
