//! `rollcall demo`: the embedded engine against the bundled simulated fleet. Starts the fleet on
//! loopback, verifies its list (plus a few malformed rows and duplicates), and prints the
//! summary, throughput, sessions against addresses, and accuracy against the ground truth.

use std::path::PathBuf;
use std::process::ExitCode;

use rollcall_sim::{FleetSpec, SimOptions};

use crate::io::output::{InputShape, OutputFormat, open_sink};
use crate::io::progress::{Progress, ProgressMode, group};
use crate::run::simulated::{self, Knobs, Report};

/// The bundled demo fleet: ~100,000 addresses, ~2,000 domains, 50 sites, every behaviour.
const DEMO_FLEET: &str = include_str!("../../../sim/fleets/demo.toml");

/// Flags of `rollcall demo`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Fleet file to use instead of the bundled demo fleet (format: crates/sim/README.md).
    #[arg(long, value_name = "FILE")]
    pub fleet: Option<PathBuf>,
    /// Print the report as one JSON object on stdout (the summary table still goes to stderr).
    #[arg(long)]
    pub json: bool,
    /// Also write every result row to this file (CSV, or JSONL for .jsonl).
    #[arg(short, long, value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// Sessions per site the engine may open.
    #[arg(long, value_name = "N", default_value_t = 4)]
    pub sessions: u32,
    /// Progress display: auto (a bar on a terminal, log lines otherwise), bar, log or off.
    #[arg(long, value_enum, default_value = "auto")]
    pub progress: ProgressMode,
}

pub async fn run(args: Args) -> anyhow::Result<ExitCode> {
    let spec = match &args.fleet {
        Some(path) => FleetSpec::from_file(path)?,
        None => FleetSpec::from_toml(DEMO_FLEET)?,
    };
    let output = match &args.output {
        Some(path) => {
            let file = std::fs::File::create(path)?;
            let format = OutputFormat::from_path(Some(path));
            Some(open_sink(
                format,
                Box::new(std::io::BufWriter::new(file)),
                InputShape::Text,
            )?)
        }
        None => None,
    };
    let mut progress = Progress::new(args.progress, None);
    let knobs = Knobs {
        sessions: args.sessions,
        rcpt_per_transaction: 50,
        with_bad_rows: true,
        egresses: 0,
    };
    let report = simulated::run(&spec, SimOptions::default(), knobs, output, &mut progress).await?;
    eprintln!("{}", report_table(&report));
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    }
    let clean = report.mismatches == 0
        && report.smtp_503 == 0
        && report.pipelining_violations == 0
        && report.error_budget_trips == 0
        && report.data_commands == 0;
    Ok(if clean {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// The human summary of a fleet run.
pub(crate) fn report_table(r: &Report) -> String {
    let mut out = String::new();
    let mut line = |k: &str, v: String| out.push_str(&format!("  {k:<28} {v}\n"));
    line(
        "addresses (+ bad/dup rows)",
        format!("{} (+{})", group(r.addresses), r.rows - r.addresses),
    );
    for (status, n) in &r.by_status {
        line(status, group(*n));
    }
    line(
        "accuracy vs ground truth",
        format!(
            "{:.4} ({} compared, {} mismatches)",
            r.accuracy,
            group(r.compared),
            r.mismatches
        ),
    );
    line("503 replies received", r.smtp_503.to_string());
    line("pipelining violations", r.pipelining_violations.to_string());
    line("error-budget trips", r.error_budget_trips.to_string());
    line("DATA commands", r.data_commands.to_string());
    line(
        "max sessions per host",
        format!("{} (cap {})", r.max_conns_per_host, r.session_cap),
    );
    line(
        "sessions opened",
        format!(
            "{} ({:.0} addresses per session)",
            group(r.connections),
            r.addresses_per_session
        ),
    );
    line("connections refused", r.connections_refused.to_string());
    if r.clients.len() > 1 {
        for (ip, c) in &r.clients {
            line(
                &format!("egress {ip}"),
                format!(
                    "{} sessions, {} RCPTs, max {} at once at a host, {} rate-limited",
                    group(c.connections),
                    group(c.rcpts),
                    c.max_concurrent,
                    c.rate_limited
                ),
            );
        }
    }
    line("elapsed", format!("{:.1} s", r.elapsed_s));
    line("throughput", format!("{:.0} addresses/s", r.rate_per_s));
    line(
        "bound (no greylist waits)",
        format!(
            "{:.0} addresses/s (ratio {:.2})",
            r.bound_per_s, r.ratio_to_bound
        ),
    );
    line(
        "CPU",
        format!(
            "{:.1} s ({:.1} ms per 1,000 addresses)",
            r.cpu_s, r.cpu_ms_per_1000
        ),
    );
    line(
        "peak RSS (fleet + engine)",
        format!("{:.0} MB", r.peak_rss_mb),
    );
    for example in &r.mismatch_examples {
        out.push_str(&format!("  mismatch: {example}\n"));
    }
    out
}
