//! A connection's writer task: drains the connection's receiver into the socket, writes the
//! reader's replies in order, and runs replays.
//!
//! # Replays (`SUB topic FROM stamp`, `SUB topic AS name`)
//!
//! A replay hands out a topic's history up to where live delivery takes over, with no gap and
//! nothing twice. The handshake, with the reader:
//!
//! 1. The reader asks the writer to *hold* the topic (`Out::Catchup`) and waits until it has.
//! 2. The reader adds the connection's receiver to the topic's group. Live deliveries of the
//!    topic start at some stamp above the join; the writer drops them while it holds.
//! 3. The reader sends the connection's own *marker* through its sender. The marker takes a
//!    stamp `S` after the join, so every delivery the writer dropped is stamped below `S`,
//!    and, since the journal writes before it delivers, everything stamped below `S` is in
//!    the journal when the marker arrives.
//! 4. On the marker, the writer reads the topic's history from `from` to `S` (exclusive),
//!    filtered by the topic's retention and compaction (`retained.rs`), writes it, and stops
//!    holding: the topic's deliveries from then on are live, all stamped above `S`.
//!
//! Markers arrive in the order their catch-ups were asked for, so one queue pairs them. A
//! replay is read in chunks of [`REPLAY_CHUNK`] (blocking file reads, on
//! `block_in_place`), each written before the next is read: a long history never sits in
//! memory, and a client that stops reading is cut off by `--write-timeout` as usual.

use std::collections::{HashMap, HashSet, VecDeque};
use std::io::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use clocked_dispatch::ClockedReceiver;
use tokio::io::AsyncWriteExt;
use tokio::net::tcp::OwnedWriteHalf;
use tokio::sync::{mpsc, oneshot};

use super::broker::{Broker, Published, Topic};
use super::retained::Retained;

/// What the reader asks of the writer, in order.
pub enum Out {
    /// A reply line, with its `\n`.
    Line(String),
    /// The connection's receiver, made on its first subscription.
    Attach(Box<ClockedReceiver<Published>>),
    /// `STAMPS on|off`.
    Stamps(bool),
    /// `CLOCK on|off`.
    Clock(bool),
    /// Hold `topic` and replay it once the next marker comes (see the module doc); say so on
    /// `held` once holding.
    Catchup(Box<Catchup>, oneshot::Sender<()>),
    /// `COMMIT topic stamp` of a durable subscription.
    Commit(Arc<str>, usize),
    /// `UNSUB topic`: forget its replay and durable subscription, if any.
    Forget(Arc<str>),
    /// The last catch-up failed before its marker was sent: drop it.
    Abandon,
    /// Write this line (if any) and close.
    Close(Option<String>),
}

/// A replay asked for.
pub struct Catchup {
    /// The topic's name, as in its deliveries.
    pub name: Arc<str>,
    /// The topic.
    pub topic: Arc<Topic>,
    /// The first stamp to replay.
    pub from: usize,
    /// A durable subscription: the journal name its position is saved under.
    pub durable: Option<String>,
    /// Told once the replay is written (the reader waits, so that every later reply, a
    /// `PONG` say, comes after it).
    pub replayed: Option<oneshot::Sender<()>>,
}

/// A durable subscription this connection has.
struct Durable {
    /// The journal name its position is saved under.
    key: String,
    /// The last stamp written to the client on its topic.
    written: usize,
    /// The position saved last.
    committed: usize,
}

/// Deliveries written before a flush.
pub const WRITE_BATCH: usize = 256;
/// Messages of a replay read (and formatted) between two writes.
const REPLAY_CHUNK: usize = 1024;

/// The writer's state. Lines are formatted into `pending` without awaiting anything; the
/// socket is written once per batch (one `watch`ed `write_all`), so a delivery costs no
/// system call and no timer of its own.
struct Writer {
    broker: Arc<Broker>,
    socket: OwnedWriteHalf,
    /// The connection's receiver, once it subscribed.
    receiver: Option<ClockedReceiver<Published>>,
    stamps: bool,
    clock: bool,
    /// The last `CLOCK` line's stamp.
    clock_sent: usize,
    /// The highest stamp of a delivery or `CLOCK` line written: everything for this
    /// connection up to it has been written.
    delivered_through: usize,
    /// Bytes formatted and not yet written.
    pending: Vec<u8>,
    /// Replays waiting for their marker, in the order the markers were sent.
    catchups: VecDeque<Catchup>,
    /// The replay whose marker came, to run before the next delivery.
    due: Option<(Catchup, usize)>,
    /// Topics whose live deliveries are dropped until their replay (which has them).
    holding: HashSet<Arc<str>>,
    /// Durable subscriptions by topic: see [`Durable`].
    durable: HashMap<Arc<str>, Durable>,
}

