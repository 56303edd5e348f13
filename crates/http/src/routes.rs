//! The router: the route table, every route of the HTTP API added to the router and recorded
//! as (method, path) in the same call, so the router and the list cannot disagree and a test
//! holds the list against the OpenAPI document (each route there, nothing there that is not a
//! route); authentication and the per-caller rate in front of the protected routes; JSON
//! answers for unknown paths and methods.
//!
//! Health, readiness and the document are outside the token check, as gRPC health and
//! reflection are: orchestrators probe without credentials and the document only describes the
//! public schema. Every other route, GETs included, needs the token.

use std::sync::Arc;

use axum::Router;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::handler::Handler;
use axum::http::Method;
use axum::http::header::AUTHORIZATION;
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::{MethodFilter, on};
use rollcall_api::Caller;

use crate::app::HttpApi;
use crate::error::ApiError;
use crate::{events, native, openapi, reacher, upload};

/// The header Reacher's clients send their secret in.
const REACHER_SECRET: &str = "x-reacher-secret";

/// A router and the routes it holds.
pub(crate) struct RouteTable {
    pub(crate) router: Router<Arc<HttpApi>>,
    pub(crate) routes: Vec<(Method, &'static str)>,
}

impl RouteTable {
    fn new() -> RouteTable {
        RouteTable {
            router: Router::new(),
            routes: Vec::new(),
        }
    }

    fn add<H, T>(mut self, method: Method, path: &'static str, handler: H) -> RouteTable
    where
        H: Handler<T, Arc<HttpApi>>,
        T: 'static,
    {
        let filter = match method {
            Method::GET => MethodFilter::GET,
            Method::POST => MethodFilter::POST,
            Method::DELETE => MethodFilter::DELETE,
            Method::PUT => MethodFilter::PUT,
            _ => MethodFilter::PATCH,
        };
        self.routes.push((method, path));
        self.router = self.router.route(path, on(filter, handler));
        self
    }
}

/// Routes open to anyone who can connect: health, readiness, the document.
pub(crate) fn open() -> RouteTable {
    RouteTable::new()
        .add(Method::GET, "/healthz", native::healthz)
        .add(Method::GET, "/readyz", native::readyz)
        .add(Method::GET, "/openapi.json", openapi::serve_document)
}

/// Routes behind the token.
pub(crate) fn protected() -> RouteTable {
    RouteTable::new()
        .add(Method::POST, "/v1/verify", native::verify)
        .add(Method::POST, "/v1/campaigns", upload::create_campaign)
        .add(Method::GET, "/v1/campaigns/{id}", native::get_campaign)
        .add(
            Method::DELETE,
            "/v1/campaigns/{id}",
            native::cancel_campaign,
        )
        .add(
            Method::GET,
            "/v1/campaigns/{id}/results",
            native::campaign_results,
        )
        .add(
            Method::GET,
            "/v1/campaigns/{id}/events",
            events::campaign_events,
        )
        .add(Method::POST, "/v0/check_email", reacher::check_email_v0)
        .add(Method::POST, "/v1/check_email", reacher::check_email_v1)
        .add(Method::POST, "/v1/bulk", reacher::create_bulk)
        .add(Method::GET, "/v1/bulk/{job_id}", reacher::get_bulk)
        .add(
            Method::GET,
            "/v1/bulk/{job_id}/results",
            reacher::bulk_results,
        )
}

/// Every route: (method, path).
#[cfg(test)]
pub(crate) fn all() -> Vec<(Method, &'static str)> {
    let mut routes = open().routes;
    routes.extend(protected().routes);
    routes
}

/// The router of `api`: every route of the table, the open ones beside them.
pub fn router(api: Arc<HttpApi>) -> Router {
    let protected = protected()
        .router
        .layer(middleware::from_fn_with_state(api.clone(), authenticate));
    open()
        .router
        .merge(protected)
        .fallback(unknown_route)
        .method_not_allowed_fallback(wrong_method)
        .layer(DefaultBodyLimit::max(api.settings.max_body_bytes))
        .with_state(api)
}

/// Checks the secret and counts the call against its caller's rate (shared with gRPC).
async fn authenticate(
    State(api): State<Arc<HttpApi>>,
    mut request: Request,
    next: Next,
) -> Result<Response, ApiError> {
    let headers = request.headers();
    let by_secret = headers
        .get(REACHER_SECRET)
        .and_then(|v| api.auth.check_secret(Some(v.as_bytes())));
    let caller: Caller = match by_secret {
        Some(caller) => caller,
        None if headers.contains_key(REACHER_SECRET) && !headers.contains_key(AUTHORIZATION) => {
            return Err(ApiError::Unauthorized);
        }
        None => api
            .auth
            .check(headers.get(AUTHORIZATION).map(|v| v.as_bytes()))
            .ok_or(ApiError::Unauthorized)?,
    };
    if !api.admission.try_admit(caller) {
        return Err(ApiError::TooManyRequests {
            message: format!(
                "rate limit: at most {} calls per minute per token",
                api.admission.limits().requests_per_minute
            ),
            retry_after: api.admission.retry_after_secs(),
        });
    }
    request.extensions_mut().insert(caller);
    Ok(next.run(request).await)
}

async fn unknown_route(request: Request) -> ApiError {
    let path: String = request
        .uri()
        .path()
        .chars()
        .filter(|c| !c.is_control())
        .take(200)
        .collect();
    ApiError::NotFound(format!(
        "no route {path} (the routes are in GET /openapi.json)"
    ))
}

async fn wrong_method(request: Request) -> ApiError {
    ApiError::MethodNotAllowed(format!(
        "{} is not served on this path (see GET /openapi.json)",
        request.method()
    ))
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;
    use crate::openapi::document;

    #[test]
    fn every_route_is_in_the_document_and_nothing_else() {
        let doc = serde_json::to_value(document()).unwrap();
        let mut documented = BTreeSet::new();
        for (path, item) in doc["paths"].as_object().unwrap() {
            for method in item.as_object().unwrap().keys() {
                if ["get", "post", "put", "delete", "patch"].contains(&method.as_str()) {
                    documented.insert((method.to_uppercase(), path.clone()));
                }
            }
        }
        let routed: BTreeSet<(String, String)> = all()
            .into_iter()
            .map(|(m, p)| (m.to_string(), p.to_string()))
            .collect();
        assert_eq!(routed, documented);
        assert_eq!(doc["openapi"], "3.1.0");
    }
}
