//! The reorder buffer of `RowOrder::Input`: output rows come out of the engine as they finish
//! and leave here in input order, and rows are let into the engine only while the buffer has
//! room, so it stays bounded. Owns the order only; the run loop (`embedded`) feeds and drains it.

use std::sync::Arc;

use rollcall_engine::coordinator::OutputRow;

/// The reorder buffer of `RowOrder::Input`: rows are let in (`admit`) in input order while
/// fewer than `window` are in the engine or waiting here; a finished row waits until every
/// row before it is out.
pub struct Reorder<P> {
    window: Arc<tokio::sync::Semaphore>,
    inner: std::sync::Mutex<ReorderInner<P>>,
}

struct ReorderInner<P> {
    /// Row numbers let in and not written yet, in input order.
    order: std::collections::VecDeque<u64>,
    /// Finished rows waiting for the rows before them.
    done: std::collections::BTreeMap<u64, OutputRow<P>>,
}

impl<P> Reorder<P> {
    pub fn new(window: usize) -> Self {
        Reorder {
            window: Arc::new(tokio::sync::Semaphore::new(window)),
            inner: std::sync::Mutex::new(ReorderInner {
                order: Default::default(),
                done: Default::default(),
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, ReorderInner<P>> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Waits for room, then notes `row` as the next in input order. False when closed.
    pub async fn admit(&self, row: u64) -> bool {
        match self.window.acquire().await {
            Ok(permit) => permit.forget(),
            Err(_) => return false,
        }
        self.lock().order.push_back(row);
        true
    }

    /// Takes a finished row; returns the rows that can be written now, in input order.
    pub fn ready(&self, row: OutputRow<P>) -> Vec<OutputRow<P>> {
        let mut inner = self.lock();
        inner.done.insert(row.row, row);
        let mut out = Vec::new();
        while let Some(next) = inner.order.front().copied() {
            let Some(row) = inner.done.remove(&next) else {
                break;
            };
            inner.order.pop_front();
            out.push(row);
        }
        drop(inner);
        self.window.add_permits(out.len());
        out
    }

    /// Whatever finished and still waits (a run stopped early), in input order; no more rows
    /// are let in.
    pub fn drain(&self) -> Vec<OutputRow<P>> {
        self.window.close();
        let mut inner = self.lock();
        inner.order.clear();
        std::mem::take(&mut inner.done).into_values().collect()
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn out_row(row: u64) -> OutputRow<()> {
        OutputRow {
            row,
            text: format!("a{row}@example.test"),
            payload: (),
            verdict: Arc::new(rollcall_core::Verdict::new(
                rollcall_core::Reason::Accepted,
                rollcall_core::Evidence::for_input("x"),
            )),
            duplicate: false,
            cache: Default::default(),
            score: 0,
        }
    }

    #[tokio::test]
    async fn the_reorder_buffer_writes_input_order_and_bounds_what_it_holds() {
        let reorder: Reorder<()> = Reorder::new(3);
        for row in [1, 2, 3] {
            assert!(reorder.admit(row).await);
        }
        // A fourth row waits for room: three are in the engine or the buffer.
        let blocked = tokio::time::timeout(Duration::from_millis(50), reorder.admit(4)).await;
        assert!(blocked.is_err(), "the window bounds the rows let in");
        let rows = |out: Vec<OutputRow<()>>| out.iter().map(|r| r.row).collect::<Vec<_>>();
        assert_eq!(rows(reorder.ready(out_row(3))), Vec::<u64>::new());
        assert_eq!(rows(reorder.ready(out_row(2))), Vec::<u64>::new());
        assert_eq!(rows(reorder.ready(out_row(1))), vec![1, 2, 3]);
        assert!(reorder.admit(4).await, "room again once rows are out");
        assert!(reorder.admit(5).await);
        assert_eq!(rows(reorder.ready(out_row(5))), Vec::<u64>::new());
        // Stopped early: what finished comes out, in order, and nothing more is let in.
        assert_eq!(rows(reorder.drain()), vec![5]);
        assert!(!reorder.admit(6).await);
    }
}
