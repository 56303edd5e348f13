//! One batch on one site: pick a healthy host, (re)use a session, cut the batch into
//! transactions that respect the site's limits, and read every reply as evidence; `settle`
//! makes of each item a verdict, a greylist retry, a deferral, or another try on a fresh
//! session.
//!
//! Owns the decisions; the session (`probe`) owns the bytes and the order of commands.

use std::collections::VecDeque;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use rollcall_core::ports::{
    Batch, BatchItem, CircuitDecision, RateDecision, StateStore, WorkQueue,
};
use rollcall_core::{Classification, CommandKind, ItemId, ProviderRules, RetryKind};

use rollcall_dns::{TargetClass, classify_target};

use crate::Error;
use crate::context::{SessionSlot, SiteContext};
use crate::egress::Egress;
use crate::held_lease::HeldLease;
use crate::probe::{self, Mailbox, ProbeFailure, ProbeSession, TransactionOutcome};
use crate::settle::{
    EGRESS_SWITCH_RETRY, Rcpts, Settlement, apply, defer, defer_at_least, result,
    settle_transaction,
};
use crate::verdicts::{self, EvidenceBase};

/// The longest a worker sleeps in place for a rate limit; longer waits reschedule the batch.
const MAX_INLINE_WAIT: Duration = Duration::from_secs(2);

/// A session bound to the host it talks to, holding that address's fleet-wide slot.
pub struct Live {
    pub session: Box<dyn ProbeSession>,
    pub host: String,
    pub addr: SocketAddr,
    /// Many domains (and so several sites) can share one server address (shared hosting,
    /// implicit MX): sessions are capped per address too, not only per site.
    ip_lease: HeldLease,
}

/// The catch-all probe's address for a domain through one egress: stable, so that a
/// greylisting server lets the retry through (it keys on the client address, the sender and
/// the recipient, and the retry is pinned to the egress), different per egress, so that no
/// egress ever asks for a recipient another address was greylisted for (a server would see a
/// greylist retry from the wrong address), and unlikely to be anyone's mailbox.
pub fn catch_all_probe(domain: &str, egress: &str) -> String {
    let mut hasher = DefaultHasher::new();
    ("rollcall-catch-all", domain, egress).hash(&mut hasher);
    format!("rc-{:012x}@{domain}", hasher.finish() & 0xffff_ffff_ffff)
}

/// How soon work is tried again when the session's fleet-wide slot was lost mid-batch.
const SLOT_LOST_RETRY: Duration = Duration::from_secs(1);

/// Processes a batch; `live` is the warm session carried from batch to batch (it may be
/// replaced or dropped), `slot` the site slot the session task holds. Returns once everything
/// is recorded or rescheduled.
pub async fn run_batch<Q: WorkQueue, S: StateStore>(
    ctx: &SiteContext<Q, S>,
    live: &mut Option<Live>,
    slot: &SessionSlot,
    batch: Batch,
) -> Result<(), Error> {
    let egress = &ctx.egresses[slot.egress];
    let out = Settlement::for_batch(&batch, ctx.config.max_wait);
    let remaining = unrecorded_items(ctx, &batch, &egress.name).await?;
    if remaining.is_empty() {
        return Ok(());
    }
    let hosts: Vec<&str> = batch.targets().map(|(host, _)| host).collect();
    let provider = ctx.config.providers.detect(&batch.domain, &hosts);
    // Where a 250 proves nothing the catch-all probe would only ever be accepted.
    let catch_all = match provider.accepts_all() {
        true => None,
        false => ctx.state.catch_all_get(&batch.domain).await?,
    };
    // A probe address the codec refuses is not sent (the domain's answer stays unknown).
    let probe_mailbox = Mailbox::parse(&catch_all_probe(&batch.domain, &egress.name)).ok();
    let mut run = BatchRun {
        ctx,
        batch: &batch,
        slot,
        egress,
        out,
        remaining,
        catch_all,
        probe_mailbox,
        provider,
    };

    while !run.remaining.is_empty() {
        if !run.session(live).await? {
            break;
        }
        let Some(current) = live.as_mut() else { break };
        let Some(shape) = run.shape(current) else {
            // The session's error budget is used up: a fresh session starts from zero.
            retire(ctx, live).await;
            continue;
        };
        if let Some((delay, why)) = run.take_rate_cells(shape).await? {
            run.wait_all(delay, why);
            break;
        }
        run.transaction(current, shape).await?;
        if !current.session.is_usable() {
            retire(ctx, live).await;
        }
        if run.out.blocked_here {
            // This address is blocked here: new sessions go out through the others.
            ctx.hold_off_egress(slot.egress, ctx.shaping.backoff.base);
        }
    }

    apply(ctx, &batch, egress, &run.provider, run.out).await
}

