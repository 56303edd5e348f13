//! Webhooks: where a campaign's results and its completion are POSTed, signed, and how.
//!
//! - `Target::check`: a webhook URL is `http://` or `https://`; its host is resolved and every
//!   address must be allowed by the MX target policy (`rollcall_dns::TargetPolicy`: loopback
//!   and private ranges only when private targets are allowed), checked again at every
//!   delivery (a name that later resolves elsewhere is refused then).
//! - Signing: `rollcall-signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>`,
//!   with `rollcall-webhook-id` (the idempotency id: the same for every retry of a delivery,
//!   different between deliveries) and `rollcall-webhook-timestamp`.
//! - Delivery (`Webhooks::start`, one task per campaign): every `batch_every` the results
//!   recorded since the last delivery (at most `max_batch` a delivery) go out as one
//!   `{"type": "results", ...}` POST; once the campaign is final and every result went out, one
//!   `{"type": "completed", ...}`. A delivery that fails (no 2xx, no answer in `timeout`) is
//!   retried with exponential backoff (`first_retry`, doubling to `max_retry`) up to
//!   `max_attempts`; the campaign never waits for it.
//! - Bounds: results are read from the backend by cursor only when the previous delivery
//!   succeeded or was given up, so what waits is in the backend (never a growing queue here):
//!   one batch per campaign in memory, and at most `max_in_flight` POSTs at once over all
//!   campaigns.
//!
//! - Persistence: the delivery state (`WebhookState`: settings, rows delivered, the delivery
//!   begun, the completion) is saved with the campaign through the backend before each
//!   delivery's first attempt and after it is through. A restarted coordinator hands back the
//!   unfinished ones (`Webhooks::resume`): the delivery begun goes again with the same rows
//!   and id, rows delivered are not sent again, the completion keeps its id. A result is
//!   delivered twice only under the same id (a delivery through at the receiver but not yet
//!   saved as such). `rollcall serve` keeps its campaigns in memory: nothing to resume.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::http::{Method, Request, Uri};
use bytes::Bytes;
use http_body_util::Full;
use hyper_util::rt::TokioIo;
use rand::Rng as _;
use ring::hmac;
use rollcall_api::{BackendError, CampaignBackend, ResultRecord};
use rollcall_core::CampaignId;
use rollcall_core::ports::{PendingDelivery, RowRanges, WebhookState};
use rollcall_dns::TargetPolicy;
use serde_json::{Value, json};
use tokio::sync::{Semaphore, watch};

use crate::error::ApiError;
use crate::rows::{CampaignProgress, ResultRow};

/// The signature header.
pub const SIGNATURE_HEADER: &str = "rollcall-signature";
/// The idempotency id header.
pub const ID_HEADER: &str = "rollcall-webhook-id";
/// The timestamp header (the `t` of the signature).
pub const TIMESTAMP_HEADER: &str = "rollcall-webhook-timestamp";

/// How webhooks are batched, retried and bounded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WebhookPolicy {
    /// Results are batched for at most this long.
    pub batch_every: Duration,
    /// Most results in one delivery.
    pub max_batch: usize,
    /// The first retry waits this long; each next one twice as long...
    pub first_retry: Duration,
    /// ...up to this.
    pub max_retry: Duration,
    /// Attempts of one delivery before it is given up.
    pub max_attempts: u32,
    /// POSTs in flight at once, over every campaign.
    pub max_in_flight: usize,
    /// A receiver that has not answered in this long failed the attempt.
    pub timeout: Duration,
}

impl Default for WebhookPolicy {
    fn default() -> WebhookPolicy {
        WebhookPolicy {
            batch_every: Duration::from_millis(1000),
            max_batch: 500,
            first_retry: Duration::from_secs(1),
            max_retry: Duration::from_secs(300),
            max_attempts: 12,
            max_in_flight: 32,
            timeout: Duration::from_secs(10),
        }
    }
}

impl WebhookPolicy {
    /// The wait before retry `n` (1 for the first retry).
    pub fn backoff(&self, n: u32) -> Duration {
        let factor = 2u32.saturating_pow(n.saturating_sub(1));
        self.first_retry.saturating_mul(factor).min(self.max_retry)
    }
}

/// A checked webhook URL and the key that signs what is sent to it.
#[derive(Clone)]
pub(crate) struct Target {
    uri: Uri,
    host: String,
    port: u16,
    tls: bool,
    key: Arc<hmac::Key>,
    extra: Option<Value>,
    allow_private: bool,
}

impl std::fmt::Debug for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print the key.
        f.debug_struct("Target")
            .field("uri", &self.uri)
            .finish_non_exhaustive()
    }
}

