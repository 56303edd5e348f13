//! [`MxResolver`]: the cached, deduplicated, concurrency-bounded front of MX resolution.
//!
//! Owns building the hickory resolver from a [`ResolverConfig`], the resolution cache, single
//! flight per domain (concurrent calls for one domain share one lookup), the bound on lookups
//! in flight, and the [`ResolveStats`] counters. What a lookup does lives in `lookup`. Also the
//! single questions behind [`Records`] (addresses of a name, PTR of an address, MX records),
//! through the same nameservers, timeouts and lookup bound, uncached.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use hickory_resolver::TokioResolver;
use hickory_resolver::config::{
    ConnectionConfig, NameServerConfig, ProtocolConfig, ResolveHosts,
    ResolverConfig as HickoryConfig, ResolverOpts,
};
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use rand::SeedableRng;
use rand::rngs::StdRng;
use tokio::sync::{Semaphore, watch};
use tokio::time::Instant;

use crate::cache::ResolutionCache;
use crate::config::ResolverConfig;
use crate::error::Error;
use crate::lookup::{Lookup, TtlBounds, absolute_name};
use crate::order::{MxHost, normalise_name, shuffle_equal_preferences};
use crate::records::Records;
use crate::resolution::Resolution;
use crate::target::TargetPolicy;

/// Counters since the resolver was built (cheap to read; for metrics and tests).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ResolveStats {
    /// Calls to `resolve`.
    pub resolves: u64,
    /// Lookups that went to DNS (one per domain per flight).
    pub lookups: u64,
    /// Calls answered from the cache.
    pub cache_hits: u64,
    /// Calls that joined a lookup already in flight for the same domain.
    pub single_flight_joins: u64,
    /// Lookups that ended in [`Resolution::TempFail`].
    pub temp_failures: u64,
    /// Total wall time spent in DNS lookups (divide by `lookups` for the mean).
    pub lookup_time: Duration,
    /// Domains in the cache now.
    pub cached_domains: usize,
}

/// Where an answer came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum AnswerSource {
    /// The cache.
    Cache,
    /// A DNS lookup this call started.
    Lookup,
    /// A DNS lookup another call for the same domain had started.
    Joined,
}

/// A resolution with how it was obtained and how long the call took.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Resolved {
    /// The answer.
    pub resolution: Resolution,
    /// Where it came from.
    pub source: AnswerSource,
    /// Time from the call to the answer, including waiting for a lookup slot.
    pub elapsed: Duration,
}

#[derive(Default)]
struct Counters {
    resolves: AtomicU64,
    lookups: AtomicU64,
    cache_hits: AtomicU64,
    joins: AtomicU64,
    temp_failures: AtomicU64,
    lookup_micros: AtomicU64,
}

type Flight = watch::Receiver<Option<Resolution>>;

struct Inner {
    dns: TokioResolver,
    /// The nameservers `dns` asks (TCP endpoints), for the truncated-answer fallback.
    servers: Vec<SocketAddr>,
    timeout: Duration,
    policy: TargetPolicy,
    ttl: TtlBounds,
    cache: Mutex<ResolutionCache>,
    flights: Mutex<HashMap<String, Flight>>,
    permits: Semaphore,
    rng: Mutex<StdRng>,
    counters: Counters,
}

/// Resolves where mail for a domain goes. Cheap to clone (shared state inside); `Send + Sync`.
#[derive(Clone)]
pub struct MxResolver {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for MxResolver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MxResolver")
            .field("policy", &self.inner.policy)
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}

