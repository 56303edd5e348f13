//! One test's deployment as a whole: the fleet, a coordinator, the workers and clients a test
//! starts, the Redis connection it reads the store with, and the steps every fault test takes
//! (start, submit, wait for a share of the list, finish and check). The parts it is made of
//! (processes, fleet, names, checks) live in the parent module.

use std::path::{Path, PathBuf};
use std::process::ExitStatus;
use std::time::{Duration, Instant};

use super::{
    CAMPAIGN_TIMEOUT, Deployment, Procs, Redis, SHARDS, STALL_TIMEOUT, Scratch, Sim,
    assert_complete_and_true, client_args, final_counts, fleet_file, free_port, read_rows,
    unique_tag,
};

/// Where the faults are injected: this share of the list recorded.
pub const KILL_AT_PERCENT: u64 = 30;

/// How much longer than its pace before the kill a campaign may take after a worker dies:
/// the shard and session leases of the dead worker lapse (15 s each, at the same time), then
/// the survivor serves the dead worker's sites.
pub const KILL_ALLOWANCE: Duration = Duration::from_secs(45);

pub fn path_arg(path: &Path) -> String {
    path.display().to_string()
}

/// Prints how long a test took (a figure for the reader, never asserted).
pub fn report_time(test: &str, started: Instant) {
    eprintln!("{test}: {:.1}s", started.elapsed().as_secs_f64());
}

/// Everything a test starts. Fields drop in declaration order: the processes are killed
/// before the deployment's keys and queues are deleted, and the scratch directory goes last.
pub struct Run {
    pub procs: Procs,
    pub redis: Redis,
    pub deployment: Deployment,
    pub sim: Sim,
    pub port: u16,
    pub scratch: Scratch,
}

impl Run {
    /// The fleet, a coordinator, and nothing else yet.
    pub fn start(test: &str) -> Run {
        Run::start_with(test, &fleet_file(), &super::config_file())
    }

    /// `start` with another fleet file and the engine config every process takes.
    pub fn start_with(test: &str, fleet: &Path, config: &Path) -> Run {
        let tag = unique_tag();
        let scratch = Scratch::new(test, &tag);
        let deployment = Deployment::new(&tag);
        let mut procs = Procs::default();
        let mut sim = Sim::start(&mut procs, &scratch, "sim", fleet);
        sim.config = config.to_path_buf();
        let port = free_port();
        deployment.start_coordinator(&mut procs, &scratch, &sim, "coordinator", port);
        let redis = Redis::connect().expect("Redis answers");
        Run {
            scratch,
            deployment,
            procs,
            sim,
            redis,
            port,
        }
    }

    /// Starts worker `name` and waits until it holds `shards` shard leases.
    pub fn worker(&mut self, name: &str, max_shards: Option<u32>, shards: usize, extra: &[String]) {
        self.deployment.start_worker(
            &mut self.procs,
            &self.scratch,
            &self.sim,
            name,
            max_shards,
            extra,
        );
        self.deployment
            .wait_for_shards(&mut self.redis, name, shards);
    }

    /// Two workers, `w1` and `w2`, holding half of the shards each.
    pub fn two_workers(&mut self) {
        let half = SHARDS / 2;
        self.worker("w1", Some(half), half as usize, &[]);
        self.worker("w2", Some(half), half as usize, &[]);
    }

    /// Sessions a worker holds in the store: members `<worker>:<n>` of the site and
    /// server-address lease sets (not the shard or membership leases).
    pub fn session_leases_held(&mut self, worker: &str) -> usize {
        let pattern = format!("{}:{{h:*}}:leases", self.deployment.prefix);
        let holder = format!("{worker}:");
        let keys = self.redis.strings(&["KEYS", &pattern]);
        keys.iter()
            .filter(|k| !k.contains("{h:shard:") && !k.contains("{h:workers}"))
            .map(|key| {
                self.redis
                    .strings(&["ZRANGE", key, "0", "-1"])
                    .iter()
                    .filter(|m| m.starts_with(&holder))
                    .count()
            })
            .sum()
    }

    /// Asserts that a campaign submitted at `submitted`, which had `done` rows recorded
    /// `before_kill` after it when a worker was killed, ended within its pace before the kill
    /// (projected over the whole list) plus `KILL_ALLOWANCE`: a dead worker's slots must not
    /// hold its sites off for longer than their short leases.
    pub fn assert_within_pace_after_kill(
        &self,
        test: &str,
        submitted: Instant,
        before_kill: Duration,
        done: u64,
    ) {
        let took = submitted.elapsed();
        let projected = before_kill.mul_f64(self.rows() as f64 / done.max(1) as f64);
        eprintln!(
            "{test}: campaign took {:.1}s after submit (projected without the kill {:.1}s)",
            took.as_secs_f64(),
            projected.as_secs_f64()
        );
        assert!(
            took <= projected + KILL_ALLOWANCE,
            "the campaign took {took:?}, more than {KILL_ALLOWANCE:?} beyond its pace before the \
             kill ({projected:?}): the dead worker's slots held its sites off"
        );
    }

