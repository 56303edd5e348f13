//! `AmqpQueue` against the real RabbitMQ on 127.0.0.1:5672. Each test declares its own
//! topology under a random prefix and deletes it at the end. Without a broker the tests print
//! a notice and pass, except under CI (`CI` set), where they fail with how to start one.

mod common;

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use common::{batch, cleanup, config, connect, publish_all, recv};
use rollcall_amqp::{AmqpQueue, Error, shard_of};
use rollcall_core::ports::WorkQueue;

const QUIET: Duration = Duration::from_millis(1500);
const SOON: Duration = Duration::from_secs(10);

#[tokio::test]
async fn declaring_the_topology_twice_is_idempotent() {
    let cfg = config(3);
    let Some(first) = connect(cfg.clone()).await else {
        return;
    };
    // A second process with the same settings finds everything in place.
    let second = AmqpQueue::connect(cfg.clone()).await.unwrap();
    second.publish(&batch("mx.a.test", 0, 2)).await.unwrap();
    first.consume_shards(&[0, 1, 2]).await.unwrap();
    let d = recv(&first, SOON)
        .await
        .expect("published by the other handle");
    assert_eq!(d.batch, batch("mx.a.test", 0, 2));
    d.ack().await.unwrap();

    // Other settings on the same names are refused, not silently ignored.
    let mut other = cfg.clone();
    other.delivery_limit = cfg.delivery_limit + 1;
    match AmqpQueue::connect(other).await {
        Err(e) => assert!(e.is_topology_mismatch(), "{e}"),
        Ok(_) => panic!("a different delivery limit was accepted"),
    }
    second.close().await;
    cleanup(&first).await;
}

#[tokio::test]
async fn a_published_batch_round_trips_exactly() {
    let Some(queue) = connect(config(2)).await else {
        return;
    };
    let sent = [
        batch("mx1.example.test,mx2.example.test", 0, 100),
        batch("aspmx.l.google.com", 100, 1),
        batch("mx.b.test", 101, 7),
    ];
    for b in &sent {
        queue.publish(b).await.unwrap();
    }
    // Nobody consumes yet, so all three wait in the shard queues.
    assert_eq!(queue.refresh_depth().await.unwrap(), 3);
    assert_eq!(queue.depth(), Some(3));

    queue.consume_shards(&[0, 1]).await.unwrap();
    let mut got = Vec::new();
    for _ in 0..3 {
        let d = recv(&queue, SOON).await.expect("a delivery");
        assert!(!d.redelivered);
        got.push(d.batch.clone());
        d.ack().await.unwrap();
    }
    got.sort_by_key(|b| b.items[0].item);
    assert_eq!(got, sent);
    assert!(recv(&queue, QUIET).await.is_none());
    assert_eq!(queue.refresh_depth().await.unwrap(), 0);
    let stats = queue.stats();
    assert_eq!((stats.published, stats.delivered, stats.acked), (3, 3, 3));
    assert_eq!(stats.redelivered, 0);
    cleanup(&queue).await;
}

#[tokio::test]
async fn a_site_is_consumed_only_from_its_shard() {
    let shards = 4;
    let Some(queue) = connect(config(shards)).await else {
        return;
    };
    let sites: Vec<String> = (0..40).map(|i| format!("mx{i}.site.test")).collect();
    for (i, site) in sites.iter().enumerate() {
        queue.publish(&batch(site, i as u64, 1)).await.unwrap();
    }
    let on_one: HashSet<&String> = sites.iter().filter(|s| shard_of(s, shards) == 1).collect();
    assert!(!on_one.is_empty() && on_one.len() < sites.len());

    queue.consume_shards(&[1]).await.unwrap();
    let mut seen = HashSet::new();
    while let Some(d) = recv(&queue, QUIET).await {
        assert_eq!(
            queue.shard_of(&d.batch.site),
            1,
            "{} off shard 1",
            d.batch.site
        );
        seen.insert(d.batch.site.clone());
        d.ack().await.unwrap();
    }
    assert_eq!(seen.len(), on_one.len());

    // Hand shard 1 back and take the others: exactly the rest arrives.
    queue.consume_shards(&[0, 2, 3]).await.unwrap();
    assert_eq!(queue.consumed_shards(), vec![0, 2, 3]);
    let mut rest = 0;
    while let Some(d) = recv(&queue, QUIET).await {
        assert_ne!(queue.shard_of(&d.batch.site), 1);
        assert!(seen.insert(d.batch.site.clone()), "a site arrived twice");
        rest += 1;
        d.ack().await.unwrap();
    }
    assert_eq!(rest, sites.len() - on_one.len());

    assert!(matches!(
        queue.consume_shards(&[4]).await,
        Err(Error::UnknownShard {
            shard: 4,
            shards: 4
        })
    ));
    cleanup(&queue).await;
}

