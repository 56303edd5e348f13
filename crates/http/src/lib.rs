//! The HTTP/JSON API of rollcall, beside the gRPC one and over the same `CampaignBackend`:
//! rollcall's own routes, routes that answer Reacher's clients as Reacher 0.11 does, campaign
//! progress and results as Server-Sent Events, signed webhooks, and the OpenAPI document of all
//! of it (generated from the types by utoipa).
//!
//! # Layout
//! - `app`: `HttpApi`, what every handler shares (backend, token check, call limits,
//!   settings, webhooks).
//! - `routes`: `router`, the route table (each route added to the router and recorded, so a
//!   test holds the router against the OpenAPI document) with authentication and the
//!   per-caller rate in front.
//! - `error`: `ApiError`, the one way a request fails (status, `{"error": ...}`, `Retry-After`).
//! - `rows`: a result as JSON and CSV (the fields of the CLI's JSONL and CSV output), and a
//!   campaign's progress.
//! - `native`: `/v1/verify` and `/v1/campaigns...`, with the list upload (JSON or a streamed
//!   text/CSV body) in `upload`.
//! - `events`: `GET /v1/campaigns/{id}/events`, the Server-Sent Events stream.
//! - `reacher`: the Reacher-compatible routes and the mapping from verdicts to Reacher's fields.
//! - `webhook`: webhook targets (the private-address policy), signing, delivery with retries,
//!   its state saved with the campaign and resumed after a restart.
//! - `openapi`: the document (`ApiDoc`).
//! - `serve`: serving a router on a listener, plaintext or TLS.
//!
//! It runs no campaign (the backend does) and reads no flag (the CLI does).

#![forbid(unsafe_code)]
#![warn(clippy::print_stdout, clippy::print_stderr)]

mod app;
mod error;
mod events;
mod native;
mod openapi;
mod reacher;
mod routes;
mod rows;
mod serve;
mod upload;
mod webhook;

pub use app::{HttpApi, HttpSettings};
pub use error::{ApiError, ErrorBody};
pub use openapi::{ApiDoc, document};
pub use reacher::Reachable;
pub use routes::router;
pub use serve::{Error, serve};
pub use webhook::WebhookPolicy;
