//! rollcall's own routes: `POST /v1/verify`, campaign progress, results and cancel, health and
//! readiness (the upload is `upload`, the event stream `events`). Each handler turns the
//! request into backend calls and the answer into JSON, CSV or JSONL; none decides a verdict.

use std::sync::Arc;

use axum::Json;
use axum::body::Body;
use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use futures_util::StreamExt;
use rollcall_api::{CampaignBackend, ResultRecord};
use rollcall_core::CampaignId;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::app::HttpApi;
use crate::error::{ApiError, ErrorBody, json_rejection, query_rejection};
use crate::rows::{CampaignProgress, ResultRow, csv_header, state_name};

/// Results read from the backend per call.
const PAGE: usize = 1000;
/// Rows per chunk of a streamed download.
const DOWNLOAD_CHUNK: usize = 256;

/// `POST /v1/verify`: one address.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct VerifyRequest {
    /// The address as given; the server parses and normalises it.
    pub address: String,
    /// Reserved: per-call options are not taken yet (the server's settings apply); absent,
    /// `null` or `{}`.
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub options: Option<serde_json::Map<String, serde_json::Value>>,
}

/// An id from a path: one that cannot be an id is a campaign that does not exist.
pub(crate) fn campaign_id(raw: &str) -> Result<CampaignId, ApiError> {
    CampaignId::new(raw).map_err(|_| ApiError::no_campaign(raw))
}

/// Every result recorded so far, in input order.
pub(crate) async fn results_in_order(
    backend: &dyn CampaignBackend,
    id: &CampaignId,
) -> Result<Vec<ResultRecord>, ApiError> {
    let mut all = Vec::new();
    let mut cursor = 0;
    loop {
        let (page, next) = backend.results_since(id, cursor, PAGE).await?;
        if page.is_empty() {
            break;
        }
        all.extend(page);
        cursor = next;
    }
    all.sort_by_key(|r| r.row);
    Ok(all)
}

/// A body streamed in chunks of lines, one line per item.
pub(crate) fn line_stream<T: Send + 'static>(
    head: Option<String>,
    items: Vec<T>,
    line: impl Fn(&T) -> String + Send + 'static,
) -> Body {
    let mut chunks: Vec<Vec<T>> = Vec::new();
    let mut items = items.into_iter().peekable();
    while items.peek().is_some() {
        chunks.push(items.by_ref().take(DOWNLOAD_CHUNK).collect());
    }
    let head = futures_util::stream::iter(head.map(|h| Ok::<_, std::io::Error>(Bytes::from(h))));
    let rows = futures_util::stream::iter(chunks).map(move |chunk| {
        let mut text = String::new();
        for item in &chunk {
            text.push_str(&line(item));
        }
        Ok::<_, std::io::Error>(Bytes::from(text))
    });
    Body::from_stream(head.chain(rows))
}

/// Verifies one address now and returns its result (the fields of a JSONL output row).
#[utoipa::path(post, path = "/v1/verify", tag = "rollcall",
    request_body = VerifyRequest,
    responses(
        (status = 200, description = "The result", body = ResultRow),
        (status = 400, description = "Malformed request", body = ErrorBody),
        (status = 401, description = "No or wrong secret", body = ErrorBody),
        (status = 413, description = "Body over the limit", body = ErrorBody),
        (status = 415, description = "Not JSON", body = ErrorBody),
        (status = 429, description = "Over the rate or the concurrent verify limit", body = ErrorBody,
            headers(("Retry-After" = u64, description = "Seconds before trying again"))),
    ))]
pub(crate) async fn verify(
    State(api): State<Arc<HttpApi>>,
    body: Result<Json<VerifyRequest>, JsonRejection>,
) -> Result<Json<ResultRow>, ApiError> {
    let Json(request) = body.map_err(json_rejection)?;
    if request.options.as_ref().is_some_and(|o| !o.is_empty()) {
        return Err(ApiError::BadRequest(
            "`options` is reserved: /v1/verify takes no per-call options yet (the server's \
             settings apply); send the address alone"
                .into(),
        ));
    }
    let verdict = verify_address(&api, &request.address).await?;
    Ok(Json(ResultRow::new(0, false, &verdict)))
}

/// One address through a verify slot (shared with gRPC's `Verify`).
pub(crate) async fn verify_address(
    api: &HttpApi,
    address: &str,
) -> Result<rollcall_core::Verdict, ApiError> {
    let _slot = api
        .admission
        .try_verify_slot()
        .ok_or_else(|| ApiError::TooManyRequests {
            message: format!(
                "at most {} verify calls run at once; retry when one has finished",
                api.admission.limits().max_concurrent_verify
            ),
            retry_after: 1,
        })?;
    Ok(api.backend.verify_one(address).await?)
}

