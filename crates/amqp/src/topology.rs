//! The broker topology: names, the retry ladder, and the idempotent declare and delete.
//!
//! Owns what exists on the broker and how it is wired; not connections (see `link`) nor
//! routing decisions (see `routing`). Everything is named under one prefix `p`:
//!
//! - `p.work`: direct exchange. Shard queue `p.shard.<i>` is bound with key `shard.<i>`.
//! - `p.shard.<i>`: quorum queue (durable), single active consumer, `x-delivery-limit`,
//!   dead-lettering to `p.dlx`.
//! - `p.dlx`: fanout exchange into `p.dead`, a classic durable queue that keeps poison batches
//!   for inspection.
//! - The retry ladder: per delay `d`, a fanout exchange `p.delay.<d>` into a quorum queue
//!   `p.delay.<d>` with `x-message-ttl = d` and `x-dead-letter-exchange = p.work`. A message
//!   published there with key `shard.<i>` expires after `d` and is dead-lettered to `p.work`
//!   keeping its routing key, so it lands on its shard again. Every message in one rung has the
//!   same TTL, so expiry order is queue order (RabbitMQ only expires messages at the head).
//!   Dead-lettering is `at-least-once` (RabbitMQ 3.10+, which needs `x-overflow =
//!   reject-publish`): the rung keeps a message until its shard queue has confirmed it. With a
//!   classic rung (at-most-once) a broker restart lost the messages that expired while the
//!   shard queues had no leader yet.
//!
//! Declaring is idempotent: whichever process starts first creates it, the others' declares
//! are no-ops. A declare that disagrees with what exists (other delivery limit, other type)
//! fails with 406 PRECONDITION_FAILED, surfaced as `Error::TopologyMismatch`.

use std::time::Duration;

use lapin::options::{
    ExchangeDeclareOptions, ExchangeDeleteOptions, QueueBindOptions, QueueDeclareOptions,
    QueueDeleteOptions,
};
use lapin::protocol::{AMQPErrorKind, AMQPSoftError};
use lapin::types::{AMQPValue, FieldTable, ShortString};
use lapin::{Channel, ErrorKind, ExchangeKind};

use crate::{AmqpConfig, Error};

/// The names and shape of one deployment's topology.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Topology {
    prefix: String,
    shards: u32,
    delivery_limit: u32,
    delays: Vec<Duration>,
}

impl Topology {
    /// The topology a (validated) configuration describes.
    pub fn new(config: &AmqpConfig) -> Topology {
        Topology {
            prefix: config.prefix.clone(),
            shards: config.shards,
            delivery_limit: config.delivery_limit,
            delays: config.delays.clone(),
        }
    }

    pub fn shards(&self) -> u32 {
        self.shards
    }

    /// The direct exchange every shard queue is bound to.
    pub fn work_exchange(&self) -> String {
        format!("{}.work", self.prefix)
    }

    pub fn shard_queue(&self, shard: u32) -> String {
        format!("{}.shard.{shard}", self.prefix)
    }

    /// The routing key of a shard (what the ladder's dead-lettering keeps).
    pub fn shard_key(shard: u32) -> String {
        format!("shard.{shard}")
    }

    pub fn dead_letter_exchange(&self) -> String {
        format!("{}.dlx", self.prefix)
    }

    pub fn dead_queue(&self) -> String {
        format!("{}.dead", self.prefix)
    }

    /// The exchange (and queue: same name) of one rung of the ladder.
    pub fn delay_name(&self, delay: Duration) -> String {
        format!("{}.delay.{}", self.prefix, delay_label(delay))
    }

    /// The rungs of the retry ladder, shortest first.
    pub fn delays(&self) -> &[Duration] {
        &self.delays
    }

