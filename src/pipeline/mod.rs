//! Multi-stage pipelines built on `forward`: stage workers ([`spawn_stage`]), the ordered
//! parallel map ([`ordered_map`]), and a watermark-driven windowed sink ([`windows`]).
//! Everything here uses the crate's public API only.
//!
//! # The shape
//!
//! ```text
//!             serializing                 forwarding
//!  source ──► dispatcher ──► worker 0 ──┐ dispatcher
//!             stamps 1,2,3 ─► worker 1 ──┼──────────► sink  (stamp order again)
//!                         └─► worker 2 ──┘
//! ```
//!
//! The dispatcher on top stamps every input and sends each to one worker; the others see the
//! stamp as a watermark. Each worker forwards its results *under the input's stamp* into a
//! forwarding dispatcher, which releases them in stamp order.
//!
//! # The one rule: every stamp is accounted for exactly once, at every stage
//!
//! A forwarding dispatcher releases stamp `s` only after every stamp below it has been
//! forwarded, with data or without. Filtering must therefore not make a stamp disappear, or
//! everything after it waits forever. Forwarding `(None, s)` would account for `s` at the next
//! dispatcher, but that dispatcher delivers a stamp without data to nobody, so no worker of the
//! stage after it would ever account for `s` at the dispatcher after that.
//!
//! So pipeline dispatchers carry `Option<T>`: `Some(x)` is a value, and `None` is a stamp
//! filtered out upstream, *delivered as data* to one worker of the next stage, which passes it
//! on. And only the worker that received stamp `s` accounts for it: a worker never forwards the
//! stamps it saw only as watermarks (a coalesced watermark `(None, c)` says "nothing below `c`
//! for *you*", not "every stamp below `c` has been forwarded by someone"). [`spawn_stage`]
//! follows both rules, so stages built with it never stall each other; the sink reads
//! `Option<T>` and skips the `None`s (`filter_map(|(v, _)| v.flatten())`).
//!
//! One input to many outputs is not offered: outputs share their input's stamp, and a
//! forwarding dispatcher takes each stamp once. A stage that must emit several results per
//! input emits them as one value (a `Vec<U>`), which keeps stamps dense and the order total.
//!
//! # Stopping
//!
//! A worker ends when its input closes (every upstream sender gone), dropping its output
//! senders, which closes the next stage in turn. If a downstream receiver is dropped, the
//! worker's next forward fails, and the worker ends with [`StageError::Downstream`], dropping
//! its input: upstream sends to it then fail with
//! [`ReceiverGone`](crate::SendErrorKind::ReceiverGone), so a source that stops on errors
//! shuts the whole pipeline down without a hang.

mod ordered;
mod stage;
mod window;

pub use ordered::{ordered_map, OrderedInput};
pub use stage::{spawn_stage, StageError, StageHandle, StageReport};
pub use window::{windows, Window, Windows};
