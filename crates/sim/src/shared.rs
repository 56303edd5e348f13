//! What every SMTP connection and session of a fleet shares: the world, the per-host counters
//! and anvils (rate limits per client IP), the greylist and the TLS acceptor. Built by `fleet`,
//! read by `server`, `connection` and `session`; it holds no socket and no behaviour.

use std::sync::Arc;

use tokio_rustls::TlsAcceptor;

use crate::anvil::Anvil;
use crate::counters::HostStats;
use crate::greylist::Greylist;
use crate::world::World;

/// What every session of a fleet shares.
pub(crate) struct Shared {
    pub world: Arc<World>,
    pub stats: Vec<Arc<HostStats>>,
    /// Per host, like one anvil per Postfix instance.
    pub anvils: Vec<Anvil>,
    pub greylist: Greylist,
    pub tls: Option<TlsAcceptor>,
}
