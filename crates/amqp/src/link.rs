//! `Link`: one live connection to the broker and its channels, with the shard consumers
//! started on it. A link is never repaired: when any part of it fails, the queue's supervisor
//! drops it and establishes a new one (a new *generation*). Deliveries carry the generation of
//! the link they came on, so deliveries from a dead link are recognised (their acks cannot work).
//!
//! Owns the channels and the consumer tasks; does not decide which shards to consume (the
//! caller passes the wanted set) nor when to reconnect (the supervisor in `queue`).

use std::collections::{BTreeSet, HashMap};

use futures_util::StreamExt;
use lapin::options::{
    BasicCancelOptions, BasicConsumeOptions, BasicPublishOptions, BasicQosOptions,
    ConfirmSelectOptions, QueueDeclareOptions,
};
use lapin::types::{FieldTable, ShortString};
use lapin::{BasicProperties, Channel, Confirmation, Connection, ConnectionProperties, Consumer};
use lapin::{PublisherConfirm, message::Delivery as LapinDelivery};
use tokio::sync::{Mutex, mpsc};
use tokio::task::JoinHandle;

use crate::error::redact_uri;
use crate::{AmqpConfig, Error, Topology};

/// A delivery as it comes off a consumer, tagged with its link's generation.
pub(crate) struct Incoming {
    pub generation: u64,
    pub delivery: LapinDelivery,
}

struct ShardConsumer {
    tag: ShortString,
    task: JoinHandle<()>,
}

/// One connection with a confirm-mode publish channel, a consume channel (its QoS is the
/// prefetch of each shard consumer) and a lazily made channel for passive declares.
pub(crate) struct Link {
    pub generation: u64,
    connection: Connection,
    publish: Channel,
    consume: Channel,
    consumers: Mutex<HashMap<u32, ShardConsumer>>,
    /// Passive declares of a missing queue close their channel (404), so they get their own.
    inspect: Mutex<Option<Channel>>,
}

/// How the broker settled one publish.
pub(crate) enum Settled {
    Acked,
    /// The broker could not take it (an internal error); publishing again may work.
    Nacked,
    /// Unroutable (mandatory publish with no bound queue): the topology is missing.
    Returned(String),
}

impl Settled {
    pub fn of(confirmation: Confirmation) -> Settled {
        match confirmation {
            Confirmation::Ack(None) => Settled::Acked,
            Confirmation::Ack(Some(m)) | Confirmation::Nack(Some(m)) => {
                Settled::Returned(format!("{} {}", m.reply_code, m.reply_text))
            }
            Confirmation::Nack(None) => Settled::Nacked,
            Confirmation::NotRequested => {
                Settled::Returned("publisher confirms are not enabled on the channel".into())
            }
        }
    }
}

impl Link {
    /// Connects, declares the topology and opens the channels.
    pub async fn establish(
        config: &AmqpConfig,
        topology: &Topology,
        generation: u64,
    ) -> Result<Link, Error> {
        let properties = ConnectionProperties::default().with_connection_name(
            format!("rollcall pid {} gen {generation}", std::process::id()).into(),
        );
        let connection = Connection::connect(&config.uri, properties)
            .await
            .map_err(|source| Error::Connect {
                uri: redact_uri(&config.uri),
                source,
            })?;
        let setup = connection
            .create_channel()
            .await
            .map_err(Error::Transport)?;
        topology.declare(&setup).await?;

        let publish = connection
            .create_channel()
            .await
            .map_err(Error::Transport)?;
        publish
            .confirm_select(ConfirmSelectOptions::default())
            .await
            .map_err(Error::Transport)?;

        let consume = connection
            .create_channel()
            .await
            .map_err(Error::Transport)?;
        // global = false: the limit applies to each consumer on the channel (quorum queues do
        // not support a channel-wide prefetch).
        consume
            .basic_qos(config.prefetch, BasicQosOptions { global: false })
            .await
            .map_err(Error::Transport)?;

        Ok(Link {
            generation,
            connection,
            publish,
            consume,
            consumers: Mutex::new(HashMap::new()),
            inspect: Mutex::new(Some(setup)),
        })
    }

    /// Every part is still open.
    pub fn healthy(&self) -> bool {
        self.connection.status().connected()
            && self.publish.status().connected()
            && self.consume.status().connected()
    }

    /// Publishes persistently and mandatorily; await the returned confirm for the broker's word.
    pub async fn publish(
        &self,
        exchange: &str,
        routing_key: &str,
        body: &[u8],
    ) -> lapin::Result<PublisherConfirm> {
        let properties = BasicProperties::default()
            .with_delivery_mode(2)
            .with_content_type("application/json".into());
        self.publish
            .basic_publish(
                exchange.into(),
                routing_key.into(),
                // mandatory: an unbound routing key comes back instead of vanishing.
                BasicPublishOptions {
                    mandatory: true,
                    immediate: false,
                },
                body,
                properties,
            )
            .await
    }

