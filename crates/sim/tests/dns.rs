//! The fleet's DNS server, queried with hickory-resolver: MX with preferences, null MX,
//! NXDOMAIN, A-only domains and host A records.

mod common;

use std::net::IpAddr;
use std::time::Duration;

use hickory_resolver::config::{ConnectionConfig, NameServerConfig, ResolverConfig};
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::net::{DnsError, NetError};
use hickory_resolver::proto::op::ResponseCode;
use hickory_resolver::proto::rr::RData;
use hickory_resolver::{Resolver, TokioResolver};
use rollcall_sim::Fleet;

const EXAMPLE: &str = include_str!("../fleets/example.toml");
const PROVIDERS: &str = include_str!("../fleets/providers.toml");

fn resolver(f: &Fleet) -> TokioResolver {
    let dns = f.dns_addr();
    let mut udp = ConnectionConfig::udp();
    udp.port = dns.port();
    let mut tcp = ConnectionConfig::tcp();
    tcp.port = dns.port();
    let config = ResolverConfig::from_name_servers(vec![NameServerConfig::new(
        dns.ip(),
        true,
        vec![udp, tcp],
    )]);
    let mut b = Resolver::builder_with_config(config, TokioRuntimeProvider::default());
    b.options_mut().timeout = Duration::from_secs(2);
    b.options_mut().attempts = 1;
    b.build().unwrap()
}

async fn mx(r: &TokioResolver, name: &str) -> Result<Vec<(u16, String)>, NetError> {
    let lookup = r.mx_lookup(name).await?;
    let mut out: Vec<(u16, String)> = lookup
        .answers()
        .iter()
        .filter_map(|rec| match &rec.data {
            RData::MX(mx) => Some((mx.preference, mx.exchange.to_ascii())),
            _ => None,
        })
        .collect();
    out.sort();
    Ok(out)
}

fn response_code(e: &NetError) -> Option<ResponseCode> {
    match e {
        NetError::Dns(DnsError::NoRecordsFound(nr)) => Some(nr.response_code),
        _ => None,
    }
}

#[tokio::test]
async fn answers_mx_null_mx_nxdomain_and_a_only() {
    let f = common::fleet(EXAMPLE).await;
    let r = resolver(&f);

    assert_eq!(
        mx(&r, "normal.test.").await.unwrap(),
        vec![
            (10, "mx1.alpha.test.".into()),
            (20, "mx2.alpha.test.".into())
        ]
    );
    assert_eq!(mx(&r, "nullmx.test.").await.unwrap(), vec![(0, ".".into())]);

    let e = mx(&r, "nxdomain.test.").await.unwrap_err();
    assert_eq!(response_code(&e), Some(ResponseCode::NXDomain), "{e:?}");
    let e = mx(&r, "never-heard-of.test.").await.unwrap_err();
    assert_eq!(response_code(&e), Some(ResponseCode::NXDomain), "{e:?}");

    // A-only: no MX (NODATA), but an A record pointing at a live host (implicit MX).
    let e = mx(&r, "aonly.test.").await.unwrap_err();
    assert_eq!(response_code(&e), Some(ResponseCode::NoError), "{e:?}");
    let ips: Vec<IpAddr> = r.lookup_ip("aonly.test.").await.unwrap().iter().collect();
    assert_eq!(ips, vec![f.host_addr("mx2.half.test").unwrap().ip()]);

    // No MX and no A, but the name exists.
    let e = mx(&r, "nomx.test.").await.unwrap_err();
    assert_eq!(response_code(&e), Some(ResponseCode::NoError), "{e:?}");

    // Every host has an A record, down ones included.
    for h in f.hosts() {
        let ips: Vec<IpAddr> = r
            .lookup_ip(format!("{}.", h.name))
            .await
            .unwrap()
            .iter()
            .collect();
        assert_eq!(ips, vec![h.addr.ip()], "{}", h.name);
    }
    assert_eq!(
        mx(&r, "gone.test.").await.unwrap(),
        vec![(10, "mx1.gone.test.".into()), (20, "mx2.gone.test.".into())]
    );
    f.shutdown().await;
}

/// Provider host names (what a verifier's provider rules match) resolve in the fleet's own
/// DNS to loopback addresses, and provider domains have MX records pointing at them.
#[tokio::test]
async fn provider_names_resolve_to_loopback_in_the_fleet_dns() {
    let f = common::fleet(PROVIDERS).await;
    let r = resolver(&f);
    assert_eq!(
        mx(&r, "yahoo-mail.test.").await.unwrap(),
        vec![
            (1, "mta5.am0.yahoodns.net.".into()),
            (1, "mta6.am0.yahoodns.net.".into())
        ]
    );
    assert_eq!(
        mx(&r, "workspace.test.").await.unwrap(),
        vec![
            (1, "aspmx.l.google.com.".into()),
            (5, "alt1.aspmx.l.google.com.".into())
        ]
    );
    for h in f.hosts() {
        let ips: Vec<IpAddr> = r
            .lookup_ip(format!("{}.", h.name))
            .await
            .unwrap()
            .iter()
            .collect();
        assert_eq!(ips, vec![h.addr.ip()], "{}", h.name);
        assert!(h.addr.ip().is_loopback(), "{}", h.name);
    }
    // Only the fleet's own names exist under the providers' zones.
    let e = mx(&r, "gmail.com.").await.unwrap_err();
    assert_eq!(response_code(&e), Some(ResponseCode::NXDomain), "{e:?}");
    f.shutdown().await;
}
