//! `clockd replicate --from ADDR --to DIR --topic T…`: a follower journal of a broker's
//! topics (kvspool's `kvsp-sub`, with the broker's stamps kept).
//!
//! # How
//!
//! The follower is a journaled dispatcher in forwarding mode in `DIR`, one receiver per
//! followed topic named `topic/T` (the name the leader keeps the topic's history under). It
//! subscribes to the leader (`--data` there) with the library's remote receiver, from its own
//! journal's clock plus one (`SUB T FROM stamp`), and forwards each message under the
//! leader's stamp; the stamps between (other topics, `CLOCK` lines) are accounted for with
//! `skip_through`, which the journal keeps as a tick. So:
//!
//! * **the follower's journal is its position**: everything up to its clock is written, and a
//!   restart (after `kill -9` too) resumes from the stamp after it, with no gap (the leader
//!   replays from there) and nothing twice (nothing at or below it is asked for again);
//! * **a lost leader** is reconnected to for `--reconnect-for` seconds, resuming the same way;
//! * **its records carry the leader's stamps**, in the leader's order: `clockd journal cat`
//!   of both, for a followed topic, lists the same stamps and messages. (The publish time is
//!   not carried by the topics protocol: the follower's records have none.)
//!
//! `--share I/N` keeps only the messages whose stamp is I modulo N (every other stamp is a
//! tick): N followers with shares 0/N to N−1/N split the stream, each message kept by
//! exactly one of them, every one resumable (a NATS queue group's split is decided by the
//! broker per delivery, and could not be resumed).
//!
//! Every second the follower asks the leader its clock (`TIME`) and saves it in its journal
//! under the name `replica/leader`: `clockd journal status DIR` then prints the lag.

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use clocked_dispatch::remote::{Message, RemoteSubscriber};
use clocked_dispatch::{Builder, ClockedSender, Durability};

use crate::serve::published::Published;
use crate::{Failure, Outcome};

/// The name the leader's clock is saved under in a follower's journal.
pub const LEADER_CLOCK: &str = "replica/leader";

/// `clockd replicate`.
#[derive(clap::Args, Debug)]
pub struct ReplicateArgs {
    /// The leader: a `clockd serve --data` broker's topics address.
    #[arg(long)]
    from: String,
    /// The follower's journal directory (created).
    #[arg(long)]
    to: PathBuf,
    /// A topic to follow (repeat for several).
    #[arg(long = "topic", required = true)]
    topics: Vec<String>,
    /// Keep only the messages whose stamp is I modulo N (`--share 0/3`).
    #[arg(long, value_parser = parse_share)]
    share: Option<(usize, usize)>,
    /// The leader's `--token`.
    #[arg(long)]
    token: Option<String>,
    /// When a message counts as stored in the follower's journal (as `serve --durability`).
    #[arg(long, value_enum, default_value_t = crate::serve::DurabilityArg::None)]
    durability: crate::serve::DurabilityArg,
    /// Seconds to keep trying to reach a lost leader before giving up (exit code 2).
    #[arg(long, default_value_t = 3600)]
    reconnect_for: u64,
}

fn parse_share(text: &str) -> Result<(usize, usize), String> {
    let parsed = text
        .split_once('/')
        .and_then(|(i, n)| Some((i.parse().ok()?, n.parse().ok()?)));
    match parsed {
        Some((i, n)) if n > 0 && i < n => Ok((i, n)),
        _ => Err(format!("{text:?} is not I/N with I < N (say 0/3)")),
    }
}

/// Follows the leader until it is lost for good, or the process is killed.
pub fn run(args: ReplicateArgs) -> Result<Outcome, Failure> {
    let failed = |e: &dyn std::fmt::Display| Failure::new(format!("{}: {e}", args.to.display()));
    std::fs::create_dir_all(&args.to).map_err(|e| failed(&e))?;
    let durability = match args.durability {
        crate::serve::DurabilityArg::None => Durability::None,
        crate::serve::DurabilityArg::Batch => Durability::Batch,
        crate::serve::DurabilityArg::Always => Durability::Always,
    };
    let dispatcher = Builder::new()
        .bound(1024)
        .reorder_window(usize::MAX / 4)
        .thread_name("clockd-replica")
        .journal(&args.to)
        .durability(durability)
        .build_journaled::<Published>()
        .map_err(|e| failed(&e))?;
    let resume = dispatcher.recovery().map_or(0, |r| r.last_stamp) + 1;
    let mut senders: HashMap<String, ClockedSender<Published>> = HashMap::new();
    let mut drains = Vec::new();
    for topic in &args.topics {
        let name = format!("topic/{topic}");
        let (sender, receiver) = dispatcher
            .try_new(format!("replica/{topic}"), name)
            .map_err(|e| failed(&e))?;
        senders.insert(topic.clone(), sender);
        // Nobody reads a follower's receivers: each is drained and committed, so that a
        // restart does not hand its whole history to it again.
        drains.push(std::thread::spawn(move || {
            let mut last_commit = Instant::now();
            while let Ok((_, stamp)) = receiver.recv() {
                if last_commit.elapsed() >= Duration::from_secs(1) {
                    let _ = receiver.commit(stamp);
                    last_commit = Instant::now();
                }
            }
        }));
    }
    let Some(any) = senders.values().next() else {
        return Err(Failure::new("no topic to follow"));
    };
    let mut subscriber = RemoteSubscriber::new(&args.from)
        .from(resume)
        .reconnect_for(Duration::from_secs(args.reconnect_for));
    for topic in &args.topics {
        subscriber = subscriber.topic(topic.as_str());
    }
    if let Some(token) = &args.token {
        subscriber = subscriber.token(token.as_str());
    }
    let (stream, leader) = subscriber
        .connect()
        .map_err(|e| Failure::new(format!("{}: {e}", args.from)))?;
    println!(
        "clockd: following {} from stamp {resume} into {}",
        args.from,
        args.to.display()
    );
    let mut last_report = Instant::now() - Duration::from_secs(1);
    loop {
        if last_report.elapsed() >= Duration::from_secs(1) {
            if let Ok(clock) = leader.broker_clock() {
                let _ = dispatcher.save_position(LEADER_CLOCK, clock);
            }
            last_report = Instant::now();
        }
        let (message, stamp) = match stream.recv_timeout(Duration::from_millis(200)) {
            Ok(item) => item,
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => continue,
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => break,
        };
        let kept = args.share.is_none_or(|(i, n)| stamp % n == i);
        let forwarded = match (message, kept) {
            (Some(Message { topic, body }), true) => match senders.get(&topic) {
                Some(sender) => {
                    // The stamps before it are everyone else's: accounted for first, or the
                    // journal's window would hold this one until the next watermark.
                    let value = Published::new(&format!("{topic} {body}"), 0);
                    sender
                        .skip_through(stamp - 1)
                        .map_err(|e| e.to_string())
                        .and_then(|()| {
                            sender
                                .forward(Some(value), stamp)
                                .map_err(|e| e.to_string())
                        })
                }
                None => any.skip_through(stamp).map_err(|e| e.to_string()),
            },
            _ => any.skip_through(stamp).map_err(|e| e.to_string()),
        };
        forwarded.map_err(|e| failed(&e))?;
    }
    let why = leader
        .error()
        .map_or_else(|| "the stream ended".to_string(), |e| e.to_string());
    Err(Failure::new(format!("{}: {why}", args.from)))
}
