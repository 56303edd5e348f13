//! Synthetic populations (`[generate]`): sites, hosts, domains and people, Zipf-sized and
//! deterministic for a seed. Owns the name lists and the apportioning; the rules that turn a
//! mailbox into a verdict live in `truth`.
//!
//! Memory: per address only its list entry, its truth row and (for domains that are served)
//! one mailbox map entry. Nothing else is kept per address.

use std::collections::HashSet;
use std::sync::Arc;

use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};

use crate::Error;
use crate::mailbox::mailbox_key;
use crate::spec::{Behaviour, FleetSpec, GenerateSpec, MailboxState};
use crate::world::{AddressPool, DomainEntry, World};

const FIRST: &[&str] = &[
    "alice", "amir", "anna", "ben", "carla", "chen", "daniel", "diana", "elena", "emil", "fatima",
    "felix", "grace", "hana", "hugo", "ines", "ivan", "jade", "jonas", "julia", "kai", "karim",
    "laura", "leon", "lucia", "marco", "maria", "mei", "nadia", "noah", "olga", "omar", "paula",
    "pedro", "quinn", "rosa", "ruben", "sara", "sofia", "tariq", "tom", "una", "victor", "wen",
    "xavier", "yara", "yusuf", "zoe", "oscar", "nina",
];

const LAST: &[&str] = &[
    "smith",
    "garcia",
    "muller",
    "rossi",
    "nguyen",
    "kowalski",
    "silva",
    "jensen",
    "novak",
    "tanaka",
    "okafor",
    "haddad",
    "lindqvist",
    "moreau",
    "schmidt",
    "ivanova",
    "costa",
    "kim",
    "patel",
    "dubois",
    "fischer",
    "lopez",
    "martin",
    "nakamura",
    "oconnor",
    "petrov",
    "quintero",
    "romero",
    "santos",
    "weber",
    "yilmaz",
    "zhang",
    "bauer",
    "castro",
    "dahl",
    "evans",
    "ferrari",
    "gomez",
    "hansen",
    "ito",
    "keller",
    "larsen",
    "meyer",
    "nilsson",
    "olsen",
    "perez",
    "reyes",
    "sato",
    "torres",
    "vogel",
];

const ADJ: &[&str] = &[
    "amber", "blue", "bright", "calm", "cedar", "clear", "coral", "crisp", "delta", "early",
    "fern", "golden", "green", "harbor", "hazel", "iron", "jolly", "keen", "lunar", "maple",
    "misty", "noble", "north", "oak", "olive", "pine", "quiet", "rapid", "red", "river", "silver",
    "solar", "south", "stone", "swift", "teal", "urban", "vivid", "west", "wild",
];

const NOUN: &[&str] = &[
    "anchor", "bakery", "bridge", "canyon", "cloud", "crest", "dynamics", "works", "field",
    "forge", "garden", "grove", "harvest", "haven", "labs", "ledger", "lights", "meadow", "mill",
    "motors", "orchard", "partners", "peak", "pixel", "port", "quarry", "ridge", "rivet", "studio",
    "summit", "systems", "textiles", "tower", "trail", "vale", "ventures", "vista", "wharf",
    "yard", "zenith",
];

/// What a generated domain is; the last two are normal domains on special sites.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Plain(Behaviour),
    MxDown,
    MxBackup,
}

const KINDS: [Kind; 11] = [
    Kind::Plain(Behaviour::Normal),
    Kind::Plain(Behaviour::CatchAll),
    Kind::Plain(Behaviour::Greylist),
    Kind::Plain(Behaviour::NullMx),
    Kind::Plain(Behaviour::AOnly),
    Kind::Plain(Behaviour::Nxdomain),
    Kind::Plain(Behaviour::NoMx),
    Kind::Plain(Behaviour::Blocked),
    Kind::MxDown,
    Kind::MxBackup,
    Kind::Plain(Behaviour::AcceptAll),
];

