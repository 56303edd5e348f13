//! Key names. Owns the layout of every key the store writes (documented in the crate root) and
//! the escaping that keeps a name's hash tag intact whatever a site, host or domain contains.
//! It does not talk to Redis.
//!
//! Redis Cluster hashes only the part between the first `{` and the next `}` (the hash tag), so
//! every key one script touches carries the same tag and lands in one slot.

use std::fmt::Write as _;

use rollcall_core::CampaignId;

/// The keys of one store, all starting with its prefix.
#[derive(Debug, Clone)]
pub(crate) struct Keys {
    prefix: String,
}

/// Escapes `{`, `}` and `%` so a name cannot end the hash tag early or collide with another
/// name: `%7B`, `%7D`, `%25`.
fn tag_safe(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    for c in name.chars() {
        match c {
            '{' | '}' | '%' => {
                let _ = write!(out, "%{:02X}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out
}

impl Keys {
    /// `prefix` must already be valid (see `validate_prefix`).
    pub(crate) fn new(prefix: &str) -> Keys {
        Keys {
            prefix: prefix.to_string(),
        }
    }

    pub(crate) fn prefix(&self) -> &str {
        &self.prefix
    }

    fn site(&self, kind: &str, site: &str, what: &str) -> String {
        format!("{}:{{{kind}:{}}}:{what}", self.prefix, tag_safe(site))
    }

    /// GCRA state (the theoretical arrival time) of a rate bucket.
    pub(crate) fn rate(&self, key: &str) -> String {
        self.site("h", key, "rate")
    }

    /// Sorted set of the session leases held at a site (member token, score expiry ms).
    pub(crate) fn leases(&self, site: &str) -> String {
        self.site("h", site, "leases")
    }

    /// Hash with the circuit of one MX host.
    pub(crate) fn circuit(&self, host: &str) -> String {
        self.site("h", host, "circuit")
    }

    /// The catch-all verdict of a domain ("1" or "0", with a TTL).
    pub(crate) fn catch_all(&self, domain: &str) -> String {
        self.site("d", domain, "catchall")
    }

    /// A remembered verdict of one address (`ResultCache`): its own tag, so a cache of
    /// millions spreads over a cluster's slots.
    pub(crate) fn cached_verdict(&self, cache_key: &str) -> String {
        self.site("r", cache_key, "v")
    }

    /// The greylist schedule: sorted set of entry ids by due time (ms since the epoch).
    pub(crate) fn greylist(&self) -> String {
        format!("{}:{{g}}:greylist", self.prefix)
    }

    /// The greylist entries' JSON, by entry id.
    pub(crate) fn greylist_entries(&self) -> String {
        format!("{}:{{g}}:greylist:entries", self.prefix)
    }

    /// The remembered answer of one `greylist_take_due` request, so a retried request gets the
    /// same entries instead of losing them.
    pub(crate) fn greylist_taken(&self, request: &str) -> String {
        format!("{}:{{g}}:greylist:taken:{request}", self.prefix)
    }

    fn campaign(&self, campaign: &CampaignId, what: &str) -> String {
        // A CampaignId is [A-Za-z0-9_-] only: nothing to escape.
        format!("{}:{{c:{}}}:{what}", self.prefix, campaign.as_str())
    }

    /// Hash of counters: total, done, deliverable, undeliverable, risky, unknown.
    pub(crate) fn progress(&self, campaign: &CampaignId) -> String {
        self.campaign(campaign, "progress")
    }

    /// Hash of the item ids already recorded (item id -> 1).
    pub(crate) fn recorded(&self, campaign: &CampaignId) -> String {
        self.campaign(campaign, "recorded")
    }

    /// The reply of one `record_results` call, kept briefly so a call retried after a lost
    /// reply answers what the first attempt counted (the token is random per call).
    pub(crate) fn record_reply(&self, campaign: &CampaignId, token: u64) -> String {
        self.campaign(campaign, &format!("reply:{token:016x}"))
    }

    /// Stream of recorded results; entry `0-N` is the N-th result recorded.
    pub(crate) fn results(&self, campaign: &CampaignId) -> String {
        self.campaign(campaign, "results")
    }

    /// The campaign's record (`CampaignRecord` JSON).
    pub(crate) fn meta(&self, campaign: &CampaignId) -> String {
        self.campaign(campaign, "meta")
    }

    /// The campaign's webhook state (`WebhookState` JSON: settings and delivery progress).
    pub(crate) fn webhook(&self, campaign: &CampaignId) -> String {
        self.campaign(campaign, "webhook")
    }

    /// List of the campaign's input rows, in order.
    pub(crate) fn input(&self, campaign: &CampaignId) -> String {
        self.campaign(campaign, "input")
    }

    /// Sorted set of every stored campaign id, scored by creation time (ms). Its own tag: it
    /// is never touched by a script together with a campaign's keys.
    pub(crate) fn campaign_index(&self) -> String {
        format!("{}:{{campaigns}}:index", self.prefix)
    }

    /// Marker of one applied `campaign_add_total` request, so a retry does not add twice.
    pub(crate) fn total_request(&self, campaign: &CampaignId, request: &str) -> String {
        self.campaign(campaign, &format!("total-req:{request}"))
    }
}

/// Why `prefix` cannot start keys, if it cannot. A brace would move the hash tag; spaces and
/// control characters make keys hard to read and to match.
pub(crate) fn validate_prefix(prefix: &str) -> Option<&'static str> {
    if prefix.is_empty() {
        Some("it is empty")
    } else if prefix.len() > 64 {
        Some("it is longer than 64 bytes")
    } else if prefix.contains(['{', '}']) {
        Some("it contains '{' or '}', which would move the Redis Cluster hash tag")
    } else if prefix.chars().any(|c| c.is_whitespace() || c.is_control()) {
        Some("it contains whitespace or a control character")
    } else if prefix.contains(['*', '?', '[', ']', '\\']) {
        Some("it contains a glob character, so its keys could not be matched by SCAN")
    } else {
        None
    }
}

/// The hash tag of `key` as Redis Cluster computes it (the text between the first `{` and the
/// next `}`), or `None` when the whole key is hashed.
#[cfg(test)]
fn hash_tag(key: &str) -> Option<&str> {
    let open = key.find('{')?;
    let close = key[open + 1..].find('}')? + open + 1;
    (close > open + 1).then(|| &key[open + 1..close])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys() -> Keys {
        Keys::new("rc")
    }

    #[test]
    fn site_keys_share_the_site_tag() {
        let k = keys();
        let site = "mx1.example.test,mx2.example.test";
        for key in [k.rate(site), k.leases(site), k.circuit(site)] {
            assert_eq!(hash_tag(&key), Some("h:mx1.example.test,mx2.example.test"));
            assert!(key.starts_with("rc:{h:"), "{key}");
        }
        assert_eq!(k.leases("a.test"), "rc:{h:a.test}:leases");
    }

    #[test]
    fn domain_keys_use_the_domain_tag() {
        assert_eq!(
            keys().catch_all("example.test"),
            "rc:{d:example.test}:catchall"
        );
    }

    #[test]
    fn cached_verdicts_are_tagged_by_address() {
        assert_eq!(
            keys().cached_verdict("ann@example.test"),
            "rc:{r:ann@example.test}:v"
        );
        assert_eq!(
            hash_tag(&keys().cached_verdict("{x}@example.test")),
            Some("r:%7Bx%7D@example.test")
        );
    }

    #[test]
    fn greylist_keys_share_one_tag() {
        let k = keys();
        for key in [k.greylist(), k.greylist_entries(), k.greylist_taken("r1")] {
            assert_eq!(hash_tag(&key), Some("g"), "{key}");
        }
    }

    #[test]
    fn campaign_keys_share_the_campaign_tag() {
        let k = keys();
        let c = CampaignId::new("camp-1").unwrap();
        let all = [
            k.progress(&c),
            k.recorded(&c),
            k.results(&c),
            k.record_reply(&c, 7),
            k.total_request(&c, "r"),
            k.meta(&c),
            k.input(&c),
            k.webhook(&c),
        ];
        for key in &all {
            assert_eq!(hash_tag(key), Some("c:camp-1"), "{key}");
        }
        assert_eq!(all[2], "rc:{c:camp-1}:results");
    }

    #[test]
    fn braces_in_names_cannot_break_the_tag() {
        let k = keys();
        let evil = "a}b{c%7D";
        let key = k.leases(evil);
        assert_eq!(hash_tag(&key), Some("h:a%7Db%7Bc%257D"));
        assert_ne!(k.leases("a}"), k.leases("a%7D"), "escaping is injective");
        assert_eq!(hash_tag(&k.circuit(evil)), hash_tag(&key));
    }

    #[test]
    fn prefixes_are_checked() {
        assert_eq!(validate_prefix("rc"), None);
        assert_eq!(validate_prefix("rctest-abc123"), None);
        assert!(validate_prefix("").is_some());
        assert!(validate_prefix("a{b").is_some());
        assert!(validate_prefix("a b").is_some());
        assert!(validate_prefix("a*").is_some());
        assert!(validate_prefix(&"x".repeat(65)).is_some());
    }
}