#[tokio::test]
async fn an_unacked_delivery_comes_back_redelivered() {
    let cfg = config(1);
    let Some(queue) = connect(cfg.clone()).await else {
        return;
    };
    let sent = batch("mx.c.test", 0, 3);
    queue.publish(&sent).await.unwrap();
    queue.consume_shards(&[0]).await.unwrap();

    // Given back explicitly.
    let d = recv(&queue, SOON).await.expect("first delivery");
    assert!(!d.redelivered);
    d.requeue().await.unwrap();
    let d = recv(&queue, SOON).await.expect("requeued delivery");
    assert!(d.redelivered);
    assert_eq!(d.batch, sent);
    assert_eq!(queue.stats().redelivered, 1);
    assert_eq!(queue.stats().requeued, 1);

    // Held by a worker whose connection goes away: another worker gets it, flagged.
    let standby = AmqpQueue::connect(cfg).await.unwrap();
    standby.consume_shards(&[0]).await.unwrap();
    queue.close().await;
    assert!(
        queue.next().await.unwrap().is_none(),
        "closed queue yields None"
    );
    assert!(
        d.ack().await.is_err(),
        "ack on a closed connection must fail"
    );
    let again = recv(&standby, SOON)
        .await
        .expect("redelivered to the standby");
    assert!(again.redelivered);
    assert_eq!(again.batch, sent);
    assert_eq!(standby.stats().redelivered, 1);
    again.ack().await.unwrap();
    assert!(recv(&standby, QUIET).await.is_none());
    cleanup(&standby).await;
}

#[tokio::test]
async fn publish_after_arrives_later_through_the_ladder() {
    let mut cfg = config(2);
    cfg.delays = [1, 5, 120].into_iter().map(Duration::from_secs).collect();
    let Some(queue) = connect(cfg).await else {
        return;
    };
    queue.consume_shards(&[0, 1]).await.unwrap();

    // 400 ms rounds up to the 1 s rung.
    let soon = batch("mx.d.test", 0, 1);
    queue
        .publish_after(&soon, Duration::from_millis(400))
        .await
        .unwrap();
    assert!(
        recv(&queue, Duration::from_millis(200)).await.is_none(),
        "a delayed batch arrived at once"
    );
    let d = recv(&queue, SOON).await.expect("the delayed batch");
    assert_eq!(d.batch, soon);
    assert!(!d.redelivered);
    d.ack().await.unwrap();

    // A long delay waits in its rung and counts towards the depth meanwhile.
    queue
        .publish_after(&batch("mx.e.test", 1, 1), Duration::from_secs(90))
        .await
        .unwrap();
    assert_eq!(queue.refresh_depth().await.unwrap(), 1);
    let depths = queue.depths().expect("counted just now");
    assert_eq!(
        depths.delayed,
        Some(1),
        "it waits in the ladder, not a shard"
    );
    assert_eq!(depths.shards.iter().sum::<u64>(), 0);
    assert!(recv(&queue, QUIET).await.is_none());
    cleanup(&queue).await;
}

