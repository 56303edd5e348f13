//! The API of a process that runs campaigns (`rollcall serve`, `rollcall coordinator`): gRPC on
//! `--listen` and, when asked, HTTP on `--http-listen`, with one token, one TLS setup and one
//! set of call limits (one rate per caller and one pool of verify slots, counted across both).
//! Owns the flags they share, the refusal of an open API beyond loopback, and serving both
//! until the shutdown; campaigns are `rollcall_campaigns`', the protocols the api and http
//! crates'.

use std::future::Future;
use std::net::SocketAddr;
use std::num::{NonZeroU32, NonZeroUsize};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use rollcall_api::{Admission, CampaignBackend, ServerTls};
use rollcall_campaigns::Limits;
use rollcall_http::{HttpApi, HttpSettings, WebhookPolicy};
use tokio::sync::watch;

use crate::config::{EngineFlags, Settings};
use crate::exit::EX_USAGE;
use crate::run::settings::load_settings;

/// Flags of the API server (both protocols).
#[derive(Debug, clap::Args)]
pub struct ApiServerFlags {
    /// Serve the gRPC API (rollcall.v1.Verifier) on this address.
    #[arg(
        long,
        value_name = "ADDR",
        env = "ROLLCALL_LISTEN",
        default_value = "127.0.0.1:50051"
    )]
    pub listen: SocketAddr,

    /// Bearer token every API call must carry (gRPC and HTTP; over HTTP also as
    /// `x-reacher-secret`). Without it the API is open to anyone who can reach it, so the
    /// server refuses to start without one on an address beyond loopback (see
    /// --insecure-no-auth).
    #[arg(
        long,
        value_name = "TOKEN",
        env = "ROLLCALL_TOKEN",
        hide_env_values = true
    )]
    pub token: Option<String>,

    /// TLS of the API (--tls-cert, --tls-key, --tls-client-ca), gRPC and HTTP alike.
    /// Plaintext without them.
    #[command(flatten)]
    pub tls: crate::api::tls::ServerTlsFlags,

    /// Serve the API without a token on an address beyond loopback: anyone who can reach it
    /// may submit lists and probe addresses. Only for a network you fully trust.
    #[arg(long, env = "ROLLCALL_INSECURE_NO_AUTH", value_parser = clap::builder::BoolishValueParser::new())]
    pub insecure_no_auth: bool,

    /// Most entries one campaign may hold; a longer list is refused. Every output row (its
    /// address, verdict and reply text) is kept in memory until the campaign is evicted.
    #[arg(
        long,
        value_name = "N",
        env = "ROLLCALL_MAX_ROWS",
        default_value_t = Limits::default().max_rows
    )]
    pub max_rows: u64,

    /// Finished campaigns kept for watching and listing results; the oldest beyond this are
    /// deleted.
    #[arg(
        long,
        value_name = "N",
        env = "ROLLCALL_KEEP_FINISHED",
        default_value_t = Limits::default().keep_finished
    )]
    pub keep_finished: usize,

    /// Limits on submissions, running campaigns, Verify calls and the call rate.
    #[command(flatten)]
    pub limits: crate::api::limits::ApiLimitFlags,
}

/// Flags of the HTTP API beyond its address.
#[derive(Debug, Clone, clap::Args)]
pub struct HttpFlags {
    /// Largest JSON body the HTTP API takes (413 beyond); long lists go as a streamed
    /// text/csv body, bounded by --max-submission-bytes.
    #[arg(
        long,
        value_name = "BYTES",
        env = "ROLLCALL_HTTP_MAX_BODY_BYTES",
        default_value_t = NonZeroUsize::new(HttpSettings::default().max_body_bytes).unwrap_or(NonZeroUsize::MIN)
    )]
    pub http_max_body_bytes: NonZeroUsize,

    /// Webhooks: results are batched for at most this many milliseconds.
    #[arg(
        long,
        value_name = "MS",
        env = "ROLLCALL_WEBHOOK_BATCH_MS",
        default_value_t = 1000
    )]
    pub webhook_batch_ms: u64,

    /// Webhooks: the first retry of a failed delivery waits this many milliseconds, each next
    /// one twice as long, up to --webhook-retry-max-ms.
    #[arg(
        long,
        value_name = "MS",
        env = "ROLLCALL_WEBHOOK_RETRY_FIRST_MS",
        default_value_t = 1000
    )]
    pub webhook_retry_first_ms: u64,

    /// Webhooks: the longest wait between two attempts of a delivery.
    #[arg(
        long,
        value_name = "MS",
        env = "ROLLCALL_WEBHOOK_RETRY_MAX_MS",
        default_value_t = 300_000
    )]
    pub webhook_retry_max_ms: u64,

    /// Webhooks: attempts of one delivery before it is given up (logged).
    #[arg(long, value_name = "N", env = "ROLLCALL_WEBHOOK_ATTEMPTS", default_value_t = NonZeroU32::new(12).unwrap_or(NonZeroU32::MIN))]
    pub webhook_attempts: NonZeroU32,
}