    /// The rung a delay is rounded to: the smallest one at least `delay`, or the longest when
    /// `delay` is beyond the ladder. `None` for a zero delay (publish directly).
    pub fn rung_for(&self, delay: Duration) -> Option<Duration> {
        if delay.is_zero() {
            return None;
        }
        self.delays
            .iter()
            .copied()
            .find(|&rung| rung >= delay)
            .or_else(|| self.delays.last().copied())
    }

    /// Every queue whose messages count towards the depth: shards and ladder rungs.
    pub fn counted_queues(&self) -> Vec<String> {
        (0..self.shards)
            .map(|i| self.shard_queue(i))
            .chain(self.delays.iter().map(|&d| self.delay_name(d)))
            .collect()
    }

    /// Declares (or confirms) everything. Idempotent.
    pub async fn declare(&self, ch: &Channel) -> Result<(), Error> {
        let durable = ExchangeDeclareOptions {
            durable: true,
            ..ExchangeDeclareOptions::default()
        };
        let work = self.work_exchange();
        let dlx = self.dead_letter_exchange();
        let dead = self.dead_queue();
        exchange(ch, &work, ExchangeKind::Direct, durable).await?;
        exchange(ch, &dlx, ExchangeKind::Fanout, durable).await?;
        queue(ch, &dead, FieldTable::default()).await?;
        bind(ch, &dead, &dlx, "").await?;

        for shard in 0..self.shards {
            let name = self.shard_queue(shard);
            let mut args = FieldTable::default();
            args.insert(
                "x-queue-type".into(),
                AMQPValue::LongString("quorum".into()),
            );
            // One consumer at a time per shard keeps a site's sessions warm in one worker; a
            // standby consumer takes over when the active one goes away.
            args.insert("x-single-active-consumer".into(), AMQPValue::Boolean(true));
            args.insert(
                "x-delivery-limit".into(),
                AMQPValue::LongInt(i32::try_from(self.delivery_limit).unwrap_or(i32::MAX)),
            );
            args.insert(
                "x-dead-letter-exchange".into(),
                AMQPValue::LongString(dlx.as_str().into()),
            );
            queue(ch, &name, args).await?;
            bind(ch, &name, &work, &Topology::shard_key(shard)).await?;
        }

        for &delay in &self.delays {
            let name = self.delay_name(delay);
            let ttl = i32::try_from(delay.as_millis()).unwrap_or(i32::MAX);
            let mut args = FieldTable::default();
            args.insert(
                "x-queue-type".into(),
                AMQPValue::LongString("quorum".into()),
            );
            args.insert("x-message-ttl".into(), AMQPValue::LongInt(ttl));
            args.insert(
                "x-dead-letter-strategy".into(),
                AMQPValue::LongString("at-least-once".into()),
            );
            args.insert(
                "x-overflow".into(),
                AMQPValue::LongString("reject-publish".into()),
            );
            // No x-dead-letter-routing-key: the message keeps `shard.<i>`.
            args.insert(
                "x-dead-letter-exchange".into(),
                AMQPValue::LongString(work.as_str().into()),
            );
            exchange(ch, &name, ExchangeKind::Fanout, durable).await?;
            queue(ch, &name, args).await?;
            bind(ch, &name, &name, "").await?;
        }
        Ok(())
    }

    /// Deletes every queue and exchange of this topology, messages included. For tests and
    /// decommissioning; never called by the coordinator or workers.
    pub async fn delete(&self, ch: &Channel) -> Result<(), Error> {
        let mut queues = self.counted_queues();
        queues.push(self.dead_queue());
        for name in queues {
            ch.queue_delete(name.as_str().into(), QueueDeleteOptions::default())
                .await
                .map_err(|source| topology_error(format!("deleting queue {name}"), source))?;
        }
        let mut exchanges = vec![self.work_exchange(), self.dead_letter_exchange()];
        exchanges.extend(self.delays.iter().map(|&d| self.delay_name(d)));
        for name in exchanges {
            ch.exchange_delete(name.as_str().into(), ExchangeDeleteOptions::default())
                .await
                .map_err(|source| topology_error(format!("deleting exchange {name}"), source))?;
        }
        Ok(())
    }
}

