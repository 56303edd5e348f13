//! The gRPC API seen from the command line: the TLS flags of server and client (`tls`), the
//! coordinator's call and submission limits (`limits`). The protocol and the server are
//! `rollcall_api`'s.

pub mod follow;
pub mod limits;
pub mod remote;
pub mod tls;
