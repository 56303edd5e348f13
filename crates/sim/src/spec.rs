//! The fleet file: serde types read from TOML (`deny_unknown_fields` everywhere) and their
//! validation, extra DNS records (`[[record]]`) included. Owns the format and its defaults; turning a spec into a running world is
//! `world`'s job, synthetic populations are `population`'s.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::Error;
pub use crate::profile::Profile;

/// A whole fleet: hosts with behaviour profiles, sites (MX sets), domains with mailboxes,
/// and optionally a synthetic population.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FleetSpec {
    /// Fleet-wide settings.
    #[serde(default)]
    pub fleet: FleetSettings,
    /// Named behaviour profiles; `default` (if given) replaces the built-in defaults for hosts
    /// that name no profile.
    #[serde(default)]
    pub profiles: BTreeMap<String, Profile>,
    /// Explicit SMTP hosts.
    #[serde(default, rename = "host")]
    pub hosts: Vec<HostSpec>,
    /// Explicit sites: a site is an MX set shared by its domains.
    #[serde(default, rename = "site")]
    pub sites: Vec<SiteSpec>,
    /// Explicit domains.
    #[serde(default, rename = "domain")]
    pub domains: Vec<DomainSpec>,
    /// A synthetic population added after the explicit part.
    #[serde(default)]
    pub generate: Option<GenerateSpec>,
    /// Extra DNS records served besides the fleet's own (a prober's names, for `rollcall
    /// doctor`).
    #[serde(default, rename = "record")]
    pub records: Vec<RecordSpec>,
}

/// `[fleet]`: settings that apply to every host.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FleetSettings {
    /// Hosts without an explicit address (and all generated hosts) get addresses counting up
    /// from here. Must be inside 127.0.0.0/8.
    pub address_base: Ipv4Addr,
    /// How long a (client IP, sender, recipient) triple stays greylisted.
    pub greylist_delay_ms: u64,
    /// Seed for the random transient 4xx replies.
    pub seed: u64,
}

impl Default for FleetSettings {
    fn default() -> Self {
        FleetSettings {
            address_base: Ipv4Addr::new(127, 20, 0, 0),
            greylist_delay_ms: 300_000,
            seed: 1,
        }
    }
}

/// `[[host]]`: one SMTP server.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HostSpec {
    /// Host name (what MX records point at, and what the greeting says).
    pub name: String,
    /// Loopback address; allocated from `fleet.address_base` when absent.
    #[serde(default)]
    pub address: Option<Ipv4Addr>,
    /// Profile name from `[profiles]`; `default` when absent.
    #[serde(default)]
    pub profile: Option<String>,
    /// Nothing listens on a down host's address (connections are refused).
    #[serde(default)]
    pub down: bool,
    /// A real server the fleet does not run (e.g. the interop Postfix): the fleet serves only
    /// its DNS records and binds nothing on its address; truth comes from the domain's
    /// listed mailboxes, which must match what that server knows.
    #[serde(default)]
    pub external: bool,
}

/// `[[site]]`: an MX set.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SiteSpec {
    /// Site name, referenced by domains.
    pub name: String,
    /// MX records of every domain on this site.
    pub mx: Vec<MxSpec>,
}

/// One MX record of a site.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MxSpec {
    /// A host name from `[[host]]`.
    pub host: String,
    /// MX preference (lower is tried first).
    pub preference: u16,
}

/// What a domain does, as seen by DNS and by the SMTP servers that serve it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Behaviour {
    /// MX records to its site; mailboxes as listed, anything else is unknown.
    Normal,
    /// Accepts any local part (except full/disabled mailboxes, answered as such).
    CatchAll,
    /// Like normal, behind greylisting (first attempt per triple gets 450 4.2.0).
    Greylist,
    /// `MX 0 .` (RFC 7505): the domain accepts no mail.
    NullMx,
    /// No MX; an A record pointing at `a_host` (implicit MX, RFC 5321 5.1).
    AOnly,
    /// The name does not exist (NXDOMAIN).
    Nxdomain,
    /// The name exists (a TXT record) but has neither MX nor A.
    NoMx,
    /// Its servers reject the prober by policy at RCPT (`550 5.7.1 ... blocked using ...`).
    Blocked,
    /// Its servers answer 250 to every recipient, known or not, and bounce unknown ones
    /// later (Yahoo, AOL); full and disabled mailboxes are answered as such. A verifier can
    /// tell it from `catch_all` only by knowing the provider (its MX host names).
    AcceptAll,
}

