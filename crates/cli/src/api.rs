//! The API seen from the command line: the TLS flags of server and client (`tls`), the
//! coordinator's call and submission limits (`limits`), the flags and serving of the gRPC and
//! HTTP APIs of `serve` and `coordinator` (`server`), reaching a coordinator (`remote`) and
//! following a campaign (`follow`). The protocols and servers are `rollcall_api`'s and
//! `rollcall_http`'s.

pub mod follow;
pub mod limits;
pub mod remote;
pub mod server;
pub mod tls;