/// Why the writer stops.
enum Stop {
    /// The reader asked (QUIT, or its last line), or the receiver closed.
    Done,
    /// The socket failed or timed out, or the client was too slow.
    Broken,
}

/// Written as soon as this much is pending, even if more is ready. Small enough that the
/// buffer stays below the allocator's mmap threshold (128 KiB): a bigger one was mapped and
/// unmapped by the kernel on every batch (page faults were 8% of the broker's time).
pub const WRITE_AT: usize = 32 * 1024;

/// Runs the writer until the connection ends.
pub async fn write_loop(
    broker: Arc<Broker>,
    socket: OwnedWriteHalf,
    mut outbox: mpsc::Receiver<Out>,
) {
    let mut writer = Writer {
        socket,
        receiver: None,
        broker,
        stamps: false,
        clock: false,
        clock_sent: 0,
        delivered_through: 0,
        pending: Vec::new(),
        catchups: VecDeque::new(),
        due: None,
        holding: HashSet::new(),
        durable: HashMap::new(),
    };
    let stop = loop {
        let step = tokio::select! {
            biased;
            out = outbox.recv() => match out {
                None => Err(Stop::Done),
                Some(Out::Attach(rx)) => {
                    writer.receiver = Some(*rx);
                    Ok(())
                }
                Some(out) => writer.apply(out),
            },
            got = recv(&mut writer.receiver), if writer.receiver.is_some() => match got {
                Some(item) => writer.deliver(item),
                None => Err(Stop::Done),
            },
        };
        if let Err(stop) = step {
            break stop;
        }
        if let Some((catchup, until)) = writer.due.take() {
            if let Err(stop) = writer.replay(catchup, until).await {
                break stop;
            }
        }
        if (outbox.is_empty() && !writer.pending.is_empty()) || writer.pending.len() >= WRITE_AT {
            if let Err(stop) = writer.flush().await {
                break stop;
            }
        }
    };
    if let Stop::Done = stop {
        let _ = writer.flush().await;
        let _ = writer.socket.shutdown().await;
    }
    // Whatever the reader still sends is dropped with the channel; its sends fail.
}

/// The next item of the connection's receiver; `None` once it is closed; pending while
/// there is no receiver yet. Shared by both protocols' writers.
pub async fn recv(
    receiver: &mut Option<ClockedReceiver<Published>>,
) -> Option<(Option<Published>, usize)> {
    match receiver {
        Some(rx) => rx.recv_async().await.ok(),
        None => std::future::pending().await,
    }
}

impl Writer {
    fn apply(&mut self, out: Out) -> Result<(), Stop> {
        match out {
            Out::Line(line) => self.pending.extend_from_slice(line.as_bytes()),
            Out::Stamps(on) => self.stamps = on,
            Out::Clock(on) => self.clock = on,
            Out::Close(line) => {
                if let Some(line) = line {
                    self.pending.extend_from_slice(line.as_bytes());
                }
                return Err(Stop::Done);
            }
            Out::Catchup(catchup, held) => {
                self.holding.insert(catchup.name.clone());
                self.catchups.push_back(*catchup);
                let _ = held.send(());
            }
            Out::Commit(topic, stamp) => self.commit(&topic, stamp),
            Out::Forget(topic) => {
                self.holding.remove(&topic);
                self.durable.remove(&topic);
                // Its marker still comes: the replay then finds nothing to do.
                for catchup in self.catchups.iter_mut().filter(|c| c.name == topic) {
                    catchup.from = usize::MAX;
                }
            }
            Out::Abandon => {
                if let Some(catchup) = self.catchups.pop_back() {
                    self.holding.remove(&catchup.name);
                }
            }
            Out::Attach(_) => {}
        }
        Ok(())
    }

    /// `COMMIT topic stamp`: saved (and synced) before the next reply is written, so a
    /// `PONG` after it means it is stored.
    fn commit(&mut self, topic: &str, stamp: usize) {
        let reply = match self.durable.get_mut(topic) {
            None => Some(format!(
                "no durable subscription to {topic} on this connection (SUB {topic} AS name)"
            )),
            // Deliveries come in stamp order across the connection's topics: once stamp `s`
            // of any topic (or `CLOCK s`) was written, every message up to `s` of this topic
            // was too, so a commit up to it loses nothing.
            Some(durable) if stamp > self.delivered_through.max(durable.written) => Some(format!(
                "commit {stamp} is ahead of the last stamp delivered on this connection ({})",
                self.delivered_through.max(durable.written)
            )),
            // At or below the last commit: nothing to write.
            Some(durable) if stamp <= durable.committed => None,
            Some(durable) => {
                let broker = &self.broker;
                let saved =
                    tokio::task::block_in_place(|| broker.save_position(&durable.key, stamp));
                if saved.is_ok() {
                    durable.committed = stamp;
                }
                saved.err().map(|e| e.to_string())
            }
        };
        if let Some(reason) = reply {
            self.broker.counters.errors.fetch_add(1, Ordering::Relaxed);
            let _ = writeln!(self.pending, "ERR {reason}");
        }
    }

