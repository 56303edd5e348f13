//! `MemoryState`: the embedded wiring's `StateStore`, one process's maps behind a mutex. Rate
//! limits use `governor`'s keyed GCRA; the rest mirrors what the Redis scripts do, so both
//! wirings behave the same.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime};

use async_trait::async_trait;
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

use super::state::status_index;
use super::{
    BackoffPolicy, CampaignRecord, CircuitDecision, GREYLIST_LEASE, GreylistEntry, ItemResult,
    Lease, Progress, RateDecision, RateLimit, StateStore, StoreError, WebhookState,
};
use crate::{CampaignId, ItemId};

/// In-process shared state. Cloning shares it.
#[derive(Clone, Default)]
pub struct MemoryState {
    inner: Arc<Mutex<Inner>>,
    limiters: Arc<Mutex<HashMap<RateLimit, Arc<DefaultKeyedRateLimiter<String>>>>>,
}

#[derive(Default)]
struct Inner {
    leases: HashMap<String, Vec<(String, Instant)>>,
    next_token: u64,
    circuits: HashMap<String, Circuit>,
    catch_all: HashMap<String, (bool, Instant)>,
    greylist: BTreeMap<(SystemTime, u64), GreylistEntry>,
    /// When each entry of `greylist` (by its sequence number) is due.
    greylist_due: HashMap<u64, SystemTime>,
    greylist_seq: u64,
    campaigns: HashMap<CampaignId, Campaign>,
}

#[derive(Default)]
struct Circuit {
    consecutive_failures: u32,
    openings: u32,
    open_until: Option<Instant>,
    probing: bool,
}

#[derive(Default)]
struct Campaign {
    total: u64,
    /// Item ids are dense: one bit each (a million items cost 125 KB).
    recorded: Vec<u64>,
    done: u64,
    by_status: [u64; 4],
    /// Results not yet trimmed; `log_base` is the cursor of the first one.
    log: VecDeque<ItemResult>,
    log_base: u64,
    /// The campaign's record, once saved.
    record: Option<CampaignRecord>,
    input: Vec<String>,
    webhook: Option<WebhookState>,
}

impl Campaign {
    /// Marks `item` recorded; false when it already was.
    fn mark(&mut self, item: u64) -> bool {
        let (word, bit) = ((item / 64) as usize, 1u64 << (item % 64));
        if self.recorded.len() <= word {
            self.recorded.resize(word + 1, 0);
        }
        let fresh = self.recorded[word] & bit == 0;
        if fresh {
            self.recorded[word] |= bit;
            self.done += 1;
        }
        fresh
    }

    fn is_recorded(&self, item: u64) -> bool {
        let (word, bit) = ((item / 64) as usize, 1u64 << (item % 64));
        self.recorded.get(word).is_some_and(|w| w & bit != 0)
    }
}

impl MemoryState {
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A poisoned lock means a panic elsewhere already failed the run; the maps are still
        // consistent (every mutation is a single step), so keep going.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn limiter(&self, limit: RateLimit) -> Arc<DefaultKeyedRateLimiter<String>> {
        let mut limiters = self.limiters.lock().unwrap_or_else(|p| p.into_inner());
        limiters
            .entry(limit)
            .or_insert_with(|| {
                let burst = NonZeroU32::new(limit.burst.max(1)).unwrap_or(NonZeroU32::MIN);
                let quota = Quota::with_period(limit.interval())
                    .unwrap_or_else(|| Quota::per_second(NonZeroU32::MIN))
                    .allow_burst(burst);
                Arc::new(RateLimiter::keyed(quota))
            })
            .clone()
    }
}

#[async_trait]
impl StateStore for MemoryState {
    async fn rate_take(
        &self,
        key: &str,
        limit: RateLimit,
        cells: u32,
    ) -> Result<RateDecision, StoreError> {
        limit.check_take(cells)?;
        let limiter = self.limiter(limit);
        let cells = NonZeroU32::new(cells).unwrap_or(NonZeroU32::MIN);
        let key = key.to_string();
        match limiter.check_key_n(&key, cells) {
            Ok(Ok(())) => Ok(RateDecision::Granted),
            Ok(Err(not_until)) => Ok(RateDecision::Wait(
                not_until.wait_time_from(DefaultClock::default().now()),
            )),
            Err(insufficient) => Err(StoreError::Data(format!(
                "asked for more cells than the burst allows: {insufficient}"
            ))),
        }
    }

    async fn lease_acquire(
        &self,
        site: &str,
        holder: &str,
        cap: u32,
        ttl: Duration,
    ) -> Result<Option<Lease>, StoreError> {
        let now = Instant::now();
        let mut inner = self.lock();
        inner.next_token += 1;
        let token = format!("{holder}:{}", inner.next_token);
        let held = inner.leases.entry(site.to_string()).or_default();
        held.retain(|(_, until)| *until > now);
        if held.len() >= cap as usize {
            return Ok(None);
        }
        held.push((token.clone(), now + ttl));
        Ok(Some(Lease {
            site: site.to_string(),
            token,
        }))
    }

