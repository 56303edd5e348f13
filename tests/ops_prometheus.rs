//! Every PromQL expression operators watch is real: the Grafana dashboard
//! (deploy/grafana/rollcall.json) and the alert rules (deploy/prometheus/alerts.yml) run
//! against a real Prometheus that scrapes a real coordinator and worker.
//!
//! The run: `rollcall sim` serves the test fleet (tests/ops/fleet.toml: accepted and rejected
//! mailboxes, greylisting, a dead site whose circuits open), a `rollcall coordinator` and a
//! `rollcall worker` work over the real RabbitMQ and Redis under a prefix of their own, and
//! Prometheus scrapes both every second with a config derived from
//! deploy/prometheus/prometheus.yml (same jobs and rule files, targets on loopback). A campaign
//! of the fleet's list goes through `rollcall submit --wait`. Then:
//! - Prometheus loaded every rule of alerts.yml, and each one evaluates with health "ok";
//! - every dashboard expression (Grafana's `$__rate_interval`, `$__interval`, `$__range`
//!   replaced; any other variable fails the test) and every template variable query parses
//!   and returns data that is a number;
//! - the dashboard covers what operators must see ([`COVERAGE`]): each item has a query over
//!   its metrics whose series carry the labels it is broken down by;
//! - every alert expression parses and returns what [`ALERTS`] expects of it after a healthy
//!   run: nothing, with every series it selects present (quiet because its condition is
//!   false, not because a metric is missing); then the worker is stopped and
//!   `RollcallWorkerDown` must return it.
//!
//! Each failing expression is listed with its reason.
//!
//! Needs Prometheus (`bash tests/ops/prometheus.sh` installs it), Redis and RabbitMQ
//! (`bash scripts/services.sh`): without them the test fails under CI and is skipped loudly
//! elsewhere. Children are stopped and the prefix's keys, queues and exchanges deleted at the
//! end, also when the test fails (its logs are then kept and their directory printed).
#![forbid(unsafe_code)]

mod support_ops;

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};
use serde_json::Value;

use support_ops::{
    AMQP_URL, Proc, REDIS_URL, free_port, http_get, poll, prom_config, promql, run_with_timeout,
    tail, url_encode,
};

const PROMETHEUS: &str = "/usr/bin/prometheus";
const PROMTOOL: &str = "/usr/bin/promtool";
const COORDINATOR_JOB: &str = "rollcall-coordinator";
const WORKER_JOB: &str = "rollcall-worker";
/// Shard queues of the run, and their `shard` labels.
const SHARDS: &str = "2";
const SHARD_LABELS: [&str; 2] = ["0", "1"];

/// Every alert of alerts.yml, and why its expression returns nothing once the healthy run
/// has ended. Prometheus evaluates the expressions; `for:` plays no part in an instant query.
const ALERTS: [(&str, &str); 7] = [
    (
        "RollcallBadSequence",
        "the sim's servers are strict and rollcall never sends a command out of sequence: \
         rollcall_smtp_bad_sequence_total stays 0 in both processes",
    ),
    (
        "RollcallCircuitsOpenLong",
        "the dead site is held off while its batches are put off, but its runner ends once \
         they are settled and an ending runner no longer holds its site off: \
         rollcall_site_circuits_open is back to 0",
    ),
    (
        "RollcallGreylistBacklogGrowing",
        "a few dozen greylisted addresses at most, far under the threshold of 1000, and none \
         pending once the campaign is done",
    ),
    (
        "RollcallQueueNotDraining",
        "the shard queues were empty before the campaign and are empty after it, so the \
         minimum depth over the window is 0",
    ),
    (
        "RollcallWorkerDown",
        "the worker answers every scrape (up == 1); the test then stops it and this \
         expression must return it",
    ),
    (
        "RollcallCampaignStalled",
        "the campaign finished: done == total",
    ),
    (
        "RollcallCoordinatorDown",
        "the coordinator answers every scrape (up == 1)",
    ),
];

