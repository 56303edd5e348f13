//! The signals that stop a command: Ctrl-C (SIGINT) and SIGTERM. `ctrl_c` for the commands
//! that stop on Ctrl-C alone, `shutdown_signal` for the long-running processes (coordinator,
//! worker), `StopSignals` for `verify`, which says which of the two stopped it. Owns listening
//! only; what a command does on a signal is its own.

/// Completes on Ctrl-C (SIGINT); never, when signals cannot be listened to.
pub async fn ctrl_c() {
    if tokio::signal::ctrl_c().await.is_err() {
        std::future::pending::<()>().await;
    }
}

/// Completes on SIGTERM or SIGINT (Ctrl-C).
pub async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let term = async {
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                term.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = term => {}
        _ = ctrl_c() => {}
    }
}

/// The signal that stopped a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stop {
    Interrupt,
    Terminate,
}

/// SIGINT and SIGTERM, listened to from creation on: made before the first row is read, so a
/// signal during start-up stops the run cleanly instead of killing it without a summary.
pub struct StopSignals {
    interrupt: Option<tokio::signal::unix::Signal>,
    terminate: Option<tokio::signal::unix::Signal>,
}

impl StopSignals {
    pub fn listen() -> StopSignals {
        use tokio::signal::unix::{SignalKind, signal};
        StopSignals {
            interrupt: signal(SignalKind::interrupt()).ok(),
            terminate: signal(SignalKind::terminate()).ok(),
        }
    }

    /// The first of the two to arrive; never, for one that cannot be listened to.
    pub async fn recv(&mut self) -> Stop {
        async fn next(signal: &mut Option<tokio::signal::unix::Signal>) {
            match signal {
                Some(signal) => {
                    signal.recv().await;
                }
                None => std::future::pending().await,
            }
        }
        tokio::select! {
            () = next(&mut self.interrupt) => Stop::Interrupt,
            () = next(&mut self.terminate) => Stop::Terminate,
        }
    }
}
