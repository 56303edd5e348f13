//! The resolved world a fleet serves: hosts with addresses and profiles, domains with their
//! MX hosts and mailboxes, the list to verify and its ground truth, and the file's extra DNS
//! records. Built once from a [`FleetSpec`] (explicit part here, synthetic part in
//! `population`), then shared read-only by the SMTP servers and the DNS zone. Owns no socket.

use std::collections::{HashMap, HashSet};
use std::net::Ipv4Addr;
use std::sync::Arc;
use std::time::Duration;

use crate::Error;
use crate::spec::{Behaviour, FleetSpec, MailboxState, Profile, RecordSpec};
use crate::truth::{self, Scenario, TruthRow, mailbox_key};

/// One SMTP host.
#[derive(Debug)]
pub(crate) struct HostEntry {
    pub name: String,
    pub ip: Ipv4Addr,
    pub profile: Arc<Profile>,
    pub down: bool,
    /// Served elsewhere: DNS only, nothing bound here.
    pub external: bool,
}

/// One mail domain.
#[derive(Debug)]
pub(crate) struct DomainEntry {
    pub name: Box<str>,
    pub behaviour: Behaviour,
    /// (preference, host index), sorted by preference.
    pub mx: Vec<(u16, u32)>,
    /// For a_only: the host of the A record.
    pub a_host: Option<u32>,
    /// Mailbox key (see `truth::mailbox_key`) -> state.
    pub mailboxes: HashMap<Box<str>, MailboxState>,
}

impl DomainEntry {
    /// The state of the mailbox behind a local part, if it exists.
    pub fn mailbox(&self, local: &str) -> Option<MailboxState> {
        self.mailboxes.get(mailbox_key(local).as_str()).copied()
    }

    /// The hosts that accept mail for this domain, most preferred first.
    pub fn servers(&self) -> impl Iterator<Item = u32> + '_ {
        self.mx.iter().map(|(_, h)| *h).chain(self.a_host)
    }

    /// True when `host` accepts mail for this domain (otherwise: relay access denied).
    pub fn served_by(&self, host: u32) -> bool {
        self.behaviour.has_servers() && self.servers().any(|h| h == host)
    }
}

/// Everything the running fleet serves.
#[derive(Debug)]
pub(crate) struct World {
    pub hosts: Vec<HostEntry>,
    pub host_index: HashMap<String, u32>,
    /// Lower-case domain name -> entry.
    pub domains: HashMap<Box<str>, DomainEntry>,
    pub addresses: Vec<String>,
    pub truth: Vec<TruthRow>,
    pub greylist_delay: Duration,
    pub seed: u64,
    /// The fleet file's extra DNS records (`[[record]]`), served as written.
    pub records: Vec<RecordSpec>,
}

/// Hands out loopback addresses counting up from a base, skipping taken ones and the .0 and
/// .255 last octets.
pub(crate) struct AddressPool {
    next: u32,
    taken: HashSet<Ipv4Addr>,
}

impl AddressPool {
    fn new(base: Ipv4Addr, taken: HashSet<Ipv4Addr>) -> AddressPool {
        AddressPool {
            next: u32::from(base),
            taken,
        }
    }

    pub fn allocate(&mut self) -> Result<Ipv4Addr, Error> {
        loop {
            self.next = self.next.wrapping_add(1);
            let ip = Ipv4Addr::from(self.next);
            if !ip.is_loopback() {
                return Err(Error::Spec(
                    "ran out of 127.0.0.0/8 addresses for hosts (lower fleet.address_base)".into(),
                ));
            }
            let last = ip.octets()[3];
            if last == 0 || last == 255 || self.taken.contains(&ip) {
                continue;
            }
            self.taken.insert(ip);
            return Ok(ip);
        }
    }
}

