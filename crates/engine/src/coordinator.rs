//! The coordinator: streams input rows, gives every row exactly one verdict, and hands the
//! probing to workers through the `WorkQueue`.
//!
//! One task owns all of its state (no locks): it parses and dedupes rows, resolves each domain
//! once, groups addresses of a domain into batches of one site, publishes them, and turns the
//! results the workers record in the `StateStore` back into output rows. Memory is bounded: at
//! most `max_outstanding` items are in flight (input reading pauses beyond that), and a finished
//! address is remembered only as a 64-bit key and a compact verdict, for later duplicates.
//!
//! With a result cache (`with_cache`), rows are read in batches and looked up before they are
//! routed: a fresh verdict comes out at once, the rest is verified and written back
//! (`coordinator/cache.rs`).
//!
//! Does not talk SMTP, does not decide verdicts from replies (the worker does). Beside it:
//! `coordinator/cache.rs` (the result cache), `coordinator/finished.rs` (what a finished
//! address is kept as, for later duplicates), `coordinator/lanes.rs` (the shards a site's batches go to).

use std::collections::HashMap;

mod cache;
mod collect;
mod finished;
mod lanes;
mod second_pass;
mod second_tries;

use cache::RunCache;
pub use cache::{CacheNote, CacheSetup};
use finished::{Compact, Interner, expand};
use lanes::Lanes;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rollcall_core::ports::{
    Batch, BatchItem, CacheEntry, ItemResult, MxHost, QueueError, StateStore, WorkQueue,
    verdict_for_row,
};
use rollcall_core::{CampaignId, EmailAddress, ItemId, Reason, Site, Status, SyntaxError, Verdict};
use rollcall_dns::{MxResolver, Resolution};
use tokio::sync::{mpsc, watch};

use crate::config::EngineConfig;
use crate::summary::Summary;
use crate::{Error, verdicts};

/// One input row: its number (1-based, as the user counts lines or records), the address text
/// as given, and whatever the caller needs to write the row back out (e.g. the CSV fields).
#[derive(Debug)]
pub struct InputRow<P> {
    pub row: u64,
    pub text: String,
    pub payload: P,
}

/// One output row: every input row comes out exactly once.
#[derive(Debug)]
pub struct OutputRow<P> {
    pub row: u64,
    pub text: String,
    pub payload: P,
    pub verdict: Arc<Verdict>,
    /// This address appeared earlier in the input; the verdict is the first occurrence's.
    pub duplicate: bool,
    /// Whether the verdict came from the result cache, when it was reached, what it was before.
    pub cache: CacheNote,
    /// 0-100: how likely a message to the address arrives (`rollcall_core::score` with the
    /// configured weights).
    pub score: u8,
}

impl<P> OutputRow<P> {
    /// `deliverable->undeliverable` when the address was cached with another status and
    /// verified again; `None` when unchanged, new or straight from the cache.
    pub fn changed(&self) -> Option<String> {
        self.cache
            .previous
            .and_then(|before| rollcall_core::ports::change(before, self.verdict.status()))
    }
}

/// The coordinator of one process. Cheap to clone.
pub struct Coordinator<Q, S> {
    queue: Arc<Q>,
    state: Arc<S>,
    resolver: MxResolver,
    config: Arc<EngineConfig>,
    /// Leave read results in the store (a stored campaign can be replayed from them).
    keep_results: bool,
    /// The campaign's bound on retry waits, carried by every batch (`Batch::max_wait_ms`).
    max_wait_ms: Option<u64>,
    /// Verdicts remembered between runs.
    cache: Option<Arc<CacheSetup>>,
}

/// How `Coordinator::resume` treats a campaign whose results are partly recorded already.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resume {
    /// Recorded results come out as they are; every other address is verified as usual.
    Continue,
    /// Recorded results come out; nothing else is verified (a finished or cancelled
    /// campaign read back after a restart).
    ReplayOnly,
}

impl<Q, S> Clone for Coordinator<Q, S> {
    fn clone(&self) -> Self {
        Coordinator {
            queue: self.queue.clone(),
            state: self.state.clone(),
            resolver: self.resolver.clone(),
            config: self.config.clone(),
            keep_results: self.keep_results,
            max_wait_ms: self.max_wait_ms,
            cache: self.cache.clone(),
        }
    }
}

