//! A site's lanes: the shards its batches go to in turn. A hot site (one holding more than a
//! shard's fair share of what was published) spreads over every shard.

/// A site's lanes: batches go to them in turn.
pub(super) struct Lanes {
    count: u32,
    next: u32,
    /// Rows of the site published so far in this run.
    rows: u64,
}

impl Lanes {
    /// `count` lanes (the site's rule), none used yet.
    pub(super) fn new(count: u32) -> Lanes {
        Lanes {
            count,
            next: 0,
            rows: 0,
        }
    }

    /// The lane of the next batch of `site` (`rows` rows; `routed_rows` published in all so
    /// far, this batch included), spreading the site over all `shards` once it is hot.
    pub(super) fn take(
        &mut self,
        site: &str,
        rows: u64,
        routed_rows: u64,
        shards: u32,
        batch_size: usize,
    ) -> u32 {
        self.rows += rows;
        if self.count < shards && spreads_wide(self.rows, routed_rows, shards, batch_size) {
            tracing::info!(
                site,
                rows = self.rows,
                of = routed_rows,
                shards,
                "a hot site: its batches now go to every shard"
            );
            self.count = shards;
        }
        let lane = self.next;
        self.next = (self.next + 1) % self.count.max(1);
        lane
    }
}

/// Whether a site holding `site_rows` of the `routed_rows` published so far is hot enough to
/// be spread over all `shards`, so every worker probes it from its own egresses. A shard is a queue
/// that drains in order, so a site holding more than one shard's fair share (1/`shards` of
/// the campaign) on one shard makes every other site of that shard wait behind it, and is
/// probed by one worker's egresses alone. Small sites stay on one shard, so their sessions
/// stay warm: a site needs at least one batch per shard before it spreads.
fn spreads_wide(site_rows: u64, routed_rows: u64, shards: u32, batch_size: usize) -> bool {
    let shards = u64::from(shards);
    shards > 1
        && site_rows.saturating_mul(shards) >= routed_rows
        && site_rows >= (batch_size.max(1) as u64).saturating_mul(shards)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_site_spreads_once_it_holds_a_shards_share_and_a_batch_per_shard() {
        // 8 shards, batches of 100: 800 rows at least, and 1/8 of what was published.
        assert!(spreads_wide(800, 6_400, 8, 100));
        assert!(
            !spreads_wide(799, 800, 8, 100),
            "too few rows for a batch per shard"
        );
        assert!(!spreads_wide(800, 6_401, 8, 100), "under a shard's share");
        assert!(
            !spreads_wide(50_000, 50_000, 1, 100),
            "one shard: nowhere to spread"
        );
        assert!(spreads_wide(2, 2, 2, 0), "a batch size of 0 counts as 1");
        assert!(!spreads_wide(1, 1, 2, 0), "a batch size of 0 counts as 1");
    }
}
