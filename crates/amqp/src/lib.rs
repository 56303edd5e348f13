//! `WorkQueue` over RabbitMQ (3.10+) with lapin 4: the distributed wiring's queue.
//!
//! The coordinator publishes each batch to the shard of its site (`shard_of`, a fixed hash, so
//! the mapping never moves); workers consume only the shards whose leases they hold
//! (`AmqpQueue::consume_shards`), so a site's SMTP sessions stay warm in one worker. Delays go
//! through a ladder of fixed-TTL queues that dead-letter back to the shards: nothing waits in a
//! worker. Publishes are confirmed by the broker; the connection is re-established after a
//! broker restart and consuming resumes on the same shards.
//!
//! # Layout
//! - `config`: `AmqpConfig`, the settings and their validation.
//! - `routing`: `shard_of`, site to shard; `shard_of_lane`, the shards of a hot site's lanes.
//! - `topology`: names, the retry ladder, idempotent declare and delete.
//! - `link`: one connection with its channels and shard consumers.
//! - `queue`: `AmqpQueue` (the `WorkQueue`), the reconnect supervisor, `QueueStats`.
//! - `shared`: what a queue shares with its clones and ackers: link, counters, depth cache,
//!   confirmed publishing.
//! - `acker`: settling one delivery.
//! - `error`: the crate's `Error`.

#![forbid(unsafe_code)]
#![warn(clippy::print_stdout, clippy::print_stderr)]

mod acker;
mod config;
mod error;
mod link;
mod queue;
mod routing;
mod shared;
mod topology;

pub use config::AmqpConfig;
pub use error::Error;
pub use queue::{AmqpQueue, QueueStats};
pub use routing::{shard_of, shard_of_lane};
pub use topology::Topology;
