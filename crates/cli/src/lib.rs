//! The `rollcall` command line (clap): parses flags and config, wires the crates together.
//! `main` (the runtime, logging, the exit status) is here; everything else is in one of seven
//! places.
//!
//! Layout:
//! - `cli`: `Cli` and its `Command` enum, the dispatch of a parsed command line to its command.
//! - `commands`: one module per command, each with its flags (`Args`) and `run`: `verify`,
//!   `demo`, `bench` (the embedded engine); `coordinator`, `worker` (the distributed wiring);
//!   `submit`, `watch` (its clients); `probe` (one SMTP session); `doctor` (checks each egress
//!   before a run; `doctor::finding`, `doctor::names`, `doctor::outbound`); `sim` (the
//!   simulated fleet alone); `completions`, `man` (generated from the clap definition).
//! - `io` (public): `rows` input formats (text, CSV, JSONL; `rows::columns` picks the
//!   delimiter and address column, `rows::lines` turns a line or record into a row,
//!   `rows::csv_record` splits CSV, `rows::record` is a row's payload, `rows::error` what
//!   cannot be read); `output` output formats (CSV, JSONL); `list` opens the list a command was
//!   given; `flags` the input, output and progress flags, declared once; `progress` the bar or
//!   log lines and the summary table; `console` lines for the operator that survive a closed
//!   pipe, terminal-safe server text.
//! - `run`: the plumbing of the commands that run the engine: `settings` (config file and flags
//!   merged, the engine's ports built), `signals` (Ctrl-C, SIGTERM), `embedded` (the run loop
//!   shared by `verify`, `demo` and `bench`) and its `reorder` buffer, `distributed` (broker,
//!   store, prefix and shards of a distributed process), `simulated` (the embedded engine
//!   against a simulated fleet, judged against its ground truth: `demo` and `bench`).
//! - `api`: the gRPC API from the command line: `tls` (server and client TLS flags), `limits`
//!   (the coordinator's call and submission limits), `remote` (where the coordinator is, how to
//!   reach it), `follow` (following a campaign, reconnecting; `watch` and `submit --wait`).
//! - `config`: the config file, the engine flags and env vars, and their merge (`config::error`
//!   the error, `config::identity` the HELO and MAIL FROM checks, `config::egress` the
//!   egresses).
//! - `exit`: every exit code, one name each, and the one line that goes with a failure.
//! - `metrics`: the Prometheus exporter.
#![forbid(unsafe_code)]

mod api;
mod cli;
mod commands;
mod config;
mod exit;
pub mod io;
mod metrics;
mod run;

use std::process::ExitCode;

use clap::Parser as _;

pub use cli::Cli;
use io::console;

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
    init_tracing(cli.log_filter());
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
    let result = runtime.block_on(cli.run());
    match result {
        Ok(code) => code,
        Err(e) => {
            console::err_line(format_args!("rollcall: {e:#}"));
            ExitCode::from(exit::code_for(&e))
        }
    }
}

/// Log lines on stderr: the filter -v / -q asked for, else ROLLCALL_LOG, else warnings. Colour
/// only on a terminal and never with NO_COLOR set (https://no-color.org).
fn init_tracing(asked: Option<&str>) {
    use std::io::IsTerminal as _;
    let filter = match asked {
        Some(level) => tracing_subscriber::EnvFilter::new(level),
        None => tracing_subscriber::EnvFilter::try_from_env("ROLLCALL_LOG")
            .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
    };
    let colour = std::io::stderr().is_terminal()
        && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(colour)
        .with_writer(std::io::stderr)
        .try_init();
}
