//! What travels on the queue: a `Batch` is up to ~100 addresses of ONE domain at ONE site, with
//! the MX hosts the coordinator resolved, so a worker needs no DNS. Results are `ItemResult`s.

use std::net::IpAddr;

use serde::{Deserialize, Serialize};

use crate::{CampaignId, EmailAddress, ItemId, Verdict};

/// Most MX hosts a worker takes from one batch. The coordinator sends at most the resolver's
/// 10, but a batch is read from a queue anyone with access can write to: it must not be able
/// to make a worker open thousands of connections.
pub const MAX_BATCH_MX_HOSTS: usize = 32;
/// Most addresses a worker tries for one MX host of a batch (the resolver keeps 16).
pub const MAX_BATCH_HOST_ADDRS: usize = 16;

/// One MX host of a site, in the order to try, with the addresses it resolved to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MxHost {
    pub name: String,
    pub addrs: Vec<IpAddr>,
}

/// One address to probe, with the attempts it has already used.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BatchItem {
    pub item: ItemId,
    /// The address, parsed once when its row came in; on the queue and in the store it is the
    /// normalised string that goes on the wire (domain in A-labels), read back with the same
    /// parser.
    pub address: EmailAddress,
    /// Deferrals (4xx other than greylisting, connection failures) so far.
    #[serde(default)]
    pub attempts: u32,
    /// Greylist retries so far.
    #[serde(default)]
    pub greylist_round: u32,
    /// When the item first had to wait for a retry (ms since the Unix epoch): retries end at
    /// this plus the run's `max_wait`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub waiting_since_ms: Option<u64>,
    /// Said in the detail of the item's verdict, whenever it comes (e.g. a greylist retry that
    /// could not go out through the egress that was greylisted).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    /// Egresses whose address a server blocked for this item (a policy block is about the
    /// prober's address, not the mailbox): the item is tried from another one.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub blocked_via: Vec<String>,
}

/// The unit of work: addresses of one domain, all served by one site.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Batch {
    pub campaign: CampaignId,
    /// The site key (normalised MX host set); politeness is per site.
    pub site: String,
    /// The ASCII domain every item belongs to (one domain per transaction).
    pub domain: String,
    pub mx: Vec<MxHost>,
    pub items: Vec<BatchItem>,
    /// The campaign's own bound on retry waits, in ms (0: none); `None`: the worker's setting.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_wait_ms: Option<u64>,
    /// The egress this batch must go out through (a greylist retry: RFC 6647 keys on the
    /// client address), by name; `None`: any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub egress: Option<String>,
    /// Which of its site's lanes the batch rides (0: the site's own). A hot site's batches are
    /// spread over several lanes, lane `k` routed to the shard `k` after the site's own
    /// (distributed wiring), so that several workers probe it, each from its own egresses.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub lane: u32,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

impl Batch {
    /// The MX hosts to try, in order, each with the addresses to try: at most
    /// [`MAX_BATCH_MX_HOSTS`] hosts and [`MAX_BATCH_HOST_ADDRS`] addresses each, whatever the
    /// message carried.
    pub fn targets(&self) -> impl Iterator<Item = (&str, &[IpAddr])> {
        self.mx.iter().take(MAX_BATCH_MX_HOSTS).map(|mx| {
            let addrs = &mx.addrs[..mx.addrs.len().min(MAX_BATCH_HOST_ADDRS)];
            (mx.name.as_str(), addrs)
        })
    }

    /// A batch with the same campaign, site, domain, MX hosts and egress pin, holding `items`.
    pub fn with_items(&self, items: Vec<BatchItem>) -> Batch {
        Batch {
            campaign: self.campaign.clone(),
            site: self.site.clone(),
            domain: self.domain.clone(),
            mx: self.mx.clone(),
            items,
            max_wait_ms: self.max_wait_ms,
            egress: self.egress.clone(),
            lane: self.lane,
        }
    }
}

/// The verdict for one item, as recorded.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ItemResult {
    pub item: ItemId,
    pub address: String,
    pub verdict: Verdict,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_item_travels_with_its_address_as_a_string() {
        // Batches queued or stored before the address was parsed at ingest read back the same.
        let stored = r#"{"item":7,"address":"Alice@Example.COM","attempts":1,"greylist_round":0}"#;
        let item: BatchItem = serde_json::from_str(stored).unwrap();
        assert_eq!(item.address.to_string(), "Alice@example.com");
        let json = serde_json::to_value(&item).unwrap();
        assert_eq!(json["address"], "Alice@example.com");
        let back: BatchItem = serde_json::from_value(json).unwrap();
        assert_eq!(back, item);
        let garbage = r#"{"item":7,"address":"no at sign"}"#;
        assert!(serde_json::from_str::<BatchItem>(garbage).is_err());
    }
}
