//! `rollcall coordinator`: the coordinator of the distributed wiring behind the gRPC API.
//! Clients submit lists (`rollcall submit`), the coordinator resolves, dedupes and publishes
//! batches to RabbitMQ, and reads back the results the workers record in Redis.
//!
//! Owns the wiring and the shutdown order only; campaigns are run by `rollcall_campaigns`, the
//! APIs by `rollcall_api` (gRPC) and `rollcall_http` (HTTP, with `--http-listen`). Campaigns are kept in Redis (records, input rows, results): a
//! restarted coordinator picks up the running ones where they were and reads the finished
//! ones back (see `rollcall_campaigns`).

use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context as _;
use rollcall_campaigns::CoordinatorBackend;
use rollcall_engine::coordinator::Coordinator;

use crate::api::server::{ApiServerFlags, HttpFlags, prepare, serve_apis};
use crate::config::EngineFlags;
use crate::run::cache::CacheReadFlags;
use crate::run::settings::verifier;
use crate::run::signals::shutdown_signal;

/// Flags of `rollcall coordinator`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The API: --listen, --token, TLS, limits (shared with `rollcall serve`).
    #[command(flatten)]
    pub api: ApiServerFlags,

    /// Also serve the HTTP API (rollcall's routes, Reacher-compatible routes, events,
    /// webhooks; docs/http-api.md) on this address, with the same token, TLS and limits.
    #[arg(long, value_name = "ADDR", env = "ROLLCALL_HTTP_LISTEN")]
    pub http_listen: Option<SocketAddr>,

    /// HTTP body limit and webhook pacing.
    #[command(flatten)]
    pub http: HttpFlags,

    /// Broker, store, prefix, shard count and metrics listener (shared with the other
    /// distributed command).
    #[command(flatten)]
    pub fleet: crate::run::distributed::DistributedFlags,

    /// The result cache, in the fleet's Redis (keys `PREFIX:{r:ADDRESS}:v`, each expiring
    /// with its entry): a fresh verdict comes out of a campaign at once, unprobed.
    #[command(flatten)]
    pub cache: CacheReadFlags,

    #[command(flatten)]
    pub engine: Box<EngineFlags>,
}

pub async fn run(args: Args) -> anyhow::Result<ExitCode> {
    // Checked before anything connects: an open API, a bad config or a wrong TLS file is a
    // usage error, not a late failure. Client certificates (mTLS with --tls-client-ca)
    // authenticate callers as a token does.
    let (settings, tls) = match prepare(&args.api, args.http_listen, &args.engine) {
        Ok(ready) => ready,
        Err(code) => return Ok(code),
    };
    args.fleet.install_metrics()?;
    let allow_private = settings.engine.allow_private_targets;
    let policy = settings.cache;
    let verifier = verifier(settings)?;

    let (state, queue) = args.fleet.connect().await?;
    // The backlog is exported here too, so it stays visible when every worker is down.
    let sampler = tokio::spawn(sample_backlog(queue.clone(), state.clone()));
    let cache = args.cache.setup(Arc::new(state.result_cache()), policy);
    let coordinator = Coordinator::new(queue.clone(), state, verifier.resolver, verifier.engine)
        .keeping_results()
        .with_cache(cache);
    let limits = args.api.backend_limits();
    let backend = Arc::new(CoordinatorBackend::new(coordinator, limits)?);
    let picked = backend
        .resume()
        .await
        .context("cannot read the stored campaigns")?;
    if picked > 0 {
        eprintln!("rollcall: picked up {picked} campaign(s) from the store");
    }
    let http = args.http_listen.map(|addr| {
        (
            addr,
            args.http
                .settings(allow_private, limits.max_submission_bytes),
        )
    });
    let served = serve_apis(
        "coordinator",
        backend.clone(),
        &args.api,
        tls,
        http,
        draining(),
    )
    .await;
    // The servers have drained: stop the campaign runs. Their batches stay on the queue, the
    // workers go on recording results, and the store still says "running": the next
    // coordinator picks them up.
    backend.stop_all("the coordinator shut down");
    sampler.abort();
    queue.close().await;
    served?;
    Ok(ExitCode::SUCCESS)
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
