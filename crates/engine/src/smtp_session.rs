//! `Connector` and `ProbeSession` over `rollcall-smtp` (being wired).

use std::net::SocketAddr;
use std::sync::Arc;

use async_trait::async_trait;

use crate::config::EngineConfig;
use crate::probe::{Connector, ProbeFailure, ProbeSession};

/// The connector the engine uses against real (or simulated) MX hosts.
pub fn connector(config: &EngineConfig) -> Arc<dyn Connector> {
    let _ = config;
    Arc::new(Unwired)
}

struct Unwired;

#[async_trait]
impl Connector for Unwired {
    async fn connect(&self, addr: SocketAddr) -> Result<Box<dyn ProbeSession>, ProbeFailure> {
        Err(ProbeFailure::ConnectionFailed(format!(
            "{addr}: SMTP driver not wired yet"
        )))
    }
}
