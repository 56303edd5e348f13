//! Serving the HTTP API on a listener, in plaintext (axum's server) or TLS (rustls, the same
//! certificate, key and client CA as the gRPC server; HTTP/1.1 and HTTP/2 by ALPN). On
//! shutdown the API is closed first (event streams end, readiness turns 503, webhooks stop),
//! then in-flight requests finish.

use std::future::Future;
use std::sync::Arc;

use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::service::TowerToHyperService;
use rollcall_api::ServerTls;
use tokio::net::TcpListener;

use crate::app::HttpApi;
use crate::routes::router;

/// Why the HTTP server could not serve.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The listener failed.
    #[error("the HTTP server failed: {0}")]
    Io(#[from] std::io::Error),
    /// The TLS settings could not be turned into a rustls configuration.
    #[error("HTTP TLS: {0}")]
    Tls(#[from] rollcall_api::Error),
}

/// Serves `api` on `listener` until `shutdown` resolves.
pub async fn serve(
    listener: TcpListener,
    api: Arc<HttpApi>,
    tls: Option<ServerTls>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), Error> {
    let app = router(api.clone());
    let closing = {
        let api = api.clone();
        async move {
            shutdown.await;
            tracing::info!("HTTP server shutting down");
            api.close();
        }
    };
    tracing::info!(addr = ?listener.local_addr().ok(), auth = api.auth.is_enabled(),
        tls = tls.is_some(), "HTTP server listening");
    match tls {
        None => axum::serve(listener, app)
            .with_graceful_shutdown(closing)
            .await
            .map_err(Error::Io),
        Some(tls) => {
            let config = tls.rustls_config(&[b"h2", b"http/1.1"])?;
            let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
            tokio::pin!(closing);
            loop {
                let (tcp, _) = tokio::select! {
                    () = &mut closing => return Ok(()),
                    accepted = listener.accept() => match accepted {
                        Ok(accepted) => accepted,
                        Err(e) => {
                            tracing::warn!(error = %e, "HTTP: accept failed");
                            continue;
                        }
                    },
                };
                let acceptor = acceptor.clone();
                let app = app.clone();
                tokio::spawn(async move {
                    let handshake =
                        tokio::time::timeout(ServerTls::handshake_timeout(), acceptor.accept(tcp));
                    let Ok(Ok(stream)) = handshake.await else {
                        return;
                    };
                    let service = TowerToHyperService::new(app);
                    let served = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                    if let Err(e) = served {
                        tracing::debug!(error = %e, "HTTP: connection ended with an error");
                    }
                });
            }
        }
    }
}
