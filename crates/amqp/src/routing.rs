//! Routing: which shard a site's batches go to.
//!
//! Owns `shard_of`, a pure function of the site key and the shard count, and `shard_of_lane`
//! for the lanes of a site spread over several shards. It does not know about
//! queues or leases; the topology turns a shard number into a routing key.
//!
//! The hash is FNV-1a (64-bit) over the UTF-8 bytes of the site key. It is fixed on purpose: the
//! coordinator and every worker, across processes, hosts and releases, must agree on the shard of
//! a site, so std's `RandomState` (seeded per process) is never used here. Changing this function
//! moves every site to another shard; a fleet must then be drained first.

/// FNV-1a 64-bit offset basis and prime (draft-eastlake-fnv, section 2).
const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;

/// FNV-1a 64 of `bytes`.
fn fnv1a64(bytes: &[u8]) -> u64 {
    bytes.iter().fold(FNV_OFFSET, |hash, &b| {
        (hash ^ u64::from(b)).wrapping_mul(FNV_PRIME)
    })
}

/// The shard (`0..shards`) that carries every batch of `site`. Stable across processes and
/// releases. A shard count of 0 is treated as 1 (everything on shard 0) rather than a panic.
pub fn shard_of(site: &str, shards: u32) -> u32 {
    let shards = u64::from(shards.max(1));
    // The remainder is < shards <= u32::MAX, so the conversion cannot fail.
    u32::try_from(fnv1a64(site.as_bytes()) % shards).unwrap_or(0)
}

/// The shard of lane `lane` of `site`: the `lane`-th shard after the site's own, so a site's
/// lanes (up to the shard count) land on distinct shards, spread evenly over the workers that
/// hold them, and each lane always on the same one.
pub fn shard_of_lane(site: &str, lane: u32, shards: u32) -> u32 {
    let shards = shards.max(1);
    let offset = lane % shards;
    // Both terms are < shards, so the sum fits in u64 and the remainder in u32.
    u32::try_from((u64::from(shard_of(site, shards)) + u64::from(offset)) % u64::from(shards))
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fnv1a64_matches_reference_values() {
        // Reference values of FNV-1a 64 (the empty string is the offset basis).
        assert_eq!(fnv1a64(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a64(b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(fnv1a64(b"aspmx.l.google.com"), 0xc50e_acd9_425d_adae);
    }

    #[test]
    fn shards_are_fixed_across_releases() {
        // If one of these changes, sites move between shards: a breaking change for a fleet.
        assert_eq!(shard_of("aspmx.l.google.com", 16), 14);
        assert_eq!(shard_of("aspmx.l.google.com", 64), 46);
        assert_eq!(shard_of("mail.protection.outlook.com", 16), 1);
        assert_eq!(shard_of("mx1.example.test,mx2.example.test", 16), 8);
        assert_eq!(shard_of("mx1.example.test,mx2.example.test", 7), 6);
        assert_eq!(shard_of("", 64), 37);
    }

    #[test]
    fn a_sites_lanes_land_on_distinct_shards_from_its_own() {
        let own = shard_of("mx1.site1.test", 16);
        assert_eq!(shard_of_lane("mx1.site1.test", 0, 16), own);
        let lanes: std::collections::HashSet<u32> = (0..16)
            .map(|lane| shard_of_lane("mx1.site1.test", lane, 16))
            .collect();
        assert_eq!(lanes.len(), 16, "16 lanes, 16 distinct shards");
        assert_eq!(shard_of_lane("mx1.site1.test", 17, 16), (own + 1) % 16);
        assert_eq!(shard_of_lane("x", 3, 0), 0);
    }

    #[test]
    fn shard_is_in_range_and_zero_shards_do_not_panic() {
        for n in 1..40u32 {
            for site in ["a", "b.example", "mx.example.net", "x"] {
                assert!(shard_of(site, n) < n);
            }
        }
        assert_eq!(shard_of("anything", 0), 0);
        assert_eq!(shard_of("anything", 1), 0);
    }

    #[test]
    fn sites_spread_over_shards() {
        let mut seen = [0u32; 8];
        for i in 0..800 {
            seen[shard_of(&format!("mx{i}.example.test"), 8) as usize] += 1;
        }
        assert!(seen.iter().all(|&n| n > 50), "uneven spread: {seen:?}");
    }
}
