//! `POST /v1/campaigns`: a list as JSON (`{name?, addresses, webhook?, options?}`) or as a
//! `text/csv` / `text/plain` body streamed to the backend chunk by chunk as it arrives (never
//! held whole), and the campaign it becomes. Also the submission shared with Reacher's
//! `POST /v1/bulk`: the webhook is checked before anything is submitted, then started.
//!
//! A CSV body's address column is the one whose header is `email`, `address`, `email_address`,
//! `e-mail`, `mail` or `to_email` (any case); without such a header the first column is the
//! address and the first line is data. A record is one line (no line breaks inside quotes).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::Json;
use axum::body::Body;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use bytes::Bytes;
use futures_util::{Stream, StreamExt};
use rollcall_api::{AddressChunks, BackendError, SubmitOptions, SubmitOutcome};
use rollcall_core::ports::WebhookState;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::app::HttpApi;
use crate::error::{ApiError, ErrorBody, query_rejection};
use crate::webhook::Target;

/// Addresses handed to the backend per chunk.
const CHUNK: usize = 1000;
/// Longest line of a streamed list.
const MAX_LINE: usize = 64 * 1024;
/// Header names that mark the address column of a CSV body.
const ADDRESS_HEADERS: [&str; 6] = [
    "email",
    "address",
    "email_address",
    "e-mail",
    "mail",
    "to_email",
];

/// Where a campaign's webhook deliveries go.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WebhookRequest {
    /// `http://` or `https://` URL. One that resolves to a loopback or private address is
    /// refused unless the server allows private targets.
    pub url: String,
    /// The HMAC-SHA256 key of the signatures; the server makes one (and returns it) when
    /// absent.
    #[serde(default)]
    pub secret: Option<String>,
}

/// How to run a campaign; absent fields take the server's settings.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CampaignOptions {
    /// EHLO host name.
    pub helo: Option<String>,
    /// MAIL FROM reverse path; `""` is the null path `<>`.
    pub mail_from: Option<String>,
    pub max_sessions: Option<u32>,
    pub rcpt_per_minute: Option<u32>,
    pub rcpt_per_transaction: Option<u32>,
    /// The longest an address waits for retries, in seconds (0: no bound).
    pub max_wait_secs: Option<u32>,
}

/// `POST /v1/campaigns` as JSON.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CampaignRequest {
    /// A name for people; not unique.
    #[serde(default)]
    pub name: Option<String>,
    /// The list, in order.
    pub addresses: Vec<String>,
    #[serde(default)]
    pub webhook: Option<WebhookRequest>,
    #[serde(default)]
    pub options: Option<CampaignOptions>,
}

/// Query of `POST /v1/campaigns` with a streamed text or CSV body.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct UploadQuery {
    /// A name for people (text and CSV bodies; a JSON body carries its own).
    pub name: Option<String>,
    /// Webhook URL (text and CSV bodies); the secret is made by the server and returned.
    pub webhook_url: Option<String>,
}

/// The new campaign.
#[derive(Debug, Serialize, ToSchema)]
pub struct CampaignCreated {
    /// Unguessable id (130 random bits).
    pub campaign_id: String,
    /// Addresses taken for verification.
    pub accepted: u64,
    /// Entries repeating an earlier address of the list.
    pub duplicate: u64,
    /// Entries that are not addresses (each still gets its `invalid_syntax` result).
    pub invalid: u64,
    /// The webhook signing secret, when the server made it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub webhook_secret: Option<String>,
}

impl CampaignOptions {
    fn into_submit(self, name: String) -> Result<SubmitOptions, ApiError> {
        let wire = rollcall_api::v1::CampaignOptions {
            name,
            helo: self.helo,
            mail_from: self.mail_from,
            max_sessions: self.max_sessions,
            rcpt_per_minute: self.rcpt_per_minute,
            rcpt_per_transaction: self.rcpt_per_transaction,
            max_wait_secs: self.max_wait_secs,
        };
        SubmitOptions::try_from(wire).map_err(|e| ApiError::BadRequest(e.to_string()))
    }
}

