//! The crate's one error type. Owns nothing else.
//!
//! Replies the simulated servers send are data, never errors: only a bad fleet file, a
//! failure to bind a socket or to build the TLS identity are `Error`s.

use std::path::PathBuf;

/// Everything that can go wrong while reading a fleet file or starting a fleet.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The fleet file is not valid TOML or has unknown fields.
    #[error("fleet file: {0}")]
    Toml(#[from] toml::de::Error),
    /// The fleet file could not be read.
    #[error("cannot read fleet file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The fleet file parsed but is inconsistent (a site names an unknown host, ...).
    #[error("fleet file: {0}")]
    Spec(String),
    /// A socket could not be bound.
    #[error("cannot bind {what} on {addr}: {source}")]
    Bind {
        /// Which server.
        what: &'static str,
        /// Where.
        addr: std::net::SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// No free port was found for the SMTP servers after several attempts.
    #[error("no free SMTP port found for all fleet hosts after {attempts} attempts")]
    NoFreePort {
        /// How many ports were tried.
        attempts: u32,
    },
    /// The self-signed certificate or the TLS configuration could not be built.
    #[error("TLS setup: {0}")]
    Tls(String),
}

impl Error {
    /// True when the fleet file (not the machine) is at fault.
    pub fn is_spec(&self) -> bool {
        matches!(self, Error::Toml(_) | Error::Spec(_) | Error::Read { .. })
    }

    /// A bounded label for logs and metrics.
    pub fn as_metric_label(&self) -> &'static str {
        match self {
            Error::Toml(_) | Error::Spec(_) => "spec",
            Error::Read { .. } => "read",
            Error::Bind { .. } | Error::NoFreePort { .. } => "bind",
            Error::Tls(_) => "tls",
        }
    }
}
