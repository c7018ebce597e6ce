//! The dense reorder window used in forwarding mode.
//!
//! Forwarded stamps are dense: every stamp after the seed is used by exactly one message (with
//! or without data). So an early message does not need a heap: it sits at index
//! `stamp - released - 1` of a ring, and release is "pop the front while it is filled". Insert
//! and release are O(1); nothing scans other receivers (4.0.2 kept a `BinaryHeap` per receiver
//! and scanned all of them for the minimum on every message).
//!
//! Invariants:
//! * `slots[i]` holds the message stamped `released + 1 + i`, or `None` if it has not arrived.
//! * `slots.front()` is `None` whenever the window is non-empty (a filled front is released at
//!   once by the caller, through [`ReorderWindow::pop_ready`]).
//! * `slots.len() <= limit`.

use std::collections::VecDeque;

/// Why a stamp was not taken into the window.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Rejected {
    /// At or below the released stamp.
    Stale,
    /// Already in the window.
    Duplicate,
    /// Beyond `released + limit`.
    TooFarAhead,
}

/// Messages waiting for every smaller stamp to be accounted for.
pub(crate) struct ReorderWindow<E> {
    slots: VecDeque<Option<E>>,
    released: usize,
    limit: usize,
}

impl<E> ReorderWindow<E> {
    /// An empty window whose next expected stamp is `released + 1`, holding at most `limit`
    /// stamps ahead.
    pub(crate) fn new(released: usize, limit: usize) -> Self {
        ReorderWindow {
            slots: VecDeque::new(),
            released,
            limit,
        }
    }

    /// The highest stamp released so far (every stamp up to it has been popped).
    pub(crate) fn released(&self) -> usize {
        self.released
    }

    #[cfg(test)]
    /// Number of stamps the window spans (held messages plus the gaps before them).
    pub(crate) fn span(&self) -> usize {
        self.slots.len()
    }

    /// Puts `entry` at `stamp`. On rejection the entry is handed back.
    pub(crate) fn insert(&mut self, stamp: usize, entry: E) -> Result<(), (Rejected, E)> {
        if stamp <= self.released {
            return Err((Rejected::Stale, entry));
        }
        let index = stamp - self.released - 1;
        if index >= self.limit {
            return Err((Rejected::TooFarAhead, entry));
        }
        if index >= self.slots.len() {
            self.slots.resize_with(index + 1, || None);
        }
        let slot = &mut self.slots[index];
        if slot.is_some() {
            return Err((Rejected::Duplicate, entry));
        }
        *slot = Some(entry);
        Ok(())
    }

    /// Releases the next message if it has arrived: returns it with its stamp.
    pub(crate) fn pop_ready(&mut self) -> Option<(usize, E)> {
        if !matches!(self.slots.front(), Some(Some(_))) {
            return None;
        }
        let entry = self.slots.pop_front().flatten()?;
        self.released += 1;
        Some((self.released, entry))
    }

    /// Releases what is held at or below `through`, in stamp order, skipping the gaps, and
    /// moves the released stamp to `through` (if it is ahead): every stamp up to it is
    /// accounted for. O(span of the window below `through`), whatever the distance skipped.
    pub(crate) fn skip_through(&mut self, through: usize, mut release: impl FnMut(usize, E)) {
        while self.released < through {
            let Some(slot) = self.slots.pop_front() else {
                self.released = through;
                return;
            };
            self.released += 1;
            if let Some(entry) = slot {
                release(self.released, entry);
            }
        }
    }

    /// Releases everything held, in stamp order, skipping the gaps; for when no sender is left
    /// that could fill them. Returns the number of stamps skipped.
    pub(crate) fn drain_skipping_gaps(&mut self, mut release: impl FnMut(usize, E)) -> usize {
        let mut skipped = 0;
        while let Some(slot) = self.slots.pop_front() {
            self.released += 1;
            match slot {
                Some(entry) => release(self.released, entry),
                None => skipped += 1,
            }
        }
        skipped
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn drain<E>(w: &mut ReorderWindow<E>) -> Vec<(usize, E)> {
        std::iter::from_fn(|| w.pop_ready()).collect()
    }

    #[test]
    fn releases_in_order_whatever_the_arrival_order() {
        let mut w = ReorderWindow::new(10, 100);
        w.insert(13, 'c').unwrap();
        w.insert(12, 'b').unwrap();
        assert!(drain(&mut w).is_empty(), "11 is missing: nothing may leave");
        w.insert(11, 'a').unwrap();
        assert_eq!(drain(&mut w), vec![(11, 'a'), (12, 'b'), (13, 'c')]);
        assert_eq!(w.released(), 13);
        assert_eq!(w.span(), 0);
    }

    #[test]
    fn a_partial_release_leaves_the_rest_held() {
        let mut w = ReorderWindow::new(0, 100);
        w.insert(3, 'c').unwrap();
        w.insert(1, 'a').unwrap();
        assert_eq!(drain(&mut w), vec![(1, 'a')], "3 waits behind the gap at 2");
        assert_eq!((w.released(), w.span()), (1, 2));
        w.insert(2, 'b').unwrap();
        assert_eq!(drain(&mut w), vec![(2, 'b'), (3, 'c')]);
        assert_eq!((w.released(), w.span()), (3, 0));
    }

    #[test]
    fn rejects_stale_duplicate_and_far_stamps_handing_them_back() {
        let mut w = ReorderWindow::new(5, 4);
        assert_eq!(w.insert(5, 'x'), Err((Rejected::Stale, 'x')));
        w.insert(7, 'y').unwrap();
        assert_eq!(w.insert(7, 'z'), Err((Rejected::Duplicate, 'z')));
        assert_eq!(w.insert(10, 'f'), Err((Rejected::TooFarAhead, 'f')));
        w.insert(9, 'e').unwrap();
        assert_eq!(w.span(), 4);
    }

    #[test]
    fn skip_through_releases_what_is_below_and_jumps_the_rest() {
        let mut w = ReorderWindow::new(0, 100);
        w.insert(3, 'c').unwrap();
        w.insert(8, 'h').unwrap();
        let mut out = Vec::new();
        w.skip_through(5, |ts, e| out.push((ts, e)));
        assert_eq!(out, vec![(3, 'c')]);
        assert_eq!(
            (w.released(), w.span()),
            (5, 3),
            "8 still held, two gaps before it"
        );
        w.skip_through(1_000_000, |ts, e| out.push((ts, e)));
        assert_eq!(out, vec![(3, 'c'), (8, 'h')]);
        assert_eq!((w.released(), w.span()), (1_000_000, 0));
        w.skip_through(10, |_, _| unreachable!("nothing to release"));
        assert_eq!(w.released(), 1_000_000, "never backwards");
        assert_eq!(w.insert(1_000_000, 'x'), Err((Rejected::Stale, 'x')));
        w.insert(1_000_001, 'y').unwrap();
        assert_eq!(w.pop_ready(), Some((1_000_001, 'y')));
    }

    #[test]
    fn drain_skipping_gaps_counts_the_gaps() {
        let mut w = ReorderWindow::new(0, 100);
        w.insert(2, 'b').unwrap();
        w.insert(5, 'e').unwrap();
        let mut out = Vec::new();
        let skipped = w.drain_skipping_gaps(|ts, e| out.push((ts, e)));
        assert_eq!(out, vec![(2, 'b'), (5, 'e')]);
        assert_eq!(skipped, 3);
        assert_eq!(w.released(), 5);
    }
}
