//! The word count's input, and the answer computed without timely (the tests compare the
//! two).
//!
//! Each process `p` has its own log of `events` words: position `s` (1-based) holds
//! `word(p, s)`, a fixed pseudo-random pick from a small vocabulary. The position is the
//! event's time: producers forward each word under its position, out of order, and the
//! process's dispatcher puts them back in order.

#![allow(dead_code)] // the example, the tests and the bench each use a part

use std::collections::BTreeMap;

/// The words the logs draw from.
pub const VOCABULARY: [&str; 12] = [
    "apple", "banana", "cherry", "date", "elder", "fig", "grape", "hazel", "iris", "jasmine",
    "kiwi", "lime",
];

/// The word at `position` of process `process`'s log.
pub fn word(process: usize, position: usize) -> &'static str {
    let mut x = ((process as u64) << 40) ^ position as u64;
    // splitmix64: a fixed, well-mixed function of the position
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^= x >> 31;
    VOCABULARY[(x % VOCABULARY.len() as u64) as usize]
}

/// The end of the window holding `stamp`: windows are `(k * size, (k + 1) * size]`.
pub fn window_end(stamp: u64, size: u64) -> u64 {
    stamp.saturating_sub(1) / size * size + size
}

/// A hash of a word, for routing and exchanging by word (FNV-1a: fixed across processes).
pub fn word_hash(word: &str) -> u64 {
    word.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// One window's counts as the example prints it: `window <end>: word=count ...`, words in
/// order.
pub fn format_window(end: u64, counts: &[(String, u64)]) -> String {
    let words: Vec<String> = counts.iter().map(|(w, c)| format!("{w}={c}")).collect();
    format!("window {end}: {}", words.join(" "))
}

/// The windowed counts of `processes` logs of `events` words each, computed sequentially:
/// the lines the example prints, in order.
pub fn expected(processes: usize, events: usize, window: u64) -> Vec<String> {
    let mut windows: BTreeMap<u64, BTreeMap<String, u64>> = BTreeMap::new();
    for process in 0..processes {
        for position in 1..=events {
            let end = window_end(position as u64, window);
            *windows
                .entry(end)
                .or_default()
                .entry(word(process, position).to_owned())
                .or_default() += 1;
        }
    }
    windows
        .into_iter()
        .map(|(end, counts)| format_window(end, &counts.into_iter().collect::<Vec<_>>()))
        .collect()
}