    /// Starts consumers for the shards in `wanted` that have none and cancels the others.
    /// Serialised by the consumers lock, and `wanted` is read under it, so the last caller's
    /// view wins.
    pub async fn sync_consumers(
        &self,
        wanted: impl Fn() -> BTreeSet<u32>,
        topology: &Topology,
        deliveries: &mpsc::UnboundedSender<Incoming>,
    ) -> Result<(), Error> {
        let mut consumers = self.consumers.lock().await;
        let wanted = wanted();
        // A consumer the broker cancelled (its queue was deleted) has ended: start it again.
        consumers.retain(|_, consumer| !consumer.task.is_finished());
        let unwanted: Vec<u32> = consumers
            .keys()
            .filter(|shard| !wanted.contains(shard))
            .copied()
            .collect();
        for shard in unwanted {
            if let Some(consumer) = consumers.get(&shard) {
                // After the cancel the broker sends nothing more; deliveries already sent are
                // still forwarded and can be acked on this channel.
                self.consume
                    .basic_cancel(consumer.tag.clone(), BasicCancelOptions::default())
                    .await
                    .map_err(Error::Transport)?;
                consumers.remove(&shard);
            }
        }
        for &shard in &wanted {
            if consumers.contains_key(&shard) {
                continue;
            }
            let tag: ShortString = format!(
                "rollcall-{}-g{}-s{shard}",
                std::process::id(),
                self.generation
            )
            .into();
            let consumer = self
                .consume
                .basic_consume(
                    topology.shard_queue(shard).into(),
                    tag.clone(),
                    BasicConsumeOptions::default(),
                    FieldTable::default(),
                )
                .await
                .map_err(Error::Transport)?;
            let task = tokio::spawn(forward(consumer, self.generation, deliveries.clone()));
            consumers.insert(shard, ShardConsumer { tag, task });
        }
        Ok(())
    }

    /// The running consumers differ from `wanted` (one ended, or a change was not applied).
    /// Never waits: a sync in progress counts as no drift.
    pub fn consumers_drift(&self, wanted: &BTreeSet<u32>) -> bool {
        match self.consumers.try_lock() {
            Ok(consumers) => {
                consumers.len() != wanted.len()
                    || consumers
                        .iter()
                        .any(|(shard, c)| !wanted.contains(shard) || c.task.is_finished())
            }
            Err(_) => false,
        }
    }

    /// Ready messages in each of `queues`, summed (passive declares).
    /// Messages ready in each of `queues`, in that order.
    pub async fn message_counts(&self, queues: &[String]) -> Result<Vec<u64>, Error> {
        let mut inspect = self.inspect.lock().await;
        let channel = match inspect.as_ref() {
            Some(channel) if channel.status().connected() => channel.clone(),
            _ => {
                let channel = self
                    .connection
                    .create_channel()
                    .await
                    .map_err(Error::Transport)?;
                *inspect = Some(channel.clone());
                channel
            }
        };
        let passive = QueueDeclareOptions {
            passive: true,
            ..QueueDeclareOptions::default()
        };
        let mut counts = Vec::with_capacity(queues.len());
        for name in queues {
            match channel
                .queue_declare(name.as_str().into(), passive, FieldTable::default())
                .await
            {
                Ok(queue) => counts.push(u64::from(queue.message_count())),
                Err(source) => {
                    *inspect = None;
                    return Err(Error::Topology {
                        what: format!("counting messages of {name}"),
                        source,
                    });
                }
            }
        }
        Ok(counts)
    }

    /// A fresh channel for one-off administrative work (deleting the topology).
    pub async fn admin_channel(&self) -> Result<Channel, Error> {
        self.connection
            .create_channel()
            .await
            .map_err(Error::Transport)
    }

    /// Closes the connection politely (200 OK). The broker requeues every unacked delivery.
    pub async fn close(&self) {
        if let Err(e) = self.connection.close(200, "OK".into()).await {
            tracing::debug!(error = %e, "closing the AMQP connection");
        }
    }
}

impl Drop for Link {
    fn drop(&mut self) {
        for consumer in self.consumers.get_mut().values() {
            consumer.task.abort();
        }
    }
}

/// Moves a consumer's deliveries into the queue's channel until the consumer ends (cancelled,
/// or its channel or connection closed).
async fn forward(mut consumer: Consumer, generation: u64, out: mpsc::UnboundedSender<Incoming>) {
    while let Some(delivery) = consumer.next().await {
        match delivery {
            Ok(delivery) => {
                if out
                    .send(Incoming {
                        generation,
                        delivery,
                    })
                    .is_err()
                {
                    return;
                }
            }
            Err(e) => {
                tracing::debug!(error = %e, generation, "shard consumer ended");
                return;
            }
        }
    }
}
