//! The `smtp_connect` check of `rollcall doctor` and its targets: `--target HOST[:PORT]` and
//! `--target-domain DOMAIN` parsed, resolved once with the configured DNS and held to the
//! target policy (`rollcall_dns::classify_target`, as the engine does before it connects),
//! then one real `rollcall_smtp::Session` per (egress, target): connect from the egress's
//! source address or through its SOCKS5 proxy, greeting, EHLO, STARTTLS per the TLS setting,
//! QUIT. The session is built from the egress exactly as the engine builds it
//! (`rollcall_engine::client_config`), so what passes here is what a run does.
//!
//! Owns target syntax, target resolution and the advice that goes with each failure; no
//! output.

use std::net::{IpAddr, SocketAddr};

use futures_util::future::join_all;
use rollcall_dns::{MxResolver, Records, TargetClass, classify_target};
use rollcall_engine::config::EngineConfig;
use rollcall_engine::egress::Egress;
use rollcall_smtp::{Error, Phase, Session};

use super::finding::Finding;

/// MX hosts of a `--target-domain` tested, at most (most preferred first).
const MAX_DOMAIN_HOSTS: usize = 5;

/// A target as given on the command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum TargetSpec {
    /// An IP address and port.
    Addr(SocketAddr),
    /// A host name (resolved with the configured DNS) and port.
    Host { name: String, port: u16 },
    /// A mail domain: its MX hosts on the SMTP port.
    Domain(String),
}

/// Where an `smtp_connect` check connects, or why it cannot.
#[derive(Debug, Clone)]
pub(super) struct Target {
    /// How the report names it: `192.0.2.1:25`, `mx.example.com (192.0.2.1:25)`.
    pub label: String,
    /// The address and the server name (for SNI), or the finding that replaces the session.
    to: Result<(SocketAddr, Option<String>), Finding>,
}

/// `IP`, `IP:PORT`, `[IPv6]:PORT`, `NAME` or `NAME:PORT`; `port` when none is given.
pub(super) fn parse_target(text: &str, port: u16) -> Result<TargetSpec, String> {
    let text = text.trim();
    if let Ok(addr) = text.parse::<SocketAddr>() {
        return Ok(TargetSpec::Addr(addr));
    }
    let bare = text.trim_start_matches('[').trim_end_matches(']');
    if let Ok(ip) = bare.parse::<IpAddr>() {
        return Ok(TargetSpec::Addr(SocketAddr::new(ip, port)));
    }
    let (name, port) = match text.rsplit_once(':') {
        Some((name, p)) => match p.parse::<u16>() {
            Ok(p) if p != 0 => (name, p),
            _ => return Err(format!("`{p}` is not a port (1-65535)")),
        },
        None => (text, port),
    };
    check_name(name)?;
    Ok(TargetSpec::Host {
        name: normalise(name),
        port,
    })
}

/// A `--target-domain`: a domain name.
pub(super) fn parse_domain(text: &str) -> Result<TargetSpec, String> {
    check_name(text.trim())?;
    Ok(TargetSpec::Domain(normalise(text.trim())))
}

fn normalise(name: &str) -> String {
    name.trim_end_matches('.').to_ascii_lowercase()
}

fn check_name(name: &str) -> Result<(), String> {
    let bare = name.trim_end_matches('.');
    let ok = !bare.is_empty()
        && bare.len() <= 253
        && bare.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        });
    if ok {
        Ok(())
    } else {
        Err(
            "not an IP address or a host name (give HOST[:PORT], e.g. mx.example.com or \
             192.0.2.1:25)"
                .into(),
        )
    }
}

/// Resolves every target once (all at once), in the order given; a domain gives one target per
/// MX host.
pub(super) async fn resolve(
    dns: &MxResolver,
    specs: &[TargetSpec],
    port: u16,
    allow_private: bool,
) -> Vec<Target> {
    join_all(
        specs
            .iter()
            .map(|spec| resolve_one(dns, spec, port, allow_private)),
    )
    .await
    .into_iter()
    .flatten()
    .collect()
}

async fn resolve_one(
    dns: &MxResolver,
    spec: &TargetSpec,
    port: u16,
    allow_private: bool,
) -> Vec<Target> {
    match spec {
        TargetSpec::Addr(addr) => vec![Target {
            label: addr.to_string(),
            to: permitted(&addr.to_string(), &[addr.ip()], allow_private)
                .map(|ip| (SocketAddr::new(ip, addr.port()), None)),
        }],
        TargetSpec::Host { name, port } => {
            vec![host(dns, name, *port, allow_private, String::new()).await]
        }
        TargetSpec::Domain(domain) => {
            let hosts = match dns.mx_records(domain).await {
                Records::Found(hosts) if hosts.iter().all(|h| h.name.is_empty()) => {
                    return vec![unusable(
                        domain,
                        format!("{domain} publishes a null MX (RFC 7505): no server to test"),
                        "give a domain that receives mail",
                    )];
                }
                Records::Found(hosts) => hosts
                    .into_iter()
                    .filter(|h| !h.name.is_empty())
                    .map(|h| h.name)
                    .take(MAX_DOMAIN_HOSTS)
                    .collect(),
                // RFC 5321 5.1: no MX, the domain itself is the mail host.
                Records::NoData => vec![domain.clone()],
                Records::NoSuchName => {
                    return vec![unusable(
                        domain,
                        format!("{domain} does not exist in DNS (NXDOMAIN)"),
                        "check the --target-domain spelling",
                    )];
                }
                Records::TempFail { reason } => {
                    return vec![unusable(
                        domain,
                        format!("MX lookup of {domain} failed: {reason}"),
                        "check the DNS servers (--dns ADDR[:PORT], [dns] servers)",
                    )];
                }
            };
            let prefix = format!("{domain} MX ");
            join_all(
                hosts
                    .iter()
                    .map(|h| host(dns, h, port, allow_private, prefix.clone())),
            )
            .await
        }
    }
}