struct Pending<P> {
    row: u64,
    text: String,
    payload: P,
    /// A parsed address (remembered for duplicates); false for rows that did not parse.
    dedupable: bool,
    duplicates: Vec<(u64, String, P)>,
    /// The address's cache key, when a cache is in use (its verdict is written back).
    cache_key: Option<String>,
    /// The status a stale cache entry held.
    previous: Option<Status>,
}

struct Route {
    site: String,
    mx: Vec<MxHost>,
}

enum DomainState {
    Resolving(Vec<BatchItem>),
    Routed(Arc<Route>),
    Final(Reason, Option<String>),
}

struct Open {
    items: Vec<BatchItem>,
    since: Instant,
}

/// A partial batch is published once the input has been quiet this long (a stream that
/// pauses, e.g. a gRPC client between chunks)...
const LINGER: Duration = Duration::from_millis(300);
/// ...or once it has waited this long while rows keep coming. Real lists are not sorted by
/// domain: publishing partial batches early would cut one domain into many small
/// transactions, and transactions, not addresses, are what a polite prober pays for.
const MAX_LINGER: Duration = Duration::from_secs(5);
const TICK: Duration = Duration::from_millis(25);
const RESULTS_PAGE: usize = 8192;
/// Batches published and not yet confirmed, at most: publishing waits for a confirm only when
/// this many are out, so the broker's confirms overlap instead of costing a round trip each.
const PUBLISH_WINDOW: usize = 256;

struct Run<'a, Q, S, P> {
    co: &'a Coordinator<Q, S>,
    campaign: CampaignId,
    output: mpsc::Sender<OutputRow<P>>,
    next_item: u64,
    /// Dedupe key of every address seen -> its item number. Item numbers are dense, so what
    /// each finished item came to lives in `done`, indexed by item number.
    dedupe: HashMap<u64, u32>,
    done: Vec<Option<Compact>>,
    pending: HashMap<ItemId, Pending<P>>,
    domains: HashMap<String, DomainState>,
    open: HashMap<String, Open>,
    resolving: usize,
    resolved_tx: mpsc::UnboundedSender<(String, Resolution)>,
    /// When the last input row arrived.
    last_row: Instant,
    cursor: u64,
    summary: Summary,
    strings: Interner,
    /// Results read before their item was (read again from the input after a restart).
    early: HashMap<ItemId, ItemResult>,
    /// Verify nothing: only recorded results come out.
    replay_only: bool,
    /// Publishes waiting for their confirm (at most `PUBLISH_WINDOW`).
    publishing: tokio::task::JoinSet<Result<(), QueueError>>,
    /// Per site: its lane count (grown when it turns out hot) and the next batch's lane.
    lanes: HashMap<String, Lanes>,
    /// Rows published so far (the denominator of a site's share).
    routed_rows: u64,
    /// When each item that came from the cache was verified (for its later duplicates).
    cached_at: HashMap<ItemId, u64>,
    /// What each item whose verdict changed since its cached one was before.
    changed_from: HashMap<ItemId, Status>,
    /// The result cache, and the verdicts waiting to be written to it.
    cache: RunCache,
    /// Rows put off for a second try.
    second_pass: second_tries::SecondPass,
}

impl<'a, Q, S, P> Run<'a, Q, S, P> {
    /// A run of `campaign` with nothing read yet.
    fn new(
        co: &'a Coordinator<Q, S>,
        campaign: CampaignId,
        output: mpsc::Sender<OutputRow<P>>,
        resolved_tx: mpsc::UnboundedSender<(String, Resolution)>,
        replay_only: bool,
    ) -> Self {
        Run {
            co,
            campaign,
            output,
            next_item: 0,
            dedupe: HashMap::new(),
            done: Vec::new(),
            pending: HashMap::new(),
            domains: HashMap::new(),
            open: HashMap::new(),
            resolving: 0,
            resolved_tx,
            last_row: Instant::now(),
            cursor: 0,
            summary: Summary::default(),
            strings: Interner::default(),
            early: HashMap::new(),
            replay_only,
            publishing: tokio::task::JoinSet::new(),
            lanes: HashMap::new(),
            routed_rows: 0,
            cached_at: HashMap::new(),
            changed_from: HashMap::new(),
            cache: RunCache::new(co.cache.clone()),
            second_pass: Default::default(),
        }
    }
}

