//! Politeness per site and egress: how many sessions, how fast, how many recipients per
//! transaction, when to retire a session. Servers count per client address, so the session,
//! RCPT and connection limits hold for each egress at each site, fleet-wide; the optional
//! site totals cap all egresses together (for providers that count per sender domain). The
//! defaults were measured against a default Postfix 3.7 (tests/interop); a table of rules
//! matched against a site's MX host names overrides them (providers ship built in).
//!
//! Owns the numbers and the matching; does not enforce anything (the worker does).

use std::time::Duration;

use serde::Deserialize;

use rollcall_core::ports::{BackoffPolicy, RateLimit};

/// Most shards one site's batches are spread over.
pub const MAX_SITE_SHARDS: u32 = 256;

/// The limits the worker applies to one site, fleet-wide.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SiteShaping {
    /// Sessions open at once to the site from one egress, across the fleet.
    pub max_sessions: u32,
    /// RCPT commands from one egress (GCRA).
    pub rcpt_rate: RateLimit,
    /// New connections from one egress (GCRA).
    pub connect_rate: RateLimit,
    /// MAIL FROM commands (transactions) from one egress, when capped (GCRA): Postfix's
    /// `smtpd_client_message_rate_limit` counts MAIL even though nothing is ever sent.
    pub mail_rate: Option<RateLimit>,
    /// Sessions open at once to the site from all egresses together, when capped.
    pub site_max_sessions: Option<u32>,
    /// RCPT commands to the site from all egresses together, when capped (same burst as
    /// `rcpt_rate` unless set).
    pub site_rcpt_rate: Option<RateLimit>,
    /// Shards the site's batches are spread over in the distributed wiring from its first
    /// batch (1: one worker serves the site and keeps its sessions warm; more: several workers
    /// probe it, each from its own egresses). The coordinator spreads a site over every shard
    /// anyway once it holds more than one shard's share of a campaign.
    pub shards: u32,
    pub rcpt_per_transaction: u32,
    pub transactions_per_session: u32,
    pub session_max_age: Duration,
    pub session_idle: Duration,
    /// Retire a session after this many rejected RCPTs (Postfix slows a client after 10 errors
    /// and drops it at 20; the budget is per session, accepted RCPTs never reset it).
    pub retire_after_rejected: u32,
    /// The server's hard error limit we assume: a transaction never risks reaching it.
    pub server_error_limit: u32,
    pub backoff: BackoffPolicy,
}

impl Default for SiteShaping {
    fn default() -> Self {
        SiteShaping {
            max_sessions: 2,
            rcpt_rate: RateLimit {
                per_minute: 60,
                burst: 20,
            },
            connect_rate: RateLimit {
                per_minute: 20,
                burst: 5,
            },
            mail_rate: None,
            site_max_sessions: None,
            site_rcpt_rate: None,
            shards: 1,
            rcpt_per_transaction: 50,
            transactions_per_session: 50,
            session_max_age: Duration::from_secs(300),
            session_idle: Duration::from_secs(30),
            retire_after_rejected: 8,
            server_error_limit: 20,
            backoff: BackoffPolicy::default(),
        }
    }
}

impl SiteShaping {
    /// How many RCPTs the next transaction of a session may carry, given the RCPTs that session
    /// already had rejected: never so many that, all rejected, they would reach the server's
    /// hard error limit (Postfix: the 21st error is `421 too many errors`), and never more than
    /// one take of the RCPT rate grants (its burst): every RCPT on the wire costs one cell, so
    /// the configured rate is the rate the server counts (Postfix anvil counts every RCPT,
    /// accepted or not).
    pub fn rcpts_allowed(&self, rejected_so_far: u32, adaptive_limit: u32) -> u32 {
        let error_room = self
            .server_error_limit
            .saturating_sub(1)
            .saturating_sub(rejected_so_far);
        let site_take = self.site_rcpt_rate.map_or(u32::MAX, |r| r.max_take());
        adaptive_limit
            .min(self.rcpt_per_transaction)
            .min(self.rcpt_rate.max_take())
            .min(site_take)
            .min(error_room)
    }

