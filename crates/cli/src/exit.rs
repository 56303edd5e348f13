//! Every exit code of `rollcall`, one name per code, and `fail`, which prints the one line
//! that goes with it. The numbers are sysexits.h's where one fits, and 128 + the signal for a
//! run stopped by a signal, as a shell reports it; 0 and 1 are `ExitCode::SUCCESS` and
//! `ExitCode::FAILURE` (done; a check failed or a campaign did not end done). Which command
//! exits with which code, and when, is the commands' business (and their `--help`'s).

use std::process::ExitCode;

use crate::io::console;

/// Bad flags or config (EX_USAGE): what clap refuses, and every one-line config error.
pub const EX_USAGE: u8 = 64;
/// The input's content is unusable (EX_DATAERR): no address column, an unreadable CSV header.
pub const EX_DATAERR: u8 = 65;
/// The input cannot be opened or read (EX_NOINPUT).
pub const EX_NOINPUT: u8 = 66;
/// The host could not be reached (EX_UNAVAILABLE).
pub const EX_UNAVAILABLE: u8 = 69;
/// An internal failure (EX_SOFTWARE): the runtime or the engine.
pub const EX_SOFTWARE: u8 = 70;
/// The output cannot be created (EX_CANTCREAT).
pub const EX_CANTCREAT: u8 = 73;
/// An I/O error during the run (EX_IOERR).
pub const EX_IOERR: u8 = 74;
/// A temporary failure (EX_TEMPFAIL): `probe` got a 4xx, or could not ask.
pub const EX_TEMPFAIL: u8 = 75;
/// 128 + SIGINT, what a shell reports for a program stopped by Ctrl-C.
pub const EX_INTERRUPTED: u8 = 130;
/// 128 + SIGTERM, what a shell reports for a program stopped by `kill`.
pub const EX_TERMINATED: u8 = 143;

/// A required service (Redis, RabbitMQ, the coordinator) could not be reached: the error a
/// command returns for it, which `main` turns into `EX_UNAVAILABLE` (69), not a bare 1.
#[derive(Debug, thiserror::Error)]
#[error("a required service is unreachable")]
pub struct Unavailable;

/// The exit code for an error a command returned: 69 when a required service could not be
/// reached (`Unavailable` among its contexts), else 1.
pub fn code_for(error: &anyhow::Error) -> u8 {
    if error.downcast_ref::<Unavailable>().is_some() {
        EX_UNAVAILABLE
    } else {
        1
    }
}

/// Prints `rollcall: MESSAGE` on stderr and gives `code` as the command's result.
pub fn fail(code: u8, message: impl std::fmt::Display) -> anyhow::Result<ExitCode> {
    console::err_line(format_args!("rollcall: {message}"));
    Ok(ExitCode::from(code))
}

/// A command that cannot go on: its exit code and the one line saying why.
#[derive(Debug)]
pub struct Failure {
    code: u8,
    message: String,
}

impl Failure {
    pub fn new(code: u8, message: impl std::fmt::Display) -> Failure {
        Failure {
            code,
            message: message.to_string(),
        }
    }

    /// Prints the line (`fail`) and gives the exit code.
    pub fn exit(self) -> anyhow::Result<ExitCode> {
        fail(self.code, self.message)
    }
}

#[cfg(test)]
mod tests {
    use anyhow::Context as _;

    use super::*;

    #[test]
    fn an_unreachable_service_exits_69_whatever_wraps_it() {
        let refused = || -> Result<(), std::io::Error> {
            Err(std::io::Error::from(std::io::ErrorKind::ConnectionRefused))
        };
        let e = refused()
            .context(Unavailable)
            .context("cannot connect to Redis at redis://127.0.0.1:1")
            .unwrap_err();
        assert_eq!(code_for(&e), EX_UNAVAILABLE);
        let e = refused().context("cannot read the list").unwrap_err();
        assert_eq!(code_for(&e), 1);
    }
}