impl<Q: WorkQueue, S: StateStore> Coordinator<Q, S> {
    pub fn new(
        queue: Arc<Q>,
        state: Arc<S>,
        resolver: MxResolver,
        config: Arc<EngineConfig>,
    ) -> Self {
        Coordinator {
            queue,
            state,
            resolver,
            config,
            keep_results: false,
            max_wait_ms: None,
            cache: None,
        }
    }

    /// This coordinator with a result cache: fresh verdicts are not verified again, new ones
    /// are written to it.
    pub fn with_cache(mut self, cache: Option<CacheSetup>) -> Self {
        self.cache = cache.map(Arc::new);
        self
    }

    /// This coordinator with the campaign's own bound on retry waits (`Some(Duration::ZERO)`:
    /// none), carried by every batch it publishes; `None` leaves it to the workers' setting.
    pub fn with_max_wait(mut self, max_wait: Option<Duration>) -> Self {
        self.max_wait_ms = max_wait.map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
        self
    }

    /// A coordinator that leaves every result in the store after reading it, so a campaign
    /// can be resumed or replayed (`resume`). Without it results are trimmed once read.
    pub fn keeping_results(mut self) -> Self {
        self.keep_results = true;
        self
    }

    /// The store this coordinator records and reads results in.
    pub fn state(&self) -> &Arc<S> {
        &self.state
    }

    /// Verifies every row of `input`, sending one `OutputRow` per input row to `output`, until
    /// the input ends and every row is out, or `stop` turns true (then it returns what is done).
    pub async fn run<P: Send>(
        &self,
        campaign: CampaignId,
        input: mpsc::Receiver<InputRow<P>>,
        output: mpsc::Sender<OutputRow<P>>,
        stop: watch::Receiver<bool>,
    ) -> Result<Summary, Error> {
        self.run_inner(campaign, input, output, stop, None).await
    }

    /// Runs `campaign` again from its whole input (the same rows in the same order as the
    /// first run, so every row gets the same item number): results already recorded in the
    /// store come out first and their addresses are not probed again; with
    /// `Resume::Continue` the rest is verified as `run` would. Items the first run had
    /// published and that are still queued are published again; the workers skip the items
    /// recorded by then, so an address is probed twice only if both copies run before
    /// either is recorded.
    ///
    /// Memory: every recorded result is read up front and held until its row comes by again.
    pub async fn resume<P: Send>(
        &self,
        campaign: CampaignId,
        input: mpsc::Receiver<InputRow<P>>,
        output: mpsc::Sender<OutputRow<P>>,
        stop: watch::Receiver<bool>,
        mode: Resume,
    ) -> Result<Summary, Error> {
        self.run_inner(campaign, input, output, stop, Some(mode))
            .await
    }

