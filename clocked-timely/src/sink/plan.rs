//! The sink's stamp accounting: which stamps to forward, with what, and when.
//!
//! A forwarding dispatcher releases stamp `s` only once every stamp below it has been
//! forwarded exactly once, with data or without. The sink therefore turns timely's input
//! frontier into a dense sequence of forwards:
//!
//! * records arriving at time `t` wait in `pending[t]`, gathered into one message per time
//!   (a forwarding dispatcher takes one message per stamp);
//! * when the input frontier's least time is `f`, every time below `f` is complete (no record
//!   can arrive there any more): each stamp `s` in `next .. f` becomes one item, `Data(s, the
//!   records of s)` if any arrived, else part of a `Gap` (`forward(None, s)` for each), and
//!   `next` moves to `f`;
//! * when the frontier is empty (the input is finished) the remaining records go out in
//!   stamp order, with the gaps between them; nothing is forwarded past the last record (the
//!   dispatcher skips the unaccounted tail once the sink's sender is gone).
//!
//! Invariants: `next` only grows; every stamp below `next` has been handed out exactly once,
//! as data or in a gap; `pending` holds only stamps `>= next`. A record at a time below
//! `next` cannot be forwarded (its stamp is accounted for, or below the dispatcher's first
//! stamp): it is counted, never forwarded twice.

use std::collections::{BTreeMap, VecDeque};

/// One step of the forwarding sequence.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Item<D> {
    /// `forward(Some(records), stamp)`.
    Data(usize, Vec<D>),
    /// `forward(None, s)` for each `s` in `from .. to`.
    Gap { from: usize, to: usize },
}

/// How far the input is complete.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Complete {
    /// Every time below this stamp.
    Below(usize),
    /// Every time that has a stamp; the input may still send at times beyond `usize::MAX`,
    /// which have none.
    AllStamps,
    /// The input is finished.
    Finished,
}

/// Records waiting for their stamps to be complete, and the next stamp to account for.
#[derive(Debug)]
pub(crate) struct Plan<D> {
    next: usize,
    pending: BTreeMap<usize, Vec<D>>,
}

impl<D> Plan<D> {
    /// A plan whose first stamp to account for is `first` (the downstream dispatcher's seed
    /// plus one).
    pub(crate) fn new(first: usize) -> Self {
        Plan {
            next: first,
            pending: BTreeMap::new(),
        }
    }

    /// The lowest stamp not yet handed out.
    #[cfg(test)]
    fn next(&self) -> usize {
        self.next
    }

    /// Takes `records` at `stamp`. Returns how many were refused because `stamp` is already
    /// accounted for (0 or `records.len()`); refused records are dropped. `usize::MAX` is
    /// refused too: it is the one stamp after which `next` could not move on.
    pub(crate) fn accept(&mut self, stamp: usize, records: &mut Vec<D>) -> usize {
        if records.is_empty() {
            return 0;
        }
        if stamp < self.next || stamp == usize::MAX {
            let refused = records.len();
            records.clear();
            return refused;
        }
        self.pending.entry(stamp).or_default().append(records);
        0
    }

    /// Hands out, in stamp order, every stamp that `complete` says is done.
    pub(crate) fn release(&mut self, complete: Complete, out: &mut VecDeque<Item<D>>) {
        let below = match complete {
            Complete::Below(stamp) => Some(stamp),
            Complete::AllStamps | Complete::Finished => None,
        };
        while let Some(entry) = self.pending.first_entry() {
            let stamp = *entry.key();
            if below.is_some_and(|below| stamp >= below) {
                break;
            }
            let records = entry.remove();
            self.gap_to(stamp, out);
            out.push_back(Item::Data(stamp, records));
            // `accept` takes no record at `usize::MAX`.
            self.next = stamp + 1;
        }
        if let Some(below) = below {
            self.gap_to(below, out);
        }
    }

    /// Records still waiting.
    #[cfg(test)]
    fn waiting(&self) -> usize {
        self.pending.values().map(Vec::len).sum()
    }

