//! Settling a batch's items: what each RCPT reply (or its absence) makes of an item (a
//! verdict, a greylist retry, a deferral, another transaction, another egress), and applying
//! it all at the end of the batch: results first, then retries.
//!
//! Does not talk SMTP or take politeness budgets (`batch_run`); the verdicts themselves are
//! built in `verdicts`.

use std::collections::VecDeque;
use std::time::{Duration, SystemTime};

use rollcall_core::ports::{Batch, BatchItem, GreylistEntry, ItemResult, StateStore, WorkQueue};
use rollcall_core::{
    Classification, CommandKind, Evidence, ItemId, ProviderRules, Reason, RetryKind, Verdict,
};

use crate::Error;
use crate::context::SiteContext;
use crate::egress::Egress;
use crate::probe::{self, NotProbed, ProbeFailure, RecipientOutcome, Reply, TransactionOutcome};
use crate::verdicts::{self, EvidenceBase};

/// Everything one batch produced, applied in order: results first, then retries, then the ack.
#[derive(Default)]
pub(crate) struct Settlement {
    pub results: Vec<ItemResult>,
    greylist: Vec<BatchItem>,
    /// Items to retry after a delay, with the delay.
    later: Vec<(BatchItem, Duration)>,
    /// Why each item of `greylist` and `later` waits (for the progress display).
    waits: Vec<(ItemId, String)>,
    /// The bound on retry waits for this batch: the campaign's, else the worker's.
    max_wait: Option<Duration>,
    /// A server blocked this egress's address for an item that another egress will try.
    pub blocked_here: bool,
    /// Items moved off this egress (blocked here): retried through any other, even when the
    /// batch was pinned to this one.
    moved_off: std::collections::HashSet<ItemId>,
}

impl Settlement {
    /// Nothing settled yet; retry waits bounded by the batch's max wait, else `default`.
    pub(crate) fn for_batch(batch: &Batch, default: Option<Duration>) -> Self {
        Settlement {
            max_wait: match batch.max_wait_ms {
                Some(0) => None,
                Some(ms) => Some(Duration::from_millis(ms)),
                None => default,
            },
            ..Settlement::default()
        }
    }

    /// `items` come back after `delay` for `why`.
    pub(crate) fn wait(
        &mut self,
        items: impl IntoIterator<Item = BatchItem>,
        delay: Duration,
        why: &str,
    ) {
        for item in items {
            self.waits.push((item.item, why.to_string()));
            self.later.push((item, delay));
        }
    }
}

/// How soon work goes out again through another egress when this one meets open circuits.
pub(crate) const EGRESS_SWITCH_RETRY: Duration = Duration::from_millis(500);

/// The items of one transaction with what became of each RCPT and its class, in order.
pub(crate) struct Rcpts<'a> {
    pub chunk: Vec<BatchItem>,
    /// Per item of `chunk`: its index in `outcomes` and `classes`, or why it was not sent.
    pub slots: Vec<Result<usize, String>>,
    pub outcomes: &'a [RecipientOutcome],
    pub classes: &'a [Option<Classification>],
}

/// Settles every item of one transaction: a verdict, a greylist retry, a deferral, or back
/// into `remaining` for the next transaction on this session.
pub(crate) fn settle_transaction<Q: WorkQueue, S: StateStore>(
    ctx: &SiteContext<Q, S>,
    out: &mut Settlement,
    remaining: &mut VecDeque<BatchItem>,
    rcpts: Rcpts<'_>,
    txn: &TransactionOutcome,
    catch_all: Option<bool>,
    base: &EvidenceBase<'_>,
) {
    let mut settler = TransactionSettler {
        ctx,
        out,
        remaining,
        txn,
        catch_all,
        base,
        accepted: 0,
        shrink: false,
    };
    // MAIL FROM refused: nothing in this transaction was probed.
    if let Some(mail) = txn.mail.as_ref().filter(|m| m.code >= 400) {
        settler.mail_refused(rcpts.chunk, mail);
        return;
    }
    for (item, slot) in rcpts.chunk.into_iter().zip(rcpts.slots) {
        settler.item(item, slot, rcpts.outcomes, rcpts.classes);
    }
    if settler.shrink {
        ctx.shrink_rcpt_limit(settler.accepted.max(1));
    }
}

