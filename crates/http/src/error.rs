//! `ApiError`: every way a request fails, as one HTTP status and a JSON body `{"error": ...}`
//! (with `Retry-After` on 429 and 503), and the mapping of the backend's errors and of axum's
//! extractor rejections into it. A client's mistake is never a 500: only `Internal` (a broken
//! invariant on our side) is.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use rollcall_api::BackendError;
use serde::Serialize;
use utoipa::ToSchema;

/// The body of every error response.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ErrorBody {
    /// What went wrong and, where there is one, what to do about it.
    pub error: String,
}

/// Why a request failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ApiError {
    /// The request is malformed (400).
    #[error("{0}")]
    BadRequest(String),
    /// No or wrong secret (401).
    #[error(
        "missing or wrong secret (send `Authorization: Bearer <token>` or `x-reacher-secret: <token>`)"
    )]
    Unauthorized,
    /// No such campaign, job or route (404).
    #[error("{0}")]
    NotFound(String),
    /// The method is not served on this path (405).
    #[error("{0}")]
    MethodNotAllowed(String),
    /// The body is over the limit (413).
    #[error("{0}")]
    PayloadTooLarge(String),
    /// The body's content type is not one the route takes (415).
    #[error("{0}")]
    UnsupportedMediaType(String),
    /// Over a rate or concurrency limit; retry after this many seconds (429).
    #[error("{message}")]
    TooManyRequests {
        /// What limit, and what to do.
        message: String,
        /// Seconds before trying again.
        retry_after: u64,
    },
    /// A dependency is unreachable or the server is shutting down (503).
    #[error("{0}")]
    Unavailable(String),
    /// A bug on our side (500).
    #[error("{0}")]
    Internal(String),
}

impl ApiError {
    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::Unauthorized => StatusCode::UNAUTHORIZED,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::MethodNotAllowed(_) => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::TooManyRequests { .. } => StatusCode::TOO_MANY_REQUESTS,
            ApiError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// A short, bounded label for logs and metrics.
    pub fn as_metric_label(&self) -> &'static str {
        match self {
            ApiError::BadRequest(_) => "bad_request",
            ApiError::Unauthorized => "unauthorized",
            ApiError::NotFound(_) => "not_found",
            ApiError::MethodNotAllowed(_) => "method_not_allowed",
            ApiError::PayloadTooLarge(_) => "payload_too_large",
            ApiError::UnsupportedMediaType(_) => "unsupported_media_type",
            ApiError::TooManyRequests { .. } => "too_many_requests",
            ApiError::Unavailable(_) => "unavailable",
            ApiError::Internal(_) => "internal",
        }
    }

    /// True for failures worth retrying later.
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            ApiError::TooManyRequests { .. } | ApiError::Unavailable(_)
        )
    }

    /// The 404 of an unknown campaign or job.
    pub(crate) fn no_campaign(id: &str) -> ApiError {
        let shown: String = id.chars().filter(|c| !c.is_control()).take(80).collect();
        ApiError::NotFound(format!("no campaign {shown}"))
    }
}

/// Seconds a client over a backend limit (campaigns running at once) waits before trying
/// again: campaigns take a while, so not less.
const BACKEND_RETRY_AFTER_SECS: u64 = 5;

impl From<BackendError> for ApiError {
    fn from(e: BackendError) -> ApiError {
        match e {
            BackendError::NotFound(what) => ApiError::NotFound(format!("no {what}")),
            BackendError::InvalidArgument(why) => ApiError::BadRequest(why),
            BackendError::Unavailable(why) => ApiError::Unavailable(why),
            BackendError::ResourceExhausted(why) => ApiError::TooManyRequests {
                message: why,
                retry_after: BACKEND_RETRY_AFTER_SECS,
            },
            BackendError::Internal(why) => ApiError::Internal(why),
            other => ApiError::Internal(other.to_string()),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        if status.is_server_error() {
            tracing::warn!(error = %self, label = self.as_metric_label(), "HTTP request failed");
        }
        let retry_after = match &self {
            ApiError::TooManyRequests { retry_after, .. } => Some(*retry_after),
            ApiError::Unavailable(_) => Some(1),
            _ => None,
        };
        let mut response = (
            status,
            Json(ErrorBody {
                error: self.to_string(),
            }),
        )
            .into_response();
        if let Some(secs) = retry_after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        response
    }
}

/// A JSON body that failed to parse, as the error a client should see: 415 without a JSON
/// content type, 413 over the body limit, 400 for anything else (syntax, wrong types, missing
/// fields).
pub(crate) fn json_rejection(rejection: axum::extract::rejection::JsonRejection) -> ApiError {
    use axum::extract::rejection::JsonRejection;
    match rejection {
        JsonRejection::MissingJsonContentType(_) => ApiError::UnsupportedMediaType(
            "this route takes a JSON body: send `Content-Type: application/json`".into(),
        ),
        JsonRejection::BytesRejection(r) if r.status() == StatusCode::PAYLOAD_TOO_LARGE => {
            ApiError::PayloadTooLarge(r.body_text())
        }
        other => ApiError::BadRequest(other.body_text()),
    }
}

/// A query string that failed to parse: always the client's (400).
pub(crate) fn query_rejection(rejection: axum::extract::rejection::QueryRejection) -> ApiError {
    ApiError::BadRequest(rejection.body_text())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backend_errors_map_to_client_or_server_statuses() {
        let cases = [
            (BackendError::NotFound("campaign x".into()), 404),
            (BackendError::InvalidArgument("bad".into()), 400),
            (BackendError::Unavailable("down".into()), 503),
            (BackendError::ResourceExhausted("full".into()), 429),
            (BackendError::Internal("bug".into()), 500),
        ];
        for (backend, status) in cases {
            assert_eq!(ApiError::from(backend).status().as_u16(), status);
        }
    }

    #[test]
    fn too_many_requests_says_when_to_retry() {
        let response = ApiError::TooManyRequests {
            message: "slow down".into(),
            retry_after: 7,
        }
        .into_response();
        assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(response.headers()[header::RETRY_AFTER], "7");
        let plain = ApiError::BadRequest("x".into()).into_response();
        assert!(plain.headers().get(header::RETRY_AFTER).is_none());
    }

    #[test]
    fn unknown_ids_are_shown_without_control_characters() {
        let e = ApiError::no_campaign("bad\r\nid");
        assert_eq!(e.status(), StatusCode::NOT_FOUND);
        assert!(!e.to_string().contains('\r'));
    }
}
