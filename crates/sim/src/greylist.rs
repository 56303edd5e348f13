//! The greylist database shared by every host of a fleet (like a cluster sharing one
//! postgrey). Owns the triple -> first-seen map and says what a check of a triple means for
//! the counters (a new triple, one from another client IP, a retry that passed); which
//! domains greylist, and the counting itself, are the session's call.
//!
//! Key: (client IP, lower-cased MAIL FROM path, lower-cased RCPT TO path). postgrey keys on
//! the client /24 and normalises the sender further; on loopback the exact IP is the same
//! thing. A triple passes once `delay` has elapsed since it was first seen, and keeps passing.
//! The map is stored by (sender, recipient), then client IP, so a retry from another IP than
//! the greylisted one can be told apart from a first attempt.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

/// (sender, recipient), both lower-cased.
type Pair = (Box<str>, Box<str>);

/// One triple's record.
#[derive(Debug)]
struct Seen {
    ip: IpAddr,
    first: Instant,
    /// It was refused at least once.
    refused: bool,
    /// It was admitted at least once after being refused.
    passed: bool,
}

/// What one check of a triple found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Check {
    /// Refused: the triple is new. `other_ip`: the same (sender, recipient) was greylisted
    /// before from another client IP (a retry that will never pass postgrey).
    New { other_ip: bool },
    /// Refused: seen before, the delay has not passed yet.
    Waiting,
    /// Admitted. `retry_passed`: the first admission of a triple that was refused before
    /// (the retry greylisting asks for, from the same IP, sender and recipient).
    Admitted { retry_passed: bool },
}

impl Check {
    /// True when the RCPT may go on to the mailbox check.
    pub fn admitted(self) -> bool {
        matches!(self, Check::Admitted { .. })
    }
}

#[derive(Debug)]
pub(crate) struct Greylist {
    delay: Duration,
    seen: Mutex<HashMap<Pair, Vec<Seen>>>,
}

impl Greylist {
    pub fn new(delay: Duration) -> Greylist {
        Greylist {
            delay,
            seen: Mutex::new(HashMap::new()),
        }
    }

    /// Checks the triple now; records it on first sight.
    pub fn check(&self, ip: IpAddr, sender: &str, rcpt: &str) -> Check {
        let now = Instant::now();
        let key = (
            sender.to_lowercase().into_boxed_str(),
            rcpt.to_lowercase().into_boxed_str(),
        );
        let mut map = self
            .seen
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        // Few client IPs per pair (one per prober address), so a linear scan is right.
        let by_ip = map.entry(key).or_default();
        let Some(seen) = by_ip.iter_mut().find(|s| s.ip == ip) else {
            let other_ip = by_ip.iter().any(|s| s.refused);
            let refused = !self.delay.is_zero();
            by_ip.push(Seen {
                ip,
                first: now,
                refused,
                passed: false,
            });
            return if refused {
                Check::New { other_ip }
            } else {
                Check::Admitted {
                    retry_passed: false,
                }
            };
        };
        if now.duration_since(seen.first) < self.delay {
            seen.refused = true;
            return Check::Waiting;
        }
        let retry_passed = seen.refused && !seen.passed;
        seen.passed |= seen.refused;
        Check::Admitted { retry_passed }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn passes_after_the_delay_for_the_same_triple_only() {
        let g = Greylist::new(Duration::from_secs(60));
        let ip: IpAddr = "127.0.0.1".parse().unwrap();
        assert_eq!(
            g.check(ip, "s@p.test", "a@d.test"),
            Check::New { other_ip: false }
        );
        tokio::time::advance(Duration::from_secs(30)).await;
        assert_eq!(g.check(ip, "S@p.test", "A@d.test"), Check::Waiting);
        tokio::time::advance(Duration::from_secs(31)).await;
        assert_eq!(
            g.check(ip, "s@p.test", "a@d.test"),
            Check::Admitted { retry_passed: true }
        );
        // It keeps passing; only the first pass is the retry.
        assert_eq!(
            g.check(ip, "s@p.test", "a@d.test"),
            Check::Admitted {
                retry_passed: false
            }
        );
        // Another sender starts its own clock.
        assert_eq!(
            g.check(ip, "other@p.test", "a@d.test"),
            Check::New { other_ip: false }
        );
        // Another client IP too, and it is told apart from a first attempt.
        let ip2: IpAddr = "127.0.0.2".parse().unwrap();
        assert_eq!(
            g.check(ip2, "s@p.test", "a@d.test"),
            Check::New { other_ip: true }
        );
        assert_eq!(g.check(ip2, "s@p.test", "a@d.test"), Check::Waiting);
    }

    #[tokio::test(start_paused = true)]
    async fn a_zero_delay_refuses_nothing_and_counts_no_retry() {
        let g = Greylist::new(Duration::ZERO);
        let ip: IpAddr = "127.0.0.1".parse().unwrap();
        let ip2: IpAddr = "127.0.0.2".parse().unwrap();
        let free = Check::Admitted {
            retry_passed: false,
        };
        assert_eq!(g.check(ip, "s@p.test", "a@d.test"), free);
        assert_eq!(g.check(ip, "s@p.test", "a@d.test"), free);
        assert_eq!(g.check(ip2, "s@p.test", "a@d.test"), free);
    }
}
