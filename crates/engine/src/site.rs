//! One site inside a worker: a local line of batches, and session tasks that take batches from
//! it on warm sessions. Each session goes out through one egress and holds that egress's
//! fleet-wide slot at the site (`max_sessions` per (site, egress), kept alive by a heartbeat
//! while the task lives), plus a slot of the site's total when one is configured. A session
//! waits `session_idle` for more work, then says QUIT and gives its slots back.
//!
//! A batch pinned to an egress (a greylist retry: RFC 6647 keys on the client address) is
//! taken only by a session of that egress; other batches by any session. New sessions go out
//! through the egresses in turn, skipping one whose circuits are open at the site while another
//! is free.
//!
//! Owns concurrency per site and egress, and session reuse; `batch_run` owns what happens
//! inside a batch.

use std::collections::VecDeque;
use std::pin::pin;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rollcall_core::ports::{Delivery, StateStore, WorkQueue};
use tokio::sync::{Notify, OwnedSemaphorePermit, mpsc};

use crate::batch_run::{self, Live};
use crate::context::{SessionSlot, SiteContext, WorkerParts};
use crate::held_lease::HeldLease;
use crate::shaping::SiteShaping;

type Work = (Delivery, OwnedSemaphorePermit);

/// A batch waiting in the line, with the egress it must go out through (if pinned).
struct Queued {
    work: Work,
    pin: Option<usize>,
}

struct Line {
    pending: Mutex<VecDeque<Queued>>,
    notify: Notify,
    /// Idle sessions per egress.
    idle: Vec<AtomicU32>,
    /// No more work will come: idle sessions quit at once instead of waiting out `idle`.
    closed: AtomicBool,
}

impl Line {
    fn push(&self, queued: Queued) {
        self.pending
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push_back(queued);
        // Every idle session looks: the batch may be pinned to one egress.
        self.notify.notify_waiters();
    }

    /// The first batch a session of `egress` may take.
    fn pop(&self, egress: usize) -> Option<Work> {
        let mut pending = self.pending.lock().unwrap_or_else(|p| p.into_inner());
        let at = pending
            .iter()
            .position(|q| q.pin.is_none_or(|pin| pin == egress))?;
        pending.remove(at).map(|q| q.work)
    }

    fn len(&self) -> usize {
        self.pending.lock().unwrap_or_else(|p| p.into_inner()).len()
    }

    /// Waiting batches pinned to each egress, and unpinned ones.
    fn demand(&self, egresses: usize) -> (Vec<usize>, usize) {
        let mut pinned = vec![0; egresses];
        let mut free = 0;
        for queued in self
            .pending
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
        {
            match queued.pin.and_then(|pin| pinned.get_mut(pin)) {
                Some(count) => *count += 1,
                None => free += 1,
            }
        }
        (pinned, free)
    }

    fn idle(&self, egress: usize) -> usize {
        self.idle
            .get(egress)
            .map_or(0, |n| n.load(Ordering::Relaxed) as usize)
    }

    fn close(&self) {
        self.closed.store(true, Ordering::SeqCst);
        self.notify.notify_waiters();
    }
}

/// How long a runner with no session and no work waits before it ends.
const RUNNER_IDLE: Duration = Duration::from_secs(5);

/// How often the runner retries a lease when every slot of the site is taken.
const LEASE_RETRY: Duration = Duration::from_millis(200);

/// Starts the runner of `site`; send it deliveries, drop the sender to let it finish.
pub fn spawn_site<Q: WorkQueue, S: StateStore>(
    parts: &WorkerParts<Q, S>,
    site: String,
    shaping: SiteShaping,
) -> (mpsc::UnboundedSender<Work>, tokio::task::JoinHandle<()>) {
    let (tx, rx) = mpsc::unbounded_channel();
    let parts = parts.clone();
    let ctx = Arc::new(SiteContext::new(parts, site, shaping));
    let handle = tokio::spawn(run_site(ctx, rx));
    (tx, handle)
}

/// The runner's view of its sessions: how many are open per egress, and where the next
/// unpinned session goes.
struct Sessions {
    active: Vec<u32>,
    next: usize,
    done_tx: mpsc::UnboundedSender<usize>,
}

impl Sessions {
    fn total(&self) -> u32 {
        self.active.iter().sum()
    }
}

async fn run_site<Q: WorkQueue, S: StateStore>(
    ctx: Arc<SiteContext<Q, S>>,
    mut rx: mpsc::UnboundedReceiver<Work>,
) {
    let egresses = ctx.egresses.len();
    let line = Arc::new(Line {
        pending: Mutex::new(VecDeque::new()),
        notify: Notify::new(),
        idle: (0..egresses).map(|_| AtomicU32::new(0)).collect(),
        closed: AtomicBool::new(false),
    });
    let (done_tx, mut done_rx) = mpsc::unbounded_channel::<usize>();
    let mut sessions = Sessions {
        active: vec![0; egresses],
        next: 0,
        done_tx,
    };
    let mut closed = false;
    loop {
        tokio::select! {
            work = rx.recv(), if !closed => match work {
                Some(work) => line.push(queued(&ctx, work)),
                None => {
                    closed = true;
                    line.close();
                }
            },
            Some(egress) = done_rx.recv() => sessions.active[egress] -= 1,
            _ = tokio::time::sleep(LEASE_RETRY), if line.len() > 0 => {}
            // Idle: no session, no work. Real lists have nearly one site per self-hosted
            // domain, so idle runners end instead of piling up; the worker starts a new one
            // when the site has work again. Whatever raced into the channel is still served.
            _ = tokio::time::sleep(RUNNER_IDLE), if !closed && sessions.total() == 0 && line.len() == 0 => {
                rx.close();
                while let Ok(work) = rx.try_recv() {
                    line.push(queued(&ctx, work));
                }
                closed = true;
                line.close();
            }
        }
        open_sessions(&ctx, &line, &mut sessions).await;
        if closed && sessions.total() == 0 && line.len() == 0 {
            // A runner that ends no longer holds its site off.
            ctx.set_held_off(false);
            return;
        }
    }
}