/// A named host: its first address the policy permits.
async fn host(
    dns: &MxResolver,
    name: &str,
    port: u16,
    allow_private: bool,
    prefix: String,
) -> Target {
    let label = format!("{prefix}{name}:{port}");
    let to = match dns.addresses(name).await {
        Records::Found(addrs) => permitted(&label, &addrs, allow_private),
        Records::NoData | Records::NoSuchName => Err(Finding::fail(
            format!("{label}: {name} has no A/AAAA record"),
            "check the target's name",
        )),
        Records::TempFail { reason } => Err(Finding::fail(
            format!("{label}: address lookup of {name} failed: {reason}"),
            "check the DNS servers (--dns ADDR[:PORT], [dns] servers)",
        )),
    };
    match to {
        Ok(ip) => Target {
            label: format!("{label} ({})", SocketAddr::new(ip, port)),
            to: Ok((SocketAddr::new(ip, port), Some(name.to_string()))),
        },
        Err(finding) => Target {
            label,
            to: Err(finding),
        },
    }
}

fn unusable(label: &str, detail: String, fix: &str) -> Target {
    Target {
        label: label.to_string(),
        to: Err(Finding::fail(detail, fix)),
    }
}

/// The first address the target policy permits (every one when private targets are allowed):
/// a verifier that connects wherever a name points can be made to scan a private network.
fn permitted(label: &str, addrs: &[IpAddr], allow_private: bool) -> Result<IpAddr, Finding> {
    if let Some(ip) = addrs
        .iter()
        .find(|ip| allow_private || classify_target(**ip) == TargetClass::Public)
    {
        return Ok(*ip);
    }
    let kind = match addrs.first().map(|ip| classify_target(*ip)) {
        Some(TargetClass::Unusable) => "a loopback or unspecified address",
        _ => "a private or special-purpose address",
    };
    let shown: Vec<String> = addrs.iter().map(ToString::to_string).collect();
    Err(Finding::fail(
        format!("{label}: {} is {kind}: refused", shown.join(", ")),
        "pass --allow-private (or dns.allow_private_targets) for a lab target; test a public \
         MX host otherwise",
    ))
}

/// One session from `egress` to `target`: greeting, EHLO, STARTTLS when offered (or as the TLS
/// setting says), QUIT.
pub(super) async fn smtp_connect(
    engine: &EngineConfig,
    egress: &Egress,
    target: &Target,
) -> Finding {
    let (addr, server_name) = match &target.to {
        Ok(to) => to,
        Err(finding) => return finding.clone(),
    };
    let client = match rollcall_engine::client_config(engine, egress) {
        Ok((client, _)) => client,
        Err(reason) => {
            return Finding::fail(
                reason,
                "fix this egress's settings (proxy = \"socks5://[user:pass@]IP:PORT\", helo, \
                 mail_from)",
            );
        }
    };
    let via = match (&egress.proxy, egress.bind) {
        (Some(_), _) => " through the proxy".to_string(),
        (None, Some(bind)) => format!(" from {bind}"),
        (None, None) => String::new(),
    };
    match Session::connect(*addr, server_name.as_deref(), &client).await {
        Ok(mut session) => {
            let greeting = session
                .greeting()
                .map_or_else(|| "no greeting".to_string(), ToString::to_string);
            let tls = match session.tls() {
                Some(tls) => format!("STARTTLS {}", tls.version),
                None => "no STARTTLS".to_string(),
            };
            let _ = session.quit().await;
            Finding::pass(format!(
                "{}{via}: greeting {greeting}; EHLO accepted; {tls}",
                target.label
            ))
        }
        Err(error) => Finding::fail(
            format!("{}{via}: {error}", target.label),
            advice(&error, egress, addr.port()),
        ),
    }
}

const PROXY_ADVICE: &str = "check the proxy: that it runs and is reachable from here, its \
    credentials, and that it lets connections out to the target's port";
const TIMEOUT_ADVICE: &str = "the server did not answer in time (a greeting delay or a tarpit \
    can take long): raise --greeting-timeout / --command-timeout, or test another target";
