//! The embedded wiring: coordinator and worker in one process over the in-memory `MemoryQueue`
//! and `MemoryState`. What `rollcall verify` and `rollcall demo` run; the distributed wiring
//! runs the same `Coordinator` and `Worker` over RabbitMQ and Redis.

use std::sync::Arc;

use rollcall_core::CampaignId;
use rollcall_core::ports::{MemoryQueue, MemoryState};
use rollcall_dns::MxResolver;
use tokio::sync::{mpsc, watch};

use crate::Error;
use crate::config::EngineConfig;
use crate::context::WorkerMetrics;
use crate::coordinator::{CacheSetup, Coordinator, InputRow, OutputRow};
use crate::probe::Connector;
use crate::summary::Summary;
use crate::worker::Worker;

/// Verifies `input` in this process, sending one `OutputRow` per input row to `output`.
/// `stop` turning true ends the run early (what is done is summarised). With `cache`, fresh
/// verdicts come from it and new ones go to it.
#[allow(clippy::too_many_arguments)]
pub async fn run<P: Send + 'static>(
    config: Arc<EngineConfig>,
    resolver: MxResolver,
    connector: Arc<dyn Connector>,
    metrics: Arc<WorkerMetrics>,
    input: mpsc::Receiver<InputRow<P>>,
    output: mpsc::Sender<OutputRow<P>>,
    stop: watch::Receiver<bool>,
    cache: Option<CacheSetup>,
) -> Result<Summary, Error> {
    let queue = Arc::new(MemoryQueue::new());
    let state = Arc::new(MemoryState::new());
    let worker = Worker {
        id: "embedded".to_string(),
        queue: queue.clone(),
        state: state.clone(),
        connector,
        config: config.clone(),
        metrics,
    };
    let worker_stop = stop.clone();
    let worker_task = tokio::spawn(async move { worker.run(worker_stop).await });
    let coordinator = Coordinator::new(queue.clone(), state, resolver, config).with_cache(cache);
    let summary = coordinator
        .run(CampaignId::random(), input, output, stop)
        .await;
    // Every row is out (or the run was stopped): nothing more will be published.
    queue.close();
    match worker_task.await {
        Ok(result) => result?,
        Err(join) => tracing::error!(%join, "the worker task failed"),
    }
    summary
}
