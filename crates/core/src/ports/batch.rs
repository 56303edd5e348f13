//! What travels on the queue: a `Batch` is up to ~100 addresses of ONE domain at ONE site, with
//! the MX hosts the coordinator resolved, so a worker needs no DNS. Results are `ItemResult`s.

use std::net::IpAddr;

use serde::{Deserialize, Serialize};

use crate::{CampaignId, ItemId, Verdict};

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
    /// The normalised address as it goes on the wire (domain in A-labels).
    pub address: String,
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
}

impl Batch {
    /// A batch with the same campaign, site, domain and MX hosts, holding `items`.
    pub fn with_items(&self, items: Vec<BatchItem>) -> Batch {
        Batch {
            campaign: self.campaign.clone(),
            site: self.site.clone(),
            domain: self.domain.clone(),
            mx: self.mx.clone(),
            items,
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
