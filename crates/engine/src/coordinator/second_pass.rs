//! The second pass: an address that ended `unknown` for a temporary reason (a deferral such as
//! a throttle or a 4xx, a timeout, greylisting not through in time) is verified once more later
//! in the same run instead of being written out. The server that throttled has had time to
//! forget, a deferral may be over, and the retry may go out through another egress.
//!
//! Its verdict is not written; the row stays pending under its item, and the second try goes
//! out as a fresh item (the first one's result is recorded, and workers never probe a recorded
//! item twice), numbered once the whole input is read so a resumed run numbers its input rows
//! as the first run did. The second try's result is taken as the first item's. Whatever it
//! comes to is the row's verdict: there is no third.

use std::time::Instant;

use rollcall_core::ports::{BatchItem, ItemResult, StateStore, WorkQueue};
use rollcall_core::{EmailAddress, Reason};

use super::second_tries::SecondPass;
use super::{DomainState, Run};
use crate::Error;

impl<Q: WorkQueue, S: StateStore, P: Send> Run<'_, Q, S, P> {
    /// Puts `result`'s row off for a second try, when the run does second passes and the
    /// result is worth one: `None`, and the row waits for its second try. Gives the result
    /// back when it is to be written out now.
    pub(super) fn put_off(&mut self, mut result: ItemResult) -> Option<ItemResult> {
        if let Some(first) = self.second_pass.second.remove(&result.item) {
            // A second try's result answers its first item's row.
            self.second_pass.waiting.remove(&first);
            result.item = first;
            return Some(result);
        }
        if self.second_pass.waiting.contains(&result.item) {
            // Another copy of a result already put off (a redelivery): its row waits.
            return None;
        }
        let Some(delay) = self.co.config.second_pass else {
            return Some(result);
        };
        if !SecondPass::worth_another_try(&result) || !self.pending.contains_key(&result.item) {
            return Some(result);
        }
        let Ok(address) = EmailAddress::parse(&result.address) else {
            return Some(result);
        };
        self.second_pass.waiting.insert(result.item);
        metrics::counter!(
            "rollcall_second_pass_total",
            "reason" => result.verdict.reason().as_str(),
        )
        .increment(1);
        self.summary.second_pass += 1;
        self.second_pass
            .due
            .push_back((Instant::now() + delay, address, result.item));
        None
    }

    /// Routes the second tries whose delay is over, once the whole input is read (their item
    /// numbers come after every input row's).
    pub(super) async fn second_pass_due(&mut self, input_done: bool) -> Result<(), Error> {
        let now = Instant::now();
        while input_done
            && self
                .second_pass
                .due
                .front()
                .is_some_and(|(due, _, _)| *due <= now)
        {
            let Some((_, address, first)) = self.second_pass.due.pop_front() else {
                break;
            };
            let item = self.new_item();
            self.second_pass.second.insert(item, first);
            let domain = address.domain().as_str().to_string();
            // A domain whose lookup failed for the moment is looked up again, not answered
            // from what the first lookup came to.
            if matches!(
                self.domains.get(&domain),
                Some(DomainState::Final(Reason::Deferred, _))
            ) {
                self.domains.remove(&domain);
            }
            let batch_item = BatchItem {
                item,
                address,
                attempts: 0,
                greylist_round: 0,
                waiting_since_ms: None,
                note: None,
                blocked_via: Vec::new(),
            };
            self.route(domain, batch_item).await?;
        }
        Ok(())
    }
}
