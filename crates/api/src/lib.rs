//! The gRPC interface of rollcall: the `rollcall.v1.Verifier` service (from
//! `proto/rollcall/v1/verifier.proto`), the port it is served over, and a client.
//!
//! # Layout
//! - `v1`: the generated messages, enums, client and server (prost + tonic).
//! - `backend`: `CampaignBackend`, the port the coordinator implements, and its plain types.
//!   No gRPC type crosses it.
//! - `convert`: wire <-> domain conversions (`Verdict`, `Status`, `Reason`, progress, options).
//! - `service`: `VerifierService`, the generated trait implemented over any backend.
//! - `watch`: the server streams (WatchCampaign, ListResults) built on backend polling.
//! - `auth`: bearer-token interceptors for server and client.
//! - `limits`: call limits (concurrent `Verify` calls, calls per minute per token).
//! - `server`: `serve`, with health and reflection alongside, over plaintext or TLS.
//! - `client`: `connect`, over plaintext (`http://`) or TLS (`https://`).
//! - `tls`: `ServerTls` and `ClientTls`, the checked certificates, keys and CAs (rustls, ring).
//! - `error`: the crate's `Error` (with `TlsPart`), and `BackendError -> tonic::Status`.
//!
//! `tonic::Status` appears in this crate only; the rest of the workspace speaks
//! `BackendError` and `Error`.

#![forbid(unsafe_code)]
#![warn(clippy::print_stdout, clippy::print_stderr)]

pub mod auth;
pub mod backend;
pub mod client;
pub mod convert;
pub mod error;
pub mod limits;
pub mod server;
pub mod service;
pub mod tls;
pub mod watch;

/// The generated `rollcall.v1` types, client (`verifier_client`) and server
/// (`verifier_server`).
pub mod v1 {
    tonic::include_proto!("rollcall.v1");
}

/// The encoded file descriptor set of `rollcall.v1` (for reflection, or a client that wants the
/// schema).
pub const FILE_DESCRIPTOR_SET: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/rollcall_v1_descriptor.bin"));

/// The full gRPC name of the service.
pub const SERVICE_NAME: &str = "rollcall.v1.Verifier";

pub use auth::{AttachToken, BearerAuth};
pub use backend::{
    AddressChunks, BackendError, CampaignBackend, CampaignState, ProgressSnapshot, ResultRecord,
    SubmitOptions, SubmitOutcome,
};
pub use client::{Client, connect, connect_with_tls};
pub use error::{Error, TlsPart};
pub use limits::{Admission, CallLimits, Caller};
pub use server::{serve, serve_service, serve_service_with_tls, serve_with_tls};
pub use service::VerifierService;
pub use tls::{ClientTls, ServerTls};
pub use watch::WatchPacing;