/// The items of `batch` not recorded yet, each noting a pin this worker cannot honour.
async fn unrecorded_items<Q: WorkQueue, S: StateStore>(
    ctx: &SiteContext<Q, S>,
    batch: &Batch,
    egress: &str,
) -> Result<VecDeque<BatchItem>, Error> {
    // The line gives a pinned batch only to its egress's sessions; a pin that reaches another
    // one could not be honoured on this worker. Its items say so in their verdicts, whenever
    // those come (they are pinned to this egress from now on).
    let lost_pin = batch.egress.as_ref().filter(|pin| **pin != egress).map(|pin| {
        format!(
            "greylisted via egress `{pin}`, which this worker does not have; retried via `{egress}` (the server may greylist it anew)"
        )
    });
    // Items recorded already (a redelivered batch after a crash, or a batch a resumed
    // coordinator published again) are not probed a second time.
    let ids: Vec<ItemId> = batch.items.iter().map(|item| item.item).collect();
    // Back from a wait (or never waited): no longer waiting.
    ctx.metrics.waiting.done(&batch.campaign, &ids);
    let recorded = ctx.state.results_recorded(&batch.campaign, &ids).await?;
    let remaining: VecDeque<BatchItem> = batch
        .items
        .iter()
        .zip(&recorded)
        .filter(|(_, recorded)| !**recorded)
        .map(|(item, _)| {
            let mut item = item.clone();
            if let Some(note) = &lost_pin {
                item.note.get_or_insert_with(|| note.clone());
            }
            item
        })
        .collect();
    if remaining.len() < batch.items.len() {
        tracing::debug!(
            site = %ctx.site,
            skipped = batch.items.len() - remaining.len(),
            "items of the batch are recorded already"
        );
    }
    Ok(remaining)
}

/// One batch under way: the items still to settle, what the domain's catch-all answer is, and
/// what was settled so far.
struct BatchRun<'a, Q, S> {
    ctx: &'a SiteContext<Q, S>,
    batch: &'a Batch,
    slot: &'a SessionSlot,
    egress: &'a Egress,
    out: Settlement,
    remaining: VecDeque<BatchItem>,
    catch_all: Option<bool>,
    probe_mailbox: Option<Mailbox>,
    /// Who runs the domain's mail: its RCPT limit, its reply rows, whether a 250 is believed.
    provider: std::sync::Arc<ProviderRules>,
}

/// The next transaction's size: how many items it takes, and whether the catch-all probe goes
/// with them.
#[derive(Clone, Copy)]
struct Shape {
    take: usize,
    with_probe: bool,
}

