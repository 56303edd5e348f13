//! `GET /v1/campaigns/{id}/events`: a campaign as Server-Sent Events.
//!
//! Events: `progress` (a `CampaignProgress`, whenever it changed), `results` (with
//! `?results=true`: an array of `ResultRow`s as they are recorded), and `done` (the final
//! progress; the stream then ends). Every event's `id` is the results cursor after it, so a
//! client that reconnects with `Last-Event-ID` gets the results after the last ones it
//! received: none missed, none twice. The stream ends on shutdown too (reconnect to resume).

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::response::sse::{Event, KeepAlive, Sse};
use futures_util::Stream;
use rollcall_api::{CampaignBackend, CampaignState};
use rollcall_core::CampaignId;
use serde::Deserialize;
use tokio::sync::watch;
use utoipa::IntoParams;

use crate::app::HttpApi;
use crate::error::{ApiError, ErrorBody, query_rejection};
use crate::native::campaign_id;
use crate::rows::CampaignProgress;
use crate::rows::ResultRow;

/// Results per `results` event.
const PAGE: usize = 500;
/// What a client waits before reconnecting after the stream broke.
const RETRY: Duration = Duration::from_secs(1);

/// Query of the event stream.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct EventsQuery {
    /// Also send the results as they are recorded.
    #[serde(default)]
    pub results: bool,
}

/// Progress and, with `?results=true`, results, as Server-Sent Events.
#[utoipa::path(get, path = "/v1/campaigns/{id}/events", tag = "rollcall",
    params(
        ("id" = String, Path, description = "The campaign id"),
        ("Last-Event-ID" = Option<String>, Header, description = "Resume after this event"),
        EventsQuery,
    ),
    responses(
        (status = 200, description = "`progress`, `results` and `done` events",
            content_type = "text/event-stream", body = String),
        (status = 400, description = "Malformed query or Last-Event-ID", body = ErrorBody),
        (status = 401, description = "No or wrong secret", body = ErrorBody),
        (status = 404, description = "No such campaign", body = ErrorBody),
    ))]
pub(crate) async fn campaign_events(
    State(api): State<Arc<HttpApi>>,
    Path(id): Path<String>,
    query: Result<Query<EventsQuery>, QueryRejection>,
    headers: HeaderMap,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ApiError> {
    let Query(query) = query.map_err(query_rejection)?;
    let id = campaign_id(&id)?;
    api.backend.progress(&id).await?;
    let cursor = match headers.get("last-event-id") {
        None => 0,
        Some(value) => value
            .to_str()
            .ok()
            .and_then(|v| v.trim().parse::<u64>().ok())
            .ok_or_else(|| {
                ApiError::BadRequest("Last-Event-ID is not an id this stream sent".into())
            })?,
    };
    if query.results {
        // A cursor past the results is refused now, not as a broken stream.
        api.backend.results_since(&id, cursor, 0).await?;
    }
    let watch = Watch {
        backend: api.backend.clone(),
        id,
        results: query.results,
        cursor,
        last: None,
        ended: false,
        first: true,
        poll: api.settings.poll,
        closing: api.closing.clone(),
    };
    let stream = futures_util::stream::unfold(watch, |mut w| async move {
        let event = w.next().await?;
        Some((Ok(event), w))
    });
    Ok(Sse::new(stream).keep_alive(KeepAlive::default()))
}

struct Watch {
    backend: Arc<dyn CampaignBackend>,
    id: CampaignId,
    results: bool,
    cursor: u64,
    /// What the last progress event said: (state, done, total).
    last: Option<(CampaignState, u64, u64)>,
    ended: bool,
    first: bool,
    poll: Duration,
    closing: watch::Receiver<bool>,
}

impl Watch {
    fn event(&mut self, name: &str, data: String) -> Event {
        let mut event = Event::default()
            .event(name)
            .id(self.cursor.to_string())
            .data(data);
        if std::mem::take(&mut self.first) {
            event = event.retry(RETRY);
        }
        event
    }

    /// The next event, or `None` once the stream is over.
    async fn next(&mut self) -> Option<Event> {
        loop {
            if self.ended || *self.closing.borrow() {
                return None;
            }
            match self.step().await {
                Ok(Some(event)) => return Some(event),
                Ok(None) => {}
                Err(e) => {
                    self.ended = true;
                    let data = serde_json::json!({ "error": e.to_string() }).to_string();
                    return Some(Event::default().event("error").data(data));
                }
            }
            tokio::select! {
                () = tokio::time::sleep(self.poll) => {}
                _ = self.closing.changed() => return None,
            }
        }
    }

    async fn step(&mut self) -> Result<Option<Event>, ApiError> {
        if let Some(event) = self.results_event().await? {
            return Ok(Some(event));
        }
        let progress = self.backend.progress(&self.id).await?;
        let key = (progress.state, progress.counts.done, progress.counts.total);
        let data = serde_json::to_string(&CampaignProgress::from(&progress)).unwrap_or_default();
        if progress.state.is_final() {
            // Results recorded between the read above and the final state go out first.
            if let Some(event) = self.results_event().await? {
                return Ok(Some(event));
            }
            self.ended = true;
            return Ok(Some(self.event("done", data)));
        }
        if self.last != Some(key) {
            self.last = Some(key);
            return Ok(Some(self.event("progress", data)));
        }
        Ok(None)
    }

    async fn results_event(&mut self) -> Result<Option<Event>, ApiError> {
        if !self.results {
            return Ok(None);
        }
        let (page, next) = self
            .backend
            .results_since(&self.id, self.cursor, PAGE)
            .await?;
        if page.is_empty() {
            return Ok(None);
        }
        self.cursor = next;
        let rows: Vec<ResultRow> = page.iter().map(ResultRow::of).collect();
        let data = serde_json::to_string(&rows).unwrap_or_default();
        Ok(Some(self.event("results", data)))
    }
}
