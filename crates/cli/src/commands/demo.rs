//! `rollcall demo`: the embedded engine against the bundled simulated fleet. Starts the fleet on
//! loopback, verifies its list (plus a few malformed rows and duplicates), and prints the
//! summary, throughput, sessions against addresses, and accuracy against the ground truth.

use std::path::PathBuf;
use std::process::ExitCode;

use rollcall_sim::{FleetSpec, SimOptions};

use crate::io::output::{InputShape, OutputFormat, open_sink};
use crate::io::progress::{Progress, ProgressMode};
use crate::run::simulated::{self, Knobs, report_table};

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
