//! RabbitMQ restarted four times under one running campaign (`rabbitmqctl stop_app`, a few
//! seconds, then `rabbitmqctl start_app`): while the coordinator publishes, with retries in the
//! ladder, mid-campaign and near the end. Each time the coordinator and both workers
//! reconnect; the campaign completes
//! with every row's verdict once and exact counts, and the clients watching it through the
//! coordinator (`rollcall submit --wait` and `rollcall watch`) see it finish. The processes,
//! the 20,000-address fleet and the checks are those of tests/distributed_processes.rs
//! (`support_dist`).
//!
//! A binary of its own because it stops the whole broker: cargo runs test binaries one after
//! another, so no other test of this package has a queue on the broker meanwhile. The broker
//! is down for a few seconds only, and a guard starts it again whatever happens to the test
//! (a failed assertion included).
//!
//! Needs Redis on 127.0.0.1:6379, RabbitMQ on 127.0.0.1:5672 and `rabbitmqctl` allowed to
//! control it (root, as in CI; `bash scripts/services.sh`): without them the test fails under
//! `CI` and is skipped loudly otherwise.
//!
//! ```text
//! cargo test -p rollcall --test distributed_broker_restart -- --nocapture
//! ```

mod support_dist;

use std::collections::HashSet;
use std::net::TcpStream;
use std::process::Command;
use std::time::{Duration, Instant};

use support_dist::amqp_admin::ladder_messages;
use support_dist::run::{KILL_AT_PERCENT, Run, report_time};
use support_dist::{local_ports_to, serial, services_available, wait_for};

/// How long the test waits between `stop_app` and `start_app`. The broker is down for about
/// 4 s in all: `start_app` itself takes about 3 s before the listener is back.
const OUTAGE: Duration = Duration::from_secs(1);
const AMQP_PORT: u16 = 5672;
/// The last restart: this share of the list recorded.
const NEAR_THE_END_PERCENT: u64 = 90;
/// The processes of the deployment that talk to the broker.
const BROKER_CLIENTS: [&str; 3] = ["coordinator", "w1", "w2"];

