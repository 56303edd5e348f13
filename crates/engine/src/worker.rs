//! The worker: consumes batches, hands each to the runner of its site, and moves due greylist
//! retries from the schedule back onto the queue. Stateless: everything it must share with other
//! workers is in the `StateStore`; everything it has not settled is still on the queue.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use rollcall_core::ports::{StateStore, WorkQueue};
use tokio::sync::{Semaphore, watch};

use crate::Error;
use crate::config::EngineConfig;
use crate::context::{WorkerMetrics, WorkerParts};
use crate::probe::Connector;
use crate::site::spawn_site;

/// How often the greylist schedule is read.
const GREYLIST_POLL: Duration = Duration::from_millis(250);
/// The queue depth and the greylist backlog are sampled every this many polls (about 1 s).
const SAMPLE_EVERY: u32 = 4;

/// One worker process (or one worker task of the embedded wiring).
pub struct Worker<Q, S> {
    pub id: String,
    pub queue: Arc<Q>,
    pub state: Arc<S>,
    pub connector: Arc<dyn Connector>,
    pub config: Arc<EngineConfig>,
    pub metrics: Arc<WorkerMetrics>,
}

impl<Q: WorkQueue, S: StateStore> Worker<Q, S> {
    /// Runs until the queue is closed and drained, or `stop` turns true; then lets every site
    /// finish what it holds.
    pub async fn run(&self, mut stop: watch::Receiver<bool>) -> Result<(), Error> {
        let egresses = self.config.egress_list();
        crate::egress::validate(&egresses).map_err(|reason| Error::Config {
            setting: "egress",
            reason,
        })?;
        let parts = WorkerParts {
            queue: self.queue.clone(),
            state: self.state.clone(),
            connector: self.connector.clone(),
            config: self.config.clone(),
            metrics: self.metrics.clone(),
            holder: self.id.clone(),
            egresses: egresses.into(),
        };
        let prefetch = Arc::new(Semaphore::new(self.config.worker_prefetch.max(1)));
        let mut sites = HashMap::new();
        let mut handles = Vec::new();
        let mut dispatched: u64 = 0;
        let scheduler = tokio::spawn(greylist_loop(
            self.queue.clone(),
            self.state.clone(),
            stop.clone(),
        ));
        loop {
            let permit = tokio::select! {
                permit = prefetch.clone().acquire_owned() => match permit {
                    Ok(permit) => permit,
                    Err(_) => break,
                },
                _ = stop.wait_for(|s| *s) => break,
            };
            let delivery = tokio::select! {
                next = self.queue.next() => match next? {
                    Some(delivery) => delivery,
                    None => break,
                },
                _ = stop.wait_for(|s| *s) => break,
            };
            if delivery.redelivered {
                metrics::counter!("rollcall_queue_redelivered_total").increment(1);
            }
            let site = delivery.batch.site.clone();
            let mut work = Some((delivery, permit));
            // A runner that went idle has closed its channel: start a new one for the site.
            for _ in 0..2 {
                let Some(next) = work.take() else { break };
                let tx = sites.entry(site.clone()).or_insert_with(|| {
                    let batch = &next.0.batch;
                    let hosts: Vec<&str> = batch.targets().map(|(host, _)| host).collect();
                    let shaping = self.config.shaping.for_site(&site, &hosts);
                    let (tx, handle) = spawn_site(&parts, site.clone(), shaping);
                    handles.push(handle);
                    tx
                });
                if let Err(returned) = tx.send(next) {
                    sites.remove(&site);
                    work = Some(returned.0);
                }
            }
            if let Some((delivery, _permit)) = work {
                // Even a fresh runner is gone (it panicked): give the batch back.
                let _ = delivery.requeue().await;
            }
            dispatched += 1;
            if dispatched.is_multiple_of(4096) {
                sites.retain(|_, tx| !tx.is_closed());
                handles.retain(|h| !h.is_finished());
            }
        }
        drop(sites);
        for handle in handles {
            let _ = handle.await;
        }
        scheduler.abort();
        Ok(())
    }
}

/// Moves due greylist retries onto the queue. Taking from the schedule is atomic, so any
/// number of workers may run this loop.
async fn greylist_loop<Q: WorkQueue, S: StateStore>(
    queue: Arc<Q>,
    state: Arc<S>,
    mut stop: watch::Receiver<bool>,
) {
    let mut tick = tokio::time::interval(GREYLIST_POLL);
    let mut polls: u32 = 0;
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.wait_for(|s| *s) => return,
        }
        if polls.is_multiple_of(SAMPLE_EVERY) {
            export_backlog(queue.as_ref(), state.as_ref()).await;
        }
        polls = polls.wrapping_add(1);
        let due = match state.greylist_take_due(SystemTime::now(), 1000).await {
            Ok(due) => due,
            Err(error) => {
                tracing::warn!(%error, "greylist schedule unavailable");
                continue;
            }
        };
        // Each entry stays in the schedule (due again after its lease) until it is published
        // and done: a worker killed between the two loses no retry.
        let mut published = Vec::with_capacity(due.len());
        for entry in due {
            if let Err(error) = queue.publish(&entry.batch).await {
                tracing::warn!(
                    %error,
                    "greylist retry not published; it comes due again when its lease ends"
                );
            } else {
                metrics::counter!("rollcall_queue_published_total").increment(1);
                published.push(entry);
            }
        }
        if let Err(error) = state.greylist_done(&published).await {
            // Due again after the lease: published twice, recorded once (a worker skips items
            // already recorded).
            tracing::warn!(%error, "published greylist retries not marked done");
        }
    }
}

/// Exports `rollcall_queue_depth{shard}`: batches waiting in each shard (`"0"` .. `"N-1"`; the
/// embedded wiring's one queue is shard `"0"`) and in the retry ladder (`"retry"`), as far as
/// the queue knows them. Every process that holds the queue exports the same figures (the
/// broker's), so dashboards take `max by (shard)`.
fn export_queue_depth<Q: WorkQueue + ?Sized>(queue: &Q) {
    let Some(depths) = queue.depths() else {
        return;
    };
    for (shard, waiting) in depths.shards.iter().enumerate() {
        metrics::gauge!("rollcall_queue_depth", "shard" => shard.to_string()).set(*waiting as f64);
    }
    if let Some(delayed) = depths.delayed {
        metrics::gauge!("rollcall_queue_depth", "shard" => "retry").set(delayed as f64);
    }
}

/// Exports the queue depth and the greylist backlog (the worker's loop samples them; the
/// coordinator too, so they stay visible with every worker down).
pub async fn export_backlog<Q: WorkQueue + ?Sized, S: StateStore + ?Sized>(queue: &Q, state: &S) {
    export_queue_depth(queue);
    match state.greylist_pending().await {
        Ok(pending) => metrics::gauge!("rollcall_greylist_pending").set(pending as f64),
        Err(error) => tracing::debug!(%error, "greylist backlog not sampled"),
    }
}
