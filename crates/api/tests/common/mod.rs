//! A test double of the coordinator: campaigns in memory, results landing when the test says.
//!
//! It stands in for the engine (which implements `CampaignBackend` for real) so the gRPC layer
//! is tested on its own. Verdicts follow the local part: `ok*` accepted, `nobody*` mailbox not
//! found, `catchall*` catch-all, `grey*` greylisted; entries that do not parse are
//! `invalid_syntax` at once; a repeated address is a duplicate that shares the first verdict.

#![allow(dead_code)]

pub mod pki;

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use futures_util::StreamExt;
use rollcall_api::{
    AddressChunks, BackendError, CampaignBackend, CampaignState, ProgressSnapshot, ResultRecord,
    SubmitOptions, SubmitOutcome, WatchPacing,
};
use rollcall_core::ports::{Progress, status_index};
use rollcall_core::{CampaignId, EmailAddress, Evidence, Reason, Verdict};
use tokio::net::TcpListener;
use tokio::sync::oneshot;

struct Campaign {
    options: SubmitOptions,
    state: CampaignState,
    total: u64,
    /// Rows waiting for a verdict: (row, address, duplicate).
    pending: VecDeque<(u64, String, bool)>,
    results: Vec<ResultRecord>,
    by_address: HashMap<String, Arc<Verdict>>,
}

impl Campaign {
    fn record(&mut self, row: u64, address: String, duplicate: bool) {
        let verdict = match self.by_address.get(&address) {
            Some(v) => Arc::clone(v),
            None => {
                let v = Arc::new(verdict_for(&address));
                self.by_address.insert(address, Arc::clone(&v));
                v
            }
        };
        self.results.push(ResultRecord {
            row,
            duplicate,
            verdict,
        });
    }

    fn counts(&self) -> Progress {
        let mut by_status = [0; 4];
        for r in &self.results {
            by_status[status_index(r.verdict.status())] += 1;
        }
        Progress {
            total: self.total,
            done: self.results.len() as u64,
            by_status,
        }
    }
}

/// The verdict the fake gives an address.
pub fn verdict_for(input: &str) -> Verdict {
    let address = match EmailAddress::parse(input) {
        Ok(a) => a,
        Err(e) => return Verdict::for_syntax_error(input, &e),
    };
    let local = address.local_part().to_ascii_lowercase();
    let reason = if local.starts_with("ok") {
        Reason::Accepted
    } else if local.starts_with("nobody") {
        Reason::MailboxNotFound
    } else if local.starts_with("catchall") {
        Reason::CatchAll
    } else {
        Reason::Greylisted
    };
    let mut evidence = Evidence::for_address(&address);
    evidence.mx_host = Some(format!("mx.{}", address.domain().as_str()));
    let (code, text) = match reason {
        Reason::Accepted | Reason::CatchAll => (250, "2.1.5 Ok"),
        Reason::MailboxNotFound => (550, "5.1.1 <x>: Recipient address rejected: User unknown"),
        _ => (450, "4.2.0 <x>: Recipient address rejected: Greylisted"),
    };
    evidence.set_reply(
        code,
        rollcall_core::EnhancedCode::parse_prefix(text).map(|(c, _)| c),
        text,
    );
    Verdict::new(reason, evidence)
}

/// The fake coordinator.
#[derive(Default)]
pub struct FakeCoordinator {
    campaigns: Mutex<HashMap<CampaignId, Campaign>>,
    next_id: Mutex<u64>,
    /// When set, every `progress` call lands one pending row first, so a campaign advances
    /// while a client outside the test (the Python client) watches it.
    auto_land: AtomicBool,
    /// When set, `verify_one` waits for `release_verify` (a probe still running).
    hold_verify: AtomicBool,
    /// `verify_one` calls that reached the backend.
    verify_calls: AtomicUsize,
    verify_entered: tokio::sync::Notify,
    verify_release: tokio::sync::Notify,
}

impl FakeCoordinator {
    /// Makes `verify_one` wait until `release_verify`.
    pub fn hold_verify(&self, on: bool) {
        self.hold_verify.store(on, Ordering::SeqCst);
    }

