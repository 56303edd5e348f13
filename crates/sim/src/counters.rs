//! What the fleet counts while it serves: per-host atomic counters, per-client-IP counters
//! per host, concurrency high-water marks (per host and per client IP per host), and the
//! serialisable snapshot tests assert on (per host, totals, per client IP summed over hosts).
//! Owns no protocol logic: the session and the connection bump the counters.

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};

/// A snapshot of one host's counters (or, in `Counters::totals`, of all hosts).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostCounters {
    /// TCP connections accepted (including those refused with 421 for the per-IP cap or
    /// connection rate).
    pub connections: u64,
    /// Connections answered `421 ... too many connections` and closed (the per-IP cap
    /// `max_conns_per_ip`, or the per-IP connection rate `conn_rate_per_ip`).
    pub connections_refused: u64,
    /// Command lines received.
    pub commands: u64,
    /// MAIL FROM commands accepted.
    pub transactions: u64,
    /// RCPT TO commands received.
    pub rcpts: u64,
    /// RCPT TO commands accepted (250).
    pub rcpts_accepted: u64,
    /// 503 replies sent (bad sequence of commands: what a careful client never earns).
    pub replies_503: u64,
    /// Commands sent ahead without PIPELINING, or not last in a pipelined group (RFC 2920).
    pub pipelining_violations: u64,
    /// Clients that spoke before the (last line of the) greeting.
    pub pregreet_violations: u64,
    /// Sessions closed with `421 ... too many errors`.
    pub error_budget_trips: u64,
    /// DATA commands (a verifier must never send one).
    pub data_commands: u64,
    /// STARTTLS handshakes completed.
    pub tls_sessions: u64,
    /// Connections dropped by `drop_after_commands`.
    pub dropped_connections: u64,
    /// Highest number of simultaneous sessions (in totals: the highest of any host).
    pub max_concurrent_connections: u64,
    /// Highest number of simultaneous sessions from one client IP (in totals: of any host).
    pub max_concurrent_per_ip: u64,
    /// Refusals for a per-client-IP rate (Postfix anvil): connections greeted with `421 4.7.0
    /// <host> Error: too many connections from <ip>` for `conn_rate_per_ip`, MAIL answered
    /// `450 4.7.1 Error: too much mail from <ip>`, RCPT answered `450 4.7.1 Error: too many
    /// recipients from <ip>`.
    #[serde(default)]
    pub rate_limited: u64,
    /// RCPTs answered `450 4.2.0 ... Greylisted` (first sight of a triple, or a retry before
    /// the delay).
    #[serde(default)]
    pub greylisted: u64,
    /// Greylisted triples that later passed: the first RCPT admitted for a (client IP, sender,
    /// recipient) triple that had been greylisted, i.e. a retry from the same IP with the same
    /// sender after the delay. Later RCPTs of a triple that passed are not counted again.
    #[serde(default)]
    pub greylist_passed: u64,
    /// New triples greylisted whose (sender, recipient) had been greylisted before from
    /// another client IP: a retry from the wrong address, which restarts the clock (postgrey
    /// keys on the client). A careful verifier keeps this at 0.
    #[serde(default)]
    pub greylist_other_ip: u64,
    /// RCPTs answered "too many recipients" (`too_many_rcpts_reply`, by default `452 4.5.3`):
    /// over `rcpt_limit` or over `max_rcpts_per_transaction`. A verifier that learns a
    /// server's per-transaction limit keeps this near one per limit learnt, not one per
    /// recipient (no retry storm).
    #[serde(default)]
    pub too_many_rcpts: u64,
}

/// A snapshot of one client IP's counters, summed over the hosts it talked to.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct ClientCounters {
    /// TCP connections from this IP (refused ones included).
    pub connections: u64,
    /// Its connections answered `421 ... too many connections` (cap or connection rate).
    pub connections_refused: u64,
    /// Its MAIL FROM commands accepted.
    pub transactions: u64,
    /// Its RCPT TO commands (every one, whatever the reply).
    pub rcpts: u64,
    /// Its RCPT TO commands accepted (250).
    pub rcpts_accepted: u64,
    /// Its connections, MAILs and RCPTs refused for a per-IP rate (see
    /// `HostCounters::rate_limited`).
    pub rate_limited: u64,
    /// Highest number of simultaneous sessions from this IP at any one host (a session
    /// refused for the cap included, as in `HostCounters::max_concurrent_per_ip`).
    pub max_concurrent: u64,
}

impl ClientCounters {
    /// Adds another host's counters of the same IP (sums, and the maximum of
    /// `max_concurrent`).
    fn absorb(&mut self, o: &ClientCounters) {
        self.connections += o.connections;
        self.connections_refused += o.connections_refused;
        self.transactions += o.transactions;
        self.rcpts += o.rcpts;
        self.rcpts_accepted += o.rcpts_accepted;
        self.rate_limited += o.rate_limited;
        self.max_concurrent = self.max_concurrent.max(o.max_concurrent);
    }
}

