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

/// `url` with its password replaced by `***`, for logs, errors and help texts: the one in the
/// user info (`redis://USER:PASS@HOST`, `redis://:PASS@HOST`) and a `pass` or `password` query
/// parameter (`redis+unix:///run/redis.sock?pass=PASS`). Anything else is kept as given.
pub fn redact_url(url: &str) -> String {
    let (mut out, query) = match url.split_once('?') {
        Some((base, query)) => (base.to_owned(), Some(query)),
        None => (url.to_owned(), None),
    };
    if let Some(scheme_end) = out.find("://") {
        let rest = &out[scheme_end + 3..];
        let authority_end = rest.find('/').unwrap_or(rest.len());
        if let Some(at) = rest[..authority_end].rfind('@')
            && let Some(colon) = rest[..at].find(':')
        {
            let (start, end) = (scheme_end + 3 + colon + 1, scheme_end + 3 + at);
            out.replace_range(start..end, "***");
        }
    }
    if let Some(query) = query {
        let params: Vec<String> = query
            .split('&')
            .map(|param| match param.split_once('=') {
                Some((key, _)) if key == "pass" || key == "password" => format!("{key}=***"),
                _ => param.to_owned(),
            })
            .collect();
        out.push('?');
        out.push_str(&params.join("&"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use redis::ErrorKind;

    #[test]
    fn passwords_are_masked() {
        let cases = [
            ("redis://:hunter2@redis:6379/0", "redis://:***@redis:6379/0"),
            (
                "rediss://app:hunter2@redis:6380",
                "rediss://app:***@redis:6380",
            ),
            ("redis://a:b@c:d@redis:6379", "redis://a:***@redis:6379"),
            ("redis://redis:6379/2", "redis://redis:6379/2"),
            ("redis://app@redis", "redis://app@redis"),
            (
                "redis+unix:///run/redis.sock?db=1&pass=hunter2",
                "redis+unix:///run/redis.sock?db=1&pass=***",
            ),
            ("not a url", "not a url"),
        ];
        for (url, redacted) in cases {
            assert_eq!(redact_url(url), redacted, "{url}");
        }
    }

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