/// Locks a mutex, recovering from poisoning: the protected maps stay consistent between
/// statements, so a panic elsewhere leaves nothing half-written.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl MxResolver {
    /// Builds a resolver. No DNS traffic happens here. With no nameservers, reads the system
    /// configuration (`/etc/resolv.conf`).
    pub fn new(cfg: ResolverConfig) -> Result<Self, Error> {
        cfg.validate()?;
        let servers = if cfg.nameservers.is_empty() {
            system_nameservers()?
        } else {
            cfg.nameservers
                .iter()
                .map(|&addr| nameserver(addr))
                .collect()
        };
        let tcp_servers = servers.iter().map(tcp_endpoint).collect();
        let mut opts = ResolverOpts::default();
        opts.timeout = cfg.timeout;
        // hickory counts retries after the first try.
        opts.attempts = cfg.attempts - 1;
        // Our own cache holds per-domain answers; hickory's keeps MX host addresses that many
        // domains share (every Google Workspace domain points at the same hosts).
        opts.cache_size = u64::try_from(cfg.cache_size).unwrap_or(u64::MAX);
        opts.positive_max_ttl = Some(cfg.max_ttl);
        opts.negative_max_ttl = Some(cfg.negative_ttl);
        // MX targets come from DNS only; /etc/hosts would let local names leak into verdicts.
        opts.use_hosts_file = ResolveHosts::Never;
        let mut builder = TokioResolver::builder_with_config(
            HickoryConfig::from_name_servers(servers),
            TokioRuntimeProvider::default(),
        );
        *builder.options_mut() = opts;
        let dns = builder.build().map_err(|e| Error::Build(e.to_string()))?;
        let rng = match cfg.rng_seed {
            Some(seed) => StdRng::seed_from_u64(seed),
            None => StdRng::from_os_rng(),
        };
        Ok(Self {
            inner: Arc::new(Inner {
                dns,
                servers: tcp_servers,
                timeout: cfg.timeout,
                policy: TargetPolicy {
                    allow_private: cfg.allow_private_targets,
                },
                ttl: TtlBounds {
                    min: cfg.min_ttl,
                    max: cfg.max_ttl,
                    negative: cfg.negative_ttl,
                },
                cache: Mutex::new(ResolutionCache::new(cfg.cache_size)),
                flights: Mutex::new(HashMap::new()),
                permits: Semaphore::new(cfg.max_in_flight),
                rng: Mutex::new(rng),
                counters: Counters::default(),
            }),
        })
    }

    /// Where mail for `domain` goes. `domain` is ASCII (IDNA-encoded by the caller); case and
    /// one trailing dot are ignored. Something that cannot be a DNS name is
    /// [`Resolution::NoSuchDomain`].
    pub async fn resolve(&self, domain: &str) -> Resolution {
        self.resolve_detailed(domain).await.resolution
    }

    /// [`MxResolver::resolve`], with where the answer came from and how long it took.
    pub async fn resolve_detailed(&self, domain: &str) -> Resolved {
        let started = Instant::now();
        let inner = &self.inner;
        inner.counters.resolves.fetch_add(1, Ordering::Relaxed);
        let key = normalise_name(domain);
        if absolute_name(&key).is_none() {
            // Not a DNS name at all: nothing to ask.
            return self.finish(Resolution::NoSuchDomain, AnswerSource::Lookup, started);
        }
        if let Some(hit) = inner.cached(&key) {
            return self.finish(hit, AnswerSource::Cache, started);
        }
        let (mut flight, source) = {
            let mut flights = lock(&inner.flights);
            if let Some(flight) = flights.get(&key) {
                inner.counters.joins.fetch_add(1, Ordering::Relaxed);
                (flight.clone(), AnswerSource::Joined)
            } else if let Some(hit) = inner.cached(&key) {
                // The flight finished between the first cache check and taking the lock.
                drop(flights);
                return self.finish(hit, AnswerSource::Cache, started);
            } else {
                let (tx, rx) = watch::channel(None);
                flights.insert(key.clone(), rx.clone());
                // The lookup runs in its own task so that a caller giving up (dropping its
                // future) does not cancel it for the others waiting on it.
                tokio::spawn(Arc::clone(inner).fly(key, tx));
                (rx, AnswerSource::Lookup)
            }
        };
        let resolution = match flight.wait_for(Option::is_some).await {
            Ok(answer) => answer.clone(),
            Err(_) => None,
        }
        .unwrap_or_else(|| Resolution::TempFail {
            reason: "DNS lookup ended without an answer".to_string(),
        });
        self.finish(resolution, source, started)
    }

    /// Counters since construction.
    pub fn stats(&self) -> ResolveStats {
        let c = &self.inner.counters;
        ResolveStats {
            resolves: c.resolves.load(Ordering::Relaxed),
            lookups: c.lookups.load(Ordering::Relaxed),
            cache_hits: c.cache_hits.load(Ordering::Relaxed),
            single_flight_joins: c.joins.load(Ordering::Relaxed),
            temp_failures: c.temp_failures.load(Ordering::Relaxed),
            lookup_time: Duration::from_micros(c.lookup_micros.load(Ordering::Relaxed)),
            cached_domains: lock(&self.inner.cache).len(),
        }
    }

    /// The target policy in force (the caller checks each address again before connecting).
    pub fn policy(&self) -> TargetPolicy {
        self.inner.policy
    }

    /// The A and AAAA records of `name` (IPv4 first), at most [`crate::MAX_ADDRS_PER_HOST`].
    /// Either family with addresses is an answer; NODATA only when neither has any. Not cached
    /// here and not filtered by the target policy: what DNS holds (e.g. is a HELO name's
    /// address ours?). Case and one trailing dot are ignored.
    pub async fn addresses(&self, name: &str) -> Records<IpAddr> {
        let Ok(_permit) = self.inner.permits.acquire().await else {
            return slots_closed();
        };
        self.inner
            .lookup()
            .addrs(&normalise_name(name))
            .await
            .into()
    }

    /// The PTR names of `ip` (reverse DNS: `d.c.b.a.in-addr.arpa`, or the `ip6.arpa` nibbles),
    /// lowercase without the trailing dot, de-duplicated, sorted. Not cached here. The PTR of
    /// a loopback address is asked of the nameservers directly (hickory would answer
    /// `localhost` itself, RFC 6761 6.3), so a lab DNS is seen.
    pub async fn reverse(&self, ip: IpAddr) -> Records<String> {
        let Ok(_permit) = self.inner.permits.acquire().await else {
            return slots_closed();
        };
        self.inner.lookup().ptr(ip).await.into()
    }

    /// The MX records of `domain` as published, by preference then name, de-duplicated: no
    /// implicit MX, no address lookups, no target policy (see [`MxResolver::resolve`] for
    /// where mail goes). A root target (RFC 7505 null MX) has an empty name. NODATA: the
    /// domain exists without MX records. Not cached here.
    pub async fn mx_records(&self, domain: &str) -> Records<MxHost> {
        let Some(name) = absolute_name(&normalise_name(domain)) else {
            return Records::NoSuchName;
        };
        let Ok(_permit) = self.inner.permits.acquire().await else {
            return slots_closed();
        };
        let records: Records<(u16, String)> = self.inner.lookup().mx(name).await.into();
        match records {
            Records::Found(list) => {
                let mut hosts: Vec<MxHost> = list
                    .into_iter()
                    .map(|(preference, exchange)| MxHost {
                        name: normalise_name(&exchange),
                        preference,
                    })
                    .collect();
                hosts.sort_by(|a, b| (a.preference, &a.name).cmp(&(b.preference, &b.name)));
                hosts.dedup();
                Records::Found(hosts)
            }
            Records::NoData => Records::NoData,
            Records::NoSuchName => Records::NoSuchName,
            Records::TempFail { reason } => Records::TempFail { reason },
        }
    }

    fn finish(
        &self,
        mut resolution: Resolution,
        source: AnswerSource,
        started: Instant,
    ) -> Resolved {
        // RFC 5321 5.1: random among equal preferences, drawn anew for every caller so load
        // spreads even when the answer is shared or cached.
        if let Resolution::Mail { hosts, .. } = &mut resolution {
            shuffle_equal_preferences(hosts, &mut *lock(&self.inner.rng));
        }
        Resolved {
            resolution,
            source,
            elapsed: started.elapsed(),
        }
    }
}

