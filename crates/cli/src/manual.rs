//! Shell completions and the man page, generated from the command line's own definition (clap),
//! so they never drift from `--help`. Owns nothing else.

use std::io::Write as _;
use std::process::ExitCode;

use clap::CommandFactory as _;

use crate::Cli;

/// `rollcall completions SHELL`.
#[derive(Debug, clap::Args)]
pub struct CompletionsArgs {
    /// The shell to complete for; write the script where the shell reads completions, e.g.
    /// `rollcall completions bash > /etc/bash_completion.d/rollcall`.
    #[arg(value_enum)]
    shell: clap_complete::Shell,
}

/// Writes the completion script for `args.shell` to standard output.
pub async fn completions(args: CompletionsArgs) -> anyhow::Result<ExitCode> {
    let mut command = Cli::command();
    let mut out = std::io::stdout().lock();
    clap_complete::generate(args.shell, &mut command, "rollcall", &mut out);
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}

/// Writes the man page (roff) to standard output: `rollcall man > rollcall.1`.
pub async fn man() -> anyhow::Result<ExitCode> {
    let mut out = std::io::stdout().lock();
    clap_mangen::Man::new(Cli::command()).render(&mut out)?;
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}