    /// Drops every waiting record (the forwarding has stopped); returns how many.
    pub(crate) fn discard(&mut self) -> usize {
        std::mem::take(&mut self.pending)
            .into_values()
            .map(|r| r.len())
            .sum()
    }

    fn gap_to(&mut self, to: usize, out: &mut VecDeque<Item<D>>) {
        if self.next >= to {
            return;
        }
        match out.back_mut() {
            // Extend a gap that ends where this one begins: one item however many activations.
            Some(Item::Gap { to: end, .. }) if *end == self.next => *end = to,
            _ => out.push_back(Item::Gap {
                from: self.next,
                to,
            }),
        }
        self.next = to;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn released(plan: &mut Plan<char>, complete: Complete) -> Vec<Item<char>> {
        let mut out = VecDeque::new();
        plan.release(complete, &mut out);
        out.into()
    }

    #[test]
    fn data_waits_for_the_frontier_and_gaps_fill_the_rest() {
        let mut plan = Plan::new(1);
        assert_eq!(plan.accept(3, &mut vec!['a']), 0);
        assert_eq!(plan.accept(3, &mut vec!['b']), 0);
        assert_eq!(plan.accept(5, &mut vec!['c']), 0);
        // the frontier at 3: stamps 1 and 2 are done, 3 may still get records
        assert_eq!(
            released(&mut plan, Complete::Below(3)),
            vec![Item::Gap { from: 1, to: 3 }]
        );
        assert_eq!(
            released(&mut plan, Complete::Below(7)),
            vec![
                Item::Data(3, vec!['a', 'b']),
                Item::Gap { from: 4, to: 5 },
                Item::Data(5, vec!['c']),
                Item::Gap { from: 6, to: 7 },
            ]
        );
        assert_eq!(plan.next(), 7);
        assert_eq!(plan.waiting(), 0);
    }

    #[test]
    fn records_below_next_are_refused_not_forwarded_twice() {
        let mut plan = Plan::new(5);
        let mut records = vec!['x', 'y'];
        assert_eq!(plan.accept(4, &mut records), 2);
        assert!(records.is_empty());
        assert!(released(&mut plan, Complete::Below(6)) == vec![Item::Gap { from: 5, to: 6 }]);
        assert_eq!(plan.accept(5, &mut vec!['z']), 1);
    }

    #[test]
    fn a_finished_input_flushes_without_a_trailing_gap() {
        let mut plan = Plan::new(1);
        plan.accept(2, &mut vec!['a']);
        plan.accept(9, &mut vec!['b']);
        assert_eq!(
            released(&mut plan, Complete::Finished),
            vec![
                Item::Gap { from: 1, to: 2 },
                Item::Data(2, vec!['a']),
                Item::Gap { from: 3, to: 9 },
                Item::Data(9, vec!['b']),
            ]
        );
        assert_eq!(plan.next(), 10);
    }

    #[test]
    fn consecutive_gaps_merge_and_a_lower_frontier_is_a_no_op() {
        let mut plan = Plan::<char>::new(1);
        let mut out = VecDeque::new();
        plan.release(Complete::Below(4), &mut out);
        plan.release(Complete::Below(2), &mut out);
        plan.release(Complete::Below(10), &mut out);
        assert_eq!(Vec::from(out), vec![Item::Gap { from: 1, to: 10 }]);
    }

    #[test]
    fn the_largest_stamps_do_not_overflow() {
        let mut plan = Plan::new(usize::MAX - 1);
        assert_eq!(plan.accept(usize::MAX, &mut vec!['m']), 1);
        assert_eq!(plan.accept(usize::MAX - 1, &mut vec!['l']), 0);
        assert_eq!(
            released(&mut plan, Complete::AllStamps),
            vec![Item::Data(usize::MAX - 1, vec!['l'])]
        );
        assert_eq!(plan.next(), usize::MAX);
        assert_eq!(plan.accept(usize::MAX - 1, &mut vec!['l']), 1);
    }
}
