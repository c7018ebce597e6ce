//! `UnsafeCell` with loom's closure API in both worlds.
//!
//! loom tracks every access to an `UnsafeCell` (and reports a data race when two are not
//! ordered by a happens-before edge), so its cell has no `get`: access goes through
//! [`with`](UnsafeCell::with) and [`with_mut`](UnsafeCell::with_mut). In a normal build this
//! wrapper offers the same two methods over `std::cell::UnsafeCell`, at no cost, so the code
//! that uses it is the same in both builds (tokio's `loom/std/unsafe_cell.rs` does the same).

#[cfg(not(loom))]
#[derive(Debug)]
pub(crate) struct UnsafeCell<T>(std::cell::UnsafeCell<T>);

#[cfg(not(loom))]
impl<T> UnsafeCell<T> {
    pub(crate) const fn new(value: T) -> Self {
        UnsafeCell(std::cell::UnsafeCell::new(value))
    }

    /// Runs `f` with a shared pointer to the contents.
    #[allow(dead_code)]
    #[inline(always)]
    pub(crate) fn with<R>(&self, f: impl FnOnce(*const T) -> R) -> R {
        f(self.0.get())
    }

    /// Runs `f` with a unique pointer to the contents.
    #[inline(always)]
    pub(crate) fn with_mut<R>(&self, f: impl FnOnce(*mut T) -> R) -> R {
        f(self.0.get())
    }
}

#[cfg(loom)]
pub(crate) use loom::cell::UnsafeCell;
