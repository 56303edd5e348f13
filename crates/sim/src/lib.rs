//! rollcall-sim: a simulated mail fleet on loopback, for tests, the demo and benchmarks.
//!
//! SMTP servers (one per host, each on its own 127.x.y.z address, all on one port) with
//! Postfix-like replies and strict RFC 5321 / RFC 2920 sequencing, a DNS server (hickory) that
//! serves the fleet's MX and A records, and the ground truth a perfect verifier would report.
//! It shares no protocol code with the rollcall client, so it catches the client's mistakes;
//! its counters (503s, pipelining violations, DATA commands, concurrency, per client IP,
//! greylist retries) are what tests assert on. Like Postfix, each host can cap sessions per
//! client IP and rate-limit connections, MAIL and RCPT per client IP (its own anvil).
//!
//! Layout:
//! - `spec`: the fleet file (TOML) and its validation; `profile`: a host's behaviour profile
//!   and its reply-line overrides.
//! - `world`: the resolved world (hosts, domains, mailboxes, list, truth) and the rule that
//!   derives a truth row; `resolve`: the spec to the world; `population`: synthetic,
//!   Zipf-sized populations; `truth`: the truth rows and their spelling; `mailbox`: mailbox
//!   keys and role words.
//! - `shared`: what every connection shares (world, counters, anvils, greylist, TLS).
//! - `server`: binding and accept loops; `connection`: per-connection I/O, latency,
//!   pipelining checks, STARTTLS; `session`: the command state machine (RCPT in
//!   `session::rcpt`); `command`: the server-side parser; `greylist`; `anvil`:
//!   per-client-IP rate limits; `counters`.
//! - `dns`: the DNS server; `tls`: the self-signed identity; `fleet`: start and shutdown;
//!   `error`: the crate's `Error`.
#![forbid(unsafe_code)]
#![warn(clippy::print_stdout, clippy::print_stderr)]
#![warn(missing_docs)]

mod anvil;
mod command;
mod connection;
mod counters;
mod dns;
mod error;
mod fleet;
mod greylist;
mod mailbox;
mod population;
mod profile;
mod resolve;
mod server;
mod session;
mod shared;
mod spec;
mod tls;
mod truth;
mod world;

pub use counters::{ClientCounters, Counters, HostCounters};
pub use error::Error;
pub use fleet::{Fleet, HostInfo, SimOptions, start};
pub use mailbox::ROLE_WORDS;
pub use spec::{
    Behaviour, BehaviourMix, DomainSpec, FleetSettings, FleetSpec, GenerateSpec, HostSpec,
    MailboxState, MxSpec, Profile, RecordSpec, SiteSpec,
};
pub use truth::{Reason, Scenario, Status, TruthRow};
