//! One site inside a worker: a local line of batches, and up to `max_sessions` session tasks
//! (each holding a fleet-wide lease, kept alive by a heartbeat while the task lives) that take
//! batches from it on warm sessions. A session waits `session_idle` for more work, then says
//! QUIT and gives its lease back.
//!
//! Owns concurrency per site and session reuse; `batch_run` owns what happens inside a batch.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rollcall_core::ports::{Delivery, StateStore, WorkQueue};
use tokio::sync::{Notify, OwnedSemaphorePermit, mpsc};

use crate::batch_run::{self, Live};
use crate::config::EngineConfig;
use crate::held_lease::HeldLease;
use crate::probe::Connector;
use crate::shaping::SiteShaping;

/// Counters a worker keeps (read by the embedded runner and the metrics exporter).
#[derive(Debug, Default)]
pub struct WorkerMetrics {
    pub sessions_opened: AtomicU64,
    pub sessions_active: AtomicU64,
    pub transactions: AtomicU64,
    pub batches: AtomicU64,
    pub batches_inflight: AtomicU64,
    /// Items waiting for a retry or for pacing, and why.
    pub waiting: crate::waiting::WaitingItems,
}

/// What every task of a site shares.
pub struct SiteContext<Q, S> {
    pub site: String,
    pub shaping: SiteShaping,
    pub queue: Arc<Q>,
    pub state: Arc<S>,
    pub connector: Arc<dyn Connector>,
    pub config: Arc<EngineConfig>,
    pub metrics: Arc<WorkerMetrics>,
    pub holder: String,
    /// RCPTs per transaction, adapted down on `452 4.5.3` (RFC 5321 4.5.3.1.8).
    rcpt_limit: AtomicU32,
    /// The last session attempt found every MX host behind an open circuit.
    held_off: AtomicBool,
}

impl<Q, S> SiteContext<Q, S> {
    /// Notes whether the site is held off by open circuits (the `rollcall_site_circuits_open`
    /// gauge counts the sites that are).
    pub fn set_held_off(&self, held_off: bool) {
        if self.held_off.swap(held_off, Ordering::Relaxed) != held_off {
            let gauge = metrics::gauge!("rollcall_site_circuits_open");
            if held_off {
                gauge.increment(1.0);
            } else {
                gauge.decrement(1.0);
            }
        }
    }

    pub fn rcpt_limit(&self) -> u32 {
        self.rcpt_limit.load(Ordering::Relaxed)
    }

    pub fn shrink_rcpt_limit(&self, to: u32) {
        self.rcpt_limit.fetch_min(to.max(1), Ordering::Relaxed);
    }
}

type Work = (Delivery, OwnedSemaphorePermit);

struct Line {
    pending: Mutex<VecDeque<Work>>,
    notify: Notify,
    idle: AtomicU32,
    /// No more work will come: idle sessions quit at once instead of waiting out `idle`.
    closed: std::sync::atomic::AtomicBool,
}

impl Line {
    fn pop(&self) -> Option<Work> {
        self.pending
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .pop_front()
    }

    fn len(&self) -> usize {
        self.pending.lock().unwrap_or_else(|p| p.into_inner()).len()
    }
}

/// How long a runner with no session and no work waits before it ends.
const RUNNER_IDLE: Duration = Duration::from_secs(5);

/// How often the runner retries a lease when every slot of the site is taken.
const LEASE_RETRY: Duration = Duration::from_millis(200);

/// Starts the runner of a site; send it deliveries, drop the sender to let it finish.
#[allow(clippy::too_many_arguments)]
pub fn spawn_site<Q: WorkQueue, S: StateStore>(
    site: String,
    shaping: SiteShaping,
    queue: Arc<Q>,
    state: Arc<S>,
    connector: Arc<dyn Connector>,
    config: Arc<EngineConfig>,
    metrics: Arc<WorkerMetrics>,
    holder: String,
) -> (mpsc::UnboundedSender<Work>, tokio::task::JoinHandle<()>) {
    let (tx, rx) = mpsc::unbounded_channel();
    let ctx = Arc::new(SiteContext {
        rcpt_limit: AtomicU32::new(shaping.rcpt_per_transaction),
        held_off: AtomicBool::new(false),
        site,
        shaping,
        queue,
        state,
        connector,
        config,
        metrics,
        holder,
    });
    let handle = tokio::spawn(run_site(ctx, rx));
    (tx, handle)
}

