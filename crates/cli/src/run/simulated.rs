//! Verifying a simulated fleet and judging the result: what `rollcall demo` and `rollcall
//! bench` share. Starts the fleet in this process, points the embedded engine at it (its DNS
//! server, its SMTP port, private targets allowed), compares every output row with the fleet's
//! ground truth, reads the fleet's strictness counters, and computes the throughput bound of
//! `docs/BENCHMARKS.md`.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use rollcall_core::{Reason, Status};
use rollcall_dns::{MxResolver, Resolution, ResolverConfig};
use rollcall_engine::WorkerMetrics;
use rollcall_engine::config::EngineConfig;
use rollcall_engine::coordinator::{InputRow, OutputRow};
use rollcall_engine::summary::Summary;
use rollcall_sim::{Fleet, FleetSpec, SimOptions};
use serde::Serialize;
use tokio::sync::mpsc;

use crate::io::output::RowSink;
use crate::io::progress::{Progress, group};
use crate::io::rows::Record;
use crate::run::embedded::{RowOrder, run_verification};
use crate::run::settings::Verifier;
use crate::run::signals::ctrl_c;

/// Rows the demo adds to the fleet's list to show that bad input is a verdict, not a crash.
const BAD_ROWS: [&str; 3] = [
    "not-an-address",
    "two@@at.test",
    "evil@example.test\r\nDATA",
];

/// How the engine is let loose on a fleet.
pub(crate) struct Knobs {
    /// Sessions per site (the fleet's per-IP cap must allow at least this many).
    pub sessions: u32,
    pub rcpt_per_transaction: u32,
    /// Extra rows (malformed, duplicates) appended to the list.
    pub with_bad_rows: bool,
    /// Egress source addresses 127.0.1.1..=N (0: the one default egress); each gets
    /// `sessions` per site, as the fleet's per-IP cap does.
    pub egresses: u32,
}

impl Knobs {
    /// The egresses of `egresses` (127.0.1.1 and up, named by address).
    fn egress_list(&self, helo: &str, mail_from: &str) -> Vec<rollcall_engine::egress::Egress> {
        (1..=self.egresses)
            .map(|i| {
                let ip = std::net::Ipv4Addr::new(127, 0, 1 + (i / 256) as u8, (i % 256) as u8);
                rollcall_engine::egress::Egress::bound(ip.into(), helo, mail_from)
            })
            .collect()
    }
}

/// What a run against a fleet measured; `rollcall demo --json` prints it.
#[derive(Debug, Serialize)]
pub(crate) struct Report {
    pub addresses: u64,
    pub rows: u64,
    pub by_status: BTreeMap<&'static str, u64>,
    pub by_reason: BTreeMap<&'static str, u64>,
    /// Share of deterministic truth rows whose verdict matched (status and reason).
    pub accuracy: f64,
    pub compared: u64,
    pub mismatches: u64,
    pub mismatch_examples: Vec<String>,
    pub smtp_503: u64,
    pub pipelining_violations: u64,
    pub pregreet_violations: u64,
    pub error_budget_trips: u64,
    pub data_commands: u64,
    pub max_conns_per_host: u64,
    pub session_cap: u32,
    pub connections: u64,
    /// Connections the fleet refused (over its per-IP cap): should stay 0.
    pub connections_refused: u64,
    pub transactions: u64,
    pub addresses_per_session: f64,
    pub elapsed_s: f64,
    pub rate_per_s: f64,
    pub bound_per_s: f64,
    pub ratio_to_bound: f64,
    pub cpu_s: f64,
    pub cpu_ms_per_1000: f64,
    pub peak_rss_mb: f64,
    /// Per client (egress) address, as the fleet counted it.
    pub clients: BTreeMap<String, rollcall_sim::ClientCounters>,
}

/// Expected (status, reason) per row number, or `None` when the truth allows several.
struct Expect {
    rows: HashMap<u64, Option<(Status, Reason)>>,
}

/// Compares every row with the truth (and passes it on to an optional file).
struct Judge {
    expect: Expect,
    compared: u64,
    mismatches: u64,
    examples: Vec<String>,
    inner: Option<Box<dyn RowSink<Record> + Send>>,
}