/// The items of one transaction being settled, and what their replies say of the server's
/// recipient limit.
struct TransactionSettler<'a, Q, S> {
    ctx: &'a SiteContext<Q, S>,
    out: &'a mut Settlement,
    remaining: &'a mut VecDeque<BatchItem>,
    txn: &'a TransactionOutcome,
    catch_all: Option<bool>,
    base: &'a EvidenceBase<'a>,
    /// RCPTs accepted in this transaction.
    accepted: u32,
    /// The server said "too many recipients": the site's limit shrinks to what it accepted.
    shrink: bool,
}

impl<Q: WorkQueue, S: StateStore> TransactionSettler<'_, Q, S> {
    /// MAIL FROM refused: no item of `chunk` was probed.
    fn mail_refused(&mut self, chunk: Vec<BatchItem>, mail: &Reply) {
        let class = self.base.provider.classify(CommandKind::MailFrom, mail);
        let failure = probe::failure(self.txn);
        for item in chunk {
            match class {
                // A permanent refusal of our sender is about us, not the address.
                Classification::Blocked
                | Classification::Undeliverable(_)
                | Classification::Risky(_) => {
                    let verdict = verdicts::probed(
                        self.base,
                        &item,
                        Classification::Blocked,
                        Some(mail),
                        self.catch_all,
                    );
                    self.out.results.push(result(item, verdict));
                }
                _ => defer(self.ctx, self.out, item, failure.as_ref(), Some(mail)),
            }
        }
    }

    /// One item: its reply and the reply's class, or why it has none (`slot`: where it is
    /// among `outcomes` and `classes`, or why it was not sent).
    fn item(
        &mut self,
        item: BatchItem,
        slot: Result<usize, String>,
        outcomes: &[RecipientOutcome],
        classes: &[Option<Classification>],
    ) {
        let index = match slot {
            Ok(index) => index,
            Err(why) => {
                unsendable(self.out, item, why, self.catch_all, self.base);
                return;
            }
        };
        let reply = match outcomes.get(index) {
            Some(RecipientOutcome::Replied(reply)) => reply,
            Some(RecipientOutcome::NotProbed(NotProbed::OverRcptLimit))
                if self.ctx.rcpt_limit() > 1 =>
            {
                self.shrink = true;
                self.remaining.push_front(item);
                return;
            }
            Some(RecipientOutcome::NotProbed(NotProbed::NeedsSmtpUtf8)) => {
                let why = "non-ASCII mailbox and the server does not offer SMTPUTF8";
                unsendable(self.out, item, why.into(), self.catch_all, self.base);
                return;
            }
            _ => {
                // Not answered (MAIL failed in the group, 421, broken session): try again on
                // a fresh session; attempts bound how often.
                not_probed(self.ctx, self.out, self.remaining, item, self.txn);
                return;
            }
        };
        let Some(class) = classes.get(index).copied().flatten() else {
            not_probed(self.ctx, self.out, self.remaining, item, self.txn);
            return;
        };
        self.replied(item, class, reply);
    }

    /// An item the server answered with `reply` of `class`: its verdict, or its next try.
    fn replied(&mut self, item: BatchItem, class: Classification, reply: &Reply) {
        let (ctx, base, catch_all) = (self.ctx, self.base, self.catch_all);
        match class {
            // A policy block is about the prober's address, not the mailbox: another egress
            // tries, and this one is held off at the site; a verdict only when none is left.
            Classification::Blocked if may_try_elsewhere(ctx, &item, base.egress) => {
                self.move_off(item);
            }
            Classification::Blocked if !item.blocked_via.is_empty() => {
                let mut verdict = verdicts::probed(base, &item, class, Some(reply), catch_all);
                verdict = verdicts::add_detail(
                    verdict,
                    Some(format!(
                        "also blocked via egress {}",
                        item.blocked_via.join(", ")
                    )),
                );
                self.out.results.push(result(item, verdict));
            }
            Classification::Accepted
            | Classification::Undeliverable(_)
            | Classification::Risky(_)
            | Classification::Blocked
            | Classification::ProtocolError => {
                if class == Classification::Accepted {
                    self.accepted += 1;
                }
                let verdict = verdicts::probed(base, &item, class, Some(reply), catch_all);
                self.out.results.push(result(item, verdict));
            }
            Classification::Retry(RetryKind::Greylisted) => self.out.greylist.push(item),
            // RFC 5321 4.5.3.1.8: the server's limit; the rest go in the next transaction.
            // Once down to one RCPT per transaction it is no longer about the count: a
            // server that says "too many" to a single recipient is deferring it.
            Classification::Retry(RetryKind::TooManyRecipients) if ctx.rcpt_limit() > 1 => {
                self.shrink = true;
                self.remaining.push_front(item);
            }
            Classification::Retry(_) => defer(ctx, self.out, item, None, Some(reply)),
            Classification::NotProbed | Classification::SessionClosing => {
                not_probed(ctx, self.out, self.remaining, item, self.txn)
            }
        }
    }

    /// An item blocked through this egress goes to another one (its attempts count it).
    fn move_off(&mut self, mut item: BatchItem) {
        let egress = self.base.egress;
        item.attempts += 1;
        if !item.blocked_via.iter().any(|e| e == egress) {
            item.blocked_via.push(egress.to_string());
        }
        self.out.blocked_here = true;
        let why = format!("blocked via egress {egress} (another egress will try)");
        self.out.moved_off.insert(item.item);
        self.out.wait([item], EGRESS_SWITCH_RETRY, &why);
    }
}