fn refused(why: impl std::fmt::Display) -> ApiError {
    ApiError::BadRequest(format!("webhook URL refused: {why}"))
}

impl Target {
    /// Checks `url` (scheme, host, where it resolves) and makes the signing key: `secret`, or
    /// a fresh random one. Returns the target, the secret it signs with, and whether that
    /// secret was made here (to be returned once to the caller).
    pub(crate) async fn check(
        url: &str,
        secret: Option<String>,
        extra: Option<Value>,
        allow_private: bool,
    ) -> Result<(Target, String, bool), ApiError> {
        let (secret, made) = match secret {
            Some(s) if s.is_empty() => return Err(refused("the secret is empty")),
            Some(s) => (s, false),
            None => {
                let bytes: [u8; 32] = rand::rng().random();
                (to_hex(&bytes), true)
            }
        };
        let target = Target::parse(url, &secret, extra, allow_private)?;
        target.resolve().await?;
        Ok((target, secret, made))
    }

    /// The target of a stored webhook (checked when it was created; where it resolves is
    /// checked again at each delivery).
    pub(crate) fn stored(state: &WebhookState, allow_private: bool) -> Result<Target, ApiError> {
        let extra = match &state.extra {
            Some(json) => Some(
                serde_json::from_str(json)
                    .map_err(|e| refused(format!("its stored extra value: {e}")))?,
            ),
            None => None,
        };
        Target::parse(&state.url, &state.secret, extra, allow_private)
    }

    fn parse(
        url: &str,
        secret: &str,
        extra: Option<Value>,
        allow_private: bool,
    ) -> Result<Target, ApiError> {
        let uri: Uri = url.parse().map_err(|e| refused(format!("{e}")))?;
        let tls = match uri.scheme_str() {
            Some("https") => true,
            Some("http") => false,
            _ => return Err(refused("the scheme must be http or https")),
        };
        let host = uri
            .host()
            .ok_or_else(|| refused("it has no host"))?
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_string();
        let port = uri.port_u16().unwrap_or(if tls { 443 } else { 80 });
        Ok(Target {
            uri,
            host,
            port,
            tls,
            key: Arc::new(hmac::Key::new(hmac::HMAC_SHA256, secret.as_bytes())),
            extra,
            allow_private,
        })
    }

    /// The addresses the host resolves to, all allowed by the target policy.
    async fn resolve(&self) -> Result<Vec<SocketAddr>, ApiError> {
        let addrs: Vec<SocketAddr> = tokio::net::lookup_host((self.host.as_str(), self.port))
            .await
            .map_err(|e| refused(format!("{} does not resolve: {e}", self.host)))?
            .collect();
        if addrs.is_empty() {
            return Err(refused(format!("{} has no address", self.host)));
        }
        let policy = TargetPolicy {
            allow_private: self.allow_private,
        };
        if let Some(private) = addrs.iter().find(|a| !policy.permits(a.ip())) {
            return Err(refused(format!(
                "{} resolves to {}, a loopback or private address (allowed only with private \
                 targets allowed, as for MX hosts)",
                self.host,
                private.ip()
            )));
        }
        Ok(addrs)
    }

    /// `t=<timestamp>,v1=<hex>` for `body` sent at `timestamp`.
    pub(crate) fn signature(&self, timestamp: u64, body: &[u8]) -> String {
        let mut ctx = hmac::Context::with_key(&self.key);
        ctx.update(timestamp.to_string().as_bytes());
        ctx.update(b".");
        ctx.update(body);
        format!("t={timestamp},v1={}", to_hex(ctx.sign().as_ref()))
    }

    /// One attempt: POSTs `body` with its id and signature; `Ok` on a 2xx answer.
    async fn post(&self, id: &str, body: Bytes, timeout: Duration) -> Result<(), String> {
        let addrs = self.resolve().await.map_err(|e| e.to_string())?;
        let timestamp = unix_secs();
        let path = self
            .uri
            .path_and_query()
            .map_or("/".to_string(), |p| p.as_str().to_string());
        let host = match self.uri.port() {
            Some(port) => format!("{}:{port}", self.uri.host().unwrap_or_default()),
            None => self.uri.host().unwrap_or_default().to_string(),
        };
        let request = Request::builder()
            .method(Method::POST)
            .uri(path)
            .header("host", host)
            .header("content-type", "application/json")
            .header(
                "user-agent",
                concat!("rollcall/", env!("CARGO_PKG_VERSION")),
            )
            .header(ID_HEADER, id)
            .header(TIMESTAMP_HEADER, timestamp)
            .header(SIGNATURE_HEADER, self.signature(timestamp, &body))
            .body(Full::new(body))
            .map_err(|e| e.to_string())?;
        let attempt = async {
            let tcp = connect(&addrs).await?;
            if self.tls {
                let connector = tokio_rustls::TlsConnector::from(client_tls());
                let name = rustls::pki_types::ServerName::try_from(self.host.clone())
                    .map_err(|e| e.to_string())?;
                let stream = connector
                    .connect(name, tcp)
                    .await
                    .map_err(|e| e.to_string())?;
                send(TokioIo::new(stream), request).await
            } else {
                send(TokioIo::new(tcp), request).await
            }
        };
        tokio::time::timeout(timeout, attempt)
            .await
            .map_err(|_| format!("no answer in {timeout:?}"))?
    }
}