    async fn run_inner<P: Send>(
        &self,
        campaign: CampaignId,
        mut input: mpsc::Receiver<InputRow<P>>,
        output: mpsc::Sender<OutputRow<P>>,
        mut stop: watch::Receiver<bool>,
        resume: Option<Resume>,
    ) -> Result<Summary, Error> {
        let (resolved_tx, mut resolved_rx) = mpsc::unbounded_channel();
        let replay_only = resume == Some(Resume::ReplayOnly);
        let mut run = Run::new(self, campaign, output, resolved_tx, replay_only);
        if resume.is_some() {
            run.preload().await?;
        }
        let started = Instant::now();
        let mut input_done = false;
        let mut tick = tokio::time::interval(TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut rows = Vec::new();
        loop {
            let room = self
                .config
                .max_outstanding
                .saturating_sub(run.pending.len());
            // With a cache, rows are taken in batches (one lookup each); without, one at a
            // time as before.
            let take = if self.cache.is_some() {
                room.min(cache::LOOKUP_BATCH)
            } else {
                room.min(1)
            };
            tokio::select! {
                n = input.recv_many(&mut rows, take.max(1)), if !input_done && take > 0 => {
                    if n == 0 {
                        input_done = true;
                        run.flush_open(true).await?;
                    } else {
                        run.last_row = Instant::now();
                        run.ingest_many(std::mem::take(&mut rows)).await?;
                    }
                },
                Some((domain, resolution)) = resolved_rx.recv() => {
                    run.resolving -= 1;
                    run.on_resolved(domain, resolution).await?;
                }
                _ = tick.tick() => {
                    run.second_pass_due(input_done).await?;
                    run.flush_open(input_done).await?;
                    run.confirmed()?;
                    run.collect().await?;
                    run.cache.write().await;
                }
                changed = stop.changed() => {
                    if changed.is_err() || *stop.borrow() {
                        run.summary.interrupted = true;
                        break;
                    }
                }
            }
            if input_done && run.resolving == 0 && run.open.is_empty() && run.pending.is_empty() {
                // Every item has its result; a confirm may still be on its way.
                while let Some(published) = run.publishing.join_next().await {
                    run.settle_publish(published)?;
                }
                break;
            }
        }
        // Interrupted: what is not confirmed yet is given up (a resumed run publishes again
        // whatever has no result).
        run.publishing.abort_all();
        run.cache.write().await;
        run.summary.cache_errors = run.cache.errors;
        run.summary.elapsed = started.elapsed();
        Ok(run.summary)
    }
}

impl<Q: WorkQueue, S: StateStore, P: Send> Run<'_, Q, S, P> {
    fn new_item(&mut self) -> ItemId {
        self.next_item += 1;
        self.done.push(None);
        ItemId(self.next_item)
    }

    /// What a finished item came to, if it is finished.
    fn finished(&self, item: ItemId) -> Option<&Compact> {
        let index = usize::try_from(item.0).ok()?.checked_sub(1)?;
        self.done.get(index)?.as_ref()
    }

    /// Takes in rows read together: one cache lookup for all of them, then each in order.
    async fn ingest_many(&mut self, rows: Vec<InputRow<P>>) -> Result<(), Error> {
        let parsed: Vec<_> = rows.iter().map(|r| EmailAddress::parse(&r.text)).collect();
        let dedupe = &self.dedupe;
        let unseen = parsed
            .iter()
            .flatten()
            .filter(|a| !dedupe.contains_key(&a.dedupe_key()));
        let found = self.cache.look_up(unseen).await;
        for (row, parsed) in rows.into_iter().zip(parsed) {
            self.ingest(row, parsed, &found).await?;
        }
        Ok(())
    }

    async fn ingest(
        &mut self,
        row: InputRow<P>,
        parsed: Result<EmailAddress, SyntaxError>,
        found: &HashMap<String, CacheEntry>,
    ) -> Result<(), Error> {
        self.summary.rows += 1;
        metrics::gauge!("rollcall_campaign_addresses", "state" => "total")
            .set(self.summary.rows as f64);
        let address = match parsed {
            Ok(address) => address,
            Err(error) => return self.ingest_unparsed(row, &error).await,
        };
        let key = address.dedupe_key();
        if let Some(&seen) = self.dedupe.get(&key) {
            self.ingest_duplicate(row, ItemId(u64::from(seen)), &address)
                .await;
            return Ok(());
        }
        let item = self.new_item();
        // Item numbers past u32 (four billion rows in one run) are not deduplicated.
        if let Ok(number) = u32::try_from(item.0) {
            self.dedupe.insert(key, number);
        }
        let cache_key = self.cache.is_on().then(|| address.cache_key());
        let entry = cache_key.as_ref().and_then(|k| found.get(k));
        let early = self.early.remove(&item);
        if early.is_none() {
            if let Some(entry) = entry
                && self.cache.fresh(entry)
            {
                self.emit_cached(row, item, entry, &address).await;
                return Ok(());
            }
            if self.replay_only {
                return Ok(());
            }
        }
        let previous = entry.map(|e| e.verdict.status());
        self.pending.insert(
            item,
            Pending {
                row: row.row,
                text: row.text,
                payload: row.payload,
                dedupable: true,
                duplicates: Vec::new(),
                cache_key,
                previous,
            },
        );
        if let Some(result) = early {
            self.finish(result, true).await;
            return Ok(());
        }
        let domain = address.domain().as_str().to_string();
        let batch_item = BatchItem {
            item,
            address,
            attempts: 0,
            greylist_round: 0,
            waiting_since_ms: None,
            note: None,
            blocked_via: Vec::new(),
        };
        self.route(domain, batch_item).await
    }

