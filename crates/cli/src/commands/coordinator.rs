//! `rollcall coordinator`: the coordinator of the distributed wiring behind the gRPC API.
//! Clients submit lists (`rollcall submit`), the coordinator resolves, dedupes and publishes
//! batches to RabbitMQ, and reads back the results the workers record in Redis.
//!
//! Owns the wiring and the shutdown order only; campaigns are run by `rollcall_campaigns`, the
//! API by `rollcall_api`. Campaigns are kept in Redis (records, input rows, results): a
//! restarted coordinator picks up the running ones where they were and reads the finished
//! ones back (see `rollcall_campaigns`).

use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context as _;
use rollcall_campaigns::{CoordinatorBackend, Limits};
use rollcall_engine::coordinator::Coordinator;

use crate::config::EngineFlags;
use crate::exit::EX_USAGE;
use crate::run::cache::CacheReadFlags;
use crate::run::settings::{load_settings, verifier};
use crate::run::signals::shutdown_signal;

/// Flags of `rollcall coordinator`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Serve the gRPC API (rollcall.v1.Verifier) on this address.
    #[arg(
        long,
        value_name = "ADDR",
        env = "ROLLCALL_LISTEN",
        default_value = "127.0.0.1:50051"
    )]
    pub listen: SocketAddr,

    /// Broker, store, prefix, shard count and metrics listener (shared with the other
    /// distributed command).
    #[command(flatten)]
    pub fleet: crate::run::distributed::DistributedFlags,

    /// Bearer token every API call must carry. Without it the API is open to anyone who can
    /// reach `--listen`, so the coordinator refuses to start without one on an address beyond
    /// loopback (see --insecure-no-auth).
    #[arg(
        long,
        value_name = "TOKEN",
        env = "ROLLCALL_TOKEN",
        hide_env_values = true
    )]
    pub token: Option<String>,

    /// TLS of the API (--tls-cert, --tls-key, --tls-client-ca). Plaintext without them.
    #[command(flatten)]
    pub tls: crate::api::tls::ServerTlsFlags,

    /// Serve the API without a token on an address beyond loopback: anyone who can reach
    /// `--listen` may submit lists and probe addresses. Only for a network you fully trust.
    #[arg(long, env = "ROLLCALL_INSECURE_NO_AUTH")]
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

    /// Finished campaigns kept (results in memory and in Redis) for watching and listing
    /// results; the oldest beyond this are deleted.
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

    /// The result cache, in the fleet's Redis (keys `PREFIX:{r:ADDRESS}:v`, each expiring
    /// with its entry): a fresh verdict comes out of a campaign at once, unprobed.
    #[command(flatten)]
    pub cache: CacheReadFlags,

    #[command(flatten)]
    pub engine: Box<EngineFlags>,
}

pub async fn run(args: Args) -> anyhow::Result<ExitCode> {
    // Checked before anything connects: an open API is a configuration error, not a warning.
    // Client certificates (mTLS with --tls-client-ca) authenticate callers as a token does.
    let authenticated = args.insecure_no_auth || args.tls.tls_client_ca.is_some();
    if let Some(refusal) = open_api_refusal(args.listen, args.token.as_deref(), authenticated) {
        crate::io::console::err_line(format_args!("rollcall: {refusal}"));
        return Ok(ExitCode::from(EX_USAGE));
    }
    let settings = match load_settings(&args.engine) {
        Ok(settings) => settings,
        Err(code) => return Ok(code),
    };
    // Before any connection is made: a wrong TLS file is a usage error, not a late failure.
    let tls = match args.tls.load() {
        Ok(tls) => tls,
        Err(e) => {
            crate::io::console::err_line(format_args!("rollcall: {e}"));
            return Ok(ExitCode::from(EX_USAGE));
        }
    };
    args.fleet.install_metrics()?;
    let policy = settings.cache;
    let verifier = verifier(settings)?;
    if args.token.is_none() && !args.listen.ip().is_loopback() {
        tracing::warn!(listen = %args.listen, "the API has no token and listens beyond loopback (--insecure-no-auth)");
    }

    let (state, queue) = args.fleet.connect().await?;
    // The backlog is exported here too, so it stays visible when every worker is down.
    let sampler = tokio::spawn(sample_backlog(queue.clone(), state.clone()));
    let cache = args.cache.setup(Arc::new(state.result_cache()), policy);
    let coordinator = Coordinator::new(queue.clone(), state, verifier.resolver, verifier.engine)
        .keeping_results()
        .with_cache(cache);
    let limits = args.limits.backend(args.max_rows, args.keep_finished);
    let backend = Arc::new(CoordinatorBackend::new(coordinator, limits)?);
    let picked = backend
        .resume()
        .await
        .context("cannot read the stored campaigns")?;
    if picked > 0 {
        eprintln!("rollcall: picked up {picked} campaign(s) from the store");
    }
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    let scheme = match &tls {
        Some(tls) if tls.requires_client_certs() => "TLS with client certificates",
        Some(_) => "TLS",
        None => "plaintext",
    };
    eprintln!(
        "rollcall: coordinator listening on {} ({scheme})",
        args.listen
    );

    let service =
        rollcall_api::VerifierService::new(backend.clone()).with_limits(args.limits.calls());
    let served =
        rollcall_api::serve_service_with_tls(listener, service, args.token, tls, draining()).await;
    // The server has drained: stop the campaign runs. Their batches stay on the queue, the
    // workers go on recording results, and the store still says "running": the next
    // coordinator picks them up.
    backend.stop_all("the coordinator shut down");
    sampler.abort();
    queue.close().await;
    served.context("the API server failed")?;
    Ok(ExitCode::SUCCESS)
}

/// The one line refusing to serve the API on `listen` without a token, when that would open it
/// to more than this host; `None` when serving is fine (a token, a loopback address, or the
/// operator's explicit `--insecure-no-auth`).
fn open_api_refusal(
    listen: SocketAddr,
    token: Option<&str>,
    allowed_without_token: bool,
) -> Option<String> {
    if token.is_some() || allowed_without_token || listen.ip().is_loopback() {
        return None;
    }
    Some(format!(
        "--listen {listen} is beyond loopback and no --token (ROLLCALL_TOKEN) is set: anyone \
         who can reach it could use the API; set a token, require client certificates \
         (--tls-client-ca), listen on 127.0.0.1, or pass --insecure-no-auth \
         (ROLLCALL_INSECURE_NO_AUTH) to serve it open"
    ))
}

/// Exports the queue depth per shard and the greylist backlog every second.
async fn sample_backlog(
    queue: Arc<rollcall_amqp::AmqpQueue>,
    state: Arc<rollcall_redis::RedisState>,
) {
    let mut every = tokio::time::interval(std::time::Duration::from_secs(1));
    loop {
        every.tick().await;
        rollcall_engine::worker::export_backlog(queue.as_ref(), state.as_ref()).await;
    }
}

/// Completes on SIGTERM or SIGINT (Ctrl-C), and says the API is draining.
async fn draining() {
    shutdown_signal().await;
    tracing::info!("shutting down: draining the API");
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
            let refusal = open_api_refusal(open, None, false).unwrap();
            assert!(refusal.contains("--token") && refusal.contains("--insecure-no-auth"));
            assert!(!refusal.contains('\n'), "one line: {refusal}");
            assert_eq!(open_api_refusal(open, Some("t0k"), false), None);
            assert_eq!(open_api_refusal(open, None, true), None);
        }
        assert_eq!(open_api_refusal(local, None, false), None);
        assert_eq!(open_api_refusal(local6, None, false), None);
    }
}