const REFUSED_ADVICE: &str = "the server refused this client: check the address's reputation \
    (blocklists), its PTR and its HELO name (the checks above)";
const TLS_ADVICE: &str = "STARTTLS failed: with --tls require a server must offer it; \
    opportunistic (the default) goes on without it";
const PROTOCOL_ADVICE: &str = "the server did not speak SMTP as expected: test another target";

/// What to do about a session that did not open, by what failed.
fn advice(error: &Error, egress: &Egress, port: u16) -> String {
    let blocked = if egress.proxy.is_some() {
        "check the target and port"
    } else {
        "check the target and port; outbound port 25 is blocked by many providers (cloud \
         hosts by default): ask yours to open it, or use a proxy egress"
    };
    let kind = match error {
        Error::Connect { source, .. } => Some(source.kind()),
        _ => None,
    };
    match error {
        Error::Connect { .. } if kind == Some(std::io::ErrorKind::AddrNotAvailable) => {
            let bind = egress.bind.map(|ip| ip.to_string()).unwrap_or_default();
            format!(
                "the source address {bind} is not on this machine: configure it on an \
                 interface, or fix this egress's bind"
            )
        }
        Error::Connect { .. } if kind == Some(std::io::ErrorKind::ConnectionRefused) => {
            format!("nothing accepts connections on port {port} there; {blocked}")
        }
        Error::Connect { .. } | Error::Timeout(Phase::Connect) => blocked.to_string(),
        Error::Proxy { .. } => PROXY_ADVICE.to_string(),
        Error::Timeout(_) => TIMEOUT_ADVICE.to_string(),
        Error::Refused { .. } | Error::ServiceClosing(_) => REFUSED_ADVICE.to_string(),
        Error::Tls(_) | Error::TlsNotOffered | Error::TlsRefused(_) => TLS_ADVICE.to_string(),
        _ => PROTOCOL_ADVICE.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::super::finding::Status;
    use super::*;

    #[test]
    fn target_forms() {
        let addr = |s: &str| TargetSpec::Addr(s.parse().unwrap());
        assert_eq!(
            parse_target("127.0.0.1:2525", 25),
            Ok(addr("127.0.0.1:2525"))
        );
        assert_eq!(parse_target("192.0.2.1", 25), Ok(addr("192.0.2.1:25")));
        assert_eq!(parse_target("[::1]:2526", 25), Ok(addr("[::1]:2526")));
        assert_eq!(parse_target("::1", 587), Ok(addr("[::1]:587")));
        assert_eq!(
            parse_target("MX.Example.com.", 25),
            Ok(TargetSpec::Host {
                name: "mx.example.com".into(),
                port: 25
            })
        );
        assert_eq!(
            parse_target("mx.example.com:2525", 25),
            Ok(TargetSpec::Host {
                name: "mx.example.com".into(),
                port: 2525
            })
        );
        for bad in ["mx.example.com:notaport", "mx:0", "", "bad name", "a..b"] {
            assert!(parse_target(bad, 25).is_err(), "{bad:?}");
        }
        assert_eq!(
            parse_domain("Example.COM"),
            Ok(TargetSpec::Domain("example.com".into()))
        );
        assert!(parse_domain("not a domain").is_err());
    }

    #[test]
    fn the_target_policy_refuses_private_addresses_unless_allowed() {
        let private = ["10.0.0.5".parse().unwrap()];
        let refused = permitted("t", &private, false).unwrap_err();
        assert_eq!(refused.status, Status::Fail);
        assert!(refused.detail.contains("private"), "{refused:?}");
        assert!(refused.fix.unwrap().contains("--allow-private"));
        assert_eq!(permitted("t", &private, true), Ok(private[0]));
        let loopback = ["127.0.0.1".parse().unwrap()];
        let refused = permitted("t", &loopback, false).unwrap_err();
        assert!(refused.detail.contains("loopback"), "{refused:?}");
        // The first permitted address is used.
        let mixed: [IpAddr; 2] = ["10.0.0.5".parse().unwrap(), "192.0.2.1".parse().unwrap()];
        let public: [IpAddr; 2] = ["10.0.0.5".parse().unwrap(), "8.8.8.8".parse().unwrap()];
        assert!(
            permitted("t", &mixed, false).is_err(),
            "192.0.2.0/24 is documentation"
        );
        assert_eq!(permitted("t", &public, false), Ok(public[1]));
    }

    #[tokio::test]
    async fn a_refused_connection_fails_with_advice() {
        // Bound but not listening: connections are refused.
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let addr = socket.local_addr().unwrap();
        let target = Target {
            label: addr.to_string(),
            to: Ok((addr, None)),
        };
        let engine = EngineConfig::default();
        let egress = Egress::direct("a.prober.test", "probe@example.test");
        let found = smtp_connect(&engine, &egress, &target).await;
        assert_eq!(found.status, Status::Fail, "{found:?}");
        assert!(found.detail.starts_with(&addr.to_string()), "{found:?}");
        assert!(found.fix.unwrap().contains("port 25 is blocked"));
        drop(socket);
    }
}
