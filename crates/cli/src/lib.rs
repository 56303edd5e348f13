//! The `rollcall` command line (clap): parses flags and config, wires the crates together. The
//! `Cli` and its `Command` enum are here; everything else is in one of six places.
//!
//! Layout:
//! - `commands`: one module per command, each with its flags (`Args`) and `run`: `verify`,
//!   `demo`, `bench` (the embedded engine); `coordinator`, `worker` (the distributed wiring);
//!   `submit`, `watch` (its clients); `probe` (one SMTP session); `doctor` (checks each egress
//!   before a run; `doctor::names`, `doctor::outbound`); `sim` (the simulated fleet alone);
//!   `completions`, `man` (generated from the clap definition).
//! - `io` (public): `rows` input formats (text, CSV, JSONL; `rows::columns` picks the
//!   delimiter and address column, `rows::lines` turns a line or record into a row,
//!   `rows::csv_record` splits CSV); `output` output formats (CSV, JSONL); `list` opens the list
//!   a command was given; `flags` the input, output and progress flags, declared once;
//!   `progress` the bar or log lines and the summary table; `console` lines for the operator
//!   that survive a closed pipe, terminal-safe server text.
//! - `run`: the plumbing of the commands that run the engine: `settings` (config file and flags
//!   merged, the engine's ports built), `signals` (Ctrl-C, SIGTERM), `embedded` (the run loop
//!   shared by `verify`, `demo` and `bench`) and its `reorder` buffer, `distributed` (broker,
//!   store, prefix and shards of a distributed process), `simulated` (the embedded engine
//!   against a simulated fleet, judged against its ground truth: `demo` and `bench`).
//! - `api`: the gRPC API from the command line: `tls` (server and client TLS flags), `limits`
//!   (the coordinator's call and submission limits), `remote` (where the coordinator is, how to
//!   reach it), `follow` (following a campaign, reconnecting; `watch` and `submit --wait`).
//! - `config`: the config file, the engine flags and env vars, and their merge (`config::egress`
//!   the egresses).
//! - `exit`: every exit code, one name each, and the one line that goes with a failure.
//! - `metrics`: the Prometheus exporter.
#![forbid(unsafe_code)]

mod api;
mod commands;
mod config;
mod exit;
pub mod io;
mod metrics;
mod run;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

use commands::{
    bench, completions, coordinator, demo, doctor, man, probe, sim, submit, verify, watch, worker,
};
use io::console;

/// rollcall: tells which email addresses can receive mail, without sending any.
#[derive(Debug, Parser)]
#[command(name = "rollcall", version, about, long_about = None)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run one SMTP session against one host and probe the given addresses (like swaks,
    /// for verification): prints the transcript and one result line per address.
    Probe(probe::Args),
    /// Run the simulated mail fleet (SMTP servers and a DNS server on loopback).
    Sim(sim::Args),
    /// Check this machine's ways out before a run: for each egress, that its HELO name
    /// resolves to its address, that the address has forward-confirmed reverse DNS, that its
    /// MAIL FROM domain receives mail, and that SMTP sessions open to the given targets.
    Doctor(doctor::Args),
    /// Verify a list of addresses (text, CSV or JSONL) and write one result per row (CSV or
    /// JSONL), without sending mail. See deploy/config/rollcall.example.toml for every setting.
    Verify(verify::Args),
    /// Start the bundled simulated fleet on loopback and verify its list with the embedded
    /// engine; print the summary, throughput and accuracy against the fleet's ground truth.
    Demo(demo::Args),
    /// The fleet benchmark: a generated fleet with a fixed latency, the achieved rate against
    /// the theoretical bound (docs/BENCHMARKS.md), and CPU time per 1,000 addresses.
    Bench(bench::Args),
    /// One worker of the distributed wiring: takes shard leases in Redis, consumes those
    /// shards from RabbitMQ, probes and records results in Redis. Stops cleanly on SIGTERM.
    Worker(worker::Args),
    /// The coordinator of the distributed wiring behind the gRPC API: takes submitted lists,
    /// publishes batches to RabbitMQ, reads the workers' results from Redis. Stops cleanly on
    /// SIGTERM. Campaigns are kept in Redis: a restarted coordinator picks them up.
    Coordinator(coordinator::Args),
    /// Submit a list to a coordinator; prints the campaign id. With --wait, follow it and
    /// write the results.
    Submit(submit::Args),
    /// Follow a campaign on a coordinator until it ends; with --results, write its results.
    Watch(watch::Args),
    /// Print the shell completion script for bash, zsh, fish, elvish or powershell.
    Completions(completions::Args),
    /// Print the man page (roff): `rollcall man > rollcall.1; man -l rollcall.1`.
    Man,
}

/// Entry point used by the `rollcall` binary.
pub fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            // --help and --version are not errors; a bad flag is a usage error: EX_USAGE
            // (64) as `--help` documents, not clap's own 2.
            let code = if e.use_stderr() { exit::EX_USAGE } else { 0 };
            let _ = e.print();
            return ExitCode::from(code);
        }
    };
    init_tracing();
    let _ = rustls::crypto::ring::default_provider().install_default();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            console::err_line(format_args!(
                "rollcall: cannot start the async runtime: {e}"
            ));
            return ExitCode::from(exit::EX_SOFTWARE);
        }
    };
    let result = runtime.block_on(async move {
        match cli.command {
            Command::Probe(args) => probe::run(args).await,
            Command::Sim(args) => sim::run(args).await,
            Command::Doctor(args) => doctor::run(args).await,
            Command::Verify(args) => verify::run(args).await,
            Command::Demo(args) => demo::run(args).await,
            Command::Bench(args) => bench::run(args).await,
            Command::Worker(args) => worker::run(args).await,
            Command::Coordinator(args) => coordinator::run(args).await,
            Command::Submit(args) => submit::run(args).await,
            Command::Watch(args) => watch::run(args).await,
            Command::Completions(args) => completions::run(args).await,
            Command::Man => man::run().await,
        }
    });
    match result {
        Ok(code) => code,
        Err(e) => {
            console::err_line(format_args!("rollcall: {e:#}"));
            ExitCode::FAILURE
        }
    }
}

fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("ROLLCALL_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}
