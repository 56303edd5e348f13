//! The fleet's DNS server (hickory-server on loopback UDP + TCP, one port): A records for
//! every host, and per domain MX with preferences, `MX 0 .` (RFC 7505), an A record only
//! (implicit MX, RFC 5321 5.1), a TXT record only (exists, no mail server) or nothing
//! (NXDOMAIN); then the fleet file's extra records (`[[record]]`: A, AAAA, and PTR under
//! `in-addr.arpa.` / `ip6.arpa.`). One authoritative zone per top-level label, so every
//! unknown name under a fleet TLD is NXDOMAIN rather than REFUSED; the reverse zones exist
//! only when a PTR is given (then every other reverse name of that family is NXDOMAIN). Owns
//! no SMTP logic.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hickory_proto::rr::rdata::{A, AAAA, MX, PTR, SOA, TXT};
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

/// The zone a name is served from: the reverse zone of its family for a reverse name, else its
/// top-level label.
fn zone_of(s: &str) -> String {
    let s = s.trim_end_matches('.').to_ascii_lowercase();
    for reverse in ["in-addr.arpa", "ip6.arpa"] {
        if s.ends_with(&format!(".{reverse}")) {
            return reverse.to_string();
        }
    }
    s.rsplit('.').next().unwrap_or(&s).to_string()
}

/// Every record of the fleet, grouped by zone (top-level label).
fn records(world: &World) -> Result<BTreeMap<String, Vec<Record>>, Error> {
    let mut zones: BTreeMap<String, Vec<Record>> = BTreeMap::new();
    let mut add = |owner: &str, rdata: RData| -> Result<(), Error> {
        let n = name(owner)?;
        zones
            .entry(zone_of(owner))
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
    for r in &world.records {
        let owner = r.owner();
        for ip in &r.a {
            add(&owner, RData::A(A(*ip)))?;
        }
        for ip in &r.aaaa {
            add(&owner, RData::AAAA(AAAA(*ip)))?;
        }
        for ip in &r.ptr {
            add(&Name::from(*ip).to_ascii(), RData::PTR(PTR(name(&owner)?)))?;
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

#[cfg(test)]
mod tests {
    use std::net::IpAddr;

    use hickory_resolver::config::{ConnectionConfig, NameServerConfig, ResolverConfig};
    use hickory_resolver::net::{DnsError, NetError};
    use hickory_resolver::proto::op::ResponseCode;
    use hickory_resolver::proto::rr::RecordType;
    use hickory_resolver::{Resolver, TokioResolver};

    use super::*;
    use crate::spec::FleetSpec;

    const FLEET: &str = r#"
[[host]]
name = "mx.fleet.test"
address = "127.0.3.1"

[[site]]
name = "s"
mx = [{ host = "mx.fleet.test", preference = 10 }]

[[domain]]
name = "fleet.test"
site = "s"
"#;

    const RECORDS: &str = r#"
[[record]]
name = "a.prober.test"
a = "127.0.1.1"
aaaa = ["::1"]

[[record]]
name = "a.prober.test"
ptr = ["192.0.2.1", "2001:db8::1"]

[[record]]
name = "Out.Prober.Example."
a = ["192.0.2.1", "192.0.2.2"]
"#;

    async fn serve(fleet: &str) -> (Server<Catalog>, TokioResolver) {
        let spec = FleetSpec::from_toml(fleet).unwrap();
        let world = World::build(&spec, None).unwrap();
        let (server, addr) = start(&world, "127.0.0.1:0".parse().unwrap()).await.unwrap();
        let mut udp = ConnectionConfig::udp();
        udp.port = addr.port();
        let mut tcp = ConnectionConfig::tcp();
        tcp.port = addr.port();
        let config = ResolverConfig::from_name_servers(vec![NameServerConfig::new(
            addr.ip(),
            true,
            vec![udp, tcp],
        )]);
        let mut b = Resolver::builder_with_config(config, TokioRuntimeProvider::default());
        b.options_mut().timeout = Duration::from_secs(2);
        b.options_mut().attempts = 1;
        (server, b.build().unwrap())
    }

    /// The record data of one answer, as text (`127.0.1.1`, `a.prober.test.`), sorted; or the
    /// response code when there is no answer.
    async fn ask(r: &TokioResolver, name: Name, kind: RecordType) -> Result<Vec<String>, String> {
        match r.lookup(name, kind).await {
            Ok(lookup) => {
                let mut out: Vec<String> = lookup
                    .answers()
                    .iter()
                    .map(|a| a.data.to_string())
                    .collect();
                out.sort();
                Ok(out)
            }
            Err(NetError::Dns(DnsError::NoRecordsFound(nr))) => Err(nr.response_code.to_string()),
            Err(other) => Err(other.to_string()),
        }
    }

    fn reverse(ip: &str) -> Name {
        Name::from(ip.parse::<IpAddr>().unwrap())
    }

    #[tokio::test]
    async fn extra_records_are_served_with_their_reverse_zones() {
        let (_server, r) = serve(&format!("{FLEET}{RECORDS}")).await;
        let n = |s: &str| Name::from_ascii(s).unwrap();
        assert_eq!(
            ask(&r, n("a.prober.test."), RecordType::A).await,
            Ok(vec!["127.0.1.1".to_string()])
        );
        assert_eq!(
            ask(&r, n("a.prober.test."), RecordType::AAAA).await,
            Ok(vec!["::1".to_string()])
        );
        assert_eq!(
            ask(&r, n("out.prober.example."), RecordType::A).await,
            Ok(vec!["192.0.2.1".to_string(), "192.0.2.2".to_string()])
        );
        for ip in ["192.0.2.1", "2001:db8::1"] {
            assert_eq!(
                ask(&r, reverse(ip), RecordType::PTR).await,
                Ok(vec!["a.prober.test.".to_string()]),
                "{ip}"
            );
        }
        // The reverse zones are authoritative: another address of each family is NXDOMAIN.
        for ip in ["192.0.2.9", "2001:db8::9"] {
            assert_eq!(
                ask(&r, reverse(ip), RecordType::PTR).await,
                Err(ResponseCode::NXDomain.to_string()),
                "{ip}"
            );
        }
        // The fleet's own records are still there.
        assert_eq!(
            ask(&r, n("mx.fleet.test."), RecordType::A).await,
            Ok(vec!["127.0.3.1".to_string()])
        );
    }

    #[tokio::test]
    async fn a_fleet_without_records_serves_no_reverse_zone() {
        let spec = FleetSpec::from_toml(FLEET).unwrap();
        let world = World::build(&spec, None).unwrap();
        let zones: Vec<String> = records(&world).unwrap().into_keys().collect();
        assert_eq!(zones, ["test"]);
        let (_server, r) = serve(FLEET).await;
        let ptr = ask(&r, reverse("192.0.2.1"), RecordType::PTR).await;
        // Not authoritative for it: refused, as before `[[record]]` existed.
        assert!(
            ptr.as_ref().is_err_and(|e| e.contains("Refused")),
            "{ptr:?}"
        );
    }
}
