//! The Prometheus exporter: installs the global `metrics` recorder and serves `GET /metrics`.
//!
//! Owns the exporter setup (listen address, histogram buckets), the description of every
//! rollcall metric, the zero start of the unlabelled ones and the process metrics
//! (`process_cpu_seconds_total`, `process_resident_memory_bytes`, ...). Records no rollcall
//! event itself: the engine records through the `metrics` facade, and without an installed
//! recorder those calls are no-ops.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context as _;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder};

/// How often the process metrics are sampled (a few reads of /proc on Linux).
const PROCESS_SAMPLE_EVERY: Duration = Duration::from_secs(1);

/// Unlabelled counters exported at 0 from the start, so a rate or an alert has a series
/// before the first event.
pub(crate) const ZERO_COUNTERS: [&str; 6] = [
    "rollcall_smtp_bad_sequence_total",
    "rollcall_smtp_sessions_opened_total",
    "rollcall_smtp_transactions_total",
    "rollcall_smtp_pipelined_groups_total",
    "rollcall_queue_published_total",
    "rollcall_queue_redelivered_total",
];

/// Unlabelled gauges exported at 0 from the start.
pub(crate) const ZERO_GAUGES: [&str; 4] = [
    "rollcall_smtp_sessions_active",
    "rollcall_site_circuits_open",
    "rollcall_greylist_pending",
    "rollcall_worker_batches_inflight",
];

/// Unlabelled histograms exported empty from the start. The coordinator resolves a
/// campaign's domains in one burst at its start: a histogram born in that burst would begin
/// with every lookup already counted, and a rate over it would never see them.
pub(crate) const ZERO_HISTOGRAMS: [&str; 1] = ["rollcall_dns_lookup_duration_seconds"];

/// Buckets for every `*_seconds` histogram: SMTP commands and DNS lookups take from a few
/// milliseconds to the 5-minute RFC 5321 §4.5.3.2 timeouts.
const SECONDS_BUCKETS: &[f64] = &[
    0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0,
];

/// Builder shared by [`install`] and the tests (which build a local recorder instead).
pub(crate) fn builder() -> anyhow::Result<PrometheusBuilder> {
    PrometheusBuilder::new()
        .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), SECONDS_BUCKETS)
        .context("metrics: histogram buckets")
}

/// Installs the global recorder and serves the Prometheus exposition on `listen`
/// (`GET /metrics`): every rollcall metric described, the unlabelled ones at 0, and the
/// process metrics sampled every [`PROCESS_SAMPLE_EVERY`]. Must be called from inside a tokio
/// runtime: the listener and the sampler are spawned on the current one. Fails if a recorder
/// is already installed or the address cannot be bound.
pub(crate) fn install(listen: SocketAddr) -> anyhow::Result<()> {
    builder()?
        .with_http_listener(listen)
        .install()
        .with_context(|| format!("metrics: cannot serve Prometheus metrics on {listen}"))?;
    describe();
    start_at_zero();
    spawn_process_sampler();
    tracing::info!(%listen, "serving Prometheus metrics on /metrics");
    Ok(())
}

/// Registers the unlabelled counters and gauges at 0, and the unlabelled histograms empty,
/// on the installed recorder (the exporter shows a metric only once it is registered). Call
/// it before the engine records anything: a gauge already moved would be reset.
pub(crate) fn start_at_zero() {
    for name in ZERO_COUNTERS {
        metrics::counter!(name).absolute(0);
    }
    for name in ZERO_GAUGES {
        metrics::gauge!(name).set(0.0);
    }
    for name in ZERO_HISTOGRAMS {
        // Registering is enough: the exporter renders a histogram with no sample at 0.
        let _ = metrics::histogram!(name);
    }
}

/// The process metrics collector, described and sampled once on the installed recorder.
pub(crate) fn process_collector() -> metrics_process::Collector {
    let collector = metrics_process::Collector::default();
    collector.describe();
    collector.collect();
    collector
}

/// Samples the process metrics now, then every [`PROCESS_SAMPLE_EVERY`] on a task of the
/// current tokio runtime.
fn spawn_process_sampler() {
    let collector = process_collector();
    tokio::spawn(async move {
        let mut every = tokio::time::interval(PROCESS_SAMPLE_EVERY);
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        loop {
            every.tick().await;
            collector.collect();
        }
    });
}

/// Describes every rollcall metric (help text and unit) on the installed recorder.
pub(crate) fn describe() {
    describe_verification();
    describe_egress();
    describe_sessions();
    describe_fleet();
}