async fn connect(addrs: &[SocketAddr]) -> Result<tokio::net::TcpStream, String> {
    let mut last = String::from("no address");
    for addr in addrs {
        match tokio::net::TcpStream::connect(addr).await {
            Ok(tcp) => return Ok(tcp),
            Err(e) => last = format!("{addr}: {e}"),
        }
    }
    Err(last)
}

async fn send<I>(io: I, request: Request<Full<Bytes>>) -> Result<(), String>
where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let (mut sender, connection) = hyper::client::conn::http1::handshake(io)
        .await
        .map_err(|e| e.to_string())?;
    tokio::spawn(async move {
        // The connection ends with the exchange; its error, if any, is the exchange's.
        let _ = connection.await;
    });
    let response = sender
        .send_request(request)
        .await
        .map_err(|e| e.to_string())?;
    if response.status().is_success() {
        Ok(())
    } else {
        Err(format!("the receiver answered {}", response.status()))
    }
}

fn client_tls() -> Arc<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    let provider = rustls::crypto::CryptoProvider::get_default()
        .cloned()
        .unwrap_or_else(|| Arc::new(rustls::crypto::ring::default_provider()));
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map(|b| b.with_root_certificates(roots).with_no_client_auth());
    // The ring provider supports the default versions; were it not so, TLS webhooks fail.
    Arc::new(config.unwrap_or_else(|_| {
        rustls::ClientConfig::builder()
            .with_root_certificates(rustls::RootCertStore::empty())
            .with_no_client_auth()
    }))
}

/// Seconds since the Unix epoch (0 on a clock before it).
pub(crate) fn unix_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn to_hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The webhooks of every campaign: the bound on POSTs in flight and the policy.
#[derive(Debug)]
pub(crate) struct Webhooks {
    policy: WebhookPolicy,
    in_flight: Arc<Semaphore>,
}

impl Webhooks {
    pub(crate) fn new(policy: WebhookPolicy) -> Webhooks {
        Webhooks {
            policy,
            in_flight: Arc::new(Semaphore::new(policy.max_in_flight.max(1))),
        }
    }

    /// Starts delivering `campaign`'s results and completion to `target`, from where `state`
    /// says the deliveries stand (a new webhook: nothing delivered yet).
    pub(crate) fn start(
        &self,
        backend: Arc<dyn CampaignBackend>,
        campaign: CampaignId,
        target: Target,
        state: WebhookState,
        poll: Duration,
        closing: watch::Receiver<bool>,
    ) {
        let delivery = Delivery {
            backend,
            campaign,
            target,
            state,
            policy: self.policy,
            in_flight: self.in_flight.clone(),
            closing,
        };
        tokio::spawn(async move { delivery.run(poll).await });
    }

    /// Starts the webhooks a restarted backend left unfinished (`webhooks_to_resume`).
    pub(crate) async fn resume(
        &self,
        backend: &Arc<dyn CampaignBackend>,
        allow_private: bool,
        poll: Duration,
        closing: &watch::Receiver<bool>,
    ) -> Result<usize, BackendError> {
        let mut started = 0;
        for (campaign, state) in backend.webhooks_to_resume().await? {
            let target = match Target::stored(&state, allow_private) {
                Ok(target) => target,
                Err(e) => {
                    tracing::warn!(%campaign, error = %e, "webhook: not resumed");
                    continue;
                }
            };
            tracing::info!(%campaign, delivered = state.delivered.len(),
                pending = ?state.pending.as_ref().map(|p| &p.id), "webhook: resumed");
            self.start(
                backend.clone(),
                campaign,
                target,
                state,
                poll,
                closing.clone(),
            );
            started += 1;
        }
        Ok(started)
    }
}

