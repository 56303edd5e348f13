//! Shared by the multi-process tests of the distributed wiring (tests/distributed_processes.rs,
//! tests/distributed_broker_restart.rs): the `rollcall` processes they start (a simulated
//! fleet, a coordinator, workers, clients), the guards that stop them and delete every Redis key
//! and AMQP queue and exchange of a test, and the checks of a campaign's outcome against the
//! fleet's ground truth. `procs` holds the child processes and their logs; `run` puts the
//! parts together into one test's deployment.
//!
//! Only std is used to talk to the services: a small RESP client for Redis and a small AMQP
//! 0-9-1 client for deleting queues and exchanges (the root package does not depend on the
//! redis and lapin crates).
#![allow(dead_code)] // each test binary uses its own part of this module

pub mod amqp_admin;
mod procs;
pub mod redis_client;
pub mod run;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fs::File;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use serde_json::Value;

pub use self::procs::{Procs, Scratch};
pub use self::redis_client::Redis;

/// Where the services listen (scripts/services.sh starts them).
pub const REDIS_URL: &str = "redis://127.0.0.1:6379";
pub const AMQP_URL: &str = "amqp://guest:guest@127.0.0.1:5672/%2f";
const REDIS_PORT: u16 = 6379;
const AMQP_PORT: u16 = 5672;

/// Shard queues of every test fleet; each of two workers holds half.
pub const SHARDS: u32 = 8;
/// The per-site session cap every process runs with: `max_sessions` of the
/// `[shaping.default]` table of tests/dist/rollcall.toml.
pub fn session_cap() -> u64 {
    let path = config_file();
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut table = "";
    for line in text.lines().map(str::trim) {
        if line.starts_with('[') {
            table = line;
        } else if table == "[shaping.default]"
            && let Some((key, value)) = line.split_once('=')
            && key.trim() == "max_sessions"
        {
            return value
                .trim()
                .parse()
                .unwrap_or_else(|_| panic!("max_sessions in {}: {line}", path.display()));
        }
    }
    panic!("no max_sessions in [shaping.default] of {}", path.display());
}
/// How long a campaign of the test fleet may take, however loaded the machine.
pub const CAMPAIGN_TIMEOUT: Duration = Duration::from_secs(300);
/// A campaign with no new result recorded for this long is stuck: the fleet's slowest path
/// (a dead site's retries, tests/dist/rollcall.toml) takes a few seconds.
pub const STALL_TIMEOUT: Duration = Duration::from_secs(60);

/// The rollcall binary under test.
pub fn rollcall_bin() -> &'static str {
    env!("CARGO_BIN_EXE_rollcall")
}

/// A file under tests/dist/.
pub fn dist_file(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/dist")
        .join(name)
}

/// The test fleet: 20,000 addresses on 40 sites.
pub fn fleet_file() -> PathBuf {
    dist_file("fleet-20k.toml")
}

/// The settings every process of a test reads with `--config`.
pub fn config_file() -> PathBuf {
    dist_file("rollcall.toml")
}

/// True when Redis and RabbitMQ listen. Without them: a failure under `CI` naming the command
/// that starts them, a loud notice otherwise.
pub fn services_available(test: &str) -> bool {
    let missing: Vec<String> = [("Redis", REDIS_PORT), ("RabbitMQ", AMQP_PORT)]
        .into_iter()
        .filter(|(_, port)| {
            let addr = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), *port);
            TcpStream::connect_timeout(&addr, Duration::from_secs(2)).is_err()
        })
        .map(|(name, port)| format!("{name} on 127.0.0.1:{port}"))
        .collect();
    if missing.is_empty() {
        return true;
    }
    let how = format!(
        "not reachable: {}; start them with `bash scripts/services.sh`",
        missing.join(", ")
    );
    if std::env::var_os("CI").is_some() {
        panic!("{test}: {how}");
    }
    eprintln!("\n!!!!!!!! SKIPPED {test}: {how}\n!!!!!!!! (under CI this is a failure)\n");
    false
}