    fn apply(&mut self, o: &ShapingOverride) {
        if let Some(v) = o.max_sessions {
            self.max_sessions = v.max(1);
        }
        if let Some(v) = o.rcpt_per_minute {
            self.rcpt_rate.per_minute = v.max(1);
        }
        if let Some(v) = o.rcpt_burst {
            self.rcpt_rate.burst = v.max(1);
        }
        if let Some(v) = o.connects_per_minute {
            self.connect_rate.per_minute = v.max(1);
        }
        if let Some(v) = o.connect_burst {
            self.connect_rate.burst = v.max(1);
        }
        if let Some(v) = o.mail_per_minute {
            self.mail_rate = Some(RateLimit {
                per_minute: v.max(1),
                burst: o.mail_burst.unwrap_or(1).max(1),
            });
        }
        if let Some(v) = o.site_max_sessions {
            self.site_max_sessions = Some(v.max(1));
        }
        if let Some(v) = o.site_rcpt_per_minute {
            let burst = o.site_rcpt_burst.unwrap_or(self.rcpt_rate.burst).max(1);
            self.site_rcpt_rate = Some(RateLimit {
                per_minute: v.max(1),
                burst,
            });
        }
        if let Some(v) = o.shards {
            self.shards = v.clamp(1, MAX_SITE_SHARDS);
        }
        if let Some(v) = o.rcpt_per_transaction {
            self.rcpt_per_transaction = v.max(1);
        }
        if let Some(v) = o.transactions_per_session {
            self.transactions_per_session = v.max(1);
        }
        if let Some(v) = o.session_max_age_secs {
            self.session_max_age = Duration::from_secs(v);
        }
        if let Some(v) = o.session_idle_secs {
            self.session_idle = Duration::from_secs(v);
        }
        if let Some(v) = o.retire_after_rejected {
            self.retire_after_rejected = v.max(1);
        }
        if let Some(v) = o.server_error_limit {
            self.server_error_limit = v.max(2);
        }
        if let Some(v) = o.circuit_failures {
            self.backoff.failures_to_open = v.max(1);
        }
        if let Some(v) = o.backoff_base_secs {
            self.backoff.base = Duration::from_secs(v.max(1));
        }
        if let Some(v) = o.backoff_max_secs {
            self.backoff.max = Duration::from_secs(v.max(1));
        }
    }
}

/// Overrides of `SiteShaping`, as written in the config file (`[shaping.default]` and
/// `[[shaping.site]]`). Every field is optional.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ShapingOverride {
    /// Per egress at the site.
    pub max_sessions: Option<u32>,
    /// Per egress at the site.
    pub rcpt_per_minute: Option<u32>,
    pub rcpt_burst: Option<u32>,
    /// Per egress at the site.
    pub connects_per_minute: Option<u32>,
    pub connect_burst: Option<u32>,
    /// MAIL FROM commands per minute per egress at the site (default: not capped).
    pub mail_per_minute: Option<u32>,
    /// Burst of `mail_per_minute` (default 1).
    pub mail_burst: Option<u32>,
    /// All egresses together at the site.
    pub site_max_sessions: Option<u32>,
    /// All egresses together at the site.
    pub site_rcpt_per_minute: Option<u32>,
    /// Burst of `site_rcpt_per_minute` (default: `rcpt_burst`).
    pub site_rcpt_burst: Option<u32>,
    /// Shards the site's batches are spread over (distributed wiring; default 1).
    pub shards: Option<u32>,
    pub rcpt_per_transaction: Option<u32>,
    pub transactions_per_session: Option<u32>,
    pub session_max_age_secs: Option<u64>,
    pub session_idle_secs: Option<u64>,
    pub retire_after_rejected: Option<u32>,
    pub server_error_limit: Option<u32>,
    pub circuit_failures: Option<u32>,
    pub backoff_base_secs: Option<u64>,
    pub backoff_max_secs: Option<u64>,
}

/// A rule: sites any of whose MX hosts match `pattern` (`*.google.com`, `mx.example.net`, or a
/// site key) get the overrides.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SiteRule {
    pub pattern: String,
    #[serde(flatten)]
    pub shaping: ShapingOverride,
}

/// Defaults plus rules, first matching rule wins (user rules before the built-in providers).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShapingTable {
    pub default: SiteShaping,
    pub rules: Vec<SiteRule>,
}

impl Default for ShapingTable {
    fn default() -> Self {
        ShapingTable {
            default: SiteShaping::default(),
            rules: provider_rules(),
        }
    }
}

impl ShapingTable {
    /// The built-in table with `default` applied over the built-in defaults and `rules` ahead of the
    /// provider entries.
    pub fn with_overrides(default: &ShapingOverride, rules: Vec<SiteRule>) -> Self {
        let mut table = ShapingTable::default();
        table.default.apply(default);
        let mut all = rules;
        all.extend(provider_rules());
        table.rules = all;
        table
    }

    /// Shaping for a site, given its MX host names.
    pub fn for_site(&self, site: &str, mx_hosts: &[&str]) -> SiteShaping {
        let mut shaping = self.default.clone();
        if let Some(rule) = self.rules.iter().find(|r| {
            pattern_matches(&r.pattern, site)
                || mx_hosts.iter().any(|h| pattern_matches(&r.pattern, h))
        }) {
            shaping.apply(&rule.shaping);
        }
        shaping
    }
}

/// `*.example.com` matches any subdomain of example.com; anything else matches exactly
/// (case-insensitive, trailing dot ignored).
pub fn pattern_matches(pattern: &str, name: &str) -> bool {
    let pattern = pattern.trim_end_matches('.').to_ascii_lowercase();
    let name = name.trim_end_matches('.').to_ascii_lowercase();
    match pattern.strip_prefix("*.") {
        Some(suffix) => name.len() > suffix.len() && name.ends_with(&format!(".{suffix}")),
        None => pattern == name,
    }
}

