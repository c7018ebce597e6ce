//! When the dispatcher wakes the receivers that sleep.
//!
//! Publishing the clock is one store, and a receiver that *looks* sees it at once. Waking a
//! receiver that *sleeps* costs a futex call on the dispatcher thread and a context switch on
//! the receiver's, and a woken receiver that finds only a watermark goes back to sleep: with
//! 63 receivers blocked in `recv` on a busy dispatcher, waking them all at every batch spent
//! more than half of two cores on wake-ups (BENCHMARKS.md, "Where wall-clock time went").
//!
//! # Rules
//!
//! 1. **Data is never held back.** A receiver that got data in a batch is woken at the end of
//!    that batch, through its own inbox (`InboxFlags::wake_for_data`), whatever rule 2 says.
//! 2. **Clock-only wake-ups are paced.** Readers asleep in the clock's reader list are woken
//!    when the clock moved since they were last woken and the dispatcher is *due*: its intake
//!    is empty, or [`WAKE_EVERY`] batches went by; and the *spacing* has passed since it last
//!    woke them (the first wake-up after a quiet spacing is at once). The spacing is the
//!    `interval` (default [`DEFAULT_WAKE_INTERVAL`]), stretched to [`SPACING_PER_READER`] per
//!    reader woken last time (at most [`MAX_STRETCH`]) when many sleep: each woken reader
//!    costs a wake-up and two context switches (about 7 µs here, BENCHMARKS.md), so the
//!    stretch keeps that work under a quarter of one core up to about 3 000 readers asleep
//!    (63 readers: about 2 ms); beyond that the cap bounds the delay instead. An interval of
//!    zero turns pacing off: readers are woken at every due batch.
//! 3. **Never owed for longer than the spacing.** While a wake-up is owed the dispatcher does
//!    not block past [`Wakes::deadline`]: waiting for the intake, or for room in a full inbox,
//!    times out then, and the readers are woken. So a reader asleep learns of a clock move
//!    within the spacing (plus scheduling), and no wake-up is lost (the clock's handshake is
//!    unchanged: a late wake-up is the same wake-up, later).
//! 4. Forwarders waiting for the reorder window are woken at every publish (their wait is the
//!    stream's own back-pressure), and at shutdown everyone is.
//!
//! # Invariants
//!
//! * `owed` is true exactly when the clock was advanced after the readers were last woken
//!   while some reader may sleep; it is cleared only by a wake-up of the reader list, or by
//!   finding, after the fence, that the list is empty (a reader registering later sees the
//!   stored clock in its re-check).
//! * The time is read only when a wake-up is owed, due and some reader sleeps, so the common
//!   pair (whose receiver is woken for its data) pays no clock read per batch.

use std::time::{Duration, Instant};

use crate::clock::Clock;
use crate::waiter::Waiter;

/// While the intake stays busy, a wake-up of the readers is due after at most this many
/// batches (and at once when it empties).
pub(crate) const WAKE_EVERY: u32 = 8;

/// Default for [`Builder::watermark_wake_interval`](crate::Builder::watermark_wake_interval).
pub const DEFAULT_WAKE_INTERVAL: Duration = Duration::from_millis(1);

/// After waking `n` readers for a clock-only move, the next such wake-up waits at least `n`
/// times this (rule 2): about four times what one costs, so waking stays under a quarter of
/// one core (up to [`MAX_STRETCH`] / this, about 3 000 readers).
pub(crate) const SPACING_PER_READER: Duration = Duration::from_micros(32);

/// The stretch for many readers never exceeds this (an `interval` set longer still applies).
pub(crate) const MAX_STRETCH: Duration = Duration::from_millis(100);

/// The dispatcher's record of the wake-ups it owes (see the module doc).
pub(super) struct Wakes {
    interval: Duration,
    /// The clock moved since readers were last woken.
    owed: bool,
    /// Batches ended while a wake-up was owed.
    batches_owed: u32,
    /// The earliest a paced wake-up may come: the last one plus its spacing; `None` before
    /// the first.
    next: Option<Instant>,
    /// Reused by the clock to wake outside its lock.
    scratch: Vec<Waiter>,
}

impl Wakes {
    pub(super) fn new(interval: Duration) -> Self {
        // Loom has no clock (a timed park is an untimed one), so rule 3's timeouts cannot be
        // modelled: the models run with no pacing, i.e. the handshake alone, as before.
        #[cfg(loom)]
        let interval = Duration::ZERO;
        Wakes {
            interval,
            owed: false,
            batches_owed: 0,
            next: None,
            scratch: Vec::new(),
        }
    }