impl Inner {
    fn lookup(&self) -> Lookup<'_> {
        Lookup {
            dns: &self.dns,
            servers: &self.servers,
            timeout: self.timeout,
            policy: self.policy,
            ttl: self.ttl,
            rng: &self.rng,
        }
    }

    fn cached(&self, key: &str) -> Option<Resolution> {
        let hit = lock(&self.cache).get(key, Instant::now());
        if hit.is_some() {
            self.counters.cache_hits.fetch_add(1, Ordering::Relaxed);
        }
        hit
    }

    /// Runs one lookup for `key`, caches it, and hands it to everyone waiting.
    async fn fly(self: Arc<Self>, key: String, tx: watch::Sender<Option<Resolution>>) {
        // Removes the flight however this task ends (even by panic or runtime shutdown), so a
        // later call starts a new lookup instead of waiting on a dead one.
        struct Landing<'a> {
            flights: &'a Mutex<HashMap<String, Flight>>,
            key: &'a str,
        }
        impl Drop for Landing<'_> {
            fn drop(&mut self) {
                lock(self.flights).remove(self.key);
            }
        }
        let _landing = Landing {
            flights: &self.flights,
            key: &key,
        };

        let resolution = match self.permits.acquire().await {
            Ok(_permit) => {
                self.counters.lookups.fetch_add(1, Ordering::Relaxed);
                let started = Instant::now();
                let answer = self.lookup().resolve(&key).await;
                let micros = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX);
                self.counters
                    .lookup_micros
                    .fetch_add(micros, Ordering::Relaxed);
                if let Some(ttl) = answer.ttl {
                    let now = Instant::now();
                    lock(&self.cache).insert(
                        key.clone(),
                        answer.resolution.clone(),
                        now + ttl,
                        now,
                    );
                }
                answer.resolution
            }
            // The semaphore is never closed; if it were, this is a transient condition.
            Err(_) => Resolution::TempFail {
                reason: "DNS lookup slots closed".to_string(),
            },
        };
        if resolution.is_temporary() {
            self.counters.temp_failures.fetch_add(1, Ordering::Relaxed);
        }
        tx.send_replace(Some(resolution));
    }
}

