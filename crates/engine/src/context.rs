//! What the tasks of a worker share: its counters (`WorkerMetrics`), the parts every site
//! runner is made of (`WorkerParts`), the state of one site's runner and its sessions
//! (`SiteContext`: RCPTs per transaction as adapted, circuits held off per egress), and the
//! fleet-wide slots a session task holds (`SessionSlot`).
//!
//! Owns no behaviour beyond small accessors: `site` runs the line of batches and the session
//! tasks, `batch_run` what happens inside a batch.

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rollcall_core::ports::StateStore;

use crate::config::EngineConfig;
use crate::egress::Egress;
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

/// What every site runner of a worker shares.
pub struct WorkerParts<Q, S> {
    pub queue: Arc<Q>,
    pub state: Arc<S>,
    pub connector: Arc<dyn Connector>,
    pub config: Arc<EngineConfig>,
    pub metrics: Arc<WorkerMetrics>,
    /// Names this worker in leases.
    pub holder: String,
    /// The ways out, in the order new sessions use them.
    pub egresses: Arc<[Egress]>,
}

impl<Q, S> Clone for WorkerParts<Q, S> {
    fn clone(&self) -> Self {
        WorkerParts {
            queue: self.queue.clone(),
            state: self.state.clone(),
            connector: self.connector.clone(),
            config: self.config.clone(),
            metrics: self.metrics.clone(),
            holder: self.holder.clone(),
            egresses: self.egresses.clone(),
        }
    }
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
    pub egresses: Arc<[Egress]>,
    /// RCPTs per transaction, adapted down on `452 4.5.3` (RFC 5321 4.5.3.1.8).
    rcpt_limit: AtomicU32,
    /// The last session attempt found every MX host behind an open circuit.
    held_off: AtomicBool,
    /// Per egress (same index as `egresses`): until when every MX host of the site is behind
    /// an open circuit for it.
    egress_held_until: Vec<Mutex<Option<Instant>>>,
    /// Per egress: its last transaction here was throttled (4.7.x rate replies), which counts
    /// against its circuit; an open circuit then means "throttled", not "unreachable".
    egress_throttled: Vec<AtomicBool>,
}

impl<Q, S> SiteContext<Q, S> {
    /// The context of `site`'s runner in a worker made of `parts`.
    pub fn new(parts: WorkerParts<Q, S>, site: String, shaping: SiteShaping) -> Self {
        SiteContext {
            rcpt_limit: AtomicU32::new(shaping.rcpt_per_transaction),
            held_off: AtomicBool::new(false),
            egress_held_until: parts.egresses.iter().map(|_| Mutex::new(None)).collect(),
            egress_throttled: parts
                .egresses
                .iter()
                .map(|_| AtomicBool::new(false))
                .collect(),
            site,
            shaping,
            queue: parts.queue,
            state: parts.state,
            connector: parts.connector,
            config: parts.config,
            metrics: parts.metrics,
            holder: parts.holder,
            egresses: parts.egresses,
        }
    }

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

    /// Egress `index` meets open circuits at every host of the site for `period`.
    /// Remembers whether egress `index`'s last transaction here was throttled.
    pub fn set_egress_throttled(&self, index: usize, throttled: bool) {
        if let Some(flag) = self.egress_throttled.get(index) {
            flag.store(throttled, Ordering::Relaxed);
        }
    }

    /// Whether egress `index`'s last transaction here was throttled.
    pub fn egress_throttled(&self, index: usize) -> bool {
        self.egress_throttled
            .get(index)
            .is_some_and(|flag| flag.load(Ordering::Relaxed))
    }

    pub fn hold_off_egress(&self, index: usize, period: Duration) {
        if let Some(slot) = self.egress_held_until.get(index) {
            *slot.lock().unwrap_or_else(|p| p.into_inner()) = Some(Instant::now() + period);
        }
    }

    /// Whether egress `index` is held off at this site now.
    pub fn egress_held_off(&self, index: usize) -> bool {
        self.egress_held_until.get(index).is_some_and(|slot| {
            slot.lock()
                .unwrap_or_else(|p| p.into_inner())
                .is_some_and(|until| until > Instant::now())
        })
    }

    /// Whether some egress other than `index` is not held off here.
    pub fn another_egress_free(&self, index: usize) -> bool {
        (0..self.egresses.len()).any(|other| other != index && !self.egress_held_off(other))
    }
}

/// The slots a session task holds: its egress's slot at the site and, when the site has a
/// total cap, one of the site's total slots.
pub struct SessionSlot {
    /// Index into the worker's egresses.
    pub egress: usize,
    lease: HeldLease,
    total: Option<HeldLease>,
}

impl SessionSlot {
    pub fn new(egress: usize, lease: HeldLease, total: Option<HeldLease>) -> Self {
        SessionSlot {
            egress,
            lease,
            total,
        }
    }

    /// False once a slot may have lapsed: no more commands on its account.
    pub fn is_held(&self) -> bool {
        self.lease.is_held() && self.total.as_ref().is_none_or(HeldLease::is_held)
    }

    /// Gives both slots back.
    pub async fn release<S: StateStore>(self, state: &S) {
        self.lease.release(state).await;
        if let Some(total) = self.total {
            total.release(state).await;
        }
    }
}