impl Behaviour {
    /// All behaviours, in documentation order.
    pub const ALL: [Behaviour; 9] = [
        Behaviour::Normal,
        Behaviour::CatchAll,
        Behaviour::Greylist,
        Behaviour::NullMx,
        Behaviour::AOnly,
        Behaviour::Nxdomain,
        Behaviour::NoMx,
        Behaviour::Blocked,
        Behaviour::AcceptAll,
    ];

    /// True when the domain is served by SMTP hosts (so needs a site or an A host).
    pub fn has_servers(self) -> bool {
        !matches!(
            self,
            Behaviour::NullMx | Behaviour::Nxdomain | Behaviour::NoMx
        )
    }
}

/// The state of one mailbox. A local part not listed is unknown (`550 5.1.1`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MailboxState {
    /// Accepts mail: `250 2.1.5 Ok`.
    Valid,
    /// Over quota: `452 4.2.2 <rcpt>: Mailbox full`.
    Full,
    /// `550 5.2.1 <rcpt>: Mailbox disabled, not accepting messages`.
    Disabled,
}

/// `[[domain]]`: one mail domain.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DomainSpec {
    /// The domain name (ASCII).
    pub name: String,
    /// What it does.
    #[serde(default = "default_behaviour")]
    pub behaviour: Behaviour,
    /// Its site (MX set); required unless the behaviour is a_only, null_mx, nxdomain, no_mx.
    #[serde(default)]
    pub site: Option<String>,
    /// For a_only: the host the domain's A record points at.
    #[serde(default)]
    pub a_host: Option<String>,
    /// Local part -> state.
    #[serde(default)]
    pub mailboxes: BTreeMap<String, MailboxState>,
    /// Extra local parts to put on the list to verify (usually unknown ones).
    #[serde(default)]
    pub verify: Vec<String>,
}

fn default_behaviour() -> Behaviour {
    Behaviour::Normal
}

/// `[[record]]`: DNS records about one name that is neither a fleet host nor a fleet domain,
/// served by the fleet's DNS server: typically a prober's HELO name (A/AAAA) and the reverse
/// DNS of the prober's address (PTR), so `rollcall doctor` can be run against the fleet. Each
/// list takes one value or several; several tables may name the same name (their records add
/// up).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecordSpec {
    /// The host name the records are about (ASCII, no trailing dot needed).
    pub name: String,
    /// A records of `name`.
    #[serde(default, deserialize_with = "one_or_many")]
    pub a: Vec<Ipv4Addr>,
    /// AAAA records of `name`.
    #[serde(default, deserialize_with = "one_or_many")]
    pub aaaa: Vec<Ipv6Addr>,
    /// Addresses whose reverse name (`d.c.b.a.in-addr.arpa.`, or the `ip6.arpa.` nibbles) gets
    /// a PTR record pointing at `name`.
    #[serde(default, deserialize_with = "one_or_many")]
    pub ptr: Vec<IpAddr>,
}

/// A value or a list of values (`a = "127.0.1.1"` or `a = ["127.0.1.1", "127.0.1.2"]`), each
/// parsed with its `FromStr` so the error names the value.
fn one_or_many<'de, D, T>(d: D) -> Result<Vec<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: std::str::FromStr,
    T::Err: std::fmt::Display,
{
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OneOrMany {
        One(String),
        Many(Vec<String>),
    }
    let texts = match OneOrMany::deserialize(d)
        .map_err(|_| serde::de::Error::custom("expected an address or a list of addresses"))?
    {
        OneOrMany::One(one) => vec![one],
        OneOrMany::Many(many) => many,
    };
    texts
        .iter()
        .map(|t| {
            t.parse()
                .map_err(|e| serde::de::Error::custom(format!("`{}`: {e}", t.escape_debug())))
        })
        .collect()
}

/// Checks a DNS host name as written in the fleet file: LDH labels of 1 to 63 characters, at
/// most 253 in all, one trailing dot allowed (RFC 1035 2.3.1, RFC 1123 2.1).
fn check_host_name(name: &str) -> Result<(), String> {
    let bare = name.strip_suffix('.').unwrap_or(name);
    let ok = !bare.is_empty()
        && bare.len() <= 253
        && bare.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        });
    if ok {
        Ok(())
    } else {
        Err(format!(
            "`{}` is not a host name (letters, digits and - in dot-separated labels)",
            name.escape_debug()
        ))
    }
}