/// A snapshot of the whole fleet.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counters {
    /// Sums over hosts, except the two `max_*` fields, which are the maximum over hosts.
    pub totals: HostCounters,
    /// Per host name.
    pub hosts: BTreeMap<String, HostCounters>,
    /// Per client IP (as text, e.g. `127.0.0.2`), summed over hosts; `max_concurrent` is the
    /// maximum over hosts.
    #[serde(default)]
    pub clients: BTreeMap<String, ClientCounters>,
}

/// Live counters of one host.
#[derive(Debug, Default)]
pub(crate) struct HostStats {
    pub connections: AtomicU64,
    pub connections_refused: AtomicU64,
    pub commands: AtomicU64,
    pub transactions: AtomicU64,
    pub rcpts: AtomicU64,
    pub rcpts_accepted: AtomicU64,
    pub replies_503: AtomicU64,
    pub pipelining_violations: AtomicU64,
    pub pregreet_violations: AtomicU64,
    pub error_budget_trips: AtomicU64,
    pub data_commands: AtomicU64,
    pub tls_sessions: AtomicU64,
    pub dropped_connections: AtomicU64,
    pub rate_limited: AtomicU64,
    pub greylisted: AtomicU64,
    pub greylist_passed: AtomicU64,
    pub greylist_other_ip: AtomicU64,
    pub too_many_rcpts: AtomicU64,
    current: AtomicU64,
    max_concurrent: AtomicU64,
    /// Per client IP; entries stay for the life of the fleet (they are counters).
    clients: Mutex<HashMap<IpAddr, Arc<ClientStats>>>,
}

/// Live counters of one client IP at one host. A session holds its client's entry, so
/// counting needs no lock.
#[derive(Debug, Default)]
pub(crate) struct ClientStats {
    pub connections: AtomicU64,
    pub connections_refused: AtomicU64,
    pub transactions: AtomicU64,
    pub rcpts: AtomicU64,
    pub rcpts_accepted: AtomicU64,
    pub rate_limited: AtomicU64,
    current: AtomicU64,
    max_concurrent: AtomicU64,
}

impl ClientStats {
    fn snapshot(&self) -> ClientCounters {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        ClientCounters {
            connections: get(&self.connections),
            connections_refused: get(&self.connections_refused),
            transactions: get(&self.transactions),
            rcpts: get(&self.rcpts),
            rcpts_accepted: get(&self.rcpts_accepted),
            rate_limited: get(&self.rate_limited),
            max_concurrent: get(&self.max_concurrent),
        }
    }
}

/// Held for the life of a session; releases its concurrency slots when dropped.
pub(crate) struct SessionSlot {
    stats: Arc<HostStats>,
    client: Arc<ClientStats>,
}

impl SessionSlot {
    /// The counters of this session's client IP at this host.
    pub fn client(&self) -> &Arc<ClientStats> {
        &self.client
    }
}

impl Drop for SessionSlot {
    fn drop(&mut self) {
        self.stats.current.fetch_sub(1, Ordering::Relaxed);
        self.client.current.fetch_sub(1, Ordering::Relaxed);
    }
}

pub(crate) fn bump(c: &AtomicU64) {
    c.fetch_add(1, Ordering::Relaxed);
}

impl HostStats {
    /// Registers a new session from `ip`; returns its slot and how many sessions that IP now
    /// has on this host (including this one).
    pub fn open(self: &Arc<Self>, ip: IpAddr) -> (SessionSlot, u64) {
        bump(&self.connections);
        let now = self.current.fetch_add(1, Ordering::Relaxed) + 1;
        self.max_concurrent.fetch_max(now, Ordering::Relaxed);
        let client = self
            .clients
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .entry(ip)
            .or_default()
            .clone();
        bump(&client.connections);
        let n = client.current.fetch_add(1, Ordering::Relaxed) + 1;
        client.max_concurrent.fetch_max(n, Ordering::Relaxed);
        let slot = SessionSlot {
            stats: self.clone(),
            client,
        };
        (slot, n)
    }

    /// This host's counters per client IP.
    pub fn clients(&self) -> Vec<(IpAddr, ClientCounters)> {
        self.clients
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .iter()
            .map(|(ip, c)| (*ip, c.snapshot()))
            .collect()
    }

    pub fn snapshot(&self) -> HostCounters {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        HostCounters {
            connections: get(&self.connections),
            connections_refused: get(&self.connections_refused),
            commands: get(&self.commands),
            transactions: get(&self.transactions),
            rcpts: get(&self.rcpts),
            rcpts_accepted: get(&self.rcpts_accepted),
            replies_503: get(&self.replies_503),
            pipelining_violations: get(&self.pipelining_violations),
            pregreet_violations: get(&self.pregreet_violations),
            error_budget_trips: get(&self.error_budget_trips),
            data_commands: get(&self.data_commands),
            tls_sessions: get(&self.tls_sessions),
            dropped_connections: get(&self.dropped_connections),
            max_concurrent_connections: get(&self.max_concurrent),
            max_concurrent_per_ip: self
                .clients
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner())
                .values()
                .map(|c| get(&c.max_concurrent))
                .max()
                .unwrap_or(0),
            rate_limited: get(&self.rate_limited),
            greylisted: get(&self.greylisted),
            greylist_passed: get(&self.greylist_passed),
            greylist_other_ip: get(&self.greylist_other_ip),
            too_many_rcpts: get(&self.too_many_rcpts),
        }
    }
}