    async fn lease_renew(&self, lease: &Lease, ttl: Duration) -> Result<bool, StoreError> {
        let now = Instant::now();
        let mut inner = self.lock();
        let Some(held) = inner.leases.get_mut(&lease.site) else {
            return Ok(false);
        };
        match held
            .iter_mut()
            .find(|(token, until)| *token == lease.token && *until > now)
        {
            Some(entry) => {
                entry.1 = now + ttl;
                Ok(true)
            }
            None => Ok(false),
        }
    }

    async fn lease_release(&self, lease: &Lease) -> Result<(), StoreError> {
        let mut inner = self.lock();
        if let Some(held) = inner.leases.get_mut(&lease.site) {
            held.retain(|(token, _)| *token != lease.token);
        }
        Ok(())
    }

    async fn lease_count(&self, site: &str) -> Result<u32, StoreError> {
        let now = Instant::now();
        let inner = self.lock();
        let live = inner.leases.get(site).map_or(0, |held| {
            held.iter().filter(|(_, until)| *until > now).count()
        });
        Ok(u32::try_from(live).unwrap_or(u32::MAX))
    }

    async fn circuit_check(&self, host: &str) -> Result<CircuitDecision, StoreError> {
        let now = Instant::now();
        let mut inner = self.lock();
        let Some(circuit) = inner.circuits.get_mut(host) else {
            return Ok(CircuitDecision::Closed);
        };
        match circuit.open_until {
            None => Ok(CircuitDecision::Closed),
            Some(until) if until > now => Ok(CircuitDecision::Open {
                retry_after: until - now,
            }),
            Some(_) if circuit.probing => Ok(CircuitDecision::Open {
                retry_after: Duration::from_secs(1),
            }),
            Some(_) => {
                circuit.probing = true;
                Ok(CircuitDecision::HalfOpenProbe)
            }
        }
    }

    async fn circuit_report(
        &self,
        host: &str,
        success: bool,
        policy: &BackoffPolicy,
    ) -> Result<(), StoreError> {
        let now = Instant::now();
        let mut inner = self.lock();
        let circuit = inner.circuits.entry(host.to_string()).or_default();
        if success {
            *circuit = Circuit::default();
            return Ok(());
        }
        circuit.consecutive_failures += 1;
        let was_probe = circuit.probing;
        circuit.probing = false;
        if was_probe || circuit.consecutive_failures >= policy.failures_to_open {
            circuit.openings += 1;
            circuit.open_until = Some(now + policy.open_for(circuit.openings));
        }
        Ok(())
    }

    async fn catch_all_get(&self, domain: &str) -> Result<Option<bool>, StoreError> {
        let now = Instant::now();
        let inner = self.lock();
        Ok(inner
            .catch_all
            .get(domain)
            .filter(|(_, until)| *until > now)
            .map(|(catch_all, _)| *catch_all))
    }

    async fn catch_all_put(
        &self,
        domain: &str,
        catch_all: bool,
        ttl: Duration,
    ) -> Result<(), StoreError> {
        let mut inner = self.lock();
        inner
            .catch_all
            .insert(domain.to_string(), (catch_all, Instant::now() + ttl));
        Ok(())
    }

    async fn greylist_schedule(
        &self,
        entry: &GreylistEntry,
        due: SystemTime,
    ) -> Result<(), StoreError> {
        let mut inner = self.lock();
        inner.greylist_seq += 1;
        let seq = inner.greylist_seq;
        let mut entry = entry.clone();
        entry.id = None;
        inner.greylist.insert((due, seq), entry);
        inner.greylist_due.insert(seq, due);
        Ok(())
    }

    async fn greylist_take_due(
        &self,
        now: SystemTime,
        max: usize,
    ) -> Result<Vec<GreylistEntry>, StoreError> {
        let mut inner = self.lock();
        let due: Vec<(SystemTime, u64)> = inner
            .greylist
            .range(..=(now, u64::MAX))
            .take(max)
            .map(|(key, _)| *key)
            .collect();
        let leased = now + GREYLIST_LEASE;
        let mut taken = Vec::with_capacity(due.len());
        for key in due {
            if let Some(entry) = inner.greylist.remove(&key) {
                inner.greylist_due.insert(key.1, leased);
                let mut out = entry.clone();
                out.id = Some(key.1.to_string());
                inner.greylist.insert((leased, key.1), entry);
                taken.push(out);
            }
        }
        Ok(taken)
    }

    async fn greylist_done(&self, entries: &[GreylistEntry]) -> Result<(), StoreError> {
        let mut inner = self.lock();
        for seq in entries
            .iter()
            .filter_map(|e| e.id.as_deref()?.parse::<u64>().ok())
        {
            if let Some(due) = inner.greylist_due.remove(&seq) {
                inner.greylist.remove(&(due, seq));
            }
        }
        Ok(())
    }

    async fn greylist_pending(&self) -> Result<u64, StoreError> {
        Ok(self.lock().greylist.len() as u64)
    }