/// Submits `chunks` as a campaign with `options`, after checking `webhook`; starts the webhook.
pub(crate) async fn submit(
    api: &Arc<HttpApi>,
    options: SubmitOptions,
    chunks: AddressChunks,
    webhook: Option<(String, Option<String>, Option<serde_json::Value>)>,
) -> Result<(SubmitOutcome, Option<String>), ApiError> {
    let target = match webhook {
        Some((url, secret, extra)) => {
            let stored_extra = extra.as_ref().map(|v| v.to_string());
            let (target, secret, made) =
                Target::check(&url, secret, extra, api.settings.allow_private_webhooks).await?;
            let state = WebhookState::new(url, secret.clone(), stored_extra);
            Some((target, state, made.then_some(secret)))
        }
        None => None,
    };
    let outcome = api.backend.submit(options, chunks).await?;
    api.created.insert(outcome.campaign_id.clone());
    tracing::info!(campaign = %outcome.campaign_id, accepted = outcome.accepted,
        duplicate = outcome.duplicate, invalid = outcome.invalid, "campaign submitted over HTTP");
    let Some((target, state, made)) = target else {
        return Ok((outcome, None));
    };
    // Kept with the campaign, so a restarted coordinator goes on delivering (the task saves
    // its progress as it goes; a failure here is one it retries).
    if let Err(error) = api.backend.webhook_save(&outcome.campaign_id, &state).await {
        tracing::warn!(campaign = %outcome.campaign_id, %error, "webhook: could not save its state yet");
    }
    api.webhooks.start(
        api.backend.clone(),
        outcome.campaign_id.clone(),
        target,
        state,
        api.settings.poll,
        api.closing.clone(),
    );
    Ok((outcome, made))
}

/// What a request body is.
enum BodyKind {
    Json,
    Text,
    Csv,
}

fn body_kind(headers: &HeaderMap) -> Result<BodyKind, ApiError> {
    let essence = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| {
            v.split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase()
        });
    match essence.as_deref() {
        Some("application/json") => Ok(BodyKind::Json),
        Some("text/plain") => Ok(BodyKind::Text),
        Some("text/csv") => Ok(BodyKind::Csv),
        _ => Err(ApiError::UnsupportedMediaType(
            "send the list as `application/json` ({\"addresses\": [...]}), `text/csv` or \
             `text/plain` (one address per line)"
                .into(),
        )),
    }
}

/// Creates a campaign from a JSON list or a streamed text/CSV body.
#[utoipa::path(post, path = "/v1/campaigns", tag = "rollcall",
    params(UploadQuery),
    request_body(content(
        (CampaignRequest = "application/json"),
        (String = "text/csv"),
        (String = "text/plain"),
    )),
    responses(
        (status = 201, description = "The campaign was created", body = CampaignCreated),
        (status = 400, description = "Malformed request or webhook URL refused", body = ErrorBody),
        (status = 401, description = "No or wrong secret", body = ErrorBody),
        (status = 413, description = "Body over the limit", body = ErrorBody),
        (status = 415, description = "Not JSON, CSV or text", body = ErrorBody),
        (status = 429, description = "Over the rate, or too many campaigns running", body = ErrorBody,
            headers(("Retry-After" = u64, description = "Seconds before trying again"))),
    ))]