impl<Q: WorkQueue, S: StateStore> BatchRun<'_, Q, S> {
    /// Every remaining item comes back after `delay` for `why`.
    fn wait_all(&mut self, delay: Duration, why: &str) {
        self.out.wait(self.remaining.drain(..), delay, why);
    }

    /// Makes sure `live` holds a session to probe with: `false` when there is none and the
    /// remaining items are settled or rescheduled instead.
    async fn session(&mut self, live: &mut Option<Live>) -> Result<bool, Error> {
        let ctx = self.ctx;
        if !self.slot.is_held() {
            // The site slot may be someone else's now: no more commands on its account.
            retire(ctx, live).await;
            self.wait_all(SLOT_LOST_RETRY, "pacing (a session slot)");
            return Ok(false);
        }
        retire_if_spent(ctx, live).await;
        if live.is_some() {
            return Ok(true);
        }
        match open_session(ctx, self.batch, self.egress).await? {
            Opened::Live(session) => {
                ctx.set_held_off(false);
                *live = Some(session);
                return Ok(true);
            }
            Opened::Later(delay) => self.wait_all(delay, "pacing (connections)"),
            Opened::CircuitOpen(delay)
                if self.batch.egress.is_none() && ctx.another_egress_free(self.slot.egress) =>
            {
                // Servers block and throttle per client address: this egress waits out
                // its circuits here, another one takes the work (no attempt used).
                ctx.hold_off_egress(self.slot.egress, delay);
                let why = format!("pacing (egress {} held off at this site)", self.egress.name);
                self.wait_all(EGRESS_SWITCH_RETRY, &why);
            }
            Opened::CircuitOpen(delay) => {
                ctx.hold_off_egress(self.slot.egress, delay);
                ctx.set_held_off(true);
                // The open circuit is evidence the hosts are failing: it uses an attempt,
                // so a host that stays down ends in `connection_failed`, not in a loop. When
                // this egress's last transaction here was throttled, that is what opened it:
                // the server answers, it is slowing us down (`deferred`).
                let failure = if ctx.egress_throttled(self.slot.egress) {
                    ProbeFailure::Temporary(
                        "the server is throttling this egress (its rate-limit replies opened                          the circuit)"
                            .into(),
                    )
                } else {
                    ProbeFailure::ConnectionFailed("every MX host is failing (circuit open)".into())
                };
                for item in self.remaining.drain(..) {
                    defer_at_least(ctx, &mut self.out, item, &failure, delay);
                }
            }
            Opened::Failed(failure) => {
                for item in self.remaining.drain(..) {
                    defer(ctx, &mut self.out, item, Some(&failure), None);
                }
            }
            Opened::Forbidden(why) => {
                for item in self.remaining.drain(..) {
                    let verdict = verdicts::forbidden_target(&item.address, &why);
                    self.out.results.push(result(item, verdict));
                }
            }
        }
        Ok(false)
    }

    /// The next transaction's shape on `current`; `None` when the session's error budget is
    /// used up.
    fn shape(&self, current: &Live) -> Option<Shape> {
        let limit = self
            .provider
            .rcpt_per_transaction()
            .map_or(self.ctx.rcpt_limit(), |p| p.min(self.ctx.rcpt_limit()));
        let allowed = self
            .ctx
            .shaping
            .rcpts_allowed(current.session.rejected_rcpts(), limit) as usize;
        // The probe needs a slot of its own; with room for one RCPT only, probe the address.
        let with_probe = self.catch_all.is_none() && !self.provider.accepts_all() && allowed >= 2;
        let room = allowed.saturating_sub(usize::from(with_probe));
        if room == 0 {
            return None;
        }
        Some(Shape {
            take: room.min(self.remaining.len()),
            with_probe,
        })
    }

    /// Takes the rate cells a transaction of `shape` costs: `Some((delay, why))` when a rate
    /// says wait long (the caller reschedules what remains).
    async fn take_rate_cells(
        &self,
        shape: Shape,
    ) -> Result<Option<(Duration, &'static str)>, Error> {
        let (ctx, egress, site) = (self.ctx, self.egress, &self.batch.site);
        // Every RCPT on the wire (probe included) costs one cell of the egress's rate at the
        // site (and of the site's total, when capped); `allowed` is at most each burst, so the
        // take is never more than a rate can grant at once.
        let cells = (shape.take + usize::from(shape.with_probe)) as u32;
        if let Some(delay) = take_rcpt_cells(ctx, egress, site, cells).await? {
            return Ok(Some((delay, "pacing (RCPT rate)")));
        }
        // One MAIL FROM per transaction, when the site's servers count those too.
        if let Some(mail_rate) = ctx.shaping.mail_rate {
            let key = egress.key(&format!("mail:{site}"));
            if let Some(delay) = take_cells(ctx, &key, mail_rate, 1).await? {
                return Ok(Some((delay, "pacing (MAIL rate)")));
            }
        }
        Ok(None)
    }

    /// One transaction on `current` for the next `shape.take` items (and the probe): then what
    /// it says of the domain's catch-all, every item settled, and the host's circuit told.
    async fn transaction(&mut self, current: &mut Live, shape: Shape) -> Result<(), Error> {
        let ctx = self.ctx;
        let chunk: Vec<BatchItem> = self.remaining.drain(..shape.take).collect();
        let probe = self.probe_mailbox.as_ref().filter(|_| shape.with_probe);
        let probe_sent = probe.is_some();
        let (rcpts, slots) = recipients(probe, &chunk);

        let started = Instant::now();
        let outcome = current.session.transaction(&rcpts).await;
        ctx.metrics
            .transactions
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let elapsed = started.elapsed();
        let classes = classify_rcpts(&self.provider, &outcome);
        record_transaction(&outcome, &classes, elapsed, &self.egress.name);

        let (probe_class, item_outcomes, item_classes) = if probe_sent {
            (
                classes.first().copied().flatten(),
                &outcome.recipients[1..],
                &classes[1..],
            )
        } else {
            (None, &outcome.recipients[..], &classes[..])
        };
        if let Some(class) = probe_class {
            self.learn_catch_all(class).await?;
        }

        let evidence_base = EvidenceBase {
            egress: &self.egress.name,
            site: &self.batch.site,
            host: &current.host,
            addr: current.addr,
            tls: current.session.tls(),
            pipelined: outcome.pipelined,
            elapsed,
            provider: &self.provider,
        };
        let rcpts = Rcpts {
            chunk,
            slots,
            outcomes: item_outcomes,
            classes: item_classes,
        };
        settle_transaction(
            ctx,
            &mut self.out,
            &mut self.remaining,
            rcpts,
            &outcome,
            self.catch_all,
            &evidence_base,
        );
        self.report_circuit(&current.host, &outcome, &classes).await
    }

    /// What the catch-all probe's reply says of the domain, remembered for every worker.
    async fn learn_catch_all(&mut self, class: Classification) -> Result<(), Error> {
        match class {
            Classification::Accepted => self.catch_all = Some(true),
            Classification::Undeliverable(_) => self.catch_all = Some(false),
            _ => {}
        }
        if let Some(known) = self.catch_all {
            self.ctx
                .state
                .catch_all_put(&self.batch.domain, known, self.ctx.config.catch_all_ttl)
                .await?;
        }
        Ok(())
    }

    /// Tells this egress's circuit at `host` how the transaction went.
    async fn report_circuit(
        &self,
        host: &str,
        outcome: &TransactionOutcome,
        classes: &[Option<Classification>],
    ) -> Result<(), Error> {
        let healthy = outcome.error.is_none() && probe::closed_by(outcome).is_none();
        // 4.7.x rate replies count against this egress's circuit at the host like a 421:
        // servers throttle per client address. A policy block is a verdict (`unknown/blocked`)
        // and opens no circuit: with every egress blocked, a circuit would turn it into
        // `connection_failed`, which is less true.
        let about_us = classes
            .iter()
            .any(|c| matches!(c, Some(Classification::Retry(RetryKind::RateLimited))));
        if about_us || healthy {
            self.ctx.set_egress_throttled(self.slot.egress, about_us);
        }
        self.ctx
            .state
            .circuit_report(
                &self.egress.key(host),
                healthy && !about_us,
                &self.ctx.shaping.backoff,
            )
            .await?;
        Ok(())
    }
}