impl RowSink<Record> for Judge {
    fn write_row(&mut self, row: &OutputRow<Record>) -> std::io::Result<()> {
        if let Some(Some((status, reason))) = self.expect.rows.get(&row.row) {
            self.compared += 1;
            if row.verdict.status() != *status || row.verdict.reason() != *reason {
                self.mismatches += 1;
                if self.examples.len() < 20 {
                    self.examples.push(format!(
                        "{}: expected {status}/{reason}, got {}/{} ({})",
                        row.text,
                        row.verdict.status(),
                        row.verdict.reason(),
                        row.verdict.detail.as_deref().unwrap_or("")
                    ));
                }
            }
        }
        match &mut self.inner {
            Some(inner) => inner.write_row(row),
            None => Ok(()),
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        match &mut self.inner {
            Some(inner) => inner.flush(),
            None => Ok(()),
        }
    }
}

/// The engine's settings for a simulated fleet: loopback targets allowed, the fleet's port,
/// retries a little longer than the fleet's greylist delay, and a permissive shaping profile
/// that still stays inside what the fleet's servers tolerate (their error limits and their
/// budget of RSETs per session), as an operator would configure for a known site.
pub(crate) fn engine_config(fleet: &Fleet, spec: &FleetSpec, knobs: &Knobs) -> EngineConfig {
    let profile = spec.profiles.get("default").cloned().unwrap_or_default();
    let grey = fleet.greylist_delay();
    let mut config = EngineConfig {
        helo_name: "verifier.rollcall.test".into(),
        mail_from: "probe@rollcall.test".into(),
        smtp_port: fleet.smtp_port(),
        allow_private_targets: true,
        connect_timeout: Duration::from_secs(2),
        greeting_timeout: Duration::from_secs(10),
        command_timeout: Duration::from_secs(10),
        greylist_retry: vec![
            grey + Duration::from_secs(1),
            grey + Duration::from_secs(2),
            grey * 2 + Duration::from_secs(2),
        ],
        defer_retry: vec![
            Duration::from_millis(500),
            Duration::from_secs(1),
            Duration::from_secs(2),
        ],
        max_outstanding: 400_000,
        worker_prefetch: std::env::var("RC_PREFETCH")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(512),
        ..EngineConfig::default()
    };
    let shaping = &mut config.shaping.default;
    shaping.max_sessions = knobs.sessions;
    shaping.rcpt_rate.per_minute = 100_000_000;
    shaping.rcpt_rate.burst = 10_000;
    shaping.connect_rate.per_minute = 100_000_000;
    shaping.connect_rate.burst = 10_000;
    shaping.rcpt_per_transaction = knobs.rcpt_per_transaction;
    // Every transaction ends with RSET, and servers count RSETs past a budget as errors.
    shaping.transactions_per_session = profile.junk_command_limit.saturating_sub(5).max(1);
    shaping.session_max_age = Duration::from_secs(3600);
    shaping.session_idle = Duration::from_secs(2);
    // Retire before the server starts slowing us down; never risk its hard limit.
    shaping.retire_after_rejected = profile.error_soft_limit.max(1);
    shaping.server_error_limit = profile.error_hard_limit.max(2);
    shaping.backoff.base = Duration::from_millis(500);
    shaping.backoff.max = Duration::from_secs(2);
    config.shaping.rules.clear();
    config.egresses = knobs.egress_list(&config.helo_name, &config.mail_from);
    config
}

/// The engine's settings and resolver for a test run against `fleet` (the metrics and cache
/// tests): loopback targets allowed, short retries, a permissive rate; the rest as built in.
#[cfg(test)]
pub(crate) fn test_engine(fleet: &Fleet) -> (EngineConfig, MxResolver) {
    let mut config = EngineConfig {
        helo_name: "verifier.rollcall.test".into(),
        mail_from: "probe@rollcall.test".into(),
        smtp_port: fleet.smtp_port(),
        allow_private_targets: true,
        connect_timeout: Duration::from_secs(2),
        greylist_retry: vec![Duration::from_millis(600), Duration::from_secs(1)],
        defer_retry: vec![Duration::from_millis(200), Duration::from_millis(400)],
        ..EngineConfig::default()
    };
    config.shaping.default.rcpt_rate.per_minute = 60_000;
    config.shaping.default.rcpt_rate.burst = 200;
    config.shaping.default.connect_rate.per_minute = 60_000;
    config.shaping.default.connect_rate.burst = 50;
    config.shaping.default.session_idle = Duration::from_millis(300);
    let resolver = MxResolver::new(ResolverConfig {
        nameservers: vec![fleet.dns_addr()],
        allow_private_targets: true,
        timeout: Duration::from_secs(1),
        ..ResolverConfig::default()
    })
    .unwrap();
    (config, resolver)
}

fn parse_truth(status: &impl Serialize, reason: &impl Serialize) -> Option<(Status, Reason)> {
    let text = |v: &dyn erased::Ser| v.name();
    let (s, r) = (text(status), text(reason));
    Some((s.parse().ok()?, r.parse().ok()?))
}

mod erased {
    /// The snake_case name a truth enum serialises to.
    pub trait Ser {
        fn name(&self) -> String;
    }
    impl<T: serde::Serialize> Ser for T {
        fn name(&self) -> String {
            serde_json::to_value(self)
                .ok()
                .and_then(|v| v.as_str().map(str::to_string))
                .unwrap_or_default()
        }
    }
}

/// Starts `spec`, verifies its list, and reports.
pub(crate) async fn run(
    spec: &FleetSpec,
    opts: SimOptions,
    knobs: Knobs,
    output: Option<Box<dyn RowSink<Record> + Send>>,
    progress: &mut Progress,
) -> anyhow::Result<Report> {
    let fleet = rollcall_sim::start(spec, opts).await?;
    let config = engine_config(&fleet, spec, &knobs);
    let connector = rollcall_engine::connector(&config).map_err(anyhow::Error::msg)?;
    let resolver_config = ResolverConfig {
        nameservers: vec![fleet.dns_addr()],
        allow_private_targets: true,
        timeout: Duration::from_secs(2),
        ..ResolverConfig::default()
    };
    let resolver = MxResolver::new(resolver_config.clone())?;
    let addresses = fleet.addresses().len() as u64;
    let (list, expect) = list_with_truth(&fleet, knobs.with_bad_rows);
    let bound = bound_per_s(&fleet, spec, &resolver_config, &knobs).await;

    let rx = feed(list);
    let metrics = Arc::new(WorkerMetrics::default());
    let verifier = Verifier {
        engine: Arc::new(config),
        resolver,
        connector,
        metrics: metrics.clone(),
        // No result cache: every demo and bench run probes every address, so their figures
        // compare from run to run (and nothing is written to the user's cache folder).
        cache: None,
    };
    let mut judge = Judge {
        expect,
        compared: 0,
        mismatches: 0,
        examples: Vec::new(),
        inner: output,
    };
    let cpu_before = cpu_seconds();
    let summary = run_verification(
        verifier,
        rx,
        &mut judge,
        progress,
        RowOrder::Completion,
        ctrl_c(),
    )
    .await?;
    let cpu = cpu_seconds() - cpu_before;
    let counters = fleet.counters();
    fleet.shutdown().await;
    Ok(Report::new(
        addresses, &summary, judge, &counters, &knobs, bound, cpu,
    ))
}

/// The fleet's list, in the fleet's order, plus bad rows and duplicates when asked, and the
/// verdict expected for each row.
fn list_with_truth(fleet: &Fleet, with_bad_rows: bool) -> (Vec<String>, Expect) {
    let mut list: Vec<String> = fleet.addresses().to_vec();
    let mut expect = Expect {
        rows: HashMap::with_capacity(list.len()),
    };
    for (i, truth) in fleet.truth().iter().enumerate() {
        let wanted = if truth.deterministic {
            parse_truth(&truth.status, &truth.reason)
        } else {
            None
        };
        expect.rows.insert(i as u64 + 1, wanted);
    }
    if with_bad_rows {
        for bad in BAD_ROWS {
            list.push(bad.to_string());
            expect.rows.insert(
                list.len() as u64,
                Some((Status::Undeliverable, Reason::InvalidSyntax)),
            );
        }
        for i in [0usize, list.len() / 3] {
            let again = list[i].clone();
            let wanted = expect.rows.get(&(i as u64 + 1)).cloned().flatten();
            list.push(again);
            expect.rows.insert(list.len() as u64, wanted);
        }
    }
    (list, expect)
}

/// The rows of `list`, numbered from 1, as the run loop takes them.
fn feed(list: Vec<String>) -> mpsc::Receiver<InputRow<Record>> {
    let (tx, rx) = mpsc::channel(1024);
    tokio::spawn(async move {
        for (i, text) in list.into_iter().enumerate() {
            let row = InputRow {
                row: i as u64 + 1,
                text,
                payload: Record::plain(),
            };
            if tx.send(row).await.is_err() {
                return;
            }
        }
    });
    rx
}

impl Report {
    /// What the run measured: the summary, the judge's comparison, the fleet's counters.
    fn new(
        addresses: u64,
        summary: &Summary,
        judge: Judge,
        counters: &rollcall_sim::Counters,
        knobs: &Knobs,
        bound: f64,
        cpu: f64,
    ) -> Report {
        let t = &counters.totals;
        let elapsed = summary.elapsed.as_secs_f64().max(1e-9);
        let rate = summary.out as f64 / elapsed;
        let mut by_status = BTreeMap::new();
        for (name, n) in Summary::STATUS_NAMES.iter().zip(summary.by_status) {
            by_status.insert(*name, n);
        }
        Report {
            addresses,
            rows: summary.out,
            by_status,
            by_reason: summary.by_reason.clone(),
            accuracy: if judge.compared == 0 {
                0.0
            } else {
                (judge.compared - judge.mismatches) as f64 / judge.compared as f64
            },
            compared: judge.compared,
            mismatches: judge.mismatches,
            mismatch_examples: judge.examples,
            smtp_503: t.replies_503,
            pipelining_violations: t.pipelining_violations,
            pregreet_violations: t.pregreet_violations,
            error_budget_trips: t.error_budget_trips,
            data_commands: t.data_commands,
            max_conns_per_host: counters
                .hosts
                .values()
                .map(|h| h.max_concurrent_per_ip)
                .max()
                .unwrap_or(0),
            session_cap: knobs.sessions,
            connections: t.connections,
            connections_refused: t.connections_refused,
            transactions: t.transactions,
            addresses_per_session: summary.out as f64 / (t.connections.max(1)) as f64,
            elapsed_s: elapsed,
            rate_per_s: rate,
            bound_per_s: bound,
            ratio_to_bound: if bound > 0.0 { rate / bound } else { 0.0 },
            cpu_s: cpu,
            cpu_ms_per_1000: cpu * 1000.0 / (summary.out.max(1) as f64 / 1000.0),
            peak_rss_mb: peak_rss_mb(),
            clients: counters.clients.clone(),
        }
    }
}

/// The throughput bound of `docs/BENCHMARKS.md`: a site with C sessions, a round-trip
/// latency L and k RCPTs per transaction needs at least `ceil((A_d + 1) / k)` round trips per
/// domain d (one transaction per round trip when pipelined, the +1 being the catch-all probe),
/// spread over C sessions; the list cannot finish before its slowest site does.
async fn bound_per_s(
    fleet: &Fleet,
    spec: &FleetSpec,
    resolver_config: &ResolverConfig,
    knobs: &Knobs,
) -> f64 {
    let Ok(resolver) = MxResolver::new(resolver_config.clone()) else {
        return 0.0;
    };
    let profile = spec.profiles.get("default").cloned().unwrap_or_default();
    let latency = profile.latency_ms as f64 / 1000.0;
    let k = f64::from(knobs.rcpt_per_transaction.min(profile.rcpt_limit.max(1)));
    let sessions =
        f64::from(knobs.sessions.min(profile.max_conns_per_ip.max(1)) * knobs.egresses.max(1));
    let mut per_domain: HashMap<&str, u64> = HashMap::new();
    for address in fleet.addresses() {
        if let Some((_, domain)) = address.rsplit_once('@') {
            *per_domain.entry(domain).or_default() += 1;
        }
    }
    let mut per_site: HashMap<String, f64> = HashMap::new();
    for (domain, count) in per_domain {
        if let Resolution::Mail { hosts, .. } = resolver.resolve(domain).await {
            let names: Vec<&str> = hosts.iter().map(|h| h.name.as_str()).collect();
            let site = rollcall_core::Site::from_mx_hosts(&names).id().to_string();
            *per_site.entry(site).or_default() += ((count + 1) as f64 / k).ceil();
        }
    }
    let slowest = per_site
        .values()
        .map(|round_trips| round_trips * latency / sessions)
        .fold(0.0, f64::max);
    if slowest <= 0.0 {
        return 0.0;
    }
    fleet.addresses().len() as f64 / slowest
}

/// User + system CPU seconds of this process (Linux `/proc/self/stat`, clock ticks of 1/100 s).
pub(crate) fn cpu_seconds() -> f64 {
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else {
        return 0.0;
    };
    // Fields after the command name (which may hold spaces) start after the last ')'.
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    // utime and stime are fields 14 and 15 of stat(5); here indexes 11 and 12.
    (ticks(11) + ticks(12)) / 100.0
}

/// Peak resident memory of this process in MB (`VmHWM`).
pub(crate) fn peak_rss_mb() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<f64>().ok())
        })
        .map(|kb| kb / 1024.0)
        .unwrap_or(0.0)
}

