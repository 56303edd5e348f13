//! `WebhookState`: what the store keeps of a campaign's webhook, so that a restarted
//! coordinator goes on delivering where the last one stopped. Owns the settings (URL, secret,
//! the caller's `extra`), the rows delivered so far (`RowRanges`), the delivery begun and not
//! yet through (`PendingDelivery`, sent again with the same id), and whether the completion
//! event went out. It does no I/O and knows nothing of HTTP.

use serde::{Deserialize, Serialize};

/// A set of 0-based input rows, kept as sorted, disjoint, non-adjacent half-open ranges
/// (compact for the mostly contiguous runs that results come out in).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct RowRanges(Vec<(u64, u64)>);

impl RowRanges {
    /// Whether `row` is in the set.
    pub fn contains(&self, row: u64) -> bool {
        let i = self.0.partition_point(|&(_, end)| end <= row);
        self.0.get(i).is_some_and(|&(start, _)| start <= row)
    }

    /// Adds `row`.
    pub fn insert(&mut self, row: u64) {
        if self.contains(row) {
            return;
        }
        let i = self.0.partition_point(|&(_, end)| end < row);
        // Ranges before `i` end before `row`; the one at `i` (if any) starts after it or
        // ends exactly at it.
        match self.0.get_mut(i) {
            Some(range) if range.1 == row => {
                range.1 = row + 1;
                if let Some(&(next_start, next_end)) = self.0.get(i + 1)
                    && next_start == row + 1
                {
                    self.0[i].1 = next_end;
                    self.0.remove(i + 1);
                }
            }
            Some(range) if range.0 == row + 1 => range.0 = row,
            _ => self.0.insert(i, (row, row + 1)),
        }
    }

    /// How many rows are in the set.
    pub fn len(&self) -> u64 {
        self.0.iter().map(|(start, end)| end - start).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The rows, in order.
    pub fn rows(&self) -> impl Iterator<Item = u64> + '_ {
        self.0.iter().flat_map(|&(start, end)| start..end)
    }
}

impl FromIterator<u64> for RowRanges {
    fn from_iter<I: IntoIterator<Item = u64>>(rows: I) -> RowRanges {
        let mut set = RowRanges::default();
        for row in rows {
            set.insert(row);
        }
        set
    }
}

/// A delivery of results begun (its id and rows fixed before the first attempt) and not yet
/// through: after a restart it is sent again, the same rows under the same id.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PendingDelivery {
    pub id: String,
    pub rows: RowRanges,
}

/// A campaign's webhook as the store keeps it (one record per campaign, replaced whole by the
/// one task delivering it; deleted with the campaign).
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WebhookState {
    pub url: String,
    /// The signing secret (never printed by `Debug`).
    pub secret: String,
    /// The caller's `extra` value, as JSON text, echoed in every delivery.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub extra: Option<String>,
    /// Results deliveries begun so far (numbers the next one's id).
    #[serde(default)]
    pub batches: u64,
    /// Rows whose results were delivered (or given up after every attempt).
    #[serde(default)]
    pub delivered: RowRanges,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pending: Option<PendingDelivery>,
    /// The completion event's id, once its delivery began (the same on every attempt).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completion_id: Option<String>,
    /// The completion event was delivered (or given up): nothing is left to send.
    #[serde(default)]
    pub completed: bool,
}

impl WebhookState {
    /// A webhook that has delivered nothing yet.
    pub fn new(url: String, secret: String, extra: Option<String>) -> WebhookState {
        WebhookState {
            url,
            secret,
            extra,
            batches: 0,
            delivered: RowRanges::default(),
            pending: None,
            completion_id: None,
            completed: false,
        }
    }
}

impl std::fmt::Debug for WebhookState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebhookState")
            .field("url", &self.url)
            .field("batches", &self.batches)
            .field("delivered", &self.delivered.len())
            .field("pending", &self.pending.as_ref().map(|p| &p.id))
            .field("completion_id", &self.completion_id)
            .field("completed", &self.completed)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn row_ranges_merge_and_answer_membership() {
        let mut set = RowRanges::default();
        for row in [5, 3, 4, 9, 0, 1, 7, 8, 4] {
            set.insert(row);
        }
        assert_eq!(set.0, vec![(0, 2), (3, 6), (7, 10)]);
        assert_eq!(set.len(), 8);
        for row in 0..12 {
            assert_eq!(
                set.contains(row),
                [0, 1, 3, 4, 5, 7, 8, 9].contains(&row),
                "{row}"
            );
        }
        set.insert(6);
        set.insert(2);
        assert_eq!(set.0, vec![(0, 10)]);
        assert_eq!(set.rows().collect::<Vec<_>>(), (0..10).collect::<Vec<_>>());
        let json = serde_json::to_string(&set).unwrap();
        assert_eq!(json, "[[0,10]]");
        assert_eq!(serde_json::from_str::<RowRanges>(&json).unwrap(), set);
    }

    #[test]
    fn row_ranges_match_a_plain_set_in_any_order() {
        let mut seed = 0x9e37_79b9_u64;
        for _ in 0..50 {
            let mut set = RowRanges::default();
            let mut plain = std::collections::BTreeSet::new();
            for _ in 0..40 {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                let row = seed % 30;
                set.insert(row);
                plain.insert(row);
            }
            assert_eq!(
                set.rows().collect::<Vec<_>>(),
                plain.iter().copied().collect::<Vec<_>>()
            );
            assert!(set.0.windows(2).all(|w| w[0].1 < w[1].0), "{:?}", set.0);
        }
    }

    #[test]
    fn the_secret_is_not_printed() {
        let state = WebhookState::new("http://h/".into(), "s3cr3t".into(), None);
        assert!(!format!("{state:?}").contains("s3cr3t"));
    }
}
