//! The verification engine: the coordinator (ingest, dedupe, resolve, shard, publish, collect)
//! and the worker (consume, shape, probe, record), over the `WorkQueue` and `StateStore` ports.
//! The same code runs in both wirings: embedded (in-memory queue and state, one process) and
//! distributed (RabbitMQ and Redis).
//!
//! Layout:
//! - `config`: resolved engine settings (identity, port, timeouts, retry schedules).
//! - `egress`: the ways out a worker probes from (source address or SOCKS5 proxy, HELO, MAIL
//!   FROM) and the per-(site, egress) key scheme of every politeness budget.
//! - `shaping`: politeness per (site, egress) and the per-site rule table.
//! - `coordinator`: input rows in, exactly one output row per input row out
//!   (`coordinator/collect`: recorded results back into output rows; `coordinator/finished`:
//!   what it keeps of a finished address for later duplicates; `coordinator/cache`: the result
//!   cache's lookups and write-backs; `coordinator/lanes`: a site's batches per shard).
//! - `verdicts`: verdicts built from DNS and probe outcomes.
//! - `summary`: counts of a run.
//! - `embedded`: coordinator and worker wired in one process over in-memory ports.
//! - `probe`: the engine's port to an SMTP session (`Connector`, `ProbeSession`).
//! - `worker`: consumes batches and dispatches them per site; runs the greylist scheduler.
//! - `site`: one site's line of batches and its warm session tasks under fleet-wide leases.
//! - `batch_run`: one batch's sessions, politeness budgets and transactions.
//! - `settle`: what each reply makes of an item, and the batch's results and retries applied.
//! - `context`: what a worker's tasks share (counters, a site runner's context, session slots).
//! - `held_lease`: fleet-wide session slots kept alive by a heartbeat while a session lives.
//! - `waiting`: what this worker's items wait for and until when (for progress displays).
//! - `shards`: shard leases (distributed wiring): which shard queues this worker consumes.
#![forbid(unsafe_code)]

mod batch_run;
pub mod config;
mod context;
pub mod coordinator;
pub mod egress;
pub mod embedded;
mod error;
mod held_lease;
pub mod probe;
mod settle;
pub mod shaping;
pub mod shards;
mod site;
mod smtp_session;
pub mod summary;
pub mod verdicts;
pub mod waiting;
pub mod worker;

pub use batch_run::catch_all_probe;
pub use context::WorkerMetrics;
pub use error::Error;
pub use smtp_session::{client_config, connector};
