//! MX ordering: from the raw MX records of a domain to the hosts to try, in order.
//!
//! Owns the pure rules of RFC 5321 5.1 (preference order, random among equals, implicit MX)
//! and RFC 7505 (null MX), and host name normalisation. It does not resolve host addresses or
//! apply the target policy (see `lookup` and `target`).

use std::collections::HashMap;

use rand::Rng;
use rand::seq::SliceRandom;

use crate::resolution::MxTarget;

/// An MX host to resolve: a normalised name and its preference.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct MxHost {
    /// Host name, lowercase, without a trailing dot.
    pub name: String,
    /// MX preference; lower is tried first.
    pub preference: u16,
}

/// What the MX records of a domain say, before any address lookup.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MxOrder {
    /// Hosts in the order to try. Empty when every record was malformed (several root
    /// targets and nothing else): the domain has no mail server.
    Hosts(Vec<MxHost>),
    /// RFC 7505: the only MX record has the root (`.`) as its target.
    NullMx,
    /// No MX records at all: RFC 5321 5.1 says to use the domain's own A/AAAA records.
    Implicit,
}

/// Lowercases a DNS name and strips one trailing dot (`"MX1.Example.COM."` ->
/// `"mx1.example.com"`, `"."` -> `""`).
pub fn normalise_name(name: &str) -> String {
    let trimmed = name.trim();
    trimmed
        .strip_suffix('.')
        .unwrap_or(trimmed)
        .to_ascii_lowercase()
}

/// Orders MX records `(preference, exchange)` for delivery.
///
/// - No records: [`MxOrder::Implicit`] (RFC 5321 5.1).
/// - A single record whose target is the root: [`MxOrder::NullMx`] (RFC 7505 3). RFC 7505
///   specifies preference 0; a lone root target cannot receive mail at any preference, so the
///   preference is not checked.
/// - A root target next to other records is malformed (RFC 7505 3: a null MX "MUST NOT" be
///   published with other MX records) and ignored.
/// - Otherwise hosts by ascending preference; equal preferences in random order drawn from
///   `rng` (RFC 5321 5.1 "SHOULD pick one at random"). A host listed twice keeps its lowest
///   preference. The result depends only on the set of records and the RNG, not on the order
///   the server sent them in.
pub fn order_mx<R: Rng>(records: &[(u16, String)], rng: &mut R) -> MxOrder {
    if records.is_empty() {
        return MxOrder::Implicit;
    }
    let mut distinct: Vec<(u16, String)> = records
        .iter()
        .map(|(preference, exchange)| (*preference, normalise_name(exchange)))
        .collect();
    distinct.sort();
    distinct.dedup();
    if let [(_, only)] = distinct.as_slice()
        && only.is_empty()
    {
        return MxOrder::NullMx;
    }
    let mut best: HashMap<String, u16> = HashMap::new();
    for (preference, name) in distinct {
        best.entry(name)
            .and_modify(|p| *p = (*p).min(preference))
            .or_insert(preference);
    }
    let mut hosts: Vec<MxHost> = best
        .into_iter()
        .filter(|(name, _)| !name.is_empty())
        .map(|(name, preference)| MxHost { name, preference })
        .collect();
    hosts.sort_by(|a, b| (a.preference, &a.name).cmp(&(b.preference, &b.name)));
    for group in hosts.chunk_by_mut(|a, b| a.preference == b.preference) {
        group.shuffle(rng);
    }
    MxOrder::Hosts(hosts)
}