/// The RCPTs of a transaction: the catch-all `probe` first when it goes, then the items of
/// `chunk` the codec accepts. Addresses the codec refuses never reach the wire; they are settled
/// as unsendable. The second value, per item of `chunk`: where it is among the items sent, or
/// why it is not.
fn recipients(
    probe: Option<&Mailbox>,
    chunk: &[BatchItem],
) -> (Vec<Mailbox>, Vec<Result<usize, String>>) {
    let mut rcpts: Vec<Mailbox> = Vec::with_capacity(chunk.len() + 1);
    rcpts.extend(probe.cloned());
    let probe_sent = probe.is_some();
    let mut slots: Vec<Result<usize, String>> = Vec::with_capacity(chunk.len());
    for item in chunk {
        match item.address.to_mailbox() {
            Ok(mailbox) => {
                slots.push(Ok(rcpts.len() - usize::from(probe_sent)));
                rcpts.push(mailbox);
            }
            Err(e) => slots.push(Err(format!("not sendable: {e}"))),
        }
    }
    (rcpts, slots)
}

/// Classifies every RCPT reply of a transaction once, as `provider` reads them (`None`: not
/// answered).
fn classify_rcpts(
    provider: &ProviderRules,
    outcome: &TransactionOutcome,
) -> Vec<Option<Classification>> {
    outcome
        .recipients
        .iter()
        .map(|o| o.reply().map(|r| provider.classify(CommandKind::RcptTo, r)))
        .collect()
}