/// One campaign's webhook task.
struct Delivery {
    backend: Arc<dyn CampaignBackend>,
    campaign: CampaignId,
    target: Target,
    /// Where the deliveries stand; saved with the campaign before each delivery begins and
    /// after it is through.
    state: WebhookState,
    policy: WebhookPolicy,
    in_flight: Arc<Semaphore>,
    closing: watch::Receiver<bool>,
}

/// Why a webhook task ended early.
enum Stop {
    Closing,
    Backend(BackendError),
}

impl From<BackendError> for Stop {
    fn from(e: BackendError) -> Stop {
        Stop::Backend(e)
    }
}

impl Delivery {
    async fn run(mut self, poll: Duration) {
        match self.deliver_all(poll).await {
            Ok(()) => tracing::info!(campaign = %self.campaign, "webhook: completion delivered"),
            Err(Stop::Closing) => {
                tracing::info!(campaign = %self.campaign, "webhook: stopped by the shutdown")
            }
            Err(Stop::Backend(e)) => {
                tracing::warn!(campaign = %self.campaign, error = %e, "webhook: stopped")
            }
        }
    }

    async fn deliver_all(&mut self, poll: Duration) -> Result<(), Stop> {
        if self.state.completed {
            return Ok(());
        }
        // A delivery begun before a restart goes first, with the same rows under the same id,
        // so a receiver that got it already can tell it is the same one.
        if let Some(pending) = self.state.pending.clone() {
            let rows = self.find_rows(&pending.rows, poll).await?;
            self.deliver_results(&pending.id, &rows).await?;
        }
        // The cursor is this process's: rows delivered before a restart are skipped by row.
        let mut cursor = 0u64;
        loop {
            self.pause(self.policy.batch_every.max(poll)).await?;
            // Read after the pause: results recorded before a final state are all taken.
            let progress = self.backend.progress(&self.campaign).await?;
            loop {
                let (page, next) = self
                    .backend
                    .results_since(&self.campaign, cursor, self.policy.max_batch)
                    .await?;
                if page.is_empty() {
                    break;
                }
                cursor = next;
                let rows: Vec<ResultRecord> = page
                    .into_iter()
                    .filter(|r| !self.state.delivered.contains(r.row))
                    .collect();
                if rows.is_empty() {
                    continue;
                }
                let id = format!("{}-results-{}", self.campaign, self.state.batches);
                self.state.batches += 1;
                self.state.pending = Some(PendingDelivery {
                    id: id.clone(),
                    rows: rows.iter().map(|r| r.row).collect(),
                });
                // Stored before the first attempt: after a restart this delivery is sent
                // again as it is, never re-cut under another id.
                self.save().await?;
                self.deliver_results(&id, &rows).await?;
            }
            if progress.state.is_final() {
                let id = self
                    .state
                    .completion_id
                    .get_or_insert_with(|| format!("{}-completed", self.campaign))
                    .clone();
                self.save().await?;
                let body = json!({
                    "type": "completed",
                    "delivery_id": id,
                    "campaign_id": self.campaign.as_str(),
                    "extra": self.target.extra,
                    "progress": CampaignProgress::from(&progress),
                });
                self.deliver(&id, body).await?;
                self.state.completed = true;
                self.save().await?;
                return Ok(());
            }
        }
    }

    /// The results of `wanted` rows (a delivery begun before a restart), waiting until the
    /// resumed campaign has them all (they were recorded, so they come out early), or it is
    /// final (then what there is).
    async fn find_rows(
        &mut self,
        wanted: &RowRanges,
        poll: Duration,
    ) -> Result<Vec<ResultRecord>, Stop> {
        loop {
            let progress = self.backend.progress(&self.campaign).await?;
            let mut found = Vec::new();
            let mut cursor = 0u64;
            loop {
                let (page, next) = self
                    .backend
                    .results_since(&self.campaign, cursor, self.policy.max_batch.max(1))
                    .await?;
                if page.is_empty() {
                    break;
                }
                cursor = next;
                found.extend(page.into_iter().filter(|r| wanted.contains(r.row)));
            }
            if found.len() as u64 >= wanted.len() || progress.state.is_final() {
                found.sort_by_key(|r| r.row);
                return Ok(found);
            }
            self.pause(self.policy.batch_every.max(poll)).await?;
        }
    }