/// What the dashboard must show (issue 5, section 1): the item, the metrics one query of it
/// combines, the panel type and unit where they matter ("ops" is Grafana's per second), and
/// the labels every series of that query's result carries (`job` with both jobs present: one
/// series per process).
const COVERAGE: [Need; 22] = [
    Need::new(
        "verifications/s by status",
        &["rollcall_verifications_total"],
    )
    .unit("ops")
    .by(&["status"]),
    Need::new("campaign progress", &["rollcall_campaign_addresses"]).unit("percentunit"),
    Need::new(
        "campaign ETA",
        &[
            "rollcall_campaign_addresses",
            "rollcall_verifications_total",
        ],
    )
    .unit("s"),
    Need::new("queue depth per shard", &["rollcall_queue_depth"])
        .by(&["shard"])
        .each("shard", &SHARD_LABELS),
    Need::new(
        "queue drain rate",
        &["rollcall_queue_published_total", "rollcall_queue_depth"],
    ),
    Need::new("sessions active", &["rollcall_smtp_sessions_active"]),
    Need::new(
        "session reuse ratio (transactions per session)",
        &[
            "rollcall_smtp_transactions_total",
            "rollcall_smtp_sessions_opened_total",
        ],
    ),
    Need::new(
        "pipelined share",
        &[
            "rollcall_smtp_pipelined_groups_total",
            "rollcall_smtp_transactions_total",
        ],
    ),
    Need::new("SMTP reply classes", &["rollcall_smtp_replies_total"]).by(&["class"]),
    Need::new("503 count", &["rollcall_smtp_bad_sequence_total"]),
    Need::new(
        "command latency heatmap",
        &["rollcall_smtp_command_duration_seconds_bucket"],
    )
    .panel("heatmap")
    .by(&["le"]),
    Need::new(
        "DNS latency",
        &["rollcall_dns_lookup_duration_seconds_bucket"],
    )
    .unit("s"),
    Need::new("circuits open", &["rollcall_site_circuits_open"]),
    Need::new(
        "egress health: blocks per RCPT",
        &[
            "rollcall_egress_blocks_total",
            "rollcall_egress_rcpts_total",
        ],
    )
    .by(&["egress"]),
    Need::new(
        "egress health: 4xx per RCPT",
        &[
            "rollcall_egress_deferrals_total",
            "rollcall_egress_rcpts_total",
        ],
    )
    .by(&["egress"]),
    Need::new("RCPTs per egress", &["rollcall_egress_rcpts_total"]).by(&["egress"]),
    Need::new(
        "sessions per egress",
        &["rollcall_egress_sessions_opened_total"],
    )
    .by(&["egress"]),
    Need::new("greylist pending", &["rollcall_greylist_pending"]),
    Need::new(
        "worker batches in flight",
        &["rollcall_worker_batches_inflight"],
    )
    .by(&["instance"]),
    Need::new(
        "worker saturation",
        &[
            "rollcall_worker_batches_inflight",
            "rollcall_worker_prefetch",
        ],
    )
    .unit("percentunit"),
    Need::new("CPU per process", &["process_cpu_seconds_total"]).by(&["job", "instance"]),
    Need::new("memory per process", &["process_resident_memory_bytes"]).by(&["job", "instance"]),
];

/// Bounds every wait for a process or a condition (a loaded 2-core CI machine is slow).
const START_TIMEOUT: Duration = Duration::from_secs(60);
/// The campaign: a few hundred addresses, greylist and deferral retries of a few seconds.
const CAMPAIGN_TIMEOUT: Duration = Duration::from_secs(300);
/// How long a dashboard expression may take to return data after the campaign: within the
/// 1-minute rate window, so rates still see the run.
const DATA_TIMEOUT: Duration = Duration::from_secs(45);
/// How long the gauges may take to settle after the campaign (a site runner ends after its
/// idle time, the backlog is sampled every few seconds) before every alert must be quiet.
const QUIET_TIMEOUT: Duration = Duration::from_secs(30);