impl RecordSpec {
    /// The name as served: lowercase, without a trailing dot.
    pub(crate) fn owner(&self) -> String {
        self.name.trim_end_matches('.').to_ascii_lowercase()
    }

    fn validate(&self) -> Result<(), Error> {
        let err = |m: String| Err(Error::Spec(format!("record `{}`: {m}", self.name)));
        if let Err(m) = check_host_name(&self.name) {
            return err(m);
        }
        let owner = self.owner();
        if owner == "arpa" || owner.ends_with(".arpa") {
            return err(
                "reverse names are written as `ptr = [ADDRESS]` on the name they point at".into(),
            );
        }
        if self.a.is_empty() && self.aaaa.is_empty() && self.ptr.is_empty() {
            return err("give at least one of a, aaaa, ptr".into());
        }
        Ok(())
    }
}

/// `[generate]`: a synthetic population, Zipf-sized.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GenerateSpec {
    /// Seed: the same spec and seed give the same fleet, list and truth.
    pub seed: u64,
    /// Number of domains.
    pub domains: u32,
    /// Number of addresses on the list (spread over the domains, Zipf-sized).
    pub addresses: u32,
    /// Number of (working) sites; domains are spread over them, Zipf-sized.
    pub sites: u32,
    /// MX hosts per site.
    pub hosts_per_site: u32,
    /// Zipf exponent for both domain sizes and site sizes.
    pub zipf_exponent: f64,
    /// Fraction of listed addresses that have no mailbox.
    pub unknown_fraction: f64,
    /// Fraction of listed addresses whose mailbox is full.
    pub full_fraction: f64,
    /// Fraction of listed addresses whose mailbox is disabled.
    pub disabled_fraction: f64,
    /// Profile of the generated hosts (from `[profiles]`); `default` when absent.
    pub profile: Option<String>,
    /// Overrides `fleet.greylist_delay_ms` when present.
    pub greylist_delay_ms: Option<u64>,
    /// Fractions of domains per behaviour (normalised; they need not sum to 1).
    pub mix: BehaviourMix,
}

impl Default for GenerateSpec {
    fn default() -> Self {
        GenerateSpec {
            seed: 1,
            domains: 100,
            addresses: 1000,
            sites: 10,
            hosts_per_site: 2,
            zipf_exponent: 1.0,
            unknown_fraction: 0.2,
            full_fraction: 0.01,
            disabled_fraction: 0.01,
            profile: None,
            greylist_delay_ms: None,
            mix: BehaviourMix::default(),
        }
    }
}

/// `[generate.mix]`: how many domains of each kind.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BehaviourMix {
    /// Normal domains.
    pub normal: f64,
    /// Catch-all domains.
    pub catch_all: f64,
    /// Greylisting domains.
    pub greylist: f64,
    /// Null MX domains.
    pub null_mx: f64,
    /// Domains with only an A record.
    pub a_only: f64,
    /// Names that do not exist.
    pub nxdomain: f64,
    /// Names with neither MX nor A.
    pub no_mx: f64,
    /// Domains whose servers block the prober.
    pub blocked: f64,
    /// Domains whose every MX host is down.
    pub mx_down: f64,
    /// Domains whose primary MX is down and whose backup MX works.
    pub mx_backup: f64,
    /// Accept-all domains (see [`Behaviour::AcceptAll`]). 0 by default: generated hosts have
    /// generic names, so a verifier sees these domains as catch-all; accept-all is meant for
    /// explicit domains on hosts named like the provider's (see `fleets/providers.toml`).
    pub accept_all: f64,
}

impl Default for BehaviourMix {
    fn default() -> Self {
        BehaviourMix {
            normal: 0.70,
            catch_all: 0.08,
            greylist: 0.08,
            null_mx: 0.02,
            a_only: 0.03,
            nxdomain: 0.02,
            no_mx: 0.01,
            blocked: 0.02,
            mx_down: 0.02,
            mx_backup: 0.02,
            accept_all: 0.0,
        }
    }
}