/// Runs the tests of one binary one after another: each starts a fleet and four processes, and
/// a 2-core machine runs them faster (and their clocks stay meaningful) one at a time.
pub fn serial() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A random tag for names no other test run uses.
pub fn unique_tag() -> String {
    use std::hash::{BuildHasher, Hasher};
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u32(std::process::id());
    hasher.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default(),
    );
    format!("{:016x}", hasher.finish())
}

/// A TCP port free on 127.0.0.1 right now.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

/// Polls `check` every 100 ms until it gives a value; panics with `what` after `timeout`.
pub fn wait_for<T>(what: &str, timeout: Duration, mut check: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = check() {
            return value;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// One row of the fleet's ground truth.
#[derive(Debug, Clone, serde::Deserialize)]
pub struct TruthRow {
    pub address: String,
    pub status: String,
    pub reason: String,
    pub deterministic: bool,
    pub behaviour: String,
}

/// A `rollcall sim` process: where it listens, its list and its ground truth.
pub struct Sim {
    pub name: String,
    pub dns: String,
    pub smtp_port: u16,
    pub list: PathBuf,
    pub addresses: Vec<String>,
    pub truth: Vec<TruthRow>,
    /// The config file every engine process aimed at this fleet takes.
    pub config: PathBuf,
}

/// The fleet's counters, as `rollcall sim` prints them when interrupted.
pub struct Counters {
    pub totals: Value,
    pub hosts: BTreeMap<String, Value>,
    /// Per client address (the probers' egresses), summed over hosts.
    pub clients: BTreeMap<String, Value>,
}

impl Sim {
    /// Starts `rollcall sim` on `fleet` with random ports and waits until it serves.
    pub fn start(procs: &mut Procs, scratch: &Scratch, name: &str, fleet: &Path) -> Sim {
        let list = scratch.path(&format!("{name}-list.txt"));
        let truth = scratch.path(&format!("{name}-truth.jsonl"));
        let args: Vec<String> = vec![
            "sim".into(),
            "--fleet".into(),
            fleet.display().to_string(),
            "--smtp-port".into(),
            "0".into(),
            "--dns-listen".into(),
            "127.0.0.1:0".into(),
            "--truth".into(),
            truth.display().to_string(),
            "--addresses".into(),
            list.display().to_string(),
        ];
        procs.spawn(scratch, name, &args);
        let out = wait_for("the fleet to serve", Duration::from_secs(120), || {
            let text = procs.log(name);
            text.contains("addresses to verify").then_some(text)
        });
        let dns = out
            .lines()
            .find_map(|l| l.strip_prefix("dns"))
            .and_then(|rest| rest.split_whitespace().next())
            .expect("the fleet prints its DNS address")
            .to_string();
        let smtp_port = out
            .lines()
            .find_map(|l| l.strip_prefix("smtp"))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|addr| addr.parse::<SocketAddr>().ok())
            .map(|addr| addr.port())
            .expect("the fleet prints its SMTP hosts");
        let addresses: Vec<String> = std::fs::read_to_string(&list)
            .expect("the fleet's list")
            .lines()
            .map(str::to_string)
            .collect();
        let truth: Vec<TruthRow> = std::fs::read_to_string(&truth)
            .expect("the fleet's truth")
            .lines()
            .map(|l| serde_json::from_str(l).expect("a truth row"))
            .collect();
        assert_eq!(addresses.len(), truth.len(), "one truth row per address");
        for (a, t) in addresses.iter().zip(&truth) {
            assert_eq!(a, &t.address, "truth and list in the same order");
        }
        Sim {
            name: name.to_string(),
            dns,
            smtp_port,
            list,
            addresses,
            truth,
            config: config_file(),
        }
    }

    /// Stops the fleet (Ctrl-C) and reads the counters it prints.
    pub fn stop(&self, procs: &mut Procs) -> Counters {
        let status = procs.interrupt(&self.name, Duration::from_secs(60));
        assert!(status.success(), "rollcall sim exited with {status}");
        let text = procs.log(&self.name);
        let mut totals = None;
        let mut hosts = BTreeMap::new();
        let mut clients = BTreeMap::new();
        let after = text
            .split_once("Ctrl-C stops\n")
            .map_or(text.as_str(), |(_, after)| after);
        for line in after.lines() {
            let Some(brace) = line.find('{') else {
                continue;
            };
            let (name, json) = line.split_at(brace);
            let Ok(value) = serde_json::from_str::<Value>(json) else {
                continue;
            };
            match name.trim() {
                "totals" => totals = Some(value),
                client if client.starts_with("client ") => {
                    clients.insert(client["client ".len()..].to_string(), value);
                }
                host => {
                    hosts.insert(host.to_string(), value);
                }
            }
        }
        Counters {
            totals: totals.expect("the fleet prints its totals when interrupted"),
            hosts,
            clients,
        }
    }

    /// The engine flags that aim a process at this fleet.
    pub fn engine_args(&self) -> Vec<String> {
        vec![
            "--config".into(),
            self.config.display().to_string(),
            "--dns".into(),
            self.dns.clone(),
            "--smtp-port".into(),
            self.smtp_port.to_string(),
            "--allow-private".into(),
        ]
    }
}

impl Counters {
    fn total(&self, field: &str) -> u64 {
        self.totals[field]
            .as_u64()
            .unwrap_or_else(|| panic!("counter {field} in {}", self.totals))
    }

    /// The fleet saw nothing out of sequence, no pipelining it did not offer, no DATA, no
    /// error-budget trip, and never more connections at once on a host than the site cap.
    pub fn assert_polite(&self) {
        assert!(self.total("connections") > 0, "the fleet saw no connection");
        for field in [
            "replies_503",
            "pipelining_violations",
            "pregreet_violations",
            "data_commands",
            "error_budget_trips",
        ] {
            assert_eq!(self.total(field), 0, "{field}: {}", self.totals);
        }
        let cap = session_cap();
        let busiest = self
            .hosts
            .values()
            .filter_map(|c| c["max_concurrent_connections"].as_u64())
            .max()
            .unwrap_or(0);
        eprintln!("the busiest host saw {busiest} connections at once (cap {cap})");
        assert!(
            busiest > 1,
            "no host ever had two connections at once: the load never came near the cap, so \
             checking it proves nothing"
        );
        let over: Vec<String> = self
            .hosts
            .iter()
            .filter(|(_, c)| c["max_concurrent_connections"].as_u64() > Some(cap))
            .map(|(host, c)| format!("{host}: {c}"))
            .collect();
        assert!(
            over.is_empty(),
            "hosts saw more than {cap} connections at once (the per-site session cap):\n{}",
            over.join("\n")
        );
    }
}

/// The names every process of one test shares: the prefix of its Redis keys and AMQP queues.
/// Dropping it deletes those keys, queues and exchanges (also when the test fails).
pub struct Deployment {
    pub prefix: String,
}

impl Deployment {
    pub fn new(tag: &str) -> Deployment {
        Deployment {
            prefix: format!("rcproc-{tag}"),
        }
    }

    /// The flags every distributed process of this deployment takes.
    pub fn fleet_args(&self) -> Vec<String> {
        vec![
            "--amqp".into(),
            AMQP_URL.into(),
            "--redis".into(),
            REDIS_URL.into(),
            "--prefix".into(),
            self.prefix.clone(),
            "--shards".into(),
            SHARDS.to_string(),
        ]
    }

    /// Starts a coordinator named `name` serving on `port`, and waits until it listens.
    pub fn start_coordinator(
        &self,
        procs: &mut Procs,
        scratch: &Scratch,
        sim: &Sim,
        name: &str,
        port: u16,
    ) {
        let mut args = vec![
            "coordinator".to_string(),
            "--listen".into(),
            format!("127.0.0.1:{port}"),
        ];
        args.extend(self.fleet_args());
        args.extend(sim.engine_args());
        procs.spawn(scratch, name, &args);
        let addr = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), port);
        wait_for(
            &format!("{name} to listen on {addr}"),
            Duration::from_secs(60),
            || {
                if let Some(status) = procs.try_wait(name) {
                    panic!("{name} exited with {status}:\n{}", procs.log(name));
                }
                TcpStream::connect_timeout(&addr, Duration::from_secs(1))
                    .is_ok()
                    .then_some(())
            },
        );
    }

    /// Starts a worker whose id (in shard leases) is `name`.
    pub fn start_worker(
        &self,
        procs: &mut Procs,
        scratch: &Scratch,
        sim: &Sim,
        name: &str,
        max_shards: Option<u32>,
        extra: &[String],
    ) {
        let mut args = vec!["worker".to_string(), "--worker-id".into(), name.into()];
        if let Some(max) = max_shards {
            args.extend(["--max-shards".into(), max.to_string()]);
        }
        args.extend(self.fleet_args());
        args.extend(sim.engine_args());
        args.extend(extra.iter().cloned());
        procs.spawn(scratch, name, &args);
    }

    /// Waits until `worker` holds `shards` shard leases.
    pub fn wait_for_shards(&self, redis: &mut Redis, worker: &str, shards: usize) {
        wait_for(
            &format!("{worker} to hold {shards} shard leases"),
            Duration::from_secs(60),
            || (self.shards_held(redis, worker) == shards).then_some(()),
        );
    }

    /// How many shard leases `worker` holds (members `<holder>:<random>` of each shard's
    /// lease set, crates/redis/src/keys.rs).
    pub fn shards_held(&self, redis: &mut Redis, worker: &str) -> usize {
        let holder = format!("{worker}:");
        (0..SHARDS)
            .filter(|shard| {
                let key = format!("{}:{{h:shard:{shard}}}:leases", self.prefix);
                redis
                    .strings(&["ZRANGE", &key, "0", "-1"])
                    .iter()
                    .any(|member| member.starts_with(&holder))
            })
            .count()
    }

    /// The id of the one campaign this deployment runs, once its progress exists in Redis.
    pub fn campaign_id(&self, redis: &mut Redis) -> String {
        let pattern = format!("{}:{{c:*}}:progress", self.prefix);
        let open = format!("{}:{{c:", self.prefix);
        wait_for("the campaign's progress in Redis", CAMPAIGN_TIMEOUT, || {
            let keys = redis.scan(&pattern);
            assert!(keys.len() <= 1, "more than one campaign: {keys:?}");
            keys.first()
                .and_then(|k| k.strip_prefix(&open))
                .and_then(|rest| rest.split_once('}'))
                .map(|(id, _)| id.to_string())
        })
    }

    /// The store's count of results recorded for `campaign` (the `done` field of its progress
    /// hash), 0 before the first.
    pub fn recorded(&self, redis: &mut Redis, campaign: &str) -> u64 {
        let key = format!("{}:{{c:{campaign}}}:progress", self.prefix);
        redis.int_field(&key, "done").unwrap_or(0)
    }

    /// Waits until the store has recorded at least `at_least` results of `campaign`.
    pub fn wait_for_recorded(&self, redis: &mut Redis, campaign: &str, at_least: u64) -> u64 {
        wait_for(
            &format!("{at_least} results recorded"),
            CAMPAIGN_TIMEOUT,
            || {
                let done = self.recorded(redis, campaign);
                (done >= at_least).then_some(done)
            },
        )
    }

    /// The store holds each of `rows` items' results once: its `done` counter and its set of
    /// recorded items both count exactly `rows`.
    pub fn assert_recorded_once(&self, redis: &mut Redis, campaign: &str, rows: u64) {
        let progress = format!("{}:{{c:{campaign}}}:progress", self.prefix);
        let recorded = format!("{}:{{c:{campaign}}}:recorded", self.prefix);
        let done = redis.int_field(&progress, "done");
        let items = redis.int(&["HLEN", &recorded]);
        assert_eq!(
            (done, items),
            (Some(rows), rows),
            "the store's done counter and recorded items ({progress}, {recorded})"
        );
    }
}

