//! `rollcall coordinator`: the coordinator of the distributed wiring behind the gRPC API.
//! Clients submit lists (`rollcall submit`), the coordinator resolves, dedupes and publishes
//! batches to RabbitMQ, and reads back the results the workers record in Redis.
//!
//! Owns the wiring and the shutdown order only; campaigns are run by `rollcall_service`, the
//! API by `rollcall_api`. Campaigns are kept in Redis (records, input rows, results): a
//! restarted coordinator picks up the running ones where they were and reads the finished
//! ones back (see `rollcall_service`).

use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context as _;
use rollcall_engine::coordinator::Coordinator;
use rollcall_service::{CoordinatorBackend, Limits};

use crate::config::EngineFlags;
use crate::verify::{load_settings, verifier};

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
    pub fleet: crate::fleet::FleetFlags,

    /// Bearer token every API call must carry. Without it the API is open to anyone who can
    /// reach `--listen`.
    #[arg(
        long,
        value_name = "TOKEN",
        env = "ROLLCALL_TOKEN",
        hide_env_values = true
    )]
    pub token: Option<String>,

    /// TLS of the API (--tls-cert, --tls-key, --tls-client-ca). Plaintext without them.
    #[command(flatten)]
    pub tls: crate::api_tls::ServerTlsFlags,

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

    #[command(flatten)]
    pub engine: Box<EngineFlags>,
}

pub async fn run(args: Args) -> anyhow::Result<ExitCode> {
    let settings = match load_settings(&args.engine) {
        Ok(settings) => settings,
        Err(code) => return Ok(code),
    };
    // Before any connection is made: a wrong TLS file is a usage error, not a late failure.
    let tls = match args.tls.load() {
        Ok(tls) => tls,
        Err(e) => {
            crate::console::err_line(format_args!("rollcall: {e}"));
            return Ok(ExitCode::from(crate::config::EX_USAGE));
        }
    };
    args.fleet.install_metrics()?;
    let verifier = verifier(settings)?;
    if args.token.is_none() && !args.listen.ip().is_loopback() {
        tracing::warn!(listen = %args.listen, "the API has no token and listens beyond loopback");
    }

    let (state, queue) = args.fleet.connect().await?;
    // The backlog is exported here too, so it stays visible when every worker is down.
    let sampler = tokio::spawn(sample_backlog(queue.clone(), state.clone()));
    let coordinator = Coordinator::new(queue.clone(), state, verifier.resolver, verifier.engine)
        .keeping_results();
    let limits = Limits {
        max_rows: args.max_rows,
        keep_finished: args.keep_finished,
    };
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

    let served = rollcall_api::serve_with_tls(
        listener,
        backend.clone(),
        args.token,
        tls,
        shutdown_signal(),
    )
    .await;
    // The server has drained: stop the campaign runs. Their batches stay on the queue, the
    // workers go on recording results, and the store still says "running": the next
    // coordinator picks them up.
    backend.stop_all("the coordinator shut down");
    sampler.abort();
    queue.close().await;
    served.context("the API server failed")?;
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

/// Completes on SIGTERM or SIGINT (Ctrl-C).
async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let term = async {
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                term.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = term => {}
        _ = crate::verify::ctrl_c() => {}
    }
    tracing::info!("shutting down: draining the API");
}
