//! TLS for the gRPC API (rustls with the ring provider, through tonic): the server's identity
//! and, for mutual TLS, the CA its clients' certificates must chain to (`ServerTls`); what a
//! client trusts and presents (`ClientTls`).
//!
//! Owns checking the PEM input up front, so a wrong file is refused when the process starts
//! with a message that says which input is wrong and why, instead of every handshake failing
//! later. It does not read files or know flag names (the CLI does) and does not pick plaintext
//! or TLS (the URL scheme does, in `client`; the caller, in `server`).

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use rustls::RootCertStore;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::sign::CertifiedKey;
use tonic::transport::{Certificate, ClientTlsConfig, Identity, ServerTlsConfig};

use crate::error::Error;
pub use crate::error::TlsPart;

/// A handshake not finished in this long is dropped, so a peer that opens connections and
/// never speaks cannot pile up tasks on the server (or hang a client on a silent port).
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// The server side of TLS: a certificate chain and its key, and optionally the CA every client
/// certificate must chain to. Built only from inputs that were checked.
#[derive(Clone)]
pub struct ServerTls {
    identity: Identity,
    client_ca: Option<Certificate>,
    /// The same inputs as PEM, for servers that take a rustls configuration (the HTTP API).
    cert_pem: Arc<[u8]>,
    key_pem: Arc<[u8]>,
    client_ca_pem: Option<Arc<[u8]>>,
}

impl fmt::Debug for ServerTls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never print key material.
        f.debug_struct("ServerTls")
            .field("requires_client_certs", &self.requires_client_certs())
            .finish_non_exhaustive()
    }
}

impl ServerTls {
    /// The server's certificate chain (PEM, leaf first) and its private key (PEM: PKCS#8,
    /// PKCS#1 or SEC1). Refused when either does not parse or the key is not the
    /// certificate's.
    pub fn from_pem(cert_chain: &[u8], key: &[u8]) -> Result<ServerTls, Error> {
        check_identity(cert_chain, key, TlsPart::ServerCert, TlsPart::ServerKey)?;
        Ok(ServerTls {
            identity: Identity::from_pem(cert_chain, key),
            client_ca: None,
            cert_pem: Arc::from(cert_chain),
            key_pem: Arc::from(key),
            client_ca_pem: None,
        })
    }

    /// Requires every client to present a certificate that chains to a CA in `ca` (PEM, one or
    /// more certificates): mutual TLS. A client without one fails the handshake.
    pub fn require_client_certs(self, ca: &[u8]) -> Result<ServerTls, Error> {
        check_roots(ca, TlsPart::ClientCa)?;
        Ok(ServerTls {
            client_ca: Some(Certificate::from_pem(ca)),
            client_ca_pem: Some(Arc::from(ca)),
            ..self
        })
    }

    /// True when clients must present a certificate (mTLS).
    pub fn requires_client_certs(&self) -> bool {
        self.client_ca.is_some()
    }

    /// The same identity (and client CA) as a rustls server configuration, for a server that
    /// is not tonic (the HTTP API), offering `alpn` (e.g. `h2`, `http/1.1`). The inputs were
    /// checked when `self` was built, so this fails only on what rustls refuses beyond them.
    pub fn rustls_config(&self, alpn: &[&[u8]]) -> Result<rustls::ServerConfig, Error> {
        let certs = certificates(&self.cert_pem, TlsPart::ServerCert)?;
        let key = PrivateKeyDer::from_pem_slice(&self.key_pem)
            .map_err(|e| tls_error(TlsPart::ServerKey, e.to_string()))?;
        let builder = rustls::ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(|e| tls_error(TlsPart::ServerCert, e.to_string()))?;
        let builder = match &self.client_ca_pem {
            Some(ca) => {
                let mut roots = RootCertStore::empty();
                for cert in certificates(ca, TlsPart::ClientCa)? {
                    roots
                        .add(cert)
                        .map_err(|e| tls_error(TlsPart::ClientCa, e.to_string()))?;
                }
                let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
                    Arc::new(roots),
                    provider(),
                )
                .build()
                .map_err(|e| tls_error(TlsPart::ClientCa, e.to_string()))?;
                builder.with_client_cert_verifier(verifier)
            }
            None => builder.with_no_client_auth(),
        };
        let mut config = builder
            .with_single_cert(certs, key)
            .map_err(|e| tls_error(TlsPart::ServerKey, e.to_string()))?;
        config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
        Ok(config)
    }

    /// How long a TLS handshake may take before the connection is dropped.
    pub fn handshake_timeout() -> Duration {
        HANDSHAKE_TIMEOUT
    }

    pub(crate) fn config(&self) -> ServerTlsConfig {
        let config = ServerTlsConfig::new()
            .identity(self.identity.clone())
            .timeout(HANDSHAKE_TIMEOUT);
        match &self.client_ca {
            Some(ca) => config.client_ca_root(ca.clone()),
            None => config,
        }
    }
}