impl FleetSpec {
    /// Parses and validates a fleet file's text. Pure: touches no file or socket.
    pub fn from_toml(s: &str) -> Result<FleetSpec, Error> {
        let spec: FleetSpec = toml::from_str(s)?;
        spec.validate()?;
        Ok(spec)
    }

    /// Reads, parses and validates a fleet file.
    pub fn from_file(p: &Path) -> Result<FleetSpec, Error> {
        let text = std::fs::read_to_string(p).map_err(|source| Error::Read {
            path: p.to_path_buf(),
            source,
        })?;
        FleetSpec::from_toml(&text)
    }

    /// The profile a host with this profile name gets.
    pub(crate) fn profile(&self, name: Option<&str>) -> Result<Profile, Error> {
        match name {
            None => Ok(self.profiles.get("default").cloned().unwrap_or_default()),
            Some(n) => self
                .profiles
                .get(n)
                .cloned()
                .ok_or_else(|| Error::Spec(format!("unknown profile `{n}`"))),
        }
    }

    fn validate(&self) -> Result<(), Error> {
        let spec_err = |m: String| Err(Error::Spec(m));
        if !self.fleet.address_base.is_loopback() {
            return spec_err(format!(
                "fleet.address_base {} is not in 127.0.0.0/8",
                self.fleet.address_base
            ));
        }
        for (name, p) in &self.profiles {
            p.validate(name).map_err(Error::Spec)?;
        }
        let mut hosts = std::collections::HashSet::new();
        for h in &self.hosts {
            if !hosts.insert(h.name.to_ascii_lowercase()) {
                return spec_err(format!("host `{}` is defined twice", h.name));
            }
            if let Some(a) = h.address
                && !a.is_loopback()
            {
                return spec_err(format!("host `{}`: {a} is not in 127.0.0.0/8", h.name));
            }
            self.profile(h.profile.as_deref())?;
        }
        let mut sites = std::collections::HashSet::new();
        for s in &self.sites {
            if !sites.insert(s.name.as_str()) {
                return spec_err(format!("site `{}` is defined twice", s.name));
            }
            if s.mx.is_empty() {
                return spec_err(format!("site `{}` has no mx", s.name));
            }
            for mx in &s.mx {
                if !hosts.contains(&mx.host.to_ascii_lowercase()) {
                    return spec_err(format!("site `{}`: unknown host `{}`", s.name, mx.host));
                }
            }
        }
        let mut domains = std::collections::HashSet::new();
        for d in &self.domains {
            if !domains.insert(d.name.to_ascii_lowercase()) {
                return spec_err(format!("domain `{}` is defined twice", d.name));
            }
            if !d.name.is_ascii() || d.name.is_empty() {
                return spec_err(format!("domain `{}` must be non-empty ASCII", d.name));
            }
            match d.behaviour {
                Behaviour::AOnly => match &d.a_host {
                    Some(h) if hosts.contains(&h.to_ascii_lowercase()) => {}
                    Some(h) => {
                        return spec_err(format!("domain `{}`: unknown a_host `{h}`", d.name));
                    }
                    None => return spec_err(format!("domain `{}`: a_only needs a_host", d.name)),
                },
                b if b.has_servers() => match &d.site {
                    Some(s) if sites.contains(s.as_str()) => {}
                    Some(s) => return spec_err(format!("domain `{}`: unknown site `{s}`", d.name)),
                    None => return spec_err(format!("domain `{}` needs a site", d.name)),
                },
                _ => {}
            }
        }
        for r in &self.records {
            r.validate()?;
            let owner = r.owner();
            if hosts.contains(&owner) || domains.contains(&owner) {
                return spec_err(format!(
                    "record `{}`: the name is a fleet host or domain, whose records the fleet \
                     serves itself; give the record another name",
                    r.name
                ));
            }
        }
        if let Some(g) = &self.generate {
            self.profile(g.profile.as_deref())?;
            for (what, f) in [
                ("unknown_fraction", g.unknown_fraction),
                ("full_fraction", g.full_fraction),
                ("disabled_fraction", g.disabled_fraction),
            ] {
                if !(0.0..=1.0).contains(&f) {
                    return spec_err(format!("generate.{what} must be within 0..=1"));
                }
            }
            if g.unknown_fraction + g.full_fraction + g.disabled_fraction > 1.0 {
                return spec_err("generate: unknown + full + disabled fractions exceed 1".into());
            }
            if g.domains == 0 || g.addresses == 0 || g.sites == 0 || g.hosts_per_site == 0 {
                return spec_err(
                    "generate: domains, addresses, sites and hosts_per_site must be > 0".into(),
                );
            }
            if g.mix.weights().iter().any(|w| *w < 0.0 || !w.is_finite())
                || g.mix.weights().iter().sum::<f64>() <= 0.0
            {
                return spec_err("generate.mix: fractions must be >= 0 and not all 0".into());
            }
            if !(g.zipf_exponent.is_finite() && g.zipf_exponent >= 0.0) {
                return spec_err("generate.zipf_exponent must be >= 0".into());
            }
        }
        Ok(())
    }
}