/// Where a campaign stands.
#[utoipa::path(get, path = "/v1/campaigns/{id}", tag = "rollcall",
    params(("id" = String, Path, description = "The campaign id")),
    responses(
        (status = 200, description = "Its progress", body = CampaignProgress),
        (status = 401, description = "No or wrong secret", body = ErrorBody),
        (status = 404, description = "No such campaign", body = ErrorBody),
    ))]
pub(crate) async fn get_campaign(
    State(api): State<Arc<HttpApi>>,
    Path(id): Path<String>,
) -> Result<Json<CampaignProgress>, ApiError> {
    let id = campaign_id(&id)?;
    let progress = api.backend.progress(&id).await?;
    Ok(Json((&progress).into()))
}

/// Cancels a campaign: no new address is probed. Cancelling a finished one changes nothing.
#[utoipa::path(delete, path = "/v1/campaigns/{id}", tag = "rollcall",
    params(("id" = String, Path, description = "The campaign id")),
    responses(
        (status = 200, description = "Its progress after the cancel", body = CampaignProgress),
        (status = 401, description = "No or wrong secret", body = ErrorBody),
        (status = 404, description = "No such campaign", body = ErrorBody),
    ))]
pub(crate) async fn cancel_campaign(
    State(api): State<Arc<HttpApi>>,
    Path(id): Path<String>,
) -> Result<Json<CampaignProgress>, ApiError> {
    let id = campaign_id(&id)?;
    let progress = api.backend.cancel(&id).await?;
    tracing::info!(campaign = %id, state = ?progress.state, "campaign cancel requested over HTTP");
    Ok(Json((&progress).into()))
}

/// The format of a results download.
#[derive(Debug, Clone, Copy, Default, Deserialize, ToSchema, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum ResultsFormat {
    /// One JSON object per line (`application/x-ndjson`).
    #[default]
    Jsonl,
    /// CSV with a header line (`text/csv`).
    Csv,
}

/// Query of `GET /v1/campaigns/{id}/results`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ResultsQuery {
    /// `jsonl` (default) or `csv`.
    #[serde(default)]
    pub format: ResultsFormat,
}

/// The results so far, in input order, streamed; while the campaign runs, what is done.
#[utoipa::path(get, path = "/v1/campaigns/{id}/results", tag = "rollcall",
    params(("id" = String, Path, description = "The campaign id"), ResultsQuery),
    responses(
        (status = 200, description = "One row per result, in input order",
            content((ResultRow = "application/x-ndjson"), (String = "text/csv"))),
        (status = 400, description = "Unknown format", body = ErrorBody),
        (status = 401, description = "No or wrong secret", body = ErrorBody),
        (status = 404, description = "No such campaign", body = ErrorBody),
    ))]
pub(crate) async fn campaign_results(
    State(api): State<Arc<HttpApi>>,
    Path(id): Path<String>,
    query: Result<Query<ResultsQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(query) = query.map_err(query_rejection)?;
    let id = campaign_id(&id)?;
    let progress = api.backend.progress(&id).await?;
    let results = results_in_order(&*api.backend, &id).await?;
    let (content_type, body) = match query.format {
        ResultsFormat::Jsonl => (
            "application/x-ndjson",
            line_stream(None, results, |r| {
                let mut line = serde_json::to_string(&ResultRow::of(r)).unwrap_or_default();
                line.push('\n');
                line
            }),
        ),
        ResultsFormat::Csv => (
            "text/csv; charset=utf-8",
            line_stream(Some(csv_header()), results, |r| ResultRow::of(r).csv()),
        ),
    };
    Ok((
        StatusCode::OK,
        [
            (header::CONTENT_TYPE, content_type),
            (
                header::HeaderName::from_static("x-rollcall-campaign-state"),
                state_name(progress.state),
            ),
        ],
        body,
    )
        .into_response())
}

/// Health and readiness.
#[derive(Debug, Serialize, ToSchema)]
pub struct Health {
    /// `ok`, `ready` or `shutting_down`.
    pub status: &'static str,
}

/// The process serves HTTP.
#[utoipa::path(get, path = "/healthz", tag = "operations", security(()),
    responses((status = 200, description = "Serving", body = Health)))]
pub(crate) async fn healthz() -> Json<Health> {
    Json(Health { status: "ok" })
}

/// The process takes requests (503 once it is shutting down).
#[utoipa::path(get, path = "/readyz", tag = "operations", security(()),
    responses(
        (status = 200, description = "Ready", body = Health),
        (status = 503, description = "Shutting down", body = Health),
    ))]
pub(crate) async fn readyz(State(api): State<Arc<HttpApi>>) -> Response {
    if api.is_closing() {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(Health {
                status: "shutting_down",
            }),
        )
            .into_response()
    } else {
        Json(Health { status: "ready" }).into_response()
    }
}
