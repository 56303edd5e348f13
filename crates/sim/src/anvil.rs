//! Per-client-IP rate limits of one host, like the Postfix `anvil` server each Postfix instance
//! runs: new connections, MAIL FROM and RCPT TO per client IP per `rate_window_ms`
//! (`smtpd_client_connection_rate_limit`, `smtpd_client_message_rate_limit`,
//! `smtpd_client_recipient_rate_limit` over `anvil_rate_time_unit`). Owns the event windows and
//! the over/under decision; the replies are `connection`'s and `session`'s, the concurrency
//! count is `counters`'.
//!
//! Window: sliding and exact. An event is over the limit when, counting itself, more than
//! `limit` events of its kind from that IP fell within the last `window`. Every event is
//! recorded, refused ones included: Postfix's smtpd asks anvil to count the event and then
//! compares the returned rate with the limit, so a client that keeps knocking stays refused
//! until it slows down. Only the newest `limit + 1` times per kind are kept, which is all the
//! decision needs, so memory per client IP is bounded by the limits.
//!
//! Time is `tokio::time::Instant`, so tests can pause and advance it.

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

use crate::spec::Profile;

/// What anvil counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Event {
    /// A new connection (before the greeting).
    Connection,
    /// A MAIL FROM command.
    Mail,
    /// A RCPT TO command.
    Rcpt,
}

impl Event {
    fn index(self) -> usize {
        match self {
            Event::Connection => 0,
            Event::Mail => 1,
            Event::Rcpt => 2,
        }
    }
}

/// The rate limits of one host.
#[derive(Debug)]
pub(crate) struct Anvil {
    window: Duration,
    /// Per `Event::index`; `None`: not limited (and not recorded).
    limits: [Option<u32>; 3],
    clients: Mutex<HashMap<IpAddr, [VecDeque<Instant>; 3]>>,
}

impl Anvil {
    pub fn new(profile: &Profile) -> Anvil {
        Anvil {
            window: Duration::from_millis(profile.rate_window_ms),
            limits: [
                profile.conn_rate_per_ip,
                profile.mail_rate_per_ip,
                profile.rcpt_rate_per_ip,
            ],
            clients: Mutex::new(HashMap::new()),
        }
    }

    /// Records one `event` from `ip` now; true when it is over its limit (and must be
    /// refused). Always false, recording nothing, when that kind is not limited.
    pub fn over(&self, ip: IpAddr, event: Event) -> bool {
        let Some(limit) = self.limits[event.index()] else {
            return false;
        };
        let now = Instant::now();
        let mut clients = self
            .clients
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let times = &mut clients.entry(ip).or_default()[event.index()];
        times.push_back(now);
        while times
            .front()
            .is_some_and(|t| now.duration_since(*t) >= self.window)
        {
            times.pop_front();
        }
        let keep = limit as usize + 1;
        while times.len() > keep {
            times.pop_front();
        }
        times.len() > limit as usize
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn anvil(conn: Option<u32>, rcpt: Option<u32>, window_ms: u64) -> Anvil {
        Anvil::new(&Profile {
            conn_rate_per_ip: conn,
            rcpt_rate_per_ip: rcpt,
            rate_window_ms: window_ms,
            ..Profile::default()
        })
    }

    #[tokio::test(start_paused = true)]
    async fn the_window_slides_and_refused_events_count() {
        let a = anvil(None, Some(2), 1000);
        let ip: IpAddr = "127.0.0.2".parse().unwrap();
        assert!(!a.over(ip, Event::Rcpt)); // t=0
        tokio::time::advance(Duration::from_millis(600)).await;
        assert!(!a.over(ip, Event::Rcpt)); // t=600
        assert!(a.over(ip, Event::Rcpt)); // t=600, third within 1 s
        tokio::time::advance(Duration::from_millis(400)).await;
        // t=1000: the event at 0 left the window, but the refused one at 600 still counts.
        assert!(a.over(ip, Event::Rcpt));
        tokio::time::advance(Duration::from_millis(1000)).await;
        // t=2000: everything before 1000 (exclusive) is gone; 1000 itself too (>= window).
        assert!(!a.over(ip, Event::Rcpt));
        assert!(!a.over(ip, Event::Rcpt));
        assert!(a.over(ip, Event::Rcpt));
    }

    #[tokio::test(start_paused = true)]
    async fn budgets_are_per_ip_and_per_kind() {
        let a = anvil(Some(1), Some(1), 60_000);
        let x: IpAddr = "127.0.0.2".parse().unwrap();
        let y: IpAddr = "127.0.0.3".parse().unwrap();
        assert!(!a.over(x, Event::Connection));
        assert!(a.over(x, Event::Connection));
        assert!(!a.over(y, Event::Connection));
        assert!(!a.over(x, Event::Rcpt));
        // MAIL is not limited here: never over, never recorded.
        for _ in 0..10 {
            assert!(!a.over(x, Event::Mail));
        }
        assert!(a.clients.lock().unwrap()[&x][Event::Mail.index()].is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn memory_per_kind_is_bounded_by_the_limit() {
        let a = anvil(None, Some(3), 60_000);
        let ip: IpAddr = "127.0.0.2".parse().unwrap();
        for _ in 0..100 {
            a.over(ip, Event::Rcpt);
        }
        assert_eq!(a.clients.lock().unwrap()[&ip][Event::Rcpt.index()].len(), 4);
    }
}
