//! The client side: a `VerifierClient` that sends the bearer token with every call.
//!
//! Owns `connect` and the `Client` type. It does not retry or reconnect (callers decide; a
//! watch resumes by calling WatchCampaign again, which starts with the current progress).

use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Channel, Endpoint};

use crate::auth::AttachToken;
use crate::error::Error;
use crate::v1::verifier_client::VerifierClient;

/// A connected Verifier client that attaches the token (if any) to every call.
pub type Client = VerifierClient<InterceptedService<Channel, AttachToken>>;

/// Connects to `url` (e.g. `http://127.0.0.1:50051`); with `token`, every call carries
/// `authorization: Bearer <token>`.
pub async fn connect(url: &str, token: Option<String>) -> Result<Client, Error> {
    let attach = AttachToken::new(token)?;
    let endpoint = Endpoint::from_shared(url.to_owned()).map_err(|e| Error::InvalidUrl {
        url: url.chars().filter(|c| !c.is_control()).take(200).collect(),
        why: e.to_string(),
    })?;
    let channel = endpoint.connect().await?;
    Ok(VerifierClient::with_interceptor(channel, attach))
}
