//! Egress scale-out in the distributed wiring, as an operator runs it: a simulated fleet whose
//! servers count per client IP like Postfix anvil (tests/dist/fleet-egress.toml), a
//! coordinator and two workers over the real RabbitMQ and Redis, each worker probing from its
//! own four egress addresses (127.0.1.1-4 and 127.0.2.1-4). No site rule spreads the largest
//! site: the coordinator spreads it over all shards unasked (it holds 1,183 of the 4,000 rows).
//!
//! A second test SIGKILLs the worker holding the most session slots in the middle of a
//! campaign: the campaign ends within its pace plus the dead worker's lease time, every row
//! once with the truth, and the greylist retries pinned to the dead worker's egresses are
//! retried from the survivor's and say so in their verdicts.
//!
//! Checked in the first: every row once with the fleet's truth; the fleet saw all eight addresses, none of
//! them beyond its per-IP session cap or any per-IP rate (`rate_limited` 0: an over-limit
//! reply would also have changed a verdict), no 503; every greylist retry came from the
//! address that was greylisted (`greylist_other_ip` 0, `greylist_passed` > 0); the largest
//! site was probed through egresses of both workers, and every probed row names its egress.
//!
//! Needs Redis and RabbitMQ (`bash scripts/services.sh`): without them the test fails under
//! `CI` and is skipped loudly otherwise.

mod support_dist;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Instant;

use support_dist::run::{Run, report_time};
use support_dist::{SHARDS, dist_file, read_rows, serial, services_available};

const W1: [&str; 4] = ["127.0.1.1", "127.0.1.2", "127.0.1.3", "127.0.1.4"];
const W2: [&str; 4] = ["127.0.2.1", "127.0.2.2", "127.0.2.3", "127.0.2.4"];
/// `max_sessions` of tests/dist/rollcall-egress.toml, and the fleet's `max_conns_per_ip`.
const SESSIONS_PER_EGRESS: u64 = 2;
const HOT_HOST: &str = "mx1.site1.test";

/// The egress world, a coordinator and two workers with four egresses each, as a user runs
/// them (no shard cap), once each holds its fair share of the shards.
fn egress_run(test: &str) -> Run {
    let mut run = Run::start_with(
        test,
        &dist_file("fleet-egress.toml"),
        &dist_file("rollcall-egress.toml"),
    );
    for (name, egresses) in [("w1", W1), ("w2", W2)] {
        let extra = ["--egress".to_string(), egresses.join(",")];
        run.worker(name, None, 0, &extra);
    }
    for name in ["w1", "w2"] {
        run.deployment
            .wait_for_shards(&mut run.redis, name, (SHARDS / 2) as usize);
    }
    run
}

#[test]
fn two_workers_with_four_egresses_each_share_a_hot_site_within_every_per_ip_limit() {
    const TEST: &str =
        "two_workers_with_four_egresses_each_share_a_hot_site_within_every_per_ip_limit";
    let _serial = serial();
    if !services_available(TEST) {
        return;
    }
    let started = Instant::now();
    let mut run = egress_run(TEST);
    let out = run.submit_and_wait();
    run.finish_client("submit", &out);
    let rows = read_rows(&out);
    let counters = run.sim.stop(&mut run.procs);

    let total = |field: &str| counters.totals[field].as_u64().unwrap_or(u64::MAX);
    for field in [
        "replies_503",
        "pipelining_violations",
        "data_commands",
        "error_budget_trips",
        "rate_limited",
        "connections_refused",
        "greylist_other_ip",
    ] {
        assert_eq!(total(field), 0, "{field}: {}", counters.totals);
    }
    assert!(
        total("greylist_passed") > 0,
        "greylisting was exercised: {}",
        counters.totals
    );
    let clients: BTreeSet<&str> = counters.clients.keys().map(String::as_str).collect();
    let expected: BTreeSet<&str> = W1.iter().chain(&W2).copied().collect();
    assert_eq!(
        clients, expected,
        "the fleet saw exactly the eight egresses"
    );
    for (ip, c) in &counters.clients {
        assert!(c["rcpts"].as_u64() > Some(0), "{ip} sent no RCPT: {c}");
        assert!(
            c["max_concurrent"].as_u64() <= Some(SESSIONS_PER_EGRESS),
            "{ip} had more than {SESSIONS_PER_EGRESS} sessions at once at a host: {c}"
        );
        assert_eq!(c["rate_limited"].as_u64(), Some(0), "{ip}: {c}");
    }

    // The hot site went out through both workers' egresses; every probed row names one.
    let mut hot_by_egress: BTreeMap<String, u64> = BTreeMap::new();
    for row in &rows {
        if row["mx"].as_str().is_some() {
            let egress = row["egress"]
                .as_str()
                .unwrap_or_else(|| panic!("a probed row names its egress: {row}"));
            assert!(expected.contains(egress), "{row}");
            if row["mx"] == HOT_HOST {
                *hot_by_egress.entry(egress.to_string()).or_default() += 1;
            }
        }
    }
    let hot: u64 = hot_by_egress.values().sum();
    eprintln!(
        "hot site {HOT_HOST}: {hot} of {} rows, by egress {hot_by_egress:?}",
        rows.len()
    );
    assert!(
        hot_by_egress.keys().any(|e| W1.contains(&e.as_str()))
            && hot_by_egress.keys().any(|e| W2.contains(&e.as_str())),
        "the hot site was probed by one worker only: {hot_by_egress:?}"
    );
    report_time(TEST, started);
}