impl Drop for Deployment {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!(
                "----- RabbitMQ queues of {} -----\n{}",
                self.prefix,
                amqp_admin::queue_report(&self.prefix)
            );
        }
        let mut failures = Vec::new();
        match Redis::connect() {
            Ok(mut redis) => {
                let keys = redis.scan(&format!("{}:*", self.prefix));
                for chunk in keys.chunks(500) {
                    let mut args = vec!["DEL"];
                    args.extend(chunk.iter().map(String::as_str));
                    if let Err(e) = redis.cmd(&args) {
                        failures.push(format!("deleting Redis keys: {e}"));
                    }
                }
            }
            Err(e) => failures.push(format!("connecting to Redis: {e}")),
        }
        if let Err(e) = amqp_admin::delete_topology(&self.prefix, SHARDS) {
            failures.push(format!("deleting the AMQP topology: {e}"));
        }
        if !failures.is_empty() {
            eprintln!(
                "cleanup of prefix {} incomplete: {}",
                self.prefix,
                failures.join("; ")
            );
        }
    }
}

/// Arguments of a client command (`submit`, `watch`) aimed at the coordinator on `port`.
pub fn client_args(command: &str, port: u16, rest: &[&str]) -> Vec<String> {
    let mut args = vec![
        command.to_string(),
        "--coordinator".into(),
        format!("http://127.0.0.1:{port}"),
    ];
    args.extend(rest.iter().map(|s| s.to_string()));
    args
}

