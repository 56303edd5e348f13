//! Resolver settings ([`ResolverConfig`]) and their validation.
//!
//! Owns the settings and their defaults; it does not read files or flags (the CLI does) and
//! does not build the resolver (see `resolver`).

use std::net::SocketAddr;
use std::time::Duration;

use crate::error::Error;

/// How an [`crate::MxResolver`] queries DNS and caches answers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ResolverConfig {
    /// Nameservers to query (UDP, with TCP for truncated answers). Empty: the system's
    /// (`/etc/resolv.conf`).
    pub nameservers: Vec<SocketAddr>,
    /// Time to wait for one answer from one nameserver.
    pub timeout: Duration,
    /// Tries per query (at least 1) before a transient failure is reported as
    /// [`crate::Resolution::TempFail`].
    pub attempts: usize,
    /// Domains kept in the resolution cache (0 disables it).
    pub cache_size: usize,
    /// Domain lookups running at once; more wait their turn.
    pub max_in_flight: usize,
    /// Allow MX targets on loopback and private/special-purpose addresses (labs, tests, the
    /// demo's simulator).
    pub allow_private_targets: bool,
    /// Floor for how long a positive answer is cached, whatever its record TTL.
    pub min_ttl: Duration,
    /// Cap for how long a positive answer is cached.
    pub max_ttl: Duration,
    /// How long a negative answer (NXDOMAIN, no mail server) is cached at most; the SOA's
    /// negative TTL (RFC 2308 5) shortens it.
    pub negative_ttl: Duration,
    /// Seed for the RNG that orders MX hosts of equal preference. `None`: from the OS.
    /// A fixed seed makes the order reproducible (tests, benchmarks).
    pub rng_seed: Option<u64>,
}

impl Default for ResolverConfig {
    fn default() -> Self {
        Self {
            nameservers: Vec::new(),
            timeout: Duration::from_secs(3),
            attempts: 2,
            cache_size: 100_000,
            max_in_flight: 64,
            allow_private_targets: false,
            min_ttl: Duration::from_secs(60),
            max_ttl: Duration::from_secs(3600),
            negative_ttl: Duration::from_secs(300),
            rng_seed: None,
        }
    }
}

impl ResolverConfig {
    /// Checks the settings; the error names the setting and the fix.
    pub fn validate(&self) -> Result<(), Error> {
        let invalid = |setting, reason: &str| {
            Err(Error::InvalidConfig {
                setting,
                reason: reason.to_string(),
            })
        };
        if self.timeout.is_zero() {
            return invalid("timeout", "must be greater than zero");
        }
        if self.attempts == 0 {
            return invalid("attempts", "must be at least 1");
        }
        if self.max_in_flight == 0 {
            return invalid("max_in_flight", "must be at least 1");
        }
        if self.min_ttl > self.max_ttl {
            return invalid("min_ttl", "must not exceed max_ttl");
        }
        if let Some(ns) = self.nameservers.iter().find(|ns| ns.port() == 0) {
            return Err(Error::InvalidConfig {
                setting: "nameservers",
                reason: format!("{ns} has port 0; give ADDR:PORT (53 for a normal server)"),
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_is_valid() {
        assert!(ResolverConfig::default().validate().is_ok());
    }

    #[test]
    fn bad_settings_are_named() {
        type Spoil = fn(&mut ResolverConfig);
        let cases: [(&str, Spoil); 5] = [
            ("timeout", |c| c.timeout = Duration::ZERO),
            ("attempts", |c| c.attempts = 0),
            ("max_in_flight", |c| c.max_in_flight = 0),
            ("min_ttl", |c| {
                c.min_ttl = c.max_ttl + Duration::from_secs(1)
            }),
            ("nameservers", |c| {
                c.nameservers = vec!["127.0.0.1:0".parse().unwrap()]
            }),
        ];
        for (name, spoil) in cases {
            let mut cfg = ResolverConfig::default();
            spoil(&mut cfg);
            match cfg.validate() {
                Err(Error::InvalidConfig { setting, .. }) => assert_eq!(setting, name),
                other => panic!("{name}: expected InvalidConfig, got {other:?}"),
            }
        }
    }
}