    /// How many rows the fleet's list has.
    pub fn rows(&self) -> u64 {
        self.sim.addresses.len() as u64
    }

    /// `rollcall submit LIST --wait -o OUT` in the background, as process `submit`; returns
    /// OUT.
    pub fn submit_and_wait(&mut self) -> PathBuf {
        let out = self.scratch.path("submitted.jsonl");
        let args = client_args(
            "submit",
            self.port,
            &[
                &path_arg(&self.sim.list),
                "--wait",
                "-o",
                &path_arg(&out),
                "--format",
                "jsonl",
                "--progress",
                "log",
            ],
        );
        self.procs.spawn(&self.scratch, "submit", &args);
        out
    }

    /// `rollcall submit LIST` (no --wait) to the end; returns the campaign id it printed.
    pub fn submit(&mut self) -> String {
        let args = client_args(
            "submit",
            self.port,
            &[&path_arg(&self.sim.list), "--progress", "off"],
        );
        self.procs.spawn(&self.scratch, "submit", &args);
        let status = self.procs.wait("submit", CAMPAIGN_TIMEOUT);
        let log = self.procs.log("submit");
        assert!(status.success(), "submit exited with {status}:\n{log}");
        let campaign = log
            .lines()
            .find_map(|l| l.strip_prefix("rollcall: campaign "))
            .and_then(|rest| rest.split_once(':'))
            .map(|(id, _)| id.to_string())
            .unwrap_or_else(|| panic!("no campaign id in:\n{log}"));
        assert!(
            log.lines().any(|l| l.trim() == campaign),
            "submit prints the id on standard output:\n{log}"
        );
        campaign
    }

    /// `rollcall watch CAMPAIGN` in the background as process `name`: with `out`, writing
    /// every result there (JSONL); without, logging the server's progress.
    pub fn watch(&mut self, name: &str, campaign: &str, out: Option<&Path>) {
        let out = out.map(path_arg);
        let mut rest = vec![campaign, "--progress", "log"];
        if let Some(out) = &out {
            rest.extend(["-o", out, "--format", "jsonl"]);
        }
        let args = client_args("watch", self.port, &rest);
        self.procs.spawn(&self.scratch, name, &args);
    }

    /// Waits until the store has recorded `percent` of the list; returns the campaign id and
    /// how many were recorded then. Asserts the campaign is not over yet.
    pub fn wait_for_share(&mut self, percent: u64) -> (String, u64) {
        let campaign = self.deployment.campaign_id(&mut self.redis);
        let target = self.rows() * percent / 100;
        let done = self
            .deployment
            .wait_for_recorded(&mut self.redis, &campaign, target);
        assert!(
            done < self.rows(),
            "the campaign was over ({done} recorded) before the fault was injected"
        );
        (campaign, done)
    }

    /// Waits for client `name` to exit successfully and checks its results file `out`, its
    /// final counts and the store's record of the campaign. Returns the campaign id.
    pub fn finish_client(&mut self, name: &str, out: &Path) -> String {
        let status = self.wait_client(name);
        let log = self.procs.log(name);
        assert!(status.success(), "{name} exited with {status}:\n{log}");
        let counts = final_counts(&log);
        let rows = read_rows(out);
        assert_complete_and_true(&self.sim, &rows, counts);
        let campaign = self.deployment.campaign_id(&mut self.redis);
        let rows = self.rows();
        self.deployment
            .assert_recorded_once(&mut self.redis, &campaign, rows);
        campaign
    }

    /// Waits for client `name` to exit while the campaign makes progress: panics when the
    /// store records no new result for `STALL_TIMEOUT` (saying where it stopped), or after
    /// `CAMPAIGN_TIMEOUT` in all.
    fn wait_client(&mut self, name: &str) -> ExitStatus {
        let campaign = self.deployment.campaign_id(&mut self.redis);
        let started = Instant::now();
        let mut last = (
            self.deployment.recorded(&mut self.redis, &campaign),
            Instant::now(),
        );
        loop {
            if let Some(status) = self.procs.try_wait(name) {
                return status;
            }
            let done = self.deployment.recorded(&mut self.redis, &campaign);
            if done != last.0 {
                last = (done, Instant::now());
            }
            assert!(
                last.1.elapsed() < STALL_TIMEOUT,
                "the campaign is stuck: {done} of {} recorded and nothing new for {STALL_TIMEOUT:?} \
                 ({name} still waiting)",
                self.rows()
            );
            assert!(
                started.elapsed() < CAMPAIGN_TIMEOUT,
                "{name} did not end within {CAMPAIGN_TIMEOUT:?} ({done} of {} recorded)",
                self.rows()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Stops the fleet and checks its counters.
    pub fn assert_fleet_polite(&mut self) {
        let counters = self.sim.stop(&mut self.procs);
        counters.assert_polite();
    }
}
