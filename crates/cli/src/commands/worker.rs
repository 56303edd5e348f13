//! `rollcall worker`: one worker of the distributed wiring. Takes shard leases in Redis,
//! consumes those shards from RabbitMQ, probes, and records results in Redis.
//! Owns the wiring and the shutdown order only; the work itself is `rollcall_engine::worker`,
//! the leases `rollcall_engine::shards`.

use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context as _;
use rollcall_amqp::AmqpQueue;
use rollcall_engine::WorkerMetrics;
use rollcall_engine::shards::{ShardLeaseConfig, ShardLeases};
use rollcall_engine::worker::Worker;
use rollcall_redis::RedisState;
use tokio::sync::watch;

use crate::config::EngineFlags;
use crate::run::settings::load_settings;
use crate::run::signals::shutdown_signal;

/// Flags of `rollcall worker`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Broker, store, prefix, shard count and metrics listener (shared with the other
    /// distributed command).
    #[command(flatten)]
    pub fleet: crate::run::distributed::DistributedFlags,

    /// Hold at most this many shards (ceil(shards / workers) spreads them evenly). Default:
    /// take every free shard, so a lone survivor takes over a dead fleet's shards.
    #[arg(long, value_name = "N", env = "ROLLCALL_MAX_SHARDS")]
    pub max_shards: Option<u32>,

    /// This worker's name in leases and logs. Default: HOSTNAME-PID.
    #[arg(long, value_name = "ID", env = "ROLLCALL_WORKER_ID")]
    pub worker_id: Option<String>,

    #[command(flatten)]
    pub engine: Box<EngineFlags>,
}

pub async fn run(args: Args) -> anyhow::Result<ExitCode> {
    let settings = match load_settings(&args.engine) {
        Ok(settings) => settings,
        Err(code) => return Ok(code),
    };
    args.fleet.install_metrics()?;
    let id = args.worker_id.clone().unwrap_or_else(default_worker_id);
    let connector = rollcall_engine::connector(&settings.engine)
        .map_err(|e| anyhow::anyhow!("SMTP identity: {e} (fix: --helo / --mail-from)"))?;

    let (state, queue) = args.fleet.connect().await?;
    tracing::info!(%id, shards = args.fleet.shards, "worker started");

    let (stop_tx, stop_rx) = watch::channel(false);
    tokio::spawn(async move {
        shutdown_signal().await;
        tracing::info!("shutting down: finishing the batches in hand");
        stop_tx.send_replace(true);
    });

    let worker = Worker {
        id: id.clone(),
        queue: queue.clone(),
        state: state.clone(),
        connector,
        config: Arc::new(settings.engine),
        metrics: Arc::new(WorkerMetrics::default()),
    };
    let result = run_with_shards(
        worker,
        ShardLeaseConfig {
            max_shards: args.max_shards,
            ..ShardLeaseConfig::new(args.fleet.shards, id)
        },
        stop_rx,
    )
    .await;
    queue.close().await;
    result?;
    Ok(ExitCode::SUCCESS)
}

/// Runs `worker` on the shards whose leases it holds until `stop` turns true, then stops
/// consuming, lets the batches in hand finish, and releases the shard leases. Does not close
/// the queue.
pub(crate) async fn run_with_shards(
    worker: Worker<AmqpQueue, RedisState>,
    leases: ShardLeaseConfig,
    stop: watch::Receiver<bool>,
) -> anyhow::Result<()> {
    let queue = worker.queue.clone();
    let (held_tx, mut held_rx) = watch::channel(Vec::new());
    let (leases_stop, leases_stop_rx) = watch::channel(false);
    let lease_loop =
        tokio::spawn(ShardLeases::new(worker.state.clone(), leases).run(held_tx, leases_stop_rx));

    // Follow the held set: consume exactly the shards held.
    let follow = {
        let queue = queue.clone();
        // The broker's prefetch bounds each shard's consumer, the engine's `worker_prefetch`
        // the batches in hand over all of them.
        let per_shard = f64::from(queue.config().prefetch);
        let in_hand = worker.config.worker_prefetch.max(1) as f64;
        tokio::spawn(async move {
            while held_rx.changed().await.is_ok() {
                let held = held_rx.borrow_and_update().clone();
                tracing::info!(?held, "consuming shards");
                // How many batches the worker may hold at once (saturation = batches in
                // flight / this).
                metrics::gauge!("rollcall_worker_prefetch")
                    .set((per_shard * held.len() as f64).min(in_hand));
                if let Err(error) = queue.consume_shards(&held).await {
                    // The queue re-applies the wanted set after it reconnects.
                    tracing::warn!(%error, "shard consumers not updated yet");
                }
            }
        })
    };

    let result = worker.run(stop).await;
    // Stop consuming before the leases go, so no two workers consume a shard at once.
    follow.abort();
    if let Err(error) = queue.consume_shards(&[]).await {
        tracing::warn!(%error, "shard consumers not stopped; closing the connection stops them");
    }
    leases_stop.send_replace(true);
    let _ = lease_loop.await;
    result.context("the worker failed")
}

fn default_worker_id() -> String {
    let host = std::env::var("HOSTNAME")
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "worker".to_string());
    format!("{host}-{}", std::process::id())
}