pub(crate) async fn create_campaign(
    State(api): State<Arc<HttpApi>>,
    query: Result<Query<UploadQuery>, QueryRejection>,
    headers: HeaderMap,
    body: Body,
) -> Result<(StatusCode, Json<CampaignCreated>), ApiError> {
    let Query(query) = query.map_err(query_rejection)?;
    let (outcome, secret) = match body_kind(&headers)? {
        BodyKind::Json => {
            let bytes = axum::body::to_bytes(body, api.settings.max_body_bytes)
                .await
                .map_err(|_| {
                    ApiError::PayloadTooLarge(format!(
                        "a JSON body holds at most {} bytes; send a long list as text/csv",
                        api.settings.max_body_bytes
                    ))
                })?;
            let request: CampaignRequest = serde_json::from_slice(&bytes)
                .map_err(|e| ApiError::BadRequest(format!("malformed JSON body: {e}")))?;
            if query.name.is_some() || query.webhook_url.is_some() {
                return Err(ApiError::BadRequest(
                    "a JSON body carries its own name and webhook; the query takes none".into(),
                ));
            }
            let options = request
                .options
                .unwrap_or_default()
                .into_submit(request.name.unwrap_or_default())?;
            let chunks = request
                .addresses
                .chunks(CHUNK)
                .map(|c| Ok(c.to_vec()))
                .collect::<Vec<_>>();
            let webhook = request.webhook.map(|w| (w.url, w.secret, None));
            submit(
                &api,
                options,
                Box::pin(futures_util::stream::iter(chunks)),
                webhook,
            )
            .await?
        }
        kind => {
            let options = CampaignOptions::default().into_submit(query.name.unwrap_or_default())?;
            let too_large = Arc::new(AtomicBool::new(false));
            let chunks = lines(
                body.into_data_stream(),
                matches!(kind, BodyKind::Csv),
                api.settings.max_upload_bytes,
                too_large.clone(),
            );
            let webhook = query.webhook_url.map(|url| (url, None, None));
            match submit(&api, options, chunks, webhook).await {
                Err(_) if too_large.load(Ordering::SeqCst) => {
                    return Err(ApiError::PayloadTooLarge(format!(
                        "a list holds at most {} bytes; split it",
                        api.settings.max_upload_bytes
                    )));
                }
                other => other?,
            }
        }
    };
    Ok((
        StatusCode::CREATED,
        Json(CampaignCreated {
            campaign_id: outcome.campaign_id.to_string(),
            accepted: outcome.accepted,
            duplicate: outcome.duplicate,
            invalid: outcome.invalid,
            webhook_secret: secret,
        }),
    ))
}

/// Cuts a streamed body into lines and the lines into chunks of addresses.
struct Lines<S> {
    body: S,
    buffer: Vec<u8>,
    bytes: u64,
    limit: u64,
    too_large: Arc<AtomicBool>,
    csv: bool,
    /// The address column of a CSV body, once its first line was read.
    column: Option<usize>,
    ended: bool,
}

/// The addresses of a text (one per line) or CSV body, `CHUNK` at a time, as the body
/// arrives. Over `limit` bytes the stream fails and `too_large` is set.
pub(crate) fn lines<S>(body: S, csv: bool, limit: u64, too_large: Arc<AtomicBool>) -> AddressChunks
where
    S: Stream<Item = Result<Bytes, axum::Error>> + Send + Unpin + 'static,
{
    let state = Lines {
        body,
        buffer: Vec::new(),
        bytes: 0,
        limit,
        too_large,
        csv,
        column: None,
        ended: false,
    };
    Box::pin(futures_util::stream::unfold(state, |mut s| async move {
        if s.ended {
            return None;
        }
        let mut chunk = Vec::new();
        loop {
            while let Some(end) = s.buffer.iter().position(|b| *b == b'\n') {
                let line: Vec<u8> = s.buffer.drain(..=end).collect();
                if let Some(address) = s.entry(&line[..line.len() - 1]) {
                    chunk.push(address);
                }
                if chunk.len() >= CHUNK {
                    return Some((Ok(chunk), s));
                }
            }
            if s.buffer.len() > MAX_LINE {
                s.ended = true;
                return Some((
                    Err(BackendError::InvalidArgument(format!(
                        "a line is longer than {MAX_LINE} bytes"
                    ))),
                    s,
                ));
            }
            match s.body.next().await {
                Some(Ok(bytes)) => {
                    s.bytes = s.bytes.saturating_add(bytes.len() as u64);
                    if s.bytes > s.limit {
                        s.too_large.store(true, Ordering::SeqCst);
                        s.ended = true;
                        return Some((
                            Err(BackendError::InvalidArgument(
                                "the list is too large".into(),
                            )),
                            s,
                        ));
                    }
                    s.buffer.extend_from_slice(&bytes);
                }
                Some(Err(e)) => {
                    s.ended = true;
                    return Some((
                        Err(BackendError::InvalidArgument(format!(
                            "the body could not be read: {e}"
                        ))),
                        s,
                    ));
                }
                None => {
                    s.ended = true;
                    let rest = std::mem::take(&mut s.buffer);
                    if let Some(address) = s.entry(&rest) {
                        chunk.push(address);
                    }
                    return (!chunk.is_empty()).then_some((Ok(chunk), s));
                }
            }
        }
    }))
}