/// The client side of TLS, used for `https://` URLs: which roots to trust for the server's
/// certificate, and optionally a client certificate (mTLS). The default trusts the public web
/// PKI roots (webpki-roots, built in: no OS store needed).
#[derive(Clone, Default)]
pub struct ClientTls {
    /// PEM of the private CA(s) to trust instead of the public roots.
    ca: Option<Certificate>,
    identity: Option<Identity>,
}

impl fmt::Debug for ClientTls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never print key material.
        f.debug_struct("ClientTls")
            .field("private_ca", &self.ca.is_some())
            .field("client_cert", &self.identity.is_some())
            .finish()
    }
}

impl ClientTls {
    /// Trusts the public web PKI roots.
    pub fn public_roots() -> ClientTls {
        ClientTls::default()
    }

    /// Trusts only the CA(s) in `ca` (PEM): a private or self-signed CA. The public roots are
    /// then not trusted, so a certificate from elsewhere cannot stand in for the coordinator.
    pub fn trusting(ca: &[u8]) -> Result<ClientTls, Error> {
        check_roots(ca, TlsPart::Ca)?;
        Ok(ClientTls {
            ca: Some(Certificate::from_pem(ca)),
            identity: None,
        })
    }

    /// Presents this certificate chain (PEM, leaf first) and key (PEM) to a server that asks
    /// for one (mTLS).
    pub fn with_client_cert(self, cert_chain: &[u8], key: &[u8]) -> Result<ClientTls, Error> {
        check_identity(cert_chain, key, TlsPart::ClientCert, TlsPart::ClientKey)?;
        Ok(ClientTls {
            identity: Some(Identity::from_pem(cert_chain, key)),
            ..self
        })
    }

    pub(crate) fn config(&self) -> ClientTlsConfig {
        let config = ClientTlsConfig::new().timeout(HANDSHAKE_TIMEOUT);
        let config = match &self.ca {
            Some(ca) => config.ca_certificate(ca.clone()),
            None => config.with_webpki_roots(),
        };
        match &self.identity {
            Some(identity) => config.identity(identity.clone()),
            None => config,
        }
    }
}

fn provider() -> Arc<CryptoProvider> {
    // The process-wide provider when the binary installed one, else ring (never aws-lc).
    CryptoProvider::get_default()
        .cloned()
        .unwrap_or_else(|| Arc::new(rustls::crypto::ring::default_provider()))
}

fn tls_error(part: TlsPart, why: impl Into<String>) -> Error {
    Error::Tls {
        part,
        why: why.into(),
    }
}

fn certificates(pem: &[u8], part: TlsPart) -> Result<Vec<CertificateDer<'static>>, Error> {
    let certs = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| tls_error(part, format!("not a PEM certificate file: {e}")))?;
    if certs.is_empty() {
        return Err(tls_error(
            part,
            "no certificate in it (expected PEM `-----BEGIN CERTIFICATE-----` blocks)",
        ));
    }
    Ok(certs)
}