/// Exports one transaction: its time, its pipelining, and the class of every MAIL and RCPT
/// reply, and per egress its RCPTs, blocks and deferrals. Labels are fixed words and the
/// operator's egress names only, never an address or a host name.
fn record_transaction(
    outcome: &TransactionOutcome,
    classes: &[Option<Classification>],
    elapsed: Duration,
    egress: &str,
) {
    // Counted per transaction, not per RCPT: one label lookup per counter and transaction.
    let replied = classes.iter().flatten();
    let (mut rcpts, mut blocks, mut deferrals) = (0u64, 0u64, 0u64);
    for class in replied {
        rcpts += 1;
        match class {
            Classification::Blocked => blocks += 1,
            Classification::Retry(_) => deferrals += 1,
            _ => {}
        }
    }
    for (name, n) in [
        ("rollcall_egress_rcpts_total", rcpts),
        ("rollcall_egress_blocks_total", blocks),
        ("rollcall_egress_deferrals_total", deferrals),
    ] {
        if n > 0 {
            metrics::counter!(name, "egress" => egress.to_string()).increment(n);
        }
    }
    metrics::counter!("rollcall_smtp_transactions_total").increment(1);
    metrics::histogram!("rollcall_smtp_command_duration_seconds", "command" => "transaction")
        .record(elapsed.as_secs_f64());
    if outcome.pipelined {
        // RFC 2920: MAIL FROM and its RCPTs went out as one group.
        metrics::counter!("rollcall_smtp_pipelined_groups_total").increment(1);
    }
    let mail = outcome.mail.iter().map(|r| ("mail", r.code));
    let rcpts = outcome
        .recipients
        .iter()
        .filter_map(|o| o.reply().map(|r| ("rcpt", r.code)));
    for (command, code) in mail.chain(rcpts) {
        let class = reply_class(code);
        metrics::counter!("rollcall_smtp_replies_total", "command" => command, "class" => class)
            .increment(1);
        if code == 503 {
            // RFC 5321 4.3.2: 503 means a command came out of sequence, i.e. our bug.
            metrics::counter!("rollcall_smtp_bad_sequence_total").increment(1);
        }
    }
}

/// The class of a reply code (RFC 5321 4.2.1), as a bounded label value.
fn reply_class(code: u16) -> &'static str {
    match code / 100 {
        2 => "2xx",
        3 => "3xx",
        4 => "4xx",
        5 => "5xx",
        _ => "other",
    }
}

enum Opened {
    Live(Live),
    /// Our own politeness (connection rate, address slots) says wait: come back later.
    Later(Duration),
    /// Every host's circuit is open: come back after this long, and count the attempt.
    CircuitOpen(Duration),
    /// Every address the batch named is in a range the target policy refuses.
    Forbidden(String),
    /// Every host failed.
    Failed(ProbeFailure),
}