/// Splits `total` into integer shares proportional to `weights` (largest remainder), giving
/// every positive weight at least one unit when `total` allows it.
pub(crate) fn apportion(weights: &[f64], total: u64) -> Vec<u64> {
    let sum: f64 = weights.iter().sum();
    let positive = weights.iter().filter(|w| **w > 0.0).count() as u64;
    let floor_one = total >= positive;
    let mut shares: Vec<u64> = weights
        .iter()
        .map(|w| {
            let exact = if sum > 0.0 {
                *w / sum * total as f64
            } else {
                0.0
            };
            let s = exact.floor() as u64;
            if floor_one && *w > 0.0 { s.max(1) } else { s }
        })
        .collect();
    let mut assigned: u64 = shares.iter().sum();
    // Hand out what is left by largest remainder, or take back from the largest shares.
    let mut order: Vec<usize> = (0..weights.len()).filter(|i| weights[*i] > 0.0).collect();
    order.sort_by(|a, b| {
        let ra = weights[*a] / sum * total as f64 - shares[*a] as f64;
        let rb = weights[*b] / sum * total as f64 - shares[*b] as f64;
        rb.total_cmp(&ra).then(a.cmp(b))
    });
    let mut i = 0;
    while assigned < total && !order.is_empty() {
        shares[order[i % order.len()]] += 1;
        assigned += 1;
        i += 1;
    }
    while assigned > total {
        let Some(max) = (0..shares.len()).max_by_key(|i| (shares[*i], usize::MAX - *i)) else {
            break;
        };
        let min = if floor_one && weights[max] > 0.0 {
            1
        } else {
            0
        };
        if shares[max] <= min {
            break;
        }
        shares[max] -= 1;
        assigned -= 1;
    }
    shares
}

fn zipf_weights(n: usize, s: f64) -> Vec<f64> {
    (1..=n).map(|k| 1.0 / (k as f64).powf(s)).collect()
}

fn person(rng: &mut StdRng) -> String {
    let first = FIRST[rng.random_range(0..FIRST.len())];
    let last = LAST[rng.random_range(0..LAST.len())];
    match rng.random_range(0..4u8) {
        0 => format!("{first}.{last}"),
        1 => format!("{first}.{last}{}", rng.random_range(1..100u32)),
        2 => format!("{}{last}{}", &first[..1], rng.random_range(1..1000u32)),
        _ => format!("{first}_{last}{}", rng.random_range(1..100u32)),
    }
}

fn domain_name(rng: &mut StdRng, taken: &HashSet<String>) -> String {
    let adj = ADJ[rng.random_range(0..ADJ.len())];
    let noun = NOUN[rng.random_range(0..NOUN.len())];
    let sep = if rng.random_bool(0.3) { "-" } else { "" };
    let mut name = format!("{adj}{sep}{noun}.test");
    let mut n = 2u32;
    while taken.contains(&name) {
        name = format!("{adj}{sep}{noun}{n}.test");
        n += 1;
    }
    name
}