/// The lookup semaphore is never closed; if it were, this is a transient condition.
fn slots_closed<T>() -> Records<T> {
    Records::TempFail {
        reason: "DNS lookup slots closed".to_string(),
    }
}

fn nameserver(addr: SocketAddr) -> NameServerConfig {
    // ConnectionConfig is #[non_exhaustive]: build with udp()/tcp(), then set the port.
    let mut udp = ConnectionConfig::udp();
    udp.port = addr.port();
    let mut tcp = ConnectionConfig::tcp();
    tcp.port = addr.port();
    NameServerConfig::new(addr.ip(), true, vec![udp, tcp])
}

/// Where a nameserver listens for TCP (its TCP connection's port, else its first one's, else
/// 53).
fn tcp_endpoint(server: &NameServerConfig) -> SocketAddr {
    let port = server
        .connections
        .iter()
        .find(|c| matches!(c.protocol, ProtocolConfig::Tcp))
        .or(server.connections.first())
        .map_or(53, |c| c.port);
    SocketAddr::new(server.ip, port)
}

fn system_nameservers() -> Result<Vec<NameServerConfig>, Error> {
    let (config, _) = hickory_resolver::system_conf::read_system_conf()
        .map_err(|e| Error::SystemConfig(e.to_string()))?;
    // Only the servers are taken: search domains and ndots never apply, since every query
    // is for an absolute name; timeouts and attempts are ours.
    let servers = config.name_servers().to_vec();
    if servers.is_empty() {
        return Err(Error::SystemConfig("no nameserver listed".to_string()));
    }
    Ok(servers)
}