impl BehaviourMix {
    /// The weights in the order of `population::Kind::ALL`.
    pub(crate) fn weights(&self) -> [f64; 11] {
        [
            self.normal,
            self.catch_all,
            self.greylist,
            self.null_mx,
            self.a_only,
            self.nxdomain,
            self.no_mx,
            self.blocked,
            self.mx_down,
            self.mx_backup,
            self.accept_all,
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: &str = r#"
[[host]]
name = "mx.fleet.test"

[[site]]
name = "s"
mx = [{ host = "mx.fleet.test", preference = 10 }]

[[domain]]
name = "fleet.test"
site = "s"
"#;

    fn with(records: &str) -> Result<FleetSpec, Error> {
        FleetSpec::from_toml(&format!("{BASE}{records}"))
    }

    fn spec_error(records: &str) -> String {
        match with(records) {
            Err(e) => e.to_string(),
            Ok(_) => panic!("accepted: {records}"),
        }
    }

    #[test]
    fn records_take_one_value_or_a_list() {
        let spec = with(
            r#"
[[record]]
name = "A.Prober.Test."
a = "127.0.1.1"
ptr = ["127.0.1.1", "::1"]
"#,
        )
        .unwrap();
        let r = &spec.records[0];
        assert_eq!(r.owner(), "a.prober.test");
        assert_eq!(r.a, [Ipv4Addr::new(127, 0, 1, 1)]);
        assert!(r.aaaa.is_empty());
        assert_eq!(r.ptr.len(), 2);
        assert!(FleetSpec::from_toml(BASE).unwrap().records.is_empty());
    }

    #[test]
    fn the_readme_record_example_parses() {
        let readme = include_str!("../README.md");
        let block = readme
            .split("```toml")
            .skip(1)
            .filter_map(|b| b.split("```").next())
            .find(|b| b.contains("[[record]]"))
            .expect("README shows a [[record]] example");
        let spec = with(block).unwrap();
        assert_eq!(spec.records.len(), 2);
        assert_eq!(spec.records[0].ptr, [IpAddr::from([127, 0, 1, 1])]);
    }

    #[test]
    fn bad_records_are_refused_with_the_reason() {
        let cases = [
            ("name = \"a.test\"\ncname = \"b.test\"", "unknown field"),
            (
                "name = \"a.test\"\na = \"not an ip\"",
                "`not an ip`: invalid IPv4 address syntax",
            ),
            ("name = \"a.test\"\na = \"::1\"", "`::1`: invalid IPv4"),
            (
                "name = \"a.test\"\nptr = 7",
                "an address or a list of addresses",
            ),
            ("name = \"a.test\"", "at least one of a, aaaa, ptr"),
            (
                "name = \"bad name.test\"\na = \"127.0.1.1\"",
                "not a host name",
            ),
            ("name = \"-a.test\"\na = \"127.0.1.1\"", "not a host name"),
            ("name = \"\"\na = \"127.0.1.1\"", "not a host name"),
            (
                "name = \"1.1.0.127.in-addr.arpa\"\na = \"127.0.1.1\"",
                "ptr = [ADDRESS]",
            ),
            (
                "name = \"MX.fleet.test\"\na = \"127.0.1.1\"",
                "fleet host or domain",
            ),
            (
                "name = \"fleet.test\"\nptr = \"127.0.1.1\"",
                "fleet host or domain",
            ),
        ];
        for (record, expected) in cases {
            let message = spec_error(&format!("[[record]]\n{record}\n"));
            assert!(message.contains(expected), "{record:?}: {message}");
        }
    }
}
