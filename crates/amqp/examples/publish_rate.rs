//! Measures confirmed publish throughput against a local RabbitMQ: batches of 100 addresses,
//! through the windowed `Publisher` and one at a time through `WorkQueue::publish`. Declares a
//! throwaway topology under a random prefix and deletes it afterwards.
//!
//! ```text
//! cargo run --release -p rollcall-amqp --example publish_rate [BATCHES] [WINDOW]
//! ```

use std::net::{IpAddr, Ipv4Addr};
use std::time::Instant;

use rand::Rng;
use rollcall_amqp::{AmqpConfig, AmqpQueue};
use rollcall_core::ports::{Batch, BatchItem, MxHost, WorkQueue};
use rollcall_core::{CampaignId, ItemId};

fn batch(n: u64) -> Batch {
    let domain = format!("d{n}.example.test");
    Batch {
        campaign: CampaignId::new("publish-rate").expect("a valid id"),
        site: format!("mx{}.rate.test", n % 1000),
        domain: domain.clone(),
        mx: vec![MxHost {
            name: format!("mx{}.rate.test", n % 1000),
            addrs: vec![IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2))],
        }],
        items: (0..100)
            .map(|i| BatchItem {
                item: ItemId(n * 100 + i),
                address: format!("first.last{i}@{domain}").parse().unwrap(),
                attempts: 0,
                greylist_round: 0,
                waiting_since_ms: None,
                note: None,
                blocked_via: Vec::new(),
            })
            .collect(),
        max_wait_ms: None,
        egress: None,
        lane: 0,
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let total: u64 = args
        .next()
        .map(|a| a.parse())
        .transpose()?
        .unwrap_or(20_000);
    let window: usize = args.next().map(|a| a.parse()).transpose()?.unwrap_or(256);
    let tag: u64 = rand::rng().random();
    let config = AmqpConfig {
        prefix: format!("rollcall-rate-{tag:016x}"),
        shards: 16,
        confirm_window: window,
        ..AmqpConfig::default()
    };
    let queue = AmqpQueue::connect(config).await?;
    let batches: Vec<Batch> = (0..total).map(batch).collect();
    let bytes = serde_json::to_vec(&batches[0])?.len();

    let started = Instant::now();
    let mut publisher = queue.publisher();
    for b in &batches {
        publisher.send(b).await?;
    }
    publisher.flush().await?;
    let windowed = started.elapsed();

    let single_count = total.min(2_000);
    let started = Instant::now();
    for b in &batches[..single_count as usize] {
        queue.publish(b).await?;
    }
    let single = started.elapsed();

    println!("batch body: {bytes} bytes (100 addresses)");
    println!(
        "windowed (window {window}): {total} batches in {:.2?} = {:.0} batches/s",
        windowed,
        total as f64 / windowed.as_secs_f64()
    );
    println!(
        "one confirm at a time: {single_count} batches in {:.2?} = {:.0} batches/s",
        single,
        single_count as f64 / single.as_secs_f64()
    );
    queue.delete_topology().await?;
    queue.close().await;
    Ok(())
}
