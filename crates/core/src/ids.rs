//! Identifiers of campaigns and of the items inside them.
//!
//! Owns `CampaignId` and `ItemId`. It does not allocate storage for them or know where they are
//! kept (the ports do).

use std::fmt;
use std::str::FromStr;

use rand::Rng;
use serde::{Deserialize, Serialize};

use crate::error::Error;

/// A campaign: one submitted list. 1 to 64 characters of `[A-Za-z0-9_-]`, so that it can sit
/// inside a Redis hash tag (`rc:{c:ID}:...`) and a queue name without escaping.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct CampaignId(String);

impl CampaignId {
    /// Longest accepted id.
    pub const MAX_LEN: usize = 64;

    /// Validates an id.
    pub fn new(id: impl Into<String>) -> Result<CampaignId, Error> {
        let id = id.into();
        let why = if id.is_empty() {
            Some("it is empty")
        } else if id.len() > Self::MAX_LEN {
            Some("it is longer than 64 characters")
        } else if !id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            Some("only letters, digits, '-' and '_' are allowed")
        } else {
            None
        };
        match why {
            Some(why) => Err(Error::InvalidId {
                kind: "campaign id",
                value: id.chars().filter(|c| !c.is_control()).take(80).collect(),
                why,
            }),
            None => Ok(CampaignId(id)),
        }
    }

    /// A fresh random id: `c` and 26 lowercase base-32 characters (130 bits), so an id seen by
    /// one client cannot be guessed from another (the HTTP API needs no listing of ids).
    pub fn random() -> CampaignId {
        const ALPHABET: &[u8; 32] = b"abcdefghijklmnopqrstuvwxyz234567";
        let mut rng = rand::rng();
        let mut id = String::with_capacity(27);
        id.push('c');
        for _ in 0..26 {
            id.push(char::from(ALPHABET[rng.random_range(0..32)]));
        }
        CampaignId(id)
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for CampaignId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for CampaignId {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        CampaignId::new(s)
    }
}

impl TryFrom<String> for CampaignId {
    type Error = Error;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        CampaignId::new(s)
    }
}

impl From<CampaignId> for String {
    fn from(id: CampaignId) -> String {
        id.0
    }
}

/// One address inside a campaign: its 0-based position in the submitted list, so results can
/// be put back in input order and a redelivered item is recognised.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, Default,
)]
#[serde(transparent)]
pub struct ItemId(pub u64);

impl ItemId {
    /// The position as a number.
    pub fn get(self) -> u64 {
        self.0
    }
}

impl fmt::Display for ItemId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl From<u64> for ItemId {
    fn from(n: u64) -> ItemId {
        ItemId(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn campaign_ids_are_validated() {
        assert!(CampaignId::new("night-2024_01").is_ok());
        assert!(CampaignId::new("").is_err());
        assert!(CampaignId::new("a}b").is_err());
        assert!(CampaignId::new("a b").is_err());
        assert!(CampaignId::new("x".repeat(65)).is_err());
        let e = CampaignId::new("bad\r\nid").unwrap_err();
        assert_eq!(e.as_metric_label(), "invalid_id");
        assert!(!e.to_string().contains('\r'));
    }

    #[test]
    fn random_ids_are_valid_and_differ() {
        let a = CampaignId::random();
        let b = CampaignId::random();
        assert_ne!(a, b);
        assert_eq!(CampaignId::new(a.as_str()).unwrap(), a);
        assert_eq!(a.as_str().len(), 27);
    }

    #[test]
    fn serde_shapes() {
        let c = CampaignId::new("abc").unwrap();
        assert_eq!(serde_json::to_string(&c).unwrap(), "\"abc\"");
        assert!(serde_json::from_str::<CampaignId>("\"a{b\"").is_err());
        assert_eq!(serde_json::to_string(&ItemId(7)).unwrap(), "7");
        assert_eq!(serde_json::from_str::<ItemId>("7").unwrap(), ItemId(7));
    }
}
