//! What every distributed process shares: the broker, the store, the prefix and shard count
//! the whole fleet agrees on, and the metrics listener. Flattened into `coordinator` and
//! `worker` so both spell the flags, env vars and connections the same way.

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context;
use rollcall_amqp::{AmqpConfig, AmqpQueue};
use rollcall_redis::RedisState;

use crate::exit::Unavailable;

/// Flags of a distributed process. `Debug` masks the passwords in the URLs.
#[derive(Clone, clap::Args)]
pub struct DistributedFlags {
    /// RabbitMQ URI, amqp://USER:PASS@HOST:PORT/VHOST.
    // The env value carries the password: `--help` must not show it.
    #[arg(
        long,
        value_name = "URL",
        env = "ROLLCALL_AMQP_URL",
        hide_env_values = true
    )]
    pub amqp: String,

    /// Redis URL, redis://[:PASS@]HOST:PORT[/DB].
    #[arg(
        long,
        value_name = "URL",
        env = "ROLLCALL_REDIS_URL",
        hide_env_values = true
    )]
    pub redis: String,

    /// Prefix of every queue, exchange and Redis key; the whole fleet must use the same.
    #[arg(
        long,
        value_name = "P",
        env = "ROLLCALL_PREFIX",
        default_value = "rollcall"
    )]
    pub prefix: String,

    /// Number of shard queues; the whole fleet must use the same.
    #[arg(long, value_name = "N", env = "ROLLCALL_SHARDS", default_value_t = 16)]
    pub shards: u32,

    /// Serve Prometheus metrics on http://ADDR/metrics.
    #[arg(long, value_name = "ADDR", env = "ROLLCALL_METRICS_LISTEN")]
    pub metrics_listen: Option<SocketAddr>,
}

impl std::fmt::Debug for DistributedFlags {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // `redact_url` masks the user-info password of any URL, the AMQP one included.
        f.debug_struct("DistributedFlags")
            .field("amqp", &rollcall_redis::redact_url(&self.amqp))
            .field("redis", &rollcall_redis::redact_url(&self.redis))
            .field("prefix", &self.prefix)
            .field("shards", &self.shards)
            .field("metrics_listen", &self.metrics_listen)
            .finish()
    }
}

impl DistributedFlags {
    /// Starts the metrics listener when asked for.
    pub(crate) fn install_metrics(&self) -> anyhow::Result<()> {
        match self.metrics_listen {
            Some(listen) => crate::metrics::install(listen),
            None => Ok(()),
        }
    }

    /// Connects the fleet's store and queue.
    pub(crate) async fn connect(&self) -> anyhow::Result<(Arc<RedisState>, Arc<AmqpQueue>)> {
        let state = RedisState::connect(&self.redis, &self.prefix)
            .await
            .context(Unavailable)
            .with_context(|| {
                format!(
                    "cannot connect to Redis at {}",
                    rollcall_redis::redact_url(&self.redis)
                )
            })?;
        let queue = AmqpQueue::connect(AmqpConfig {
            uri: self.amqp.clone(),
            prefix: self.prefix.clone(),
            shards: self.shards,
            ..AmqpConfig::default()
        })
        .await
        .context(Unavailable)
        .context("cannot connect to RabbitMQ")?;
        Ok((Arc::new(state), Arc::new(queue)))
    }
}