impl<S> Lines<S> {
    /// The address of one line, `None` for a blank line or a CSV header.
    fn entry(&mut self, line: &[u8]) -> Option<String> {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let line = line.strip_prefix(b"\xef\xbb\xbf").unwrap_or(line);
        let text = String::from_utf8_lossy(line);
        if text.trim().is_empty() {
            return None;
        }
        if !self.csv {
            return Some(text.trim().to_string());
        }
        let fields = csv_fields(&text);
        let column = match self.column {
            Some(column) => column,
            None => {
                let header = fields.iter().position(|f| {
                    ADDRESS_HEADERS
                        .iter()
                        .any(|h| f.trim().eq_ignore_ascii_case(h))
                });
                self.column = Some(header.unwrap_or(0));
                if header.is_some() {
                    return None;
                }
                0
            }
        };
        Some(
            fields
                .get(column)
                .map(|f| f.trim().to_string())
                .unwrap_or_default(),
        )
    }
}

fn csv_fields(line: &str) -> Vec<String> {
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .from_reader(line.as_bytes());
    reader
        .records()
        .next()
        .and_then(Result::ok)
        .map(|r| r.iter().map(str::to_string).collect())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn collect(parts: &[&str], csv: bool, limit: u64) -> (Vec<String>, bool, bool) {
        let owned: Vec<Result<Bytes, axum::Error>> = parts
            .iter()
            .map(|p| Ok(Bytes::from(p.to_string())))
            .collect();
        let flag = Arc::new(AtomicBool::new(false));
        let mut chunks = lines(futures_util::stream::iter(owned), csv, limit, flag.clone());
        let mut all = Vec::new();
        let mut failed = false;
        while let Some(chunk) = chunks.next().await {
            match chunk {
                Ok(c) => all.extend(c),
                Err(_) => failed = true,
            }
        }
        (all, failed, flag.load(Ordering::SeqCst))
    }

    #[tokio::test]
    async fn text_lines_split_across_chunks_of_the_body() {
        let (all, failed, _) =
            collect(&["a@x.test\r\nb@", "x.test\n\n  c@x.test  "], false, 1000).await;
        assert!(!failed);
        assert_eq!(all, ["a@x.test", "b@x.test", "c@x.test"]);
    }

    #[tokio::test]
    async fn csv_takes_the_email_column_or_the_first() {
        let (all, _, _) = collect(
            &["name,Email\nAnn,\"a@x.test\"\nBob,b@x.test\n"],
            true,
            1000,
        )
        .await;
        assert_eq!(all, ["a@x.test", "b@x.test"]);
        let (all, _, _) = collect(&["a@x.test,1\nb@x.test,2\n"], true, 1000).await;
        assert_eq!(all, ["a@x.test", "b@x.test"]);
    }

    #[tokio::test]
    async fn a_body_over_the_limit_fails_and_says_so() {
        let (_, failed, too_large) = collect(&["a@x.test\n", "b@x.test\n"], false, 12).await;
        assert!(failed && too_large);
    }
}