/// Built-in entries for the large providers: they serve millions of domains from one site, so
/// they get more sessions but stay gentle per session; they also cap recipients per message.
fn provider_rules() -> Vec<SiteRule> {
    let rule = |pattern: &str, sessions: u32, per_minute: u32, burst: u32, rcpt: u32| SiteRule {
        pattern: pattern.to_string(),
        shaping: ShapingOverride {
            max_sessions: Some(sessions),
            rcpt_per_minute: Some(per_minute),
            rcpt_burst: Some(burst),
            rcpt_per_transaction: Some(rcpt),
            ..ShapingOverride::default()
        },
    };
    vec![
        // Google: accepts up to 100 RCPTs per message; rejects mixed domains with 451 4.3.0.
        rule("*.google.com", 4, 120, 30, 50),
        rule("*.googlemail.com", 4, 120, 30, 50),
        // Outlook.com (first: the wider pattern below matches its hosts too), then Microsoft
        // 365: tarpits fast probers; keep it slow.
        rule("*.olc.protection.outlook.com", 2, 30, 10, 20),
        rule("*.protection.outlook.com", 3, 60, 20, 30),
        // Yahoo / AOL: aggressive 421 4.7.0 deferrals on bursts.
        rule("*.yahoodns.net", 2, 30, 10, 20),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcard_matches_subdomains_only() {
        assert!(pattern_matches("*.google.com", "aspmx.l.google.com"));
        assert!(pattern_matches("*.google.com", "ASPMX.L.GOOGLE.COM."));
        assert!(!pattern_matches("*.google.com", "google.com"));
        assert!(!pattern_matches("*.google.com", "evilgoogle.com"));
        assert!(pattern_matches("mx.example.net", "MX.example.net"));
    }

    #[test]
    fn provider_rule_applies_to_its_mx_hosts() {
        let table = ShapingTable::default();
        let google = table.for_site("google", &["alt1.aspmx.l.google.com"]);
        assert_eq!(google.max_sessions, 4);
        let other = table.for_site("mx.example.net", &["mx.example.net"]);
        assert_eq!(other, SiteShaping::default());
    }

    #[test]
    fn user_rules_come_before_providers() {
        let rules = vec![SiteRule {
            pattern: "*.google.com".into(),
            shaping: ShapingOverride {
                max_sessions: Some(1),
                ..Default::default()
            },
        }];
        let table = ShapingTable::with_overrides(&ShapingOverride::default(), rules);
        assert_eq!(table.for_site("g", &["aspmx.l.google.com"]).max_sessions, 1);
    }

    #[test]
    fn transaction_never_risks_the_hard_error_limit() {
        let s = SiteShaping::default();
        assert_eq!(s.rcpts_allowed(0, 50), 19);
        assert_eq!(s.rcpts_allowed(7, 50), 12);
        assert_eq!(s.rcpts_allowed(19, 50), 0);
        assert_eq!(s.rcpts_allowed(0, 5), 5);
    }

    #[test]
    fn site_totals_are_optional_and_bound_a_transaction_too() {
        let table = ShapingTable::with_overrides(
            &ShapingOverride::default(),
            vec![SiteRule {
                pattern: "mx.capped.test".into(),
                shaping: ShapingOverride {
                    site_max_sessions: Some(3),
                    site_rcpt_per_minute: Some(100),
                    site_rcpt_burst: Some(7),
                    ..Default::default()
                },
            }],
        );
        let plain = table.for_site("mx.other.test", &["mx.other.test"]);
        assert_eq!(
            (plain.site_max_sessions, plain.site_rcpt_rate),
            (None, None)
        );
        let capped = table.for_site("mx.capped.test", &["mx.capped.test"]);
        assert_eq!(capped.site_max_sessions, Some(3));
        assert_eq!(
            capped.site_rcpt_rate,
            Some(RateLimit {
                per_minute: 100,
                burst: 7
            })
        );
        assert_eq!(capped.rcpts_allowed(0, 50), 7, "one take of the site total");
    }

    #[test]
    fn transaction_never_carries_more_rcpts_than_one_rate_take_grants() {
        // The case that sent 2.5x the configured rate: 20 RCPTs per transaction, burst 5.
        let mut s = SiteShaping {
            rcpt_per_transaction: 20,
            rcpt_rate: RateLimit {
                per_minute: 40,
                burst: 5,
            },
            ..SiteShaping::default()
        };
        assert_eq!(s.rcpts_allowed(0, 50), 5);
        assert_eq!(s.rcpts_allowed(0, 3), 3);
        s.rcpt_rate.burst = 0;
        assert_eq!(
            s.rcpts_allowed(0, 50),
            1,
            "a zero burst still allows one RCPT"
        );
    }
}