#[test]
fn the_worker_with_the_most_egress_sessions_killed_mid_campaign_loses_nothing_and_says_so() {
    const TEST: &str =
        "the_worker_with_the_most_egress_sessions_killed_mid_campaign_loses_nothing_and_says_so";
    let _serial = serial();
    if !services_available(TEST) {
        return;
    }
    let started = Instant::now();
    let mut run = egress_run(TEST);
    let out = run.submit_and_wait();
    let submitted = Instant::now();
    let (_, done) = run.wait_for_share(support_dist::run::KILL_AT_PERCENT);
    let before_kill = submitted.elapsed();
    // Both workers probe the hot site; the victim is the one holding the most session slots
    // (its egresses' sessions), i.e. the most work in flight and the most greylist pins.
    let held = [
        ("w1", run.session_leases_held("w1")),
        ("w2", run.session_leases_held("w2")),
    ];
    let (victim, stranded) = held
        .iter()
        .max_by_key(|(name, n)| (*n, *name))
        .copied()
        .expect("two workers");
    assert!(stranded >= 1, "the victim holds session slots: {held:?}");
    run.procs.kill(victim);
    eprintln!(
        "{TEST}: killed {victim} ({stranded} session slots; {held:?}) at {done} of {} recorded, \
         {:.1}s after submit",
        run.rows(),
        before_kill.as_secs_f64()
    );

    run.finish_client("submit", &out);
    run.assert_within_pace_after_kill(TEST, submitted, before_kill, done);
    let rows = read_rows(&out);
    let counters = run.sim.stop(&mut run.procs);
    let total = |field: &str| counters.totals[field].as_u64().unwrap_or(u64::MAX);
    for field in ["replies_503", "pipelining_violations", "rate_limited"] {
        assert_eq!(total(field), 0, "{field}: {}", counters.totals);
    }
    // Greylist retries pinned to the dead worker's egresses went out through the survivor's,
    // and their verdicts say so. The fleet also counts, as retries from another address, the
    // batches the victim had in hand when it died (redelivered, unpinned: what it learned
    // died with it), so its count bounds the noted verdicts from above only loosely.
    let noted = rows
        .iter()
        .filter(|r| {
            r["detail"]
                .as_str()
                .is_some_and(|d| d.contains("which this worker does not have"))
        })
        .count() as u64;
    eprintln!(
        "{TEST}: {} greylist retries from another address, {noted} verdicts saying so",
        total("greylist_other_ip")
    );
    assert!(
        noted >= 1,
        "the victim's pending greylist retries were re-pinned and said so in their verdicts"
    );
    assert!(
        noted <= total("greylist_other_ip"),
        "a verdict says its retry came from another address that the fleet did not see"
    );
    report_time(TEST, started);
}