    /// Waits until a held `verify_one` call has reached the backend.
    pub async fn verify_entered(&self) {
        self.verify_entered.notified().await;
    }

    /// Lets every held `verify_one` call finish.
    pub fn release_verify(&self) {
        self.verify_release.notify_waiters();
    }

    /// How many `verify_one` calls reached the backend.
    pub fn verify_calls(&self) -> usize {
        self.verify_calls.load(Ordering::SeqCst)
    }

    /// Makes campaigns advance by one row per `progress` call.
    pub fn set_auto_land(&self, on: bool) {
        self.auto_land.store(on, Ordering::SeqCst);
    }

    /// Records the next `n` pending rows; the campaign is done when none is left.
    pub fn land(&self, id: &str, n: usize) {
        let id = CampaignId::new(id).unwrap();
        let mut campaigns = self.campaigns.lock().unwrap();
        let c = campaigns.get_mut(&id).unwrap();
        for _ in 0..n {
            let Some((row, address, duplicate)) = c.pending.pop_front() else {
                break;
            };
            c.record(row, address, duplicate);
        }
        if c.pending.is_empty() && c.state == CampaignState::Running {
            c.state = CampaignState::Done;
        }
    }

    /// How many campaigns were submitted.
    pub fn campaign_count(&self) -> usize {
        self.campaigns.lock().unwrap().len()
    }

    /// The options a campaign was submitted with.
    pub fn options(&self, id: &str) -> SubmitOptions {
        let id = CampaignId::new(id).unwrap();
        self.campaigns.lock().unwrap()[&id].options.clone()
    }

    fn snapshot(id: &CampaignId, c: &Campaign) -> ProgressSnapshot {
        ProgressSnapshot {
            campaign_id: id.clone(),
            state: c.state,
            counts: c.counts(),
            rate_per_s: if c.state == CampaignState::Running {
                5.0
            } else {
                0.0
            },
            detail: (c.state == CampaignState::Cancelled).then(|| "cancelled by a client".into()),
        }
    }
}

#[async_trait]
impl CampaignBackend for FakeCoordinator {
    async fn submit(
        &self,
        options: SubmitOptions,
        mut chunks: AddressChunks,
    ) -> Result<SubmitOutcome, BackendError> {
        let mut campaign = Campaign {
            options,
            state: CampaignState::Running,
            total: 0,
            pending: VecDeque::new(),
            results: Vec::new(),
            by_address: HashMap::new(),
        };
        let (mut accepted, mut duplicate, mut invalid) = (0, 0, 0);
        let mut seen = HashSet::new();
        let mut row = 0;
        while let Some(chunk) = chunks.next().await {
            for input in chunk? {
                match EmailAddress::parse(&input) {
                    Err(_) => {
                        invalid += 1;
                        campaign.record(row, input, false);
                    }
                    Ok(a) => {
                        let key = a.to_string().to_ascii_lowercase();
                        let dup = !seen.insert(key.clone());
                        if dup {
                            duplicate += 1;
                        } else {
                            accepted += 1;
                        }
                        campaign.pending.push_back((row, key, dup));
                    }
                }
                row += 1;
            }
        }
        campaign.total = row;
        let id = {
            let mut n = self.next_id.lock().unwrap();
            *n += 1;
            CampaignId::new(format!("c{n}")).unwrap()
        };
        self.campaigns.lock().unwrap().insert(id.clone(), campaign);
        Ok(SubmitOutcome {
            campaign_id: id,
            accepted,
            duplicate,
            invalid,
        })
    }

    async fn progress(&self, id: &CampaignId) -> Result<ProgressSnapshot, BackendError> {
        if self.auto_land.load(Ordering::SeqCst) && self.campaigns.lock().unwrap().contains_key(id)
        {
            self.land(id.as_str(), 1);
        }
        let campaigns = self.campaigns.lock().unwrap();
        let c = campaigns
            .get(id)
            .ok_or_else(|| BackendError::NotFound(format!("no campaign {id}")))?;
        Ok(Self::snapshot(id, c))
    }