/// Runs `rabbitmqctl ARGS`; its output on failure.
fn rabbitmqctl(args: &[&str]) -> Result<(), String> {
    let out = Command::new("rabbitmqctl")
        .args(args)
        .output()
        .map_err(|e| format!("rabbitmqctl {}: {e}", args.join(" ")))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "rabbitmqctl {} exited with {}: {}{}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

/// True when `rabbitmqctl` can talk to the running broker; like `services_available`
/// otherwise.
fn rabbitmqctl_available(test: &str) -> bool {
    let Err(why) = rabbitmqctl(&["-q", "status"]) else {
        return true;
    };
    let how = format!(
        "rabbitmqctl cannot control the broker ({why}); run as root with the broker of \
         `bash scripts/services.sh`"
    );
    if std::env::var_os("CI").is_some() {
        panic!("{test}: {how}");
    }
    eprintln!("\n!!!!!!!! SKIPPED {test}: {how}\n!!!!!!!! (under CI this is a failure)\n");
    false
}

/// The broker's application, stopped. `start` starts it again; dropping the guard without
/// `start` (a panic) starts it too, so the machine's broker never stays down.
struct StoppedBroker {
    stopped_at: Instant,
    started: bool,
}

impl StoppedBroker {
    fn stop() -> StoppedBroker {
        let mut guard = StoppedBroker {
            stopped_at: Instant::now(),
            started: false,
        };
        if let Err(e) = rabbitmqctl(&["stop_app"]) {
            // A half-stopped broker is started again by the guard.
            panic!("{e}");
        }
        guard.stopped_at = Instant::now();
        guard
    }

    /// Starts the broker's application and waits until it takes connections again; returns
    /// how long it was down (from the end of `stop_app` to the end of `start_app`).
    fn start(mut self) -> Duration {
        self.started = true;
        let result = rabbitmqctl(&["start_app"]);
        let down = self.stopped_at.elapsed();
        if let Err(e) = result {
            self.started = false;
            panic!("{e}");
        }
        wait_for_listener();
        down
    }
}

impl Drop for StoppedBroker {
    fn drop(&mut self) {
        if self.started {
            return;
        }
        match rabbitmqctl(&["start_app"]) {
            Ok(()) => wait_for_listener(),
            Err(e) => eprintln!("!!!!!!!! RabbitMQ could not be started again: {e}"),
        }
    }
}

fn wait_for_listener() {
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        if TcpStream::connect(("127.0.0.1", AMQP_PORT)).is_ok() {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    eprintln!("!!!!!!!! RabbitMQ does not listen on {AMQP_PORT} 60 s after start_app");
}

/// The local ports of each broker client's connections to RabbitMQ.
fn broker_ports(run: &mut Run) -> Vec<HashSet<u16>> {
    BROKER_CLIENTS
        .iter()
        .map(|name| local_ports_to(run.procs.pid(name), AMQP_PORT))
        .collect()
}

/// Restarts the broker (`stop_app`, `OUTAGE`, `start_app`) and waits until every broker
/// client is on a new connection (none of the old ones survived). `moment` names the point of
/// the campaign for the log.
fn restart_broker(run: &mut Run, test: &str, campaign: &str, moment: &str) {
    let before = broker_ports(run);
    for (name, ports) in BROKER_CLIENTS.iter().zip(&before) {
        assert!(!ports.is_empty(), "{name} has no connection to RabbitMQ");
    }
    let done = run.deployment.recorded(&mut run.redis, campaign);
    assert!(
        done < run.rows(),
        "the campaign was over ({done} recorded) before the broker restart {moment}"
    );
    // Declared after `run`, so on a panic the broker is started again before the deployment's
    // queues are deleted.
    let broker = StoppedBroker::stop();
    eprintln!(
        "{test}: stopped RabbitMQ {moment} at {done} of {} recorded",
        run.rows()
    );
    std::thread::sleep(OUTAGE);
    let down = broker.start();
    eprintln!("{test}: RabbitMQ was down for {:.1}s", down.as_secs_f64());
    wait_for(
        "every process to reconnect to RabbitMQ",
        Duration::from_secs(60),
        || {
            let now = broker_ports(run);
            now.iter()
                .zip(&before)
                .all(|(now, before)| !now.is_empty() && now.is_disjoint(before))
                .then_some(())
        },
    );
}

/// Waits until the campaign's retry ladder holds messages (deferred batches waiting out their
/// delay); returns how many.
fn wait_for_retries(run: &mut Run) -> u64 {
    let prefix = run.deployment.prefix.clone();
    wait_for("retries in the ladder", Duration::from_secs(120), || {
        let waiting = ladder_messages(&prefix).unwrap_or(0);
        (waiting > 0).then_some(waiting)
    })
}

/// One campaign, four broker restarts: while the coordinator publishes the list, with
/// deferred batches in the retry ladder, mid-campaign and near the end. Every restart drops
/// every connection (publishes in the confirm window, deliveries in hand, the ladder's
/// dead-lettering to shards whose quorum leaders are re-elected).
#[test]
fn broker_restarts_throughout_a_campaign_lose_nothing_and_the_watchers_see_the_end() {
    const TEST: &str =
        "broker_restarts_throughout_a_campaign_lose_nothing_and_the_watchers_see_the_end";
    let _serial = serial();
    if !services_available(TEST) || !rabbitmqctl_available(TEST) {
        return;
    }
    let started = Instant::now();
    let mut run = Run::start("dist-broker-restart");
    run.two_workers();
    let submitted = run.submit_and_wait();

    // The campaign exists as soon as its first rows are stored: the coordinator is still
    // reading the upload and publishing its batches.
    let campaign = run.deployment.campaign_id(&mut run.redis);
    restart_broker(&mut run, TEST, &campaign, "while publishing");
    let watched = run.scratch.path("watched.jsonl");
    run.watch("watch", &campaign, Some(&watched));

    let waiting = wait_for_retries(&mut run);
    restart_broker(
        &mut run,
        TEST,
        &campaign,
        &format!("with {waiting} retries in the ladder"),
    );
    run.wait_for_share(KILL_AT_PERCENT * 2);
    restart_broker(&mut run, TEST, &campaign, "mid-campaign");
    run.wait_for_share(NEAR_THE_END_PERCENT);
    restart_broker(&mut run, TEST, &campaign, "near the end");

    run.finish_client("submit", &submitted);
    run.finish_client("watch", &watched);
    run.assert_fleet_polite();
    report_time(TEST, started);
}
