//! The client side: a `VerifierClient` that sends the bearer token with every call, over
//! plaintext for `http://` URLs and TLS for `https://` ones.
//!
//! Owns `connect`, `connect_with_tls` and the `Client` type. It does not retry or reconnect
//! (callers decide; a watch resumes by calling WatchCampaign again, which starts with the
//! current progress).

use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Channel, Endpoint};

use crate::auth::AttachToken;
use crate::error::Error;
use crate::tls::ClientTls;
use crate::v1::verifier_client::VerifierClient;

/// A connected Verifier client that attaches the token (if any) to every call.
pub type Client = VerifierClient<InterceptedService<Channel, AttachToken>>;

/// Connects to `url` (e.g. `http://127.0.0.1:50051`, or `https://...` for TLS trusting the
/// public web PKI roots); with `token`, every call carries `authorization: Bearer <token>`.
pub async fn connect(url: &str, token: Option<String>) -> Result<Client, Error> {
    connect_with_tls(url, token, None).await
}

/// Like `connect`, with the TLS settings of an `https://` URL: `None` trusts the public web
/// PKI roots. TLS settings with an `http://` URL are refused (`Error::TlsNeedsHttps`): the
/// caller asked for an authenticated server, and plaintext would quietly drop that.
pub async fn connect_with_tls(
    url: &str,
    token: Option<String>,
    tls: Option<&ClientTls>,
) -> Result<Client, Error> {
    let attach = AttachToken::new(token)?;
    let shown = || url.chars().filter(|c| !c.is_control()).take(200).collect();
    let endpoint = Endpoint::from_shared(url.to_owned()).map_err(|e| Error::InvalidUrl {
        url: shown(),
        why: e.to_string(),
    })?;
    let endpoint = match (endpoint.uri().scheme_str(), tls) {
        (Some("https"), tls) => {
            let tls = tls.cloned().unwrap_or_else(ClientTls::public_roots);
            endpoint.tls_config(tls.config())?
        }
        (_, Some(_)) => return Err(Error::TlsNeedsHttps { url: shown() }),
        (_, None) => endpoint,
    };
    let channel = endpoint.connect().await?;
    Ok(VerifierClient::with_interceptor(channel, attach))
}
