//! `AmqpConfig`: where the broker is, how the topology is named and sized, and the knobs of
//! publishing and consuming. Pure data with validation; it does not connect.

use std::time::Duration;

use crate::Error;

/// Settings of an `AmqpQueue`. Every process of a fleet must use the same `prefix`, `shards`,
/// `delivery_limit` and `delays` (the broker refuses a declare that disagrees with the existing
/// topology); `prefetch` and the timeouts are per process.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AmqpConfig {
    /// `amqp://user:pass@host:port/vhost` (`%2f` is the default vhost `/`).
    pub uri: String,
    /// Every exchange and queue is named `<prefix>.<...>`.
    pub prefix: String,
    /// Number of shard queues. Sites are spread over them by `shard_of`.
    pub shards: u32,
    /// Unacknowledged deliveries per shard consumer (`basic.qos`, per consumer).
    pub prefetch: u16,
    /// Deliveries of one message before the shard queue dead-letters it (`x-delivery-limit`;
    /// RabbitMQ 3.10 has no default, so the queue would redeliver a poison batch forever).
    pub delivery_limit: u32,
    /// The retry ladder: fixed delays, one TTL queue each. `publish_after` rounds a delay up to
    /// the next rung (and down to the last rung when it is longer than all of them).
    pub delays: Vec<Duration>,
    /// How long a publish keeps retrying (through reconnects) before it reports an error.
    pub publish_timeout: Duration,
    /// Longest wait between two reconnect attempts (the backoff doubles up to this).
    pub reconnect_max_backoff: Duration,
    /// Bound on one connect-and-declare attempt.
    pub connect_timeout: Duration,
}

impl Default for AmqpConfig {
    fn default() -> Self {
        AmqpConfig {
            uri: "amqp://guest:guest@127.0.0.1:5672/%2f".to_owned(),
            prefix: "rollcall".to_owned(),
            shards: 16,
            prefetch: 64,
            delivery_limit: 10,
            delays: [1, 5, 30, 120, 600, 3600]
                .into_iter()
                .map(Duration::from_secs)
                .collect(),
            publish_timeout: Duration::from_secs(60),
            reconnect_max_backoff: Duration::from_secs(5),
            connect_timeout: Duration::from_secs(10),
        }
    }
}

/// Queue names are at most 255 bytes (AMQP 0-9-1 shortstr); leave room for the suffixes.
const MAX_PREFIX_LEN: usize = 200;
/// `x-message-ttl` is milliseconds in a signed 32-bit field on the wire here.
const MAX_DELAY: Duration = Duration::from_millis(i32::MAX as u64);

impl AmqpConfig {
    /// The defaults with another broker URI.
    pub fn new(uri: impl Into<String>) -> Self {
        AmqpConfig {
            uri: uri.into(),
            ..AmqpConfig::default()
        }
    }

    /// Checks every setting; the error names the one at fault.
    pub fn validate(&self) -> Result<(), Error> {
        let bad = |setting, why: &str| {
            Err(Error::Config {
                setting,
                why: why.to_owned(),
            })
        };
        if !(self.uri.starts_with("amqp://") || self.uri.starts_with("amqps://")) {
            return bad("uri", "must start with amqp:// or amqps://");
        }
        if self.prefix.is_empty() || self.prefix.len() > MAX_PREFIX_LEN {
            return bad("prefix", "must be 1 to 200 characters");
        }
        if !self
            .prefix
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
        {
            return bad(
                "prefix",
                "only letters, digits, '-', '_' and '.' are allowed",
            );
        }
        if self.shards == 0 || self.shards > 4096 {
            return bad("shards", "must be 1 to 4096");
        }
        if self.prefetch == 0 {
            return bad("prefetch", "must be at least 1 (0 means unbounded)");
        }
        if self.delivery_limit == 0 || i32::try_from(self.delivery_limit).is_err() {
            return bad("delivery_limit", "must be at least 1");
        }
        if self.delays.is_empty() {
            return bad("delays", "needs at least one delay");
        }
        if self
            .delays
            .iter()
            .any(|d| d.is_zero() || *d > MAX_DELAY || d.subsec_nanos() % 1_000_000 != 0)
        {
            return bad(
                "delays",
                "each delay must be whole milliseconds, above 0 and at most 24 days",
            );
        }
        if self.delays.windows(2).any(|w| w[0] >= w[1]) {
            return bad("delays", "must be strictly increasing");
        }
        if self.publish_timeout.is_zero() || self.connect_timeout.is_zero() {
            return bad("publish_timeout", "timeouts must be above 0");
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid() {
        AmqpConfig::default().validate().unwrap();
    }

    type Spoil = fn(&mut AmqpConfig);

    #[test]
    fn bad_settings_are_named() {
        let cases: Vec<(&str, Spoil)> = vec![
            ("uri", |c| c.uri = "http://x".into()),
            ("prefix", |c| c.prefix = "a b".into()),
            ("prefix", |c| c.prefix = String::new()),
            ("shards", |c| c.shards = 0),
            ("prefetch", |c| c.prefetch = 0),
            ("delivery_limit", |c| c.delivery_limit = 0),
            ("delays", |c| c.delays.clear()),
            ("delays", |c| {
                c.delays = vec![Duration::from_secs(5), Duration::from_secs(1)]
            }),
            ("delays", |c| c.delays = vec![Duration::from_micros(1500)]),
        ];
        for (setting, spoil) in cases {
            let mut c = AmqpConfig::default();
            spoil(&mut c);
            match c.validate() {
                Err(Error::Config { setting: s, .. }) => assert_eq!(s, setting),
                other => panic!("{setting}: expected a config error, got {other:?}"),
            }
        }
    }
}
