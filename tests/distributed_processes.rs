//! The distributed wiring as an operator runs it: separate `rollcall` processes (a simulated
//! fleet, a coordinator, two workers, `submit` / `watch` clients) over the real RabbitMQ and
//! Redis, with the 20,000-address fleet tests/dist/fleet-20k.toml and the settings
//! tests/dist/rollcall.toml. Each test checks exact outcomes: every input row comes back once
//! with the fleet's ground truth, the final counts are exact (done = total = the sum of the
//! counts by status), the store recorded each item once, and the fleet saw no 503, no other
//! protocol fault, and never more connections at once on a host than the per-site session cap.
//!
//! - Two workers against one `rollcall verify` (the embedded engine) on a fresh copy of the
//!   same fleet: the same verdicts.
//! - The worker with the most live sessions (by its metrics) SIGKILLed at 30% recorded: the
//!   survivor takes over its shards and, within the dead worker's short session leases, its
//!   sites; the campaign ends within 45 s of its pace before the kill.
//! - A worker stopped with SIGTERM at 30% recorded (a drain): it exits cleanly having released
//!   its shard leases, and the other takes its shards over at once.
//! - The coordinator SIGKILLed at 30% and started again with the same flags: a watcher that was
//!   following the campaign reconnects and sees it end, and so does one that only comes later.
//! - Every Redis connection of the coordinator and the workers killed (`CLIENT KILL`) at 30%
//!   and again at 60%.
//!
//! The fault tests use the same 20,000-address fleet as the first: a campaign takes about 25 s
//! here, the four tests about two minutes. RabbitMQ restarted mid-campaign is
//! tests/distributed_broker_restart.rs (it stops the whole broker, so it runs alone).
//!
//! Needs Redis on 127.0.0.1:6379 and RabbitMQ on 127.0.0.1:5672 (`bash scripts/services.sh`):
//! without them each test fails under `CI` and is skipped loudly otherwise. Every test uses
//! its own prefix for Redis keys and AMQP names and deletes them at the end. The tests run one
//! at a time (see `support_dist::serial`).
//!
//! ```text
//! cargo test -p rollcall --test distributed_processes -- --nocapture
//! ```

mod support_dist;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use rollcall_amqp::shard_of;
use rollcall_core::Site;
use rollcall_dns::{MxResolver, ResolverConfig};
use support_dist::run::{KILL_AT_PERCENT, Run, path_arg, report_time};
use support_dist::{
    CAMPAIGN_TIMEOUT, SHARDS, Sim, fleet_file, free_port, local_ports_to, read_rows, scrape_metric,
    serial, services_available, wait_for,
};