/// Adds the synthetic population of `g` to `world`.
pub(crate) fn generate(
    spec: &FleetSpec,
    g: &GenerateSpec,
    world: &mut World,
    pool: &mut AddressPool,
) -> Result<(), Error> {
    let mut rng = StdRng::seed_from_u64(g.seed);
    let profile = Arc::new(spec.profile(g.profile.as_deref())?);

    // Working sites: mx1..mxN.siteK.test with preferences 10, 20, ...
    let mut sites: Vec<Vec<(u16, u32)>> = Vec::with_capacity(g.sites as usize);
    for s in 1..=g.sites {
        let mut mx = Vec::new();
        for j in 1..=g.hosts_per_site {
            let ip = pool.allocate()?;
            let idx = world.add_host(&format!("mx{j}.site{s}.test"), ip, profile.clone(), false)?;
            mx.push((u16::try_from(j * 10).unwrap_or(u16::MAX), idx));
        }
        sites.push(mx);
    }
    let weights = g.mix.weights();
    // Special sites, only when the mix uses them: every host down, or the primary down.
    let dead_site = if weights[8] > 0.0 {
        let a = world.add_host(
            "mx1.dead-site.test",
            pool.allocate()?,
            profile.clone(),
            true,
        )?;
        let b = world.add_host(
            "mx2.dead-site.test",
            pool.allocate()?,
            profile.clone(),
            true,
        )?;
        vec![(10, a), (20, b)]
    } else {
        Vec::new()
    };
    let backup_site = if weights[9] > 0.0 {
        let a = world.add_host(
            "mx1.backup-site.test",
            pool.allocate()?,
            profile.clone(),
            true,
        )?;
        let b = world.add_host(
            "mx2.backup-site.test",
            pool.allocate()?,
            profile.clone(),
            false,
        )?;
        vec![(10, a), (20, b)]
    } else {
        Vec::new()
    };

    let n_domains = g.domains.min(g.addresses) as u64;
    let mut kinds: Vec<Kind> = Vec::with_capacity(n_domains as usize);
    for (kind, count) in KINDS.iter().zip(apportion(&weights, n_domains)) {
        kinds.extend(std::iter::repeat_n(*kind, count as usize));
    }
    kinds.shuffle(&mut rng);
    let sizes = apportion(
        &zipf_weights(kinds.len(), g.zipf_exponent),
        u64::from(g.addresses),
    );
    // Sites are Zipf-sized too: a domain picks site k with weight 1/k^s.
    let site_cdf: Vec<f64> = zipf_weights(sites.len(), g.zipf_exponent)
        .iter()
        .scan(0.0, |acc, w| {
            *acc += w;
            Some(*acc)
        })
        .collect();
    let site_total = site_cdf.last().copied().unwrap_or(1.0);

    let mut taken: HashSet<String> = world.domains.keys().map(|k| k.to_string()).collect();
    let mut rows = Vec::with_capacity(g.addresses as usize);
    for (kind, size) in kinds.iter().zip(sizes) {
        let name = domain_name(&mut rng, &taken);
        taken.insert(name.clone());
        let pick = rng.random_range(0.0..site_total);
        let site = site_cdf.partition_point(|c| *c < pick).min(sites.len() - 1);
        let (behaviour, mx, a_host) = match kind {
            Kind::MxDown => (Behaviour::Normal, dead_site.clone(), None),
            Kind::MxBackup => (Behaviour::Normal, backup_site.clone(), None),
            Kind::Plain(Behaviour::AOnly) => (
                Behaviour::AOnly,
                Vec::new(),
                sites[site].first().map(|m| m.1),
            ),
            Kind::Plain(b) if b.has_servers() => (*b, sites[site].clone(), None),
            Kind::Plain(b) => (*b, Vec::new(), None),
        };
        // Only domains with servers need their mailboxes stored (those of a domain whose
        // every MX is down too: the truth says whether the mailbox exists).
        let keep = behaviour.has_servers();
        let mut entry = DomainEntry {
            name: name.clone().into_boxed_str(),
            behaviour,
            mx,
            a_host,
            mailboxes: Default::default(),
        };
        let mut locals = HashSet::with_capacity(size as usize);
        for _ in 0..size {
            let mut local = person(&mut rng);
            while locals.contains(&local) {
                local = person(&mut rng);
            }
            let u: f64 = rng.random();
            let state = if u < g.unknown_fraction {
                None
            } else if u < g.unknown_fraction + g.full_fraction {
                Some(MailboxState::Full)
            } else if u < g.unknown_fraction + g.full_fraction + g.disabled_fraction {
                Some(MailboxState::Disabled)
            } else {
                Some(MailboxState::Valid)
            };
            if let (Some(state), true) = (state, keep) {
                entry
                    .mailboxes
                    .insert(mailbox_key(&local).into_boxed_str(), state);
            }
            locals.insert(local);
        }
        for local in locals {
            rows.push(format!("{local}@{name}"));
        }
        world.domains.insert(name.into_boxed_str(), entry);
    }
    // HashSet iteration order is not stable across runs: sort, then shuffle with the seed,
    // so the list mixes domains like a real one and is the same for the same seed.
    rows.sort_unstable();
    rows.shuffle(&mut rng);
    world.addresses.reserve(rows.len());
    world.truth.reserve(rows.len());
    for address in rows {
        let Some((local, domain)) = address.rsplit_once('@') else {
            continue;
        };
        if let Some(row) = world.truth_row(domain, local, address.clone()) {
            world.truth.push(row);
            world.addresses.push(address);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mailbox::ROLE_WORDS;

    #[test]
    fn apportion_sums_and_floors_at_one() {
        let s = apportion(&[0.7, 0.2, 0.1, 0.0], 10);
        assert_eq!(s.iter().sum::<u64>(), 10);
        assert_eq!(s[3], 0);
        assert!(s.iter().take(3).all(|x| *x >= 1));
        let z = apportion(&zipf_weights(100, 1.0), 1000);
        assert_eq!(z.iter().sum::<u64>(), 1000);
        assert!(z[0] > z[99]);
        assert!(z.iter().all(|x| *x >= 1));
    }

    #[test]
    fn people_never_get_role_words() {
        let mut rng = StdRng::seed_from_u64(7);
        for _ in 0..10_000 {
            let local = person(&mut rng);
            let words: Vec<&str> = local
                .split(|c: char| c == '.' || c == '_' || c.is_ascii_digit())
                .collect();
            for w in words {
                assert!(!ROLE_WORDS.contains(&w), "{local}");
            }
        }
        for name in FIRST.iter().chain(LAST) {
            assert!(!ROLE_WORDS.contains(name));
        }
    }
}