/// An item that cannot be sent to this server: `unknown/unverifiable`, saying why.
fn unsendable(
    out: &mut Settlement,
    item: BatchItem,
    why: String,
    catch_all: Option<bool>,
    base: &EvidenceBase<'_>,
) {
    let verdict = verdicts::unverifiable(&item.address, base.host, why, catch_all);
    out.results.push(result(item, verdict));
}

/// Whether an item a server blocked through `egress` may be tried through another of this
/// worker's egresses: one it was not blocked through yet, within the item's attempts.
fn may_try_elsewhere<Q, S>(ctx: &SiteContext<Q, S>, item: &BatchItem, egress: &str) -> bool {
    (item.attempts as usize) < ctx.config.defer_retry.len()
        && ctx
            .egresses
            .iter()
            .any(|e| e.name != egress && !item.blocked_via.contains(&e.name))
}

fn not_probed<Q: WorkQueue, S: StateStore>(
    ctx: &SiteContext<Q, S>,
    out: &mut Settlement,
    remaining: &mut VecDeque<BatchItem>,
    mut item: BatchItem,
    txn: &TransactionOutcome,
) {
    item.attempts += 1;
    if item.attempts as usize > ctx.config.defer_retry.len() {
        let closed_by = probe::closed_by(txn);
        let failure = probe::failure(txn).unwrap_or_else(|| match closed_by {
            // RFC 5321 3.8: 421 is "service not available, closing": temporary, not garbage.
            Some(reply) => ProbeFailure::Temporary(format!(
                "the server closed the session ({} {}) before answering this recipient",
                reply.code,
                reply.text()
            )),
            None => ProbeFailure::Protocol("the server never answered this recipient".into()),
        });
        let reply = closed_by.or(txn.mail.as_ref());
        let verdict = verdicts::failure(&item, &failure, reply);
        out.results.push(result(item, verdict));
    } else {
        remaining.push_back(item);
    }
}

