//! STARTTLS: the rustls client configuration (ring provider) and the after-the-fact
//! certificate check.
//!
//! Owns the opportunistic verifier (accepts any certificate but still checks the handshake
//! signatures, so the peer must hold the key of the certificate it shows) and the webpki-roots
//! verification whose result is only recorded. Does not decide when STARTTLS is sent (the
//! session does).

use std::net::IpAddr;
use std::sync::{Arc, OnceLock};

use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, verify_tls12_signature, verify_tls13_signature};
use rustls::{DigitallySignedStruct, RootCertStore, SignatureScheme};
use rustls_pki_types::{CertificateDer, ServerName, UnixTime};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

/// What the handshake produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsInfo {
    /// `TLSv1_3` or `TLSv1_2`.
    pub version: String,
    /// Negotiated cipher suite, e.g. `TLS13_AES_256_GCM_SHA384`.
    pub cipher: String,
    /// Whether the certificate chain verifies against the webpki roots for the server name.
    pub verified: bool,
    /// Why it did not verify.
    pub verify_error: Option<String>,
}

#[derive(Debug)]
struct AcceptAnyCertificate(Arc<CryptoProvider>);

impl ServerCertVerifier for AcceptAnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

struct Shared {
    connector: TlsConnector,
    roots: Arc<WebPkiServerVerifier>,
}

/// Built once per process: the root store has ~150 anchors.
fn shared() -> Result<&'static Shared, String> {
    static SHARED: OnceLock<Result<Shared, String>> = OnceLock::new();
    SHARED
        .get_or_init(|| {
            let provider = Arc::new(rustls::crypto::ring::default_provider());
            let config = rustls::ClientConfig::builder_with_provider(provider.clone())
                .with_safe_default_protocol_versions()
                .map_err(|e| e.to_string())?
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(AcceptAnyCertificate(provider.clone())))
                .with_no_client_auth();
            let roots = RootCertStore {
                roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
            };
            let roots = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider)
                .build()
                .map_err(|e| e.to_string())?;
            Ok(Shared {
                connector: TlsConnector::from(Arc::new(config)),
                roots,
            })
        })
        .as_ref()
        .map_err(Clone::clone)
}

/// The name to present (SNI) and verify: the MX host name when known, else the IP.
pub(crate) fn server_name(name: Option<&str>, ip: IpAddr) -> ServerName<'static> {
    name.map(|n| n.trim_end_matches('.').to_owned())
        .and_then(|n| ServerName::try_from(n).ok())
        .unwrap_or_else(|| ServerName::IpAddress(ip.into()))
}

/// Runs the client handshake on the plain socket (no timeout here; the caller wraps it).
pub(crate) async fn handshake(
    tcp: TcpStream,
    name: ServerName<'static>,
) -> Result<(TlsStream<TcpStream>, TlsInfo), String> {
    let shared = shared()?;
    let stream = shared
        .connector
        .connect(name.clone(), tcp)
        .await
        .map_err(|e| e.to_string())?;
    let (_, conn) = stream.get_ref();
    let version = conn
        .protocol_version()
        .map(|v| format!("{v:?}"))
        .unwrap_or_default();
    let cipher = conn
        .negotiated_cipher_suite()
        .map(|c| format!("{:?}", c.suite()))
        .unwrap_or_default();
    let verdict = match conn.peer_certificates() {
        Some([end_entity, intermediates @ ..]) => shared
            .roots
            .verify_server_cert(end_entity, intermediates, &name, &[], UnixTime::now())
            .map(|_| ())
            .map_err(|e| e.to_string()),
        _ => Err("no certificate".to_owned()),
    };
    let info = TlsInfo {
        version,
        cipher,
        verified: verdict.is_ok(),
        verify_error: verdict.err(),
    };
    Ok((stream, info))
}
