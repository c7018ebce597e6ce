//! The word count's wiring: producers, dispatchers, the timely computation, the printer.

use std::error::Error;
use std::thread;

use clocked_timely::{per_worker, Sink, WorkerSlots, Workers};
use timely::dataflow::Stream;

use super::dataflow::windowed_counts;
use super::input::{word, word_hash};

/// What to compute.
#[derive(Clone, Copy, Debug)]
pub struct Options {
    /// Words per process.
    pub events: usize,
    /// Producer threads per process.
    pub producers: usize,
    /// Stamps per window.
    pub window: u64,
}

/// Runs the word count on `config`'s workers of this process. Process 0 calls `on_window`
/// with each window's end and counts, in window order, and returns how many windows it saw;
/// other processes return 0. `check` is applied to the source's stream of words (the tests
/// attach their assertions there; the example passes it through).
pub fn run<C>(
    config: timely::Config,
    options: Options,
    check: C,
    mut on_window: impl FnMut(u64, Vec<(String, u64)>),
) -> Result<usize, Box<dyn Error>>
where
    C: for<'scope> Fn(Stream<'scope, u64, Vec<String>>) -> Stream<'scope, u64, Vec<String>>
        + Send
        + Sync
        + 'static,
{
    let workers = Workers::from_config(&config);
    let process = workers.process();

    // In: this process's dispatcher, one receiver per local worker.
    let words = clocked_dispatch::new::<String>(1024);
    let (senders, readers) = per_worker(&words, workers, "words")?;

    // Out: worker 0 forwards the counts into a dispatcher that process 0 has.
    let counts = clocked_dispatch::new::<Vec<(String, u64)>>(1024);
    let (sink_tx, printer) = if process == 0 {
        let (tx, rx) = counts.try_new("timely", "printer")?;
        (WorkerSlots::on_worker(0, tx), Some(rx))
    } else {
        (WorkerSlots::none(), None)
    };

    // Producer `i` forwards positions i + 1, i + 1 + producers, ...: in order for itself, out
    // of order overall; the dispatcher releases them in order.
    let Options {
        events,
        producers,
        window,
    } = options;
    let mut threads = Vec::new();
    for i in 0..producers {
        let tx = senders.try_clone(&format!("producer{i}"))?;
        threads.push(thread::spawn(move || {
            for position in (i + 1..=events).step_by(producers) {
                let word = word(process, position);
                tx.for_key(word_hash(word))
                    .forward(Some(word.to_owned()), position)
                    .map_err(|e| format!("forward {word} at {position}: {e}"))?;
            }
            Ok::<(), String>(())
        }));
    }
    drop(senders); // the producers hold their own; the receivers close when they finish

    let guards = timely::execute(config, move |worker| {
        worker.dataflow::<u64, _, _>(|scope| -> Result<(), String> {
            let (words, _) = readers.source(scope).map_err(|e| e.to_string())?;
            let counts = windowed_counts(check(words), window);
            let sender = sink_tx.take(scope.index()).map_err(|e| e.to_string())?;
            Sink::new(0, sender)
                .build(counts)
                .map_err(|e| e.to_string())?;
            Ok(())
        })
    })?;

    let mut windows = 0;
    if let Some(printer) = printer {
        // In stamp order; closes once the sink has forwarded everything and dropped its sender.
        for (counts, end) in printer {
            if let Some(mut counts) = counts {
                counts.sort();
                on_window(end as u64, counts);
                windows += 1;
            }
        }
    }
    for result in guards.join() {
        result??;
    }
    for producer in threads {
        producer.join().map_err(|_| "a producer panicked")??;
    }
    Ok(windows)
}