/// A short, stable label for a rung: `1s`, `2m`, `1h`, `1500ms`.
fn delay_label(delay: Duration) -> String {
    let ms = delay.as_millis();
    if ms.is_multiple_of(3_600_000) {
        format!("{}h", ms / 3_600_000)
    } else if ms.is_multiple_of(60_000) {
        format!("{}m", ms / 60_000)
    } else if ms.is_multiple_of(1000) {
        format!("{}s", ms / 1000)
    } else {
        format!("{ms}ms")
    }
}

async fn exchange(
    ch: &Channel,
    name: &str,
    kind: ExchangeKind,
    options: ExchangeDeclareOptions,
) -> Result<(), Error> {
    ch.exchange_declare(name.into(), kind, options, FieldTable::default())
        .await
        .map_err(|source| topology_error(format!("exchange {name}"), source))
}

async fn queue(ch: &Channel, name: &str, args: FieldTable) -> Result<(), Error> {
    ch.queue_declare(name.into(), QueueDeclareOptions::durable(), args)
        .await
        .map(|_| ())
        .map_err(|source| topology_error(format!("queue {name}"), source))
}

async fn bind(ch: &Channel, queue: &str, exchange: &str, key: &str) -> Result<(), Error> {
    ch.queue_bind(
        ShortString::from(queue),
        ShortString::from(exchange),
        ShortString::from(key),
        QueueBindOptions::default(),
        FieldTable::default(),
    )
    .await
    .map_err(|source| topology_error(format!("binding {queue} to {exchange}"), source))
}

/// 406 PRECONDITION_FAILED means "exists with other settings"; anything else is a plain failure.
fn topology_error(what: String, source: lapin::Error) -> Error {
    let mismatch = matches!(
        source.kind(),
        ErrorKind::ProtocolError(e)
            if *e.kind() == AMQPErrorKind::Soft(AMQPSoftError::PRECONDITIONFAILED)
    );
    if mismatch {
        Error::TopologyMismatch { what, source }
    } else {
        Error::Topology { what, source }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn topology() -> Topology {
        Topology::new(&AmqpConfig {
            prefix: "t".into(),
            shards: 3,
            ..AmqpConfig::default()
        })
    }

    #[test]
    fn names_live_under_the_prefix() {
        let t = topology();
        assert_eq!(t.work_exchange(), "t.work");
        assert_eq!(t.shard_queue(2), "t.shard.2");
        assert_eq!(Topology::shard_key(2), "shard.2");
        assert_eq!(t.dead_letter_exchange(), "t.dlx");
        assert_eq!(t.dead_queue(), "t.dead");
        assert_eq!(t.delay_name(Duration::from_secs(1)), "t.delay.1s");
        assert_eq!(t.delay_name(Duration::from_secs(120)), "t.delay.2m");
        assert_eq!(t.delay_name(Duration::from_secs(3600)), "t.delay.1h");
        assert_eq!(t.delay_name(Duration::from_millis(1500)), "t.delay.1500ms");
        assert_eq!(t.counted_queues().len(), 3 + 6);
    }

    #[test]
    fn delays_round_up_to_a_rung() {
        let t = topology();
        let s = Duration::from_secs;
        assert_eq!(t.rung_for(Duration::ZERO), None);
        assert_eq!(t.rung_for(Duration::from_millis(1)), Some(s(1)));
        assert_eq!(t.rung_for(s(1)), Some(s(1)));
        assert_eq!(t.rung_for(Duration::from_millis(1001)), Some(s(5)));
        assert_eq!(t.rung_for(s(31)), Some(s(120)));
        assert_eq!(t.rung_for(s(3600)), Some(s(3600)));
        // Beyond the ladder: the longest rung (the caller publishes again if it must wait more).
        assert_eq!(t.rung_for(s(86_400)), Some(s(3600)));
    }
}