/// One item the dashboard must show.
struct Need {
    item: &'static str,
    /// Metrics one query combines (by name, from the query's selectors).
    metrics: &'static [&'static str],
    panel_type: Option<&'static str>,
    unit: Option<&'static str>,
    /// Labels every series of the query's result carries.
    by: &'static [&'static str],
    /// A label and values it must take in the result (one series each at least).
    each: Option<(&'static str, &'static [&'static str])>,
}

impl Need {
    const fn new(item: &'static str, metrics: &'static [&'static str]) -> Need {
        Need {
            item,
            metrics,
            panel_type: None,
            unit: None,
            by: &[],
            each: None,
        }
    }

    const fn each(self, label: &'static str, values: &'static [&'static str]) -> Need {
        Need {
            each: Some((label, values)),
            ..self
        }
    }

    const fn by(self, labels: &'static [&'static str]) -> Need {
        Need { by: labels, ..self }
    }

    const fn panel(self, panel_type: &'static str) -> Need {
        Need {
            panel_type: Some(panel_type),
            ..self
        }
    }

    const fn unit(self, unit: &'static str) -> Need {
        Need {
            unit: Some(unit),
            ..self
        }
    }

    /// The query is one this item asks for.
    fn matches(&self, query: &promql::PanelQuery) -> bool {
        let Ok(selectors) = promql::selectors(&query.expr) else {
            return false;
        };
        let names: BTreeSet<&str> = selectors.iter().map(|s| promql::metric_name(s)).collect();
        self.metrics.iter().all(|m| names.contains(m))
            && self.panel_type.is_none_or(|t| query.panel_type == t)
            && self.unit.is_none_or(|u| query.unit == u)
    }

    /// The query's result shows the item: series, each labelled by [`Need::by`], and a series
    /// of each job when broken down by job.
    fn shown_by(&self, result: &QueryResult) -> bool {
        let series = result.series();
        let labelled = series
            .iter()
            .all(|labels| self.by.iter().all(|l| labels.contains_key(*l)));
        let jobs: BTreeSet<&str> = series
            .iter()
            .filter_map(|labels| labels.get("job").map(String::as_str))
            .collect();
        let per_job = !self.by.contains(&"job")
            || (jobs.contains(COORDINATOR_JOB) && jobs.contains(WORKER_JOB));
        let each = self.each.is_none_or(|(label, values)| {
            values.iter().all(|v| {
                series
                    .iter()
                    .any(|labels| labels.get(label).map(String::as_str) == Some(v))
            })
        });
        !series.is_empty() && labelled && per_job && each
    }
}

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

#[test]
fn every_dashboard_and_alert_expression_runs_on_prometheus() {
    let started = Instant::now();
    let missing = support_ops::missing_prerequisites(Path::new(PROMETHEUS));
    if !support_ops::require(&missing, "ops_prometheus") {
        return;
    }

    // Read the deploy files first: an unknown variable fails before anything starts.
    let deploy = repo().join("deploy");
    let dashboard_path = deploy.join("grafana/rollcall.json");
    let dashboard: Value = serde_json::from_str(&read(&dashboard_path)).expect("dashboard JSON");
    let queries = promql::dashboard_queries(&dashboard);
    assert!(
        !queries.is_empty(),
        "no expression in {}",
        dashboard_path.display()
    );
    let mut substituted: Vec<(promql::PanelQuery, Result<String>)> = queries
        .into_iter()
        .map(|q| {
            let expr = promql::substitute(&q.expr);
            (q, expr)
        })
        .collect();
    substituted.extend(
        promql::template_queries(&dashboard)
            .into_iter()
            .map(|(q, expr)| (q, expr.and_then(|e| promql::substitute(&e)))),
    );
    let unknown: Vec<String> = substituted
        .iter()
        .filter_map(|(q, e)| e.as_ref().err().map(|e| format!("{}: {e}", q.panel)))
        .collect();
    assert!(
        unknown.is_empty(),
        "dashboard expressions use variables the test cannot fill:\n{}",
        unknown.join("\n")
    );
    let rules_path = deploy.join("prometheus/alerts.yml");
    let rule_names = promql::rule_names(&read(&rules_path));
    assert!(
        !rule_names.is_empty(),
        "no rule in {}",
        rules_path.display()
    );

    let mut run = Run::new();
    let outcome = run.campaign().and_then(|campaign_end| {
        let mut failures = Vec::new();
        check_rules(&run, &rule_names, &mut failures)?;
        let results = check_dashboard(&run, &substituted, campaign_end, &mut failures)?;
        check_coverage(&substituted, &results, &mut failures);
        check_alerts(&mut run, &mut failures)?;
        Ok(failures)
    });
    let failures = match outcome {
        Ok(failures) => failures,
        Err(e) => panic!("{e:#}\n{}", run.logs()),
    };
    eprintln!(
        "ops_prometheus: {} dashboard and {} alert expressions checked in {:.0?}",
        substituted.len(),
        rule_names.len(),
        started.elapsed()
    );
    assert!(
        failures.is_empty(),
        "{} expression(s) failed:\n\n{}",
        failures.len(),
        failures.join("\n\n")
    );
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
}

/// The processes of one run and what they leave behind; dropping it stops them (Prometheus
/// and the worker first) and deletes the prefix's state.
struct Run {
    dir: PathBuf,
    prefix: String,
    prometheus_addr: SocketAddr,
    /// Each job's scrape target (the process's --metrics-listen).
    targets: BTreeMap<&'static str, SocketAddr>,
    procs: Vec<Proc>,
}

impl Run {
    fn new() -> Run {
        let tag = support_ops::unique_tag();
        Run {
            dir: support_ops::temp_dir(&tag),
            prefix: format!("rollcall-ops-{tag}"),
            prometheus_addr: SocketAddr::from(([127, 0, 0, 1], free_port())),
            targets: BTreeMap::new(),
            procs: Vec::new(),
        }
    }

    /// Starts everything, runs the campaign; returns when it ended.
    fn campaign(&mut self) -> Result<Instant> {
        let sim = self.start_sim()?;
        let coordinator_api = SocketAddr::from(([127, 0, 0, 1], free_port()));
        let coordinator_metrics = SocketAddr::from(([127, 0, 0, 1], free_port()));
        let worker_metrics = SocketAddr::from(([127, 0, 0, 1], free_port()));
        self.start_fleet_process(
            "coordinator",
            &sim,
            coordinator_metrics,
            &["--listen", &coordinator_api.to_string()],
        )?;
        self.start_fleet_process("worker", &sim, worker_metrics, &[])?;
        for (name, addr) in [
            ("coordinator", coordinator_metrics),
            ("worker", worker_metrics),
        ] {
            poll(&format!("{name} serves /metrics"), START_TIMEOUT, || {
                self.check_running()?;
                Ok(http_get(addr, "/metrics").ok().filter(|r| r.status == 200))
            })?;
        }
        self.targets = BTreeMap::from([
            (COORDINATOR_JOB, coordinator_metrics),
            (WORKER_JOB, worker_metrics),
        ]);
        self.start_prometheus(&self.targets.clone())?;

        let out = self.dir.join("results.csv");
        let mut submit = Command::new(env!("CARGO_BIN_EXE_rollcall"));
        submit
            .arg("submit")
            .arg(&sim.list)
            .args(["--coordinator", &format!("http://{coordinator_api}")])
            .args(["--wait", "--progress", "log", "-o"])
            .arg(&out);
        let status = run_with_timeout(
            "rollcall submit",
            submit,
            self.dir.join("submit.log"),
            CAMPAIGN_TIMEOUT,
        )?;
        let ended = Instant::now();
        if !status.success() {
            bail!("rollcall submit failed ({status})");
        }
        let rows = read(&out).lines().count().saturating_sub(1);
        if rows != sim.addresses {
            bail!("{rows} result rows for {} addresses", sim.addresses);
        }
        self.check_running()?;
        Ok(ended)
    }

    fn start_sim(&mut self) -> Result<Sim> {
        let list = self.dir.join("list.txt");
        let mut command = Command::new(env!("CARGO_BIN_EXE_rollcall"));
        command
            .arg("sim")
            .arg("--fleet")
            .arg(repo().join("tests/ops/fleet.toml"))
            .args([
                "--smtp-port",
                "0",
                "--dns-listen",
                "127.0.0.1:0",
                "--addresses",
            ])
            .arg(&list);
        let log = self.dir.join("sim.log");
        self.procs
            .push(Proc::spawn("rollcall sim", command, log.clone())?);
        let report = poll("the sim reports its addresses", START_TIMEOUT, || {
            self.check_running()?;
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            Ok(text.contains("addresses to verify").then_some(text))
        })?;
        Sim::from_report(&report, list)
    }

    /// `rollcall coordinator` or `rollcall worker` on the sim, with the run's prefix.
    fn start_fleet_process(
        &mut self,
        role: &str,
        sim: &Sim,
        metrics: SocketAddr,
        extra: &[&str],
    ) -> Result<()> {
        let mut command = Command::new(env!("CARGO_BIN_EXE_rollcall"));
        command
            .arg(role)
            .args(extra)
            .args(["--amqp", AMQP_URL, "--redis", REDIS_URL])
            .args(["--prefix", &self.prefix, "--shards", SHARDS])
            .args(["--metrics-listen", &metrics.to_string()])
            .arg("--config")
            .arg(repo().join("tests/ops/rollcall.toml"))
            .args(["--dns", &sim.dns.to_string()])
            .args(["--smtp-port", &sim.smtp_port.to_string(), "--allow-private"])
            .args(["--helo", "verifier.rollcall.test"])
            .args(["--mail-from", "probe@rollcall.test"])
            .args(["--connect-timeout", "2s", "--dns-timeout", "2s"])
            .args(["--greylist-retry", "2s,3s,5s", "--defer-retry", "1s,2s,3s"])
            .env("RUST_LOG", "info");
        let log = self.dir.join(format!("{role}.log"));
        self.procs
            .push(Proc::spawn(&format!("rollcall {role}"), command, log)?);
        Ok(())
    }

    fn start_prometheus(&mut self, jobs: &BTreeMap<&str, SocketAddr>) -> Result<()> {
        let shipped = repo().join("deploy/prometheus/prometheus.yml");
        let config_dir = shipped.parent().context("config directory")?;
        let config = prom_config::rewrite(&read(&shipped), config_dir, jobs)
            .with_context(|| format!("deriving the test config from {}", shipped.display()))?;
        let config_path = self.dir.join("prometheus.yml");
        std::fs::write(&config_path, config)?;
        if Path::new(PROMTOOL).is_file() {
            let check = Command::new(PROMTOOL)
                .args(["check", "config"])
                .arg(&config_path)
                .output()?;
            if !check.status.success() {
                bail!(
                    "promtool rejects the derived config {}:\n{}{}",
                    config_path.display(),
                    String::from_utf8_lossy(&check.stdout),
                    String::from_utf8_lossy(&check.stderr)
                );
            }
        }
        let mut command = Command::new(PROMETHEUS);
        command
            .arg(format!("--config.file={}", config_path.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                self.dir.join("tsdb").display()
            ))
            .arg(format!("--web.listen-address={}", self.prometheus_addr));
        let log = self.dir.join("prometheus.log");
        self.procs.push(Proc::spawn("prometheus", command, log)?);
        poll("Prometheus is ready", START_TIMEOUT, || {
            self.check_running()?;
            Ok(http_get(self.prometheus_addr, "/-/ready")
                .ok()
                .filter(|r| r.status == 200))
        })?;
        poll("both targets are up", START_TIMEOUT, || {
            self.check_running()?;
            self.targets_up(jobs)
        })?;
        // Three scrapes of each before the campaign: rates have a start.
        for job in jobs.keys() {
            let expr = format!("count_over_time(up{{job=\"{job}\"}}[1m]) >= 3");
            poll(&format!("three scrapes of {job}"), START_TIMEOUT, || {
                Ok((!self.query(&expr)?.values()?.is_empty()).then_some(()))
            })?;
        }
        Ok(())
    }

    /// `Some` once every job has a target and all are up; an error on a job not asked for.
    fn targets_up(&self, jobs: &BTreeMap<&str, SocketAddr>) -> Result<Option<()>> {
        let body = self.api("/api/v1/targets?state=active")?;
        let mut health: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for target in body["data"]["activeTargets"]
            .as_array()
            .context("activeTargets")?
        {
            let job = target["labels"]["job"].as_str().unwrap_or("?").to_string();
            let state = target["health"].as_str().unwrap_or("?").to_string();
            health.entry(job).or_default().push(state);
        }
        let seen: BTreeSet<&str> = health.keys().map(String::as_str).collect();
        let wanted: BTreeSet<&str> = jobs.keys().copied().collect();
        if seen.difference(&wanted).next().is_some() {
            bail!("Prometheus scrapes jobs {seen:?}, the test runs {wanted:?}");
        }
        let all_up = seen == wanted && health.values().flatten().all(|h| h == "up");
        Ok(all_up.then_some(()))
    }

    /// GET on the Prometheus API; the JSON body (also for 4xx: it carries the error).
    fn api(&self, path_and_query: &str) -> Result<Value> {
        let response = http_get(self.prometheus_addr, path_and_query)?;
        serde_json::from_str(&response.body).with_context(|| {
            format!(
                "{path_and_query}: HTTP {} and no JSON: {}",
                response.status, response.body
            )
        })
    }

    /// An instant query at the current time.
    fn query(&self, expr: &str) -> Result<QueryResult> {
        let body = self.api(&format!("/api/v1/query?query={}", url_encode(expr)))?;
        Ok(QueryResult(body))
    }

    fn check_running(&mut self) -> Result<()> {
        self.procs.iter_mut().try_for_each(Proc::check_running)
    }

    /// Stops the process named `name` (its log stays listed).
    fn stop(&mut self, name: &str) -> Result<()> {
        let proc = self
            .procs
            .iter_mut()
            .find(|p| p.name == name)
            .with_context(|| format!("no process {name}"))?;
        proc.stop(Duration::from_secs(15));
        Ok(())
    }

    /// The tail of every process log, for a failure message.
    fn logs(&self) -> String {
        self.procs
            .iter()
            .map(|p| {
                format!(
                    "--- {} ({}):\n{}",
                    p.name,
                    p.log.display(),
                    tail(&p.log, 25)
                )
            })
            .collect::<Vec<_>>()
            .join("\n")
    }
}

impl Drop for Run {
    fn drop(&mut self) {
        // Prometheus first (it would scrape the dying), then the worker, coordinator, sim.
        while let Some(mut proc) = self.procs.pop() {
            proc.stop(Duration::from_secs(15));
        }
        support_ops::delete_fleet_state(&self.prefix);
        if std::thread::panicking() {
            eprintln!("ops_prometheus: logs kept in {}", self.dir.display());
        } else {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

/// Where the sim listens, from its startup report.
struct Sim {
    dns: SocketAddr,
    smtp_port: u16,
    list: PathBuf,
    addresses: usize,
}

impl Sim {
    /// Reads `dns ADDR (udp+tcp)`, the first `smtp ADDR name` line and
    /// `N addresses to verify`.
    fn from_report(report: &str, list: PathBuf) -> Result<Sim> {
        let field = |prefix: &str| -> Result<&str> {
            report
                .lines()
                .find_map(|line| line.strip_prefix(prefix))
                .and_then(|rest| rest.split_whitespace().next())
                .with_context(|| format!("no `{prefix}` line in the sim's report:\n{report}"))
        };
        let dns: SocketAddr = field("dns ")?.parse().context("the sim's DNS address")?;
        let smtp: SocketAddr = field("smtp ")?.parse().context("an SMTP address")?;
        let addresses = report
            .lines()
            .find(|line| line.contains("addresses to verify"))
            .and_then(|line| line.split_whitespace().next())
            .and_then(|n| n.parse().ok())
            .context("the number of addresses")?;
        let listed = read(&list).lines().filter(|l| !l.trim().is_empty()).count();
        if listed != addresses {
            bail!("the sim reports {addresses} addresses, its list has {listed}");
        }
        Ok(Sim {
            dns,
            smtp_port: smtp.port(),
            list,
            addresses,
        })
    }
}

/// The JSON answer of /api/v1/query.
struct QueryResult(Value);

impl QueryResult {
    /// The sample values (as Prometheus writes them: "1", "NaN", "+Inf"), or the error.
    fn values(&self) -> Result<Vec<String>> {
        let body = &self.0;
        if body["status"] != "success" {
            bail!(
                "status {}: {} {}",
                body["status"],
                body["errorType"].as_str().unwrap_or(""),
                body["error"].as_str().unwrap_or("")
            );
        }
        let data = &body["data"];
        let value_of = |v: &Value| v[1].as_str().unwrap_or("?").to_string();
        Ok(match data["resultType"].as_str() {
            Some("vector") => data["result"]
                .as_array()
                .context("result")?
                .iter()
                .map(|s| value_of(&s["value"]))
                .collect(),
            Some("scalar") => vec![value_of(&data["result"])],
            other => bail!("unexpected result type {other:?} for an instant query"),
        })
    }

    /// The result's series, as text (for failure messages).
    fn describe(&self) -> String {
        self.0["data"]["result"].to_string()
    }

    /// The labels of each series of the result.
    fn series(&self) -> Vec<BTreeMap<String, String>> {
        let Some(series) = self.0["data"]["result"].as_array() else {
            return Vec::new();
        };
        series
            .iter()
            .map(|s| {
                s["metric"]
                    .as_object()
                    .into_iter()
                    .flatten()
                    .map(|(k, v)| (k.clone(), v.as_str().unwrap_or("").to_string()))
                    .collect()
            })
            .collect()
    }
}

/// Prometheus loaded every rule of alerts.yml and each evaluates with health "ok".
fn check_rules(run: &Run, names: &[String], failures: &mut Vec<String>) -> Result<()> {
    let wanted: BTreeSet<&str> = names.iter().map(String::as_str).collect();
    let rules = poll("every rule evaluated", START_TIMEOUT, || {
        let rules = loaded_rules(run)?;
        let evaluated = rules.iter().all(|r| r["health"] != "unknown");
        Ok((evaluated && rules.len() >= names.len()).then_some(rules))
    });
    let rules = match rules {
        Ok(rules) => rules,
        Err(e) => {
            failures.push(format!("rules: {e:#}"));
            loaded_rules(run)?
        }
    };
    let loaded: BTreeSet<&str> = rules.iter().filter_map(|r| r["name"].as_str()).collect();
    if loaded != wanted || rules.len() != names.len() {
        failures.push(format!(
            "rules: alerts.yml names {wanted:?}, Prometheus loaded {loaded:?} ({} rules)",
            rules.len()
        ));
    }
    for rule in &rules {
        if rule["health"] != "ok" {
            failures.push(format!(
                "rule {}: health {} ({})\n  expr: {}",
                rule["name"], rule["health"], rule["lastError"], rule["query"]
            ));
        }
    }
    Ok(())
}

fn loaded_rules(run: &Run) -> Result<Vec<Value>> {
    let body = run.api("/api/v1/rules")?;
    if body["status"] != "success" {
        bail!("/api/v1/rules: {body}");
    }
    Ok(body["data"]["groups"]
        .as_array()
        .context("groups")?
        .iter()
        .flat_map(|g| g["rules"].as_array().cloned().unwrap_or_default())
        .collect())
}

/// Every dashboard expression parses and, within [`DATA_TIMEOUT`], returns at least one
/// sample that is a number (a panel of NaN shows nothing). Returns each query's result, `None`
/// where it had none.
fn check_dashboard(
    run: &Run,
    queries: &[(promql::PanelQuery, Result<String>)],
    campaign_end: Instant,
    failures: &mut Vec<String>,
) -> Result<Vec<Option<QueryResult>>> {
    let deadline = campaign_end.max(Instant::now()) + DATA_TIMEOUT;
    let mut results: Vec<Option<QueryResult>> = queries.iter().map(|_| None).collect();
    let mut why: Vec<String> = vec!["not run".into(); queries.len()];
    let mut waiting: Vec<usize> = (0..queries.len()).collect();
    loop {
        let mut still = Vec::new();
        for i in waiting {
            let (query, expr) = &queries[i];
            let expr = expr.as_ref().map_err(|e| anyhow::anyhow!("{e:#}"))?;
            let result = run.query(expr)?;
            match result.values() {
                Err(e) => failures.push(format!(
                    "dashboard panel \"{}\" ({}): does not run: {e}\n  expr: {expr}",
                    query.panel, query.ref_id
                )),
                Ok(values) if values.iter().any(|v| is_number(v)) => results[i] = Some(result),
                Ok(values) => {
                    why[i] = if values.is_empty() {
                        "no data".to_string()
                    } else {
                        format!("only NaN: {}", result.describe())
                    };
                    still.push(i);
                }
            }
        }
        waiting = still;
        if waiting.is_empty() || Instant::now() >= deadline {
            break;
        }
        std::thread::sleep(Duration::from_secs(1));
    }
    for i in waiting {
        let (query, expr) = &queries[i];
        failures.push(format!(
            "dashboard panel \"{}\" ({}): {} within {DATA_TIMEOUT:?} of the campaign's end\n  \
             expr: {}",
            query.panel,
            query.ref_id,
            why[i],
            expr.as_deref().unwrap_or("?")
        ));
    }
    Ok(results)
}

/// The dashboard shows every item of [`COVERAGE`]: a query over the item's metrics (in a panel
/// of the item's type and unit, if given) whose result is broken down as the item asks.
fn check_coverage(
    queries: &[(promql::PanelQuery, Result<String>)],
    results: &[Option<QueryResult>],
    failures: &mut Vec<String>,
) {
    for need in &COVERAGE {
        let candidates: Vec<usize> = (0..queries.len())
            .filter(|&i| need.matches(&queries[i].0))
            .collect();
        let what = format!(
            "a query over {:?}{}{}",
            need.metrics,
            need.panel_type
                .map(|t| format!(" in a {t} panel"))
                .unwrap_or_default(),
            need.unit
                .map(|u| format!(" with unit {u}"))
                .unwrap_or_default()
        );
        if candidates.is_empty() {
            failures.push(format!(
                "dashboard coverage: \"{}\" needs {what}; there is none",
                need.item
            ));
            continue;
        }
        let shown = candidates
            .iter()
            .any(|&i| results[i].as_ref().is_some_and(|r| need.shown_by(r)));
        if !shown {
            let panels: Vec<String> = candidates
                .iter()
                .map(|&i| {
                    let series = results[i]
                        .as_ref()
                        .map_or("no data".to_string(), QueryResult::describe);
                    format!(
                        "  {} ({}): {series}",
                        queries[i].0.panel, queries[i].0.ref_id
                    )
                })
                .collect();
            failures.push(format!(
                "dashboard coverage: \"{}\": no result of {what} has series labelled by \
                 {:?}{}{}:\n{}",
                need.item,
                need.by,
                if need.by.contains(&"job") {
                    " with a series of each job"
                } else {
                    ""
                },
                need.each
                    .map(|(label, values)| format!(" and a series of each {label} in {values:?}"))
                    .unwrap_or_default(),
                panels.join("\n")
            ));
        }
    }
}

fn is_number(value: &str) -> bool {
    value.parse::<f64>().is_ok_and(|v| !v.is_nan())
}

/// Every rule runs; each alert returns nothing once the run's gauges settled (within
/// [`QUIET_TIMEOUT`]), every series it selects exists, and stopping the worker makes
/// `RollcallWorkerDown` return it. A recording rule must return data.
fn check_alerts(run: &mut Run, failures: &mut Vec<String>) -> Result<()> {
    let rules = loaded_rules(run)?;
    let mut alerts: Vec<(String, String)> = Vec::new();
    for rule in &rules {
        let name = rule["name"].as_str().unwrap_or("?").to_string();
        let expr = rule["query"]
            .as_str()
            .context("a rule without query")?
            .to_string();
        let result = run.query(&expr)?;
        let values = match result.values() {
            Ok(values) => values,
            Err(e) => {
                failures.push(format!("rule {name}: does not run: {e}\n  expr: {expr}"));
                continue;
            }
        };
        if rule["type"] == "recording" {
            if !values.iter().any(|v| is_number(v)) {
                failures.push(format!("recording rule {name}: no data\n  expr: {expr}"));
            }
            continue;
        }
        if !ALERTS.iter().any(|(known, _)| *known == name) {
            failures.push(format!(
                "alert {name}: the test does not know what it returns after a healthy run; \
                 add it to ALERTS with the reason"
            ));
            continue;
        }
        alerts.push((name, expr));
    }
    for (name, _) in ALERTS {
        if !alerts.iter().any(|(n, _)| n == name) {
            failures.push(format!("alert {name}: not in alerts.yml, or does not run"));
        }
    }

    // Quiet: nothing returned, and not for want of series.
    let deadline = Instant::now() + QUIET_TIMEOUT;
    let loud = loop {
        let mut loud = Vec::new();
        for (name, expr) in &alerts {
            let result = run.query(expr)?;
            if !result.values()?.is_empty() {
                loud.push((name, expr, result.describe()));
            }
        }
        if loud.is_empty() || Instant::now() >= deadline {
            break loud;
        }
        std::thread::sleep(Duration::from_secs(1));
    };
    for (name, expr, series) in loud {
        let why = ALERTS
            .iter()
            .find(|(n, _)| n == name)
            .map_or("", |(_, w)| w);
        failures.push(format!(
            "alert {name}: returns {series} {QUIET_TIMEOUT:?} after a healthy run; expected \
             nothing: {why}\n  expr: {expr}"
        ));
    }
    for (name, expr) in &alerts {
        let selectors = match promql::selectors(expr) {
            Ok(selectors) => selectors,
            Err(e) => {
                failures.push(format!("alert {name}: cannot read its selectors: {e:#}"));
                continue;
            }
        };
        for selector in selectors {
            if run
                .query(&format!("count({selector})"))?
                .values()?
                .is_empty()
            {
                failures.push(format!(
                    "alert {name}: selects {selector}, which has no series: the alert is quiet \
                     for want of data\n  expr: {expr}"
                ));
            }
        }
    }

    // The worker-down alert can return something: stop the worker.
    let Some((_, worker_down)) = alerts.iter().find(|(n, _)| n == "RollcallWorkerDown") else {
        return Ok(());
    };
    let worker = run.targets[WORKER_JOB].to_string();
    run.stop("rollcall worker")?;
    let fired = poll(
        "RollcallWorkerDown returns the stopped worker",
        Duration::from_secs(30),
        || {
            let result = run.query(worker_down)?;
            result.values()?;
            Ok(result
                .series()
                .iter()
                .any(|l| {
                    l.get("job").map(String::as_str) == Some(WORKER_JOB)
                        && l.get("instance") == Some(&worker)
                })
                .then_some(()))
        },
    );
    if let Err(e) = fired {
        failures.push(format!(
            "alert RollcallWorkerDown: {e:#}\n  expr: {worker_down}"
        ));
    }
    Ok(())
}
