//! `rollcall man`: the man page (roff), generated from the command line's own definition
//! (clap), so it never drifts from `--help`. Owns nothing else.

use std::io::Write as _;
use std::process::ExitCode;

use clap::CommandFactory as _;

use crate::Cli;

/// Writes the man page (roff) to standard output: `rollcall man > rollcall.1`.
pub async fn run() -> anyhow::Result<ExitCode> {
    let mut out = std::io::stdout().lock();
    clap_mangen::Man::new(Cli::command()).render(&mut out)?;
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}