/// A temporary outcome: retry after the next delay of the schedule, or settle as unknown.
pub(crate) fn defer<Q: WorkQueue, S: StateStore>(
    ctx: &SiteContext<Q, S>,
    out: &mut Settlement,
    item: BatchItem,
    failure: Option<&ProbeFailure>,
    reply: Option<&Reply>,
) {
    defer_after(ctx, out, item, failure, reply, Duration::ZERO);
}

/// Like `defer` for a failure, waiting at least `at_least` (the circuit's open period).
pub(crate) fn defer_at_least<Q: WorkQueue, S: StateStore>(
    ctx: &SiteContext<Q, S>,
    out: &mut Settlement,
    item: BatchItem,
    failure: &ProbeFailure,
    at_least: Duration,
) {
    defer_after(ctx, out, item, Some(failure), None, at_least);
}

/// Retry after the next delay of the schedule (at least `at_least`) while the kind of failure
/// still deserves a retry and the item's max wait allows it; otherwise settle as unknown with
/// the reason it was waiting for.
fn defer_after<Q: WorkQueue, S: StateStore>(
    ctx: &SiteContext<Q, S>,
    out: &mut Settlement,
    mut item: BatchItem,
    failure: Option<&ProbeFailure>,
    reply: Option<&Reply>,
    at_least: Duration,
) {
    let round = item.attempts as usize;
    item.attempts += 1;
    let retries = failure
        .and_then(ProbeFailure::max_retries)
        .unwrap_or(usize::MAX);
    let next = ctx
        .config
        .defer_retry
        .get(round)
        .filter(|_| round < retries)
        .map(|delay| (*delay).max(at_least));
    let stopped = match next {
        Some(delay) if may_wait(out.max_wait, &mut item, delay) => {
            let why = match (failure, reply) {
                (Some(failure), _) => format!("{} ({})", failure.reason(), failure.detail()),
                (None, Some(reply)) => format!("deferred ({} {})", reply.code, reply.text()),
                (None, None) => "deferred".to_string(),
            };
            out.wait([item], delay, &why);
            return;
        }
        Some(delay) => Some(max_wait_detail(out.max_wait, delay)),
        None => None,
    };
    let verdict = match failure {
        Some(failure) => verdicts::failure(&item, failure, reply),
        None => verdicts::exhausted(&item, RetryKind::Deferred, reply),
    };
    out.results
        .push(result(item, verdicts::add_detail(verdict, stopped)));
}

/// Whether `item` may wait `delay` more for its next try: its waits end `max_wait` after the
/// first one began (noted on the item, so the bound survives requeues and redeliveries).
fn may_wait(max_wait: Option<Duration>, item: &mut BatchItem, delay: Duration) -> bool {
    let Some(max_wait) = max_wait else {
        return true;
    };
    let now = epoch_ms(SystemTime::now());
    let since = *item.waiting_since_ms.get_or_insert(now);
    now.saturating_add(duration_ms(delay)) <= since.saturating_add(duration_ms(max_wait))
}

fn max_wait_detail(max_wait: Option<Duration>, delay: Duration) -> String {
    let max_wait = max_wait.unwrap_or_default();
    format!(
        "no more retries: the next try (in {}) would come after the max wait ({})",
        short_duration(delay),
        short_duration(max_wait)
    )
}

fn epoch_ms(at: SystemTime) -> u64 {
    at.duration_since(SystemTime::UNIX_EPOCH)
        .map(duration_ms)
        .unwrap_or(0)
}

fn duration_ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// `90s` as `1m30s`, `600s` as `10m`: how a person reads a wait.
fn short_duration(d: Duration) -> String {
    let secs = d.as_secs();
    match (secs / 3600, (secs % 3600) / 60, secs % 60) {
        (0, 0, 0) => format!("{}ms", d.as_millis()),
        (0, 0, s) => format!("{s}s"),
        (0, m, 0) => format!("{m}m"),
        (0, m, s) => format!("{m}m{s}s"),
        (h, 0, 0) => format!("{h}h"),
        (h, m, _) => format!("{h}h{m}m"),
    }
}

