//! What the fleet counts while it serves: per-host atomic counters, concurrency high-water
//! marks (per host and per client IP per host), and the serialisable snapshot tests assert
//! on. Owns no protocol logic: the session calls `record_*`.

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};

/// A snapshot of one host's counters (or, in `Counters::totals`, of all hosts).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostCounters {
    /// TCP connections accepted (including those refused with 421 for the per-IP cap).
    pub connections: u64,
    /// Connections answered `421 ... too many connections` and closed.
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
}

/// A snapshot of the whole fleet.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counters {
    /// Sums over hosts, except the two `max_*` fields, which are the maximum over hosts.
    pub totals: HostCounters,
    /// Per host name.
    pub hosts: BTreeMap<String, HostCounters>,
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
    current: AtomicU64,
    max_concurrent: AtomicU64,
    per_ip: Mutex<PerIp>,
}

#[derive(Debug, Default)]
struct PerIp {
    current: HashMap<IpAddr, u64>,
    max: u64,
}

/// Held for the life of a session; releases its concurrency slots when dropped.
pub(crate) struct SessionSlot {
    stats: Arc<HostStats>,
    ip: IpAddr,
}

impl Drop for SessionSlot {
    fn drop(&mut self) {
        self.stats.current.fetch_sub(1, Ordering::Relaxed);
        let mut per_ip = self
            .stats
            .per_ip
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(n) = per_ip.current.get_mut(&self.ip) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                per_ip.current.remove(&self.ip);
            }
        }
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
        let mut per_ip = self
            .per_ip
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let n = per_ip.current.entry(ip).or_insert(0);
        *n += 1;
        let n = *n;
        per_ip.max = per_ip.max.max(n);
        let slot = SessionSlot {
            stats: self.clone(),
            ip,
        };
        (slot, n)
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
                .per_ip
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner())
                .max,
        }
    }
}

impl Counters {
    pub(crate) fn from_hosts(hosts: BTreeMap<String, HostCounters>) -> Counters {
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
        }
        Counters { totals: t, hosts }
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
    }
}
