//! The crate's `Error`: connection, configuration and topology problems. The `WorkQueue` trait
//! methods speak `rollcall_core::ports::QueueError` instead; `From<Error>` maps between them.

use rollcall_core::ports::QueueError;

/// What can go wrong talking to RabbitMQ outside the `WorkQueue` trait.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A setting is out of range; the message names the setting.
    #[error("invalid AMQP setting `{setting}`: {why}")]
    Config { setting: &'static str, why: String },
    /// The broker could not be reached or refused the login.
    #[error("cannot connect to RabbitMQ at {uri}: {source}")]
    Connect {
        /// The URI with its password masked.
        uri: String,
        #[source]
        source: lapin::Error,
    },
    /// An exchange or queue exists with other settings (RabbitMQ answers 406
    /// PRECONDITION_FAILED to a declare that does not match).
    #[error(
        "topology: {what} already exists with different settings; delete it or use the same \
         settings (prefix, shards, delivery limit, delays): {source}"
    )]
    TopologyMismatch {
        what: String,
        #[source]
        source: lapin::Error,
    },
    /// Declaring, binding or deleting part of the topology failed.
    #[error("topology: {what}: {source}")]
    Topology {
        what: String,
        #[source]
        source: lapin::Error,
    },
    /// A shard number outside `0..shards`.
    #[error("shard {shard} does not exist (the topology has {shards} shards)")]
    UnknownShard { shard: u32, shards: u32 },
    /// The connection or a channel failed; it is being re-established.
    #[error("AMQP transport: {0}")]
    Transport(#[source] lapin::Error),
    /// No connection to the broker right now (it is being re-established).
    #[error("not connected to RabbitMQ (reconnecting)")]
    Disconnected,
    /// The queue was closed with `AmqpQueue::close`.
    #[error("queue closed")]
    Closed,
}

impl Error {
    /// Worth retrying later: the broker may come back.
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            Error::Connect { .. } | Error::Transport(_) | Error::Disconnected
        )
    }

    /// The topology on the broker disagrees with this configuration.
    pub fn is_topology_mismatch(&self) -> bool {
        matches!(self, Error::TopologyMismatch { .. })
    }

    /// A bounded label for metrics.
    pub fn as_metric_label(&self) -> &'static str {
        match self {
            Error::Config { .. } => "config",
            Error::Connect { .. } => "connect",
            Error::TopologyMismatch { .. } => "topology_mismatch",
            Error::Topology { .. } => "topology",
            Error::UnknownShard { .. } => "unknown_shard",
            Error::Transport(_) => "transport",
            Error::Disconnected => "disconnected",
            Error::Closed => "closed",
        }
    }
}

impl From<Error> for QueueError {
    fn from(e: Error) -> QueueError {
        match e {
            Error::Closed => QueueError::Closed,
            other => QueueError::Transport(other.to_string()),
        }
    }
}

/// `uri` with the password (if any) replaced by `***`, for logs and errors.
pub(crate) fn redact_uri(uri: &str) -> String {
    let Some(scheme_end) = uri.find("://") else {
        return uri.to_owned();
    };
    let rest = &uri[scheme_end + 3..];
    let authority_end = rest.find('/').unwrap_or(rest.len());
    let Some(at) = rest[..authority_end].rfind('@') else {
        return uri.to_owned();
    };
    match rest[..at].find(':') {
        Some(colon) => format!(
            "{}{}:***{}",
            &uri[..scheme_end + 3],
            &rest[..colon],
            &rest[at..]
        ),
        None => uri.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_masked() {
        assert_eq!(
            redact_uri("amqp://guest:secret@127.0.0.1:5672/%2f"),
            "amqp://guest:***@127.0.0.1:5672/%2f"
        );
        assert_eq!(
            redact_uri("amqp://127.0.0.1:5672/%2f"),
            "amqp://127.0.0.1:5672/%2f"
        );
        assert_eq!(redact_uri("amqp://user@host/v"), "amqp://user@host/v");
        assert_eq!(redact_uri("not a uri"), "not a uri");
    }

    #[test]
    fn closed_maps_to_closed_and_the_rest_to_transport() {
        assert!(matches!(
            QueueError::from(Error::Closed),
            QueueError::Closed
        ));
        let e = QueueError::from(Error::Disconnected);
        assert!(e.is_transient());
        assert!(Error::Disconnected.is_transient());
        assert!(
            !Error::UnknownShard {
                shard: 9,
                shards: 4
            }
            .is_transient()
        );
    }
}