pub(crate) fn result(item: BatchItem, verdict: Verdict) -> ItemResult {
    ItemResult {
        item: item.item,
        address: item.address.to_wire_string(),
        verdict: verdicts::add_detail(verdict, item.note),
    }
}

/// Records the results, schedules the greylist retries, and publishes the later tries.
pub(crate) async fn apply<Q: WorkQueue, S: StateStore>(
    ctx: &SiteContext<Q, S>,
    batch: &Batch,
    egress: &Egress,
    provider: &ProviderRules,
    mut out: Settlement,
) -> Result<(), Error> {
    let now = SystemTime::now();
    // Greylisted: retry from the same sender and egress after the next delay (RFC 6647 4.2).
    let mut by_round: std::collections::BTreeMap<u32, Vec<BatchItem>> = Default::default();
    for mut item in out.greylist.drain(..) {
        let round = item.greylist_round as usize;
        match ctx.config.greylist_retry.get(round).copied() {
            Some(delay) if may_wait(out.max_wait, &mut item, delay) => {
                item.greylist_round += 1;
                ctx.metrics
                    .waiting
                    .wait(&batch.campaign, item.item, "greylisted", delay);
                by_round.entry(item.greylist_round).or_default().push(item);
            }
            next => {
                let stopped = next.map(|delay| max_wait_detail(out.max_wait, delay));
                let verdict = verdicts::exhausted(&item, RetryKind::Greylisted, None);
                out.results
                    .push(result(item, verdicts::add_detail(verdict, stopped)));
            }
        }
    }
    if !out.results.is_empty() {
        for r in &mut out.results {
            provider_says(provider, r);
        }
        ctx.state
            .record_results(&batch.campaign, std::mem::take(&mut out.results))
            .await?;
    }
    for (round, items) in by_round {
        let delay = ctx.config.greylist_retry[(round - 1) as usize];
        // RFC 6647 4.2: the retry must come from the same client address with the same
        // sender, so it is pinned to this egress.
        let mut retry = batch.with_items(items);
        retry.egress = Some(egress.name.clone());
        let entry = GreylistEntry::new(retry);
        ctx.state.greylist_schedule(&entry, now + delay).await?;
    }
    let mut by_delay: std::collections::BTreeMap<(Duration, bool), Vec<BatchItem>> =
        Default::default();
    let mut waits: std::collections::HashMap<ItemId, String> = out.waits.into_iter().collect();
    for (item, delay) in out.later {
        let why = waits
            .remove(&item.item)
            .unwrap_or_else(|| "a retry".to_string());
        ctx.metrics
            .waiting
            .wait(&batch.campaign, item.item, &why, delay);
        let moved = out.moved_off.contains(&item.item);
        by_delay.entry((delay, moved)).or_default().push(item);
    }
    for ((delay, moved), items) in by_delay {
        let mut retry = batch.with_items(items);
        if moved {
            // Blocked through this egress: any other may try it, even when it was pinned here.
            retry.egress = None;
        }
        ctx.queue.publish_after(&retry, delay).await?;
        metrics::counter!("rollcall_queue_published_total").increment(1);
    }
    Ok(())
}

/// Names the domain's provider in the verdict's evidence and caps what its replies can prove
/// (`ProviderRules::cap`: an acceptance where a 250 proves nothing is `risky/accepts_all`).
fn provider_says(provider: &ProviderRules, result: &mut ItemResult) {
    let verdict = std::mem::replace(
        &mut result.verdict,
        Verdict::new(Reason::Deferred, Evidence::default()),
    );
    let mut verdict = provider.cap(verdict);
    verdict.evidence.provider = Some(provider.name().to_string());
    result.verdict = verdict;
}