#[test]
fn coordinator_and_two_workers_match_the_embedded_run_and_the_truth() {
    const TEST: &str = "coordinator_and_two_workers_match_the_embedded_run_and_the_truth";
    let _serial = serial();
    if !services_available(TEST) {
        return;
    }
    let started = Instant::now();
    let mut run = Run::start("dist-embedded");
    let metrics = [free_port(), free_port()];
    let half = SHARDS / 2;
    for (name, port) in ["w1", "w2"].into_iter().zip(metrics) {
        let extra = ["--metrics-listen".to_string(), format!("127.0.0.1:{port}")];
        run.worker(name, Some(half), half as usize, &extra);
    }
    let out = run.submit_and_wait();
    run.finish_client("submit", &out);
    for (name, port) in ["w1", "w2"].into_iter().zip(metrics) {
        let transactions = scrape_metric(port, "rollcall_smtp_transactions_total")
            .unwrap_or_else(|e| panic!("{name}'s metrics: {e}"));
        assert!(transactions > 0.0, "{name} ran no SMTP transaction");
    }
    run.assert_fleet_polite();

    // The embedded engine (one `rollcall verify` process) on a fresh copy of the fleet.
    let embedded_sim = Sim::start(&mut run.procs, &run.scratch, "sim-embedded", &fleet_file());
    assert_eq!(embedded_sim.addresses, run.sim.addresses, "the same fleet");
    let embedded_out = run.scratch.path("embedded.jsonl");
    let mut args = vec![
        "verify".to_string(),
        path_arg(&embedded_sim.list),
        "-o".into(),
        path_arg(&embedded_out),
        "--format".into(),
        "jsonl".into(),
        "--progress".into(),
        "log".into(),
    ];
    args.extend(embedded_sim.engine_args());
    run.procs.spawn(&run.scratch, "verify", &args);
    let status = run.procs.wait("verify", CAMPAIGN_TIMEOUT);
    assert!(
        status.success(),
        "rollcall verify exited with {status}:\n{}",
        run.procs.log("verify")
    );
    embedded_sim.stop(&mut run.procs).assert_polite();

    let distributed = read_rows(&out);
    let embedded = read_rows(&embedded_out);
    assert_eq!(embedded.len(), distributed.len(), "one row per address");
    let key = |row: &serde_json::Value| {
        // Not `mx`: which host of a site answers depends on which sessions were free.
        let fields = ["status", "reason", "smtp_code", "enhanced_code", "flags"];
        fields.map(|f| row[f].to_string()).join(" ")
    };
    let by_row = |rows: &[serde_json::Value]| {
        rows.iter()
            .map(|r| (r["row"].as_u64().unwrap_or_default(), r.clone()))
            .collect::<std::collections::HashMap<_, _>>()
    };
    let (distributed, embedded) = (by_row(&distributed), by_row(&embedded));
    let mut differ = Vec::new();
    for (i, truth) in run.sim.truth.iter().enumerate() {
        let row = i as u64 + 1;
        let (d, e) = (&distributed[&row], &embedded[&row]);
        if truth.deterministic && key(d) != key(e) {
            differ.push(format!("row {row}:\n  distributed {d}\n  embedded    {e}"));
        }
    }
    assert!(
        differ.is_empty(),
        "{} rows differ between the distributed and the embedded run:\n{}",
        differ.len(),
        differ[..differ.len().min(30)].join("\n")
    );
    report_time(TEST, started);
}

