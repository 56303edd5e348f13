//! The resolved world a fleet serves: hosts with addresses and profiles, domains with their
//! MX hosts and mailboxes, the list to verify and its ground truth, and the file's extra DNS
//! records; and the rule that derives each address's truth row (`World::truth_row`). Built
//! once from a [`FleetSpec`](crate::spec::FleetSpec) (`resolve`, synthetic part in
//! `population`), then shared read-only by the SMTP servers and the DNS zone. Owns no socket.

use std::collections::{HashMap, HashSet};
use std::net::Ipv4Addr;
use std::sync::Arc;
use std::time::Duration;

use crate::Error;
use crate::mailbox::{ROLE_WORDS, mailbox_key};
use crate::spec::{Behaviour, MailboxState, Profile, RecordSpec};
use crate::truth::{self, Reason, Scenario, Status, TruthRow};

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
    pub fn new(base: Ipv4Addr, taken: HashSet<Ipv4Addr>) -> AddressPool {
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
        let (status, reason, deterministic, behaviour) = verdict(self, d, local);
        let exists = d.behaviour.has_servers()
            && matches!(
                d.mailbox(local),
                Some(MailboxState::Valid | MailboxState::Full)
            );
        Some(TruthRow {
            address,
            status,
            reason,
            deterministic,
            behaviour,
            exists,
        })
    }
}

/// The verdict a perfect verifier gives `local@<domain>`.
fn verdict(world: &World, domain: &DomainEntry, local: &str) -> (Status, Reason, bool, Scenario) {
    use Reason as R;
    use Status as S;
    let scenario = world.scenario(domain);
    let (status, reason, deterministic) = match domain.behaviour {
        Behaviour::Nxdomain => (S::Undeliverable, R::NoSuchDomain, true),
        Behaviour::NullMx => (S::Undeliverable, R::NullMx, true),
        Behaviour::NoMx => (S::Undeliverable, R::NoMailServer, true),
        _ => {
            let up = world.up_hosts(domain);
            match up.first() {
                None => (S::Unknown, R::ConnectionFailed, true),
                Some(&first) => {
                    let host = &world.hosts[first as usize];
                    let deterministic = up
                        .iter()
                        .all(|&h| world.hosts[h as usize].profile.transient_4xx_rate <= 0.0);
                    let (s, r) =
                        if domain.behaviour == Behaviour::Blocked || host.profile.policy_block {
                            (S::Unknown, R::Blocked)
                        } else if !local.is_ascii() && !host.profile.smtputf8 {
                            (S::Unknown, R::Unverifiable)
                        } else {
                            mailbox_verdict(domain, local)
                        };
                    (s, r, deterministic)
                }
            }
        }
    };
    (status, reason, deterministic, scenario)
}

/// The verdict about the mailbox itself, once a live server of the domain answers RCPT.
fn mailbox_verdict(domain: &DomainEntry, local: &str) -> (Status, Reason) {
    use Reason as R;
    use Status as S;
    match (domain.mailbox(local), domain.behaviour) {
        (Some(MailboxState::Full), _) => (S::Risky, R::MailboxFull),
        (Some(MailboxState::Disabled), _) => (S::Undeliverable, R::MailboxDisabled),
        (_, Behaviour::CatchAll) => (S::Risky, R::CatchAll),
        // The 250 says nothing: valid, role and unknown local parts all get it (Yahoo, AOL).
        (_, Behaviour::AcceptAll) => (S::Risky, R::AcceptsAll),
        // `role_account` is a risky reason in the taxonomy (rollcall-core `Reason::status`):
        // an accepted role account is risky (a missing one stays undeliverable, flagged).
        (Some(MailboxState::Valid), _) if ROLE_WORDS.contains(&mailbox_key(local).as_str()) => {
            (S::Risky, R::RoleAccount)
        }
        (Some(MailboxState::Valid), _) => (S::Deliverable, R::Accepted),
        (None, _) => (S::Undeliverable, R::MailboxNotFound),
    }
}
