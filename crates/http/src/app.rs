//! `HttpApi`, what every handler shares: the backend, the token check, the call limits shared
//! with gRPC, the settings, the running webhooks, when campaigns were created. The router is
//! `routes`'.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rollcall_api::{Admission, BearerAuth, CampaignBackend};
use rollcall_core::CampaignId;
use tokio::sync::watch;

use crate::webhook::{WebhookPolicy, Webhooks, unix_secs};

/// Settings of the HTTP API (the CLI fills them from flags).
#[derive(Debug, Clone)]
pub struct HttpSettings {
    /// Largest JSON body accepted (413 beyond).
    pub max_body_bytes: usize,
    /// Largest streamed list (a `text/csv` or `text/plain` body) accepted (413 beyond).
    pub max_upload_bytes: u64,
    /// Allow webhook URLs that resolve to loopback or private addresses (the policy of MX
    /// targets, `--allow-private`).
    pub allow_private_webhooks: bool,
    /// How webhooks are batched and retried.
    pub webhook: WebhookPolicy,
    /// How often event streams and webhooks look for new results.
    pub poll: Duration,
}

impl Default for HttpSettings {
    fn default() -> HttpSettings {
        HttpSettings {
            max_body_bytes: 16 * 1024 * 1024,
            max_upload_bytes: 128 * 1024 * 1024,
            allow_private_webhooks: false,
            webhook: WebhookPolicy::default(),
            poll: Duration::from_millis(250),
        }
    }
}

/// What every handler shares. Build one with `HttpApi::new`, serve it with `serve`.
pub struct HttpApi {
    pub(crate) backend: Arc<dyn CampaignBackend>,
    pub(crate) auth: BearerAuth,
    pub(crate) admission: Arc<Admission>,
    pub(crate) settings: HttpSettings,
    pub(crate) webhooks: Webhooks,
    pub(crate) created: Created,
    closing_tx: watch::Sender<bool>,
    pub(crate) closing: watch::Receiver<bool>,
}

impl std::fmt::Debug for HttpApi {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpApi")
            .field("auth", &self.auth)
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

impl HttpApi {
    /// The API over `backend`. With `token` set, every route but health, readiness and the
    /// document needs it (`Authorization: Bearer` or `x-reacher-secret`). `admission` is
    /// shared with the gRPC service of the same process (one rate per caller, one pool of
    /// verify slots).
    pub fn new(
        backend: Arc<dyn CampaignBackend>,
        token: Option<String>,
        admission: Arc<Admission>,
        settings: HttpSettings,
    ) -> Arc<HttpApi> {
        let (closing_tx, closing) = watch::channel(false);
        Arc::new(HttpApi {
            backend,
            auth: BearerAuth::new(token),
            admission,
            webhooks: Webhooks::new(settings.webhook),
            settings,
            created: Created::default(),
            closing_tx,
            closing,
        })
    }

    /// Starts the webhooks of the campaigns the backend picked up at start whose deliveries
    /// were not finished (call once, before serving). Returns how many.
    pub async fn resume_webhooks(&self) -> Result<usize, rollcall_api::BackendError> {
        self.webhooks
            .resume(
                &self.backend,
                self.settings.allow_private_webhooks,
                self.settings.poll,
                &self.closing,
            )
            .await
    }

    /// Ends the open event streams and webhook deliveries (on shutdown); readiness turns 503.
    pub fn close(&self) {
        self.closing_tx.send_replace(true);
    }

    pub(crate) fn is_closing(&self) -> bool {
        *self.closing.borrow()
    }
}

/// When each campaign submitted over HTTP was created (Reacher's `created_at`), the newest
/// `Created::KEEP`.
#[derive(Debug, Default)]
pub(crate) struct Created {
    inner: Mutex<(HashMap<CampaignId, u64>, VecDeque<CampaignId>)>,
}

impl Created {
    const KEEP: usize = 4096;

    pub(crate) fn insert(&self, id: CampaignId) {
        let mut guard = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let (map, order) = &mut *guard;
        map.insert(id.clone(), unix_secs());
        order.push_back(id);
        while order.len() > Self::KEEP {
            if let Some(old) = order.pop_front() {
                map.remove(&old);
            }
        }
    }

    pub(crate) fn get(&self, id: &CampaignId) -> Option<u64> {
        let guard = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        guard.0.get(id).copied()
    }
}
