//! What the second pass keeps: the rows put off for a second try and which items are second
//! tries (`second_pass` decides and routes them).

use std::collections::{HashMap, HashSet, VecDeque};
use std::time::Instant;

use rollcall_core::ports::ItemResult;
use rollcall_core::{EmailAddress, ItemId, Reason, Status};

/// Rows waiting for their second pass, and which items are second tries.
#[derive(Default)]
pub(crate) struct SecondPass {
    /// When each waiting row is due, with its address and item, in the order they were put
    /// off (the delay is one for the run, so that is due order).
    pub(super) due: VecDeque<(Instant, EmailAddress, ItemId)>,
    /// Second tries -> the item whose row they answer.
    pub(super) second: HashMap<ItemId, ItemId>,
    /// Items whose row waits for its second try.
    pub(super) waiting: HashSet<ItemId>,
}

impl SecondPass {
    /// Whether a second try could change `result`'s verdict: unknown for a temporary reason.
    pub(super) fn worth_another_try(result: &ItemResult) -> bool {
        result.verdict.status() == Status::Unknown
            && matches!(
                result.verdict.reason(),
                Reason::Deferred | Reason::Timeout | Reason::Greylisted
            )
    }
}
