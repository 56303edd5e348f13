//! The HTTP API over TLS with the gRPC server's settings (`rollcall_api::ServerTls`): a
//! client trusting the server's certificate gets answers over HTTP/1.1 and HTTP/2 (ALPN), the
//! token is still checked, and with client certificates required a client without one fails
//! the handshake. The backend is a stub: only the transport is under test here (the routes
//! against the engine are tests/http_api.rs at the root).

use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::TokioIo;
use rollcall_api::{
    AddressChunks, Admission, BackendError, CallLimits, CampaignBackend, ProgressSnapshot,
    ResultRecord, ServerTls, SubmitOptions, SubmitOutcome,
};
use rollcall_core::{CampaignId, Verdict};
use rollcall_http::{HttpApi, HttpSettings};
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};

/// A backend that knows no campaign.
struct NoCampaigns;

#[async_trait]
impl CampaignBackend for NoCampaigns {
    async fn submit(
        &self,
        _: SubmitOptions,
        _: AddressChunks,
    ) -> Result<SubmitOutcome, BackendError> {
        Err(BackendError::Unavailable("stub".into()))
    }
    async fn progress(&self, c: &CampaignId) -> Result<ProgressSnapshot, BackendError> {
        Err(BackendError::NotFound(format!("campaign {c}")))
    }
    async fn results_since(
        &self,
        c: &CampaignId,
        _: u64,
        _: usize,
    ) -> Result<(Vec<ResultRecord>, u64), BackendError> {
        Err(BackendError::NotFound(format!("campaign {c}")))
    }
    async fn cancel(&self, c: &CampaignId) -> Result<ProgressSnapshot, BackendError> {
        Err(BackendError::NotFound(format!("campaign {c}")))
    }
    async fn verify_one(&self, _: &str) -> Result<Verdict, BackendError> {
        Err(BackendError::Unavailable("stub".into()))
    }
}

struct Pki {
    server_cert: String,
    server_key: String,
    client_cert: String,
    client_key: String,
}

fn pki() -> Pki {
    let server = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
    let client = rcgen::generate_simple_self_signed(vec!["client.test".into()]).unwrap();
    Pki {
        server_cert: server.cert.pem(),
        server_key: server.signing_key.serialize_pem(),
        client_cert: client.cert.pem(),
        client_key: client.signing_key.serialize_pem(),
    }
}

async fn start(tls: ServerTls) -> (std::net::SocketAddr, tokio::sync::oneshot::Sender<()>) {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let api = HttpApi::new(
        Arc::new(NoCampaigns),
        Some("t0k".into()),
        Arc::new(Admission::new(CallLimits::default())),
        HttpSettings::default(),
    );
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(rollcall_http::serve(listener, api, Some(tls), async move {
        let _ = stopped.await;
    }));
    (addr, stop)
}

fn client_config(pki: &Pki, with_cert: bool, alpn: &[u8]) -> rustls::ClientConfig {
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(pki.server_cert.as_bytes()) {
        roots.add(cert.unwrap()).unwrap();
    }
    let builder = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots);
    let mut config = if with_cert {
        let certs = CertificateDer::pem_slice_iter(pki.client_cert.as_bytes())
            .map(Result::unwrap)
            .collect();
        let key = PrivateKeyDer::from_pem_slice(pki.client_key.as_bytes()).unwrap();
        builder.with_client_auth_cert(certs, key).unwrap()
    } else {
        builder.with_no_client_auth()
    };
    config.alpn_protocols = vec![alpn.to_vec()];
    config
}

/// GETs `path` over TLS; `Err` when the handshake or the exchange fails.
async fn get(
    addr: std::net::SocketAddr,
    config: rustls::ClientConfig,
    path: &str,
    token: Option<&str>,
) -> Result<(u16, String), String> {
    let h2 = config.alpn_protocols == [b"h2".to_vec()];
    let tcp = tokio::net::TcpStream::connect(addr)
        .await
        .map_err(|e| e.to_string())?;
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let name = ServerName::try_from("localhost").unwrap();
    let tls = connector
        .connect(name, tcp)
        .await
        .map_err(|e| e.to_string())?;
    let mut request = hyper::Request::get(format!("https://localhost{path}"));
    if let Some(token) = token {
        request = request.header("authorization", format!("Bearer {token}"));
    }
    let request = request.body(Empty::<Bytes>::new()).unwrap();
    let response = if h2 {
        let (mut sender, conn) = hyper::client::conn::http2::handshake(
            hyper_util::rt::TokioExecutor::new(),
            TokioIo::new(tls),
        )
        .await
        .map_err(|e| e.to_string())?;
        tokio::spawn(conn);
        sender
            .send_request(request)
            .await
            .map_err(|e| e.to_string())?
    } else {
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
            .await
            .map_err(|e| e.to_string())?;
        tokio::spawn(conn);
        sender
            .send_request(request)
            .await
            .map_err(|e| e.to_string())?
    };
    let status = response.status().as_u16();
    let body = response
        .into_body()
        .collect()
        .await
        .map_err(|e| e.to_string())?
        .to_bytes();
    Ok((status, String::from_utf8_lossy(&body).into_owned()))
}

#[tokio::test]
async fn tls_serves_http1_and_h2_and_still_checks_the_token() {
    let pki = pki();
    let tls = ServerTls::from_pem(pki.server_cert.as_bytes(), pki.server_key.as_bytes()).unwrap();
    let (addr, _stop) = start(tls).await;
    for alpn in [&b"http/1.1"[..], &b"h2"[..]] {
        let (status, body) = get(addr, client_config(&pki, false, alpn), "/healthz", None)
            .await
            .unwrap();
        assert_eq!((status, body.as_str()), (200, r#"{"status":"ok"}"#));
        let (status, _) = get(
            addr,
            client_config(&pki, false, alpn),
            "/v1/campaigns/cx",
            None,
        )
        .await
        .unwrap();
        assert_eq!(status, 401);
        let (status, _) = get(
            addr,
            client_config(&pki, false, alpn),
            "/v1/campaigns/cx",
            Some("t0k"),
        )
        .await
        .unwrap();
        assert_eq!(status, 404);
    }
}

#[tokio::test]
async fn with_client_certificates_required_a_client_without_one_gets_nothing() {
    let pki = pki();
    let tls = ServerTls::from_pem(pki.server_cert.as_bytes(), pki.server_key.as_bytes())
        .unwrap()
        .require_client_certs(pki.client_cert.as_bytes())
        .unwrap();
    let (addr, _stop) = start(tls).await;
    let refused = get(
        addr,
        client_config(&pki, false, b"http/1.1"),
        "/healthz",
        None,
    )
    .await;
    assert!(refused.is_err(), "{refused:?}");
    let (status, _) = get(
        addr,
        client_config(&pki, true, b"http/1.1"),
        "/healthz",
        None,
    )
    .await
    .unwrap();
    assert_eq!(status, 200);
}