impl HttpFlags {
    /// The HTTP API's settings; webhook URLs to private addresses are allowed when MX targets
    /// are (`allow_private`), lists are bounded by the submission limit.
    pub(crate) fn settings(&self, allow_private: bool, max_upload_bytes: u64) -> HttpSettings {
        HttpSettings {
            max_body_bytes: self.http_max_body_bytes.get(),
            max_upload_bytes,
            allow_private_webhooks: allow_private,
            webhook: WebhookPolicy {
                batch_every: Duration::from_millis(self.webhook_batch_ms),
                first_retry: Duration::from_millis(self.webhook_retry_first_ms),
                max_retry: Duration::from_millis(self.webhook_retry_max_ms),
                max_attempts: self.webhook_attempts.get(),
                ..WebhookPolicy::default()
            },
            ..HttpSettings::default()
        }
    }
}

impl ApiServerFlags {
    /// The one line refusing to serve the API without a token where that would open it to
    /// more than this host (on `--listen` or `http`); `None` when serving is fine (a token, a
    /// loopback address, client certificates, or the operator's explicit
    /// `--insecure-no-auth`).
    pub(crate) fn open_api_refusal(&self, http: Option<SocketAddr>) -> Option<String> {
        let allowed = self.insecure_no_auth || self.tls.tls_client_ca.is_some();
        std::iter::once(("--listen", self.listen))
            .chain(http.map(|a| ("--http-listen", a)))
            .find_map(|(flag, addr)| open_api_refusal(flag, addr, self.token.as_deref(), allowed))
    }

    /// The backend's limits.
    pub(crate) fn backend_limits(&self) -> Limits {
        self.limits.backend(self.max_rows, self.keep_finished)
    }
}

/// What a process serving the API needs before it connects anywhere: its engine settings and
/// its TLS. An open API beyond loopback, a bad config or a wrong TLS file is one line on stderr
/// and exit 64 (the `Err`), before any connection is made.
pub(crate) fn prepare(
    api: &ApiServerFlags,
    http: Option<SocketAddr>,
    engine: &EngineFlags,
) -> Result<(Settings, Option<ServerTls>), ExitCode> {
    if let Some(refusal) = api.open_api_refusal(http) {
        crate::io::console::err_line(format_args!("rollcall: {refusal}"));
        return Err(ExitCode::from(EX_USAGE));
    }
    let settings = load_settings(engine)?;
    match api.tls.load() {
        Ok(tls) => Ok((settings, tls)),
        Err(e) => {
            crate::io::console::err_line(format_args!("rollcall: {e}"));
            Err(ExitCode::from(EX_USAGE))
        }
    }
}

/// See `ApiServerFlags::open_api_refusal`.
fn open_api_refusal(
    flag: &str,
    listen: SocketAddr,
    token: Option<&str>,
    allowed_without_token: bool,
) -> Option<String> {
    if token.is_some() || allowed_without_token || listen.ip().is_loopback() {
        return None;
    }
    Some(format!(
        "{flag} {listen} is beyond loopback and no --token (ROLLCALL_TOKEN) is set: anyone \
         who can reach it could use the API; set a token, require client certificates \
         (--tls-client-ca), listen on 127.0.0.1, or pass --insecure-no-auth \
         (ROLLCALL_INSECURE_NO_AUTH) to serve it open"
    ))
}

async fn bind(addr: SocketAddr) -> anyhow::Result<tokio::net::TcpListener> {
    tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen on {addr}"))
}

