//! How long a blocking call may still park, given its deadline.

use std::time::{Duration, Instant};

/// The deadline has passed.
pub(crate) struct Expired;

/// `Ok(None)`: park without a timeout (no deadline); `Ok(Some(left))`: park at most `left`;
/// `Err(Expired)`: the deadline has passed, do not park.
pub(crate) fn park_time(deadline: Option<Instant>) -> Result<Option<Duration>, Expired> {
    match deadline {
        None => Ok(None),
        Some(deadline) => match deadline.checked_duration_since(Instant::now()) {
            Some(left) if !left.is_zero() => Ok(Some(left)),
            _ => Err(Expired),
        },
    }
}
