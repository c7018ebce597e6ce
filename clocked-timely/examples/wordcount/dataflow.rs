//! The timely part of the word count: count words per event-time window, emitting each
//! window's counts at the window's end once timely's frontier has passed it.

use std::collections::{BTreeMap, HashMap};

use timely::container::CapacityContainerBuilder;
use timely::dataflow::channels::pact::Exchange;
use timely::dataflow::operators::generic::Operator;
use timely::dataflow::operators::Capability;
use timely::dataflow::Stream;

use super::input::{window_end, word_hash};

/// Words at their stamps in, `(word, count)` per window out, at the window's end. Windows
/// are `(k * size, (k + 1) * size]`; a window's counts go out once the frontier has passed
/// its end, that is once every source's clock has.
pub fn windowed_counts<'scope>(
    words: Stream<'scope, u64, Vec<String>>,
    size: u64,
) -> Stream<'scope, u64, Vec<(String, u64)>> {
    let by_word = Exchange::new(|word: &String| word_hash(word));
    words.unary_frontier::<CapacityContainerBuilder<Vec<(String, u64)>>, _, _, _>(
        by_word,
        "WindowedCount",
        |_capability, _info| {
            let mut windows: BTreeMap<u64, (Capability<u64>, HashMap<String, u64>)> =
                BTreeMap::new();
            move |(input, frontier), output| {
                input.for_each(|capability, words| {
                    let Some(&time) = capability.least() else {
                        return;
                    };
                    let end = window_end(time, size);
                    let (_, counts) = windows.entry(end).or_insert_with(|| {
                        (
                            capability.delayed(&end, output.output_index()),
                            HashMap::new(),
                        )
                    });
                    for word in words.drain(..) {
                        *counts.entry(word).or_default() += 1;
                    }
                });
                while let Some(window) = windows.first_entry() {
                    if frontier.less_equal(window.key()) {
                        break; // the window may still get words
                    }
                    let (capability, counts) = window.remove();
                    output
                        .session(&capability)
                        .give_iterator(counts.into_iter());
                }
            }
        },
    )
}