/// A campaign's final counts as `rollcall submit --wait` / `rollcall watch` report them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FinalCounts {
    pub done: u64,
    pub total: u64,
    pub deliverable: u64,
    pub undeliverable: u64,
    pub risky: u64,
    pub unknown: u64,
}

fn number(text: &str) -> Option<u64> {
    text.trim().replace(',', "").parse().ok()
}

/// The last `rollcall: D of T verified (R/s); deliverable N, undeliverable N, risky N,
/// unknown N` line of a client's output (crates/cli/src/watch.rs `progress_line`).
pub fn final_counts(log: &str) -> FinalCounts {
    let line = log
        .lines()
        .rev()
        .filter_map(|l| l.strip_prefix("rollcall: "))
        .find(|l| l.contains(" verified (") && !l.contains("rows verified"))
        .unwrap_or_else(|| panic!("no final progress line in:\n{log}"));
    let parse = || -> Option<FinalCounts> {
        let (done, rest) = line.split_once(" of ")?;
        let (total, rest) = rest.split_once(" verified (")?;
        let (_, rest) = rest.split_once("); ")?;
        let mut by_status = HashMap::new();
        for part in rest.split(", ") {
            let (name, n) = part.split_once(' ')?;
            by_status.insert(name, number(n)?);
        }
        Some(FinalCounts {
            done: number(done)?,
            total: number(total)?,
            deliverable: *by_status.get("deliverable")?,
            undeliverable: *by_status.get("undeliverable")?,
            risky: *by_status.get("risky")?,
            unknown: *by_status.get("unknown")?,
        })
    };
    parse().unwrap_or_else(|| panic!("cannot read the counts in `{line}`"))
}