/// A delivery as the line keeps it: pinned to its egress when this worker has it. A pin this
/// worker cannot honour (the egress is another worker's, or gone) is dropped here, and the
/// batch says so in its verdicts (`batch_run`).
fn queued<Q, S>(ctx: &SiteContext<Q, S>, work: Work) -> Queued {
    let pin = work.0.batch.egress.as_deref().and_then(|name| {
        let found = ctx.egresses.iter().position(|e| e.name == name);
        if found.is_none() {
            metrics::counter!("rollcall_egress_pins_lost_total").increment(1);
            tracing::info!(site = %ctx.site, egress = name, "a retry pinned to an egress this worker does not have");
        }
        found
    });
    Queued { work, pin }
}

/// Opens sessions while work waits that the idle sessions cannot absorb: first for batches
/// pinned to an egress, then for the rest through the egresses in turn.
async fn open_sessions<Q: WorkQueue, S: StateStore>(
    ctx: &Arc<SiteContext<Q, S>>,
    line: &Arc<Line>,
    sessions: &mut Sessions,
) {
    let egresses = ctx.egresses.len();
    let (pinned, free) = line.demand(egresses);
    for (egress, &waiting) in pinned.iter().enumerate() {
        if waiting > line.idle(egress) && sessions.active[egress] < ctx.shaping.max_sessions {
            try_open(ctx, line, sessions, egress).await;
        }
    }
    let idle: usize = (0..egresses).map(|e| line.idle(e)).sum();
    let held = |e: usize| ctx.egress_held_off(e) && ctx.another_egress_free(e);
    // Egresses whose slots are taken fleet-wide right now: tried again on the next pass.
    let mut full = vec![false; egresses];
    let mut opened = 0;
    while free > idle + opened {
        let Some(egress) = (0..egresses)
            .map(|step| (sessions.next + step) % egresses)
            .find(|&e| !full[e] && sessions.active[e] < ctx.shaping.max_sessions && !held(e))
        else {
            break;
        };
        sessions.next = (egress + 1) % egresses;
        if try_open(ctx, line, sessions, egress).await {
            opened += 1;
        } else {
            full[egress] = true;
        }
    }
}

/// Takes a slot for a session through `egress` (and one of the site's total, when capped) and
/// starts the session task; false when a slot is not to be had now.
async fn try_open<Q: WorkQueue, S: StateStore>(
    ctx: &Arc<SiteContext<Q, S>>,
    line: &Arc<Line>,
    sessions: &mut Sessions,
    egress: usize,
) -> bool {
    let ttl = ctx.config.session_lease_ttl;
    let total = match ctx.shaping.site_max_sessions {
        None => None,
        Some(cap) => match take_lease(ctx, &ctx.site, cap).await {
            Some(lease) => Some(HeldLease::keep(ctx.state.clone(), lease, ttl)),
            None => return false,
        },
    };
    let key = ctx.egresses[egress].key(&ctx.site);
    let Some(lease) = take_lease(ctx, &key, ctx.shaping.max_sessions).await else {
        if let Some(total) = total {
            total.release(ctx.state.as_ref()).await;
        }
        return false;
    };
    sessions.active[egress] += 1;
    let slot = SessionSlot::new(
        egress,
        HeldLease::keep(ctx.state.clone(), lease, ttl),
        total,
    );
    let (ctx, line, done) = (ctx.clone(), line.clone(), sessions.done_tx.clone());
    tokio::spawn(async move {
        session_task(&ctx, &line, &slot).await;
        slot.release(ctx.state.as_ref()).await;
        let _ = done.send(egress);
    });
    true
}

async fn take_lease<Q, S: StateStore>(
    ctx: &SiteContext<Q, S>,
    key: &str,
    cap: u32,
) -> Option<rollcall_core::ports::Lease> {
    match ctx
        .state
        .lease_acquire(key, &ctx.holder, cap, ctx.config.session_lease_ttl)
        .await
    {
        Ok(lease) => lease,
        Err(error) => {
            tracing::warn!(site = %ctx.site, %error, "lease: state store unavailable");
            None
        }
    }
}

async fn session_task<Q: WorkQueue, S: StateStore>(
    ctx: &SiteContext<Q, S>,
    line: &Line,
    slot: &SessionSlot,
) {
    let egress = slot.egress;
    let mut live: Option<Live> = None;
    loop {
        // Registered before looking, so a batch pushed in between still wakes this session.
        let mut notified = pin!(line.notify.notified());
        notified.as_mut().enable();
        let work = match line.pop(egress) {
            Some(work) => work,
            None if line.closed.load(Ordering::SeqCst) => break,
            None => {
                line.idle[egress].fetch_add(1, Ordering::Relaxed);
                let woke = tokio::time::timeout(ctx.shaping.session_idle, notified).await;
                line.idle[egress].fetch_sub(1, Ordering::Relaxed);
                match (woke, line.pop(egress)) {
                    (_, Some(work)) => work,
                    // Woken for a batch another egress must take: keep waiting.
                    (Ok(()), None) if !line.closed.load(Ordering::SeqCst) => continue,
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
        if ctx.egress_held_off(egress) && ctx.another_egress_free(egress) {
            // This egress meets open circuits here: leave the work to the others.
            break;
        }
    }
    batch_run::retire(ctx, &mut live).await;
}
