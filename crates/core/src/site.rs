//! Sites: where mail for a domain goes, as one unit of politeness.
//!
//! Owns `Site` (the normalised set of a domain's MX hosts, with a stable id) and the provider
//! table that folds the many MX host names of a large provider into one site, so that every
//! Google Workspace domain shares the `google` site and its limits. It does not resolve MX
//! records (the dns crate does) and does not hold the per-site limits (the shaping policy does,
//! keyed by `Site::id` or `Provider`).

use std::fmt;

use serde::{Deserialize, Serialize};

/// A large mail provider whose MX hosts are recognised by name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Provider {
    Google,
    Microsoft,
    /// Outlook.com consumer mail: other front ends than Exchange Online's tenants.
    OutlookCom,
    Yahoo,
    Yandex,
    Icloud,
    Mimecast,
    Proofpoint,
    Barracuda,
}

/// MX host patterns per provider. `*.x` matches any host ending in `.x`; a pattern without `*`
/// matches that host exactly. Matching is on the lowercased host without its trailing dot.
pub const PROVIDER_MX_PATTERNS: &[(Provider, &[&str])] = &[
    // Gmail and Workspace: aspmx.l.google.com, alt1.aspmx.l.google.com, smtp.google.com,
    // gmail-smtp-in.l.google.com, and the older aspmx2.googlemail.com.
    (Provider::Google, &["*.google.com", "*.googlemail.com"]),
    // Outlook.com consumer domains (outlook-com.olc.protection.outlook.com, hotmail-com.olc...):
    // their own front ends, apart from the tenants'.
    (Provider::OutlookCom, &["*.olc.protection.outlook.com"]),
    // Exchange Online (tenant-com.mail.protection.outlook.com): every tenant's MX name reaches
    // the same front ends.
    (Provider::Microsoft, &["*.mail.protection.outlook.com"]),
    // Yahoo, AOL and their partners: mta5.am0.yahoodns.net, mx-aol.mail.gm0.yahoodns.net.
    (Provider::Yahoo, &["*.yahoodns.net"]),
    // mx.yandex.ru for Yandex's own domains, mx.yandex.net for Yandex 360 domains.
    (
        Provider::Yandex,
        &["*.yandex.ru", "*.yandex.net", "*.yandex.com"],
    ),
    // mx01.mail.icloud.com, mx02.mail.icloud.com.
    (Provider::Icloud, &["*.mail.icloud.com"]),
    // eu-smtp-inbound-1.mimecast.com, us-smtp-inbound-2.mimecast.com, ...
    (Provider::Mimecast, &["*.mimecast.com", "*.mimecast.co.za"]),
    // mx0a-0012ab01.pphosted.com (Enterprise), mx1-us1.ppe-hosted.com (Essentials).
    (
        Provider::Proofpoint,
        &["*.pphosted.com", "*.ppe-hosted.com"],
    ),
    // d123456a.ess.barracudanetworks.com.
    (Provider::Barracuda, &["*.barracudanetworks.com"]),
];

impl Provider {
    /// Every provider, in table order.
    pub const ALL: [Provider; 9] = [
        Provider::Google,
        Provider::Microsoft,
        Provider::OutlookCom,
        Provider::Yahoo,
        Provider::Yandex,
        Provider::Icloud,
        Provider::Mimecast,
        Provider::Proofpoint,
        Provider::Barracuda,
    ];

    /// The stable snake_case name, which is also the site id of the provider's hosts.
    pub fn as_str(self) -> &'static str {
        match self {
            Provider::Google => "google",
            Provider::Microsoft => "microsoft",
            Provider::OutlookCom => "outlook_com",
            Provider::Yahoo => "yahoo",
            Provider::Yandex => "yandex",
            Provider::Icloud => "icloud",
            Provider::Mimecast => "mimecast",
            Provider::Proofpoint => "proofpoint",
            Provider::Barracuda => "barracuda",
        }
    }

    /// The provider that runs an MX host, from `PROVIDER_MX_PATTERNS`.
    pub fn for_mx_host(host: &str) -> Option<Provider> {
        let host = normalise_host(host);
        PROVIDER_MX_PATTERNS
            .iter()
            .find(|(_, patterns)| patterns.iter().any(|p| pattern_matches(p, &host)))
            .map(|(provider, _)| *provider)
    }
}

impl fmt::Display for Provider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

fn pattern_matches(pattern: &str, host: &str) -> bool {
    match pattern.strip_prefix("*.") {
        Some(suffix) => {
            host.len() > suffix.len() + 1
                && host.ends_with(suffix)
                && host.as_bytes()[host.len() - suffix.len() - 1] == b'.'
        }
        None => host == pattern,
    }
}

/// Lowercase, trimmed, without the DNS root's trailing dot.
fn normalise_host(host: &str) -> String {
    host.trim().trim_end_matches('.').to_ascii_lowercase()
}