/// The rows of a JSONL results file.
pub fn read_rows(path: &Path) -> Vec<Value> {
    let file = File::open(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    BufReader::new(file)
        .lines()
        .map(|l| l.expect("a results line"))
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(&l).unwrap_or_else(|e| panic!("bad JSONL row {l}: {e}")))
        .collect()
}

fn text(row: &Value, field: &str) -> String {
    row[field].as_str().unwrap_or_default().to_string()
}

/// Checks a campaign's results against the fleet: every input row comes back exactly once
/// (the `row` column is the input line number), with the fleet's ground truth as its verdict
/// (rows the truth marks non-deterministic excepted), and `counts` are exactly the results'
/// counts by status, done and total equal to the number of rows. Returns the verdicts by
/// row.
pub fn assert_complete_and_true(
    sim: &Sim,
    rows: &[Value],
    counts: FinalCounts,
) -> HashMap<u64, (String, String)> {
    let n = sim.addresses.len() as u64;
    let mut by_row: HashMap<u64, (String, String)> = HashMap::new();
    let mut repeated = Vec::new();
    for row in rows {
        let number = row["row"].as_u64().unwrap_or_else(|| panic!("row: {row}"));
        assert!(
            (1..=n).contains(&number),
            "row number {number} out of 1..={n}: {row}"
        );
        let index = (number - 1) as usize;
        assert_eq!(
            text(row, "address"),
            sim.addresses[index],
            "row {number} is input line {number}"
        );
        if by_row
            .insert(number, (text(row, "status"), text(row, "reason")))
            .is_some()
        {
            repeated.push(number);
        }
    }
    assert!(repeated.is_empty(), "rows written twice: {repeated:?}");
    let missing: Vec<u64> = (1..=n).filter(|r| !by_row.contains_key(r)).collect();
    assert!(
        missing.is_empty(),
        "{} rows have no result, e.g. {:?}",
        missing.len(),
        &missing[..missing.len().min(20)]
    );

    let mut mismatches = Vec::new();
    for (i, truth) in sim.truth.iter().enumerate() {
        let got = &by_row[&(i as u64 + 1)];
        if truth.deterministic && (got.0 != truth.status || got.1 != truth.reason) {
            mismatches.push(format!(
                "{} ({}): want {}/{}, got {}/{}",
                truth.address, truth.behaviour, truth.status, truth.reason, got.0, got.1
            ));
        }
    }
    assert!(
        mismatches.is_empty(),
        "{} verdicts differ from the truth:\n{}",
        mismatches.len(),
        mismatches[..mismatches.len().min(50)].join("\n")
    );

    let count = |status: &str| by_row.values().filter(|(s, _)| s == status).count() as u64;
    let expected = FinalCounts {
        done: n,
        total: n,
        deliverable: count("deliverable"),
        undeliverable: count("undeliverable"),
        risky: count("risky"),
        unknown: count("unknown"),
    };
    assert_eq!(counts, expected, "the campaign's final counts");
    assert_eq!(
        counts.deliverable + counts.undeliverable + counts.risky + counts.unknown,
        counts.total,
        "counts by status add up to the total"
    );
    by_row
}