    /// Writes `catchup`'s topic's retained history below `until` (its marker's stamp), then
    /// delivers the topic live (see the module doc).
    async fn replay(&mut self, mut catchup: Catchup, until: usize) -> Result<(), Stop> {
        let replayed = catchup.replayed.take();
        let result = self.replay_history(catchup, until).await;
        if let Some(replayed) = replayed {
            let _ = replayed.send(());
        }
        result
    }

    async fn replay_history(&mut self, catchup: Catchup, until: usize) -> Result<(), Stop> {
        self.holding.remove(&catchup.name);
        if catchup.from == usize::MAX {
            return Ok(()); // unsubscribed meanwhile
        }
        if let Some(key) = &catchup.durable {
            let resumed_after = catchup.from.saturating_sub(1);
            let durable = Durable {
                key: key.clone(),
                written: resumed_after,
                committed: resumed_after,
            };
            self.durable.insert(catchup.name.clone(), durable);
        }
        let history = match catchup.topic.history(&self.broker, catchup.from) {
            Ok(history) => history,
            Err(e) => {
                let _ = writeln!(self.pending, "ERR replay of {}: {e}", catchup.name);
                return Ok(());
            }
        };
        let oldest = history.oldest_held();
        if catchup.from < oldest && oldest > 1 {
            let _ = writeln!(
                self.pending,
                "ERR replay of {} starts at {oldest}: retention deleted older messages",
                catchup.name
            );
        }
        let damaged = Arc::new(AtomicU64::new(0));
        let counted = damaged.clone();
        let source = history
            .filter_map(move |item| match item {
                Ok(message) => Some(message),
                Err(_) => {
                    counted.fetch_add(1, Ordering::Relaxed);
                    None
                }
            })
            .take_while(|&(_, stamp)| stamp < until);
        let now_ms = super::published::now_ms();
        let mut retained = Retained::new(source, catchup.topic.options(), now_ms);
        loop {
            let read = tokio::task::block_in_place(|| {
                let mut read = 0;
                while read < REPLAY_CHUNK {
                    let Some(item) = retained.next() else { break };
                    self.format((Some(item.0), item.1));
                    read += 1;
                }
                read
            });
            self.flush().await?;
            if read < REPLAY_CHUNK {
                break;
            }
        }
        let damaged = damaged.load(Ordering::Relaxed);
        if damaged > 0 {
            let _ = writeln!(
                self.pending,
                "ERR replay of {}: {damaged} damaged records skipped",
                catchup.name
            );
        }
        Ok(())
    }

    /// Formats one delivery and whatever else the receiver has ready (up to a batch).
    fn deliver(&mut self, first: (Option<Published>, usize)) -> Result<(), Stop> {
        self.format(first);
        for _ in 1..WRITE_BATCH {
            if self.pending.len() >= WRITE_AT {
                break;
            }
            if self.due.is_some() {
                break; // the replay runs first
            }
            let Some(Ok(item)) = self.receiver.as_ref().map(|rx| rx.try_recv()) else {
                break;
            };
            self.format(item);
        }
        self.check_backlog()
    }

    /// Appends the line for one item of the receiver: a delivery, or a `CLOCK` line.
    fn format(&mut self, (value, stamp): (Option<Published>, usize)) {
        match value {
            Some(message) if message.is_marker() => {
                if let Some(catchup) = self.catchups.pop_front() {
                    self.due = Some((catchup, stamp));
                }
            }
            Some(message) if self.skips(&message, stamp) => {}
            Some(message) => {
                if self.stamps {
                    let _ = write!(self.pending, "STAMPED {stamp} ");
                } else {
                    self.pending.extend_from_slice(b"UPDATED ");
                }
                write_line_form(&mut self.pending, &message);
                self.pending.push(b'\n');
                self.delivered_through = self.delivered_through.max(stamp);
                self.broker
                    .counters
                    .messages_out
                    .fetch_add(1, Ordering::Relaxed);
            }
            // While a replay is pending its messages are still to come, stamped below the
            // clock: a `CLOCK` line now would promise they were delivered.
            None if self.clock && stamp > self.clock_sent && self.holding.is_empty() => {
                self.clock_sent = stamp;
                self.delivered_through = self.delivered_through.max(stamp);
                let _ = writeln!(self.pending, "CLOCK {stamp}");
            }
            None => {}
        }
    }

