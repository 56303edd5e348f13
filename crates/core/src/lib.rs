//! rollcall-core: the domain layer of rollcall.
//!
//! Pure types and decisions shared by every other crate: what an email address is, where its
//! mail goes (site), what an SMTP reply means (`classify`), and what the final answer for an
//! address is (`Verdict`, `verdict_for`). No I/O here: DNS, SMTP and storage live in their own
//! crates.
//!
//! # Layout
//! - `address`: `EmailAddress` and its parser (list entries to wire form).
//! - `domain`: `Domain`, normalised ASCII with IDN A-labels.
//! - `syntax`: `SyntaxError` / `SyntaxReason`, why an address did not parse.
//! - `site`: `Site` and the provider MX table (`Provider`) that folds a provider's hosts into
//!   one site for politeness.
//! - `providers`: who runs a domain's mail and that provider's rules, as data
//!   (`providers.toml`: RCPTs per transaction, whether a 250 is believed, its own reply rows).
//! - `ids`: `CampaignId`, `ItemId`.
//! - `role`, `domain_lists`: role local parts; embedded disposable and free-provider lists.
//! - `flags`: `Flag`, `Flags`.
//! - `verdict`: `Status`, `Reason`, `Evidence`, `Verdict`.
//! - `classify`: one reply to a `Classification`, from a table (`classify/rules.rs`); its
//!   vocabulary (`RetryKind`, `Classification`) in `classify/meaning.rs`. The reply itself, the
//!   command it answers and its enhanced code are `rollcall-smtp-proto`'s `Reply`,
//!   `CommandKind` and `EnhancedCode` (re-exported here; that crate is sans-IO too).
//! - `decision`: `verdict_for`, an RCPT classification plus context to a `Verdict`.
//! - `suggest`: `did_you_mean`, the common mail domain a domain without mail servers is
//!   probably a typo of.
//! - `score`: `score`, a verdict as a 0-100 number, with its configurable `ScoreWeights`.
//! - `error`: the crate's `Error`.
//! - `timestamp`: Unix seconds as RFC 3339 UTC text.
//! - `ports`: the `WorkQueue` (`ports/queue.rs`, `Batch` in `ports/batch.rs`) and `StateStore`
//!   (`ports/state.rs`) traits, their in-memory implementations (`memory_queue`,
//!   `memory_state`) and the contract checks every implementation passes (`contract`).
#![forbid(unsafe_code)]
#![warn(clippy::print_stdout, clippy::print_stderr)]

pub mod address;
pub mod classify;
pub mod decision;
pub mod domain;
pub mod domain_lists;
pub mod error;
pub mod flags;
pub mod ids;
pub mod ports;
pub mod providers;
pub mod role;
pub mod score;
pub mod site;
pub mod suggest;
pub mod syntax;
pub mod timestamp;
pub mod verdict;

pub use address::EmailAddress;
pub use classify::{Classification, RetryKind, classify};
pub use decision::{CatchAll, DomainContext, verdict_for};
pub use domain::Domain;
pub use domain_lists::{is_disposable, is_free_provider};
pub use error::Error;
pub use flags::{Flag, Flags};
pub use ids::{CampaignId, ItemId};
pub use providers::{ProviderRules, ProviderSpec, ProviderTable};
pub use role::is_role_local_part;
/// The reply vocabulary, owned by the protocol crate: one `Reply`, one `EnhancedCode`, one
/// `CommandKind` across the workspace.
pub use rollcall_smtp_proto::{CommandKind, EnhancedCode, Reply};
pub use score::{FlagWeights, ScoreWeights, score};
pub use site::{Provider, Site};
pub use suggest::did_you_mean;
pub use syntax::{SyntaxError, SyntaxReason};
pub use verdict::{Evidence, Reason, ReplyText, Status, VERDICT_COLUMNS, Verdict};