    /// Delivers the pending results delivery `id` (`rows`), then marks its rows delivered.
    async fn deliver_results(&mut self, id: &str, rows: &[ResultRecord]) -> Result<(), Stop> {
        let body = json!({
            "type": "results",
            "delivery_id": id,
            "campaign_id": self.campaign.as_str(),
            "extra": self.target.extra,
            "results": rows.iter().map(ResultRow::of).collect::<Vec<_>>(),
        });
        self.deliver(id, body).await?;
        if let Some(pending) = self.state.pending.take() {
            for row in pending.rows.rows() {
                self.state.delivered.insert(row);
            }
        }
        self.save().await
    }

    /// Saves the delivery state with the campaign, retrying while the store is unreachable.
    async fn save(&mut self) -> Result<(), Stop> {
        let mut attempt = 0;
        loop {
            match self.backend.webhook_save(&self.campaign, &self.state).await {
                Ok(()) => return Ok(()),
                Err(e) if e.is_transient() => {
                    attempt += 1;
                    tracing::warn!(campaign = %self.campaign, error = %e, attempt,
                        "webhook: could not save the delivery state; retrying");
                    self.pause(self.policy.backoff(attempt)).await?;
                }
                Err(e) => return Err(Stop::Backend(e)),
            }
        }
    }

    async fn pause(&mut self, wait: Duration) -> Result<(), Stop> {
        if *self.closing.borrow() {
            return Err(Stop::Closing);
        }
        tokio::select! {
            () = tokio::time::sleep(wait) => Ok(()),
            _ = self.closing.changed() => Err(Stop::Closing),
        }
    }

    /// Delivers one body, retrying with backoff; gives it up after `max_attempts`.
    async fn deliver(&mut self, id: &str, body: Value) -> Result<(), Stop> {
        let body = Bytes::from(serde_json::to_vec(&body).unwrap_or_default());
        for attempt in 1..=self.policy.max_attempts.max(1) {
            let result = {
                let _permit = self.in_flight.acquire().await;
                self.target
                    .post(id, body.clone(), self.policy.timeout)
                    .await
            };
            match result {
                Ok(()) => return Ok(()),
                Err(why) => {
                    tracing::info!(campaign = %self.campaign, delivery = id, attempt, %why,
                        "webhook: delivery failed; retrying");
                    if attempt < self.policy.max_attempts {
                        self.pause(self.policy.backoff(attempt)).await?;
                    }
                }
            }
        }
        tracing::warn!(campaign = %self.campaign, delivery = id, attempts = self.policy.max_attempts,
            "webhook: delivery given up");
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn private_and_loopback_urls_are_refused_unless_allowed() {
        for url in [
            "http://127.0.0.1:9/hook",
            "http://10.1.2.3/hook",
            "http://[::1]:8080/",
            "http://192.168.1.1/",
        ] {
            let refused = Target::check(url, None, None, false).await.unwrap_err();
            assert_eq!(refused.status(), 400, "{url}");
            assert!(refused.to_string().contains("private"), "{refused}");
        }
        assert!(
            Target::check("http://127.0.0.1:9/hook", None, None, true)
                .await
                .is_ok()
        );
        for bad in ["ftp://example.com/", "/relative", "http://"] {
            assert!(Target::check(bad, None, None, true).await.is_err(), "{bad}");
        }
    }

    #[tokio::test]
    async fn signatures_cover_timestamp_and_body_with_the_campaign_key() {
        let (target, secret, made) =
            Target::check("http://127.0.0.1:9/", Some("k3y".into()), None, true)
                .await
                .unwrap();
        assert!(!made, "a given secret is not echoed");
        assert_eq!(secret, "k3y");
        let signature = target.signature(1700000000, b"{}");
        let key = hmac::Key::new(hmac::HMAC_SHA256, b"k3y");
        let expected = to_hex(hmac::sign(&key, b"1700000000.{}").as_ref());
        assert_eq!(signature, format!("t=1700000000,v1={expected}"));
        assert_ne!(signature, target.signature(1700000001, b"{}"));
        let (_, secret, made) = Target::check("http://127.0.0.1:9/", None, None, true)
            .await
            .unwrap();
        assert!(made);
        assert_eq!(secret.len(), 64);
        // A stored webhook signs with the same key.
        let stored = Target::stored(
            &WebhookState::new("http://127.0.0.1:9/".into(), "k3y".into(), None),
            true,
        )
        .unwrap();
        assert_eq!(stored.signature(1700000000, b"{}"), signature);
    }

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let policy = WebhookPolicy {
            first_retry: Duration::from_millis(100),
            max_retry: Duration::from_millis(500),
            ..WebhookPolicy::default()
        };
        let waits: Vec<u128> = (1..=5).map(|n| policy.backoff(n).as_millis()).collect();
        assert_eq!(waits, [100, 200, 400, 500, 500]);
    }
}