    /// After a publish (`advanced`: the clock moved): wakes forwarders, and readers if `due`
    /// and the spacing has passed (rule 2); otherwise the readers' wake-up stays owed. Returns
    /// whether readers were woken; if not, the caller wakes the receivers it delivered to
    /// (rule 1), after the fence this has issued.
    pub(super) fn after_publish(&mut self, clock: &Clock, advanced: bool, due: bool) -> bool {
        self.owed |= advanced;
        if !self.owed {
            return false;
        }
        if !clock.wake_forwarders(&mut self.scratch) {
            // Nobody asleep: a reader that registers from now on sees the clock stored.
            self.settled();
            return false;
        }
        if due && self.spacing_passed() {
            self.wake_readers(clock);
            return true;
        }
        self.batches_owed += 1;
        false
    }

    /// Whether the intake's state makes a wake-up due: empty, or busy for [`WAKE_EVERY`]
    /// batches of owing one.
    pub(super) fn due(&self, intake_empty: bool) -> bool {
        intake_empty || self.batches_owed >= WAKE_EVERY
    }

    /// Wakes the readers now, whatever the interval (an owed wake-up whose deadline came, or
    /// the shutdown). Forwarders were woken by the publish that made it owed.
    pub(super) fn wake_readers(&mut self, clock: &Clock) {
        let woken = clock.wake_readers(&mut self.scratch);
        if !self.interval.is_zero() {
            self.next = Some(Instant::now() + self.spacing(woken));
        }
        self.settled();
    }

    /// How long after waking `woken` readers the next paced wake-up may come (rule 2).
    fn spacing(&self, woken: usize) -> Duration {
        let woken = u32::try_from(woken).unwrap_or(u32::MAX);
        let stretch = SPACING_PER_READER.saturating_mul(woken).min(MAX_STRETCH);
        self.interval.max(stretch)
    }

    fn settled(&mut self) {
        self.owed = false;
        self.batches_owed = 0;
    }

    /// When the owed wake-up must happen at the latest (rule 3); `None` if none is owed.
    pub(super) fn deadline(&self) -> Option<Instant> {
        if !self.owed {
            return None;
        }
        Some(self.next.unwrap_or_else(Instant::now))
    }

    /// How long the dispatcher may block before it owes the readers their wake-up.
    pub(super) fn time_left(&self) -> Option<Duration> {
        self.deadline()
            .map(|deadline| deadline.saturating_duration_since(Instant::now()))
    }

    fn spacing_passed(&self) -> bool {
        self.next.is_none_or(|next| Instant::now() >= next)
    }
}

/// The rules, checked on a real clock with a task asleep in its reader list (a task's entry is
/// one-shot: it is gone once woken, which is what these observe).
#[cfg(all(test, feature = "async", not(loom)))]
mod tests {
    use super::*;

    const HOUR: Duration = Duration::from_secs(3600);

    fn asleep(clock: &Clock) {
        clock.readers.sleep_task(1, std::task::Waker::noop());
    }

    fn still_asleep(clock: &Clock) -> bool {
        clock.readers.any()
    }

    #[test]
    fn the_first_move_wakes_at_once_and_the_next_waits_for_the_interval() {
        let clock = Clock::new(0);
        let mut wakes = Wakes::new(HOUR);
        asleep(&clock);
        clock.advance(1);
        assert!(
            wakes.after_publish(&clock, true, true),
            "leading edge: at once"
        );
        assert!(!still_asleep(&clock));
        assert_eq!(wakes.deadline(), None, "nothing owed after a wake-up");

        asleep(&clock);
        clock.advance(2);
        assert!(
            !wakes.after_publish(&clock, true, true),
            "within the interval: paced"
        );
        assert!(still_asleep(&clock));
        let deadline = wakes.deadline().expect("a wake-up is owed");
        assert!(deadline > Instant::now() + HOUR - Duration::from_secs(60));
        // Busy batches do not override the interval either.
        for _ in 0..2 * WAKE_EVERY {
            let due = wakes.due(false);
            assert!(!wakes.after_publish(&clock, false, due));
        }
        assert!(still_asleep(&clock));
        // The deadline's wake-up (what the dispatcher does when it comes).
        wakes.wake_readers(&clock);
        assert!(!still_asleep(&clock));
        assert_eq!(wakes.deadline(), None);
    }