    async fn results_since(
        &self,
        id: &CampaignId,
        cursor: u64,
        max: usize,
    ) -> Result<(Vec<ResultRecord>, u64), BackendError> {
        let campaigns = self.campaigns.lock().unwrap();
        let c = campaigns
            .get(id)
            .ok_or_else(|| BackendError::NotFound(format!("no campaign {id}")))?;
        let start = usize::try_from(cursor).unwrap().min(c.results.len());
        let page: Vec<_> = c.results[start..].iter().take(max).cloned().collect();
        let next = (start + page.len()) as u64;
        Ok((page, next))
    }

    async fn cancel(&self, id: &CampaignId) -> Result<ProgressSnapshot, BackendError> {
        let mut campaigns = self.campaigns.lock().unwrap();
        let c = campaigns
            .get_mut(id)
            .ok_or_else(|| BackendError::NotFound(format!("no campaign {id}")))?;
        if !c.state.is_final() {
            c.state = CampaignState::Cancelled;
            c.pending.clear();
        }
        Ok(Self::snapshot(id, c))
    }

    async fn verify_one(&self, address: &str) -> Result<Verdict, BackendError> {
        self.verify_calls.fetch_add(1, Ordering::SeqCst);
        if self.hold_verify.load(Ordering::SeqCst) {
            // Registered before the test hears of it, so its release cannot be missed.
            let released = self.verify_release.notified();
            tokio::pin!(released);
            released.as_mut().enable();
            self.verify_entered.notify_one();
            released.await;
        }
        Ok(verdict_for(address))
    }
}

/// Quick pacing so tests do not wait a second per progress event.
pub fn quick_pacing() -> WatchPacing {
    WatchPacing {
        progress_every: Duration::from_millis(100),
        poll_every: Duration::from_millis(10),
        page: 2,
        buffer: 8,
    }
}

/// A running server on 127.0.0.1:0.
pub struct TestServer {
    pub url: String,
    pub fake: Arc<FakeCoordinator>,
    stop: Option<oneshot::Sender<()>>,
    pub task: tokio::task::JoinHandle<Result<(), rollcall_api::Error>>,
}

impl TestServer {
    pub async fn start(token: Option<&str>) -> TestServer {
        TestServer::start_with(token, None, rollcall_api::CallLimits::default()).await
    }

    /// Serves over TLS; `url` is `https://127.0.0.1:PORT`.
    pub async fn start_tls(token: Option<&str>, tls: rollcall_api::ServerTls) -> TestServer {
        TestServer::start_with(token, Some(tls), rollcall_api::CallLimits::default()).await
    }

    /// A server with the given call limits.
    pub async fn start_with_limits(
        token: Option<&str>,
        limits: rollcall_api::CallLimits,
    ) -> TestServer {
        TestServer::start_with(token, None, limits).await
    }

    async fn start_with(
        token: Option<&str>,
        tls: Option<rollcall_api::ServerTls>,
        limits: rollcall_api::CallLimits,
    ) -> TestServer {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let scheme = if tls.is_some() { "https" } else { "http" };
        let url = format!("{scheme}://{}", listener.local_addr().unwrap());
        let fake = Arc::new(FakeCoordinator::default());
        let service = rollcall_api::VerifierService::new(Arc::clone(&fake))
            .with_pacing(quick_pacing())
            .with_limits(limits);
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(rollcall_api::serve_service_with_tls(
            listener,
            service,
            token.map(str::to_owned),
            tls,
            async move {
                let _ = stopped.await;
            },
        ));
        TestServer {
            url,
            fake,
            stop: Some(stop),
            task,
        }
    }

    /// Starts the graceful shutdown.
    pub fn stop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// Bounds a wait so a broken stream fails the test instead of hanging it (not a timing
/// assertion: 30 s is far beyond anything the test needs).
pub async fn within<T>(f: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(30), f)
        .await
        .expect("the server did not answer within 30 s")
}
