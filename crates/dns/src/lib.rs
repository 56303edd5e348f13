//! rollcall-dns: where mail for a domain goes.
//!
//! Resolves a domain's MX records with hickory (system or given nameservers), orders them
//! (RFC 5321 5.1 preference order, random among equals, implicit MX; RFC 7505 null MX),
//! resolves the hosts' addresses, refuses private and unusable targets unless allowed, and
//! caches the outcome with its TTL. The outcome is a [`Resolution`]; this crate knows nothing
//! of verdicts, queues or SMTP (the engine maps a `Resolution` to a verdict). For checking a
//! prober's own names (`rollcall doctor`) it also answers single questions as DNS holds them
//! ([`Records`]: A/AAAA of a name, PTR of an address, MX of a domain).
//!
//! # Layout
//! - `config`: [`ResolverConfig`] and its validation.
//! - `resolver`: [`MxResolver`]: cache, single flight per domain, lookup concurrency bound,
//!   [`ResolveStats`].
//! - `lookup`: one uncached resolution over hickory, DNS answers and errors to a
//!   [`Resolution`], cache lifetimes.
//! - `order`: pure MX ordering ([`order_mx`]).
//! - `target`: pure target policy ([`classify_target`], [`TargetPolicy`]).
//! - `truncated`: an answer that does not fit even over TCP, asked again and used as far as
//!   it goes.
//! - `direct`: one question asked of the nameservers over TCP without hickory in between
//!   (truncated answers; PTR of loopback addresses, which hickory answers itself).
//! - `cache`: the bounded, expiring resolution cache.
//! - `resolution`: the outcome types.
//! - `records`: [`Records`], the answer to one question (`MxResolver::addresses`, `reverse`,
//!   `mx_records`), as DNS holds it.
//! - `error`: construction errors ([`Error`]).
#![forbid(unsafe_code)]
#![warn(clippy::print_stdout, clippy::print_stderr)]

mod cache;
mod config;
mod direct;
mod error;
mod lookup;
mod order;
mod records;
mod resolution;
mod resolver;
mod target;
mod truncated;

pub use config::ResolverConfig;
pub use error::Error;
pub use order::{MxHost, MxOrder, normalise_name, order_mx, shuffle_equal_preferences};
pub use records::Records;
pub use resolution::{MxTarget, Resolution};
pub use resolver::{AnswerSource, MxResolver, ResolveStats, Resolved};
pub use target::{TargetClass, TargetPolicy, classify_target};

/// The most MX hosts resolved for one domain (the rest are ignored).
pub const MAX_MX_HOSTS: usize = lookup::MAX_MX_HOSTS;

/// The most addresses kept for one MX host (A and AAAA together; the rest are ignored).
pub const MAX_ADDRS_PER_HOST: usize = lookup::MAX_ADDRS_PER_HOST;
