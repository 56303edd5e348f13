//! `rollcall watch`: follows a campaign on a coordinator until it is done, cancelled or failed,
//! showing its progress and optionally writing its results. Owns the flags and the choice of
//! display; the follow loop (reconnecting) is `api::follow`, shared with `submit --wait`.

use std::process::ExitCode;

use crate::api::follow::{Results, follow, report, results_sink};
use crate::api::remote::Remote;
use crate::exit::EX_USAGE;
use crate::io::flags::{OutputFlags, ProgressFlags, flag};
use crate::io::output::InputShape;
use crate::io::progress::{Progress, ProgressMode};

/// Flags of `rollcall watch`.
#[derive(Debug, clap::Args)]
#[command(mut_args(flag("output", |a| a.help(
    "Where to write results (implies --results); -: standard output"
))))]
pub struct Args {
    /// The campaign id `rollcall submit` printed.
    #[arg(value_name = "CAMPAIGN")]
    pub campaign: String,

    #[command(flatten)]
    pub remote: Remote,

    /// Also receive every result (written to -o, or standard output).
    #[arg(long)]
    pub results: bool,

    #[command(flatten)]
    pub out: OutputFlags,

    #[command(flatten)]
    pub progress: ProgressFlags,
}

pub async fn run(args: Args) -> anyhow::Result<ExitCode> {
    let tls = match args.remote.load_tls() {
        Ok(tls) => tls,
        Err(e) => {
            crate::io::console::err_line(format_args!("rollcall: {e}"));
            return Ok(ExitCode::from(EX_USAGE));
        }
    };
    let mut client = args.remote.connect(tls.as_ref()).await?;
    let results = if args.results || args.out.output.is_some() {
        Some(Results {
            sink: results_sink(
                args.out.output.as_deref(),
                args.out.format,
                InputShape::Text,
            )?,
            inputs: Vec::new(),
        })
    } else {
        None
    };
    // Without results there is nothing to count here: the server's own counts are printed as
    // log lines instead of a bar (none with --progress off).
    let mut progress = match (&results, args.progress.progress) {
        (Some(_), mode) => Progress::new(mode, None),
        (None, _) => Progress::new(ProgressMode::Off, None),
    };
    let log_lines = results.is_none() && args.progress.progress != ProgressMode::Off;
    let followed = follow(
        &mut client,
        &args.campaign,
        results,
        &mut progress,
        log_lines,
    )
    .await?;
    Ok(report(&args.campaign, &followed))
}
