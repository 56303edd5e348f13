//! Surviving a broker restart (`rabbitmqctl stop_app` / `start_app`). It restarts the SHARED
//! broker on this machine, so it is a test binary of its own: `cargo test` runs binaries one
//! after another, so no other test has a connection to the broker meanwhile. Do not run it
//! beside other tests that use the broker.
//!
//! ```text
//! cargo test -p rollcall-amqp --test restart
//! ```

mod common;

use std::collections::HashSet;
use std::time::Duration;

use common::{batch, cleanup, config, connect, publish_all, recv};
use rollcall_core::ports::WorkQueue;

/// The tests of this binary restart the one broker: one at a time.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Starts the broker application again even when the test fails half-way.
struct StartAppOnDrop;

impl Drop for StartAppOnDrop {
    fn drop(&mut self) {
        let _ = std::process::Command::new("rabbitmqctl")
            .arg("start_app")
            .status();
    }
}

async fn rabbitmqctl(command: &str) {
    let status = tokio::process::Command::new("rabbitmqctl")
        .arg(command)
        .status()
        .await
        .unwrap();
    assert!(status.success(), "rabbitmqctl {command}: {status}");
}

#[tokio::test]
async fn broker_restart_is_survived() {
    let _serial = SERIAL.lock().await;
    let mut cfg = config(2);
    cfg.publish_timeout = Duration::from_secs(90);
    let Some(queue) = connect(cfg).await else {
        return;
    };
    queue.consume_shards(&[0, 1]).await.unwrap();
    for i in 0..5 {
        queue
            .publish(&batch(&format!("mx{i}.r.test"), i, 1))
            .await
            .unwrap();
    }
    // Settle four, hold one across the restart.
    let mut held = None;
    for _ in 0..5 {
        let d = recv(&queue, Duration::from_secs(10))
            .await
            .expect("delivery");
        if d.batch.items[0].item.get() == 4 {
            held = Some(d);
        } else {
            d.ack().await.unwrap();
        }
    }
    let held = held.expect("batch 4 was delivered");

    let _restart_guard = StartAppOnDrop;
    rabbitmqctl("stop_app").await;

    // Single confirmed publishes, then a concurrent burst, all during the outage.
    let publishing = tokio::spawn({
        let queue = queue.clone();
        async move {
            for i in 5..25 {
                queue
                    .publish(&batch(&format!("mx{i}.r.test"), i, 1))
                    .await?;
            }
            let burst = (25..125).map(|i| batch(&format!("mx{i}.r.test"), i, 1));
            publish_all(&queue, burst, Duration::ZERO).await
        }
    });
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(
        !publishing.is_finished(),
        "a publish completed while the broker was down"
    );
    rabbitmqctl("start_app").await;
    publishing.await.unwrap().unwrap();

    // The held delivery's channel is gone: its ack fails and the broker delivers it again.
    assert!(held.ack().await.is_err());
    let mut seen = HashSet::new();
    while seen.len() < 121 {
        let d = recv(&queue, Duration::from_secs(30))
            .await
            .expect("consuming resumed after the restart");
        seen.insert(d.batch.items[0].item.get());
        d.ack().await.unwrap();
    }
    assert_eq!(seen, (4..125).collect::<HashSet<u64>>());
    let stats = queue.stats();
    assert!(stats.reconnects >= 1, "{stats:?}");
    assert!(stats.ack_failures >= 1, "{stats:?}");
    assert_eq!(queue.consumed_shards(), vec![0, 1]);
    eprintln!("after the restart: {stats:?}");
    cleanup(&queue).await;
}

/// Retries waiting in the ladder when the broker stops expire while it is down or booting;
/// the rung's at-least-once dead-lettering still lands every one on its shard soon after the
/// broker is back (RabbitMQ's own re-forwarding of an unsettled dead letter waits 180 s,
/// `dead_letter_worker_publisher_confirm_timeout`).
#[tokio::test]
async fn retries_in_the_ladder_across_a_restart_arrive_soon_after() {
    const RETRIES: u64 = 200;
    /// Every retry is back on its shard this soon after the broker listens again.
    const BOUND: Duration = Duration::from_secs(30);
    let _serial = SERIAL.lock().await;
    let cfg = config(8);
    let Some(queue) = connect(cfg).await else {
        return;
    };
    queue
        .consume_shards(&(0..8).collect::<Vec<_>>())
        .await
        .unwrap();
    let retries = (0..RETRIES).map(|i| batch(&format!("mx{i}.ladder.test"), i, 1));
    publish_all(&queue, retries, Duration::from_secs(5))
        .await
        .unwrap();

    let _restart_guard = StartAppOnDrop;
    rabbitmqctl("stop_app").await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    rabbitmqctl("start_app").await;
    let back = std::time::Instant::now();

    let mut seen = HashSet::new();
    while seen.len() < RETRIES as usize {
        let Some(d) = recv(&queue, BOUND.saturating_sub(back.elapsed())).await else {
            break;
        };
        seen.insert(d.batch.items[0].item.get());
        let _ = d.ack().await;
    }
    eprintln!(
        "{} of {RETRIES} arrived, {:.1}s after the broker was back",
        seen.len(),
        back.elapsed().as_secs_f64()
    );
    assert_eq!(
        seen.len(),
        RETRIES as usize,
        "retries still in the ladder {BOUND:?} after the restart"
    );
    cleanup(&queue).await;
}
