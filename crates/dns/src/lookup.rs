//! One uncached resolution of a domain over hickory: MX query, address queries for the MX
//! hosts (or the domain itself), target policy, and how long the answer may be cached. Also
//! the single queries (A/AAAA, PTR, MX) behind [`crate::Records`].
//!
//! Owns the mapping from DNS answers and errors to a [`Resolution`]. It does not cache,
//! deduplicate or bound concurrency (see `resolver`), and the ordering and policy rules it
//! applies live in `order` and `target`.

use std::net::{IpAddr, SocketAddr};
use std::sync::Mutex;
use std::time::Duration;

use futures_util::future::join_all;
use hickory_resolver::TokioResolver;
use hickory_resolver::net::{DnsError, NetError};
use hickory_resolver::proto::op::ResponseCode;
use hickory_resolver::proto::rr::{Name, RData, Record, RecordType};
use rand::rngs::StdRng;
use tracing::debug;

use crate::order::{MxHost, MxOrder, normalise_name, order_mx};
use crate::resolution::{MxTarget, Resolution};
use crate::target::TargetPolicy;
use crate::{direct, truncated};

/// MX hosts resolved per domain, at most. RFC 5321 sets no limit, but a hostile zone could
/// list hundreds; Postfix tries 5 addresses (`smtp_mx_address_limit`), so 10 hosts is ample.
pub(crate) const MAX_MX_HOSTS: usize = 10;

/// Addresses kept per MX host (A and AAAA together, IPv4 first). A hostile zone can publish
/// thousands; each one is a connection a worker might try. Postfix tries 5 addresses per
/// delivery (`smtp_mx_address_limit`).
pub(crate) const MAX_ADDRS_PER_HOST: usize = 16;

/// A resolution and how long it may be cached (`None`: not at all).
#[derive(Debug)]
pub(crate) struct Answer {
    pub(crate) resolution: Resolution,
    pub(crate) ttl: Option<Duration>,
}

/// Cache lifetimes: record TTLs clamped to `[min, max]`; negative answers follow the SOA's
/// negative TTL (RFC 2308 5) within `[min(min, negative), negative]`.
#[derive(Clone, Copy, Debug)]
pub(crate) struct TtlBounds {
    pub(crate) min: Duration,
    pub(crate) max: Duration,
    pub(crate) negative: Duration,
}

impl TtlBounds {
    fn positive(&self, record_ttl: u32) -> Duration {
        Duration::from_secs(u64::from(record_ttl)).clamp(self.min, self.max)
    }

    fn negative(&self, soa_ttl: Option<u32>) -> Duration {
        match soa_ttl {
            Some(ttl) => Duration::from_secs(u64::from(ttl))
                .clamp(self.min.min(self.negative), self.negative),
            None => self.negative,
        }
    }
}

/// What one DNS query said.
pub(crate) enum Outcome<T> {
    /// Records found, with the smallest TTL among them.
    Found(T, u32),
    /// The name exists but has no record of this type; SOA negative TTL if present.
    NoData(Option<u32>),
    /// NXDOMAIN; SOA negative TTL if present.
    NxDomain(Option<u32>),
    /// SERVFAIL, REFUSED, timeout, network error... after the configured attempts.
    Failed(String),
}

impl<T> Outcome<T> {
    fn from_error(err: NetError) -> Self {
        match err {
            NetError::Dns(DnsError::NoRecordsFound(nr)) => {
                if nr.response_code == ResponseCode::NXDomain {
                    Outcome::NxDomain(nr.negative_ttl)
                } else {
                    Outcome::NoData(nr.negative_ttl)
                }
            }
            other => Outcome::Failed(other.to_string()),
        }
    }
}

/// A name as an absolute DNS name, so resolv.conf search domains are never appended.
/// `None` for something that cannot be a DNS name.
pub(crate) fn absolute_name(name: &str) -> Option<Name> {
    if name.is_empty() || !name.is_ascii() || name.contains(|c: char| c.is_ascii_whitespace()) {
        return None;
    }
    let mut parsed = Name::from_ascii(name).ok()?;
    if parsed.is_root() {
        return None;
    }
    parsed.set_fqdn(true);
    Some(parsed)
}