    /// A row whose address came earlier in the run: the earlier verdict when it is known,
    /// else the row waits beside the first one.
    async fn ingest_duplicate(&mut self, row: InputRow<P>, item: ItemId, address: &EmailAddress) {
        if let Some(compact) = self.finished(item) {
            let verdict = Arc::new(expand(compact, &self.strings, address));
            let note = match self.cached_at.get(&item) {
                Some(&at) => CacheNote {
                    cached: true,
                    verified_at: Some(at),
                    previous: None,
                },
                None => CacheNote {
                    cached: false,
                    verified_at: Some(self.cache.now()),
                    previous: self.changed_from.get(&item).copied(),
                },
            };
            self.emit(row.row, row.text, row.payload, verdict, true, false, note)
                .await;
        } else if let Some(pending) = self.pending.get_mut(&item) {
            pending.duplicates.push((row.row, row.text, row.payload));
        }
    }

    /// A row whose verdict the result cache holds, fresh: out at once, nothing probed.
    async fn emit_cached(
        &mut self,
        row: InputRow<P>,
        item: ItemId,
        entry: &CacheEntry,
        address: &EmailAddress,
    ) {
        let verdict = verdict_for_row(&entry.verdict, address);
        let at = entry.verified_at;
        self.remember_compact(item, &verdict);
        self.cached_at.insert(item, at);
        let note = CacheNote {
            cached: true,
            verified_at: Some(at),
            previous: None,
        };
        self.emit(
            row.row,
            row.text,
            row.payload,
            Arc::new(verdict),
            false,
            false,
            note,
        )
        .await;
    }

    /// A row that is not an address: its syntax verdict, recorded without a probe.
    async fn ingest_unparsed(
        &mut self,
        row: InputRow<P>,
        error: &SyntaxError,
    ) -> Result<(), Error> {
        let item = self.new_item();
        let early = self.early.remove(&item);
        if early.is_none() && self.replay_only {
            return Ok(());
        }
        let verdict = Verdict::for_syntax_error(&row.text, error);
        self.pending.insert(
            item,
            Pending {
                row: row.row,
                text: row.text.clone(),
                payload: row.payload,
                dedupable: false,
                duplicates: Vec::new(),
                cache_key: None,
                previous: None,
            },
        );
        if let Some(result) = early {
            self.finish(result, true).await;
            return Ok(());
        }
        self.record(vec![ItemResult {
            item,
            address: row.text,
            verdict,
        }])
        .await
    }

    async fn route(&mut self, domain: String, item: BatchItem) -> Result<(), Error> {
        match self.domains.get_mut(&domain) {
            Some(DomainState::Resolving(waiting)) => waiting.push(item),
            Some(DomainState::Routed(_)) => self.add_to_open(domain, item).await?,
            Some(DomainState::Final(reason, detail)) => {
                let (reason, detail) = (*reason, detail.clone());
                let verdict = verdicts::without_probe(&item.address, reason, detail);
                self.record(vec![ItemResult {
                    item: item.item,
                    address: item.address.to_wire_string(),
                    verdict,
                }])
                .await?;
            }
            None => {
                self.domains
                    .insert(domain.clone(), DomainState::Resolving(vec![item]));
                self.resolving += 1;
                let resolver = self.co.resolver.clone();
                let tx = self.resolved_tx.clone();
                tokio::spawn(async move {
                    let started = Instant::now();
                    let resolution = resolver.resolve(&domain).await;
                    metrics::histogram!("rollcall_dns_lookup_duration_seconds")
                        .record(started.elapsed().as_secs_f64());
                    let _ = tx.send((domain, resolution));
                });
            }
        }
        Ok(())
    }