    async fn campaign_add_total(&self, campaign: &CampaignId, n: u64) -> Result<(), StoreError> {
        self.lock()
            .campaigns
            .entry(campaign.clone())
            .or_default()
            .total += n;
        Ok(())
    }

    async fn record_results(
        &self,
        campaign: &CampaignId,
        results: Vec<ItemResult>,
    ) -> Result<usize, StoreError> {
        let mut inner = self.lock();
        let campaign = inner.campaigns.entry(campaign.clone()).or_default();
        let mut new = 0;
        for result in results {
            if campaign.mark(result.item.0) {
                campaign.by_status[status_index(result.verdict.status())] += 1;
                campaign.log.push_back(result);
                new += 1;
            }
        }
        Ok(new)
    }

    async fn results_since(
        &self,
        campaign: &CampaignId,
        cursor: u64,
        max: usize,
    ) -> Result<(Vec<ItemResult>, u64), StoreError> {
        let inner = self.lock();
        let Some(campaign) = inner.campaigns.get(campaign) else {
            return Ok((Vec::new(), cursor));
        };
        let start = cursor.saturating_sub(campaign.log_base) as usize;
        let out: Vec<ItemResult> = campaign.log.iter().skip(start).take(max).cloned().collect();
        let next = campaign.log_base + (start + out.len()) as u64;
        Ok((out, next.max(cursor)))
    }

    async fn results_trim(&self, campaign: &CampaignId, cursor: u64) -> Result<(), StoreError> {
        let mut inner = self.lock();
        if let Some(campaign) = inner.campaigns.get_mut(campaign) {
            while campaign.log_base < cursor && campaign.log.pop_front().is_some() {
                campaign.log_base += 1;
            }
        }
        Ok(())
    }

    async fn progress(&self, campaign: &CampaignId) -> Result<Progress, StoreError> {
        let inner = self.lock();
        Ok(inner
            .campaigns
            .get(campaign)
            .map(|c| Progress {
                total: c.total,
                done: c.done,
                by_status: c.by_status,
            })
            .unwrap_or_default())
    }

    async fn results_recorded(
        &self,
        campaign: &CampaignId,
        items: &[ItemId],
    ) -> Result<Vec<bool>, StoreError> {
        let inner = self.lock();
        let campaign = inner.campaigns.get(campaign);
        Ok(items
            .iter()
            .map(|item| campaign.is_some_and(|c| c.is_recorded(item.0)))
            .collect())
    }

    async fn campaign_save(&self, record: &CampaignRecord) -> Result<(), StoreError> {
        self.lock()
            .campaigns
            .entry(record.id.clone())
            .or_default()
            .record = Some(record.clone());
        Ok(())
    }

    async fn campaign_list(&self) -> Result<Vec<CampaignRecord>, StoreError> {
        let inner = self.lock();
        let mut records: Vec<CampaignRecord> = inner
            .campaigns
            .values()
            .filter_map(|c| c.record.clone())
            .collect();
        records.sort_by(|a, b| (a.created_ms, &a.id).cmp(&(b.created_ms, &b.id)));
        Ok(records)
    }

    async fn campaign_append_input(
        &self,
        campaign: &CampaignId,
        first: u64,
        rows: &[String],
    ) -> Result<(), StoreError> {
        let mut inner = self.lock();
        let input = &mut inner.campaigns.entry(campaign.clone()).or_default().input;
        let stored = input.len() as u64;
        if first > stored {
            return Err(StoreError::Data(format!(
                "input rows from {first} would leave a gap after the {stored} stored"
            )));
        }
        let skip = usize::try_from(stored - first).unwrap_or(usize::MAX);
        input.extend(rows.iter().skip(skip).cloned());
        Ok(())
    }

    async fn campaign_input(
        &self,
        campaign: &CampaignId,
        from: u64,
        max: usize,
    ) -> Result<Vec<String>, StoreError> {
        let inner = self.lock();
        let Some(campaign) = inner.campaigns.get(campaign) else {
            return Ok(Vec::new());
        };
        let start = usize::try_from(from).unwrap_or(usize::MAX);
        Ok(campaign
            .input
            .iter()
            .skip(start)
            .take(max)
            .cloned()
            .collect())
    }

    async fn webhook_save(
        &self,
        campaign: &CampaignId,
        state: &WebhookState,
    ) -> Result<(), StoreError> {
        self.lock()
            .campaigns
            .entry(campaign.clone())
            .or_default()
            .webhook = Some(state.clone());
        Ok(())
    }

    async fn webhook_load(
        &self,
        campaign: &CampaignId,
    ) -> Result<Option<WebhookState>, StoreError> {
        Ok(self
            .lock()
            .campaigns
            .get(campaign)
            .and_then(|c| c.webhook.clone()))
    }

    async fn campaign_delete(&self, campaign: &CampaignId) -> Result<(), StoreError> {
        self.lock().campaigns.remove(campaign);
        Ok(())
    }
}
