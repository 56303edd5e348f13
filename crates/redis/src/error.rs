//! The crate's error: what can go wrong while setting a store up. Owns the classification of
//! Redis errors as transient or not; the trait methods report through
//! `rollcall_core::ports::StoreError` instead.

use redis::{RedisError, RetryMethod};

/// Setting up a `RedisState` failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The URL does not parse as a Redis URL (`redis://host:port/db`).
    #[error("the Redis URL is not valid (expected redis://HOST:PORT[/DB]): {0}")]
    InvalidUrl(#[source] RedisError),
    /// The key prefix cannot start keys.
    #[error("the Redis key prefix {prefix:?} is not valid: {why}")]
    InvalidPrefix { prefix: String, why: &'static str },
    /// The server could not be reached or refused the connection.
    #[error("cannot connect to Redis: {0}")]
    Connect(#[source] RedisError),
    /// A command on a working connection failed.
    #[error("Redis command failed: {0}")]
    Command(#[source] RedisError),
}

impl Error {
    /// Worth trying again later (the server may come up).
    pub fn is_transient(&self) -> bool {
        match self {
            Error::Connect(e) | Error::Command(e) => is_transient(e),
            Error::InvalidUrl(_) | Error::InvalidPrefix { .. } => false,
        }
    }

    /// A bounded label for metrics.
    pub fn as_metric_label(&self) -> &'static str {
        match self {
            Error::InvalidUrl(_) => "invalid_url",
            Error::InvalidPrefix { .. } => "invalid_prefix",
            Error::Connect(_) => "connect",
            Error::Command(_) => "command",
        }
    }
}

/// A failure that another try may not see: the connection dropped or timed out, the server is
/// loading, failing over or busy. A script error or a wrong key type is not.
pub(crate) fn is_transient(e: &RedisError) -> bool {
    e.is_io_error()
        || e.is_timeout()
        || e.is_connection_dropped()
        || e.is_connection_refusal()
        || !matches!(e.retry_method(), RetryMethod::NoRetry)
}

#[cfg(test)]
mod tests {
    use super::*;
    use redis::ErrorKind;

    #[test]
    fn dropped_connections_are_transient_script_errors_are_not() {
        let io: RedisError =
            std::io::Error::new(std::io::ErrorKind::ConnectionReset, "reset").into();
        assert!(is_transient(&io));
        let timeout: RedisError =
            std::io::Error::new(std::io::ErrorKind::TimedOut, "timed out").into();
        assert!(is_transient(&timeout));
        let client: RedisError = (ErrorKind::Client, "bad call").into();
        assert!(!is_transient(&client));
        assert!(Error::Connect(io).is_transient());
        assert!(!Error::Command(client).is_transient());
    }
}
