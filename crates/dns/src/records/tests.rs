//! `MxResolver::addresses`, `reverse` and `mx_records` against a real DNS server
//! (hickory-server on 127.0.0.1) authoritative for `records.test.` and `in-addr.arpa.`, with a
//! prober's names: a HELO name with an A record, the PTR of its address, a sender domain with
//! MX records, one with a null MX, one with an A record only. Nothing is ever connected to.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use hickory_proto::rr::rdata::{A, AAAA, MX, PTR, SOA, TXT};
use hickory_proto::rr::{LowerName, Name, RData, Record};
use hickory_server::Server;
use hickory_server::store::in_memory::InMemoryZoneHandler;
use hickory_server::zone_handler::{AxfrPolicy, Catalog, ZoneType};
use tokio::net::{TcpListener, UdpSocket};

use super::Records;
use crate::{MxHost, MxResolver, ResolverConfig};

fn n(name: &str) -> Name {
    Name::from_ascii(name).unwrap()
}

fn zone(origin: &str, records: Vec<(&str, RData)>) -> InMemoryZoneHandler {
    let mut zone = InMemoryZoneHandler::empty(n(origin), ZoneType::Primary, AxfrPolicy::Deny);
    let soa = SOA::new(
        n(&format!("ns.{origin}")),
        n(&format!("hostmaster.{origin}")),
        1,
        3600,
        600,
        86400,
        60,
    );
    zone.upsert_mut(Record::from_rdata(n(origin), 60, RData::SOA(soa)), 1);
    for (owner, data) in records {
        zone.upsert_mut(Record::from_rdata(n(owner), 60, data), 1);
    }
    zone
}

/// Starts the server; dropping the returned `Server` stops it.
async fn serve() -> (Server<Catalog>, SocketAddr) {
    let v4 = |s: &str| s.parse().unwrap();
    let mut catalog = Catalog::new();
    let forward = zone(
        "records.test.",
        vec![
            ("a.prober.records.test.", RData::A(A(v4("127.0.1.1")))),
            (
                "a.prober.records.test.",
                RData::AAAA(AAAA(std::net::Ipv6Addr::LOCALHOST)),
            ),
            ("b.prober.records.test.", RData::A(A(v4("127.0.9.9")))),
            (
                "sender.records.test.",
                RData::MX(MX::new(20, n("mx2.records.test."))),
            ),
            (
                "sender.records.test.",
                RData::MX(MX::new(10, n("MX1.records.test."))),
            ),
            ("null.records.test.", RData::MX(MX::new(0, Name::root()))),
            ("aonly.records.test.", RData::A(A(v4("127.0.5.5")))),
            (
                "txt.records.test.",
                RData::TXT(TXT::new(vec!["v=spf1 -all".into()])),
            ),
        ],
    );
    let reverse = zone(
        "in-addr.arpa.",
        vec![
            (
                "1.1.0.127.in-addr.arpa.",
                RData::PTR(PTR(n("A.Prober.records.test."))),
            ),
            (
                "7.2.0.192.in-addr.arpa.",
                RData::PTR(PTR(n("b.prober.records.test."))),
            ),
            (
                "7.2.0.192.in-addr.arpa.",
                RData::PTR(PTR(n("c.prober.records.test."))),
            ),
        ],
    );
    catalog.upsert(LowerName::from(n("records.test.")), vec![Arc::new(forward)]);
    catalog.upsert(LowerName::from(n("in-addr.arpa.")), vec![Arc::new(reverse)]);
    let mut server = Server::new(catalog);
    let (udp, tcp) = loop {
        let udp = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        if let Ok(tcp) = TcpListener::bind(udp.local_addr().unwrap()).await {
            break (udp, tcp);
        }
    };
    let addr = udp.local_addr().unwrap();
    server.register_socket(udp);
    server.register_listener(tcp, Duration::from_secs(5), 16);
    (server, addr)
}

fn resolver(addr: SocketAddr) -> MxResolver {
    MxResolver::new(ResolverConfig {
        nameservers: vec![addr],
        timeout: Duration::from_secs(2),
        ..ResolverConfig::default()
    })
    .unwrap()
}

fn ips(list: &[&str]) -> Vec<IpAddr> {
    list.iter().map(|s| s.parse().unwrap()).collect()
}

#[tokio::test]
async fn addresses_of_a_name_both_families_ipv4_first() {
    let (_server, addr) = serve().await;
    let dns = resolver(addr);
    assert_eq!(
        dns.addresses("A.Prober.records.test.").await,
        Records::Found(ips(&["127.0.1.1", "::1"]))
    );
    assert_eq!(
        dns.addresses("b.prober.records.test").await,
        Records::Found(ips(&["127.0.9.9"]))
    );
    assert_eq!(
        dns.addresses("txt.records.test").await,
        Records::NoData,
        "the name exists without A/AAAA"
    );
    assert_eq!(
        dns.addresses("missing.records.test").await,
        Records::NoSuchName
    );
    assert_eq!(dns.addresses("not a name").await, Records::NoSuchName);
}

#[tokio::test]
async fn reverse_gives_normalised_ptr_names() {
    let (_server, addr) = serve().await;
    let dns = resolver(addr);
    assert_eq!(
        dns.reverse("127.0.1.1".parse().unwrap()).await,
        Records::Found(vec!["a.prober.records.test".to_string()])
    );
    // A public address goes through hickory; a loopback one is asked directly (hickory would
    // answer `localhost` itself).
    assert_eq!(
        dns.reverse("192.0.2.7".parse().unwrap()).await,
        Records::Found(vec![
            "b.prober.records.test".to_string(),
            "c.prober.records.test".to_string()
        ])
    );
    assert_eq!(
        dns.reverse("192.0.2.8".parse().unwrap()).await,
        Records::NoSuchName
    );
    let missing = dns.reverse("127.0.1.2".parse().unwrap()).await;
    assert_eq!(missing, Records::NoSuchName);
    assert!(missing.found().is_empty());
    // No zone serves ip6.arpa: the server refuses, which is not an answer.
    let refused = dns.reverse("::1".parse().unwrap()).await;
    assert!(refused.is_temporary(), "{refused:?}");
    assert_eq!(refused.as_label(), "temp_fail");
}

#[tokio::test]
async fn mx_records_as_published() {
    let (_server, addr) = serve().await;
    let dns = resolver(addr);
    let host = |name: &str, preference| MxHost {
        name: name.to_string(),
        preference,
    };
    assert_eq!(
        dns.mx_records("sender.records.test").await,
        Records::Found(vec![
            host("mx1.records.test", 10),
            host("mx2.records.test", 20)
        ])
    );
    assert_eq!(
        dns.mx_records("null.records.test").await,
        Records::Found(vec![host("", 0)])
    );
    // No MX: NODATA here (no implicit MX, unlike `resolve`).
    assert_eq!(dns.mx_records("aonly.records.test").await, Records::NoData);
    assert_eq!(
        dns.mx_records("missing.records.test").await,
        Records::NoSuchName
    );
}