async fn run_site<Q: WorkQueue, S: StateStore>(
    ctx: Arc<SiteContext<Q, S>>,
    mut rx: mpsc::UnboundedReceiver<Work>,
) {
    let line = Arc::new(Line {
        pending: Mutex::new(VecDeque::new()),
        notify: Notify::new(),
        idle: AtomicU32::new(0),
        closed: std::sync::atomic::AtomicBool::new(false),
    });
    let (done_tx, mut done_rx) = mpsc::unbounded_channel::<()>();
    let mut active: u32 = 0;
    let mut closed = false;
    let lease_ttl = ctx.config.session_lease_ttl;
    loop {
        tokio::select! {
            work = rx.recv(), if !closed => match work {
                Some(work) => {
                    line.pending.lock().unwrap_or_else(|p| p.into_inner()).push_back(work);
                    line.notify.notify_one();
                }
                None => {
                    closed = true;
                    line.closed.store(true, Ordering::SeqCst);
                    line.notify.notify_waiters();
                }
            },
            Some(()) = done_rx.recv() => active -= 1,
            _ = tokio::time::sleep(LEASE_RETRY), if line.len() > 0 => {}
            // Idle: no session, no work. Real lists have nearly one site per self-hosted
            // domain, so idle runners end instead of piling up; the worker starts a new one
            // when the site has work again. Whatever raced into the channel is still served.
            _ = tokio::time::sleep(RUNNER_IDLE), if !closed && active == 0 && line.len() == 0 => {
                rx.close();
                while let Ok(work) = rx.try_recv() {
                    line.pending.lock().unwrap_or_else(|p| p.into_inner()).push_back(work);
                }
                closed = true;
                line.closed.store(true, Ordering::SeqCst);
                line.notify.notify_waiters();
            }
        }
        // Open another session while work waits that the idle sessions cannot absorb.
        while active < ctx.shaping.max_sessions
            && line.len() > line.idle.load(Ordering::Relaxed) as usize
        {
            let lease = match ctx
                .state
                .lease_acquire(&ctx.site, &ctx.holder, ctx.shaping.max_sessions, lease_ttl)
                .await
            {
                Ok(Some(lease)) => lease,
                Ok(None) => break,
                Err(error) => {
                    tracing::warn!(site = %ctx.site, %error, "lease: state store unavailable");
                    break;
                }
            };
            active += 1;
            let slot = HeldLease::keep(ctx.state.clone(), lease, lease_ttl);
            let (ctx, line, done) = (ctx.clone(), line.clone(), done_tx.clone());
            tokio::spawn(async move {
                session_task(&ctx, &line, &slot).await;
                slot.release(ctx.state.as_ref()).await;
                let _ = done.send(());
            });
        }
        if closed && active == 0 && line.len() == 0 {
            // A runner that ends no longer holds its site off.
            ctx.set_held_off(false);
            return;
        }
    }
}

async fn session_task<Q: WorkQueue, S: StateStore>(
    ctx: &SiteContext<Q, S>,
    line: &Line,
    slot: &HeldLease,
) {
    let mut live: Option<Live> = None;
    loop {
        let work = match line.pop() {
            Some(work) => work,
            None if line.closed.load(Ordering::SeqCst) => break,
            None => {
                line.idle.fetch_add(1, Ordering::Relaxed);
                let notified = line.notify.notified();
                let woke = tokio::time::timeout(ctx.shaping.session_idle, notified).await;
                line.idle.fetch_sub(1, Ordering::Relaxed);
                match (woke, line.pop()) {
                    (_, Some(work)) => work,
                    // Idle too long, or the line is closed and empty: this session is done.
                    _ => break,
                }
            }
        };
        let (delivery, permit) = work;
        ctx.metrics.batches_inflight.fetch_add(1, Ordering::Relaxed);
        metrics::gauge!("rollcall_worker_batches_inflight").increment(1.0);
        let batch = delivery.batch.clone();
        match batch_run::run_batch(ctx, &mut live, slot, batch).await {
            Ok(()) => {
                if let Err(error) = delivery.ack().await {
                    tracing::warn!(site = %ctx.site, %error, "ack failed; the batch will come back");
                }
            }
            Err(error) => {
                tracing::warn!(site = %ctx.site, %error, "batch not settled; giving it back");
                batch_run::retire(ctx, &mut live).await;
                let _ = delivery.requeue().await;
            }
        }
        ctx.metrics.batches.fetch_add(1, Ordering::Relaxed);
        ctx.metrics.batches_inflight.fetch_sub(1, Ordering::Relaxed);
        metrics::gauge!("rollcall_worker_batches_inflight").decrement(1.0);
        drop(permit);
        if !slot.is_held() {
            // Our slot may have lapsed and be someone else's now: stop rather than exceed the
            // cap.
            break;
        }
    }
    batch_run::retire(ctx, &mut live).await;
}