/// A session for `batch` through `egress`: the first of its hosts whose circuit is
/// closed and one of whose public addresses has a free slot and connects.
async fn open_session<Q: WorkQueue, S: StateStore>(
    ctx: &SiteContext<Q, S>,
    batch: &Batch,
    egress: &Egress,
) -> Result<Opened, Error> {
    let mut last_failure = None;
    let mut open_for: Option<Duration> = None;
    let mut address_busy = false;
    let mut forbidden = None;
    // Bounded: the batch came from a queue, and its host list from whoever wrote it there.
    for (host, addrs) in batch.targets() {
        // Circuits are per (host, egress): a block or throttle of one address is not another's.
        match ctx.state.circuit_check(&egress.key(host)).await? {
            CircuitDecision::Open { retry_after } => {
                open_for = Some(open_for.map_or(retry_after, |d| d.min(retry_after)));
                continue;
            }
            CircuitDecision::Closed | CircuitDecision::HalfOpenProbe => {}
        }
        for ip in addrs {
            // The coordinator checked the target policy, but a batch (or a greylist entry)
            // can come from anyone who can write to the broker or the store: check again, so
            // no worker is ever aimed at a private network (SSRF).
            if !ctx.config.allow_private_targets && classify_target(*ip) != TargetClass::Public {
                tracing::warn!(site = %ctx.site, %host, %ip, "refused a private MX address from a batch");
                forbidden = Some(format!("{host} resolves to {ip}"));
                continue;
            }
            let addr = SocketAddr::new(*ip, ctx.config.smtp_port);
            let Some(ip_lease) = address_slot(ctx, egress, addr).await? else {
                address_busy = true;
                continue;
            };
            let key = egress.key(&format!("connect:{}", batch.site));
            if let Some(delay) = take_cells(ctx, &key, ctx.shaping.connect_rate, 1).await? {
                ip_lease.release(ctx.state.as_ref()).await;
                return Ok(Opened::Later(delay));
            }
            let started = Instant::now();
            let connected = ctx.connector.connect(egress, host, addr).await;
            metrics::histogram!("rollcall_smtp_command_duration_seconds", "command" => "connect")
                .record(started.elapsed().as_secs_f64());
            match connected {
                Ok(session) => {
                    count_session_opened(ctx, egress);
                    return Ok(Opened::Live(Live {
                        session,
                        host: host.to_string(),
                        addr,
                        ip_lease,
                    }));
                }
                Err(failure) => {
                    ip_lease.release(ctx.state.as_ref()).await;
                    tracing::debug!(host = %host, %addr, ?failure, "connect failed");
                    ctx.state
                        .circuit_report(&egress.key(host), false, &ctx.shaping.backoff)
                        .await?;
                    last_failure = Some(failure);
                }
            }
        }
    }
    Ok(match (last_failure, open_for) {
        (Some(failure), _) => Opened::Failed(failure),
        _ if address_busy => Opened::Later(ADDRESS_BUSY_RETRY),
        (None, Some(delay)) => Opened::CircuitOpen(delay),
        (None, None) if forbidden.is_some() => Opened::Forbidden(forbidden.unwrap_or_default()),
        (None, None) => Opened::Failed(ProbeFailure::ConnectionFailed(
            "no MX host address to connect to".into(),
        )),
    })
}

/// Counts a session `egress` opened, in the worker's counters and the exported metrics.
fn count_session_opened<Q, S>(ctx: &SiteContext<Q, S>, egress: &Egress) {
    ctx.metrics
        .sessions_opened
        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    ctx.metrics
        .sessions_active
        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    metrics::counter!("rollcall_smtp_sessions_opened_total").increment(1);
    metrics::counter!("rollcall_egress_sessions_opened_total", "egress" => egress.name.clone())
        .increment(1);
    // The egress's reply counters exist from its first session on, so an egress that was
    // never blocked shows 0, not nothing.
    for name in [
        "rollcall_egress_rcpts_total",
        "rollcall_egress_blocks_total",
        "rollcall_egress_deferrals_total",
    ] {
        metrics::counter!(name, "egress" => egress.name.clone()).increment(0);
    }
    metrics::gauge!("rollcall_smtp_sessions_active").increment(1.0);
}

