//! `rollcall serve`: one process, no broker and no store: the embedded engine (coordinator and
//! worker over the in-memory queue and state) behind the gRPC API and the HTTP API
//! (docs/http-api.md), with the coordinator's token, TLS and limits. Campaigns live in this
//! process's memory: a restart forgets them (the distributed wiring keeps them in Redis).
//!
//! Owns the wiring and the shutdown order only: campaigns are `rollcall_campaigns`', the
//! engine `rollcall_engine`'s, the servers `api::server`'s.

use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;

use rollcall_campaigns::CoordinatorBackend;
use rollcall_core::ports::{MemoryQueue, MemoryState};
use rollcall_engine::coordinator::Coordinator;
use rollcall_engine::worker::Worker;
use tokio::sync::watch;

use crate::api::server::{ApiServerFlags, HttpFlags, prepare, serve_apis};
use crate::config::EngineFlags;
use crate::run::cache::CacheFlags;
use crate::run::settings::verifier;
use crate::run::signals::shutdown_signal;

/// Flags of `rollcall serve`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The API: --listen (gRPC), --token, TLS, limits (shared with `rollcall coordinator`).
    #[command(flatten)]
    pub api: ApiServerFlags,

    /// Serve the HTTP API on this address (port 0: a free port, printed at start).
    #[arg(
        long,
        value_name = "ADDR",
        env = "ROLLCALL_HTTP_LISTEN",
        default_value = "127.0.0.1:8080"
    )]
    pub http_listen: SocketAddr,

    /// HTTP body limit and webhook pacing.
    #[command(flatten)]
    pub http: HttpFlags,

    /// Serve Prometheus metrics on http://ADDR/metrics (apart from the APIs).
    #[arg(long, value_name = "ADDR", env = "ROLLCALL_METRICS_LISTEN")]
    pub metrics_listen: Option<SocketAddr>,

    /// The result cache, a SQLite file as `verify`'s: a fresh verdict comes out of a campaign
    /// or a verify call at once, unprobed (`--no-cache` turns it off).
    #[command(flatten)]
    pub cache: CacheFlags,

    #[command(flatten)]
    pub engine: Box<EngineFlags>,
}

pub async fn run(args: Args) -> anyhow::Result<ExitCode> {
    // Checked before anything connects: an open API, a bad config or a wrong TLS file is a
    // usage error, not a late failure.
    let (settings, tls) = match prepare(&args.api, Some(args.http_listen), &args.engine) {
        Ok(ready) => ready,
        Err(code) => return Ok(code),
    };
    if let Some(listen) = args.metrics_listen {
        crate::metrics::install(listen)?;
    }
    let allow_private = settings.engine.allow_private_targets;
    let cache = match args.cache.open(settings.cache).await {
        Ok(cache) => cache,
        Err(failure) => return failure.exit(),
    };
    let verifier = verifier(settings)?;

    let queue = Arc::new(MemoryQueue::new());
    let state = Arc::new(MemoryState::new());
    let worker = Worker {
        id: "serve".to_string(),
        queue: queue.clone(),
        state: state.clone(),
        connector: verifier.connector,
        config: verifier.engine.clone(),
        metrics: verifier.metrics,
    };
    let (stop_worker, worker_stop) = watch::channel(false);
    let worker = tokio::spawn(async move { worker.run(worker_stop).await });
    let coordinator = Coordinator::new(queue.clone(), state, verifier.resolver, verifier.engine)
        .keeping_results()
        .with_cache(cache);
    let limits = args.api.backend_limits();
    let backend = Arc::new(CoordinatorBackend::new(coordinator, limits)?);
    let http = args
        .http
        .settings(allow_private, limits.max_submission_bytes);
    let served = serve_apis(
        "serve",
        backend.clone(),
        &args.api,
        tls,
        Some((args.http_listen, http)),
        draining(),
    )
    .await;
    backend.stop_all("the server shut down");
    stop_worker.send_replace(true);
    queue.close();
    match worker.await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => tracing::error!(error = %e, "the worker failed"),
        Err(join) => tracing::error!(%join, "the worker task failed"),
    }
    served?;
    Ok(ExitCode::SUCCESS)
}

/// Completes on SIGTERM or SIGINT (Ctrl-C).
async fn draining() {
    shutdown_signal().await;
    tracing::info!("shutting down: draining the APIs");
}