/// The site with the most addresses of the list, and how many: each domain resolved through
/// the fleet's DNS and grouped into sites the way the coordinator does (`Site::from_mx_hosts`).
fn busiest_site(sim: &Sim) -> (String, usize) {
    let mut per_domain: HashMap<&str, usize> = HashMap::new();
    for address in &sim.addresses {
        if let Some((_, domain)) = address.rsplit_once('@') {
            *per_domain.entry(domain).or_default() += 1;
        }
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    let resolver = MxResolver::new(ResolverConfig {
        nameservers: vec![sim.dns.parse().expect("the sim's DNS address")],
        allow_private_targets: true,
        ..ResolverConfig::default()
    })
    .expect("a resolver");
    let mut per_site: HashMap<String, usize> = HashMap::new();
    runtime.block_on(async {
        for (domain, count) in &per_domain {
            let resolution = resolver.resolve(domain).await;
            let names: Vec<&str> = resolution.hosts().iter().map(|h| h.name.as_str()).collect();
            if names.is_empty() {
                continue;
            }
            *per_site
                .entry(Site::from_mx_hosts(&names).id().to_string())
                .or_default() += count;
        }
    });
    per_site
        .into_iter()
        .max_by_key(|(site, count)| (*count, site.clone()))
        .expect("the list has sites")
}

/// The worker holding shard `shard`'s lease.
fn shard_holder(run: &mut Run, shard: u32) -> Option<String> {
    let key = format!("{}:{{h:shard:{shard}}}:leases", run.deployment.prefix);
    run.redis
        .strings(&["ZRANGE", &key, "0", "-1"])
        .first()
        .and_then(|m| m.split_once(':'))
        .map(|(holder, _)| holder.to_string())
}

#[test]
fn the_worker_serving_the_busiest_sites_killed_mid_campaign_stalls_nothing() {
    const TEST: &str = "the_worker_serving_the_busiest_sites_killed_mid_campaign_stalls_nothing";
    let _serial = serial();
    if !services_available(TEST) {
        return;
    }
    let started = Instant::now();
    let mut run = Run::start("dist-worker-kill");
    // Both workers as a user runs them (no shard cap): fair share gives each half.
    let metrics: Vec<(&str, u16)> = vec![("w1", free_port()), ("w2", free_port())];
    for (name, port) in &metrics {
        let extra = ["--metrics-listen".to_string(), format!("127.0.0.1:{port}")];
        run.worker(name, None, 0, &extra);
    }
    for (name, _) in &metrics {
        run.deployment
            .wait_for_shards(&mut run.redis, name, (SHARDS / 2) as usize);
    }
    let out = run.submit_and_wait();
    let submitted = Instant::now();
    let (_, done) = run.wait_for_share(KILL_AT_PERCENT);
    let before_kill = submitted.elapsed();
    // The victim: the worker serving the busiest site (the holder of its shard), which its
    // metrics show probing and the store shows holding session slots.
    let (site, addresses) = busiest_site(&run.sim);
    let shard = shard_of(&site, SHARDS);
    let victim = shard_holder(&mut run, shard).expect("the busiest site's shard is held");
    let victim = metrics
        .iter()
        .map(|(name, _)| *name)
        .find(|name| *name == victim)
        .expect("a worker of this test holds it");
    let survivor = if victim == "w1" { "w2" } else { "w1" };
    let port = metrics.iter().find(|(n, _)| *n == victim).map(|(_, p)| *p);
    let active = port
        .map(|port| scrape_metric(port, "rollcall_smtp_sessions_active"))
        .and_then(Result::ok)
        .unwrap_or_default();
    let stranded = run.session_leases_held(victim);
    assert!(
        active >= 1.0 && stranded >= 1,
        "the victim serves sessions when it is killed ({active} active, {stranded} slots)"
    );
    run.procs.kill(victim);
    eprintln!(
        "{TEST}: killed {victim}, serving the busiest site {site} ({addresses} addresses, shard \
         {shard}; {active} sessions, {stranded} session slots in the store) at {done} of {} \
         recorded, {:.1}s after submit",
        run.rows(),
        before_kill.as_secs_f64()
    );

    run.finish_client("submit", &out);
    run.assert_within_pace_after_kill(TEST, submitted, before_kill, done);
    run.deployment
        .wait_for_shards(&mut run.redis, survivor, SHARDS as usize);
    run.assert_fleet_polite();
    report_time(TEST, started);
}

#[test]
fn a_worker_stopped_with_sigterm_hands_its_work_over_and_loses_nothing() {
    const TEST: &str = "a_worker_stopped_with_sigterm_hands_its_work_over_and_loses_nothing";
    let _serial = serial();
    if !services_available(TEST) {
        return;
    }
    let started = Instant::now();
    let mut run = Run::start("dist-worker-term");
    let half = SHARDS / 2;
    run.worker("leaving", Some(half), half as usize, &[]);
    run.worker("staying", None, (SHARDS - half) as usize, &[]);
    let out = run.submit_and_wait();
    let (_, done) = run.wait_for_share(KILL_AT_PERCENT);
    // A drain (scale-down, rolling update): the worker finishes the batches in hand or
    // returns them, releases its shard leases and exits cleanly.
    let status = run.procs.terminate("leaving", Duration::from_secs(120));
    assert!(
        status.success(),
        "the worker stopped with SIGTERM exited with {status}:\n{}",
        run.procs.log("leaving")
    );
    assert_eq!(
        run.deployment.shards_held(&mut run.redis, "leaving"),
        0,
        "its shard leases are released at exit, not left to lapse"
    );
    eprintln!(
        "{TEST}: stopped the leaving worker at {done} of {} recorded",
        run.rows()
    );
    run.deployment
        .wait_for_shards(&mut run.redis, "staying", SHARDS as usize);
    run.finish_client("submit", &out);
    run.assert_fleet_polite();
    report_time(TEST, started);
}

#[test]
fn a_restarted_coordinator_finishes_the_campaign_and_a_watcher_sees_it() {
    const TEST: &str = "a_restarted_coordinator_finishes_the_campaign_and_a_watcher_sees_it";
    let _serial = serial();
    if !services_available(TEST) {
        return;
    }
    let started = Instant::now();
    let mut run = Run::start("dist-coordinator-restart");
    run.two_workers();
    let campaign = run.submit();

    // A watcher following the campaign, results included, when the coordinator dies: it has
    // to reconnect to the restarted one to see the end.
    let watched = run.scratch.path("watched.jsonl");
    run.watch("watch", &campaign, Some(&watched));
    wait_for(
        "the watcher's first results",
        Duration::from_secs(60),
        || {
            std::fs::metadata(&watched)
                .is_ok_and(|m| m.len() > 0)
                .then_some(())
        },
    );
    let (in_store, done) = run.wait_for_share(KILL_AT_PERCENT);
    assert_eq!(
        in_store, campaign,
        "the store's campaign is the submitted one"
    );
    run.procs.kill("coordinator");
    eprintln!(
        "{TEST}: killed the coordinator at {done} of {} recorded",
        run.rows()
    );
    run.deployment.start_coordinator(
        &mut run.procs,
        &run.scratch,
        &run.sim,
        "coordinator-2",
        run.port,
    );
    // And one that only comes to the restarted coordinator.
    let late = run.scratch.path("late.jsonl");
    run.watch("watch-late", &campaign, Some(&late));

    for (name, out) in [("watch", &watched), ("watch-late", &late)] {
        let finished = run.finish_client(name, out);
        assert_eq!(
            finished, campaign,
            "one campaign, before and after the restart"
        );
    }
    run.assert_fleet_polite();
    report_time(TEST, started);
}

/// Kills (`CLIENT KILL ID`) every Redis connection of the processes named, and only theirs:
/// their connections' local ports (from /proc) matched against `CLIENT LIST`. Returns how
/// many were killed per process.
fn kill_redis_connections(run: &mut Run, names: &[&str]) -> Vec<(String, usize)> {
    let clients = run.redis.clients();
    let mut killed = Vec::new();
    for name in names {
        let pid = run.procs.pid(name);
        let ports = local_ports_to(pid, 6379);
        let mut count = 0;
        for (id, addr) in &clients {
            let port = addr.rsplit(':').next().and_then(|p| p.parse::<u16>().ok());
            if port.is_some_and(|p| ports.contains(&p)) {
                let reply = run.redis.int(&["CLIENT", "KILL", "ID", id]);
                count += reply as usize;
            }
        }
        killed.push((name.to_string(), count));
    }
    killed
}

#[test]
fn redis_connections_killed_mid_campaign_are_survived() {
    const TEST: &str = "redis_connections_killed_mid_campaign_are_survived";
    let _serial = serial();
    if !services_available(TEST) {
        return;
    }
    let started = Instant::now();
    let mut run = Run::start("dist-redis-kill");
    run.two_workers();
    let out = run.submit_and_wait();
    let processes = ["coordinator", "w1", "w2"];
    for percent in [KILL_AT_PERCENT, 2 * KILL_AT_PERCENT] {
        let (_, done) = run.wait_for_share(percent);
        let killed = kill_redis_connections(&mut run, &processes);
        eprintln!("{TEST}: at {done} recorded, killed Redis connections {killed:?}");
        for (name, count) in &killed {
            assert!(*count >= 1, "{name} had no Redis connection to kill");
        }
    }
    run.finish_client("submit", &out);
    // Every process reconnected.
    wait_for(
        "every process to be connected to Redis again",
        Duration::from_secs(60),
        || {
            processes
                .iter()
                .all(|name| !local_ports_to(run.procs.pid(name), 6379).is_empty())
                .then_some(())
        },
    );
    run.assert_fleet_polite();
    report_time(TEST, started);
}