/// Serves `backend` over gRPC on `flags.listen` and, with `http` set, over HTTP, until
/// `shutdown` completes; then both drain. Prints where each listens, as `role` (`rollcall:
/// coordinator listening on ...`: scripts and tests wait for that line).
pub(crate) async fn serve_apis<B: CampaignBackend>(
    role: &str,
    backend: Arc<B>,
    flags: &ApiServerFlags,
    tls: Option<ServerTls>,
    http: Option<(SocketAddr, HttpSettings)>,
    shutdown: impl Future<Output = ()>,
) -> anyhow::Result<()> {
    let grpc_listener = bind(flags.listen).await?;
    let http_listener = match &http {
        Some((addr, _)) => Some(bind(*addr).await?),
        None => None,
    };
    let scheme = match &tls {
        Some(tls) if tls.requires_client_certs() => "TLS with client certificates",
        Some(_) => "TLS",
        None => "plaintext",
    };
    let grpc_addr = grpc_listener.local_addr()?;
    eprintln!("rollcall: {role} listening on {grpc_addr} ({scheme})");
    if let Some(listener) = &http_listener {
        let scheme = if tls.is_some() { "https" } else { "http" };
        let addr = listener.local_addr()?;
        eprintln!("rollcall: {role} HTTP API on {scheme}://{addr}");
    }
    if flags.token.is_none() && !flags.listen.ip().is_loopback() {
        tracing::warn!(listen = %flags.listen, "the API has no token and listens beyond loopback (--insecure-no-auth)");
    }

    let admission = Arc::new(Admission::new(flags.limits.calls()));
    let service = rollcall_api::VerifierService::new(backend.clone())
        .with_limits(flags.limits.calls())
        .with_admission(admission.clone());
    let (stop_tx, stop_rx) = watch::channel(false);
    let stopped = |mut rx: watch::Receiver<bool>| async move {
        // Ignored error: the sender lives until both servers are done.
        let _ = rx.wait_for(|stop| *stop).await;
    };
    let grpc = rollcall_api::serve_service_with_tls(
        grpc_listener,
        service,
        flags.token.clone(),
        tls.clone(),
        stopped(stop_rx.clone()),
    );
    let http = async {
        let (Some(listener), Some((_, settings))) = (http_listener, http) else {
            return Ok(());
        };
        let dyn_backend: Arc<dyn CampaignBackend> = backend.clone();
        let api = HttpApi::new(
            dyn_backend,
            flags.token.clone(),
            admission.clone(),
            settings,
        );
        // Campaigns picked up from the store go on delivering their webhooks.
        match api.resume_webhooks().await {
            Ok(0) => {}
            Ok(resumed) => tracing::info!(webhooks = resumed, "webhooks picked up from the store"),
            Err(error) => tracing::error!(%error, "the stored webhooks could not be resumed"),
        }
        rollcall_http::serve(listener, api, tls.clone(), stopped(stop_rx.clone())).await
    };
    let signal = async {
        shutdown.await;
        stop_tx.send_replace(true);
    };
    let (grpc, http, ()) = tokio::join!(grpc, http, signal);
    grpc.context("the gRPC API server failed")?;
    http.context("the HTTP API server failed")?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_open_api_beyond_loopback_is_refused_unless_asked_for() {
        let any: SocketAddr = "0.0.0.0:50051".parse().unwrap();
        let any6: SocketAddr = "[::]:50051".parse().unwrap();
        let local: SocketAddr = "127.0.0.1:50051".parse().unwrap();
        let local6: SocketAddr = "[::1]:50051".parse().unwrap();
        for open in [any, any6] {
            let refusal = open_api_refusal("--listen", open, None, false).unwrap();
            assert!(refusal.contains("--token") && refusal.contains("--insecure-no-auth"));
            assert!(!refusal.contains('\n'), "one line: {refusal}");
            assert_eq!(open_api_refusal("--listen", open, Some("t0k"), false), None);
            assert_eq!(open_api_refusal("--listen", open, None, true), None);
        }
        assert_eq!(open_api_refusal("--listen", local, None, false), None);
        assert_eq!(open_api_refusal("--listen", local6, None, false), None);
        let http = open_api_refusal("--http-listen", any, None, false).unwrap();
        assert!(http.starts_with("--http-listen 0.0.0.0"), "{http}");
    }
}
