//! Serving: the Verifier service behind bearer auth, plus health and reflection, on a listener.
//!
//! Owns `serve` and `serve_service` (plaintext) and their `_with_tls` forms (TLS, optionally
//! requiring client certificates). Health (`grpc.health.v1`) and reflection
//! (`grpc.reflection.v1`) are deliberately outside the token check: load balancers and
//! orchestrators probe health without credentials, and reflection only describes the public
//! schema. Every `rollcall.v1.Verifier` call is behind it. It does not pick the address or read
//! configuration (the CLI does).

use std::future::Future;
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio_stream::wrappers::TcpListenerStream;
use tonic::transport::Server;

use crate::auth::BearerAuth;
use crate::backend::CampaignBackend;
use crate::error::Error;
use crate::service::VerifierService;
use crate::tls::ServerTls;
use crate::v1::verifier_server::VerifierServer;

/// Serves `backend` on `listener` until `shutdown` resolves, then drains: open watch and list
/// streams end with UNAVAILABLE ("reconnect to resume") and in-flight calls finish.
///
/// With `token` set, every Verifier call needs `authorization: Bearer <token>`.
pub async fn serve<B: CampaignBackend>(
    listener: TcpListener,
    backend: Arc<B>,
    token: Option<String>,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), Error> {
    serve_service(listener, VerifierService::new(backend), token, shutdown).await
}

/// Like `serve`, over TLS when `tls` is set (health and reflection too: one port, one
/// protocol). With `tls` requiring client certificates, a client without one signed by its CA
/// fails the handshake before any call, token or not.
pub async fn serve_with_tls<B: CampaignBackend>(
    listener: TcpListener,
    backend: Arc<B>,
    token: Option<String>,
    tls: Option<ServerTls>,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), Error> {
    serve_service_with_tls(
        listener,
        VerifierService::new(backend),
        token,
        tls,
        shutdown,
    )
    .await
}

/// Like `serve`, with a service configured by the caller (e.g. its watch pacing).
pub async fn serve_service<B: CampaignBackend>(
    listener: TcpListener,
    service: VerifierService<B>,
    token: Option<String>,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), Error> {
    serve_service_with_tls(listener, service, token, None, shutdown).await
}

/// Like `serve_service`, over TLS when `tls` is set (see `serve_with_tls`).
pub async fn serve_service_with_tls<B: CampaignBackend>(
    listener: TcpListener,
    service: VerifierService<B>,
    token: Option<String>,
    tls: Option<ServerTls>,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), Error> {
    if token.as_deref().is_some_and(|t| t.trim().is_empty()) {
        // An empty token would lock every client out; refuse it as a configuration error.
        return Err(Error::InvalidToken);
    }
    let (closing_tx, closing_rx) = tokio::sync::watch::channel(false);
    let service = service.with_closing(closing_rx);

    let (health, health_service) = tonic_health::server::health_reporter();
    health
        .set_serving::<VerifierServer<VerifierService<B>>>()
        .await;
    let reflection = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(crate::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1()?;

    let auth = BearerAuth::new(token);
    let local = listener.local_addr().ok();
    let mut server = Server::builder();
    if let Some(tls) = &tls {
        // The inputs were checked when `tls` was built, so this fails only on what rustls
        // refuses beyond them; no connection is taken in plaintext either way.
        server = server.tls_config(tls.config())?;
    }
    tracing::info!(
        addr = ?local,
        auth = auth.is_enabled(),
        tls = tls.is_some(),
        mtls = tls.as_ref().is_some_and(ServerTls::requires_client_certs),
        "gRPC server listening"
    );

    let reporter = health.clone();
    let shutdown = async move {
        shutdown.await;
        tracing::info!("gRPC server shutting down");
        reporter
            .set_not_serving::<VerifierServer<VerifierService<B>>>()
            .await;
        reporter
            .set_service_status("", tonic_health::ServingStatus::NotServing)
            .await;
        // Ignored error: no stream is open, nobody to tell.
        let _ = closing_tx.send(true);
    };

    server
        .add_service(health_service)
        .add_service(reflection)
        .add_service(VerifierServer::with_interceptor(service, auth))
        .serve_with_incoming_shutdown(TcpListenerStream::new(listener), shutdown)
        .await?;
    Ok(())
}
