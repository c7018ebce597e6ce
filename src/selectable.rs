//! The one thing [`Select`](crate::Select) asks of a receiver, in a file of its own so that
//! the receiver (which implements it) and the selector (which uses it) do not import each
//! other.

/// What [`Select`](crate::Select) needs of a receiver, whatever its payload type.
pub(crate) trait Selectable {
    /// Reads the receiver if something is ready, keeping the item for its next read; true if
    /// it has something to return now.
    fn is_ready(&self) -> bool;
    /// Registers `unparker` (under `key`, unique among live sleepers) to be unparked when the
    /// receiver may have become ready.
    fn watch(&self, key: usize, unparker: &crate::sync::Unparker);
    /// Removes what [`watch`](Selectable::watch) registered.
    fn unwatch(&self, key: usize);
}
