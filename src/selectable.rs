//! The one thing [`Select`](crate::Select) asks of a receiver, in a file of its own so that
//! the receiver (which implements it) and the selector (which uses it) do not import each
//! other.

/// What a receiver has to return now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Readiness {
    /// Nothing: a read would wait.
    NotReady,
    /// A data message.
    Data,
    /// A watermark, a spill fault report or disconnection.
    Other,
}

/// What [`Select`](crate::Select) needs of a receiver, whatever its payload type.
pub(crate) trait Selectable {
    /// Reads the receiver if something is ready, keeping the item for its next read; says
    /// what it has to return now.
    fn readiness(&self) -> Readiness;
    /// Registers `unparker` (under `key`, unique among live sleepers) to be unparked when the
    /// receiver may have become ready.
    fn watch(&self, key: usize, unparker: &crate::sync::Unparker);
    /// Removes what [`watch`](Selectable::watch) registered.
    fn unwatch(&self, key: usize);
}