    #[test]
    fn nothing_is_owed_when_no_reader_sleeps() {
        let clock = Clock::new(0);
        let mut wakes = Wakes::new(HOUR);
        clock.advance(1);
        assert!(!wakes.after_publish(&clock, true, true));
        assert_eq!(wakes.deadline(), None);
        // A reader that registers now sees the clock in its re-check; nothing to wake it for.
        asleep(&clock);
        assert!(!wakes.after_publish(&clock, false, true));
        assert!(still_asleep(&clock));
        assert_eq!(wakes.deadline(), None);
    }

    #[test]
    fn a_busy_intake_defers_even_without_pacing_but_only_for_a_few_batches() {
        let clock = Clock::new(0);
        let mut wakes = Wakes::new(Duration::ZERO);
        asleep(&clock);
        clock.advance(1);
        let mut batches = 0;
        while !{
            let due = wakes.due(false);
            wakes.after_publish(&clock, batches == 0, due)
        } {
            batches += 1;
            assert!(
                batches <= WAKE_EVERY,
                "woken after at most WAKE_EVERY busy batches"
            );
        }
        assert_eq!(batches, WAKE_EVERY);
        assert!(!still_asleep(&clock));
        // With an empty intake, at every publish.
        for stamp in 2..5 {
            asleep(&clock);
            clock.advance(stamp);
            let due = wakes.due(true);
            assert!(wakes.after_publish(&clock, true, due));
            assert!(!still_asleep(&clock));
        }
    }

    /// Wakes `readers` task sleepers through `wakes` and returns the spacing it set, bounded
    /// by the instants before and after the wake-up.
    fn spacing_after_waking(interval: Duration, readers: usize) -> (Duration, Duration) {
        let clock = Clock::new(0);
        let mut wakes = Wakes::new(interval);
        for key in 1..=readers {
            clock.readers.sleep_task(key, std::task::Waker::noop());
        }
        clock.advance(1);
        let before = Instant::now();
        assert!(wakes.after_publish(&clock, true, true));
        let after = Instant::now();
        assert!(!still_asleep(&clock), "all {readers} woken");
        let next = wakes.next.expect("a spacing is set after a paced wake-up");
        (
            next.saturating_duration_since(after),
            next.saturating_duration_since(before),
        )
    }

    #[test]
    fn many_readers_stretch_the_spacing_and_the_stretch_is_capped() {
        // Few readers: the interval.
        let (at_least, at_most) = spacing_after_waking(Duration::from_millis(1), 3);
        assert!(at_least <= Duration::from_millis(1) && at_most >= Duration::from_millis(1));
        // 1000 readers: 32 ms, more than the interval.
        let stretch = SPACING_PER_READER * 1000;
        let (at_least, at_most) = spacing_after_waking(Duration::from_millis(1), 1000);
        assert!(
            at_least <= stretch && at_most >= stretch,
            "{at_least:?}..{at_most:?}"
        );
        // 10 000 readers: capped.
        let (at_least, at_most) = spacing_after_waking(Duration::from_millis(1), 10_000);
        assert!(at_least <= MAX_STRETCH && at_most >= MAX_STRETCH);
        // An interval longer than the stretch wins.
        let (at_least, _) = spacing_after_waking(HOUR, 1000);
        assert!(at_least > HOUR - Duration::from_secs(60));
        // Zero: no pacing at all, however many were woken.
        let clock = Clock::new(0);
        let mut wakes = Wakes::new(Duration::ZERO);
        for key in 1..=1000 {
            clock.readers.sleep_task(key, std::task::Waker::noop());
        }
        clock.advance(1);
        assert!(wakes.after_publish(&clock, true, true));
        assert_eq!(wakes.next, None);
    }

    #[test]
    fn forwarders_are_woken_at_every_publish() {
        let clock = Clock::new(0);
        let mut wakes = Wakes::new(HOUR);
        asleep(&clock);
        clock.advance(1);
        wakes.after_publish(&clock, true, true);
        asleep(&clock);
        clock.forwarders.sleep_task(2, std::task::Waker::noop());
        clock.advance(2);
        assert!(!wakes.after_publish(&clock, true, true));
        assert!(!clock.forwarders.any(), "the forwarder was woken");
        assert!(still_asleep(&clock), "the reader's wake-up is paced");
    }
}
