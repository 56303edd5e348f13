//! A campaign's rows on their way in and out: the stored input fed again (a resumed
//! campaign), submitted rows moved into the coordinator's bounded input, output rows recorded
//! on the campaign, and how a submitted entry counts in the submission's totals.

use std::collections::HashSet;

use rollcall_core::ports::{StateStore, StoreError};
use rollcall_core::{CampaignId, EmailAddress};
use rollcall_engine::coordinator::{InputRow, OutputRow};
use tokio::sync::{mpsc, watch};

use crate::campaign::Campaign;

/// Stored input rows are read back this many at a time.
const INPUT_PAGE: usize = 1000;

/// Feeds the stored input of `campaign` (rows numbered from 1, as when it was submitted)
/// until it runs out or the campaign is stopped.
pub(super) async fn feed_stored<S: StateStore + ?Sized>(
    state: &S,
    campaign: &CampaignId,
    input: mpsc::Sender<InputRow<()>>,
    mut stop: watch::Receiver<bool>,
) -> Result<(), StoreError> {
    let mut next = 0u64;
    loop {
        let page = state.campaign_input(campaign, next, INPUT_PAGE).await?;
        if page.is_empty() {
            return Ok(());
        }
        for text in page {
            next += 1;
            let row = InputRow {
                row: next,
                text,
                payload: (),
            };
            tokio::select! {
                sent = input.send(row) => if sent.is_err() { return Ok(()) },
                _ = stop.wait_for(|s| *s) => return Ok(()),
            }
        }
    }
}

/// Moves submitted rows into the coordinator's bounded input until they run out or the
/// campaign is stopped.
pub(super) async fn feed(
    mut rows: mpsc::Receiver<InputRow<()>>,
    input: mpsc::Sender<InputRow<()>>,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        let row = tokio::select! {
            row = rows.recv() => row,
            _ = stop.wait_for(|s| *s) => None,
        };
        let Some(row) = row else { return };
        tokio::select! {
            sent = input.send(row) => if sent.is_err() { return },
            _ = stop.wait_for(|s| *s) => return,
        }
    }
}

/// Records every output row of the run (rows are numbered from 1 on the way in).
pub(super) async fn collect(campaign: &Campaign, mut output: mpsc::Receiver<OutputRow<()>>) {
    while let Some(row) = output.recv().await {
        campaign.push(row.row.saturating_sub(1), row.duplicate, row.verdict);
    }
}

/// How one submitted entry counts in the submission's totals.
pub(super) enum Entry {
    Accepted,
    Duplicate,
    Invalid,
}

/// Counts one entry as the coordinator will treat it: unparsable, a repeat of an address seen
/// in this submission (by the coordinator's key, `EmailAddress::dedupe_key`), or new.
pub(super) fn count_entry(text: &str, seen: &mut HashSet<u64>) -> Entry {
    let Ok(address) = EmailAddress::parse(text) else {
        return Entry::Invalid;
    };
    if seen.insert(address.dedupe_key()) {
        Entry::Accepted
    } else {
        Entry::Duplicate
    }
}
