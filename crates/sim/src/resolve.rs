//! Resolving a [`FleetSpec`] into the [`World`] a fleet serves (`World::build`): explicit
//! hosts, sites and domains first, in file order, then the synthetic population
//! (`population`), then the check that the file's extra records do not take a fleet name.
//! Owns no socket; what the world holds and how its truth rows are derived is `world`'s.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use crate::Error;
use crate::mailbox::mailbox_key;
use crate::spec::{Behaviour, FleetSpec};
use crate::world::{AddressPool, DomainEntry, World};

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