impl Counters {
    /// Builds the fleet snapshot from each host's counters and its per-client counters.
    pub(crate) fn from_hosts(
        hosts: BTreeMap<String, HostCounters>,
        per_client: impl IntoIterator<Item = (IpAddr, ClientCounters)>,
    ) -> Counters {
        let mut t = HostCounters::default();
        for h in hosts.values() {
            t.connections += h.connections;
            t.connections_refused += h.connections_refused;
            t.commands += h.commands;
            t.transactions += h.transactions;
            t.rcpts += h.rcpts;
            t.rcpts_accepted += h.rcpts_accepted;
            t.replies_503 += h.replies_503;
            t.pipelining_violations += h.pipelining_violations;
            t.pregreet_violations += h.pregreet_violations;
            t.error_budget_trips += h.error_budget_trips;
            t.data_commands += h.data_commands;
            t.tls_sessions += h.tls_sessions;
            t.dropped_connections += h.dropped_connections;
            t.max_concurrent_connections = t
                .max_concurrent_connections
                .max(h.max_concurrent_connections);
            t.max_concurrent_per_ip = t.max_concurrent_per_ip.max(h.max_concurrent_per_ip);
            t.rate_limited += h.rate_limited;
            t.greylisted += h.greylisted;
            t.greylist_passed += h.greylist_passed;
            t.greylist_other_ip += h.greylist_other_ip;
            t.too_many_rcpts += h.too_many_rcpts;
        }
        let mut clients: BTreeMap<String, ClientCounters> = BTreeMap::new();
        for (ip, c) in per_client {
            clients.entry(ip.to_string()).or_default().absorb(&c);
        }
        Counters {
            totals: t,
            hosts,
            clients,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_track_high_water_marks() {
        let stats = Arc::new(HostStats::default());
        let a: IpAddr = "127.0.0.1".parse().unwrap();
        let b: IpAddr = "127.0.0.2".parse().unwrap();
        let (s1, n1) = stats.open(a);
        let (s2, n2) = stats.open(a);
        let (_s3, n3) = stats.open(b);
        assert_eq!((n1, n2, n3), (1, 2, 1));
        drop(s1);
        drop(s2);
        let (_s4, n4) = stats.open(a);
        assert_eq!(n4, 1);
        let snap = stats.snapshot();
        assert_eq!(snap.connections, 4);
        assert_eq!(snap.max_concurrent_connections, 3);
        assert_eq!(snap.max_concurrent_per_ip, 2);
        let clients: BTreeMap<IpAddr, ClientCounters> = stats.clients().into_iter().collect();
        assert_eq!(clients[&a].connections, 3);
        assert_eq!(clients[&a].max_concurrent, 2);
        assert_eq!(clients[&b].connections, 1);
        assert_eq!(clients[&b].max_concurrent, 1);
    }

    #[test]
    fn clients_sum_over_hosts_and_keep_the_highest_concurrency() {
        let ip: IpAddr = "127.0.0.2".parse().unwrap();
        let one = ClientCounters {
            connections: 2,
            rcpts: 5,
            rate_limited: 1,
            max_concurrent: 2,
            ..ClientCounters::default()
        };
        let other = ClientCounters {
            connections: 1,
            rcpts: 1,
            max_concurrent: 1,
            ..ClientCounters::default()
        };
        let c = Counters::from_hosts(BTreeMap::new(), [(ip, one), (ip, other)]);
        let got = &c.clients["127.0.0.2"];
        assert_eq!((got.connections, got.rcpts, got.rate_limited), (3, 6, 1));
        assert_eq!(got.max_concurrent, 2);
    }

    #[test]
    fn snapshots_from_before_the_per_client_counters_still_parse() {
        let old = r#"{"totals":{"connections":1,"connections_refused":0,"commands":3,
            "transactions":1,"rcpts":1,"rcpts_accepted":1,"replies_503":0,
            "pipelining_violations":0,"pregreet_violations":0,"error_budget_trips":0,
            "data_commands":0,"tls_sessions":0,"dropped_connections":0,
            "max_concurrent_connections":1,"max_concurrent_per_ip":1},"hosts":{}}"#;
        let c: Counters = serde_json::from_str(old).unwrap();
        assert_eq!(c.totals.commands, 3);
        assert_eq!(c.totals.rate_limited, 0);
        assert_eq!(c.totals.greylist_other_ip, 0);
        assert_eq!(c.totals.too_many_rcpts, 0);
        assert!(c.clients.is_empty());
    }
}
