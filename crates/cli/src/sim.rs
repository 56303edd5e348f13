//! `rollcall sim`: the simulated fleet, standalone (skeleton).

use std::process::ExitCode;

/// Flags of `rollcall sim`.
#[derive(Debug, clap::Args)]
pub struct Args {}

pub async fn run(_args: Args) -> anyhow::Result<ExitCode> {
    anyhow::bail!("sim: not implemented yet")
}
