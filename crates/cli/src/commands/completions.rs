//! `rollcall completions SHELL`: the shell completion script, generated from the command line's
//! own definition (clap, handed in by `cli`), so it never drifts from `--help`. Owns nothing
//! else.

use std::io::Write as _;
use std::process::ExitCode;

/// Flags of `rollcall completions`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The shell to complete for; write the script where the shell reads completions, e.g.
    /// `rollcall completions bash > /etc/bash_completion.d/rollcall`.
    #[arg(value_enum)]
    shell: clap_complete::Shell,
}

/// Writes the completion script of `command` (the whole command line) for `args.shell` to
/// standard output.
pub async fn run(args: Args, mut command: clap::Command) -> anyhow::Result<ExitCode> {
    let mut out = std::io::stdout().lock();
    clap_complete::generate(args.shell, &mut command, "rollcall", &mut out);
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}