    async fn on_resolved(&mut self, domain: String, resolution: Resolution) -> Result<(), Error> {
        let state = match resolution {
            Resolution::Mail { hosts, .. } => {
                let names: Vec<&str> = hosts.iter().map(|h| h.name.as_str()).collect();
                let site = Site::from_mx_hosts(&names).id().to_string();
                let mx = hosts
                    .iter()
                    .map(|h| MxHost {
                        name: h.name.clone(),
                        addrs: h.addrs.clone(),
                    })
                    .collect();
                DomainState::Routed(Arc::new(Route { site, mx }))
            }
            Resolution::NullMx => DomainState::Final(Reason::NullMx, None),
            Resolution::NoMailServer => DomainState::Final(Reason::NoMailServer, None),
            Resolution::NoSuchDomain => DomainState::Final(Reason::NoSuchDomain, None),
            Resolution::ForbiddenTarget => DomainState::Final(
                Reason::ForbiddenTarget,
                Some("every MX target is in a private or special-purpose range".into()),
            ),
            // The resolver already retried; a temporary DNS failure is never undeliverable.
            Resolution::TempFail { reason } => {
                DomainState::Final(Reason::Deferred, Some(format!("dns: {reason}")))
            }
        };
        let waiting = match self.domains.insert(domain.clone(), state) {
            Some(DomainState::Resolving(waiting)) => waiting,
            _ => Vec::new(),
        };
        for item in waiting {
            self.route(domain.clone(), item).await?;
        }
        Ok(())
    }

    async fn add_to_open(&mut self, domain: String, item: BatchItem) -> Result<(), Error> {
        let open = self.open.entry(domain.clone()).or_insert_with(|| Open {
            items: Vec::new(),
            since: Instant::now(),
        });
        open.items.push(item);
        if open.items.len() >= self.co.config.batch_size.max(1) {
            self.publish(&domain).await?;
        }
        Ok(())
    }

    async fn flush_open(&mut self, all: bool) -> Result<(), Error> {
        let quiet = self.last_row.elapsed() >= LINGER;
        if !all && !quiet && self.open.values().all(|o| o.since.elapsed() < MAX_LINGER) {
            return Ok(());
        }
        let due: Vec<String> = self
            .open
            .iter()
            .filter(|(_, open)| all || quiet || open.since.elapsed() >= MAX_LINGER)
            .map(|(domain, _)| domain.clone())
            .collect();
        for domain in due {
            self.publish(&domain).await?;
        }
        Ok(())
    }

    async fn publish(&mut self, domain: &str) -> Result<(), Error> {
        let Some(open) = self.open.remove(domain) else {
            return Ok(());
        };
        let Some(DomainState::Routed(route)) = self.domains.get(domain) else {
            return Ok(());
        };
        let lane = {
            let rows = open.items.len() as u64;
            self.routed_rows += rows;
            let lanes = self.lanes.entry(route.site.clone()).or_insert_with(|| {
                let hosts: Vec<&str> = route.mx.iter().map(|mx| mx.name.as_str()).collect();
                Lanes::new(self.co.config.shaping.for_site(&route.site, &hosts).shards)
            });
            lanes.take(
                &route.site,
                rows,
                self.routed_rows,
                self.co.queue.shards(),
                self.co.config.batch_size,
            )
        };
        let batch = Batch {
            campaign: self.campaign.clone(),
            site: route.site.clone(),
            domain: domain.to_string(),
            mx: route.mx.clone(),
            items: open.items,
            max_wait_ms: self.co.max_wait_ms,
            egress: None,
            lane,
        };
        self.summary.batches += 1;
        while self.publishing.len() >= PUBLISH_WINDOW {
            if let Some(published) = self.publishing.join_next().await {
                self.settle_publish(published)?;
            }
        }
        let queue = self.co.queue.clone();
        self.publishing
            .spawn(async move { queue.publish(&batch).await });
        Ok(())
    }

    /// Settles the publishes confirmed so far; the first that failed fails the run.
    fn confirmed(&mut self) -> Result<(), Error> {
        while let Some(published) = self.publishing.try_join_next() {
            self.settle_publish(published)?;
        }
        Ok(())
    }

    fn settle_publish(
        &mut self,
        published: Result<Result<(), QueueError>, tokio::task::JoinError>,
    ) -> Result<(), Error> {
        match published {
            Ok(Ok(())) => {
                metrics::counter!("rollcall_queue_published_total").increment(1);
                Ok(())
            }
            Ok(Err(error)) => Err(error.into()),
            Err(join) => {
                Err(QueueError::Transport(format!("a publish task failed: {join}")).into())
            }
        }
    }
}
