//! One module per command: its flags (a clap `Args`), its `run`, its messages and exit codes.
//! Owns nothing the commands share: input and output formats are `io`, the run plumbing
//! (settings, signals, the embedded run loop) is `run`, the API client and server flags `api`.

pub mod bench;
pub mod completions;
pub mod coordinator;
pub mod demo;
pub mod doctor;
pub mod man;
pub mod probe;
pub mod serve;
pub mod sim;
pub mod submit;
pub mod verify;
pub mod watch;
pub mod worker;
