//! The fleet's DNS server (hickory-server on loopback UDP + TCP, one port): A records for
//! every host, and per domain MX with preferences, `MX 0 .` (RFC 7505), an A record only
//! (implicit MX, RFC 5321 5.1), a TXT record only (exists, no mail server) or nothing
//! (NXDOMAIN). One authoritative zone per top-level label, so every unknown name under a
//! fleet TLD is NXDOMAIN rather than REFUSED. Owns no SMTP logic.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hickory_proto::rr::rdata::{A, MX, SOA, TXT};
use hickory_proto::rr::{LowerName, Name, RData, Record};
use hickory_server::Server;
use hickory_server::net::runtime::TokioRuntimeProvider;
use hickory_server::store::in_memory::InMemoryZoneHandler;
use hickory_server::zone_handler::{AxfrPolicy, Catalog, ZoneType};
use tokio::net::{TcpListener, UdpSocket};

use crate::Error;
use crate::spec::Behaviour;
use crate::world::World;

const TTL: u32 = 300;
const SERIAL: u32 = 1;

fn name(s: &str) -> Result<Name, Error> {
    let fq = if s.ends_with('.') {
        s.to_string()
    } else {
        format!("{s}.")
    };
    Name::from_ascii(&fq).map_err(|e| Error::Spec(format!("bad DNS name `{s}`: {e}")))
}

fn tld(s: &str) -> &str {
    let s = s.trim_end_matches('.');
    s.rsplit('.').next().unwrap_or(s)
}

/// Every record of the fleet, grouped by zone (top-level label).
fn records(world: &World) -> Result<BTreeMap<String, Vec<Record>>, Error> {
    let mut zones: BTreeMap<String, Vec<Record>> = BTreeMap::new();
    let mut add = |owner: &str, rdata: RData| -> Result<(), Error> {
        let n = name(owner)?;
        zones
            .entry(tld(owner).to_ascii_lowercase())
            .or_default()
            .push(Record::from_rdata(n, TTL, rdata));
        Ok(())
    };
    for h in &world.hosts {
        add(&h.name, RData::A(A(h.ip)))?;
    }
    let mut domains: Vec<_> = world.domains.values().collect();
    domains.sort_by(|a, b| a.name.cmp(&b.name));
    for d in domains {
        match d.behaviour {
            Behaviour::Nxdomain => {}
            Behaviour::NullMx => add(&d.name, RData::MX(MX::new(0, Name::root())))?,
            Behaviour::NoMx => add(&d.name, RData::TXT(TXT::new(vec!["v=spf1 -all".into()])))?,
            Behaviour::AOnly => {
                if let Some(h) = d.a_host {
                    add(&d.name, RData::A(A(world.hosts[h as usize].ip)))?;
                }
            }
            _ => {
                for (pref, h) in &d.mx {
                    let exchange = name(&world.hosts[*h as usize].name)?;
                    add(&d.name, RData::MX(MX::new(*pref, exchange)))?;
                }
            }
        }
    }
    Ok(zones)
}

/// Builds the catalog: one primary zone per TLD with an SOA and the fleet's records.
fn catalog(world: &World) -> Result<Catalog, Error> {
    let mut catalog = Catalog::new();
    for (label, recs) in records(world)? {
        let origin = name(&label)?;
        let mut zone: InMemoryZoneHandler<TokioRuntimeProvider> =
            InMemoryZoneHandler::empty(origin.clone(), ZoneType::Primary, AxfrPolicy::Deny);
        let soa = SOA::new(
            name(&format!("ns.sim.{label}"))?,
            name(&format!("hostmaster.sim.{label}"))?,
            SERIAL,
            3600,
            600,
            86400,
            TTL,
        );
        zone.upsert_mut(
            Record::from_rdata(origin.clone(), TTL, RData::SOA(soa)),
            SERIAL,
        );
        for r in recs {
            zone.upsert_mut(r, SERIAL);
        }
        catalog.upsert(LowerName::from(&origin), vec![Arc::new(zone)]);
    }
    Ok(catalog)
}

/// Starts the DNS server on `listen` (port 0: an ephemeral port, the same for UDP and TCP).
pub(crate) async fn start(
    world: &World,
    listen: SocketAddr,
) -> Result<(Server<Catalog>, SocketAddr), Error> {
    let mut catalog = Some(catalog(world)?);
    let bind_err = |addr: SocketAddr, source: std::io::Error| Error::Bind {
        what: "DNS",
        addr,
        source,
    };
    let attempts = if listen.port() == 0 { 16 } else { 1 };
    let mut last = None;
    for _ in 0..attempts {
        let udp = UdpSocket::bind(listen)
            .await
            .map_err(|e| bind_err(listen, e))?;
        let addr = udp.local_addr().map_err(|e| bind_err(listen, e))?;
        match TcpListener::bind(addr).await {
            Ok(tcp) => {
                let Some(catalog) = catalog.take() else { break };
                let mut server = Server::new(catalog);
                server.register_socket(udp);
                server.register_listener(tcp, Duration::from_secs(10), 16);
                return Ok((server, addr));
            }
            Err(e) => last = Some(bind_err(addr, e)),
        }
    }
    Err(last.unwrap_or(Error::NoFreePort { attempts }))
}
