//! The fleet's TLS identity: one self-signed rcgen certificate per fleet, and the rustls
//! server configuration the STARTTLS upgrade uses (ring provider, as everywhere in the
//! workspace). Owns nothing else.

use std::collections::BTreeSet;
use std::sync::Arc;

use rustls::ServerConfig;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio_rustls::TlsAcceptor;

use crate::Error;

/// At most this many names go into the certificate; beyond it, parent-domain wildcards.
const MAX_NAMES: usize = 64;

/// Builds the acceptor and returns it with the certificate (for clients that pin it).
pub(crate) fn acceptor(
    host_names: &[String],
) -> Result<(TlsAcceptor, CertificateDer<'static>), Error> {
    let names: Vec<String> = if host_names.len() <= MAX_NAMES {
        host_names.to_vec()
    } else {
        let parents: BTreeSet<String> = host_names
            .iter()
            .filter_map(|n| n.split_once('.').map(|(_, p)| format!("*.{p}")))
            .take(MAX_NAMES * 4)
            .collect();
        parents.into_iter().collect()
    };
    let mut names = names;
    names.push("localhost".into());
    let ck = rcgen::generate_simple_self_signed(names).map_err(|e| Error::Tls(e.to_string()))?;
    let cert = ck.cert.der().clone();
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(ck.signing_key.serialize_der()));
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::Tls(e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(vec![cert.clone()], key)
        .map_err(|e| Error::Tls(e.to_string()))?;
    Ok((TlsAcceptor::from(Arc::new(config)), cert))
}