/// Reshuffles hosts of equal preference in place, keeping preference order (used when a
/// cached answer is handed out again, so load still spreads across equal MX hosts).
pub fn shuffle_equal_preferences<R: Rng>(hosts: &mut [MxTarget], rng: &mut R) {
    for group in hosts.chunk_by_mut(|a, b| a.preference == b.preference) {
        group.shuffle(rng);
    }
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    use super::*;

    fn recs(list: &[(u16, &str)]) -> Vec<(u16, String)> {
        list.iter().map(|(p, n)| (*p, (*n).to_string())).collect()
    }

    fn names(order: &MxOrder) -> Vec<String> {
        match order {
            MxOrder::Hosts(h) => h.iter().map(|h| h.name.clone()).collect(),
            other => panic!("expected hosts, got {other:?}"),
        }
    }

    #[test]
    fn no_records_means_implicit_mx() {
        assert_eq!(
            order_mx(&[], &mut StdRng::seed_from_u64(1)),
            MxOrder::Implicit
        );
    }

    #[test]
    fn lone_root_target_is_null_mx() {
        let mut rng = StdRng::seed_from_u64(1);
        assert_eq!(order_mx(&recs(&[(0, ".")]), &mut rng), MxOrder::NullMx);
        assert_eq!(order_mx(&recs(&[(0, "")]), &mut rng), MxOrder::NullMx);
        assert_eq!(order_mx(&recs(&[(10, ".")]), &mut rng), MxOrder::NullMx);
    }

    #[test]
    fn root_target_next_to_real_records_is_ignored() {
        let mut rng = StdRng::seed_from_u64(1);
        let order = order_mx(&recs(&[(0, "."), (10, "mx.example.com.")]), &mut rng);
        assert_eq!(names(&order), ["mx.example.com"]);
    }

    #[test]
    fn only_root_targets_at_several_preferences_leave_no_host() {
        let mut rng = StdRng::seed_from_u64(1);
        let order = order_mx(&recs(&[(0, "."), (10, ".")]), &mut rng);
        assert_eq!(order, MxOrder::Hosts(Vec::new()));
    }

    #[test]
    fn preference_order_and_normalised_names() {
        let mut rng = StdRng::seed_from_u64(7);
        let order = order_mx(
            &recs(&[
                (30, "C.example.com."),
                (10, "A.Example.com."),
                (20, "b.example.com"),
            ]),
            &mut rng,
        );
        assert_eq!(
            names(&order),
            ["a.example.com", "b.example.com", "c.example.com"]
        );
        let MxOrder::Hosts(hosts) = order else {
            unreachable!()
        };
        assert_eq!(
            hosts.iter().map(|h| h.preference).collect::<Vec<_>>(),
            [10, 20, 30]
        );
    }

    #[test]
    fn duplicate_host_keeps_lowest_preference() {
        let mut rng = StdRng::seed_from_u64(7);
        let order = order_mx(
            &recs(&[
                (50, "mx.example.com."),
                (5, "MX.example.com"),
                (10, "b.example.com"),
            ]),
            &mut rng,
        );
        assert_eq!(
            order,
            MxOrder::Hosts(vec![
                MxHost {
                    name: "mx.example.com".into(),
                    preference: 5
                },
                MxHost {
                    name: "b.example.com".into(),
                    preference: 10
                },
            ])
        );
    }

    #[test]
    fn equal_preferences_shuffle_deterministically_per_seed() {
        let input = recs(&[
            (10, "a.x"),
            (10, "b.x"),
            (10, "c.x"),
            (10, "d.x"),
            (20, "z.x"),
            (5, "first.x"),
        ]);
        let mut reversed = input.clone();
        reversed.reverse();
        let mut seen = std::collections::HashSet::new();
        for seed in 0..32 {
            let a = names(&order_mx(&input, &mut StdRng::seed_from_u64(seed)));
            // Same seed, same records in another order: same result.
            let b = names(&order_mx(&reversed, &mut StdRng::seed_from_u64(seed)));
            assert_eq!(a, b);
            assert_eq!(a[0], "first.x");
            assert_eq!(a[5], "z.x");
            let mut middle = a[1..5].to_vec();
            middle.sort();
            assert_eq!(middle, ["a.x", "b.x", "c.x", "d.x"]);
            seen.insert(a);
        }
        assert!(seen.len() > 1, "the RNG never changed the order");
    }

    #[test]
    fn reshuffle_keeps_preference_groups() {
        let t = |n: &str, p| MxTarget {
            name: n.into(),
            preference: p,
            addrs: vec!["1.2.3.4".parse().unwrap()],
        };
        let mut seen = std::collections::HashSet::new();
        for seed in 0..16 {
            let mut hosts = vec![t("a", 1), t("b", 1), t("c", 1), t("d", 9)];
            shuffle_equal_preferences(&mut hosts, &mut StdRng::seed_from_u64(seed));
            assert_eq!(hosts[3].name, "d");
            seen.insert(hosts[0].name.clone());
        }
        assert!(seen.len() > 1);
    }
}