/// Where mail for a domain goes: its MX hosts, normalised (lowercase, no trailing dot, sorted,
/// deduplicated), and an id. When every host belongs to one provider the id is the provider's
/// name (`google`); otherwise it is the host list joined with `,`. Two domains with the same MX
/// set share a site, whatever order or case DNS returned.
///
/// Preference values are deliberately not part of a site: they order connection attempts (the
/// dns crate's concern), they do not change who is on the other end.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Site {
    id: String,
    hosts: Vec<String>,
    provider: Option<Provider>,
}

impl Site {
    /// Builds the site of a set of MX host names. Empty names are dropped; an empty set gives a
    /// site with an empty id (callers use the implicit MX, RFC 5321 5.1, before getting here).
    pub fn from_mx_hosts(hosts: &[&str]) -> Site {
        let mut hosts: Vec<String> = hosts
            .iter()
            .map(|h| normalise_host(h))
            .filter(|h| !h.is_empty())
            .collect();
        hosts.sort_unstable();
        hosts.dedup();
        let mut providers = hosts.iter().map(|h| Provider::for_mx_host(h));
        let provider = match providers.next() {
            Some(Some(first)) if providers.all(|p| p == Some(first)) => Some(first),
            _ => None,
        };
        let id = match provider {
            Some(p) => p.as_str().to_owned(),
            None => hosts.join(","),
        };
        Site {
            id,
            hosts,
            provider,
        }
    }

    /// The stable id: a provider name or the joined host list.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The normalised MX host names, sorted.
    pub fn hosts(&self) -> &[String] {
        &self.hosts
    }

    /// The provider when every host belongs to the same one.
    pub fn provider(&self) -> Option<Provider> {
        self.provider
    }
}

impl fmt::Display for Site {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn workspace_domains_share_the_google_site() {
        let a = Site::from_mx_hosts(&[
            "ASPMX.L.GOOGLE.COM.",
            "alt1.aspmx.l.google.com.",
            "alt2.aspmx.l.google.com",
            "aspmx2.googlemail.com.",
        ]);
        let b = Site::from_mx_hosts(&["smtp.google.com."]);
        assert_eq!(a.id(), "google");
        assert_eq!(b.id(), "google");
        assert_eq!(a.provider(), Some(Provider::Google));
        assert_eq!(a.hosts().len(), 4);
        assert_eq!(a.hosts()[0], "alt1.aspmx.l.google.com");
    }

    #[test]
    fn providers_by_mx_host() {
        let cases = [
            (
                "example-com.mail.protection.outlook.com",
                Some(Provider::Microsoft),
            ),
            (
                "hotmail-com.olc.protection.outlook.com.",
                Some(Provider::OutlookCom),
            ),
            ("mta5.am0.yahoodns.net", Some(Provider::Yahoo)),
            ("mx-aol.mail.gm0.yahoodns.net", Some(Provider::Yahoo)),
            ("mx.yandex.net", Some(Provider::Yandex)),
            ("mx.yandex.ru", Some(Provider::Yandex)),
            ("mx01.mail.icloud.com", Some(Provider::Icloud)),
            ("eu-smtp-inbound-1.mimecast.com", Some(Provider::Mimecast)),
            ("mx0a-0012ab01.pphosted.com", Some(Provider::Proofpoint)),
            (
                "d123456a.ess.barracudanetworks.com",
                Some(Provider::Barracuda),
            ),
            ("mx.example.com", None),
            // Suffix matches stop at a label boundary.
            ("evilgoogle.com", None),
            ("google.com.evil.example", None),
            ("outlook.com", None),
        ];
        for (host, expected) in cases {
            assert_eq!(Provider::for_mx_host(host), expected, "{host}");
        }
    }

    #[test]
    fn other_sites_are_their_sorted_deduplicated_hosts() {
        let a = Site::from_mx_hosts(&["mx2.example.com.", "MX1.example.com", "mx1.example.com"]);
        let b = Site::from_mx_hosts(&["mx1.example.com", "mx2.example.com"]);
        assert_eq!(a, b);
        assert_eq!(a.id(), "mx1.example.com,mx2.example.com");
        assert_eq!(a.provider(), None);
    }

    #[test]
    fn mixed_provider_and_own_backup_is_its_own_site() {
        let s = Site::from_mx_hosts(&["aspmx.l.google.com", "backup.example.com"]);
        assert_eq!(s.provider(), None);
        assert_eq!(s.id(), "aspmx.l.google.com,backup.example.com");
    }

    #[test]
    fn empty_and_blank_hosts() {
        let s = Site::from_mx_hosts(&["", " ", "."]);
        assert!(s.hosts().is_empty());
        assert_eq!(s.id(), "");
    }

    #[test]
    fn provider_names_are_distinct() {
        let mut names: Vec<&str> = Provider::ALL.iter().map(|p| p.as_str()).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), Provider::ALL.len());
        assert_eq!(PROVIDER_MX_PATTERNS.len(), Provider::ALL.len());
    }
}
