//! Hooks a unit test sets to run its own code at a chosen point of the writer or the reader,
//! on the same thread, to force one interleaving deterministically (test builds only).

use std::cell::RefCell;

/// Where a hook runs.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(super) enum Point {
    /// In attrition, after the dropped span is claimed, before its files are deleted.
    AfterClaim,
    /// In the reader, after it has found the segment of its next record in the list, before
    /// it opens the file.
    BeforeOpen,
}

type Hook = Box<dyn FnMut()>;

thread_local! {
    static HOOKS: RefCell<Vec<(Point, Hook)>> = const { RefCell::new(Vec::new()) };
}

/// Runs `hook` the next time this thread reaches `point` (once).
pub(super) fn once(point: Point, hook: impl FnMut() + 'static) {
    HOOKS.with(|hooks| hooks.borrow_mut().push((point, Box::new(hook))));
}

/// Called at `point`: runs (and forgets) the hook set for it, if any.
pub(super) fn run(point: Point) {
    let hook = HOOKS.with(|hooks| {
        let mut hooks = hooks.borrow_mut();
        let at = hooks.iter().position(|(p, _)| *p == point)?;
        Some(hooks.remove(at).1)
    });
    if let Some(mut hook) = hook {
        hook();
    }
}