/// The human summary of a fleet run.
pub(crate) fn report_table(r: &Report) -> String {
    let mut out = String::new();
    let mut line = |k: &str, v: String| out.push_str(&format!("  {k:<28} {v}\n"));
    line(
        "addresses (+ bad/dup rows)",
        format!("{} (+{})", group(r.addresses), r.rows - r.addresses),
    );
    for (status, n) in &r.by_status {
        line(status, group(*n));
    }
    line(
        "accuracy vs ground truth",
        format!(
            "{:.4} ({} compared, {} mismatches)",
            r.accuracy,
            group(r.compared),
            r.mismatches
        ),
    );
    line("503 replies received", r.smtp_503.to_string());
    line("pipelining violations", r.pipelining_violations.to_string());
    line("error-budget trips", r.error_budget_trips.to_string());
    line("DATA commands", r.data_commands.to_string());
    line(
        "max sessions per host",
        format!("{} (cap {})", r.max_conns_per_host, r.session_cap),
    );
    line(
        "sessions opened",
        format!(
            "{} ({:.0} addresses per session)",
            group(r.connections),
            r.addresses_per_session
        ),
    );
    line("connections refused", r.connections_refused.to_string());
    if r.clients.len() > 1 {
        for (ip, c) in &r.clients {
            line(
                &format!("egress {ip}"),
                format!(
                    "{} sessions, {} RCPTs, max {} at once at a host, {} rate-limited",
                    group(c.connections),
                    group(c.rcpts),
                    c.max_concurrent,
                    c.rate_limited
                ),
            );
        }
    }
    line("elapsed", format!("{:.1} s", r.elapsed_s));
    line("throughput", format!("{:.0} addresses/s", r.rate_per_s));
    line(
        "bound (no greylist waits)",
        format!(
            "{:.0} addresses/s (ratio {:.2})",
            r.bound_per_s, r.ratio_to_bound
        ),
    );
    line(
        "CPU",
        format!(
            "{:.1} s ({:.1} ms per 1,000 addresses)",
            r.cpu_s, r.cpu_ms_per_1000
        ),
    );
    line(
        "peak RSS (fleet + engine)",
        format!("{:.0} MB", r.peak_rss_mb),
    );
    for example in &r.mismatch_examples {
        out.push_str(&format!("  mismatch: {example}\n"));
    }
    out
}
