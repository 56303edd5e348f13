//! The greylist database shared by every host of a fleet (like a cluster sharing one
//! postgrey). Owns the triple -> first-seen map; which domains greylist is the session's call.
//!
//! Key: (client IP, lower-cased MAIL FROM path, lower-cased RCPT TO path). postgrey keys on
//! the client /24 and normalises the sender further; on loopback the exact IP is the same
//! thing. A triple passes once `delay` has elapsed since it was first seen, and keeps passing.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

/// (client IP, sender, recipient).
type Triple = (IpAddr, Box<str>, Box<str>);

#[derive(Debug)]
pub(crate) struct Greylist {
    delay: Duration,
    first_seen: Mutex<HashMap<Triple, Instant>>,
}

impl Greylist {
    pub fn new(delay: Duration) -> Greylist {
        Greylist {
            delay,
            first_seen: Mutex::new(HashMap::new()),
        }
    }

    /// True when the triple may pass now; records it on first sight.
    pub fn admits(&self, ip: IpAddr, sender: &str, rcpt: &str) -> bool {
        let now = Instant::now();
        let key = (
            ip,
            sender.to_lowercase().into_boxed_str(),
            rcpt.to_lowercase().into_boxed_str(),
        );
        let mut map = self
            .first_seen
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let first = *map.entry(key).or_insert(now);
        now.duration_since(first) >= self.delay
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn passes_after_the_delay_for_the_same_triple_only() {
        let g = Greylist::new(Duration::from_secs(60));
        let ip: IpAddr = "127.0.0.1".parse().unwrap();
        assert!(!g.admits(ip, "s@p.test", "a@d.test"));
        tokio::time::advance(Duration::from_secs(30)).await;
        assert!(!g.admits(ip, "S@p.test", "A@d.test"));
        tokio::time::advance(Duration::from_secs(31)).await;
        assert!(g.admits(ip, "s@p.test", "a@d.test"));
        // Another sender starts its own clock.
        assert!(!g.admits(ip, "other@p.test", "a@d.test"));
        let ip2: IpAddr = "127.0.0.2".parse().unwrap();
        assert!(!g.admits(ip2, "s@p.test", "a@d.test"));
    }
}