#[tokio::test]
async fn two_thousand_concurrent_publishes_are_consumed_exactly_once() {
    let shards = 4;
    let Some(queue) = connect(config(shards)).await else {
        return;
    };
    let total = 2000u64;
    let batches = (0..total).map(|i| batch(&format!("mx{}.bulk.test", i % 97), i, 1));
    publish_all(&queue, batches, Duration::ZERO).await.unwrap();
    assert_eq!(queue.stats().published, total);
    assert_eq!(queue.refresh_depth().await.unwrap(), total);
    // Each shard holds what `shard_of` routes to it.
    let depths = queue.depths().expect("counted just now");
    let mut expected = vec![0u64; shards as usize];
    for i in 0..total {
        expected[shard_of(&format!("mx{}.bulk.test", i % 97), shards) as usize] += 1;
    }
    assert_eq!(depths.shards, expected);
    assert_eq!(depths.delayed, Some(0));

    queue.consume_shards(&[0, 1, 2, 3]).await.unwrap();
    let mut seen: HashMap<u64, u32> = HashMap::new();
    while (seen.len() as u64) < total {
        let d = recv(&queue, SOON).await.expect("more deliveries");
        *seen.entry(d.batch.items[0].item.get()).or_default() += 1;
        d.ack().await.unwrap();
    }
    assert!(recv(&queue, QUIET).await.is_none(), "more than {total}");
    assert!(seen.values().all(|&n| n == 1), "a batch came twice");
    assert_eq!(seen.keys().copied().max(), Some(total - 1));
    assert_eq!(queue.stats().redelivered, 0);
    cleanup(&queue).await;
}

#[tokio::test]
async fn a_batch_past_the_delivery_limit_is_dead_lettered() {
    let mut cfg = config(1);
    cfg.delivery_limit = 2;
    let Some(queue) = connect(cfg).await else {
        return;
    };
    let poison = batch("mx.f.test", 0, 1);
    queue.publish(&poison).await.unwrap();
    queue.consume_shards(&[0]).await.unwrap();
    let mut deliveries = 0;
    while let Some(d) = recv(&queue, QUIET).await {
        assert_eq!(d.batch, poison);
        deliveries += 1;
        assert!(deliveries <= 10, "the delivery limit is not enforced");
        d.requeue().await.unwrap();
    }
    // The first delivery plus one per allowed return.
    assert_eq!(deliveries, 3);
    assert_eq!(common::dead_letters_settled(&queue).await, 1);
    assert_eq!(queue.refresh_depth().await.unwrap(), 0);
    cleanup(&queue).await;
}

#[tokio::test]
async fn a_body_that_is_not_a_batch_is_dead_lettered_not_delivered() {
    use lapin::options::BasicPublishOptions;
    use lapin::{BasicProperties, Connection, ConnectionProperties};

    let cfg = config(1);
    let Some(queue) = connect(cfg.clone()).await else {
        return;
    };
    // A foreign publisher puts garbage on shard 0, then a real batch follows.
    let conn = Connection::connect(&cfg.uri, ConnectionProperties::default())
        .await
        .unwrap();
    let ch = conn.create_channel().await.unwrap();
    let exchange = queue.topology().work_exchange();
    ch.basic_publish(
        exchange.as_str().into(),
        "shard.0".into(),
        BasicPublishOptions::default(),
        b"{\"not\": \"a batch\"",
        BasicProperties::default(),
    )
    .await
    .unwrap();
    conn.close(200, "OK".into()).await.unwrap();
    let good = batch("mx.g.test", 0, 1);
    queue.publish(&good).await.unwrap();

    queue.consume_shards(&[0]).await.unwrap();
    let d = recv(&queue, SOON).await.expect("the valid batch");
    assert_eq!(d.batch, good);
    d.ack().await.unwrap();
    assert_eq!(queue.stats().undecodable, 1);
    assert_eq!(common::dead_letters_settled(&queue).await, 1);
    cleanup(&queue).await;
}
