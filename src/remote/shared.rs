//! What the bridge thread and the [`Remote`](super::Remote) handle share: the current
//! connection's write side, its `PING`/`PONG` count, the broker's refusals, and why the
//! stream ended.
//!
//! Requests (a commit, `TIME`, the bridge's keep-alive) end in `PING`; `PONG`s come back in
//! the order the `PING`s went out, so the n-th `PONG` of a connection answers its n-th `PING`,
//! and an `ERR` line belongs to the request of the next `PONG` to come. A request whose
//! connection is lost (the generation changed) fails instead of waiting.

use std::io::Write;
use std::net::{Shutdown, TcpStream};
use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use super::RemoteError;

#[derive(Default)]
pub(super) struct Shared {
    state: Mutex<State>,
    changed: Condvar,
}

#[derive(Default)]
struct State {
    /// The current connection's write side.
    writer: Option<TcpStream>,
    /// Bumped whenever a connection is made or lost.
    generation: u64,
    /// `PING`s sent and `PONG`s received on the current connection.
    pings: u64,
    pongs: u64,
    /// `ERR` lines, each with the number of the `PONG` that answers its request.
    refusals: Vec<(u64, String)>,
    /// `PING` numbers of requests a caller waits for (it takes their refusals).
    waited: Vec<u64>,
    /// `PING` numbers of commits nobody waits for, and the first refusal among them.
    unchecked: Vec<u64>,
    commit_refused: Option<String>,
    /// The last `TIME` answer.
    broker_clock: Option<usize>,
    /// The highest stamp of a line read on the current connection.
    seen: usize,
    /// The first handshake is over.
    ready: bool,
    /// Why the stream ended.
    ended: Option<RemoteError>,
    closed: bool,
    reconnects: u64,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Sends `lines` and a `PING`, noted as `waited` for or not (in the same critical section
    /// as the send: its `PONG` cannot come first); returns the `PING`'s number and the
    /// connection's generation.
    fn send(&self, lines: &str, waited: bool) -> Result<(u64, u64), RemoteError> {
        let mut state = self.lock();
        let Some(writer) = state.writer.as_mut() else {
            return Err(state
                .ended
                .clone()
                .unwrap_or_else(|| RemoteError::Disconnected("reconnecting".into())));
        };
        writer
            .write_all(format!("{lines}PING\n").as_bytes())
            .map_err(|e| RemoteError::Disconnected(e.to_string()))?;
        state.pings += 1;
        let ping = state.pings;
        if waited {
            state.waited.push(ping);
        } else {
            state.unchecked.push(ping);
        }
        Ok((ping, state.generation))
    }

    /// Waits for `PONG` number `ping` of connection `generation`: `Err` if an `ERR` came
    /// for it, the connection was lost, or `timeout` passed.
    fn wait(&self, ping: u64, generation: u64, timeout: Duration) -> Result<(), RemoteError> {
        let outcome = self.wait_for(timeout, |state| {
            if state.generation != generation {
                return Some(Err(RemoteError::Disconnected("lost while waiting".into())));
            }
            if state.pongs < ping {
                return None;
            }
            let refused = state
                .refusals
                .iter()
                .position(|(answer, _)| *answer == ping);
            Some(match refused {
                Some(at) => Err(RemoteError::Refused(state.refusals.remove(at).1)),
                None => Ok(()),
            })
        });
        // Given up or answered: a late refusal of this request is nobody's.
        self.lock().waited.retain(|&waited| waited != ping);
        outcome.and_then(|answer| answer)
    }

    /// Waits (on `changed`) until `done` has an answer, or `timeout` passes.
    fn wait_for<R>(
        &self,
        timeout: Duration,
        mut done: impl FnMut(&mut State) -> Option<R>,
    ) -> Result<R, RemoteError> {
        let deadline = Instant::now().checked_add(timeout);
        let mut state = self.lock();
        loop {
            if let Some(answer) = done(&mut state) {
                return Ok(answer);
            }
            let wait = match deadline {
                Some(deadline) => match deadline.checked_duration_since(Instant::now()) {
                    Some(left) if !left.is_zero() => left,
                    _ => return Err(RemoteError::Timeout),
                },
                None => Duration::from_secs(3600),
            };
            state = self
                .changed
                .wait_timeout(state, wait)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
    }

    /// Sends `lines` and waits until the broker answered them.
    pub(super) fn request(&self, lines: &str, timeout: Duration) -> Result<(), RemoteError> {
        let (ping, generation) = self.send(lines, true)?;
        self.wait(ping, generation, timeout)
    }

    /// Sends `lines` without waiting; a refusal shows up in the next
    /// [`take_commit_refusal`](Self::take_commit_refusal).
    pub(super) fn send_unchecked(&self, lines: &str) -> Result<(), RemoteError> {
        self.send(lines, false).map(drop)
    }

    /// The first refusal of an unchecked request since the last call.
    pub(super) fn take_commit_refusal(&self) -> Option<String> {
        self.lock().commit_refused.take()
    }

    /// The highest stamp read on the current connection.
    pub(super) fn seen(&self) -> usize {
        self.lock().seen
    }

    pub(super) fn broker_clock(&self) -> Option<usize> {
        self.lock().broker_clock
    }

    pub(super) fn error(&self) -> Option<RemoteError> {
        self.lock().ended.clone()
    }

    pub(super) fn is_connected(&self) -> bool {
        self.lock().writer.is_some()
    }

    pub(super) fn reconnects(&self) -> u64 {
        self.lock().reconnects
    }

    pub(super) fn close(&self) {
        let mut state = self.lock();
        state.closed = true;
        if let Some(writer) = state.writer.take() {
            // Wakes the bridge's blocked read.
            let _ = writer.shutdown(Shutdown::Both);
        }
        state.generation += 1;
        self.changed.notify_all();
    }

    // The bridge's side.

    pub(super) fn is_closed(&self) -> bool {
        self.lock().closed
    }

    /// A new connection (its handshake, ending in a `PING`, sent); `false` if closed.
    pub(super) fn connected(&self, writer: TcpStream) -> bool {
        let mut state = self.lock();
        if state.closed {
            return false;
        }
        state.writer = Some(writer);
        state.generation += 1;
        state.pings = 1; // the handshake's
        state.pongs = 0;
        state.refusals.clear();
        state.waited.clear();
        state.unchecked.clear();
        state.seen = 0;
        self.changed.notify_all();
        true
    }

    /// The current connection is lost.
    pub(super) fn lost(&self, reconnecting: bool) {
        let mut state = self.lock();
        state.writer = None;
        state.generation += 1;
        if reconnecting {
            state.reconnects += 1;
        }
        self.changed.notify_all();
    }

    /// Ends the stream for `why` (the first reason stays).
    pub(super) fn end(&self, why: RemoteError) {
        let mut state = self.lock();
        state.ended.get_or_insert(why);
        state.writer = None;
        state.generation += 1;
        self.changed.notify_all();
    }

    pub(super) fn set_ready(&self) {
        let mut state = self.lock();
        if !state.ready {
            state.ready = true;
            self.changed.notify_all();
        }
    }

    pub(super) fn is_ready(&self) -> bool {
        self.lock().ready
    }

    /// Waits until the first handshake is over or the stream ended.
    pub(super) fn wait_ready(&self, timeout: Duration) -> Result<(), RemoteError> {
        let answer = self.wait_for(timeout, |state| match &state.ended {
            Some(why) => Some(Err(why.clone())),
            None => state.ready.then_some(Ok(())),
        });
        answer.and_then(|answer| answer)
    }

    /// A line stamped `stamp` was read.
    pub(super) fn saw(&self, stamp: usize) {
        let mut state = self.lock();
        state.seen = state.seen.max(stamp);
    }

    pub(super) fn set_broker_clock(&self, stamp: usize) {
        self.lock().broker_clock = Some(stamp);
    }

    /// An `ERR` line: it belongs to the request the next `PONG` answers.
    pub(super) fn refused(&self, why: &str) {
        let mut state = self.lock();
        let answer = state.pongs + 1;
        state.refusals.push((answer, why.to_string()));
    }

    /// A `PONG`; returns its number and the refusal of its request if nobody waits for it
    /// (the handshake's; an unchecked commit's is kept for the next commit, a keep-alive's
    /// dropped). A waiting request takes its own.
    pub(super) fn pong(&self) -> (u64, Option<String>) {
        let mut state = self.lock();
        state.pongs += 1;
        let pong = state.pongs;
        let mut refusal = None;
        if !state.waited.contains(&pong) {
            if let Some(at) = state
                .refusals
                .iter()
                .position(|(answer, _)| *answer == pong)
            {
                refusal = Some(state.refusals.remove(at).1);
            }
            if let Some(at) = state.unchecked.iter().position(|&ping| ping == pong) {
                state.unchecked.swap_remove(at);
                if let Some(why) = refusal.take() {
                    state.commit_refused.get_or_insert(why);
                }
            }
        }
        self.changed.notify_all();
        (pong, refusal)
    }

    /// Sends a keep-alive `PING`; `false` if the connection cannot be written.
    pub(super) fn ping(&self) -> bool {
        let mut state = self.lock();
        let Some(writer) = state.writer.as_mut() else {
            return false;
        };
        if writer.write_all(b"PING\n").is_err() {
            return false;
        }
        state.pings += 1;
        true
    }
}
