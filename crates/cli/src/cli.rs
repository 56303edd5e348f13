//! The command line's definition: `Cli` and its `Command` enum (clap derive), and the dispatch
//! of a parsed command line to the command's `run`. Owns no command's flags (each command
//! declares its `Args` in `commands`) and nothing of the process around a run (the runtime,
//! logging and exit status are the crate root's `main`).

use std::process::ExitCode;

use clap::{CommandFactory as _, Parser, Subcommand};

use crate::commands::{
    bench, completions, coordinator, demo, doctor, man, probe, serve, sim, submit, verify, watch,
    worker,
};

/// rollcall: tells which email addresses can receive mail, without sending any.
#[derive(Debug, Parser)]
#[command(name = "rollcall", version, about, long_about = None)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,

    /// More log lines on stderr: -v info, -vv debug, -vvv trace (the default shows warnings
    /// and errors). ROLLCALL_LOG (a tracing filter, e.g. `info,rollcall_engine=debug`) takes
    /// over when neither -v nor -q is given.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    verbose: u8,

    /// Errors only in the log lines on stderr (progress and the summary are set apart: see
    /// --progress).
    #[arg(short, long, global = true, conflicts_with = "verbose")]
    quiet: bool,
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
    /// Runs with no result cache: every address is probed, every run alike.
    Demo(demo::Args),
    /// The fleet benchmark: a generated fleet with a fixed latency, the achieved rate against
    /// the theoretical bound (docs/BENCHMARKS.md), and CPU time per 1,000 addresses. Runs with
    /// no result cache, so its figures compare from run to run.
    Bench(bench::Args),
    /// One worker of the distributed wiring: takes shard leases in Redis, consumes those
    /// shards from RabbitMQ, probes and records results in Redis. Stops cleanly on SIGTERM.
    Worker(worker::Args),
    /// The coordinator of the distributed wiring behind the gRPC API: takes submitted lists,
    /// publishes batches to RabbitMQ, reads the workers' results from Redis. Stops cleanly on
    /// SIGTERM. Campaigns are kept in Redis: a restarted coordinator picks them up.
    Coordinator(coordinator::Args),
    /// One process serving the gRPC and HTTP APIs (rollcall's routes, Reacher-compatible
    /// routes, events, signed webhooks) over the embedded engine: no broker, no store.
    /// Stops cleanly on SIGTERM. See docs/http-api.md.
    Serve(serve::Args),
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

impl Cli {
    /// The log filter -v / -q ask for, if they ask.
    pub(crate) fn log_filter(&self) -> Option<&'static str> {
        match (self.quiet, self.verbose) {
            (true, _) => Some("error"),
            (false, 0) => None,
            (false, 1) => Some("info"),
            (false, 2) => Some("debug"),
            (false, _) => Some("trace"),
        }
    }

    /// Runs the command given. `completions` and `man` are handed the command line's own clap
    /// definition, so what they print never drifts from `--help`.
    pub(crate) async fn run(self) -> anyhow::Result<ExitCode> {
        match self.command {
            Command::Probe(args) => probe::run(args).await,
            Command::Sim(args) => sim::run(args).await,
            Command::Doctor(args) => doctor::run(args).await,
            Command::Verify(args) => verify::run(args).await,
            Command::Demo(args) => demo::run(args).await,
            Command::Bench(args) => bench::run(args).await,
            Command::Worker(args) => worker::run(args).await,
            Command::Coordinator(args) => coordinator::run(args).await,
            Command::Serve(args) => serve::run(args).await,
            Command::Submit(args) => submit::run(args).await,
            Command::Watch(args) => watch::run(args).await,
            Command::Completions(args) => completions::run(args, Cli::command()).await,
            Command::Man => man::run(Cli::command()).await,
        }
    }
}

#[cfg(test)]
mod tests;
