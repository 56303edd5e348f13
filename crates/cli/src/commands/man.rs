//! `rollcall man`: the man page (roff), generated from the command line's own definition
//! (clap, handed in by `cli`), so it never drifts from `--help`. Owns nothing else.

use std::io::Write as _;
use std::process::ExitCode;

/// Writes the man page (roff) of `command` (the whole command line) to standard output:
/// `rollcall man > rollcall.1`.
pub async fn run(command: clap::Command) -> anyhow::Result<ExitCode> {
    let mut out = std::io::stdout().lock();
    clap_mangen::Man::new(command).render(&mut out)?;
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}