/// Reads a process's Prometheus metric (the sum over its label sets) from `/metrics` on
/// `port`.
pub fn scrape_metric(port: u16, metric: &str) -> io::Result<f64> {
    let mut stream = TcpStream::connect(("127.0.0.1", port))?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    write!(
        stream,
        "GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    )?;
    let mut body = String::new();
    stream.read_to_string(&mut body)?;
    let mut sum = 0.0;
    for line in body.lines() {
        let Some(rest) = line.strip_prefix(metric) else {
            continue;
        };
        if !(rest.starts_with(' ') || rest.starts_with('{')) {
            continue;
        }
        if let Some(value) = rest.rsplit(' ').next().and_then(|v| v.parse::<f64>().ok()) {
            sum += value;
        }
    }
    Ok(sum)
}

/// The local ports of the established TCP connections process `pid` holds to `remote_port`
/// on loopback (its socket inodes in /proc/PID/fd matched against /proc/net/tcp).
pub fn local_ports_to(pid: u32, remote_port: u16) -> HashSet<u16> {
    let inodes: HashSet<String> = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|dir| {
            dir.filter_map(Result::ok)
                .filter_map(|entry| std::fs::read_link(entry.path()).ok())
                .filter_map(|target| {
                    let target = target.to_string_lossy().into_owned();
                    target
                        .strip_prefix("socket:[")
                        .and_then(|rest| rest.strip_suffix(']'))
                        .map(str::to_string)
                })
                .collect()
        })
        .unwrap_or_default();
    let mut ports = HashSet::new();
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let Ok(text) = std::fs::read_to_string(table) else {
            continue;
        };
        for line in text.lines().skip(1) {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let (Some(local), Some(remote), Some(state), Some(inode)) =
                (fields.get(1), fields.get(2), fields.get(3), fields.get(9))
            else {
                continue;
            };
            // 01: ESTABLISHED; a socket the peer has closed but the process still holds
            // (CLOSE_WAIT) is not a live connection.
            if *state != "01" || !inodes.contains(*inode) {
                continue;
            }
            let port_of = |addr: &str| {
                addr.rsplit(':')
                    .next()
                    .and_then(|hex| u16::from_str_radix(hex, 16).ok())
            };
            if port_of(remote) == Some(remote_port)
                && let Some(port) = port_of(local)
            {
                ports.insert(port);
            }
        }
    }
    ports
}