/// Checks that `cert_chain` and `key` parse and that the key is the leaf certificate's.
fn check_identity(
    cert_chain: &[u8],
    key: &[u8],
    cert_part: TlsPart,
    key_part: TlsPart,
) -> Result<(), Error> {
    let certs = certificates(cert_chain, cert_part)?;
    let key = PrivateKeyDer::from_pem_slice(key).map_err(|e| {
        tls_error(
            key_part,
            format!("no PEM private key in it (PKCS#8, PKCS#1 or SEC1): {e}"),
        )
    })?;
    let signing_key = provider()
        .key_provider
        .load_private_key(key)
        .map_err(|e| tls_error(key_part, format!("unusable private key: {e}")))?;
    CertifiedKey::new(certs, signing_key)
        .keys_match()
        .map_err(|e| match e {
            rustls::Error::InconsistentKeys(_) => tls_error(
                key_part,
                format!("it is not the key of the {cert_part} (the first certificate)"),
            ),
            other => tls_error(cert_part, format!("unusable certificate: {other}")),
        })
}

/// Checks that `pem` holds at least one certificate usable as a trust anchor.
fn check_roots(pem: &[u8], part: TlsPart) -> Result<(), Error> {
    let mut roots = RootCertStore::empty();
    for cert in certificates(pem, part)? {
        roots
            .add(cert)
            .map_err(|e| tls_error(part, format!("not a usable CA certificate: {e}")))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn self_signed(name: &str) -> (String, String) {
        let ck = rcgen::generate_simple_self_signed(vec![name.to_owned()]).unwrap();
        (ck.cert.pem(), ck.signing_key.serialize_pem())
    }

    #[test]
    fn a_matching_certificate_and_key_are_taken() {
        let (cert, key) = self_signed("localhost");
        let tls = ServerTls::from_pem(cert.as_bytes(), key.as_bytes()).unwrap();
        assert!(!tls.requires_client_certs());
        let tls = tls.require_client_certs(cert.as_bytes()).unwrap();
        assert!(tls.requires_client_certs());
        ClientTls::trusting(cert.as_bytes())
            .unwrap()
            .with_client_cert(cert.as_bytes(), key.as_bytes())
            .unwrap();
    }

    #[test]
    fn a_key_of_another_certificate_is_refused_naming_the_key() {
        let (cert, _) = self_signed("localhost");
        let (_, other_key) = self_signed("other");
        let e = ServerTls::from_pem(cert.as_bytes(), other_key.as_bytes()).unwrap_err();
        assert!(
            matches!(
                e,
                Error::Tls {
                    part: TlsPart::ServerKey,
                    ..
                }
            ),
            "{e}"
        );
        assert!(e.to_string().contains("not the key"), "{e}");
        let e = ClientTls::public_roots()
            .with_client_cert(cert.as_bytes(), other_key.as_bytes())
            .unwrap_err();
        assert!(
            matches!(
                e,
                Error::Tls {
                    part: TlsPart::ClientKey,
                    ..
                }
            ),
            "{e}"
        );
    }

    #[test]
    fn files_that_are_not_pem_are_refused_naming_the_input() {
        let (cert, key) = self_signed("localhost");
        let cases = [
            (
                ServerTls::from_pem(b"garbage", key.as_bytes()).unwrap_err(),
                TlsPart::ServerCert,
            ),
            (
                ServerTls::from_pem(cert.as_bytes(), b"").unwrap_err(),
                TlsPart::ServerKey,
            ),
            // A key file given where the certificate belongs.
            (
                ServerTls::from_pem(key.as_bytes(), key.as_bytes()).unwrap_err(),
                TlsPart::ServerCert,
            ),
            (
                ClientTls::trusting(key.as_bytes()).unwrap_err(),
                TlsPart::Ca,
            ),
        ];
        for (e, part) in cases {
            assert!(
                matches!(e, Error::Tls { part: p, .. } if p == part),
                "{part:?}: {e}"
            );
            assert_eq!(e.as_metric_label(), "tls");
        }
        let tls = ServerTls::from_pem(cert.as_bytes(), key.as_bytes()).unwrap();
        let e = tls.require_client_certs(b"not pem").unwrap_err();
        assert!(
            matches!(
                e,
                Error::Tls {
                    part: TlsPart::ClientCa,
                    ..
                }
            ),
            "{e}"
        );
    }
}
