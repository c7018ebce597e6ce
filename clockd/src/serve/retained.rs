//! What a topic retains of its history: the messages a replay (`SUB topic FROM stamp`, or a
//! durable subscription resuming) hands out, after the topic's retention and compaction.
//!
//! * **Retention** (`ttl=SECS`): a message published more than `ttl` seconds ago is not
//!   replayed. (The journal's files are deleted by the broker-wide `--retention-bytes` and
//!   `--retention-age`; `ttl` is per topic and exact.)
//! * **Compaction** (`compact=SECS`): time is cut into windows of `compact` seconds (by
//!   publish time, from the Unix epoch); of the messages of one window that have the same key,
//!   only the newest is replayed. A message's **key is its first word** (`PUB prices EURUSD
//!   1.09` has key `EURUSD`; a message without a space is its own key). Live deliveries are
//!   never compacted.
//!
//! Compaction streams: it holds one window's messages at a time (the newest per key), and
//! hands them out in stamp order once a message of a later window (or the end) shows that the
//! window is complete. Publish times come from the broker's clock and follow stamps; a time
//! that goes backwards only closes a window early, which keeps more, never fewer. So does a
//! window of more than [`MAX_GATHERED`] messages, handed out in parts so that a huge window
//! never sits in memory whole.

use std::collections::HashMap;

use super::broker::Published;
use super::command::TopicOptions;

/// The most messages of one window held at once.
pub const MAX_GATHERED: usize = 65_536;

/// A topic's history filtered by its options; yields `(message, stamp)` in stamp order.
pub struct Retained<I> {
    source: I,
    /// Messages published before this (ms since the epoch) are not replayed.
    oldest_ms: u64,
    window_ms: Option<u64>,
    /// The window being gathered: its index, and its messages (`None` once a newer one of
    /// the same key came).
    window: Option<u64>,
    gathered: Vec<Option<(Published, usize)>>,
    newest_of_key: HashMap<Box<[u8]>, usize>,
    /// Where the next message of a finished window is handed out from.
    handing_out: usize,
    /// The first message of the next window, read while finishing this one.
    next_window: Option<(Published, usize)>,
}

impl<I: Iterator<Item = (Published, usize)>> Retained<I> {
    /// Filters `source` (a topic's history, oldest first) by `options`, as of `now_ms`.
    pub fn new(source: I, options: TopicOptions, now_ms: u64) -> Self {
        let oldest_ms = options
            .ttl
            .map_or(0, |ttl| now_ms.saturating_sub(ttl.saturating_mul(1000)));
        Retained {
            source,
            oldest_ms,
            window_ms: options.compact.map(|secs| secs.saturating_mul(1000).max(1)),
            window: None,
            gathered: Vec::new(),
            newest_of_key: HashMap::new(),
            handing_out: 0,
            next_window: None,
        }
    }

    /// The next message of the source young enough to be replayed.
    fn next_unexpired(&mut self) -> Option<(Published, usize)> {
        self.source
            .by_ref()
            .find(|(message, _)| message.at_ms >= self.oldest_ms)
    }

    /// Reads the next window whole; false when the source is done.
    fn gather_window(&mut self, window_ms: u64) -> bool {
        self.gathered.clear();
        self.newest_of_key.clear();
        self.handing_out = 0;
        let Some(first) = self.next_window.take().or_else(|| self.next_unexpired()) else {
            return false;
        };
        let window = first.0.at_ms / window_ms;
        self.window = Some(window);
        let mut next = Some(first);
        while let Some((message, stamp)) = next.take() {
            if message.at_ms / window_ms != window || self.gathered.len() >= MAX_GATHERED {
                self.next_window = Some((message, stamp));
                break;
            }
            let at = self.gathered.len();
            if let Some(older) = self.newest_of_key.insert(message.key().into(), at) {
                self.gathered[older] = None;
            }
            self.gathered.push(Some((message, stamp)));
            next = self.next_unexpired();
        }
        true
    }
}

impl<I: Iterator<Item = (Published, usize)>> Iterator for Retained<I> {
    type Item = (Published, usize);

    fn next(&mut self) -> Option<Self::Item> {
        let Some(window_ms) = self.window_ms else {
            return self.next_unexpired();
        };
        loop {
            while self.handing_out < self.gathered.len() {
                let at = self.handing_out;
                self.handing_out += 1;
                if let Some(kept) = self.gathered[at].take() {
                    return Some(kept);
                }
            }
            if !self.gather_window(window_ms) {
                return None;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(topic_and_text: &str, at_ms: u64) -> Published {
        Published::new(topic_and_text, at_ms)
    }

    fn replay(history: &[(&str, u64)], options: TopicOptions, now_ms: u64) -> Vec<String> {
        let source = history
            .iter()
            .enumerate()
            .map(|(i, &(text, at))| (message(text, at), i + 1));
        Retained::new(source, options, now_ms)
            .map(|(m, _)| String::from_utf8_lossy(m.line().unwrap_or_default()).into_owned())
            .collect()
    }

    #[test]
    fn without_options_everything_is_replayed() {
        let history = [("t a 1", 0), ("t b 2", 10), ("t a 3", 20)];
        assert_eq!(
            replay(&history, TopicOptions::default(), 1_000_000),
            ["t a 1", "t b 2", "t a 3"]
        );
    }

    #[test]
    fn ttl_drops_what_is_older() {
        let history = [("t a", 1_000), ("t b", 5_000), ("t c", 9_000)];
        let options = TopicOptions {
            ttl: Some(5),
            compact: None,
        };
        // Now is 10 s: only messages from 5 s on are kept.
        assert_eq!(replay(&history, options, 10_000), ["t b", "t c"]);
    }

    #[test]
    fn compaction_keeps_the_newest_per_key_in_each_window() {
        let options = TopicOptions {
            ttl: None,
            compact: Some(10),
        };
        let history = [
            ("t EURUSD 1.08", 1_000),
            ("t GBPUSD 1.25", 2_000),
            ("t EURUSD 1.09", 3_000),  // replaces 1.08 (same window 0)
            ("t EURUSD 1.10", 12_000), // window 1
            ("t single", 13_000),
            ("t single", 14_000),
            ("t GBPUSD 1.26", 25_000), // window 2
        ];
        assert_eq!(
            replay(&history, options, 30_000),
            [
                "t GBPUSD 1.25",
                "t EURUSD 1.09",
                "t EURUSD 1.10",
                "t single",
                "t GBPUSD 1.26"
            ]
        );
    }

    #[test]
    fn stamps_stay_in_order_through_compaction() {
        let options = TopicOptions {
            ttl: None,
            compact: Some(1),
        };
        let history: Vec<(String, u64)> = (0..500)
            .map(|i| (format!("t k{} {i}", i % 7), i * 37))
            .collect();
        let source = history
            .iter()
            .enumerate()
            .map(|(i, (text, at))| (message(text, *at), i + 1));
        let stamps: Vec<usize> = Retained::new(source, options, 0).map(|(_, s)| s).collect();
        assert!(stamps.windows(2).all(|w| w[0] < w[1]));
        // One message per key and window.
        let pairs: std::collections::HashSet<(u64, u64)> =
            (0..500u64).map(|i| (i * 37 / 1000, i % 7)).collect();
        assert_eq!(stamps.len(), pairs.len());
    }
}