/// How long to wait for a server address's session slot in place before rescheduling.
const ADDRESS_WAIT: Duration = Duration::from_secs(2);
const ADDRESS_BUSY_RETRY: Duration = Duration::from_millis(500);

/// One of the site's `max_sessions` slots at this server address for this egress, fleet-wide
/// (the server counts sessions per client address), waiting briefly for one to free up; kept
/// alive while the session lives.
async fn address_slot<Q: WorkQueue, S: StateStore>(
    ctx: &SiteContext<Q, S>,
    egress: &Egress,
    addr: SocketAddr,
) -> Result<Option<HeldLease>, Error> {
    let key = egress.key(&format!("ip:{}", addr.ip()));
    let ttl = ctx.config.session_lease_ttl;
    let started = Instant::now();
    loop {
        if let Some(lease) = ctx
            .state
            .lease_acquire(&key, &ctx.holder, ctx.shaping.max_sessions, ttl)
            .await?
        {
            return Ok(Some(HeldLease::keep(ctx.state.clone(), lease, ttl)));
        }
        if started.elapsed() >= ADDRESS_WAIT {
            return Ok(None);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Takes `cells` (1 to the burst) from a GCRA bucket, sleeping for short waits. `Some(delay)`
/// when the wait is long: the caller reschedules instead of holding the batch. The cells are
/// exactly what the caller sends: a take is never cut down to fit.
async fn take_cells<Q: WorkQueue, S: StateStore>(
    ctx: &SiteContext<Q, S>,
    key: &str,
    limit: rollcall_core::ports::RateLimit,
    cells: u32,
) -> Result<Option<Duration>, Error> {
    loop {
        match ctx.state.rate_take(key, limit, cells).await? {
            RateDecision::Granted => return Ok(None),
            RateDecision::Wait(wait) if wait <= MAX_INLINE_WAIT => tokio::time::sleep(wait).await,
            RateDecision::Wait(wait) => return Ok(Some(wait)),
        }
    }
}

/// Takes `cells` RCPT cells of `egress` at `site`, then of the site's total when it is capped.
/// `Some(delay)` when either says wait long; cells already taken from the egress's bucket are
/// then not given back (the error is on the side of sending less).
async fn take_rcpt_cells<Q: WorkQueue, S: StateStore>(
    ctx: &SiteContext<Q, S>,
    egress: &Egress,
    site: &str,
    cells: u32,
) -> Result<Option<Duration>, Error> {
    let key = format!("rcpt:{site}");
    if let Some(delay) = take_cells(ctx, &egress.key(&key), ctx.shaping.rcpt_rate, cells).await? {
        return Ok(Some(delay));
    }
    match ctx.shaping.site_rcpt_rate {
        Some(total) => take_cells(ctx, &key, total, cells).await,
        None => Ok(None),
    }
}

async fn retire_if_spent<Q: WorkQueue, S: StateStore>(
    ctx: &SiteContext<Q, S>,
    live: &mut Option<Live>,
) {
    let spent = live.as_ref().is_some_and(|l| {
        !l.session.is_usable()
            || l.session.transactions() >= ctx.shaping.transactions_per_session
            || l.session.age() >= ctx.shaping.session_max_age
            || l.session.rejected_rcpts() >= ctx.shaping.retire_after_rejected
            // The address slot may be someone else's now.
            || !l.ip_lease.is_held()
    });
    if spent {
        retire(ctx, live).await;
    }
}

/// QUIT (when still usable), forget the session and give its address slot back.
pub async fn retire<Q: WorkQueue, S: StateStore>(ctx: &SiteContext<Q, S>, live: &mut Option<Live>) {
    if let Some(current) = live.take() {
        ctx.metrics
            .sessions_active
            .fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
        metrics::gauge!("rollcall_smtp_sessions_active").decrement(1.0);
        current.session.quit().await;
        current.ip_lease.release(ctx.state.as_ref()).await;
    }
}