/// Verdicts written and the SMTP replies and sessions behind them.
fn describe_verification() {
    use metrics::{Unit, describe_counter};
    describe_counter!(
        "rollcall_verifications_total",
        Unit::Count,
        "Output rows written by the coordinator, by status and reason"
    );
    describe_counter!(
        "rollcall_unknown_total",
        Unit::Count,
        "Unknown output rows, by provider (the provider table's names, self_hosted, none) and reason"
    );
    describe_counter!(
        "rollcall_second_pass_total",
        Unit::Count,
        "Rows unknown for a temporary reason put off for a second try, by reason"
    );
    describe_counter!(
        "rollcall_cache_errors_total",
        Unit::Count,
        "Result cache reads or writes that failed, by kind; their rows were verified all the same"
    );
    describe_counter!(
        "rollcall_smtp_replies_total",
        Unit::Count,
        "SMTP replies to MAIL and RCPT, by command and reply class (2xx/4xx/5xx)"
    );
    describe_counter!(
        "rollcall_smtp_bad_sequence_total",
        Unit::Count,
        "503 bad-sequence replies received (RFC 5321 4.2.4): a pipelining bug if not 0"
    );
    describe_counter!(
        "rollcall_smtp_sessions_opened_total",
        Unit::Count,
        "SMTP sessions opened (connected and greeted)"
    );
}

/// Counters per egress (an operator-named way out).
fn describe_egress() {
    use metrics::{Unit, describe_counter};
    describe_counter!(
        "rollcall_egress_sessions_opened_total",
        Unit::Count,
        "SMTP sessions opened, by egress (an operator-named way out)"
    );
    describe_counter!(
        "rollcall_egress_rcpts_total",
        Unit::Count,
        "RCPT replies received, by egress"
    );
    describe_counter!(
        "rollcall_egress_blocks_total",
        Unit::Count,
        "RCPT replies blocking the prober's address (5.7.x policy, blocklists), by egress"
    );
    describe_counter!(
        "rollcall_egress_deferrals_total",
        Unit::Count,
        "RCPT replies deferring (4xx: greylisting, rate limits, busy), by egress"
    );
    describe_counter!(
        "rollcall_egress_pins_lost_total",
        Unit::Count,
        "Greylist retries pinned to an egress this worker does not have (retried from another)"
    );
}

/// Open sessions, transactions, and how long SMTP steps and DNS lookups take.
fn describe_sessions() {
    use metrics::{Unit, describe_counter, describe_gauge, describe_histogram};
    describe_gauge!(
        "rollcall_smtp_sessions_active",
        Unit::Count,
        "SMTP sessions currently open"
    );
    describe_counter!(
        "rollcall_smtp_transactions_total",
        Unit::Count,
        "MAIL FROM transactions run (one per batch of RCPTs)"
    );
    describe_counter!(
        "rollcall_smtp_pipelined_groups_total",
        Unit::Count,
        "Command groups sent pipelined (RFC 2920)"
    );
    describe_histogram!(
        "rollcall_smtp_command_duration_seconds",
        Unit::Seconds,
        "Time per SMTP step: connect (TCP, greeting, EHLO, STARTTLS) and transaction"
    );
    describe_histogram!(
        "rollcall_dns_lookup_duration_seconds",
        Unit::Seconds,
        "Time to resolve a domain's mail targets (MX, then A/AAAA)"
    );
}

/// The work queue, campaigns, circuits, the greylist backlog and the workers.
fn describe_fleet() {
    use metrics::{Unit, describe_counter, describe_gauge};
    describe_counter!(
        "rollcall_queue_published_total",
        Unit::Count,
        "Batches published to the work queue: new batches from the coordinator, greylist and \
         deferral retries from workers"
    );
    describe_counter!(
        "rollcall_queue_redelivered_total",
        Unit::Count,
        "Work batches a worker received marked redelivered"
    );
    describe_gauge!(
        "rollcall_queue_depth",
        Unit::Count,
        "Batches waiting in the work queue, by shard (\"0\" .. N-1, and \"retry\" for the \
         retry ladder; sampled)"
    );
    describe_gauge!(
        "rollcall_campaign_addresses",
        Unit::Count,
        "Rows of the coordinator's latest campaign, by state: total (read) and done (written)"
    );
    describe_gauge!(
        "rollcall_site_circuits_open",
        Unit::Count,
        "Sites this worker holds off right now because every MX host's circuit is open"
    );
    describe_gauge!(
        "rollcall_greylist_pending",
        Unit::Count,
        "Addresses waiting for a greylist retry (sampled)"
    );
    describe_gauge!(
        "rollcall_worker_batches_inflight",
        Unit::Count,
        "Batches a worker is verifying right now"
    );
    describe_gauge!(
        "rollcall_worker_prefetch",
        Unit::Count,
        "Batches a worker may hold at once (the queue's prefetch times the shards it \
         consumes): the capacity rollcall_worker_batches_inflight fills"
    );
}

#[cfg(test)]
mod tests;
