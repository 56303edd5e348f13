//! A running fleet: starting it (world, TLS identity, SMTP listeners, DNS server), what it
//! tells its users (addresses, ports, list, truth, counters) and shutting it down. Owns the
//! lifecycle only; behaviour lives in `session`, `connection` and `dns`.

use std::collections::BTreeMap;
use std::io::Write;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use hickory_server::Server;
use hickory_server::zone_handler::Catalog;
use rustls_pki_types::CertificateDer;
use tokio::net::TcpSocket;
use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::anvil::Anvil;
use crate::counters::{Counters, HostStats};
use crate::greylist::Greylist;
use crate::server;
use crate::shared::Shared;
use crate::spec::FleetSpec;
use crate::truth::TruthRow;
use crate::world::World;
use crate::{Error, dns, tls};

/// How to run a fleet.
#[derive(Debug, Clone)]
pub struct SimOptions {
    /// The one SMTP port every host listens on; `None`: a random free high port.
    pub smtp_port: Option<u16>,
    /// Where the DNS server listens (UDP and TCP); port 0 picks a free one.
    pub dns_listen: SocketAddr,
    /// Overrides the fleet file's greylist delay.
    pub greylist_delay: Option<Duration>,
}

impl Default for SimOptions {
    fn default() -> Self {
        SimOptions {
            smtp_port: None,
            dns_listen: SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 0),
            greylist_delay: None,
        }
    }
}

/// One host of a running fleet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostInfo {
    /// Host name (as in MX records).
    pub name: String,
    /// Where it listens (or, when down, where nothing listens).
    pub addr: SocketAddr,
    /// Nothing listens on a down host.
    pub down: bool,
}

/// A running simulated fleet. Dropping it stops the servers too; `shutdown` also waits.
pub struct Fleet {
    world: Arc<World>,
    shared: Arc<Shared>,
    smtp_port: u16,
    dns_addr: SocketAddr,
    dns: Option<Server<Catalog>>,
    tasks: JoinSet<()>,
    stop: watch::Sender<bool>,
    _reserved: Vec<TcpSocket>,
    certificate: CertificateDer<'static>,
}

/// Builds the world from `spec` and starts its SMTP and DNS servers on loopback.
pub async fn start(spec: &FleetSpec, opts: SimOptions) -> Result<Fleet, Error> {
    let world = Arc::new(World::build(spec, opts.greylist_delay)?);
    let names: Vec<String> = world.hosts.iter().map(|h| h.name.clone()).collect();
    let (acceptor, certificate) = tls::acceptor(&names)?;
    let bound = server::bind_all(&world, opts.smtp_port)?;
    let shared = Arc::new(Shared {
        world: world.clone(),
        stats: world
            .hosts
            .iter()
            .map(|_| Arc::new(HostStats::default()))
            .collect(),
        anvils: world.hosts.iter().map(|h| Anvil::new(&h.profile)).collect(),
        greylist: Greylist::new(world.greylist_delay),
        tls: Some(acceptor),
    });
    let (dns, dns_addr) = dns::start(&world, opts.dns_listen).await?;
    let (stop, stop_rx) = watch::channel(false);
    let mut tasks = JoinSet::new();
    server::spawn_accept_loops(bound.listeners, &shared, &stop_rx, &mut tasks);
    Ok(Fleet {
        world,
        shared,
        smtp_port: bound.port,
        dns_addr,
        dns: Some(dns),
        tasks,
        stop,
        _reserved: bound.reserved,
        certificate,
    })
}

impl Fleet {
    /// Where the DNS server listens (UDP and TCP).
    pub fn dns_addr(&self) -> SocketAddr {
        self.dns_addr
    }

    /// The SMTP port every host listens on.
    pub fn smtp_port(&self) -> u16 {
        self.smtp_port
    }

    /// Every host, in fleet order (explicit hosts first, then generated ones).
    pub fn hosts(&self) -> Vec<HostInfo> {
        self.world
            .hosts
            .iter()
            .map(|h| HostInfo {
                name: h.name.clone(),
                addr: SocketAddr::new(IpAddr::V4(h.ip), self.smtp_port),
                down: h.down,
            })
            .collect()
    }

    /// Where a host (by name, case-insensitive) listens.
    pub fn host_addr(&self, name: &str) -> Option<SocketAddr> {
        let h = self.world.host(name)?;
        Some(SocketAddr::new(
            IpAddr::V4(self.world.hosts[h as usize].ip),
            self.smtp_port,
        ))
    }

    /// The list to verify, in a stable order (explicit domains in file order, then the
    /// generated population, shuffled with the seed).
    pub fn addresses(&self) -> &[String] {
        &self.world.addresses
    }

    /// Ground truth, in the order of `addresses()`.
    pub fn truth(&self) -> &[TruthRow] {
        &self.world.truth
    }

    /// Writes the truth as JSON lines.
    pub fn write_truth_jsonl<W: Write>(&self, mut out: W) -> std::io::Result<()> {
        for row in self.truth() {
            serde_json::to_writer(&mut out, row)?;
            out.write_all(b"\n")?;
        }
        out.flush()
    }

    /// The greylist delay in force.
    pub fn greylist_delay(&self) -> Duration {
        self.world.greylist_delay
    }

    /// The fleet's self-signed certificate (DER), for clients that want to pin it.
    pub fn tls_certificate(&self) -> &CertificateDer<'static> {
        &self.certificate
    }

    /// A snapshot of the counters: totals, per host, and per client IP (e.g.
    /// `fleet.counters().clients["127.0.0.2"].rcpts`).
    pub fn counters(&self) -> Counters {
        let hosts: BTreeMap<String, _> = self
            .world
            .hosts
            .iter()
            .zip(&self.shared.stats)
            .map(|(h, s)| (h.name.clone(), s.snapshot()))
            .collect();
        let clients = self.shared.stats.iter().flat_map(|s| s.clients());
        Counters::from_hosts(hosts, clients)
    }

    /// Stops accepting, ends every session and the DNS server, and waits for them.
    pub async fn shutdown(mut self) {
        let _ = self.stop.send(true);
        self.tasks.abort_all();
        while self.tasks.join_next().await.is_some() {}
        if let Some(mut dns) = self.dns.take() {
            let _ = dns.shutdown_gracefully().await;
        }
    }
}

impl Drop for Fleet {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
        self.tasks.abort_all();
        if let Some(dns) = &self.dns {
            dns.shutdown_token().cancel();
        }
    }
}

impl std::fmt::Debug for Fleet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Fleet")
            .field("smtp_port", &self.smtp_port)
            .field("dns_addr", &self.dns_addr)
            .field("hosts", &self.world.hosts.len())
            .field("addresses", &self.world.addresses.len())
            .finish()
    }
}
