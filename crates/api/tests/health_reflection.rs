//! Health and reflection: always served, with or without a token.

mod common;

use common::{TestServer, within};
use tonic::transport::Channel;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;
use tonic_reflection::pb::v1::ServerReflectionRequest;
use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;

async fn channel(url: &str) -> Channel {
    Channel::from_shared(url.to_owned())
        .unwrap()
        .connect()
        .await
        .unwrap()
}

#[tokio::test]
async fn health_reports_serving_without_a_token() {
    let server = TestServer::start(Some("s3cret")).await;
    let mut health = HealthClient::new(channel(&server.url).await);
    for service in ["", rollcall_api::SERVICE_NAME] {
        let r = within(health.check(HealthCheckRequest {
            service: service.into(),
        }))
        .await
        .unwrap()
        .into_inner();
        assert_eq!(r.status(), ServingStatus::Serving, "service {service:?}");
    }
    let e = health
        .check(HealthCheckRequest {
            service: "no.such.Service".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), tonic::Code::NotFound);
}

#[tokio::test]
async fn reflection_lists_the_verifier() {
    let server = TestServer::start(Some("s3cret")).await;
    let mut reflection = ServerReflectionClient::new(channel(&server.url).await);
    let request = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let mut responses = within(reflection.server_reflection_info(tokio_stream::iter([request])))
        .await
        .unwrap()
        .into_inner();
    let response = within(responses.message()).await.unwrap().unwrap();
    let Some(MessageResponse::ListServicesResponse(list)) = response.message_response else {
        panic!("unexpected reflection answer: {response:?}");
    };
    let names: Vec<_> = list.service.iter().map(|s| s.name.as_str()).collect();
    assert!(names.contains(&"rollcall.v1.Verifier"), "{names:?}");
    assert!(names.contains(&"grpc.health.v1.Health"), "{names:?}");

    // The schema itself is served too: the file that defines the service.
    let request = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::FileContainingSymbol(
            "rollcall.v1.Verifier".into(),
        )),
    };
    let mut responses = reflection
        .server_reflection_info(tokio_stream::iter([request]))
        .await
        .unwrap()
        .into_inner();
    let response = within(responses.message()).await.unwrap().unwrap();
    let Some(MessageResponse::FileDescriptorResponse(files)) = response.message_response else {
        panic!("unexpected reflection answer: {response:?}");
    };
    assert!(!files.file_descriptor_proto.is_empty());
}
