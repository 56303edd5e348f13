//! The route table: every route of the HTTP API, added to the router and recorded as
//! (method, path) in the same call, so the router and the list cannot disagree and a test can
//! hold the list against the OpenAPI document (each route there, nothing there that is not a
//! route).

use std::sync::Arc;

use axum::Router;
use axum::handler::Handler;
use axum::http::Method;
use axum::routing::{MethodFilter, on};

use crate::app::HttpApi;
use crate::{events, native, openapi, reacher, upload};

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