/// Resolves one domain (already normalised: lowercase, no trailing dot).
pub(crate) struct Lookup<'a> {
    pub(crate) dns: &'a TokioResolver,
    /// The nameservers hickory uses, for asking again over TCP when an answer does not fit
    /// even there (`truncated`).
    pub(crate) servers: &'a [SocketAddr],
    /// Per-query timeout for that extra question.
    pub(crate) timeout: Duration,
    pub(crate) policy: TargetPolicy,
    pub(crate) ttl: TtlBounds,
    pub(crate) rng: &'a Mutex<StdRng>,
}

impl Lookup<'_> {
    pub(crate) async fn resolve(&self, domain: &str) -> Answer {
        let Some(name) = absolute_name(domain) else {
            return Answer {
                resolution: Resolution::NoSuchDomain,
                ttl: None,
            };
        };
        let (records, mx_ttl) = match self.mx(name).await {
            Outcome::Found(records, ttl) => (records, ttl),
            Outcome::NxDomain(neg) => return self.negative(Resolution::NoSuchDomain, neg),
            // RFC 5321 5.1: no MX records, so the domain itself is the implicit MX.
            Outcome::NoData(_) => (Vec::new(), u32::MAX),
            Outcome::Failed(reason) => return temp_fail(format!("MX {domain}: {reason}")),
        };
        let order = match self.rng.lock() {
            Ok(mut rng) => order_mx(&records, &mut *rng),
            Err(poisoned) => order_mx(&records, &mut *poisoned.into_inner()),
        };
        match order {
            MxOrder::NullMx => Answer {
                resolution: Resolution::NullMx,
                ttl: Some(self.ttl.positive(mx_ttl)),
            },
            MxOrder::Implicit => self.implicit(domain).await,
            MxOrder::Hosts(hosts) => self.hosts(hosts, mx_ttl).await,
        }
    }

    async fn implicit(&self, domain: &str) -> Answer {
        match self.addrs(domain).await {
            Outcome::Found(addrs, ttl) => {
                let host = MxTarget {
                    name: domain.to_string(),
                    preference: 0,
                    addrs,
                };
                Answer {
                    resolution: self.policy.apply(vec![host], true),
                    ttl: Some(self.ttl.positive(ttl)),
                }
            }
            Outcome::NoData(neg) | Outcome::NxDomain(neg) => {
                self.negative(Resolution::NoMailServer, neg)
            }
            Outcome::Failed(reason) => temp_fail(format!("A/AAAA {domain}: {reason}")),
        }
    }

    async fn hosts(&self, mut hosts: Vec<MxHost>, mx_ttl: u32) -> Answer {
        if hosts.is_empty() {
            // Only malformed (root) targets: nowhere to deliver.
            return Answer {
                resolution: Resolution::NoMailServer,
                ttl: Some(self.ttl.positive(mx_ttl)),
            };
        }
        hosts.truncate(MAX_MX_HOSTS);
        let outcomes = join_all(hosts.iter().map(|h| self.addrs(&h.name))).await;
        let mut targets = Vec::new();
        let mut ttl = mx_ttl;
        let mut negative: Option<u32> = None;
        let mut temporary: Option<String> = None;
        for (host, outcome) in hosts.into_iter().zip(outcomes) {
            match outcome {
                Outcome::Found(addrs, addr_ttl) => {
                    ttl = ttl.min(addr_ttl);
                    targets.push(MxTarget {
                        name: host.name,
                        preference: host.preference,
                        addrs,
                    });
                }
                Outcome::NoData(neg) | Outcome::NxDomain(neg) => {
                    debug!(host = %host.name, "MX host has no address; skipped");
                    negative = match (negative, neg) {
                        (Some(a), Some(b)) => Some(a.min(b)),
                        (a, b) => a.or(b),
                    };
                }
                Outcome::Failed(reason) => {
                    debug!(host = %host.name, %reason, "MX host lookup failed; skipped");
                    temporary.get_or_insert(format!("A/AAAA {}: {reason}", host.name));
                }
            }
        }
        let any_address = !targets.is_empty();
        let resolution = self.policy.apply(targets, false);
        match (resolution, temporary) {
            // Usable hosts, but a failed one may be the better one: use the answer, do not
            // keep it.
            (mail @ Resolution::Mail { .. }, Some(_)) => Answer {
                resolution: mail,
                ttl: None,
            },
            // Nothing usable and some host could not be looked up: not a verdict yet.
            (_, Some(reason)) => temp_fail(reason),
            (resolution, None) if any_address => Answer {
                resolution,
                ttl: Some(self.ttl.positive(ttl)),
            },
            // Every MX host name is missing from DNS.
            (_, None) => self.negative(Resolution::NoMailServer, negative),
        }
    }

    /// The answer records of one query. An answer truncated even over TCP is asked for again
    /// and used as far as it goes (see `truncated`); hickory would keep nothing of it.
    async fn answers(&self, name: Name, kind: RecordType) -> Result<Vec<Record>, NetError> {
        match self.dns.lookup(name.clone(), kind).await {
            Ok(lookup) => Ok(lookup.answers().to_vec()),
            Err(NetError::Truncated) => {
                match truncated::tcp_answers(self.servers, &name, kind, self.timeout).await {
                    Ok(records) if !records.is_empty() => {
                        debug!(%name, ?kind, records = records.len(), "answer truncated even over TCP; using what fit");
                        Ok(records)
                    }
                    Ok(_) => Err(NetError::Truncated),
                    Err(reason) => {
                        debug!(%name, ?kind, %reason, "truncated answer could not be fetched again");
                        Err(NetError::Truncated)
                    }
                }
            }
            Err(other) => Err(other),
        }
    }

    pub(crate) async fn mx(&self, name: Name) -> Outcome<Vec<(u16, String)>> {
        match self.answers(name, RecordType::MX).await {
            Ok(answers) => {
                let mut ttl = u32::MAX;
                let mut records = Vec::new();
                for record in &answers {
                    if let RData::MX(mx) = &record.data {
                        records.push((mx.preference, mx.exchange.to_ascii()));
                        ttl = ttl.min(record.ttl);
                    }
                }
                if records.is_empty() {
                    Outcome::NoData(None)
                } else {
                    Outcome::Found(records, ttl)
                }
            }
            Err(err) => Outcome::from_error(err),
        }
    }

    /// A and AAAA for one host, queried together. Either family with addresses is enough;
    /// the other's failure is then ignored.
    pub(crate) async fn addrs(&self, host: &str) -> Outcome<Vec<IpAddr>> {
        let Some(name) = absolute_name(host) else {
            return Outcome::NxDomain(None);
        };
        let (v4, v6) = tokio::join!(
            self.addr_query(name.clone(), RecordType::A),
            self.addr_query(name, RecordType::AAAA)
        );
        match (v4, v6) {
            (Outcome::Found(mut a, ta), Outcome::Found(b, tb)) => {
                a.extend(b);
                a.truncate(MAX_ADDRS_PER_HOST);
                Outcome::Found(a, ta.min(tb))
            }
            (found @ Outcome::Found(..), _) | (_, found @ Outcome::Found(..)) => found,
            (Outcome::Failed(reason), _) | (_, Outcome::Failed(reason)) => Outcome::Failed(reason),
            (Outcome::NoData(a), Outcome::NoData(b) | Outcome::NxDomain(b))
            | (Outcome::NxDomain(b), Outcome::NoData(a)) => Outcome::NoData(a.or(b)),
            (Outcome::NxDomain(a), Outcome::NxDomain(b)) => Outcome::NxDomain(a.or(b)),
        }
    }

    async fn addr_query(&self, name: Name, kind: RecordType) -> Outcome<Vec<IpAddr>> {
        match self.answers(name, kind).await {
            Ok(answers) => {
                let mut ttl = u32::MAX;
                let mut addrs = Vec::new();
                for record in &answers {
                    let ip = match &record.data {
                        RData::A(a) => IpAddr::V4(a.0),
                        RData::AAAA(aaaa) => IpAddr::V6(aaaa.0),
                        _ => continue,
                    };
                    if !addrs.contains(&ip) {
                        addrs.push(ip);
                    }
                    ttl = ttl.min(record.ttl);
                    if addrs.len() == MAX_ADDRS_PER_HOST {
                        break;
                    }
                }
                if addrs.is_empty() {
                    Outcome::NoData(None)
                } else {
                    Outcome::Found(addrs, ttl)
                }
            }
            Err(err) => Outcome::from_error(err),
        }
    }

    /// The PTR names of `ip` (its `in-addr.arpa` / `ip6.arpa` name), normalised (lowercase, no
    /// trailing dot), de-duplicated and sorted, at most [`MAX_ADDRS_PER_HOST`].
    pub(crate) async fn ptr(&self, ip: IpAddr) -> Outcome<Vec<String>> {
        let mut name = Name::from(ip);
        name.set_fqdn(true);
        let answers = if ip.is_loopback() {
            // hickory answers these itself (`localhost`, RFC 6761 6.3); a lab prober bound to
            // a loopback address needs what its lab DNS serves (see `direct`).
            let usable = |code| matches!(code, ResponseCode::NoError | ResponseCode::NXDomain);
            match direct::ask_each(self.servers, &name, RecordType::PTR, self.timeout, usable).await
            {
                Ok(response) if response.code == ResponseCode::NXDomain => {
                    return Outcome::NxDomain(None);
                }
                Ok(response) => Ok(response.records),
                Err(reason) => return Outcome::Failed(reason),
            }
        } else {
            self.answers(name, RecordType::PTR).await
        };
        match answers {
            Ok(answers) => {
                let mut ttl = u32::MAX;
                let mut names = Vec::new();
                for record in &answers {
                    let RData::PTR(ptr) = &record.data else {
                        continue;
                    };
                    let target = normalise_name(&ptr.0.to_ascii());
                    if !target.is_empty() && !names.contains(&target) {
                        names.push(target);
                        ttl = ttl.min(record.ttl);
                    }
                    if names.len() == MAX_ADDRS_PER_HOST {
                        break;
                    }
                }
                // Their order carries no meaning; sorted, a report reads the same every time.
                names.sort();
                if names.is_empty() {
                    Outcome::NoData(None)
                } else {
                    Outcome::Found(names, ttl)
                }
            }
            Err(err) => Outcome::from_error(err),
        }
    }

    fn negative(&self, resolution: Resolution, soa_ttl: Option<u32>) -> Answer {
        Answer {
            resolution,
            ttl: Some(self.ttl.negative(soa_ttl)),
        }
    }
}

