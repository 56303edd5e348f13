//! The crate's one error type, and how a backend failure becomes a gRPC status.
//!
//! Owns `Error` (what a caller of this crate can get back: a bad URL, token or TLS input, which
//! TLS input it is (`TlsPart`), a transport failure, a proto value that does not map onto the
//! domain) and the mapping `BackendError -> tonic::Status`. It does not own `BackendError` itself (`backend` does):
//! that is the error of the port, kept free of tonic so the coordinator never sees gRPC types.

use std::fmt;

use crate::backend::BackendError;

/// Which PEM input a TLS error is about; the caller maps it to its own setting name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum TlsPart {
    /// The server's certificate chain.
    ServerCert,
    /// The server's private key.
    ServerKey,
    /// The CA the server checks client certificates against (mTLS).
    ClientCa,
    /// A CA the client trusts for the server's certificate.
    Ca,
    /// The client's certificate chain (mTLS).
    ClientCert,
    /// The client's private key (mTLS).
    ClientKey,
}

impl fmt::Display for TlsPart {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            TlsPart::ServerCert => "server certificate",
            TlsPart::ServerKey => "server key",
            TlsPart::ClientCa => "client CA",
            TlsPart::Ca => "CA",
            TlsPart::ClientCert => "client certificate",
            TlsPart::ClientKey => "client key",
        })
    }
}

/// Everything that can go wrong in `rollcall-api`.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The server URL given to `connect` is not a valid URI.
    #[error("invalid server URL {url:?}: {why}")]
    InvalidUrl {
        /// The URL as given (control characters removed).
        url: String,
        /// Why it was refused.
        why: String,
    },
    /// The bearer token cannot be sent as an HTTP/2 header value (it must be visible ASCII).
    #[error("invalid token: it must be non-empty visible ASCII without spaces")]
    InvalidToken,
    /// A TLS input (certificate, key or CA, PEM) cannot be used.
    #[error("TLS {part}: {why}")]
    Tls {
        /// Which input.
        part: TlsPart,
        /// What is wrong with it.
        why: String,
    },
    /// TLS settings were given for a URL that is not `https://`: refused rather than sending
    /// the token in the clear to a server the caller meant to authenticate.
    #[error("TLS settings were given but {url:?} is not an https:// URL")]
    TlsNeedsHttps {
        /// The URL as given (control characters removed).
        url: String,
    },
    /// Connecting, binding or serving failed at the transport level.
    #[error("gRPC transport: {0}")]
    Transport(#[from] tonic::transport::Error),
    /// The reflection service could not load the file descriptor set.
    #[error("reflection service: {0}")]
    Reflection(#[from] tonic_reflection::server::Error),
    /// A call failed with a gRPC status.
    #[error("gRPC call failed: {code:?}: {message}")]
    Call {
        /// The status code.
        code: tonic::Code,
        /// The status message.
        message: String,
    },
    /// A proto enum value is not one this crate knows (a newer peer, or garbage).
    #[error("unknown {kind} value {value}")]
    UnknownEnumValue {
        /// Which enum, e.g. `"reason"`.
        kind: &'static str,
        /// The wire value.
        value: i32,
    },
    /// A field that must be set was left at its zero value (e.g. `REASON_UNSPECIFIED`).
    #[error("{0} is not set")]
    Unspecified(&'static str),
    /// A proto message is set but inconsistent (e.g. a reason of another status).
    #[error("invalid {kind}: {why}")]
    Invalid {
        /// What was being converted.
        kind: &'static str,
        /// Why it was refused.
        why: String,
    },
}

impl Error {
    /// True for failures worth retrying later (the server unreachable or overloaded).
    pub fn is_transient(&self) -> bool {
        match self {
            Error::Transport(_) => true,
            Error::Call { code, .. } => matches!(
                code,
                tonic::Code::Unavailable | tonic::Code::ResourceExhausted | tonic::Code::Aborted
            ),
            _ => false,
        }
    }

    /// True when the server refused the call for a missing or wrong token.
    pub fn is_unauthenticated(&self) -> bool {
        matches!(
            self,
            Error::Call {
                code: tonic::Code::Unauthenticated,
                ..
            }
        )
    }

    /// A short, bounded label for metrics.
    pub fn as_metric_label(&self) -> &'static str {
        match self {
            Error::InvalidUrl { .. } => "invalid_url",
            Error::InvalidToken => "invalid_token",
            Error::Tls { .. } | Error::TlsNeedsHttps { .. } => "tls",
            Error::Transport(_) => "transport",
            Error::Reflection(_) => "reflection",
            Error::Call { .. } => "call",
            Error::UnknownEnumValue { .. } => "unknown_enum_value",
            Error::Unspecified(_) => "unspecified",
            Error::Invalid { .. } => "invalid",
        }
    }
}

impl From<tonic::Status> for Error {
    fn from(status: tonic::Status) -> Error {
        Error::Call {
            code: status.code(),
            message: status.message().to_owned(),
        }
    }
}

impl From<BackendError> for tonic::Status {
    fn from(e: BackendError) -> tonic::Status {
        match e {
            BackendError::NotFound(m) => tonic::Status::not_found(m),
            BackendError::InvalidArgument(m) => tonic::Status::invalid_argument(m),
            BackendError::Unavailable(m) => tonic::Status::unavailable(m),
            BackendError::ResourceExhausted(m) => tonic::Status::resource_exhausted(m),
            BackendError::Internal(m) => {
                tracing::warn!(error = %m, "internal error answered to a gRPC call");
                tonic::Status::internal(m)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backend_errors_map_to_their_codes() {
        let cases = [
            (BackendError::NotFound("c1".into()), tonic::Code::NotFound),
            (
                BackendError::InvalidArgument("bad".into()),
                tonic::Code::InvalidArgument,
            ),
            (
                BackendError::Unavailable("redis".into()),
                tonic::Code::Unavailable,
            ),
            (
                BackendError::ResourceExhausted("too big".into()),
                tonic::Code::ResourceExhausted,
            ),
            (BackendError::Internal("bug".into()), tonic::Code::Internal),
        ];
        for (e, code) in cases {
            let message = e.to_string();
            let status = tonic::Status::from(e);
            assert_eq!(status.code(), code);
            assert!(message.contains(status.message()), "{message}");
        }
    }

    #[test]
    fn call_errors_keep_code_and_predicates() {
        let e = Error::from(tonic::Status::unauthenticated("no token"));
        assert!(e.is_unauthenticated() && !e.is_transient());
        assert_eq!(e.as_metric_label(), "call");
        let e = Error::from(tonic::Status::unavailable("down"));
        assert!(e.is_transient() && !e.is_unauthenticated());
    }
}
