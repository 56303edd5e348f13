//! The Prometheus exporter: installs the global `metrics` recorder and serves `GET /metrics`.
//!
//! Owns the exporter setup (listen address, histogram buckets) and the description of every
//! rollcall metric. Does not record anything itself: the engine records through the
//! `metrics` facade, and without an installed recorder those calls are no-ops.

use std::net::SocketAddr;

use anyhow::Context as _;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder};

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
/// (`GET /metrics`). Must be called from inside a tokio runtime: the listener is spawned on
/// the current one. Fails if a recorder is already installed or the address cannot be bound.
pub(crate) fn install(listen: SocketAddr) -> anyhow::Result<()> {
    builder()?
        .with_http_listener(listen)
        .install()
        .with_context(|| format!("metrics: cannot serve Prometheus metrics on {listen}"))?;
    describe();
    tracing::info!(%listen, "serving Prometheus metrics on /metrics");
    Ok(())
}

/// Describes every rollcall metric (help text and unit) on the installed recorder.
pub(crate) fn describe() {
    use metrics::{Unit, describe_counter, describe_gauge, describe_histogram};
    describe_counter!(
        "rollcall_verifications_total",
        Unit::Count,
        "Output rows written by the coordinator, by status and reason"
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
        "Batches waiting in the work queue, by shard (sampled)"
    );
    describe_gauge!(
        "rollcall_campaign_addresses",
        Unit::Count,
        "Rows of the coordinator's latest campaign, by state: total (read) and done (written)"
    );
    describe_counter!(
        "rollcall_site_circuits_open",
        Unit::Count,
        "Times a worker found every MX host of a site behind an open circuit and put the \
         batch off (a counter of decisions, not the number of circuits open now)"
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
}

#[cfg(test)]
mod tests;