fn temp_fail(reason: String) -> Answer {
    Answer {
        resolution: Resolution::TempFail { reason },
        ttl: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ttl_bounds_clamp() {
        let b = TtlBounds {
            min: Duration::from_secs(60),
            max: Duration::from_secs(3600),
            negative: Duration::from_secs(300),
        };
        assert_eq!(b.positive(5), Duration::from_secs(60));
        assert_eq!(b.positive(600), Duration::from_secs(600));
        assert_eq!(b.positive(86_400), Duration::from_secs(3600));
        assert_eq!(b.negative(None), Duration::from_secs(300));
        assert_eq!(b.negative(Some(30)), Duration::from_secs(60));
        assert_eq!(b.negative(Some(120)), Duration::from_secs(120));
        assert_eq!(b.negative(Some(86_400)), Duration::from_secs(300));
    }

    #[test]
    fn absolute_names() {
        assert_eq!(
            absolute_name("example.com").map(|n| n.to_ascii()),
            Some("example.com.".to_string())
        );
        assert!(absolute_name("example.com").is_some_and(|n| n.is_fqdn()));
        for bad in ["", ".", "bad name.com", "b\u{fc}cher.example", "a..b"] {
            assert!(absolute_name(bad).is_none(), "{bad:?}");
        }
        let long = format!("{}.com", "a".repeat(64));
        assert!(absolute_name(&long).is_none());
    }
}
