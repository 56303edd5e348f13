//! The results side of a run: recorded results read back from the store (`collect`, and
//! `preload` for a resumed campaign), each turned into its output row and those of its
//! duplicates (`finish`, `emit`), and what is kept of a finished address for later ones.

use std::sync::Arc;

use rollcall_core::ItemId;
use rollcall_core::Verdict;
use rollcall_core::ports::{ItemResult, StateStore, WorkQueue};

use super::finished::Compact;
use super::{CacheNote, OutputRow, RESULTS_PAGE, Run};
use crate::Error;

impl<Q: WorkQueue, S: StateStore, P: Send> Run<'_, Q, S, P> {
    pub(super) async fn record(&mut self, results: Vec<ItemResult>) -> Result<(), Error> {
        self.co
            .state
            .campaign_add_total(&self.campaign, results.len() as u64)
            .await?;
        self.co
            .state
            .record_results(&self.campaign, results)
            .await?;
        Ok(())
    }

    /// Reads every result recorded so far (a resumed campaign's) before any row comes in.
    pub(super) async fn preload(&mut self) -> Result<(), Error> {
        loop {
            let results = self.next_page().await?;
            if results.is_empty() {
                return Ok(());
            }
            for result in results {
                self.early.insert(result.item, result);
            }
        }
    }

    /// The next page of recorded results after the cursor, which moves past them (empty:
    /// nothing more is recorded yet).
    async fn next_page(&mut self) -> Result<Vec<ItemResult>, Error> {
        let (results, next) = self
            .co
            .state
            .results_since(&self.campaign, self.cursor, RESULTS_PAGE)
            .await?;
        if !results.is_empty() {
            self.cursor = next;
        }
        Ok(results)
    }

    /// Reads what the workers recorded and writes the rows out.
    pub(super) async fn collect(&mut self) -> Result<(), Error> {
        loop {
            let results = self.next_page().await?;
            if results.is_empty() {
                return Ok(());
            }
            for result in results {
                if result.item.0 > self.next_item {
                    // Its row has not been read again yet (a resumed campaign).
                    self.early.insert(result.item, result);
                } else {
                    self.finish(result, false).await;
                }
            }
            if !self.co.keep_results {
                self.co
                    .state
                    .results_trim(&self.campaign, self.cursor)
                    .await?;
            }
        }
    }

    /// Writes out the rows of a finished item. `replayed`: the result was recorded before
    /// this run (a resumed campaign), so it is not counted as a new verification.
    pub(super) async fn finish(&mut self, result: ItemResult, replayed: bool) {
        // An address unknown for a temporary reason may get a second try later in the run.
        let result = match replayed {
            true => result,
            false => match self.put_off(result) {
                Some(result) => result,
                None => return,
            },
        };
        // A result for an item this run does not hold is a redelivery's second copy: skip it.
        let Some(pending) = self.pending.remove(&result.item) else {
            return;
        };
        let verdict = Arc::new(result.verdict);
        if pending.dedupable {
            self.remember_compact(result.item, &verdict);
        }
        if let Some(previous) = pending.previous
            && previous != verdict.status()
        {
            self.changed_from.insert(result.item, previous);
        }
        if !replayed && let Some(key) = pending.cache_key {
            self.cache.remember(key, &verdict).await;
        }
        let note = CacheNote {
            cached: false,
            verified_at: (!replayed).then(|| self.cache.now()),
            previous: pending.previous,
        };
        for (row, text, payload) in pending.duplicates {
            self.emit(row, text, payload, verdict.clone(), true, replayed, note)
                .await;
        }
        self.emit(
            pending.row,
            pending.text,
            pending.payload,
            verdict,
            false,
            replayed,
            note,
        )
        .await;
    }

    /// Keeps what `item` came to, small, for the duplicates that come later.
    pub(super) fn remember_compact(&mut self, item: ItemId, verdict: &Verdict) {
        let compact = Compact::of(verdict, &mut self.strings);
        if let Some(slot) = usize::try_from(item.0)
            .ok()
            .and_then(|n| n.checked_sub(1))
            .and_then(|i| self.done.get_mut(i))
        {
            *slot = Some(compact);
        }
    }

    #[allow(clippy::too_many_arguments)]
    pub(super) async fn emit(
        &mut self,
        row: u64,
        text: String,
        payload: P,
        verdict: Arc<Verdict>,
        duplicate: bool,
        replayed: bool,
        cache: CacheNote,
    ) {
        self.summary.count(&verdict, duplicate);
        if self.cache.is_on() && verdict.evidence.domain.is_some() {
            self.summary.count_cache(&cache, verdict.status());
        }
        if !replayed {
            metrics::counter!(
                "rollcall_verifications_total",
                "status" => verdict.status().as_str(),
                "reason" => verdict.reason().as_str(),
            )
            .increment(1);
            if verdict.status() == rollcall_core::Status::Unknown {
                // Where the unknowns are: a provider (a bounded set: the table's names) and a
                // reason.
                let provider = verdict.evidence.provider.clone().unwrap_or("none".into());
                metrics::counter!(
                    "rollcall_unknown_total",
                    "provider" => provider,
                    "reason" => verdict.reason().as_str(),
                )
                .increment(1);
            }
        }
        metrics::gauge!("rollcall_campaign_addresses", "state" => "done")
            .set(self.summary.out as f64);
        let score = rollcall_core::score(
            &verdict,
            verdict.evidence.provider.as_deref(),
            &self.co.config.score,
        );
        // A closed output means the caller stopped listening (e.g. Ctrl-C); keep counting.
        let _ = self
            .output
            .send(OutputRow {
                row,
                text,
                payload,
                verdict,
                duplicate,
                cache,
                score,
            })
            .await;
    }
}