impl World {
    /// Builds the world: explicit hosts, sites and domains first (in file order), then the
    /// synthetic population. `greylist_delay` overrides the file's.
    pub fn build(spec: &FleetSpec, greylist_delay: Option<Duration>) -> Result<World, Error> {
        let taken = spec.hosts.iter().filter_map(|h| h.address).collect();
        let mut pool = AddressPool::new(spec.fleet.address_base, taken);
        let file_delay = spec
            .generate
            .as_ref()
            .and_then(|g| g.greylist_delay_ms)
            .unwrap_or(spec.fleet.greylist_delay_ms);
        let mut world = World {
            hosts: Vec::new(),
            host_index: HashMap::new(),
            domains: HashMap::new(),
            addresses: Vec::new(),
            truth: Vec::new(),
            greylist_delay: greylist_delay.unwrap_or(Duration::from_millis(file_delay)),
            seed: spec.fleet.seed,
            records: spec.records.clone(),
        };
        for h in &spec.hosts {
            let ip = match h.address {
                Some(ip) => ip,
                None => pool.allocate()?,
            };
            let profile = Arc::new(spec.profile(h.profile.as_deref())?);
            let idx = world.add_host(&h.name, ip, profile, h.down)?;
            world.hosts[idx as usize].external = h.external;
        }
        let mut sites: HashMap<&str, Vec<(u16, u32)>> = HashMap::new();
        for s in &spec.sites {
            let mut mx = Vec::with_capacity(s.mx.len());
            for m in &s.mx {
                let idx = world.host(&m.host).ok_or_else(|| {
                    Error::Spec(format!("site `{}`: unknown host `{}`", s.name, m.host))
                })?;
                mx.push((m.preference, idx));
            }
            mx.sort_by_key(|(p, _)| *p);
            sites.insert(s.name.as_str(), mx);
        }
        let mut rows = Vec::new();
        for d in &spec.domains {
            let mx = match (
                &d.site,
                d.behaviour.has_servers() && d.behaviour != Behaviour::AOnly,
            ) {
                (Some(s), true) => sites.get(s.as_str()).cloned().unwrap_or_default(),
                _ => Vec::new(),
            };
            let a_host = match (d.behaviour, &d.a_host) {
                (Behaviour::AOnly, Some(h)) => world.host(h),
                _ => None,
            };
            let mailboxes = d
                .mailboxes
                .iter()
                .map(|(l, s)| (mailbox_key(l).into_boxed_str(), *s))
                .collect();
            let name = d.name.to_ascii_lowercase();
            world.domains.insert(
                name.clone().into_boxed_str(),
                DomainEntry {
                    name: name.clone().into_boxed_str(),
                    behaviour: d.behaviour,
                    mx,
                    a_host,
                    mailboxes,
                },
            );
            let mut seen = HashSet::new();
            for local in d.mailboxes.keys().chain(d.verify.iter()) {
                if seen.insert(local.as_str()) {
                    rows.push((format!("{local}@{}", d.name), name.clone()));
                }
            }
        }
        for (address, domain) in rows {
            let local = address.rsplit_once('@').map(|(l, _)| l).unwrap_or_default();
            let row = world.truth_row(&domain, local, address.clone());
            world.addresses.push(address);
            world.truth.extend(row);
        }
        if let Some(g) = &spec.generate {
            crate::population::generate(spec, g, &mut world, &mut pool)?;
        }
        // The file's validation saw the explicit names only; generated ones are known now.
        for r in &world.records {
            let owner = r.owner();
            if world.host(&owner).is_some() || world.domains.contains_key(owner.as_str()) {
                return Err(Error::Spec(format!(
                    "record `{}`: the name is a fleet host or domain, whose records the fleet \
                     serves itself; give the record another name",
                    r.name
                )));
            }
        }
        Ok(world)
    }

    pub fn add_host(
        &mut self,
        name: &str,
        ip: Ipv4Addr,
        profile: Arc<Profile>,
        down: bool,
    ) -> Result<u32, Error> {
        let key = name.to_ascii_lowercase();
        if self.host_index.contains_key(&key) {
            return Err(Error::Spec(format!("host `{name}` is defined twice")));
        }
        let idx =
            u32::try_from(self.hosts.len()).map_err(|_| Error::Spec("too many hosts".into()))?;
        self.hosts.push(HostEntry {
            name: name.to_string(),
            ip,
            profile,
            down,
            external: false,
        });
        self.host_index.insert(key, idx);
        Ok(idx)
    }

    pub fn host(&self, name: &str) -> Option<u32> {
        self.host_index.get(&name.to_ascii_lowercase()).copied()
    }

    /// The serving hosts that are up, most preferred first.
    pub fn up_hosts(&self, d: &DomainEntry) -> Vec<u32> {
        d.servers()
            .filter(|&h| !self.hosts[h as usize].down)
            .collect()
    }

    pub fn scenario(&self, d: &DomainEntry) -> Scenario {
        let mut servers = d.servers().peekable();
        let first_down = servers.peek().is_some_and(|&h| self.hosts[h as usize].down);
        let all_down = servers.all(|h| self.hosts[h as usize].down);
        truth::scenario_of(d.behaviour, all_down, first_down)
    }

    /// The truth row for `local@domain` (`domain` lower-case), if the domain is known.
    pub fn truth_row(&self, domain: &str, local: &str, address: String) -> Option<TruthRow> {
        let d = self.domains.get(domain)?;
        let (status, reason, deterministic, behaviour) = truth::verdict(self, d, local);
        Some(TruthRow {
            address,
            status,
            reason,
            deterministic,
            behaviour,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_record_may_not_take_a_generated_name() {
        let spec = FleetSpec::from_toml(
            r#"
[generate]
domains = 3
addresses = 10
sites = 1
hosts_per_site = 1

[[record]]
name = "mx1.site1.test"
a = "127.0.1.1"
"#,
        )
        .unwrap();
        let err = World::build(&spec, None).unwrap_err().to_string();
        assert!(err.contains("fleet host or domain"), "{err}");
        let mut fine = spec.clone();
        fine.records[0].name = "a.prober.test".into();
        assert_eq!(World::build(&fine, None).unwrap().records.len(), 1);
    }
}
