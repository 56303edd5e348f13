//! The HTTP API (`crates/http`) with real clients, the simulated fleet (tests/http/fleet.toml,
//! one domain of each behaviour) as the world:
//! - against `rollcall serve`: curl (tests/http/curl.sh: health, 401, 404, Reacher's
//!   documented request, a text list and its CSV, 429 with Retry-After) and Python `requests`
//!   (tests/http/api_client.py: the native routes, every error status, the OpenAPI document
//!   through openapi-spec-validator with every documented route served, Reacher's requests on
//!   every behaviour, an SSE client resuming with Last-Event-ID, a webhook receiver that checks
//!   every signature and fails the first deliveries);
//! - against a coordinator and a worker (RabbitMQ and Redis; skipped loudly without them,
//!   a failure under CI): the same client, but the OpenAPI checks;
//! - the load test script (tests/http/load.py), a short run: every call succeeds (its
//!   figures are docs/BENCHMARKS.md's, never asserted).
//!
//! The Python packages are installed by tests/http/python-deps.sh when missing. Every server
//! listens on a free loopback port; the fleet on its own addresses (127.34.0.x).
#![forbid(unsafe_code)]

mod support_dist;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use support_dist::{
    Deployment, Procs, Scratch, Sim, free_port, serial, services_available, unique_tag, wait_for,
};

const TOKEN: &str = "http-test-token";

fn http_file(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/http")
        .join(name)
}

fn start_sim(procs: &mut Procs, scratch: &Scratch) -> Sim {
    let mut sim = Sim::start(procs, scratch, "sim", &http_file("fleet.toml"));
    sim.config = http_file("rollcall.toml");
    sim
}

/// Flags that make webhook retries quick and the JSON body limit small (the 413 check).
fn http_flags() -> Vec<String> {
    [
        "--token",
        TOKEN,
        "--http-max-body-bytes",
        "65536",
        "--webhook-batch-ms",
        "200",
        "--webhook-retry-first-ms",
        "100",
        "--webhook-retry-max-ms",
        "400",
    ]
    .map(String::from)
    .to_vec()
}

/// Waits until process `name` accepts connections on `port`.
fn wait_listening(procs: &mut Procs, name: &str, port: u16) {
    wait_for(
        &format!("{name} to listen on {port}"),
        Duration::from_secs(60),
        || {
            if let Some(status) = procs.try_wait(name) {
                panic!("{name} exited with {status}:\n{}", procs.log(name));
            }
            std::net::TcpStream::connect(("127.0.0.1", port))
                .is_ok()
                .then_some(())
        },
    );
}

/// Starts `rollcall serve` as `name` with `extra` flags; returns its HTTP base URL.
fn serve(procs: &mut Procs, scratch: &Scratch, sim: &Sim, name: &str, extra: &[&str]) -> String {
    let port = free_port();
    let mut args: Vec<String> = vec![
        "serve".into(),
        "--listen".into(),
        "127.0.0.1:0".into(),
        "--http-listen".into(),
        format!("127.0.0.1:{port}"),
        // Each run verifies afresh, and nothing is written to the user's cache folder.
        "--no-cache".into(),
    ];
    args.extend(http_flags());
    args.extend(sim.engine_args());
    args.extend(extra.iter().map(|s| s.to_string()));
    procs.spawn(scratch, name, &args);
    wait_listening(procs, name, port);
    format!("http://127.0.0.1:{port}")
}

/// Runs `command` to the end; fails the test with its output unless it succeeded.
fn run(what: &str, command: &mut Command) -> String {
    let out = command
        .output()
        .unwrap_or_else(|e| panic!("cannot run {what}: {e}"));
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "{what} failed ({}):\n{stdout}\n{stderr}",
        out.status
    );
    eprintln!("{stdout}");
    stdout
}

fn python_deps() {
    run(
        "tests/http/python-deps.sh",
        Command::new("bash").arg(http_file("python-deps.sh")),
    );
}

/// Runs the Python client's `suites` against `base`.
fn client(base: &str, sim: &Sim, scratch: &Scratch, suites: &[&str]) {
    run(
        "tests/http/api_client.py",
        Command::new("python3")
            .arg(http_file("api_client.py"))
            .args(suites)
            .env("ROLLCALL_HTTP", base)
            .env("ROLLCALL_TOKEN", TOKEN)
            .env("ROLLCALL_LIST", &sim.list)
            .env("ROLLCALL_TRUTH", scratch.path("sim-truth.jsonl")),
    );
}

#[test]
fn curl_and_requests_against_rollcall_serve() {
    python_deps();
    let tag = unique_tag();
    let scratch = Scratch::new("http-serve", &tag);
    let mut procs = Procs::default();
    let sim = start_sim(&mut procs, &scratch);
    let base = serve(&mut procs, &scratch, &sim, "serve", &[]);
    let limited = serve(
        &mut procs,
        &scratch,
        &sim,
        "serve-limited",
        &["--requests-per-minute", "3"],
    );
    run(
        "tests/http/curl.sh",
        Command::new("bash").arg(http_file("curl.sh")).args([
            base.as_str(),
            TOKEN,
            limited.as_str(),
        ]),
    );
    client(
        &base,
        &sim,
        &scratch,
        &["native", "errors", "openapi", "reacher", "sse", "webhook"],
    );
}

#[test]
fn requests_against_a_coordinator() {
    const TEST: &str = "requests_against_a_coordinator";
    let _serial = serial();
    if !services_available(TEST) {
        return;
    }
    python_deps();
    let tag = unique_tag();
    let scratch = Scratch::new("http-coordinator", &tag);
    let deployment = Deployment::new(&tag);
    let mut procs = Procs::default();
    let sim = start_sim(&mut procs, &scratch);
    let (grpc, http) = (free_port(), free_port());
    let mut args: Vec<String> = vec![
        "coordinator".into(),
        "--listen".into(),
        format!("127.0.0.1:{grpc}"),
        "--http-listen".into(),
        format!("127.0.0.1:{http}"),
    ];
    args.extend(http_flags());
    args.extend(deployment.fleet_args());
    args.extend(sim.engine_args());
    procs.spawn(&scratch, "coordinator", &args);
    wait_listening(&mut procs, "coordinator", http);
    deployment.start_worker(&mut procs, &scratch, &sim, "w1", None, &[]);
    client(
        &format!("http://127.0.0.1:{http}"),
        &sim,
        &scratch,
        &["native", "errors", "reacher", "sse", "webhook"],
    );
    drop(procs);
    drop(deployment);
}

#[test]
fn the_load_test_runs() {
    let tag = unique_tag();
    let scratch = Scratch::new("http-load", &tag);
    let mut procs = Procs::default();
    let sim = start_sim(&mut procs, &scratch);
    let base = serve(
        &mut procs,
        &scratch,
        &sim,
        "serve",
        &["--requests-per-minute", "1000000"],
    );
    let out = run(
        "tests/http/load.py",
        Command::new("python3").arg(http_file("load.py")).args([
            base.as_str(),
            TOKEN,
            "200",
            "4",
            &sim.addresses[0],
            &sim.addresses[1],
        ]),
    );
    assert!(out.contains("\"failures\": 0"), "{out}");
}