    /// Whether a live delivery is dropped (its topic is held for a replay that has it), and
    /// notes a durable subscription's delivery.
    fn skips(&mut self, message: &Published, stamp: usize) -> bool {
        if self.holding.is_empty() && self.durable.is_empty() {
            return false;
        }
        let topic = message.subject();
        if self.holding.contains(topic) {
            return true;
        }
        if let Some(durable) = self.durable.get_mut(topic) {
            durable.written = stamp;
        }
        false
    }

    /// Cuts the connection off if its backlog passed `--max-backlog`.
    fn check_backlog(&mut self) -> Result<(), Stop> {
        match self.receiver.as_ref().map(|rx| too_slow(rx, &self.broker)) {
            Some(Some(backlog)) => {
                self.cut_off(backlog);
                Err(Stop::Broken)
            }
            _ => Ok(()),
        }
    }

    /// Counts a slow client and tells it why, if its socket takes the line without waiting.
    fn cut_off(&self, backlog: u64) {
        self.broker
            .counters
            .slow_disconnects
            .fetch_add(1, Ordering::Relaxed);
        let line = format!("ERR slow consumer: {backlog} messages behind, disconnecting\n");
        let _ = self.socket.try_write(line.as_bytes());
    }

    /// Writes what is pending. While the socket is full, checks every [`WATCH_EVERY`]
    /// whether the backlog passed the limit or the write took longer than `--write-timeout`:
    /// a client that stopped reading is cut off even while this write is blocked.
    async fn flush(&mut self) -> Result<(), Stop> {
        let receiver = self.receiver.as_mut();
        write_pending(&mut self.socket, &mut self.pending, receiver, &self.broker)
            .await
            .map_err(|Broken| Stop::Broken)
    }
}

/// A connection that cannot be written to: its socket failed, or its client was too slow.
pub struct Broken;

/// Writes `pending` to `socket` and empties it. While the socket is full, checks every
/// [`WATCH_EVERY`] whether `receiver`'s backlog passed the limit or the write took longer
/// than `--write-timeout`: a client that stopped reading is cut off even while this write is
/// blocked. Shared by both protocols' writers.
pub async fn write_pending(
    socket: &mut OwnedWriteHalf,
    pending: &mut Vec<u8>,
    receiver: Option<&mut ClockedReceiver<Published>>,
    broker: &Broker,
) -> Result<(), Broken> {
    if pending.is_empty() {
        return Ok(());
    }
    let write = socket.write_all(pending);
    tokio::pin!(write);
    let deadline = Instant::now() + broker.limits.write_timeout;
    loop {
        tokio::select! {
            done = &mut write => {
                done.map_err(|_| Broken)?;
                break;
            }
            () = tokio::time::sleep(WATCH_EVERY) => {}
        }
        let slow = receiver.as_deref().and_then(|rx| too_slow(rx, broker));
        if slow.is_some() || Instant::now() >= deadline {
            broker
                .counters
                .slow_disconnects
                .fetch_add(1, Ordering::Relaxed);
            return Err(Broken);
        }
    }
    pending.clear();
    if pending.capacity() > 4 * WRITE_AT {
        pending.shrink_to(WRITE_AT);
    }
    Ok(())
}

/// The connection's backlog if it is past a limit: `--max-backlog` messages, or the bytes
/// spilled for it past three quarters of `--spill-limit`.
pub fn too_slow(receiver: &ClockedReceiver<Published>, broker: &Broker) -> Option<u64> {
    let backlog = receiver.backlog();
    let spilled = receiver.spill_stats().map_or(0, |stats| stats.disk_bytes);
    let limits = &broker.limits;
    (backlog > limits.max_backlog || spilled > limits.max_spilled_bytes).then_some(backlog)
}

/// Appends `subject payload` for the topics protocol. A message from a NATS client whose
/// payload is not one line of UTF-8 (binary, or several lines) is flattened: invalid UTF-8
/// becomes U+FFFD and each `\r` or `\n` a space, since a line protocol cannot carry it. Its
/// headers and reply subject are left out.
fn write_line_form(out: &mut Vec<u8>, message: &Published) {
    if let Some(line) = message.line() {
        out.extend_from_slice(line);
        return;
    }
    out.extend_from_slice(message.subject().as_bytes());
    out.push(b' ');
    let payload = message.payload();
    if message.payload_is_line() {
        out.extend_from_slice(payload);
        return;
    }
    let text = String::from_utf8_lossy(payload);
    out.extend(
        text.bytes()
            .map(|b| if b == b'\r' || b == b'\n' { b' ' } else { b }),
    );
}

/// How often a blocked write looks at the backlog.
const WATCH_EVERY: Duration = Duration::from_millis(50);
