//! `rollcall probe`: one session against one host (skeleton).

use std::process::ExitCode;

/// Flags of `rollcall probe`.
#[derive(Debug, clap::Args)]
pub struct Args {}

pub async fn run(_args: Args) -> anyhow::Result<ExitCode> {
    anyhow::bail!("probe: not implemented yet")
}
